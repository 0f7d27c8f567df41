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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <linux/kvm_nitro.h>

static int passed, failed;
static char failure[256];

/* Record why the current check failed (the first reason wins) and return -1. */
static int fail(const char *fmt, ...)
{
	va_list ap;

	if (!failure[0]) {
		va_start(ap, fmt);
		vsnprintf(failure, sizeof(failure), fmt, ap);
		va_end(ap);
	}
	return -1;
}

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

static void check(const char *name, int (*fn)(void))
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

/* An ioctl expected to fail with @err. */
#define EXPECT_ERRNO(call, err)                                                      \
	do {                                                                         \
		errno = 0;                                                           \
		long r_ = (call);                                                    \
		if (r_ != -1 || errno != (err))                                      \
			return fail("%s: got %ld errno %d (%s), want %s", #call, r_, \
				    errno, strerror(errno), #err);                   \
	} while (0)

#define EXPECT_OK(call)                                                               \
	({                                                                            \
		errno = 0;                                                            \
		long r_ = (call);                                                     \
		if (r_ < 0)                                                           \
			return fail("%s: errno %d (%s)", #call, errno, strerror(errno)); \
		r_;                                                                   \
	})

#define EXPECT_EQ(got, want)                                                        \
	do {                                                                        \
		unsigned long long g_ = (got), w_ = (want);                         \
		if (g_ != w_)                                                       \
			return fail("%s = %llu, want %llu", #got, g_, w_);          \
	} while (0)

static int kvm_fd = -1;

static int pidfd_open(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_getfd(int pidfd, int fd)
{
	return syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

static struct kvm_nitro_attach attach_req(int pidfd, int vm_fd)
{
	struct kvm_nitro_attach a = {
		.version = KVM_NITRO_ABI_VERSION,
		.size = sizeof(a),
		.pidfd = pidfd,
		.vm_fd = vm_fd,
	};
	return a;
}

static int attach_on_vm(int vm)
{
	struct kvm_nitro_attach a = attach_req(-1, -1);

	return ioctl(vm, KVM_NITRO_ATTACH, &a);
}

static struct kvm_nitro_trap_config traps_req(uint32_t traps, uint32_t slots)
{
	struct kvm_nitro_trap_config c = {
		.version = KVM_NITRO_ABI_VERSION,
		.size = sizeof(c),
		.traps = traps,
		.ring_slots = slots,
	};
	return c;
}

/* ------------------------------------------------------------------ checks */

static int t_capability(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));

	EXPECT_EQ(ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NITRO), KVM_NITRO_ABI_VERSION);
	EXPECT_EQ(ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_NITRO), KVM_NITRO_ABI_VERSION);
	close(vm);
	return 0;
}

static int t_attach_on_vm_fd(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int nitro = EXPECT_OK(attach_on_vm(vm));
	char link[64], path[128] = "";

	snprintf(link, sizeof(link), "/proc/self/fd/%d", nitro);
	if (readlink(link, path, sizeof(path) - 1) < 0 || strcmp(path, "anon_inode:kvm-nitro"))
		return fail("nitro fd is %s", path);
	if (!(fcntl(nitro, F_GETFD) & FD_CLOEXEC))
		return fail("nitro fd without FD_CLOEXEC");
	EXPECT_ERRNO(attach_on_vm(vm), EBUSY);
	close(nitro);
	/* released: the VM can be attached again */
	nitro = EXPECT_OK(attach_on_vm(vm));
	close(nitro);
	close(vm);
	return 0;
}

static int t_attach_rejects_bad_requests(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	struct kvm_nitro_attach a;

	a = attach_req(-1, -1);
	a.version = 2;
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EPROTO);
	a = attach_req(-1, -1);
	a.size = 8;
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EINVAL);
	a = attach_req(-1, -1);
	a.reserved[5] = 1;
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EINVAL);
	a = attach_req(-1, -1);
	a.flags = 1;
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EINVAL);
	a = attach_req(0, -1);
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EINVAL);
	/* on /dev/kvm: a pidfd is required, and a regular fd is not one */
	a = attach_req(-1, -1);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), EBADF);
	a = attach_req(vm, -1);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), EBADF);
	close(vm);
	return 0;
}

static int t_attach_by_pidfd(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int pidfd = EXPECT_OK(pidfd_open(getpid()));
	struct kvm_nitro_attach a = attach_req(pidfd, -1);
	int nitro, vm2;

	/* the only VM of the process */
	nitro = EXPECT_OK(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a));
	EXPECT_ERRNO(attach_on_vm(vm), EBUSY);
	close(nitro);
	/* named by its fd number */
	a = attach_req(pidfd, vm);
	nitro = EXPECT_OK(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a));
	close(nitro);
	a = attach_req(pidfd, kvm_fd);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), EINVAL);
	a = attach_req(pidfd, 999);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), EBADF);
	/* two VMs: "the only VM" is ambiguous */
	vm2 = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	a = attach_req(pidfd, -1);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), ENOTUNIQ);
	a = attach_req(pidfd, vm2);
	nitro = EXPECT_OK(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a));
	close(nitro);
	close(vm2);
	close(vm);
	close(pidfd);
	return 0;
}

/*
 * A child process attaches to the parent's VM.  @unprivileged: the child drops to uid
 * 65534 first and must be refused on both paths.  Returns the child's verdict.
 */
static int attach_from_child(int unprivileged)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int status;
	pid_t parent = getpid(), child;

	child = fork();
	if (child < 0)
		return fail("fork: %s", strerror(errno));
	if (child == 0) {
		int pidfd = pidfd_open(parent), kvm, nitro, foreign;
		struct kvm_nitro_attach a = attach_req(pidfd, vm);

		if (pidfd < 0)
			_exit(10);
		if (unprivileged && (setgid(65534) || setuid(65534)))
			_exit(11);
		kvm = open("/dev/kvm", O_RDWR);
		if (kvm < 0)
			_exit(12);
		nitro = ioctl(kvm, KVM_NITRO_ATTACH, &a);
		if (unprivileged) {
			if (nitro != -1 || errno != EPERM)
				_exit(13);
			foreign = pidfd_getfd(pidfd, vm);
			if (foreign != -1 || errno != EPERM)
				_exit(14);
			_exit(0);
		}
		if (nitro < 0)
			_exit(15);
		close(nitro);
		/* the tracer's path: the VMM's own VM fd, then attach on it */
		foreign = pidfd_getfd(pidfd, vm);
		if (foreign < 0)
			_exit(16);
		nitro = attach_on_vm(foreign);
		if (nitro < 0)
			_exit(17);
		/* only the attach is exempt from the kvm->mm rule */
		if (ioctl(foreign, KVM_CREATE_VCPU, 0) != -1 || errno != EIO)
			_exit(18);
		if (ioctl(nitro, KVM_NITRO_GET_TRAPS, &(struct kvm_nitro_trap_config){0}))
			_exit(19);
		_exit(0);
	}
	if (waitpid(child, &status, 0) != child)
		return fail("waitpid: %s", strerror(errno));
	close(vm);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return fail("child status %#x (exit code names the failed step)", status);
	return 0;
}

static int t_attach_from_privileged_child(void)
{
	return attach_from_child(0);
}

static int t_attach_refused_to_unprivileged(void)
{
	return attach_from_child(1);
}

static int t_trap_config_roundtrip(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int nitro = EXPECT_OK(attach_on_vm(vm));
	struct kvm_nitro_trap_config c, got;

	memset(&got, 0xff, sizeof(got));
	EXPECT_OK(ioctl(nitro, KVM_NITRO_GET_TRAPS, &got));
	EXPECT_EQ(got.version, KVM_NITRO_ABI_VERSION);
	EXPECT_EQ(got.size, sizeof(got));
	EXPECT_EQ(got.traps, 0);
	EXPECT_EQ(got.ring_slots, 4096);

	c = traps_req(KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 1024);
	c.delivery = KVM_NITRO_DELIVERY_SYNC;
	c.flags = KVM_NITRO_FILTER_ENABLE;
	c.syscall_filter[0] = 1ULL << 1 | 1ULL << 60;
	c.syscall_filter[7] = 1ULL << 63;
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	memset(&got, 0, sizeof(got));
	EXPECT_OK(ioctl(nitro, KVM_NITRO_GET_TRAPS, &got));
	if (memcmp(&got, &c, sizeof(c)))
		return fail("GET_TRAPS differs from what SET_TRAPS stored");
	close(nitro);
	close(vm);
	return 0;
}

static int t_trap_config_rejects_bad_requests(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int nitro = EXPECT_OK(attach_on_vm(vm));
	struct kvm_nitro_trap_config c;

	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 0);
	c.version = 0;
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EPROTO);
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 0);
	c.size = 64;
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EINVAL);
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 0);
	c.pad0 = 1;
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EINVAL);
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 0);
	c.reserved[4] = 1;
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EINVAL);
	c = traps_req(0x10, 0);
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EINVAL);
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 1000);
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EINVAL);
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 1 << 17);
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EINVAL);
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 0);
	c.delivery = 2;
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EINVAL);
	/* nothing above was stored */
	EXPECT_OK(ioctl(nitro, KVM_NITRO_GET_TRAPS, &c));
	EXPECT_EQ(c.traps, 0);
	EXPECT_ERRNO(ioctl(nitro, KVM_CHECK_EXTENSION, KVM_CAP_NITRO), ENOTTY);
	close(nitro);
	close(vm);
	return 0;
}

static int t_ring_mmap_and_poll(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int nitro = EXPECT_OK(attach_on_vm(vm));
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSCALL, 256);
	long page = sysconf(_SC_PAGESIZE);
	size_t bytes = page + ((256 * sizeof(struct kvm_nitro_event) + page - 1) & ~(page - 1));
	struct kvm_nitro_ring_header *ring;
	struct pollfd p = { .fd = nitro, .events = POLLIN };

	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	if (mmap(NULL, bytes + page, PROT_READ, MAP_SHARED, nitro, 0) != MAP_FAILED)
		return fail("mmap beyond the ring succeeded");
	if (mmap(NULL, page, PROT_READ, MAP_SHARED, nitro, page) != MAP_FAILED)
		return fail("mmap at page offset 1 succeeded");
	if (mmap(NULL, page, PROT_READ | PROT_EXEC, MAP_SHARED, nitro, 0) != MAP_FAILED)
		return fail("executable mmap succeeded");
	ring = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, nitro, KVM_NITRO_RING_PGOFF);
	if (ring == MAP_FAILED)
		return fail("mmap: %s", strerror(errno));
	EXPECT_EQ(ring->version, KVM_NITRO_ABI_VERSION);
	EXPECT_EQ(ring->header_size, sizeof(*ring));
	EXPECT_EQ(ring->slot_size, sizeof(struct kvm_nitro_event));
	EXPECT_EQ(ring->slot_count, 256);
	EXPECT_EQ(ring->data_offset, page);
	EXPECT_EQ(ring->producer, 0);
	EXPECT_EQ(ring->consumer, 0);
	EXPECT_EQ(ring->dropped, 0);
	EXPECT_EQ(poll(&p, 1, 0), 0);
	/* the consumer index is the tracer's to write */
	ring->consumer = 0;
	/* a mapped ring keeps its size */
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 512);
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EBUSY);
	c = traps_req(KVM_NITRO_TRAP_SYSRET, 256);
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	/* the mapping keeps the nitro fd alive after close() */
	close(nitro);
	EXPECT_EQ(ring->slot_count, 256);
	EXPECT_ERRNO(attach_on_vm(vm), EBUSY);
	munmap(ring, bytes);
	nitro = EXPECT_OK(attach_on_vm(vm));
	close(nitro);
	close(vm);
	return 0;
}

