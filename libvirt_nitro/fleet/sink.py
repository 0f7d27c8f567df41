"""The NATS sink: events published to JetStream off the tracer's loop.

The tracer's thread only appends the event's JSON record to a bounded in-memory queue
(:meth:`NatsSink.submit`: no I/O, never waits; a full queue drops and counts). A thread
with its own asyncio loop takes the records in batches, adds ``host``, ``domain``,
``uuid`` and ``seq`` (a per-sink counter: a gap is a drop), and publishes each on
``PREFIX.<host>.<uuid>.<syscall>`` with a ``Nats-Msg-Id`` (JetStream stores a re-sent
event once), waiting for JetStream's acknowledgements of the whole batch.

While the broker is slow or away (a batch not acknowledged in time, the connection lost),
records go to the on-disk :class:`~.spool.Spool`, and everything after them too, so order is
kept; the connection is re-opened with exponential backoff (0.1 s doubling to 5 s), and the
spool is published, oldest first, before anything newer. Past the spool's bound, records
are dropped and counted (:attr:`NatsSink.dropped`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import NitroError
from ..output import JsonFormatter, Printer
from .connect import describe, ensure_stream, nats_module, open_connection
from .spool import Entry, Spool
from .subjects import event_subject, token
from .target import Credentials, NatsTarget

__all__ = ["NatsSink", "SinkPrinter", "DEFAULT_SPOOL_DIR", "host_name", "spool_dir_for"]

log = logging.getLogger("libvirt_nitro.fleet")

#: Where spools live unless told otherwise (one directory per domain UUID).
DEFAULT_SPOOL_DIR = "/var/spool/libvirt-nitro"
#: Records waiting in memory for the sink thread; past that, dropped.
QUEUE_MAX = 65536
#: Records per batch (each batch waits for all its acknowledgements).
BATCH = 512
#: Seconds a batch may wait for its acknowledgements before the broker counts as away.
ACK_TIMEOUT = 5.0
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0


def host_name() -> str:
    """This host's name as a subject token (``hv1.example.org`` → ``hv1_example_org``)."""
    return token(socket.gethostname())


