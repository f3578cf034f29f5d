"""Logging, configured once by the CLI: readable on a terminal, plain lines for journald."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")

# journald reads a "<N>" syslog priority prefix off each line of a service's stderr.
SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    """`<6>scanner.daemon.service: message`: journald adds the time and keeps the priority."""

    def format(self, record: logging.LogRecord) -> str:
        priority = SYSLOG_PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def under_journald(stream: TextIO) -> bool:
    """True when stderr is connected to the journal (systemd sets JOURNAL_STREAM)."""
    if "JOURNAL_STREAM" not in os.environ:
        return False
    try:
        device, inode = (int(part) for part in os.environ["JOURNAL_STREAM"].split(":"))
        stat = os.fstat(stream.fileno())
    except (ValueError, OSError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Install the one handler of the process on the root logger."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if under_journald(stream):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    elif stream.isatty():
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
