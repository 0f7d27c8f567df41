"""Connections to libvirt and domain look-up, with errors a user can act on.

The ``libvirt`` binding is imported on first use, so that ``libvirt_nitro`` imports on a
machine without it.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConnectionFailed, DomainNotFound, NotQemuDomain

__all__ = [
    "libvirt_module",
    "describe_error",
    "open_connection",
    "lookup_domain",
    "is_local_qemu",
    "require_local_qemu",
]


@functools.cache
def libvirt_module() -> ModuleType:
    """Import ``libvirt`` once and stop it printing its errors on stderr itself.

    libvirt's default error handler writes every error to stderr; we report errors through
    exceptions instead, so the handler is replaced by one that does nothing.
    """
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def describe_error(exc: Exception) -> str:
    """One line for a ``libvirt.libvirtError`` (its message without libvirt's prefixes)."""
    message = exc.get_error_message() if hasattr(exc, "get_error_message") else None
    return (message or str(exc)).strip().splitlines()[0]


def open_connection(uri: str | None = None, readonly: bool = False) -> Any:
    """Open a ``virConnect`` to *uri* (None: libvirt's default, as virsh does).

    :raises ConnectionFailed: libvirt is unreachable or refuses us; the message says why and
        hints at root when we are not root.
    """
    libvirt = libvirt_module()
    try:
        return libvirt.openReadOnly(uri) if readonly else libvirt.open(uri)
    except libvirt.libvirtError as exc:
        hint = "" if os.geteuid() == 0 else " (libvirt-nitro needs root)"
        where = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or "the default URI"
        raise ConnectionFailed(f"cannot connect to {where}: {describe_error(exc)}{hint}") from None


def lookup_domain(conn: Any, ident: str) -> Any:
    """Find a domain by name, UUID or numeric id, in that order (like virsh).

    :raises DomainNotFound: nothing matches *ident*.
    """
    libvirt = libvirt_module()
    lookups = [conn.lookupByName]
    if len(ident) == 36 and ident.count("-") == 4:
        lookups.append(conn.lookupByUUIDString)
    if ident.isdigit():
        lookups.append(lambda text: conn.lookupByID(int(text)))
    for lookup in lookups:
        try:
            return lookup(ident)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise ConnectionFailed(
                    f"looking up domain {ident!r}: {describe_error(exc)}"
                ) from None
    raise DomainNotFound(f"no domain with a name, UUID or id of {ident!r} at {conn.getURI()}")


def is_local_qemu(conn: Any) -> bool:
    """True when *conn* is libvirt's QEMU driver on this host (not remote, not another driver)."""
    if conn.getType() != "QEMU":
        return False
    host = urlsplit(conn.getURI()).hostname
    return host in (None, "", "localhost", "127.0.0.1", "::1")


def require_local_qemu(conn: Any, domain_name: str) -> None:
    """Raise :class:`NotQemuDomain` unless *conn* is the local QEMU driver."""
    if conn.getType() != "QEMU":
        raise NotQemuDomain(
            f"domain {domain_name!r} is not a QEMU domain (libvirt driver {conn.getType()!r})"
        )
    if not is_local_qemu(conn):
        raise NotQemuDomain(
            f"domain {domain_name!r} runs on a remote host ({conn.getURI()}): "
            "run libvirt-nitro on that host"
        )
