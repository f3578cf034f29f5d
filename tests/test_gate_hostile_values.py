"""Hostile values through the whole decision path: `Gate.scan` on real parts builds and
records the event of every decision (RELIABILITY.md fault 7), so whatever a signed pass
or an ID card carries, the scan is decided, recorded and answered, never raised.

A value a credential may carry must also fit the event: a name of the longest length a
pass may have is granted and published as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.credentials.cccd import MAX_TEXT_CHARS
from scanner.state.store import AllowEntry
from tests.support.realgate import RealGate


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealGate]:
    from gpiozero.pins.mock import MockPWMPin

    factory = MockFactory(pin_class=MockPWMPin)
    gate = RealGate(tmp_path_factory.mktemp("gate"), factory, accept=["pass", "badge", "cccd"])
    yield gate
    gate.close()
    factory.reset()
    factory.close()


def decide(real: RealGate, payload: bytes) -> tuple[str, str, dict[str, Any]]:
    """Scan `payload`; the decision and the event recorded for it."""
    real.clock.advance(2)  # past the repeat window
    before = len(real.events())
    decision = real.gate.scan(payload)
    assert decision is not None
    events = real.events()
    assert len(events) == before + 1, "every decision is recorded"
    return decision.result, decision.reason, events[-1]


def claims(real: RealGate, **changes: Any) -> dict[str, Any]:
    """Claims of a valid pass with `changes`; a change to None leaves the claim out."""
    now = int(real.clock.now())
    body = {"sub": "W-1", "iat": now, "exp": now + 3600, "jti": "j", **changes}
    return {claim: value for claim, value in body.items() if value is not None}


TEXT = st.text(min_size=1, max_size=MAX_TEXT_CHARS)  # surrogates and controls included


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=TEXT, name=st.none() | TEXT)
def test_any_signed_subject_and_name_is_decided_and_recorded(
    real: RealGate, subject: str, name: str | None
) -> None:
    payload = real.pass_token(claims(real, sub=subject, name=name))
    result, reason, event = decide(real, payload)
    printable = subject.isprintable() and (name is None or name.isprintable())
    if printable:
        assert (result, reason) == ("granted", "ok")
        assert (event["subject"], event["name"]) == (subject, name)
    else:
        assert (result, reason) == ("denied", "unknown_format")
    assert (event["result"], event["reason"]) == (result, reason)


def test_the_longest_name_a_pass_may_carry_is_granted_and_published(real: RealGate) -> None:
    name = "Nguyễn " * (MAX_TEXT_CHARS // 7) + "A" * (MAX_TEXT_CHARS % 7)
    assert len(name) == MAX_TEXT_CHARS
    result, reason, event = decide(real, real.pass_token(claims(real, name=name, sub="S" * 256)))
    assert (result, reason, event["name"], event["subject"]) == ("granted", "ok", name, "S" * 256)


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": "\ud800"},
        {"name": "A\ud83d"},
        {"name": "\x1b[31mred"},
        {"iat": float("nan")},
        {"exp": 10**400},
        {"exp": float("-inf")},
        {"nbf": "tomorrow"},
        {"site": ["factory-1", "\udfff"]},
        {"jti": "\ud800"},
    ],
)
def test_values_no_issuer_should_sign_are_denied_with_a_reason(
    real: RealGate, changes: dict[str, Any]
) -> None:
    result, reason, event = decide(real, real.pass_token(claims(real, **changes)))
    assert (result, reason) == ("denied", "unknown_format")
    assert event["subject"] is None


def test_an_id_card_with_the_longest_name_is_recorded(real: RealGate) -> None:
    name = "TRẦN " * (MAX_TEXT_CHARS // 5) + "X" * (MAX_TEXT_CHARS % 5)
    real.store.allowlist.add(AllowEntry("001099012345", kinds=frozenset({"cccd"})))
    card = f"001099012345|012345678|{name}|01011990|Nam|Hà Nội|01012021".encode()
    result, reason, event = decide(real, card)
    assert (result, reason, event["subject"]) == ("granted", "ok", "001099012345")
    assert event["name"] in (name, None)
