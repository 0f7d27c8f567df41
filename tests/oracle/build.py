"""Build strace's test programs statically and put them into a test guest image.

The source is Debian's strace source package at the version the guest runs (the guest's
strace comes from ``apt-get download strace``: its candidate version, 6.1 on Debian 12),
fetched with ``apt-get source --download-only`` through a private deb-src list (the
machine's apt configuration is not touched). Its release tarball carries a generated
``configure``; ``./configure --enable-mpers=no`` then ``make -C tests NAME...
LDFLAGS=-static`` builds the programs against the host's libc and kernel headers (Debian
12: glibc 2.36, Linux 6.1 headers, as the guest).

Everything is cached under :data:`CACHE` keyed by the Debian version: the source, the
configured tree with the programs built so far (``make`` adds only what is missing), the
cpio archives of program sets, and the guest initrds (the test guest's initrd with one such
archive appended: the kernel unpacks concatenated archives).

    python -m tests.oracle.build [NAME...]     # build (default: every candidate), print the
                                               # initrd path and the times
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from libvirt_nitro.testing.guest import GuestImage

__all__ = ["CACHE", "StraceTree", "strace_version", "prepare", "oracle_image"]

CACHE = Path(os.environ.get("LIBVIRT_NITRO_CACHE", "/var/cache/libvirt-nitro")) / "strace-tests"
#: The guest's launcher (``/oracle/launch NAME [REDIRECTION...] -- [ARG...]``: runs one
#: test program as strace's harness does, in a handful of system calls).
LAUNCH_C = Path(__file__).with_name("launch.c")
#: ``/oracle/fetch NAME``: the program's stdout and stderr, gzip'd and base64'd, then its
#: files removed.
FETCH = r"""#!/bin/busybox sh
# oracle fetch (tests/oracle/build.py): fetch NAME -> its stdout and stderr, gzip+base64
name=$1
for part in out err; do
    echo "oracle-begin-$part"
    gzip -c "/oracle/tests/$name.$part" | base64
    echo "oracle-end-$part"
done
rm -rf "/oracle/tests/$name.dir" "/oracle/tests/$name.out" "/oracle/tests/$name.err"
"""


def _log(message: str) -> None:
    print(f"strace-oracle: {message}", file=sys.stderr, flush=True)


def strace_version(image: GuestImage | None = None) -> str:
    """The Debian version of the guest's strace (from its ``guest.env``, else apt's
    candidate): ``6.1-0.1``."""
    if image is not None:
        match = re.search(r"\bstrace=(\S+)", image.env.get("STRACE_PACKAGES", ""))
        if match:
            return match.group(1)
    out = subprocess.run(
        ["apt-cache", "policy", "strace"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Candidate:\s*(\S+)", out)
    if not match or match.group(1) == "(none)":
        raise RuntimeError("apt-cache knows no strace candidate (run apt-get update)")
    return match.group(1)


def _toolchain() -> str:
    """What the programs are built with (a change rebuilds them)."""
    parts = []
    for package in ("gcc-12", "libc6-dev", "linux-libc-dev", "make"):
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
        )
        parts.append(f"{package}={done.stdout.strip() or '?'}")
    return " ".join(parts)


@contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@dataclass
class StraceTree:
    """A configured strace source tree in the cache."""

    version: str
    root: Path  # CACHE/VERSION
    source: Path  # the configured tree (strace-6.1)
    seconds: float = 0.0  # what preparing it took now (0 when cached)

    @property
    def tests(self) -> Path:
        """Its ``tests`` directory (sources, and the programs once built)."""
        return self.source / "tests"


def prepare(version: str) -> StraceTree:
    """The configured strace source tree of Debian version *version*: downloaded, unpacked
    and configured the first time, then reused (a new toolchain configures it again)."""
    root = CACHE / version
    with _locked(root):
        start = time.monotonic()
        stamp = root / "configured"
        toolchain = _toolchain()
        trees = sorted(p for p in root.glob("strace-*") if p.is_dir())
        if trees and stamp.exists() and stamp.read_text() == toolchain:
            return StraceTree(version, root, trees[-1])
        tarball = _download(root, version)
        for tree in trees:
            shutil.rmtree(tree)
        stamp.unlink(missing_ok=True)
        _log(f"unpacking {tarball.name}")
        subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True)
        trees = sorted(p for p in root.glob("strace-*") if p.is_dir())
        source = trees[-1]
        _log(f"configuring {source.name} (--enable-mpers=no)")
        _run(["./configure", "--enable-mpers=no", "--quiet"], source, root / "configure.log")
        _run(["make", "-C", "tests", "ksysent.h", "scno.h"], source, root / "make.log")
        stamp.write_text(toolchain)
        return StraceTree(version, root, source, time.monotonic() - start)


def _download(root: Path, version: str) -> Path:
    """strace's release tarball (``strace_UPSTREAM.orig.tar.xz``) of Debian *version*."""
    upstream = version.split(":")[-1].rsplit("-", 1)[0]
    tarball = root / f"strace_{upstream}.orig.tar.xz"
    if tarball.exists():
        return tarball
    apt = root / "apt"
    for sub in ("sources.d", "lists/partial", "cache/archives/partial"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "sources.d" / "debian-src.sources").write_text(
        "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    options = [
        f"-oDir::Etc::SourceParts={apt / 'sources.d'}",
        "-oDir::Etc::SourceList=/dev/null",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        "-oAPT::Sandbox::User=root",
        "-q",
    ]
    _log(f"downloading the strace {version} source package (apt-get source)")
    _run(["apt-get", *options, "update"], root, root / "apt.log")
    _run(
        ["apt-get", *options, "source", "--download-only", f"strace={version}"],
        root,
        root / "apt.log",
    )
    if not tarball.exists():
        raise RuntimeError(f"apt-get source gave no {tarball.name} (see {root / 'apt.log'})")
    return tarball


