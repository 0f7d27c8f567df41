"""BTF: the BPF Type Format a Linux kernel carries about itself (``.BTF`` of vmlinux).

A pure parser of the format of ``Documentation/bpf/btf.rst`` (all 19 kinds of Linux 6.1,
INT to ENUM64, and the kind_flag bitfield encoding of members), enough to answer layout
questions without debug info: the byte offset of a member of a struct (through anonymous
nested structs and unions), the size of a type, the length of an array, and the offset of
a per-CPU variable in the ``.data..percpu`` DATASEC that pahole emits for vmlinux.

The blob is indexed once (one pass over the type section, ~0.3 s for the ~4 MB of a
Debian 6.1 kernel); types are decoded on demand. Corrupt or truncated input raises
:class:`~libvirt_nitro.errors.MalformedKernelImage`; a name the kernel does not have
raises :class:`~libvirt_nitro.errors.UnsupportedKernel`.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import MalformedKernelImage, UnsupportedKernel

__all__ = [
    "BTF_MAGIC",
    "Btf",
    "BtfArray",
    "BtfEnumerator",
    "BtfInt",
    "BtfKind",
    "BtfMember",
    "BtfParam",
    "BtfType",
    "BtfVarSecinfo",
]

#: ``btf_header.magic`` (``__u16``), little-endian on x86.
BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
#: ``sizeof(struct btf_header)`` of version 1.
_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_U32 = struct.Struct("<I")
_MAX_DEPTH = 64


class BtfKind(enum.IntEnum):
    """``BTF_KIND_*`` of ``include/uapi/linux/btf.h`` (bits 24-28 of ``btf_type.info``)."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


#: Bytes after ``struct btf_type`` per kind: (fixed, per vlen item).
_EXTRA: dict[int, tuple[int, int]] = {
    BtfKind.INT: (4, 0),
    BtfKind.PTR: (0, 0),
    BtfKind.ARRAY: (12, 0),
    BtfKind.STRUCT: (0, 12),
    BtfKind.UNION: (0, 12),
    BtfKind.ENUM: (0, 8),
    BtfKind.FWD: (0, 0),
    BtfKind.TYPEDEF: (0, 0),
    BtfKind.VOLATILE: (0, 0),
    BtfKind.CONST: (0, 0),
    BtfKind.RESTRICT: (0, 0),
    BtfKind.FUNC: (0, 0),
    BtfKind.FUNC_PROTO: (0, 8),
    BtfKind.VAR: (4, 0),
    BtfKind.DATASEC: (0, 12),
    BtfKind.FLOAT: (0, 0),
    BtfKind.DECL_TAG: (4, 0),
    BtfKind.TYPE_TAG: (0, 0),
    BtfKind.ENUM64: (0, 12),
}
#: Kinds whose third word is ``size`` (bytes); the others' is ``type`` (a type id).
_SIZED = frozenset(
    {
        BtfKind.INT,
        BtfKind.STRUCT,
        BtfKind.UNION,
        BtfKind.ENUM,
        BtfKind.DATASEC,
        BtfKind.FLOAT,
        BtfKind.ENUM64,
    }
)
_REFERRING = frozenset(
    {
        BtfKind.PTR,
        BtfKind.TYPEDEF,
        BtfKind.VOLATILE,
        BtfKind.CONST,
        BtfKind.RESTRICT,
        BtfKind.FUNC,
        BtfKind.FUNC_PROTO,
        BtfKind.VAR,
        BtfKind.DECL_TAG,
        BtfKind.TYPE_TAG,
    }
)
#: What :meth:`Btf.resolve` sees through: names and qualifiers that keep the layout.
_TRANSPARENT = frozenset(
    {
        BtfKind.TYPEDEF,
        BtfKind.VOLATILE,
        BtfKind.CONST,
        BtfKind.RESTRICT,
        BtfKind.TYPE_TAG,
    }
)
_COMPOSITE = (BtfKind.STRUCT, BtfKind.UNION)


@dataclass(frozen=True)
class BtfMember:
    """A member of a STRUCT/UNION (``struct btf_member``).

    :ivar bit_offset: from the start of the enclosing struct, in bits
    :ivar bitfield_size: width in bits of a bitfield (kind_flag set), else 0
    """

    name: str
    type: int
    bit_offset: int
    bitfield_size: int


