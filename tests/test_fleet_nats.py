"""The NATS JetStream sink and consumer against a real ``nats-server`` started here
(JetStream on, its store in the test's tmp dir, a password always: never an open broker):
subjects and records, the broker killed and restarted mid-stream, the spool's bound, a
durable consumer resumed, a 3-node R3 cluster losing a node, bad input, and a real trace of
the test guest published on the right subjects."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from libvirt_nitro.errors import NitroError
from libvirt_nitro.fleet.localserver import PASSWORD, USER, LocalNats, cluster
from libvirt_nitro.fleet.sink import NatsSink, host_name
from libvirt_nitro.fleet.subjects import filter_subject, stream_name
from libvirt_nitro.fleet.target import Credentials, parse_url
from tests.support import TraceProcess, require, wait_for
from tests.tracing import syscalls_enabled

ROOT = Path(__file__).resolve().parents[1]
UUID = "6a0b4a49-3d1e-4c55-9e4f-0d8d3f1c2b7a"
CREDS = Credentials(USER, PASSWORD)


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    """A single nats-server with JetStream and a password, on a free loopback port."""
    require(shutil.which("nats-server") is not None, "nats-server (apt-get install nats-server)")
    server = LocalNats(tmp_path / "nats").start()
    yield server
    server.kill()


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    """The broker's credentials as --nats-auth reads them (mode 0600)."""
    path = tmp_path / "nats.auth"
    path.write_text(f"{USER}:{PASSWORD}\n")
    path.chmod(0o600)
    return path


def make_sink(url: str, tmp_path: Path, **options: Any) -> NatsSink:
    return NatsSink(
        parse_url(url),
        CREDS,
        domain_name="web01",
        domain_uuid=UUID,
        spool_dir=tmp_path / "spool" / UUID,
        host="hv1",
        **options,
    )


def record(i: int) -> dict[str, Any]:
    """A synthetic --json record (entry and exit alternating between two calls)."""
    name = "openat" if i % 3 else "read"
    return {"vcpu": 0, "direction": "exit", "nr": 257, "name": name, "ret": i, "time": 0.0}


def fetch_all(
    url: str, expect: int, subject: str | None = None, timeout: float = 60.0
) -> list[tuple[str, dict[str, Any]]]:
    """(subject, record) of the stream's messages, in stream order, once *expect* are
    there (or fail at *timeout*)."""
    target = parse_url(url)

    async def main() -> list[tuple[str, dict[str, Any]]]:
        import nats
        import nats.js.api as api

        nc = await nats.connect(servers=list(target.servers), user=USER, password=PASSWORD)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + timeout
            while True:  # a cluster that lost a node may be electing its leaders
                try:
                    sub = await js.pull_subscribe(
                        subject or filter_subject(target.prefix),
                        stream=stream_name(target.prefix),
                        config=api.ConsumerConfig(inactive_threshold=30.0),
                    )
                    break
                except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                    if time.monotonic() >= deadline:
                        raise
            out: list[tuple[str, dict[str, Any]]] = []
            while len(out) < expect and time.monotonic() < deadline:
                try:
                    msgs = await sub.fetch(512, timeout=0.5)
                except nats.errors.TimeoutError:
                    continue
                for msg in msgs:
                    out.append((msg.subject, json.loads(msg.data)))
                    await msg.ack()
            # nothing more than expected arrives (a duplicate would)
            try:
                for msg in await sub.fetch(1, timeout=0.5):
                    out.append((msg.subject, json.loads(msg.data)))
            except nats.errors.TimeoutError:
                pass
            return out
        finally:
            await nc.close()

    got = asyncio.run(main())
    assert len(got) >= expect, f"{len(got)} of {expect} events in the stream"
    return got


def feed(sink: NatsSink, first: int, last: int, pause_every: int = 0) -> None:
    for i in range(first, last + 1):
        sink.submit(record(i))
        if pause_every and i % pause_every == 0:
            time.sleep(0.001)  # a guest making calls, not a burst


def assert_in_order(records: list[dict[str, Any]], count: int) -> None:
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, count + 1)), f"order/loss: {seqs[:5]}…{len(seqs)} events"
    assert [r["ret"] for r in records] == seqs


