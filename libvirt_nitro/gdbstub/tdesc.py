"""GDB target descriptions: the register layout a gdbstub announces.

A stub that supports ``qXfer:features:read`` describes its registers in XML (GDB manual,
"Target Descriptions"): ``target.xml`` names the architecture and ``<xi:include>``\\ s feature
files whose ``<reg>`` elements give each register's name, size and number. The ``g``/``G``
packets carry the registers back to back in register-number order, so the byte offset of a
register in a ``g`` reply follows from the description. QEMU 7.2's x86-64 target is
``target.xml`` → ``i386-64bit.xml``: rax..r15, rip, eflags, cs ss ds es fs gs, fs_base,
gs_base, k_gs_base, cr0 cr2 cr3 cr4 cr8, efer, st0..st7, the x87 control registers,
xmm0..xmm15, mxcsr; a full ``g`` reply is 608 bytes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lxml import etree

from ..errors import GdbstubError

__all__ = ["Register", "TargetDescription", "XINCLUDE_NS"]

#: The XInclude namespace; GDB's descriptions use its ``xi:`` prefix, often undeclared.
XINCLUDE_NS = "http://www.w3.org/2001/XInclude"

#: Includes nested deeper than this are taken for a loop.
_MAX_INCLUDE_DEPTH = 16
#: The first start tag of a document (not ``<?xml`` nor ``<!DOCTYPE``).
_ROOT_TAG = re.compile(rb"<(?![?!])[^\s/>]+")
#: struct codes of the register sizes that unpack natively (little-endian, unsigned).
_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass(frozen=True)
class Register:
    """One register of a target description.

    :ivar name: GDB's name (``"rip"``, ``"eflags"``, ``"efer"``)
    :ivar bitsize: width in bits (80 for an x87 ``st`` register, 128 for ``xmm``)
    :ivar regnum: GDB register number, as used by the ``p``/``P`` packets
    :ivar offset: byte offset of the register in a ``g``/``G`` packet's data
    :ivar type: the description's ``type`` attribute (``"int64"``, ``"code_ptr"``, ...)
    :ivar feature: name of the ``<feature>`` that declares it
    """

    name: str
    bitsize: int
    regnum: int
    offset: int
    type: str = "int"
    feature: str = ""

    @property
    def size(self) -> int:
        """Width in bytes (bitsize rounded up to whole bytes)."""
        return (self.bitsize + 7) // 8

    @property
    def end(self) -> int:
        """Byte offset just past the register in the ``g`` data."""
        return self.offset + self.size


class TargetDescription:
    """The registers of a target, their ``g`` packet layout and conversions.

    :ivar architecture: the ``<architecture>`` text, e.g. ``"i386:x86-64"`` (``""`` if none)
    :ivar registers: every register, in register-number order
    :ivar g_size: bytes of a full ``g`` reply (the sum of all register sizes)
    """

    def __init__(self, architecture: str, registers: list[Register]) -> None:
        self.architecture = architecture
        self.registers = sorted(registers, key=lambda reg: reg.regnum)
        self.g_size = sum(reg.size for reg in self.registers)
        self._by_name = {reg.name: reg for reg in self.registers}
        # Fast path of decode(): the leading run of registers struct can unpack in one call
        # (GPRs, rip, eflags, selectors, bases, CRs, efer on x86-64), then the rest one by one.
        codes = []
        for reg in self.registers:
            if reg.size not in _STRUCT_CODES or reg.offset != struct.calcsize("<" + "".join(codes)):
                break
            codes.append(_STRUCT_CODES[reg.size])
        self._head = struct.Struct("<" + "".join(codes))
        self._head_names = tuple(reg.name for reg in self.registers[: len(codes)])
        self._tail = tuple((reg.name, reg.offset, reg.end) for reg in self.registers[len(codes) :])

    def __repr__(self) -> str:
        return (
            f"<TargetDescription {self.architecture or '?'}: {len(self.registers)} registers, "
            f"g_size={self.g_size}>"
        )

    def __getitem__(self, name: str) -> Register:
        """The register called *name*.

        :raises KeyError: the target has no such register.
        """
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Register]:
        return iter(self.registers)

    def __len__(self) -> int:
        return len(self.registers)

    @classmethod
    def parse(cls, fetch: Callable[[str], str], annex: str = "target.xml") -> TargetDescription:
        """Read a description starting at *annex*, following ``<xi:include href=...>``.

        *fetch(annex)* returns the XML text of one annex (for a live stub,
        :meth:`RspClient.fetch_annex <libvirt_nitro.gdbstub.rsp.RspClient.fetch_annex>`).
        Register numbers follow GDB's rule: one more than the previous register, unless
        ``regnum=`` says otherwise. The XML is parsed without DTD, entities or network.

        :raises GdbstubError: malformed XML, a ``<reg>`` without name or bitsize, an include
            loop, or two registers with one number.
        """
        state = _ParseState(fetch)
        state.walk_annex(annex, depth=0)
        numbers: dict[int, str] = {}
        for name, _bits, regnum, _type, _feature in state.regs:
            if regnum in numbers:
                raise GdbstubError(
                    f"target description: registers {numbers[regnum]!r} and {name!r} "
                    f"both have number {regnum}"
                )
            numbers[regnum] = name
        offset = 0
        registers = []
        for name, bits, regnum, type_, feature in sorted(state.regs, key=lambda reg: reg[2]):
            registers.append(Register(name, bits, regnum, offset, type_, feature))
            offset += (bits + 7) // 8
        return cls(state.architecture, registers)

    def decode(self, g: bytes) -> dict[str, int]:
        """Split the data of a ``g`` reply into ``{name: value}``.

        Every register that lies wholly within *g* is decoded as a little-endian unsigned
        integer (vector and x87 registers too); a short *g* simply yields fewer registers.
        """
        if len(g) >= self._head.size:
            values = dict(zip(self._head_names, self._head.unpack_from(g), strict=True))
        else:
            values = {}
            for reg in self.registers:
                if reg.end > len(g):
                    break
                values[reg.name] = int.from_bytes(g[reg.offset : reg.end], "little")
            return values
        size = len(g)
        for name, start, end in self._tail:
            if end > size:
                break
            values[name] = int.from_bytes(g[start:end], "little")
        return values

    def encode_prefix(self, values: dict[str, int], base: bytes, upto: str) -> bytes:
        """The ``g`` layout from offset 0 to the end of register *upto*, for a ``G`` packet.

        Bytes come from *base* (a ``g`` reply) with *values* (``{name: int}``, negative
        numbers taken modulo 2**bitsize) written over them. QEMU's ``G`` handler writes the
        registers in order until the data runs out, so a prefix ending at ``ss`` sets
        rax..r15, rip, eflags, cs and ss in one packet without touching the control registers.

        :raises KeyError: *upto* or a name in *values* is not a register.
        :raises ValueError: *base* is shorter than the prefix, a register of *values* lies
            beyond *upto*, or a value does not fit its register.
        """
        end = self._by_name[upto].end
        if len(base) < end:
            raise ValueError(f"base holds {len(base)} bytes, the prefix up to {upto} needs {end}")
        data = bytearray(base[:end])
        for name, value in values.items():
            reg = self._by_name[name]
            if reg.end > end:
                raise ValueError(f"register {name} lies beyond {upto} in the 'g' layout")
            if value < 0:
                value &= (1 << reg.bitsize) - 1
            try:
                data[reg.offset : reg.end] = value.to_bytes(reg.size, "little")
            except OverflowError:
                raise ValueError(
                    f"value {value:#x} does not fit register {name} ({reg.bitsize} bits)"
                ) from None
        return bytes(data)


class _ParseState:
    """Walks annexes and their includes in document order, collecting ``<reg>``\\ s."""

    def __init__(self, fetch: Callable[[str], str]) -> None:
        self.fetch = fetch
        self.architecture = ""
        self.regs: list[tuple[str, int, int, str, str]] = []
        self.next_regnum = 0
        self.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )

    def walk_annex(self, annex: str, depth: int) -> None:
        if depth > _MAX_INCLUDE_DEPTH:
            raise GdbstubError(f"target description: includes nested too deep at {annex!r}")
        root = self.load(annex)
        if _localname(root) == "feature":
            self.walk_feature(root, annex)
        else:
            self.walk_children(root, annex, depth)

    def load(self, annex: str) -> etree._Element:
        data = self.fetch(annex).encode("utf-8")
        if b"xi:" in data and b"xmlns:xi" not in data:
            # GDB (expat, no namespaces) and QEMU write "xi:include" without declaring xi.
            data = _ROOT_TAG.sub(
                lambda m: m.group(0) + f' xmlns:xi="{XINCLUDE_NS}"'.encode(), data, 1
            )
        try:
            return etree.fromstring(data, self.parser)
        except etree.XMLSyntaxError as exc:
            raise GdbstubError(f"target description {annex!r} is not well-formed: {exc}") from None

    def walk_children(self, element: etree._Element, annex: str, depth: int) -> None:
        for child in element:
            if not isinstance(child.tag, str):
                continue  # comments, processing instructions
            name = _localname(child)
            if name == "architecture" and not self.architecture:
                self.architecture = (child.text or "").strip()
            elif name == "include":
                href = child.get("href")
                if not href:
                    raise GdbstubError(f"target description {annex!r}: include without href")
                self.walk_annex(href, depth + 1)
            elif name == "feature":
                self.walk_feature(child, annex)

    def walk_feature(self, feature: etree._Element, annex: str) -> None:
        feature_name = feature.get("name", "")
        for element in feature.iter():
            if not isinstance(element.tag, str) or _localname(element) != "reg":
                continue
            name, bitsize, regnum = (
                element.get("name"),
                element.get("bitsize"),
                element.get("regnum"),
            )
            if not name or not bitsize:
                raise GdbstubError(
                    f"target description {annex!r}: <reg> without name or bitsize "
                    f"(line {element.sourceline})"
                )
            try:
                bits = int(bitsize, 0)
                number = int(regnum, 0) if regnum is not None else self.next_regnum
            except ValueError:
                raise GdbstubError(
                    f"target description {annex!r}: register {name!r} has a bad "
                    f"bitsize {bitsize!r} or regnum {regnum!r}"
                ) from None
            self.regs.append((name, bits, number, element.get("type", "int"), feature_name))
            self.next_regnum = number + 1


def _localname(element: etree._Element) -> str:
    tag = element.tag
    return tag.rpartition("}")[2] if tag[0] == "{" else tag.rpartition(":")[2]
