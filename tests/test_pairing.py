"""Two codes, one person: a health certificate paired with an ID card, a personal QR or a
badge, in either order, on a real store and real certificates; and at the gate, one
event and one relay pulse per passage on gpiozero's mock pins, the "show the second
code" pattern, and a timeout that fires with nothing more scanned. RELIABILITY.md fault
20: another person's card, a forged certificate, two people interleaving their codes."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from msgspec.structs import replace

from firmware.patterns import AWAITING_BLINK
from firmware.scheduler import ManualScheduler
from mqtt.clock import ClockTrust
from mqtt.outbox import Outbox
from scanner.cli import run
from scanner.clock import ManualClock, SystemClock
from scanner.config import Config, parse_config
from scanner.daemon.gate import Gate
from scanner.daemon.hardware import open_outputs
from scanner.decision.pairing import PAIR_CAPACITY
from scanner.decision.policy import Decision, Policy, Waiting
from scanner.state.store import AllowEntry, Store
from tests.support import dcc as data
from tests.support.dcc import NOW
from tests.support.gate import wait_until

SIGNER = data.signer("VN", "ES256")
FORGER = data.signer("VN", "ES256")
WINDOW_S = 20.0
RELAY, GREEN, RED = 17, 23, 24

AN = ("Nguyễn", "Văn An", "1990-01-01")
TUYET = ("Hồ", "Thị Ánh Tuyết", "1985-07-14")


def card(number: str, name: str, born: str) -> bytes:
    """A chip ID card's QR; `born` as DDMMYYYY."""
    return f"{number}||{name}|{born}|Nữ|Hà Nội|15082021".encode()


def personal_qr(qid: str, name: str, born: str) -> bytes:
    return f"******029317|{name}|{born}|0|{qid}|<2<HS4010120878821".encode()


AN_CARD = card("001090000001", "Nguyễn Văn An", "01011990")
TUYET_CARD = card("001085000002", "Hồ Thị Ánh Tuyết", "14071985")


def vaccination(holder: tuple[str, str, str] = AN, **options: Any) -> bytes:
    return data.vaccination(SIGNER, holder=holder, **options)


def forged(holder: tuple[str, str, str] = AN) -> bytes:
    """FORGER's certificate claiming SIGNER's kid."""
    return data.forged(FORGER, SIGNER, holder)


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def make_config(folder: Path, policy: dict[str, Any] | None = None, **dcc: Any) -> Config:
    (folder / "state").mkdir(parents=True, exist_ok=True)
    trust = data.write_trust_list(folder / "trust.json", SIGNER)
    return parse_config(
        {
            "gpio": {"pin_factory": "mock"},
            "policy": {
                "accept": ["badge", "cccd", "vnqr", "dcc"],
                "repeat_window_s": 0,
                **(policy or {}),
            },
            "dcc": {
                "trust_list": str(trust),
                "pair_with": ["badge", "cccd", "vnqr"],
                "pair_window_s": WINDOW_S,
                **dcc,
            },
            "store": {"path": str(folder / "state" / "qrgate.db")},
        }
    )


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    with Store.open(config.store.path) as opened:
        for subject, name, kind in (
            ("001090000001", "Nguyễn Văn An", "cccd"),
            ("001085000002", "Hồ Thị Ánh Tuyết", "cccd"),
            ("162979388586171100", "Nguyễn Văn An", "vnqr"),
        ):
            opened.allowlist.add(AllowEntry(subject, name, frozenset({kind})))
        yield opened


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def policy(config: Config, store: Store, clock: ManualClock) -> Policy:
    return Policy.from_config(config, store, clock)


def decided(policy: Policy, payload: bytes) -> Decision:
    decision = policy.decide(payload)
    assert isinstance(decision, Decision), decision
    return decision


def waits(policy: Policy, payload: bytes) -> None:
    assert isinstance(policy.decide(payload), Waiting)


