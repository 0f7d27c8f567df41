"""The classes of call the strace oracle reports on, and the calls it leaves out.

Every x86-64 system call is in exactly one group: one of the seven *local* classes that the
oracle covers (:data:`LOCAL`: files, descriptors, memory, processes, signals, time,
resources) or one of the groups it leaves out (:data:`NOT_LOCAL`, each with its reason). A
strace test is classed by the first call its ``-e trace=`` expression names (see
:func:`class_of_test`); ``tests/oracle/tests.toml`` may override that per test.

strace's own flags (``TF``, ``TD``, ``TM``, ``TP``, ``TS``, ``TCL``…) guided the grouping;
where a call has several (``openat`` is TD|TF), the group is the one its arguments are about
(a path: files).
"""

from __future__ import annotations

__all__ = ["LOCAL", "NOT_LOCAL", "CLASS_OF", "class_of_test"]

_FILES = """
open openat openat2 creat stat lstat newfstatat statx access faccessat faccessat2 chdir
chroot getcwd mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 link linkat
symlink symlinkat readlink readlinkat chmod fchmodat chown lchown fchownat truncate utime
utimes futimesat utimensat mknod mknodat statfs ustat getxattr lgetxattr setxattr lsetxattr
listxattr llistxattr removexattr lremovexattr name_to_handle_at open_by_handle_at
inotify_add_watch fanotify_mark mount umount2 pivot_root acct quotactl quotactl_fd uselib
open_tree move_mount fsopen fsconfig fsmount fspick mount_setattr sysfs swapon swapoff
"""
_DESCRIPTORS = """
read write close fstat fstatfs poll ppoll select pselect6 lseek pread64 pwrite64 readv
writev preadv pwritev preadv2 pwritev2 pipe pipe2 dup dup2 dup3 fcntl flock fsync fdatasync
syncfs ftruncate fallocate fadvise64 readahead sync_file_range getdents getdents64 fchdir
fchmod fchown fgetxattr fsetxattr flistxattr fremovexattr ioctl sendfile splice tee
vmsplice copy_file_range close_range epoll_create epoll_create1 epoll_ctl epoll_wait
epoll_pwait epoll_pwait2 epoll_ctl_old epoll_wait_old eventfd eventfd2 inotify_init
inotify_init1 inotify_rm_watch fanotify_init memfd_create userfaultfd io_setup io_destroy
io_submit io_cancel io_getevents io_pgetevents
"""
_MEMORY = """
mmap mprotect munmap brk mremap msync mincore madvise mlock mlock2 munlock mlockall
munlockall remap_file_pages mbind set_mempolicy get_mempolicy set_mempolicy_home_node
migrate_pages move_pages pkey_mprotect pkey_alloc pkey_free process_madvise memfd_secret
"""
_PROCESSES = """
clone clone3 fork vfork execve execveat exit exit_group wait4 waitid getpid getppid gettid
getpgrp getpgid setpgid getsid setsid getuid geteuid getgid getegid setuid setgid setreuid
setregid setresuid getresuid setresgid getresgid setfsuid setfsgid getgroups setgroups
capget capset prctl arch_prctl personality set_tid_address set_robust_list get_robust_list
futex futex_waitv rseq unshare setns kcmp seccomp pidfd_open pidfd_getfd process_mrelease
process_vm_readv process_vm_writev ptrace modify_ldt set_thread_area get_thread_area
restart_syscall
"""
_SIGNALS = """
rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigtimedwait rt_sigqueueinfo
rt_tgsigqueueinfo rt_sigsuspend sigaltstack pause kill tkill tgkill signalfd signalfd4
pidfd_send_signal
"""
_TIME = """
time gettimeofday settimeofday adjtimex clock_gettime clock_settime clock_getres
clock_adjtime clock_nanosleep nanosleep alarm getitimer setitimer times timer_create
timer_settime timer_gettime timer_getoverrun timer_delete timerfd_create timerfd_settime
timerfd_gettime
"""
_RESOURCES = """
getrlimit setrlimit prlimit64 getrusage sysinfo getpriority setpriority sched_yield
sched_setparam sched_getparam sched_setscheduler sched_getscheduler sched_get_priority_max
sched_get_priority_min sched_rr_get_interval sched_setaffinity sched_getaffinity
sched_setattr sched_getattr getcpu ioprio_set ioprio_get umask uname sethostname
setdomainname getrandom sync membarrier syslog vhangup
"""

#: The seven classes of local calls the oracle covers: class -> call names.
LOCAL: dict[str, frozenset[str]] = {
    "files": frozenset(_FILES.split()),
    "descriptors": frozenset(_DESCRIPTORS.split()),
    "memory": frozenset(_MEMORY.split()),
    "processes": frozenset(_PROCESSES.split()),
    "signals": frozenset(_SIGNALS.split()),
    "time": frozenset(_TIME.split()),
    "resources": frozenset(_RESOURCES.split()),
}

#: The groups left out, each with its reason: (call names, reason).
NOT_LOCAL: dict[str, tuple[frozenset[str], str]] = {
    "network": (
        frozenset(
            """socket socketpair connect accept accept4 bind listen getsockname getpeername
            sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown setsockopt getsockopt
            getpmsg putpmsg""".split()
        ),
        "network calls: not a local call (issue 14 covers local calls)",
    ),
    "ipc": (
        frozenset(
            """msgget msgsnd msgrcv msgctl semget semop semctl semtimedop shmget shmat shmctl
            shmdt mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify
            mq_getsetattr""".split()
        ),
        "System V / POSIX IPC: not in the covered classes",
    ),
    "keys": (
        frozenset("add_key request_key keyctl".split()),
        "kernel key management: not in the covered classes",
    ),
    "bpf-perf": (
        frozenset("bpf perf_event_open".split()),
        "bpf/perf: not in the covered classes",
    ),
    "io_uring": (
        frozenset("io_uring_setup io_uring_enter io_uring_register".split()),
        "io_uring: not in the covered classes",
    ),
    "modules": (
        frozenset(
            """init_module finit_module delete_module create_module query_module
            get_kernel_syms kexec_load kexec_file_load""".split()
        ),
        "kernel modules and kexec: not in the covered classes",
    ),
    "admin": (
        frozenset(
            """reboot iopl ioperm _sysctl nfsservctl lookup_dcookie vserver afs_syscall
            tuxcall security""".split()
        ),
        "machine administration / obsolete calls: not in the covered classes",
    ),
    "security": (
        frozenset("landlock_create_ruleset landlock_add_rule landlock_restrict_self".split()),
        "Landlock: not in the covered classes",
    ),
}

#: call name -> its class (a :data:`LOCAL` key) or its left-out group (a :data:`NOT_LOCAL`
#: key).
CLASS_OF: dict[str, str] = {
    name: group
    for groups in (LOCAL, {key: names for key, (names, _) in NOT_LOCAL.items()})
    for group, names in groups.items()
    for name in names
}


def class_of_test(trace_expr: str) -> str | None:
    """The class (or left-out group) of a test that traces *trace_expr* (strace's
    ``-e trace=`` value): the group of its first call name; None when the first item names
    no known call (a regex, a class such as ``%file``, ``all``)."""
    for item in trace_expr.lstrip("!").split(","):
        name = item.strip().lstrip("?")
        if name in CLASS_OF:
            return CLASS_OF[name]
        return None
    return None
