/*
 * launch: run one strace test program in the test guest as strace's harness runs it.
 *
 *     /oracle/launch NAME [REDIRECTION...] -- [ARG...]
 *
 * In /oracle/tests/NAME.dir (made afresh), with stdin from /dev/null, stdout to
 * ../NAME.out, stderr to ../NAME.err and the harness's redirections (`9>>/dev/full`,
 * `7>/dev/null`, `0</dev/null`) applied, it prints `oracle-pid=PID` on its own stdout (the
 * control port) and executes `../NAME ARG...` in its own process: the test keeps that pid,
 * and its exit status is the command's. A few system calls only: every one is trapped while
 * the oracle traces (~15 ms each under TCG), where a shell makes hundreds.
 *
 * Built with `gcc -static` by tests/oracle/build.py.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void fail(const char *what, const char *arg)
{
	printf("oracle-error=%s %s: %s\n", what, arg, strerror(errno));
	fflush(stdout);
	exit(125);
}

/* Open *path* with *flags* as descriptor *fd*. */
static void open_as(int fd, const char *path, int flags)
{
	int got = open(path, flags, 0644);
	if (got < 0)
		fail("open", path);
	if (got != fd) {
		if (dup2(got, fd) < 0)
			fail("dup2", path);
		close(got);
	}
}

/* `N>>path`, `N>path`, `N<path`, `>path` (fd 1), `<path` (fd 0). */
static void redirect(const char *spec)
{
	char *end;
	long fd = strtol(spec, &end, 10);
	if (end == spec)
		fd = *end == '<' ? 0 : 1;
	if (!strncmp(end, ">>", 2))
		open_as(fd, end + 2, O_WRONLY | O_CREAT | O_APPEND);
	else if (*end == '>')
		open_as(fd, end + 1, O_WRONLY | O_CREAT | O_TRUNC);
	else if (*end == '<')
		open_as(fd, end + 1, O_RDONLY);
	else {
		errno = EINVAL;
		fail("redirection", spec);
	}
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX], out[PATH_MAX], err[PATH_MAX], prog[PATH_MAX];
	int i;

	if (argc < 2) {
		puts("usage: launch NAME [REDIRECTION...] -- [ARG...]");
		return 2;
	}
	const char *name = argv[1];
	snprintf(dir, sizeof(dir), "/oracle/tests/%s.dir", name);
	snprintf(out, sizeof(out), "../%s.out", name);
	snprintf(err, sizeof(err), "../%s.err", name);
	snprintf(prog, sizeof(prog), "../%s", name);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		fail("mkdir", dir);
	if (chdir(dir) < 0)
		fail("chdir", dir);
	printf("oracle-pid=%d\n", getpid());
	fflush(stdout);
	open_as(0, "/dev/null", O_RDONLY);
	open_as(1, out, O_WRONLY | O_CREAT | O_TRUNC);
	open_as(2, err, O_WRONLY | O_CREAT | O_TRUNC);
	for (i = 2; i < argc && strcmp(argv[i], "--"); i++)
		redirect(argv[i]);
	if (i < argc)
		i++;
	argv[i - 1] = prog; /* argv[i - 1] is "--" or the last redirection, or NAME */
	execv(prog, argv + i - 1);
	fprintf(stderr, "launch: %s: %s\n", prog, strerror(errno));
	return 126;
}
