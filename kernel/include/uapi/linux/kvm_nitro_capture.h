/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kvm_nitro_capture.h - trap-time capture of the Nitro extension of KVM: with each
 * event the kernel writes the current task (pid, tgid, comm) and the guest memory the
 * system call's arguments point at (paths, written and read buffers, structs) into the
 * event's ring slot, after the fixed struct kvm_nitro_event, so that the tracer decodes
 * strace's lines without reading guest memory itself.
 *
 * An addition to kvm_nitro.h: no struct of kvm_nitro.h changes; one new ioctl, one new
 * event flag.  Same layout rules (fixed widths, natural alignment, explicit padding,
 * sizes multiples of 8, padding and reserved fields zero or EINVAL, version + size
 * first).  Checked by tests/test_capture_abi.py under gcc -m64 and -m32 against the
 * Python mirror libvirt_nitro/abi/recipe.py and libvirt_nitro/abi/capture.py.
 *
 * The recipe (KVM_NITRO_SET_RECIPE on the nitro fd, before KVM_NITRO_SET_TRAPS creates
 * the ring; EBUSY once the ring exists)
 * -------------------------------------------------------------------------------------
 * struct kvm_nitro_recipe says how to find the current task and gives @nr_rules rules
 * (struct kvm_nitro_capture_rule, at user address @rules), sorted by (nr, when,
 * their order in the array: the order of the records).  Userspace derives them from the
 * decoder's one signature table (libvirt_nitro/strace/recipe.py); the kernel never
 * interprets a system call itself.
 *
 * Current task.  At a trapped SYSCALL the guest has not executed entry_SYSCALL_64's
 * SWAPGS yet, and at a trapped SYSRETQ/SYSRETL it has already executed the SWAPGS just
 * before it (arch/x86/entry/entry_64.S, entry_64_compat.S of Linux 6.1): in both the
 * active GS base is the user's and MSR_KERNEL_GS_BASE holds the CPU's per-CPU base.
 * So @gs_at_entry = @gs_at_exit = KVM_NITRO_GS_KERNEL_GS_BASE for Linux, and
 *	task = *(u64 *)(gs + @current_task);
 *	pid  = *(s32 *)(task + @task_pid);   tgid = *(s32 *)(task + @task_tgid);
 *	comm = task + @task_comm, @task_comm_len bytes (<= 16);
 * read through the vCPU's MMU at the trap.  With page-table isolation the user CR3
 * maps no kernel memory: the kernel reads with the kernel half of the PGD pair (CR3
 * with bit 12, PTI_USER_PGTABLE_BIT, cleared) when the first read fails.
 *
 * Call number.  At SYSCALL it is rax.  At SYSRET rax is the result; the number is the
 * task's pt_regs->orig_ax (a thread may enter on one vCPU and return on another, so
 * nothing kept per vCPU will do):
 *	nr = *(u64 *)(*(u64 *)(task + @task_stack) + @stack_orig_ax);
 * @stack_orig_ax = THREAD_SIZE - sizeof(struct pt_regs) + offsetof(struct pt_regs,
 * orig_ax) (16384 - 168 + 120 = 16336 on x86-64 without KASAN).  Unreadable, or >=
 * KVM_NITRO_FILTER_NR: no records, KVM_NITRO_CAPTURE_H_NO_NR in the header.
 *
 * Rules are x86-64 numbers: they apply to SYSCALL and SYSRET events of 64-bit code
 * (KVM_NITRO_EVENT_F_LONG_MODE); any other event (SYSENTER, SYSEXIT, a SYSCALL from
 * 32-bit code) gets the header (task, no records).
 *
 * Captures.  For an event of call @nr every rule with that @nr
 * and @when (ENTRY at SYSCALL, EXIT at SYSRET) in array order gives at most one
 * record, or several (STRV, IOV).  At SYSRET Linux has restored rdi, rsi, rdx, r10, r8
 * and r9, so a rule's registers are the event's own.  reg(i) is the argument register
 * i: 0 rdi, 1 rsi, 2 rdx, 3 r10, 4 r8, 5 r9, 6 rsp.  The pointer is
 * address = reg(@arg) + @offset (64-bit wrap); a rule whose reg(@arg) is 0 gives no
 * record (a NULL pointer is printed as NULL without reading).
 *	STRING	a NUL-terminated string: bytes up to and with the first NUL, at most
 *		@size bytes (no NUL among them: F_TRUNCATED).
 *	FIXED	@size bytes.
 *	ARG	n = (reg(@count_arg) + (1 << @count_shift) - 1) >> @count_shift elements
 *		(u64 arithmetic, saturating) of @size bytes; at most @max_count elements
 *		(0: no limit but the budget), beyond: F_TRUNCATED.
 *	RET	as ARG with n = max(rax, 0) (rax signed, the return value); EXIT only.
 *	STRV	a NULL-terminated array of pointers (argv): the u64s up to and with the
 *		first 0, at most @max_count of them (0: the budget), F_TRUNCATED when the
 *		last is not 0; then, when @size > 0, for each non-NULL pointer p among them
 *		in order, a record of the STRING at p of at most @size bytes.
 *	IOV	n = reg(@count_arg) struct iovec { u64 base; u64 len; } (at most
 *		@max_count, 0: the budget) as one record; then for each iovec with base != 0
 *		and len != 0 in order, a record of min(len, @size) bytes at base.
 * Reads go page by page through the vCPU's MMU; a page not present (or a guest page
 * fault of any kind) ends the record there with F_UNREADABLE: never a fault injected,
 * never a page brought in.  A record whose first byte is unreadable has @length 0.
 *
 * Budget.  The capture area of a slot (header + records + data + padding) is at most
 * @event_budget bytes; @slot_size >= sizeof(struct kvm_nitro_event) + @event_budget,
 * a multiple of 8, is the ring's slot size (replacing the default).  Before each record
 * the kernel computes room = @event_budget - used - 16 (bytes of data that fit, rounded
 * down to 8); room < 0: no more records (F_BUDGET in the header); else the record's
 * length is min(wanted, room) with F_BUDGET on the record when that cut it.
 *
 * Slot layout (the capture format)
 * --------------------------------
 * An event with KVM_NITRO_EVENT_F_CAPTURE in its flags has at offset event.size of its
 * slot a struct kvm_nitro_capture_header, then @nr_records records: each a
 * struct kvm_nitro_capture (16 bytes) followed by @length bytes of guest memory, then
 * zero bytes up to the next multiple of 8.  @bytes counts the records with their data
 * and padding (the header excluded).  Records are in rule order.  A reader looks up a
 * guest range in the records of the one event: bytes in a record are the guest's at the
 * trap; anything else is unknown (printed as the address, as strace prints memory it
 * cannot read).
 */
