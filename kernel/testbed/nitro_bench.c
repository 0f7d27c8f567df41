// SPDX-License-Identifier: GPL-2.0
/*
 * nitro_bench - what Nitro's SYSCALL trap costs, run inside the emulated test bed machine
 * (kernel/testbed/run BUILD_DIR DEADLINE --bench [-n N] [-r R]) with the patched kvm/kvm_amd.
 *
 * One nested 64-bit guest (CPL 0, long mode) runs loops of N iterations per KVM_RUN, timed
 * with clock_gettime(CLOCK_MONOTONIC) around the KVM_RUN; each loop ends with an OUT that
 * returns to us.  R repetitions, the modes interleaved; per mode the minimum and the median
 * cost per iteration.  Modes:
 *
 *   cpuid            CPUID loop: a minimal exit handled in the kernel, the floor of any
 *                    hypervisor trap;
 *   syscall_native   the SYSCALL loop untrapped (no exit at all);
 *   syscall_async_poll, syscall_async_spin
 *                    the SYSCALL loop trapped, asynchronous delivery: the event built and
 *                    the instruction completed in the kernel; a tracer thread on the other
 *                    CPU drains the ring, sleeping in poll() on the nitro fd (the kernel
 *                    wakes it when the ring goes non-empty: with a tracer that keeps up,
 *                    every event) or spinning on the producer index (no wake-ups: the
 *                    trap's own cost);
 *   syscall_sync_poll, syscall_sync_spin
 *                    synchronous delivery: the vCPU waits for the tracer's
 *                    KVM_NITRO_CONTINUE on every event, the tracer sleeping in poll() or
 *                    spinning.  "sync: not supported by this kernel" when SET_TRAPS
 *                    refuses KVM_NITRO_DELIVERY_SYNC.
 *
 * Output, one line per mode:
 *   bench: MODE runs_ns=A,B,.. min_ns=X median_ns=Y iterations=N repeats=R events=E
 *          dropped=D bad=B
 * (runs_ns: ns per iteration of each repetition, in order, so that modes can be compared
 * repetition by repetition; events: consumed by the tracer; bad: events whose rip/rax do
 * not match the guest's SYSCALL), and "nitro_bench: done" or "nitro_bench: FAIL (why)".
 */
#include "testvm.h"
#include <sched.h>
#include <time.h>

/* The guest: testvm.h's nested 64-bit guest and layout, this code at G_CODE. */
#define PORT_DONE	0x10
#define PORT_FAULT	0x11
#define SLOTS		65536		/* the largest ring: one repetition never fills it */
#define LOOP_DEADLINE	120		/* seconds one KVM_RUN may take */

/* The guest; r12 = iterations.  Copied to G_CODE; only relative jumps inside. */
__asm__(
	"	.pushsection .rodata.nitro_guest, \"a\"\n"
	"	.globl guest_start, guest_end, g_syscall_loop, g_syscall_insn\n"
	"	.globl g_syscall_entry, g_cpuid_loop, g_fault\n"
	"guest_start:\n"
	"g_syscall_loop:\n"
	"1:	mov %r12, %rax\n"			/* the event's rax: iterations left */
	"g_syscall_insn:\n"
	"	syscall\n"
	"	dec %r12\n"
	"	jnz 1b\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	"g_syscall_entry:\n"				/* LSTAR; FMASK 0: RFLAGS unchanged */
	"	jmp *%rcx\n"
	"g_cpuid_loop:\n"
	"1:	xor %eax, %eax\n"
	"	cpuid\n"
	"	dec %r12\n"
	"	jnz 1b\n"
	"	out %al, $0x10\n"
	"	hlt\n"
	"g_fault:\n"					/* every exception vector */
	"	out %al, $0x11\n"
	"	hlt\n"
	"guest_end:\n"
	"	.popsection\n");
extern const uint8_t guest_start[], guest_end[], g_syscall_loop[], g_syscall_insn[],
	g_syscall_entry[], g_cpuid_loop[], g_fault[];
#define GPA(sym) (G_CODE + (uint64_t)((sym) - guest_start))

static struct guest g;
static int nitro_fd;
static struct kvm_nitro_ring_header *ring;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	printf("nitro_bench: FAIL (");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(")\n");
	exit(1);
}

