"""The kvm_nitro.h ABI: one layout under gcc -m64, gcc -m32 and cffi; no implicit
padding; natural alignment; sizes multiples of 8; ioctl numbers that clash with
nothing in the installed <linux/kvm.h>; every struct and ioctl of the header bound."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest

from libvirt_nitro.ioctl import IOCTLS, ffi, lib

ROOT = Path(__file__).resolve().parents[1]
UAPI = ROOT / "kernel" / "include" / "uapi"
HEADER = UAPI / "linux" / "kvm_nitro.h"


def _header_structs() -> list[str]:
    return re.findall(r"^struct (kvm_nitro_\w+) \{", HEADER.read_text(), re.MULTILINE)


STRUCTS = _header_structs()


def _fields(struct: str) -> list[tuple[str, object]]:
    return list(ffi.typeof(f"struct {struct}").fields)


def _compile_and_run(source: str, tmp: Path, name: str, *flags: str) -> str:
    src = tmp / f"{name}.c"
    exe = tmp / name
    src.write_text(source)
    proc = subprocess.run(
        ["gcc", *flags, "-Wall", "-Werror", f"-I{UAPI}", "-o", str(exe), str(src)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"gcc {' '.join(flags)} failed:\n{proc.stderr}"
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout


def _layout_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <linux/kvm_nitro.h>",
        "int main(void) {",
    ]
    for struct in STRUCTS:
        lines.append(f'  printf("{struct} sizeof %zu\\n", sizeof(struct {struct}));')
        lines.append(f'  printf("{struct} alignof %zu\\n", _Alignof(struct {struct}));')
        for field, _ in _fields(struct):
            lines.append(
                f'  printf("{struct}.{field} %zu %zu\\n", offsetof(struct {struct}, {field}),'
                f" sizeof(((struct {struct} *)0)->{field}));"
            )
    lines += ["  return 0;", "}"]
    return "\n".join(lines)


@functools.cache
def _gcc_layout(bits: str, tmpdir: str) -> dict[str, tuple[int, ...]]:
    out = _compile_and_run(_layout_program(), Path(tmpdir), f"layout{bits}", f"-m{bits}")
    layout = {}
    for line in out.splitlines():
        key, *values = line.split()
        if key.endswith(("sizeof", "alignof")) or values[0] in ("sizeof", "alignof"):
            layout[f"{key} {values[0]}"] = (int(values[1]),)
        else:
            layout[key] = tuple(int(v) for v in values)
    return layout


def _cffi_layout() -> dict[str, tuple[int, ...]]:
    layout: dict[str, tuple[int, ...]] = {}
    for struct in STRUCTS:
        layout[f"{struct} sizeof"] = (ffi.sizeof(f"struct {struct}"),)
        layout[f"{struct} alignof"] = (ffi.alignof(f"struct {struct}"),)
        for field, f in _fields(struct):
            layout[f"{struct}.{field}"] = (f.offset, ffi.sizeof(f.type))
    return layout


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[int, ...]]]:
    tmp = str(tmp_path_factory.mktemp("abi"))
    return {
        "gcc -m64": _gcc_layout("64", tmp),
        "gcc -m32": _gcc_layout("32", tmp),
        "cffi": _cffi_layout(),
    }


def test_header_has_the_expected_structs() -> None:
    assert set(STRUCTS) >= {
        "kvm_nitro_regs",
        "kvm_nitro_event",
        "kvm_nitro_ring_header",
        "kvm_nitro_trap_config",
        "kvm_nitro_attach",
    }


@pytest.mark.parametrize("other", ["gcc -m32", "cffi"])
def test_layout_identical(layouts: dict[str, dict[str, tuple[int, ...]]], other: str) -> None:
    ref, cmp = layouts["gcc -m64"], layouts[other]
    assert set(ref) == set(cmp), f"fields differ: {sorted(set(ref) ^ set(cmp))}"
    # alignof may legitimately differ (i386 aligns __u64 to 4 inside structs); the
    # layout may not
    diffs = [
        f"{key}: gcc -m64 {ref[key]} vs {other} {cmp[key]}"
        for key in sorted(ref)
        if ref[key] != cmp[key] and not key.endswith("alignof")
    ]
    assert not diffs, "layout differs: " + "; ".join(diffs)


def _natural_alignment(ctype: object) -> int:
    while ctype.kind == "array":
        ctype = ctype.item
    if ctype.kind == "struct":
        return max(_natural_alignment(f.type) for _, f in ctype.fields)
    return ffi.sizeof(ctype)


@pytest.mark.parametrize("struct", STRUCTS)
def test_no_implicit_padding_natural_alignment(
    layouts: dict[str, dict[str, tuple[int, ...]]], struct: str
) -> None:
    for name, layout in layouts.items():
        size = layout[f"{struct} sizeof"][0]
        assert size % 8 == 0, f"{name}: sizeof(struct {struct}) = {size}, not a multiple of 8"
        end = 0
        for field, f in _fields(struct):
            offset, fsize = layout[f"{struct}.{field}"]
            assert offset == end, (
                f"{name}: {struct}.{field} at {offset}: {offset - end} pad bytes before it"
            )
            align = _natural_alignment(f.type)
            assert offset % align == 0, f"{name}: {struct}.{field} at {offset}, not {align}-aligned"
            end = offset + fsize
        assert end == size, f"{name}: {size - end} pad bytes at the end of struct {struct}"


def test_expected_sizes() -> None:
    """The sizes the header comments promise (a change here is an ABI break)."""
    assert ffi.sizeof("struct kvm_nitro_regs") == 280
    assert ffi.sizeof("struct kvm_nitro_event") == 384
    assert ffi.sizeof("struct kvm_nitro_ring_header") == 64
    assert ffi.sizeof("struct kvm_nitro_trap_config") == 128
    assert ffi.sizeof("struct kvm_nitro_attach") == 64
    assert ffi.sizeof("struct kvm_nitro_eventfd") == 16
    assert ffi.sizeof("struct kvm_nitro_continue") == 32


def _macros(include: str, tmp: Path) -> dict[str, str]:
    """The object-like macros gcc sees after ``#include <include>`` (gcc -dM)."""
    src = tmp / "macros.c"
    src.write_text(f"#include <{include}>\n")
    out = subprocess.run(
        ["gcc", "-E", "-dM", f"-I{UAPI}", str(src)], check=True, capture_output=True, text=True
    ).stdout
    macros = {}
    for line in out.splitlines():
        m = re.match(r"#define (\w+) (.*)", line)
        if m:
            macros[m.group(1)] = m.group(2)
    return macros


