// SPDX-License-Identifier: GPL-2.0
/*
 * nitro_test_attach.c - nitro_test's checks of KVM_CAP_NITRO and KVM_NITRO_ATTACH: on a
 * VM fd, on /dev/kvm by pidfd, bad requests, and from a child process (privileged: both
 * paths; unprivileged: refused).
 */
#include "testvm.h"

static int t_capability(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));

	EXPECT_EQ(ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NITRO), KVM_NITRO_ABI_VERSION);
	EXPECT_EQ(ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_NITRO), KVM_NITRO_ABI_VERSION);
	close(vm);
	return 0;
}

static int t_attach_on_vm_fd(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int nitro = EXPECT_OK(attach_on_vm(vm));
	char link[64], path[128] = "";

	snprintf(link, sizeof(link), "/proc/self/fd/%d", nitro);
	if (readlink(link, path, sizeof(path) - 1) < 0 || strcmp(path, "anon_inode:kvm-nitro"))
		return fail("nitro fd is %s", path);
	if (!(fcntl(nitro, F_GETFD) & FD_CLOEXEC))
		return fail("nitro fd without FD_CLOEXEC");
	EXPECT_ERRNO(attach_on_vm(vm), EBUSY);
	close(nitro);
	/* released: the VM can be attached again */
	nitro = EXPECT_OK(attach_on_vm(vm));
	close(nitro);
	close(vm);
	return 0;
}

static int t_attach_rejects_bad_requests(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	struct kvm_nitro_attach a;

	a = attach_req(-1, -1);
	a.version = 2;
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EPROTO);
	a = attach_req(-1, -1);
	a.size = 8;
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EINVAL);
	a = attach_req(-1, -1);
	a.reserved[5] = 1;
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EINVAL);
	a = attach_req(-1, -1);
	a.flags = 1;
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EINVAL);
	a = attach_req(0, -1);
	EXPECT_ERRNO(ioctl(vm, KVM_NITRO_ATTACH, &a), EINVAL);
	/* on /dev/kvm: a pidfd is required, and a regular fd is not one */
	a = attach_req(-1, -1);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), EBADF);
	a = attach_req(vm, -1);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), EBADF);
	close(vm);
	return 0;
}

static int t_attach_by_pidfd(void)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int pidfd = EXPECT_OK(pidfd_open(getpid()));
	struct kvm_nitro_attach a = attach_req(pidfd, -1);
	int nitro, vm2;

	/* the only VM of the process */
	nitro = EXPECT_OK(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a));
	EXPECT_ERRNO(attach_on_vm(vm), EBUSY);
	close(nitro);
	/* named by its fd number */
	a = attach_req(pidfd, vm);
	nitro = EXPECT_OK(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a));
	close(nitro);
	a = attach_req(pidfd, kvm_fd);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), EINVAL);
	a = attach_req(pidfd, 999);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), EBADF);
	/* two VMs: "the only VM" is ambiguous */
	vm2 = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	a = attach_req(pidfd, -1);
	EXPECT_ERRNO(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a), ENOTUNIQ);
	a = attach_req(pidfd, vm2);
	nitro = EXPECT_OK(ioctl(kvm_fd, KVM_NITRO_ATTACH, &a));
	close(nitro);
	close(vm2);
	close(vm);
	close(pidfd);
	return 0;
}

/*
 * A child process attaches to the parent's VM.  @unprivileged: the child drops to uid
 * 65534 first and must be refused on both paths.  Returns the child's verdict.
 */
static int attach_from_child(int unprivileged)
{
	int vm = EXPECT_OK(ioctl(kvm_fd, KVM_CREATE_VM, 0));
	int status;
	pid_t parent = getpid(), child;

	child = fork();
	if (child < 0)
		return fail("fork: %s", strerror(errno));
	if (child == 0) {
		int pidfd = pidfd_open(parent), kvm, nitro, foreign;
		struct kvm_nitro_attach a = attach_req(pidfd, vm);

		if (pidfd < 0)
			_exit(10);
		if (unprivileged && (setgid(65534) || setuid(65534)))
			_exit(11);
		kvm = open("/dev/kvm", O_RDWR);
		if (kvm < 0)
			_exit(12);
		nitro = ioctl(kvm, KVM_NITRO_ATTACH, &a);
		if (unprivileged) {
			if (nitro != -1 || errno != EPERM)
				_exit(13);
			foreign = pidfd_getfd(pidfd, vm);
			if (foreign != -1 || errno != EPERM)
				_exit(14);
			_exit(0);
		}
		if (nitro < 0)
			_exit(15);
		close(nitro);
		/* the tracer's path: the VMM's own VM fd, then attach on it */
		foreign = pidfd_getfd(pidfd, vm);
		if (foreign < 0)
			_exit(16);
		nitro = attach_on_vm(foreign);
		if (nitro < 0)
			_exit(17);
		/* only the attach is exempt from the kvm->mm rule */
		if (ioctl(foreign, KVM_CREATE_VCPU, 0) != -1 || errno != EIO)
			_exit(18);
		if (ioctl(nitro, KVM_NITRO_GET_TRAPS, &(struct kvm_nitro_trap_config){0}))
			_exit(19);
		_exit(0);
	}
	if (waitpid(child, &status, 0) != child)
		return fail("waitpid: %s", strerror(errno));
	close(vm);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return fail("child status %#x (exit code names the failed step)", status);
	return 0;
}

static int t_attach_from_privileged_child(void)
{
	return attach_from_child(0);
}

static int t_attach_refused_to_unprivileged(void)
{
	return attach_from_child(1);
}

void attach_checks(void)
{
	check("capability", t_capability);
	check("attach_on_vm_fd", t_attach_on_vm_fd);
	check("attach_rejects_bad_requests", t_attach_rejects_bad_requests);
	check("attach_by_pidfd", t_attach_by_pidfd);
	check("attach_from_privileged_child", t_attach_from_privileged_child);
	check("attach_refused_to_unprivileged", t_attach_refused_to_unprivileged);
}
