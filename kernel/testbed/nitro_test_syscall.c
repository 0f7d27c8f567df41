// SPDX-License-Identifier: GPL-2.0
/*
 * nitro_test_syscall.c - nitro_test's checks of the SYSCALL/SYSRET traps on the 64-bit
 * guest, asynchronous delivery: the events, a genuine #UD, ring overflow, the syscall
 * filter, and the guest running on when the tracer exits or is killed.
 */
#include "testvm.h"

static int t_syscall_sysret_events(void)
{
	struct pollfd p = { .events = POLLIN };
	struct kvm_nitro_eventfd e = { .fd = -1 };
	struct guest *g = guest();
	struct kvm_sregs sregs;
	uint64_t count = 0;
	struct armed a;

	if (!g || arm(g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 4096, &a))
		return -1;
	e.fd = EXPECT_OK(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
	EXPECT_OK(ioctl(a.nitro, KVM_NITRO_SET_EVENTFD, &e));
	p.fd = a.nitro;
	EXPECT_EQ(poll(&p, 1, 0), 0);

	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(MEM64(g, G_COUNTER), 2);
	/* RDMSR showed the guest its own EFER; WRMSR of it did not re-enable SYSCALL */
	EXPECT_EQ(MEM32(g, G_EFER_SEEN), 0x501);	/* LMA LME SCE */
	EXPECT_OK(ioctl(g->vcpu, KVM_GET_SREGS, &sregs));
	EXPECT_EQ(sregs.efer & 1, 1);
	EXPECT_EQ(a.ring->producer, 4);
	EXPECT_EQ(a.ring->dropped, 0);
	if (expect_event(a.ring, 0, 0, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_0, 0x501) ||
	    expect_event(a.ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39) ||
	    expect_event(a.ring, 2, 2, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_1, 39) ||
	    expect_event(a.ring, 3, 3, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_60, 60))
		return -1;
	EXPECT_EQ(slot(a.ring, 0)->regs.rcx, G_USER);
	EXPECT_EQ(slot(a.ring, 1)->regs.rdi, 0x1111);
	EXPECT_EQ(slot(a.ring, 2)->regs.rcx, G_SYSCALL_39 + 2);
	if (slot(a.ring, 3)->timestamp_ns < slot(a.ring, 0)->timestamp_ns)
		return fail("timestamps go backwards");
	EXPECT_EQ(poll(&p, 1, 0), 1);
	EXPECT_EQ(read(e.fd, &count, sizeof(count)), sizeof(count));
	EXPECT_EQ(count, 1);	/* signalled once: when the ring went non-empty */
	a.ring->consumer = a.ring->producer;
	EXPECT_EQ(poll(&p, 1, 0), 0);
	disarm(&a);
	close(e.fd);
	return 0;
}

static int t_genuine_ud_reaches_guest(void)
{
	struct guest *g = guest();
	struct kvm_sregs sregs;
	struct armed a;

	if (!g || arm(g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 64, &a))
		return -1;
	EXPECT_EQ(guest_run(g, G_UD2), 2);
	/* a SYSCALL while the guest's own EFER.SCE is clear is the guest's #UD */
	EXPECT_EQ(guest_run(g, G_OWN_SCE_OFF), 2);
	EXPECT_OK(ioctl(g->vcpu, KVM_GET_SREGS, &sregs));
	EXPECT_EQ(sregs.efer & 1, 0);
	EXPECT_EQ(MEM64(g, G_COUNTER), 0);
	EXPECT_EQ(a.ring->producer, 0);
	disarm(&a);
	return 0;
}

static int t_ring_overflow_counted(void)
{
	struct guest *g = guest();
	struct armed a;

	if (!g || arm(g, KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 2, &a))
		return -1;
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(MEM64(g, G_COUNTER), 2);	/* every instruction completed */
	EXPECT_EQ(a.ring->producer, 2);
	EXPECT_EQ(a.ring->dropped, 2);
	if (expect_event(a.ring, 0, 0, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_0, 0x501) ||
	    expect_event(a.ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39))
		return -1;
	/* the reader frees the slots: the next events land with their seq showing the gap */
	a.ring->consumer = 2;
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(a.ring->producer, 4);
	EXPECT_EQ(a.ring->dropped, 4);
	EXPECT_EQ(slot(a.ring, 2)->seq, 4);
	EXPECT_EQ(slot(a.ring, 3)->seq, 5);
	disarm(&a);
	return 0;
}

static int t_syscall_filter(void)
{
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 64);
	struct guest *g = guest();
	struct armed a;

	if (!g || arm(g, c.traps, 64, &a))
		return -1;
	c.flags = KVM_NITRO_FILTER_ENABLE;
	c.syscall_filter[0] = 1ULL << 39;
	EXPECT_OK(ioctl(a.nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(MEM64(g, G_COUNTER), 2);
	/* syscall 60 filtered out; returns are not filtered (rax is the result there) */
	EXPECT_EQ(a.ring->producer, 3);
	if (expect_event(a.ring, 0, 0, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_0, 0x501) ||
	    expect_event(a.ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39) ||
	    expect_event(a.ring, 2, 2, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_1, 39))
		return -1;
	/* SYSCALL only: SYSRET still completes (SCE is off for both) without an event */
	c = traps_req(KVM_NITRO_TRAP_SYSCALL, 64);
	EXPECT_OK(ioctl(a.nitro, KVM_NITRO_SET_TRAPS, &c));
	a.ring->consumer = a.ring->producer;
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(a.ring->producer, 5);
	if (expect_event(a.ring, 3, 3, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39) ||
	    expect_event(a.ring, 4, 4, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_60, 60))
		return -1;
	disarm(&a);
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

void syscall_checks(void)
{
	check("syscall_sysret_events", t_syscall_sysret_events);
	check("genuine_ud_reaches_guest", t_genuine_ud_reaches_guest);
	check("ring_overflow_counted", t_ring_overflow_counted);
	check("syscall_filter", t_syscall_filter);
	check("tracer_exit_restores_guest", t_tracer_exit_restores_guest);
	check("tracer_sigkill_restores_guest", t_tracer_sigkill_restores_guest);
}
