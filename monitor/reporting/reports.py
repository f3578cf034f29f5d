"""Who is on site, who came when, who was there with whom, which events are missing.

Presence is made of granted scans only (denied scans never moved anyone through the
gate), per site and subject, with the direction each event carries:

- a granted `in` starts a stay, unless one is already going on;
- a granted `out` ends the stay going on; an `out` with no stay going on ends nothing;
- a stay still going on at the end of a window counts up to the end of that window.

A window (a day, a contact-tracing period) starts with whoever was inside at its start:
their last granted scan before it was an `in`. So a person still inside at midnight is
counted up to midnight on the first day and from midnight on the next.

SQL picks the rows (indexes do the work on millions of events); the rules above are
applied here, in one place, for every report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Literal

from monitor.storage.records import Gap, Scan
from monitor.storage.store import Store

Key = tuple[str, str]  # (site, subject)
ColumnKind = Literal["text", "time", "duration", "count", "flag", "intervals"]


@dataclass(frozen=True)
class Interval:
    """[start_ms, end_ms): epoch milliseconds."""

    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


@dataclass
class Presence:
    """One subject's stays at one site within a window."""

    site: str
    subject: str
    name: str | None
    inside_at_start: bool
    scans: list[Scan] = field(default_factory=list)
    stays: list[Interval] = field(default_factory=list)
    inside_at_end: bool = False

    @property
    def seconds(self) -> float:
        return sum(stay.seconds for stay in self.stays)


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: ColumnKind = "text"
    # Left out of a terminal table whose rows have no value in it (CSV and JSON keep it).
    optional: bool = False


# Who a row of the presence reports is about.
PERSON_COLUMNS = (Column("site", "site"), Column("subject", "subject"), Column("name", "name"))
# A health certificate's type and issuing country, where an event listed carries one.
CERT_COLUMNS = (
    Column("cert_type", "health certificate", optional=True),
    Column("cert_country", "country", optional=True),
)


@dataclass(frozen=True)
class Report:
    """What a report command prints: rows (dataclasses) shown through their columns."""

    title: str
    columns: tuple[Column, ...]
    rows: Sequence[Any]


# ---- the rules ----------------------------------------------------------------------


def presence(
    store: Store, from_ms: int, to_ms: int, site: str | None = None, subject: str | None = None
) -> dict[Key, Presence]:
    """Everyone's stays in [from_ms, to_ms), optionally at one site or for one subject."""
    found = {
        (scan.site, scan.subject): Presence(scan.site, scan.subject, scan.name, True)
        for scan in store.inside(from_ms, site, subject)
    }
    scans = store.scans(from_ms, to_ms, site, subject)
    for key, group in groupby(scans, key=lambda scan: (scan.site, scan.subject)):
        person = found.setdefault(key, Presence(*key, None, inside_at_start=False))
        person.scans = list(group)
        person.name = next((s.name for s in reversed(person.scans) if s.name), person.name)
    for person in found.values():
        person.stays, person.inside_at_end = walk(from_ms, to_ms, person)
    return found


def walk(from_ms: int, to_ms: int, person: Presence) -> tuple[list[Interval], bool]:
    """Apply the rules to one person's scans: their stays, and whether one is still open."""
    stays: list[Interval] = []
    opened = from_ms if person.inside_at_start else None
    for scan in person.scans:
        if scan.direction == "in" and opened is None:
            opened = scan.ts_ms
        elif scan.direction == "out" and opened is not None:
            stays.append(Interval(opened, scan.ts_ms))
            opened = None
    if opened is not None:
        stays.append(Interval(opened, to_ms))
    return [stay for stay in stays if stay.end_ms > stay.start_ms], opened is not None


def overlap(ours: Sequence[Interval], theirs: Sequence[Interval]) -> list[Interval]:
    """Where two sorted lists of disjoint intervals meet."""
    met: list[Interval] = []
    i = j = 0
    while i < len(ours) and j < len(theirs):
        start = max(ours[i].start_ms, theirs[j].start_ms)
        end = min(ours[i].end_ms, theirs[j].end_ms)
        if end > start:
            met.append(Interval(start, end))
        if ours[i].end_ms < theirs[j].end_ms:
            i += 1
        else:
            j += 1
    return met


# ---- the reports --------------------------------------------------------------------


@dataclass(frozen=True)
class OnsiteRow:
    site: str
    subject: str
    name: str | None
    gate: str
    since: int
    for_s: float
    cert_type: str | None  # the health certificate they came in with, if any
    cert_country: str | None


