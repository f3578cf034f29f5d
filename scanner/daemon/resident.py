"""The gate's resident memory: library pages that only starting up needed, given back.

Starting a gate runs a great deal of library code once: importing numpy, pydantic and
cryptography, building the config's validators, opening the store, making the pins. The
kernel maps every page of a library the process touches, and up to fifteen of its
neighbours with it, and counts them in the process's resident set for as long as they
stay mapped: about 15 MB that the running gate never touches again, a fifth of its VmRSS.

`give_back_library_pages` unmaps the pages of files mapped read-only and privately that
hold nothing but the file's own bytes (library code and constants, never a page the
process wrote), so that the resident set is what the gate uses. The pages stay in the
kernel's page cache: one needed again is mapped again on its first touch (a minor fault,
a few microseconds), or read from the disk if the kernel has dropped it from the cache
meanwhile, as it may under memory pressure with any page of a library. Nothing else
changes: `madvise(MADV_DONTNEED)` on such a mapping only unmaps its pages.

Linux only (the gate's platform); elsewhere, or where /proc or madvise is not allowed,
nothing is given back and the gate runs as before. Call it before the gate's own threads
start: a mapping unmapped, and its addresses reused, between the listing and the madvise
would lose what the new one holds. CPython never unloads a library, so within `qrgate
run`'s start nothing unmaps one.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SMAPS = Path("/proc/self/smaps")
KB = 1024
HEAD = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")
SIZES = ("Rss", "Anonymous", "Private_Dirty", "Swap")
# Kernel flags of mappings whose pages are pinned or are not the file's own pages: locked
# (lo), I/O memory (io), raw page frames (pf), mixed maps (mm). None of them is given back.
PINNED = frozenset({"lo", "io", "pf", "mm"})

Madvise = Callable[[int, int], bool]  # (start, length) -> done


@dataclass(frozen=True, slots=True)
class Region:
    """One mapping of /proc/PID/smaps, with what decides whether it can be given back."""

    start: int
    end: int
    perms: str  # r w x, then p (private) or s (shared)
    path: str
    sizes_kb: dict[str, int]  # SIZES; Anonymous: pages copied on write, the process's own
    flags: frozenset[str]

    @property
    def resident_kb(self) -> int:
        return self.sizes_kb.get("Rss", 0)

    @property
    def only_file_pages(self) -> bool:
        """Mapped read-only and privately from a file, resident, holding only its bytes."""
        written = any(self.sizes_kb.get(size, 1) for size in SIZES[1:])
        return (
            self.perms[:2] == "r-"
            and self.perms[3] == "p"
            and self.path.startswith("/")
            and not self.path.startswith("/dev/")
            and self.resident_kb > 0
            and not written
            and not self.flags & PINNED
        )


def regions(smaps: Iterable[str]) -> Iterator[Region]:
    """The mappings /proc/PID/smaps lists, in its order (read line by line: the file is
    some hundred kilobytes, which held at once would cost what it is meant to save)."""
    head: tuple[str, ...] | None = None
    sizes: dict[str, int] = {}
    for line in smaps:
        found = HEAD.match(line)
        if found:
            head, sizes = found.groups(), {}
            continue
        key, _, value = line.partition(":")
        if key in SIZES:
            sizes[key] = int(value.split()[0])
        elif key == "VmFlags" and head is not None:  # the last line of each mapping
            start, end, perms, path = head
            yield Region(int(start, 16), int(end, 16), perms, path, sizes, frozenset(value.split()))
            head = None


def returnable(smaps: Iterable[str]) -> list[Region]:
    """The regions whose resident pages are a regular file's own bytes."""
    return [
        region
        for region in regions(smaps)
        if region.only_file_pages and is_regular_file(region.path)
    ]


def is_regular_file(path: str) -> bool:
    """A file that still exists (a deleted one, " (deleted)", keeps its pages mapped)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def give_back_library_pages(smaps: Path = SMAPS, madvise: Madvise | None = None) -> int:
    """Unmap the resident pages of the regions `returnable` names; the bytes given back
    (0 where /proc/self/smaps or madvise is not available)."""
    try:
        with smaps.open() as lines:
            found = returnable(lines)
        unmap = madvise or dont_need()
    except (OSError, AttributeError) as error:
        log.debug("no library pages given back: %s", error)
        return 0
    given = KB * sum(
        region.resident_kb for region in found if unmap(region.start, region.end - region.start)
    )
    log.debug("gave back %.1f MB of library pages", given / 1e6)
    return given


def dont_need() -> Madvise:
    """madvise(MADV_DONTNEED) through the C library; AttributeError where there is none."""
    libc = ctypes.CDLL(None, use_errno=True)
    call = libc.madvise
    call.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    call.restype = ctypes.c_int
    advice = mmap.MADV_DONTNEED

    def unmap(start: int, length: int) -> bool:
        return bool(call(start, length, advice) == 0)

    return unmap
