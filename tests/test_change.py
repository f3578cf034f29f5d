"""Skipping frames that hold nothing new, and never a code coming into view."""

from __future__ import annotations

import numpy as np
import pytest

from scanner.vision.change import LOOK_EVERY, ChangeWatch
from scanner.vision.decode import Budget, LayeredDecoder, ZbarReader
from tests.support.frames import Gray, Look, empty_frame, render_qr
from tests.support.hard_frames import exposed

SIZE = (320, 240)
SCENE_SEED = 11
PAYLOAD = b"W-00042"


def with_noise(scene: Gray, count: int, sigma: float = 2.5, seed: int = 0) -> list[Gray]:
    """The same view `count` times, each with its own sensor noise, as a camera gives it."""
    rng = np.random.default_rng(seed)
    return [
        np.clip(scene + rng.normal(0, sigma, scene.shape), 0, 255).astype(np.uint8)
        for _ in range(count)
    ]


def scene(gain: float = 1.0) -> Gray:
    return exposed(empty_frame(SIZE, seed=SCENE_SEED, noise=0), gain, 0.0)


def test_a_still_view_is_skipped_but_looked_at_again_every_few_frames() -> None:
    watch = ChangeWatch()
    first, *rest = with_noise(scene(), 3 * LOOK_EVERY)
    watch.looked_at(first, evidence=False)
    skipped = []
    for frame in rest:
        skipped.append(watch.unchanged(frame))
        if not skipped[-1]:
            watch.looked_at(frame, evidence=False)
    looked = [number for number, skip in enumerate(skipped, start=1) if not skip]
    assert looked == [LOOK_EVERY, 2 * LOOK_EVERY]


def test_a_code_coming_into_view_is_a_change() -> None:
    watch = ChangeWatch()
    watch.looked_at(with_noise(scene(), 1)[0], evidence=False)
    small = render_qr(PAYLOAD, SIZE, Look(module_px=1.5, noise=2.5), seed=SCENE_SEED)
    assert not watch.unchanged(small)


def test_nothing_is_skipped_after_a_frame_with_evidence_of_a_code() -> None:
    watch = ChangeWatch()
    frames = with_noise(scene(), 5)
    watch.looked_at(frames[0], evidence=True)
    assert not any(watch.unchanged(frame) for frame in frames[1:])


def test_a_dim_view_is_never_skipped() -> None:
    """In a dim view a whole code spans fewer grey levels than a point must move."""
    watch = ChangeWatch()
    first, *rest = with_noise(scene(gain=0.07), 5, sigma=2.0)
    watch.looked_at(first, evidence=False)
    assert not any(watch.unchanged(frame) for frame in rest)


def test_a_frame_of_another_size_is_a_change() -> None:
    watch = ChangeWatch()
    watch.looked_at(scene(), evidence=False)
    assert not watch.unchanged(scene()[:, :200])
    with pytest.raises(ValueError, match="look_every"):
        ChangeWatch(look_every=0)


class AtThirtyFps:
    """The daemon's live decoder, skipping unchanged views, on frames coming at 30 fps."""

    def __init__(self) -> None:
        self.now = 0.0
        budget = Budget(0.1, clock=lambda: self.now)
        self.decoder = LayeredDecoder(ZbarReader(), budget, watch=ChangeWatch())

    def reads(self, frame: Gray) -> bool:
        self.now += 1 / 30
        return PAYLOAD in [code.payload for code in self.decoder.decode(frame)]


def focusing(gain: float) -> list[Gray]:
    """A code held up out of focus, coming into focus: each frame a little sharper."""
    blurs = (4.0, 3.0, 2.4, 1.9, 1.5, 1.2, 0.9, 0.6, 0.3, 0.0)
    views = [
        exposed(render_qr(PAYLOAD, SIZE, Look(module_px=3, blur=blur), seed=SCENE_SEED), gain, 0)
        for blur in blurs
    ]
    return [with_noise(view, 1, sigma=2.0, seed=seed)[0] for seed, view in enumerate(views)]


@pytest.mark.parametrize("gain", [1.0, 0.07], ids=["daylight", "dim"])
def test_a_code_after_a_minute_of_nobody_is_read_in_the_first_frame_it_is_readable_in(
    gain: float,
) -> None:
    frames = focusing(gain)
    readable = [AtThirtyFps().reads(frame) for frame in frames]  # each frame on its own
    first_readable = readable.index(True)
    assert first_readable > 0  # the code is in view before it can be read
    live = AtThirtyFps()
    nobody = with_noise(scene(gain), 15, sigma=2.0, seed=100)
    for frame in nobody * 2 * 60:  # a minute at 30 fps
        assert not live.reads(frame)
    skipped = live.decoder.skipped
    read = [live.reads(frame) for frame in frames]
    assert read.index(True) == first_readable
    if gain == 1.0:  # in daylight the minute was skipped but for every 8th frame
        assert skipped == 1800 - 1800 // LOOK_EVERY
    else:  # a dim view is never skipped
        assert skipped == 0
