"""The store's presence queries (the store runs them; monitor.reporting.reports applies
the rules), and the `people` table they start from.
"""

from __future__ import annotations

# Presence is made of granted scans with a subject: the queries below repeat the
# condition of the partial index `events_presence` word for word, so that it is used.
# The people to look at come from `people` (each person and site once, with the time of
# their latest granted scan, kept as events arrive), not from a pass over every scan;
# then one index seek per person for their latest granted scan before the moment asked.
INSIDE = """
SELECT site, subject, name, gate, direction, ts_ms, cert_type, cert_country FROM events
WHERE id IN (
    SELECT (
        SELECT latest.id FROM events AS latest
        WHERE latest.site = people.site AND latest.subject = people.subject
            AND latest.type = 'scan' AND latest.result = 'granted'
            AND latest.subject IS NOT NULL AND latest.ts_ms < ?
        ORDER BY latest.ts_ms DESC, latest.seq DESC LIMIT 1
    )
    FROM people WHERE TRUE {filters}
) AND direction = 'in'
ORDER BY site, subject
"""
# The same on PostgreSQL, whose events are keyed by (ts_ms, id) and split by month: the
# latest scan is taken whole (LATERAL), and from as few months as can hold it. Someone
# whose latest scan of all is before the moment: that scan, by its time (one month's
# partition, chosen as the query runs); else the month before the moment first, and
# only if nothing is there, everything before it.
LATEST_BEFORE = """
    SELECT site, subject, name, gate, direction, ts_ms, seq, cert_type, cert_country
    FROM events AS latest
    WHERE latest.site = people.site AND latest.subject = people.subject
        AND latest.type = 'scan' AND latest.result = 'granted'
        AND latest.subject IS NOT NULL AND {when}
    ORDER BY latest.ts_ms DESC, latest.seq DESC LIMIT 1
"""
INSIDE_LATERAL = f"""
SELECT latest.site, latest.subject, latest.name, latest.gate, latest.direction, latest.ts_ms,
    latest.cert_type, latest.cert_country
FROM people
CROSS JOIN LATERAL (
    ({LATEST_BEFORE.format(when="latest.ts_ms = people.last_ms AND people.last_ms < ?")})
    UNION ALL
    ({LATEST_BEFORE.format(when="latest.ts_ms < ? AND latest.ts_ms >= ?")})
    UNION ALL
    ({LATEST_BEFORE.format(when="latest.ts_ms < ?")})
    LIMIT 1
) AS latest
WHERE latest.direction = 'in' {{filters}}
ORDER BY latest.site, latest.subject
"""  # noqa: S608 - fixed text only
RECENT_MS = 31 * 24 * 3600 * 1000  # "the month before the moment"
# Per person and site, the latest granted scan's time (the write path keeps it).
SEE_PEOPLE = """
INSERT INTO people (site, subject, last_ms) VALUES (?, ?, ?)
ON CONFLICT (site, subject) DO UPDATE SET last_ms = excluded.last_ms
WHERE excluded.last_ms > people.last_ms
"""
FORGET_PEOPLE = "DELETE FROM people WHERE last_ms < ?"
SCANS = """
SELECT site, subject, name, gate, direction, ts_ms, cert_type, cert_country FROM events
WHERE type = 'scan' AND result = 'granted' AND subject IS NOT NULL
    AND ts_ms >= ? AND ts_ms < ? {filters}
ORDER BY site, subject, ts_ms, seq, id
"""