@dataclass(frozen=True)
class BtfInt:
    """The ``__u32`` after an INT: ``encoding`` (1 SIGNED, 2 CHAR, 4 BOOL), bit ``offset``
    and ``bits`` (the value's width)."""

    encoding: int
    offset: int
    bits: int

    SIGNED = 1
    CHAR = 2
    BOOL = 4


@dataclass(frozen=True)
class BtfArray:
    """``struct btf_array``: element type id, index type id, number of elements."""

    type: int
    index_type: int
    nelems: int


@dataclass(frozen=True)
class BtfEnumerator:
    """An ENUM/ENUM64 value (signed when the type's kind_flag is set)."""

    name: str
    value: int


@dataclass(frozen=True)
class BtfParam:
    """A FUNC_PROTO parameter (``struct btf_param``; type 0 with no name is ``...``)."""

    name: str
    type: int


@dataclass(frozen=True)
class BtfVarSecinfo:
    """A DATASEC entry (``struct btf_var_secinfo``): VAR type id, offset and size in bytes."""

    type: int
    offset: int
    size: int


@dataclass(frozen=True)
class BtfType:
    """One decoded type (``struct btf_type`` and what follows it).

    ``size`` is set for the sized kinds (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT,
    DATASEC), ``type`` (a type id) for the referring ones (PTR, TYPEDEF, qualifiers,
    FUNC, FUNC_PROTO's return type, VAR, DECL_TAG, TYPE_TAG). Kind-specific data:
    ``int`` (INT), ``array`` (ARRAY), ``members`` (STRUCT/UNION), ``enumerators``
    (ENUM/ENUM64), ``params`` (FUNC_PROTO), ``secinfos`` (DATASEC), ``linkage`` (VAR,
    FUNC: 0 static, 1 global, 2 extern), ``component_idx`` (DECL_TAG; -1 for the type
    itself).
    """

    id: int
    kind: BtfKind
    name: str
    kind_flag: bool
    vlen: int
    size: int | None = None
    type: int | None = None
    int: BtfInt | None = None
    array: BtfArray | None = None
    members: tuple[BtfMember, ...] = ()
    enumerators: tuple[BtfEnumerator, ...] = ()
    params: tuple[BtfParam, ...] = ()
    secinfos: tuple[BtfVarSecinfo, ...] = ()
    linkage: int | None = None
    component_idx: int | None = None


