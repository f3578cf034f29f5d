"""The store at size: seq ranges kept as events arrive (the gaps report reads them, not
every seq), PostgreSQL's monthly partitions made ahead and dropped whole by the
retention, writers of several monitors that neither deadlock nor lose a count, the
upgrades from schemas 2 and 3, and Events filters that seek their own index."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import StoreConflictError
from monitor.intake.ingest import StatusRecord
from monitor.storage import schema, seqranges
from monitor.storage.records import EventFilter, Gap
from monitor.storage.retention import prune
from monitor.storage.seqranges import SeqRange
from monitor.storage.store import Store, resolve
from tests.support import together
from tests.support.monitor_events import gate_event, record
from tests.support.postgres import Postgres


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def brute_gaps(seqs: set[int], above: int, last: int) -> list[tuple[int, int]]:
    missing = [seq for seq in range(above + 1, last + 1) if seq not in seqs]
    return [(r.first, r.last) for r in seqranges.runs(missing)]


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(1, 60), max_size=12), max_size=8),
    above=st.integers(0, 20),
)
def test_ranges_merged_batch_by_batch_hold_exactly_the_seqs_received(
    batches: list[list[int]], above: int
) -> None:
    ranges: list[SeqRange] = []
    for batch in batches:
        ranges = seqranges.merged([*ranges, *seqranges.runs(batch)])
    received = {seq for batch in batches for seq in batch}
    assert ranges == seqranges.runs(received)
    last = max(received, default=0)
    found = seqranges.holes("s", "g", ranges, above, last)
    assert [(gap.first, gap.last) for gap in found] == brute_gaps(received, above, last)


def test_gaps_come_from_ranges_kept_as_events_arrive(store_url: str) -> None:
    store = Store(store_url)
    seqs = [seq for seq in range(1, 301) if seq % 37 and seq not in range(100, 120)]
    events = [gate_event(seq, "2026-03-02T08:00", gate=f"g{seq % 3}") for seq in seqs]
    random.Random(7).shuffle(events)
    for start in range(0, len(events), 40):  # shuffled batches, some events twice
        batch = events[start : start + 40] + events[start : start + 3]
        store.write([record(event) for event in batch])
    expected = []
    for gate in ("g0", "g1", "g2"):
        held = {seq for seq in seqs if f"g{seq % 3}" == gate}
        expected += [Gap("f1", gate, a, b) for a, b in brute_gaps(held, 0, max(held))]
    assert store.gaps() == expected
    ranges = store._read("SELECT COUNT(*) FROM seq_ranges")[0][0]
    assert ranges == len(expected) + 3 - sum(gap.first == 1 for gap in expected)
    assert store.count_events() == len(seqs)
    store.close()


# ---- the upgrades from schema 2 and 3 -----------------------------------------------------


def old_store(url: str, version: int, rows: list[dict[str, Any]], now_ms: int = 0) -> None:
    """A store as an earlier version left it: its tables (made by the steps up to
    `version`, run at `now_ms`), events and gate counts."""
    dialect, connect = resolve(url, create=True)
    connection = connect()
    cursor = connection.cursor()
    for statement in schema.SCHEMA.format(blob=dialect.blob).split(";"):
        if statement.strip():
            cursor.execute(statement)
    for step in range(1, version):
        schema.run_step(schema.MIGRATIONS[step], cursor, dialect.name, now_ms)
    cursor.execute(
        dialect.sql("INSERT INTO meta (key, value) VALUES ('schema', ?)"), (str(version),)
    )
    columns = ("id", "site", "gate", "seq", "ts_ms", "direction", "type", "ts_trusted",
               "received_ms", "subject", "result")  # fmt: skip
    marks = ", ".join("?" * len(columns))
    insert = f"INSERT INTO events ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
    cursor.executemany(dialect.sql(insert), [[row[c] for c in columns] for row in rows])
    if version >= 3:  # what it kept as the events arrived
        for statement in schema.FROM_EVENTS:
            cursor.execute(statement)
    cursor.execute(
        dialect.sql("INSERT INTO gates (site, gate, events, last_seq) VALUES (?, ?, ?, ?)"),
        ("f1", "in-1", len(rows), max(row["seq"] for row in rows)),
    )
    if dialect.name == "sqlite":
        connection.commit()
    connection.close()


def old_row(seq: int, when: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "site": "f1", "gate": "in-1", "seq": seq, "ts_ms": ms(when),
        "direction": "in", "type": "scan", "ts_trusted": True, "received_ms": 0,
        "subject": "A", "result": "granted",
    }  # fmt: skip


def test_a_store_of_schema_2_is_upgraded_with_its_events_gaps_and_partitions(
    store_url: str,
) -> None:
    now = ms("2026-03-15T00:00")
    rows = [old_row(seq, f"2026-0{1 + seq % 3}-02T08:00") for seq in (1, 2, 3, 5, 6, 9)]
    rows.append(old_row(10, "2031-01-01T00:00"))  # a gate's clock far ahead
    old_store(store_url, 2, rows)
    store = Store(store_url, create=False, clock=lambda: now / 1000)
    assert store._read("SELECT value FROM meta WHERE key = 'schema'") == [("4",)]
    assert store.count_events() == 7
    assert store.gaps() == [Gap("f1", "in-1", 4, 4), Gap("f1", "in-1", 7, 8)]
    again = gate_event(5, "2026-03-02T08:00")
    again.update(id=rows[3]["id"], ts="2026-03-02T08:00:00.000Z")  # the same event, redelivered
    assert store.write([record(again), record(gate_event(4, "2026-03-14T08:00"))]) != []
    assert store.count_events() == 8
    assert store.gaps() == [Gap("f1", "in-1", 7, 8)]
    assert [(scan.subject, scan.ts_ms) for scan in store.inside()] == [("A", rows[-1]["ts_ms"])]
    if store.dialect.name == "postgresql":
        names = [part.name for part in store.partitions()]
        assert names == ["events_before_m202604", "events_m202604", "events_default"]
        where = store._read("SELECT tableoid::regclass::text, seq FROM events ORDER BY seq")
        assert where[-1] == ("events_default", 10)
        assert {table for table, _ in where[:-1]} == {"events_before_m202604"}
    store.close()


def test_a_store_of_schema_3_is_upgraded_to_keep_health_certificates(store_url: str) -> None:
    """Its events stay, without a certificate (schema 3 did not keep one); new ones keep
    theirs, in every partition on PostgreSQL, those made after the upgrade too; the
    Events filters on them find them."""
    then, now = ms("2026-02-20T00:00"), ms("2026-05-10T00:00")
    rows = [old_row(seq, when) for seq, when in ((1, "2026-02-02T08:00"), (2, "2026-03-02T08:00"))]
    old_store(store_url, 3, rows, now_ms=then)
    if store_url.startswith("postgresql"):  # as every open of a schema 3 store made it
        with psycopg.connect(store_url, autocommit=True) as connection:
            connection.execute("CREATE INDEX events_time ON events (ts_ms)")
    store = Store(store_url, create=False, clock=lambda: now / 1000)
    assert store._read("SELECT value FROM meta WHERE key = 'schema'") == [("4",)]
    store.prepare_partitions()  # May and June: months made after the upgrade
    kept = [
        gate_event(3, "2026-03-02T09:00", credential="dcc", cert=("test", "VN")),
        gate_event(4, "2026-05-02T09:00", credential="cccd", cert=("vaccination", "KR")),
    ]
    assert len(store.write([record(event) for event in kept])) == 2
    found = {row.seq: (row.cert_type, row.cert_country) for row in store.events(EventFilter())}
    assert found == {1: (None, None), 2: (None, None), 3: ("test", "VN"), 4: ("vaccination", "KR")}
    assert [row.seq for row in store.events(EventFilter(cert_type="test"))] == [3]
    assert [row.seq for row in store.events(EventFilter(cert_country="KR"))] == [4]
    recent = [line.cert_type for line in store.recent_events(10)]
    assert recent == [None, None, "test", "vaccination"]
    assert store.gaps() == []
    if store.dialect.name == "postgresql":
        names = [part.name for part in store.partitions()]
        assert names[-3:] == ["events_m202605", "events_m202606", "events_default"]
        indexed = store._read(
            "SELECT t.relname, COUNT(*) FROM pg_index AS x"
            " JOIN pg_class AS i ON i.oid = x.indexrelid JOIN pg_class AS t ON t.oid = x.indrelid"
            " JOIN pg_inherits AS h ON h.inhrelid = t.oid AND h.inhparent = 'events'::regclass"
            " WHERE pg_get_expr(x.indpred, x.indrelid) LIKE ? GROUP BY t.relname",
            "%cert_% IS NOT NULL%",
        )
        assert dict(indexed) == dict.fromkeys(names, 2)  # both, on every month
        assert not store._read("SELECT 1 FROM pg_indexes WHERE indexname = 'events_time'")
    else:
        indexes = {row[0] for row in store._read("SELECT name FROM sqlite_master")}
        assert {"events_cert_type_time", "events_cert_country_time"} <= indexes
    store.close()


def opened_together_in_threads(url: str, count: int = 3) -> list[BaseException]:
    """`count` monitors' stores opened at the same moment; what they raised."""
    failures: list[BaseException] = []
    barrier = threading.Barrier(count)

    def start() -> None:
        barrier.wait()
        try:
            Store(url).close()
        except Exception as error:  # reported by the caller
            failures.append(error)

    starters = [threading.Thread(target=start) for _ in range(count)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    return failures


def open_store(url: str) -> None:
    Store(url).close()


def test_processes_making_one_new_sqlite_store_at_once_all_open_it(tmp_path: Path) -> None:
    """A monitor, its dashboard and a report started together on a store not made yet:
    each opens it. Before, switching the new file to WAL met another process holding it
    and failed at once ("database is locked"), in 16 of 40 such starts."""
    urls = [f"sqlite:///{tmp_path / f'new-{attempt}.db'}" for attempt in range(10)]
    assert together.opened_together(open_store, urls) == []


def event_indexes(url: str) -> set[str]:
    dialect, connect = resolve(url, create=False)
    connection = connect()
    sql = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        if dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'events'"
    )
    found = {row[0] for row in connection.execute(sql).fetchall()}
    connection.close()
    return found