class NatsSink:
    """Publishes the records of one domain to JetStream (see the module docstring).

    *spool_dir* is this domain's spool directory (created 0700), at most
    *spool_max_bytes* bytes. :meth:`start` connects; :meth:`submit` is called from the
    tracer's thread; :meth:`close` publishes what is left (or spools it) and stops.
    """

    def __init__(
        self,
        target: NatsTarget,
        credentials: Credentials,
        *,
        domain_name: str,
        domain_uuid: str,
        spool_dir: str | os.PathLike,
        spool_max_bytes: int = 256 << 20,
        host: str | None = None,
        queue_max: int = QUEUE_MAX,
        batch: int = BATCH,
        ack_timeout: float = ACK_TIMEOUT,
    ):
        self.target = target
        self.credentials = credentials
        self.host = token(host or host_name())
        self.domain_name = domain_name
        self.domain_uuid = domain_uuid
        self.spool = Spool(spool_dir, spool_max_bytes)
        self.queue_max = queue_max
        self.batch = batch
        self.ack_timeout = ack_timeout
        #: Events acknowledged by JetStream.
        self.published = 0
        #: Events dropped because the in-memory queue was full.
        self.queue_dropped = 0
        #: "connecting", "connected", "reconnecting" or "closed".
        self.state = "connecting"
        #: The last error met (broker away, refused), for the status.
        self.last_error: str | None = None
        #: Seconds from publishing to acknowledgement, one per event (the latest 100000).
        self.ack_latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        #: Seconds from :meth:`submit` to acknowledgement of the events published from the
        #: queue (not spooled), one per event (the latest 100000): what the sink delays.
        self.event_latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self._queue: collections.deque[tuple[int, float, dict[str, Any]]] = collections.deque()
        self._submitted: dict[str, float] = {}
        self._seq = 0
        self._session = f"{time.time_ns():x}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._nc: Any = None
        self._js: Any = None
        self._stream = ""
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------ the tracer's side
    @property
    def dropped(self) -> int:
        """Events lost: the queue full (the sink thread behind) or the spool full."""
        return self.queue_dropped + self.spool.dropped

    @property
    def spooled(self) -> int:
        """Events waiting in the spool."""
        return len(self.spool)

    @property
    def connected_server(self) -> str | None:
        """``HOST:PORT`` of the server the sink publishes to now (None: not connected)."""
        nc = self._nc
        url = getattr(nc, "connected_url", None) if nc is not None else None
        return None if url is None else f"{url.hostname}:{url.port}"

    def submit(self, record: dict[str, Any]) -> None:
        """Queue *record* (a :class:`~libvirt_nitro.output.JsonFormatter` dict) for
        publishing; never blocks. Thread-safe for one producer."""
        self._seq += 1
        if len(self._queue) >= self.queue_max:
            self.queue_dropped += 1
            return
        self._queue.append((self._seq, time.monotonic(), record))
        if len(self._queue) == 1:
            self._poke()

    def start(self, require_broker: bool = True, timeout: float = 10.0) -> None:
        """Start the sink thread; with *require_broker*, wait until it is connected and the
        stream exists.

        :raises NitroError: with *require_broker*, the broker cannot be reached, refuses
            the credentials, or the stream cannot be made.
        """
        nats_module()  # a missing nats-py is reported here, before any tracing
        self._require_broker = require_broker
        self._thread = threading.Thread(target=self._run, name="nitro-nats-sink", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout + 5):
            raise NitroError(f"NATS {self.target.url}: no answer in {timeout:.0f} s")
        if self._start_error is not None:
            self.close()
            raise self._start_error

    def close(self, timeout: float = 10.0) -> None:
        """Publish what is queued (at most *timeout* s; what is left stays in the spool for
        the next sink of this domain) and stop the thread; idempotent."""
        self._stopping = True
        self._close_deadline = time.monotonic() + timeout
        if self._thread is not None and self._thread.is_alive():
            self._poke()
            self._thread.join(timeout + 10)
        self.spool.close()
        self.state = "closed"

    def summary(self) -> dict[str, Any]:
        """``published``, ``spooled``, ``dropped``, ``state``, ``error``."""
        return {
            "published": self.published,
            "spooled": self.spooled,
            "dropped": self.dropped,
            "state": self.state,
            "error": self.last_error,
        }

    # ------------------------------------------------------------ the sink thread
    def _poke(self) -> None:
        """Wake the sink thread's loop from another thread; nothing to wake once the thread
        has ended (its loop closed: a failed start, a crash)."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._wake_up)
        except RuntimeError:  # the loop is closed
            pass

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop))
        except BaseException as exc:  # never lose the start error; log a crash
            if not self._started.is_set():
                self._start_error = exc
                self._started.set()
            else:
                log.error("NATS sink stopped: %s", exc)
        finally:
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wake = asyncio.Event()
        self._loop = loop
        try:
            await self._connect()
        except NitroError as exc:
            if self._require_broker:
                raise
            self._lost(str(exc))
        self._started.set()
        backoff = BACKOFF_MIN
        next_attempt = 0.0
        while True:
            now = time.monotonic()
            if self._stopping and (
                self._nc is None or now >= self._close_deadline or not (self._queue or self.spool)
            ):
                self._spill()
                break
            if self._nc is None:
                self._spill()
                if now >= next_attempt:
                    try:
                        await self._connect()
                        backoff = BACKOFF_MIN
                        log.info("NATS: connected again; %d events to replay", self.spooled)
                    except NitroError as exc:
                        self.last_error = str(exc)
                        next_attempt = time.monotonic() + backoff
                        backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                await self._sleep(min(0.1, next_attempt - now))
                continue
            if len(self.spool):
                self._spill()
                entries = self.spool.peek(self.batch)
                if await self._publish(entries):
                    self.spool.commit(len(entries))
                continue
            entries = self._take(self.batch)
            if not entries:
                await self._sleep(0.1)
                continue
            if not await self._publish(entries):
                self.spool.append(entries)
                self._submitted.clear()
        await self._disconnect()

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        if self._queue or self._stopping:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.001))
        except TimeoutError:
            pass

    def _take(self, limit: int) -> list[Entry]:
        """Up to *limit* queued records as spool entries (subject, id, payload)."""
        entries = []
        queue = self._queue
        prefix, host, uuid = self.target.prefix, self.host, self.domain_uuid
        times = self._submitted
        for _ in range(min(limit, len(queue))):
            seq, submitted, record = queue.popleft()
            record.update(host=host, domain=self.domain_name, uuid=uuid, seq=seq)
            msg_id = f"{uuid}-{self._session}-{seq}"
            times[msg_id] = submitted
            entries.append(
                (
                    event_subject(prefix, host, uuid, record.get("name")),
                    msg_id,
                    json.dumps(record, separators=(",", ":")).encode(),
                )
            )
        return entries

    def _spill(self) -> None:
        """Everything queued to the spool (it must come after what the spool holds)."""
        while self._queue:
            self.spool.append(self._take(self.batch))
        self._submitted.clear()

    async def _connect(self) -> None:
        self.state = "connecting" if self.state == "connecting" else "reconnecting"
        nc = await open_connection(
            self.target,
            self.credentials,
            name=f"libvirt-nitro sink {self.host} {self.domain_name}",
            error_cb=self._on_error,
        )
        js = nc.jetstream(timeout=self.ack_timeout)
        try:
            self._stream = await ensure_stream(js, self.target)
        except NitroError:
            await nc.close()
            raise
        self._nc, self._js = nc, js
        self.state = "connected"
        self.last_error = None

    def _on_error(self, exc: Exception) -> None:
        self.last_error = describe(exc)

    async def _publish(self, entries: list[Entry]) -> bool:
        """Publish *entries* and wait for all their acknowledgements; False (and the
        connection dropped) if the broker did not acknowledge them all in time."""
        js = self._js
        latencies, delays, times = self.ack_latencies, self.event_latencies, self._submitted
        futures = []
        try:
            for subject, msg_id, payload in entries:
                sent = time.monotonic()
                future = await js.publish_async(
                    subject,
                    payload,
                    wait_stall=self.ack_timeout,
                    headers={"Nats-Msg-Id": msg_id},
                )
                submitted = times.pop(msg_id, None)

                def done(_future: Any, sent: float = sent, submitted: float | None = submitted):
                    now = time.monotonic()
                    latencies.append(now - sent)
                    if submitted is not None:
                        delays.append(now - submitted)

                future.add_done_callback(done)
                futures.append(future)
            await asyncio.wait_for(asyncio.gather(*futures), self.ack_timeout)
        except Exception as exc:
            for future in futures:
                future.cancel()
            self._lost(describe(exc))
            await self._disconnect()
            return False
        self.published += len(entries)
        return True

    def _lost(self, why: str) -> None:
        if self.state != "reconnecting":
            log.warning("NATS: broker away (%s); spooling events", why)
        self.state = "reconnecting"
        self.last_error = why

    async def _disconnect(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), 2.0)
            except Exception:  # closing a dead connection: nothing to report
                pass


class SinkPrinter:
    """A :class:`~libvirt_nitro.output.Printer` look-alike for the tracer's callback: each
    event's JSON record goes to *sink*, and through *also* (the ``-o`` file) if given;
    ``printed`` counts the events."""

    def __init__(self, sink: NatsSink, formatter: JsonFormatter, also: Printer | None = None):
        self.sink = sink
        self.formatter = formatter
        self.also = also
        self.printed = 0

    def write(self, event: Any) -> None:
        """Submit *event*'s record (and print it through *also*)."""
        self.printed += 1
        if self.also is not None:
            self.also.write(event)
        self.sink.submit(self.formatter.as_dict(event.record))


def spool_dir_for(base: str | os.PathLike, domain_uuid: str) -> Path:
    """The spool directory of one domain under *base*."""
    return Path(base) / token(domain_uuid)
