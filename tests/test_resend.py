"""Gate-side replay: acknowledged events kept for `mqtt.keep_acked_days` without ever
taking room from new ones, and a signed `resend` command that sends kept events again,
byte for byte, through the publisher beside live ones."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from monitor.fleet.resend import plan
from monitor.storage.records import Gap, GateRow
from mqtt.commands import CommandIntake, ReplayGuard, check_args, public_keys
from mqtt.errors import CommandRejectedError, OutboxFullError
from mqtt.events import MAX_SEQ
from mqtt.outbox import MAX_RESEND, Outbox, OutboxLimits, Resend
from mqtt.publisher import Publisher
from mqtt.remote import send_command, sign_command
from mqtt.resend import resend_handler
from mqtt.signing import EventSigner
from tests.support.broker import Mosquitto
from tests.support.gate import SITE, TOPICS, broker_settings, publisher_for, scans, start
from tests.support.recorder import Recorder
from tests.support.tokens import IssuerKey

DAY_S = 86_400.0


def outbox(path: Path, now: list[float], **limits: Any) -> Outbox:
    keep = limits.pop("keep_acked_s", DAY_S)
    return Outbox(
        path, SITE, "gate-1", "in", OutboxLimits(keep_acked_s=keep, **limits), clock=lambda: now[0]
    )


def entries(box: Outbox) -> list[int]:
    return [row.entry for row in box.pending(limit=1000)]


def test_acknowledged_events_are_kept_and_give_their_room_to_new_ones(tmp_path: Path) -> None:
    now = [1000.0]
    box = outbox(tmp_path / "q.db", now, max_rows=10)
    scans(box, 8, ts=now[0])
    box.ack(entries(box))
    depth = box.depth()
    assert (depth.rows, depth.kept, depth.oldest_age_s, depth.fill) == (0, 8, None, 0.0)
    scans(box, 5, ts=now[0])  # 13 rows would not fit: the oldest kept ones make room
    depth = box.depth()
    assert depth.rows == 5
    assert depth.kept <= 5
    kept = box._read("SELECT seq FROM outbox WHERE acked IS NOT NULL ORDER BY seq")
    assert [seq for (seq,) in kept] == list(range(9 - depth.kept, 9))  # the newest stayed
    scans(box, 5, ts=now[0])
    assert (box.depth().rows, box.depth().kept) == (10, 0)
    with pytest.raises(OutboxFullError):  # waiting events alone fill it: refuse, drop none
        scans(box, 1, ts=now[0])
    box.close()


def test_kept_events_go_once_older_than_kept_for(tmp_path: Path) -> None:
    now = [1000.0]
    box = outbox(tmp_path / "q.db", now, keep_acked_s=3600.0)
    scans(box, 3, ts=now[0])
    box.ack(entries(box)[:2])
    now[0] += 1800
    scans(box, 1, ts=now[0])
    box.ack(entries(box)[-1:])
    now[0] += 2000  # the first two were acknowledged 3,800 s ago, the last 2,000 s ago
    assert box.forget_acked() == 2
    assert (box.depth().rows, box.depth().kept) == (1, 1)
    box.close()
    without = outbox(tmp_path / "other.db", now, keep_acked_s=0.0)
    scans(without, 2, ts=now[0])
    without.ack(entries(without))
    assert (without.depth().rows, without.depth().kept) == (0, 0)  # deleted at once
    without.close()


def test_a_resend_request_marks_kept_events_and_says_what_it_found(tmp_path: Path) -> None:
    now = [1000.0]
    box = outbox(tmp_path / "q.db", now)
    scans(box, 7, ts=now[0])
    box.ack(entries(box)[:5])  # seqs 1-5 kept, 6-7 still waiting
    assert box.request_resend([(2, 3), (6, 9)]) == Resend(resending=2, waiting=2, gone=2)
    assert [row.seq for row in box.to_resend(10)] == [2, 3]
    assert box.request_resend([], after=3).resending == 2  # 4 and 5
    assert [row.seq for row in box.to_resend(10)] == [2, 3, 4, 5]
    box.ack([row.entry for row in box.to_resend(2)])  # sent again and accepted
    assert [row.seq for row in box.to_resend(10)] == [4, 5]
    assert box.depth().kept == 5
    box.close()


def test_a_resend_after_the_largest_seq_finds_nothing(tmp_path: Path) -> None:
    """`after` may be the largest seq there is: nothing comes after it (SQLite could not
    even hold the seq after it)."""
    now = [1000.0]
    box = outbox(tmp_path / "q.db", now)
    scans(box, 2, ts=now[0])
    box.ack(entries(box))
    after = check_args("resend", {"after": MAX_SEQ})["after"]
    assert box.request_resend([], after) == Resend(resending=0, waiting=0, gone=0)
    assert box.to_resend(10) == []
    box.close()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"ranges": [[5, 2]]}, "first <= last"),
        ({"ranges": [[1, MAX_RESEND + 1]]}, f"at most {MAX_RESEND}"),
        ({"ranges": [[0, 3]]}, r"ranges\.0\.0: must be >= 1"),
        ({}, "nothing to resend"),
        ({"after": -1}, "after: must be >= 0"),
        ({"ranges": [[1, 2]], "seqs": [3]}, "seqs: unknown field"),
    ],
)
def test_resend_arguments_are_bounded(args: dict[str, Any], problem: str) -> None:
    with pytest.raises(CommandRejectedError, match=problem):
        check_args("resend", args)


def test_the_centre_asks_a_gate_for_no_more_than_it_accepts_at_once() -> None:
    """A gate refuses a resend of more than MAX_RESEND seqs whole: the centre asks for the
    first MAX_RESEND (a range cut where the bound falls), the rest the next time; and a
    gate online is asked for what it kept after its last stored seq."""
    gaps = [Gap(SITE, "gate-1", 2, 6), Gap(SITE, "gate-1", 10, MAX_RESEND + 20)]
    gates = [GateRow(SITE, "gate-1", state="online", last_seq=MAX_RESEND + 30)]
    (ask,) = plan(gaps, gates)
    assert ask.ranges == ((2, 6), (10, MAX_RESEND + 4))
    assert ask.asked == MAX_RESEND
    assert check_args("resend", ask.args) == {
        "ranges": [[2, 6], [10, MAX_RESEND + 4]],
        "after": MAX_RESEND + 30,
    }


def test_a_resend_sends_the_same_bytes_again_beside_new_events(
    tmp_path: Path, mosquitto: Mosquitto, running: list[Publisher]
) -> None:
    """A gate whose first twenty events were delivered is asked for 3-7 again while it
    scans ten more: the five arrive again identical (id, seq, ts, signature), the ten
    arrive once each, and the reply says what was done."""
    db = tmp_path / "gate" / "qrgate.db"
    signer = EventSigner.load_or_create(tmp_path / "gate" / "event-key.pem")
    box = Outbox(db, SITE, "gate-1", "in", OutboxLimits(keep_acked_s=DAY_S), signer=signer)
    centre = IssuerKey.ed25519("centre-1")
    handlers = {"resend": resend_handler(box)}
    intake = CommandIntake(TOPICS, public_keys({"keys": [centre.jwk()]}), handlers, ReplayGuard(db))
    recorder = Recorder(mosquitto, TOPICS.events).start()
    start(running, publisher_for(mosquitto, box, commands=intake))
    scans(box, 20)
    assert recorder.wait_for_seqs(20)
    first = {message.json()["seq"]: message.payload for message in recorder.on("events")}
    command = sign_command(
        "resend", key=centre.private, kid="centre-1", site=SITE, gate="gate-1",
        args={"ranges": [[3, 7]]},
    )  # fmt: skip
    scans(box, 10)
    (reply,) = send_command(
        broker_settings(mosquitto, client_id="centre"), "qrgate", command, timeout_s=10
    )
    assert reply.reply["outcome"] == "ok"
    assert reply.reply["detail"].startswith("resending 5 kept events")
    assert recorder.wait(lambda r: len(r.on("events")) >= 35)
    time.sleep(0.3)  # anything sent more than asked would show now
    payloads = [message.payload for message in recorder.on("events")]
    seqs = sorted(message.json()["seq"] for message in recorder.on("events"))
    assert seqs == sorted([*range(1, 31), *range(3, 8)])
    for seq in range(3, 8):
        assert payloads.count(first[seq]) == 2  # the very bytes that went out the first time
    assert box.to_resend(10) == []
    assert box.depth().kept == 30
    recorder.stop()
