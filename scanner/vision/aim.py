"""Figures for mounting and aiming the camera: brightness, sharpness, codes seen and read.

`measure` reduces a frame to the figures a technician sets light, focus and distance by,
and `hints` turns figures out of range into advice in words; `qrgate doctor` judges its
camera line with both. `Aim` runs a camera source and sums up, per stretch of time, what
the frames showed, for `qrgate aim` to print: every frame is looked at (no frame is
dropped), so "read in 27 of 30 frames" is exactly what the gate's decoder made of them.

A code's payload may be personal data: a summary shows only its kind, its first few
characters and its length.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from scanner.camera import CameraTimeout, EndOfStream, Frame, FrameSource
from scanner.credentials.kinds import classify
from scanner.errors import QrgateError
from scanner.vision.decode import Code, Decoder, Gray, zxing_read

if TYPE_CHECKING:
    from scanner.config import CameraSection

# Mean grey level (0-255) below which nothing can be read: lens covered, no light at all.
BLACK = 15
# Mean grey level below which codes lose contrast and the decoder starts to miss them.
DARK = 50
# A pixel at this grey level or above is clipped: the sensor saw white, whatever was there.
WHITE = 250
# Shares of clipped pixels: over-exposed, and washed out beyond any reading.
OVEREXPOSED = 0.25
WASHED_OUT = 0.75
# Sharpness below this is a blurred frame, or one with nothing in it that has edges.
BLURRED = 100.0
# A camera delivering less than this share of camera.fps is worth a word.
SLOW = 0.5
# Characters of a payload shown: enough to recognise a kind of code, too few to identify
# a person.
PREVIEW_CHARS = 6


@dataclass(frozen=True, slots=True)
class Figures:
    brightness: float  # mean grey level, 0-255
    clipped: float  # share of pixels at WHITE or above, 0-1
    sharpness: float  # variance of the Laplacian of the frame binned 2x2


def measure(image: Gray) -> Figures:
    clipped = np.count_nonzero(image >= WHITE) / max(image.size, 1)
    return Figures(float(image.mean()), float(clipped), sharpness(image))


def sharpness(image: Gray) -> float:
    """Variance of the Laplacian: large with crisp edges, near 0 when blurred.

    The frame is binned 2x2 first: sensor noise would otherwise pass for detail and make
    a blurred, grainy frame score like a sharp one. A relative figure: turn the focus to
    make it as large as possible.
    """
    height, width = image.shape
    even = image[: height - height % 2, : width - width % 2].astype(np.float32)
    binned = (even[0::2, 0::2] + even[1::2, 0::2] + even[0::2, 1::2] + even[1::2, 1::2]) / 4
    if min(binned.shape) < 3:
        return 0.0
    laplacian = (
        binned[:-2, 1:-1]
        + binned[2:, 1:-1]
        + binned[1:-1, :-2]
        + binned[1:-1, 2:]
        - 4 * binned[1:-1, 1:-1]
    )
    return float(laplacian.var())


@dataclass(frozen=True, slots=True)
class Hint:
    """A figure out of range: what is wrong and what to do about it."""

    severe: bool  # nothing can be read like this
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}: {self.fix}"


def hints(figures: Figures, camera: CameraSection, fps: float | None = None) -> list[Hint]:
    """Advice for the figures of a frame (and the frame rate, when known), worst first."""
    found = exposure_hints(figures, camera)
    if not found and figures.sharpness < BLURRED:
        # Only a frame exposed well enough shows whether it is in focus.
        found.append(Hint(False, "blurred", BLURRED_FIX))
    if fps is not None and fps < SLOW * camera.fps:
        found.append(Hint(False, f"slow ({fps:.1f} of {camera.fps:g} fps)", SLOW_FIX))
    return sorted(found, key=lambda hint: not hint.severe)


BLURRED_FIX = "adjust focus or distance (hold a code where workers will)"
SLOW_FIX = "add light (webcams slow down in the dark), or lower camera.width and camera.height"


def exposure_hints(figures: Figures, camera: CameraSection) -> list[Hint]:
    short = camera.exposure == "short"
    brightness, clipped = figures.brightness, figures.clipped
    if brightness < BLACK:
        return [Hint(True, "black", "uncover the lens; add light")]
    if brightness < DARK:
        fix = 'add light, or set camera.exposure = "normal"' if short else "add light"
        return [Hint(False, "too dark", fix)]
    if clipped >= OVEREXPOSED:
        fix = "turn the camera away from lamps and sunlight"
        if not short:
            fix += ', or set camera.exposure = "short"'
        problem = "washed out" if clipped >= WASHED_OUT else "over-exposed"
        return [Hint(clipped >= WASHED_OUT, f"{problem} ({clipped:.0%} white)", fix)]
    return []


@dataclass(frozen=True, slots=True)
class Sight:
    """One frame as aim saw it."""

    frame: Frame
    figures: Figures
    codes: list[Code]
    located: bool  # the decoder found a code in the frame, read or not


def look_at(frame: Frame, decoder: Decoder) -> Sight:
    codes = decoder.decode(frame.image)
    # zxing-cpp also reports symbols it located but could not read: "seen, not read".
    located = bool(codes) or bool(zxing_read(frame.image)[1])
    return Sight(frame, measure(frame.image), codes, located)


class Tally:
    """What the frames of one stretch of time showed."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.frames = self.seen = self.read = 0
        self._brightness = self._clipped = self._sharpness = 0.0
        self._first = self._last = started  # capture times of the first and last frame
        self.code: Code | None = None  # the last code read
        self.trouble: str | None = None  # why frames did not come, if they did not

    def add(self, sight: Sight) -> None:
        if not self.frames:
            self._first = sight.frame.captured
        self._last = sight.frame.captured
        self.frames += 1
        self.seen += sight.located
        self.read += bool(sight.codes)
        self._brightness += sight.figures.brightness
        self._clipped += sight.figures.clipped
        self._sharpness += sight.figures.sharpness
        if sight.codes:
            self.code = sight.codes[0]

    def fps(self, now: float) -> float:
        """Frames per second between the first and the last capture; with fewer than two
        frames, over the stretch so far."""
        if self.frames >= 2 and self._last > self._first:
            return (self.frames - 1) / (self._last - self._first)
        return self.frames / (now - self.started) if now > self.started else 0.0

    def summary(self, now: float) -> Summary:
        count = max(self.frames, 1)
        figures = Figures(self._brightness / count, self._clipped / count, self._sharpness / count)
        return Summary(
            seconds=now - self.started,
            fps=self.fps(now),
            frames=self.frames,
            seen=self.seen,
            read=self.read,
            figures=figures,
            code=self.code,
            trouble=self.trouble,
        )


