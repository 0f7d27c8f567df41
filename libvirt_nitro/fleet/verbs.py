"""The fleet's command-line parts: ``trace``'s sink options (``--to``, ``--nats-auth``,
``--spool``, ``--spool-max-bytes``), the sink they start, and the ``events`` verb.

Nothing here imports nats-py: :func:`start_sink` and the ``events`` verb do, when used.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ..cliargs import PROG, positive_int, positive_seconds
from ..errors import NitroError

__all__ = [
    "add_sink_options",
    "check_sink_options",
    "start_sink",
    "sink_printer",
    "sink_summary",
    "register",
]


def add_sink_options(parser: argparse.ArgumentParser) -> None:
    """``trace``'s options of the NATS sink."""
    parser.add_argument(
        "--to",
        metavar="nats://HOST:PORT/PREFIX",
        help="also publish each event's JSON record to NATS JetStream, on subjects "
        "PREFIX.<host>.<domain-uuid>.<syscall> (HOST:PORT may be a comma-separated list)",
    )
    _add_auth_option(parser)
    parser.add_argument(
        "--spool",
        metavar="DIR",
        help="where events wait while the broker is away (default "
        "/var/spool/libvirt-nitro; one directory per domain UUID)",
    )
    parser.add_argument(
        "--spool-max-bytes",
        type=positive_int,
        default=256 << 20,
        metavar="N",
        help="spool bound in bytes; past it events are dropped and counted (default 256 MiB)",
    )


def _add_auth_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nats-auth",
        metavar="FILE",
        help="NATS credentials: a file whose first line is USER:PASSWORD or an nkey seed "
        "(default: LIBVIRT_NITRO_NATS_USER/LIBVIRT_NITRO_NATS_PASSWORD)",
    )


def start_sink(args: argparse.Namespace, dom: Any) -> Any:
    """The started :class:`~.sink.NatsSink` of ``--to`` for the libvirt domain *dom*, or
    None without ``--to``.

    :raises NitroError: a bad URL or credentials file, or a broker that cannot be reached,
        refuses the credentials or the stream.
    """
    if not args.to:
        return None
    from .sink import DEFAULT_SPOOL_DIR, NatsSink, spool_dir_for
    from .target import load_credentials, parse_url

    target = parse_url(args.to)
    credentials = load_credentials(args.nats_auth)
    sink = NatsSink(
        target,
        credentials,
        domain_name=dom.name(),
        domain_uuid=dom.UUIDString(),
        spool_dir=spool_dir_for(args.spool or DEFAULT_SPOOL_DIR, dom.UUIDString()),
        spool_max_bytes=args.spool_max_bytes,
    )
    _log_to_stderr()
    sink.start(require_broker=True)
    return sink


def _log_to_stderr() -> None:
    """The sink's messages (broker away, back) on stderr as the command line's own:
    ``libvirt-nitro: warning: NATS: broker away (…); spooling events``."""
    logger = logging.getLogger("libvirt_nitro.fleet")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CliFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


class _CliFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        kind = "warning" if record.levelno >= logging.WARNING else "note"
        return f"{PROG}: {kind}: {record.getMessage()}"


def check_sink_options(args: argparse.Namespace) -> None:
    """Refuse a bad ``--to`` URL or credentials file before anything is attached."""
    if args.to:
        from .target import load_credentials, parse_url

        parse_url(args.to)
        load_credentials(args.nats_auth)
    elif args.nats_auth or args.spool:
        raise NitroError("--nats-auth and --spool go with --to nats://…")


def sink_printer(sink: Any, printer: Any, decoded: bool, string_limit: int) -> Any:
    """*printer* (stdout or ``-o``) and *sink* behind one ``write``."""
    from ..output import JsonFormatter
    from .sink import SinkPrinter

    return SinkPrinter(sink, JsonFormatter(string_limit, decoded=decoded), also=printer)


def sink_summary(sink: Any) -> str:
    """``; NATS: 120 published, 0 spooled, 0 dropped``: the summary's tail (dropped: the
    queue or the spool was full)."""
    if sink is None:
        return ""
    return f"; NATS: {sink.published} published, {sink.spooled} spooled, {sink.dropped} dropped"


def cmd_events(args: argparse.Namespace) -> int:
    """``events --from URL``: see :mod:`.consumer`."""
    from .consumer import run

    return run(args)


def register(verbs: Any) -> None:
    """Add the ``events`` verb to the command line's sub-parsers."""
    events = verbs.add_parser("events", help="print the events a fleet published to NATS JetStream")
    events.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="nats://HOST:PORT/PREFIX",
        help="the broker and subject prefix the tracers publish to",
    )
    _add_auth_option(events)
    events.add_argument("--domain", metavar="NAME|UUID", help="only this domain")
    events.add_argument("--host", metavar="HOST", help="only this hypervisor host")
    events.add_argument(
        "-e", dest="expr", metavar="trace=SET", help="calls to show: names and %%classes, as strace"
    )
    events.add_argument("--json", action="store_true", help="print the JSON records")
    events.add_argument(
        "--durable",
        metavar="NAME",
        help="a consumer the broker keeps: a restarted `events --durable NAME` resumes "
        "after the last event it printed",
    )
    events.add_argument("--count", type=positive_int, metavar="N", help="stop after N events")
    events.add_argument(
        "--duration", type=positive_seconds, metavar="S", help="stop after S seconds"
    )
    events.add_argument(
        "--idle", type=positive_seconds, metavar="S", help="stop after S seconds without events"
    )
    events.set_defaults(func=cmd_events)
