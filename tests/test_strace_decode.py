"""Unit tests of libvirt_nitro.strace: raw registers -> strace 6.1's text.

Every expected line was printed by strace 6.1 on this host (Debian 12, x86-64) for a small C
program making the call, with the guest memory the call saw rebuilt in a fake address space.
"""

from __future__ import annotations

import struct

import pytest

from libvirt_nitro.errors import InvalidTraceExpression
from libvirt_nitro.linux import syscall_number
from libvirt_nitro.strace import (
    DecodeOptions,
    decode_entry,
    decode_exit,
    format_line,
    parse_trace_expr,
    render_args,
    reread_unreadable,
    syscall_class,
)
from libvirt_nitro.strace.quote import quote
from libvirt_nitro.testing.memory import FakeMemory


def u64(value: int) -> int:
    return value & 0xFFFF_FFFF_FFFF_FFFF


def err(errno: int) -> int:
    return u64(-errno)


def trace(name, args, ret, entry=None, exit=None, string_limit=32, captured=None):
    """One strace line with ``-s`` *string_limit*: decode at entry with *entry* memory, at
    exit with *exit* memory (the same as *entry* unless given), reading *captured* bytes of
    each string (default: *string_limit*)."""
    options = DecodeOptions(capture_bytes=string_limit if captured is None else captured)
    nr = name if isinstance(name, int) else syscall_number(name)
    entry_mem = FakeMemory(entry) if entry is not None else None
    exit_mem = FakeMemory(exit) if exit is not None else entry_mem
    call = decode_entry(nr, list(args) + [0] * (6 - len(args)), entry_mem, options)
    values, ret_text = decode_exit(call, u64(ret), exit_mem, options)
    return format_line(call.name, render_args(values, string_limit), ret_text)


def stat_buf(mode, size=0, rdev=0):
    data = bytearray(144)
    struct.pack_into("<I", data, 24, mode)
    struct.pack_into("<Q", data, 40, rdev)
    struct.pack_into("<q", data, 48, size)
    return bytes(data)


AT_FDCWD = u64(-100)
PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


# -- the commonest calls -------------------------------------------------------------------


def test_openat():
    mem = {0x1000: b"/etc/passwd\0"}
    line = trace("openat", [AT_FDCWD, 0x1000, 0o2000000], 3, mem)
    assert line == 'openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3'
    mem = {0x1000: b".\0"}
    line = trace("openat", [AT_FDCWD, 0x1000, 0o200000], 8, mem)
    assert line == 'openat(AT_FDCWD, ".", O_RDONLY|O_DIRECTORY) = 8'
    mem = {0x1000: b"x\0"}
    assert trace("openat", [5, 0x1000, 0o2002], err(9), mem) == (
        'openat(5, "x", O_RDWR|O_APPEND) = -1 EBADF (Bad file descriptor)'
    )
    # O_TMPFILE is a composite (__O_TMPFILE|O_DIRECTORY) and takes a mode.
    assert trace("openat", [AT_FDCWD, 0x1000, 0o20200000, 0o600], err(22), mem) == (
        'openat(AT_FDCWD, "x", O_RDONLY|O_TMPFILE, 0600) = -1 EINVAL (Invalid argument)'
    )


def test_open():
    mem = {0x1000: b"/etc/hostname\0", 0x2000: b"/tmp/st/x\0", 0x3000: b"/etc/x\0"}
    assert trace("open", [0x1000, 0], 3, mem) == 'open("/etc/hostname", O_RDONLY) = 3'
    assert trace("open", [0x2000, 0x40000000 | 0o1101, 0o600], 4, mem) == (
        'open("/tmp/st/x", O_WRONLY|O_CREAT|O_TRUNC|0x40000000, 0600) = 4'
    )
    assert trace("open", [0x3000, 3], err(2), mem) == (
        'open("/etc/x", O_ACCMODE) = -1 ENOENT (No such file or directory)'
    )
    assert trace("open", [0x8, 0o1101, 0o644], err(14), mem) == (
        "open(0x8, O_WRONLY|O_CREAT|O_TRUNC, 0644) = -1 EFAULT (Bad address)"
    )


def test_read_buffer_is_decoded_at_exit():
    options = DecodeOptions()
    call = decode_entry(0, [3, 0x2000, 4096, 0, 0, 0], FakeMemory({}), options)
    # strace prints the buffer and everything after it at the exit.
    assert call.entry_values == ["3", None, None]
    unfinished = format_line(call.name, render_args(call.entry_values, 32), None)
    assert unfinished == "read(3,  <unfinished ...>"
    values, ret = decode_exit(call, 1297, FakeMemory({0x2000: PASSWD}), options)
    assert format_line(call.name, render_args(values, 32), ret) == (
        'read(3, "root:x:0:0:root:/root:/bin/bash\\n"..., 4096) = 1297'
    )


def test_read_errors_and_empty():
    assert trace("read", [99, 0x7FFFF24A9C30, 10], err(9), {}) == (
        "read(99, 0x7ffff24a9c30, 10) = -1 EBADF (Bad file descriptor)"
    )
    assert trace("read", [3, 0x8, 10], err(14), {}) == (
        "read(3, 0x8, 10) = -1 EFAULT (Bad address)"
    )
    assert trace("read", [3, 0x2000, 0], 0, {0x2000: b"zz"}) == 'read(3, "", 0) = 0'


def test_write_escapes_and_truncation():
    mem = {0x1000: b'hi\t"x\\\x01\xff\n\0'}
    assert trace("write", [1, 0x1000, 10], 10, mem) == (
        'write(1, "hi\\t\\"x\\\\\\1\\377\\n\\0", 10) = 10'
    )
    mem = {0x1000: b"0123456789012345678901234567890123456789\n"}
    assert trace("write", [1, 0x1000, 41], 41, mem) == (
        'write(1, "01234567890123456789012345678901"..., 41) = 41'
    )
    # Octal escapes take three digits only before an octal digit.
    assert trace("write", [1, 0x2000, 7], 7, {0x2000: b"\x011\x012a\x7f\x80"}) == (
        'write(1, "\\0011\\0012a\\177\\200", 7) = 7'
    )


def test_string_limit_option():
    mem = {0x1000: b"0123456789"}
    line = trace("write", [1, 0x1000, 10], 10, mem, string_limit=4)
    assert line == 'write(1, "0123"..., 10) = 10'
    line = trace("write", [1, 0x1000, 4], 4, mem, string_limit=4)
    assert line == 'write(1, "0123", 4) = 4'


def test_the_string_limit_is_the_formatters_not_the_decoders():
    # Read once with a large budget, printed with any -s up to it: the same lines as a
    # decoder that read exactly -s bytes.
    strings = {0x1000: b"0123456789", 0x2000: b"abcd\0", 0x3000: b"abc\0"}
    for limit in (0, 3, 4, 5, 10, 32):
        for args, ret in (([1, 0x1000, 10], 10), ([1, 0x1000, 4], 4)):
            exact = trace("write", args, ret, strings, string_limit=limit)
            assert trace("write", args, ret, strings, string_limit=limit, captured=64) == exact
        argv = {0x1000: b"/bin/x\0", **_argv(0x9000, [b"abcd", b"abc", b"", b"0123456789"])}
        exact = trace("execve", [0x1000, 0x9000, 0], 0, argv, string_limit=limit)
        wide = trace("execve", [0x1000, 0x9000, 0], 0, argv, string_limit=limit, captured=64)
        assert wide == exact, limit


def test_an_unreadable_argument_is_data_and_read_again_at_exit():
    options = DecodeOptions()
    call = decode_entry(257, [AT_FDCWD, 0x1000, 0, 0, 0, 0], FakeMemory({}), options)
    assert render_args(call.entry_values, 32) == "AT_FDCWD, 0x1000, O_RDONLY"
    again = reread_unreadable(call, FakeMemory({0x1000: b"/etc/passwd\0"}), options)
    assert render_args(again.entry_values, 32) == 'AT_FDCWD, "/etc/passwd", O_RDONLY'
    assert reread_unreadable(again, FakeMemory({}), options) is again


def test_quote():
    assert quote(b"a\rb\vc\fd") == '"a\\rb\\vc\\fd"'
    assert quote(b"abc", truncated=True) == '"abc"...'
    assert quote(b"\x00\x07") == '"\\0\\7"'
    assert quote(b"\x00" + b"7") == '"\\0007"'


def test_close():
    assert trace("close", [3], 0) == "close(3) = 0"


def test_stat_family():
    mem = {0x1000: b"/etc/passwd\0", 0x2000: b"\0", 0x3000: b"/dev/null\0", 0x4000: b"/tmp\0"}
    reg = stat_buf(0o100644, 1297)
    assert trace("newfstatat", [3, 0x2000, 0x9000, 0x1000], 0, mem, {**mem, 0x9000: reg}) == (
        'newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=1297, ...}, AT_EMPTY_PATH) = 0'
    )
    assert trace("stat", [0x1000, 0x9000], 0, mem, {**mem, 0x9000: reg}) == (
        'stat("/etc/passwd", {st_mode=S_IFREG|0644, st_size=1297, ...}) = 0'
    )
    assert trace("fstat", [3, 0x9000], 0, mem, {**mem, 0x9000: reg}) == (
        "fstat(3, {st_mode=S_IFREG|0644, st_size=1297, ...}) = 0"
    )
    chr_dev = stat_buf(0o20666, rdev=0x103)
    assert trace("stat", [0x3000, 0x9000], 0, mem, {**mem, 0x9000: chr_dev}) == (
        'stat("/dev/null", {st_mode=S_IFCHR|0666, st_rdev=makedev(0x1, 0x3), ...}) = 0'
    )
    sticky = stat_buf(0o41777, 4096)
    assert trace(
        "newfstatat", [AT_FDCWD, 0x4000, 0x9000, 0x100], 0, mem, {0x9000: sticky, **mem}
    ) == (
        'newfstatat(AT_FDCWD, "/tmp", {st_mode=S_IFDIR|S_ISVTX|0777, st_size=4096, ...}, '
        "AT_SYMLINK_NOFOLLOW) = 0"
    )
    # A failed call leaves the struct alone: strace prints the address.
    mem[0x5000] = b"/nope\0"
    assert trace("lstat", [0x5000, 0x7FFC84CB1870], err(2), mem) == (
        'lstat("/nope", 0x7ffc84cb1870) = -1 ENOENT (No such file or directory)'
    )
    assert trace("stat", [0x1000, 0x8], err(14), mem) == (
        'stat("/etc/passwd", 0x8) = -1 EFAULT (Bad address)'
    )


