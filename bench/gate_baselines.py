"""The baseline processes of bench.gate, in a module of their own so that each imports
only what it measures (this module itself imports nothing beyond the standard library
and bench.proc, which imports nothing else).

    python -m bench.gate_baselines camera STACK.npz   # its frames at 30 fps into bare zxing-cpp
    python -m bench.gate_baselines imports GROUP...   # VmRSS after each group, a line each
    python -m bench.gate_baselines config CONFIG      # what a validated config holds

A GROUP is `label=module,module,...`: the modules are imported in order (those that do
not import here are left out, as the daemon's own attempts at them failed too), then the
label, the number imported and the VmRSS are printed, separated by tabs.
"""

from __future__ import annotations

import importlib
import sys
import time
import tracemalloc
from pathlib import Path

from bench.proc import MB, memory_mb

FPS = 30


def rss_mb() -> float:
    """VmRSS of this process in MB (10^6 bytes), as bench.gate reads it from outside."""
    return memory_mb("self", ("VmRSS",))["VmRSS"]


def camera(stack: Path) -> None:
    """The floor under the daemon's frame loop: frames in memory, bare zxing-cpp, paced."""
    import numpy as np
    import zxingcpp

    with np.load(stack) as stored:  # as scanner.camera.memory plays it
        frames, order = stored["frames"], stored["order"]
    qr_codes = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    print("ready", flush=True)
    due = time.monotonic()
    while True:
        for index in order:
            zxingcpp.read_barcodes(frames[index], formats=qr_codes)
            due += 1 / FPS
            time.sleep(max(0.0, due - time.monotonic()))


def imports(groups: list[str]) -> None:
    print("python", 0, rss_mb(), sep="\t", flush=True)
    for group in groups:
        label, _, names = group.partition("=")
        imported = 0
        for name in names.split(","):
            try:
                importlib.import_module(name)
            except ImportError:
                continue
            imported += 1
        print(label, imported, rss_mb(), sep="\t", flush=True)


def config(path: Path) -> None:
    """Bytes the validated config holds once loaded (its models' code is an import)."""
    from scanner.config import load_config

    load_config(path)  # the first validation builds its lookups and caches: not the config
    tracemalloc.start()
    loaded = load_config(path)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(held / MB, loaded[1], flush=True)


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "camera":
        camera(Path(args[0]))
    elif command == "imports":
        imports(args)
    elif command == "config":
        config(Path(args[0]))
    else:
        raise SystemExit(f"unknown baseline {command!r}: expected camera, imports or config")


if __name__ == "__main__":
    main()