def passage(subject: str, name: str, shown: bytes, reason: str = "ok") -> Decision:
    """The decision of a granted paired passage: the identity, the certificate's type
    and country, the identity code's hash."""
    return Decision("granted", reason, "cccd", subject, name, digest(shown), "vaccination", "VN")


# -- the decision ---------------------------------------------------------------------------


def test_a_certificate_then_an_id_card_make_one_passage(policy: Policy) -> None:
    assert policy.decide(vaccination()) == Waiting("dcc", WINDOW_S)
    assert decided(policy, AN_CARD) == passage("001090000001", "Nguyễn Văn An", AN_CARD)
    assert policy.awaiting_s() is None
    assert policy.expire_pairs() == []


def test_an_id_card_then_a_certificate_make_the_same_passage(policy: Policy) -> None:
    assert policy.decide(AN_CARD) == Waiting("cccd", WINDOW_S)
    assert decided(policy, vaccination()) == passage("001090000001", "Nguyễn Văn An", AN_CARD)


def test_a_first_code_alone_times_out(policy: Policy, clock: ManualClock) -> None:
    certificate = vaccination()
    waits(policy, certificate)
    clock.advance(WINDOW_S / 2)
    other = vaccination(TUYET)
    waits(policy, other)  # someone else's certificate waits beside it
    assert policy.pairs_due_in() == WINDOW_S / 2
    clock.advance(WINDOW_S / 2 - 0.001)
    assert policy.expire_pairs() == []
    clock.advance(0.001)
    (timed_out,) = policy.expire_pairs()
    assert (timed_out.result, timed_out.reason, timed_out.credential) == (
        "denied",
        "pair_timeout",
        "dcc",
    )
    assert (timed_out.cert_type, timed_out.cert_country, timed_out.name) == (
        "vaccination",
        "VN",
        None,
    )
    assert timed_out.code_sha256 == digest(certificate)
    assert policy.awaiting_s() == WINDOW_S / 2
    clock.advance(WINDOW_S / 2)
    (second,) = policy.expire_pairs()
    assert (second.reason, second.code_sha256) == ("pair_timeout", digest(other))
    assert policy.pairs_due_in() is None


def test_another_persons_card_is_a_mismatch(policy: Policy) -> None:
    waits(policy, vaccination())
    mismatch = decided(policy, TUYET_CARD)
    assert (mismatch.result, mismatch.reason, mismatch.subject) == (
        "denied",
        "pair_mismatch",
        "001085000002",
    )
    assert mismatch.cert_type is None  # the event names what was shown, nothing held
    # The certificate still waits for its owner, who may be just behind.
    assert decided(policy, AN_CARD) == passage("001090000001", "Nguyễn Văn An", AN_CARD)


def test_the_same_name_born_another_day_is_a_mismatch(policy: Policy) -> None:
    waits(policy, vaccination(("Nguyễn", "Văn An", "1990-01-02")))
    assert decided(policy, AN_CARD).reason == "pair_mismatch"


@pytest.mark.parametrize("born", ["1990", "1990-01"])
def test_a_certificate_may_give_only_the_year_or_the_month(policy: Policy, born: str) -> None:
    waits(policy, AN_CARD)
    assert decided(policy, vaccination(("Nguyễn", "Văn An", born))).granted
    waits(policy, vaccination(("Nguyễn", "Văn An", born.replace("1990", "1991"))))
    assert decided(policy, AN_CARD).reason == "pair_mismatch"


