// SPDX-License-Identifier: GPL-2.0
/*
 * nitro_test_sysenter.c - nitro_test's checks of the SYSENTER/SYSEXIT traps on the 32-bit
 * legacy-mode guest (SYSENTER_CS hidden as 0, #GP intercepted): the events, the filter,
 * genuine #GPs, VMLOAD/VMSAVE, and the guest's own SYSENTER_CS back on release or when
 * the tracer exits or is killed.
 */
#include "testvm.h"

#define SYSENTER_SYSEXIT	(KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT)

static int t_sysenter_sysexit_events(void)
{
	struct guest *g = guest();
	struct armed a;

	if (!g || arm(g, SYSENTER_SYSEXIT, 64, &a))
		return -1;
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(MEM32(g, G32_COUNTER), 2);
	EXPECT_EQ(a.ring->producer, 4);
	EXPECT_EQ(a.ring->dropped, 0);
	if (expect_scenario32(a.ring, 0, 0, 0))
		return -1;
	EXPECT_EQ(slot(a.ring, 1)->regs.rdi, 0x1111);
	/* RDMSR showed the guest its own SYSENTER_CS, WRMSR of it kept the trap; so does KVM_GET_MSRS */
	EXPECT_EQ(MEM32(g, G32_CS_SEEN), G32_SYSENTER_CS);
	EXPECT_EQ(guest_sysenter_cs(g), G32_SYSENTER_CS);
	/* a second run: the same again */
	a.ring->consumer = a.ring->producer;
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(a.ring->producer, 8);
	if (expect_scenario32(a.ring, 4, 4, 0))
		return -1;
	disarm(&a);
	return 0;
}

static int t_sysenter_filter(void)
{
	struct kvm_nitro_trap_config c = traps_req(SYSENTER_SYSEXIT, 64);
	struct guest *g = guest();
	struct armed a;

	if (!g || arm(g, c.traps, 64, &a))
		return -1;
	c.flags = KVM_NITRO_FILTER_ENABLE;
	c.syscall_filter[0] = 1ULL << 39;
	EXPECT_OK(ioctl(a.nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(MEM32(g, G32_COUNTER), 2);
	/* SYSENTER 60 filtered out (still completed); SYSEXIT is not filtered */
	EXPECT_EQ(a.ring->producer, 3);
	if (expect_scenario32(a.ring, 0, 0, 1))
		return -1;
	/* SYSENTER only: SYSEXIT still completes (SYSENTER_CS is hidden for both) */
	c = traps_req(KVM_NITRO_TRAP_SYSENTER, 64);
	EXPECT_OK(ioctl(a.nitro, KVM_NITRO_SET_TRAPS, &c));
	a.ring->consumer = a.ring->producer;
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(a.ring->producer, 5);
	EXPECT_EQ(slot(a.ring, 3)->type, KVM_NITRO_EVENT_SYSENTER);
	EXPECT_EQ(slot(a.ring, 4)->type, KVM_NITRO_EVENT_SYSENTER);
	EXPECT_EQ(slot(a.ring, 4)->regs.rax, 60);
	disarm(&a);
	return 0;
}

/* Run a scenario that must end in the guest's own #GP; check error code and EIP. */
static int expect_gp32(struct guest *g, uint32_t rip, int user, uint32_t err, uint32_t at)
{
	MEM32(g, G32_GP_ERR) = 0xdead;
	MEM32(g, G32_GP_EIP) = 0;
	EXPECT_EQ(guest_run32(g, rip, user), 3);
	EXPECT_EQ(MEM32(g, G32_GP_ERR), err);
	EXPECT_EQ(MEM32(g, G32_GP_EIP), at);
	return 0;
}

static int t_genuine_gp_reaches_guest(void)
{
	struct guest *g = guest();
	struct armed a;

	if (!g || arm(g, SYSENTER_SYSEXIT, 64, &a))
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
	EXPECT_EQ(MEM32(g, G32_COUNTER), 0);
	EXPECT_EQ(a.ring->producer, 0);
	/* and the traps still work */
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(a.ring->producer, 4);
	disarm(&a);
	return 0;
}

/*
 * VMLOAD/VMSAVE (emulated for the guest, which may run its own nested guests) load and
 * store the guest's own SYSENTER_CS, not the hidden 0, and keep the trap; EFER.SVME
 * going off (KVM then drops its own #GP intercept) keeps it too.
 */
static int t_vmload_vmsave_keep_sysenter_trap(void)
{
	struct guest *g = guest();
	struct armed a;

	if (!g || arm(g, SYSENTER_SYSEXIT, 64, &a))
		return -1;
	EXPECT_EQ(guest_run32(g, G32(g32_vmload), 0), 1);
	EXPECT_EQ(MEM32(g, G32_VMSAVE_SEEN), G32_SYSENTER_CS);
	EXPECT_EQ(MEM32(g, G32_VMLOAD_SEEN), 0x40);
	EXPECT_EQ(MEM32(g, G32_COUNTER), 2);
	EXPECT_EQ(a.ring->producer, 4);
	if (expect_scenario32(a.ring, 0, 0, 0))
		return -1;
	disarm(&a);
	return 0;
}

/* Without a tracer SYSENTER/SYSEXIT run natively: no #GP, the guest's own SYSENTER_CS */
static int t_sysenter_release_restores_guest(void)
{
	struct kvm_nitro_trap_config c;
	struct guest *g = guest();
	struct armed a;

	if (!g)
		return -1;
	EXPECT_EQ(scenario32(g), 1);
	if (arm(g, SYSENTER_SYSEXIT, 64, &a))
		return -1;
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(a.ring->producer, 4);
	/* traps = 0 releases them with the fd still open */
	c = traps_req(0, 64);
	EXPECT_OK(ioctl(a.nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(a.ring->producer, 4);
	c = traps_req(SYSENTER_SYSEXIT, 64);
	EXPECT_OK(ioctl(a.nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(a.ring->producer, 8);
	/* close: released */
	disarm(&a);
	EXPECT_EQ(scenario32(g), 1);
	EXPECT_EQ(MEM32(g, G32_COUNTER), 10);
	EXPECT_EQ(guest_sysenter_cs(g), G32_SYSENTER_CS);
	return 0;
}

static int t_sysenter_tracer_exit_restores_guest(void)
{
	return tracer_dies(0, SYSENTER_SYSEXIT, scenario32);
}

static int t_sysenter_tracer_sigkill_restores_guest(void)
{
	return tracer_dies(1, KVM_NITRO_TRAP_ALL, scenario32);
}

void sysenter_checks(void)
{
	check("sysenter_sysexit_events", t_sysenter_sysexit_events);
	check("sysenter_filter", t_sysenter_filter);
	check("genuine_gp_reaches_guest", t_genuine_gp_reaches_guest);
	check("vmload_vmsave_keep_sysenter_trap", t_vmload_vmsave_keep_sysenter_trap);
	check("sysenter_release_restores_guest", t_sysenter_release_restores_guest);
	check("sysenter_tracer_exit_restores_guest", t_sysenter_tracer_exit_restores_guest);
	check("sysenter_tracer_sigkill_restores_guest", t_sysenter_tracer_sigkill_restores_guest);
}
