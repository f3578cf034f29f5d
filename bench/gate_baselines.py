"""The baseline processes of bench.gate, in a module of their own so that each imports
only what it measures (this module itself imports nothing beyond the standard library).

    python -m bench.gate_baselines camera FOLDER    # its frames at 30 fps into bare zxing-cpp
    python -m bench.gate_baselines imports NAME...  # VmRSS after each import, a line each
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

FPS = 30
MB = 1e6


def rss_mb() -> float:
    """VmRSS of this process in MB (10^6 bytes), as bench.gate reads it from outside."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError("no VmRSS in /proc/self/status")


def camera(folder: Path) -> None:
    """The floor under the daemon's frame loop: decoded frames, bare zxing-cpp, paced."""
    import numpy as np
    import zxingcpp
    from PIL import Image

    frames = [np.asarray(Image.open(path).convert("L")) for path in sorted(folder.glob("*.png"))]
    qr_codes = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    print("ready", flush=True)
    due = time.monotonic()
    while True:
        for frame in frames:
            zxingcpp.read_barcodes(frame, formats=qr_codes)
            due += 1 / FPS
            time.sleep(max(0.0, due - time.monotonic()))


def imports(names: list[str]) -> None:
    print("python", rss_mb(), flush=True)
    for name in names:
        importlib.import_module(name)
        print(name, rss_mb(), flush=True)


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "camera":
        camera(Path(args[0]))
    elif command == "imports":
        imports(args)
    else:
        raise SystemExit(f"unknown baseline {command!r}: expected camera or imports")


if __name__ == "__main__":
    main()
