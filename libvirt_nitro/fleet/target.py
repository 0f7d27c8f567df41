"""Where events go: the ``nats://HOST:PORT[,HOST:PORT...]/PREFIX[?replicas=N]`` URL and
the credentials to log in with.

Several ``HOST:PORT`` (comma-separated) name the servers of one cluster; ``PREFIX`` (dot-
separated tokens, default ``nitro``) starts every subject; ``replicas`` is the replication
of the stream the sink creates when it does not exist (1 to 5, default 1).

Credentials never come from the command line: a URL with ``user:password@`` is refused.
They come from a file (``--nats-auth FILE``, ``<nitro:nats credentials=...>``), whose first
line that is not a comment is ``USER:PASSWORD`` or an nkey seed (``SU...``, needs the
``nkeys`` package), or else from the environment: ``LIBVIRT_NITRO_NATS_USER`` and
``LIBVIRT_NITRO_NATS_PASSWORD``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from ..errors import NitroError
from .subjects import valid_prefix

__all__ = ["NatsTarget", "Credentials", "parse_url", "load_credentials", "DEFAULT_PREFIX"]

#: The subject prefix when the URL has no path.
DEFAULT_PREFIX = "nitro"
DEFAULT_PORT = 4222
ENV_USER = "LIBVIRT_NITRO_NATS_USER"
ENV_PASSWORD = "LIBVIRT_NITRO_NATS_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    """A user and password, or an nkey seed; all None: no credentials."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    nkey_seed: str | None = field(default=None, repr=False)

    def connect_options(self) -> dict[str, str]:
        """Keyword arguments of ``nats.connect`` for these credentials."""
        if self.nkey_seed is not None:
            return {"nkeys_seed_str": self.nkey_seed}
        if self.user is not None:
            return {"user": self.user, "password": self.password or ""}
        return {}


@dataclass(frozen=True)
class NatsTarget:
    """A parsed ``nats://`` URL: the servers (``nats://HOST:PORT`` each), the subject
    prefix, the stream's replicas; :attr:`url` is the text it came from."""

    servers: tuple[str, ...]
    prefix: str = DEFAULT_PREFIX
    replicas: int = 1
    url: str = ""


def parse_url(url: str) -> NatsTarget:
    """Parse ``nats://HOST:PORT[,HOST:PORT...]/PREFIX[?replicas=N]``.

    :raises NitroError: not such a URL (the message names what is wrong).
    """
    where = f"{url!r}"
    if not url.startswith("nats://"):
        raise NitroError(f"{where}: not a nats://HOST:PORT/PREFIX URL")
    rest = url.removeprefix("nats://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    if "@" in netloc:
        raise NitroError(
            f"nats URL: credentials do not go in the URL (they would show in ps): use "
            f"--nats-auth FILE or {ENV_USER}/{ENV_PASSWORD}"
        )
    servers = []
    for hostport in netloc.split(","):
        host, port = _host_port(hostport, where)
        servers.append(f"nats://{host}:{port}")
    prefix = path.strip("/") or DEFAULT_PREFIX
    if not valid_prefix(prefix):
        raise NitroError(
            f"{where}: subject prefix {prefix!r} must be dot-separated tokens of "
            "[A-Za-z0-9_-] (no wildcards)"
        )
    replicas = 1
    for key, values in parse_qs(query, keep_blank_values=True, strict_parsing=False).items():
        if key != "replicas":
            raise NitroError(f"{where}: unknown option {key!r} (known: replicas)")
        if not values[-1].isdigit() or not 1 <= int(values[-1]) <= 5:
            raise NitroError(f"{where}: replicas must be 1 to 5, not {values[-1]!r}")
        replicas = int(values[-1])
    return NatsTarget(tuple(servers), prefix, replicas, url)


def _host_port(text: str, where: str) -> tuple[str, int]:
    if not text:
        raise NitroError(f"{where}: no HOST:PORT")
    if text.startswith("["):  # [::1]:4222
        host, _, port_text = text[1:].partition("]")
        host = f"[{host}]"
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise NitroError(f"{where}: no host in {text!r}")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise NitroError(f"{where}: bad port {port_text!r}")
    return host, int(port_text)


def load_credentials(path: str | None = None) -> Credentials:
    """The credentials of the file *path* (``USER:PASSWORD`` or an nkey seed ``SU...``),
    else of the environment (``LIBVIRT_NITRO_NATS_USER``/``_PASSWORD``), else none.

    :raises NitroError: the file cannot be read or holds neither form.
    """
    if path is None:
        user = os.environ.get(ENV_USER)
        if user is None:
            return Credentials()
        return Credentials(user=user, password=os.environ.get(ENV_PASSWORD, ""))
    try:
        with open(path, encoding="utf-8") as stream:
            lines = [line.strip() for line in stream]
    except OSError as exc:
        raise NitroError(f"NATS credentials {path}: {exc.strerror}") from None
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.startswith("SU") and ":" not in line:
            return Credentials(nkey_seed=line)
        user, sep, password = line.partition(":")
        if sep and user:
            return Credentials(user=user, password=password)
        break
    raise NitroError(f"NATS credentials {path}: expected a line USER:PASSWORD or an nkey seed")
