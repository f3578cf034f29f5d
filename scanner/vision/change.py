"""Whether the camera's view changed since the last frame the live decoder looked at.

Most of a gate's life nobody is in front of it, and a frame that differs from the last
one decoded by sensor noise alone holds nothing new. The live decoder skips such a frame
when the last one it looked at showed no evidence of a code (nothing read, no symbol
located): decoding it again would find nothing again. After a frame with evidence it
never skips, so a code held up keeps being read (the repeat window stays open) and a
symbol not yet read gets every frame's fresh noise.

The comparison is on a sparse grid, every 8th pixel of every 8th row (4,800 of a 640x480
frame, microseconds), against the grid of the last frame looked at, not of the previous
frame: a slow drift adds up until it counts. The view has changed when more than a few
grid points moved further than sensor noise moves them: five times the mean move
between two frames of the still view (learnt while it is still: about 11 grey levels at
a noise of 2), never more than 24 levels, nor more than a quarter of the view's spread
of levels. A code coming into focus moves dozens of points by more than that at every
step; in a dim view, where a whole code spans fewer levels than noise moves a point,
every frame counts as changed, and nothing is skipped. Even an unchanged view is looked
at every `LOOK_EVERY` frames, for the case the grid cannot see: a code held perfectly
still whose first frame showed nothing, and whose next might.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

STRIDE = 8  # grid spacing in pixels, along rows and columns
LEVEL = 24  # grey levels a grid point must move to count as moved, at most...
SPREAD_SHARE = 0.25  # ...and at most this share of the view's spread of levels
SPREAD_STRIDE = 32  # the spread is measured on a coarser grid still
NOISE_MOVES = 5.0  # a point has moved when it moved this many times the noise's mean move
MIN_LEVEL = 6.0  # ...but at least this many grey levels
LEARNING = 0.1  # weight of each still frame in the noise's mean move
MOVED_POINTS = 4  # more grid points than this moved: the view changed
LOOK_EVERY = 8  # frames: an unchanged view is still looked at this often

Grid = NDArray[np.uint8]


class ChangeWatch:
    """Decides which frames the live decoder may skip. Use from one thread."""

    def __init__(self, look_every: int = LOOK_EVERY) -> None:
        if look_every < 1:
            raise ValueError(f"look_every must be at least 1, not {look_every}")
        self._look_every = look_every
        self._reference: Grid | None = None
        self._cap = float(LEVEL)  # the most a point must move, for the view looked at
        self._noise: float | None = None  # mean move of a grid point in a still view
        self._quiet = False  # the last frame looked at showed no evidence of a code
        self._skipped = 0  # frames skipped since the last one looked at

    def unchanged(self, image: NDArray[np.uint8]) -> bool:
        """True when `image` may be skipped: the last frame looked at showed no evidence
        of a code, and this one shows the same view (counted as skipped)."""
        if not self._quiet or self._reference is None or self._skipped + 1 >= self._look_every:
            return False
        grid = np.ascontiguousarray(image[::STRIDE, ::STRIDE])
        if grid.shape != self._reference.shape:
            return False
        moves = np.maximum(grid, self._reference) - np.minimum(grid, self._reference)
        changed = np.count_nonzero(moves > self.level) > MOVED_POINTS
        if np.count_nonzero(moves > self._cap) <= MOVED_POINTS:  # nothing moved far: noise
            self._learn_noise(int(moves.sum(dtype=np.uint32)) / moves.size)
        if changed:
            return False
        self._skipped += 1
        return True

    def looked_at(self, image: NDArray[np.uint8], evidence: bool) -> None:
        """The decoder looked at `image`; `evidence`: it read or located a code there."""
        self._reference = image[::STRIDE, ::STRIDE].copy()
        self._cap = min(LEVEL, SPREAD_SHARE * spread(image))
        self._quiet = not evidence
        self._skipped = 0

    @property
    def level(self) -> float:
        """Grey levels a grid point must move to count as moved."""
        if self._noise is None:
            return self._cap
        return min(self._cap, max(MIN_LEVEL, NOISE_MOVES * self._noise))

    def _learn_noise(self, mean_move: float) -> None:
        if self._noise is None:
            self._noise = mean_move
        else:
            self._noise += LEARNING * (mean_move - self._noise)


def spread(image: NDArray[np.uint8]) -> int:
    """Grey levels between the 1st and the 99th percentile of a coarse sample."""
    levels = np.sort(image[::SPREAD_STRIDE, ::SPREAD_STRIDE], axis=None)
    cut = len(levels) // 100
    return int(levels[len(levels) - 1 - cut]) - int(levels[cut])
