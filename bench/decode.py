"""Decode speed and read rates: our strategy against bare zxing-cpp and bare pyzbar.

    .venv/bin/python -m bench.decode [--frames N] [--per-condition N]

Speed: ms per frame (median, p95, mean) on 640x480 and 1280x720 frames with and without
a code, for bare zxing-cpp (QR formats), bare pyzbar (QR only), our live path (as the
frame loop runs it: `second_look_share` of a core at 30 fps, simulated by the budget's
clock) and our still-image path (`qrgate decode`). The ratio is ours / bare zxing-cpp.

Read rates: on ../shared/corpus/qr-photos when present (expected payloads read as
bytes) and on a generated hard set (tests/support/hard_frames.py, cached in bench/out/),
per backend and for our strategy; "missed" counts codes a backend alone read and ours
did not (it must be 0).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from pathlib import Path

import numpy as np
import zxingcpp
from PIL import Image
from pyzbar import pyzbar

from scanner.camera import open_source
from scanner.config import CameraSection
from scanner.vision.decode import (
    QR_FORMATS,
    Budget,
    Decoder,
    LayeredDecoder,
    ZbarReader,
    make_decoder,
)
from scanner.vision.frameloop import FrameLoop
from scanner.vision.images import Gray, load_gray
from tests.support.frames import Look, empty_frame, render_qr
from tests.support.hard_frames import HardFrame, hard_frames

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "qr-photos"
CACHE = ROOT / "bench" / "out"
FPS = 30
SHARE = CameraSection().second_look_share
PASS = (
    b"eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0."
    + b"eyJzdWIiOiJXLTEwNDIiLCJleHAiOjE3OTk5OTk5OTl9."
    + b"x" * 86
)

Read = Callable[[Gray], list[bytes]]


def bare_zxing(image: Gray) -> list[bytes]:
    return [result.bytes for result in zxingcpp.read_barcodes(image, formats=QR_FORMATS)]


def bare_pyzbar(image: Gray) -> list[bytes]:
    return [symbol.data for symbol in pyzbar.decode(image, symbols=[pyzbar.ZBarSymbol.QRCODE])]


def reader(decoder: Decoder) -> Read:
    return lambda image: [code.payload for code in decoder.decode(image)]


def live_decoder() -> LayeredDecoder:
    """Our live path with its budget refilled as if frames came at 30 fps."""
    frame_times = itertools.count(step=1 / FPS)
    return LayeredDecoder(ZbarReader(), Budget(SHARE, clock=lambda: next(frame_times)))


def contenders() -> dict[str, Read]:
    return {
        "zxing-cpp (bare)": bare_zxing,
        "pyzbar (bare)": bare_pyzbar,
        "ours, live": reader(live_decoder()),
        "ours, still": reader(make_decoder("auto")),
    }


# Speed


def speed_frames(size: tuple[int, int], with_code: bool, count: int = 8) -> list[Gray]:
    width, height = size
    if not with_code:
        return [empty_frame(size, seed=seed, noise=3) for seed in range(count)]
    looks = [
        Look(
            module_px=3 + seed % 3,
            angle=17 * seed,
            center=(width / 2 + 9 * seed, height / 2 - 7 * seed),
            noise=2,
        )
        for seed in range(count)
    ]
    return [render_qr(PASS, size, look, seed=seed) for seed, look in enumerate(looks)]


def timings(read: Read, frames: list[Gray], calls: int) -> list[float]:
    for frame in frames[:3]:  # warm up
        read(frame)
    times = []
    for frame in itertools.islice(itertools.cycle(frames), calls):
        start = time.perf_counter()
        read(frame)
        times.append((time.perf_counter() - start) * 1000)
    return times


def speed_table(calls: int) -> list[str]:
    rows = [
        "| frame | decoder | median ms | p95 ms | mean ms | core at 30 fps | ours / bare zxing |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in ((640, 480), (1280, 720)):
        for with_code in (False, True):
            frames = speed_frames(size, with_code)
            label = f"{size[0]}x{size[1]}, {'one code' if with_code else 'no code'}"
            results = {name: timings(read, frames, calls) for name, read in contenders().items()}
            baseline = statistics.median(results["zxing-cpp (bare)"])
            for name, times in results.items():
                median, mean = statistics.median(times), statistics.fmean(times)
                ratio = f"{median / baseline:.2f}" if name.startswith("ours") else ""
                share = f"{mean * FPS / 10:.0f} %"
                figures = f"{median:.2f} | {percentile(times, 95):.2f} | {mean:.2f}"
                rows.append(f"| {label} | {name} | {figures} | {share} | {ratio} |")
    return rows


def percentile(values: list[float], pct: float) -> float:
    return float(np.percentile(values, pct))


# Read rates


def rate_table(title: str, cases: Iterable[tuple[str, bytes, Gray]]) -> list[str]:
    """Per group: how many frames each contender read the expected payload from."""
    names = [
        "zxing-cpp (bare)",
        "pyzbar (bare)",
        "pyzbar (binary-safe)",
        "either alone",
        "ours, live",
        "ours, still",
    ]
    reads: dict[str, Read] = {**contenders(), "pyzbar (binary-safe)": reader(ZbarReader())}
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    missed = 0
    for group, expected, image in cases:
        got = {name: expected in reads[name](image) for name in reads}
        got["either alone"] = (
            got["zxing-cpp (bare)"] or got["pyzbar (binary-safe)"] or got["pyzbar (bare)"]
        )
        missed += got["either alone"] and not got["ours, still"]
        for key in (group, "all"):
            counts[key]["frames"] += 1
            for name in names:
                counts[key][name] += got[name]
    rows = [
        f"**{title}**",
        "",
        "| set | frames | " + " | ".join(names) + " |",
        "|---" * (len(names) + 2) + "|",
    ]
    for group, count in sorted(counts.items(), key=lambda item: item[0] == "all"):
        cells = " | ".join(
            f"{count[name]} ({100 * count[name] / count['frames']:.0f} %)" for name in names
        )
        rows.append(f"| {group} | {count['frames']} | {cells} |")
    rows += ["", f"Codes read by a backend alone that ours (still) missed: {missed}"]
    return rows


def corpus_cases() -> Iterable[tuple[str, bytes, Gray]]:
    for image in sorted(CORPUS.glob("*/*.png")):
        yield image.parent.name, image.with_suffix(".txt").read_bytes(), load_gray(image)


def hard_cases(per_condition: int) -> list[tuple[str, bytes, Gray]]:
    frames = list(hard_frames(per_condition, seed=2))
    images = cached_renders(frames)
    return [
        (frame.condition, frame.payload, image) for frame, image in zip(frames, images, strict=True)
    ]


def cached_renders(frames: list[HardFrame]) -> list[Gray]:
    """Rendering costs ~60 ms a frame: keep the set in bench/out, keyed by its definition."""
    key = hashlib.sha256(repr(frames).encode()).hexdigest()[:16]
    path = CACHE / f"hard-frames-{key}.npz"
    if path.exists():
        with np.load(path) as stored:
            return [stored[name] for name in stored.files]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        images = list(pool.map(HardFrame.render, frames, chunksize=8))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, *images)  # stored in order, which `stored.files` keeps
    return images


def live_hold_table(
    cases: list[tuple[str, bytes, Gray]], holds: tuple[int, ...] = (1, 3, 10)
) -> list[str]:
    """The live path on a code held up for several frames (the same frame repeated)."""
    rows = ["| code held for | read by ours, live | read by ours, still |", "|---|---|---|"]
    still = reader(make_decoder("auto"))
    by_still = sum(expected in still(image) for _, expected, image in cases)
    for hold in holds:
        live = reader(live_decoder())
        read = sum(
            any(expected in live(image) for _ in range(hold)) for _, expected, image in cases
        )
        frames = f"{hold} frame{'s' if hold > 1 else ''}"
        rows.append(f"| {frames} | {read} / {len(cases)} | {by_still} / {len(cases)} |")
    return rows


def loop_table(seconds: float) -> list[str]:
    """The whole frame loop on a replay at 30 fps: CPU of this process, and its stats."""
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(30):
            Image.fromarray(empty_frame((640, 480), seed=seed, noise=3)).save(
                f"{folder}/{seed:02d}.png"
            )
        camera = CameraSection(source=f"replay:{folder}", fps=FPS, replay_loop=True)
        decoder = make_decoder("auto", live_share=SHARE)
        loop = FrameLoop(open_source(camera), decoder, lambda frame, codes: None)
        loop.start()
        time.sleep(1.0)  # every frame decoded once from file, then from the replay's cache
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        stats = loop.stats()
        loop.stop()
    return [
        "| frame loop, 640x480 replay, no code | CPU | fps | decode ms median | dropped |",
        "|---|---|---|---|---|",
        f"| {seconds:g} s at {FPS} fps | {100 * cpu / wall:.1f} % of a core | {stats.fps:.1f} "
        f"| {stats.decode_ms:.2f} | {stats.frames_dropped} of {stats.frames_captured} |",
    ]


def environment() -> str:
    from ctypes import byref, c_uint

    from pyzbar import wrapper

    major, minor = c_uint(), c_uint()
    wrapper.zbar_version(byref(major), byref(minor))
    versions = ", ".join(f"{name} {version(name)}" for name in ("zxing-cpp", "pyzbar", "numpy"))
    return (
        f"{cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, {versions}, "
        f"zbar {major.value}.{minor.value}. Live path: second_look_share = {SHARE} at {FPS} fps."
    )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="timed calls per row")
    parser.add_argument("--per-condition", type=int, default=30, help="hard frames per condition")
    parser.add_argument("--loop-seconds", type=float, default=10.0, help="frame loop run time")
    args = parser.parse_args()
    print(f"# Decode benchmark\n\n{environment()}\n")
    print("\n".join(speed_table(args.frames)), "\n")
    if CORPUS.is_dir():
        print("\n".join(rate_table(f"Read rate on {CORPUS}", corpus_cases())), "\n")
    else:
        print(f"(no corpus at {CORPUS}: corpus read rate skipped)\n")
    hard = hard_cases(args.per_condition)
    print("\n".join(rate_table("Read rate on the generated hard set (seed 2)", hard)), "\n")
    print("\n".join(live_hold_table(hard)), "\n")
    print("\n".join(loop_table(args.loop_seconds)))


if __name__ == "__main__":
    main()