def test_monitors_opening_one_store_at_once_make_it_once_and_add_nothing(
    store_url: str,
) -> None:
    """Monitors start together on a new store (PostgreSQL: several monitors share one),
    then on the made one: each opens it, and an open adds nothing to a store that has
    its schema. Before, every open made `events_time` again on PostgreSQL, where the key
    (ts_ms, id) replaced it, and monitors starting together collided making it."""
    assert opened_together_in_threads(store_url) == []  # new
    made = event_indexes(store_url)
    assert opened_together_in_threads(store_url) == []  # made
    assert ("events_time" in made) is store_url.startswith("sqlite")
    assert event_indexes(store_url) == made


# ---- PostgreSQL: months ------------------------------------------------------------------


def test_months_are_made_ahead_and_the_retention_drops_whole_ones(
    postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    now = ms("2026-03-15T00:00")
    store = Store(postgres.create_database("months"), clock=lambda: now / 1000)
    assert [p.name for p in store.partitions()] == [
        "events_m202603",
        "events_m202604",
        "events_default",
    ]
    days = ["2026-01-05", "2026-01-20", "2026-02-03", "2026-02-25", "2026-03-01", "2026-03-12"]
    events = [gate_event(seq, f"{day}T08:00") for seq, day in enumerate(days, start=1)]
    events.append(gate_event(7, "1970-01-01T00:00"))  # a clock that was never set: seq 7
    events.append(gate_event(8, "2026-01-06T08:00", subject="B"))  # seen in January only
    store.write([record(event) for event in events])
    placed = dict(store._read("SELECT seq, tableoid::regclass::text FROM events"))
    assert placed[1] == placed[4] == placed[7] == "events_default"  # no month of their own yet
    assert store.prepare_partitions(since_ms=ms("2026-01-10T00:00")) == [
        "events_m202601",
        "events_m202602",
    ]
    placed = dict(store._read("SELECT seq, tableoid::regclass::text FROM events"))
    assert (placed[1], placed[4], placed[5], placed[7]) == (
        "events_m202601",
        "events_m202602",
        "events_m202603",
        "events_default",
    )
    with caplog.at_level(logging.INFO):
        deleted = prune(store, 5, ms("2026-03-06T00:00"))  # cutoff 2026-03-01
    assert deleted == 6  # January and February whole, and 1970 from the default partition
    assert "dropped partition events_m202601 (3 events)" in caplog.text
    assert "dropped partition events_m202602 (2 events)" in caplog.text
    assert store.partitions()[0].name == "events_m202603"
    assert sorted(row[0] for row in store._read("SELECT seq FROM events")) == [5, 6]
    assert store.pruned_marks() == {("f1", "in-1"): 8}
    assert store.gaps() == []
    assert store._read("SELECT subject FROM people") == [("A",)]  # B is forgotten
    store.write([record(gate_event(10, "2026-03-14T09:00"))])
    assert store.gaps() == [Gap("f1", "in-1", 9, 9)]
    store.close()


# ---- several writers ---------------------------------------------------------------------


def test_writers_of_several_monitors_on_the_same_gates_never_deadlock(postgres: Postgres) -> None:
    """Two monitors, each storing batches that touch the same twenty gates (status and
    events) in opposite orders, at once: every batch stored, every count exact."""
    url = postgres.create_database("writers")
    Store(url).close()
    gates = [f"g{n:02d}" for n in range(20)]
    failures: list[BaseException] = []
    rounds = 25

    def monitor(order: list[str], first_seq: int) -> None:
        store = Store(url, create=False)
        try:
            for number in range(rounds):
                seq = first_seq + number
                batch: list[Any] = []
                for gate in order:
                    batch.append(StatusRecord("f1", gate, "online", None, "1", seq))
                    batch.append(record(gate_event(seq, "2026-03-02T08:00", gate=gate)))
                store.write(batch)
        except BaseException as error:  # handed to the test's thread
            failures.append(error)
        finally:
            store.close()

    threads = [
        threading.Thread(target=monitor, args=(gates, 1)),
        threading.Thread(target=monitor, args=(gates[::-1], rounds + 1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    store = Store(url, create=False)
    rows = store.gates()
    assert [(row.gate, row.events, row.last_seq) for row in rows] == [
        (gate, 2 * rounds, 2 * rounds) for gate in gates
    ]
    assert store.gaps() == []
    assert store._read("SELECT COUNT(*) FROM seq_ranges") == [(len(gates),)]
    store.close()


def test_a_write_that_met_another_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path}/m.db")
    write_once = store._write_once
    met = iter([True, True, False])

    def meeting(records: Any) -> Any:
        if next(met):
            raise StoreConflictError("deadlock detected")
        return write_once(records)

    monkeypatch.setattr(store, "_write_once", meeting)
    assert len(store.write([record(gate_event(1, "2026-03-02T08:00"))])) == 1
    assert store.count_events() == 1
    store.close()


# ---- the Events filters ------------------------------------------------------------------


def test_a_filter_on_a_value_no_event_has_seeks_instead_of_walking(tmp_path: Path) -> None:
    """SQLite's virtual machine steps while the Events page looks for a denied scan, an
    ID card, a reason, a person or a health certificate's type or country among 5,000
    events that have none (a tenth of them a vaccination from VN): a seek, not a walk."""
    url = f"sqlite:///{tmp_path}/m.db"
    store = Store(url)
    cert = ("vaccination", "VN")
    events = [gate_event(s, "2026-03-02T08:00", cert=cert if s % 10 == 3 else None)
              for s in range(1, 5001)]  # fmt: skip
    store.write([record(event) for event in events])
    store.refresh_statistics()
    connection: sqlite3.Connection = store._connected()
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection.set_progress_handler(count, 100)
    for where in (
        EventFilter(result="denied"),
        EventFilter(credential="cccd"),
        EventFilter(reason="passback"),
        EventFilter(subject="nobody"),
        EventFilter(cert_type="recovery"),
        EventFilter(cert_country="FR"),
    ):
        steps = 0
        assert store.events(where) == []
        assert steps < 20, (where, steps * 100)  # a walk over 5,000 rows takes > 1,000
    store.close()
