"""The x86 Linux kernel image (bzImage): its boot header, its payload, its BTF.

A bzImage is real-mode setup code (``setup_sects`` + 1 sectors of 512 bytes, with the
"HdrS" setup header at 0x1f1) followed by the protected-mode decompressor, which carries
the compressed kernel — vmlinux stripped of symbols, still an ELF file on x86 — at
``payload_offset``/``payload_length`` (boot protocol 2.08+, ``Documentation/x86/boot.rst``).
Every kernel compressor appends the decompressed size as a ``__le32``
(``size_append`` in ``scripts/Makefile.lib``); it is checked when present.

gzip, bzip2, lzma and xz payloads are decompressed with the standard library (Debian's
kernels are xz, ``CONFIG_KERNEL_XZ``); lzo, lz4 and zstd raise
:class:`~libvirt_nitro.errors.UnsupportedKernel` naming the missing support.
"""

from __future__ import annotations

import bz2
import lzma
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import MalformedKernelImage, UnsupportedKernel
from .btf import Btf

__all__ = [
    "SetupHeader",
    "compression",
    "decompress",
    "extract_vmlinux",
    "find_btf",
    "linux_banner",
    "parse_setup_header",
]

#: ``struct setup_header`` fields used here: offset in the file, struct format.
_SETUP_SECTS = (0x1F1, "<B")
_BOOT_FLAG = (0x1FE, "<H")
_HEADER_MAGIC = (0x202, "4s")
_VERSION = (0x206, "<H")
_KERNEL_VERSION = (0x20E, "<H")
_PAYLOAD = (0x248, "<II")
#: The setup header must reach past ``payload_length``.
_MIN_SIZE = 0x250
_MIN_PROTOCOL = 0x208

