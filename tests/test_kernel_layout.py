"""The guest kernel's layout from its own bzImage: setup header, decompression, BTF.

The parsers are pure and run on the real Debian guest kernel of the ``guest_image``
fixture; offsets are cross-checked against things known independently of BTF (gcc on the
host's UAPI headers, the x86-64 ``pt_regs`` order, the kernel's own machine code) and, in
the last test, against the running guest's memory at a system call trap.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
import shutil
import struct
import subprocess

import pytest

from libvirt_nitro.errors import MalformedKernelImage, UnsupportedKernel
from libvirt_nitro.linux import kimage, syscall_number
from libvirt_nitro.linux.btf import Btf, BtfKind
from libvirt_nitro.linux.layout import KernelLayout
from tests.support import require

COMPRESSIONS = {
    "GZIP": "gzip",
    "BZIP2": "bzip2",
    "LZMA": "lzma",
    "XZ": "xz",
    "LZO": "lzo",
    "LZ4": "lz4",
    "ZSTD": "zstd",
}
#: x86-64 ``struct pt_regs`` (arch/x86/include/asm/ptrace.h), in ABI order; the UAPI
#: header spells them r15 .. rbp, rbx .. rax, rcx .. orig_rax, rip, cs, eflags, rsp, ss.
PT_REGS = "r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss".split()
UAPI_NAMES = {"bp": "rbp", "bx": "rbx", "ax": "rax", "cx": "rcx", "dx": "rdx", "si": "rsi"}
UAPI_NAMES |= {"di": "rdi", "orig_ax": "orig_rax", "ip": "rip", "flags": "eflags", "sp": "rsp"}
#: UAPI structs the kernel's BTF also describes: (header, struct).
UAPI_STRUCTS = [
    ("asm/stat.h", "stat"),
    ("linux/stat.h", "statx"),
    ("linux/eventpoll.h", "epoll_event"),
    ("linux/openat2.h", "open_how"),
    ("linux/sched.h", "clone_args"),
    ("linux/kvm.h", "kvm_regs"),
    ("linux/kvm.h", "kvm_sregs"),
    ("linux/io_uring.h", "io_uring_sqe"),
]


@pytest.fixture(scope="module")
def image(guest_image) -> bytes:
    return guest_image.kernel.read_bytes()


@pytest.fixture(scope="module")
def vmlinux(image) -> bytes:
    return kimage.extract_vmlinux(image)


@pytest.fixture(scope="module")
def btf(vmlinux) -> Btf:
    return kimage.find_btf(vmlinux)


# -- the real guest kernel ---------------------------------------------------------------


def test_setup_header_locates_the_payload(guest_image, image):
    header = kimage.parse_setup_header(image)
    assert header.version >= 0x208 and header.protocol.startswith("2.")
    assert 1 <= header.setup_sects < 64
    assert header.kernel_version.startswith(guest_image.env["KERNEL_RELEASE"] + " ")
    assert header.payload_start + header.payload_length <= len(image)
    config = guest_image.env["KERNEL_CONFIG"]
    chosen = re.findall(r"^CONFIG_KERNEL_([A-Z0-9]+)=y$", open(config).read(), re.M)
    assert [COMPRESSIONS[c] for c in chosen if c in COMPRESSIONS] == ["xz"]
    payload = image[header.payload_start : header.payload_start + header.payload_length]
    assert kimage.compression(payload) == "xz"


def test_decompressed_kernel_is_the_elf_vmlinux(guest_image, image, vmlinux):
    assert vmlinux[:6] == b"\x7fELF\x02\x01"  # ELF64, little-endian
    assert struct.unpack_from("<H", vmlinux, 18)[0] == 62  # EM_X86_64
    header = kimage.parse_setup_header(image)
    end = header.payload_start + header.payload_length
    assert struct.unpack_from("<I", image, end - 4)[0] == len(vmlinux)
    assert b"Linux version 6.1" in vmlinux
    release, banner = kimage.linux_banner(vmlinux)
    assert release == guest_image.env["KERNEL_RELEASE"]
    assert banner.startswith(f"Linux version {release} (") and "\n" not in banner


def test_btf_decodes_every_type_of_known_kinds(btf):
    kinds = collections.Counter(t.kind for t in btf.types())
    assert sum(kinds.values()) == len(btf) - 1 > 50_000
    assert BtfKind.UNKN not in kinds
    for kind in (BtfKind.INT, BtfKind.PTR, BtfKind.ARRAY, BtfKind.STRUCT, BtfKind.UNION):
        assert kinds[kind] > 0, kind
    for kind in (BtfKind.ENUM, BtfKind.TYPEDEF, BtfKind.FUNC, BtfKind.FUNC_PROTO):
        assert kinds[kind] > 0, kind
    assert kinds[BtfKind.VAR] > 0 and kinds[BtfKind.DATASEC] == 1


def test_task_struct_pid_tgid_comm(btf):
    comm = btf.member_type("task_struct", "comm")
    assert btf.type_name(comm) == "char[16]"
    assert btf.array_length(comm) == 16 and btf.sizeof(comm) == 16
    pid, tgid = (btf.resolve(btf.member_type("task_struct", f)) for f in ("pid", "tgid"))
    for field in (pid, tgid):
        t = btf.type(field)
        assert t.kind is BtfKind.INT and t.size == 4 and t.int.encoding & t.int.SIGNED
    assert btf.member_offset("task_struct", "tgid") == btf.member_offset("task_struct", "pid") + 4
    assert btf.type_name(btf.member_type("task_struct", "real_parent")) == "struct task_struct *"
    assert btf.type_name(btf.member_type("task_struct", "mm")) == "struct mm_struct *"
    # thread_info is the first member of task_struct on x86 (CONFIG_THREAD_INFO_IN_TASK).
    assert btf.member_offset("task_struct", "thread_info") == 0


def test_pt_regs_has_the_x86_64_abi_layout(btf):
    members = btf.type(btf.find("pt_regs")).members
    assert [m.name for m in members] == PT_REGS
    assert [btf.member_offset("pt_regs", name) for name in PT_REGS] == [8 * i for i in range(21)]
    assert btf.sizeof("pt_regs") == 21 * 8


def test_current_task_is_the_per_cpu_pointer_the_kernel_code_loads(btf, vmlinux):
    offset = btf.percpu_offset("current_task")
    assert 0 < offset < btf.type(btf.find(".data..percpu", BtfKind.DATASEC)).size
    assert btf.type_name(btf.type(btf.find("current_task", BtfKind.VAR)).type) == (
        "struct task_struct *"
    )
    # Independent of BTF: `current` is by far the most loaded %gs-relative u64 in the
    # kernel's code (mov %gs:disp32,%r64), after the stack canary at %gs:40.
    loads = collections.Counter(
        struct.unpack("<i", m.group(1))[0]
        for m in re.finditer(
            rb"\x65[\x48\x4c]\x8b[\x04\x0c\x14\x1c\x24\x2c\x34\x3c]\x25(.{4})", vmlinux, re.S
        )
    )
    (canary, _), (most, count), (_, runner_up) = loads.most_common(3)
    assert canary == 40 and most == offset and count > 10 * runner_up


def _flat_members(btf: Btf, type_id: int):
    """Names reachable in C from a struct: its named members and those of anonymous ones."""
    for member in btf.type(btf.resolve(type_id)).members:
        if member.name and not member.bitfield_size:
            yield member.name
        elif not member.name:
            yield from _flat_members(btf, member.type)


def test_btf_offsets_match_gcc_on_the_uapi_headers(btf, tmp_path):
    require(shutil.which("gcc") is not None, "gcc")
    expected = {}
    lines = ["#include <stddef.h>", "#include <stdio.h>"]
    lines += sorted(
        {f"#include <{header}>" for header, _ in UAPI_STRUCTS} | {"#include <asm/ptrace.h>"}
    )
    lines.append("int main(void) {")
    for _, name in UAPI_STRUCTS + [("", "pt_regs")]:
        type_id = btf.find(name)
        lines.append(f'printf("{name} sizeof %zu\\n", sizeof(struct {name}));')
        expected[f"{name} sizeof"] = btf.sizeof(type_id)
        for member in _flat_members(btf, type_id):
            c_name = UAPI_NAMES.get(member, member) if name == "pt_regs" else member
            lines.append(f'printf("{name} {member} %zu\\n", offsetof(struct {name}, {c_name}));')
            expected[f"{name} {member}"] = btf.member_offset(name, member)
    lines.append("return 0; }")
    (tmp_path / "layout.c").write_text("\n".join(lines))
    subprocess.run(["gcc", "-o", str(tmp_path / "layout"), str(tmp_path / "layout.c")], check=True)
    out = subprocess.run([str(tmp_path / "layout")], check=True, capture_output=True, text=True)
    measured = {
        line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in out.stdout.splitlines()
    }
    assert measured == expected
    assert len(expected) > 150  # the anonymous unions of io_uring_sqe included
    assert "io_uring_sqe addr2" in expected


def test_layout_of_the_guest_kernel(btf, vmlinux, guest_image):
    layout = KernelLayout.from_vmlinux(vmlinux)
    assert layout.release == guest_image.env["KERNEL_RELEASE"]
    assert "Debian" in layout.banner
    assert layout.current_task == btf.percpu_offset("current_task")
    assert layout.task_pid == btf.member_offset("task_struct", "pid")
    assert layout.task_tgid == layout.task_pid + 4
    assert layout.task_comm_len == 16
    assert layout.mm_pgd == btf.member_offset("mm_struct", "pgd")
    assert layout.current_task_address(0xFFFF_8880_0000_0000) == (
        0xFFFF_8880_0000_0000 + layout.current_task
    )


def test_btf_is_found_without_elf_section_headers(btf, vmlinux):
    raw = b"\0" * 64 + vmlinux[64:]  # no ELF header: only the magic scan can find it
    assert kimage.find_btf(raw).data == btf.data


# -- the cache ---------------------------------------------------------------------------


def test_cache_is_written_then_reused_and_a_bad_one_is_rewritten(guest_image, image, tmp_path):
    import hashlib

    sha = hashlib.sha256(image).hexdigest()
    layout = KernelLayout.from_image(guest_image.kernel, cache_dir=tmp_path / "kernels")
    cache = tmp_path / "kernels" / f"{sha}.json"
    record = json.loads(cache.read_text())
    assert record["current_task"] == layout.current_task and record["image_sha256"] == sha
    assert layout.image_sha256 == sha
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary left
    # Reused: a value planted in the cache comes back (nothing was decompressed).
    cache.write_text(json.dumps(dict(record, release="planted")))
    assert KernelLayout.from_image(guest_image.kernel, cache_dir=cache.parent).release == "planted"
    # A cache of another format (or garbage) is recomputed and rewritten.
    cache.write_text(json.dumps(dict(record, format=0, release="stale")))
    assert KernelLayout.from_image(guest_image.kernel, cache_dir=cache.parent) == layout
    assert json.loads(cache.read_text())["release"] == layout.release


# -- malformed input: the error, never an IndexError --------------------------------------


def _btf_blob(types: bytes, strings: bytes, **header) -> bytes:
    fields = dict(magic=0xEB9F, version=1, flags=0, hdr_len=24, type_off=0)
    fields |= dict(type_len=len(types), str_off=len(types), str_len=len(strings)) | header
    return struct.pack("<HBBIIIII", *fields.values()) + types + strings


def _type(name: int, kind: int, vlen: int, size_or_type: int, extra: bytes = b"", kflag=0):
    return struct.pack("<III", name, kflag << 31 | kind << 24 | vlen, size_or_type) + extra


# struct s { int a; union { int b; struct { int c:3, d:5; }; }; }
STRINGS = b"\0int\0s\0a\0b\0c\0d\0"
INT, S, A, B, C, D = 1, 5, 7, 9, 11, 13
TYPES = (
    _type(INT, BtfKind.INT, 0, 4, struct.pack("<I", 1 << 24 | 32))
    + _type(0, BtfKind.STRUCT, 2, 4, struct.pack("<6I", C, 1, 3 << 24 | 0, D, 1, 5 << 24 | 3), 1)
    + _type(0, BtfKind.UNION, 2, 4, struct.pack("<6I", B, 1, 0, 0, 2, 0))
    + _type(S, BtfKind.STRUCT, 2, 8, struct.pack("<6I", A, 1, 0, 0, 3, 32))
)


def test_synthetic_btf_anonymous_members_and_kflag_bitfields():
    btf = Btf(_btf_blob(TYPES, STRINGS))
    assert len(btf) == 5 and btf.sizeof("s") == 8
    assert btf.member_offset("s", "a") == 0 and btf.member_offset("s", "b") == 4
    assert btf.member_offset("s", "c") == 4
    bits, d = btf.member("s", "d")
    assert (bits, d.bitfield_size) == (35, 5)
    with pytest.raises(UnsupportedKernel, match="bitfield"):
        btf.member_offset("s", "d")
    with pytest.raises(UnsupportedKernel, match="no member e"):
        btf.member_offset("s", "e")
    with pytest.raises(UnsupportedKernel, match="no struct task_struct"):
        btf.find("task_struct")
    with pytest.raises(UnsupportedKernel, match="no .data..percpu"):
        btf.percpu_offset("current_task")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (_btf_blob(TYPES, STRINGS)[:20], "header truncated"),
        (_btf_blob(TYPES, STRINGS, magic=0x9FEB), "bad BTF magic"),
        (_btf_blob(TYPES, STRINGS, version=2), "version 2"),
        (_btf_blob(TYPES, STRINGS, hdr_len=1 << 20), "hdr_len"),
        (_btf_blob(TYPES, STRINGS, str_len=1 << 20), "out of bounds"),
        (_btf_blob(TYPES + _type(0, 25, 0, 0), STRINGS), "unknown kind 25"),
        (_btf_blob(TYPES + _type(0, BtfKind.STRUCT, 3, 4, b"\0" * 12), STRINGS), "runs past"),
        (_btf_blob(TYPES + b"\0" * 8, STRINGS), "truncated"),
        (_btf_blob(TYPES, STRINGS[:-1] + b"x"), "NUL"),
    ],
)
def test_malformed_btf_raises_the_error(blob, message):
    with pytest.raises(MalformedKernelImage, match=message):
        Btf(blob)


def test_btf_names_and_ids_out_of_bounds_raise_the_error():
    btf = Btf(_btf_blob(_type(999, BtfKind.INT, 0, 4, b"\0\0\0\0"), STRINGS))
    with pytest.raises(MalformedKernelImage, match="string offset 999"):
        btf.type(1)
    with pytest.raises(MalformedKernelImage, match="type id 7"):
        btf.type(7)


def test_truncated_real_btf_raises_the_error(btf):
    with pytest.raises(MalformedKernelImage):
        Btf(btf.data[: len(btf.data) // 2])


def _bzimage(payload: bytes, setup_sects: int = 1) -> bytes:
    """A minimal bzImage: setup header, then the payload right at the protected-mode code."""
    image = bytearray((setup_sects + 1) * 512)
    struct.pack_into("<B", image, 0x1F1, setup_sects)
    struct.pack_into("<H", image, 0x1FE, 0xAA55)
    struct.pack_into("<4sH", image, 0x202, b"HdrS", 0x20F)
    struct.pack_into("<II", image, 0x248, 0, len(payload))
    return bytes(image) + payload


def test_gzip_bzimage_with_size_trailer():
    body = b"\x7fELF" + bytes(range(256)) * 64
    packed = gzip.compress(body) + struct.pack("<I", len(body))
    assert kimage.extract_vmlinux(_bzimage(packed)) == body
    with pytest.raises(MalformedKernelImage, match="the image says"):
        kimage.extract_vmlinux(_bzimage(gzip.compress(body) + struct.pack("<I", 5)))


def test_malformed_bzimages_raise_the_error(image):
    header = kimage.parse_setup_header(image)
    cases = [
        (image[:0x100], MalformedKernelImage, "truncated"),
        (image[:0x202] + b"XXXX" + image[0x206:0x400], MalformedKernelImage, "HdrS"),
        (image[: header.payload_start + 4096], MalformedKernelImage, "outside"),
        (_bzimage(b"\x28\xb5\x2f\xfd" + b"\0" * 64), UnsupportedKernel, "zstd"),
        (_bzimage(b"\x02\x21\x4c\x18" + b"\0" * 64), UnsupportedKernel, "lz4"),
        (_bzimage(b"\0" * 64), MalformedKernelImage, "no known compression"),
        (_bzimage(b""), MalformedKernelImage, "outside"),
    ]
    for data, error, message in cases:
        with pytest.raises(error, match=message):
            kimage.extract_vmlinux(data)
    payload = image[header.payload_start : header.payload_start + header.payload_length]
    with pytest.raises(MalformedKernelImage, match="truncated"):
        kimage.decompress(payload[:100_000])
    corrupt = bytearray(payload[:200_000])
    corrupt[1000:1016] = b"\xff" * 16
    with pytest.raises(MalformedKernelImage, match="corrupt"):
        kimage.decompress(bytes(corrupt))


def test_kernel_without_btf_is_unsupported():
    with pytest.raises(UnsupportedKernel, match="no BTF"):
        kimage.find_btf(b"\x7fELF\x02\x01" + b"\0" * 4096)
    with pytest.raises(UnsupportedKernel, match="no BTF"):
        KernelLayout.from_vmlinux(b"\0" * 4096 + _btf_blob(TYPES, STRINGS))


# -- against the running guest -------------------------------------------------------------


def test_current_at_a_syscall_trap_is_the_calling_process(tcg_guest, guest_image):
    """At each getpid entry, current (read at KERNEL_GS_BASE + current_task) is the
    workload process: the pid getpid then returns, and comm "workload"."""
    from tests.tracing import trap_during

    layout = KernelLayout.from_image(guest_image.kernel)
    getpid = syscall_number("getpid")
    seen: list[tuple[int, int, bytes, bytes]] = []

    def on_trap(target, event) -> None:
        if event.kind != "syscall" or event.regs["rax"] != getpid:
            return
        vcpu = event.vcpu

        def u64(address: int) -> int:
            return struct.unpack("<Q", target.read_memory(vcpu, address, 8))[0]

        task = u64(layout.current_task_address(event.regs["k_gs_base"]))
        pid, tgid = struct.unpack("<ii", target.read_memory(vcpu, task + layout.task_pid, 8))
        comm = target.read_memory(vcpu, task + layout.task_comm, layout.task_comm_len)
        parent = u64(task + layout.task_real_parent)
        parent_comm = target.read_memory(vcpu, parent + layout.task_comm, 16)
        seen.append((pid, tgid, comm.rstrip(b"\0"), parent_comm.rstrip(b"\0")))

    outcome = {"result": trap_during(tcg_guest, on_trap, "getpid", "3")}
    pid = int(outcome["result"].values["getpid"])
    assert seen.count((pid, pid, b"workload", b"workload")) >= 3, seen
