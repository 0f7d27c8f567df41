"""One way to open a NATS connection and the JetStream stream of a prefix, with every
failure a one-line :class:`~libvirt_nitro.errors.NitroError` (no traceback for a broker
that is down, refuses the credentials or forbids the stream)."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import NitroError
from .subjects import stream_name
from .target import Credentials, NatsTarget

__all__ = ["nats_module", "open_connection", "ensure_stream", "describe", "DUPLICATE_WINDOW"]

#: Seconds JetStream remembers a message id: a re-published event is stored once.
DUPLICATE_WINDOW = 600.0


def nats_module() -> Any:
    """The ``nats`` package (nats-py), imported on first use.

    :raises NitroError: it is not installed.
    """
    try:
        import nats
        import nats.js.api  # noqa: F401  (the stream and consumer configurations)
    except ImportError:
        raise NitroError("NATS needs the nats-py package (pip install nats-py)") from None
    return nats


def describe(exc: BaseException) -> str:
    """A one-line description of a nats-py or socket error."""
    description = getattr(exc, "description", None)  # a JetStream API error
    if description:
        return str(description)
    if isinstance(exc, ModuleNotFoundError):
        return f"needs the {exc.name} package (pip install {exc.name})"
    name = type(exc).__name__
    text = str(exc).strip().removeprefix("nats: ").strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if not text or name in ("TimeoutError", "NoServersError"):
        return {"NoServersError": "no server answers", "TimeoutError": "timed out"}.get(name, name)
    return text


async def open_connection(
    target: NatsTarget,
    credentials: Credentials,
    *,
    name: str,
    timeout: float = 5.0,
    error_cb: Any = None,
) -> Any:
    """Connect to one of *target*'s servers (no automatic reconnection: the caller owns it).

    :raises NitroError: no server answers, or it refuses the credentials.
    """
    nats = nats_module()

    async def quiet(exc: Exception) -> None:
        if error_cb is not None:
            error_cb(exc)

    try:
        # each server tried twice (nats-py: attempts > 1 discards it), then NoServersError
        return await asyncio.wait_for(
            nats.connect(
                servers=list(target.servers),
                name=name,
                connect_timeout=max(1, int(timeout)),
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.05,
                error_cb=quiet,
                **credentials.connect_options(),
            ),
            timeout * 2 * len(target.servers) + 1,
        )
    except Exception as exc:  # nats-py raises many kinds; all mean the same to the user
        where = target.url or ",".join(target.servers)
        raise NitroError(f"NATS {where}: {describe(exc)}") from None


async def ensure_stream(js: Any, target: NatsTarget) -> str:
    """The name of *target*'s stream (:func:`~.subjects.stream_name`), created if absent:
    file storage, subjects ``PREFIX.>``, *target*'s replicas, a duplicate window of
    :data:`DUPLICATE_WINDOW`.

    :raises NitroError: it cannot be looked up or created (permissions, cluster size).
    """
    nats = nats_module()
    name = stream_name(target.prefix)
    try:
        await js.stream_info(name)
        return name
    except nats.js.errors.NotFoundError:
        pass
    except Exception as exc:
        raise NitroError(f"NATS stream {name}: {describe(exc)}") from None
    api = nats.js.api
    try:
        await js.add_stream(
            api.StreamConfig(
                name=name,
                subjects=[f"{target.prefix}.>"],
                storage=api.StorageType.FILE,
                num_replicas=target.replicas,
                duplicate_window=DUPLICATE_WINDOW,
            )
        )
    except Exception as exc:
        raise NitroError(f"NATS stream {name}: cannot create it: {describe(exc)}") from None
    return name
