"""Whether the camera's view changed since the last frame the live decoder looked at.

Most of a gate's life nobody is in front of it, and a frame that differs from the last
one decoded by sensor noise alone holds nothing new. The live decoder skips such a frame
when the last one it looked at showed no evidence of a code (nothing read, no symbol
located): decoding it again would find nothing again. After a frame with evidence it
never skips, so a code held up keeps being read (the repeat window stays open) and a
symbol not yet read gets every frame's fresh noise.

The comparison is on a sparse grid, every 8th pixel of every 8th row (4,800 of a 640x480
frame, microseconds), against the grid of the last frame looked at, not of the previous
frame: a slow drift adds up until it counts. A grid point has moved when it changed by
more than `LEVEL` grey levels, or by more than a quarter of the view's spread of levels
when that is less: in a dim view a whole code spans fewer than 24 levels, and its sensor
noise then moves points that far all the time, so a dim view is never skipped. The
smallest readable code, a version 1 QR code with 1.5-pixel modules, covers some 30 grid
points and moves half of them; sensor noise in a normal light (a few grey levels) moves
a point that far almost never, and a noisier view simply changes every frame. Even an
unchanged view is looked at every `LOOK_EVERY` frames, for the case the grid cannot see:
a code held perfectly still whose first frame showed nothing, and whose next might.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

STRIDE = 8  # grid spacing in pixels, along rows and columns
LEVEL = 24  # grey levels a grid point must move to count as changed, at most...
SPREAD_SHARE = 0.25  # ...and at most this share of the view's spread of levels
SPREAD_STRIDE = 32  # the spread is measured on a coarser grid still
MOVED_POINTS = 4  # more grid points than this moved: the view changed
LOOK_EVERY = 8  # frames: an unchanged view is still looked at this often

Grid = NDArray[np.int16]


class ChangeWatch:
    """Decides which frames the live decoder may skip. Use from one thread."""

    def __init__(self, look_every: int = LOOK_EVERY) -> None:
        if look_every < 1:
            raise ValueError(f"look_every must be at least 1, not {look_every}")
        self._look_every = look_every
        self._reference: Grid | None = None
        self._level = float(LEVEL)
        self._quiet = False  # the last frame looked at showed no evidence of a code
        self._skipped = 0  # frames skipped since the last one looked at

    def unchanged(self, image: NDArray[np.uint8]) -> bool:
        """True when `image` may be skipped: the last frame looked at showed no evidence
        of a code, and this one shows the same view (counted as skipped)."""
        if not self._quiet or self._reference is None or self._skipped + 1 >= self._look_every:
            return False
        grid = image[::STRIDE, ::STRIDE]
        if grid.shape != self._reference.shape:
            return False
        moved = np.count_nonzero(np.abs(grid.astype(np.int16) - self._reference) > self._level)
        if moved > MOVED_POINTS:
            return False
        self._skipped += 1
        return True

    def looked_at(self, image: NDArray[np.uint8], evidence: bool) -> None:
        """The decoder looked at `image`; `evidence`: it read or located a code there."""
        self._reference = image[::STRIDE, ::STRIDE].astype(np.int16)
        self._level = min(LEVEL, SPREAD_SHARE * spread(image))
        self._quiet = not evidence
        self._skipped = 0


def spread(image: NDArray[np.uint8]) -> int:
    """Grey levels between the 1st and the 99th percentile of a coarse sample."""
    levels = np.sort(image[::SPREAD_STRIDE, ::SPREAD_STRIDE], axis=None)
    cut = len(levels) // 100
    return int(levels[len(levels) - 1 - cut]) - int(levels[cut])
