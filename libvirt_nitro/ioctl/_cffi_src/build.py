"""cffi build script of ``libvirt_nitro.ioctl._kvm_cffi`` (API, out-of-line mode).

Run by setuptools through ``setup.py``'s ``cffi_modules`` (``pip install .`` or
``pip install -e .``).  Joins the
per-header modules of ``MODULES`` into one extension whose C source includes the real
headers, so the compiler checks every cdef.  The package version is compiled in and
checked at import (``libvirt_nitro.ioctl._binding``).
"""

from __future__ import annotations

import importlib.util
import pathlib
import re

import cffi

__all__ = ["ffibuilder", "MODULES", "load_module"]

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
UAPI = ROOT / "kernel" / "include" / "uapi"

#: The per-header cdef modules, in include order.
MODULES = ["mman", "kvm", "kvm_nitro"]


def load_module(name: str):  # noqa: ANN201 - a module object
    """Import the sibling module *name* by path (the package itself is not importable yet)."""
    spec = importlib.util.spec_from_file_location(f"_nitro_cffi_src_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not match:
        raise RuntimeError("no version in pyproject.toml")
    return match.group(1)


def _build() -> cffi.FFI:
    wrappers = load_module("wrappers")
    ffi = cffi.FFI()
    includes, customizations = [], []
    for name in MODULES:
        module = load_module(name)
        includes.append(module.INCLUDES)
        ffi.cdef(module.TYPES)
        ffi.cdef(module.FUNCTIONS + wrappers.cdefs(module.IOCTLS))
        customizations.append(module.CUSTOMIZATIONS + wrappers.sources(module.IOCTLS))
    version = _package_version()
    ffi.cdef("const char *nitro_cffi_package_version(void);")
    customizations.append(
        f'static const char *nitro_cffi_package_version(void)\n{{\n    return "{version}";\n}}\n'
    )
    ffi.set_source(
        "libvirt_nitro.ioctl._kvm_cffi",
        "\n".join(includes + customizations),
        include_dirs=[str(UAPI)],
        extra_compile_args=["-Wall", "-Werror=implicit-function-declaration"],
    )
    return ffi


ffibuilder = _build()