@pytest.mark.parametrize(
    ("family", "given", "written"),
    [
        ("Nguyễn", "Thị Ngọc Hân", "Nguyễn Thị Ngọc Hân"),
        ("Đặng", "Văn Lâm", "ĐẶNG VĂN LÂM"),
        ("Hồ", "Thị Ánh Tuyết", "Hồ Thị Ánh Tuyết"),
        ("Trương", "Mỹ Lợi", "TRUONG MY LOI"),  # as a personal QR writes it
        ("Lưu", "Quý Đức", "Lưu Quý Đức"),
        ("Phạm", "Thị Thuỳ Dương", "Phạm Thị Thùy Dương"),  # the other tone placement
        ("Vũ", "Hoàng Yến", "Vũ Hoàng Yến"),
        ("Smith", "John", "JOHN SMITH"),  # a Western name, given name first
    ],
)
def test_vietnamese_names_with_every_diacritic_pair(
    policy: Policy, store: Store, family: str, given: str, written: str
) -> None:
    store.allowlist.add(AllowEntry("001080000009", kinds=frozenset({"cccd"})))
    shown = card("001080000009", written, "02091980")
    waits(policy, vaccination((family, given, "1980-09-02")))
    assert decided(policy, shown) == passage("001080000009", written, shown)


@pytest.mark.usefixtures("restore_logging")
def test_a_vietnamese_certificate_from_qrgate_dcc_issue_pairs_with_the_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = tmp_path / "signer"
    issue_args = ["--signer", str(signer), "--alg", "PS256", "--family", "Đặng"]
    assert run(["dcc", "issue", *issue_args, "--given", "Thị Ngọc Hân", "--dob", "1992"]) == 0
    certificate = capsys.readouterr().out.strip().encode()
    config = make_config(tmp_path / "gate")
    trust = replace(config.dcc, trust_list=signer / "trust-list.json")
    config = replace(config, dcc=trust)
    shown = card("001092000003", "Đặng Thị Ngọc Hân", "05111992")
    with Store.open(config.store.path) as store:
        store.allowlist.add(AllowEntry("001092000003", kinds=frozenset({"cccd"})))
        policy = Policy.from_config(config, store, ManualClock(time.time()))
        waits(policy, shown)
        passage_ = decided(policy, certificate)
    assert (passage_.result, passage_.subject, passage_.name) == (
        "granted",
        "001092000003",
        "Đặng Thị Ngọc Hân",
    )


def test_a_forged_certificate_with_a_valid_card_is_denied_for_the_forgery(
    policy: Policy, clock: ManualClock
) -> None:
    waits(policy, AN_CARD)
    denied = decided(policy, forged())
    assert (denied.result, denied.reason, denied.credential) == ("denied", "bad_signature", "dcc")
    assert denied.subject is None  # nothing of an unverified certificate is believed
    clock.advance(WINDOW_S)
    assert [decision.reason for decision in policy.expire_pairs()] == ["pair_timeout"]
    # In the other order the forgery is denied at once: nothing waits for it.
    assert decided(policy, forged()).reason == "bad_signature"
    assert policy.awaiting_s() is None


def test_a_genuine_certificate_that_fails_its_rules_ends_its_holders_attempt(
    policy: Policy, clock: ManualClock
) -> None:
    waits(policy, AN_CARD)
    old_test = data.covid_test(SIGNER, hours_ago=30, holder=AN)
    denied = decided(policy, old_test)
    assert (denied.reason, denied.credential, denied.subject, denied.cert_type) == (
        "test_too_old",
        "cccd",
        "001090000001",
        "test",
    )  # one event for the attempt, naming who tried
    clock.advance(WINDOW_S)
    assert policy.expire_pairs() == []


def test_an_identity_not_admitted_is_denied_at_once(policy: Policy) -> None:
    waits(policy, vaccination())
    stranger = decided(policy, card("001099999999", "Nguyễn Văn An", "01011990"))
    assert (stranger.reason, stranger.cert_type) == ("not_allowed", "vaccination")
    assert policy.awaiting_s() is None  # the certificate's attempt ended with it