# ---------------------------------------------------------------- sink
def test_records_on_their_subjects(broker: LocalNats, tmp_path: Path) -> None:
    sink = make_sink(f"{broker.url}/fleet.test", tmp_path)
    sink.start()
    feed(sink, 1, 300)
    wait_for(lambda: sink.published == 300, "300 events acknowledged")
    sink.close()
    got = fetch_all(f"{broker.url}/fleet.test", 300)
    assert len(got) == 300
    for subject, rec in got:
        assert subject == f"fleet.test.hv1.{UUID}.{rec['name']}"
        assert (rec["host"], rec["domain"], rec["uuid"]) == ("hv1", "web01", UUID)
    assert_in_order([rec for _, rec in got], 300)
    only_reads = fetch_all(f"{broker.url}/fleet.test", 100, subject=f"fleet.test.*.{UUID}.read")
    assert len(only_reads) == 100 and {rec["name"] for _, rec in only_reads} == {"read"}
    assert sink.summary() == {
        "published": 300,
        "spooled": 0,
        "dropped": 0,
        "state": "closed",
        "error": None,
    }


def test_broker_killed_and_restarted_mid_stream(broker: LocalNats, tmp_path: Path) -> None:
    """SIGKILL the broker while events flow, go on, start it again: every event arrives
    once, in order (spooled meanwhile, replayed first)."""
    sink = make_sink(f"{broker.url}/nitro", tmp_path, ack_timeout=1.0)
    sink.start()
    total = 6000
    producer = threading.Thread(target=feed, args=(sink, 1, total, 50))
    producer.start()
    try:
        wait_for(lambda: sink.published >= 1000, "1000 events acknowledged")
        broker.kill()
        wait_for(lambda: sink.spooled > 0, "events to be spooled while the broker is down")
        assert sink.state == "reconnecting"
        producer.join(60)
        wait_for(lambda: sink.spooled > 0 and not sink._queue, "the rest spooled")
        broker.start()
        wait_for(
            lambda: sink.spooled == 0 and sink.state == "connected" and not sink._queue,
            "the spool replayed",
            detail=lambda: str(sink.summary()),
        )
    finally:
        producer.join(60)
        sink.close()
    got = fetch_all(f"{broker.url}/nitro", total)
    assert len(got) == total
    assert_in_order([rec for _, rec in got], total)
    assert sink.dropped == 0
    assert not list((tmp_path / "spool" / UUID).glob("*.seg"))


def test_spool_overflow_counts_drops(broker: LocalNats, tmp_path: Path) -> None:
    """With the broker down and a 64 KiB spool, events past the bound are dropped and
    counted; what was spooled arrives once the broker returns, and the sequence numbers'
    gap equals the drops."""
    sink = make_sink(f"{broker.url}/nitro", tmp_path, ack_timeout=1.0)
    sink.spool.max_bytes = 64 * 1024
    sink.start()
    broker.kill()
    feed(sink, 1, 3000)
    wait_for(lambda: not sink._queue and sink.dropped > 0, "the spool to overflow")
    spooled, dropped = sink.spooled, sink.dropped
    assert spooled + dropped + sink.published == 3000
    assert sink.spool.bytes <= 64 * 1024
    broker.start()
    wait_for(lambda: sink.spooled == 0 and sink.state == "connected", "the spool replayed")
    sink.close()
    got = [rec for _, rec in fetch_all(f"{broker.url}/nitro", spooled)]
    assert [r["seq"] for r in got] == list(range(1, spooled + 1))
    assert sink.summary()["dropped"] == dropped == 3000 - spooled


def test_sink_survives_its_own_restart_with_a_full_spool(broker: LocalNats, tmp_path: Path):
    """Events spooled when a sink stops with the broker down are published by the next
    sink of the domain, before its own."""
    first = make_sink(f"{broker.url}/nitro", tmp_path, ack_timeout=1.0)
    first.start()
    broker.kill()
    feed(first, 1, 200)
    first.close()
    assert first.spooled == 200
    broker.start()
    second = make_sink(f"{broker.url}/nitro", tmp_path)
    second.start()
    second.submit(record(1))
    wait_for(lambda: second.published == 201, "the old spool and the new event")
    second.close()
    got = [rec for _, rec in fetch_all(f"{broker.url}/nitro", 201)]
    assert [r["seq"] for r in got[:200]] == list(range(1, 201))
    assert len(got) == 201 and got[200]["seq"] == 1


