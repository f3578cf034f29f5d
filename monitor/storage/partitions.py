"""PostgreSQL: the events table partitioned by month of the event's time (`ts_ms`, UTC).

A month's partition is made ahead of time (this month and the next, at start and with
each hourly upkeep), so events go straight into it. Events whose month has no partition
(a gate whose clock says 1970, or 2090) land in the default partition; if their month's
partition is made later, they are moved into it as it is attached. The store of an
earlier schema becomes one partition holding everything before next month
(`events_before_mYYYYMM`), emptied by the retention like the others.

Retention drops a partition whose whole month is past, after noting per gate the highest
seq it held (the `pruned_seq` marks): one catalog change instead of millions of deletes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DEFAULT = "events_default"
PARTITIONS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i
JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass
"""
UPPER = re.compile(r"TO \('?(-?\d+)'?\)")
LOWER = re.compile(r"FROM \('?(-?\d+)'?\)")
# One monitor at a time makes and drops partitions (several may share the database).
UPKEEP_LOCK = 0x717267617465  # "qrgate"
# Dropping a partition waits for reports reading the events table; rather than make the
# writers queue behind that wait, give up and try again at the next upkeep.
DROP_LOCK_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class Partition:
    name: str
    from_ms: int | None  # None: from the beginning of time (MINVALUE)
    to_ms: int | None  # None: the default partition


def month_start(ms: int) -> int:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return epoch_ms(datetime(moment.year, moment.month, 1, tzinfo=UTC))


def next_month(ms: int) -> int:
    moment = datetime.fromtimestamp(month_start(ms) / 1000, tz=UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return epoch_ms(datetime(year, month, 1, tzinfo=UTC))


def epoch_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def month_name(ms: int, prefix: str = "events_m") -> str:
    return prefix + datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m")


def listed(rows: list[tuple[str, str]]) -> list[Partition]:
    """Partitions from the catalog's rows (name, bound expression), oldest first."""
    found = []
    for name, bound in rows:
        upper, lower = UPPER.search(bound), LOWER.search(bound)
        found.append(
            Partition(
                name,
                int(lower.group(1)) if lower else None,
                int(upper.group(1)) if upper else None,
            )
        )
    return sorted(found, key=lambda p: (p.to_ms is None, p.to_ms or 0))


def partitions(cursor: Any) -> list[Partition]:
    cursor.execute(PARTITIONS)
    return listed(cursor.fetchall())


def convert(cursor: Any, now_ms: int) -> None:
    """Schema step: the plain events table becomes the partition of everything before
    next month, under a new partitioned `events` (same columns, primary key (ts_ms, id):
    PostgreSQL wants the partition key in every unique index). Its indexes that match
    the new table's are taken over as they are; only the new key is built. An empty one
    (a new store) is dropped: months only."""
    boundary = next_month(now_ms)
    old = month_name(boundary, "events_before_m")
    cursor.execute(f"ALTER TABLE events RENAME TO {old}")
    for index in ("events_gate_seq", "events_presence"):
        cursor.execute(f"ALTER INDEX {index} RENAME TO {old}_{index.removeprefix('events_')}")
    cursor.execute(f"ALTER TABLE {old} DROP CONSTRAINT events_pkey")
    cursor.execute("DROP INDEX events_time")  # the new key starts with ts_ms
    cursor.execute(
        f"CREATE TABLE events (LIKE {old} INCLUDING DEFAULTS, PRIMARY KEY (ts_ms, id))"
        " PARTITION BY RANGE (ts_ms)"
    )
    cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF events DEFAULT")
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {old})")  # noqa: S608 - our own name
    if not cursor.fetchone()[0]:
        cursor.execute(f"DROP TABLE {old}")  # a new store: months only
        return
    columns = column_list(cursor, old)
    # Events dated after the boundary (a gate's clock ahead) go to the default partition.
    cursor.execute(
        f"WITH moved AS (DELETE FROM {old} WHERE ts_ms >= %s RETURNING {columns})"  # noqa: S608
        f" INSERT INTO {DEFAULT} ({columns}) SELECT {columns} FROM moved",
        (boundary,),
    )
    cursor.execute(
        f"ALTER TABLE events ATTACH PARTITION {old} FOR VALUES FROM (MINVALUE) TO ({boundary})"
    )


def column_list(cursor: Any, table: str) -> str:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        (table,),
    )
    return ", ".join(row[0] for row in cursor.fetchall())


def ensure_months(cursor: Any, now_ms: int, since_ms: int | None = None) -> list[str]:
    """A partition for each month from `since_ms`'s (default: this one) to the next,
    where missing; returns the ones made. A month already inside another partition's
    range (the converted table) is left as it is."""
    existing = partitions(cursor)
    made = []
    start = month_start(now_ms if since_ms is None else min(since_ms, now_ms))
    last = next_month(now_ms)
    while start <= last:
        end = next_month(start)
        if not any(covers(part, start, end) for part in existing):
            made.append(attach_month(cursor, start, end))
        start = end
    return made


def covers(part: Partition, start: int, end: int) -> bool:
    """Whether `part` holds any of [start, end) (the default partition holds nothing for
    sure: its rows for the month are moved when the month gets its own)."""
    if part.to_ms is None:
        return False
    return (part.from_ms is None or part.from_ms < end) and part.to_ms > start


def attach_month(cursor: Any, start: int, end: int) -> str:
    """Make the month [start, end) a partition of its own, taking its events out of the
    default partition (PostgreSQL refuses a partition whose rows the default holds)."""
    name = month_name(start)
    cursor.execute(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)")
    columns = column_list(cursor, name)
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT} WHERE ts_ms >= %s AND ts_ms < %s"  # noqa: S608
        f" RETURNING {columns}) INSERT INTO {name} ({columns}) SELECT {columns} FROM moved",
        (start, end),
    )
    cursor.execute(
        f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})"
    )
    return name


def past(cursor: Any, cutoff_ms: int) -> list[Partition]:
    """Partitions whose every event is older than `cutoff_ms`."""
    return [p for p in partitions(cursor) if p.to_ms is not None and p.to_ms <= cutoff_ms]


def highest_seqs(
    cursor: Any, name: str, gates: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Per gate, the highest seq a partition holds: one index seek per gate."""
    found = {}
    for site, gate in gates:
        cursor.execute(
            f"SELECT MAX(seq) FROM {name} WHERE site = %s AND gate = %s",  # noqa: S608
            (site, gate),
        )
        top = cursor.fetchone()[0]
        if top is not None:
            found[(site, gate)] = int(top)
    return found


def drop(cursor: Any, name: str) -> None:
    cursor.execute(f"SET LOCAL lock_timeout = {DROP_LOCK_TIMEOUT_MS}")
    cursor.execute(f"DROP TABLE {name}")


def try_upkeep_lock(cursor: Any) -> bool:
    """The transaction's claim to partition upkeep; False if another monitor holds it."""
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", (UPKEEP_LOCK,))
    return bool(cursor.fetchone()[0])
