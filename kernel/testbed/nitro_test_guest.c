// SPDX-License-Identifier: GPL-2.0
/*
 * nitro_test_guest.c - the guest programs nitro_test's checks run on the shared guest (the
 * 64-bit one in testvm.h's layout, the 32-bit legacy-mode one: see testvm.h), running them,
 * arming traps on them and checking the events they give.
 */
#include "testvm.h"

/* ------------------------------------------------------ the 64-bit program */

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

/* ---------------------------------------------------- the 32-bit program */

#define G32_ASM_ADDR(l)	"(" #l " - g32_code + 0x20000)"
__asm__(
	"	.pushsection .rodata\n"
	"	.globl g32_code, g32_code_end, g32_kernel, g32_sysexit_0, g32_user\n"
	"	.globl g32_sysenter_39, g32_user_1, g32_sysenter_60, g32_user_2, g32_entry\n"
	"	.globl g32_sysexit_1, g32_gp, g32_ud, g32_own_cs_zero, g32_own_zero_sysenter\n"
	"	.globl g32_user_sysexit, g32_user_cli, g32_bad_selector, g32_bad_selector_mov\n"
	"	.globl g32_vmload\n"
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

/* -------------------------------------------------------- the shared guest */

struct guest the_guest = { .vm = -1, .vcpu = -1 };

/* The programs, the #UD gate and the 32-bit guest's tables in a new guest's memory */
static void guest_load(struct guest *g)
{
	uint64_t *q = (uint64_t *)g->mem;
	size_t i;

	guest_gate64(g, 6, G_UD_HANDLER);
	for (i = 0; i < sizeof(guest_code) / sizeof(guest_code[0]); i++)
		memcpy(g->mem + guest_code[i].gpa, guest_code[i].bytes, guest_code[i].len);
	MEM32(g, G32_PD) = 0xe7;			/* 4 MiB page at 0: PS|D|A|US|RW|P */
	q[G32_GDT / 8 + 1] = 0x00cf9b000000ffffULL;	/* 0x08: kernel code */
	q[G32_GDT / 8 + 2] = 0x00cf93000000ffffULL;	/* 0x10: kernel data */
	q[G32_GDT / 8 + 3] = 0x00cffb000000ffffULL;	/* 0x18: user code */
	q[G32_GDT / 8 + 4] = 0x00cff3000000ffffULL;	/* 0x20: user data */
	q[G32_GDT / 8 + 5] = 0x00008b0000000067ULL |	/* 0x28: busy 32-bit TSS */
			     (uint64_t)(G32_TSS & 0xffffff) << 16;
	q[G32_IDT / 8 + 6] = idt_gate(G32(g32_ud));
	q[G32_IDT / 8 + 13] = idt_gate(G32(g32_gp));
	MEM32(g, G32_TSS + 4) = 0x1e0000;		/* esp0 */
	MEM32(g, G32_TSS + 8) = 0x10;			/* ss0 */
	memcpy(g->mem + G32_CODE, g32_code, g32_code_end - g32_code);
}

struct guest *guest(void)
{
	if (the_guest.vm < 0) {
		if (guest_create(&the_guest)) {
			guest_close(&the_guest);
			the_guest = (struct guest){ .vm = -1, .vcpu = -1 };
			return NULL;
		}
		guest_load(&the_guest);
	}
	memset(the_guest.mem + G_COUNTER, 0, 0x1000);
	memset(the_guest.mem + G32_COUNTER, 0, 0x1000);
	return &the_guest;
}

int guest_enter(struct guest *g)
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

int guest_set64(struct guest *g, uint64_t rip)
{
	return guest_long_mode(g, rip, G_LSTAR, G_FMASK);
}

int guest_run(struct guest *g, uint64_t rip)
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

int guest_set32(struct guest *g, uint32_t rip, int user)
{
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
	if (SET_MSRS(g->vcpu, { .index = 0x174, .data = G32_SYSENTER_CS },
		     { .index = 0x175, .data = G32_SYSENTER_SP },
		     { .index = 0x176, .data = G32(g32_entry) }))
		return -1;
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_VCPU_EVENTS, &(struct kvm_vcpu_events){}));
	return 0;
}

int guest_run32(struct guest *g, uint32_t rip, int user)
{
	if (guest_set32(g, rip, user))
		return -1;
	return guest_enter(g);
}

int64_t guest_sysenter_cs(struct guest *g)
{
	return get_msr(g->vcpu, 0x174);
}

int scenario64(struct guest *g)
{
	return guest_run(g, G_KERNEL);
}

int scenario32(struct guest *g)
{
	return guest_run32(g, G32(g32_kernel), 0);
}

/* ------------------------------------------------------- traps and events */

int arm(struct guest *g, uint32_t traps, uint32_t slots, struct armed *a)
{
	struct kvm_nitro_trap_config c = traps_req(traps, slots);

	a->nitro = EXPECT_OK(attach_on_vm(g->vm));
	EXPECT_OK(ioctl(a->nitro, KVM_NITRO_SET_TRAPS, &c));
	a->ring = ring_map(a->nitro, slots);
	return a->ring ? 0 : -1;
}

