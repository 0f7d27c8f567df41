"""Build hook: compile the cffi extension ``libvirt_nitro.ioctl._kvm_cffi``.

All metadata lives in pyproject.toml; this file only adds ``cffi_modules`` (which has
no pyproject equivalent), so both ``pip install .`` and ``pip install -e .`` compile the
extension against the installed <linux/kvm.h> and kernel/include/uapi/linux/kvm_nitro.h.
"""

from setuptools import setup

setup(cffi_modules=["libvirt_nitro/ioctl/_cffi_src/build.py:ffibuilder"])
