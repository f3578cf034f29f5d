"""A reproducible set of hard frames: what a gate camera sees on a bad day.

Each condition pushes one trouble (tiny modules, defocus, motion, glare, low light,
over-exposure, low contrast, steep tilt, inverted codes) to where the decoders start to
fail, on top of a random rotation and position; `mixed` combines milder troubles. The
payloads are the gate's: signed passes (long ASCII), badge ids, chip ID card lines (UTF-8
Vietnamese) and arbitrary binary. Used by the decoder tests and by `bench/decode.py`.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tests.support.frames import Gray, Look, render_qr

Troubles = Callable[[random.Random], dict[str, Any]]

CONDITIONS: dict[str, Troubles] = {
    "tiny": lambda r: {"module_px": r.uniform(1.4, 2.0), "noise": r.uniform(1, 4)},
    "blur": lambda r: {"module_px": r.uniform(2.5, 4.0), "blur": r.uniform(0.8, 1.6)},
    "motion": lambda r: {
        "module_px": r.uniform(3.0, 5.0),
        "motion": r.randint(4, 10),
        "motion_angle": r.uniform(0, 180),
    },
    "glare": lambda r: {"module_px": r.uniform(2.5, 4.0), "glare": r.uniform(0.6, 1.0)},
    # A dim scene: the whole frame at a low gain, then the sensor's own noise.
    "dark": lambda r: {"gain": r.uniform(0.04, 0.09), "noise": r.uniform(1.5, 2.5)},
    # Over-exposed: light modules clip, dark ones wash out.
    "bright": lambda r: {"dark": r.randint(150, 200), "light": 255, "gain": r.uniform(1.0, 1.3)},
    "flat": lambda r: {
        "dark": r.randint(95, 112),
        "light": r.randint(138, 156),
        "noise": r.uniform(4, 8),
    },
    "tilt": lambda r: {"module_px": r.uniform(2.5, 4.0), "tilt": r.uniform(50, 68)},
    "inverted": lambda r: {
        "invert": True,
        "module_px": r.uniform(1.8, 3.0),
        "noise": r.uniform(2, 6),
        "blur": r.uniform(0, 1.2),
    },
    "mixed": lambda r: {
        "module_px": r.uniform(1.8, 3.5),
        "tilt": r.uniform(0, 45),
        "blur": r.uniform(0, 1.2),
        "motion": r.choice([0, r.randint(2, 7)]),
        "motion_angle": r.uniform(0, 180),
        "noise": r.uniform(0, 7),
        "glare": r.choice([0.0, r.uniform(0.2, 0.7)]),
    },
}

VIETNAMESE = "Nguyễn Văn Anh Trần Thị Bích Lê Hoàng Phúc Phạm Đức Huy Đặng Thu Hà"


@dataclass(frozen=True)
class HardFrame:
    name: str  # condition and index, e.g. "blur-03"
    condition: str
    payload: bytes
    look: Look
    gain: float  # exposure of the whole frame: <1 dim, >1 over-exposed
    seed: int

    def render(self, size: tuple[int, int] = (640, 480)) -> Gray:
        frame = render_qr(self.payload, size, self.look, seed=self.seed)
        return exposed(frame, self.gain, self.look.noise, self.seed)


def exposed(frame: Gray, gain: float, noise: float, seed: int = 0) -> Gray:
    """The frame taken at another exposure: scaled, with fresh sensor noise, clipped."""
    if gain == 1:
        return frame
    grain = np.random.default_rng(seed).normal(0, noise or 1, frame.shape)
    return np.clip(np.rint(frame * gain + grain), 0, 255).astype(np.uint8)


def hard_frames(
    per_condition: int, size: tuple[int, int] = (640, 480), seed: int = 0
) -> Iterator[HardFrame]:
    """`per_condition` frames of each condition, the same ones for the same arguments."""
    for index, (condition, troubles) in enumerate(CONDITIONS.items()):
        for number in range(per_condition):
            frame_seed = seed * 100_000 + index * 1_000 + number
            rng = random.Random(frame_seed)
            options = troubles(rng)
            gain = options.pop("gain", 1.0)
            look = placed(Look(**options), rng, size)
            name = f"{condition}-{number:02d}"
            yield HardFrame(name, condition, payload(rng), look, gain, frame_seed)


def placed(look: Look, rng: random.Random, size: tuple[int, int]) -> Look:
    """The look at a random angle, somewhere around the middle of the frame."""
    width, height = size
    centre = (
        width / 2 + rng.uniform(-0.2, 0.2) * width,
        height / 2 + rng.uniform(-0.2, 0.2) * height,
    )
    return replace(look, angle=rng.uniform(0, 360), center=centre)


def payload(rng: random.Random) -> bytes:
    """One of the payloads a gate sees."""
    kind = rng.choice(["pass", "badge", "cccd", "binary"])
    if kind == "pass":
        alphabet = string.ascii_letters + string.digits + "-_"
        parts = (rng.choices(alphabet, k=n) for n in (36, rng.randint(90, 160), 86))
        return ".".join("".join(part) for part in parts).encode()
    if kind == "badge":
        return f"W-{rng.randint(1, 99_999):05d}".encode()
    if kind == "cccd":
        name = " ".join(rng.sample(VIETNAMESE.split(), 3))
        ids = f"{rng.randint(0, 10**12 - 1):012d}|{rng.randint(0, 10**9 - 1):09d}"
        return f"{ids}|{name}|01011990|Nam|Xã Bản Vược, Bát Xát, Lào Cai|15082021".encode()
    return rng.randbytes(rng.randint(24, 96))
