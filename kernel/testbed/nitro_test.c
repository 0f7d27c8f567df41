// SPDX-License-Identifier: GPL-2.0
/*
 * nitro_test - checks of the Nitro KVM extension, run inside the emulated test bed machine
 * with the patched kvm/kvm_amd loaded.  Every check prints one line on stdout:
 *
 *     name: PASS
 *     name: FAIL (what went wrong)
 *
 * then "nitro_test: done P passed F failed".  The host's tests/test_kernel_nitro.py turns
 * each line into a test result.  Must run as root, with /dev/kvm mode 0666 (a child drops to
 * uid 65534 to check that an unprivileged process cannot attach).  Arguments, if any,
 * name the only checks to run.
 *
 * This file: check() and main().  The checks, by topic, each file's run by its *_checks()
 * with check("name", fn) lines (what the host collects as the names):
 *
 *     nitro_test_attach.c      the capability, attaching (VM fd, pidfd, from a child)
 *     nitro_test_config.c      trap configuration, the ring, eventfd, the fd's lifetime
 *     nitro_test_syscall.c     SYSCALL/SYSRET events, filter, overflow, tracer death
 *     nitro_test_sysenter.c    SYSENTER/SYSEXIT events (32-bit guest), #GP, VMLOAD/VMSAVE
 *     nitro_test_sync.c        synchronous delivery: KVM_NITRO_CONTINUE, skip, release
 *     nitro_test_completion.c  a trapped SYSCALL completed as the hardware does
 *
 * over nitro_test_guest.c (the guest programs they run) and testvm.c (shared with
 * nitro_bench), all declared in testvm.h.
 */
#include "testvm.h"

static int passed, failed;
static char **only;	/* names given on the command line: run only those */

/*
 * A check that failed half-way may leave a nitro fd or ring mapping behind; the VM of
 * the shared guest would stay attached (EBUSY for the next check).  Drop them.
 */
static void release_leftovers(void)
{
	char line[512], link[64], path[128];
	unsigned long start, end;
	FILE *maps = fopen("/proc/self/maps", "r");
	int fd;

	while (maps && fgets(line, sizeof(line), maps))
		if (strstr(line, "kvm-nitro") && sscanf(line, "%lx-%lx", &start, &end) == 2)
			munmap((void *)start, end - start);
	if (maps)
		fclose(maps);
	for (fd = 3; fd < 1024; fd++) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n > 0 && (path[n] = 0, !strcmp(path, "anon_inode:kvm-nitro")))
			close(fd);
	}
}

void check(const char *name, int (*fn)(void))
{
	if (only && *only) {
		char **o;

		for (o = only; *o && strcmp(*o, name); o++)
			;
		if (!*o)
			return;
	}
	failure[0] = 0;
	fflush(stdout);
	release_leftovers();
	if (fn() == 0 && !failure[0]) {
		printf("%s: PASS\n", name);
		passed++;
	} else {
		printf("%s: FAIL (%s)\n", name, failure[0] ? failure : "no reason given");
		failed++;
	}
	fflush(stdout);
}

static void on_usr1(int sig)
{
	(void)sig;
}

/*
 * `nitro_test --hold-vm`: create one VM and hold it until killed. The bed's init runs it
 * for the whole boot, so that SVM stays enabled between nitro_test and the in-bed pytest
 * (see the keeper in main()); it says "holding a VM" once the VM exists.
 */
static int hold_vm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0 || ioctl(fd, KVM_CREATE_VM, 0) < 0) {
		printf("hold_vm: %s\n", strerror(errno));
		return 1;
	}
	printf("holding a VM\n");
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	struct sigaction alarm_action = { .sa_handler = on_alarm };
	int keeper_ready[2];
	pid_t keeper;
	char ready;

	if (argc == 2 && strcmp(argv[1], "--hold-vm") == 0)
		return hold_vm();
	only = argc > 1 ? argv + 1 : NULL;
	sigaction(SIGALRM, &alarm_action, NULL);
	/* interrupts a vCPU thread's KVM_RUN (no SA_RESTART) */
	sigaction(SIGUSR1, &(struct sigaction){ .sa_handler = on_usr1 }, NULL);
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		printf("open_dev_kvm: FAIL (%s)\n", strerror(errno));
		printf("nitro_test: done 0 passed 1 failed\n");
		return 1;
	}
	/*
	 * A VM of another process lives through the whole run, so KVM enables SVM on
	 * every CPU once instead of around each check (hardware_enable_all() on the
	 * first VM, hardware_disable_all() after the last): with that churn the
	 * emulated machine froze in about one run of three (QEMU 7.2 TCG, nested SVM).
	 */
	if (pipe(keeper_ready) || (keeper = fork()) < 0) {
		printf("keeper_vm: FAIL (%s)\n", strerror(errno));
		return 1;
	}
	if (keeper == 0) {
		if (ioctl(kvm_fd, KVM_CREATE_VM, 0) < 0 || write(keeper_ready[1], "k", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	if (read(keeper_ready[0], &ready, 1) != 1) {
		printf("keeper_vm: FAIL (the keeper process did not create its VM)\n");
		return 1;
	}
	attach_checks();
	config_checks();
	syscall_checks();
	sysenter_checks();
	sync_checks();
	completion_checks();
	release_leftovers();
	if (the_guest.vm >= 0)
		guest_close(&the_guest);
	kill(keeper, SIGKILL);
	waitpid(keeper, NULL, 0);
	printf("nitro_test: done %d passed %d failed\n", passed, failed);
	return failed != 0;
}
