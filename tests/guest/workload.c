/*
 * workload: the test guest's program, a known and countable sequence of system calls.
 *
 * The guest's init runs `workload serve /dev/ttyS1`: a loop that reads one command per line
 * from the control serial port, runs it in a fresh child process (so every command has its
 * own pid), copies nothing (the child writes straight to the port) and ends with
 *
 *     === <tag> exit=<code>      or      === <tag> signal=<signo>
 *
 * A command line is `<tag> <verb> [args...]`; the verbs are listed in usage(). `ping` is
 * answered by the server itself with `=== <tag> pong`. A verb that starts with '/' is
 * executed as a program (e.g. `/bin/busybox ls /`).
 *
 * Every system call a verb makes on purpose goes through syscall(2) so that no libc caching
 * or wrapper logic hides or adds one. Each verb prints what it did, one `key=value` per
 * line, for the tests to compare with what the tracer saw.
 *
 * Built with `gcc -static` by tests/guest/build-guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MARKER_PATH "/nitro-marker"
#define MARKER_TEXT "nitro-marker-write\n"
/* No x86-64 Linux system call has this number: the kernel answers -ENOSYS. */
#define UNKNOWN_SYSCALL 1023
#define MAX_LINE 1024
#define MAX_ARGS 32

static long raw_getpid(void) { return syscall(SYS_getpid); }

static void print_status(const char *key, int status)
{
	if (WIFSIGNALED(status))
		printf("%s_signal=%d\n", key, WTERMSIG(status));
	else
		printf("%s_exit=%d\n", key, WEXITSTATUS(status));
}

static int do_getpid(long count)
{
	long pid = 0;
	for (long i = 0; i < count; i++)
		pid = raw_getpid();
	printf("getpid_count=%ld\ngetpid=%ld\n", count, pid);
	return 0;
}

static int do_open(const char *path)
{
	long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
	if (fd < 0) {
		printf("openat=-%d\n", errno);
		return 1;
	}
	printf("openat_path=%s\nopenat=%ld\n", path, fd);
	syscall(SYS_close, fd);
	return 0;
}

static int do_write(const char *text)
{
	long fd = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_WRONLY);
	long n = syscall(SYS_write, fd, text, strlen(text));
	syscall(SYS_close, fd);
	printf("write_fd=%ld\nwrite=%ld\n", fd, n);
	return n == (long)strlen(text) ? 0 : 1;
}

static int do_nosys(void)
{
	long ret = syscall(UNKNOWN_SYSCALL, 1, 2, 3, 4, 5, 6);
	printf("nosys_nr=%d\nnosys=%ld\nnosys_errno=%d\n", UNKNOWN_SYSCALL, ret, errno);
	return ret == -1 && errno == ENOSYS ? 0 : 1;
}

static int do_fork(void)
{
	int status;
	pid_t child = fork();
	if (child == 0) {
		raw_getpid();
		_exit(7);
	}
	waitpid(child, &status, 0);
	printf("fork_child=%d\n", child);
	print_status("fork_child", status);
	return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : 1;
}

static int do_ud2(void)
{
	int status;
	pid_t child = fork();
	if (child == 0) {
		__asm__ volatile("ud2");
		_exit(0); /* not reached: the kernel must deliver SIGILL */
	}
	waitpid(child, &status, 0);
	printf("ud2_child=%d\n", child);
	print_status("ud2_child", status);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGILL ? 0 : 1;
}

static int do_loop(long count)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < count; i++)
		raw_getpid();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
	printf("loop_count=%ld\nloop_ns=%lld\n", count, ns);
	return 0;
}

/* The known sequence, in this order: getpid x3, openat+close of the marker, openat+write+close
 * of /dev/null, the unknown syscall, fork+wait, ud2 child + wait. */
static int do_sequence(void)
{
	int failed = 0;
	printf("pid=%ld\n", raw_getpid());
	failed |= do_getpid(3);
	failed |= do_open(MARKER_PATH);
	failed |= do_write(MARKER_TEXT);
	failed |= do_nosys();
	failed |= do_fork();
	failed |= do_ud2();
	return failed;
}

static void usage(void)
{
	puts("verbs: ping | sequence | getpid N | open PATH | write TEXT | nosys | fork | ud2 |"
	     " loop N | /path/to/program [args...]");
}

static int run_verb(int argc, char **argv)
{
	const char *verb = argc > 0 ? argv[0] : "";
	if (!strcmp(verb, "sequence"))
		return do_sequence();
	if (!strcmp(verb, "getpid") && argc == 2)
		return do_getpid(atol(argv[1]));
	if (!strcmp(verb, "open") && argc == 2)
		return do_open(argv[1]);
	if (!strcmp(verb, "write") && argc == 2)
		return do_write(argv[1]);
	if (!strcmp(verb, "nosys"))
		return do_nosys();
	if (!strcmp(verb, "fork"))
		return do_fork();
	if (!strcmp(verb, "ud2"))
		return do_ud2();
	if (!strcmp(verb, "loop") && argc == 2)
		return do_loop(atol(argv[1]));
	if (verb[0] == '/') {
		execv(verb, argv);
		printf("exec_errno=%d\n", errno);
		return 127;
	}
	usage();
	return 2;
}

static int split(char *line, char **words, int max)
{
	int n = 0;
	for (char *word = strtok(line, " \t"); word && n < max - 1; word = strtok(NULL, " \t"))
		words[n++] = word;
	words[n] = NULL;
	return n;
}

static void open_port(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	struct termios tio;
	if (tcgetattr(fd, &tio) == 0) {
		cfmakeraw(&tio);
		tcsetattr(fd, TCSANOW, &tio);
	}
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/* Read one line from stdin into buf; false at end of file. '\r' is dropped. */
static int read_line(char *buf, size_t size)
{
	size_t len = 0;
	char c;
	for (;;) {
		ssize_t n = read(0, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		if (c == '\n')
			break;
		if (c != '\r' && len < size - 1)
			buf[len++] = c;
	}
	buf[len] = '\0';
	return 1;
}

static int serve(const char *port)
{
	char line[MAX_LINE];
	char *words[MAX_ARGS];

	open_port(port);
	printf("=== ready\n");
	while (read_line(line, sizeof(line))) {
		int n = split(line, words, MAX_ARGS);
		if (n == 0)
			continue;
		if (n == 2 && !strcmp(words[1], "ping")) {
			printf("=== %s pong\n", words[0]);
			continue;
		}
		fflush(stdout);
		pid_t child = fork();
		if (child == 0)
			_exit(run_verb(n - 1, words + 1));
		int status = 0;
		waitpid(child, &status, 0);
		if (WIFSIGNALED(status))
			printf("=== %s signal=%d\n", words[0], WTERMSIG(status));
		else
			printf("=== %s exit=%d\n", words[0], WEXITSTATUS(status));
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return serve(argv[2]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run_verb(argc - 1, argv + 1);
}
