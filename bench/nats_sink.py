#!/usr/bin/env python3
"""Benchmark the NATS JetStream sink (``trace --to nats://…``) on this machine.

Starts its own nats-server on loopback (JetStream, file store in a temporary directory, a
password), and publishes synthetic ``--json`` records of a decoded ``openat`` exit (about
300 bytes once host, domain and sequence are added) through :class:`NatsSink`:

  * burst: N records submitted as fast as the tracer could; prints the tracer-side cost of
    one ``submit`` (µs: what the guest's trap path pays), the sink's throughput (events/s
    from the first submit to the last acknowledgement) and publish→ack latency p50/p99;
  * paced: records at a steady RATE events/s (a busy guest): publish→ack p50/p99 and
    submit→ack (the delay an event waits before it is stored, batching included) p50/p99;
  * with ``--guest``: a booted test guest (TCG) runs ``loop N`` (N getpid) traced through
    the gdbstub backend, each event made a JSON record, and also submitted to the sink or
    not: the guest-side (host-timed) duration of both, i.e. what the sink costs the guest
    (its thread shares the interpreter with the tracer).

Usage (after scripts/setup-host; nats-server from scripts/debian-packages; --guest as
root with libvirtd running):
    .venv/bin/python bench/nats_sink.py [--events N] [--rate R] [--seconds S]
                                        [--guest [--syscalls N] [--repeat R]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from libvirt_nitro.fleet.localserver import PASSWORD, USER, LocalNats
from libvirt_nitro.fleet.sink import NatsSink
from libvirt_nitro.fleet.target import Credentials, parse_url

__all__ = ["main"]

UUID = "6a0b4a49-3d1e-4c55-9e4f-0d8d3f1c2b7a"


def record(i: int) -> dict:
    """A decoded openat exit, as JsonFormatter makes it."""
    return {
        "vcpu": i & 1,
        "direction": "exit",
        "cr3": 0x28DC000,
        "rip": 0xFFFFFFFF81A00000,
        "time": 1764800000.0 + i / 1e6,
        "ret": 3,
        "pid": 95,
        "tid": 95,
        "comm": "workload",
        "args_decoded": 'AT_FDCWD, "/nitro-marker", O_RDONLY',
        "ret_decoded": "3",
        "nr": 257,
        "name": "openat",
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def new_sink(url: str, spool: Path) -> NatsSink:
    sink = NatsSink(
        parse_url(url),
        Credentials(USER, PASSWORD),
        domain_name="bench",
        domain_uuid=UUID,
        spool_dir=spool,
        host="bench-host",
    )
    sink.start()
    return sink


def wait_published(sink: NatsSink, count: int, timeout: float = 300.0) -> float:
    deadline = time.monotonic() + timeout
    while sink.published < count:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{sink.published} of {count} acknowledged: {sink.summary()}")
        time.sleep(0.001)
    return time.monotonic()


def burst(url: str, spool: Path, events: int) -> None:
    sink = new_sink(url, spool)
    records = [record(i) for i in range(events)]
    start = time.perf_counter()
    begin = time.monotonic()
    for rec in records:
        sink.submit(rec)
    submit_us = (time.perf_counter() - start) / events * 1e6
    end = wait_published(sink, events)
    sink.close()
    lat = list(sink.ack_latencies)
    print(f"burst: {events} events, dropped {sink.dropped}")
    print(f"  submit (tracer side): {submit_us:.2f} µs/event")
    print(f"  throughput: {events / (end - begin):,.0f} events/s (submit to last ack)")
    print(
        f"  publish→ack: p50 {percentile(lat, 0.5) * 1e3:.2f} ms, "
        f"p99 {percentile(lat, 0.99) * 1e3:.2f} ms"
    )
    delay = list(sink.event_latencies)
    print(
        f"  submit→ack:  p50 {percentile(delay, 0.5) * 1e3:.2f} ms, "
        f"p99 {percentile(delay, 0.99) * 1e3:.2f} ms (queueing behind the burst included)"
    )


def paced(url: str, spool: Path, rate: float, seconds: float) -> None:
    sink = new_sink(url, spool)
    count = int(rate * seconds)
    submitted: list[float] = []
    begin = time.monotonic()
    for i in range(count):
        due = begin + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        submitted.append(time.monotonic())
        sink.submit(record(i))
    wait_published(sink, count)
    sink.close()
    lat, delay = list(sink.ack_latencies), list(sink.event_latencies)
    print(
        f"paced: {rate:,.0f} events/s for {seconds:.0f} s ({count} events), dropped {sink.dropped}"
    )
    print(
        f"  publish→ack: p50 {percentile(lat, 0.5) * 1e3:.2f} ms, "
        f"p99 {percentile(lat, 0.99) * 1e3:.2f} ms"
    )
    print(
        f"  submit→ack:  p50 {percentile(delay, 0.5) * 1e3:.2f} ms, "
        f"p99 {percentile(delay, 0.99) * 1e3:.2f} ms, mean {statistics.mean(delay) * 1e3:.2f} ms"
    )


def guest_runs(url: str, spool: Path, syscalls: int, repeat: int) -> None:
    import threading

    import libvirt

    from libvirt_nitro import EVENT_ID_SYSCALL, attach
    from libvirt_nitro.output import JsonFormatter
    from libvirt_nitro.testing.guest import GuestImage, TestGuest

    libvirt.virEventRegisterDefaultImpl()
    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open("qemu:///system")
    timer = libvirt.virEventAddTimeout(50, lambda *_: None, None)
    guest = TestGuest.start(conn, f"nitro-bench-{os.getpid()}", GuestImage.build())

    def traced(sink: NatsSink | None) -> tuple[float, int]:
        tracer = attach(guest.dom)
        formatter = JsonFormatter()
        count = [0]

        def on_event(_c: object, _d: object, event: object, _o: object) -> None:
            count[0] += 1
            rec = formatter.as_dict(event.record)  # type: ignore[attr-defined]
            if sink is not None:
                sink.submit(rec)

        tracer.eventRegisterAny(EVENT_ID_SYSCALL, on_event, None)
        outcome: dict[str, float] = {}

        def run() -> None:
            start = time.perf_counter()
            guest.run("loop", str(syscalls), timeout=3600)
            outcome["t"] = time.perf_counter() - start

        worker = threading.Thread(target=run)
        try:
            worker.start()
            while worker.is_alive():
                libvirt.virEventRunDefaultImpl()
            tracer.dispatch()
        finally:
            tracer.close()
        return outcome["t"], count[0]

    try:
        sink = new_sink(url, spool)
        plain, published = [], []
        for _ in range(repeat):  # interleaved, so that load drifts hit both alike
            plain.append(traced(None))
            published.append(traced(sink))
        sink.close()
    finally:
        libvirt.virEventRemoveTimeout(timer)
        guest.destroy()
    base = statistics.median(t for t, _ in plain)
    with_sink = statistics.median(t for t, _ in published)
    events = statistics.median(n for _, n in published)
    print(f"guest: loop {syscalls} getpid traced (TCG, gdbstub), median of {repeat}")
    print(f"  JSON records only:        {base * 1e3:8.1f} ms ({events:.0f} events)")
    print(f"  JSON records + NATS sink: {with_sink * 1e3:8.1f} ms ({sink.published} published)")
    print(f"  sink's cost to the guest: {(with_sink - base) / events * 1e6:8.1f} µs/event")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="burst size")
    parser.add_argument("--rate", type=float, default=2_000.0, help="paced events/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="paced duration")
    parser.add_argument("--guest", action="store_true", help="also trace a test guest")
    parser.add_argument("--syscalls", type=int, default=1000, help="getpid per guest loop")
    parser.add_argument("--repeat", type=int, default=3, help="guest loops of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with LocalNats(Path(tmp) / "nats") as server:
            url = f"{server.url}/bench"
            burst(url, Path(tmp) / "spool-burst", args.events)
            paced(url, Path(tmp) / "spool-paced", args.rate, args.seconds)
            if args.guest:
                guest_runs(url, Path(tmp) / "spool-guest", args.syscalls, args.repeat)


if __name__ == "__main__":
    main()
