"""kvm_nitro_capture.h: the Python mirror (abi/recipe.py, abi/capture.py) has gcc's layout
under -m64 and -m32, no implicit padding, sizes multiples of 8; the new ioctl's number
clashes with nothing in <linux/kvm.h> nor kvm_nitro.h; the header's constants are the
mirror's."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from libvirt_nitro.abi import capture, recipe
from tests.test_abi import UAPI, _compile_and_run

HEADER = UAPI / "linux" / "kvm_nitro_capture.h"

MIRRORS = {
    "kvm_nitro_capture_rule": (recipe.RULE, recipe.RULE_FIELDS),
    "kvm_nitro_recipe": (recipe.RECIPE, recipe.RECIPE_FIELDS),
    "kvm_nitro_capture_header": (capture.HEADER, capture.HEADER_FIELDS),
    "kvm_nitro_capture": (capture.RECORD, capture.RECORD_FIELDS),
}

CONSTANTS = {
    "KVM_NITRO_RECIPE_VERSION": recipe.RECIPE_VERSION,
    "KVM_NITRO_EVENT_F_CAPTURE": recipe.EVENT_F_CAPTURE,
    "KVM_NITRO_GS_NONE": recipe.GS_NONE,
    "KVM_NITRO_GS_GS_BASE": recipe.GS_GS_BASE,
    "KVM_NITRO_GS_KERNEL_GS_BASE": recipe.GS_KERNEL_GS_BASE,
    "KVM_NITRO_CAPTURE_ENTRY": recipe.ENTRY,
    "KVM_NITRO_CAPTURE_EXIT": recipe.EXIT,
    "KVM_NITRO_CAPTURE_STRING": recipe.STRING,
    "KVM_NITRO_CAPTURE_FIXED": recipe.FIXED,
    "KVM_NITRO_CAPTURE_ARG": recipe.ARG,
    "KVM_NITRO_CAPTURE_RET": recipe.RET,
    "KVM_NITRO_CAPTURE_STRV": recipe.STRV,
    "KVM_NITRO_CAPTURE_IOV": recipe.IOV,
    "KVM_NITRO_CAPTURE_REG_RSP": recipe.REG_RSP,
    "KVM_NITRO_CAPTURE_H_TASK": capture.H_TASK,
    "KVM_NITRO_CAPTURE_H_BUDGET": capture.H_BUDGET,
    "KVM_NITRO_CAPTURE_H_NO_NR": capture.H_NO_NR,
    "KVM_NITRO_CAPTURE_F_UNREADABLE": capture.F_UNREADABLE,
    "KVM_NITRO_CAPTURE_F_TRUNCATED": capture.F_TRUNCATED,
    "KVM_NITRO_CAPTURE_F_BUDGET": capture.F_BUDGET,
    "KVM_NITRO_SET_RECIPE": recipe.KVM_NITRO_SET_RECIPE,
}


def test_header_declares_exactly_the_mirrored_structs() -> None:
    found = re.findall(r"^struct (kvm_nitro_\w+) \{", HEADER.read_text(), re.MULTILINE)
    assert sorted(found) == sorted(MIRRORS)


@pytest.mark.parametrize("bits", ["64", "32"])
def test_layout_is_the_mirrors(tmp_path: Path, bits: str) -> None:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/kvm_nitro_capture.h>"]
    lines.append("int main(void) {")
    for name, (_, fields) in MIRRORS.items():
        lines.append(f'  printf("{name} sizeof %zu\\n", sizeof(struct {name}));')
        for field, _, _ in fields:
            lines.append(
                f'  printf("{name} {field} %zu %zu\\n", offsetof(struct {name}, {field}),'
                f" sizeof(((struct {name} *)0)->{field}));"
            )
    lines += ["  return 0;", "}"]
    out = _compile_and_run("\n".join(lines), tmp_path, f"layout{bits}", f"-m{bits}")
    got = {}
    for line in out.splitlines():
        struct, field, *values = line.split()
        got[(struct, field)] = tuple(int(v) for v in values)
    for name, (packed, fields) in MIRRORS.items():
        assert got[(name, "sizeof")] == (packed.size,), name
        assert packed.size % 8 == 0
        end = 0
        for field, offset, size in fields:
            assert got[(name, field)] == (offset, size), f"{name}.{field} under -m{bits}"
            assert offset == end, f"{name}.{field}: implicit padding before it"
            assert offset % min(size, 8) == 0, f"{name}.{field} misaligned"
            end = offset + size
        assert end == packed.size


def test_constants_are_the_mirrors(tmp_path: Path) -> None:
    body = "\n".join(f'  printf("{n} %llu\\n", (unsigned long long)({n}));' for n in CONSTANTS)
    source = (
        "#include <stdio.h>\n#include <linux/kvm_nitro_capture.h>\n"
        f"int main(void) {{\n{body}\n  return 0;\n}}\n"
    )
    out = _compile_and_run(source, tmp_path, "constants", "-m64")
    values = {name: int(value) for name, value in (line.split() for line in out.splitlines())}
    assert values == CONSTANTS


def test_set_recipe_number_is_free(tmp_path: Path) -> None:
    """0xf5 of type KVMIO: not a command number of <linux/kvm.h> nor of kvm_nitro.h."""
    src = tmp_path / "m.c"
    src.write_text("#include <linux/kvm_nitro.h>\n")
    macros = subprocess.run(
        ["gcc", "-E", "-dM", f"-I{UAPI}", str(src)], check=True, capture_output=True, text=True
    ).stdout
    names = sorted(
        m.group(1) for m in re.finditer(r"#define (KVM\w+) _IO(?:R|W|WR)?\s*\(\s*KVMIO", macros)
    )
    assert "KVM_CREATE_DEVICE" in names and "KVM_NITRO_CONTINUE" in names
    body = "\n".join(f'  printf("%u\\n", (unsigned)(({n}) & 0xff));' for n in names)
    source = (
        "#include <stdio.h>\n#include <linux/kvm_nitro.h>\n#undef _IOC_TYPECHECK\n"
        "#define _IOC_TYPECHECK(t) 0\n"
        f"int main(void) {{\n{body}\n  return 0;\n}}\n"
    )
    used = {int(v) for v in _compile_and_run(source, tmp_path, "nrs", "-m64").split()}
    assert recipe.KVM_NITRO_SET_RECIPE & 0xFF not in used
    assert (recipe.KVM_NITRO_SET_RECIPE >> 8) & 0xFF == 0xAE
    assert (recipe.KVM_NITRO_SET_RECIPE >> 16) & 0x3FFF == recipe.RECIPE.size
