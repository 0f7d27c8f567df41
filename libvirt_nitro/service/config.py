"""Show, set and remove a domain's ``<nitro:trace>`` element through libvirt's metadata API.

``virDomainSetMetadata``/``virDomainGetMetadata`` with ``VIR_DOMAIN_METADATA_ELEMENT`` and
the element's namespace: libvirt owns the domain's XML, so libvirt-nitro never edits its
files. *flags* are libvirt's ``VIR_DOMAIN_AFFECT_*``: ``CURRENT`` (0, the running domain if
it runs, else its persistent definition), ``LIVE``, ``CONFIG`` or ``LIVE|CONFIG``. Setting
the live element of a running domain raises libvirt's metadata-change event, which the
service (:mod:`.serve`, :mod:`.watch`) acts on.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from ..domain import describe_error, libvirt_module
from ..errors import ConnectionFailed
from .metadata import NAMESPACE, PREFIX, TraceConfig, from_libvirt, parse_text, to_libvirt

__all__ = ["get_element", "set_element", "remove_element", "affect_flags"]


def affect_flags(live: bool = False, config: bool = False) -> int:
    """``VIR_DOMAIN_AFFECT_LIVE``/``_CONFIG`` as asked, ``_CURRENT`` (0) if neither."""
    libvirt = libvirt_module()
    flags = 0
    if live:
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    if config:
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    return flags


def get_element(dom: Any, flags: int = 0) -> str | None:
    """The domain's ``<nitro:trace>`` element as XML text (in its namespace, prefix
    ``nitro``), or None if it has none.

    :raises ConnectionFailed: libvirt refused (e.g. LIVE on a domain that is not running).
    """
    libvirt = libvirt_module()
    try:
        text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, flags)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise ConnectionFailed(
            f"reading the metadata of {dom.name()!r}: {describe_error(exc)}"
        ) from None
    return from_libvirt(text)


def set_element(dom: Any, text: str, flags: int = 0) -> TraceConfig:
    """Validate *text* (a ``<nitro:trace>`` document) and store it in the domain's
    ``<metadata>``; return what it asks for.

    :raises InvalidTraceConfig: *text* breaks the schema (nothing is stored).
    :raises ConnectionFailed: libvirt refused.
    """
    config = parse_text(text)
    payload = to_libvirt(etree.fromstring(text.encode()))
    _set_metadata(dom, payload, PREFIX, flags, "setting")
    return config


def _set_metadata(dom: Any, payload: str | None, prefix: str | None, flags: int, what: str) -> None:
    """``virDomainSetMetadata`` of our element (*payload* None removes it)."""
    libvirt = libvirt_module()
    try:
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, payload, prefix, NAMESPACE, flags)
    except libvirt.libvirtError as exc:
        raise ConnectionFailed(
            f"{what} the metadata of {dom.name()!r}: {describe_error(exc)}"
        ) from None


def remove_element(dom: Any, flags: int = 0) -> bool:
    """Remove the domain's ``<nitro:trace>`` element; return whether it had one.

    :raises ConnectionFailed: libvirt refused.
    """
    libvirt = libvirt_module()
    both = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
    # virDomainGetMetadata takes one of LIVE and CONFIG, not both.
    looks = [libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG]
    had = any(get_element(dom, f) is not None for f in (looks if flags == both else [flags]))
    _set_metadata(dom, None, None, flags, "removing")
    return had
