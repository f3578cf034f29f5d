"""QR decoding: the exact payload bytes of every code in a grayscale frame.

Two backends, zxing-cpp and pyzbar, behind one interface, and one layered strategy that
reads more than either alone while keeping the empty frame, the common case, cheap
(figures from `bench/decode.py`, see docs/scanning.md):

1. First pass, every frame: zxing-cpp exactly as a bare call does (LocalAverage
   binarizer, inverted codes, downscaled copies), then zxing-cpp's GlobalHistogram
   binarizer at full size only, which keeps low-contrast, noisy and glared codes that
   the local binarizer breaks up, for a fifth of a bare call. In a dim frame (zxing-cpp
   takes contrast under 24 grey levels for flat) both binarizers read the frame binned
   2x2, which halves the sensor noise, with its levels stretched to the full range,
   instead. Every pass also reports symbols it located but could not read: the
   evidence of a code.
2. Second look, cheapest first: the FixedThreshold binarizer on the whole frame; a 2x
   upscaled crop around every located-but-unread symbol (1.5-2 px modules); pyzbar on
   the whole frame (ten to twenty times dearer than zxing-cpp, and it reads some codes,
   dim ones above all, that zxing-cpp locates but cannot read).

A still-image decoder (`make_decoder(name)`, used by `qrgate decode`) runs every stage on
every image, so it reads at least what either backend reads alone. A live decoder
(`make_decoder(name, live_share=0.1)`) stops at the first stage that reads a code, since
the gate needs one, and gives a second look only to a frame that shows evidence of a code,
within at most `live_share` of one CPU core: an empty frame costs the first pass and
nothing more. With `skip_unchanged` it also skips frames whose view has not changed since
the last frame it looked at, when that one showed no evidence (`scanner.vision.change`).
A live decoder loads pyzbar and Pillow only when a second look first needs them.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from ctypes import c_void_p, string_at
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol

import numpy as np
import zxingcpp
from numpy.typing import NDArray

from scanner.errors import QrgateError
from scanner.vision.change import ChangeWatch

log = logging.getLogger(__name__)

Gray = NDArray[np.uint8]
Point = tuple[int, int]
Corners = tuple[Point, ...]
DecoderName = Literal["auto", "zxing", "pyzbar"]

# The QR family: Model 2, Model 1, Micro QR and rMQR (zxing-cpp 3).
QR_FORMATS = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
LOCAL = zxingcpp.Binarizer.LocalAverage
HISTOGRAM = zxingcpp.Binarizer.GlobalHistogram
FIXED = zxingcpp.Binarizer.FixedThreshold

UPSCALE = 2
BIN = 2  # a dim frame's first pass reads it binned, BIN x BIN pixels to one
# A crop spans the located symbol and this many of its sizes on every side: zxing-cpp
# often locates a false, smaller symbol inside a real code it cannot read.
CROP_MARGIN = 1.0
# A located "symbol" smaller than this is a degenerate position: the smallest QR code,
# 21 modules of 1 px, is larger.
MIN_SYMBOL_PX = 12
# Larger crops are left out: their modules are big (a photo of a large code), and
# doubling them would cost seconds and gigabytes. A whole 1280x960 frame still fits.
MAX_CROP_PIXELS = 1_300_000
# Both binarizers often locate the same symbol: boxes this close are looked at once.
SAME_BOX_PX = 6
# zxing-cpp's local binarizer takes blocks with less contrast than 24 grey levels for
# flat; in a frame this dim (fewer than 1 % of its pixels this bright) a code is that
# faint, and stretching the levels brings it out.
DIM_LEVEL = 100
DIM_SHARE = 0.01
# Unused second-look credit is capped so that an idle hour does not bank a long burst.
BURST_S = 0.05


class DecodeError(QrgateError):
    """A decoder cannot be used (for example the zbar library is missing)."""


@dataclass(frozen=True, slots=True)
class Code:
    """One QR code read from a frame."""

    payload: bytes  # exact bytes of the code
    text: str | None  # payload decoded as UTF-8, None if it is not UTF-8
    position: Corners  # 4 corners in frame pixels, in the order the backend gives them
    backend: str  # which decoder read it

    @classmethod
    def of(cls, payload: bytes, position: Corners, backend: str) -> Code:
        try:
            text: str | None = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return cls(payload, text, position, backend)


class Decoder(Protocol):
    name: str

    def decode(self, image: Gray) -> list[Code]: ...


def make_decoder(
    name: DecoderName, *, live_share: float | None = None, skip_unchanged: bool = False
) -> Decoder:
    """The configured decoder: `auto` is the layered strategy on both backends.

    `live_share=None` makes a still-image decoder that runs every stage; a number makes a
    live one whose second look uses at most that share of one CPU core, and which with
    `skip_unchanged` skips frames that hold nothing new (see the module docstring).
    `zxing` is the same strategy without pyzbar; `pyzbar` is pyzbar alone.
    """
    if name == "pyzbar":
        return ZbarReader()
    if name not in ("auto", "zxing"):
        raise ValueError(f"unknown decoder {name!r}: expected auto, zxing or pyzbar")
    if live_share is None:
        return LayeredDecoder(still_zbar() if name == "auto" else None)
    zbar = ZbarOnFirstUse() if name == "auto" else None
    watch = ChangeWatch() if skip_unchanged else None
    return LayeredDecoder(zbar, Budget(live_share), watch=watch)


def still_zbar() -> ZbarReader | None:
    try:
        return ZbarReader()
    except DecodeError as error:
        log.warning("decoding with zxing-cpp only: %s", error)
        return None


def zxing_read(
    image: Gray, binarizer: zxingcpp.Binarizer = LOCAL, *, full_size_only: bool = False
) -> tuple[list[Code], list[Corners]]:
    """zxing-cpp with its defaults but the binarizer: codes read, and symbols only located.

    `full_size_only` leaves out inverted codes and downscaled copies (a third of the cost).
    """
    results = zxingcpp.read_barcodes(
        image,
        formats=QR_FORMATS,
        binarizer=binarizer,
        try_invert=not full_size_only,
        try_downscale=not full_size_only,
        return_errors=True,
    )
    codes = [
        Code.of(result.bytes, corners(result.position), "zxing")
        for result in results
        if result.valid
    ]
    located = [corners(result.position) for result in results if not result.valid]
    return codes, located


def corners(position: zxingcpp.Position) -> Corners:
    points = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    return tuple((point.x, point.y) for point in points)


class ZbarReader:
    """pyzbar's ctypes binding to zbar, set up for QR codes and raw bytes.

    `pyzbar.decode` leaves zbar in text mode, where byte-mode data is re-encoded from
    Latin-1 to UTF-8 and UTF-8 without an ECI header comes back as mojibake. zbar's
    binary option (ZBAR_CFG_BINARY, which pyzbar's enum predates) returns the bytes as
    they are in the code. One scanner is kept per reader: use a reader from one thread.
    """

    name = "pyzbar"
    CFG_BINARY = 4
    FOURCC_Y800 = 0x30303859

    def __init__(self) -> None:
        try:
            from pyzbar import wrapper
        except ImportError as error:
            raise DecodeError(f"pyzbar cannot load zbar ({error}); install libzbar0") from None
        self._zbar = wrapper
        self._scanner = wrapper.zbar_image_scanner_create()
        weakref.finalize(self, wrapper.zbar_image_scanner_destroy, self._scanner)
        qr, config = wrapper.ZBarSymbol.QRCODE, wrapper.ZBarConfig.CFG_ENABLE
        wrapper.zbar_image_scanner_set_config(self._scanner, wrapper.ZBarSymbol.NONE, config, 0)
        wrapper.zbar_image_scanner_set_config(self._scanner, qr, config, 1)
        wrapper.zbar_image_scanner_set_config(self._scanner, qr, self.CFG_BINARY, 1)

    def decode(self, image: Gray) -> list[Code]:
        check_gray(image)
        zbar = self._zbar
        pixels = np.ascontiguousarray(image)
        height, width = pixels.shape
        zimage = zbar.zbar_image_create()
        try:
            zbar.zbar_image_set_format(zimage, self.FOURCC_Y800)
            zbar.zbar_image_set_size(zimage, width, height)
            zbar.zbar_image_set_data(zimage, pixels.ctypes.data_as(c_void_p), pixels.size, None)
            zbar.zbar_scan_image(self._scanner, zimage)
            return [self._code(symbol) for symbol in self._symbols(zimage)]
        finally:
            zbar.zbar_image_destroy(zimage)

    def _symbols(self, zimage: Any) -> Iterator[Any]:
        symbol = self._zbar.zbar_image_first_symbol(zimage)
        while symbol:
            yield symbol
            symbol = self._zbar.zbar_symbol_next(symbol)

    def _code(self, symbol: Any) -> Code:
        zbar = self._zbar
        payload = string_at(
            zbar.zbar_symbol_get_data(symbol), zbar.zbar_symbol_get_data_length(symbol)
        )
        count = zbar.zbar_symbol_get_loc_size(symbol)
        points = tuple(
            (zbar.zbar_symbol_get_loc_x(symbol, i), zbar.zbar_symbol_get_loc_y(symbol, i))
            for i in range(count)
        )
        return Code.of(payload, points if count == 4 else bounding_corners(points), self.name)


def bounding_corners(points: Corners) -> Corners:
    """The 4 corners of the upright rectangle around `points`."""
    xs, ys = [x for x, _ in points] or [0], [y for _, y in points] or [0]
    return ((min(xs), min(ys)), (max(xs), min(ys)), (max(xs), max(ys)), (min(xs), max(ys)))


class ZbarOnFirstUse:
    """pyzbar, loaded when a second look first gets to it: zbar and its libraries stay out
    of a live gate's memory until a frame needs them. Without zbar it warns once, and the
    second look goes on with zxing-cpp alone."""

    name = "pyzbar"

    def __init__(self) -> None:
        self._reader: ZbarReader | None = None
        self._missing = False

    def decode(self, image: Gray) -> list[Code]:
        if self._reader is None and not self._missing:
            self._reader = still_zbar()
            self._missing = self._reader is None
        return [] if self._reader is None else self._reader.decode(image)


class Budget:
    """A share of one CPU core for second looks, refilled by the wall clock."""

    def __init__(self, share: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= share <= 1:
            raise ValueError(f"share must be within 0..1, not {share}")
        self.share = share
        self._clock = clock
        self._credit = BURST_S * share
        self._last = clock()

    def allows(self) -> bool:
        now = self._clock()
        self._credit = min(BURST_S, self._credit + (now - self._last) * self.share)
        self._last = now
        return self.share > 0 and self._credit > 0

    def spend(self, seconds: float) -> None:
        self._credit -= seconds


class Found:
    """Codes read so far, first read of each payload kept, in the order they were read."""

    def __init__(self) -> None:
        self._codes: dict[bytes, Code] = {}

    def add(self, codes: Iterable[Code]) -> None:
        for code in codes:
            self._codes.setdefault(code.payload, code)

    def __bool__(self) -> bool:
        return bool(self._codes)

    def codes(self) -> list[Code]:
        return list(self._codes.values())


class LayeredDecoder:
    """The strategy of the module docstring: a cheap first pass, then a second look.

    `budget=None` decodes stills (every stage, every image); with a budget it decodes live
    frames (stop at the first stage that reads; second looks only where the first pass
    found evidence of a code, within the budget), and with a `watch` it skips frames that
    hold nothing new. Counters: `first_passes`, `second_looks`, `skipped`; `evidence`
    says whether the last frame looked at showed evidence of a code (read or located).
    """

    def __init__(
        self,
        zbar: Decoder | None = None,
        budget: Budget | None = None,
        clock: Callable[[], float] = time.perf_counter,
        *,
        watch: ChangeWatch | None = None,
    ) -> None:
        self.name = "zxing+pyzbar" if zbar else "zxing"
        self._zbar = zbar
        self._budget = budget
        self._clock = clock
        self._watch = watch
        self.first_passes = 0
        self.second_looks = 0
        self.skipped = 0
        self.evidence = False

    @property
    def live(self) -> bool:
        return self._budget is not None

    def decode(self, image: Gray) -> list[Code]:
        check_gray(image)
        if self._watch is not None and self._watch.unchanged(image):
            self.skipped += 1
            return []
        found = Found()
        dim = is_dim(image)
        located = self._first_pass(image, dim, found)
        self.evidence = bool(found or located)
        if self._watch is not None:
            self._watch.looked_at(image, self.evidence)
        if self._budget is None:
            self._second_look(image, dim, located, found)
        elif not found and located and self._budget.allows():
            start = self._clock()
            self._second_look(image, dim, located, found)
            self._budget.spend(self._clock() - start)
        return found.codes()

    def _first_pass(self, image: Gray, dim: bool, found: Found) -> list[Corners]:
        """Read what the first pass reads; return the symbols it located."""
        self.first_passes += 1
        located: list[Corners] = []
        for read in first_reads(image, dim):
            codes, seen = read()
            found.add(codes)
            located += seen
            if found and self.live:
                break
        return located

    def _second_look(self, image: Gray, dim: bool, located: list[Corners], found: Found) -> None:
        self.second_looks += 1
        view = stretched(image) if dim else image
        for look in self._looks(image, view, located):
            found.add(look())
            if found and self.live:
                return

    def _looks(
        self, image: Gray, view: Gray, located: list[Corners]
    ) -> Iterator[Callable[[], list[Code]]]:
        """The second-look stages, cheapest first; `view` is the frame, or in a dim frame
        its levels stretched."""
        yield lambda: zxing_read(view, FIXED)[0]
        for box in crop_boxes(view.shape, located):
            yield partial(read_upscaled, view, box)
        if self._zbar is not None:
            yield partial(self._zbar.decode, image)


Read = Callable[[], tuple[list[Code], list[Corners]]]


def first_reads(image: Gray, dim: bool) -> Iterator[Read]:
    """The first pass's reads, in order: bare zxing-cpp on the frame, then the histogram
    binarizer at full size; in a dim frame, both binarizers on the frame binned and
    stretched instead of the histogram one on the frame."""
    yield partial(zxing_read, image)
    if dim:
        yield partial(read_dim, image)
    else:
        yield partial(zxing_read, image, HISTOGRAM, full_size_only=True)


def read_dim(image: Gray) -> tuple[list[Code], list[Corners]]:
    """Both binarizers at full size on the frame binned 2x2 (half the sensor noise, a
    quarter of the pixels) with its levels stretched; positions in frame pixels."""
    view = stretched(binned(image))
    codes, located = zxing_read(view, full_size_only=True)
    more, seen = zxing_read(view, HISTOGRAM, full_size_only=True)
    return (
        [rescaled(code, BIN) for code in codes + more],
        [tuple((x * BIN, y * BIN) for x, y in points) for points in located + seen],
    )


def binned(image: Gray) -> Gray:
    """The frame at half its size, each pixel the mean of 2x2."""
    height, width = image.shape[0] // BIN * BIN, image.shape[1] // BIN * BIN
    sums = image[:height:2, :width:2].astype(np.uint16)
    sums += image[1:height:2, :width:2]
    sums += image[:height:2, 1:width:2]
    sums += image[1:height:2, 1:width:2]
    return (sums // 4).astype(np.uint8)


def rescaled(code: Code, scale: float, offset: Point = (0, 0)) -> Code:
    """`code` with its corners taken from a resized or cropped image back to the frame."""
    x0, y0 = offset
    position = tuple((x0 + int(x * scale), y0 + int(y * scale)) for x, y in code.position)
    return Code(code.payload, code.text, position, code.backend)


def check_gray(image: Gray) -> None:
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got {image.ndim}-D {image.dtype}")


def is_dim(image: Gray) -> bool:
    """True when even the brightest parts of the frame are dark: fewer than DIM_SHARE of
    its pixels (sampled, for speed) reach DIM_LEVEL."""
    sample = image[::32, ::32]
    return bool(np.count_nonzero(sample >= DIM_LEVEL) < DIM_SHARE * sample.size)


def stretched(image: Gray) -> Gray:
    """The frame with its levels spread over the full range (1st to 99th percentile)."""
    low, high = np.percentile(image[::4, ::4], (1, 99))
    scale = 255 / max(float(high - low), 1.0)
    table = np.clip((np.arange(256) - low) * scale, 0, 255).astype(np.uint8)
    return np.take(table, image)


Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def crop_boxes(shape: tuple[int, ...], located: list[Corners]) -> list[Box]:
    """Regions worth an upscaled look: one per located symbol, clipped, no repeats.

    Overlapping boxes are all kept: a different frame around the same code makes the
    detector start elsewhere, and that is what reads some of them.
    """
    height, width = shape[:2]
    boxes: list[Box] = []
    for points in located:
        if symbol_size(points) < MIN_SYMBOL_PX:
            continue
        box = around(points, width, height)
        if (box[2] - box[0]) * (box[3] - box[1]) > MAX_CROP_PIXELS:
            continue
        if not any(same_box(box, other) for other in boxes):
            boxes.append(box)
    return boxes


def symbol_size(points: Corners) -> int:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return max(max(xs) - min(xs), max(ys) - min(ys))


def around(points: Corners, width: int, height: int) -> Box:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    margin = CROP_MARGIN * symbol_size(points)
    return (
        max(0, int(min(xs) - margin)),
        max(0, int(min(ys) - margin)),
        min(width, int(max(xs) + margin) + 1),
        min(height, int(max(ys) + margin) + 1),
    )


def same_box(one: Box, other: Box) -> bool:
    return all(abs(a - b) <= SAME_BOX_PX for a, b in zip(one, other, strict=True))


def read_upscaled(image: Gray, box: Box) -> list[Code]:
    """zxing-cpp on a crop enlarged with bicubic interpolation; positions in frame pixels."""
    from PIL import Image

    x0, y0, x1, y1 = box
    crop = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1]))
    large = np.asarray(
        crop.resize((crop.width * UPSCALE, crop.height * UPSCALE), Image.Resampling.BICUBIC)
    )
    codes, _ = zxing_read(large)
    return [rescaled(code, 1 / UPSCALE, (x0, y0)) for code in codes]