static int t_eventfd(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int nitro = EXPECT_OK(attach_on_vm(vm));
	int efd = EXPECT_OK(eventfd(0, EFD_CLOEXEC));
	struct kvm_nitro_eventfd e = { .fd = efd };

	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_EVENTFD, &e));
	e.fd = vm;
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_EVENTFD, &e), EINVAL);
	e.fd = efd;
	e.flags = 1;
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_EVENTFD, &e), EINVAL);
	e = (struct kvm_nitro_eventfd){ .fd = -1 };
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_EVENTFD, &e));
	e.fd = efd;
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_EVENTFD, &e));
	/* released with the nitro fd still holding it */
	close(nitro);
	close(efd);
	close(vm);
	return 0;
}

/* The nitro fd holds the VM: closing the VMM's fds first is fine. */
static int t_nitro_fd_outlives_vm_fd(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int nitro = EXPECT_OK(attach_on_vm(vm));
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSCALL, 0);

	close(vm);
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_OK(ioctl(nitro, KVM_NITRO_GET_TRAPS, &c));
	EXPECT_EQ(c.traps, KVM_NITRO_TRAP_SYSCALL);
	close(nitro);
	return 0;
}

/* A real-mode nested guest (OUT, HLT) runs with a nitro fd attached and traps stored. */
static int t_nested_guest_runs_attached(void)
{
	static const uint8_t code[] = { 0xb0, 0x42, 0xe6, 0x10, 0xf4 }; /* mov al,0x42; out 0x10,al; hlt */
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int nitro = EXPECT_OK(attach_on_vm(vm));
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSCALL, 0);
	int vcpu, run_size;
	struct kvm_run *run;
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	uint8_t *mem = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct kvm_userspace_memory_region slot = {
		.memory_size = 0x10000, .userspace_addr = (uintptr_t)mem,
	};

	if (mem == MAP_FAILED)
		return fail("mmap guest memory");
	memcpy(mem + 0x1000, code, sizeof(code));
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_OK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot));
	vcpu = EXPECT_OK(ioctl(vm, KVM_CREATE_VCPU, 0));
	run_size = EXPECT_OK(ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0));
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run");
	EXPECT_OK(ioctl(vcpu, KVM_GET_SREGS, &sregs));
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	EXPECT_OK(ioctl(vcpu, KVM_SET_SREGS, &sregs));
	EXPECT_OK(ioctl(vcpu, KVM_SET_REGS, &regs));
	EXPECT_OK(ioctl(vcpu, KVM_RUN, 0));
	EXPECT_EQ(run->exit_reason, KVM_EXIT_IO);
	EXPECT_EQ(run->io.port, 0x10);
	EXPECT_EQ(((uint8_t *)run)[run->io.data_offset], 0x42);
	/* the trap configuration can change while the vCPU exists */
	c = traps_req(0, 0);
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_OK(ioctl(vcpu, KVM_RUN, 0));
	EXPECT_EQ(run->exit_reason, KVM_EXIT_HLT);
	close(nitro);
	munmap(run, run_size);
	close(vcpu);
	close(vm);
	munmap(mem, 0x10000);
	return 0;
}

/* ------------------------------------------------- a 64-bit nested guest */

/*
 * Guest-physical layout: page tables at 0x1000-0x3fff map the first 2 MiB identity,
 * user-accessible; GDT 0x4000 (0x08 kernel code, 0x10 kernel data), IDT 0x5000 (#UD
 * -> UD_HANDLER), TSS 0x6000 (RSP0 0x1e8000), data 0x7000, code from 0x8000, stack
 * below 0x1f0000.
 * The guest reports with OUT to port 0x10: 1 = scenario done, 2 = the guest got #UD.
 */
#define G_COUNTER	0x7000	/* u64: system calls the guest's kernel handled */
#define G_EFER_SEEN	0x7008	/* u32: low half of EFER as the guest read it */
#define G_KERNEL	0x8000	/* CPL 0: read/write EFER, SYSRETQ to G_USER */
#define G_SYSRETQ_0	0x801b	/* ...the SYSRETQ there */
#define G_USER		0x8100	/* CPL 3: SYSCALL 39 (rdi 0x1111), SYSCALL 60 */
#define G_SYSCALL_39	0x810a
#define G_SYSCALL_60	0x8111
#define G_LSTAR		0x8200	/* counts, SYSRETQ back; on 60 reports 1 */
#define G_SYSRETQ_1	0x820d
#define G_UD_HANDLER	0x8300	/* reports 2 */
#define G_UD2		0x8400	/* CPL 0: ud2 */
#define G_OWN_SCE_OFF	0x8500	/* CPL 0: clear the guest's own EFER.SCE, SYSCALL 60 */
#define G_STAR		(0x10ULL << 48 | 0x08ULL << 32)	/* user CS 0x23, SS 0x1b */

static const struct {
	uint64_t gpa;
	uint8_t bytes[32];
	size_t len;
} guest_code[] = {
	{ G_KERNEL, { 0xb9, 0x80, 0x00, 0x00, 0xc0,		/* mov ecx, MSR_EFER */
		      0x0f, 0x32,				/* rdmsr */
		      0x89, 0x04, 0x25, 0x08, 0x70, 0x00, 0x00,	/* mov [G_EFER_SEEN], eax */
		      0x0f, 0x30,				/* wrmsr (same value) */
		      0xb9, 0x00, 0x81, 0x00, 0x00,		/* mov ecx, G_USER */
		      0x41, 0xbb, 0x02, 0x00, 0x00, 0x00,	/* mov r11d, 2 */
		      0x48, 0x0f, 0x07 }, 30 },			/* sysretq */
	{ G_USER, { 0xb8, 0x27, 0x00, 0x00, 0x00,		/* mov eax, 39 */
		    0xbf, 0x11, 0x11, 0x00, 0x00,		/* mov edi, 0x1111 */
		    0x0f, 0x05,					/* syscall */
		    0xb8, 0x3c, 0x00, 0x00, 0x00,		/* mov eax, 60 */
		    0x0f, 0x05,					/* syscall */
		    0xeb, 0xfe }, 21 },				/* jmp . */
	{ G_LSTAR, { 0x48, 0xff, 0x04, 0x25, 0x00, 0x70, 0x00, 0x00, /* inc qword [G_COUNTER] */
		     0x83, 0xf8, 0x3c,				/* cmp eax, 60 */
		     0x74, 0x03,				/* je done */
		     0x48, 0x0f, 0x07,				/* sysretq */
		     0xb0, 0x01, 0xe6, 0x10, 0xf4 }, 21 },	/* done: out 0x10, 1; hlt */
	{ G_UD_HANDLER, { 0xb0, 0x02, 0xe6, 0x10, 0xf4 }, 5 },	/* out 0x10, 2; hlt */
	{ G_UD2, { 0x0f, 0x0b }, 2 },				/* ud2 */
	{ G_OWN_SCE_OFF, { 0xb9, 0x80, 0x00, 0x00, 0xc0,	/* mov ecx, MSR_EFER */
			   0x0f, 0x32,				/* rdmsr */
			   0x83, 0xe0, 0xfe,			/* and eax, ~EFER_SCE */
			   0x0f, 0x30,				/* wrmsr */
			   0xb8, 0x3c, 0x00, 0x00, 0x00,	/* mov eax, 60 */
			   0x0f, 0x05 }, 19 },			/* syscall */
};

/* ------------------------------------------- a 32-bit legacy-mode guest */

/*
 * AMD runs SYSENTER/SYSEXIT only in legacy mode (long mode: #UD), so they are tested
 * in 32-bit protected mode with paging (one 4 MiB page maps 0..4 MiB identity:
 * VMLOAD/VMSAVE need paging).  Same VM and vCPU as the 64-bit guest, other pages:
 * page directory 0x10000, GDT 0x11000 (0x08/0x10 kernel code/data, 0x1b/0x23 user
 * code/data as SYSEXIT derives them from SYSENTER_CS 0x08, 0x28 TSS), IDT 0x11800
 * (#UD, #GP), TSS 0x12000, data 0x13000, a VMCB page 0x14000, code from 0x20000;
 * stacks: kernel (TSS) below 0x1e0000, SYSENTER_ESP 0x1d0000, user 0x1c0000.
 * Reports on port 0x10: 1 = scenario done, 2 = #UD, 3 = #GP.
 */
#define G32_PD		0x10000
#define G32_GDT		0x11000
#define G32_IDT		0x11800
#define G32_TSS		0x12000
#define G32_COUNTER	0x13000	/* u32: SYSENTERs the guest's kernel handled */
#define G32_CS_SEEN	0x13004	/* u32: SYSENTER_CS as the guest read it (RDMSR) */
#define G32_GP_ERR	0x13008	/* u32: error code of the last #GP */
#define G32_GP_EIP	0x1300c	/* u32: where it was raised */
#define G32_UD_EIP	0x13010	/* u32: where the last #UD was raised */
#define G32_VMSAVE_SEEN	0x13014	/* u32: SYSENTER_CS that VMSAVE stored */
#define G32_VMLOAD_SEEN	0x13018	/* u32: SYSENTER_CS read after VMLOAD */
#define G32_VMCB	0x14000
#define G32_CODE	0x20000
#define G32_SYSENTER_CS	0x08
#define G32_SYSENTER_SP	0x1d0000
#define G32_USER_SP	0x1c0000

/* Guest address of label @l of the code below */
#define G32(l)		(G32_CODE + (uint32_t)((l) - g32_code))

extern const uint8_t g32_code[], g32_code_end[], g32_kernel[], g32_sysexit_0[], g32_user[],
	g32_sysenter_39[], g32_user_1[], g32_sysenter_60[], g32_user_2[], g32_entry[], g32_sysexit_1[],
	g32_gp[], g32_ud[], g32_own_cs_zero[], g32_own_zero_sysenter[], g32_user_sysexit[],
	g32_user_cli[], g32_bad_selector[], g32_bad_selector_mov[], g32_vmload[];