def test_mmap_family():
    assert trace("mmap", [0, 8192, 3, 0x22, u64(-1), 0], 0x7FE509497000) == (
        "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7fe509497000"
    )
    assert trace("mmap", [0, 4096, 1, 0x1 | 0x100000 | (2 << 26), 3, 4096], err(9)) == (
        "mmap(NULL, 4096, PROT_READ, MAP_SHARED|MAP_FIXED_NOREPLACE|2<<MAP_HUGE_SHIFT, 3, 0x1000)"
        " = -1 EBADF (Bad file descriptor)"
    )
    assert trace("mmap", [0x10000, 4096, 0x105, 0x812, 3, 0], 0x10000) == (
        "mmap(0x10000, 4096, PROT_READ|PROT_EXEC|0x100, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0)"
        " = 0x10000"
    )
    flags = 0x3 | 0x20000 | 0x100 | 0x4000 | 0x8000
    assert trace("mmap", [0, 4096, 0, flags, u64(-1), 0], err(9)) == (
        "mmap(NULL, 4096, PROT_NONE, MAP_SHARED_VALIDATE|MAP_NORESERVE|MAP_POPULATE|"
        "MAP_GROWSDOWN|MAP_STACK, -1, 0) = -1 EBADF (Bad file descriptor)"
    )
    assert trace("mprotect", [0x7FE509497000, 4096, 0], 0) == (
        "mprotect(0x7fe509497000, 4096, PROT_NONE) = 0"
    )
    assert trace("munmap", [0x7FE509497000, 8192], 0) == "munmap(0x7fe509497000, 8192) = 0"
    assert trace("munmap", [0, 0], err(22)) == "munmap(NULL, 0) = -1 EINVAL (Invalid argument)"
    assert trace("brk", [0], 0x55A6F6879000) == "brk(NULL) = 0x55a6f6879000"
    assert trace("brk", [0x555555], 0x55E4F8773000) == "brk(0x555555) = 0x55e4f8773000"


def test_ioctl():
    assert trace("ioctl", [1, 0x5401, 0x7FFC1A138930], err(25)) == (
        "ioctl(1, TCGETS, 0x7ffc1a138930) = -1 ENOTTY (Inappropriate ioctl for device)"
    )
    assert trace("ioctl", [0, 0x80045430, 0], err(25)) == (
        "ioctl(0, TIOCGPTN, NULL) = -1 ENOTTY (Inappropriate ioctl for device)"
    )
    assert trace("ioctl", [1, 0x1234, 0], err(25)) == (
        "ioctl(1, _IOC(_IOC_NONE, 0x12, 0x34, 0), 0) = -1 ENOTTY (Inappropriate ioctl for device)"
    )


def test_access():
    mem = {0x1000: b"/etc\0"}
    assert trace("access", [0x1000, 5], 0, mem) == 'access("/etc", R_OK|X_OK) = 0'
    assert trace("access", [0x1000, 0], 0, mem) == 'access("/etc", F_OK) = 0'
    assert trace("access", [0x1000, 0x10], err(22), mem) == (
        'access("/etc", 0x10 /* ?_OK */) = -1 EINVAL (Invalid argument)'
    )


def test_pipes_and_dups():
    fds = {0x1000: struct.pack("<ii", 5, 6)}
    assert trace("pipe", [0x1000], 0, {}, fds) == "pipe([5, 6]) = 0"
    assert trace("pipe", [0x8], err(14), {}) == "pipe(0x8) = -1 EFAULT (Bad address)"
    assert trace("pipe2", [0x1000, 0o4000 | 0o2000000], 0, {}, fds) == (
        "pipe2([5, 6], O_NONBLOCK|O_CLOEXEC) = 0"
    )
    assert trace("pipe2", [0x1000, 0], 0, {}, fds) == "pipe2([5, 6], 0) = 0"
    assert trace("dup", [0], 7) == "dup(0) = 7"
    assert trace("dup2", [0, 10], 10) == "dup2(0, 10) = 10"
    assert trace("dup2", [99, 5], err(9)) == "dup2(99, 5) = -1 EBADF (Bad file descriptor)"
    assert trace("dup3", [0, 11, 0o2000000], 11) == "dup3(0, 11, O_CLOEXEC) = 11"


def test_clone():
    flags = 0x01000000 | 0x00200000 | 17  # CHILD_SETTID|CHILD_CLEARTID|SIGCHLD
    assert trace("clone", [flags, 0, 0, 0x7FE5092A9A10, 0], 17977) == (
        "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, "
        "child_tidptr=0x7fe5092a9a10) = 17977"
    )
    flags = 0x00080000 | 0x00100000 | 0x400000000  # SETTLS|PARENT_SETTID|unknown
    tid = {0x7FFC0000: struct.pack("<i", 8)}
    assert trace("clone", [flags, 0x7FFC84CB1980, 0x7FFC0000, 0, 0x1234], 8, {}, tid) == (
        "clone(child_stack=0x7ffc84cb1980, flags=CLONE_SETTLS|CLONE_PARENT_SETTID|0x400000000, "
        "parent_tid=[8], tls=0x1234) = 8"
    )
    assert trace("clone", [0, 0, 0, 0, 0], 5) == "clone(child_stack=NULL, flags=0) = 5"
    assert trace("clone", [0x100 | 77, 0], 10) == (
        "clone(child_stack=NULL, flags=CLONE_VM|77) = 10"
    )
    assert trace("clone", [0x100 | 0x4000 | 17, 0], 17978) == (
        "clone(child_stack=NULL, flags=CLONE_VM|CLONE_VFORK|SIGCHLD) = 17978"
    )
    assert trace("clone", [0x10000 | 0x800 | 0x100, 0x7FFC84CB1980], 9) == (
        "clone(child_stack=0x7ffc84cb1980, flags=CLONE_VM|CLONE_SIGHAND|CLONE_THREAD) = 9"
    )
    assert trace("fork", [], 6) == "fork() = 6"
    assert trace("vfork", [], 5) == "vfork() = 5"


def _argv(base: int, strings: list[bytes]) -> dict[int, bytes]:
    mem = {}
    pointers = []
    for i, s in enumerate(strings):
        mem[base + 0x1000 + 0x100 * i] = s + b"\0"
        pointers.append(base + 0x1000 + 0x100 * i)
    mem[base] = struct.pack(f"<{len(pointers) + 1}Q", *pointers, 0)
    return mem


def test_execve():
    mem = {0x1000: b"/nonexistent\0", **_argv(0x10000, [b"ls", b"-l", b"a\nb"])}
    mem.update(_argv(0x7FFC1A138560, [b"A=1", b"B=2"]))
    # Decoded at entry: after a successful exec the old memory is gone.
    options = DecodeOptions()
    call = decode_entry(59, [0x1000, 0x10000, 0x7FFC1A138560, 0, 0, 0], FakeMemory(mem), options)
    values, ret = decode_exit(call, err(2), None, options)
    assert format_line(call.name, render_args(values, 32), ret) == (
        'execve("/nonexistent", ["ls", "-l", "a\\nb"], 0x7ffc1a138560 /* 2 vars */) = '
        "-1 ENOENT (No such file or directory)"
    )
    assert trace("execve", [0x1000, 0x10000, 0], 0, mem) == (
        'execve("/nonexistent", ["ls", "-l", "a\\nb"], NULL) = 0'
    )
    assert trace("execve", [0x1000, 0, 0], err(2), mem) == (
        'execve("/nonexistent", NULL, NULL) = -1 ENOENT (No such file or directory)'
    )
    many = _argv(0x20000, [b"x"] * 5)
    assert trace("execve", [0x1000, 0x20000, 0], 0, {**mem, **many}, string_limit=3) == (
        'execve("/nonexistent", ["x", "x", "x", ...], NULL) = 0'
    )


def test_exits():
    assert trace("exit_group", [0], 0) == "exit_group(0) = ?"
    assert trace("exit_group", [u64(-1)], 0) == "exit_group(-1) = ?"
    assert trace("exit", [3], 0) == "exit(3) = ?"


def test_wait4():
    status = {0x7FFC0000: struct.pack("<i", 7 << 8)}
    assert trace("wait4", [17977, 0x7FFC0000, 0, 0], 17977, {}, status) == (
        "wait4(17977, [{WIFEXITED(s) && WEXITSTATUS(s) == 7}], 0, NULL) = 17977"
    )
    killed = {0x7FFC0000: struct.pack("<i", 9)}
    assert trace("wait4", [u64(-1), 0x7FFC0000, 0, 0], 17979, {}, killed) == (
        "wait4(-1, [{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}], 0, NULL) = 17979"
    )
    assert trace("wait4", [u64(-1), 0x7FFC1A1385EC, 3, 0], 0, {}, status) == (
        "wait4(-1, 0x7ffc1a1385ec, WNOHANG|WSTOPPED, NULL) = 0"
    )
    assert trace(
        "wait4", [0, 0x7FFC0000, 0x40000000, 0], 17978, {}, {0x7FFC0000: struct.pack("<i", 3 << 8)}
    ) == ("wait4(0, [{WIFEXITED(s) && WEXITSTATUS(s) == 3}], __WALL, NULL) = 17978")
    assert trace("wait4", [99999, 0, 0x80000001, 0], err(10)) == (
        "wait4(99999, NULL, WNOHANG|__WCLONE, NULL) = -1 ECHILD (No child processes)"
    )


def test_kill():
    assert trace("kill", [0, 0], 0) == "kill(0, 0) = 0"
    assert trace("kill", [17979, 9], 0) == "kill(17979, SIGKILL) = 0"
    assert trace("kill", [99999, 34], err(3)) == "kill(99999, SIGRT_2) = -1 ESRCH (No such process)"
    assert trace("kill", [99999, 65], err(3)) == "kill(99999, 65) = -1 ESRCH (No such process)"
    assert trace("kill", [99999, 15], err(3)) == (
        "kill(99999, SIGTERM) = -1 ESRCH (No such process)"
    )


def test_uname():
    uts = b"".join(s.ljust(65, b"\0") for s in [b"Linux", b"vm", b"6.1.0", b"#1", b"x86_64", b""])
    assert trace("uname", [0x1000], 0, {}, {0x1000: uts}) == (
        'uname({sysname="Linux", nodename="vm", ...}) = 0'
    )
    assert trace("uname", [0x8], err(14), {}) == "uname(0x8) = -1 EFAULT (Bad address)"


def test_fcntl():
    assert trace("fcntl", [8, 1], 0) == "fcntl(8, F_GETFD) = 0"
    assert trace("fcntl", [8, 1], 1) == "fcntl(8, F_GETFD) = 0x1 (flags FD_CLOEXEC)"
    assert trace("fcntl", [8, 2, 1], 0) == "fcntl(8, F_SETFD, FD_CLOEXEC) = 0"
    assert trace("fcntl", [8, 4, 0o4000], 0) == "fcntl(8, F_SETFL, O_RDONLY|O_NONBLOCK) = 0"
    assert trace("fcntl", [8, 1030, 20], 20) == "fcntl(8, F_DUPFD_CLOEXEC, 20) = 20"
    assert (
        trace("fcntl", [0, 3], 0x8000) == "fcntl(0, F_GETFL) = 0x8000 (flags O_RDONLY|O_LARGEFILE)"
    )
    assert trace("fcntl", [0, 99, 1], err(22)) == (
        "fcntl(0, 0x63 /* F_??? */, 0x1) = -1 EINVAL (Invalid argument)"
    )


