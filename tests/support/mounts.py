"""Real filesystems for storage faults: a small tmpfs to fill up, an ext4 image on a
loop device to remount read-only, and one whose syncs hang (as on a dying SD card).

The hanging syncs: an ext4 image inside a second ext4 image, and the outer one frozen
(fsfreeze). Writes into the inner filesystem's page cache and reads still work; what
must reach the disk (fsync, a journal commit) waits in the kernel until the outer one
is thawed.

Mounting needs root (CAP_SYS_ADMIN): without it, or where the kernel refuses, the test
is skipped and says why. Everything is unmounted (and thawed) on the way out.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False
    )


def mount_or_skip(*command: str | Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem for this fault needs root")
    done = run(*command)
    if done.returncode != 0:
        pytest.skip(f"the kernel refused {' '.join(map(str, command))}: {done.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "8m") mounted at `where`."""
    where.mkdir(parents=True, exist_ok=True)
    mount_or_skip("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", where)
    try:
        yield where
    finally:
        run("umount", "-l", where)


@contextlib.contextmanager
def ext4_image(where: Path, size_mb: int = 16) -> Iterator[Path]:
    """An ext4 filesystem in a file, loop-mounted at `where`."""
    image = where.with_name(where.name + ".img")
    with image.open("wb") as file:
        file.truncate(size_mb * 1024 * 1024)
    made = run("mkfs.ext4", "-q", "-F", image)
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
    where.mkdir(parents=True, exist_ok=True)
    mount_or_skip("mount", "-o", "loop,errors=remount-ro", image, where)
    try:
        yield where
    finally:
        run("fsfreeze", "-u", where)  # in case a test stopped while it was frozen
        run("umount", "-l", where)
        image.unlink(missing_ok=True)


def remount_readonly(where: Path) -> None:
    """Read-only from now on, as after a clean `mount -o remount,ro` (no file open)."""
    done = run("mount", "-o", "remount,ro", where)
    assert done.returncode == 0, done.stderr


def storage_error(where: Path) -> None:
    """An error of the ext4 filesystem at `where`, as a failing card causes: mounted
    with errors=remount-ro, the kernel turns it read-only at once, open files or not."""
    device = Path(run("findmnt", "-n", "-o", "SOURCE", where).stdout.strip()).name
    trigger = Path(f"/sys/fs/ext4/{device}/trigger_fs_error")
    if not trigger.exists():
        pytest.skip(f"this kernel cannot trigger an ext4 error ({trigger} is missing)")
    trigger.write_text("a test of a failing SD card\n")


@contextlib.contextmanager
def frozen(where: Path) -> Iterator[None]:
    """Every write to the filesystem at `where` blocks until the block ends."""
    done = run("fsfreeze", "-f", where)
    if done.returncode != 0:
        pytest.skip(f"the kernel refused to freeze {where}: {done.stderr.strip()}")
    try:
        yield
    finally:
        run("fsfreeze", "-u", where)


class StallingDisk:
    """An ext4 filesystem (`where`, once entered) whose syncs hang inside `stalled()`."""

    def __init__(self, folder: Path) -> None:
        self._lower = folder / "disk"
        self._stack = contextlib.ExitStack()
        self.where = self._lower / "card"

    def __enter__(self) -> StallingDisk:
        self._stack.enter_context(ext4_image(self._lower, size_mb=48))
        self._stack.enter_context(ext4_image(self.where, size_mb=16))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def stalled(self) -> contextlib.AbstractContextManager[None]:
        return frozen(self._lower)


def fill(folder: Path) -> Path:
    """A file that takes every free byte of the filesystem holding `folder`."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as file:
        for block in (256 * 1024, 4096):  # then the last partial block, page by page
            with contextlib.suppress(OSError):
                while True:
                    file.write(b"\0" * block)
    return filler
