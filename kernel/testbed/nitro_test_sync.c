// SPDX-License-Identifier: GPL-2.0
/*
 * nitro_test_sync.c - nitro_test's checks of synchronous delivery: the vCPU waits for
 * KVM_NITRO_CONTINUE (or SKIP: the guest gets its #UD/#GP), a signal interrupts the wait,
 * and closing the fd, switching to asynchronous delivery, a full ring or a killed tracer
 * let it run on.
 */
#include "testvm.h"

/*
 * The vCPU runs in a thread of its own (KVM_RUN blocks while it waits for a verdict);
 * this thread is the tracer.  A runner does one KVM_RUN.
 */
struct runner {
	pthread_t thread;
	struct guest *g;
	int done;		/* eventfd: KVM_RUN returned */
	pid_t tid;
	int ret, err;		/* what it returned, errno */
};

static void *runner_main(void *arg)
{
	struct runner *r = arg;

	r->tid = gettid();
	errno = 0;
	r->ret = ioctl(r->g->vcpu, KVM_RUN, 0);
	r->err = errno;
	eventfd_write(r->done, 1);
	return NULL;
}

static int runner_start(struct runner *r, struct guest *g)
{
	*r = (struct runner){ .g = g, .tid = -1 };
	r->done = eventfd(0, EFD_CLOEXEC);
	if (r->done < 0 || pthread_create(&r->thread, NULL, runner_main, r))
		return fail("runner: %s", strerror(errno));
	return 0;
}

/* Wait up to RUN_DEADLINE s for KVM_RUN to return; a runner that does not is interrupted. */
static int runner_join(struct runner *r)
{
	struct pollfd p = { .fd = r->done, .events = POLLIN };
	int ready = poll(&p, 1, RUN_DEADLINE * 1000);

	if (ready != 1)
		pthread_kill(r->thread, SIGUSR1);
	pthread_join(r->thread, NULL);
	close(r->done);
	if (ready != 1)
		return fail("KVM_RUN did not return within %d s", RUN_DEADLINE);
	return 0;
}

/* Join the runner; what the guest reported on port 0x10, or -1 (KVM_RUN failed). */
static int runner_result(struct runner *r)
{
	if (runner_join(r))
		return -1;
	if (r->ret < 0)
		return fail("KVM_RUN: %s", strerror(r->err));
	if (r->g->run->exit_reason != KVM_EXIT_IO || r->g->run->io.port != 0x10)
		return fail("exit reason %u, want OUT to 0x10", r->g->run->exit_reason);
	return ((uint8_t *)r->g->run)[r->g->run->io.data_offset];
}

/* Whether the runner's KVM_RUN sleeps waiting for a verdict (its wchan). */
static int runner_waits(struct runner *r)
{
	char path[64], wchan[64] = "";
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", r->tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, wchan, sizeof(wchan) - 1);
	close(fd);
	return n > 0 && !strncmp(wchan, "nitro_sync_wait", 15);
}

/* Wait until the vCPU sleeps for a verdict with @produced events in the ring. */
static int expect_waiting(struct runner *r, struct kvm_nitro_ring_header *ring,
			  uint64_t produced)
{
	int ms;

	for (ms = 0; ms < RUN_DEADLINE * 1000; ms++) {
		if (__atomic_load_n(&ring->producer, __ATOMIC_ACQUIRE) >= produced &&
		    runner_waits(r))
			break;
		usleep(1000);
	}
	EXPECT_EQ(ring->producer, produced);
	if (!runner_waits(r))
		return fail("the vCPU does not wait for a verdict (event %llu)",
			    (unsigned long long)produced - 1);
	EXPECT_EQ(slot(ring, produced - 1)->flags & KVM_NITRO_EVENT_F_SYNC,
		  KVM_NITRO_EVENT_F_SYNC);
	return 0;
}

static int cont(int nitro, uint64_t seq, uint32_t flags)
{
	struct kvm_nitro_continue c = { .seq = seq, .flags = flags };

	return ioctl(nitro, KVM_NITRO_CONTINUE, &c);
}

/*
 * The shared guest armed for synchronous delivery, its vCPU started in a runner at the
 * 64-bit scenario (G_KERNEL) or, @is32, the 32-bit one (g32_kernel); NULL on failure.
 */
