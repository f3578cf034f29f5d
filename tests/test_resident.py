"""Library pages given back after the start: only mappings holding a regular file's own
bytes (never a page the process wrote, a shared or a pinned mapping), and a process that
goes on working with its libraries afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scanner.daemon.resident import give_back_library_pages, returnable

ROOT = Path(__file__).resolve().parent.parent


def region(
    start: int, perms: str, path: str, *, rss: int = 64, written: int = 0, flags: str = "rd mr"
) -> str:
    """One entry of /proc/PID/smaps as the kernel writes it (the lines that matter)."""
    return (
        f"{start:x}-{start + 0x10000:x} {perms} 00000000 fe:00 1234    {path}\n"
        f"Size:                 64 kB\nRss:                {rss:4d} kB\n"
        f"Private_Clean:      {rss - written:4d} kB\nPrivate_Dirty:      {written:4d} kB\n"
        f"Anonymous:          {written:4d} kB\nSwap:                  0 kB\n"
        f"Locked:                0 kB\nVmFlags: {flags}\n"
    )


def test_only_read_only_private_mappings_of_files_never_written_are_returnable(
    tmp_path: Path,
) -> None:
    library = tmp_path / "libdemo.so"
    library.write_bytes(b"\0" * 4096)
    lib = str(library)
    smaps = [
        region(0x1000000, "r--p", lib),  # rodata: given back
        region(0x1100000, "r-xp", lib, flags="rd ex mr mw me"),  # code: given back
        region(0x1200000, "r--p", lib, written=8),  # relocated, then made read-only
        region(0x1300000, "rw-p", lib),  # data
        region(0x1400000, "r--s", lib),  # shared
        region(0x1500000, "r-xp", lib, flags="rd ex mr lo"),  # locked in memory
        region(0x1600000, "r-xp", lib, rss=0),  # nothing resident
        region(0x1700000, "r--p", "/dev/gpiomem"),  # a device
        region(0x1800000, "r--p", "[vvar]"),
        region(0x1900000, "r--p", ""),  # anonymous
        region(0x1A00000, "r-xp", str(tmp_path / "gone.so") + " (deleted)"),
        region(0x1B00000, "r-xp", str(tmp_path)),  # not a regular file
    ]
    found = returnable("".join(smaps).splitlines(keepends=True))
    assert [(hex(chosen.start), chosen.resident_kb) for chosen in found] == [
        ("0x1000000", 64),
        ("0x1100000", 64),
    ]


def test_the_pages_madvise_gave_back_are_counted(tmp_path: Path) -> None:
    library = tmp_path / "libdemo.so"
    library.write_bytes(b"\0" * 4096)
    smaps = tmp_path / "smaps"
    smaps.write_text(
        region(0x1000000, "r--p", str(library), rss=12)
        + region(0x2000000, "r-xp", str(library), rss=40)
        + region(0x3000000, "rw-p", str(library), rss=8)
    )
    calls: list[tuple[int, int]] = []

    def madvise(start: int, length: int) -> bool:
        calls.append((start, length))
        return start != 0x2000000  # refused: its pages stay, and are not counted

    assert give_back_library_pages(smaps, madvise) == 12 * 1024
    assert calls == [(0x1000000, 0x10000), (0x2000000, 0x10000)]


def test_without_proc_nothing_is_given_back(tmp_path: Path) -> None:
    assert give_back_library_pages(tmp_path / "no-smaps", lambda start, length: True) == 0


def test_a_process_uses_its_libraries_after_giving_their_pages_back() -> None:
    script = """
import numpy as np
import pydantic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from scanner.daemon.resident import give_back_library_pages

given = give_back_library_pages()
key = Ed25519PrivateKey.generate()
key.public_key().verify(key.sign(b"event"), b"event")
Model = pydantic.create_model("Model", n=(int, ...))
print(given > 1_000_000, int(np.arange(10).sum()), Model(n="3").n)
"""
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
    assert (done.returncode, done.stdout.split()) == (0, ["True", "45", "3"]), done.stderr