#define G32_ASM_ADDR(l)	"(" #l " - g32_code + 0x20000)"
__asm__(
	"	.pushsection .rodata\n"
	"	.code32\n"
	"g32_code:\n"
	/* CPL 0: read the own SYSENTER_CS, write it back, SYSEXIT to g32_user */
	"g32_kernel:\n"
	"	mov $0x174, %ecx\n"
	"	rdmsr\n"
	"	mov %eax, 0x13004\n"
	"	wrmsr\n"
	"	mov $0x1c0000, %ecx\n"
	"	mov $" G32_ASM_ADDR(g32_user) ", %edx\n"
	"g32_sysexit_0:\n"
	"	sysexit\n"
	/* CPL 3: SYSENTER 39 (edi 0x1111), SYSENTER 60; edx = where to return */
	"g32_user:\n"
	"	mov $39, %eax\n"
	"	mov $0x1111, %edi\n"
	"	mov $" G32_ASM_ADDR(g32_user_1) ", %edx\n"
	"	mov %esp, %ecx\n"
	"g32_sysenter_39:\n"
	"	sysenter\n"
	"g32_user_1:\n"
	"	mov $60, %eax\n"
	"	mov $" G32_ASM_ADDR(g32_user_2) ", %edx\n"
	"	mov %esp, %ecx\n"
	"g32_sysenter_60:\n"
	"	sysenter\n"
	"g32_user_2:\n"
	"	jmp g32_user_2\n"
	/* SYSENTER_EIP, CPL 0: count, SYSEXIT back; on 60 report 1 */
	"g32_entry:\n"
	"	incl 0x13000\n"
	"	cmp $60, %eax\n"
	"	je 1f\n"
	"g32_sysexit_1:\n"
	"	sysexit\n"
	"1:	mov $1, %al\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	/* #GP: record error code and EIP, report 3; #UD: record EIP, report 2 */
	"g32_gp:\n"
	"	popl 0x13008\n"
	"	popl 0x1300c\n"
	"	mov $3, %al\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	"g32_ud:\n"
	"	popl 0x13010\n"
	"	mov $2, %al\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	/* CPL 0: the guest's own SYSENTER_CS = 0, then SYSENTER: its own #GP */
	"g32_own_cs_zero:\n"
	"	mov $0x174, %ecx\n"
	"	xor %eax, %eax\n"
	"	xor %edx, %edx\n"
	"	wrmsr\n"
	"g32_own_zero_sysenter:\n"
	"	sysenter\n"
	"	mov $1, %al\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	/* CPL 3: SYSEXIT (#GP at CPL 3 whatever SYSENTER_CS is); CLI (#GP(0), IOPL 0) */
	"g32_user_sysexit:\n"
	"	sysexit\n"
	"g32_user_cli:\n"
	"	cli\n"
	/* CPL 0: a selector beyond the GDT: #GP(0x1234) */
	"g32_bad_selector:\n"
	"	mov $0x1234, %ax\n"
	"g32_bad_selector_mov:\n"
	"	mov %ax, %ds\n"
	/*
	 * CPL 0: EFER.SVME on, VMSAVE (records the SYSENTER_CS it stored), VMLOAD of
	 * SYSENTER_CS 0x40 (records what RDMSR then reads), SYSENTER_CS 0x08 and
	 * EFER.SVME off again, then g32_kernel.
	 */
	"g32_vmload:\n"
	"	mov $0xc0000080, %ecx\n"
	"	rdmsr\n"
	"	or $0x1000, %eax\n"
	"	wrmsr\n"
	"	mov $0x14000, %eax\n"
	"	.byte 0x0f, 0x01, 0xdb\n"		/* vmsave */
	"	mov 0x14628, %ebx\n"			/* save.sysenter_cs */
	"	mov %ebx, 0x13014\n"
	"	movl $0x40, 0x14628\n"
	"	.byte 0x0f, 0x01, 0xda\n"		/* vmload */
	"	mov $0x174, %ecx\n"
	"	rdmsr\n"
	"	mov %eax, 0x13018\n"
	"	mov $8, %eax\n"
	"	xor %edx, %edx\n"
	"	wrmsr\n"
	"	mov $0xc0000080, %ecx\n"
	"	rdmsr\n"
	"	and $~0x1000, %eax\n"
	"	wrmsr\n"
	"	jmp g32_kernel\n"
	"g32_code_end:\n"
	"	.code64\n"
	"	.popsection\n");

/* Seconds a scenario may take: microseconds of guest code, but nested under TCG */
#define RUN_DEADLINE	30

static void on_alarm(int sig)
{
	(void)sig;
}

struct guest {
	int vm, vcpu, run_size;
	uint8_t *mem;
	struct kvm_run *run;
};

static void set_seg(struct kvm_segment *s, uint16_t sel, int code)
{
	*s = (struct kvm_segment){
		.selector = sel, .limit = 0xffffffff, .type = code ? 0xb : 0x3,
		.present = 1, .s = 1, .l = code, .db = !code, .g = 1,
	};
}

static void guest_close(struct guest *g)
{
	if (g->run && g->run != MAP_FAILED)
		munmap(g->run, g->run_size);
	if (g->vcpu >= 0)
		close(g->vcpu);
	if (g->vm >= 0)
		close(g->vm);
	if (g->mem && g->mem != MAP_FAILED)
		munmap(g->mem, 0x200000);
}

static uint64_t idt32_gate(uint32_t handler)
{
	return (handler & 0xffff) | 0x08ULL << 16 | 0x8eULL << 40 | (uint64_t)(handler >> 16) << 48;
}

static int guest_create(struct guest *g)
{
	struct kvm_userspace_memory_region slot = { .memory_size = 0x200000 };
	struct {
		struct kvm_cpuid2 c;
		struct kvm_cpuid_entry2 e[100];
	} cpuid = { .c.nent = 100 };
	uint64_t *q;
	size_t i;

	*g = (struct guest){ .vm = -1, .vcpu = -1 };
	g->mem = mmap(NULL, 0x200000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g->mem == MAP_FAILED)
		return fail("mmap guest memory: %s", strerror(errno));
	q = (uint64_t *)g->mem;
	q[0x1000 / 8] = 0x2000 | 7;
	q[0x2000 / 8] = 0x3000 | 7;
	q[0x3000 / 8] = 0x87;			/* 2 MiB page at 0: PS|US|RW|P */
	q[0x4000 / 8 + 1] = 0x00af9a000000ffffULL;	/* 0x08: 64-bit code */
	q[0x4000 / 8 + 2] = 0x00cf92000000ffffULL;	/* 0x10: data */
	q[0x5000 / 8 + 2 * 6] = (G_UD_HANDLER & 0xffff) | 0x08ULL << 16 | 0x8eULL << 40 |
				(uint64_t)(G_UD_HANDLER >> 16) << 48;
	for (i = 0; i < sizeof(guest_code) / sizeof(guest_code[0]); i++)
		memcpy(g->mem + guest_code[i].gpa, guest_code[i].bytes, guest_code[i].len);
	/* RSP0 of the TSS: a #UD at CPL 3 (a skipped SYSCALL) switches to this stack */
	memcpy(g->mem + 0x6004, &(uint64_t){ 0x1e8000 }, 8);
	/* the 32-bit guest */
	*(uint32_t *)(g->mem + G32_PD) = 0xe7;		/* 4 MiB page at 0: PS|D|A|US|RW|P */
	q[G32_GDT / 8 + 1] = 0x00cf9b000000ffffULL;	/* 0x08: kernel code */
	q[G32_GDT / 8 + 2] = 0x00cf93000000ffffULL;	/* 0x10: kernel data */
	q[G32_GDT / 8 + 3] = 0x00cffb000000ffffULL;	/* 0x18: user code */
	q[G32_GDT / 8 + 4] = 0x00cff3000000ffffULL;	/* 0x20: user data */
	q[G32_GDT / 8 + 5] = 0x00008b0000000067ULL |	/* 0x28: busy 32-bit TSS */
			     (uint64_t)(G32_TSS & 0xffffff) << 16;
	q[G32_IDT / 8 + 6] = idt32_gate(G32(g32_ud));
	q[G32_IDT / 8 + 13] = idt32_gate(G32(g32_gp));
	*(uint32_t *)(g->mem + G32_TSS + 4) = 0x1e0000;	/* esp0 */
	*(uint32_t *)(g->mem + G32_TSS + 8) = 0x10;	/* ss0 */
	memcpy(g->mem + G32_CODE, g32_code, g32_code_end - g32_code);
	slot.userspace_addr = (uintptr_t)g->mem;

	g->vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	EXPECT_OK(ioctl(g->vm, KVM_SET_USER_MEMORY_REGION, &slot));
	g->vcpu = EXPECT_OK(ioctl(g->vm, KVM_CREATE_VCPU, 0));
	EXPECT_OK(ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, &cpuid));
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_CPUID2, &cpuid));
	g->run_size = EXPECT_OK(ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0));
	g->run = mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, g->vcpu, 0);
	if (g->run == MAP_FAILED)
		return fail("mmap kvm_run: %s", strerror(errno));
	return 0;
}

/*
 * The one VM (with one vCPU) that every check running guest code uses, its data pages
 * zeroed: the emulated machine froze when checks created and destroyed many VMs.
 */
static struct guest the_guest = { .vm = -1, .vcpu = -1 };

static struct guest *guest(void)
{
	if (the_guest.vm < 0 && guest_create(&the_guest)) {
		guest_close(&the_guest);
		the_guest = (struct guest){ .vm = -1, .vcpu = -1 };
		return NULL;
	}
	memset(the_guest.mem + G_COUNTER, 0, 0x1000);
	memset(the_guest.mem + G32_COUNTER, 0, 0x1000);
	return &the_guest;
}

/* KVM_RUN until the guest reports on port 0x10; returns what it reported, or -1. */
static int guest_enter(struct guest *g)
{
	struct kvm_sregs sregs;

	/* a guest that never reports is a failure, not a hang: SIGALRM interrupts KVM_RUN */
	alarm(RUN_DEADLINE);
	errno = 0;
	if (ioctl(g->vcpu, KVM_RUN, 0) < 0) {
		int err = errno;
		struct kvm_regs r = {};

		alarm(0);
		ioctl(g->vcpu, KVM_GET_REGS, &r);
		ioctl(g->vcpu, KVM_GET_SREGS, &sregs);
		return fail("KVM_RUN: %s; rip %#llx cs %#x rax %#llx rcx %#llx efer %#llx",
			    strerror(err), r.rip, sregs.cs.selector, r.rax, r.rcx, sregs.efer);
	}
	alarm(0);
	if (g->run->exit_reason != KVM_EXIT_IO || g->run->io.port != 0x10)
		return fail("exit reason %u (port %#x), want OUT to 0x10",
			    g->run->exit_reason, g->run->io.port);
	return ((uint8_t *)g->run)[g->run->io.data_offset];
}

/* Nothing pending from an earlier scenario (an exception, an interrupt) */
static int guest_clear_events(struct guest *g)
{
	struct kvm_vcpu_events events = {};

	EXPECT_OK(ioctl(g->vcpu, KVM_SET_VCPU_EVENTS, &events));
	return 0;
}

