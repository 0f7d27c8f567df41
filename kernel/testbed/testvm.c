// SPDX-License-Identifier: GPL-2.0
/*
 * testvm.c - the set-up nitro_test and nitro_bench share (see testvm.h): failure
 * reporting, the nested 64-bit guest, the nitro fd's requests and its ring.
 */
#include "testvm.h"

char failure[256];
int kvm_fd = -1;

int fail(const char *fmt, ...)
{
	va_list ap;

	if (!failure[0]) {
		va_start(ap, fmt);
		vsnprintf(failure, sizeof(failure), fmt, ap);
		va_end(ap);
	}
	return -1;
}

void on_alarm(int sig)
{
	(void)sig;
}

/* ---------------------------------------------------- the nested 64-bit guest */

static void set_seg(struct kvm_segment *s, uint16_t sel, int code)
{
	*s = (struct kvm_segment){
		.selector = sel, .limit = 0xffffffff, .type = code ? 0xb : 0x3,
		.present = 1, .s = 1, .l = code, .db = !code, .g = 1,
	};
}

void guest_close(struct guest *g)
{
	if (g->run && g->run != MAP_FAILED)
		munmap(g->run, g->run_size);
	if (g->vcpu >= 0)
		close(g->vcpu);
	if (g->vm >= 0)
		close(g->vm);
	if (g->mem && g->mem != MAP_FAILED)
		munmap(g->mem, G_MEM);
}

int guest_create(struct guest *g)
{
	struct kvm_userspace_memory_region slot = { .memory_size = G_MEM };
	struct {
		struct kvm_cpuid2 c;
		struct kvm_cpuid_entry2 e[100];
	} cpuid = { .c.nent = 100 };
	uint64_t *q;

	*g = (struct guest){ .vm = -1, .vcpu = -1 };
	g->mem = mmap(NULL, G_MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g->mem == MAP_FAILED)
		return fail("mmap guest memory: %s", strerror(errno));
	q = (uint64_t *)g->mem;
	q[0x1000 / 8] = 0x2000 | 7;
	q[0x2000 / 8] = 0x3000 | 7;
	q[0x3000 / 8] = 0x87;			/* 2 MiB page at 0: PS|US|RW|P */
	q[0x4000 / 8 + 1] = 0x00af9a000000ffffULL;	/* 0x08: 64-bit code */
	q[0x4000 / 8 + 2] = 0x00cf92000000ffffULL;	/* 0x10: data */
	/* RSP0 of the TSS: a #UD at CPL 3 (a skipped SYSCALL) switches to this stack */
	memcpy(g->mem + 0x6004, &(uint64_t){ 0x1e8000 }, 8);
	slot.userspace_addr = (uintptr_t)g->mem;

	g->vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	EXPECT_OK(ioctl(g->vm, KVM_SET_USER_MEMORY_REGION, &slot));
	g->vcpu = EXPECT_OK(ioctl(g->vm, KVM_CREATE_VCPU, 0));
	EXPECT_OK(ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, &cpuid));
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_CPUID2, &cpuid));
	g->run_size = EXPECT_OK(ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0));
	g->run = mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, g->vcpu, 0);
	if (g->run == MAP_FAILED)
		return fail("mmap kvm_run: %s", strerror(errno));
	return 0;
}

uint64_t idt_gate(uint64_t handler)
{
	return (handler & 0xffff) | 0x08ULL << 16 | 0x8eULL << 40 | (handler >> 16 & 0xffff) << 48;
}

void guest_gate64(struct guest *g, int vector, uint64_t handler)
{
	uint64_t *gate = (uint64_t *)(g->mem + G_IDT) + 2 * vector;

	gate[0] = idt_gate(handler);
	gate[1] = handler >> 32;
}