#define CHECK(call)                                                                  \
	({                                                                           \
		long r_ = (call);                                                    \
		if (r_ < 0)                                                          \
			die("%s: %s", #call, strerror(errno));                       \
		r_;                                                                  \
	})

static void pin(pthread_t thread, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(thread, sizeof(set), &set);	/* best effort */
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* The guest: every exception vector to g_fault, LSTAR to g_syscall_entry, FMASK 0. */
static void guest_setup(void)
{
	int v;

	if (guest_create(&g))
		die("%s", failure);
	for (v = 0; v < 32; v++)
		guest_gate64(&g, v, GPA(g_fault));
	memcpy(g.mem + G_CODE, guest_start, guest_end - guest_start);
	if (guest_long_mode(&g, GPA(g_syscall_loop), GPA(g_syscall_entry), 0))
		die("%s", failure);
}

/* Run the loop at @rip for @n iterations; return the nanoseconds KVM_RUN took. */
static uint64_t guest_loop(uint64_t rip, uint64_t n)
{
	struct kvm_regs regs = { .rip = rip, .rflags = 2, .rsp = G_STACK, .r12 = n };
	uint64_t t0, t1;

	CHECK(ioctl(g.vcpu, KVM_SET_REGS, &regs));
	alarm(LOOP_DEADLINE);
	t0 = now_ns();
	if (ioctl(g.vcpu, KVM_RUN, 0) < 0)
		die("KVM_RUN: %s (after %d s?)", strerror(errno), LOOP_DEADLINE);
	t1 = now_ns();
	alarm(0);
	if (g.run->exit_reason != KVM_EXIT_IO || g.run->io.port != PORT_DONE) {
		CHECK(ioctl(g.vcpu, KVM_GET_REGS, &regs));
		die("exit reason %u port %#x at rip %#llx, r12 %llu", g.run->exit_reason,
		    g.run->io.port, regs.rip, regs.r12);
	}
	return t1 - t0;
}

/* --------------------------------------------------------------- the tracer */

static struct {
	int answer;		/* KVM_NITRO_CONTINUE each event (synchronous delivery) */
	int spin;		/* spin on the producer index instead of poll() */
	volatile int stop;
	uint64_t n;		/* iterations of the loop traced (rax runs n..1) */
	uint64_t events, bad, next_seq;
} tracer;

/* Consume what the ring holds; answer each event in the synchronous modes. */
static void consume(void)
{
	uint64_t p = __atomic_load_n(&ring->producer, __ATOMIC_ACQUIRE);
	uint64_t c = ring->consumer;

	for (; c < p; c++) {
		struct kvm_nitro_event *ev = slot(ring, c);

		if (tracer.answer) {
			struct kvm_nitro_continue k = { .seq = ev->seq, .vcpu_id = ev->vcpu_id };

			if (ioctl(nitro_fd, KVM_NITRO_CONTINUE, &k))
				tracer.bad++;
		}
		if (ev->regs.rip != GPA(g_syscall_insn) || ev->regs.rax < 1 ||
		    ev->regs.rax > tracer.n || ev->seq != tracer.next_seq)
			tracer.bad++;
		tracer.next_seq = ev->seq + 1;
		tracer.events++;
	}
	__atomic_store_n(&ring->consumer, c, __ATOMIC_RELEASE);
}

static void *tracer_main(void *arg)
{
	struct pollfd p = { .fd = nitro_fd, .events = POLLIN };

	(void)arg;
	while (!tracer.stop) {
		if (!tracer.spin)
			poll(&p, 1, 10);
		consume();
	}
	consume();
	return NULL;
}

static void set_traps(uint32_t traps, uint32_t delivery)
{
	struct kvm_nitro_trap_config c = traps_req(traps, SLOTS);

	c.delivery = delivery;
	CHECK(ioctl(nitro_fd, KVM_NITRO_SET_TRAPS, &c));
}

/* ----------------------------------------------------------------- the modes */

enum { CPUID, NATIVE, ASYNC_POLL, ASYNC_SPIN, SYNC_POLL, SYNC_SPIN, MODES };
static const char *const mode_names[MODES] = {
	"cpuid", "syscall_native", "syscall_async_poll", "syscall_async_spin",
	"syscall_sync_poll", "syscall_sync_spin",
};

struct result {
	uint64_t *ns;		/* per repetition */
	uint64_t events, dropped, bad;
};

/* One timed repetition of @mode; the tracer thread runs for the trapped modes. */
static void measure(int mode, uint64_t n, int rep, struct result *res)
{
	pthread_t thread;
	uint64_t dropped = ring->dropped;
	int traced = mode >= ASYNC_POLL, sync = mode >= SYNC_POLL;

	set_traps(traced ? KVM_NITRO_TRAP_SYSCALL : 0,
		  sync ? KVM_NITRO_DELIVERY_SYNC : KVM_NITRO_DELIVERY_ASYNC);
	if (traced) {
		tracer.answer = sync;
		tracer.spin = mode == ASYNC_SPIN || mode == SYNC_SPIN;
		tracer.stop = 0;
		tracer.n = n;
		tracer.events = tracer.bad = 0;
		tracer.next_seq = ring->producer + ring->dropped;
		if (pthread_create(&thread, NULL, tracer_main, NULL))
			die("pthread_create");
		pin(thread, 1);
	}
	res->ns[rep] = guest_loop(GPA(mode == CPUID ? g_cpuid_loop : g_syscall_loop), n);
	if (traced) {
		tracer.stop = 1;
		pthread_join(thread, NULL);
		res->events += tracer.events;
		res->bad += tracer.bad;
	}
	res->dropped += ring->dropped - dropped;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct sigaction alarm_action = { .sa_handler = on_alarm };
	struct result res[MODES] = {};
	uint64_t n = 2000;
	int repeats = 7, opt, rep, mode, sync_ok;

	while ((opt = getopt(argc, argv, "n:r:")) != -1) {
		if (opt == 'n')
			n = strtoull(optarg, NULL, 0);
		else if (opt == 'r')
			repeats = atoi(optarg);
		else
			die("usage: nitro_bench [-n ITERATIONS] [-r REPEATS]");
	}
	if (!n || repeats < 1)
		die("-n and -r must be positive");
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGALRM, &alarm_action, NULL);
	pin(pthread_self(), 0);
	kvm_fd = CHECK(open("/dev/kvm", O_RDWR | O_CLOEXEC));
	guest_setup();
	nitro_fd = CHECK(attach_on_vm(g.vm));
	set_traps(0, KVM_NITRO_DELIVERY_ASYNC);
	ring = ring_map(nitro_fd, SLOTS);
	if (!ring)
		die("%s", failure);

	/* synchronous delivery, if this kernel has it */
	{
		struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSCALL, SLOTS);

		c.delivery = KVM_NITRO_DELIVERY_SYNC;
		sync_ok = ioctl(nitro_fd, KVM_NITRO_SET_TRAPS, &c) == 0;
		if (!sync_ok && errno != EOPNOTSUPP)
			die("SET_TRAPS(sync): %s", strerror(errno));
		set_traps(0, KVM_NITRO_DELIVERY_ASYNC);
	}
	if (!sync_ok)
		printf("sync: not supported by this kernel\n");
	printf("nitro_bench: %llu iterations per run, %d repetitions\n",
	       (unsigned long long)n, repeats);

	for (mode = 0; mode < MODES; mode++)
		res[mode].ns = calloc(repeats, sizeof(uint64_t));
	/* warm-up (untimed): page tables, caches, the tracer's ring pages */
	guest_loop(GPA(g_cpuid_loop), n / 10 + 1);
	measure(ASYNC_POLL, n / 10 + 1, 0, &res[ASYNC_POLL]);
	res[ASYNC_POLL] = (struct result){ .ns = res[ASYNC_POLL].ns };
	for (rep = 0; rep < repeats; rep++)
		for (mode = 0; mode < MODES; mode++)
			if (mode < SYNC_POLL || sync_ok)
				measure(mode, n, rep, &res[mode]);

	for (mode = 0; mode < MODES; mode++) {
		struct result *r = &res[mode];

		if (mode >= SYNC_POLL && !sync_ok)
			continue;
		printf("bench: %s runs_ns=", mode_names[mode]);
		for (rep = 0; rep < repeats; rep++)
			printf("%s%.1f", rep ? "," : "", (double)r->ns[rep] / n);
		qsort(r->ns, repeats, sizeof(uint64_t), cmp_u64);
		printf(" min_ns=%.1f median_ns=%.1f iterations=%llu repeats=%d "
		       "events=%llu dropped=%llu bad=%llu\n",
		       (double)r->ns[0] / n, (double)r->ns[repeats / 2] / n,
		       (unsigned long long)n, repeats, (unsigned long long)r->events,
		       (unsigned long long)r->dropped, (unsigned long long)r->bad);
	}
	printf("nitro_bench: done\n");
	return 0;
}
