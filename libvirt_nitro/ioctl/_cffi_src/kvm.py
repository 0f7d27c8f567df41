"""cdef of ``<linux/kvm.h>``: the structs, constants and ioctls libvirt-nitro uses.

Structs the project reads field by field are declared with the fields it uses and a
trailing ``...;`` where the header has more, so cffi takes sizes and offsets from the
compiler, never from this file.
"""

from __future__ import annotations

__all__ = ["INCLUDES", "TYPES", "FUNCTIONS", "CUSTOMIZATIONS", "IOCTLS"]

INCLUDES = """
#include <errno.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>
"""

#: The ioctls of linux/kvm.h bound here (see wrappers.Ioctl).
IOCTLS = [
    ("KVM_GET_API_VERSION", "none", ""),
    ("KVM_CREATE_VM", "int", ""),
    ("KVM_CHECK_EXTENSION", "int", ""),
    ("KVM_GET_VCPU_MMAP_SIZE", "none", ""),
    ("KVM_CREATE_VCPU", "int", ""),
    ("KVM_SET_USER_MEMORY_REGION", "ptr", "struct kvm_userspace_memory_region"),
    ("KVM_ENABLE_CAP", "ptr", "struct kvm_enable_cap"),
    ("KVM_X86_SET_MSR_FILTER", "ptr", "struct kvm_msr_filter"),
    ("KVM_RUN", "none", ""),
    ("KVM_GET_REGS", "ptr", "struct kvm_regs"),
    ("KVM_SET_REGS", "ptr", "struct kvm_regs"),
    ("KVM_GET_SREGS", "ptr", "struct kvm_sregs"),
    ("KVM_SET_SREGS", "ptr", "struct kvm_sregs"),
    ("KVM_GET_MSRS", "ptr", "struct kvm_msrs"),
    ("KVM_SET_MSRS", "ptr", "struct kvm_msrs"),
    ("KVM_SET_GUEST_DEBUG", "ptr", "struct kvm_guest_debug"),
]