def _ioctl_values(include: str, names: list[str], tmp: Path, sizes: bool = True) -> dict[str, int]:
    """Evaluate each ioctl macro of *names* by compiling a program that prints it.

    With *sizes* False the argument-size bits are evaluated as 0, so that the ioctls
    of other architectures (whose structs are incomplete on x86) compile too.
    """
    body = "\n".join(f'  printf("{n} %lu\\n", (unsigned long)({n}));' for n in names)
    nosize = "" if sizes else "#undef _IOC_TYPECHECK\n#define _IOC_TYPECHECK(t) 0\n"
    source = (
        f"#include <stdio.h>\n#include <{include}>\n{nosize}"
        f"int main(void) {{\n{body}\n  return 0;\n}}\n"
    )
    name = f"ioctls_{include.replace('/', '_').replace('.', '_')}_{int(sizes)}"
    out = _compile_and_run(source, tmp, name, "-m64")
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


def _ioctl_macros(macros: dict[str, str]) -> list[str]:
    return sorted(n for n, body in macros.items() if re.search(r"\b_IO(R|W|WR)?\s*\(", body))


IOC_NRSHIFT, IOC_TYPESHIFT = 0, 8


def _type_nr(value: int) -> tuple[int, int]:
    return (value >> IOC_TYPESHIFT) & 0xFF, (value >> IOC_NRSHIFT) & 0xFF


def test_ioctl_numbers_clash_with_nothing_in_linux_kvm_h(tmp_path: Path) -> None:
    kvm_names = [n for n in _ioctl_macros(_macros("linux/kvm.h", tmp_path)) if n.startswith("KVM")]
    assert "KVM_CREATE_DEVICE" in kvm_names and "KVM_RUN" in kvm_names
    upstream = _ioctl_values("linux/kvm.h", kvm_names, tmp_path, sizes=False)
    ours_names = [n for n in _ioctl_macros(_macros("linux/kvm_nitro.h", tmp_path)) if "NITRO" in n]
    ours = _ioctl_values("linux/kvm_nitro.h", ours_names, tmp_path)
    assert len(ours) == 5
    kvmio = lib.KVMIO
    upstream_nrs = {_type_nr(v)[1]: n for n, v in upstream.items() if _type_nr(v)[0] == kvmio}
    for name, value in ours.items():
        assert _type_nr(value)[0] == kvmio, f"{name} is not of type KVMIO"
        nr = _type_nr(value)[1]
        assert nr not in upstream_nrs, f"{name} number {nr:#x} clashes with {upstream_nrs[nr]}"
        assert getattr(lib, name) == value, f"cffi's {name} differs from the header's"
    assert len(set(ours.values())) == len(ours)


def test_old_nitro_numbers_would_have_clashed(tmp_path: Path) -> None:
    """The check above can fail: old Nitro's 0xe0 is KVM_CREATE_DEVICE's number."""
    names = _ioctl_macros(_macros("linux/kvm.h", tmp_path))
    values = _ioctl_values(
        "linux/kvm.h", [n for n in names if n.startswith("KVM")], tmp_path, sizes=False
    )
    assert _type_nr(values["KVM_CREATE_DEVICE"]) == (lib.KVMIO, 0xE0)


def test_capability_number_is_unused(tmp_path: Path) -> None:
    macros = _macros("linux/kvm.h", tmp_path)
    caps = {
        int(v, 0)
        for n, v in macros.items()
        if n.startswith("KVM_CAP_") and re.fullmatch(r"(0x)?[0-9a-fA-F]+", v)
    }
    assert len(caps) > 200
    assert lib.KVM_CAP_NITRO not in caps
    assert lib.KVM_CAP_NITRO > max(caps) * 10


def test_every_header_ioctl_and_struct_is_bound(tmp_path: Path) -> None:
    header_ioctls = [
        n for n in _ioctl_macros(_macros("linux/kvm_nitro.h", tmp_path)) if "NITRO" in n
    ]
    missing = [n for n in header_ioctls if n not in IOCTLS]
    assert not missing, f"ioctls of kvm_nitro.h without a wrapper: {missing}"
    _, structs, _ = ffi.list_types()
    assert set(STRUCTS) <= set(structs)


def test_ioctl_sizes_match_their_structs() -> None:
    """The size encoded in each ioctl number is the struct's (also asserted in C)."""
    for name, ctype in [
        ("KVM_NITRO_ATTACH", "struct kvm_nitro_attach"),
        ("KVM_NITRO_SET_TRAPS", "struct kvm_nitro_trap_config"),
        ("KVM_NITRO_GET_TRAPS", "struct kvm_nitro_trap_config"),
        ("KVM_NITRO_SET_EVENTFD", "struct kvm_nitro_eventfd"),
        ("KVM_NITRO_CONTINUE", "struct kvm_nitro_continue"),
    ]:
        assert (getattr(lib, name) >> 16) & 0x3FFF == ffi.sizeof(ctype), name
