"""Decode speed and read rates: our strategy against bare zxing-cpp and bare pyzbar.

    .venv/bin/python -m bench.decode [--frames N] [--per-condition N] [--corpus DIR]

Speed: ms of CPU per frame (median, p95, mean; the contenders take turns on each frame)
on 640x480 and 1280x720 frames with and without a code, and on dim empty frames, for
bare zxing-cpp (QR formats), bare pyzbar (QR only), our live path (second looks only
with evidence of a code, `second_look_share` of a core at 30 fps simulated by the
budget's clock; every frame decoded: skipping unchanged frames is measured with the frame
loop) and our still-image path (`qrgate decode`). The ratio is ours / bare zxing-cpp.

Read rates: on ../shared/corpus/qr-photos (or --corpus) when present (expected payloads
read as bytes) and on a generated hard set (tests/support/hard_frames.py, cached in
bench/out/), per backend and for our strategy; "missed" counts codes a backend alone read
and ours did not (it must be 0). Then the live path on a code held for 1, 3 and 10
frames, and the frame loop at 30 fps on frames in memory with nobody in view, against
the same loop around bare zxing-cpp.
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
from pyzbar import pyzbar

from scanner.camera import open_source
from scanner.config import CameraSection
from scanner.vision.change import ChangeWatch
from scanner.vision.decode import (
    QR_FORMATS,
    Budget,
    Code,
    Decoder,
    LayeredDecoder,
    ZbarReader,
    corners,
    make_decoder,
)
from scanner.vision.frameloop import FrameLoop
from scanner.vision.images import Gray, load_gray
from tests.support.frames import Look, empty_frame, render_qr
from tests.support.hard_frames import HardFrame, exposed, hard_frames

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


class LiveAt30Fps:
    """Our live path as the daemon runs it, on frames that come at 30 fps: the budget's
    clock moves on by a frame's time at every frame, whatever the decoder does with it.
    With `skip_unchanged` it skips what the daemon would; without, it decodes every frame."""

    name = "ours, live"

    def __init__(self, skip_unchanged: bool = True) -> None:
        self._now = 0.0
        budget = Budget(SHARE, clock=lambda: self._now)
        watch = ChangeWatch() if skip_unchanged else None
        self.decoder = LayeredDecoder(ZbarReader(), budget, watch=watch)

    def decode(self, image: Gray) -> list[Code]:
        self._now += 1 / FPS
        return self.decoder.decode(image)


def live_decoder(skip_unchanged: bool = True) -> LiveAt30Fps:
    return LiveAt30Fps(skip_unchanged)


def contenders() -> dict[str, Read]:
    """Per frame: the live path decodes every frame here (skipping is the frame loop's
    saving, measured there)."""
    return {
        "zxing-cpp (bare)": bare_zxing,
        "pyzbar (bare)": bare_pyzbar,
        "ours, live": reader(live_decoder(skip_unchanged=False)),
        "ours, still": reader(make_decoder("auto")),
    }


# Speed


SPEED_CASES = (
    ((640, 480), "no code"),
    ((640, 480), "one code"),
    ((640, 480), "dim, no code"),
    ((1280, 720), "no code"),
    ((1280, 720), "one code"),
)


def speed_frames(size: tuple[int, int], case: str, count: int = 8) -> list[Gray]:
    width, height = size
    if case == "dim, no code":  # the brightest parts under grey 20: a gate at night
        return [exposed(empty_frame(size, seed=seed), 0.08, 2.0, seed) for seed in range(count)]
    if case == "no code":
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


def timings(reads: dict[str, Read], frames: list[Gray], calls: int) -> dict[str, list[float]]:
    """ms of this thread's CPU time per call, the contenders taking turns on each frame:
    other processes' load then falls on all of them alike."""
    for read in reads.values():
        for frame in frames[:3]:  # warm up
            read(frame)
    times: dict[str, list[float]] = {name: [] for name in reads}
    for frame in itertools.islice(itertools.cycle(frames), calls):
        for name, read in reads.items():
            start = time.thread_time()
            read(frame)
            times[name].append((time.thread_time() - start) * 1000)
    return times


