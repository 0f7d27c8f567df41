"""A private ``nats-server`` on loopback, with JetStream and a password: for trying the
fleet path on one host, for the tests and for the bench (never an open broker).

:class:`LocalNats` writes a configuration file (``listen``, ``authorization`` with one
user, ``jetstream`` with its store in a directory of the caller's), starts Debian's
``nats-server`` on it, and waits until the port answers. :func:`cluster` starts three
routed to each other (a JetStream cluster: streams with 3 replicas).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["LocalNats", "cluster", "free_port", "NATS_SERVER", "USER", "PASSWORD"]

NATS_SERVER = "nats-server"
USER = "nitro"
PASSWORD = "nitro-test-password"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalNats:
    """One ``nats-server`` on 127.0.0.1:*port* with its store under *directory*.

    *routes* (``cluster_port`` of the others) and *cluster_port* make it a cluster node;
    :meth:`start`/:meth:`kill` may be called again (same port, same store).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        port: int | None = None,
        *,
        name: str = "n1",
        cluster_port: int | None = None,
        routes: tuple[int, ...] = (),
        user: str = USER,
        password: str = PASSWORD,
    ):
        self.directory = Path(directory)
        self.port = port or free_port()
        self.name = name
        self.cluster_port = cluster_port
        self.routes = routes
        self.user, self.password = user, password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``."""
        return f"nats://127.0.0.1:{self.port}"

    def config(self) -> str:
        """The server's configuration text."""
        store = self.directory / f"store-{self.name}"
        lines = [
            f"server_name: {self.name}",
            f"listen: 127.0.0.1:{self.port}",
            f'authorization {{ user: "{self.user}", password: "{self.password}" }}',
            f'jetstream {{ store_dir: "{store}", max_file_store: 1G, max_memory_store: 64M }}',
        ]
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            lines.append(
                f"cluster {{ name: nitro, listen: 127.0.0.1:{self.cluster_port}, "
                f"routes: [{routes}] }}"
            )
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 20.0) -> LocalNats:
        """Start the server and wait until its port accepts connections."""
        if shutil.which(NATS_SERVER) is None:
            raise FileNotFoundError(f"{NATS_SERVER} is not installed (apt-get install nats-server)")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        conf = self.directory / f"{self.name}.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            stream.write(self.config())
        log = open(self.directory / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited: see {log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"nats-server {self.name} not listening after {timeout} s"
                    ) from None
                time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server (SIGKILL by default: a crash) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> LocalNats:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.kill(signal.SIGTERM)


def cluster(directory: str | os.PathLike, size: int = 3) -> list[LocalNats]:
    """*size* servers routed to each other (not started)."""
    cluster_ports = [free_port() for _ in range(size)]
    return [
        LocalNats(
            directory,
            name=f"n{i + 1}",
            cluster_port=cluster_ports[i],
            routes=tuple(p for j, p in enumerate(cluster_ports) if j != i),
        )
        for i in range(size)
    ]
