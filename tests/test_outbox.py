"""The outbox: durable before append returns, seq per gate without gaps or reuse,
bounded with refusal when full, poison rows parked only when singled out."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from mqtt.errors import InvalidEventError, OutboxFullError, StoreError
from mqtt.events import parse_event
from mqtt.outbox import Outbox, OutboxLimits

SHA = "ab" * 32


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "qrgate.db"


def scan(box: Outbox, subject: str = "W-1", ts: float = 1_790_000_000.0) -> int:
    event = box.append(
        "scan",
        ts=ts,
        result="granted",
        reason="ok",
        credential="badge",
        subject=subject,
        code_sha256=SHA,
    )
    return event.seq


def test_append_is_on_disk_when_it_returns(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    event = box.append(
        "scan",
        ts=1_790_000_000.5,
        result="denied",
        reason="expired",
        credential="pass",
        code_sha256=SHA,
        latency_ms=4.5,
    )
    other = sqlite3.connect(db_path)
    seq, event_id, payload = other.execute("SELECT seq, id, payload FROM outbox").fetchone()
    assert (seq, event_id) == (1, event.id)
    assert parse_event(payload) == event
    assert json.loads(payload)["ts"] == "2026-09-21T14:13:20.500Z"
    assert box._writer.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert box._writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_seq_grows_by_one_survives_reopening_and_is_never_reused(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    assert [scan(box) for _ in range(3)] == [1, 2, 3]
    box.ack([row.entry for row in box.pending()])
    box.close()
    again = Outbox(db_path, "factory-1", "gate-1", "in")
    assert again.depth().rows == 0
    assert scan(again) == 4


def test_seq_is_counted_per_gate_in_a_shared_file(db_path: Path) -> None:
    one = Outbox(db_path, "factory-1", "gate-1", "in")
    two = Outbox(db_path, "factory-1", "gate-2", "out")
    assert [scan(one), scan(two), scan(one)] == [1, 1, 2]
    assert [(row.gate, row.seq) for row in one.pending()] == [
        ("gate-1", 1),
        ("gate-2", 1),
        ("gate-1", 2),
    ]


def test_concurrent_appends_get_distinct_consecutive_seqs(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    seqs: list[int] = []

    def worker() -> None:
        for _ in range(25):
            seqs.append(scan(box))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(seqs) == list(range(1, 101))
    assert len({json.loads(row.payload)["id"] for row in box.pending(limit=200)}) == 100


def test_full_outbox_refuses_records_nothing_and_uses_no_seq(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in", OutboxLimits(max_rows=3))
    for _ in range(3):
        scan(box)
    with pytest.raises(OutboxFullError, match="3 events"):
        scan(box)
    assert box.depth().rows == 3
    assert box.depth().fill == 1.0
    box.ack([box.pending(limit=1)[0].entry])
    assert scan(box) == 4


def test_byte_limit_counts_payload_bytes(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in", OutboxLimits(max_bytes=1000))
    scan(box)
    size = box.depth().bytes
    assert size == len(box.pending()[0].payload)
    while box.depth().bytes + size <= 1000:
        scan(box)
    with pytest.raises(OutboxFullError):
        scan(box)


def test_invalid_event_records_nothing_and_uses_no_seq(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    with pytest.raises(InvalidEventError, match="subject"):
        scan(box, subject="x" * 300)
    with pytest.raises(InvalidEventError, match="code_sha256"):
        box.append("scan", ts=0, result="denied", reason="ok", credential="pass")
    assert box.depth().rows == 0
    assert scan(box) == 1


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"latency_ms": float("nan")}, "latency_ms"),
        ({"latency_ms": float("inf")}, "latency_ms"),
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"reason": "OK; DROP"}, "reason"),
        ({"credential": "badge\n"}, "credential"),
        ({"detail": "d" * 513}, "detail"),
        ({"cert_country": "vn"}, "cert_country"),
        ({"name": "Worker \ud800"}, "name"),  # text UTF-8 cannot carry
    ],
)
def test_each_bad_value_is_refused_by_name(
    db_path: Path, fields: dict[str, object], named: str
) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    scan_fields = {"result": "granted", "reason": "ok", "credential": "badge", "code_sha256": SHA}
    with pytest.raises(InvalidEventError, match=f"not a valid event: .*{named}"):
        box.append("scan", ts=1_790_000_000.0, **{**scan_fields, **fields})  # type: ignore[arg-type]
    assert box.depth().rows == 0
    assert scan(box) == 1


def test_a_bad_gate_or_time_is_refused_by_name(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    with pytest.raises(InvalidEventError, match="not a valid event: site"):
        Outbox(db_path, "factory/1", "gate-1", "in").append("exit_request", ts=0)
    with pytest.raises(InvalidEventError, match="not a valid event: year"):
        box.append("exit_request", ts=1e15)
    assert box.depth().rows == 0
    assert scan(box) == 1


def fill_until_refused(box: Outbox, limit: int = 200) -> StoreError:
    for _ in range(limit):
        try:
            scan(box, subject="W-" + "9" * 60)
        except StoreError as error:
            return error
    raise AssertionError(f"{limit} appends all succeeded")


def test_disk_full_is_a_store_error_and_loses_no_seq(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    scan(box)
    pages = box._writer.execute("PRAGMA page_count").fetchone()[0]
    box._writer.execute(f"PRAGMA max_page_count = {pages}")
    assert "full" in str(fill_until_refused(box))
    box._writer.execute("PRAGMA max_page_count = 1000000")
    rows = box.depth().rows
    assert scan(box) == rows + 1


def test_pending_reads_bounded_windows_oldest_first(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    for _ in range(10):
        scan(box)
    first = box.pending(limit=4)
    assert [row.seq for row in first] == [1, 2, 3, 4]
    assert [row.seq for row in box.pending(after=first[-1].entry, limit=4)] == [5, 6, 7, 8]


def test_entries_keep_growing_after_the_outbox_empties(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    scan(box)
    (first,) = box.pending()
    box.ack([first.entry])
    scan(box)
    assert [row.seq for row in box.pending(after=first.entry)] == [2]


def test_refusals_park_a_row_only_when_others_were_accepted(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in", OutboxLimits(max_refusals=3))
    scan(box)
    entry = box.pending()[0].entry
    for _ in range(10):  # the broker refuses everything: the row must keep being tried
        assert not box.refuse(entry, "Not authorized", singled_out=False)
    assert [row.entry for row in box.pending()] == [entry]
    assert box.refuse(entry, "Not authorized", singled_out=True)
    assert box.pending() == []


def test_parked_rows_are_kept_visible_and_released_by_an_operator(db_path: Path) -> None:
    box = Outbox(db_path, "factory-1", "gate-1", "in", OutboxLimits(max_refusals=2))
    scan(box, subject="poison")
    scan(box)
    poison = box.pending()[0]
    assert not box.refuse(poison.entry, "Packet too large", singled_out=True)
    assert box.refuse(poison.entry, "Packet too large", singled_out=True)
    assert [row.seq for row in box.pending()] == [2]
    depth = box.depth()
    assert (depth.rows, depth.parked) == (2, 1)
    (parked,) = box.parked()
    assert (parked.seq, parked.attempts, parked.last_error) == (1, 2, "Packet too large")
    assert box.release() == 1
    assert [row.seq for row in box.pending()] == [1, 2]
    assert box.depth().parked == 0
    box.ack([poison.entry])
    assert box.depth().parked == 0


def test_depth_reports_the_age_of_the_oldest_waiting_row(db_path: Path) -> None:
    now = [1000.0]
    box = Outbox(db_path, "factory-1", "gate-1", "in", clock=lambda: now[0])
    assert box.depth().oldest_age_s is None
    scan(box)
    now[0] = 1042.5
    scan(box)
    assert box.depth().oldest_age_s == 42.5
    now[0] = 10.0  # the wall clock jumped back: an age is never negative
    assert box.depth().oldest_age_s == 0.0


def test_schema_version_is_shared_with_other_components(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    other = sqlite3.connect(db_path)
    other.executescript(
        "CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL);"
        "INSERT INTO schema_version VALUES ('store', 3);"
        "CREATE TABLE allowlist (subject TEXT PRIMARY KEY);"
    )
    other.close()
    box = Outbox(db_path, "factory-1", "gate-1", "in")
    scan(box)
    versions = dict(box._drain.execute("SELECT component, version FROM schema_version"))
    assert versions == {"store": 3, "outbox": 2}
    Outbox(db_path, "factory-1", "gate-1", "in")  # opening again migrates nothing


def test_a_newer_schema_is_refused_with_what_to_do(db_path: Path) -> None:
    Outbox(db_path, "factory-1", "gate-1", "in").close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE schema_version SET version = 9 WHERE component = 'outbox'")
    conn.commit()
    with pytest.raises(StoreError, match="upgrade qrgate"):
        Outbox(db_path, "factory-1", "gate-1", "in")


def test_an_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot open"):
        Outbox(tmp_path / "file" / "q.db", "factory-1", "gate-1", "in")