def test_two_people_interleaving_never_complete_each_others_pair(
    policy: Policy, store: Store
) -> None:
    an, tuyet = vaccination(), vaccination(TUYET)
    waits(policy, an)
    waits(policy, tuyet)
    first, second = decided(policy, TUYET_CARD), decided(policy, AN_CARD)
    assert first == passage("001085000002", "Hồ Thị Ánh Tuyết", TUYET_CARD)
    assert second == passage("001090000001", "Nguyễn Văn An", AN_CARD)
    # Out of step: An shows her certificate, Tuyết her card, then each the other code.
    waits(policy, vaccination())
    assert decided(policy, TUYET_CARD).reason == "pair_mismatch"
    assert decided(policy, AN_CARD).subject == "001090000001"
    waits(policy, vaccination(TUYET))
    assert decided(policy, TUYET_CARD) == passage("001085000002", "Hồ Thị Ánh Tuyết", TUYET_CARD)


def test_a_listed_card_is_matched_by_what_the_list_says(policy: Policy, store: Store) -> None:
    # Tuyết's card number with An's name and birth date typed in: the list names Tuyết.
    home_made = card("001085000002", "Nguyễn Văn An", "01011990")
    waits(policy, vaccination())
    assert decided(policy, home_made).reason == "pair_mismatch"
    store.allowlist.add(
        AllowEntry(
            "001090000001", "Nguyễn Văn An", frozenset({"cccd"}), birth_date=date(1991, 1, 1)
        )
    )
    assert decided(policy, AN_CARD).reason == "pair_mismatch"  # the list's birth date counts
    store.allowlist.add(
        AllowEntry(
            "001090000001", "Nguyễn Văn An", frozenset({"cccd"}), birth_date=date(1990, 1, 1)
        )
    )
    claims_other_day = card("001090000001", "Nguyễn Văn An", "02021991")
    assert decided(policy, claims_other_day).granted


def test_a_personal_qr_recorded_pairs_as_recorded(tmp_path: Path, clock: ManualClock) -> None:
    config = make_config(tmp_path, {"record_only": ["vnqr"]})
    with Store.open(config.store.path) as store:
        policy = Policy.from_config(config, store, clock)
        shown = personal_qr("163500000000000001", "NGUYEN VAN AN", "1990-**-**")
        waits(policy, shown)
        done = decided(policy, vaccination())
        assert (done.result, done.reason, done.credential, done.subject, done.name) == (
            "granted",
            "recorded",
            "vnqr",
            "163500000000000001",
            "NGUYEN VAN AN",
        )


def test_badges_pair_by_the_allowlists_name_and_birth_date(policy: Policy, store: Store) -> None:
    store.allowlist.add(AllowEntry("B-1", "Nguyễn Văn An", birth_date=date(1990, 1, 1)))
    store.allowlist.add(AllowEntry("B-2", "Nguyễn Văn An", birth_date=date(1991, 1, 1)))
    store.allowlist.add(AllowEntry("B-3", "Nguyễn Văn An"))
    store.allowlist.add(AllowEntry("B-4"))
    waits(policy, vaccination())
    assert decided(policy, b"B-2").reason == "pair_mismatch"
    badge = decided(policy, b"B-1")
    assert (badge.result, badge.credential, badge.subject, badge.cert_type) == (
        "granted",
        "badge",
        "B-1",
        "vaccination",
    )
    waits(policy, vaccination(days_ago=31))
    assert decided(policy, b"B-3").granted  # no birth date on the list: the name decides
    assert decided(policy, b"B-4").reason == "pair_mismatch"  # names no one