/* Point the 64-bit guest at @rip (CPL 0), syscall MSRs set, without running it. */
static int guest_set64(struct guest *g, uint64_t rip)
{
	struct {
		struct kvm_msrs m;
		struct kvm_msr_entry e[3];
	} msrs = { .m.nmsrs = 3, .e = {
		{ .index = 0xc0000081, .data = G_STAR },
		{ .index = 0xc0000082, .data = G_LSTAR },
		{ .index = 0xc0000084, .data = 0x47700 },	/* FMASK: TF IF DF NT AC */
	} };
	struct kvm_regs regs = { .rip = rip, .rflags = 2, .rsp = 0x1f0000 };
	struct kvm_sregs sregs;

	EXPECT_OK(ioctl(g->vcpu, KVM_GET_SREGS, &sregs));
	sregs.cr0 = 0x80050033;		/* PG WP NE ET MP PE */
	sregs.cr3 = 0x1000;
	sregs.cr4 = 0x20;		/* PAE */
	sregs.efer = 0x501;		/* LMA LME SCE */
	set_seg(&sregs.cs, 0x08, 1);
	set_seg(&sregs.ds, 0x10, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = 0x4000;
	sregs.gdt.limit = 23;
	sregs.idt.base = 0x5000;
	sregs.idt.limit = 4095;
	sregs.tr = (struct kvm_segment){ .base = 0x6000, .limit = 0x67, .type = 0xb,
					 .present = 1 };
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_SREGS, &sregs));
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_REGS, &regs));
	EXPECT_EQ(ioctl(g->vcpu, KVM_SET_MSRS, &msrs), 3);
	return guest_clear_events(g);
}

/* Run the guest from @rip at CPL 0; returns what it reported on port 0x10, or -1. */
static int guest_run(struct guest *g, uint64_t rip)
{
	if (guest_set64(g, rip))
		return -1;
	return guest_enter(g);
}

static void set_seg32(struct kvm_segment *s, uint16_t sel, int code)
{
	*s = (struct kvm_segment){
		.selector = sel, .limit = 0xffffffff, .type = code ? 0xb : 0x3,
		.present = 1, .s = 1, .dpl = sel & 3, .db = 1, .g = 1,
	};
}

/* Point the 32-bit guest at @rip (CPL 3 if @user), SYSENTER MSRs set, without running it. */
static int guest_set32(struct guest *g, uint32_t rip, int user)
{
	struct {
		struct kvm_msrs m;
		struct kvm_msr_entry e[3];
	} msrs = { .m.nmsrs = 3, .e = {
		{ .index = 0x174, .data = G32_SYSENTER_CS },
		{ .index = 0x175, .data = G32_SYSENTER_SP },
		{ .index = 0x176, .data = G32(g32_entry) },
	} };
	struct kvm_regs regs = { .rip = rip, .rflags = 2, .rsp = user ? G32_USER_SP : 0x1e0000 };
	struct kvm_sregs sregs;

	EXPECT_OK(ioctl(g->vcpu, KVM_GET_SREGS, &sregs));
	sregs.cr0 = 0x80010031;		/* PG WP NE ET PE */
	sregs.cr3 = G32_PD;
	sregs.cr4 = 0x10;		/* PSE */
	sregs.efer = 0;
	set_seg32(&sregs.cs, user ? 0x1b : 0x08, 1);
	set_seg32(&sregs.ds, user ? 0x23 : 0x10, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = G32_GDT;
	sregs.gdt.limit = 6 * 8 - 1;
	sregs.idt.base = G32_IDT;
	sregs.idt.limit = 0x7ff;
	/*
	 * TR type 9 (32-bit TSS, available), not the busy 0xb that LTR leaves: QEMU's TCG
	 * keeps TR's cached type as available and aborts the whole emulated machine
	 * ("invalid tss type", get_ss_esp_from_tss()) on a CPL 3 -> 0 interrupt otherwise.
	 * AMD's VMRUN does not check TR's type.
	 */
	sregs.tr = (struct kvm_segment){ .selector = 0x28, .base = G32_TSS, .limit = 0x67,
					 .type = 0x9, .present = 1 };
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_SREGS, &sregs));
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_REGS, &regs));
	EXPECT_EQ(ioctl(g->vcpu, KVM_SET_MSRS, &msrs), 3);
	return guest_clear_events(g);
}

/* Run the 32-bit guest from @rip; returns what it reported on port 0x10, or -1. */
static int guest_run32(struct guest *g, uint32_t rip, int user)
{
	if (guest_set32(g, rip, user))
		return -1;
	return guest_enter(g);
}

/* The guest's own SYSENTER_CS as KVM_GET_MSRS shows it to the VMM. */
static int64_t guest_sysenter_cs(struct guest *g)
{
	struct {
		struct kvm_msrs m;
		struct kvm_msr_entry e[1];
	} msrs = { .m.nmsrs = 1, .e = { { .index = 0x174 } } };

	if (ioctl(g->vcpu, KVM_GET_MSRS, &msrs) != 1)
		return fail("KVM_GET_MSRS: %s", strerror(errno));
	return msrs.e[0].data;
}

/* The nitro fd of @g's VM with @traps armed and its ring mapped. */
static int arm(struct guest *g, uint32_t traps, uint32_t slots,
	       struct kvm_nitro_ring_header **ring, size_t *bytes)
{
	struct kvm_nitro_trap_config c = traps_req(traps, slots);
	long page = sysconf(_SC_PAGESIZE);
	int nitro = EXPECT_OK(attach_on_vm(g->vm));

	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	*bytes = page + ((slots * sizeof(struct kvm_nitro_event) + page - 1) & ~(page - 1));
	*ring = mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_SHARED, nitro, 0);
	if (*ring == MAP_FAILED)
		return fail("mmap ring: %s", strerror(errno));
	return nitro;
}

static struct kvm_nitro_event *slot(struct kvm_nitro_ring_header *ring, uint64_t i)
{
	return (void *)((uint8_t *)ring + ring->data_offset +
			(i & (ring->slot_count - 1)) * ring->slot_size);
}

/* Check event @i of the ring: its type, where it trapped and what it carried. */
static int expect_event(struct kvm_nitro_ring_header *ring, uint64_t i, uint64_t seq,
			uint16_t type, uint64_t rip, uint64_t rax)
{
	struct kvm_nitro_event *ev = slot(ring, i);

	EXPECT_EQ(ev->version, KVM_NITRO_ABI_VERSION);
	EXPECT_EQ(ev->size, sizeof(*ev));
	EXPECT_EQ(ev->seq, seq);
	EXPECT_EQ(ev->vcpu_id, 0);
	EXPECT_EQ(ev->type, type);
	EXPECT_EQ(ev->regs.rip, rip);
	EXPECT_EQ(ev->regs.rax, rax);
	EXPECT_EQ(ev->regs.efer & 0x501, 0x501);	/* the guest's own view: SCE set */
	EXPECT_EQ(ev->regs.cr3, 0x1000);
	EXPECT_EQ(ev->regs.lstar, G_LSTAR);
	EXPECT_EQ(ev->regs.star, G_STAR);
	EXPECT_EQ(ev->regs.sfmask, 0x47700);
	EXPECT_EQ(!!(ev->flags & KVM_NITRO_EVENT_F_LONG_MODE), 1);
	if (type == KVM_NITRO_EVENT_SYSCALL) {
		EXPECT_EQ(ev->regs.cs, 0x23);		/* CPL 3 */
		EXPECT_EQ(ev->regs.ss, 0x1b);
		EXPECT_EQ(ev->flags & KVM_NITRO_EVENT_F_REX_W, 0);
	} else {
		EXPECT_EQ(ev->regs.cs, 0x08);
		EXPECT_EQ(ev->flags & KVM_NITRO_EVENT_F_REX_W, KVM_NITRO_EVENT_F_REX_W);
	}
	return 0;
}

static int t_syscall_sysret_events(void)
{
	struct kvm_nitro_ring_header *ring;
	struct pollfd p = { .events = POLLIN };
	struct kvm_nitro_eventfd e = { .fd = -1 };
	struct kvm_sregs sregs;
	struct guest *g;
	uint64_t count = 0;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm(g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 4096, &ring, &bytes);
	if (nitro < 0)
		return -1;
	e.fd = EXPECT_OK(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_EVENTFD, &e));
	p.fd = nitro;
	EXPECT_EQ(poll(&p, 1, 0), 0);

	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 2);
	/* RDMSR showed the guest its own EFER; WRMSR of it did not re-enable SYSCALL */
	EXPECT_EQ(*(uint32_t *)(g->mem + G_EFER_SEEN), 0x501);	/* LMA LME SCE */
	EXPECT_OK(ioctl(g->vcpu, KVM_GET_SREGS, &sregs));
	EXPECT_EQ(sregs.efer & 1, 1);
	EXPECT_EQ(ring->producer, 4);
	EXPECT_EQ(ring->dropped, 0);
	if (expect_event(ring, 0, 0, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_0, 0x501) ||
	    expect_event(ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39) ||
	    expect_event(ring, 2, 2, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_1, 39) ||
	    expect_event(ring, 3, 3, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_60, 60))
		return -1;
	EXPECT_EQ(slot(ring, 0)->regs.rcx, G_USER);
	EXPECT_EQ(slot(ring, 1)->regs.rdi, 0x1111);
	EXPECT_EQ(slot(ring, 2)->regs.rcx, G_SYSCALL_39 + 2);
	if (slot(ring, 3)->timestamp_ns < slot(ring, 0)->timestamp_ns)
		return fail("timestamps go backwards");
	EXPECT_EQ(poll(&p, 1, 0), 1);
	EXPECT_EQ(read(e.fd, &count, sizeof(count)), sizeof(count));
	EXPECT_EQ(count, 1);	/* signalled once: when the ring went non-empty */
	ring->consumer = ring->producer;
	EXPECT_EQ(poll(&p, 1, 0), 0);
	munmap(ring, bytes);
	close(nitro);
	close(e.fd);
	return 0;
}

static int t_genuine_ud_reaches_guest(void)
{
	struct kvm_nitro_ring_header *ring;
	struct kvm_sregs sregs;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm(g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	EXPECT_EQ(guest_run(g, G_UD2), 2);
	/* a SYSCALL while the guest's own EFER.SCE is clear is the guest's #UD */
	EXPECT_EQ(guest_run(g, G_OWN_SCE_OFF), 2);
	EXPECT_OK(ioctl(g->vcpu, KVM_GET_SREGS, &sregs));
	EXPECT_EQ(sregs.efer & 1, 0);
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 0);
	EXPECT_EQ(ring->producer, 0);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

static int t_ring_overflow_counted(void)
{
	struct kvm_nitro_ring_header *ring;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm(g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 2, &ring, &bytes);
	if (nitro < 0)
		return -1;
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 2);	/* every instruction completed */
	EXPECT_EQ(ring->producer, 2);
	EXPECT_EQ(ring->dropped, 2);
	if (expect_event(ring, 0, 0, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_0, 0x501) ||
	    expect_event(ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39))
		return -1;
	/* the reader frees the slots: the next events land with their seq showing the gap */
	ring->consumer = 2;
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(ring->producer, 4);
	EXPECT_EQ(ring->dropped, 4);
	EXPECT_EQ(slot(ring, 2)->seq, 4);
	EXPECT_EQ(slot(ring, 3)->seq, 5);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

static int t_syscall_filter(void)
{
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 64);
	struct kvm_nitro_ring_header *ring;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm(g, c.traps, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	c.flags = KVM_NITRO_FILTER_ENABLE;
	c.syscall_filter[0] = 1ULL << 39;
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 2);
	/* syscall 60 filtered out; returns are not filtered (rax is the result there) */
	EXPECT_EQ(ring->producer, 3);
	if (expect_event(ring, 0, 0, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_0, 0x501) ||
	    expect_event(ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39) ||
	    expect_event(ring, 2, 2, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_1, 39))
		return -1;
	/* SYSCALL only: SYSRET still completes (SCE is off for both) without an event */
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 64);
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	ring->consumer = ring->producer;
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(ring->producer, 5);
	if (expect_event(ring, 3, 3, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39) ||
	    expect_event(ring, 4, 4, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_60, 60))
		return -1;
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/* The 64-bit scenario (SYSRETQ, SYSCALL 39, SYSRETQ, SYSCALL 60); 1 when it completed. */
static int scenario64(struct guest *g)
{
	return guest_run(g, G_KERNEL);
}