# ---------------------------------------------------------------- consumer
def events_cli(*options: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "libvirt_nitro", "events", *options],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def test_durable_consumer_resumes(broker: LocalNats, tmp_path: Path, auth_file: Path) -> None:
    sink = make_sink(f"{broker.url}/nitro", tmp_path)
    sink.start()
    feed(sink, 1, 100)
    wait_for(lambda: sink.published == 100, "100 events acknowledged")
    sink.close()
    source = ["--from", f"{broker.url}/nitro", "--nats-auth", str(auth_file), "--json"]
    first = events_cli(*source, "--durable", "ops", "--count", "40", "--duration", "30")
    assert first.returncode == 0, first.stderr
    assert [json.loads(line)["seq"] for line in first.stdout.splitlines()] == list(range(1, 41))
    rest = events_cli(*source, "--durable", "ops", "--idle", "3", "--duration", "30")
    assert rest.returncode == 0, rest.stderr
    assert [json.loads(line)["seq"] for line in rest.stdout.splitlines()] == list(range(41, 101))
    # filters: domain by name, -e, strace lines
    reads = events_cli(
        *source[:-1], "--domain", "web01", "-e", "trace=read", "--idle", "3", "--duration", "30"
    )
    assert reads.returncode == 0, reads.stderr
    lines = reads.stdout.splitlines()
    assert len(lines) == 33 and all(
        line.startswith("web01 [vcpu 0] exit  read = ") for line in lines
    )
    other = events_cli(*source, "--domain", "db02", "--idle", "2", "--duration", "30")
    assert other.returncode == 0 and other.stdout == ""


@pytest.mark.parametrize("durable", [None, "ops"])
def test_consumer_outlives_a_broker_restart(broker, tmp_path, auth_file, durable) -> None:
    """``events`` goes on through a broker restart: every event once, in order."""
    sink = make_sink(f"{broker.url}/nitro", tmp_path, ack_timeout=1.0)
    sink.start()
    feed(sink, 1, 100)
    wait_for(lambda: sink.published == 100, "100 events acknowledged")
    options = ["--durable", durable] if durable else []
    reader = subprocess.Popen(
        [sys.executable, "-m", "libvirt_nitro", "events", "--from", f"{broker.url}/nitro"]
        + ["--nats-auth", str(auth_file), "--json", "--count", "200", "--duration", "120"]
        + options,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(reader.stdout), daemon=True).start()
    try:
        wait_for(lambda: len(lines) >= 100, "the first 100 events printed")
        broker.kill()
        feed(sink, 101, 200)
        wait_for(lambda: sink.spooled > 0, "events spooled")
        broker.start()
        wait_for(lambda: sink.published >= 200, "the spool replayed", timeout=60)
        assert reader.wait(90) == 0, reader.stderr.read()
    finally:
        if reader.poll() is None:
            reader.kill()
        sink.close()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 201))


@pytest.mark.parametrize(
    ("url", "auth", "says"),
    [
        ("nats://127.0.0.1:1/nitro", "good", "NATS nats://127.0.0.1:1/nitro: "),
        ("nats://alice:pw@127.0.0.1:4222/x", "good", "credentials do not go in the URL"),
        ("nats:/broken", "good", "not a nats://HOST:PORT/PREFIX URL"),
        ("BROKER", "bad", "uthorization"),
    ],
)
def test_bad_input_is_one_line(broker, tmp_path, auth_file, url, auth, says) -> None:
    if auth == "bad":
        auth_file.write_text(f"{USER}:wrong\n")
    url = url.replace("BROKER", f"{broker.url}/nitro")
    done = events_cli("--from", url, "--nats-auth", str(auth_file), "--count", "1", timeout=30)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and says in done.stderr, done.stderr
    assert done.stderr.startswith("libvirt-nitro: error: ")


def test_trace_refuses_a_bad_url_before_attaching() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "libvirt_nitro", "trace", "no-such-domain", "--to", "nats://h:0/x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["libvirt-nitro: error: 'nats://h:0/x': bad port '0'"]


