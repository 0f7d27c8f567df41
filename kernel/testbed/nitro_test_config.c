// SPDX-License-Identifier: GPL-2.0
/*
 * nitro_test_config.c - nitro_test's checks of the nitro fd without guest code running:
 * KVM_NITRO_SET_TRAPS/GET_TRAPS, the ring's mapping and poll(), KVM_NITRO_SET_EVENTFD, the
 * fd outliving the VM fd, and a real-mode guest running with traps stored.
 */
#include "testvm.h"

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
	size_t bytes = ring_bytes(256);
	struct kvm_nitro_ring_header *ring;
	struct pollfd p = { .fd = nitro, .events = POLLIN };

	EXPECT_OK(ioctl(nitro, KVM_NITRO_SET_TRAPS, &c));
	if (mmap(NULL, bytes + page, PROT_READ, MAP_SHARED, nitro, 0) != MAP_FAILED)
		return fail("mmap beyond the ring succeeded");
	if (mmap(NULL, page, PROT_READ, MAP_SHARED, nitro, page) != MAP_FAILED)
		return fail("mmap at page offset 1 succeeded");
	if (mmap(NULL, page, PROT_READ | PROT_EXEC, MAP_SHARED, nitro, 0) != MAP_FAILED)
		return fail("executable mmap succeeded");
	ring = ring_map(nitro, 256);
	if (!ring)
		return -1;
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

void config_checks(void)
{
	check("trap_config_roundtrip", t_trap_config_roundtrip);
	check("trap_config_rejects_bad_requests", t_trap_config_rejects_bad_requests);
	check("ring_mmap_and_poll", t_ring_mmap_and_poll);
	check("eventfd", t_eventfd);
	check("nitro_fd_outlives_vm_fd", t_nitro_fd_outlives_vm_fd);
	check("nested_guest_runs_attached", t_nested_guest_runs_attached);
}
