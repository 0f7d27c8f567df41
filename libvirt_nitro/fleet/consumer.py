"""``libvirt-nitro events --from nats://…``: the events of a whole fleet, from JetStream.

A pull consumer on the prefix's stream, filtered by subject (host, domain UUID, and the
call when ``-e trace=`` names exactly one) and then by record (a domain given by name, the
calls of ``-e``). Each event prints as strace's line (:mod:`.text`) or, with ``--json``, as
the published JSON record, and is acknowledged once printed: with ``--durable NAME`` the
consumer is kept by the broker, and a restarted ``events --durable NAME`` resumes after the
last acknowledged event. Without it, an ephemeral consumer reads the stream from its start.
Stops on ``--count``, ``--duration``, ``--idle`` (seconds without a new event), Ctrl-C or
SIGTERM; a lost broker is reconnected with backoff (0.1 s doubling to 5 s), a durable
consumer resuming where it was, an ephemeral one made again after the last event seen.
Events a killed broker redelivers (its record of our acknowledgements lost) are printed
once: stream sequences only grow. Across restarts of ``events --durable`` delivery is at
least once (what the broker had not recorded as acknowledged comes again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid as uuid_module
from collections.abc import Callable
from typing import Any

from ..errors import NitroError
from .connect import describe, nats_module, open_connection
from .subjects import filter_subject, stream_name, token
from .target import NatsTarget, load_credentials, parse_url

__all__ = ["EventFilter", "run", "FETCH"]

#: Events asked for per fetch.
FETCH = 256


class EventFilter:
    """What ``events`` selects: *host*, *domain* (name or UUID), *syscalls* (names; None:
    all)."""

    def __init__(
        self,
        host: str | None = None,
        domain: str | None = None,
        syscalls: frozenset[str] | None = None,
    ):
        self.host = token(host) if host else None
        self.uuid: str | None = None
        self.domain_name: str | None = None
        if domain is not None:
            try:
                self.uuid = str(uuid_module.UUID(domain))
            except ValueError:
                self.domain_name = domain
        self.syscalls = syscalls

    def subject(self, prefix: str) -> str:
        """The subject to consume (``*`` for what is filtered on the records)."""
        one = next(iter(self.syscalls)) if self.syscalls and len(self.syscalls) == 1 else None
        return filter_subject(prefix, self.host, self.uuid, one)

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether *record* passes what the subject could not say."""
        if self.domain_name is not None and record.get("domain") != self.domain_name:
            return False
        return self.syscalls is None or record.get("name") in self.syscalls


def run(args: argparse.Namespace) -> int:
    """``events``: print the selected events until a stop condition (module docstring)."""
    target = parse_url(args.source)
    credentials = load_credentials(args.nats_auth)
    syscalls = None
    if args.expr:
        if not args.expr.startswith("trace="):
            raise NitroError(f"-e {args.expr}: only trace=… expressions are supported")
        from ..linux import syscall_name
        from ..strace import parse_trace_expr

        syscalls = frozenset(syscall_name(nr) for nr in parse_trace_expr(args.expr))
    selection = EventFilter(args.host, args.domain, syscalls)

    def emit(record: dict[str, Any], data: bytes) -> bool:
        if args.json:
            sys.stdout.write(data.decode() + "\n")
            return True
        from .text import record_line

        line = record_line(record)
        if line is not None:
            sys.stdout.write(line + "\n")
        return line is not None

    consumer = Consumer(target, credentials, selection, durable=args.durable)
    return asyncio.run(consumer.run(emit, count=args.count, duration=args.duration, idle=args.idle))


class Consumer:
    """A pull consumer of *target*'s stream for *selection*; ``durable`` names a consumer
    the broker keeps (None: ephemeral)."""

    def __init__(
        self,
        target: NatsTarget,
        credentials: Any,
        selection: EventFilter,
        durable: str | None = None,
    ):
        self.target = target
        self.credentials = credentials
        self.selection = selection
        self.durable = durable
        self.printed = 0
        #: The stream sequence of the last event handled (an ephemeral consumer made again
        #: after a lost connection starts after it).
        self.last_sequence = 0
        self._stop = False

    async def run(
        self,
        emit: Callable[[dict[str, Any], bytes], bool],
        *,
        count: int | None = None,
        duration: float | None = None,
        idle: float | None = None,
    ) -> int:
        """Consume, calling *emit(record, data)* per selected event (True: it printed,
        which counts toward *count*); returns the exit status."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._request_stop)
        start = time.monotonic()
        deadline = None if duration is None else start + duration
        last_event = start
        backoff = 0.1
        first = True
        nc = sub = None
        try:
            while not self._stop:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if idle is not None and now - last_event >= idle:
                    break
                if count is not None and self.printed >= count:
                    break
                if sub is None:
                    try:
                        nc, sub = await self._subscribe()
                        backoff = 0.1
                    except NitroError:
                        if first:
                            raise
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                    first = False
                want = FETCH if count is None else min(FETCH, count - self.printed)
                try:
                    msgs = await sub.fetch(want, timeout=0.5)
                except Exception as exc:
                    if type(exc).__name__ in ("TimeoutError", "FetchTimeoutError"):
                        continue
                    print(f"libvirt-nitro: warning: NATS: {describe(exc)}", file=sys.stderr)
                    await self._close(nc)
                    nc = sub = None
                    continue
                for msg in msgs:
                    if count is not None and self.printed >= count:
                        await msg.nak()  # not read: the next reader gets it first
                        continue
                    sequence = msg.metadata.sequence.stream
                    if sequence <= self.last_sequence:
                        # handled already: redelivered because a killed broker lost our
                        # acknowledgement (stream sequences only grow)
                        await msg.ack()
                        continue
                    self.last_sequence = sequence
                    record = json.loads(msg.data)
                    if self.selection.matches(record) and emit(record, msg.data):
                        self.printed += 1
                    await msg.ack()
                    last_event = time.monotonic()
                sys.stdout.flush()
        finally:
            if nc is not None:
                try:
                    await asyncio.wait_for(nc.flush(), 5)  # the acknowledgements go out
                except Exception:
                    pass
                await self._close(nc)
        return 0

    def _request_stop(self) -> None:
        self._stop = True

    async def _subscribe(self) -> tuple[Any, Any]:
        nats = nats_module()
        api = nats.js.api
        nc = await open_connection(self.target, self.credentials, name="libvirt-nitro events")
        js = nc.jetstream()
        stream = stream_name(self.target.prefix)
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=30.0,
            inactive_threshold=None if self.durable else 60.0,
        )
        if self.durable is None and self.last_sequence:
            config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self.last_sequence + 1
        try:
            sub = await js.pull_subscribe(
                self.selection.subject(self.target.prefix),
                durable=self.durable,
                stream=stream,
                config=config,
            )
        except Exception as exc:
            await self._close(nc)
            raise NitroError(f"NATS stream {stream}: {describe(exc)}") from None
        return nc, sub

    @staticmethod
    async def _close(nc: Any) -> None:
        if nc is None or nc.is_closed:
            return
        try:
            await asyncio.wait_for(nc.close(), 2)
        except Exception:
            pass