def _dirents(count: int) -> bytes:
    out = b""
    for i in range(count):
        name = f"e{i}".encode() + b"\0"
        reclen = (19 + len(name) + 7) // 8 * 8
        out += struct.pack("<QqHB", i + 1, i + 1, reclen, 8) + name.ljust(reclen - 19, b"\0")
    return out


def test_getdents64():
    data = _dirents(4)
    assert trace(
        "getdents64", [8, 0x7FFC1A138930, 4096], len(data), {}, {0x7FFC1A138930: data}
    ) == (f"getdents64(8, 0x7ffc1a138930 /* 4 entries */, 4096) = {len(data)}")
    assert trace("getdents64", [8, 0x7FFC1A138930, 4096], 0, {}, {0x7FFC1A138930: b""}) == (
        "getdents64(8, 0x7ffc1a138930 /* 0 entries */, 4096) = 0"
    )
    assert trace("getdents64", [99, 0x7FFC84CB1900, 256], err(9), {}) == (
        "getdents64(99, 0x7ffc84cb1900, 256) = -1 EBADF (Bad file descriptor)"
    )


def test_path_calls():
    mem = {0x1000: b"/tmp\0", 0x2000: b"/tmp/st/dd\0", 0x3000: b"/nope\0", 0x4000: b"/nope2\0"}
    assert trace("chdir", [0x1000], 0, mem) == 'chdir("/tmp") = 0'
    assert trace("chdir", [0x8], err(14), mem) == "chdir(0x8) = -1 EFAULT (Bad address)"
    assert trace("mkdir", [0x2000, 0o755], 0, mem) == 'mkdir("/tmp/st/dd", 0755) = 0'
    assert trace("mkdir", [0x3000, 0o1777], err(2), mem) == (
        'mkdir("/nope", 01777) = -1 ENOENT (No such file or directory)'
    )
    assert trace("rmdir", [0x2000], 0, mem) == 'rmdir("/tmp/st/dd") = 0'
    assert trace("unlink", [0x3000], err(2), mem) == (
        'unlink("/nope") = -1 ENOENT (No such file or directory)'
    )
    assert trace("unlinkat", [AT_FDCWD, 0x3000, 0x200], err(2), mem) == (
        'unlinkat(AT_FDCWD, "/nope", AT_REMOVEDIR) = -1 ENOENT (No such file or directory)'
    )
    assert trace("rename", [0x3000, 0x4000], err(2), mem) == (
        'rename("/nope", "/nope2") = -1 ENOENT (No such file or directory)'
    )
    assert trace("renameat2", [AT_FDCWD, 0x3000, AT_FDCWD, 0x4000, 1], err(2), mem) == (
        'renameat2(AT_FDCWD, "/nope", AT_FDCWD, "/nope2", RENAME_NOREPLACE) = '
        "-1 ENOENT (No such file or directory)"
    )


def test_paths_are_not_cut_at_the_string_limit():
    long = b"/" + b"d" * 60
    line = trace("chdir", [0x1000], 0, {0x1000: long + b"\0"}, string_limit=4)
    assert line == f'chdir("{long.decode()}") = 0'


def test_sockets():
    assert trace("socket", [2, 1 | 0o2000000, 0], 9) == (
        "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 9"
    )
    assert trace("socket", [1, 2, 0], 12) == "socket(AF_UNIX, SOCK_DGRAM, 0) = 12"
    assert (
        trace("socket", [1, 1 | 0o4000, 0], 7)
        == "socket(AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK, 0) = 7"
    )
    assert trace("socket", [99, 12, 0], err(97)) == (
        "socket(0x63 /* AF_??? */, 0xc /* SOCK_??? */, 0) = "
        "-1 EAFNOSUPPORT (Address family not supported by protocol)"
    )
    sin = struct.pack("<H", 2) + struct.pack(">H", 9) + bytes([127, 0, 0, 1]) + bytes(8)
    assert trace("connect", [9, 0x1000, 16], err(111), {0x1000: sin}) == (
        'connect(9, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, '
        "16) = -1 ECONNREFUSED (Connection refused)"
    )
    sun = struct.pack("<H", 1) + b"/tmp/st/sock".ljust(108, b"\0")
    assert trace("bind", [7, 0x1000, 110], 0, {0x1000: sun}) == (
        'bind(7, {sa_family=AF_UNIX, sun_path="/tmp/st/sock"}, 110) = 0'
    )
    assert trace("accept", [7, 0, 0], err(11)) == (
        "accept(7, NULL, NULL) = -1 EAGAIN (Resource temporarily unavailable)"
    )
    lens = {0x2000: struct.pack("<i", 5)}
    assert trace("accept", [7, 0x7FFFF24A9C30, 0x2000], err(11), lens) == (
        "accept(7, 0x7ffff24a9c30, [5]) = -1 EAGAIN (Resource temporarily unavailable)"
    )
    assert trace("sendto", [12, 0x1000, 3, 0, 0, 0], err(107), {0x1000: b"abc"}) == (
        'sendto(12, "abc", 3, 0, NULL, 0) = -1 ENOTCONN (Transport endpoint is not connected)'
    )
    assert trace("recvfrom", [8, 0x7FFFF24A9C30, 100, 0x40, 0, 0], err(11), {}) == (
        "recvfrom(8, 0x7ffff24a9c30, 100, MSG_DONTWAIT, NULL, NULL) = "
        "-1 EAGAIN (Resource temporarily unavailable)"
    )


def test_poll_and_select():
    entry = {0x1000: struct.pack("<ihh", 0, 1, 0)}
    after = {0x1000: struct.pack("<ihh", 0, 1, 1)}
    assert trace("poll", [0x1000, 1, 0], 1, entry, after) == (
        "poll([{fd=0, events=POLLIN}], 1, 0) = 1 ([{fd=0, revents=POLLIN}])"
    )
    assert trace("poll", [0, 0, 0], 0) == "poll(NULL, 0, 0) = 0 (Timeout)"
    fds = struct.pack("<Q", 0b1001)
    entry = {0x1000: fds, 0x2000: struct.pack("<qq", 0, 5)}
    after = {0x1000: fds, 0x2000: struct.pack("<qq", 0, 1)}
    assert trace("select", [4, 0x1000, 0, 0, 0x2000], 2, entry, after) == (
        "select(4, [0 3], NULL, NULL, {tv_sec=0, tv_usec=5}) = 2 (in [0 3], left {tv_sec=0, "
        "tv_usec=1})"
    )
    assert trace("select", [0, 0, 0, 0, 0x2000], 0, after) == (
        "select(0, NULL, NULL, NULL, {tv_sec=0, tv_usec=1}) = 0 (Timeout)"
    )


def test_sleeps():
    ts = {0x1000: struct.pack("<qq", 0, 100), 0x2000: struct.pack("<qq", 0, 1000)}
    assert trace("nanosleep", [0x1000, 0], 0, ts) == "nanosleep({tv_sec=0, tv_nsec=100}, NULL) = 0"
    assert trace("clock_nanosleep", [1, 0, 0x2000, 0], 0, ts) == (
        "clock_nanosleep(CLOCK_MONOTONIC, 0, {tv_sec=0, tv_nsec=1000}, NULL) = 0"
    )
    assert trace("clock_nanosleep", [99, 0, 0, 0], err(22), ts) == (
        "clock_nanosleep(0x63 /* CLOCK_??? */, 0, NULL, NULL) = -1 EINVAL (Invalid argument)"
    )


@pytest.mark.parametrize(
    "name", ["getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid"]
)
def test_no_argument_calls(name):
    assert trace(name, [0x55, 0x66], 17976) == f"{name}() = 17976"


def test_futex():
    assert trace("futex", [0x7FFC1A1385EC, 0x81, 1], 0) == (
        "futex(0x7ffc1a1385ec, FUTEX_WAKE_PRIVATE, 1) = 0"
    )
    assert trace("futex", [0x7FFC84CB1868, 0x109, 777, 0, 0, 0xFFFFFFFF], err(11)) == (
        "futex(0x7ffc84cb1868, FUTEX_WAIT_BITSET|FUTEX_CLOCK_REALTIME, 777, NULL, "
        "FUTEX_BITSET_MATCH_ANY) = -1 EAGAIN (Resource temporarily unavailable)"
    )
    ts = {0x1000: struct.pack("<qq", 0, 1)}
    assert trace("futex", [0x7FFC84CB1868, 0, 777, 0x1000], err(11), ts) == (
        "futex(0x7ffc84cb1868, FUTEX_WAIT, 777, {tv_sec=0, tv_nsec=1}) = "
        "-1 EAGAIN (Resource temporarily unavailable)"
    )
    assert trace("futex", [0x7FFC84CB1868, 99, 5, 0, 0, 0], err(38)) == (
        "futex(0x7ffc84cb1868, 0x63 /* FUTEX_??? */, 5, NULL, NULL, 0) = "
        "-1 ENOSYS (Function not implemented)"
    )


def test_thread_setup():
    assert trace("set_tid_address", [0x7FBFD5291A10], 4) == "set_tid_address(0x7fbfd5291a10) = 4"
    assert trace("set_robust_list", [0x7FBFD5291A20, 24], 0) == (
        "set_robust_list(0x7fbfd5291a20, 24) = 0"
    )
    fs = {0x1000: struct.pack("<Q", 0x7FE5092A9740)}
    assert trace("arch_prctl", [0x1003, 0x1000], 0, {}, fs) == (
        "arch_prctl(ARCH_GET_FS, [0x7fe5092a9740]) = 0"
    )
    assert trace("arch_prctl", [0x1002, 0x7FBFD5291740], 0) == (
        "arch_prctl(ARCH_SET_FS, 0x7fbfd5291740) = 0"
    )
    assert trace("arch_prctl", [0x3001, 0x1234], err(22)) == (
        "arch_prctl(0x3001 /* ARCH_??? */, 0x1234) = -1 EINVAL (Invalid argument)"
    )


def test_prlimit64():
    old = {0x1000: struct.pack("<QQ", 8192 * 1024, u64(-1))}
    assert trace("prlimit64", [0, 3, 0, 0x1000], 0, {}, old) == (
        "prlimit64(0, RLIMIT_STACK, NULL, {rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}) = 0"
    )
    new = {0x2000: struct.pack("<QQ", 1024, u64(-1))}
    assert trace("prlimit64", [0, 7, 0x2000, 0], err(1), new) == (
        "prlimit64(0, RLIMIT_NOFILE, {rlim_cur=1024, rlim_max=RLIM64_INFINITY}, NULL) = "
        "-1 EPERM (Operation not permitted)"
    )
    assert trace("prlimit64", [1, 99, 0, 0x7FFC84CB1900], err(22)) == (
        "prlimit64(1, 0x63 /* RLIMIT_??? */, NULL, 0x7ffc84cb1900) = -1 EINVAL (Invalid argument)"
    )


