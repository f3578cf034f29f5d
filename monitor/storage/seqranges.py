"""Per gate, the ranges of `seq` received, kept as events arrive: what the gaps report
reads instead of every event's seq.

A gate that delivers in order has one range, `1..last`; each gap adds one. A batch of
new events turns into runs of consecutive seqs, and each run merges with the ranges it
touches or adjoins, so the table holds about one row per gate plus one per gap, however
many events the store holds. Only believed seqs count (a seq beyond belief is flagged,
not a range: see monitor.storage.store.seq_bound).

The writer holds its gates' rows locked while it merges (monitor.storage.store), so two monitors
storing events of one gate at once merge one after the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.storage.records import Gap

GateKey = tuple[str, str]
# The ranges of each gate that a batch touches: those ending at or after its lowest new
# seq minus one and starting at or before its highest plus one, for all gates at once.
TOUCHED = """
SELECT r.site, r.gate, r.first_seq, r.last_seq FROM seq_ranges AS r
JOIN ({span}) AS span ON r.site = span.site AND r.gate = span.gate
WHERE r.last_seq >= span.low - 1 AND r.first_seq <= span.high + 1
"""
DROP = "DELETE FROM seq_ranges WHERE site = ? AND gate = ? AND first_seq = ?"
ADD = "INSERT INTO seq_ranges (site, gate, first_seq, last_seq) VALUES (?, ?, ?, ?)"
ALL = (
    "SELECT site, gate, first_seq, last_seq FROM seq_ranges {where} ORDER BY site, gate, first_seq"
)
# From the events themselves (a store of an earlier schema, a bulk load): each island of
# consecutive believed seqs is one range.
REBUILD = """
INSERT INTO seq_ranges (site, gate, first_seq, last_seq)
SELECT site, gate, MIN(seq), MAX(seq) FROM (
    SELECT site, gate, seq, seq - ROW_NUMBER() OVER (PARTITION BY site, gate ORDER BY seq) AS island
    FROM (SELECT DISTINCT site, gate, seq FROM events WHERE seq_believed) AS believed
) AS numbered
GROUP BY site, gate, island
"""


@dataclass(frozen=True, order=True)
class SeqRange:
    first: int
    last: int


def runs(seqs: Iterable[int]) -> list[SeqRange]:
    """Consecutive seqs as ranges, in order: 1, 2, 3, 7 -> 1..3, 7..7."""
    found: list[SeqRange] = []
    for seq in sorted(set(seqs)):
        if found and seq == found[-1].last + 1:
            found[-1] = SeqRange(found[-1].first, seq)
        else:
            found.append(SeqRange(seq, seq))
    return found


def merged(ranges: Iterable[SeqRange]) -> list[SeqRange]:
    """Overlapping and adjoining ranges joined, in order."""
    found: list[SeqRange] = []
    for item in sorted(ranges):
        if found and item.first <= found[-1].last + 1:
            found[-1] = SeqRange(found[-1].first, max(found[-1].last, item.last))
        else:
            found.append(item)
    return found


def holes(site: str, gate: str, ranges: Sequence[SeqRange], above: int, last: int) -> list[Gap]:
    """The seqs in (above, last] that no range holds: one gate's gaps. `above` is what
    the retention deleted (those are not missing); ranges are in order."""
    gaps: list[Gap] = []
    expected = above + 1
    for item in ranges:
        if item.first > expected:
            gaps.append(Gap(site, gate, expected, min(item.first - 1, last)))
        expected = max(expected, item.last + 1)
        if expected > last:
            break
    if expected <= last:
        gaps.append(Gap(site, gate, expected, last))
    return [gap for gap in gaps if gap.first <= gap.last]


def record_new(cursor: Any, sql: Callable[[str], str], new: dict[GateKey, list[int]]) -> None:
    """Merge the new believed seqs of each gate into its ranges (in the writer's
    transaction, its gates locked). `sql` turns `?` into the driver's placeholder."""
    added = {key: runs(seqs) for key, seqs in sorted(new.items()) if seqs}
    if not added:
        return
    span = " UNION ALL ".join(["SELECT ? AS site, ? AS gate, ? AS low, ? AS high"] * len(added))
    params: list[object] = []
    for (site, gate), items in added.items():
        params += [site, gate, items[0].first, items[-1].last]
    cursor.execute(sql(TOUCHED.format(span=span)), params)
    touched: dict[GateKey, list[SeqRange]] = {}
    for site, gate, first, last in cursor.fetchall():
        touched.setdefault((site, gate), []).append(SeqRange(int(first), int(last)))
    drops, adds = [], []
    for key, items in added.items():
        old = touched.get(key, [])
        drops += [(*key, item.first) for item in old]
        adds += [(*key, item.first, item.last) for item in merged([*old, *items])]
    if drops:
        cursor.executemany(sql(DROP), drops)
    cursor.executemany(sql(ADD), adds)


def read_ranges(rows: Iterable[tuple[Any, ...]]) -> dict[GateKey, list[SeqRange]]:
    """Rows of ALL, grouped by gate (in order)."""
    found: dict[GateKey, list[SeqRange]] = {}
    for site, gate, first, last in rows:
        found.setdefault((site, gate), []).append(SeqRange(int(first), int(last)))
    return found