def test_passback_acts_on_the_person(tmp_path: Path, clock: ManualClock) -> None:
    config = make_config(tmp_path, {"anti_passback_s": 60, "repeat_window_s": 5})
    with Store.open(config.store.path) as store:
        store.allowlist.add(AllowEntry("001090000001", "Nguyễn Văn An", frozenset({"cccd"})))
        store.allowlist.add(AllowEntry("162979388586171100", kinds=frozenset({"vnqr"})))
        policy = Policy.from_config(config, store, clock)
        waits(policy, vaccination())
        assert decided(policy, AN_CARD).granted
        clock.advance(1)
        # The same person's other code within the repeat window: no decision at all.
        own_qr = personal_qr("162979388586171100", "NGUYEN VAN AN", "1990-01-01")
        assert policy.decide(own_qr) is None
        clock.advance(10)
        waits(policy, vaccination(days_ago=40))  # another copy, after the repeat window
        again = decided(policy, AN_CARD)
        assert (again.result, again.reason) == ("denied", "passback")
        assert again.cert_type == "vaccination"
        assert policy.awaiting_s() is None


def test_modes_decide_a_code_alone(policy: Policy) -> None:
    assert policy.evaluate(AN_CARD).reason == "pair_timeout"  # what `pass check` says
    assert policy.evaluate(forged()).reason == "bad_signature"
    policy.set_mode("lockdown")
    assert (decided(policy, AN_CARD).result, decided(policy, AN_CARD).reason) == (
        "denied",
        "lockdown",
    )
    policy.set_mode("emergency")
    assert (decided(policy, AN_CARD).result, decided(policy, AN_CARD).reason) == (
        "granted",
        "emergency",
    )
    assert policy.awaiting_s() is None


def test_a_crowd_of_first_codes_is_bounded(policy: Policy, store: Store) -> None:
    for n in range(PAIR_CAPACITY + 1):
        store.allowlist.add(AllowEntry(f"B-{n}", f"Worker {n}"))
        waits(policy, f"B-{n}".encode())
    (oldest,) = policy.expire_pairs()  # pushed out by the newest, at once
    assert (oldest.subject, oldest.reason) == ("B-0", "pair_timeout")


def test_pairing_needs_its_kinds_accepted(tmp_path: Path) -> None:
    from scanner.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "policy": {"accept": ["badge"], "record_only": ["cccd"]},
                "dcc": {"pair_with": ["badge", "vnqr"]},
            }
        )
    problems = [str(problem) for problem in caught.value.problems]
    assert problems == [
        "policy.record_only = ['cccd']: cccd not in policy.accept",
        "dcc.pair_with = ['badge', 'vnqr']: vnqr not in policy.accept",
        "dcc.pair_with = ['badge', 'vnqr']: pairing needs dcc in policy.accept",
    ]
    with pytest.raises(ConfigError, match=r"dcc\.pair_with"):
        parse_config({"policy": {"accept": ["pass", "dcc"]}, "dcc": {"pair_with": ["pass"]}})


# -- at the gate ------------------------------------------------------------------------------


@dataclass
class Rig:
    gate: Gate
    outbox: Outbox
    clock: ManualClock
    timer: ManualScheduler
    factory: MockFactory

    def advance(self, seconds: float) -> None:
        """Time passes for the decisions first, then for the timers that act on them."""
        self.clock.advance(seconds)
        self.timer.advance(seconds)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(row.payload) for row in self.outbox.pending(limit=100)]

    def levels(self, pin: int) -> list[bool]:
        return [bool(change.state) for change in self.factory.pin(pin).states]


@pytest.fixture
def rig(
    config: Config, store: Store, clock: ManualClock, mock_factory: MockFactory
) -> Iterator[Rig]:
    timer = ManualScheduler()
    outbox = Outbox(config.store.path, "factory-1", "gate-1", "in")
    outputs = open_outputs(config.gpio, mock_factory, scheduler=timer)
    trust = ClockTrust(wall=clock.now, monotonic=clock.monotonic, synced=lambda: None)
    policy = Policy.from_config(config, store, clock)
    gate = Gate(policy, outbox, outputs, clock, trust, scheduler=timer)
    yield Rig(gate, outbox, clock, timer, mock_factory)
    gate.close()
    outputs.close()
    outbox.close()


