"""What every ``libvirt-nitro`` verb shares: option types that refuse bad values before
anything is attached, one-line usage errors, and one way to end on an error.

Every failure a user can cause ends as one line on stderr (``libvirt-nitro: error: …``) and
a non-zero exit status, never a traceback: 2 for a bad command line (as argparse), 1 for
anything else.
"""

from __future__ import annotations

import argparse
import math
import sys
import uuid
from collections.abc import Callable
from typing import NoReturn

from .errors import NitroError

__all__ = [
    "PROG",
    "ArgumentParser",
    "positive_int",
    "non_negative_int",
    "positive_seconds",
    "comm_name",
    "domain_uuid",
    "run_verb",
]

PROG = "libvirt-nitro"
#: The longest command name a Linux task has (``TASK_COMM_LEN`` - 1 bytes).
COMM_MAX = 15


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (``libvirt-nitro: error: …``), exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print *message* as one line and exit with status 2."""
        print(f"{PROG}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _typed(name: str, convert: Callable[[str], object], valid: Callable[[object], bool]):
    def parse(text: str) -> object:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not valid(value):
            raise argparse.ArgumentTypeError(f"{name}, not {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


#: An integer > 0 (``--count``, ``-p``).
positive_int = _typed("must be a positive integer", int, lambda v: v > 0)
#: An integer >= 0 (``-s``).
non_negative_int = _typed("must be an integer >= 0", int, lambda v: v >= 0)
#: A finite number of seconds > 0 (``--duration``).
positive_seconds = _typed(
    "must be a number of seconds > 0", float, lambda v: math.isfinite(v) and v > 0
)
#: A guest command name: 1 to 15 bytes, as the guest kernel keeps it (``--comm``).
comm_name = _typed(
    f"must be a command name of 1 to {COMM_MAX} bytes (the guest kernel keeps no more)",
    str,
    lambda v: 0 < len(v.encode()) <= COMM_MAX,
)
#: A domain UUID (``serve``).
domain_uuid = _typed("must be a domain UUID", lambda text: str(uuid.UUID(text)), bool)


def run_verb(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run the verb *func* on *args*; its errors end as one line on stderr and status 1."""
    try:
        return func(args)
    except NitroError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): as strace, not an error
        return 0
    except OSError as exc:  # a file the user named: -o, --set, --hooks-dir...
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:  # a libvirtError we did not anticipate: still one line
        if type(exc).__name__ != "libvirtError":
            raise
        from .domain import describe_error

        return _fail(f"libvirt: {describe_error(exc)}")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1
