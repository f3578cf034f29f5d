"""Disk space held back so that the outbox can always drain.

On a full disk SQLite cannot even delete: a DELETE is written to the write-ahead log
first, and the log may need to grow. A gate whose disk filled up (logs, another program)
would then hold every event the broker has acknowledged, send them again and again, and
never make room. So the outbox keeps a reserve file of a few megabytes beside its
database: when a write of the drain side fails for want of space, the reserve is given
up and the write tried again; the reserve is made again once the disk has room for it
twice over.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MB = 1024 * 1024
RESERVE_BYTES = 4 * MB
SUFFIX = "-reserve"


def reserve_path(database: Path) -> Path:
    """Where the reserve of the database at `database` lives: beside it."""
    return database.with_name(database.name + SUFFIX)


class Reserve:
    """A file of `size` bytes whose blocks are really allocated (not a sparse file,
    which would free nothing when removed)."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size

    @property
    def held(self) -> bool:
        """The reserve is there, whole (one cut short by a crash is made again)."""
        try:
            return self.size > 0 and self.path.stat().st_size >= self.size
        except OSError:
            return False

    def ensure(self) -> bool:
        """Make the reserve when it is missing and the disk has room for it twice over;
        True when it is held afterwards. Never raises: a gate runs without it."""
        if self.size <= 0 or self.held:
            return self.held
        try:
            stats = os.statvfs(self.path.parent)
            if stats.f_bavail * stats.f_frsize < 2 * self.size:
                return False
            self.path.unlink(missing_ok=True)
            self._allocate()
        except OSError as error:
            log.warning("cannot make the disk reserve %s: %s", self.path, error)
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            return False
        log.info("disk reserve of %d MB held in %s", self.size // MB, self.path)
        return True

    def release(self) -> bool:
        """Give the reserve's space back to the disk; True when there was one to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            log.error("cannot release the disk reserve %s: %s", self.path, error)
            return False
        log.warning(
            "the disk is full: released the %d MB reserve %s so that acknowledged events "
            "can leave the outbox",
            self.size // MB,
            self.path,
        )
        return True

    def _allocate(self) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.posix_fallocate(descriptor, 0, self.size)
            except OSError as error:
                if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                write_zeros(descriptor, self.size)  # a filesystem without fallocate
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def write_zeros(descriptor: int, size: int) -> None:
    block = bytes(64 * 1024)
    written = 0
    while written < size:
        written += os.write(descriptor, block[: size - written])