static struct guest *sync_start(uint32_t traps, uint32_t slots, int is32, struct armed *a,
				struct runner *r)
{
	struct guest *g = guest();

	if (!g || arm_sync(g, traps, slots, a) ||
	    (is32 ? guest_set32(g, G32(g32_kernel), 0) : guest_set64(g, G_KERNEL)) ||
	    runner_start(r, g))
		return NULL;
	return g;
}

/* Event 0 waits: continue it; then event 1 waits. */
static int continue_first(struct runner *r, struct armed *a)
{
	if (expect_waiting(r, a->ring, 1))
		return -1;
	EXPECT_OK(cont(a->nitro, 0, 0));
	return expect_waiting(r, a->ring, 2);
}

static int t_sync_waits_for_continue(void)
{
	struct kvm_nitro_trap_config c =
		traps_req(KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 64);
	struct kvm_nitro_continue bad = { .seq = 0, .reserved[1] = 1 };
	struct guest *g = guest();
	struct runner r;
	struct armed a;

	if (!g)
		return -1;
	EXPECT_ERRNO(cont(-1, 0, 0), EBADF);
	if (arm_sync(g, KVM_NITRO_TRAP_SYSCALL, 64, &a))
		return -1;
	/* nothing waits yet */
	EXPECT_ERRNO(cont(a.nitro, 0, 0), ENOENT);
	if (guest_set64(g, G_KERNEL) || runner_start(&r, g))
		return -1;
	/* SYSRETQ completes without an event; SYSCALL 39 waits, the guest's kernel not reached */
	if (expect_waiting(&r, a.ring, 1) ||
	    expect_event(a.ring, 0, 0, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_39, 39))
		return -1;
	EXPECT_EQ(MEM64(g, G_COUNTER), 0);
	EXPECT_ERRNO(cont(a.nitro, 1, 0), ENOENT);
	EXPECT_ERRNO(ioctl(a.nitro, KVM_NITRO_CONTINUE,
			   &(struct kvm_nitro_continue){ .seq = 0, .vcpu_id = 1 }), ENOENT);
	EXPECT_ERRNO(cont(a.nitro, 0, 2), EINVAL);
	EXPECT_ERRNO(ioctl(a.nitro, KVM_NITRO_CONTINUE, &bad), EINVAL);
	EXPECT_EQ(MEM64(g, G_COUNTER), 0);
	EXPECT_OK(cont(a.nitro, 0, 0));
	EXPECT_ERRNO(cont(a.nitro, 0, 0), ENOENT);
	/* SYSCALL 60 waits: 39 was handled */
	if (expect_waiting(&r, a.ring, 2) ||
	    expect_event(a.ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_60, 60))
		return -1;
	EXPECT_EQ(MEM64(g, G_COUNTER), 1);
	EXPECT_OK(cont(a.nitro, 1, 0));
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(MEM64(g, G_COUNTER), 2);
	EXPECT_EQ(a.ring->producer, 2);
	EXPECT_EQ(a.ring->dropped, 0);
	/* asynchronous again: every event, nobody waits */
	EXPECT_OK(ioctl(a.nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(guest_run(g, G_KERNEL), 1);
	EXPECT_EQ(a.ring->producer, 6);
	if (expect_event(a.ring, 2, 2, KVM_NITRO_EVENT_SYSRET, G_SYSRETQ_0, 0x501))
		return -1;
	EXPECT_EQ(slot(a.ring, 2)->flags & KVM_NITRO_EVENT_F_SYNC, 0);
	disarm(&a);
	return 0;
}

/* SKIP: the instruction is not completed, the guest gets the #UD it raised. */
static int t_sync_skip_delivers_ud(void)
{
	struct runner r;
	struct armed a;
	struct guest *g = sync_start(KVM_NITRO_TRAP_SYSCALL, 64, 0, &a, &r);

	if (!g || expect_waiting(&r, a.ring, 1))
		return -1;
	EXPECT_OK(cont(a.nitro, 0, KVM_NITRO_CONTINUE_F_SKIP));
	EXPECT_EQ(runner_result(&r), 2);	/* the guest's #UD handler */
	EXPECT_EQ(MEM64(g, G_COUNTER), 0);
	EXPECT_EQ(a.ring->producer, 1);
	disarm(&a);
	return 0;
}

/* SKIP of a SYSENTER: the guest gets a #GP(0) at the SYSENTER. */
static int t_sync_skip_delivers_gp(void)
{
	struct runner r;
	struct armed a;
	struct guest *g = sync_start(KVM_NITRO_TRAP_SYSENTER | KVM_NITRO_TRAP_SYSEXIT, 64, 1,
				     &a, &r);

	/* SYSEXIT continued, SYSENTER 39 skipped */
	if (!g || continue_first(&r, &a))
		return -1;
	if (expect_event32(a.ring, 0, 0, KVM_NITRO_EVENT_SYSEXIT, G32(g32_sysexit_0),
			   G32_SYSENTER_CS, G32(g32_user)) ||
	    expect_event32(a.ring, 1, 1, KVM_NITRO_EVENT_SYSENTER, G32(g32_sysenter_39), 39,
			   G32(g32_user_1)))
		return -1;
	EXPECT_OK(cont(a.nitro, 1, KVM_NITRO_CONTINUE_F_SKIP));
	EXPECT_EQ(runner_result(&r), 3);
	EXPECT_EQ(MEM32(g, G32_GP_ERR), 0);
	EXPECT_EQ(MEM32(g, G32_GP_EIP), G32(g32_sysenter_39));
	EXPECT_EQ(MEM32(g, G32_COUNTER), 0);
	EXPECT_EQ(a.ring->producer, 2);
	disarm(&a);
	return 0;
}

/*
 * A signal to the waiting vCPU thread: KVM_RUN returns EINTR (KVM_EXIT_INTR) with the
 * instruction not completed; KVM_RUN again waits for the same event (no duplicate).
 * CONTINUE while the vCPU is out of KVM_RUN applies when it comes back.
 */
static int t_sync_signal_interrupts_wait(void)
{
	struct kvm_regs regs;
	struct runner r;
	struct armed a;
	struct guest *g = sync_start(KVM_NITRO_TRAP_SYSCALL, 64, 0, &a, &r);

	if (!g || expect_waiting(&r, a.ring, 1))
		return -1;
	pthread_kill(r.thread, SIGUSR1);
	if (runner_join(&r))
		return -1;
	if (r.ret != -1 || r.err != EINTR)
		return fail("KVM_RUN returned %d (%s), want EINTR", r.ret, strerror(r.err));
	EXPECT_EQ(g->run->exit_reason, KVM_EXIT_INTR);
	EXPECT_OK(ioctl(g->vcpu, KVM_GET_REGS, &regs));
	EXPECT_EQ(regs.rip, G_SYSCALL_39);	/* not completed */
	EXPECT_EQ(MEM64(g, G_COUNTER), 0);
	/* again: waits for event 0, no new event */
	if (runner_start(&r, g) || expect_waiting(&r, a.ring, 1))
		return -1;
	/* once more out, continued meanwhile: the next KVM_RUN completes it */
	pthread_kill(r.thread, SIGUSR1);
	if (runner_join(&r))
		return -1;
	EXPECT_EQ(r.err, EINTR);
	EXPECT_OK(cont(a.nitro, 0, 0));
	if (runner_start(&r, g) || expect_waiting(&r, a.ring, 2) ||
	    expect_event(a.ring, 1, 1, KVM_NITRO_EVENT_SYSCALL, G_SYSCALL_60, 60))
		return -1;
	EXPECT_EQ(MEM64(g, G_COUNTER), 1);
	EXPECT_OK(cont(a.nitro, 1, 0));
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(MEM64(g, G_COUNTER), 2);
	EXPECT_EQ(a.ring->producer, 2);
	disarm(&a);
	return 0;
}

/* Closing the nitro fd (and its mapping) while a vCPU waits: it completes, the guest runs on. */
static int t_sync_close_releases_vcpu(void)
{
	struct runner r;
	struct armed a;
	struct guest *g = sync_start(KVM_NITRO_TRAP_ALL, 64, 0, &a, &r);

	if (!g || continue_first(&r, &a))
		return -1;
	disarm(&a);
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(MEM64(g, G_COUNTER), 2);
	/* and the VM can be traced again */
	close(EXPECT_OK(attach_on_vm(g->vm)));
	return 0;
}

/* Asynchronous delivery (or traps = 0) set while a vCPU waits: it completes. */
static int t_sync_switch_to_async_releases_vcpu(void)
{
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_SYSENTER, 64);
	struct runner r;
	struct armed a;
	struct guest *g = sync_start(KVM_NITRO_TRAP_SYSENTER, 64, 1, &a, &r);

	if (!g || expect_waiting(&r, a.ring, 1))
		return -1;
	EXPECT_OK(ioctl(a.nitro, KVM_NITRO_SET_TRAPS, &c));
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(MEM32(g, G32_COUNTER), 2);
	EXPECT_EQ(a.ring->producer, 2);
	EXPECT_EQ(slot(a.ring, 1)->flags & KVM_NITRO_EVENT_F_SYNC, 0);
	disarm(&a);
	return 0;
}

/*
 * A full ring in synchronous mode drops the event (counted) and the vCPU does not wait
 * for a verdict on an event the tracer cannot see: the instruction completes.
 */
static int t_sync_ring_full_completes(void)
{
	struct runner r;
	struct armed a;
	struct guest *g = sync_start(KVM_NITRO_TRAP_SYSCALL | KVM_NITRO_TRAP_SYSRET, 2, 0,
				     &a, &r);

	if (!g || continue_first(&r, &a))
		return -1;
	/* the tracer does not consume: SYSRETQ and SYSCALL 60 find the ring full */
	EXPECT_OK(cont(a.nitro, 1, 0));
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(MEM64(g, G_COUNTER), 2);
	EXPECT_EQ(a.ring->producer, 2);
	EXPECT_EQ(a.ring->dropped, 2);
	EXPECT_ERRNO(cont(a.nitro, 2, 0), ENOENT);
	EXPECT_ERRNO(cont(a.nitro, 3, 0), ENOENT);
	disarm(&a);
	return 0;
}

/* The tracer process SIGKILLed while a vCPU waits for its verdict: the guest runs on. */
static int t_sync_tracer_sigkill_releases_vcpu(void)
{
	struct kvm_nitro_trap_config c = traps_req(KVM_NITRO_TRAP_ALL, 64);
	struct kvm_nitro_ring_header *ring;
	int armed[2], status;
	struct runner r;
	struct guest *g;
	pid_t child;

	c.delivery = KVM_NITRO_DELIVERY_SYNC;
	if (!(g = guest()) || pipe(armed))
		return fail("set-up: %s", strerror(errno));
	child = tracer_fork(g, &c, armed, &ring);
	if (child < 0)
		return -1;
	if (child == 0)
		for (;;)
			pause();
	close(armed[0]);
	close(armed[1]);
	if (guest_set32(g, G32(g32_kernel), 0) || runner_start(&r, g))
		return -1;
	/* no ring here: wait for the vCPU to sleep */
	for (int ms = 0; ms < RUN_DEADLINE * 1000 && !runner_waits(&r); ms++)
		usleep(1000);
	if (!runner_waits(&r))
		return fail("the vCPU does not wait for a verdict");
	kill(child, SIGKILL);
	if (waitpid(child, &status, 0) != child || !WIFSIGNALED(status))
		return fail("tracer status %#x", status);
	EXPECT_EQ(runner_result(&r), 1);
	EXPECT_EQ(MEM32(g, G32_COUNTER), 2);
	EXPECT_EQ(guest_sysenter_cs(g), G32_SYSENTER_CS);
	return 0;
}

void sync_checks(void)
{
	check("sync_waits_for_continue", t_sync_waits_for_continue);
	check("sync_skip_delivers_ud", t_sync_skip_delivers_ud);
	check("sync_skip_delivers_gp", t_sync_skip_delivers_gp);
	check("sync_signal_interrupts_wait", t_sync_signal_interrupts_wait);
	check("sync_close_releases_vcpu", t_sync_close_releases_vcpu);
	check("sync_switch_to_async_releases_vcpu", t_sync_switch_to_async_releases_vcpu);
	check("sync_ring_full_completes", t_sync_ring_full_completes);
	check("sync_tracer_sigkill_releases_vcpu", t_sync_tracer_sigkill_releases_vcpu);
}
