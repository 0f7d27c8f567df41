"""The ``libvirt-nitro`` command line.

Every failure a user can cause ends as one line on stderr (``libvirt-nitro: error: …``) and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .cliargs import (
    PROG,
    ArgumentParser,
    comm_name,
    non_negative_int,
    positive_int,
    positive_seconds,
    run_verb,
)
from .errors import NitroError

__all__ = ["main", "build_parser"]

#: virsh's names for ``virDomainState`` values.
STATE_NAMES = {
    0: "no state",
    1: "running",
    2: "idle",
    3: "paused",
    4: "in shutdown",
    5: "shut off",
    6: "crashed",
    7: "pmsuspended",
}


def cmd_list(args: argparse.Namespace) -> int:
    """``list``: the domains with state, accelerator, QEMU pid and vCPU threads."""
    from .domain import libvirt_module, open_connection, resolve

    libvirt = libvirt_module()
    conn = open_connection(args.connect, readonly=False)
    flags = 0 if args.all else libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
    rows = []
    for dom in sorted(conn.listAllDomains(flags), key=lambda d: (d.ID() < 0, d.ID(), d.name())):
        row: dict[str, Any] = {
            "id": dom.ID() if dom.ID() >= 0 else None,
            "name": dom.name(),
            "state": STATE_NAMES.get(dom.state()[0], "unknown"),
            "accel": None,
            "pid": None,
            "vcpu_threads": [],
        }
        if dom.isActive():
            try:
                with resolve(dom, kvm_fds=False) as process:
                    row.update(
                        accel=process.accel,
                        pid=process.pid,
                        vcpu_threads=[v.thread_id for v in process.vcpus],
                    )
            except NitroError as exc:
                print(f"{PROG}: warning: {dom.name()}: {exc}", file=sys.stderr)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'Id':>4}  {'Name':<24} {'State':<12} {'Accel':<6} {'PID':>8}  vCPU threads")
    for row in rows:
        print(
            f"{_dash(row['id']):>4}  {row['name']:<24} {row['state']:<12} "
            f"{_dash(row['accel']):<6} {_dash(row['pid']):>8}  "
            + (" ".join(map(str, row["vcpu_threads"])) or "-")
        )
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """``inspect DOMAIN``: the domain's QEMU process, vCPU threads and (KVM) vm/vCPU fds."""
    from .domain import lookup_domain, open_connection, resolve

    conn = open_connection(args.connect)
    dom = lookup_domain(conn, args.domain)
    with resolve(dom, kvm_fds=args.fds) as process:
        view = process.as_dict()
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    print(f"Domain:   {view['name']} (id {view['id']}, uuid {view['uuid']})")
    print(f"QEMU:     pid {view['pid']}, {view['emulator'] or 'default emulator'}")
    print(f"Accel:    {view['accel']}")
    print(f"vCPUs:    {len(view['vcpus'])}")
    for vcpu in view["vcpus"]:
        print(f"  vCPU {vcpu['index']:<3} thread {vcpu['thread_id']}")
    fds = view.get("kvm_fds")
    if fds:
        print(f"KVM fds:  vm: QEMU fd {fds['vm']['qemu_fd']} duplicated as fd {fds['vm']['fd']}")
        for vcpu in fds["vcpus"]:
            print(
                f"  vCPU {vcpu['index']:<3} QEMU fd {vcpu['qemu_fd']} duplicated as fd {vcpu['fd']}"
            )
    else:
        print(
            "KVM fds:  none (not a KVM domain)" if view["accel"] != "kvm" else "KVM fds:  not taken"
        )
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    """``trace DOMAIN``: print the guest's system calls until Ctrl-C, SIGTERM, --duration
    or --count; a summary goes to stderr."""
    import signal
    import time

    from .domain import libvirt_module, lookup_domain, open_connection
    from .fleet.verbs import check_sink_options, sink_printer, sink_summary, start_sink

    trace_filter = _trace_filter(args)  # bad options are refused before anything is touched
    check_sink_options(args)
    if args.kernel_image is not None and not os.access(args.kernel_image, os.R_OK):
        raise NitroError(f"--kernel-image {args.kernel_image}: cannot read it")
    libvirt = libvirt_module()
    libvirt.virEventRegisterDefaultImpl()  # before the connection, as for domain events
    conn = open_connection(args.connect)
    dom = lookup_domain(conn, args.domain)

    from .attachment import attach
    from .event_ids import EVENT_ID_LOST, EVENT_ID_SYSCALL
    from .output import Printer, formatter_for

    sink = start_sink(args, dom)  # --to: the broker answers, or one error line
    stream = _open_output(args.output) if args.output else sys.stdout
    stop: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stop.append(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    try:
        tracer = attach(
            dom,
            backend=args.backend,
            decode=not args.raw or args.json,
            filter=trace_filter,
            capture_bytes=args.string_limit,
            kernel_image=args.kernel_image,
            delivery="sync" if args.sync else "async",
        )
    except BaseException:
        if stream is not sys.stdout:
            stream.close()
        if sink is not None:
            sink.close()
        raise
    printer = Printer(
        stream,
        formatter_for(
            as_json=args.json,
            raw=args.raw,
            decoded=tracer.pipeline.decode,
            string_limit=args.string_limit,
        ),
    )
    if sink is not None:
        printer = sink_printer(sink, printer, tracer.pipeline.decode, args.string_limit)

    def on_event(_conn: Any, _dom: Any, event: Any, _opaque: Any) -> None:
        if args.count is None or printer.printed < args.count:
            printer.write(event)
        if args.count is not None and printer.printed >= args.count:
            stop.append("count")

    def on_lost(_conn: Any, _dom: Any, count: int, _opaque: Any) -> None:
        print(f"{PROG}: warning: {count} events dropped (ring full)", file=sys.stderr)

    timer = -1
    try:
        tracer.eventRegisterAny(EVENT_ID_SYSCALL, on_event, None)
        tracer.eventRegisterAny(EVENT_ID_LOST, on_lost, None)
        print(
            f"{PROG}: tracing {dom.name()} via {tracer.backend.name} (Ctrl-C to stop)",
            file=sys.stderr,
        )
        if not args.raw:
            for note in tracer.notes():
                print(f"{PROG}: note: {note}", file=sys.stderr)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        # The timer wakes the loop so that signals, --duration and a failed backend are seen.
        timer = libvirt.virEventAddTimeout(100, lambda *_: None, None)
        while not stop and tracer.running:
            libvirt.virEventRunDefaultImpl()
            # what this turn printed goes out now (a pipe is block-buffered), in one write
            stream.flush()
            if deadline is not None and time.monotonic() >= deadline:
                stop.append("duration")
    finally:
        if timer >= 0:
            libvirt.virEventRemoveTimeout(timer)
        tracer.stop()
        tracer.dispatch()  # what the ring still holds
        tracer.close()
        if stream is not sys.stdout:
            stream.close()
        if sink is not None:
            sink.close()
        summary = summary_line(printer.printed, tracer.summary()) + sink_summary(sink)
        print(f"{PROG}: {summary}", file=sys.stderr)
    if tracer.error is not None:
        raise NitroError(f"tracing {dom.name()} stopped: {tracer.error}")
    return 0


def summary_line(events: int, summary: dict[str, Any]) -> str:
    """``12 events, 0 dropped, 3 arguments not decoded (ioctl 2, fcntl 1)``: what a trace
    ends with (*summary* is :meth:`~libvirt_nitro.tracer.Tracer.summary`)."""
    line = f"{events} events, {summary['dropped']} dropped"
    failures = summary["not_decoded"]
    if failures:
        detail = ", ".join(f"{name} {count}" for name, count in sorted(failures.items()))
        line += f", {sum(failures.values())} arguments not decoded ({detail})"
    return line


def _open_output(path: str) -> Any:
    """The ``-o`` file, line-buffered; one clear error if it cannot be written."""
    try:
        return open(path, "w", buffering=1)
    except OSError as exc:
        raise NitroError(f"-o {path}: {exc.strerror}") from None


def _trace_filter(args: argparse.Namespace) -> Any:
    """The :class:`~libvirt_nitro.pipeline.Filter` of ``trace``'s -e, -p and --comm."""
    from .pipeline import Filter
    from .strace import parse_trace_expr

    syscalls = None
    if args.expr:
        if not args.expr.startswith("trace="):
            raise NitroError(f"-e {args.expr}: only trace=… expressions are supported")
        syscalls = frozenset(parse_trace_expr(args.expr.removeprefix("trace=")))
    return Filter(
        syscalls=syscalls,
        pids=frozenset(args.pid) if args.pid else None,
        comms=frozenset(args.comm) if args.comm else None,
    )


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``libvirt-nitro`` (one sub-command per verb)."""
    parser = ArgumentParser(
        prog=PROG, description="Trace the system calls of running libvirt/QEMU guests."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-c",
        "--connect",
        metavar="URI",
        help="libvirt URI (default: as virsh, e.g. qemu:///system)",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)

    listing = verbs.add_parser("list", help="list domains with their QEMU process and vCPU threads")
    listing.add_argument("--all", action="store_true", help="include inactive domains")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_list)

    inspect = verbs.add_parser("inspect", help="resolve a domain to its QEMU process and KVM fds")
    inspect.add_argument("domain", metavar="DOMAIN", help="domain name, UUID or id")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    fds = inspect.add_mutually_exclusive_group()
    fds.add_argument(
        "--fds",
        dest="fds",
        action="store_true",
        default=None,
        help="require QEMU's KVM vm/vCPU fds (error on a TCG domain)",
    )
    fds.add_argument("--no-fds", dest="fds", action="store_false", help="do not take KVM fds")
    inspect.set_defaults(func=cmd_inspect)

    trace = verbs.add_parser("trace", help="print the system calls a running guest makes")
    trace.add_argument("domain", metavar="DOMAIN", help="domain name, UUID or id")
    trace.add_argument(
        "--duration", type=positive_seconds, metavar="S", help="stop after S seconds"
    )
    trace.add_argument("--count", type=positive_int, metavar="N", help="stop after N events")
    trace.add_argument("--json", action="store_true", help="print JSON lines")
    trace.add_argument("-o", "--output", metavar="FILE", help="write events to FILE")
    trace.add_argument(
        "-e", dest="expr", metavar="trace=SET", help="calls to show: names and %%classes, as strace"
    )
    trace.add_argument(
        "-p",
        dest="pid",
        type=positive_int,
        action="append",
        metavar="PID",
        help="only guest process PID",
    )
    trace.add_argument(
        "--comm", type=comm_name, action="append", metavar="NAME", help="only this command name"
    )
    trace.add_argument(
        "-s",
        dest="string_limit",
        type=non_negative_int,
        default=32,
        metavar="STRSIZE",
        help="print at most STRSIZE bytes of each string (default 32)",
    )
    trace.add_argument(
        "--kernel-image",
        metavar="PATH",
        help="guest kernel (bzImage) used to name processes (default: direct-boot kernel)",
    )
    trace.add_argument(
        "--raw", action="store_true", help="one raw line per entry and exit, nothing decoded"
    )
    trace.add_argument(
        "--backend",
        choices=("auto", "gdbstub", "kernel"),
        default="auto",
        help="kernel: the Nitro KVM extension (kernel/, KVM domains, raw events, -e applied "
        "in the kernel); gdbstub: QEMU's gdbstub (any QEMU, decodes); auto (default): kernel "
        "when the host has the extension, the domain runs under KVM and no -e/-p/--comm is "
        "given, else gdbstub",
    )
    trace.add_argument(
        "--sync",
        action="store_true",
        help="kernel backend: each trapped vCPU waits until the tracer has handled its "
        "event (nothing dropped; the guest runs at the tracer's pace)",
    )
    from .fleet.verbs import add_sink_options
    from .fleet.verbs import register as register_fleet

    add_sink_options(trace)  # --to nats://..., --nats-auth, --spool, --spool-max-bytes
    trace.set_defaults(func=cmd_trace)
    register_fleet(verbs)  # events --from nats://...

    from .service.verbs import register as register_service

    register_service(verbs)  # config, hook, install-hook, serve, status, watch
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``libvirt-nitro`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return run_verb(func, args)


if __name__ == "__main__":
    sys.exit(main())