/* The 32-bit scenario (SYSEXIT, SYSENTER 39, SYSEXIT, SYSENTER 60); 1 when it completed. */
static int scenario32(struct guest *g)
{
	return guest_run32(g, G32(g32_kernel), 0);
}

/*
 * The tracer (a child holding the VMM's VM fd from pidfd_getfd) arms @traps, the guest
 * runs @scenario trapped (4 events), the tracer goes: the guest must run on with its
 * own EFER.SCE and SYSENTER_CS (SYSRET natively: KVM's emulator has no SYSRET, a
 * leftover trap would give it #UD; SYSENTER_CS 0 left in the VMCB would give #GP).
 * @kill: SIGKILL; otherwise the tracer closes its fd and exits.
 */
static int tracer_dies(int kill_it, uint32_t traps, int (*scenario)(struct guest *))
{
	int armed[2], ran[2], status, vm_number;
	uint64_t produced = 0;
	struct guest *g;
	pid_t child;

	if (!(g = guest()) || pipe(armed) || pipe(ran))
		return fail("set-up: %s", strerror(errno));
	vm_number = g->vm;
	child = fork();
	if (child < 0)
		return fail("fork: %s", strerror(errno));
	if (child == 0) {
		struct kvm_nitro_ring_header *ring;
		int pidfd = pidfd_open(getppid()), vm, nitro;
		struct kvm_nitro_trap_config c = traps_req(traps, 64);
		char byte;

		vm = pidfd_getfd(pidfd, vm_number);
		nitro = attach_on_vm(vm);
		if (nitro < 0 || ioctl(nitro, KVM_NITRO_SET_TRAPS, &c))
			_exit(1);
		ring = mmap(NULL, 4096, PROT_READ, MAP_SHARED, nitro, 0);
		if (ring == MAP_FAILED || write(armed[1], "a", 1) != 1 ||
		    read(ran[0], &byte, 1) != 1)
			_exit(2);
		produced = ring->producer;
		if (write(armed[1], &produced, sizeof(produced)) != sizeof(produced))
			_exit(3);
		if (!kill_it)
			_exit(0);
		for (;;)
			pause();
	}
	char byte;

	if (read(armed[0], &byte, 1) != 1)
		return fail("the tracer did not arm");
	EXPECT_EQ(scenario(g), 1);
	if (write(ran[1], "r", 1) != 1 ||
	    read(armed[0], &produced, sizeof(produced)) != sizeof(produced))
		return fail("the tracer vanished");
	EXPECT_EQ(produced, 4);
	if (kill_it)
		kill(child, SIGKILL);
	if (waitpid(child, &status, 0) != child)
		return fail("waitpid");
	if (kill_it ? !WIFSIGNALED(status) : !WIFEXITED(status) || WEXITSTATUS(status))
		return fail("tracer status %#x", status);
	EXPECT_EQ(scenario(g), 1);
	if (scenario == scenario32)
		EXPECT_EQ(*(uint32_t *)(g->mem + G32_COUNTER), 4);
	else
		EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 4);
	/* and the VM can be traced again */
	close(EXPECT_OK(attach_on_vm(g->vm)));
	return 0;
}

static int t_tracer_exit_restores_guest(void)
{
	return tracer_dies(0, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, scenario64);
}

static int t_tracer_sigkill_restores_guest(void)
{
	return tracer_dies(1, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, scenario64);
}

/* ---------------------------------------------------- SYSENTER / SYSEXIT */

/* Check 32-bit event @i of the ring: its type, where it trapped and what it carried. */
static int expect_event32(struct kvm_nitro_ring_header *ring, uint64_t i, uint64_t seq,
			  uint16_t type, uint32_t rip, uint64_t rax, uint32_t rdx)
{
	struct kvm_nitro_event *ev = slot(ring, i);
	int user = type == KVM_NITRO_EVENT_SYSENTER;

	EXPECT_EQ(ev->version, KVM_NITRO_ABI_VERSION);
	EXPECT_EQ(ev->size, sizeof(*ev));
	EXPECT_EQ(ev->seq, seq);
	EXPECT_EQ(ev->vcpu_id, 0);
	EXPECT_EQ(ev->type, type);
	EXPECT_EQ(ev->flags & ~KVM_NITRO_EVENT_F_SYNC, 0);	/* legacy mode, no REX.W */
	EXPECT_EQ(ev->regs.rip, rip);
	EXPECT_EQ(ev->regs.rax, rax);
	EXPECT_EQ(ev->regs.rdx, rdx);
	EXPECT_EQ(ev->regs.rcx, G32_USER_SP);
	EXPECT_EQ(ev->regs.cs, user ? 0x1b : 0x08);
	EXPECT_EQ(ev->regs.ss, user ? 0x23 : 0x10);
	EXPECT_EQ(ev->regs.cr3, G32_PD);
	EXPECT_EQ(ev->regs.efer, 0);
	/* the guest's own SYSENTER MSRs, not the 0 the VMCB runs with */
	EXPECT_EQ(ev->regs.sysenter_cs, G32_SYSENTER_CS);
	EXPECT_EQ(ev->regs.sysenter_eip, G32(g32_entry));
	EXPECT_EQ(ev->regs.sysenter_esp, G32_SYSENTER_SP);
	return 0;
}

/* The events of one scenario32 run from ring slot @i (seq @seq) on; @filtered: no 60. */
static int expect_scenario32(struct kvm_nitro_ring_header *ring, uint64_t i, uint64_t seq,
			     int filtered)
{
	if (expect_event32(ring, i, seq, KVM_NITRO_EVENT_SYSEXIT, G32(g32_sysexit_0),
			   G32_SYSENTER_CS, G32(g32_user)) ||
	    expect_event32(ring, i + 1, seq + 1, KVM_NITRO_EVENT_SYSENTER,
			   G32(g32_sysenter_39), 39, G32(g32_user_1)) ||
	    expect_event32(ring, i + 2, seq + 2, KVM_NITRO_EVENT_SYSEXIT, G32(g32_sysexit_1),
			   39, G32(g32_user_1)))
		return -1;
	if (filtered)
		return 0;
	return expect_event32(ring, i + 3, seq + 3, KVM_NITRO_EVENT_SYSENTER,
			      G32(g32_sysenter_60), 60, G32(g32_user_2));
}

static int t_sysenter_sysexit_events(void)
{
	struct kvm_nitro_ring_header *ring;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm(g, KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_COUNTER), 2);
	EXPECT_EQ(ring->producer, 4);
	EXPECT_EQ(ring->dropped, 0);
	if (expect_scenario32(ring, 0, 0, 0))
		return -1;
	EXPECT_EQ(slot(ring, 1)->regs.rdi, 0x1111);
	/* RDMSR showed the guest its own SYSENTER_CS, WRMSR of it kept the trap; so does KVM_GET_MSRS */
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_CS_SEEN), G32_SYSENTER_CS);
	EXPECT_EQ(guest_sysenter_cs(g), G32_SYSENTER_CS);
	/* a second run: the same again */
	ring->consumer = ring->producer;
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(ring->producer, 8);
	if (expect_scenario32(ring, 4, 4, 0))
		return -1;
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

static int t_sysenter_filter(void)
{
	struct kvm_nitro_trap_config c =
		traps_req(KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT, 64);
	struct kvm_nitro_ring_header *ring;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm(g, c.traps, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	c.flags = KVM_NITRO_FILTER_ENABLE;
	c.syscall_filter[0] = 1ULL << 39;
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_COUNTER), 2);
	/* SYSENTER 60 filtered out (still completed); SYSEXIT is not filtered */
	EXPECT_EQ(ring->producer, 3);
	if (expect_scenario32(ring, 0, 0, 1))
		return -1;
	/* SYSENTER only: SYSEXIT still completes (SYSENTER_CS is hidden for both) */
	c = traps_req(KVM_NITRO_TRAP_SYSENTER, 64);
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	ring->consumer = ring->producer;
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(ring->producer, 5);
	EXPECT_EQ(slot(ring, 3)->type, KVM_NITRO_EVENT_SYSENTER);
	EXPECT_EQ(slot(ring, 4)->type, KVM_NITRO_EVENT_SYSENTER);
	EXPECT_EQ(slot(ring, 4)->regs.rax, 60);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/* Run a scenario that must end in the guest's own #GP; check error code and EIP. */
static int expect_gp32(struct guest *g, uint32_t rip, int user, uint32_t err, uint32_t at)
{
	*(uint32_t *)(g->mem + G32_GP_ERR) = 0xdead;
	*(uint32_t *)(g->mem + G32_GP_EIP) = 0;
	EXPECT_EQ(guest_run32(g, rip, user), 3);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_GP_ERR), err);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_GP_EIP), at);
	return 0;
}

static int t_genuine_gp_reaches_guest(void)
{
	struct kvm_nitro_ring_header *ring;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm(g, KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	/* SYSENTER with the guest's own SYSENTER_CS = 0 */
	if (expect_gp32(g, G32(g32_own_cs_zero), 0, 0, G32(g32_own_zero_sysenter)))
		return -1;
	EXPECT_EQ(guest_sysenter_cs(g), 0);
	/* SYSEXIT at CPL 3, a #GP(0) that is no SYSENTER/SYSEXIT, a #GP with an error code */
	if (expect_gp32(g, G32(g32_user_sysexit), 1, 0, G32(g32_user_sysexit)) ||
	    expect_gp32(g, G32(g32_user_cli), 1, 0, G32(g32_user_cli)) ||
	    expect_gp32(g, G32(g32_bad_selector), 0, 0x1234, G32(g32_bad_selector_mov)))
		return -1;
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_COUNTER), 0);
	EXPECT_EQ(ring->producer, 0);
	/* and the traps still work */
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(ring->producer, 4);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/*
 * VMLOAD/VMSAVE (emulated for the guest, which may run its own nested guests) load and
 * store the guest's own SYSENTER_CS, not the hidden 0, and keep the trap; EFER.SVME
 * going off (KVM then drops its own #GP intercept) keeps it too.
 */
