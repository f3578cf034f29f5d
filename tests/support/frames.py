"""Render a payload as a QR code into a grayscale camera-like frame.

The code is placed by an exact projective map from module space to the frame and each
pixel is supersampled, so fractional module sizes (1.5 px) come out as a camera would
see them, not as nearest-neighbour stripes. Then the camera's troubles are added: blur,
motion, exposure, glare, noise. Deterministic for a given `seed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import segno
from numpy.typing import NDArray
from PIL import Image, ImageFilter

Gray = NDArray[np.uint8]

QUIET_ZONE = 4
SUPERSAMPLE = 3


def qr_modules(
    payload: bytes | str, error: str = "m", version: int | None = None
) -> NDArray[np.bool_]:
    """The code's modules (True = dark) including the 4-module quiet zone."""
    code = segno.make_qr(payload, error=error, version=version, boost_error=False)
    rows = list(code.matrix_iter(scale=1, border=QUIET_ZONE))
    return np.array(rows, dtype=bool)


@dataclass(frozen=True)
class Look:
    """How the code appears in the frame. Angles in degrees; sizes in pixels."""

    module_px: float = 4.0
    center: tuple[float, float] | None = None  # frame pixels; None = middle
    angle: float = 0.0  # in-plane rotation
    tilt: float = 0.0  # rotation about the vertical axis: perspective foreshortening
    blur: float = 0.0  # Gaussian radius (defocus)
    motion: int = 0  # motion-blur length
    motion_angle: float = 0.0
    dark: int = 25  # grey level of dark modules
    light: int = 225  # grey level of light modules and the quiet zone
    noise: float = 0.0  # Gaussian sensor noise, standard deviation in grey levels
    glare: float = 0.0  # 0..1: a bright specular blob over part of the code
    invert: bool = False  # light modules on dark (some phone themes)
    background: str = "scene"  # scene | flat


def render_qr(
    payload: bytes | str,
    size: tuple[int, int] = (640, 480),
    look: Look | None = None,
    *,
    seed: int = 0,
    error: str = "m",
    version: int | None = None,
) -> Gray:
    """A `size` = (width, height) uint8 frame showing `payload` as a QR code."""
    look = look or Look()
    rng = np.random.default_rng(seed)
    width, height = size
    modules = qr_modules(payload, error=error, version=version)
    base = background(size, rng) if look.background == "scene" else np.full((height, width), 128.0)
    coverage, inside = code_coverage(modules, size, look)
    code = look.light + (look.dark - look.light) * coverage
    if look.invert:
        code = look.light + look.dark - code
    frame = np.where(inside, code, base)
    return finish(frame, look, rng)


def empty_frame(size: tuple[int, int] = (640, 480), *, seed: int = 0, noise: float = 2.0) -> Gray:
    """A frame of the same kind of scene with no code in view."""
    rng = np.random.default_rng(seed)
    return finish(background(size, rng), Look(noise=noise), rng)


def damaged_frame(size: tuple[int, int] = (320, 240), module_px: int = 3, seed: int = 1) -> Gray:
    """A code scribbled over in its middle: its finder patterns are whole, so a decoder
    locates it, but too many of its modules are wrong for any decoder to read it."""
    frame = render_qr(b"W-00042: a code with a ruined middle", size, Look(module_px=module_px))
    height, width = frame.shape
    half = 6 * module_px  # 12 modules across, beyond what error correction repairs
    cells = np.random.default_rng(seed).integers(0, 2, size=(12, 12)).astype(bool)
    scribble = np.where(cells.repeat(module_px, 0).repeat(module_px, 1), 25, 225)
    top, left = height // 2 - half, width // 2 - half
    frame[top : top + 2 * half, left : left + 2 * half] = scribble
    return frame


