/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kvm_nitro.h - userspace ABI of the Nitro extension of KVM: trap the system-call
 * instructions of a guest (SYSCALL/SYSRET with EFER.SCE cleared raise #UD,
 * SYSENTER/SYSEXIT with SYSENTER_CS = 0 raise #GP), record one event per trapped
 * instruction carrying the guest's registers, complete the instruction on the
 * guest's behalf, and hand the events to a tracer through a ring of fixed-size slots.
 *
 * Layout rules (checked by tests/test_abi.py under gcc -m64, gcc -m32 and cffi):
 * every field is a fixed-width __u8..__u64 (no enum, no bool, no pointer, no long);
 * every member sits at its natural alignment with explicit padding; every struct
 * size is a multiple of 8; no implicit padding anywhere.  Padding and reserved
 * fields must be written as zero: the kernel rejects a request whose padding or
 * reserved bytes are non-zero with EINVAL (as KVMI does), so they can be given a
 * meaning later without a new ioctl.
 *
 * Versioning (as Xen's vm_event.h and KVMI): every struct starts with a version and
 * a size.  Userspace writes KVM_NITRO_ABI_VERSION and sizeof() of the struct it was
 * built with; the kernel rejects an unknown version (EPROTO) and a size smaller than
 * its version-1 size (EINVAL), and never writes more than @size bytes back.  The
 * kernel stamps every event with its own version and size; a reader skips fields
 * beyond the size it knows.
 *
 * Choice of numbers
 * -----------------
 * Ioctls use KVM's own type KVMIO (0xAE) so that they are dispatched by the KVM
 * fds, with command numbers 0xf0..0xf4.  In upstream <linux/kvm.h> the command
 * numbers of type KVMIO are allocated upwards from 0x00 (system), 0x40 (VM) and
 * 0x80 (vCPU); the highest in Linux 6.1 (the installed /usr/include/linux/kvm.h and
 * the Debian guest kernel) is 0xe3 (KVM_HAS_DEVICE_ATTR), and the highest in later
 * kernels up to 6.1x is 0xd5 (KVM_PRE_FAULT_MEMORY) below the 0xe0..0xe3 device
 * block.  Old Nitro used 0xe0..0xe3, which are KVM_CREATE_DEVICE and
 * KVM_{SET,GET,HAS}_DEVICE_ATTR; 0xf0..0xff are unused by every kernel so far.
 * tests/test_abi.py compiles <linux/kvm.h> and fails if any KVMIO command number
 * there equals one of ours (not only the full ioctl value: the number alone).
 *
 * KVM_CAP_NITRO is 0x4e49 ("NI").  Upstream capabilities are allocated sequentially
 * (223 in 6.1, about 240 by 6.18); a number this far above them will not be reached
 * by upstream allocation, and KVM_CHECK_EXTENSION on a stock kernel returns 0 for it.
 *
 * Objects and calls
 * -----------------
 *  /dev/kvm fd   KVM_NITRO_ATTACH (struct kvm_nitro_attach): attach to the VM of
 *                another process (the VMM, named by a pidfd; the caller needs
 *                PTRACE_MODE_ATTACH_REALCREDS on it).  Returns a new "nitro fd".
 *                Also accepted on a VM fd with pidfd = -1: attach to that VM.
 *  nitro fd      KVM_NITRO_SET_TRAPS / KVM_NITRO_GET_TRAPS (struct
 *                kvm_nitro_trap_config): which instructions to trap, synchronous
 *                or asynchronous delivery, syscall-number filter, ring size.
 *                KVM_NITRO_SET_EVENTFD (struct kvm_nitro_eventfd): an eventfd the
 *                kernel signals when the ring goes from empty to non-empty.
 *                KVM_NITRO_CONTINUE (struct kvm_nitro_continue): synchronous mode:
 *                let the vCPU that produced event @seq run on.
 *                mmap(offset KVM_NITRO_RING_PGOFF): the ring (struct
 *                kvm_nitro_ring_header, then the slots at @data_offset).
 *                close(): every trap is released and each vCPU gets its own EFER
 *                and SYSENTER_CS back; the guest runs on untraced.
 */
#ifndef _UAPI_LINUX_KVM_NITRO_H
#define _UAPI_LINUX_KVM_NITRO_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/kvm.h>

#define KVM_NITRO_ABI_VERSION	1

/* KVM_CHECK_EXTENSION(KVM_CAP_NITRO) returns KVM_NITRO_ABI_VERSION, or 0 */
#define KVM_CAP_NITRO		0x4e49

/* ---------------------------------------------------------------- events */

/* kvm_nitro_event.type: the trapped instruction */
#define KVM_NITRO_EVENT_SYSCALL		1
#define KVM_NITRO_EVENT_SYSRET		2
#define KVM_NITRO_EVENT_SYSENTER	3
#define KVM_NITRO_EVENT_SYSEXIT		4

/* kvm_nitro_event.flags */
#define KVM_NITRO_EVENT_F_SYNC		(1 << 0) /* vCPU waits for KVM_NITRO_CONTINUE */
#define KVM_NITRO_EVENT_F_LONG_MODE	(1 << 1) /* CS.L: the guest ran 64-bit code */
#define KVM_NITRO_EVENT_F_REX_W		(1 << 2) /* SYSRETQ/SYSEXITQ (64-bit return) */
#define KVM_NITRO_EVENT_F_RF_CLEARED	(1 << 3) /* RF taken out of the saved rflags */

/*
 * The guest's registers at the trapped instruction, before it is completed:
 * rip points at the SYSCALL/SYSRET/SYSENTER/SYSEXIT itself.  Segment fields are
 * selectors.  280 bytes.
 */
struct kvm_nitro_regs {
	__u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	__u64 r8, r9, r10, r11, r12, r13, r14, r15;
	__u64 rip;
	__u64 rflags;
	__u64 cr0;
	__u64 cr2;
	__u64 cr3;
	__u64 cr4;
	__u64 efer;		/* the guest's own view: SCE as the guest set it */
	__u64 fs_base;
	__u64 gs_base;
	__u64 kernel_gs_base;
	__u64 star;
	__u64 lstar;
	__u64 cstar;
	__u64 sfmask;		/* MSR_SYSCALL_MASK (FMASK) */
	__u64 sysenter_cs;
	__u64 sysenter_esp;
	__u64 sysenter_eip;
	__u16 cs;
	__u16 ss;
	__u16 ds;
	__u16 es;
	__u16 fs;
	__u16 gs;
	__u16 pad[2];
};

/*
 * One trapped instruction.  384 bytes in version 1.
 *
 * @seq counts every event the ring's producer generated, including events it had
 * to drop, starting at 0: a gap between consecutive @seq values a reader sees is
 * exactly the number of events lost there.  @timestamp_ns is CLOCK_MONOTONIC
 * (ktime_get_ns()) at the VM exit.
 */
struct kvm_nitro_event {
	__u16 version;		/* KVM_NITRO_ABI_VERSION */
	__u16 size;		/* sizeof(struct kvm_nitro_event) of the producer */
	__u32 vcpu_id;
	__u16 type;		/* KVM_NITRO_EVENT_* */
	__u16 flags;		/* KVM_NITRO_EVENT_F_* */
	__u32 pad0;
	__u64 seq;
	__u64 timestamp_ns;
	struct kvm_nitro_regs regs;
	__u64 reserved[9];
};

/* ------------------------------------------------------------------ ring */

/*
 * The ring shared by the kernel (single producer for all vCPUs, under a lock) and
 * the tracer (single consumer).  The header sits at offset 0 of the mapping; slot
 * i (0 <= i < slot_count) at data_offset + i * slot_size.  slot_count is a power of
 * two, slot_size a multiple of 8 and >= the producer's sizeof(struct
 * kvm_nitro_event).
 *
 * @producer and @consumer are free-running 64-bit counts (never wrapped modulo
 * slot_count): the ring holds producer - consumer events, the next to read sits
 * in slot consumer % slot_count.  The producer writes a slot, then publishes it
 * with a store-release of @producer; the consumer load-acquires @producer, copies
 * the slot out, then store-releases @consumer.  Only the producer writes
 * @producer and @dropped, only the consumer writes @consumer.
 *
 * Wake-ups (poll() on the nitro fd, the eventfd): the producer signals when, after
 * publishing and a full memory barrier, it reads a @consumer equal to the producer
 * count before its event (the consumer had read everything and may sleep).  So a
 * consumer, after storing @consumer, issues a full memory barrier (e.g.
 * __atomic_thread_fence(__ATOMIC_SEQ_CST)) and loads @producer again before it
 * sleeps; without the two barriers each side can miss the other's store and the
 * consumer sleeps on a non-empty ring that is never signalled again.
 *
 * Overflow: when producer - consumer == slot_count the producer does not overwrite
 * unread slots; it drops the new event and increments @dropped (the event's @seq
 * is still consumed).  A reader detects overflow two ways: @dropped grew since it
 * last looked (how many), and the @seq of the events it reads jump (where).
 * Nothing is ever lost silently.
 */
struct kvm_nitro_ring_header {
	__u32 version;		/* KVM_NITRO_ABI_VERSION */
	__u32 header_size;	/* sizeof(struct kvm_nitro_ring_header) */
	__u32 slot_size;	/* bytes per slot */
	__u32 slot_count;	/* slots; a power of two */
	__u64 data_offset;	/* offset of slot 0 from the start of the mapping */
	__u64 producer;		/* events written (free-running) */
	__u64 consumer;		/* events read (free-running) */
	__u64 dropped;		/* events lost because the ring was full */
	__u64 reserved[2];
};

/* mmap() page offset of the ring on a nitro fd */
#define KVM_NITRO_RING_PGOFF	0

/* ------------------------------------------------------------- requests */

/* kvm_nitro_trap_config.traps: instructions to trap */
#define KVM_NITRO_TRAP_SYSCALL		(1 << 0)
#define KVM_NITRO_TRAP_SYSRET		(1 << 1)
#define KVM_NITRO_TRAP_SYSENTER		(1 << 2)
#define KVM_NITRO_TRAP_SYSEXIT		(1 << 3)
#define KVM_NITRO_TRAP_ALL		0xf

/* kvm_nitro_trap_config.delivery */
#define KVM_NITRO_DELIVERY_ASYNC	0 /* emulate in the kernel, vCPU runs on */
#define KVM_NITRO_DELIVERY_SYNC		1 /* vCPU waits for KVM_NITRO_CONTINUE */

/* kvm_nitro_trap_config.flags */
#define KVM_NITRO_FILTER_ENABLE		(1 << 0) /* report only syscalls in the bitmap */
#define KVM_NITRO_FILTER_ABOVE		(1 << 1) /* ...and numbers >= KVM_NITRO_FILTER_NR */

/* syscall numbers (rax at the trap) covered by the filter bitmap */
#define KVM_NITRO_FILTER_NR		512

/*
 * Trap configuration of one VM (every vCPU).  traps = 0 releases every trap.
 * The filter selects which events are reported, not which instructions are
 * trapped-and-completed: a filtered-out syscall is still completed.  Bit n of
 * syscall_filter (word n / 64, bit n % 64) reports rax == n.  128 bytes.
 */
struct kvm_nitro_trap_config {
	__u16 version;
	__u16 size;
	__u32 traps;		/* KVM_NITRO_TRAP_* */
	__u32 delivery;		/* KVM_NITRO_DELIVERY_* */
	__u32 flags;		/* KVM_NITRO_FILTER_* */
	__u32 ring_slots;	/* slot count wanted (power of two), 0: default */
	__u32 pad0;
	__u64 syscall_filter[KVM_NITRO_FILTER_NR / 64];
	__u64 reserved[5];
};

/*
 * Attach to the VM of another process.  @pidfd names the VMM (pidfd_open()), @vm_fd
 * is the number of its kvm-vm fd in that process (as in /proc/PID/fd), or -1 for its
 * only VM.  Issued on a VM fd, @pidfd = -1 and @vm_fd = -1 mean that VM.  64 bytes.
 */
struct kvm_nitro_attach {
	__u16 version;
	__u16 size;
	__u32 flags;		/* none yet: 0 */
	__s32 pidfd;
	__s32 vm_fd;
	__u64 reserved[6];
};

/* Signal @fd (an eventfd) when the ring goes non-empty; @fd = -1 stops.  16 bytes. */
struct kvm_nitro_eventfd {
	__s32 fd;
	__u32 flags;		/* none yet: 0 */
	__u64 reserved;
};

/* Synchronous delivery: let the vCPU that produced event @seq run on.  32 bytes. */
struct kvm_nitro_continue {
	__u64 seq;
	__u32 vcpu_id;
	__u32 flags;		/* KVM_NITRO_CONTINUE_F_* */
	__u64 reserved[2];
};

/* kvm_nitro_continue.flags */
#define KVM_NITRO_CONTINUE_F_SKIP	(1 << 0) /* do not complete; deliver #UD/#GP */

#define KVM_NITRO_ATTACH	_IOW(KVMIO, 0xf0, struct kvm_nitro_attach)
#define KVM_NITRO_SET_TRAPS	_IOW(KVMIO, 0xf1, struct kvm_nitro_trap_config)
#define KVM_NITRO_GET_TRAPS	_IOR(KVMIO, 0xf2, struct kvm_nitro_trap_config)
#define KVM_NITRO_SET_EVENTFD	_IOW(KVMIO, 0xf3, struct kvm_nitro_eventfd)
#define KVM_NITRO_CONTINUE	_IOW(KVMIO, 0xf4, struct kvm_nitro_continue)

#endif /* _UAPI_LINUX_KVM_NITRO_H */