static int t_vmload_vmsave_keep_sysenter_trap(void)
{
	struct kvm_nitro_ring_header *ring;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm(g, KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	EXPECT_EQ(guest_run32(g, G32(g32_vmload), 0), 1);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_VMSAVE_SEEN), G32_SYSENTER_CS);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_VMLOAD_SEEN), 0x40);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_COUNTER), 2);
	EXPECT_EQ(ring->producer, 4);
	if (expect_scenario32(ring, 0, 0, 0))
		return -1;
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/* Without a tracer SYSENTER/SYSEXIT run natively: no #GP, the guest's own SYSENTER_CS */
static int t_sysenter_release_restores_guest(void)
{
	struct kvm_nitro_trap_config c;
	struct kvm_nitro_ring_header *ring;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	EXPECT_EQ(scenario32(g), 1);
	nitro = arm(g, KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(ring->producer, 4);
	/* traps = 0 releases them with the fd still open */
	c = traps_req(0, 64);
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(ring->producer, 4);
	c = traps_req(KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT, 64);
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(ring->producer, 8);
	/* close: released */
	munmap(ring, bytes);
	close(nitro);
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_COUNTER), 10);
	EXPECT_EQ(guest_sysenter_cs(g), G32_SYSENTER_CS);
	return 0;
}

static int t_sysenter_tracer_exit_restores_guest(void)
{
	return tracer_dies(0, KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT, scenario32);
}

static int t_sysenter_tracer_sigkill_restores_guest(void)
{
	return tracer_dies(1, KVM_NITRO_TRAP_ALL, scenario32);
}

/* ------------------------------------------------- synchronous delivery */

/*
 * The vCPU runs in a thread of its own (KVM_RUN blocks while it waits for a verdict);
 * this thread is the tracer.  A runner does one KVM_RUN.
 */
struct runner {
	pthread_t thread;
	struct guest *g;
	int done;		/* eventfd: KVM_RUN returned */
	pid_t tid;
	int ret, err;		/* what it returned, errno */
};

static void *runner_main(void *arg)
{
	struct runner *r = arg;

	r->tid = gettid();
	errno = 0;
	r->ret = ioctl(r->g->vcpu, KVM_RUN, 0);
	r->err = errno;
	eventfd_write(r->done, 1);
	return NULL;
}

static int runner_start(struct runner *r, struct guest *g)
{
	*r = (struct runner){ .g = g, .tid = -1 };
	r->done = eventfd(0, EFD_CLOEXEC);
	if (r->done < 0 || pthread_create(&r->thread, NULL, runner_main, r))
		return fail("runner: %s", strerror(errno));
	return 0;
}

/* Wait up to RUN_DEADLINE s for KVM_RUN to return; a runner that does not is interrupted. */
static int runner_join(struct runner *r)
{
	struct pollfd p = { .fd = r->done, .events = POLLIN };
	int ready = poll(&p, 1, RUN_DEADLINE * 1000);

	if (ready != 1)
		pthread_kill(r->thread, SIGUSR1);
	pthread_join(r->thread, NULL);
	close(r->done);
	if (ready != 1)
		return fail("KVM_RUN did not return within %d s", RUN_DEADLINE);
	return 0;
}

/* Join the runner; what the guest reported on port 0x10, or -1 (KVM_RUN failed). */
static int runner_result(struct runner *r)
{
	if (runner_join(r))
		return -1;
	if (r->ret < 0)
		return fail("KVM_RUN: %s", strerror(r->err));
	if (r->g->run->exit_reason != KVM_EXIT_IO || r->g->run->io.port != 0x10)
		return fail("exit reason %u, want OUT to 0x10", r->g->run->exit_reason);
	return ((uint8_t *)r->g->run)[r->g->run->io.data_offset];
}

/* Whether the runner's KVM_RUN sleeps waiting for a verdict (its wchan). */
static int runner_waits(struct runner *r)
{
	char path[64], wchan[64] = "";
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", r->tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, wchan, sizeof(wchan) - 1);
	close(fd);
	return n > 0 && !strncmp(wchan, "nitro_sync_wait", 15);
}

/* Wait until the vCPU sleeps for a verdict with @produced events in the ring. */
static int expect_waiting(struct runner *r, struct kvm_nitro_ring_header *ring,
			  uint64_t produced)
{
	int ms;

	for (ms = 0; ms < RUN_DEADLINE * 1000; ms++) {
		if (__atomic_load_n(&ring->producer, __ATOMIC_ACQUIRE) >= produced &&
		    runner_waits(r))
			break;
		usleep(1000);
	}
	EXPECT_EQ(ring->producer, produced);
	if (!runner_waits(r))
		return fail("the vCPU does not wait for a verdict (event %llu)",
			    (unsigned long long)produced - 1);
	EXPECT_EQ(slot(ring, produced - 1)->flags & KVM_NITRO_EVENT_F_SYNC,
		  KVM_NITRO_EVENT_F_SYNC);
	return 0;
}

static int cont(int nitro, uint64_t seq, uint32_t flags)
{
	struct kvm_nitro_continue c = { .seq = seq, .flags = flags };

	return ioctl(nitro, KVM_NITRO_CONTINUE, &c);
}

/* Arm @traps with synchronous delivery. */
static int arm_sync(struct guest *g, uint32_t traps, uint32_t slots,
		    struct kvm_nitro_ring_header **ring, size_t *bytes)
{
	struct kvm_nitro_trap_config c = traps_req(traps, slots);
	int nitro = arm(g, traps, slots, ring, bytes);

	if (nitro < 0)
		return -1;
	c.delivery = KVM_NITRO_DELIVERY_SYNC;
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	return nitro;
}

static int t_sync_waits_for_continue(void)
{
	struct kvm_nitro_trap_config c =
		traps_req(KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 64);
	struct kvm_nitro_continue bad = { .seq = 0, .reserved[1] = 1 };
	struct kvm_nitro_ring_header *ring;
	struct runner r;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	EXPECT_ERRNO(cont(-1, 0, 0), EBADF);
	nitro = arm_sync(g, KVM_NITRO_TRAP_SYSCALL, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	/* nothing waits yet */
	EXPECT_ERRNO(cont(nitro, 0, 0), ENOENT);
	if (guest_set64(g, G_KERNEL) || runner_start(&r, g))
		return -1;
	/* SYSRETQ completes without an event; SYSCALL 39 waits, the guest's kernel not reached */
	if (expect_waiting(&r, ring, 1) ||
	    expect_event(ring, 0, 0, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39))
		return -1;
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 0);
	EXPECT_ERRNO(cont(nitro, 1, 0), ENOENT);
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_CONTINUE,
			   &(struct kvm_nitro_continue){ .seq = 0, .vcpu_id = 1 }), ENOENT);
	EXPECT_ERRNO(cont(nitro, 0, 2), EINVAL);
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_CONTINUE, &bad), EINVAL);
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 0);
	EXPECT_OK(cont(nitro, 0, 0));
	EXPECT_ERRNO(cont(nitro, 0, 0), ENOENT);
	/* SYSCALL 60 waits: 39 was handled */
	if (expect_waiting(&r, ring, 2) ||
	    expect_event(ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_60, 60))
		return -1;
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 1);
	EXPECT_OK(cont(nitro, 1, 0));
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 2);
	EXPECT_EQ(ring->producer, 2);
	EXPECT_EQ(ring->dropped, 0);
	/* asynchronous again: every event, nobody waits */
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(ring->producer, 6);
	if (expect_event(ring, 2, 2, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_0, 0x501))
		return -1;
	EXPECT_EQ(slot(ring, 2)->flags & KVM_NITRO_EVENT_F_SYNC, 0);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/* SKIP: the instruction is not completed, the guest gets the #UD it raised. */
static int t_sync_skip_delivers_ud(void)
{
	struct kvm_nitro_ring_header *ring;
	struct runner r;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm_sync(g, KVM_NITRO_TRAP_SYSCALL, 64, &ring, &bytes);
	if (nitro < 0 || guest_set64(g, G_KERNEL) || runner_start(&r, g))
		return -1;
	if (expect_waiting(&r, ring, 1))
		return -1;
	EXPECT_OK(cont(nitro, 0, KVM_NITRO_CONTINUE_F_SKIP));
	EXPECT_EQ(runner_result(&r), 2);	/* the guest's #UD handler */
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 0);
	EXPECT_EQ(ring->producer, 1);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/* SKIP of a SYSENTER: the guest gets a #GP(0) at the SYSENTER. */
static int t_sync_skip_delivers_gp(void)
{
	struct kvm_nitro_ring_header *ring;
	struct runner r;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm_sync(g, KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT, 64, &ring, &bytes);
	if (nitro < 0 || guest_set32(g, G32(g32_kernel), 0) || runner_start(&r, g))
		return -1;
	/* SYSEXIT continued, SYSENTER 39 skipped */
	if (expect_waiting(&r, ring, 1))
		return -1;
	EXPECT_OK(cont(nitro, 0, 0));
	if (expect_waiting(&r, ring, 2))
		return -1;
	if (expect_event32(ring, 0, 0, KVM_NITRO_EVENT_SYSEXIT, G32(g32_sysexit_0),
			   G32_SYSENTER_CS, G32(g32_user)) ||
	    expect_event32(ring, 1, 1, KVM_NITRO_EVENT_SYSENTER, G32(g32_sysenter_39), 39,
			   G32(g32_user_1)))
		return -1;
	EXPECT_OK(cont(nitro, 1, KVM_NITRO_CONTINUE_F_SKIP));
	EXPECT_EQ(runner_result(&r), 3);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_GP_ERR), 0);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_GP_EIP), G32(g32_sysenter_39));
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_COUNTER), 0);
	EXPECT_EQ(ring->producer, 2);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/*
 * A signal to the waiting vCPU thread: KVM_RUN returns EINTR (KVM_EXIT_INTR) with the
 * instruction not completed; KVM_RUN again waits for the same event (no duplicate).
 * CONTINUE while the vCPU is out of KVM_RUN applies when it comes back.
 */
static int t_sync_signal_interrupts_wait(void)
{
	struct kvm_nitro_ring_header *ring;
	struct kvm_regs regs;
	struct runner r;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm_sync(g, KVM_NITRO_TRAP_SYSCALL, 64, &ring, &bytes);
	if (nitro < 0 || guest_set64(g, G_KERNEL) || runner_start(&r, g))
		return -1;
	if (expect_waiting(&r, ring, 1))
		return -1;
	pthread_kill(r.thread, SIGUSR1);
	if (runner_join(&r))
		return -1;
	if (r.ret != -1 || r.err != EINTR)
		return fail("KVM_RUN returned %d (%s), want EINTR", r.ret, strerror(r.err));
	EXPECT_EQ(g->run->exit_reason, KVM_EXIT_INTR);
	EXPECT_OK(ioctl(g->vcpu, KVM_GET_REGS, &regs));
	EXPECT_EQ(regs.rip, G_SYSCALL_39);	/* not completed */
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 0);
	/* again: waits for event 0, no new event */
	if (runner_start(&r, g) || expect_waiting(&r, ring, 1))
		return -1;
	/* once more out, continued meanwhile: the next KVM_RUN completes it */
	pthread_kill(r.thread, SIGUSR1);
	if (runner_join(&r))
		return -1;
	EXPECT_EQ(r.err, EINTR);
	EXPECT_OK(cont(nitro, 0, 0));
	if (runner_start(&r, g) || expect_waiting(&r, ring, 2) ||
	    expect_event(ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_60, 60))
		return -1;
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 1);
	EXPECT_OK(cont(nitro, 1, 0));
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 2);
	EXPECT_EQ(ring->producer, 2);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/* Closing the nitro fd (and its mapping) while a vCPU waits: it completes, the guest runs on. */