def test_a_sink_whose_thread_ended_takes_events_and_closes_quietly(tmp_path: Path) -> None:
    """After a failed start the sink's loop is closed: submit() and close() (which the
    start's own clean-up races with) must not raise from a closed event loop."""
    sink = make_sink("nats://127.0.0.1:9/nitro", tmp_path)  # nothing listens on port 9
    with pytest.raises(NitroError):
        sink.start(timeout=2.0)
    sink.submit(record(1))
    sink.close()
    assert sink.state == "closed"


# ---------------------------------------------------------------- cluster
def test_three_node_cluster_r3_loses_a_node(tmp_path: Path) -> None:
    require(shutil.which("nats-server") is not None, "nats-server (apt-get install nats-server)")
    nodes = cluster(tmp_path / "cluster")
    for node in nodes:
        node.start()
    try:
        url = ",".join(n.url.removeprefix("nats://") for n in nodes)
        url = f"nats://{url}/nitro?replicas=3"
        sinks: list[NatsSink] = []

        def started() -> bool:  # the cluster elects its meta leader first
            sink = make_sink(url, tmp_path, ack_timeout=2.0)
            try:
                sink.start()
            except NitroError:
                return False
            sinks.append(sink)
            return True

        wait_for(started, "the R3 stream to be created", timeout=60, interval=0.5)
        sink = sinks[0]
        feed(sink, 1, 1000, 50)
        wait_for(lambda: sink.published >= 1000, "1000 events acknowledged")
        victim = next(n for n in nodes if n.url.endswith(f"/{sink.connected_server}"))
        victim.kill()  # the node the sink publishes to
        feed(sink, 1001, 2000, 50)
        wait_for(
            lambda: sink.published >= 2000 and sink.spooled == 0,
            "2000 events acknowledged by the 2 nodes left",
            timeout=90,
            detail=lambda: str(sink.summary()),
        )
        sink.close()
        alive = ",".join(n.url.removeprefix("nats://") for n in nodes if n is not victim)
        got = fetch_all(f"nats://{alive}/nitro", 2000)
        assert_in_order([rec for _, rec in got], 2000)
    finally:
        for node in nodes:
            node.kill()


# ---------------------------------------------------------------- the real guest
def test_trace_of_the_test_guest_is_published(tcg_guest, broker, auth_file, tmp_path) -> None:
    """``trace GUEST --to nats://…``: the guest's calls end up on
    PREFIX.<host>.<domain-uuid>.<syscall>, and ``events`` prints them as strace does."""
    url = f"{broker.url}/nitro"
    trace = TraceProcess(
        tcg_guest.name,
        "--to",
        url,
        "--nats-auth",
        str(auth_file),
        "--spool",
        str(tmp_path / "spool"),
        "--comm",
        "workload",
        "--duration",
        "600",
        "-o",
        str(tmp_path / "local.txt"),
    )
    try:
        trace.wait_armed()
        pid = tcg_guest.run("getpid", "5").values["getpid"]
        wait_for(
            lambda: f"getpid() = {pid}" in (tmp_path / "local.txt").read_text(),
            "the getpid line",
            timeout=120,
        )
        assert trace.interrupt() == 0, trace.stderr
    finally:
        trace.kill()
    wait_given_back(tcg_guest.dom)
    assert "; NATS: " in trace.stderr[-1] and "0 spooled, 0 dropped" in trace.stderr[-1]
    uuid = tcg_guest.dom.UUIDString()
    published = int(trace.stderr[-1].split("; NATS: ")[1].split()[0])
    got = fetch_all(url, published)
    assert len(got) == published > 0
    host = host_name()
    for subject, rec in got:
        assert subject == f"nitro.{host}.{uuid}.{rec['name'] or 'unknown'}"
        assert (rec["domain"], rec["uuid"], rec["host"]) == (tcg_guest.name, uuid, host)
        assert rec["comm"] == "workload"
    assert [rec["seq"] for _, rec in got] == list(range(1, published + 1))
    assert sum(1 for _, rec in got if rec["name"] == "getpid" and rec["direction"] == "exit") == 5
    shown = events_cli(
        "--from",
        url,
        "--nats-auth",
        str(auth_file),
        "--domain",
        uuid,
        "-e",
        "trace=getpid",
        "--count",
        "5",
        "--duration",
        "30",
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        shown.stdout.splitlines() == [f"{tcg_guest.name} [pid {pid} workload] getpid() = {pid}"] * 5
    )


