"""Generate the non-variadic C wrapper of each ioctl.

cffi calling the variadic ``ioctl()`` costs about 1 µs more per call than a fixed
prototype, so every ioctl gets its own small function ``nitro_<NAME>(int fd, ...)``.
A wrapper taking a struct statically asserts that the struct's size equals the size
encoded in the ioctl number (the KVM selftests' ``kvm_do_ioctl`` check).
"""

from __future__ import annotations

__all__ = ["Ioctl", "cdefs", "sources"]

#: (ioctl name, argument kind, C type of the argument): kind is "none" (no argument),
#: "int" (an integer passed by value) or "ptr" (a pointer to the C type).
Ioctl = tuple[str, str, str]


def _signature(ioctl: Ioctl) -> str:
    name, kind, ctype = ioctl
    if kind == "none":
        return f"int nitro_{name}(int fd)"
    if kind == "int":
        return f"int nitro_{name}(int fd, unsigned long arg)"
    if kind == "ptr":
        return f"int nitro_{name}(int fd, {ctype} *arg)"
    raise ValueError(f"{name}: unknown argument kind {kind!r}")


def cdefs(ioctls: list[Ioctl]) -> str:
    """The cdef declarations of the wrappers of *ioctls*."""
    return "".join(f"{_signature(i)};\n" for i in ioctls)


def sources(ioctls: list[Ioctl]) -> str:
    """The C definitions of the wrappers of *ioctls*."""
    out = []
    for ioctl in ioctls:
        name, kind, ctype = ioctl
        if kind == "ptr":
            check = (
                f"    _Static_assert(sizeof({ctype}) == _IOC_SIZE({name}),"
                f' "{name}: argument size differs from the ioctl number");\n'
            )
            call = f"ioctl(fd, {name}, arg)"
        elif kind == "int":
            check = f'    _Static_assert(_IOC_SIZE({name}) == 0, "{name} takes a struct");\n'
            call = f"ioctl(fd, {name}, arg)"
        else:
            check = f'    _Static_assert(_IOC_SIZE({name}) == 0, "{name} takes a struct");\n'
            call = f"ioctl(fd, {name}, 0)"
        out.append(f"static {_signature(ioctl)}\n{{\n{check}    return {call};\n}}\n")
    return "\n".join(out)