static int t_sync_close_releases_vcpu(void)
{
	struct kvm_nitro_ring_header *ring;
	struct runner r;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm_sync(g, KVM_NITRO_TRAP_ALL, 64, &ring, &bytes);
	if (nitro < 0 || guest_set64(g, G_KERNEL) || runner_start(&r, g))
		return -1;
	if (expect_waiting(&r, ring, 1))
		return -1;
	EXPECT_OK(cont(nitro, 0, 0));
	if (expect_waiting(&r, ring, 2))
		return -1;
	munmap(ring, bytes);
	close(nitro);
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 2);
	/* and the VM can be traced again */
	close(EXPECT_OK(attach_on_vm(g->vm)));
	return 0;
}

/* Asynchronous delivery (or traps = 0) set while a vCPU waits: it completes. */
static int t_sync_switch_to_async_releases_vcpu(void)
{
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSENTER, 64);
	struct kvm_nitro_ring_header *ring;
	struct runner r;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm_sync(g, KVM_NITRO_TRAP_SYSENTER, 64, &ring, &bytes);
	if (nitro < 0 || guest_set32(g, G32(g32_kernel), 0) || runner_start(&r, g))
		return -1;
	if (expect_waiting(&r, ring, 1))
		return -1;
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_COUNTER), 2);
	EXPECT_EQ(ring->producer, 2);
	EXPECT_EQ(slot(ring, 1)->flags & KVM_NITRO_EVENT_F_SYNC, 0);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/*
 * A full ring in synchronous mode drops the event (counted) and the vCPU does not wait
 * for a verdict on an event the tracer cannot see: the instruction completes.
 */
static int t_sync_ring_full_completes(void)
{
	struct kvm_nitro_ring_header *ring;
	struct runner r;
	struct guest *g;
	size_t bytes;
	int nitro;

	if (!(g = guest()))
		return -1;
	nitro = arm_sync(g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 2, &ring, &bytes);
	if (nitro < 0 || guest_set64(g, G_KERNEL) || runner_start(&r, g))
		return -1;
	if (expect_waiting(&r, ring, 1))
		return -1;
	EXPECT_OK(cont(nitro, 0, 0));
	if (expect_waiting(&r, ring, 2))
		return -1;
	/* the tracer does not consume: SYSRETQ and SYSCALL 60 find the ring full */
	EXPECT_OK(cont(nitro, 1, 0));
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(*(uint64_t *)(g->mem + G_COUNTER), 2);
	EXPECT_EQ(ring->producer, 2);
	EXPECT_EQ(ring->dropped, 2);
	EXPECT_ERRNO(cont(nitro, 2, 0), ENOENT);
	EXPECT_ERRNO(cont(nitro, 3, 0), ENOENT);
	munmap(ring, bytes);
	close(nitro);
	return 0;
}

/* The tracer process SIGKILLed while a vCPU waits for its verdict: the guest runs on. */
static int t_sync_tracer_sigkill_releases_vcpu(void)
{
	int armed[2], status, vm_number;
	struct runner r;
	struct guest *g;
	pid_t child;
	char byte;

	if (!(g = guest()) || pipe(armed))
		return fail("set-up: %s", strerror(errno));
	vm_number = g->vm;
	child = fork();
	if (child < 0)
		return fail("fork: %s", strerror(errno));
	if (child == 0) {
		int pidfd = pidfd_open(getppid()), vm, nitro;
		struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_ALL, 64);

		c.delivery = KVM_NITRO_DELIVERY_SYNC;
		vm = pidfd_getfd(pidfd, vm_number);
		nitro = attach_on_vm(vm);
		if (nitro < 0 || ioctl(nitro, KVM_NITRO_SET_TRAPS, &c) ||
		    mmap(NULL, 4096, PROT_READ, MAP_SHARED, nitro, 0) == MAP_FAILED ||
		    write(armed[1], "a", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	if (read(armed[0], &byte, 1) != 1)
		return fail("the tracer did not arm");
	close(armed[0]);
	close(armed[1]);
	if (guest_set32(g, G32(g32_kernel), 0) || runner_start(&r, g))
		return -1;
	/* no ring here: wait for the vCPU to sleep */
	for (int ms = 0; ms < RUN_DEADLINE * 1000 && !runner_waits(&r); ms++)
		usleep(1000);
	if (!runner_waits(&r))
		return fail("the vCPU does not wait for a verdict");
	kill(child, SIGKILL);
	if (waitpid(child, &status, 0) != child || !WIFSIGNALED(status))
		return fail("tracer status %#x", status);
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(*(uint32_t *)(g->mem + G32_COUNTER), 2);
	EXPECT_EQ(guest_sysenter_cs(g), G32_SYSENTER_CS);
	return 0;
}

/* ---------------------------------- SYSCALL completed as the hardware does */

/*
 * A trapped SYSCALL, completed by the kernel, must leave the guest where a native SYSCALL
 * does: RCX, R11, RFLAGS (FMASK applied, RF clear), CS and SS at the entry point, and the
 * single-step #DB after the instruction when TF survives FMASK.  Each scenario runs
 * natively (no trap: the emulated CPU executes it) and trapped; both must agree with each
 * other and with the architecture.  The kernel code SYSRETs to user code (SYSRETQ to
 * 64-bit, SYSRETL to compatibility mode) that loads RFLAGS with POPF and executes
 * SYSCALL; the entry point records what it got and reports 1, the #DB handler reports 4.
 * CSTAR is a high address (guest-physical 0 is mapped at GS_HIGH too): compatibility-mode
 * SYSCALL lands on all 64 bits of it.  Legacy mode uses the 32-bit guest with EFER.SCE
 * set, entering the user code at CPL 3 directly.
 */
#define GS_CODE		0x30000		/* the code below */
#define GS_SEEN		0x7100		/* the entry point's rcx, r11, rflags, cs, ss */
#define GS_DB		0x7120		/* the #DB handler's frame rip, cs, rflags, and dr6 */
#define GS_HIGH		0xffffffff80000000ULL
#define GS(l)		(GS_CODE + (uint64_t)((l) - gs_code))
/* user RFLAGS loaded by POPF: CF ZF TF DF OF NT AC (IF is not the user's to set) */
#define GS_UFLAGS	0x44d43ULL
#define GS_FMASK	0x47700ULL	/* TF IF DF IOPL NT AC, as guest_set64() */
#define GS_KERNEL_GS_BASE 0xffff888012345000ULL

extern const uint8_t gs_code[], gs_code_end[], gs_sysretq[], gs_sysretl[], gs_user64[],
	gs_syscall64[], gs_user32[], gs_syscall32[], gs_entry[], gs_db[], gs_user_legacy[],
	gs_syscall_legacy[], gs_entry_legacy[];

__asm__(
	"	.pushsection .rodata\n"
	"	.code64\n"
	"gs_code:\n"
	"gs_sysretq:\n"				/* CPL 0: rcx = user code, r11 = 2 */
	"	sysretq\n"
	"gs_sysretl:\n"
	"	sysretl\n"
	"gs_user64:\n"				/* CPL 3, 64-bit: rbx = RFLAGS to load */
	"	push %rbx\n"
	"	popfq\n"
	"gs_syscall64:\n"
	"	syscall\n"
	"	hlt\n"
	"gs_entry:\n"				/* LSTAR, and CSTAR at GS_HIGH + this */
	"	mov %rcx, 0x7100\n"
	"	mov %r11, 0x7108\n"
	"	pushfq\n"
	"	popq 0x7110\n"
	"	mov %cs, 0x7118\n"
	"	mov %ss, 0x711a\n"
	"	mov $1, %al\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	"gs_db:\n"				/* #DB: the trap frame and DR6 */
	"	popq 0x7120\n"
	"	popq 0x7128\n"
	"	popq 0x7130\n"
	"	mov %dr6, %rax\n"
	"	mov %rax, 0x7138\n"
	"	mov $4, %al\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	"	.code32\n"
	"gs_user32:\n"				/* CPL 3, compatibility mode: ebx = EFLAGS */
	"	push %ebx\n"
	"	popf\n"
	"gs_syscall32:\n"
	"	syscall\n"
	"	hlt\n"
	"gs_user_legacy:\n"			/* CPL 3, legacy mode: ebx = EFLAGS */
	"	push %ebx\n"
	"	popf\n"
	"gs_syscall_legacy:\n"
	"	syscall\n"
	"	hlt\n"
	"gs_entry_legacy:\n"			/* STAR[31:0] */
	"	mov %ecx, 0x7100\n"
	"	pushf\n"
	"	popl 0x7110\n"
	"	mov %cs, 0x7118\n"
	"	mov %ss, 0x711a\n"
	"	mov $1, %al\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	"gs_code_end:\n"
	"	.code64\n"
	"	.popsection\n");

enum { GS_LONG, GS_COMPAT, GS_LEGACY };

/* What one SYSCALL scenario left behind. */
struct gs_result {
	int report;			/* 1: the entry point ran, 4: #DB */
	uint64_t rcx, r11;		/* KVM_GET_REGS at the report */
	uint64_t seen[4];		/* GS_SEEN: rcx, r11, rflags, cs | ss << 16 */
	uint64_t db[4];			/* GS_DB: rip, cs, rflags, dr6 */
};

/* Code, #DB gate and the high mapping for the scenarios (the shared guest lacks them). */
static void gs_prepare(struct guest *g)
{
	uint64_t *q = (uint64_t *)g->mem, h = GS(gs_db);

	memcpy(g->mem + GS_CODE, gs_code, gs_code_end - gs_code);
	q[0x5000 / 8 + 2] = (h & 0xffff) | 0x08ULL << 16 | 0x8eULL << 40 | (h >> 16 & 0xffff) << 48;
	q[0x5000 / 8 + 3] = h >> 32;
	q[0x1000 / 8 + 511] = 0x2000 | 7;	/* GS_HIGH: PML4[511] -> PDPT[510] -> the PD */
	q[0x2000 / 8 + 510] = 0x3000 | 7;
	memset(g->mem + GS_SEEN, 0, 0x40);
}

/*
 * Run scenario @mode with FMASK @fmask and user RFLAGS @uflags; @trapped: with SYSCALL
 * trapped (one event expected, at the SYSCALL).
 */
static int gs_run(struct guest *g, int mode, uint64_t fmask, uint64_t uflags, int trapped,
		  struct gs_result *res)
{
	struct {
		struct kvm_msrs m;
		struct kvm_msr_entry e[4];
	} msrs = { .m.nmsrs = 4, .e = {
		{ .index = 0xc0000082, .data = GS(gs_entry) },			/* LSTAR */
		{ .index = 0xc0000083, .data = GS_HIGH + GS(gs_entry) },	/* CSTAR */
		{ .index = 0xc0000084, .data = fmask },
		{ .index = 0xc0000102, .data = GS_KERNEL_GS_BASE },
	} };
	uint64_t insn = mode == GS_LONG ? GS(gs_syscall64) :
			mode == GS_COMPAT ? GS(gs_syscall32) : GS(gs_syscall_legacy);
	struct kvm_nitro_ring_header *ring = NULL;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	size_t bytes = 0;
	int nitro = -1;

	gs_prepare(g);
	if (trapped && (nitro = arm(g, KVM_NITRO_TRAP_SYSCALL, 64, &ring, &bytes)) < 0)
		return -1;
	if (mode == GS_LEGACY) {
		struct {
			struct kvm_msrs m;
			struct kvm_msr_entry e[1];
		} star = { .m.nmsrs = 1, .e = { { .index = 0xc0000081,
			.data = 0x08ULL << 32 | GS(gs_entry_legacy) } } };

		if (guest_set32(g, GS(gs_user_legacy), 1))
			return -1;
		EXPECT_OK(ioctl(g->vcpu, KVM_GET_SREGS, &sregs));
		sregs.efer = 1;				/* SCE */
		EXPECT_OK(ioctl(g->vcpu, KVM_SET_SREGS, &sregs));
		EXPECT_EQ(ioctl(g->vcpu, KVM_SET_MSRS, &star), 1);
	} else {
		if (guest_set64(g, mode == GS_LONG ? GS(gs_sysretq) : GS(gs_sysretl)))
			return -1;
		EXPECT_EQ(ioctl(g->vcpu, KVM_SET_MSRS, &msrs), 4);
	}
	EXPECT_OK(ioctl(g->vcpu, KVM_GET_REGS, &regs));
	regs.rcx = mode == GS_LONG ? GS(gs_user64) : GS(gs_user32);
	regs.r11 = 2;
	regs.rbx = uflags;
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_REGS, &regs));

	*res = (struct gs_result){ .report = guest_enter(g) };
	if (res->report < 0)
		return -1;
	EXPECT_OK(ioctl(g->vcpu, KVM_GET_REGS, &regs));
	res->rcx = regs.rcx;
	res->r11 = regs.r11;
	memcpy(res->seen, g->mem + GS_SEEN, sizeof(res->seen));
	memcpy(res->db, g->mem + GS_DB, sizeof(res->db));
	if (trapped) {
		EXPECT_EQ(ring->producer, 1);
		EXPECT_EQ(slot(ring, 0)->type, KVM_NITRO_EVENT_SYSCALL);
		EXPECT_EQ(slot(ring, 0)->regs.rip, insn);
		EXPECT_EQ(slot(ring, 0)->regs.rflags, uflags | 2);
		EXPECT_EQ(slot(ring, 0)->flags & KVM_NITRO_EVENT_F_LONG_MODE,
			  mode == GS_LONG ? KVM_NITRO_EVENT_F_LONG_MODE : 0);
		if (mode != GS_LEGACY) {	/* the event's MSRs, as the VMM set them */
			EXPECT_EQ(slot(ring, 0)->regs.star, G_STAR);
			EXPECT_EQ(slot(ring, 0)->regs.lstar, GS(gs_entry));
			EXPECT_EQ(slot(ring, 0)->regs.cstar, GS_HIGH + GS(gs_entry));
			EXPECT_EQ(slot(ring, 0)->regs.sfmask, fmask);
			EXPECT_EQ(slot(ring, 0)->regs.kernel_gs_base, GS_KERNEL_GS_BASE);
		}
		munmap(ring, bytes);
		close(nitro);
	}
	return 0;
}

