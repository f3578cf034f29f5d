"""What `qrgate aim` costs per frame, against the gate's own live decoder on that frame.

    .venv/bin/python -m bench.aim [--frames N]

aim looks at every frame: the live decoder, then brightness, clipping and sharpness
(`measure`), and, when nothing was read, zxing-cpp's located-but-unread symbols. The
baseline is the live decoder alone (our frame loop's path, its second-look budget
refilled as if frames came at 30 fps). Frames are 640x480: no code, a code, a smudged
code (seen, not read), a dim code. Columns are mean milliseconds per frame (the live
decoder's second looks run on some frames only, as its budget allows, so a median would
land on one mode or the other); "aim fps" is how many frames one core can look at, to
compare with the camera's 30.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from bench.decode import live_decoder
from scanner.camera import Frame
from scanner.vision.aim import look_at, measure
from scanner.vision.images import Gray
from tests.support.frames import Look, empty_frame, render_qr

PAYLOAD = "W-1042-" + "x" * 40


def smudged() -> Gray:
    frame = render_qr(PAYLOAD, look=Look(module_px=5))
    frame[200:280, 280:360] = 128
    return frame


FRAMES: dict[str, Callable[[], Gray]] = {
    "no code": lambda: empty_frame(seed=3),
    "a code": lambda: render_qr(PAYLOAD),
    "seen, not read": smudged,
    "dim code": lambda: (render_qr(PAYLOAD).astype(np.float64) * 0.3).astype(np.uint8),
}


def mean_ms(work: Callable[[], object], count: int) -> float:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.fmean(times) * 1000


def row(name: str, image: Gray, count: int) -> tuple[str, float, float, float]:
    bare_decoder, aim_decoder = live_decoder(), live_decoder()
    frame = Frame(image, 0.0, 1)
    bare = mean_ms(lambda: bare_decoder.decode(image), count)
    looked = mean_ms(lambda: look_at(frame, aim_decoder), count)
    figures = mean_ms(lambda: measure(image), count)
    return name, bare, looked, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames timed per row")
    count = parser.parse_args().frames
    print(f"aim per frame, 640x480, mean of {count} ({platform.machine()}, one thread)\n")
    header = ("frame", "live decoder ms", "aim look ms", "ratio", "of which figures ms", "aim fps")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, make in FRAMES.items():
        label, bare, looked, figures = row(name, make(), count)
        print(
            f"| {label} | {bare:.2f} | {looked:.2f} | {looked / bare:.2f} | {figures:.2f} "
            f"| {1000 / looked:.0f} |"
        )


if __name__ == "__main__":
    main()