def test_trace_with_an_unreachable_broker_is_one_line(tcg_guest) -> None:
    """The broker is checked before the guest is touched."""
    trace = TraceProcess(tcg_guest.name, "--to", "nats://127.0.0.1:1/nitro")
    try:
        assert trace.wait_exit() == 1
    finally:
        trace.kill()
    assert trace.stderr == [
        "libvirt-nitro: error: NATS nats://127.0.0.1:1/nitro: no server answers"
    ]
    wait_given_back(tcg_guest.dom)


def wait_given_back(dom: Any) -> None:
    """Wait until a tracer that ended has given the guest back (its guard works on after
    it exits): SYSCALL enabled on every vCPU, the trace lock free."""
    from libvirt_nitro.runtime import acquire_trace_lock

    def lock_free() -> bool:
        try:
            os.close(acquire_trace_lock(dom.UUIDString(), "test"))
        except Exception:
            return False
        return True

    wait_for(lambda: syscalls_enabled(dom), "EFER.SCE restored on every vCPU", timeout=60)
    wait_for(lock_free, "the trace lock to be released", timeout=60)


# ---------------------------------------------------------------- the service
def test_service_publishes_through_a_broker_outage(tcg_guest, broker, auth_file, tmp_path) -> None:
    """``<nitro:nats>`` in the element: the service publishes the guest's calls; the broker
    killed and restarted meanwhile, the service's state shows the spool, and every event
    arrives once, in order."""
    from libvirt_nitro.service.metadata import NAMESPACE
    from libvirt_nitro.service.status import SERVE_DIR

    uuid = tcg_guest.dom.UUIDString()
    spool = tmp_path / "spool"
    element = tmp_path / "trace.xml"
    element.write_text(
        f'<nitro:trace xmlns:nitro="{NAMESPACE}">'
        '<nitro:syscalls><nitro:syscall name="getpid"/></nitro:syscalls>'
        f'<nitro:output path="{tmp_path / "out.jsonl"}" decode="raw"/>'
        f'<nitro:nats url="{broker.url}/svc" credentials="{auth_file}" spool="{spool}"/>'
        "</nitro:trace>"
    )
    state_file = SERVE_DIR / f"{uuid}.json"

    def state() -> dict[str, Any]:
        try:
            return json.loads(state_file.read_text())
        except (OSError, ValueError):
            return {}

    def service(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "libvirt_nitro.service", "-c", "qemu:///system", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )

    done = service("config", tcg_guest.name, "--set", str(element), "--live")
    assert done.returncode == 0, done.stderr
    server = subprocess.Popen(
        [sys.executable, "-m", "libvirt_nitro.service", "-c", "qemu:///system", "serve", uuid],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        wait_for(
            lambda: (
                state().get("state") == "tracing"
                and (state().get("nats") or {}).get("state") == "connected"
            ),
            "the service to trace and publish",
            timeout=240,
            detail=lambda: str(state()),
        )
        tcg_guest.run("getpid", "5")
        wait_for(lambda: (state().get("nats") or {}).get("published", 0) >= 10, "10 published")
        broker.kill()
        tcg_guest.run("getpid", "5")
        wait_for(
            lambda: (state().get("nats") or {}).get("spooled", 0) >= 10,
            "10 events spooled while the broker is down",
            detail=lambda: str(state()),
        )
        broker.start()
        wait_for(
            lambda: (
                (state().get("nats") or {}).get("spooled") == 0
                and state()["nats"]["published"] >= 20
            ),
            "the spool replayed",
            detail=lambda: str(state()),
        )
        assert state()["dropped"] == 0
        table = service("status").stdout
        assert "+ NATS connected (" in table and " 0 spooled)" in table, table
    finally:
        service("config", tcg_guest.name, "--remove", "--live")
        try:
            server.wait(120)
        finally:
            if server.poll() is None:
                server.kill()
    wait_given_back(tcg_guest.dom)
    got = fetch_all(f"{broker.url}/svc", 20)
    pids = {rec["ret"] for _, rec in got if rec["direction"] == "exit"}
    assert len(got) == 20 and len(pids) == 2  # two workload processes, 5 getpid each
    assert [rec["seq"] for _, rec in got] == list(range(1, 21))
    assert {subject for subject, _ in got} == {f"svc.{host_name()}.{uuid}.getpid"}
