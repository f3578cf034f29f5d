"""The monitor store's tables, and the steps that bring a store of an earlier version
up to the current one (`monitor.storage.store.Store` runs them, one transaction a step).

A new store is made at version 1 (SCHEMA) and taken through every step, so that a new
store and an upgraded one are the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor.storage import partitions, seqranges

SCHEMA_VERSION = 4
FIRST_SCHEMA_VERSION = 1

# Every index of the events table but its key, as the current version has them.
EVENT_INDEXES = (
    # A gate's events by seq (events_after, the retention's highest seq per gate).
    "CREATE INDEX IF NOT EXISTS events_gate_seq ON events (site, gate, seq)",
    # Presence: granted scans per person (the reports repeat this condition word for word).
    """CREATE INDEX IF NOT EXISTS events_presence ON events (site, subject, ts_ms, seq)
    WHERE type = 'scan' AND result = 'granted' AND subject IS NOT NULL""",
)
# The dashboard's Events filters, newest first: an index per filter that may pick out few
# events in many (a denied scan, an ID card, a reason, one person), ordered by time, so a
# page is a seek and a short walk whether the value is common or seen once in a million.
FILTER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_result_time ON events (result, ts_ms)",
    "CREATE INDEX IF NOT EXISTS events_reason_time ON events (reason, ts_ms)",
    "CREATE INDEX IF NOT EXISTS events_credential_time ON events (credential, ts_ms)",
    "CREATE INDEX IF NOT EXISTS events_subject_time ON events (subject, ts_ms)",
)
# Health certificates (a `dcc` scan, or a passage paired with one): their type and
# country, filtered the same way. Partial: only the events that carry a certificate are in
# them, so the writer pays for those alone, and building them on an upgraded store (whose
# events never kept a certificate) writes nothing.
CERT_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_cert_type_time ON events (cert_type, ts_ms)"
    " WHERE cert_type IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS events_cert_country_time ON events (cert_country, ts_ms)"
    " WHERE cert_country IS NOT NULL",
)
FILTERED_COLUMNS = ("result", "reason", "credential", "subject", "cert_type", "cert_country")
# The few events whose seq was beyond belief, found without reading the others.
SEQ_JUMPS_INDEX = (
    "CREATE INDEX IF NOT EXISTS events_seq_jumps ON events (site, gate, seq) WHERE NOT seq_believed"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    gate TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    direction TEXT NOT NULL,
    type TEXT NOT NULL,
    result TEXT,
    reason TEXT,
    credential TEXT,
    subject TEXT,
    name TEXT,
    code_sha256 TEXT,
    latency_ms DOUBLE PRECISION,
    detail TEXT,
    ts_trusted BOOLEAN NOT NULL,
    extra TEXT,
    received_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_gate_seq ON events (site, gate, seq);
CREATE INDEX IF NOT EXISTS events_time ON events (ts_ms);
CREATE INDEX IF NOT EXISTS events_presence ON events (site, subject, ts_ms, seq)
    WHERE type = 'scan' AND result = 'granted' AND subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS gates (
    site TEXT NOT NULL,
    gate TEXT NOT NULL,
    state TEXT,
    state_ts TEXT,
    version TEXT,
    state_received_ms BIGINT,
    health TEXT,
    health_received_ms BIGINT,
    events BIGINT NOT NULL DEFAULT 0,
    last_seq BIGINT NOT NULL DEFAULT 0,
    last_event_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (site, gate)
);
CREATE TABLE IF NOT EXISTS rejects (
    received_ms BIGINT NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload {blob} NOT NULL
);
"""

PEOPLE = """
CREATE TABLE people (
    site TEXT NOT NULL,
    subject TEXT NOT NULL,
    last_ms BIGINT NOT NULL,
    PRIMARY KEY (site, subject)
)
"""
# From the events themselves: each person's latest granted scan, per site.
PEOPLE_FROM_EVENTS = """
INSERT INTO people (site, subject, last_ms)
SELECT site, subject, MAX(ts_ms) FROM events
WHERE type = 'scan' AND result = 'granted' AND subject IS NOT NULL
GROUP BY site, subject
"""
# What the tables kept as events arrive hold, made from the events themselves (for a store
# of an earlier version, or events loaded in bulk).
FROM_EVENTS = (seqranges.REBUILD, PEOPLE_FROM_EVENTS)
SEQ_RANGES = """
CREATE TABLE seq_ranges (
    site TEXT NOT NULL,
    gate TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (site, gate, first_seq)
)
"""


def to_version_3(cursor: Any, dialect: str, now_ms: int) -> None:
    """Version 3: on PostgreSQL, events partitioned by month (monitor.storage.partitions); on
    both, the Events filters' indexes, one for seq jumps, the per-gate seq ranges
    received and the people seen (each person's latest granted scan per site), built
    once from the events held (after this, kept as events arrive)."""
    if dialect == "postgresql":
        partitions.convert(cursor, now_ms)
        for statement in EVENT_INDEXES:
            cursor.execute(statement)
        partitions.ensure_months(cursor, now_ms)
    for statement in (*FILTER_INDEXES, SEQ_JUMPS_INDEX):
        cursor.execute(statement)
    cursor.execute(SEQ_RANGES)
    cursor.execute(PEOPLE)
    for statement in FROM_EVENTS:
        cursor.execute(statement)


CERT_COLUMNS = (
    "ALTER TABLE events ADD COLUMN cert_type TEXT",
    "ALTER TABLE events ADD COLUMN cert_country TEXT",
)


def to_version_4(cursor: Any, dialect: str, now_ms: int) -> None:
    """Version 4: a health certificate's type and country (which events of earlier stores
    did not keep: they are v1 fields, so not in `extra` either) and their Events filters'
    indexes; on PostgreSQL the partitioned table passes both on to every partition, those
    made later included. Also on PostgreSQL: the time index goes again, which every open
    of a store since version 3 made anew although the key (ts_ms, id) does its work."""
    for statement in (*CERT_COLUMNS, *CERT_INDEXES):
        cursor.execute(statement)
    if dialect == "postgresql":
        cursor.execute("DROP INDEX IF EXISTS events_time")


Step = tuple[str, ...] | Callable[[Any, str, int], None]

# From version N to N + 1. Version 2: events' signatures (`kid`: the enrolled key that
# verified it, NULL when its gate was not enrolled), seq jumps not believed, the gates'
# enrolled keys, and the index that bounds `rejects`. Versions 3 and 4: see to_version_3
# and to_version_4.
MIGRATIONS: dict[int, Step] = {
    1: (
        "ALTER TABLE events ADD COLUMN kid TEXT",
        "ALTER TABLE events ADD COLUMN seq_believed BOOLEAN NOT NULL DEFAULT TRUE",
        "ALTER TABLE gates ADD COLUMN flagged BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE gates ADD COLUMN unauthenticated BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE gates ADD COLUMN last_seq_received_ms BIGINT",
        "UPDATE gates SET unauthenticated = events",
        """CREATE TABLE gate_keys (
            site TEXT NOT NULL,
            gate TEXT NOT NULL,
            kid TEXT NOT NULL,
            public_key TEXT NOT NULL,
            enrolled_ms BIGINT NOT NULL,
            PRIMARY KEY (site, gate, kid)
        )""",
        "CREATE INDEX rejects_time ON rejects (received_ms)",
    ),
    2: to_version_3,
    3: to_version_4,
}


def run_step(step: Step, cursor: Any, dialect: str, now_ms: int) -> None:
    if callable(step):
        step(cursor, dialect, now_ms)
        return
    for statement in step:
        cursor.execute(statement)