def _run(command: list[str], cwd: Path, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}); {log}:\n{tail}")


def build_programs(tree: StraceTree, names: list[str]) -> tuple[list[str], dict[str, str]]:
    """``make -C tests NAMES LDFLAGS=-static`` (only what is missing is built): the names
    built, and those that failed with the end of their error."""
    with _locked(tree.root):
        missing = [n for n in names if not (tree.tests / n).is_file()]
        if missing:
            _log(f"building {len(missing)} test programs statically")
            jobs = str(os.cpu_count() or 1)
            log = tree.root / "make.log"
            with log.open("a") as out:
                subprocess.run(
                    ["make", "-k", "-j", jobs, "-C", "tests", *missing, "LDFLAGS=-static"],
                    cwd=tree.source,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        built = [n for n in names if (tree.tests / n).is_file()]
        failed = {n: "does not build statically (see make.log)" for n in names if n not in built}
        return built, failed


def _cpio(tree: StraceTree, names: list[str]) -> Path:
    """A gzip'd newc cpio with /oracle/{launch,fetch} and /oracle/tests/NAME (stripped)."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0")
        digest.update(str((tree.tests / name).stat().st_mtime_ns).encode())
    digest.update(LAUNCH_C.read_bytes() + FETCH.encode())
    out = tree.root / "cpio" / f"{digest.hexdigest()[:16]}.cpio.gz"
    if out.exists():
        return out
    out.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tree.root) as tmp:
        top = Path(tmp) / "oracle"
        (top / "tests").mkdir(parents=True)
        (top / "fetch").write_text(FETCH)
        (top / "fetch").chmod(0o755)
        subprocess.run(
            ["gcc", "-static", "-O2", "-Wall", "-Werror", "-s", "-o", str(top / "launch")]
            + [str(LAUNCH_C)],
            check=True,
        )
        for name in names:
            subprocess.run(
                ["strip", "-o", str(top / "tests" / name), str(tree.tests / name)], check=True
            )
        listing = subprocess.run(
            ["find", "oracle", "-print0"], cwd=tmp, capture_output=True, check=True
        ).stdout
        archive = subprocess.run(
            ["cpio", "--null", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
            cwd=tmp,
            input=b"\0".join(sorted(listing.rstrip(b"\0").split(b"\0"))) + b"\0",
            capture_output=True,
            check=True,
        ).stdout
        partial = out.with_suffix(".partial")
        with gzip.open(partial, "wb", compresslevel=6) as file:
            shutil.copyfileobj(io.BytesIO(archive), file)
        partial.rename(out)
    return out


def oracle_image(image: GuestImage, tree: StraceTree, names: list[str]) -> GuestImage:
    """*image* with the programs *names* appended to its initrd (a world-readable file in
    the cache: libvirt's QEMU reads it without relabelling)."""
    with _locked(tree.root):
        cpio = _cpio(tree, names)
        key = hashlib.sha256(f"{image.initrd}\0{cpio.name}".encode()).hexdigest()[:16]
        initrd = tree.root / "images" / f"initrd-{key}.img"
        if not initrd.exists():
            initrd.parent.mkdir(exist_ok=True)
            partial = initrd.with_suffix(".partial")
            with partial.open("wb") as out:
                for part in (image.initrd, cpio):
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out)
            partial.rename(initrd)
        for path in (CACHE, tree.root, initrd.parent):
            path.chmod(0o755)
        initrd.chmod(0o644)
        return GuestImage(image.directory, {**image.env, "INITRD": str(initrd)})


def main(argv: list[str]) -> int:
    """Build (default: every candidate) and print the initrd and the times."""
    from .catalog import catalogue

    start = time.monotonic()
    image = GuestImage.build()
    tree = prepare(strace_version(image))
    prepared = time.monotonic()
    names = argv or catalogue(tree.source).programs()
    built, failed = build_programs(tree, names)
    compiled = time.monotonic()
    variant = oracle_image(image, tree, built)
    done = time.monotonic()
    for name, why in sorted(failed.items()):
        print(f"{name}: {why}", file=sys.stderr)
    print(variant.initrd)
    print(
        f"strace {tree.version}: {len(built)}/{len(names)} programs; source+configure "
        f"{prepared - start:.0f} s, make {compiled - prepared:.0f} s, image "
        f"{done - compiled:.0f} s",
        file=sys.stderr,
    )
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