int guest_long_mode(struct guest *g, uint64_t rip, uint64_t lstar, uint64_t fmask)
{
	struct kvm_regs regs = { .rip = rip, .rflags = 2, .rsp = G_STACK };
	struct kvm_sregs sregs;

	EXPECT_OK(ioctl(g->vcpu, KVM_GET_SREGS, &sregs));
	sregs.cr0 = 0x80050033;		/* PG WP NE ET MP PE */
	sregs.cr3 = 0x1000;
	sregs.cr4 = 0x20;		/* PAE */
	sregs.efer = 0x501;		/* LMA LME SCE */
	set_seg(&sregs.cs, 0x08, 1);
	set_seg(&sregs.ds, 0x10, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = 0x4000;
	sregs.gdt.limit = 23;
	sregs.idt.base = G_IDT;
	sregs.idt.limit = 4095;
	sregs.tr = (struct kvm_segment){ .base = 0x6000, .limit = 0x67, .type = 0xb,
					 .present = 1 };
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_SREGS, &sregs));
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_REGS, &regs));
	if (SET_MSRS(g->vcpu, { .index = 0xc0000081, .data = G_STAR },
		     { .index = 0xc0000082, .data = lstar },
		     { .index = 0xc0000084, .data = fmask }))
		return -1;
	/* nothing pending from an earlier scenario (an exception, an interrupt) */
	EXPECT_OK(ioctl(g->vcpu, KVM_SET_VCPU_EVENTS, &(struct kvm_vcpu_events){}));
	return 0;
}

int set_msrs(int vcpu, const struct kvm_msr_entry *e, unsigned int n)
{
	struct {
		struct kvm_msrs m;
		struct kvm_msr_entry e[8];
	} msrs = { .m.nmsrs = n };
	int set;

	if (n > 8)
		return fail("set_msrs: %u MSRs, at most 8", n);
	memcpy(msrs.e, e, n * sizeof(*e));
	set = ioctl(vcpu, KVM_SET_MSRS, &msrs);
	if (set != (int)n)
		return fail("KVM_SET_MSRS: %d of %u set (MSR %#x...): %s", set, n, e[0].index,
			    strerror(errno));
	return 0;
}

int64_t get_msr(int vcpu, uint32_t index)
{
	struct {
		struct kvm_msrs m;
		struct kvm_msr_entry e[1];
	} msrs = { .m.nmsrs = 1, .e = { { .index = index } } };

	if (ioctl(vcpu, KVM_GET_MSRS, &msrs) != 1)
		return fail("KVM_GET_MSRS: %s", strerror(errno));
	return msrs.e[0].data;
}

/* ------------------------------------------------------------ the nitro fd */

int pidfd_open(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

int pidfd_getfd(int pidfd, int fd)
{
	return syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

struct kvm_nitro_attach attach_req(int pidfd, int vm_fd)
{
	struct kvm_nitro_attach a = {
		.version = KVM_NITRO_ABI_VERSION,
		.size = sizeof(a),
		.pidfd = pidfd,
		.vm_fd = vm_fd,
	};
	return a;
}

int attach_on_vm(int vm)
{
	struct kvm_nitro_attach a = attach_req(-1, -1);

	return ioctl(vm, KVM_NITRO_ATTACH, &a);
}

struct kvm_nitro_trap_config traps_req(uint32_t traps, uint32_t slots)
{
	struct kvm_nitro_trap_config c = {
		.version = KVM_NITRO_ABI_VERSION,
		.size = sizeof(c),
		.traps = traps,
		.ring_slots = slots,
	};
	return c;
}

size_t ring_bytes(uint32_t slots)
{
	long page = sysconf(_SC_PAGESIZE);

	return page + ((slots * sizeof(struct kvm_nitro_event) + page - 1) & ~(page - 1));
}

struct kvm_nitro_ring_header *ring_map(int nitro, uint32_t slots)
{
	void *ring = mmap(NULL, ring_bytes(slots), PROT_READ | PROT_WRITE, MAP_SHARED, nitro,
			  KVM_NITRO_RING_PGOFF);

	if (ring == MAP_FAILED) {
		fail("mmap ring: %s", strerror(errno));
		return NULL;
	}
	return ring;
}

void ring_unmap(struct kvm_nitro_ring_header *ring)
{
	munmap(ring, ring_bytes(ring->slot_count));
}

struct kvm_nitro_event *slot(struct kvm_nitro_ring_header *ring, uint64_t i)
{
	return (void *)((uint8_t *)ring + ring->data_offset +
			(i & (ring->slot_count - 1)) * ring->slot_size);
}
