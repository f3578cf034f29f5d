"""`qrgate demo`, the README's run command: the whole scenario checks itself."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from scanner.demo import run as demo_run
from tests.support.cli import qrgate

pytestmark = pytest.mark.slow


def test_the_demo_runs_to_a_summary_with_every_outcome_right() -> None:
    done = qrgate("demo")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "private broker on 127.0.0.1:" in out
    assert "centre: seq 1 scan granted ok pass W-1042 Nguyễn Văn An" in out
    assert "pins: green ON buzzer ON relay OPEN" in out
    assert "vaccination VN" in out  # a health certificate's event: its type and country
    assert "seq 6 scan granted recorded vnqr 163512345678901234 HOANG THI MAI" in out
    assert "Trần Văn Dũng, booster: no event yet: the LEDs ask for the second code" in out
    assert (
        "the same person: seq 7 scan granted ok cccd 001099012345 Trần Văn Dũng vaccination VN"
        in out
    )
    assert "rapid test taken 30 h ago (24 h allowed): seq 10 scan denied test_too_old" in out
    assert "12 events received by the centre, seq 1 to 12 without a gap" in out
    assert "relay opened 4 times, off at the end" in out
    assert out.rstrip().endswith("The gate did what it should.")
    assert "✗" not in out


def test_without_mosquitto_the_events_wait_in_the_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_run, "mosquitto_binary", lambda: None)
    screen = io.StringIO()
    code = demo_run.run_demo(Console(file=screen, soft_wrap=True))
    out = screen.getvalue()
    assert code == 0, out
    assert "mosquitto is not installed" in out
    assert "12 events waiting in the outbox, seq 1 to 12 without a gap" in out
