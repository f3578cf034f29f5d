"""The decision: every reason, repeat suppression and anti-passback on an injected clock,
gate modes that survive a restart, and any bytes at all giving a decision."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.clock import ManualClock
from scanner.config import PolicySection, parse_config
from scanner.credentials.kinds import Credential
from scanner.credentials.passes import PassVerifier
from scanner.decision.policy import DAEMON_REASONS, REASONS, Decision, Policy
from scanner.decision.verdict import DCC_ONLY_REASONS, PAIR_REASONS
from scanner.errors import ConfigError
from scanner.state.store import AllowEntry, Store, StoreError
from tests.support.tokens import IssuerKey, hand_jws, pyjwt_token, write_jwks

SITE = "factory-1"
KEY = IssuerKey.ed25519("ed-1")
CARD = "001099012345|123456789|Nguyễn Văn An|01011990|Nam|12 Lê Lợi, Hà Nội|15082021"
ALL_KINDS = ["pass", "badge", "cccd"]

MakePolicy = Callable[..., Policy]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def jwks(tmp_path: Path) -> Path:
    return write_jwks(tmp_path / "jwks.json", KEY)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "qrgate.db") as opened:
        opened.allowlist.add(AllowEntry("W-1", "Worker One", frozenset({"badge"})))
        opened.allowlist.add(AllowEntry("001099012345", "HR name", frozenset({"cccd"})))
        yield opened


@pytest.fixture
def make_policy(store: Store, clock: ManualClock, jwks: Path) -> MakePolicy:
    def make(on: Store | None = None, **rules: Any) -> Policy:
        section = PolicySection(**{"accept": ALL_KINDS, "repeat_window_s": 0, **rules})
        verifier = PassVerifier(jwks, ["EdDSA", "ES256"], SITE, section.clock_skew_s)
        return Policy(section, on or store, clock, verifier)

    return make


@pytest.fixture
def policy(make_policy: MakePolicy) -> Policy:
    return make_policy()


def token(clock: ManualClock, key: IssuerKey = KEY, **claims: Any) -> bytes:
    base = {"sub": "W-1042", "name": "An", "exp": clock.now() + 3600, "jti": "p-1"}
    return pyjwt_token(key, {**base, **claims}).encode()


def decided(policy: Policy, payload: bytes) -> Decision:
    decision = policy.decide(payload)
    assert decision is not None
    return decision


def test_a_valid_pass(policy: Policy, clock: ManualClock) -> None:
    payload = token(clock)
    assert decided(policy, payload) == Decision(
        "granted", "ok", "pass", "W-1042", "An", hashlib.sha256(payload).hexdigest()
    )


def test_badges_and_cards_come_from_the_allowlist(policy: Policy) -> None:
    badge = decided(policy, b"W-1")
    assert (badge.result, badge.subject, badge.name) == ("granted", "W-1", "Worker One")
    card = decided(policy, CARD.encode())
    assert (card.result, card.credential, card.subject) == ("granted", "cccd", "001099012345")
    assert card.name == "HR name"  # the allowlist's, not what an unsigned card says


def test_a_home_made_card_cannot_name_itself(policy: Policy, store: Store) -> None:
    forged = CARD.replace("Nguyễn Văn An", '=HYPERLINK("http://x.invalid","A")').encode()
    assert decided(policy, forged).name == "HR name"
    store.allowlist.add(AllowEntry("079088001234", None, frozenset({"cccd"})))
    unnamed = CARD.replace("001099012345", "079088001234").encode()
    assert decided(policy, unnamed).name == "Nguyễn Văn An"  # no name listed: the card's


def every_reason_case(
    policy: Policy, store: Store, clock: ManualClock, make_policy: MakePolicy
) -> dict[str, Decision]:
    now = clock.now()
    store.allowlist.add(AllowEntry("W-old", valid_until=now - 1))
    store.allowlist.add(AllowEntry("W-new", valid_from=now + 3600))
    store.revocations.revoke(jti="stolen")
    passback = make_policy(anti_passback_s=60)
    decided(passback, b"W-1")
    narrow, lockdown, emergency = make_policy(accept=["pass"]), make_policy(), make_policy()
    lockdown.set_mode("lockdown")
    emergency.set_mode("emergency")
    return {
        "ok": decided(policy, token(clock)),
        "expired": decided(policy, token(clock, exp=now - 3600)),
        "not_yet_valid": decided(policy, token(clock, nbf=now + 3600)),
        "bad_signature": decided(policy, hand_jws({"alg": "none"}, {"sub": "x"}, None).encode()),
        "unknown_key": decided(policy, token(clock, IssuerKey.ed25519("other"))),
        "revoked": decided(policy, token(clock, jti="stolen")),
        "not_allowed": decided(policy, b"W-2"),
        "wrong_site": decided(policy, token(clock, site="factory-2")),
        "unknown_format": decided(policy, b"hello world"),
        "too_large": decided(policy, b"W" * 2049),
        "passback": decided(passback, b"W-1"),
        "lockdown": decided(lockdown, b"W-1"),
        "not_accepted": decided(narrow, b"W-1"),
        "emergency": decided(emergency, b"W-2"),
        "recorded": decided(make_policy(record_only=["badge"]), b"W-2"),
    }


def test_every_reason_is_reached(
    policy: Policy, store: Store, clock: ManualClock, make_policy: MakePolicy
) -> None:
    cases = every_reason_case(policy, store, clock, make_policy)
    # The daemon's: tests/test_gate.py; the health certificates': tests/test_dcc_decision.py;
    # the pairs': tests/test_pairing.py
    assert set(cases) == set(REASONS) - DAEMON_REASONS - DCC_ONLY_REASONS - PAIR_REASONS
    for reason, decision in cases.items():
        assert decision.reason == reason
        assert decision.granted == (reason in ("ok", "emergency", "recorded"))


@pytest.mark.parametrize(
    ("revoke", "payload"),
    [({"subject": "W-1042"}, "pass"), ({"subject": "W-1"}, "badge"), ({"jti": "p-1"}, "pass")],
)
def test_revocations_apply_to_every_kind(
    policy: Policy, store: Store, clock: ManualClock, revoke: dict[str, str], payload: str
) -> None:
    store.revocations.revoke(**revoke)
    assert decided(policy, token(clock) if payload == "pass" else b"W-1").reason == "revoked"


def test_allowlist_entries_have_windows_and_kinds(
    policy: Policy, store: Store, clock: ManualClock
) -> None:
    store.allowlist.add(
        AllowEntry("W-5", valid_from=clock.now() + 10, valid_until=clock.now() + 20)
    )
    assert decided(policy, b"W-5").reason == "not_yet_valid"
    clock.advance(10)
    assert decided(policy, b"W-5").reason == "ok"
    clock.advance(10)
    assert decided(policy, b"W-5").reason == "expired"
    assert decided(policy, b"001099012345").reason == "not_allowed"  # listed for cccd only
    assert decided(policy, CARD.replace("|Nam|", "||").encode()).reason == "unknown_format"


def test_the_same_code_held_up_gives_one_decision(
    make_policy: MakePolicy, clock: ManualClock
) -> None:
    policy = make_policy(repeat_window_s=5)
    payload = token(clock)
    seen = []
    for _ in range(60):  # held in front of the camera for 30 s, seen twice a second
        seen.append(policy.decide(payload))
        clock.advance(0.5)
    assert [decision is not None for decision in seen].count(True) == 1
    clock.advance(5)
    assert policy.decide(payload) is not None


def test_repeats_are_suppressed_for_denials_too_but_not_across_codes(
    make_policy: MakePolicy, clock: ManualClock
) -> None:
    policy = make_policy(repeat_window_s=5)
    assert decided(policy, b"W-2").reason == "not_allowed"
    assert policy.decide(b"W-2") is None
    assert policy.decide(b"W-1") is not None
    clock.jump(0)  # a wall-clock jump does not end the window: it runs on the monotonic clock
    assert policy.decide(b"W-2") is None


def test_passback_on_another_code_of_the_same_subject(
    make_policy: MakePolicy, clock: ManualClock
) -> None:
    policy = make_policy(anti_passback_s=60, repeat_window_s=5)
    assert decided(policy, token(clock, jti="a")).reason == "ok"
    clock.advance(30)
    assert decided(policy, token(clock, jti="b")).reason == "passback"
    clock.advance(30)
    assert decided(policy, token(clock, jti="c")).reason == "ok"


def test_passback_survives_a_restart(
    make_policy: MakePolicy, store: Store, clock: ManualClock
) -> None:
    assert decided(make_policy(anti_passback_s=60), b"W-1").granted
    clock.advance(20)
    restarted = make_policy(anti_passback_s=60)
    assert decided(restarted, b"W-1").reason == "passback"
    clock.advance(40)
    assert decided(restarted, b"W-1").reason == "ok"


def test_a_store_that_cannot_be_written_still_decides(
    make_policy: MakePolicy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Store.open_readonly(tmp_path / "qrgate.db") as readonly:
        policy = make_policy(on=readonly, anti_passback_s=60)
        assert decided(policy, b"W-1").reason == "ok"
        assert decided(policy, b"W-1").reason == "passback"  # still held in memory
    assert "passage of W-1 not persisted" in caplog.text

    def full_disk(*args: object, **kwargs: object) -> None:
        raise StoreError("database or disk is full")

    monkeypatch.setattr(Store, "prune", full_disk)
    assert decided(make_policy(), b"W-1").granted
    assert "store not tidied" in caplog.text


def test_evaluate_changes_nothing(
    make_policy: MakePolicy, store: Store, clock: ManualClock
) -> None:
    policy = make_policy(anti_passback_s=60, repeat_window_s=5)
    for _ in range(3):
        assert policy.evaluate(b"W-1").reason == "ok"
    assert store.passages_since(0) == {}
    assert decided(policy, b"W-1").reason == "ok"


def test_lockdown_keeps_the_specific_reason_of_invalid_codes(
    policy: Policy, clock: ManualClock
) -> None:
    policy.set_mode("lockdown")
    assert decided(policy, token(clock)).reason == "lockdown"
    assert decided(policy, token(clock, IssuerKey.ed25519("other"))).reason == "unknown_key"
    assert not decided(policy, token(clock)).granted


def test_emergency_opens_for_everyone_and_records_nothing(
    make_policy: MakePolicy, store: Store
) -> None:
    policy = make_policy(anti_passback_s=60)
    policy.set_mode("emergency")
    for payload, reason in ((b"W-1", "ok"), (b"W-2", "emergency"), (b"", "emergency")):
        decision = decided(policy, payload)
        assert (decision.result, decision.reason) == ("granted", reason)
    assert decided(policy, b"W-1").granted
    assert store.passages_since(0) == {}


def test_mode_survives_a_restart_and_reload(make_policy: MakePolicy, store: Store) -> None:
    make_policy().set_mode("lockdown")
    restarted = make_policy()
    assert restarted.mode == "lockdown"
    store.set_mode("normal")
    restarted.reload()
    assert restarted.mode == "normal"


def test_a_mode_change_gives_a_held_code_a_fresh_decision(make_policy: MakePolicy) -> None:
    policy = make_policy(repeat_window_s=5)
    policy.set_mode("lockdown")
    assert decided(policy, b"W-1").reason == "lockdown"
    assert policy.decide(b"W-1") is None
    policy.set_mode("normal")
    assert decided(policy, b"W-1").reason == "ok"


def test_from_config(tmp_path: Path, store: Store, clock: ManualClock, jwks: Path) -> None:
    config = parse_config({"passes": {"jwks": str(jwks)}, "gate": {"site": SITE}})
    assert decided(Policy.from_config(config, store, clock), token(clock)).reason == "ok"
    missing = parse_config({"passes": {"jwks": str(tmp_path / "none.json")}})
    with pytest.raises(ConfigError, match=r"passes\.jwks"):
        Policy.from_config(missing, store, clock)
    badges_only = parse_config({"policy": {"accept": ["badge"]}, "passes": {"jwks": "/nowhere"}})
    assert decided(Policy.from_config(badges_only, store, clock), b"W-1").granted


def test_accepting_passes_needs_a_verifier(store: Store, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="PassVerifier"):
        Policy(PolicySection(), store, clock, None)


HOSTILE = [
    b"",
    b"\x00",
    b"\x00" * 2048,
    b"A" * 1_000_000,
    b"\xff\xfe\xfd",
    b"\x1b[31mred\x1b[0m",
    b"qrgate/+/#",
    b"'; DROP TABLE allowlist; --",
    b"W-1' OR '1'='1",
    b'{"sub": "W-1", "exp": 9999999999}',
    b'"},{"result":"granted',
    b"W-1|||||||",
    b"..",
    b"a.b.",
    b"\xe2\x80\xae1-W",
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_payloads_are_denied_with_a_reason(
    policy: Policy, store: Store, payload: bytes
) -> None:
    decision = decided(policy, payload)
    assert not decision.granted
    assert decision.reason in REASONS
    assert decision.code_sha256 == hashlib.sha256(payload).hexdigest()
    assert len(store.allowlist) == 2


def test_the_size_cap_comes_first(policy: Policy, clock: ManualClock) -> None:
    large = token(clock, name="x" * 3000)
    assert decided(policy, large).reason == "too_large"


PAYLOADS = st.one_of(
    st.binary(max_size=3000),
    st.from_regex(rb"\A[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,90}\Z"),
    st.lists(st.text(max_size=15), min_size=1, max_size=9).map(lambda f: "|".join(f).encode()),
    st.text(max_size=80).map(str.encode),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=PAYLOADS)
def test_any_bytes_give_a_decision_with_a_reason(policy: Policy, payload: bytes) -> None:
    decision = policy.evaluate(payload)
    assert decision.reason in REASONS
    assert decision.credential in get_args(Credential)  # "HC1:..." is dcc, not accepted
    assert decision.granted == (decision.reason == "ok")
    if decision.subject is not None:
        assert len(decision.subject) <= 256


def test_every_reason_is_explained_in_the_credentials_guide() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "credentials.md").read_text()
    table = guide.split("## Reasons", 1)[1]
    explained = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert explained == set(REASONS)


PERSONAL_QR = "******029317|NGUYEN LE KHA HAN|1987-**-**|0|162979388586171100|<1<HS40101208"


def test_record_only_admits_well_formed_identity_codes_of_its_kinds(
    make_policy: MakePolicy, store: Store, clock: ManualClock
) -> None:
    kinds = ["pass", "badge", "cccd", "vnqr"]
    stranger_card = CARD.replace("001099012345", "001099099999")
    store.allowlist.add(AllowEntry("001099088888", valid_until=clock.now() - 1))
    store.revocations.revoke(subject="162979388586171100")
    policy = make_policy(accept=kinds, record_only=["cccd"])
    recorded = decided(policy, stranger_card.encode())
    assert (recorded.result, recorded.reason, recorded.subject, recorded.name) == (
        "granted",
        "recorded",
        "001099099999",
        "Nguyễn Văn An",
    )
    assert decided(policy, CARD.encode()).reason == "ok"  # allowlisted: says so
    expired_card = CARD.replace("001099012345", "001099088888").encode()
    assert decided(policy, expired_card).reason == "expired"  # the list's end still holds
    assert decided(policy, b"W-2").reason == "not_allowed"  # badges are not record-only here
    assert decided(policy, PERSONAL_QR.encode()).reason == "not_allowed"  # nor personal QRs
    assert decided(policy, b"001099099999|broken").reason == "unknown_format"
    everyone = make_policy(accept=kinds, record_only=["badge", "cccd", "vnqr"])
    assert decided(everyone, b"W-2").reason == "recorded"
    assert decided(everyone, PERSONAL_QR.encode()).reason == "revoked"
    other_qr = PERSONAL_QR.replace("162979388586171100", "162979388586171101").encode()
    assert (decided(everyone, other_qr).credential, decided(everyone, other_qr).reason) == (
        "vnqr",
        "recorded",
    )
    everyone.set_mode("lockdown")
    assert decided(everyone, b"W-3").reason == "lockdown"
