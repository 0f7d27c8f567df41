"""DomainXml: a pure parser, tested on documents alone."""

from __future__ import annotations

import pytest

from libvirt_nitro.domain import DomainXml
from libvirt_nitro.errors import MalformedDomainXml

DOMAIN = """<domain type='kvm' id='7'>
  <name>web01</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <metadata>
    <nitro:trace xmlns:nitro="http://libvirt-nitro.org/xmlns/trace/1"/>
    <app:other xmlns:app="http://example.org/app"><x/></app:other>
  </metadata>
  <vcpu placement='static' current='2'>4</vcpu>
  <os><type>hvm</type><kernel>/boot/vmlinuz-6.1</kernel></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>"""


def test_parse_reads_the_fields_we_use() -> None:
    xml = DomainXml.parse(DOMAIN)
    assert (xml.name, xml.uuid, xml.virt_type) == (
        "web01",
        "4dea22b3-1d52-d8f3-2516-782e98ab3fa0",
        "kvm",
    )
    assert xml.vcpus == 2  # current, not the maximum
    assert xml.emulator == "/usr/bin/qemu-system-x86_64"
    assert xml.kernel == "/boot/vmlinuz-6.1"
    assert sorted(xml.metadata) == [
        "http://example.org/app",
        "http://libvirt-nitro.org/xmlns/trace/1",
    ]
    assert xml.metadata["http://example.org/app"].find("x") is not None


def test_defaults_when_optional_parts_are_absent() -> None:
    xml = DomainXml.parse("<domain type='qemu'><name>a</name></domain>")
    assert (xml.vcpus, xml.emulator, xml.kernel, xml.metadata, xml.uuid) == (1, None, None, {}, "")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("<domain><name>a</name>", "not well-formed"),
        ("<network><name>a</name></network>", "line 1: expected a <domain> element"),
        ("<domain type='kvm'>\n<uuid>x</uuid></domain>", "line 1: <domain> has no <name>"),
        ("<domain>\n<name>a</name>\n<vcpu>two</vcpu></domain>", "line 3: <vcpu> is not a number"),
    ],
)
def test_malformed_documents_name_the_problem(document: str, message: str) -> None:
    with pytest.raises(MalformedDomainXml, match=message):
        DomainXml.parse(document)


def test_entities_are_not_expanded() -> None:
    document = (
        '<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><domain><name>&e;</name></domain>'
    )
    with pytest.raises(MalformedDomainXml):
        DomainXml.parse(document)
