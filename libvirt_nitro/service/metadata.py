"""The ``<nitro:trace>`` element of a domain's ``<metadata>``: schema, parsing, validation.

The element switches tracing on for the domain it sits in (see ``xml/README.md``). It is
validated against the RelaxNG schema ``nitro.rng`` shipped in this package (package data; in
the source tree a symlink to ``xml/nitro.rng``, the one copy), then checked for what a schema
cannot say (syscall names known to the guest ABI's table, a power-of-two ring). Every error
names the line and the rule that failed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources

from lxml import etree

from ..errors import InvalidTraceConfig, MalformedDomainXml, NitroError
from ..linux import syscall_number
from ..pipeline import Filter
from ..strace import CLASSES

__all__ = [
    "NAMESPACE",
    "PREFIX",
    "DEFAULT_LOG_DIR",
    "TraceConfig",
    "schema",
    "parse_element",
    "parse_text",
    "find_in_domain_xml",
    "to_libvirt",
    "from_libvirt",
]

#: The namespace URI of the element (and the key libvirt's metadata API files it under).
NAMESPACE = "http://libvirt-nitro.org/xmlns/trace/1.0"
#: The prefix libvirt-nitro stores the element with (``virDomainSetMetadata``'s *key*).
PREFIX = "nitro"
#: Where the output goes when ``<nitro:output path>`` is absent (``DOMAIN.jsonl`` in it).
DEFAULT_LOG_DIR = "/var/log/libvirt-nitro"


@dataclass(frozen=True)
class TraceConfig:
    """What a ``<nitro:trace>`` element asks for, defaults filled in.

    ``syscalls`` is the set of syscall names to record (classes, strace's, expanded; empty:
    all); ``pids``, ``comms`` and ``cr3s`` the processes to record, by process id, command
    name or address space (guest-physical page-table base, CR3): a process must match one
    value of each kind given, as with ``-p`` and ``--comm`` (all empty: every process);
    :meth:`filter` is all of that as the pipeline's filter;
    ``output_path`` None for :data:`DEFAULT_LOG_DIR`/``DOMAIN.jsonl``, ``max_bytes`` the
    size of one output file (bytes) and ``max_files`` how many rotated files are kept,
    ``decode`` whether events are annotated at the trap (guest task, decoded arguments:
    ``decode="strace"``) or carry registers only (``"raw"``), ``ring_slots`` the event
    ring's slots, ``max_events`` a count after which tracing stops
    (None: no limit); ``nats_url`` (``<nitro:nats url>``, None: none) where events are also
    published, with ``nats_credentials`` (a file), ``nats_spool`` (a directory, None: the
    default) and ``nats_spool_max_bytes``.
    """

    backend: str = "gdbstub"
    mode: str = "async"
    syscalls: frozenset[str] = field(default_factory=frozenset)
    pids: frozenset[int] = field(default_factory=frozenset)
    comms: frozenset[str] = field(default_factory=frozenset)
    cr3s: frozenset[int] = field(default_factory=frozenset)
    output_path: str | None = None
    output_format: str = "json"
    decode: bool = True
    max_bytes: int = 64 * 1024 * 1024
    max_files: int = 8
    ring_slots: int = 4096
    max_events: int | None = None
    nats_url: str | None = None
    nats_credentials: str | None = None
    nats_spool: str | None = None
    nats_spool_max_bytes: int = 256 * 1024 * 1024

    def filter(self) -> Filter:
        """The calls to record, as the pipeline's :class:`~libvirt_nitro.pipeline.Filter`."""
        numbers = {syscall_number(name) for name in self.syscalls}
        return Filter(
            syscalls=frozenset(nr for nr in numbers if nr is not None) if self.syscalls else None,
            pids=self.pids or None,
            comms=self.comms or None,
            cr3s=self.cr3s or None,
        )

    def output_for(self, domain_name: str) -> str:
        """The output file for the domain *domain_name*."""
        return self.output_path or f"{DEFAULT_LOG_DIR}/{domain_name}.jsonl"


@functools.cache
def schema(define: str | None = None) -> etree.RelaxNG:
    """The compiled RelaxNG schema (``nitro.rng``, package data of this package); with
    *define*, the same grammar started at that ``<define>`` (to validate one child alone)."""
    text = resources.files(__package__).joinpath("nitro.rng").read_bytes()
    grammar = etree.fromstring(text)
    if define is not None:
        start = grammar.find(f"{{{_RNG}}}start")
        start[0].set("name", define)
    return etree.RelaxNG(grammar)


_RNG = "http://relaxng.org/ns/structure/1.0"
#: The children of <trace> that have a <define> of their own in nitro.rng.
_CHILD_DEFINES = ("syscalls", "processes", "output", "limits", "nats")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True)


def parse_text(text: str | bytes) -> TraceConfig:
    """Parse a standalone ``<nitro:trace>`` document (a file the user wrote, or the text
    ``virDomainGetMetadata`` returns).

    :raises InvalidTraceConfig: not well-formed, not the element, or invalid; the message
        names the line and the rule.
    """
    data = text.encode() if isinstance(text, str) else text
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise InvalidTraceConfig(f"<nitro:trace> is not well-formed XML: {exc}") from None
    return parse_element(root)


def parse_element(element: etree._Element) -> TraceConfig:
    """Validate *element* (a ``<nitro:trace>``, possibly inside a larger document, whose
    line numbers the errors then use) and return its :class:`TraceConfig`.

    :raises InvalidTraceConfig: the element breaks a rule of the schema or of the parser;
        the message is ``line N: <element>: what (rule)``.
    """
    if etree.QName(element).namespace != NAMESPACE or etree.QName(element).localname != "trace":
        raise InvalidTraceConfig(
            f"line {element.sourceline}: expected <trace> in namespace {NAMESPACE}, found "
            f"<{element.tag}> (rule: start)"
        )
    validator = schema()
    if not validator.validate(element):
        raise InvalidTraceConfig(_schema_error(element, validator.error_log))
    return _config(element)