def test_getrandom():
    out = {0x1000: b"\x9c\x7f\xcf\x7d"}
    assert trace("getrandom", [0x1000, 4, 0], 4, {}, out) == (
        'getrandom("\\x9c\\x7f\\xcf\\x7d", 4, 0) = 4'
    )
    assert trace("getrandom", [0x7FFC84CB1900, 4, 7], err(22)) == (
        "getrandom(0x7ffc84cb1900, 4, GRND_NONBLOCK|GRND_RANDOM|GRND_INSECURE) = "
        "-1 EINVAL (Invalid argument)"
    )


def _sigaction(handler, flags, restorer, mask):
    return struct.pack("<QQQQ", handler, flags, restorer, mask)


def test_rt_sigaction():
    act = {0x1000: _sigaction(0x55A6F4F5E429, 0x04000000 | 0x10000000, 0x7FE5092E8050, 1 << 9)}
    assert trace("rt_sigaction", [2, 0x1000, 0, 8], 0, act) == (
        "rt_sigaction(SIGINT, {sa_handler=0x55a6f4f5e429, sa_mask=[USR1], "
        "sa_flags=SA_RESTORER|SA_RESTART, sa_restorer=0x7fe5092e8050}, NULL, 8) = 0"
    )
    old = {0x2000: _sigaction(0, 0, 0, 0)}
    assert trace("rt_sigaction", [15, 0, 0x2000, 8], 0, {}, old) == (
        "rt_sigaction(SIGTERM, NULL, {sa_handler=SIG_DFL, sa_mask=[], sa_flags=0}, 8) = 0"
    )
    flags = 0x04000000 | 0x08000000 | 0x40000000 | 0x80000000 | 4
    act = {0x1000: _sigaction(1, flags, 0x1234, 0x5)}
    assert trace("rt_sigaction", [12, 0x1000, 0, 8], 0, act) == (
        "rt_sigaction(SIGUSR2, {sa_handler=SIG_IGN, sa_mask=[HUP QUIT], sa_flags=SA_RESTORER|"
        "SA_ONSTACK|SA_NODEFER|SA_RESETHAND|SA_SIGINFO, sa_restorer=0x1234}, NULL, 8) = 0"
    )
    assert trace("rt_sigaction", [11, 0, 0, 8], 0) == "rt_sigaction(SIGSEGV, NULL, NULL, 8) = 0"


def test_rt_sigprocmask():
    chld = {0x1000: struct.pack("<Q", 1 << 16)}
    assert trace("rt_sigprocmask", [0, 0x1000, 0, 8], 0, chld) == (
        "rt_sigprocmask(SIG_BLOCK, [CHLD], NULL, 8) = 0"
    )
    assert trace("rt_sigprocmask", [1, 0x1000, 0x1000, 8], 0, chld) == (
        "rt_sigprocmask(SIG_UNBLOCK, [CHLD], [CHLD], 8) = 0"
    )
    full = {0x1000: struct.pack("<Q", u64(~(3 << 31)))}
    assert trace("rt_sigprocmask", [2, 0x1000, 0, 8], 0, full) == (
        "rt_sigprocmask(SIG_SETMASK, ~[RTMIN RT_1], NULL, 8) = 0"
    )
    empty = {0x2000: bytes(8)}
    assert trace("rt_sigprocmask", [2, 0, 0x2000, 8], 0, {}, empty) == (
        "rt_sigprocmask(SIG_SETMASK, NULL, [], 8) = 0"
    )


def test_rt_sigreturn():
    # strace reads the frame's mask from the user stack; a Call has no rsp, so no mask.
    assert trace("rt_sigreturn", [1, 2, 3], 0) == "rt_sigreturn() = 0"


# -- unknown calls, unreadable memory, failures --------------------------------------------


def test_unknown_number():
    assert trace(0x3FF, [1, 2, 3, 4, 5, 6], err(38)) == (
        "syscall_0x3ff(0x1, 0x2, 0x3, 0x4, 0x5, 0x6) = -1 ENOSYS (Function not implemented)"
    )
    assert trace(335, [1, 2, 3, 4, 5, 6], err(1)) == (
        "syscall_0x14f(0x1, 0x2, 0x3, 0x4, 0x5, 0x6) = -1 EPERM (Operation not permitted)"
    )


def test_calls_strace_prints_raw_have_their_own_argument_count():
    # strace's printargs: as many hex arguments as the call has (its sysent nargs).
    assert trace("afs_syscall", [1, 0, 3, 4, 5, 6], err(38)) == (
        "afs_syscall(0x1, 0, 0x3, 0x4, 0x5) = -1 ENOSYS (Function not implemented)"
    )
    assert trace("tuxcall", [1, 2, 3, 4], err(38)) == (
        "tuxcall(0x1, 0x2, 0x3) = -1 ENOSYS (Function not implemented)"
    )
    assert trace("sync", [1, 2, 3], 0) == "sync() = 0"


def test_calls_seen_in_a_static_program_start():
    # As strace 6.1 printed them in the test guest (tests/test_fidelity.py).
    assert trace("rseq", [0x11180CA0, 0x20, 0, 0x53053053], 0) == (
        "rseq(0x11180ca0, 0x20, 0, 0x53053053) = 0"
    )


def test_no_memory_prints_pointers():
    assert trace("openat", [AT_FDCWD, 0x47B0BF, 0], 3) == "openat(AT_FDCWD, 0x47b0bf, O_RDONLY) = 3"
    assert trace("read", [5, 0x7FFD1C0, 4096], 1274) == "read(5, 0x7ffd1c0, 4096) = 1274"
    assert trace("fstat", [3, 0x9000], 0) == "fstat(3, 0x9000) = 0"
    assert trace("execve", [0x1000, 0x2000, 0x3000], 0) == "execve(0x1000, 0x2000, 0x3000) = 0"
    assert trace("pipe", [0x1000], 0) == "pipe(0x1000) = 0"
    assert trace("wait4", [5, 0x1000, 0, 0], 5) == "wait4(5, 0x1000, 0, NULL) = 5"
    assert trace("write", [1, 0, 5], err(14)) == "write(1, NULL, 5) = -1 EFAULT (Bad address)"


def test_partly_unreadable_memory():
    # The path reads, the struct pointer does not: each argument falls back on its own.
    mem = {0x1000: b"/etc/passwd\0"}
    assert trace("stat", [0x1000, 0x9000], 0, mem) == 'stat("/etc/passwd", 0x9000) = 0'
    # A buffer whose tail is unmapped prints as its address.
    assert trace("write", [1, 0x1000, 64], 64, {0x1000: b"short"}) == "write(1, 0x1000, 64) = 64"


class BrokenMemory:
    def read(self, address, size):
        raise RuntimeError("a bug, not an unreadable page")

    def read_cstring(self, address, limit):
        raise RuntimeError("a bug, not an unreadable page")


def test_decoder_failure_falls_back_to_hex_and_is_counted():
    options = DecodeOptions()
    call = decode_entry(257, [AT_FDCWD, 0x1000, 0, 0, 0, 0], BrokenMemory(), options)
    values, ret = decode_exit(call, 3, BrokenMemory(), options)
    assert (
        format_line(call.name, render_args(values, 32), ret)
        == "openat(AT_FDCWD, 0x1000, O_RDONLY) = 3"
    )
    assert options.failures["openat"] == 1


def test_flags_with_unknown_bits_and_zero():
    assert trace("mprotect", [0x1000, 4096, 0x100 | 1], 0) == (
        "mprotect(0x1000, 4096, PROT_READ|0x100) = 0"
    )
    assert trace("unlinkat", [AT_FDCWD, 0, 0x200 | 0x80000000], err(22)) == (
        "unlinkat(AT_FDCWD, NULL, AT_REMOVEDIR|0x80000000) = -1 EINVAL (Invalid argument)"
    )
    assert trace("renameat2", [3, 0, 4, 0, 0], err(14)) == (
        "renameat2(3, NULL, 4, NULL, 0) = -1 EFAULT (Bad address)"
    )


def test_error_returns():
    assert trace("close", [99], err(9)) == "close(99) = -1 EBADF (Bad file descriptor)"
    assert trace("close", [3], err(4095)) == "close(3) = -1 (errno 4095)"
    # Not an error: strace prints the value unsigned.
    assert trace("close", [3], err(4096)) == "close(3) = 18446744073709547520"


def test_format_line():
    assert format_line("read", "3, ", None) == "read(3,  <unfinished ...>"
    assert format_line("getpid", "", "5") == "getpid() = 5"


# -- classes and -e trace= -----------------------------------------------------------------


def test_syscall_class():
    assert syscall_class("openat") == {"%file", "%desc"}
    assert syscall_class("read") == {"%desc"}
    assert syscall_class("execve") == {"%file", "%process"}
    assert syscall_class("clone") == {"%process"}
    assert syscall_class("mmap") == {"%desc", "%memory"}
    assert syscall_class("connect") == {"%network", "%net"}
    assert syscall_class("rt_sigaction") == {"%signal"}
    assert {"%signal", "%process"} <= syscall_class("kill")
    assert "%fstat" in syscall_class("newfstatat") and "%file" in syscall_class("newfstatat")
    assert syscall_class("getpid") == {"%pure"}
    assert syscall_class("no_such_call") == set()


def test_parse_trace_expr():
    assert parse_trace_expr("openat,execve") == {257, 59}
    with_file = parse_trace_expr("openat,execve,%file")
    assert {257, 59, 2, 4, 87, 83} <= with_file and 0 not in with_file
    assert parse_trace_expr("%memory") == {9, 10, 11, 12} | parse_trace_expr("%memory")
    assert 9 in parse_trace_expr("%memory") and 0 not in parse_trace_expr("%memory")
    assert parse_trace_expr("!read") == parse_trace_expr("all") - {0}
    assert parse_trace_expr("/^get[ug]id$") == {102, 104}
    assert parse_trace_expr("?nonexistent,read") == {0}
    assert parse_trace_expr("none") == set()
    with pytest.raises(InvalidTraceExpression, match="nonexistent"):
        parse_trace_expr("read,nonexistent")
    with pytest.raises(InvalidTraceExpression):
        parse_trace_expr("read,,write")


# -- strace's own test suite (tests/*.c of strace 6.1), translated --------------------------
#
# Each expectation below is a line the named strace test program prints as the one strace
# must produce, with the guest memory the call saw rebuilt in a FakeMemory.


