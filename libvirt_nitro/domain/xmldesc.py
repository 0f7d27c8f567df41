"""The parts of a libvirt domain XML document that libvirt-nitro reads, parsed with lxml."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from ..errors import MalformedDomainXml

__all__ = ["DomainXml"]


@dataclass(frozen=True)
class DomainXml:
    """What a ``<domain>`` document says about the guest.

    ``virt_type`` is the ``<domain type=…>`` attribute (``kvm``, ``qemu``, ``xen``…), ``vcpus``
    the number of vCPUs present at boot, ``emulator`` the QEMU binary (None if libvirt chose
    it), ``kernel`` the directly booted kernel image (``<os><kernel>``, None when the guest
    boots from a disk), ``metadata`` the elements under ``<metadata>`` keyed by their
    namespace URI.
    """

    name: str
    uuid: str
    virt_type: str
    vcpus: int
    emulator: str | None
    kernel: str | None = None
    metadata: dict[str, etree._Element] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, text: str | bytes) -> DomainXml:
        """Parse a domain XML document.

        :raises MalformedDomainXml: not well-formed XML, not a ``<domain>``, or a required
            element missing or invalid; the message names the line.
        """
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        try:
            root = etree.fromstring(text.encode() if isinstance(text, str) else text, parser)
        except etree.XMLSyntaxError as exc:
            raise MalformedDomainXml(f"domain XML is not well-formed: {exc}") from None
        if root.tag != "domain":
            raise MalformedDomainXml(
                f"line {root.sourceline}: expected a <domain> element, found <{root.tag}>"
            )
        return cls(
            name=_required_text(root, "name"),
            uuid=root.findtext("uuid", default="").strip(),
            virt_type=root.get("type", ""),
            vcpus=_vcpu_count(root),
            emulator=(root.findtext("devices/emulator") or "").strip() or None,
            kernel=(root.findtext("os/kernel") or "").strip() or None,
            metadata={
                etree.QName(child).namespace or "": child
                for child in root.iterfind("metadata/*")
                if isinstance(child.tag, str)
            },
        )


def _required_text(root: etree._Element, path: str) -> str:
    text = (root.findtext(path) or "").strip()
    if not text:
        raise MalformedDomainXml(f"line {root.sourceline}: <domain> has no <{path}>")
    return text


def _vcpu_count(root: etree._Element) -> int:
    vcpu = root.find("vcpu")
    if vcpu is None:
        return 1
    try:
        maximum = int((vcpu.text or "1").strip())
        return int(vcpu.get("current", maximum))
    except ValueError:
        raise MalformedDomainXml(
            f"line {vcpu.sourceline}: <vcpu> is not a number: {vcpu.text!r}"
        ) from None