def find_in_domain_xml(text: str | bytes) -> etree._Element | None:
    """The ``<nitro:trace>`` element of a domain XML document, or None if it has none.

    :raises MalformedDomainXml: the document is not well-formed XML.
    """
    data = text.encode() if isinstance(text, str) else text
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedDomainXml(f"domain XML is not well-formed: {exc}") from None
    return root.find(f"metadata/{{{NAMESPACE}}}trace")


def to_libvirt(element: etree._Element) -> str:
    """*element* as ``virDomainSetMetadata`` wants it: every name unqualified (libvirt puts
    its whole subtree in the namespace it is given)."""
    copy = etree.fromstring(etree.tostring(element))
    for node in copy.iter():
        if isinstance(node.tag, str):
            node.tag = etree.QName(node).localname
    etree.cleanup_namespaces(copy)
    return etree.tostring(copy, encoding="unicode")


def from_libvirt(text: str) -> str:
    """What ``virDomainGetMetadata`` returns (every name unqualified) back in the namespace,
    as a ``<nitro:trace>`` document."""
    root = etree.fromstring(text.encode(), _parser())
    qualified = etree.Element(_q(root.tag), dict(root.attrib), nsmap={PREFIX: NAMESPACE})
    qualified.text = root.text
    for child in root:
        qualified.append(child)
    for node in qualified.iter():
        if isinstance(node.tag, str) and etree.QName(node).namespace is None:
            node.tag = _q(node.tag)
    return etree.tostring(qualified, encoding="unicode")


def _schema_error(element: etree._Element, log: etree._ListErrorLog) -> str:
    """The most specific schema error, as ``line N: message (rule: TYPE; nitro.rng)``.

    libxml2 reports a bad child of an ``<interleave>`` only as "extra element in
    interleave" without a line, so each child is first validated alone against its own
    ``<define>``, which names the attribute or value at fault.
    """
    for child in element:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        if qname.namespace == NAMESPACE and qname.localname in _CHILD_DEFINES:
            sub = schema(qname.localname)
            if not sub.validate(child):
                return _format_error(list(sub.error_log))
    return _format_error(list(log))


def _format_error(errors: list) -> str:
    # libxml2 lists the innermost failure first, then one "failed to validate" per ancestor.
    first = next((error for error in errors if error.line > 0), errors[0])
    rule = first.type_name.removeprefix("RELAXNG_ERR_").lower() if first.type_name else "schema"
    return f"line {first.line}: {first.message.strip()} (rule: {rule}; nitro.rng)"


def _q(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _config(element: etree._Element) -> TraceConfig:
    syscalls: set[str] = set()
    processes: dict[str, set] = {"pid": set(), "comm": set(), "cr3": set()}
    values: dict = {}
    if "backend" in element.attrib:
        values["backend"] = element.get("backend")
    if "mode" in element.attrib:
        values["mode"] = element.get("mode")
    for child in element.iterfind(f"{_q('syscalls')}/*"):
        name = child.get("name", "")
        if etree.QName(child).localname == "class":
            syscalls |= CLASSES[f"%{name}"]
        elif syscall_number(name) is None:
            raise InvalidTraceConfig(
                f"line {child.sourceline}: <syscall name={name!r}> is not an x86-64 Linux "
                "system call (rule: syscall name in the guest ABI's table)"
            )
        else:
            syscalls.add(name)
    for child in element.iterfind(f"{_q('processes')}/{_q('process')}"):
        if child.get("pid") is not None:
            processes["pid"].add(int(child.get("pid")))
        elif child.get("comm") is not None:
            processes["comm"].add(child.get("comm"))
        else:
            processes["cr3"].add(int(child.get("cr3"), 16))
    output = element.find(_q("output"))
    if output is not None:
        if output.get("path") is not None:
            values["output_path"] = output.get("path")
        if output.get("format") is not None:
            values["output_format"] = output.get("format")
        if output.get("decode") is not None:
            values["decode"] = output.get("decode") == "strace"
        if output.get("max-bytes") is not None:
            values["max_bytes"] = int(output.get("max-bytes"))
        if output.get("max-files") is not None:
            values["max_files"] = int(output.get("max-files"))
    limits = element.find(_q("limits"))
    if limits is not None:
        if limits.get("ring-slots") is not None:
            slots = int(limits.get("ring-slots"))
            if slots & (slots - 1):
                raise InvalidTraceConfig(
                    f"line {limits.sourceline}: ring-slots={slots} is not a power of two "
                    "(rule: ring-slots a power of two)"
                )
            values["ring_slots"] = slots
        if limits.get("max-events") is not None:
            values["max_events"] = int(limits.get("max-events"))
    nats = element.find(_q("nats"))
    if nats is not None:
        from ..fleet.target import parse_url

        try:
            parse_url(nats.get("url"))
        except NitroError as exc:
            raise InvalidTraceConfig(
                f"line {nats.sourceline}: <nats url>: {exc} (rule: nats URL)"
            ) from None
        values["nats_url"] = nats.get("url")
        values["nats_credentials"] = nats.get("credentials")
        values["nats_spool"] = nats.get("spool")
        if nats.get("spool-max-bytes") is not None:
            values["nats_spool_max_bytes"] = int(nats.get("spool-max-bytes"))
    return TraceConfig(
        syscalls=frozenset(syscalls),
        pids=frozenset(processes["pid"]),
        comms=frozenset(processes["comm"]),
        cr3s=frozenset(processes["cr3"]),
        **values,
    )
