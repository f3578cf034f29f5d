"""The in-flight window: bounded, oldest first, refusals end a round, poison rows are
singled out (refused beside accepted rows, or taking the connection down alone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqtt.outbox import Outbox
from mqtt.window import Window
from tests.support.gate import new_outbox, scans


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = new_outbox(tmp_path / "q.db", max_refusals=3)
    scans(box, 10)
    return box


def send(window: Window, first_mid: int = 1) -> dict[int, int]:
    """Send what is due; mid -> seq."""
    sent = {}
    for mid, row in enumerate(window.due(), start=first_mid):
        window.sent(mid, row, now=0.0)
        sent[mid] = row.seq
    return sent


def test_sends_oldest_first_within_the_limit(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    assert list(send(window).values()) == [1, 2, 3, 4]
    assert window.due() == []
    window.answer(1, True, "Success")
    assert [row.seq for row in window.due()] == [5]


def test_the_brokers_receive_maximum_caps_the_window(outbox: Outbox) -> None:
    window = Window(outbox, 64)
    window.restart(receive_maximum=3)
    assert len(window.due()) == 3


def test_accepted_rows_leave_the_outbox_on_settle(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    send(window)
    for mid in (1, 2):
        window.answer(mid, True, "Success")
    assert window.settle() is None
    assert [row.seq for row in outbox.pending()] == [3, 4, 5, 6, 7, 8, 9, 10]


def test_answers_to_other_messages_are_not_ours(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    send(window)
    assert window.answer(99, True, "Success") is None


def test_a_refusal_ends_the_round_and_the_next_starts_from_the_oldest(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    send(window)
    window.answer(1, False, "Not authorized")
    assert window.due() == []  # nothing new while answers are outstanding
    assert window.settle() is None
    for mid in (2, 3, 4):
        window.answer(mid, True, "Success")
    finished = window.settle()
    assert finished is not None
    assert (finished.accepted, list(finished.refused.values())) == (3, ["Not authorized"])
    assert [row.seq for row in window.due()] == [1, 5, 6, 7]


def test_a_row_refused_beside_accepted_ones_is_parked(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    for round_number in range(3):
        mids = send(window, first_mid=10 * round_number)
        for mid, seq in mids.items():
            window.answer(mid, seq != 1, "Not authorized" if seq == 1 else "Success")
        assert window.settle() is not None
    assert [parked.seq for parked in outbox.parked()] == [1]
    assert window.due() == []  # the rest flowed meanwhile; the parked row waits aside
    assert (outbox.depth().rows, outbox.depth().parked) == (1, 1)


def test_a_broker_refusing_everything_parks_nothing(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    for round_number in range(6):
        for mid in send(window, first_mid=10 * round_number):
            window.answer(mid, False, "Not authorized")
        window.settle()
    assert outbox.parked() == []
    assert outbox.depth().rows == 10


def test_after_a_lost_connection_the_oldest_row_probes_alone(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    send(window)
    window.lost("Protocol error")
    window.restart()
    assert list(send(window, first_mid=5).values()) == [1]
    assert window.due() == []
    window.answer(5, True, "Success")
    assert len(window.due()) == 4


def test_a_row_that_takes_the_connection_down_alone_is_parked(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    send(window)
    window.lost("Protocol error")
    for attempt in range(3):
        window.restart()
        assert list(send(window, first_mid=10 * attempt).values()) == [1]
        window.lost("Protocol error")
    assert [(p.seq, p.attempts) for p in outbox.parked()] == [(1, 3)]
    window.restart()
    assert [row.seq for row in window.due()] == [2]


def test_overdue_names_the_oldest_unanswered_row(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    rows = window.due()
    window.sent(1, rows[0], now=100.0)
    window.sent(2, rows[1], now=105.0)
    assert window.overdue(now=109.0, timeout=10.0) is None
    stuck = window.overdue(now=111.0, timeout=10.0)
    assert stuck is not None
    assert stuck.seq == 1


def test_rows_released_from_parking_are_sent_again(outbox: Outbox) -> None:
    window = Window(outbox, 4)
    first = outbox.pending(limit=1)[0]
    for _ in range(3):
        outbox.refuse(first.entry, "Packet too large", singled_out=True)
    mids = send(window)
    for mid in mids:
        window.answer(mid, True, "Success")
    window.settle()
    assert 1 not in mids.values()
    outbox.release()
    assert window.due()[0].seq == 1
