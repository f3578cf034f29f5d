"""Clock trust: 1970, steps either way, the kernel's synchronisation flag."""

from __future__ import annotations

import logging
import sys

import pytest

from mqtt.clock import SANE_FLOOR, ClockTrust, kernel_clock_synced

NOW = SANE_FLOOR + 86_400 * 300


class FakeClocks:
    """A wall clock that can be set, a monotonic clock that only advances."""

    def __init__(self) -> None:
        self.wall_s = NOW
        self.mono_s = 100.0
        self.synced: bool | None = None

    def advance(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_s += seconds

    def trust(self, **kwargs: float) -> ClockTrust:
        return ClockTrust(
            wall=lambda: self.wall_s,
            monotonic=lambda: self.mono_s,
            synced=lambda: self.synced,
            **kwargs,
        )


def test_a_steady_clock_is_trusted() -> None:
    clocks = FakeClocks()
    trust = clocks.trust()
    clocks.advance(3600)
    assert trust.now() == (NOW + 3600, True)


def test_a_clock_before_the_floor_is_not_trusted() -> None:
    clocks = FakeClocks()
    clocks.wall_s = 0.0  # 1970: a Pi that lost its saved time
    assert clocks.trust().now() == (0.0, False)


@pytest.mark.parametrize("step", [-3600.0, -NOW + SANE_FLOOR + 5, 86_400.0])
def test_a_step_is_not_trusted_until_it_is_undone(step: float) -> None:
    clocks = FakeClocks()
    trust = clocks.trust()
    clocks.wall_s += step
    assert trust.now()[1] is False
    clocks.advance(10)
    assert trust.now()[1] is False
    clocks.wall_s -= step
    assert trust.now()[1] is True


def test_small_drift_is_tolerated() -> None:
    clocks = FakeClocks()
    trust = clocks.trust(max_step_s=2.0)
    clocks.wall_s += 1.5
    assert trust.now()[1] is True


def test_a_step_the_kernel_vouches_for_is_a_correction(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "mqtt.clock")
    clocks = FakeClocks()
    clocks.synced = False  # booted with a stale saved time
    trust = clocks.trust()
    assert trust.now()[1] is False
    clocks.wall_s += 86_400 * 3  # NTP steps the clock forward ...
    clocks.synced = True  # ... and the kernel now reports it synchronised
    assert trust.now()[1] is True
    clocks.advance(60)
    assert trust.now()[1] is True
    assert "flagged untrusted" in caplog.text
    assert "trusted again" in caplog.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux's")
def test_the_kernel_answers_on_linux() -> None:
    assert isinstance(kernel_clock_synced(), bool)
