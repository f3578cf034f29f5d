"""Health certificates at the gate: every reason through the policy, revocation by the EU
hashes, the keyed subject, judging at any instant, and what a scan's event carries (its
type and country, nothing personal) on a real store, outbox and gpiozero's mock pins."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.scheduler import ManualScheduler
from mqtt.clock import ClockTrust
from mqtt.outbox import Outbox
from scanner.clock import ManualClock
from scanner.config import Config, parse_config
from scanner.credentials.dcc import issue
from scanner.credentials.dcc.subject import DEFAULT_KEY_NAME
from scanner.daemon.gate import Gate
from scanner.daemon.hardware import open_outputs
from scanner.decision.policy import Decision, Policy
from scanner.decision.verdict import DCC_ONLY_REASONS, NOT_AUTHENTIC, REASONS
from scanner.errors import ConfigError
from scanner.state.store import Store, StoreError
from tests.support import dcc as data
from tests.support.dcc import DAY, NOW

SIGNER = data.signer("VN", "ES256")
TESTS_ONLY = data.signer("DE", "ES256", types=frozenset({"test"}))
FORGER = data.signer("VN", "ES256")
RED, RELAY = 24, 17


def make_config(folder: Path, **dcc: Any) -> Config:
    (folder / "state").mkdir(parents=True, exist_ok=True)
    trust = data.write_trust_list(folder / "trust.json", SIGNER, TESTS_ONLY)
    return parse_config(
        {
            "gpio": {"pin_factory": "mock"},
            "policy": {"accept": ["badge", "dcc"], "repeat_window_s": 0},
            "dcc": {"trust_list": str(trust), **dcc},
            "store": {"path": str(folder / "state" / "qrgate.db")},
        }
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    with Store.open(config.store.path) as opened:
        yield opened


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def policy(config: Config, store: Store, clock: ManualClock) -> Policy:
    return Policy.from_config(config, store, clock)


def decided(policy: Policy, payload: bytes) -> Decision:
    decision = policy.decide(payload)
    assert decision is not None
    return decision


def forged() -> bytes:
    """FORGER's certificate claiming SIGNER's kid."""
    return data.forged(FORGER, SIGNER, ("Giám", "Đốc", "1970"))


def every_dcc_reason(
    policy: Policy, store: Store, tmp_path: Path, clock: ManualClock
) -> dict[str, Decision]:
    revoked = data.vaccination(SIGNER)
    store.revocations.revoke_dcc([hashes_of(policy, revoked)[0]])
    narrow_config = make_config(tmp_path / "narrow", accept_types=["test"])
    narrow = Policy.from_config(narrow_config, store, clock)
    payloads = {
        "ok": data.vaccination(SIGNER),
        "expired": data.vaccination(SIGNER, valid_days=-2),
        "not_yet_valid": data.vaccination(SIGNER, now=NOW + 2 * DAY),
        "bad_signature": forged(),
        "unknown_key": data.vaccination(FORGER),
        "revoked": revoked,
        "unknown_format": b"HC1:NOT BASE45~",
        "too_large": b"HC1:" + b"A" * 3000,
        "wrong_key_usage": data.vaccination(TESTS_ONLY),
        "schema_invalid": data.certificate(SIGNER, "v", {"dn": "two"}),
        "disease_not_accepted": data.certificate(
            SIGNER, "v", {**issue.vaccination_entry("VN", data.day(-30), 2, 2), "tg": "1234"}
        ),
        "vaccine_not_accepted": data.vaccination(SIGNER, product="BBIBP-CorV"),
        "vaccination_incomplete": data.vaccination(SIGNER, dose=1, doses=2),
        "vaccination_too_recent": data.vaccination(SIGNER, days_ago=13),
        "test_type_not_accepted": data.certificate(
            SIGNER, "t", {**issue.covid_test_entry("VN", issue_time(-2)), "tt": "LP0000-0"}
        ),
        "test_positive": data.covid_test(SIGNER, result="positive"),
        "test_in_future": data.covid_test(SIGNER, hours_ago=-1),
        "test_too_old": data.covid_test(SIGNER, hours_ago=25),
        "recovery_not_valid": data.recovery(SIGNER, days_ago=200),
    }
    decisions = {reason: decided(policy, payload) for reason, payload in payloads.items()}
    decisions["type_not_accepted"] = decided(narrow, data.vaccination(SIGNER))
    limited = make_config(tmp_path / "limited", vaccination_max_days=270)
    old = data.vaccination(SIGNER, days_ago=271)
    decisions["vaccination_too_old"] = decided(Policy.from_config(limited, store, clock), old)
    return decisions


def issue_time(hours: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(NOW + hours * 3600, dt.UTC)


def hashes_of(policy: Policy, payload: bytes) -> tuple[str, ...]:
    trust = policy.trust_list
    assert trust is not None
    from scanner.credentials.dcc.verifier import DccVerifier

    signed = DccVerifier(trust, 60).verify(payload, NOW).signed
    assert signed is not None
    return signed.revocation_hashes()


def test_every_health_certificate_reason_is_reached(
    policy: Policy, store: Store, tmp_path: Path, clock: ManualClock
) -> None:
    cases = every_dcc_reason(policy, store, tmp_path, clock)
    assert DCC_ONLY_REASONS <= set(cases) <= set(REASONS)
    for reason, decision in cases.items():
        assert (decision.reason, decision.credential) == (
            reason,
            "dcc" if reason != "too_large" else "unknown",
        )
        assert decision.granted == (reason == "ok")
        assert decision.name is None
    # What an event may say: type and country once the signature verified, never before.
    assert (cases["ok"].cert_type, cases["ok"].cert_country) == ("vaccination", "VN")
    assert (cases["test_too_old"].cert_type, cases["wrong_key_usage"].cert_country) == (
        "test",
        "DE",
    )
    for reason in ("bad_signature", "unknown_key", "unknown_format"):
        assert (cases[reason].cert_type, cases[reason].subject) == (None, None)


def test_health_denials_are_not_authenticity_denials() -> None:
    health = DCC_ONLY_REASONS - {"wrong_key_usage"}
    assert not health & NOT_AUTHENTIC


def test_a_booster_counts_at_once_and_a_completed_series_after_14_days(policy: Policy) -> None:
    assert decided(policy, data.vaccination(SIGNER, dose=3, doses=2, days_ago=0)).reason == "ok"
    assert decided(policy, data.vaccination(SIGNER, days_ago=14)).reason == "ok"
    assert decided(policy, data.vaccination(SIGNER, days_ago=13)).reason == "vaccination_too_recent"
    pcr = data.covid_test(SIGNER, kind="naat", hours_ago=71)
    assert decided(policy, pcr).reason == "ok"  # 72 h for NAAT, 24 h for rapid antigen


@pytest.mark.parametrize("kind", [0, 1, 2])  # UCI, COUNTRYCODEUCI, SIGNATURE
def test_revoked_by_each_eu_hash_until_its_end(
    policy: Policy, store: Store, clock: ManualClock, kind: int
) -> None:
    payload = data.vaccination(SIGNER)
    store.revocations.revoke_dcc([hashes_of(policy, payload)[kind]], until=NOW + 60)
    assert decided(policy, payload).reason == "revoked"
    clock.advance(61)
    assert decided(policy, payload).reason == "ok"
    other = data.vaccination(SIGNER)
    assert decided(policy, other).reason == "ok"


def test_revoked_by_its_subject_too(policy: Policy, store: Store) -> None:
    payload = data.vaccination(SIGNER)
    subject = decided(policy, payload).subject
    assert subject is not None
    store.revocations.revoke(subject=subject)
    assert decided(policy, payload).reason == "revoked"


def test_bad_revocation_hashes_are_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        store.revocations.revoke_dcc(["not-hex"])


def test_the_subject_is_a_keyed_hash_kept_on_the_gate(
    config: Config, store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    payload = data.vaccination(SIGNER)
    first = decided(Policy.from_config(config, store, clock), payload).subject
    again = decided(Policy.from_config(config, store, clock), payload).subject
    assert first == again
    assert first is not None
    assert first.startswith("dcc-")
    assert len(first) == 36
    key_file = config.store.path.parent / DEFAULT_KEY_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    other_gate = make_config(tmp_path / "other")
    assert decided(Policy.from_config(other_gate, store, clock), payload).subject != first
    shared = make_config(tmp_path / "shared", subject_key_file=str(key_file))
    assert decided(Policy.from_config(shared, store, clock), payload).subject == first


def test_a_read_only_check_creates_no_key(tmp_path: Path, store: Store, clock: ManualClock) -> None:
    config = make_config(tmp_path / "ro")
    Policy.from_config(config, store, clock, readonly=True)
    assert not (config.store.path.parent / DEFAULT_KEY_NAME).exists()
    with pytest.raises(ConfigError, match=r"dcc\.subject_key_file"):
        parse_config({"dcc": {"subject_key_file": str(tmp_path / "missing.key")}})


def test_evaluate_judges_at_any_instant_changing_nothing(policy: Policy) -> None:
    payload = data.covid_test(SIGNER, hours_ago=2)
    assert policy.evaluate(payload).reason == "ok"
    assert policy.evaluate(payload, at=NOW + 23 * 3600).reason == "test_too_old"
    assert policy.evaluate(payload, at=NOW - 3 * 3600).reason == "test_in_future"
    assert policy.evaluate(payload, at=NOW + 10 * DAY).reason == "expired"
    assert decided(policy, payload).reason == "ok"


def test_sighup_reload_reads_the_trust_list_again(
    config: Config, store: Store, clock: ManualClock
) -> None:
    policy = Policy.from_config(config, store, clock)
    newcomer = data.signer("LA")
    payload = data.vaccination(newcomer)
    assert decided(policy, payload).reason == "unknown_key"
    data.write_trust_list(config.dcc.trust_list, SIGNER, newcomer)
    listed = f"2 health-certificate signers (2 countries) from {config.dcc.trust_list}"
    assert policy.reload().read == ("accepting badge, dcc", "mode normal", listed)
    assert decided(policy, payload).reason == "ok"
    config.dcc.trust_list.write_text("{broken")
    reloaded = policy.reload()
    assert reloaded.read == ("accepting badge, dcc", "mode normal")
    assert reloaded.kept[0].startswith(f"{listed} kept: dcc.trust_list = ")
    assert decided(policy, payload).reason == "ok"  # the list in use stays


# --- On the gate: the event and the lights -----------------------------------------------


@pytest.fixture
def gate(
    config: Config, store: Store, clock: ManualClock, mock_factory: MockFactory
) -> Iterator[Gate]:
    outbox = Outbox(config.store.path, "factory-1", "gate-1", "in")
    outputs = open_outputs(config.gpio, mock_factory, scheduler=ManualScheduler())
    trust = ClockTrust(wall=clock.now, monotonic=clock.monotonic, synced=lambda: None)
    yield Gate(Policy.from_config(config, store, clock), outbox, outputs, clock, trust)
    outputs.close()
    outbox.close()


def events(gate: Gate) -> list[dict[str, Any]]:
    outbox = gate._outbox
    return [json.loads(row.payload) for row in outbox.pending(limit=100)]


def test_a_scan_event_carries_type_and_country_and_nothing_personal(
    gate: Gate, mock_factory: MockFactory
) -> None:
    granted = data.vaccination(SIGNER)
    assert gate.scan(granted) is not None
    assert [bool(change.state) for change in mock_factory.pin(RELAY).states] == [False, True]
    gate.outputs.snapshot()
    old_test = data.covid_test(SIGNER, hours_ago=30)
    decision = gate.scan(old_test)
    assert decision is not None
    assert decision.reason == "test_too_old"
    assert gate.outputs.snapshot().pattern == "denied"  # a health denial is a denial
    first, second = events(gate)
    assert (first["credential"], first["cert_type"], first["cert_country"]) == (
        "dcc",
        "vaccination",
        "VN",
    )
    assert (second["reason"], second["cert_type"]) == ("test_too_old", "test")
    for event in (first, second):
        assert event["name"] is None
        assert event["subject"].startswith("dcc-")
        text = json.dumps(event, ensure_ascii=False)
        for personal in ("NGUYEN", "Nguyễn", "1990-01-01", "UVCI", "EU/1/20", "840539006"):
            assert personal not in text
