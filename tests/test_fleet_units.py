"""The fleet's pure parts, no broker: subjects, the nats:// URL, credentials, the spool's
format, order and bound, strace lines from records, the <nitro:nats> element."""

from __future__ import annotations

import os
import stat

import pytest

from libvirt_nitro.errors import InvalidTraceConfig, NitroError
from libvirt_nitro.fleet.spool import HEADER, Spool, decode_segment, encode_entry
from libvirt_nitro.fleet.subjects import event_subject, filter_subject, stream_name, token
from libvirt_nitro.fleet.target import load_credentials, parse_url
from libvirt_nitro.fleet.text import record_line
from libvirt_nitro.service.metadata import NAMESPACE, parse_text

UUID = "6a0b4a49-3d1e-4c55-9e4f-0d8d3f1c2b7a"


def test_subject_tokens() -> None:
    assert event_subject("nitro", "hv1.example.org", UUID, "openat") == (
        f"nitro.hv1_example_org.{UUID}.openat"
    )
    assert event_subject("a.b", "h", UUID, None) == f"a.b.h.{UUID}.unknown"
    assert token("x*y>z w") == "x_y_z_w"
    assert filter_subject("nitro") == "nitro.>"
    assert filter_subject("nitro", uuid=UUID) == f"nitro.*.{UUID}.*"
    assert filter_subject("nitro", host="hv1", syscall="execve") == "nitro.hv1.*.execve"
    assert stream_name("nitro.prod-1") == "NITRO_PROD_1"


def test_url_parsing() -> None:
    target = parse_url("nats://127.0.0.1:4222,127.0.0.1:4223/fleet.a?replicas=3")
    assert target.servers == ("nats://127.0.0.1:4222", "nats://127.0.0.1:4223")
    assert (target.prefix, target.replicas) == ("fleet.a", 3)
    assert parse_url("nats://broker").servers == ("nats://broker:4222",)
    assert parse_url("nats://broker").prefix == "nitro"
    assert parse_url("nats://[::1]:5000/x").servers == ("nats://[::1]:5000",)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:1/x", "not a nats://"),
        ("nats://u:secret@h:1/x", "credentials do not go in the URL"),
        ("nats://h:70000/x", "bad port"),
        ("nats://h:1/a*b", "subject prefix"),
        ("nats://h:1/x?replicas=9", "replicas must be 1 to 5"),
        ("nats://h:1/x?colour=red", "unknown option"),
        ("nats:///x", "no HOST:PORT"),
    ],
)
def test_url_refused(url: str, says: str) -> None:
    with pytest.raises(NitroError, match=says) as info:
        parse_url(url)
    assert "secret" not in str(info.value)


def test_credentials(tmp_path, monkeypatch) -> None:
    path = tmp_path / "auth"
    path.write_text("# broker\nalice:s3:cret\n")
    creds = load_credentials(str(path))
    assert creds.connect_options() == {"user": "alice", "password": "s3:cret"}
    assert "s3" not in repr(creds)
    path.write_text("SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY\n")
    assert "nkeys_seed_str" in load_credentials(str(path)).connect_options()
    path.write_text("nonsense\n")
    with pytest.raises(NitroError, match="USER:PASSWORD"):
        load_credentials(str(path))
    with pytest.raises(NitroError, match="No such file"):
        load_credentials(str(tmp_path / "missing"))
    monkeypatch.setenv("LIBVIRT_NITRO_NATS_USER", "bob")
    monkeypatch.setenv("LIBVIRT_NITRO_NATS_PASSWORD", "pw")
    assert load_credentials().connect_options() == {"user": "bob", "password": "pw"}


def test_spool_format_roundtrip() -> None:
    entry = ("nitro.h.u.openat", "u-1-7", b'{"name":"openat","s":"a\\tb"}')
    line = encode_entry(entry)
    assert line == b'nitro.h.u.openat\tu-1-7\t{"name":"openat","s":"a\\tb"}\n'
    assert decode_segment(HEADER + line + line[:10]) == [entry]  # a torn last line is dropped
    with pytest.raises(ValueError):
        encode_entry(("a\nb", "i", b"{}"))
    with pytest.raises(ValueError):
        decode_segment(b"garbage")


def test_spool_order_modes_and_replay(tmp_path) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=4096)
    entries = [(f"p.h.u.c{i}", f"id-{i}", b'{"seq":%d}' % i) for i in range(300)]
    assert spool.append(entries[:200]) == 200
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    files = sorted(directory.glob("*.seg"))
    assert len(files) > 1
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    got = spool.peek(50)
    assert got == entries[:50]
    spool.commit(len(got))
    spool.append(entries[200:])
    spool.close()
    # a new process (the next sink of the domain) resumes after the committed entries
    again = Spool(directory, max_bytes=1 << 20, segment_bytes=4096)
    assert len(again) == 250
    assert _drain(again) == entries[50:]
    assert len(again) == 0 and not list(directory.glob("*.seg"))


def test_spool_bound_counts_drops(tmp_path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=8192, segment_bytes=4096)
    entries = [("p.h.u.read", f"id-{i}", b"x" * 100) for i in range(200)]
    kept = spool.append(entries)
    assert 0 < kept < 200
    assert spool.dropped == 200 - kept
    assert spool.bytes <= 8192
    assert _drain(spool) == entries[:kept]


def _drain(spool: Spool) -> list:
    out = []
    while batch := spool.peek(64):
        out += batch
        spool.commit(len(batch))
    return out


def test_record_lines() -> None:
    exit_record = {
        "domain": "web01",
        "direction": "exit",
        "name": "openat",
        "pid": 95,
        "tid": 95,
        "comm": "workload",
        "args_decoded": 'AT_FDCWD, "/x", O_RDONLY',
        "ret_decoded": "3",
    }
    assert (
        record_line(exit_record) == 'web01 [pid 95 workload] openat(AT_FDCWD, "/x", O_RDONLY) = 3'
    )
    assert record_line(dict(exit_record, direction="enter")) is None
    exiting = dict(exit_record, direction="enter", name="exit_group", args_decoded="0", tid=96)
    assert record_line(exiting) == "web01 [pid 95 tid 96 workload] exit_group(0) = ?"
    raw = {"domain": "d", "direction": "exit", "name": "read", "vcpu": 1, "ret": 5}
    assert record_line(raw) == "d [vcpu 1] exit  read = 5"


def _nats_element(attrs: str) -> str:
    return f'<nitro:trace xmlns:nitro="{NAMESPACE}"><nitro:nats {attrs}/></nitro:trace>'


def test_nats_element() -> None:
    config = parse_text(
        _nats_element(
            'url="nats://127.0.0.1:4222/fleet" credentials="/etc/n.auth" '
            'spool="/var/spool/x" spool-max-bytes="1048576"'
        )
    )
    assert config.nats_url == "nats://127.0.0.1:4222/fleet"
    assert (config.nats_credentials, config.nats_spool) == ("/etc/n.auth", "/var/spool/x")
    assert config.nats_spool_max_bytes == 1048576
    assert parse_text(f'<nitro:trace xmlns:nitro="{NAMESPACE}"/>').nats_url is None
    for bad in ('url="nats://u:p@h:1/x"', 'url="nats://h:99999/x"', 'url="h"', ""):
        with pytest.raises(InvalidTraceConfig, match="line 1"):
            parse_text(_nats_element(bad))