TYPES = """
typedef int... __u8;
typedef int... __u16;
typedef int... __u32;
typedef int... __u64;
typedef int... __s32;
typedef int... __s64;

#define KVMIO ...
#define KVM_API_VERSION ...

#define KVM_CAP_USER_MEMORY ...
#define KVM_CAP_SET_GUEST_DEBUG ...
#define KVM_CAP_NR_VCPUS ...
#define KVM_CAP_MAX_VCPUS ...
#define KVM_CAP_X86_USER_SPACE_MSR ...
#define KVM_CAP_X86_MSR_FILTER ...

#define KVM_EXIT_UNKNOWN ...
#define KVM_EXIT_EXCEPTION ...
#define KVM_EXIT_IO ...
#define KVM_EXIT_HLT ...
#define KVM_EXIT_DEBUG ...
#define KVM_EXIT_MMIO ...
#define KVM_EXIT_SHUTDOWN ...
#define KVM_EXIT_FAIL_ENTRY ...
#define KVM_EXIT_INTR ...
#define KVM_EXIT_INTERNAL_ERROR ...
#define KVM_EXIT_X86_RDMSR ...
#define KVM_EXIT_X86_WRMSR ...
#define KVM_EXIT_IO_IN ...
#define KVM_EXIT_IO_OUT ...

#define KVM_GUESTDBG_ENABLE ...
#define KVM_GUESTDBG_SINGLESTEP ...
#define KVM_GUESTDBG_USE_SW_BP ...
#define KVM_GUESTDBG_USE_HW_BP ...
#define KVM_GUESTDBG_INJECT_DB ...
#define KVM_GUESTDBG_INJECT_BP ...

#define KVM_MSR_EXIT_REASON_INVAL ...
#define KVM_MSR_EXIT_REASON_UNKNOWN ...
#define KVM_MSR_EXIT_REASON_FILTER ...
#define KVM_MSR_FILTER_MAX_RANGES ...
#define KVM_MSR_FILTER_READ ...
#define KVM_MSR_FILTER_WRITE ...
#define KVM_MSR_FILTER_DEFAULT_ALLOW ...
#define KVM_MSR_FILTER_DEFAULT_DENY ...

#define KVM_GET_API_VERSION ...
#define KVM_CREATE_VM ...
#define KVM_CHECK_EXTENSION ...
#define KVM_GET_VCPU_MMAP_SIZE ...
#define KVM_CREATE_VCPU ...
#define KVM_SET_USER_MEMORY_REGION ...
#define KVM_ENABLE_CAP ...
#define KVM_X86_SET_MSR_FILTER ...
#define KVM_RUN ...
#define KVM_GET_REGS ...
#define KVM_SET_REGS ...
#define KVM_GET_SREGS ...
#define KVM_SET_SREGS ...
#define KVM_GET_MSRS ...
#define KVM_SET_MSRS ...
#define KVM_SET_GUEST_DEBUG ...

struct kvm_regs {
    __u64 rax, rbx, rcx, rdx;
    __u64 rsi, rdi, rsp, rbp;
    __u64 r8, r9, r10, r11;
    __u64 r12, r13, r14, r15;
    __u64 rip, rflags;
};

struct kvm_segment {
    __u64 base;
    __u32 limit;
    __u16 selector;
    __u8 type;
    __u8 present, dpl, db, s, l, g, avl;
    __u8 unusable;
    ...;
};

struct kvm_dtable {
    __u64 base;
    __u16 limit;
    ...;
};

struct kvm_sregs {
    struct kvm_segment cs, ds, es, fs, gs, ss;
    struct kvm_segment tr, ldt;
    struct kvm_dtable gdt, idt;
    __u64 cr0, cr2, cr3, cr4, cr8;
    __u64 efer;
    __u64 apic_base;
    ...;
};

struct kvm_msr_entry {
    __u32 index;
    __u64 data;
    ...;
};

struct kvm_msrs {
    __u32 nmsrs;
    struct kvm_msr_entry entries[];
    ...;
};

struct kvm_guest_debug_arch {
    __u64 debugreg[8];
};

struct kvm_guest_debug {
    __u32 control;
    struct kvm_guest_debug_arch arch;
    ...;
};

struct kvm_debug_exit_arch {
    __u32 exception;
    __u32 pad;
    __u64 pc;
    __u64 dr6;
    __u64 dr7;
};

struct kvm_userspace_memory_region {
    __u32 slot;
    __u32 flags;
    __u64 guest_phys_addr;
    __u64 memory_size;
    __u64 userspace_addr;
};

struct kvm_enable_cap {
    __u32 cap;
    __u32 flags;
    __u64 args[4];
    ...;
};

struct kvm_msr_filter_range {
    __u32 flags;
    __u32 nmsrs;
    __u32 base;
    __u8 *bitmap;
};

struct kvm_msr_filter {
    __u32 flags;
    struct kvm_msr_filter_range ranges[...];
};

struct kvm_run {
    __u8 request_interrupt_window;
    __u8 immediate_exit;
    __u32 exit_reason;
    __u8 ready_for_interrupt_injection;
    __u8 if_flag;
    __u64 cr8;
    __u64 apic_base;
    union {
        struct {
            __u64 hardware_exit_reason;
        } hw;
        struct {
            __u64 hardware_entry_failure_reason;
            __u32 cpu;
        } fail_entry;
        struct {
            __u32 exception;
            __u32 error_code;
        } ex;
        struct {
            __u8 direction;
            __u8 size;
            __u16 port;
            __u32 count;
            __u64 data_offset;
        } io;
        struct {
            struct kvm_debug_exit_arch arch;
        } debug;
        struct {
            __u32 suberror;
            __u32 ndata;
            __u64 data[16];
        } internal;
        struct {
            __u8 error;
            __u8 pad[7];
            __u32 reason;
            __u32 index;
            __u64 data;
        } msr;
        char padding[256];
    };
    ...;
};
"""

FUNCTIONS = ""  # filled in by build.py from IOCTLS

CUSTOMIZATIONS = ""
