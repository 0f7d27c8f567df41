"""cdef of ``kernel/include/uapi/linux/kvm_nitro.h``, the Nitro extension's ABI.

The structs are ours, so they are declared completely (every field, no ``...;``):
the compiler then checks each field's offset and each struct's size against the
header, and the cdef is the one Python view of the ABI.
"""

from __future__ import annotations

__all__ = ["INCLUDES", "TYPES", "FUNCTIONS", "CUSTOMIZATIONS", "IOCTLS"]

INCLUDES = """
#include <linux/kvm_nitro.h>
"""

#: The ioctls of kvm_nitro.h (see wrappers.Ioctl).
IOCTLS = [
    ("KVM_NITRO_ATTACH", "ptr", "struct kvm_nitro_attach"),
    ("KVM_NITRO_SET_TRAPS", "ptr", "struct kvm_nitro_trap_config"),
    ("KVM_NITRO_GET_TRAPS", "ptr", "struct kvm_nitro_trap_config"),
    ("KVM_NITRO_SET_EVENTFD", "ptr", "struct kvm_nitro_eventfd"),
    ("KVM_NITRO_CONTINUE", "ptr", "struct kvm_nitro_continue"),
]

TYPES = """
#define KVM_NITRO_ABI_VERSION ...
#define KVM_CAP_NITRO ...

#define KVM_NITRO_EVENT_SYSCALL ...
#define KVM_NITRO_EVENT_SYSRET ...
#define KVM_NITRO_EVENT_SYSENTER ...
#define KVM_NITRO_EVENT_SYSEXIT ...

#define KVM_NITRO_EVENT_F_SYNC ...
#define KVM_NITRO_EVENT_F_LONG_MODE ...
#define KVM_NITRO_EVENT_F_REX_W ...
#define KVM_NITRO_EVENT_F_RF_CLEARED ...

#define KVM_NITRO_RING_PGOFF ...

#define KVM_NITRO_TRAP_SYSCALL ...
#define KVM_NITRO_TRAP_SYSRET ...
#define KVM_NITRO_TRAP_SYSENTER ...
#define KVM_NITRO_TRAP_SYSEXIT ...
#define KVM_NITRO_TRAP_ALL ...
#define KVM_NITRO_DELIVERY_ASYNC ...
#define KVM_NITRO_DELIVERY_SYNC ...
#define KVM_NITRO_FILTER_ENABLE ...
#define KVM_NITRO_FILTER_ABOVE ...
#define KVM_NITRO_FILTER_NR ...
#define KVM_NITRO_CONTINUE_F_SKIP ...

#define KVM_NITRO_ATTACH ...
#define KVM_NITRO_SET_TRAPS ...
#define KVM_NITRO_GET_TRAPS ...
#define KVM_NITRO_SET_EVENTFD ...
#define KVM_NITRO_CONTINUE ...

struct kvm_nitro_regs {
    __u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    __u64 r8, r9, r10, r11, r12, r13, r14, r15;
    __u64 rip;
    __u64 rflags;
    __u64 cr0;
    __u64 cr2;
    __u64 cr3;
    __u64 cr4;
    __u64 efer;
    __u64 fs_base;
    __u64 gs_base;
    __u64 kernel_gs_base;
    __u64 star;
    __u64 lstar;
    __u64 cstar;
    __u64 sfmask;
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

struct kvm_nitro_event {
    __u16 version;
    __u16 size;
    __u32 vcpu_id;
    __u16 type;
    __u16 flags;
    __u32 pad0;
    __u64 seq;
    __u64 timestamp_ns;
    struct kvm_nitro_regs regs;
    __u64 reserved[9];
};

struct kvm_nitro_ring_header {
    __u32 version;
    __u32 header_size;
    __u32 slot_size;
    __u32 slot_count;
    __u64 data_offset;
    __u64 producer;
    __u64 consumer;
    __u64 dropped;
    __u64 reserved[2];
};

struct kvm_nitro_trap_config {
    __u16 version;
    __u16 size;
    __u32 traps;
    __u32 delivery;
    __u32 flags;
    __u32 ring_slots;
    __u32 pad0;
    __u64 syscall_filter[8];
    __u64 reserved[5];
};

struct kvm_nitro_attach {
    __u16 version;
    __u16 size;
    __u32 flags;
    __s32 pidfd;
    __s32 vm_fd;
    __u64 reserved[6];
};

struct kvm_nitro_eventfd {
    __s32 fd;
    __u32 flags;
    __u64 reserved;
};

struct kvm_nitro_continue {
    __u64 seq;
    __u32 vcpu_id;
    __u32 flags;
    __u64 reserved[2];
};
"""

#: The ring's full memory barrier (see the wake-up rule in kvm_nitro.h); the ioctl
#: wrappers are added by build.py from IOCTLS.
FUNCTIONS = """
void nitro_ring_fence(void);
"""

CUSTOMIZATIONS = """
static void nitro_ring_fence(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
"""
