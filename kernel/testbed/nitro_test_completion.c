// SPDX-License-Identifier: GPL-2.0
/*
 * nitro_test_completion.c - nitro_test's checks of a trapped SYSCALL's completion against
 * a native one: long, compatibility and legacy mode, the single-step #DB.
 */
#include "testvm.h"

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
#define GS_FMASK	((uint64_t)G_FMASK)	/* as guest_set64() */
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
	uint64_t *q = (uint64_t *)g->mem;

	memcpy(g->mem + GS_CODE, gs_code, gs_code_end - gs_code);
	guest_gate64(g, 1, GS(gs_db));
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
	uint64_t insn = mode == GS_LONG ? GS(gs_syscall64) :
			mode == GS_COMPAT ? GS(gs_syscall32) : GS(gs_syscall_legacy);
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct armed a;

	gs_prepare(g);
	if (trapped && arm(g, KVM_NITRO_TRAP_SYSCALL, 64, &a))
		return -1;
	if (mode == GS_LEGACY) {
		if (guest_set32(g, GS(gs_user_legacy), 1))
			return -1;
		EXPECT_OK(ioctl(g->vcpu, KVM_GET_SREGS, &sregs));
		sregs.efer = 1;				/* SCE */
		EXPECT_OK(ioctl(g->vcpu, KVM_SET_SREGS, &sregs));
		if (SET_MSRS(g->vcpu, { .index = 0xc0000081,			/* STAR */
					.data = 0x08ULL << 32 | GS(gs_entry_legacy) }))
			return -1;
	} else {
		if (guest_set64(g, mode == GS_LONG ? GS(gs_sysretq) : GS(gs_sysretl)) ||
		    SET_MSRS(g->vcpu,
			     { .index = 0xc0000082, .data = GS(gs_entry) },		/* LSTAR */
			     { .index = 0xc0000083, .data = GS_HIGH + GS(gs_entry) },	/* CSTAR */
			     { .index = 0xc0000084, .data = fmask },
			     { .index = 0xc0000102, .data = GS_KERNEL_GS_BASE }))
			return -1;
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
		EXPECT_EQ(a.ring->producer, 1);
		EXPECT_EQ(slot(a.ring, 0)->type, KVM_NITRO_EVENT_SYSCALL);
		EXPECT_EQ(slot(a.ring, 0)->regs.rip, insn);
		EXPECT_EQ(slot(a.ring, 0)->regs.rflags, uflags | 2);
		EXPECT_EQ(slot(a.ring, 0)->flags & KVM_NITRO_EVENT_F_LONG_MODE,
			  mode == GS_LONG ? KVM_NITRO_EVENT_F_LONG_MODE : 0);
		if (mode != GS_LEGACY) {	/* the event's MSRs, as the VMM set them */
			EXPECT_EQ(slot(a.ring, 0)->regs.star, G_STAR);
			EXPECT_EQ(slot(a.ring, 0)->regs.lstar, GS(gs_entry));
			EXPECT_EQ(slot(a.ring, 0)->regs.cstar, GS_HIGH + GS(gs_entry));
			EXPECT_EQ(slot(a.ring, 0)->regs.sfmask, fmask);
			EXPECT_EQ(slot(a.ring, 0)->regs.kernel_gs_base, GS_KERNEL_GS_BASE);
		}
		disarm(&a);
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

void completion_checks(void)
{
	check("syscall_completion_long_mode", t_syscall_completion_long_mode);
	check("syscall_completion_compat_mode", t_syscall_completion_compat_mode);
	check("syscall_completion_legacy_mode", t_syscall_completion_legacy_mode);
	check("syscall_completion_single_step", t_syscall_completion_single_step);
}
