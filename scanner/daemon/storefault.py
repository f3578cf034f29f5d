"""What is wrong with a gate's database that cannot be used, and what to do about it.

One diagnosis for the daemon (which runs in its fault state and reports it in status
and health) and for `qrgate doctor` (which shows the same finding and fix), so that the
advice a technician reads is the same wherever it is read.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

# SQLite's primary result codes (the low byte of an extended code).
SQLITE_PERM, SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_CANTOPEN = 3, 8, 11, 14
SQLITE_FULL, SQLITE_NOTADB = 13, 26
RESTART = "then sudo systemctl restart qrgate"


class CorruptionError(sqlite3.DatabaseError):
    """Damage found by our own checks, as SQLite's own corruption error."""

    sqlite_errorcode = SQLITE_CORRUPT


@dataclass(frozen=True)
class StoreProblem:
    finding: str
    fix: str

    def __str__(self) -> str:
        return f"{self.finding} -> {self.fix}"


def diagnose(path: Path, error: BaseException) -> StoreProblem:
    """The problem behind `error` (an SQLite error, or one of ours wrapping it) met while
    opening or reading the database at `path`."""
    if read_only_filesystem(path.parent):
        return StoreProblem(
            f"the filesystem holding {path.parent} is mounted read-only",
            "the kernel does this after storage errors: see `dmesg`; reboot so that the "
            "filesystem is checked, and replace the SD card if it happens again; " + RESTART,
        )
    code = sqlite_code(error)
    if code == SQLITE_NOTADB:
        return StoreProblem(
            f"{path} is not a database (overwritten, or its header is damaged)",
            f"stop the gate, move the file aside (sudo mv {path} {path}.broken) and start "
            "the gate: it makes a new store; the allowlist comes back from the centre (or "
            "qrgate allow import); events the old file still held are lost",
        )
    if code == SQLITE_CORRUPT:
        return StoreProblem(
            f"{path} is damaged (SQLite: {cause_text(error)})",
            f"stop the gate and save what can be read (apt package sqlite3): sudo sqlite3 "
            f"{path} .recover | sudo sqlite3 {path}.recovered, then sudo mv {path} "
            f"{path}.broken, sudo mv {path}.recovered {path}, sudo chown qrgate:qrgate "
            f"{path}; check or replace the SD card; " + RESTART,
        )
    if code == SQLITE_FULL or os_errno(error) == errno.ENOSPC:
        return StoreProblem(
            f"the disk holding {path} is full",
            "free space (sudo journalctl --vacuum-size=50M, remove old files); " + RESTART,
        )
    if code in (SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN) or isinstance(
        os_error(error), PermissionError
    ):
        return StoreProblem(
            f"cannot open {path} for writing ({cause_text(error)})",
            f"the service user must own its state folder: sudo chown -R qrgate:qrgate "
            f"{path.parent}; " + RESTART,
        )
    return StoreProblem(
        f"cannot use {path} ({cause_text(error)})", "run sudo qrgate doctor; " + RESTART
    )


def truncation(path: Path) -> CorruptionError | None:
    """A database file shorter than its header says (copied or written only in part):
    found at once from the header, where SQLite would only trip on the missing pages
    when it reads them."""
    try:
        with path.open("rb") as file:
            header = file.read(100)
        size = path.stat().st_size
    except OSError:
        return None  # opening it says what is wrong
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    counter, valid_for = header[24:28], header[92:96]
    if counter != valid_for or size >= pages * page_size:
        return None  # no size to trust in the header, or the file is whole
    return CorruptionError(
        f"the file is shorter than its header says ({size // page_size} of {pages} pages): "
        "truncated"
    )


MOUNTINFO = Path("/proc/self/mountinfo")


def read_only_filesystem(folder: Path, mountinfo: Path = MOUNTINFO) -> bool:
    """Whether the filesystem holding `folder` takes no writes: mounted read-only, or
    turned read-only by the kernel after an error (ext4 `errors=remount-ro`, which newer
    kernels show only as `emergency_ro` in the filesystem's own options)."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
        mounts = mountinfo.read_text().splitlines()
        folder = folder.resolve()
    except OSError:
        return False
    return bool(read_only_options(mount_of(folder, mounts)))


def mount_of(folder: Path, mounts: list[str]) -> list[str]:
    """The fields of the mountinfo line of the mount that holds `folder` (the deepest)."""
    holding = [
        fields
        for fields in (line.split() for line in mounts)
        if len(fields) > 4 and folder.is_relative_to(unescape(fields[4]))
    ]
    return max(holding, key=lambda fields: len(unescape(fields[4]).parts), default=[])


def read_only_options(fields: list[str]) -> set[str]:
    """`ro` among the mount options, `ro` or `emergency_ro` among the filesystem's."""
    if "-" not in fields:
        return set()
    options = set(fields[5].split(","))
    super_options = set(fields[fields.index("-") + 3].split(",")) if len(fields) > 6 else set()
    return (options & {"ro"}) | (super_options & {"ro", "emergency_ro"})


def unescape(path: str) -> Path:
    """A mountinfo path: spaces and the like are octal escapes there (\\040)."""
    return Path(path.encode().decode("unicode_escape"))


def causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    return chain


def sqlite_code(error: BaseException) -> int | None:
    for cause in causes(error):
        code = getattr(cause, "sqlite_errorcode", None)
        if isinstance(cause, sqlite3.Error) and isinstance(code, int):
            return code & 0xFF
    return None


def os_error(error: BaseException) -> OSError | None:
    return next((cause for cause in causes(error) if isinstance(cause, OSError)), None)


def os_errno(error: BaseException) -> int | None:
    found = os_error(error)
    return None if found is None else found.errno


def cause_text(error: BaseException) -> str:
    """The innermost message: SQLite's own words."""
    return str(causes(error)[-1])