def onsite(store: Store, now_ms: int, site: str | None = None) -> Report:
    """Whoever's last granted scan at a site was an `in`, and the health certificate (if
    any) that scan was made with."""
    rows = [
        OnsiteRow(
            s.site,
            s.subject,
            s.name,
            s.gate,
            s.ts_ms,
            max(now_ms - s.ts_ms, 0) / 1000,
            s.cert_type,
            s.cert_country,
        )
        for s in store.inside(None, site)
    ]
    return Report(
        f"On site now: {len(rows)}",
        (
            *PERSON_COLUMNS,
            Column("gate", "came in at gate"),
            Column("since", "since", "time"),
            Column("for_s", "for", "duration"),
            *CERT_COLUMNS,
        ),
        rows,
    )


@dataclass(frozen=True)
class AttendanceRow:
    site: str
    subject: str
    name: str | None
    first_in: int | None
    last_out: int | None
    on_site_s: float
    inside_at_start: bool
    inside_at_end: bool


def attendance(
    store: Store, day: str, from_ms: int, to_ms: int, *, now_ms: int, site: str | None = None
) -> Report:
    """Per subject and site on one day [from_ms, to_ms): first in, last out, time on site.

    A day not over yet counts up to now; `inside_at_end` then means inside now.
    """
    end_ms = min(to_ms, now_ms)
    people = presence(store, from_ms, end_ms, site) if end_ms > from_ms else {}
    rows = [attendance_row(person) for _, person in sorted(people.items())]
    return Report(
        f"Attendance on {day}: {len(rows)}",
        (
            *PERSON_COLUMNS,
            Column("first_in", "first in", "time"),
            Column("last_out", "last out", "time"),
            Column("on_site_s", "time on site", "duration"),
            Column("inside_at_start", "inside at start", "flag"),
            Column("inside_at_end", "inside at end", "flag"),
        ),
        rows,
    )


def attendance_row(person: Presence) -> AttendanceRow:
    ins = [scan.ts_ms for scan in person.scans if scan.direction == "in"]
    outs = [scan.ts_ms for scan in person.scans if scan.direction == "out"]
    return AttendanceRow(
        person.site,
        person.subject,
        person.name,
        ins[0] if ins else None,
        outs[-1] if outs else None,
        person.seconds,
        person.inside_at_start,
        person.inside_at_end,
    )


@dataclass(frozen=True)
class ContactRow:
    site: str
    subject: str
    name: str | None
    overlap_s: float
    intervals: list[Interval]


def contacts(store: Store, subject: str, from_ms: int, to_ms: int, *, now_ms: int) -> Report:
    """Everyone whose stays overlapped `subject`'s at the same site in [from_ms, to_ms)."""
    end_ms = min(to_ms, now_ms)
    theirs = presence(store, from_ms, end_ms, subject=subject) if end_ms > from_ms else {}
    rows: list[ContactRow] = []
    for (site, _), person in sorted(theirs.items()):
        if person.stays:
            rows.extend(contacts_at(store, site, person))
    rows.sort(key=lambda row: (-row.overlap_s, row.site, row.subject))
    stayed = sum(person.seconds for person in theirs.values())
    return Report(
        f"Contacts of {subject} ({format_hms(stayed)} on site in the period): {len(rows)}",
        (
            *PERSON_COLUMNS,
            Column("overlap_s", "overlap", "duration"),
            Column("intervals", "when", "intervals"),
        ),
        rows,
    )


def contacts_at(store: Store, site: str, person: Presence) -> Iterable[ContactRow]:
    """Others at `site` whose stays met `person`'s, looked up only around those stays."""
    start, end = person.stays[0].start_ms, person.stays[-1].end_ms
    for (_, other), them in sorted(presence(store, start, end, site).items()):
        met = overlap(person.stays, them.stays) if other != person.subject else []
        if met:
            seconds = sum(interval.seconds for interval in met)
            yield ContactRow(site, other, them.name, seconds, met)


def gaps(store: Store, site: str | None = None) -> Report:
    """Missing seq ranges per gate: events a gate sent that the store does not have."""
    jumps = sum(row.flagged for row in store.gates() if site in (None, row.site))
    return gaps_report(store.gaps(site), jumps)


def gaps_report(found: list[Gap], jumps: int = 0) -> Report:
    """The gaps table; `jumps` events whose seq was beyond belief are named, not counted."""
    title = f"Gaps: {sum(gap.missing for gap in found)} events missing in {len(found)} ranges"
    if jumps:
        title += f" (not counting {jumps} event(s) whose seq was beyond belief)"
    return Report(
        title,
        (
            Column("site", "site"),
            Column("gate", "gate"),
            Column("first", "first missing seq", "count"),
            Column("last", "last missing seq", "count"),
            Column("missing", "missing", "count"),
        ),
        found,
    )


def format_hms(seconds: float) -> str:
    """Seconds as H:MM:SS (hours may exceed 24)."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
