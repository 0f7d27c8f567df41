"""Subject and stream names of the events published to NATS JetStream.

Every event is published on ``PREFIX.<host>.<domain-uuid>.<syscall>``: consumers select a
host, a domain or a call by subject alone (``PREFIX.hv1.*.openat``). Each token is made of
``[A-Za-z0-9_-]`` only (NATS splits subjects at ``.``, and ``*``/``>`` are wildcards), so
a host name ``hv1.example.org`` becomes the token ``hv1_example_org``. The stream that
stores them, :func:`stream_name`, captures ``PREFIX.>``.
"""

from __future__ import annotations

import re

__all__ = [
    "token",
    "event_subject",
    "filter_subject",
    "stream_name",
    "valid_prefix",
    "UNKNOWN_CALL",
]

#: The token of a call whose name is unknown (an exit whose entry was not seen).
UNKNOWN_CALL = "unknown"
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def token(text: str | None) -> str:
    """*text* as one subject token: every character outside ``[A-Za-z0-9_-]`` becomes
    ``_``; empty or None gives :data:`UNKNOWN_CALL`."""
    if not text:
        return UNKNOWN_CALL
    return _NOT_TOKEN.sub("_", text)


def valid_prefix(prefix: str) -> bool:
    """Whether *prefix* is one or more dot-separated tokens, no wildcard."""
    return bool(_PREFIX.fullmatch(prefix))


def event_subject(prefix: str, host: str, uuid: str, syscall: str | None) -> str:
    """``PREFIX.<host>.<uuid>.<syscall>``, each part made a token by :func:`token`."""
    return f"{prefix}.{token(host)}.{token(uuid)}.{token(syscall)}"


def filter_subject(
    prefix: str, host: str | None = None, uuid: str | None = None, syscall: str | None = None
) -> str:
    """The subject a consumer filters on: :func:`event_subject` with ``*`` for each part
    not given (``PREFIX.>`` when none is)."""
    if host is None and uuid is None and syscall is None:
        return f"{prefix}.>"
    parts = [token(part) if part is not None else "*" for part in (host, uuid, syscall)]
    return ".".join([prefix, *parts])


def stream_name(prefix: str) -> str:
    """The JetStream stream of *prefix*: upper case, ``.`` and ``-`` as ``_``
    (``nitro.prod`` → ``NITRO_PROD``)."""
    return re.sub(r"[^A-Z0-9_]", "_", prefix.upper())