def test_chmod_family_modes_are_16_bit_octal():  # chmod.c, umode_t.c, mkdir.c
    mem = {0x1000: b"chmod_test_file\0", 0x2000: b".\0"}
    assert trace("chmod", [0x1000, 0o600], 0, mem) == 'chmod("chmod_test_file", 0600) = 0'
    assert trace("chmod", [0x1000, 0o51], err(2), mem) == (
        'chmod("chmod_test_file", 051) = -1 ENOENT (No such file or directory)'
    )
    assert trace("chmod", [0x1000, 0o4], err(2), mem).startswith('chmod("chmod_test_file", 004)')
    # umode_t.c: the mode is an unsigned short, whatever the upper bits of the register.
    lmode = lambda m: 0xFFFF_FFFF_FFFF_0000 | m  # noqa: E731
    assert trace("mkdir", [0x2000, lmode(0xFFFF)], err(17), mem) == (
        'mkdir(".", 0177777) = -1 EEXIST (File exists)'
    )
    assert trace("mkdir", [0x2000, lmode(0)], err(17), mem).startswith('mkdir(".", 000)')
    assert trace("mkdir", [0x2000, lmode(0o6)], err(17), mem).startswith('mkdir(".", 006)')
    assert trace("creat", [0x2000, lmode(0o100000)], err(21), mem) == (
        'creat(".", 0100000) = -1 EISDIR (Is a directory)'
    )
    assert trace("fchmod", [u64(-1), 0o600], err(9)) == (
        "fchmod(-1, 0600) = -1 EBADF (Bad file descriptor)"
    )
    assert trace("fchmodat", [AT_FDCWD, 0x1000, 0o600], 0, mem) == (
        'fchmodat(AT_FDCWD, "chmod_test_file", 0600) = 0'
    )
    assert trace("creat", [0x1000, 0o644], 3, mem) == 'creat("chmod_test_file", 0644) = 3'


def test_chown_ids():  # xchownx.c: uid_t is 32 bits, -1 prints as -1
    mem = {0x1000: b"chown_sample\0"}
    hi = 0xFFFF_FFFF_0000_0000
    assert trace("chown", [0x1000, hi | 1000, 1000], 0, mem) == (
        'chown("chown_sample", 1000, 1000) = 0'
    )
    assert trace("chown", [0x1000, 0xFFFF_FFFF, u64(-1)], 0, mem) == (
        'chown("chown_sample", -1, -1) = 0'
    )
    assert trace("lchown", [0x1000, 0xFFFF, 0xC0DEFFFF], err(1), mem) == (
        'lchown("chown_sample", 65535, 3235839999) = -1 EPERM (Operation not permitted)'
    )
    assert trace("fchown", [3, 0xFACEFEED, 0xFACEFEED], err(1)) == (
        "fchown(3, 4207869677, 4207869677) = -1 EPERM (Operation not permitted)"
    )


def test_umask_returns_octal():  # umask.c
    assert trace("umask", [0o22], 0o22) == "umask(022) = 022"
    assert trace("umask", [0xFFFF_FFFF_FFFF_0000 | 0o777], 0) == "umask(0777) = 000"


def test_getcwd():  # getcwd.c: the path printed up to the returned length
    mem = {0x1000: b"/tmp/st\0"}
    assert trace("getcwd", [0x1000, 4096], 8, {}, mem) == 'getcwd("/tmp/st", 4096) = 8'
    assert trace("getcwd", [0x1000, 0], err(34)) == (
        "getcwd(0x1000, 0) = -1 ERANGE (Numerical result out of range)"
    )
    assert trace("getcwd", [0, 4096], err(14)) == "getcwd(NULL, 4096) = -1 EFAULT (Bad address)"


def test_calls_of_one_int():  # fsync.c, fdatasync, sync.c, close, dup
    assert trace("fsync", [0xDEADBEEF_FFFFFFFF], err(9)) == (
        "fsync(-1) = -1 EBADF (Bad file descriptor)"
    )
    assert trace("fdatasync", [0xDEADBEEF_FFFFFFFF], err(9)) == (
        "fdatasync(-1) = -1 EBADF (Bad file descriptor)"
    )
    assert trace("sync", [], 0) == "sync() = 0"
    assert trace("syncfs", [u64(-1)], err(9)) == "syncfs(-1) = -1 EBADF (Bad file descriptor)"


def _statfs(f_type=0xEF53, flags=0x20 | 0x1000):
    return struct.pack(
        "<qqQQQQQiiqqq32x", f_type, 4096, 100, 50, 40, 1000, 900, 0x12, -1, 255, 4096, flags
    )


def test_statfs():  # statfs.c, xstatfsx.c
    mem = {0x1000: b"/\0"}
    assert trace("statfs", [0x1000, 0x9000], 0, mem, {**mem, 0x9000: _statfs()}) == (
        'statfs("/", {f_type=EXT2_SUPER_MAGIC, f_bsize=4096, f_blocks=100, f_bfree=50, '
        "f_bavail=40, f_files=1000, f_ffree=900, f_fsid={val=[0x12, 0xffffffff]}, "
        "f_namelen=255, f_frsize=4096, f_flags=ST_VALID|ST_RELATIME}) = 0"
    )
    assert trace("fstatfs", [3, 0x9000], 0, {}, {0x9000: _statfs(0x1234, 0)}) == (
        "fstatfs(3, {f_type=0x1234, f_bsize=4096, f_blocks=100, f_bfree=50, f_bavail=40, "
        "f_files=1000, f_ffree=900, f_fsid={val=[0x12, 0xffffffff]}, f_namelen=255, "
        "f_frsize=4096}) = 0"
    )
    assert trace("statfs", [0x1000, 0], err(14), mem) == (
        'statfs("/", NULL) = -1 EFAULT (Bad address)'
    )


def test_rlimits():  # xgetrlimit.c, setrlimit.c
    lim = {0x9000: struct.pack("<QQ", 8192 * 1024, u64(-1))}
    assert trace("getrlimit", [3, 0x9000], 0, {}, lim) == (
        "getrlimit(RLIMIT_STACK, {rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}) = 0"
    )
    assert trace("getrlimit", [16, 0], err(22)) == (
        "getrlimit(0x10 /* RLIMIT_??? */, NULL) = -1 EINVAL (Invalid argument)"
    )
    assert trace("setrlimit", [7, 0x9000], 0, {0x9000: struct.pack("<QQ", 1024, 4096)}) == (
        "setrlimit(RLIMIT_NOFILE, {rlim_cur=1024, rlim_max=4*1024}) = 0"
    )
    assert trace("getrlimit", [7, 0x9000], err(14)) == (
        "getrlimit(RLIMIT_NOFILE, 0x9000) = -1 EFAULT (Bad address)"
    )


def test_madvise():  # madvise.c
    assert trace("madvise", [0x7F0000, 4096, 0], 0) == "madvise(0x7f0000, 4096, MADV_NORMAL) = 0"
    assert trace("madvise", [0, u64(-1), 2], err(22)) == (
        "madvise(NULL, 18446744073709551615, MADV_SEQUENTIAL) = -1 EINVAL (Invalid argument)"
    )
    assert trace("madvise", [0x7F0000, 4096, 77], err(22)) == (
        "madvise(0x7f0000, 4096, 0x4d /* MADV_??? */) = -1 EINVAL (Invalid argument)"
    )