def background(size: tuple[int, int], rng: np.random.Generator) -> NDArray[np.float64]:
    """A cluttered scene: a lighting gradient, boxes and bars, like a gate's surroundings."""
    width, height = size
    ys, xs = np.indices((height, width))
    # Annotated: numpy's stubs leave a ufunc's result dtype open (np.sin -> dtype[Any]).
    scene: NDArray[np.float64] = 90 + 60 * (xs / width) + 30 * np.sin(ys / height * math.pi)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(10, width // 3)), int(rng.integers(10, height // 3))
        scene[y0 : y0 + h, x0 : x0 + w] = rng.uniform(40, 220)
    for _ in range(6):
        x0 = int(rng.integers(0, width))
        scene[:, x0 : x0 + int(rng.integers(2, 8))] = rng.uniform(30, 230)
    return scene


def code_coverage(
    modules: NDArray[np.bool_], size: tuple[int, int], look: Look
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per frame pixel: the fraction that is dark module, and whether it lies on the code."""
    width, height = size
    n = modules.shape[0]
    # numpy's stubs widen inv's result to `floating`; the array is float64 already.
    inverse = np.asarray(np.linalg.inv(code_homography(n, size, look)), dtype=np.float64)
    offsets = [(step + 0.5) / SUPERSAMPLE for step in range(SUPERSAMPLE)]
    ys, xs = np.indices((height, width), dtype=np.float64)
    dark = np.zeros((height, width))
    inside = np.zeros((height, width))
    for dy in offsets:
        for dx in offsets:
            u, v = project(inverse, xs + dx, ys + dy)
            on_code = (u >= 0) & (u < n) & (v >= 0) & (v < n)
            col = np.clip(u.astype(int), 0, n - 1)
            row = np.clip(v.astype(int), 0, n - 1)
            dark += on_code & modules[row, col]
            inside += on_code
    samples = SUPERSAMPLE * SUPERSAMPLE
    # Pixels on the code's edge mix code and scene; treat them as code (quiet zone).
    return dark / np.maximum(inside, 1), inside > samples / 2


def code_homography(n: int, size: tuple[int, int], look: Look) -> NDArray[np.float64]:
    """3×3 map from module coordinates (0..n) to frame pixels."""
    width, height = size
    cx, cy = look.center or (width / 2, height / 2)
    half = n * look.module_px / 2
    focal = 1.5 * max(width, height)
    tilt, angle = math.radians(look.tilt), math.radians(look.angle)
    corners = []
    for x, y in ((-half, -half), (half, -half), (half, half), (-half, half)):
        # Tilt about the vertical axis in 3-D, project, then rotate in the image plane.
        x3, z3 = x * math.cos(tilt), focal + x * math.sin(tilt)
        px, py = x3 * focal / z3, y * focal / z3
        rx = px * math.cos(angle) - py * math.sin(angle)
        ry = px * math.sin(angle) + py * math.cos(angle)
        corners.append((cx + rx, cy + ry))
    square = [(0.0, 0.0), (float(n), 0.0), (float(n), float(n)), (0.0, float(n))]
    return homography(square, corners)


def homography(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> NDArray[np.float64]:
    """The projective map taking four points to four points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows, dtype=float), np.array(rhs, dtype=float))
    return np.append(h, 1.0).reshape(3, 3)


def project(
    matrix: NDArray[np.float64], xs: NDArray[np.float64], ys: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    w = matrix[2, 0] * xs + matrix[2, 1] * ys + matrix[2, 2]
    u = (matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]) / w
    v = (matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]) / w
    return u, v


def finish(frame: NDArray[np.float64], look: Look, rng: np.random.Generator) -> Gray:
    """Optics and sensor: glare, defocus, motion, noise, then 8-bit clipping."""
    height, width = frame.shape
    if look.glare > 0:
        cx, cy = look.center or (width / 2, height / 2)
        ys, xs = np.indices((height, width))
        spread = 4 * look.module_px * 6
        blob = np.exp(-(((xs - cx - spread / 2) ** 2) + (ys - cy) ** 2) / (2 * spread**2))
        frame = frame + 255 * look.glare * blob
    if look.blur > 0:
        image = Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8))
        frame = np.asarray(image.filter(ImageFilter.GaussianBlur(look.blur)), dtype=np.float64)
    if look.motion > 1:
        frame = motion_blur(frame, look.motion, look.motion_angle)
    if look.noise > 0:
        frame = frame + rng.normal(0, look.noise, frame.shape)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def motion_blur(frame: NDArray[np.float64], length: int, angle: float) -> NDArray[np.float64]:
    """Average of the frame shifted along a line: a code moving during the exposure."""
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    total = np.zeros_like(frame)
    for step in range(length):
        offset = step - (length - 1) / 2
        shift = (round(offset * dy), round(offset * dx))
        total += np.roll(frame, shift, axis=(0, 1))
    return total / length


def save_png(frame: Gray, path: str) -> None:
    Image.fromarray(frame).save(path)
