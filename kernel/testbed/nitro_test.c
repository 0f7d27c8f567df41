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
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 0);
	c.delivery = KVM_NITRO_DELIVERY_SYNC;
	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EOPNOTSUPP);
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
 * -> UD_HANDLER), TSS 0x6000, data 0x7000, code from 0x8000, stack below 0x1f0000.
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

/* Run the guest from @rip at CPL 0; returns what it reported on port 0x10, or -1. */
static int guest_run(struct guest *g, uint64_t rip)
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
	struct guest g;
	uint64_t count = 0;
	size_t bytes;
	int nitro;

	if (guest_create(&g))
		return -1;
	nitro = arm(&g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 4096, &ring, &bytes);
	if (nitro < 0)
		return -1;
	e.fd = EXPECT_OK(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_EVENTFD, &e));
	p.fd = nitro;
	EXPECT_EQ(poll(&p, 1, 0), 0);

	EXPECT_EQ(guest_run(&g, G_KERNEL), 1);
	EXPECT_EQ(*(uint64_t *)(g.mem + G_COUNTER), 2);
	/* RDMSR showed the guest its own EFER; WRMSR of it did not re-enable SYSCALL */
	EXPECT_EQ(*(uint32_t *)(g.mem + G_EFER_SEEN), 0x501);	/* LMA LME SCE */
	EXPECT_OK(ioctl(g.vcpu, KVM_GET_SREGS, &sregs));
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
	guest_close(&g);
	return 0;
}

static int t_genuine_ud_reaches_guest(void)
{
	struct kvm_nitro_ring_header *ring;
	struct kvm_sregs sregs;
	struct guest g;
	size_t bytes;
	int nitro;

	if (guest_create(&g))
		return -1;
	nitro = arm(&g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	EXPECT_EQ(guest_run(&g, G_UD2), 2);
	/* a SYSCALL while the guest's own EFER.SCE is clear is the guest's #UD */
	EXPECT_EQ(guest_run(&g, G_OWN_SCE_OFF), 2);
	EXPECT_OK(ioctl(g.vcpu, KVM_GET_SREGS, &sregs));
	EXPECT_EQ(sregs.efer & 1, 0);
	EXPECT_EQ(*(uint64_t *)(g.mem + G_COUNTER), 0);
	EXPECT_EQ(ring->producer, 0);
	munmap(ring, bytes);
	close(nitro);
	guest_close(&g);
	return 0;
}

static int t_ring_overflow_counted(void)
{
	struct kvm_nitro_ring_header *ring;
	struct guest g;
	size_t bytes;
	int nitro;

	if (guest_create(&g))
		return -1;
	nitro = arm(&g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 2, &ring, &bytes);
	if (nitro < 0)
		return -1;
	EXPECT_EQ(guest_run(&g, G_KERNEL), 1);
	EXPECT_EQ(*(uint64_t *)(g.mem + G_COUNTER), 2);	/* every instruction completed */
	EXPECT_EQ(ring->producer, 2);
	EXPECT_EQ(ring->dropped, 2);
	if (expect_event(ring, 0, 0, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_0, 0x501) ||
	    expect_event(ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39))
		return -1;
	/* the reader frees the slots: the next events land with their seq showing the gap */
	ring->consumer = 2;
	EXPECT_EQ(guest_run(&g, G_KERNEL), 1);
	EXPECT_EQ(ring->producer, 4);
	EXPECT_EQ(ring->dropped, 4);
	EXPECT_EQ(slot(ring, 2)->seq, 4);
	EXPECT_EQ(slot(ring, 3)->seq, 5);
	munmap(ring, bytes);
	close(nitro);
	guest_close(&g);
	return 0;
}

static int t_syscall_filter(void)
{
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 64);
	struct kvm_nitro_ring_header *ring;
	struct guest g;
	size_t bytes;
	int nitro;

	if (guest_create(&g))
		return -1;
	nitro = arm(&g, c.traps, 64, &ring, &bytes);
	if (nitro < 0)
		return -1;
	c.flags = KVM_NITRO_FILTER_ENABLE;
	c.syscall_filter[0] = 1ULL << 39;
	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(guest_run(&g, G_KERNEL), 1);
	EXPECT_EQ(*(uint64_t *)(g.mem + G_COUNTER), 2);
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
	EXPECT_EQ(guest_run(&g, G_KERNEL), 1);
	EXPECT_EQ(ring->producer, 5);
	if (expect_event(ring, 3, 3, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39) ||
	    expect_event(ring, 4, 4, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_60, 60))
		return -1;
	munmap(ring, bytes);
	close(nitro);
	guest_close(&g);
	return 0;
}

/*
 * The tracer (a child holding the VMM's VM fd from pidfd_getfd) arms the traps, the
 * guest runs trapped, the tracer is SIGKILLed: the guest must run on with its own SCE
 * (SYSRET natively: KVM's emulator has no SYSRET, a leftover trap would give it #UD).
 * @kill: SIGKILL; otherwise the tracer closes its fd and exits.
 */
static int tracer_dies(int kill_it)
{
	int armed[2], ran[2], status, vm_number;
	uint64_t produced = 0;
	struct guest g;
	pid_t child;

	if (guest_create(&g) || pipe(armed) || pipe(ran))
		return fail("set-up: %s", strerror(errno));
	vm_number = g.vm;
	child = fork();
	if (child < 0)
		return fail("fork: %s", strerror(errno));
	if (child == 0) {
		struct kvm_nitro_ring_header *ring;
		int pidfd = pidfd_open(getppid()), vm, nitro;
		struct kvm_nitro_trap_config c =
			traps_req(KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 64);
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
	EXPECT_EQ(guest_run(&g, G_KERNEL), 1);
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
	EXPECT_EQ(guest_run(&g, G_KERNEL), 1);
	EXPECT_EQ(*(uint64_t *)(g.mem + G_COUNTER), 4);
	/* and the VM can be traced again */
	close(EXPECT_OK(attach_on_vm(g.vm)));
	guest_close(&g);
	return 0;
}

static int t_tracer_exit_restores_guest(void)
{
	return tracer_dies(0);
}

static int t_tracer_sigkill_restores_guest(void)
{
	return tracer_dies(1);
}

static int t_sysenter_refused_for_now(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int nitro = EXPECT_OK(attach_on_vm(vm));
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSENTER, 0);

	EXPECT_ERRNO(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c), EOPNOTSUPP);
	close(nitro);
	close(vm);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction alarm_action = { .sa_handler = on_alarm };
	int keeper_ready[2];
	pid_t keeper;
	char ready;

	only = argc > 1 ? argv + 1 : NULL;
	sigaction(SIGALRM, &alarm_action, NULL);
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
	check("sysenter_refused_for_now", t_sysenter_refused_for_now);
	kill(keeper, SIGKILL);
	waitpid(keeper, NULL, 0);
	printf("nitro_test: done %d passed %d failed\n", passed, failed);
	return failed != 0;
}