@dataclass(frozen=True, slots=True)
class Summary:
    """Figures over a stretch of frames: brightness and sharpness are their means."""

    seconds: float
    fps: float
    frames: int
    seen: int
    read: int
    figures: Figures
    code: Code | None
    trouble: str | None = None

    def hints(self, camera: CameraSection) -> list[Hint]:
        return hints(self.figures, camera, self.fps) if self.frames else []


def preview(code: Code) -> str:
    """The code's kind, its first characters and its length: never the whole payload."""
    kind = classify(code.payload)
    label = "other" if kind == "unknown" else kind
    size = f"{len(code.payload)} bytes"
    if code.text is None:
        return f"{label}, binary ({size})"
    head = "".join(ch if ch.isprintable() else "?" for ch in code.text[:PREVIEW_CHARS])
    more = "..." if len(code.text) > PREVIEW_CHARS else ""
    return f'{label} "{head}{more}" ({size})'


def describe(summary: Summary, camera: CameraSection) -> str:
    """One line: frame rate, brightness, sharpness, the code, and the first hint."""
    if not summary.frames:
        return f"no frames: {summary.trouble or 'the camera delivers nothing'}"
    figures = summary.figures
    parts = [
        f"{summary.fps:5.1f} fps",
        f"brightness {figures.brightness:3.0f}",
        f"sharpness {figures.sharpness:5.0f}",
        code_part(summary),
    ]
    advice = summary.hints(camera)
    if advice:
        parts.append(str(advice[0]))
    return " | ".join(parts)


def describe_total(summary: Summary) -> str:
    """The whole run in one line: how often a code was read and seen, mean figures."""
    frames = summary.frames
    if not frames:
        return f"no frame in {summary.seconds:.1f} s: {summary.trouble or 'the camera is silent'}"

    def share(count: int) -> str:
        return f"{count} ({count / frames:.0%})"

    figures = summary.figures
    return (
        f"{frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps); "
        f"code read in {share(summary.read)}, seen in {share(summary.seen)}; "
        f"mean brightness {figures.brightness:.0f}, sharpness {figures.sharpness:.0f}"
    )


def code_part(summary: Summary) -> str:
    frames = summary.frames
    if summary.read:
        assert summary.code is not None
        return f"read {summary.read}/{frames}: {preview(summary.code)}"
    if summary.seen:
        return f"seen {summary.seen}/{frames}, not read"
    return "no code in view"


class Aim:
    """Reads frames from `source`, looks at every one, and hands `report` a summary every
    `every_s` seconds; `total` sums up the whole run and `latest` is the last frame."""

    def __init__(
        self,
        source: FrameSource,
        decoder: Decoder,
        *,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._decoder = decoder
        self._every_s = every_s
        self._clock = clock
        self.total = Tally(clock())
        self.latest: Frame | None = None

    def run(
        self,
        report: Callable[[Summary], None],
        *,
        frames: int | None = None,
        seconds: float | None = None,
        keep_going: Callable[[], bool] = lambda: True,
    ) -> None:
        """Until `frames` frames were looked at, `seconds` passed, a replay ended, or
        `keep_going` says stop; the last, partial stretch is reported too."""
        deadline = math.inf if seconds is None else self._clock() + seconds
        limit = math.inf if frames is None else frames
        window = Tally(self._clock())
        while self.total.frames < limit and self._clock() < deadline and keep_going():
            try:
                self._take(window)
            except EndOfStream:
                break
            if self._clock() - window.started >= self._every_s:
                report(window.summary(self._clock()))
                window = Tally(self._clock())
        if window.frames or window.trouble:
            report(window.summary(self._clock()))

    def overall(self) -> Summary:
        """The whole run so far."""
        return self.total.summary(self._clock())

    def _take(self, window: Tally) -> None:
        try:
            frame = self._source.read()
        except CameraTimeout as error:
            window.trouble = self.total.trouble = str(error)
            self._source.restart()
            return
        sight = look_at(frame, self._decoder)
        self.latest = frame
        window.add(sight)
        self.total.add(sight)


def save_png(image: Gray, path: Path) -> None:
    """Write a grayscale frame as a PNG file."""
    try:
        Image.fromarray(image).save(path, format="PNG")
    except OSError as error:
        raise QrgateError(f"cannot save the snapshot {path}: {error.strerror or error}") from None
