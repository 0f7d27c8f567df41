"""The service's log lines: one line each, with a syslog priority prefix (``<6>…``), which
journald (SyslogLevelPrefix) and syslog-style collectors parse."""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["JournalFormatter", "setup_logging"]

# sd-daemon(3) priority prefixes, which journald and syslog-style collectors parse.
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    """``<6>libvirt-nitro serve web01: message``: one line, with the syslog priority."""

    def __init__(self, ident: str):
        super().__init__()
        self.ident = ident

    def format(self, record: logging.LogRecord) -> str:
        """The record as one prefixed line (a traceback is folded onto it)."""
        priority = _PRIORITY.get(record.levelno, 6)
        text = record.getMessage()
        if record.exc_info:
            text += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        return f"<{priority}>{self.ident}: {text}"


def setup_logging(ident: str, stream: Any = None) -> None:
    """Send the service's log to *stream* (stderr) as :class:`JournalFormatter` lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JournalFormatter(ident))
    root = logging.getLogger("libvirt_nitro")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