#ifndef _UAPI_LINUX_KVM_NITRO_CAPTURE_H
#define _UAPI_LINUX_KVM_NITRO_CAPTURE_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/kvm.h>
#include <linux/kvm_nitro.h>

#define KVM_NITRO_RECIPE_VERSION	1

/* kvm_nitro_event.flags: a struct kvm_nitro_capture_header follows the event */
#define KVM_NITRO_EVENT_F_CAPTURE	(1 << 4)

/* kvm_nitro_recipe.gs_at_entry / gs_at_exit: the register holding the per-CPU base */
#define KVM_NITRO_GS_NONE		0 /* no task capture */
#define KVM_NITRO_GS_GS_BASE		1 /* MSR_GS_BASE (the active GS) */
#define KVM_NITRO_GS_KERNEL_GS_BASE	2 /* MSR_KERNEL_GS_BASE (Linux at SYSCALL/SYSRET) */

/* kvm_nitro_capture_rule.when */
#define KVM_NITRO_CAPTURE_ENTRY		1 /* at SYSCALL/SYSENTER */
#define KVM_NITRO_CAPTURE_EXIT		2 /* at SYSRET/SYSEXIT */

/* kvm_nitro_capture_rule.kind (and kvm_nitro_capture.kind) */
#define KVM_NITRO_CAPTURE_STRING	1
#define KVM_NITRO_CAPTURE_FIXED		2
#define KVM_NITRO_CAPTURE_ARG		3
#define KVM_NITRO_CAPTURE_RET		4
#define KVM_NITRO_CAPTURE_STRV		5
#define KVM_NITRO_CAPTURE_IOV		6

/* kvm_nitro_capture_rule.arg / count_arg: 0..5 the argument registers, 6 rsp */
#define KVM_NITRO_CAPTURE_REG_RSP	6

/*
 * One capture rule.  24 bytes.
 */
struct kvm_nitro_capture_rule {
	__u16 nr;		/* system call number (rax at SYSCALL), < KVM_NITRO_FILTER_NR */
	__u8  when;		/* KVM_NITRO_CAPTURE_ENTRY or _EXIT */
	__u8  arg;		/* register holding the pointer: 0..6 */
	__u8  kind;		/* KVM_NITRO_CAPTURE_* */
	__u8  count_arg;	/* ARG, IOV: register holding the count; else 0 */
	__u8  count_shift;	/* ARG: the count is reg(count_arg) rounded up >> this */
	__u8  pad0;
	__s32 offset;		/* added to reg(arg) */
	__u32 size;		/* see the kinds above */
	__u32 max_count;	/* ARG, RET, STRV, IOV: most elements; 0: the budget */
	__u32 reserved;
};