/*
 * The flags QEMU's TCG (7.2) loses on a long-mode SYSCALL: helper_syscall() reloads
 * RFLAGS from env->eflags, which does not hold the lazily computed arithmetic flags nor
 * DF, so CF PF AF ZF SF OF and DF come out clear whatever FMASK says (R11 is right).  The
 * hardware (SDM, APM: RFLAGS &= ~FMASK) and KVM's emulator keep them; the callers check
 * the trapped result against the architecture, so native and trapped are compared
 * without them.
 */
#define GS_TCG_LOST	0xcd5ULL

/* Scenario @mode natively and trapped: the same result, which is returned in @res. */
static int gs_compare(int mode, uint64_t fmask, uint64_t uflags, struct gs_result *res)
{
	uint64_t lost = mode == GS_LEGACY ? 0 : GS_TCG_LOST;
	struct gs_result native, trapped;
	struct guest *g;
	int i;

	if (!(g = guest()) || gs_run(g, mode, fmask, uflags, 0, &native) ||
	    gs_run(g, mode, fmask, uflags, 1, &trapped))
		return -1;
	EXPECT_EQ(trapped.report, native.report);
	EXPECT_EQ(trapped.rcx, native.rcx);
	EXPECT_EQ(trapped.r11, native.r11);
	for (i = 0; i < 4; i++) {
		uint64_t mask = i == 2 ? ~lost : ~0ULL;	/* [2]: RFLAGS */

		EXPECT_EQ(trapped.seen[i] & mask, native.seen[i] & mask);
		EXPECT_EQ(trapped.db[i] & mask, native.db[i] & mask);
	}
	*res = trapped;
	return 0;
}

/* 64-bit mode: RCX = next RIP, R11 = RFLAGS, RIP = LSTAR, RFLAGS &= ~FMASK, CS/SS from STAR */
static int t_syscall_completion_long_mode(void)
{
	struct gs_result r;

	if (gs_compare(GS_LONG, GS_FMASK, GS_UFLAGS, &r))
		return -1;
	EXPECT_EQ(r.report, 1);
	EXPECT_EQ(r.seen[0], GS(gs_syscall64) + 2);
	EXPECT_EQ(r.seen[1], GS_UFLAGS | 2);
	EXPECT_EQ(r.seen[2], (GS_UFLAGS & ~GS_FMASK) | 2);	/* TF masked: no #DB */
	EXPECT_EQ(r.seen[3], 0x08 | 0x10 << 16);
	return 0;
}

/* Compatibility mode: RIP = all 64 bits of CSTAR, RCX = next EIP, 64-bit CS */
static int t_syscall_completion_compat_mode(void)
{
	struct gs_result r;

	if (gs_compare(GS_COMPAT, GS_FMASK, GS_UFLAGS, &r))
		return -1;
	EXPECT_EQ(r.report, 1);
	EXPECT_EQ(r.seen[0], GS(gs_syscall32) + 2);
	EXPECT_EQ(r.seen[1], GS_UFLAGS | 2);
	EXPECT_EQ(r.seen[2], (GS_UFLAGS & ~GS_FMASK) | 2);
	EXPECT_EQ(r.seen[3], 0x08 | 0x10 << 16);
	return 0;
}

/* Legacy mode (AMD): ECX = next EIP, EIP = STAR[31:0], EFLAGS &= ~(VM | IF | RF) */
static int t_syscall_completion_legacy_mode(void)
{
	uint64_t uflags = GS_UFLAGS & ~0x100ULL;	/* no FMASK here: TF would trap */
	struct gs_result r;

	if (gs_compare(GS_LEGACY, 0, uflags, &r))
		return -1;
	EXPECT_EQ(r.report, 1);
	EXPECT_EQ(r.seen[0], GS(gs_syscall_legacy) + 2);
	EXPECT_EQ(r.seen[2], uflags | 2);
	EXPECT_EQ(r.seen[3], 0x08 | 0x10 << 16);
	return 0;
}

/* TF left set by FMASK: the single-step #DB after the SYSCALL, at the LSTAR entry */
static int t_syscall_completion_single_step(void)
{
	uint64_t fmask = GS_FMASK & ~0x100ULL;
	struct gs_result r;

	if (gs_compare(GS_LONG, fmask, GS_UFLAGS, &r))
		return -1;
	EXPECT_EQ(r.report, 4);
	EXPECT_EQ(r.rcx, GS(gs_syscall64) + 2);
	EXPECT_EQ(r.r11, GS_UFLAGS | 2);
	EXPECT_EQ(r.db[0], GS(gs_entry));
	EXPECT_EQ(r.db[1], 0x08);
	EXPECT_EQ(r.db[2] & ~0x10000ULL, (GS_UFLAGS & ~fmask) | 2);	/* RF aside */
	EXPECT_EQ(r.db[3] & 0x4000, 0x4000);				/* DR6.BS */
	return 0;
}

static void on_usr1(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	struct sigaction alarm_action = { .sa_handler = on_alarm };
	int keeper_ready[2];
	pid_t keeper;
	char ready;

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
	check("capability", t_capability);
	check("attach_on_vm_fd", t_attach_on_vm_fd);
	check("attach_rejects_bad_requests", t_attach_rejects_bad_requests);
	check("attach_by_pidfd", t_attach_by_pidfd);
	check("attach_from_privileged_child", t_attach_from_privileged_child);
	check("attach_refused_to_unprivileged", t_attach_refused_to_unprivileged);
	check("trap_config_roundtrip", t_trap_config_roundtrip);
	check("trap_config_rejects_bad_requests", t_trap_config_rejects_bad_requests);
	check("ring_mmap_and_poll", t_ring_mmap_and_poll);
	check("eventfd", t_eventfd);
	check("nitro_fd_outlives_vm_fd", t_nitro_fd_outlives_vm_fd);
	check("nested_guest_runs_attached", t_nested_guest_runs_attached);
	check("syscall_sysret_events", t_syscall_sysret_events);
	check("genuine_ud_reaches_guest", t_genuine_ud_reaches_guest);
	check("ring_overflow_counted", t_ring_overflow_counted);
	check("syscall_filter", t_syscall_filter);
	check("tracer_exit_restores_guest", t_tracer_exit_restores_guest);
	check("tracer_sigkill_restores_guest", t_tracer_sigkill_restores_guest);
	check("sysenter_sysexit_events", t_sysenter_sysexit_events);
	check("sysenter_filter", t_sysenter_filter);
	check("genuine_gp_reaches_guest", t_genuine_gp_reaches_guest);
	check("vmload_vmsave_keep_sysenter_trap", t_vmload_vmsave_keep_sysenter_trap);
	check("sysenter_release_restores_guest", t_sysenter_release_restores_guest);
	check("sysenter_tracer_exit_restores_guest", t_sysenter_tracer_exit_restores_guest);
	check("sysenter_tracer_sigkill_restores_guest", t_sysenter_tracer_sigkill_restores_guest);
	check("sync_waits_for_continue", t_sync_waits_for_continue);
	check("sync_skip_delivers_ud", t_sync_skip_delivers_ud);
	check("sync_skip_delivers_gp", t_sync_skip_delivers_gp);
	check("sync_signal_interrupts_wait", t_sync_signal_interrupts_wait);
	check("sync_close_releases_vcpu", t_sync_close_releases_vcpu);
	check("sync_switch_to_async_releases_vcpu", t_sync_switch_to_async_releases_vcpu);
	check("sync_ring_full_completes", t_sync_ring_full_completes);
	check("sync_tracer_sigkill_releases_vcpu", t_sync_tracer_sigkill_releases_vcpu);
	check("syscall_completion_long_mode", t_syscall_completion_long_mode);
	check("syscall_completion_compat_mode", t_syscall_completion_compat_mode);
	check("syscall_completion_legacy_mode", t_syscall_completion_legacy_mode);
	check("syscall_completion_single_step", t_syscall_completion_single_step);
	release_leftovers();
	if (the_guest.vm >= 0)
		guest_close(&the_guest);
	kill(keeper, SIGKILL);
	waitpid(keeper, NULL, 0);
	printf("nitro_test: done %d passed %d failed\n", passed, failed);
	return failed != 0;
}