def _iov(base: int, pieces: list[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack("<QQ", p, n) for p, n in pieces)


def test_writev_and_readv():  # writev.c, readv.c
    mem = {0x1000: _iov(0, [(0x2000, 3), (0x3000, 5)]), 0x2000: b"abc", 0x3000: b"12345"}
    assert trace("writev", [1, 0x1000, 2], 8, mem) == (
        'writev(1, [{iov_base="abc", iov_len=3}, {iov_base="12345", iov_len=5}], 2) = 8'
    )
    # readv prints what was read: at most the returned count, in order.
    assert trace("readv", [0, 0x1000, 2], 4, {}, mem) == (
        'readv(0, [{iov_base="abc", iov_len=3}, {iov_base="1", iov_len=5}], 2) = 4'
    )
    assert trace("readv", [0, 0x1000, 2], err(9), {}, mem) == (
        "readv(0, [{iov_base=0x2000, iov_len=3}, {iov_base=0x3000, iov_len=5}], 2) = "
        "-1 EBADF (Bad file descriptor)"
    )
    assert trace("writev", [1, 0x1000, 3], err(14), mem) == (
        'writev(1, [{iov_base="abc", iov_len=3}, {iov_base="12345", iov_len=5}, ... /* 0x1020 */]'
        ", 3) = -1 EFAULT (Bad address)"
    )
    assert trace("writev", [1, 0, 0], 0) == "writev(1, NULL, 0) = 0"


def test_time():  # time.c: the date in UTC, as in the test guest
    assert trace("time", [0], 1_700_000_000) == (
        "time(NULL) = 1700000000 (2023-11-14T22:13:20+0000)"
    )
    t = {0x9000: struct.pack("<q", 1_700_000_000)}
    assert trace("time", [0x9000], 1_700_000_000, {}, t) == (
        "time([1700000000 /* 2023-11-14T22:13:20+0000 */]) = 1700000000 (2023-11-14T22:13:20+0000)"
    )
    assert trace("time", [0x9001], err(14)) == "time(0x9001) = -1 EFAULT (Bad address)"


def test_fcntl_commands_and_decorations():  # fcntl.c, fcntl-common.c
    assert trace("fcntl", [0, 0x402, 1], 0) == "fcntl(0, F_NOTIFY, DN_ACCESS) = 0"
    assert trace("fcntl", [0, 0x402, 0x80000000 | 6], 0) == (
        "fcntl(0, F_NOTIFY, DN_MODIFY|DN_CREATE|DN_MULTISHOT) = 0"
    )
    assert trace("fcntl", [1, 0x401], 2) == "fcntl(1, F_GETLEASE) = 0x2 (F_UNLCK)"
    assert trace("fcntl", [1, 0x401], 0) == "fcntl(1, F_GETLEASE) = 0 (F_RDLCK)"
    assert trace("fcntl", [1, 0x400, 0], err(11)) == (
        "fcntl(1, F_SETLEASE, F_RDLCK) = -1 EAGAIN (Resource temporarily unavailable)"
    )
    assert trace("fcntl", [0, 0xA, 0], 0) == "fcntl(0, F_SETSIG, 0) = 0"
    assert trace("fcntl", [1, 0xA, 1], 0) == "fcntl(1, F_SETSIG, SIGHUP) = 0"
    assert trace("fcntl", [0, 0xB], 0) == "fcntl(0, F_GETSIG) = 0"
    assert trace("fcntl", [1, 0xB], 1) == "fcntl(1, F_GETSIG) = 1 (SIGHUP)"
    assert trace("fcntl", [0, 0x407, 4097], 4096) == "fcntl(0, F_SETPIPE_SZ, 4097) = 4096"
    assert trace("fcntl", [0, 0x408], 65536) == "fcntl(0, F_GETPIPE_SZ) = 65536"
    assert trace("fcntl", [0, 0, 0], 3) == "fcntl(0, F_DUPFD, 0) = 3"
    assert trace("fcntl", [0, 4, 2 | 0o100000], 0) == "fcntl(0, F_SETFL, O_RDWR|O_LARGEFILE) = 0"
    assert trace("fcntl", [0, 3], 0) == "fcntl(0, F_GETFL) = 0 (flags O_RDONLY)"
    assert trace("fcntl", [0, 1], 1) == "fcntl(0, F_GETFD) = 0x1 (flags FD_CLOEXEC)"


def test_fcntl_struct_flock():  # fcntl-common.c: struct flock at entry, F_GETLK at exit
    fl = struct.pack("<hh4xqqi4x", 0, 0, 0, 46, 0)
    assert trace("fcntl", [0, 6, 0x9000], 0, {0x9000: fl}) == (
        "fcntl(0, F_SETLK, {l_type=F_RDLCK, l_whence=SEEK_SET, l_start=0, l_len=46}) = 0"
    )
    bogus = struct.pack("<hh4xQQi4x", 0, 0, 0xDEFACED1FACEFEED, 0xDEFACED2CAFEF00D, 0)
    assert trace("fcntl", [0, 7, 0x9000], err(22), {0x9000: bogus}) == (
        "fcntl(0, F_SETLKW, {l_type=F_RDLCK, l_whence=SEEK_SET, l_start=-2379362051860529427, "
        "l_len=-2379362048367726579}) = -1 EINVAL (Invalid argument)"
    )
    unlocked = struct.pack("<hh4xqqi4x", 2, 0, 0, 46, 0)
    assert trace("fcntl", [0, 5, 0x9000], 0, {0x9000: fl}, {0x9000: unlocked}) == (
        "fcntl(0, F_GETLK, {l_type=F_UNLCK, l_whence=SEEK_SET, l_start=0, l_len=46, l_pid=0}) = 0"
    )
    assert trace("fcntl", [0, 6, 0xDEAD0000], err(14)) == (
        "fcntl(0, F_SETLK, 0xdead0000) = -1 EFAULT (Bad address)"
    )
    owner = struct.pack("<ii", 2, 1234567890)
    assert trace("fcntl", [0, 0xF, 0x9000], err(3), {0x9000: owner}) == (
        "fcntl(0, F_SETOWN_EX, {type=F_OWNER_PGRP, pid=1234567890}) = -1 ESRCH (No such process)"
    )


def test_select_fd_sets_and_its_return():  # xselect.c
    fds = struct.pack("<Q", (1 << 3) | (1 << 5))
    tv = {0x8000: struct.pack("<qq", 0, 42)}
    assert trace(
        "select", [6, 0x1000, 0, 0, 0], 1, {0x1000: fds}, {0x1000: struct.pack("<Q", 8)}
    ) == ("select(6, [3 5], NULL, NULL, NULL) = 1 (in [3])")
    # The three sets in one buffer: the kernel wrote the (empty) except set last.
    same = {0x1000: fds}
    assert trace("select", [6, 0x1000, 0x1000, 0x1000, 0], 1, same, {0x1000: bytes(8)}) == (
        "select(6, [3 5], [3 5], [3 5], NULL) = 1 ()"
    )
    assert trace("select", [0, 0, 0, 0, 0x8000], 0, tv) == (
        "select(0, NULL, NULL, NULL, {tv_sec=0, tv_usec=42}) = 0 (Timeout)"
    )
    assert trace("select", [u64(-1), 0, 0x1000, 0, 0], err(22), same) == (
        "select(-1, NULL, 0x1000, NULL, NULL) = -1 EINVAL (Invalid argument)"
    )
    assert trace("select", [0, 0, 0, 0, 0x8001], err(14)) == (
        "select(0, NULL, NULL, NULL, 0x8001) = -1 EFAULT (Bad address)"
    )
    assert trace(
        "select",
        [6, 0x1000, 0, 0, 0x8000],
        2,
        {**same, **tv},
        {0x1000: fds, 0x8000: struct.pack("<qq", 0, 7)},
    ) == (
        "select(6, [3 5], NULL, NULL, {tv_sec=0, tv_usec=42}) = 2 (in [3 5], left "
        "{tv_sec=0, tv_usec=7})"
    )


def test_wait4_rusage():  # wait4.c: the rusage once a child was reaped
    status = struct.pack("<i", 0)
    ru = struct.pack("<qqqq", 0, 1234, 0, 56) + bytes(112)
    after = {0x1000: status, 0x2000: ru}
    assert trace("wait4", [77, 0x1000, 0, 0x2000], 77, {}, after) == (
        "wait4(77, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, {ru_utime={tv_sec=0, "
        "tv_usec=1234}, ru_stime={tv_sec=0, tv_usec=56}, ...}) = 77"
    )
    assert trace("wait4", [77, 0x1000, 1 | 0x40000000, 0x2000], 0, {}, after) == (
        "wait4(77, 0x1000, WNOHANG|__WALL, 0x2000) = 0"
    )
    stopped = struct.pack("<i", (19 << 8) | 0x7F)
    assert trace("wait4", [77, 0x1000, 2, 0], 77, {}, {0x1000: stopped}) == (
        "wait4(77, [{WIFSTOPPED(s) && WSTOPSIG(s) == SIGSTOP}], WSTOPPED, NULL) = 77"
    )


def test_getdents64_count_is_32_bit():  # xgetdents.c
    assert trace("getdents64", [u64(-1), 0, 0xBADC0DED_DEADBEEF], err(9)) == (
        "getdents64(-1, NULL, 3735928559) = -1 EBADF (Bad file descriptor)"
    )
    data = _dirents(1)
    buf = {0x7000: data}
    assert trace("getdents64", [3, 0x7000, 8192], len(data), {}, buf) == (
        f"getdents64(3, 0x7000 /* 1 entries */, 8192) = {len(data)}"
    )
    # A return larger than the count: the address only.
    assert trace("getdents64", [3, 0x7000, 8], len(data), {}, buf) == (
        f"getdents64(3, 0x7000, 8) = {len(data)}"
    )


def test_unknown_flag_bits_are_annotated():  # dup3.c and every printflags
    assert trace("dup3", [u64(-5), 7, 1], err(9)) == (
        "dup3(-5, 7, 0x1 /* O_??? */) = -1 EBADF (Bad file descriptor)"
    )
    assert trace("dup3", [u64(-3), 0, 0o1000 | 0o2000000], err(9)) == (
        "dup3(-3, 0, O_TRUNC|O_CLOEXEC) = -1 EBADF (Bad file descriptor)"
    )
    assert trace("dup3", [u64(-7), u64(-7), 7], err(9)) == (
        "dup3(-7, -7, 0x7 /* O_??? */) = -1 EBADF (Bad file descriptor)"
    )
    assert trace("membarrier", [3, 255, u64(-1)], err(22)) == (
        "membarrier(0x3 /* MEMBARRIER_CMD_??? */, MEMBARRIER_CMD_FLAG_CPU|0xfe, -1) = "
        "-1 EINVAL (Invalid argument)"
    )
    assert trace("membarrier", [0, 0], 1 | 8 | 16) == (
        "membarrier(MEMBARRIER_CMD_QUERY, 0) = 0x19 (MEMBARRIER_CMD_GLOBAL|"
        "MEMBARRIER_CMD_PRIVATE_EXPEDITED|MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)"
    )


def test_path_limit():  # test_printpath.c: at most PATH_MAX - 1 bytes, then "..."
    long = b"/" * 4096
    assert trace("chdir", [0x1000], err(36), {0x1000: long}) == (
        f'chdir("{"/" * 4095}"...) = -1 ENAMETOOLONG (File name too long)'
    )
    exact = b"/" * 4095 + b"\0"
    assert trace("chdir", [0x1000], 0, {0x1000: exact}) == f'chdir("{"/" * 4095}") = 0'
    # A path running into unreadable memory: its address.
    assert trace("chdir", [0x1F00], err(14), {0x1000: b"/" * 0x1000}) == (
        "chdir(0x1f00) = -1 EFAULT (Bad address)"
    )


def test_strings_of_exactly_the_limit_are_not_cut():  # printstr.c
    mem = {0x1000: b"a" * 32 + b"\0", 0x2000: b"b" * 33 + b"\0"}
    argv = {0x9000: struct.pack("<QQQ", 0x1000, 0x2000, 0)}
    assert trace("execve", [0x1000, 0x9000, 0], 0, {**mem, **argv}) == (
        f'execve("{"a" * 32}", ["{"a" * 32}", "{"b" * 32}"...], NULL) = 0'
    )


def test_poll_revents():  # poll.c
    entry = {0x1000: struct.pack("<ihhihh", 0, 1, 0, -1, 4, 0)}
    after = {0x1000: struct.pack("<ihhihh", 0, 1, 1, -1, 4, 0)}
    assert trace("poll", [0x1000, 2, 100], 1, entry, after) == (
        "poll([{fd=0, events=POLLIN}, {fd=-1}], 2, 100) = 1 ([{fd=0, revents=POLLIN}])"
    )
    assert trace("poll", [0x1000, 2, 0], 0, entry) == (
        "poll([{fd=0, events=POLLIN}, {fd=-1}], 2, 0) = 0 (Timeout)"
    )


def test_sendfile_offset_in_and_out():  # sendfile64.c
    before, after = {0x1000: struct.pack("<Q", 0)}, {0x1000: struct.pack("<Q", 5)}
    assert trace("sendfile", [1, 3, 0x1000, 10], 5, before, after) == (
        "sendfile(1, 3, [0] => [5], 10) = 5"
    )
    assert trace("sendfile", [1, 3, 0, 10], 5) == "sendfile(1, 3, NULL, 10) = 5"


def test_clocks_and_sleeps():  # clock_nanosleep.c, nanosleep.c, clock_xettime.c
    ts = {0x1000: struct.pack("<qq", 1, 2)}
    assert trace("clock_gettime", [1, 0x1000], 0, {}, ts) == (
        "clock_gettime(CLOCK_MONOTONIC, {tv_sec=1, tv_nsec=2}) = 0"
    )
    assert trace("clock_gettime", [u64(-2), 0x1000], err(22)) == (
        "clock_gettime(MAKE_THREAD_CPUCLOCK(0, 0x6 /* CPUCLOCK_??? */), 0x1000) = "
        "-1 EINVAL (Invalid argument)"
    )
    assert trace("nanosleep", [0x1000, 0x2000], 0, ts) == (
        "nanosleep({tv_sec=1, tv_nsec=2}, 0x2000) = 0"
    )
    odd = {0x1000: struct.pack("<qQ", -1, u64(-1))}
    assert trace("nanosleep", [0x1000, 0], err(22), odd) == (
        "nanosleep({tv_sec=-1, tv_nsec=18446744073709551615}, NULL) = -1 EINVAL (Invalid argument)"
    )


def test_process_and_scheduling_returns():  # getpid.c, sched_xetscheduler.c, personality.c
    assert trace("getpid", [], 1234) == "getpid() = 1234"
    assert trace("sched_getscheduler", [0], 0) == "sched_getscheduler(0) = 0 (SCHED_OTHER)"
    assert trace("sched_getscheduler", [u64(-1)], err(22)) == (
        "sched_getscheduler(-1) = -1 EINVAL (Invalid argument)"
    )
    assert trace("sched_get_priority_max", [1], 99) == "sched_get_priority_max(SCHED_FIFO) = 99"
    assert trace("personality", [0xFFFFFFFF], 0) == ("personality(0xffffffff) = 0 (PER_LINUX)")
    assert trace("personality", [0x0040000 | 8], 0x0040000 | 8) == (
        "personality(PER_LINUX32|ADDR_NO_RANDOMIZE) = 0x40008 (PER_LINUX32|ADDR_NO_RANDOMIZE)"
    )


def test_access_modes():  # access.c
    mem = {0x1000: b"access_sample\0"}
    assert trace("access", [0x1000, 7], err(2), mem) == (
        'access("access_sample", R_OK|W_OK|X_OK) = -1 ENOENT (No such file or directory)'
    )
    assert trace("faccessat2", [AT_FDCWD, 0x1000, 8, 0x200], err(22), mem) == (
        'faccessat2(AT_FDCWD, "access_sample", 0x8 /* ?_OK */, AT_EACCESS) = '
        "-1 EINVAL (Invalid argument)"
    )


def test_lseek_and_sized_args():  # lseek.c, truncate.c, readahead.c
    assert trace("lseek", [0, u64(-0x7E0D7E0D), 1], err(22)) == (
        "lseek(0, -2114813453, SEEK_CUR) = -1 EINVAL (Invalid argument)"
    )
    assert trace("lseek", [0, 0, 5], err(22)) == (
        "lseek(0, 0, 0x5 /* SEEK_??? */) = -1 EINVAL (Invalid argument)"
    )
    assert trace("ftruncate", [u64(-1), u64(-1)], err(9)) == (
        "ftruncate(-1, 18446744073709551615) = -1 EBADF (Bad file descriptor)"
    )


def test_sockets_more():  # socketpair.c, sockopt, accept
    pair = {0x1000: struct.pack("<ii", 3, 4)}
    assert trace("socketpair", [1, 1, 0, 0x1000], 0, {}, pair) == (
        "socketpair(AF_UNIX, SOCK_STREAM, 0, [3, 4]) = 0"
    )
    one = {0x1000: struct.pack("<i", 1)}
    assert trace("setsockopt", [3, 1, 2, 0x1000, 4], 0, one) == (
        "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0"
    )
    lens = {0x2000: struct.pack("<i", 4), 0x1000: struct.pack("<i", 1)}
    assert trace("getsockopt", [3, 1, 3, 0x1000, 0x2000], 0, lens) == (
        "getsockopt(3, SOL_SOCKET, SO_TYPE, [1], [4]) = 0"
    )
    sin = struct.pack("<H", 2) + struct.pack(">H", 80) + bytes([10, 0, 0, 1]) + bytes(8)
    entry = {0x2000: struct.pack("<i", 128)}
    exit_ = {0x2000: struct.pack("<i", 16), 0x1000: sin}
    assert trace("accept", [3, 0x1000, 0x2000], 5, entry, exit_) == (
        'accept(3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("10.0.0.1")}, '
        "[128 => 16]) = 5"
    )


def test_rt_sigreturn_reads_its_frame():
    # The handler's ret popped pretcode: the frame is at rsp - 8.
    frame = 0x7000
    data = bytearray(8 + 304 + 128)
    struct.pack_into("<Q", data, 8 + 40 + 104, u64(-4))  # rax: the interrupted call's -EINTR
    struct.pack_into("<Q", data, 8 + 296, 1 << 12)  # uc_sigmask: SIGPIPE blocked
    struct.pack_into("<iii4xiI", data, 8 + 304, 10, 0, 0, 42, 0)  # siginfo: SIGUSR1
    options = DecodeOptions()
    call = decode_entry(15, [0] * 6, FakeMemory({frame: bytes(data)}), options, sp=frame + 8)
    assert render_args(call.entry_values, 32) == "{mask=[PIPE]}"
    assert call.assumed_ret == "-1 EINTR (Interrupted system call)"
    assert call.signal is not None and call.signal[0] == "SIGUSR1"
    assert call.signal[1] == "{si_signo=SIGUSR1, si_code=SI_USER, si_pid=42, si_uid=0}"


def test_siginfo_of_a_child():  # waitid.c
    info = struct.pack("<iii4xiIi4xqq", 17, 0, 1, 99, 0, 3, 0, 0) + bytes(80)
    assert trace("waitid", [1, 99, 0x1000, 4, 0], 0, {}, {0x1000: info}) == (
        "waitid(P_PID, 99, {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=99, si_uid=0, "
        "si_status=3, si_utime=0, si_stime=0}, WEXITED, NULL) = 0"
    )


def test_every_call_of_the_6_1_table_has_a_signature():
    from libvirt_nitro.linux import SYSCALLS_X86_64
    from libvirt_nitro.strace.signatures import SIGNATURES

    assert set(SYSCALLS_X86_64.values()) == set(SIGNATURES)
    # Decoding any of them with garbage never falls back to six raw registers.
    options = DecodeOptions()
    for nr in SYSCALLS_X86_64:
        call = decode_entry(nr, [u64(-1), 0x1000, 3, 0, 0x7F, 1], FakeMemory({}), options)
        values, _ = decode_exit(call, err(14), FakeMemory({}), options)
        assert len(values) <= 6
    assert not options.failures


def test_footprints_are_derivable_from_the_table():
    from libvirt_nitro.strace.signatures import footprints

    assert footprints("getpid", (0,) * 6) == []
    ((reg, fp),) = footprints("openat", (u64(-100), 0x1000, 0, 0, 0, 0))
    assert reg == 1 and (fp.when, fp.shape, fp.size) == ("entry", "string", 4096)
    read = dict(footprints("read", (3, 0x1000, 64, 0, 0, 0)))
    assert read[1].when == "exit" and read[1].count_ret and read[1].capped
    write = dict(footprints("write", (1, 0x1000, 64, 0, 0, 0)))
    assert write[1].when == "entry" and write[1].count_arg == 2
    fstat = dict(footprints("fstat", (3, 0x1000, 0, 0, 0, 0)))
    assert (fstat[1].when, fstat[1].shape, fstat[1].size) == ("exit", "bytes", 144)
    # A layout chosen by strace's own logic still declares its memory: fcntl F_SETLK.
    flock = dict(footprints("fcntl", (0, 6, 0x1000, 0, 0, 0)))
    assert (flock[2].when, flock[2].size) == ("entry", 32)
    assert footprints("fcntl", (0, 1, 0, 0, 0, 0)) == []
    # clone prints the stack first: the footprint names the register it reads.
    clone = footprints("clone", (0x00100000, 0, 0x2000, 0, 0, 0))
    assert clone == [(2, clone[0][1])] and clone[0][1].when == "exit"


def test_sockaddrs_by_their_length():  # net-sockaddr.c
    def sun(path: bytes, size: int) -> bytes:
        return (struct.pack("<H", 1) + path).ljust(size, b"\0")

    mem = {0x1000: sun(b"0" * 126, 128)}
    assert trace("connect", [u64(-1), 0x1000, 112], err(9), mem) == (
        f'connect(-1, {{sa_family=AF_UNIX, sun_path="{"0" * 108}"}}, 112) = '
        "-1 EBADF (Bad file descriptor)"
    )
    abstract = {0x1000: sun(b"\0" + b"0" * 125, 128)}
    assert trace("connect", [u64(-1), 0x1000, 112], err(9), abstract) == (
        f'connect(-1, {{sa_family=AF_UNIX, sun_path=@"{"0" * 107}"}}, 112) = '
        "-1 EBADF (Bad file descriptor)"
    )
    short_in = {0x1000: struct.pack("<H", 2) + bytes(6) + b"\xff" * 4}
    assert trace("connect", [u64(-1), 0x1000, 12], err(9), short_in) == (
        'connect(-1, {sa_family=AF_INET, sa_data="\\0\\0\\0\\0\\0\\0\\377\\377\\377\\377"}, 12) = '
        "-1 EBADF (Bad file descriptor)"
    )
    assert trace("connect", [u64(-1), 0x1000, 1], err(9), short_in) == (
        "connect(-1, 0x1000, 1) = -1 EBADF (Bad file descriptor)"
    )
    assert trace("connect", [u64(-1), 0x1000, 2], err(9), short_in) == (
        "connect(-1, {sa_family=AF_INET}, 2) = -1 EBADF (Bad file descriptor)"
    )


def _msghdr(name=0, namelen=0, iov=0, iovlen=0, control=0, controllen=0, flags=0) -> bytes:
    return struct.pack("<QI4xQQQQi4x", name, namelen, iov, iovlen, control, controllen, flags)


def test_recvmsg_with_its_control_messages():  # msg_control.c, msg_name.c, inet-cmsg.c
    sun = (struct.pack("<H", 1) + b"sock").ljust(110, b"\0")
    entry = {0x1000: _msghdr(0x2000, 110, 0x3000, 1, 0x4000, 64)}
    cmsg = struct.pack("<Qii", 20, 1, 1) + struct.pack("<i", 7) + bytes(4)  # SCM_RIGHTS [7]
    after = {
        0x1000: _msghdr(0x2000, 8, 0x3000, 1, 0x4000, 24),
        0x2000: sun,
        0x3000: struct.pack("<QQ", 0x5000, 10),
        0x4000: cmsg,
        0x5000: b"hello",
    }
    assert trace("recvmsg", [3, 0x1000, 0], 5, entry, after) == (
        'recvmsg(3, {msg_name={sa_family=AF_UNIX, sun_path="sock"}, msg_namelen=110 => 8, '
        'msg_iov=[{iov_base="hello", iov_len=10}], msg_iovlen=1, msg_control=[{cmsg_len=20, '
        "cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[7]}], msg_controllen=24, "
        "msg_flags=0}, 0) = 5"
    )
    assert trace("recvmsg", [3, 0x1000, 0x40], err(11), entry, after) == (
        "recvmsg(3, {msg_namelen=110}, MSG_DONTWAIT) = -1 EAGAIN (Resource temporarily unavailable)"
    )


def test_socket_options_of_strace_print_getsockopt():  # so_linger.c, so_peercred.c
    lens = lambda n: {0x2000: struct.pack("<i", n)}  # noqa: E731
    linger = {0x1000: struct.pack("<ii", 1, 5)}
    assert trace("getsockopt", [3, 1, 13, 0x1000, 0x2000], 0, lens(8), {**lens(8), **linger}) == (
        "getsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=5}, [8]) = 0"
    )
    assert trace("getsockopt", [3, 1, 13, 0x1000, 0x2000], 0, lens(3), {**lens(3), **linger}) == (
        'getsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff="\\x01\\x00\\x00"}, [3]) = 0'
    )
    cred = {0x1000: struct.pack("<iII", 42, 0, 0)}
    assert trace("getsockopt", [3, 1, 17, 0x1000, 0x2000], 0, lens(12), {**lens(12), **cred}) == (
        "getsockopt(3, SOL_SOCKET, SO_PEERCRED, {pid=42, uid=0, gid=0}, [12]) = 0"
    )
    zero = {0x1000: bytes(4)}
    assert trace("getsockopt", [4, 1, 4, 0x1000, 0x2000], 0, lens(4), {**lens(0), **zero}) == (
        "getsockopt(4, SOL_SOCKET, SO_ERROR, 0x1000, [4 => 0]) = 0"
    )
    assert trace("setsockopt", [3, 1, 3, 0x1000, u64(-1)], err(22), zero) == (
        "setsockopt(3, SOL_SOCKET, SO_TYPE, 0x1000, -1) = -1 EINVAL (Invalid argument)"
    )


def test_output_structs_written_at_exit():  # clone3.c, sched_xetattr.c, arch_prctl.c
    args = struct.pack("<8Q", 0x00100000, 0, 0, 0x2000, 0, 0, 0, 0)
    tid = {0x2000: struct.pack("<i", 321)}
    assert trace(
        "clone3", [0x1000, 88], 321, {0x1000: args + bytes(24)}, {0x1000: args + bytes(24), **tid}
    ) == (
        "clone3({flags=CLONE_PARENT_SETTID, parent_tid=0x2000, exit_signal=0, stack=NULL, "
        "stack_size=0} => {parent_tid=[321]}, 88) = 321"
    )
    small = {0x1000: struct.pack("<I", 47).ljust(56, b"\0")}
    after = {0x1000: struct.pack("<I", 56).ljust(56, b"\0")}
    assert trace("sched_setattr", [0, 0x1000, 0], err(7), small, after) == (
        "sched_setattr(0, {size=47} => {size=56}, 0) = -1 E2BIG (Argument list too long)"
    )
    assert trace("arch_prctl", [0x1004, 0x1000], 0, {}, {0x1000: bytes(8)}) == (
        "arch_prctl(ARCH_GET_GS, [NULL]) = 0"
    )


def test_strings_read_as_strace_reads_them():  # memfd_create.c, prctl-name.c
    # strace reads -s + 1 bytes of a string: one that ends there with no NUL readable after
    # it prints as its address.
    name = {0x1000 - 33: b"a" * 33}
    assert trace("memfd_create", [0x1000 - 33, 0], 3, name) == (
        f'memfd_create("{"a" * 32}"..., 0) = 3'
    )
    edge = {0x1000 - 15: b"123456789abcdef"}
    assert trace("prctl", [15, 0x1000 - 15], 0, edge) == (
        'prctl(PR_SET_NAME, "123456789abcdef"...) = 0'
    )
    # A buffer whose bytes after -s are unreadable: its address.
    assert trace("write", [1, 0x2000 - 32, 64], 64, {0x2000 - 32: b"x" * 32}) == (
        "write(1, 0x1fe0, 64) = 64"
    )


def test_node_masks_and_sigevents():  # get_mempolicy.c, timer_create.c
    masks = {0x1000: struct.pack("<QQ", 0, 1)}
    assert trace("set_mempolicy", [0xDEFACED00000000, 0x1000, 129], err(22), masks) == (
        "set_mempolicy(MPOL_DEFAULT, [0000000000000000, 0x00000000000001], 129) = "
        "-1 EINVAL (Invalid argument)"
    )
    sev = {0x1000: struct.pack("<Qii", 0, 0, 1).ljust(32, b"\0")}
    assert trace("timer_create", [1, 0x1000, 0x2000], 0, sev, {**sev, 0x2000: bytes(4)}) == (
        "timer_create(CLOCK_MONOTONIC, {sigev_signo=0, sigev_notify=SIGEV_NONE}, [0]) = 0"
    )


def test_flags_and_structs_strace_names_without_uapi_headers():
    # pkey_alloc.c, swap.c, fanotify_mark.c, arch_prctl.c, prctl-tagged-addr.c
    assert trace("pkey_alloc", [0, 0xDEC0DED], err(22)) == (
        "pkey_alloc(0, PKEY_DISABLE_ACCESS|PKEY_DISABLE_EXECUTE|0xdec0de8)"
        " = -1 EINVAL (Invalid argument)"
    )
    assert trace("swapon", [0x1000, 0x78000], err(22), {0x1000: b"s\0"}) == (
        'swapon("s", SWAP_FLAG_PREFER|SWAP_FLAG_DISCARD|SWAP_FLAG_DISCARD_ONCE'
        "|SWAP_FLAG_DISCARD_PAGES|0) = -1 EINVAL (Invalid argument)"
    )
    assert trace("fanotify_mark", [3, 1, 0x80000, u64(-100), 0], err(22)) == (
        "fanotify_mark(3, FAN_MARK_ADD, FAN_DIR_MODIFY, AT_FDCWD, NULL)"
        " = -1 EINVAL (Invalid argument)"
    )
    supp = {0x1000: struct.pack("<Q", 0x3)}
    assert trace("arch_prctl", [0x1021, 0x1000], 0, {}, supp) == (
        "arch_prctl(ARCH_GET_XCOMP_SUPP, [0x3 /* XFEATURE_MASK_FPSSE */]) = 0"
    )
    assert trace("arch_prctl", [0x1023, 0x11], err(95)) == (
        "arch_prctl(ARCH_REQ_XCOMP_PERM, 0x11 /* XFEATURE_XTILE_CFG */)"
        " = -1 EOPNOTSUPP (Operation not supported)"
    )
    assert trace("prctl", [55, 0x57AE57F4, 1, 2, 3], err(22)) == (
        "prctl(PR_SET_TAGGED_ADDR_CTRL, !PR_TAGGED_ADDR_ENABLE|PR_MTE_TCF_ASYNC"
        "|0xcafe<<PR_MTE_TAG_SHIFT|0x57a80000, 0x1, 0x2, 0x3) = -1 EINVAL (Invalid argument)"
    )


def test_user_desc_of_modify_ldt_and_thread_areas():  # modify_ldt.c, xet_thread_area_x86.c
    desc = {0x1000: struct.pack("<IIII", 0xFFFFFFFF, 0, 0, 0x61)}
    text = (
        "{entry_number=-1, base_addr=00000000, limit=00000000, seg_32bit=1, contents=0,"
        " read_exec_only=0, limit_in_pages=0, seg_not_present=1, useable=1, lm=0}"
    )
    assert trace("modify_ldt", [1, 0x1000, 16], 0xFFFFFFDA, desc) == (
        f"modify_ldt(1, {text}, 16) = 4294967258 ENOSYS (Function not implemented)"
    )
    assert trace("set_thread_area", [0x1000], err(38), desc) == (
        f"set_thread_area({text}) = -1 ENOSYS (Function not implemented)"
    )
    assert trace("get_thread_area", [0x1000], err(38), desc) == (
        "get_thread_area({entry_number=-1, ...}) = -1 ENOSYS (Function not implemented)"
    )


def test_file_handles():  # file_handle.c
    entry = {0x1000: struct.pack("<Ii", 0, 0), 0x2000: b".\0"}
    full = {0x1000: struct.pack("<Ii", 2, 1) + b"\x01\x02", 0x3000: struct.pack("<i", 5)}
    assert trace(
        "name_to_handle_at",
        [u64(-100), 0x2000, 0x1000, 0x3000, 0],
        err(75),
        entry,
        {**entry, 0x1000: struct.pack("<Ii", 2, 0)},
    ) == (
        'name_to_handle_at(AT_FDCWD, ".", {handle_bytes=0 => 2}, 0x3000, 0)'
        " = -1 EOVERFLOW (Value too large for defined data type)"
    )
    entry[0x1000] = struct.pack("<Ii", 2, 0)
    assert trace(
        "name_to_handle_at",
        [u64(-100), 0x2000, 0x1000, 0x3000, 0x1400],
        0,
        entry,
        {**entry, **full},
    ) == (
        'name_to_handle_at(AT_FDCWD, ".", {handle_bytes=2, handle_type=1, f_handle="\\x01\\x02"},'
        " [5], AT_SYMLINK_FOLLOW|AT_EMPTY_PATH) = 0"
    )
    assert trace("open_by_handle_at", [3, 0x1000, 0], err(1), full) == (
        'open_by_handle_at(3, {handle_bytes=2, handle_type=1, f_handle="\\x01\\x02"}, O_RDONLY)'
        " = -1 EPERM (Operation not permitted)"
    )


def test_futex_waitv_prints_at_most_futex_waitv_max_waiters():  # futex_waitv.c
    waiters = b"".join(struct.pack("<QQII", i, 0x2000 + 4 * i, 0x82, 0) for i in range(129))
    line = trace("futex_waitv", [0x1000, 129, 0, 0, 1], err(22), {0x1000: waiters}, None, 256)
    assert line.startswith(
        "futex_waitv([{val=0, uaddr=0x2000, flags=FUTEX_32|FUTEX_PRIVATE_FLAG}, {val=0x1,"
    )
    assert line.endswith(
        "{val=0x7f, uaddr=0x21fc, flags=FUTEX_32|FUTEX_PRIVATE_FLAG}, ...], 129, 0, NULL,"
        " CLOCK_MONOTONIC) = -1 EINVAL (Invalid argument)"
    )


def test_quotactl_structures():  # quotactl.c
    path = {0x2000: b"/dev/bogus/\0"}
    dqblk = {0x1000: struct.pack("<8QI4x", *range(1, 9), 0x3F), **path}
    assert trace("quotactl", [0x80000802, 0x2000, 7, 0x1000], err(2), dqblk) == (
        'quotactl(QCMD(Q_SETQUOTA, PRJQUOTA), "/dev/bogus/", 7, {dqb_bhardlimit=1,'
        " dqb_bsoftlimit=2, dqb_curspace=3, dqb_ihardlimit=4, dqb_isoftlimit=5,"
        " dqb_curinodes=6, ...}) = -1 ENOENT (No such file or directory)"
    )
    dqinfo = {0x1000: struct.pack("<QQII", 1, 2, 0x10001, 4), **path}
    assert trace("quotactl", [0x80000600, 0x2000, 0, 0x1000], err(2), dqinfo) == (
        'quotactl(QCMD(Q_SETINFO, USRQUOTA), "/dev/bogus/", {dqi_bgrace=1, dqi_igrace=2,'
        " dqi_flags=DQF_ROOT_SQUASH|DQF_SYS_FILE, dqi_valid=IIF_FLAGS})"
        " = -1 ENOENT (No such file or directory)"
    )
    xfs = struct.pack("<bBHI6Q", -114, 0x8F, 0x9190, 7, *range(1, 7)) + bytes(56)
    assert trace("quotactl", [0x580402, 0x2000, 7, 0x1000], err(2), {0x1000: xfs, **path}) == (
        'quotactl(QCMD(Q_XSETQLIM, PRJQUOTA), "/dev/bogus/", 7, {d_version=-114,'
        " d_flags=FS_USER_QUOTA|FS_PROJ_QUOTA|FS_GROUP_QUOTA|0x88, d_fieldmask=0x9190, d_id=7,"
        " d_blk_hardlimit=1, d_blk_softlimit=2, d_ino_hardlimit=3, d_ino_softlimit=4,"
        " d_bcount=5, d_icount=6, ...}) = -1 ENOENT (No such file or directory)"
    )