/*
 * The capture recipe of one VM.  96 bytes.  Every offset comes from the guest
 * kernel's BTF (libvirt_nitro/linux/layout.py).
 */
struct kvm_nitro_recipe {
	__u16 version;		/* KVM_NITRO_RECIPE_VERSION */
	__u16 size;		/* sizeof(struct kvm_nitro_recipe) */
	__u32 flags;		/* none yet: 0 */
	__u8  gs_at_entry;	/* KVM_NITRO_GS_*: the per-CPU base at SYSCALL/SYSENTER */
	__u8  gs_at_exit;	/* KVM_NITRO_GS_*: at SYSRET/SYSEXIT */
	__u16 task_comm_len;	/* bytes of task_struct.comm (TASK_COMM_LEN, <= 16) */
	__u32 task_pid;		/* offsetof(struct task_struct, pid) */
	__u32 task_tgid;	/* offsetof(struct task_struct, tgid) */
	__u32 task_comm;	/* offsetof(struct task_struct, comm) */
	__u64 current_task;	/* per-CPU offset of current_task (from the GS base) */
	__u32 task_stack;	/* offsetof(struct task_struct, stack) */
	__u32 stack_orig_ax;	/* offset of pt_regs.orig_ax from task->stack */
	__u32 event_budget;	/* most bytes of capture area per slot */
	__u32 slot_size;	/* ring slot size, >= sizeof(kvm_nitro_event) + budget */
	__u32 nr_rules;		/* struct kvm_nitro_capture_rule at @rules */
	__u32 pad0;
	__u64 rules;		/* user pointer to the rules */
	__u64 reserved[4];
};

/* kvm_nitro_capture_header.flags */
#define KVM_NITRO_CAPTURE_H_TASK	(1 << 0) /* pid, tgid and comm are valid */
#define KVM_NITRO_CAPTURE_H_BUDGET	(1 << 1) /* records left out for the budget */
#define KVM_NITRO_CAPTURE_H_NO_NR	(1 << 2) /* the call's number unknown: no records */

/*
 * What the kernel writes after a kvm_nitro_event flagged KVM_NITRO_EVENT_F_CAPTURE.
 * 48 bytes.
 */
struct kvm_nitro_capture_header {
	__u16 version;		/* KVM_NITRO_RECIPE_VERSION */
	__u16 size;		/* sizeof(struct kvm_nitro_capture_header) */
	__u32 flags;		/* KVM_NITRO_CAPTURE_H_* */
	__u32 nr_records;	/* struct kvm_nitro_capture records that follow */
	__u32 bytes;		/* their bytes, data and padding included */
	__s32 pid;		/* task_struct.pid: the thread id */
	__s32 tgid;		/* task_struct.tgid: the process id */
	__u8  comm[16];		/* task_struct.comm, NUL-padded */
	__u16 nr;		/* the call's number (at SYSRET: orig_ax) */
	__u16 pad0;
	__u32 reserved;
};

/* kvm_nitro_capture.flags */
#define KVM_NITRO_CAPTURE_F_UNREADABLE	(1 << 0) /* stopped at an unreadable page */
#define KVM_NITRO_CAPTURE_F_TRUNCATED	(1 << 1) /* stopped at the rule's limit */
#define KVM_NITRO_CAPTURE_F_BUDGET	(1 << 2) /* stopped at the event budget */

/*
 * One captured range: @length bytes of guest-virtual memory at @address follow, then
 * zero padding to a multiple of 8.  16 bytes.
 */
struct kvm_nitro_capture {
	__u64 address;		/* guest-virtual */
	__u32 length;		/* bytes captured */
	__u8  arg;		/* the rule's register */
	__u8  kind;		/* the rule's KVM_NITRO_CAPTURE_* (STRING for STRV's strings,
				 * FIXED for IOV's buffers) */
	__u16 flags;		/* KVM_NITRO_CAPTURE_F_* */
};

/* Set the capture recipe (nitro fd, before KVM_NITRO_SET_TRAPS; @nr_rules 0: none) */
#define KVM_NITRO_SET_RECIPE	_IOW(KVMIO, 0xf5, struct kvm_nitro_recipe)

#endif /* _UAPI_LINUX_KVM_NITRO_CAPTURE_H */