#: Compressed payload magics (``lib/decompress.c``'s table).
_MAGICS = [
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x89LZO", "lzo"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]
_BANNER = re.compile(rb"Linux version (\d+\.\d+[^\s\x00]*) [\x20-\x7e]*\n\x00")
_BTF_SIGNATURE = b"\x9f\xeb\x01"
_ELF64_LE = b"\x7fELF\x02\x01"


@dataclass(frozen=True)
class SetupHeader:
    """The fields of the x86 boot setup header that locate the kernel payload.

    :ivar setup_sects: 512-byte sectors of real-mode setup code after the boot sector
        (0 in the file means 4)
    :ivar version: boot protocol version, e.g. ``0x020F`` for 2.15
    :ivar kernel_version: the header's human-readable version string ("6.1.0-56-amd64
        (debian-kernel@…) #1 SMP …"), or None if absent
    :ivar payload_offset: offset in bytes of the compressed kernel from the start of the
        protected-mode code
    :ivar payload_length: its length in bytes (the appended ``__le32`` size included)
    """

    setup_sects: int
    version: int
    kernel_version: str | None
    payload_offset: int
    payload_length: int

    @property
    def protocol(self) -> str:
        """The boot protocol version as text, e.g. ``"2.15"``."""
        return f"{self.version >> 8}.{self.version & 0xFF:02d}"

    @property
    def payload_start(self) -> int:
        """Offset in bytes of the compressed payload in the bzImage file."""
        return (self.setup_sects + 1) * 512 + self.payload_offset


def _field(image: bytes, field: tuple[int, str]) -> Any:
    offset, fmt = field
    values = struct.unpack_from(fmt, image, offset)
    return values if len(values) > 1 else values[0]


def parse_setup_header(image: bytes) -> SetupHeader:
    """Parse the setup header of bzImage *image* (the whole file, or at least its setup).

    :raises MalformedKernelImage: too short, no 0xAA55 boot flag or "HdrS" magic, a
        ``kernel_version`` pointer out of bounds
    :raises UnsupportedKernel: boot protocol older than 2.08 (no payload fields)
    """
    if len(image) < _MIN_SIZE:
        raise MalformedKernelImage(f"bzImage truncated: {len(image)} bytes, no setup header")
    if _field(image, _HEADER_MAGIC) != b"HdrS" or _field(image, _BOOT_FLAG) != 0xAA55:
        raise MalformedKernelImage("not an x86 bzImage (no HdrS setup header)")
    version = _field(image, _VERSION)
    if version < _MIN_PROTOCOL:
        raise UnsupportedKernel(f"boot protocol {version >> 8}.{version & 0xFF:02d} < 2.08")
    setup_sects = _field(image, _SETUP_SECTS) or 4
    pointer = _field(image, _KERNEL_VERSION)
    kernel_version = None
    if pointer:
        start = pointer + 0x200
        end = image.find(b"\0", start, start + 512)
        if start >= len(image) or end < 0:
            raise MalformedKernelImage(f"bzImage kernel_version pointer {pointer:#x} is bad")
        kernel_version = image[start:end].decode("ascii", "replace")
    payload_offset, payload_length = _field(image, _PAYLOAD)
    return SetupHeader(setup_sects, version, kernel_version, payload_offset, payload_length)


def compression(payload: bytes) -> str:
    """Name of the compressor of *payload* from its magic: ``gzip``, ``xz``, ``bzip2``,
    ``lzma``, ``lzo``, ``lz4`` or ``zstd``.

    :raises MalformedKernelImage: no known magic
    """
    for magic, name in _MAGICS:
        if payload.startswith(magic):
            return name
    raise MalformedKernelImage(
        f"kernel payload has no known compression magic ({payload[:6].hex()})"
    )


def decompress(payload: bytes) -> bytes:
    """Decompress a kernel payload (see :func:`compression`); data after the compressed
    stream is allowed, and a trailing ``__le32`` decompressed size is checked.

    :raises UnsupportedKernel: lzo, lz4 or zstd (no standard-library decompressor)
    :raises MalformedKernelImage: corrupt or truncated stream, size mismatch
    """
    kind = compression(payload)
    if kind == "gzip":
        decompressor = zlib.decompressobj(wbits=31)
    elif kind == "xz":
        decompressor = lzma.LZMADecompressor(lzma.FORMAT_XZ)
    elif kind == "lzma":
        decompressor = lzma.LZMADecompressor(lzma.FORMAT_ALONE)
    elif kind == "bzip2":
        decompressor = bz2.BZ2Decompressor()
    else:
        raise UnsupportedKernel(
            f"{kind}-compressed kernel image; only gzip, xz, lzma and bzip2 are supported "
            f"(extract vmlinux with scripts/extract-vmlinux and pass that)"
        )
    try:
        out = decompressor.decompress(payload)
    except (lzma.LZMAError, zlib.error, OSError, EOFError) as exc:
        raise MalformedKernelImage(f"{kind} kernel payload is corrupt: {exc}") from None
    if not decompressor.eof:
        raise MalformedKernelImage(f"{kind} kernel payload is truncated")
    trailer = decompressor.unused_data
    if len(trailer) == 4 and struct.unpack("<I", trailer)[0] != len(out) & 0xFFFFFFFF:
        raise MalformedKernelImage(
            f"decompressed {len(out)} bytes, the image says {struct.unpack('<I', trailer)[0]}"
        )
    return out


def extract_vmlinux(image: bytes) -> bytes:
    """The decompressed kernel (an ELF vmlinux without symbols on x86) of bzImage *image*.

    :raises MalformedKernelImage: bad header, payload out of the file, corrupt stream
    :raises UnsupportedKernel: old boot protocol, unsupported compression
    """
    header = parse_setup_header(image)
    start, length = header.payload_start, header.payload_length
    if length == 0 or start + length > len(image):
        raise MalformedKernelImage(
            f"bzImage payload {start:#x}+{length:#x} lies outside the {len(image)}-byte file"
        )
    return decompress(image[start : start + length])


def linux_banner(vmlinux: bytes) -> tuple[str, str] | None:
    """``linux_banner`` of a decompressed kernel: (release, the whole line without its
    newline), e.g. ``("6.1.0-56-amd64", "Linux version 6.1.0-56-amd64 (…) … Debian
    6.1.192-2 (…)")``, or None if the text is not found."""
    match = _BANNER.search(vmlinux)
    if match is None:
        return None
    line = match.group(0)[:-2].decode("ascii")
    return match.group(1).decode("ascii"), line


def _elf_section(vmlinux: bytes, wanted: str) -> bytes | None:
    """Contents of section *wanted* of a 64-bit little-endian ELF file, or None."""
    if not vmlinux.startswith(_ELF64_LE) or len(vmlinux) < 64:
        return None
    (shoff,) = struct.unpack_from("<Q", vmlinux, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", vmlinux, 0x3A)
    if shentsize < 64 or shoff + shnum * shentsize > len(vmlinux) or shstrndx >= shnum:
        return None

    def section(index: int) -> tuple[int, int, int, int]:
        name, kind, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", vmlinux, shoff + index * shentsize
        )
        return name, kind, offset, size

    _n, _k, names_offset, names_size = section(shstrndx)
    for index in range(shnum):
        name, kind, offset, size = section(index)
        end = vmlinux.find(b"\0", names_offset + name, names_offset + names_size)
        if end < 0 or vmlinux[names_offset + name : end] != wanted.encode():
            continue
        if kind == 8 or offset + size > len(vmlinux):  # SHT_NOBITS, or truncated
            return None
        return vmlinux[offset : offset + size]
    return None


def _btf_candidates(vmlinux: bytes) -> Iterator[bytes]:
    section = _elf_section(vmlinux, ".BTF")
    if section is not None:
        yield section
    position = vmlinux.find(_BTF_SIGNATURE)
    while position >= 0:
        if position + 24 <= len(vmlinux):
            hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
                "<5I", vmlinux, position + 4
            )
            size = hdr_len + max(type_off + type_len, str_off + str_len)
            if position + size <= len(vmlinux):
                yield vmlinux[position : position + size]
        position = vmlinux.find(_BTF_SIGNATURE, position + 1)


def find_btf(vmlinux: bytes, pointer_size: int = 8) -> Btf:
    """The kernel's own BTF in decompressed kernel *vmlinux*: its ELF ``.BTF`` section, or
    else the first blob with a valid BTF header that parses and describes
    ``struct task_struct``.

    :raises UnsupportedKernel: none (a kernel built without ``CONFIG_DEBUG_INFO_BTF``)
    """
    rejected = []
    for candidate in _btf_candidates(vmlinux):
        try:
            btf = Btf(candidate, pointer_size)
            btf.find("task_struct")
        except (MalformedKernelImage, UnsupportedKernel) as exc:
            rejected.append(str(exc))
            continue
        return btf
    detail = f"; {len(rejected)} candidate(s) rejected, first: {rejected[0]}" if rejected else ""
    raise UnsupportedKernel(f"no BTF in the kernel image (CONFIG_DEBUG_INFO_BTF=n?){detail}")