def test_a_paired_passage_is_one_event_and_one_relay_pulse(rig: Rig) -> None:
    assert isinstance(rig.gate.scan(vaccination()), Waiting)
    assert rig.events() == []
    assert rig.gate.outputs.snapshot().pattern == "second code"
    rig.advance(1.5)
    assert rig.gate.outputs.snapshot().awaiting
    decision = rig.gate.scan(AN_CARD)
    assert isinstance(decision, Decision)
    assert decision.granted
    rig.advance(5)
    (event,) = rig.events()
    assert (event["type"], event["result"], event["reason"], event["credential"]) == (
        "scan",
        "granted",
        "ok",
        "cccd",
    )
    assert (event["subject"], event["name"]) == ("001090000001", "Nguyễn Văn An")
    assert (event["cert_type"], event["cert_country"]) == ("vaccination", "VN")
    assert event["code_sha256"] == digest(AN_CARD)
    assert "1990" not in json.dumps(event)  # no birth date, nothing of the certificate's
    assert rig.levels(RELAY) == [False, True, False]  # exactly one pulse
    assert not rig.gate.outputs.snapshot().awaiting


def test_the_wait_blinks_green_and_the_timeout_fires_with_nothing_scanned(rig: Rig) -> None:
    rig.gate.scan(AN_CARD)
    rig.factory.pin(GREEN).clear_states()
    rig.advance(WINDOW_S - 0.5)
    # The prompt's green, then a blink every second, each as long as the prompt's.
    assert AWAITING_BLINK.on_s + AWAITING_BLINK.off_s == 1.0
    assert rig.levels(GREEN) == [True] + [False, True] * int(WINDOW_S - 1) + [False]
    assert rig.events() == []
    rig.advance(0.5)
    (event,) = rig.events()
    assert (event["result"], event["reason"], event["subject"]) == (
        "denied",
        "pair_timeout",
        "001090000001",
    )
    assert event["latency_ms"] is None
    snapshot = rig.gate.outputs.snapshot()
    assert (snapshot.pattern, snapshot.red, snapshot.awaiting) == ("denied", True, False)
    assert rig.levels(RELAY) == [False]  # the relay never moved


def test_a_mismatch_at_the_gate_is_denied_and_the_first_code_still_waits(rig: Rig) -> None:
    rig.gate.scan(vaccination())
    rig.advance(1)
    rig.gate.scan(TUYET_CARD)
    (event,) = rig.events()
    assert (event["reason"], event["subject"]) == ("pair_mismatch", "001085000002")
    snapshot = rig.gate.outputs.snapshot()
    assert (snapshot.pattern, snapshot.awaiting) == ("denied", True)
    rig.advance(WINDOW_S)
    assert [event["reason"] for event in rig.events()] == ["pair_mismatch", "pair_timeout"]
    assert rig.levels(RELAY) == [False]


def test_the_timeout_fires_on_the_real_timer_thread(
    tmp_path: Path, store: Store, mock_factory: MockFactory
) -> None:
    """As `qrgate run` wires it: the system clock, the outputs' and the pairing's timer
    threads; nothing is scanned after the first code."""
    config = make_config(tmp_path / "real", pair_window_s=0.3)
    clock = SystemClock()
    outbox = Outbox(config.store.path, "factory-1", "gate-1", "in")
    trust = ClockTrust(wall=clock.now, monotonic=clock.monotonic, synced=lambda: None)
    with open_outputs(config.gpio, mock_factory) as outputs:
        gate = Gate(Policy.from_config(config, store, clock), outbox, outputs, clock, trust)
        try:
            assert isinstance(gate.scan(AN_CARD), Waiting)
            assert wait_until(lambda: outbox.depth().rows == 1, timeout=5.0)
            assert wait_until(lambda: outputs.snapshot().pattern == "denied", timeout=5.0)
            (row,) = outbox.pending(limit=10)
            assert json.loads(row.payload)["reason"] == "pair_timeout"
        finally:
            gate.close()
            outbox.close()
