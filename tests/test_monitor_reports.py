"""Reports on hand-built days, exact to the millisecond, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime

import pytest

from monitor.reporting import reports
from monitor.reporting.output import as_csv, as_table
from monitor.reporting.reports import Interval, overlap
from monitor.storage.records import Gap
from monitor.storage.store import Store
from tests.support.monitor_events import full_ts, gate_event, record

DAY = "2026-03-02"
NEXT = "2026-03-03"
H = 3600.0


def ms(ts: str) -> int:
    return round(datetime.fromisoformat(full_ts(ts)).timestamp() * 1000)


NOW = ms("2026-03-10T00:00")

# (time, site, gate, direction, subject, result): a day at two sites with in and out gates.
SCANS = [
    # A: a day with a lunch break.
    (f"{DAY}T08:00", "f1", "in-1", "in", "A", "granted"),
    (f"{DAY}T12:00", "f1", "out-1", "out", "A", "granted"),
    (f"{DAY}T13:00", "f1", "in-1", "in", "A", "granted"),
    (f"{DAY}T17:00", "f1", "out-1", "out", "A", "granted"),
    # N: a night shift, still inside at midnight.
    (f"{DAY}T22:00", "f1", "in-1", "in", "N", "granted"),
    (f"{NEXT}T06:00", "f1", "out-1", "out", "N", "granted"),
    # B: denied first (does not count), then in.
    (f"{DAY}T09:00", "f1", "in-1", "in", "B", "denied"),
    (f"{DAY}T09:30", "f1", "in-1", "in", "B", "granted"),
    (f"{DAY}T11:00", "f1", "out-1", "out", "B", "granted"),
    # C: early at f1, then at the other site f2.
    (f"{DAY}T07:00", "f1", "in-1", "in", "C", "granted"),
    (f"{DAY}T07:30", "f1", "out-1", "out", "C", "granted"),
    (f"{DAY}T10:00", "f2", "main", "in", "C", "granted"),
    (f"{DAY}T16:00", "f2", "main", "out", "C", "granted"),
    # D: scanned in twice, then out, then an out with no in.
    (f"{DAY}T08:00", "f1", "in-1", "in", "D", "granted"),
    (f"{DAY}T08:05", "f1", "in-2", "in", "D", "granted"),
    (f"{DAY}T09:00", "f1", "out-1", "out", "D", "granted"),
    (f"{DAY}T10:00", "f1", "out-1", "out", "D", "granted"),
    # E: came in and never left.
    (f"{DAY}T15:00", "f1", "in-2", "in", "E", "granted"),
    # F: denied on the way out: still inside as far as the gates know.
    (f"{DAY}T14:00", "f2", "main", "in", "F", "granted"),
    (f"{DAY}T15:00", "f2", "main", "out", "F", "denied"),
]


def build(scans: list[tuple[str, str, str, str, str, str]]) -> list[dict[str, object]]:
    """Events with per-gate seq from 1, in the order the gates made them."""
    seqs: dict[tuple[str, str], int] = {}
    events = []
    for ts, site, gate, direction, subject, result in sorted(scans):
        seq = seqs[(site, gate)] = seqs.get((site, gate), 0) + 1
        events.append(
            gate_event(
                seq, ts, site=site, gate=gate, direction=direction, subject=subject, result=result
            )
        )
    return events


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    # Shuffled arrival: the reports must not depend on the order events came in.
    events = build(SCANS)
    opened.write([record(event) for event in reversed(events)])
    yield opened
    opened.close()


def rows(report: reports.Report) -> list[tuple[object, ...]]:
    return [tuple(getattr(row, c.key) for c in report.columns) for row in report.rows]


def test_onsite_is_whoever_last_came_in(store: Store) -> None:
    found = reports.onsite(store, NOW)
    assert [(r.site, r.subject, r.gate, r.since) for r in found.rows] == [
        ("f1", "E", "in-2", ms(f"{DAY}T15:00")),
        ("f2", "F", "main", ms(f"{DAY}T14:00")),
    ]
    assert found.rows[0].for_s == (NOW - ms(f"{DAY}T15:00")) / 1000
    assert found.rows[0].name == "Worker E"
    assert [r.subject for r in reports.onsite(store, NOW, site="f2").rows] == ["F"]


def test_onsite_says_which_health_certificate_each_came_in_with(store: Store) -> None:
    """On both stores (PostgreSQL's onsite query is its own); in every format."""
    paired = [
        gate_event(9, f"{DAY}T18:00", gate="in-3", subject="G", cert=("vaccination", "VN")),
        gate_event(
            10, f"{DAY}T18:05", gate="in-3", subject="H", credential="dcc", cert=("test", "DE")
        ),
        gate_event(11, f"{DAY}T19:00", gate="in-3", direction="out", subject="H"),
    ]
    store.write([record(event) for event in paired])
    found = reports.onsite(store, NOW)
    assert [(r.subject, r.cert_type, r.cert_country) for r in found.rows] == [
        ("E", None, None), ("G", "vaccination", "VN"), ("F", None, None),
    ]  # fmt: skip
    lines = as_csv(found).splitlines()
    assert lines[0].endswith(",cert_type,cert_country")
    assert lines[2].endswith(",vaccination,VN")
    assert "health certificate" in as_table(found).columns[-2].header
    without = reports.onsite(store, NOW, site="f2")  # nobody there came in with one
    assert as_csv(without).splitlines()[0].endswith(",cert_type,cert_country")
    assert [c.header for c in as_table(without).columns][-2:] == ["since", "for"]  # narrow


def test_attendance_of_a_day(store: Store) -> None:
    day = reports.attendance(store, DAY, ms(DAY + "T00:00"), ms(NEXT + "T00:00"), now_ms=NOW)
    assert rows(day) == [
        ("f1", "A", "Worker A", ms(f"{DAY}T08:00"), ms(f"{DAY}T17:00"), 8 * H, False, False),
        ("f1", "B", "Worker B", ms(f"{DAY}T09:30"), ms(f"{DAY}T11:00"), 1.5 * H, False, False),
        ("f1", "C", "Worker C", ms(f"{DAY}T07:00"), ms(f"{DAY}T07:30"), 0.5 * H, False, False),
        ("f1", "D", "Worker D", ms(f"{DAY}T08:00"), ms(f"{DAY}T10:00"), 1 * H, False, False),
        ("f1", "E", "Worker E", ms(f"{DAY}T15:00"), None, 9 * H, False, True),
        ("f1", "N", "Worker N", ms(f"{DAY}T22:00"), None, 2 * H, False, True),
        ("f2", "C", "Worker C", ms(f"{DAY}T10:00"), ms(f"{DAY}T16:00"), 6 * H, False, False),
        ("f2", "F", "Worker F", ms(f"{DAY}T14:00"), None, 10 * H, False, True),
    ]


def test_night_shift_counts_from_midnight_on_the_next_day(store: Store) -> None:
    day = reports.attendance(
        store, NEXT, ms(NEXT + "T00:00"), ms("2026-03-04T00:00"), now_ms=NOW, site="f1"
    )
    assert rows(day) == [
        ("f1", "E", "Worker E", None, None, 24 * H, True, True),
        ("f1", "N", "Worker N", None, ms(f"{NEXT}T06:00"), 6 * H, True, False),
    ]


def test_a_day_not_over_counts_up_to_now(store: Store) -> None:
    now = ms(f"{DAY}T12:30")
    day = reports.attendance(
        store, DAY, ms(DAY + "T00:00"), ms(NEXT + "T00:00"), now_ms=now, site="f1"
    )
    by_subject = {row.subject: row for row in day.rows}
    assert by_subject["A"].on_site_s == 4 * H
    assert by_subject["A"].inside_at_end is False  # left at 12:00
    assert "E" not in by_subject  # comes at 15:00, later than now
    assert by_subject["D"].on_site_s == 1 * H


def test_contacts_overlap_at_the_same_site_only(store: Store) -> None:
    found = reports.contacts(store, "A", ms(DAY + "T00:00"), ms(NEXT + "T00:00"), now_ms=NOW)
    assert [(r.site, r.subject, r.overlap_s, r.intervals) for r in found.rows] == [
        ("f1", "E", 2 * H, [Interval(ms(f"{DAY}T15:00"), ms(f"{DAY}T17:00"))]),
        ("f1", "B", 1.5 * H, [Interval(ms(f"{DAY}T09:30"), ms(f"{DAY}T11:00"))]),
        ("f1", "D", 1 * H, [Interval(ms(f"{DAY}T08:00"), ms(f"{DAY}T09:00"))]),
    ]
    assert found.title.startswith("Contacts of A (8:00:00 on site")


def test_contacts_across_midnight_and_over_several_intervals(store: Store) -> None:
    found = reports.contacts(store, "N", ms(DAY + "T00:00"), ms("2026-03-04T00:00"), now_ms=NOW)
    assert [(r.subject, r.overlap_s) for r in found.rows] == [("E", 8 * H)]
    late = reports.contacts(store, "E", ms(DAY + "T12:30"), ms(DAY + "T23:00"), now_ms=NOW)
    assert [(r.subject, r.overlap_s, len(r.intervals)) for r in late.rows] == [
        ("A", 2 * H, 1),
        ("N", 1 * H, 1),
    ]


def test_contacts_of_someone_never_there(store: Store) -> None:
    found = reports.contacts(store, "nobody", ms(DAY + "T00:00"), ms(NEXT + "T00:00"), now_ms=NOW)
    assert found.rows == []


def test_gaps_per_gate(store_url: str) -> None:
    store = Store(store_url)
    events = [gate_event(seq, f"{DAY}T08:0{seq}") for seq in (1, 2, 5, 9)]
    events += [gate_event(seq, f"{DAY}T09:0{seq}", gate="late") for seq in (3, 4)]
    events.append(dict(events[0]))  # delivered twice
    store.write([record(event) for event in events])
    assert store.gaps() == [
        Gap("f1", "in-1", 3, 4),
        Gap("f1", "in-1", 6, 8),
        Gap("f1", "late", 1, 2),
    ]
    report = reports.gaps(store)
    assert report.title == "Gaps: 7 events missing in 3 ranges"
    assert store.gaps(site="f2") == []
    store.close()


def test_overlap_of_interval_lists() -> None:
    ours = [Interval(0, 10), Interval(20, 30), Interval(40, 50)]
    theirs = [Interval(5, 25), Interval(28, 45)]
    assert overlap(ours, theirs) == [
        Interval(5, 10),
        Interval(20, 25),
        Interval(28, 30),
        Interval(40, 45),
    ]
    assert overlap(ours, [Interval(10, 20)]) == []


def test_a_seq_beyond_belief_is_flagged_not_counted(store_url: str) -> None:
    store = Store(store_url)
    hour_ms = 3_600_000
    received = 1_772_442_000_000

    def arrive(seq: int, at_ms: int, gate: str = "in-1") -> None:
        event = record(gate_event(seq, "2026-03-02T08:00", gate=gate))
        store.write([dataclasses.replace(event, received_ms=at_ms)])

    for seq in (1, 2, 3):
        arrive(seq, received)
    arrive(10**15, received + 1000)  # forged: a quadrillion events in a second
    arrive(4, received + 2000)
    arrive(4 + 100_000, received + 2000)  # a hundred thousand missing in two seconds
    arrive(4 + 100_000, received + hour_ms, gate="in-2")  # a gate first heard of: believed
    arrive(4 + 180_000, received + hour_ms)  # an hour on, under 50 a second: believable
    assert store.gaps("f1") == [
        Gap("f1", "in-1", 5, 180_003),
        Gap("f1", "in-2", 1, 100_003),
    ]
    rows = {row.gate: row for row in store.gates()}
    assert (rows["in-1"].last_seq, rows["in-1"].flagged, rows["in-1"].events) == (180_004, 2, 7)
    assert rows["in-1"].missing == 179_999
    flagged = store._read("SELECT seq FROM events WHERE NOT seq_believed ORDER BY seq")
    assert [seq for (seq,) in flagged] == [100_004, 10**15]
    title = reports.gaps(store).title
    assert title.startswith("Gaps: 280002 events missing in 2 ranges")
    assert "not counting 2 event(s) whose seq was beyond belief" in title
    store.close()
