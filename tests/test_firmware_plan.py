"""Feedback patterns and the output plan, at exact times (no pins, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.patterns import (
    AWAITING_BLINK,
    DENIED,
    DOOR_ALARM,
    FAULT,
    GRANTED,
    SECOND_CODE,
    UNREADABLE,
    Indicators,
    Pattern,
    flashes,
)
from firmware.plan import Levels, OutputPlan

ALL_PATTERNS = (GRANTED, DENIED, UNREADABLE, FAULT, SECOND_CODE)
T0 = 1000.0


def transitions(pattern: Pattern) -> list[tuple[float, Indicators]]:
    """Walk a pattern edge by edge: (elapsed, what it shows from then on)."""
    elapsed, seen = 0.0, [(0.0, pattern.at(0.0))]
    while (edge := pattern.next_change(elapsed)) is not None:
        elapsed = edge
        seen.append((round(elapsed, 6), pattern.at(elapsed)))
    return seen


def walk(plan: OutputPlan, now: float, until: float) -> list[tuple[float, Levels]]:
    """Every change of the plan's levels from `now` to `until`, at the moments it asks for."""
    seen = [(round(now - T0, 6), plan.levels_at(now))]
    while (moment := plan.next_change(now)) is not None and moment <= until:
        assert moment > now
        now = moment
        seen.append((round(now - T0, 6), plan.levels_at(now)))
    return seen


def beeps(pattern: Pattern) -> list[float]:
    return [round(end - start, 6) for start, end in pattern.buzzer]


def test_each_pattern_can_be_told_apart_by_sound_alone() -> None:
    assert beeps(GRANTED) == [0.12]
    assert beeps(DENIED) == [0.1, 0.1, 0.1]
    assert beeps(UNREADABLE) == [0.5]
    assert beeps(FAULT) == [0.4, 0.4]
    assert beeps(SECOND_CODE) == [0.06, 0.06]
    assert len({pattern.buzzer for pattern in ALL_PATTERNS}) == len(ALL_PATTERNS)


def test_each_pattern_can_be_told_apart_by_light_alone() -> None:
    lights = {(pattern.green, pattern.red) for pattern in ALL_PATTERNS}
    assert len(lights) == len(ALL_PATTERNS)
    assert (GRANTED.green, GRANTED.red) == (((0.0, 1.5),), ())
    assert (DENIED.green, DENIED.red) == ((), ((0.0, 1.5),))


def test_granted_pattern_edge_by_edge() -> None:
    assert transitions(GRANTED) == [
        (0.0, Indicators(green=True, buzzer=True)),
        (0.12, Indicators(green=True)),
        (1.5, Indicators()),
    ]


def test_unreadable_alternates_the_leds() -> None:
    shown = [(moment, lights.green, lights.red) for moment, lights in transitions(UNREADABLE)]
    shown = [step for i, step in enumerate(shown) if i == 0 or step[1:] != shown[i - 1][1:]]
    assert shown == [
        (0.0, True, False),
        (0.2, False, True),
        (0.4, True, False),
        (0.6, False, True),
        (0.8, True, False),
        (1.0, False, True),
        (1.2, False, False),
    ]


def test_flashes_are_evenly_spaced() -> None:
    assert flashes(3, on_s=0.1, off_s=0.2, start_s=1.0) == (
        (1.0, 1.1),
        (1.3, pytest.approx(1.4)),
        (pytest.approx(1.6), pytest.approx(1.7)),
    )


def test_door_alarm_beats_until_stopped() -> None:
    assert [DOOR_ALARM.at(t) for t in (0.0, 0.49, 0.5, 0.99, 1.0, 10.25, 10.75)] == [
        True,
        True,
        False,
        False,
        True,
        True,
        False,
    ]
    assert DOOR_ALARM.next_change(0.0) == 0.5
    assert DOOR_ALARM.next_change(0.5) == 1.0
    assert DOOR_ALARM.next_change(7.2) == 7.5


def test_grant_pulses_relay_and_plays_pattern_at_exact_times() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.play(GRANTED, T0)
    plan.pulse(T0)
    assert walk(plan, T0, T0 + 10) == [
        (0.0, Levels(relay=True, green=True, buzzer=True)),
        (0.12, Levels(relay=True, green=True)),
        (0.8, Levels(green=True)),
        (1.5, Levels()),
    ]
    assert plan.next_change(T0 + 1.5) is None


def test_second_grant_extends_the_pulse_without_a_gap() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.pulse(T0)
    plan.pulse(T0 + 0.5)
    relay = [(moment, levels.relay) for moment, levels in walk(plan, T0, T0 + 10)]
    assert relay == [(0.0, True), (1.3, False)]


def test_an_earlier_pulse_never_shortens_a_later_one() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.pulse(T0 + 0.5)
    plan.pulse(T0)
    assert plan.released(T0 + 1.29)
    assert not plan.released(T0 + 1.3)


def test_new_pattern_replaces_the_running_one_but_not_the_pulse() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.play(GRANTED, T0)
    plan.pulse(T0)
    plan.play(DENIED, T0 + 0.3)
    assert plan.levels_at(T0 + 0.3) == Levels(relay=True, red=True, buzzer=True)
    assert plan.pattern_at(T0 + 0.3) is DENIED
    assert plan.levels_at(T0 + 0.85) == Levels(red=True)


