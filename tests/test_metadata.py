"""The <nitro:trace> element alone: schema, parser, errors, libvirt's namespace round trip,
rotation and the log format (no libvirtd)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from lxml import etree

from libvirt_nitro.errors import InvalidTraceConfig, MalformedDomainXml
from libvirt_nitro.linux import syscall_number
from libvirt_nitro.pipeline import Filter
from libvirt_nitro.service.journal import JournalFormatter
from libvirt_nitro.service.metadata import (
    NAMESPACE,
    TraceConfig,
    find_in_domain_xml,
    from_libvirt,
    parse_element,
    parse_text,
    to_libvirt,
)
from libvirt_nitro.service.rotation import RotatingWriter
from libvirt_nitro.strace import CLASSES, parse_trace_expr

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "xml" / "examples").glob("*.xml"))
NS = f'xmlns:nitro="{NAMESPACE}"'


def element(body: str = "", attrs: str = "") -> str:
    return f"<nitro:trace {NS} {attrs}>\n{body}\n</nitro:trace>"


def test_examples_exist_and_validate() -> None:
    assert len(EXAMPLES) >= 3
    for path in EXAMPLES:
        text = path.read_bytes()
        found = find_in_domain_xml(text)
        config = parse_element(found) if found is not None else parse_text(text)
        assert isinstance(config, TraceConfig), path


def test_packaged_schema_is_the_xml_one() -> None:
    packaged = ROOT / "libvirt_nitro" / "service" / "nitro.rng"
    assert packaged.read_bytes() == (ROOT / "xml" / "nitro.rng").read_bytes()


def test_defaults() -> None:
    config = parse_text(f"<nitro:trace {NS}/>")
    assert config == TraceConfig()
    assert config.output_for("web01") == "/var/log/libvirt-nitro/web01.jsonl"


def test_everything_parsed() -> None:
    config = parse_text(
        element(
            '<nitro:syscalls><nitro:class name="memory"/><nitro:syscall name="getpid"/>'
            "</nitro:syscalls><nitro:processes>"
            '<nitro:process cr3="0x1A2000"/><nitro:process pid="412"/>'
            '<nitro:process comm="nginx"/><nitro:process comm="sshd"/>'
            "</nitro:processes>"
            '<nitro:output path="/tmp/x.jsonl" format="text" decode="raw" max-bytes="8192"'
            ' max-files="3"/>'
            '<nitro:limits ring-slots="256" max-events="10"/>',
            'backend="gdbstub" mode="async"',
        )
    )
    assert config.syscalls == CLASSES["%memory"] | {"getpid"}
    assert config.cr3s == {0x1A2000}
    assert (config.pids, config.comms) == ({412}, {"nginx", "sshd"})
    assert config.filter() == Filter(
        syscalls=frozenset(parse_trace_expr("%memory,getpid")),
        pids=frozenset({412}),
        comms=frozenset({"nginx", "sshd"}),
        cr3s=frozenset({0x1A2000}),
    )
    assert (config.output_path, config.output_format) == ("/tmp/x.jsonl", "text")
    assert config.decode is False
    assert (config.max_bytes, config.max_files) == (8192, 3)
    assert (config.ring_slots, config.max_events) == (256, 10)


@pytest.mark.parametrize(
    ("text", "line", "rule"),
    [
        (element(attrs='mode="fast"'), 1, "invalidattr"),
        (element(attrs='backend="xen"'), 1, "invalidattr"),
        (element('<nitro:output path="relative.jsonl"/>'), 2, "invalidattr"),
        (element('<nitro:output max-bytes="100"/>'), 2, "invalidattr"),
        (element('<nitro:output format="yaml"/>'), 2, "invalidattr"),
        (element("<nitro:bogus/>"), 2, "extracontent"),
        (element("<nitro:syscalls/>"), 2, "noelem"),
        (element('<nitro:syscalls>\n<nitro:class name="disk"/>\n</nitro:syscalls>'), 3, ""),
        (element('<nitro:processes><nitro:process cr3="12"/></nitro:processes>'), 2, ""),
        (element('<nitro:syscalls>\n<nitro:syscall name="nosuch"/></nitro:syscalls>'), 3, ""),
        (element('<nitro:limits ring-slots="1000"/>'), 2, "power of two"),
    ],
)
def test_errors_name_line_and_rule(text: str, line: int, rule: str) -> None:
    with pytest.raises(InvalidTraceConfig) as caught:
        parse_text(text)
    message = str(caught.value)
    assert message.startswith(f"line {line}: "), message
    assert "(rule: " in message and rule in message, message
    assert "\n" not in message


def test_lines_are_those_of_the_domain_xml() -> None:
    xml = (
        "<domain>\n<name>x</name>\n<metadata>\n"
        + element('<nitro:output format="yaml"/>')
        + "\n</metadata>\n</domain>"
    )
    with pytest.raises(InvalidTraceConfig, match=r"^line 5: .*format"):
        parse_element(find_in_domain_xml(xml))


def test_wrong_namespace_and_malformed() -> None:
    with pytest.raises(InvalidTraceConfig, match="rule: start"):
        parse_text('<trace mode="async"/>')
    with pytest.raises(InvalidTraceConfig, match="not well-formed"):
        parse_text(f"<nitro:trace {NS}>")
    with pytest.raises(MalformedDomainXml):
        find_in_domain_xml("<domain><metadata>")
    assert find_in_domain_xml("<domain><name>x</name></domain>") is None


def test_libvirt_round_trip() -> None:
    """virDomainSetMetadata wants every name unqualified and getMetadata returns it so."""
    text = (ROOT / "xml" / "examples" / "files-and-network.xml").read_text()
    plain = to_libvirt(etree.fromstring(text.encode()))
    assert "nitro:" not in plain and NAMESPACE not in plain
    assert parse_text(from_libvirt(plain)) == parse_text(text)


def test_classes_are_syscalls_of_the_table() -> None:
    for name, members in CLASSES.items():
        unknown = [member for member in members if syscall_number(member) is None]
        assert not unknown, (name, unknown)


def class_names() -> list[str]:
    rng = etree.parse(str(ROOT / "xml" / "nitro.rng"))
    path = "//r:element[@name='class']/r:attribute/r:choice/r:value"
    return rng.xpath(path, namespaces={"r": "http://relaxng.org/ns/structure/1.0"})


@pytest.mark.parametrize("name", [value.text for value in class_names()])
def test_a_class_element_selects_what_the_trace_expression_does(name: str) -> None:
    """``<nitro:class name="file"/>`` and ``-e trace=%file`` select the same calls."""
    config = parse_text(element(f'<nitro:syscalls><nitro:class name="{name}"/></nitro:syscalls>'))
    assert config.filter().syscalls == frozenset(parse_trace_expr(f"trace=%{name}"))
    assert config.filter().syscalls  # a class that selects nothing would hide a typo


@pytest.mark.parametrize(
    "process",
    ['pid="0"', 'comm=""', 'comm="sixteen-bytes-xx"', 'cr3="28dc000"', "", 'pid="1" comm="x"'],
)
def test_bad_process_selectors_are_refused(process: str) -> None:
    text = element(f"<nitro:processes><nitro:process {process}/></nitro:processes>")
    with pytest.raises(InvalidTraceConfig, match="nitro.rng"):
        parse_text(text)


def test_rotation_keeps_n_files_of_m_bytes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    writer = RotatingWriter(path, max_bytes=100, max_files=3)
    lines = [f'{{"n": {i:04d}, "pad": "{"x" * 20}"}}\n' for i in range(40)]
    for line in lines:
        writer.write(line)
    writer.close()
    files = [path, Path(f"{path}.1"), Path(f"{path}.2")]
    assert all(f.exists() for f in files) and not Path(f"{path}.3").exists()
    assert all(f.stat().st_size <= 100 for f in files)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    kept = "".join(f.read_text() for f in reversed(files))
    assert kept == "".join(lines[-len(kept.splitlines()) :])  # newest lines, in order
    assert len(kept.splitlines()) == 3 * (100 // len(lines[0]))  # whole lines, 3 files


def test_rotation_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("x" * 90 + "\n")
    writer = RotatingWriter(path, max_bytes=100, max_files=2)
    writer.write("y" * 20 + "\n")
    writer.close()
    assert Path(f"{path}.1").read_text() == "x" * 90 + "\n"
    assert path.read_text() == "y" * 20 + "\n"


def test_log_lines_carry_syslog_priorities() -> None:
    formatter = JournalFormatter("libvirt-nitro serve web01")

    def line(level: int) -> str:
        return formatter.format(logging.LogRecord("x", level, "", 0, "a %s", ("b",), None))

    assert line(logging.INFO) == "<6>libvirt-nitro serve web01: a b"
    assert line(logging.WARNING).startswith("<4>")
    assert line(logging.ERROR).startswith("<3>")
