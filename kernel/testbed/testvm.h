/* SPDX-License-Identifier: GPL-2.0 */
/*
 * testvm.h - what the test bed's programs share, one header for both:
 *
 *   nitro_test  = nitro_test.c (check(), main) + nitro_test_*.c (the checks by topic, the
 *                 guest programs they run) + testvm.c;
 *   nitro_bench = nitro_bench.c + testvm.c.
 *
 * testvm.c: failure reporting (fail() and the EXPECT_ macros: a check or helper returns -1
 * with the first reason kept in failure[]), the nested 64-bit guest's memory layout and
 * set-up, and the nitro fd's requests and ring.  Below that, what only nitro_test's files
 * share: the guest programs of nitro_test_guest.c and the check groups.
 */
#ifndef TESTVM_H
#define TESTVM_H

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

/* ------------------------------------------------------ failure reporting */

/* Why the current check failed; fail() records the first reason and returns -1. */
extern char failure[256];
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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

/* A SIGALRM handler that does nothing: the signal only interrupts a KVM_RUN stuck too long. */
void on_alarm(int sig);

/* ---------------------------------------------------- the nested 64-bit guest */

/*
 * Guest-physical layout: page tables at 0x1000-0x3fff map the first 2 MiB identity,
 * user-accessible; GDT 0x4000 (0x08 kernel code, 0x10 kernel data), IDT 0x5000 (no gates:
 * guest_gate64()), TSS 0x6000 (RSP0 0x1e8000), data 0x7000, code from 0x8000, stack below
 * 0x1f0000.
 */
#define G_MEM		0x200000
#define G_IDT		0x5000
#define G_CODE		0x8000
#define G_STACK		0x1f0000
#define G_STAR		(0x10ULL << 48 | 0x08ULL << 32)	/* user CS 0x23, SS 0x1b */

/* A u32 or u64 of @g's memory at guest-physical @gpa */
#define MEM32(g, gpa)	(*(uint32_t *)((g)->mem + (gpa)))
#define MEM64(g, gpa)	(*(uint64_t *)((g)->mem + (gpa)))

extern int kvm_fd;		/* /dev/kvm, opened by main() */

struct guest {
	int vm, vcpu, run_size;
	uint8_t *mem;
	struct kvm_run *run;
};

/* A VM with the layout above and one vCPU (CPUID as supported); guest_close() after. */
int guest_create(struct guest *g);
void guest_close(struct guest *g);
/* An interrupt gate to @handler, kernel code 0x08: a 32-bit gate, or a 64-bit one's low half */
uint64_t idt_gate(uint64_t handler);
/* 64-bit interrupt gate @vector of the IDT at G_IDT to @handler */
void guest_gate64(struct guest *g, int vector, uint64_t handler);
/*
 * Point the vCPU at @rip in 64-bit mode at CPL 0 (paging, the layout above), SYSCALL MSRs
 * STAR = G_STAR, LSTAR = @lstar, FMASK = @fmask, nothing pending; it does not run.
 */
int guest_long_mode(struct guest *g, uint64_t rip, uint64_t lstar, uint64_t fmask);
/* KVM_SET_MSRS of @n entries (at most 8), all of them or fail(). */
int set_msrs(int vcpu, const struct kvm_msr_entry *e, unsigned int n);
#define SET_MSRS(vcpu, ...)                                                         \
	set_msrs(vcpu, (const struct kvm_msr_entry[]){ __VA_ARGS__ },                \
		 sizeof((const struct kvm_msr_entry[]){ __VA_ARGS__ }) /              \
			 sizeof(struct kvm_msr_entry))
/* MSR @index of @vcpu as KVM_GET_MSRS shows it to the VMM, or fail(). */
int64_t get_msr(int vcpu, uint32_t index);

/* ------------------------------------------------------------ the nitro fd */

int pidfd_open(pid_t pid);
int pidfd_getfd(int pidfd, int fd);
struct kvm_nitro_attach attach_req(int pidfd, int vm_fd);
/* KVM_NITRO_ATTACH on a VM fd: the nitro fd, or -1 (errno) */
int attach_on_vm(int vm);
struct kvm_nitro_trap_config traps_req(uint32_t traps, uint32_t slots);
/* Bytes of the mapping of a ring of @slots: the header page, then the slots */
size_t ring_bytes(uint32_t slots);
/* The ring of @nitro (configured with @slots) mapped read-write, or NULL (fail()). */
struct kvm_nitro_ring_header *ring_map(int nitro, uint32_t slots);
void ring_unmap(struct kvm_nitro_ring_header *ring);
struct kvm_nitro_event *slot(struct kvm_nitro_ring_header *ring, uint64_t i);

/* ============================================= nitro_test's checks only */

/* Run check @name (unless the command line names others); prints its PASS or FAIL line. */
void check(const char *name, int (*fn)(void));
/* Each topic file's checks, in the order they run; main() runs the groups in this order. */
void attach_checks(void);	/* nitro_test_attach.c */
void config_checks(void);	/* nitro_test_config.c */
void syscall_checks(void);	/* nitro_test_syscall.c */
void sysenter_checks(void);	/* nitro_test_sysenter.c */
void sync_checks(void);		/* nitro_test_sync.c */
void completion_checks(void);	/* nitro_test_completion.c */

/* Seconds a scenario may take: microseconds of guest code, but nested under TCG */
#define RUN_DEADLINE	30