def test_released_counts_the_grace_after_a_pulse() -> None:
    plan = OutputPlan(pulse_s=0.8)
    assert not plan.released(T0, grace_s=5)
    plan.pulse(T0)
    assert plan.released(T0 + 1.7, grace_s=1.0)
    assert not plan.released(T0 + 1.8, grace_s=1.0)


def test_lockdown_shows_red_between_patterns() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.set_mode("lockdown")
    assert plan.levels_at(T0) == Levels(red=True)
    plan.play(GRANTED, T0)
    assert plan.levels_at(T0 + 0.5) == Levels(green=True)
    assert plan.levels_at(T0 + 1.5) == Levels(red=True)


def test_emergency_holds_relay_and_both_leds_until_the_mode_changes() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.set_mode("emergency")
    assert plan.levels_at(T0 + 3600) == Levels(relay=True, green=True, red=True)
    assert plan.next_change(T0) is None
    assert plan.released(T0)
    plan.set_mode("normal")
    assert plan.levels_at(T0) == Levels()


def test_fire_alarm_overrides_and_then_returns_to_the_commanded_mode() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.set_mode("lockdown")
    plan.set_fire_alarm(True)
    assert plan.mode == "emergency"
    assert plan.levels_at(T0).relay
    plan.set_fire_alarm(False)
    assert plan.mode == "lockdown"
    assert plan.levels_at(T0) == Levels(red=True)


def test_door_alarm_owns_the_buzzer_while_it_sounds() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.set_door_alarm(True, T0)
    plan.play(DENIED, T0 + 0.5)
    assert [plan.levels_at(T0 + t).buzzer for t in (0.5, 0.6, 1.0, 1.4, 1.5)] == [
        False,
        False,
        True,
        True,
        False,
    ]
    plan.set_door_alarm(False, T0 + 1.9)
    assert plan.levels_at(T0 + 1.9) == Levels(red=True)


def test_waiting_for_a_second_code_blinks_green_between_patterns() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.play(SECOND_CODE, T0)
    plan.await_second(T0, 3.0, anew=True)
    assert walk(plan, T0, T0 + 10) == [
        (0.0, Levels(green=True, buzzer=True)),
        (0.06, Levels(green=True)),
        (0.14, Levels(green=True, buzzer=True)),
        (0.2, Levels(green=True)),
        (0.25, Levels()),
        (1.0, Levels(green=True)),
        (1.25, Levels()),
        (2.0, Levels(green=True)),
        (2.25, Levels()),
        (3.0, Levels()),  # the wait is over: nothing more to change
    ]
    assert (AWAITING_BLINK.on_s, AWAITING_BLINK.off_s) == (0.25, 0.75)


def test_a_pattern_plays_over_the_wait_and_the_wait_resumes_in_step() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.await_second(T0, 10.0, anew=True)
    plan.play(DENIED, T0 + 2.1)  # someone else's code: red, then the blink again
    assert plan.levels_at(T0 + 3.0) == Levels(red=True)
    assert plan.levels_at(T0 + 4.0) == Levels(green=True)
    plan.await_second(T0 + 4.5, 10.0, anew=False)  # still waiting: the rhythm carries on
    assert plan.levels_at(T0 + 5.1) == Levels(green=True)
    assert plan.awaiting(T0 + 14.4)
    assert not plan.awaiting(T0 + 14.5)
    plan.stop_awaiting()
    assert plan.levels_at(T0 + 6.0) == Levels()
    assert plan.next_change(T0 + 6.0) is None


def test_lockdown_shows_its_red_rather_than_the_wait() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.set_mode("lockdown")
    plan.await_second(T0, 10.0, anew=True)
    assert plan.levels_at(T0) == Levels(red=True)


def test_clear_drops_every_decision() -> None:
    plan = OutputPlan(pulse_s=0.8)
    plan.set_mode("emergency")
    plan.set_fire_alarm(True)
    plan.set_door_alarm(True, T0)
    plan.play(FAULT, T0)
    plan.pulse(T0)
    plan.await_second(T0, 20, anew=True)
    plan.clear()
    assert plan.levels_at(T0) == Levels()
    assert plan.next_change(T0) is None
    assert plan.mode == "normal"


DECISIONS = st.sampled_from(
    ["granted", "denied", "unreadable", "fault", "pulse", "alarm", "await", "second code"]
)


@settings(max_examples=150, deadline=None)
@given(
    start=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    steps=st.lists(
        st.tuples(DECISIONS, st.floats(min_value=0, max_value=2, allow_nan=False)), max_size=8
    ),
)
def test_deadlines_always_lie_ahead_and_run_out(
    start: float, steps: list[tuple[str, float]]
) -> None:
    """Whatever the decisions and float times, the next change is after now, so timers move on."""
    plan = OutputPlan(pulse_s=0.8)
    patterns = {
        "granted": GRANTED,
        "denied": DENIED,
        "unreadable": UNREADABLE,
        "fault": FAULT,
        "second code": SECOND_CODE,
    }
    now = start
    for decision, gap in steps:
        now += gap
        if decision == "pulse":
            plan.pulse(now)
        elif decision == "alarm":
            plan.set_door_alarm(not plan.door_alarm, now)
        elif decision == "await":
            plan.await_second(now, 5 * gap + 0.1, anew=gap > 1)
        else:
            plan.play(patterns[decision], now)
    plan.set_door_alarm(False, now)
    for _ in range(200):
        moment = plan.next_change(now)
        if moment is None:
            break
        assert moment > now
        now = moment
    assert plan.next_change(now) is None
    assert plan.levels_at(now) == Levels()