def speed_table(calls: int) -> list[str]:
    rows = [
        "| frame | decoder | median ms | p95 ms | mean ms | core at 30 fps | ours / bare zxing |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, case in SPEED_CASES:
        label = f"{size[0]}x{size[1]}, {case}"
        results = timings(contenders(), speed_frames(size, case), calls)
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


def corpus_cases(corpus: Path) -> Iterable[tuple[str, bytes, Gray]]:
    for image in sorted(corpus.glob("*/*.png")):
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
    first = LayeredDecoder(budget=Budget(0.0))
    evidence = sum(bool(first.decode(image)) or first.evidence for _, _, image in cases)
    empty = [empty_frame((640, 480), seed=seed, noise=3) for seed in range(30)]
    false_evidence = sum(bool(first.decode(image)) or first.evidence for image in empty)
    for hold in holds:
        live = reader(live_decoder())
        read = sum(
            any(expected in live(image) for _ in range(hold)) for _, expected, image in cases
        )
        frames = f"{hold} frame{'s' if hold > 1 else ''}"
        rows.append(f"| {frames} | {read} / {len(cases)} | {by_still} / {len(cases)} |")
    return [
        *rows,
        "",
        f"Evidence of a code after the first pass (read, or located): {evidence} of "
        f"{len(cases)} hard frames; {false_evidence} of {len(empty)} empty frames.",
    ]


class BareZxing:
    """Bare zxing-cpp as the frame loop's decoder: the baseline loop."""

    name = "zxing-cpp (bare)"

    def decode(self, image: Gray) -> list[Code]:
        results = zxingcpp.read_barcodes(image, formats=QR_FORMATS)
        return [Code.of(result.bytes, corners(result.position), "zxing") for result in results]


def noisy_scene(count: int) -> Gray:
    """`count` frames of one empty scene, each with its own sensor noise (sigma 3)."""
    scene = empty_frame((640, 480), seed=0, noise=0).astype(np.float64)
    rng = np.random.default_rng(1)
    frames = [np.clip(scene + rng.normal(0, 3, scene.shape), 0, 255) for _ in range(count)]
    return np.stack(frames).astype(np.uint8)


def loop_cpu(decoder: Decoder, stack: Path, seconds: float) -> tuple[float, float]:
    """The frame loop on the stack at 30 fps: CPU of this process (% of a core), median
    decode ms."""
    camera = CameraSection(source=f"replay:{stack}", fps=FPS, replay_loop=True)
    loop = FrameLoop(open_source(camera), decoder, lambda frame, codes: None)
    loop.start()
    try:
        time.sleep(1.0)
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        return 100 * cpu / wall, loop.stats().decode_ms
    finally:
        loop.stop()


def loop_table(seconds: float) -> list[str]:
    """The whole frame loop at 30 fps on frames in memory, nobody in view, this process's
    CPU against the same loop around bare zxing-cpp."""
    rows = [
        "| frame loop, 640x480 in memory, nobody in view | CPU | decode ms median | ratio |",
        "|---|---|---|---|",
    ]
    contenders: dict[str, Decoder] = {
        "bare zxing-cpp": BareZxing(),
        "ours, live, skipping unchanged frames": make_decoder(
            "auto", live_share=SHARE, skip_unchanged=True
        ),
        "ours, live, every frame": make_decoder("auto", live_share=SHARE),
    }
    with tempfile.TemporaryDirectory() as folder:
        stack = Path(folder) / "nobody.npy"
        np.save(stack, noisy_scene(8))
        figures = {name: loop_cpu(decoder, stack, seconds) for name, decoder in contenders.items()}
    bare = figures["bare zxing-cpp"][0]
    for name, (cpu, decode_ms) in figures.items():
        ratio = "" if name.startswith("bare") else f"{cpu / bare:.2f}"
        rows.append(f"| {name} | {cpu:.1f} % of a core | {decode_ms:.2f} | {ratio} |")
    return rows


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
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of QR photos")
    args = parser.parse_args()
    print(f"# Decode benchmark\n\n{environment()}\n")
    print("\n".join(speed_table(args.frames)), "\n")
    if args.corpus.is_dir():
        print("\n".join(rate_table(f"Read rate on {args.corpus}", corpus_cases(args.corpus))), "\n")
    else:
        print(f"(no corpus at {args.corpus}: corpus read rate skipped)\n")
    hard = hard_cases(args.per_condition)
    print("\n".join(rate_table("Read rate on the generated hard set (seed 2)", hard)), "\n")
    print("\n".join(live_hold_table(hard)), "\n")
    print("\n".join(loop_table(args.loop_seconds)))


if __name__ == "__main__":
    main()