int arm_sync(struct guest *g, uint32_t traps, uint32_t slots, struct armed *a)
{
	struct kvm_nitro_trap_config c = traps_req(traps, slots);

	if (arm(g, traps, slots, a))
		return -1;
	c.delivery = KVM_NITRO_DELIVERY_SYNC;
	EXPECT_OK(ioctl(a->nitro, KVM_NITRO_SET_TRAPS, &c));
	return 0;
}

void disarm(struct armed *a)
{
	ring_unmap(a->ring);
	close(a->nitro);
}

/* What every event carries the same way: ABI version and size, @seq, vCPU 0, @type, rip, rax */
static int expect_event_head(struct kvm_nitro_event *ev, uint64_t seq, uint16_t type,
			     uint64_t rip, uint64_t rax)
{
	EXPECT_EQ(ev->version, KVM_NITRO_ABI_VERSION);
	EXPECT_EQ(ev->size, sizeof(*ev));
	EXPECT_EQ(ev->seq, seq);
	EXPECT_EQ(ev->vcpu_id, 0);
	EXPECT_EQ(ev->type, type);
	EXPECT_EQ(ev->regs.rip, rip);
	EXPECT_EQ(ev->regs.rax, rax);
	return 0;
}

int expect_event(struct kvm_nitro_ring_header *ring, uint64_t i, uint64_t seq,
		 uint16_t type, uint64_t rip, uint64_t rax)
{
	struct kvm_nitro_event *ev = slot(ring, i);

	if (expect_event_head(ev, seq, type, rip, rax))
		return -1;
	EXPECT_EQ(ev->regs.efer & 0x501, 0x501);	/* the guest's own view: SCE set */
	EXPECT_EQ(ev->regs.cr3, 0x1000);
	EXPECT_EQ(ev->regs.lstar, G_LSTAR);
	EXPECT_EQ(ev->regs.star, G_STAR);
	EXPECT_EQ(ev->regs.sfmask, G_FMASK);
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

int expect_event32(struct kvm_nitro_ring_header *ring, uint64_t i, uint64_t seq,
		   uint16_t type, uint32_t rip, uint64_t rax, uint32_t rdx)
{
	struct kvm_nitro_event *ev = slot(ring, i);
	int user = type == KVM_NITRO_EVENT_SYSENTER;

	if (expect_event_head(ev, seq, type, rip, rax))
		return -1;
	EXPECT_EQ(ev->flags & ~KVM_NITRO_EVENT_F_SYNC, 0);	/* legacy mode, no REX.W */
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

int expect_scenario32(struct kvm_nitro_ring_header *ring, uint64_t i, uint64_t seq,
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

/* ---------------------------------------------------------- a tracer process */

pid_t tracer_fork(struct guest *g, const struct kvm_nitro_trap_config *c, int up[2],
		  struct kvm_nitro_ring_header **ring)
{
	pid_t child = fork();
	char byte;

	if (child < 0)
		return fail("fork: %s", strerror(errno));
	if (child == 0) {
		int vm = pidfd_getfd(pidfd_open(getppid()), g->vm);
		int nitro = attach_on_vm(vm);

		if (nitro < 0 || ioctl(nitro, KVM_NITRO_SET_TRAPS, c))
			_exit(1);
		*ring = mmap(NULL, 4096, PROT_READ, MAP_SHARED, nitro, 0);
		if (*ring == MAP_FAILED || write(up[1], "a", 1) != 1)
			_exit(2);
		return 0;
	}
	if (read(up[0], &byte, 1) != 1)
		return fail("the tracer did not arm");
	return child;
}

/*
 * The tracer (a child holding the VMM's VM fd from pidfd_getfd) arms @traps, the guest
 * runs @scenario trapped (4 events), the tracer goes: the guest must run on with its
 * own EFER.SCE and SYSENTER_CS (SYSRET natively: KVM's emulator has no SYSRET, a
 * leftover trap would give it #UD; SYSENTER_CS 0 left in the VMCB would give #GP).
 * @kill: SIGKILL; otherwise the tracer closes its fd and exits.
 */
int tracer_dies(int kill_it, uint32_t traps, int (*scenario)(struct guest *))
{
	struct kvm_nitro_trap_config c = traps_req(traps, 64);
	struct kvm_nitro_ring_header *ring;
	int armed[2], ran[2], status;
	uint64_t produced = 0;
	struct guest *g;
	pid_t child;
	char byte;

	if (!(g = guest()) || pipe(armed) || pipe(ran))
		return fail("set-up: %s", strerror(errno));
	child = tracer_fork(g, &c, armed, &ring);
	if (child < 0)
		return -1;
	if (child == 0) {
		if (read(ran[0], &byte, 1) != 1)
			_exit(2);
		produced = ring->producer;
		if (write(armed[1], &produced, sizeof(produced)) != sizeof(produced))
			_exit(3);
		if (!kill_it)
			_exit(0);
		for (;;)
			pause();
	}
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
		EXPECT_EQ(MEM32(g, G32_COUNTER), 4);
	else
		EXPECT_EQ(MEM64(g, G_COUNTER), 4);
	/* and the VM can be traced again */
	close(EXPECT_OK(attach_on_vm(g->vm)));
	return 0;
}