class Btf:
    """A parsed BTF blob. Type ids run from 1 to ``len(btf) - 1``; 0 is ``void``.

    :param data: the raw blob (``.BTF`` of vmlinux, or ``/sys/kernel/btf/vmlinux``)
    :param pointer_size: ``sizeof(void *)`` of the kernel in bytes (BTF does not say)
    :raises MalformedKernelImage: bad magic or version, sections out of bounds, a type
        record running past its section, an unknown kind
    """

    def __init__(self, data: bytes, pointer_size: int = 8) -> None:
        self.data = bytes(data)
        self.pointer_size = pointer_size
        self._parse_header()
        self._index_types()
        self._names: dict[str, list[int]] | None = None
        self._percpu: dict[str, int] | None = None

    # -- parsing -----------------------------------------------------------------------

    def _parse_header(self) -> None:
        data = self.data
        if len(data) < _HEADER.size:
            raise MalformedKernelImage(f"BTF header truncated ({len(data)} bytes)")
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(
            data
        )
        if magic != BTF_MAGIC:
            raise MalformedKernelImage(f"bad BTF magic {magic:#06x} (want {BTF_MAGIC:#06x})")
        if version != BTF_VERSION:
            raise MalformedKernelImage(f"BTF version {version} (only {BTF_VERSION} is known)")
        if hdr_len < _HEADER.size or hdr_len > len(data):
            raise MalformedKernelImage(f"BTF hdr_len {hdr_len} out of bounds")
        body = len(data) - hdr_len
        if type_off % 4 or type_off + type_len > body or str_off + str_len > body:
            raise MalformedKernelImage(
                f"BTF sections out of bounds (types {type_off}+{type_len}, "
                f"strings {str_off}+{str_len}, {body} bytes after the header)"
            )
        if type_off < str_off + str_len and str_off < type_off + type_len:
            raise MalformedKernelImage("BTF type and string sections overlap")
        if str_len == 0 or data[hdr_len + str_off] != 0 or data[hdr_len + str_off + str_len - 1]:
            raise MalformedKernelImage("BTF string section does not start and end with NUL")
        self._types_start = hdr_len + type_off
        self._types_end = self._types_start + type_len
        self._strs_start = hdr_len + str_off
        self._strs_end = self._strs_start + str_len
        #: Bytes of the blob the header covers (a blob found by scanning ends there).
        self.size = hdr_len + max(type_off + type_len, str_off + str_len)

    def _index_types(self) -> None:
        data, end, unpack = self.data, self._types_end, _TYPE.unpack_from
        # One record per type id: (info, name_off, size_or_type, position after btf_type).
        records: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)]
        append = records.append
        extra = [(-1, 0)] * 32
        for kind, lengths in _EXTRA.items():
            extra[kind] = lengths
        pos = self._types_start
        while pos < end:
            if pos + 12 > end:
                raise MalformedKernelImage(f"BTF type {len(records)} truncated")
            name_off, info, size_or_type = unpack(data, pos)
            fixed, per_item = extra[(info >> 24) & 0x1F]
            if fixed < 0:
                raise MalformedKernelImage(
                    f"BTF type {len(records)} has unknown kind {(info >> 24) & 0x1F}"
                )
            append((info, name_off, size_or_type, pos + 12))
            pos += 12 + fixed + per_item * (info & 0xFFFF)
        if pos != end:
            raise MalformedKernelImage(f"BTF type {len(records) - 1} runs past its section")
        self._records = records

    def _str(self, offset: int) -> str:
        start = self._strs_start + offset
        if offset < 0 or start >= self._strs_end:
            raise MalformedKernelImage(f"BTF string offset {offset} out of bounds")
        return self.data[start : self.data.index(b"\0", start)].decode("utf-8", "replace")

    # -- types -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of type ids, ``void`` (0) included."""
        return len(self._records)

    def kind(self, type_id: int) -> BtfKind:
        """Kind of type *type_id* (``UNKN`` for 0, ``void``)."""
        return BtfKind((self._record(type_id)[0] >> 24) & 0x1F)

    def _record(self, type_id: int) -> tuple[int, int, int, int]:
        if not 0 <= type_id < len(self._records):
            raise MalformedKernelImage(f"BTF type id {type_id} out of range")
        return self._records[type_id]

    def type(self, type_id: int) -> BtfType:
        """Decode type *type_id* completely (see :class:`BtfType`)."""
        info, name_off, size_or_type, pos = self._record(type_id)
        kind, vlen, kflag = BtfKind((info >> 24) & 0x1F), info & 0xFFFF, bool(info >> 31)
        common = dict(id=type_id, kind=kind, name=self._str(name_off), kind_flag=kflag, vlen=vlen)
        if type_id == 0:
            return BtfType(**common)
        if kind in _SIZED:
            common["size"] = size_or_type
        elif kind in _REFERRING:
            common["type"] = size_or_type
        data = self.data
        if kind is BtfKind.INT:
            (word,) = _U32.unpack_from(data, pos)
            common["int"] = BtfInt((word >> 24) & 0x0F, (word >> 16) & 0xFF, word & 0xFF)
        elif kind is BtfKind.ARRAY:
            common["array"] = BtfArray(*struct.unpack_from("<III", data, pos))
        elif kind in _COMPOSITE:
            members = []
            for name_off, member_type, offset in struct.iter_unpack(
                "<III", data[pos : pos + 12 * vlen]
            ):
                bits, width = (offset & 0xFFFFFF, offset >> 24) if kflag else (offset, 0)
                members.append(BtfMember(self._str(name_off), member_type, bits, width))
            common["members"] = tuple(members)
        elif kind is BtfKind.ENUM:
            fmt = "<Ii" if kflag else "<II"
            common["enumerators"] = tuple(
                BtfEnumerator(self._str(n), v)
                for n, v in struct.iter_unpack(fmt, data[pos : pos + 8 * vlen])
            )
        elif kind is BtfKind.ENUM64:
            values = []
            for n, lo, hi in struct.iter_unpack("<III", data[pos : pos + 12 * vlen]):
                value = hi << 32 | lo
                if kflag and value >> 63:
                    value -= 1 << 64
                values.append(BtfEnumerator(self._str(n), value))
            common["enumerators"] = tuple(values)
        elif kind is BtfKind.FUNC_PROTO:
            common["params"] = tuple(
                BtfParam(self._str(n), t)
                for n, t in struct.iter_unpack("<II", data[pos : pos + 8 * vlen])
            )
        elif kind is BtfKind.DATASEC:
            common["secinfos"] = tuple(
                BtfVarSecinfo(*entry)
                for entry in struct.iter_unpack("<III", data[pos : pos + 12 * vlen])
            )
        elif kind is BtfKind.VAR:
            common["linkage"] = _U32.unpack_from(data, pos)[0]
        elif kind is BtfKind.FUNC:
            common["linkage"] = vlen
        elif kind is BtfKind.DECL_TAG:
            common["component_idx"] = struct.unpack_from("<i", data, pos)[0]
        return BtfType(**common)

    def types(self) -> Iterator[BtfType]:
        """Every type but ``void``, decoded, in id order (an iterator of :class:`BtfType`)."""
        return (self.type(type_id) for type_id in range(1, len(self._records)))

    def find(self, name: str, kind: BtfKind = BtfKind.STRUCT) -> int:
        """Type id of the first type of *kind* named *name* (``find("task_struct")``).

        :raises UnsupportedKernel: there is none
        """
        if self._names is None:
            names: dict[str, list[int]] = {}
            for type_id, (_info, name_off, _st, _pos) in enumerate(self._records):
                if name_off:
                    names.setdefault(self._str(name_off), []).append(type_id)
            self._names = names
        for type_id in self._names.get(name, ()):
            if self.kind(type_id) == kind:
                return type_id
        raise UnsupportedKernel(f"BTF has no {kind.name.lower()} {name}")

    def resolve(self, type_id: int) -> int:
        """*type_id* with typedefs, qualifiers and type tags stripped (``pid_t`` -> ``int``)."""
        for _ in range(_MAX_DEPTH):
            info, _name, referred, _pos = self._record(type_id)
            if (info >> 24) & 0x1F not in _TRANSPARENT:
                return type_id
            type_id = referred
        raise MalformedKernelImage(f"BTF type {type_id}: typedef/qualifier chain too long")

    def sizeof(self, type_or_name: int | str) -> int:
        """``sizeof`` in bytes of a type id, or of the struct named so.

        :raises UnsupportedKernel: the type has no size (``void``, FWD, FUNC)
        """
        type_id = self.find(type_or_name) if isinstance(type_or_name, str) else type_or_name
        for _ in range(_MAX_DEPTH):
            type_id = self.resolve(type_id)
            info, _name, size_or_type, pos = self._record(type_id)
            kind = (info >> 24) & 0x1F
            if kind in _SIZED:
                return size_or_type
            if kind == BtfKind.PTR:
                return self.pointer_size
            if kind != BtfKind.ARRAY:
                raise UnsupportedKernel(f"BTF type {type_id} ({BtfKind(kind).name}) has no size")
            element, _index, nelems = struct.unpack_from("<III", self.data, pos)
            if nelems == 0:
                return 0
            return nelems * self.sizeof(element)
        raise MalformedKernelImage(f"BTF type {type_id}: array nesting too deep")

    def type_name(self, type_id: int) -> str:
        """C spelling of a type, for messages and checks (``char[16]``, ``struct mm_struct *``,
        ``pid_t``)."""
        return self._spell(type_id, "", 0).strip()

    def _spell(self, type_id: int, declarator: str, depth: int) -> str:
        if depth > _MAX_DEPTH:
            raise MalformedKernelImage(f"BTF type {type_id}: reference chain too long")
        if type_id == 0:
            return f"void {declarator}"
        t = self.type(type_id)
        if t.kind is BtfKind.PTR:
            inner = f"*{declarator}"
            if self.kind(t.type or 0) in (BtfKind.ARRAY, BtfKind.FUNC_PROTO):
                inner = f"({inner})"
            return self._spell(t.type or 0, inner, depth + 1)
        if t.kind is BtfKind.ARRAY and t.array is not None:
            return self._spell(t.array.type, f"{declarator}[{t.array.nelems}]", depth + 1)
        if t.kind in (BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT):
            return self._spell(t.type or 0, f"{t.kind.name.lower()} {declarator}", depth + 1)
        if t.kind is BtfKind.TYPE_TAG:
            return self._spell(t.type or 0, declarator, depth + 1)
        if t.kind is BtfKind.FUNC_PROTO:
            params = ", ".join(self.type_name(p.type) if p.type else "..." for p in t.params)
            return self._spell(t.type or 0, f"{declarator}({params})", depth + 1)
        if t.kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64):
            tag = "enum" if t.kind is BtfKind.ENUM64 else t.kind.name.lower()
            base = f"{tag} {t.name or '<anon>'}"
        elif t.kind is BtfKind.FWD:
            base = f"{'union' if t.kind_flag else 'struct'} {t.name}"
        else:
            base = t.name
        separator = "" if declarator.startswith(("[", "(")) or not declarator else " "
        return f"{base}{separator}{declarator}"

    # -- layout questions --------------------------------------------------------------

    def member(self, struct_name: str, path: str) -> tuple[int, BtfMember]:
        """Find member *path* of ``struct``/``union`` *struct_name*, through anonymous nested
        structs and unions; a dotted *path* (``"thread.sp"``) descends named members.

        :returns: (bit offset from the start of *struct_name*, the member)
        :raises UnsupportedKernel: no such struct or member
        """
        try:
            type_id = self.find(struct_name, BtfKind.STRUCT)
        except UnsupportedKernel:
            type_id = self.find(struct_name, BtfKind.UNION)
        bit_offset, found = 0, None
        for part in path.split("."):
            if found is not None:
                type_id = self.resolve(found.type)
            hit = self._find_member(type_id, part, 0)
            if hit is None:
                raise UnsupportedKernel(f"BTF struct {struct_name} has no member {path}")
            relative, found = hit
            bit_offset += relative
        assert found is not None
        return bit_offset, found

    def _find_member(self, type_id: int, name: str, depth: int) -> tuple[int, BtfMember] | None:
        if depth > _MAX_DEPTH or self.kind(type_id) not in _COMPOSITE:
            return None
        anonymous = []
        for member in self.type(type_id).members:
            if member.name == name:
                return member.bit_offset, member
            if not member.name:
                anonymous.append(member)
        for member in anonymous:
            hit = self._find_member(self.resolve(member.type), name, depth + 1)
            if hit is not None:
                return member.bit_offset + hit[0], hit[1]
        return None

    def member_offset(self, struct_name: str, path: str) -> int:
        """Byte offset of member *path* in *struct_name* (``("task_struct", "pid")``).

        :raises UnsupportedKernel: no such struct or member, or it is a bitfield not on a
            byte boundary
        """
        bits, member = self.member(struct_name, path)
        if bits % 8:
            raise UnsupportedKernel(f"{struct_name}.{path} is a bitfield at bit {bits}")
        return bits // 8

    def member_type(self, struct_name: str, path: str) -> int:
        """Type id of member *path* of *struct_name* (unresolved: ``pid_t`` stays ``pid_t``)."""
        return self.member(struct_name, path)[1].type

    def array_length(self, type_id: int) -> int:
        """Number of elements of an array type (typedefs and qualifiers seen through).

        :raises UnsupportedKernel: the type is not an array
        """
        resolved = self.resolve(type_id)
        t = self.type(resolved)
        if t.array is None:
            raise UnsupportedKernel(f"BTF type {type_id} is {t.kind.name}, not an array")
        return t.array.nelems

    def datasec_variables(self, prefix: str = ".data..percpu") -> dict[str, int]:
        """Variables of the DATASECs whose name starts with *prefix*: name -> offset (bytes
        from the section start). Empty when pahole did not emit such a DATASEC."""
        variables: dict[str, int] = {}
        for type_id, (info, name_off, _st, _pos) in enumerate(self._records):
            if (info >> 24) & 0x1F != BtfKind.DATASEC or not self._str(name_off).startswith(prefix):
                continue
            for entry in self.type(type_id).secinfos:
                var = self.type(entry.type)
                if var.kind is BtfKind.VAR:
                    variables.setdefault(var.name, entry.offset)
        return variables

    def percpu_offset(self, name: str) -> int:
        """Offset in bytes of per-CPU variable *name* in the per-CPU area (x86-64 SMP: from
        the CPU's GS base, MSR_GS_BASE in the kernel / KERNEL_GS_BASE in user mode).

        :raises UnsupportedKernel: the BTF has no ``.data..percpu`` VAR named so (pahole
            run without per-CPU variables, or a kernel that renamed it)
        """
        if self._percpu is None:
            self._percpu = self.datasec_variables(".data..percpu")
        try:
            return self._percpu[name]
        except KeyError:
            where = "no .data..percpu DATASEC" if not self._percpu else "no such variable"
            raise UnsupportedKernel(f"BTF has no per-CPU variable {name} ({where})") from None