/*
 * The 64-bit guest program (nitro_test_guest.c), in the layout above.  It reports with
 * OUT to port 0x10: 1 = scenario done, 2 = the guest got #UD.
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
#define G_FMASK		0x47700	/* TF IF DF IOPL NT AC */

/*
 * The 32-bit legacy-mode guest program (nitro_test_guest.c).  AMD runs SYSENTER/SYSEXIT
 * only in legacy mode (long mode: #UD), so they are tested in 32-bit protected mode with
 * paging (one 4 MiB page maps 0..4 MiB identity: VMLOAD/VMSAVE need paging).  Same VM and
 * vCPU as the 64-bit guest, other pages: page directory 0x10000, GDT 0x11000 (0x08/0x10
 * kernel code/data, 0x1b/0x23 user code/data as SYSEXIT derives them from SYSENTER_CS
 * 0x08, 0x28 TSS), IDT 0x11800 (#UD, #GP), TSS 0x12000, data 0x13000, a VMCB page 0x14000,
 * code from 0x20000; stacks: kernel (TSS) below 0x1e0000, SYSENTER_ESP 0x1d0000, user
 * 0x1c0000.  Reports on port 0x10: 1 = scenario done, 2 = #UD, 3 = #GP.
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

/* Guest address of label @l of the 32-bit code */
#define G32(l)		(G32_CODE + (uint32_t)((l) - g32_code))

extern const uint8_t g32_code[], g32_code_end[], g32_kernel[], g32_sysexit_0[], g32_user[],
	g32_sysenter_39[], g32_user_1[], g32_sysenter_60[], g32_user_2[], g32_entry[], g32_sysexit_1[],
	g32_gp[], g32_ud[], g32_own_cs_zero[], g32_own_zero_sysenter[], g32_user_sysexit[],
	g32_user_cli[], g32_bad_selector[], g32_bad_selector_mov[], g32_vmload[];

/*
 * The one VM (with one vCPU) that every check running guest code uses, its data pages
 * zeroed by guest(): the emulated machine froze when checks created and destroyed many VMs.
 */
extern struct guest the_guest;
struct guest *guest(void);
/* KVM_RUN until the guest reports on port 0x10; returns what it reported, or -1. */
int guest_enter(struct guest *g);
/* Point the 64-bit guest at @rip (CPL 0), syscall MSRs set, without running it. */
int guest_set64(struct guest *g, uint64_t rip);
/* Run the guest from @rip at CPL 0; returns what it reported on port 0x10, or -1. */
int guest_run(struct guest *g, uint64_t rip);
/* Point the 32-bit guest at @rip (CPL 3 if @user), SYSENTER MSRs set, without running it. */
int guest_set32(struct guest *g, uint32_t rip, int user);
/* Run the 32-bit guest from @rip; returns what it reported on port 0x10, or -1. */
int guest_run32(struct guest *g, uint32_t rip, int user);
/* The guest's own SYSENTER_CS as KVM_GET_MSRS shows it to the VMM. */
int64_t guest_sysenter_cs(struct guest *g);

/* The 64-bit scenario (SYSRETQ, SYSCALL 39, SYSRETQ, SYSCALL 60); 1 when it completed. */
int scenario64(struct guest *g);
/* The 32-bit scenario (SYSEXIT, SYSENTER 39, SYSEXIT, SYSENTER 60); 1 when it completed. */
int scenario32(struct guest *g);

/* A nitro fd of a guest's VM with traps armed and its ring mapped. */
struct armed {
	int nitro;
	struct kvm_nitro_ring_header *ring;
};

/* Attach to @g's VM, arm @traps (asynchronous), map the ring of @slots. */
int arm(struct guest *g, uint32_t traps, uint32_t slots, struct armed *a);
/* The same with synchronous delivery. */
int arm_sync(struct guest *g, uint32_t traps, uint32_t slots, struct armed *a);
/* Unmap the ring and close the nitro fd: the traps are released. */
void disarm(struct armed *a);

/* Check 64-bit event @i of the ring: its type, where it trapped and what it carried. */
int expect_event(struct kvm_nitro_ring_header *ring, uint64_t i, uint64_t seq,
		 uint16_t type, uint64_t rip, uint64_t rax);
/* Check 32-bit event @i of the ring: its type, where it trapped and what it carried. */
int expect_event32(struct kvm_nitro_ring_header *ring, uint64_t i, uint64_t seq,
		   uint16_t type, uint32_t rip, uint64_t rax, uint32_t rdx);
/* The events of one scenario32 run from ring slot @i (seq @seq) on; @filtered: no 60. */
int expect_scenario32(struct kvm_nitro_ring_header *ring, uint64_t i, uint64_t seq,
		      int filtered);

/*
 * Fork a tracer: a child that takes @g's VM fd from this process with pidfd_getfd (a
 * tracer's path to the VMM's VM), attaches, sets @c, maps the ring's first page into
 * @ring and writes a byte to @up[1] (it _exit()s non-zero if a step fails); this process
 * waits for that byte.  Returns 0 in the child, the child's pid here, or -1.
 */
pid_t tracer_fork(struct guest *g, const struct kvm_nitro_trap_config *c, int up[2],
		  struct kvm_nitro_ring_header **ring);
/*
 * The tracer arms @traps, the guest runs @scenario trapped (4 events), the tracer goes
 * (@kill_it: SIGKILL; otherwise it closes its fd and exits): the guest must run on.
 */
int tracer_dies(int kill_it, uint32_t traps, int (*scenario)(struct guest *));

#endif
