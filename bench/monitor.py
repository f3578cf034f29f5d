"""The monitor: events stored per second from the broker, and reports on 1 million events.

    .venv/bin/python -m bench.monitor [--events 20000] [--report-events 1000000]

1. Ingest. A private mosquitto holds a backlog of N events (QoS 1) queued for a
   persistent session; the consumer then connects and drains it. Baseline: a bare paho
   subscriber that only counts messages (acknowledged by paho as they arrive). Ours:
   the monitor's subscriber, storing each batch in one transaction and acknowledging
   only after the commit, into SQLite (WAL, synchronous=FULL) and PostgreSQL (fsync on);
   into SQLite again with the events signed by their gate and verified against its
   enrolled key, against the unsigned run. Then the verification alone: classifying one
   event, signed and verified against unsigned, without broker or store.
2. Store write without the broker: our batched write vs a bare executemany of the same
   rows in one transaction, into a fresh SQLite file.
3. Reports on 1 million generated events (2,000 people x 250 days x in and out, two
   sites, a tenth of the people with a health certificate; on PostgreSQL a partition
   per month): each report's time, against one full scan of the events table. Before
   them, what the Events filters' indexes cost the writer (those of the health
   certificates apart): Store.write into a copy of that store, with and without them.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from monitor.intake.enrollment import EnrolledKey, Enrollment
from monitor.intake.ingest import EventRecord, classify
from monitor.intake.state import LiveState
from monitor.intake.subscriber import Broker, Settings, Subscriber
from monitor.reporting import reports
from monitor.storage.schema import CERT_INDEXES, FILTER_INDEXES, FROM_EVENTS
from monitor.storage.store import EVENT_COLUMNS, Store
from mqtt.signing import EventSigner, detach, public_text
from tests.support.broker import Mosquitto
from tests.support.monitor_events import gate_event, payload, record, topic
from tests.support.postgres import Postgres

FILTER = "qrgate/+/+/events"
ROUNDS = 3  # of the filter indexes' write cost
START_DAY = datetime(2025, 1, 6, tzinfo=UTC)
DAY = "2026-03-02T08:00"
# store, report, rows found, ms, ratio to the full scan
ReportRow = tuple[str, str, str, str, str]


def table(title: str, rows: Sequence[tuple[str, ...]], headers: tuple[str, ...]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    print(f"\n{title}")
    for line in (headers, tuple("-" * width for width in widths), *rows):
        print("  ".join(str(cell).rjust(width) for cell, width in zip(line, widths, strict=True)))


# ---- 1. ingest from the broker ---------------------------------------------------------


def session_properties() -> Properties:
    # paho-mqtt leaves Properties.__init__ unannotated.
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    return properties


def open_session(broker: Mosquitto, client_id: str) -> None:
    """Create a persistent session subscribed to the events, then leave it."""
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", broker.port, clean_start=True, properties=session_properties())
    client.loop_start()
    client.subscribe(FILTER, qos=1)
    assert subscribed.wait(10)
    client.disconnect()
    client.loop_stop()


def publish_backlog(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    infos = [client.publish(message_topic, body, qos=1) for message_topic, body in messages]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def drain_bare(broker: Mosquitto, client_id: str, count: int) -> float:
    received = 0
    done = threading.Event()

    def on_message(*_: Any) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.on_message = on_message
    started = time.perf_counter()
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=session_properties())
    client.loop_start()
    assert done.wait(300), f"bare subscriber got {received} of {count}"
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def drain_ours(
    broker: Mosquitto,
    client_id: str,
    count: int,
    store_url: str,
    enrolled: Sequence[EnrolledKey] = (),
) -> float:
    store = Store(store_url)
    for key in enrolled:
        store.enroll(key)
    state = LiveState()
    subscriber = Subscriber(Settings(Broker("127.0.0.1", broker.port), client_id), store, state)
    started = time.perf_counter()
    subscriber.start()
    deadline = time.monotonic() + 300
    while state.snapshot().counters.stored < count:
        assert time.monotonic() < deadline, f"stored {state.snapshot().counters}"
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    subscriber.stop()
    assert store.count_events() == count
    verified = sum(gate.events - gate.unauthenticated for gate in store.gates())
    assert verified == (count if enrolled else 0), verified
    store.close()
    return elapsed


GATES = [f"g{n}" for n in range(4)]


def gate_events(count: int) -> list[dict[str, Any]]:
    return [gate_event(seq, DAY, gate=GATES[seq % 4]) for seq in range(1, count + 1)]


def signed_messages(events: list[dict[str, Any]], signer: EventSigner) -> list[tuple[str, bytes]]:
    """Each event as its gate publishes it: with its key's id, signed (one key for all
    four gates here: enrolled for each)."""
    return [(topic(event), signer.sign(payload({**event, "kid": signer.kid}))) for event in events]


def enrolled_keys(signer: EventSigner) -> list[EnrolledKey]:
    return [EnrolledKey.make("f1", gate, public_text(signer.public), 0) for gate in GATES]


def bench_ingest(count: int, postgres: Postgres, workdir: Path) -> None:
    broker = Mosquitto(workdir / "broker", ["max_queued_messages 0"]).start()
    signer = EventSigner.load_or_create(workdir / "gate-key.pem")
    rows = []
    try:
        consumers: list[tuple[str, bool, Callable[[str], float]]] = [
            ("bare paho, count only", False, lambda cid: drain_bare(broker, cid, count)),
            (
                "monitor -> SQLite",
                False,
                lambda cid: drain_ours(broker, cid, count, f"sqlite:///{workdir}/ingest.db"),
            ),
            (
                "monitor -> SQLite, signed, verified",
                True,
                lambda cid: drain_ours(
                    broker, cid, count, f"sqlite:///{workdir}/signed.db", enrolled_keys(signer)
                ),
            ),
            (
                "monitor -> PostgreSQL",
                False,
                lambda cid: drain_ours(broker, cid, count, postgres.create_database("ingest")),
            ),
            (
                "monitor -> PostgreSQL, signed, verified",
                True,
                lambda cid: drain_ours(
                    broker,
                    cid,
                    count,
                    postgres.create_database("signed"),
                    enrolled_keys(signer),
                ),
            ),
        ]
        baseline = None
        for index, (name, signed, drain) in enumerate(consumers):
            client_id = f"bench-{index}"
            open_session(broker, client_id)
            events = gate_events(count)
            if signed:
                messages = signed_messages(events, signer)
            else:
                messages = [(topic(event), payload(event)) for event in events]
            publish_backlog(broker, messages)
            rate = count / drain(client_id)
            baseline = baseline or rate
            rows.append((name, f"{count}", f"{rate:,.0f}", f"{rate / baseline:.2f}"))
    finally:
        broker.kill()
    table(
        f"Ingest: drain {count} queued QoS 1 events from a private mosquitto",
        rows,
        ("consumer", "events", "events/s", "vs bare"),
    )


def bench_verify(count: int, workdir: Path) -> None:
    """The monitor's CPU per event, unsigned (gate not enrolled) and signed (verified),
    in-process: the cost of verification without broker or store noise."""
    signer = EventSigner.load_or_create(workdir / "verify-key.pem")
    events = gate_events(count)
    plain = [(topic(event), payload(event)) for event in events]
    signed = signed_messages(events, signer)
    enrollment = Enrollment.of(enrolled_keys(signer))

    def classify_all(messages: list[tuple[str, bytes]], keys: Enrollment) -> None:
        for where, body in messages:
            assert isinstance(classify("qrgate", where, body, 0, keys), EventRecord)

    parts = [detach(body) for _, body in signed]

    def verify_all() -> None:
        for part in parts:
            assert part is not None
            signer.public.verify(part.signature, part.body)

    unsigned_s = timed(lambda: classify_all(plain, Enrollment()))
    signed_s = timed(lambda: classify_all(signed, enrollment))
    bare_s = timed(verify_all)
    table(
        f"Classify {count} events in-process (median of 3)",
        [
            ("unsigned (gate not enrolled)", f"{unsigned_s / count * 1e6:.1f}", "1.00"),
            ("signed, verified", f"{signed_s / count * 1e6:.1f}", f"{signed_s / unsigned_s:.2f}"),
            (
                "bare Ed25519 verify alone",
                f"{bare_s / count * 1e6:.1f}",
                f"{bare_s / unsigned_s:.2f}",
            ),
        ],
        ("events", "µs per event", "vs unsigned"),
    )


# ---- 2. store write without the broker -------------------------------------------------


def bench_write(count: int, workdir: Path) -> None:
    records = [record(gate_event(seq, DAY)) for seq in range(1, count + 1)]
    ours_url = f"sqlite:///{workdir}/write-ours.db"
    store = Store(ours_url)
    started = time.perf_counter()
    for start in range(0, count, 500):
        store.write(records[start : start + 500])
    ours = time.perf_counter() - started
    store.close()

    bare_path = workdir / "write-bare.db"
    Store(f"sqlite:///{bare_path}").close()  # the same schema and indexes
    connection = sqlite3.connect(bare_path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    rows = [event_row(item) for item in records]
    marks = ", ".join("?" * len(EVENT_COLUMNS))
    started = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(f"INSERT INTO events VALUES ({marks})", rows)  # noqa: S608
    connection.execute("COMMIT")
    bare = time.perf_counter() - started
    connection.close()
    table(
        f"Store write, {count} events into SQLite",
        [
            ("bare executemany, one transaction", f"{count / bare:,.0f}", "1.00"),
            ("Store.write, batches of 500", f"{count / ours:,.0f}", f"{bare / ours:.2f}"),
        ],
        ("writer", "events/s", "vs bare"),
    )


def index_records(count: int, certified: Callable[[int], bool]) -> list[EventRecord]:
    """`count` more events for the writer: some denied, a subject each, a health
    certificate where `certified(seq)`."""
    return [
        record(
            gate_event(
                seq,
                "2025-09-10T08:00",
                gate=f"bench-{seq % 40}",
                subject=f"W-{seq % 2000:05d}",
                result="denied" if seq % 9 == 0 else "granted",
                cert=("vaccination", "VN") if certified(seq) else None,
            )
        )
        for seq in range(1, count + 1)
    ]


# What the writer pays for each set of the Events filters' indexes: (what is written,
# the indexes dropped, the row the ratio is taken against).
INDEX_CASES = (
    ("a tenth with a certificate", "without the filter indexes", FILTER_INDEXES + CERT_INDEXES, 0),
    ("a tenth with a certificate", "without the certificate ones", CERT_INDEXES, 0),
    ("a tenth with a certificate", "with them all (as shipped)", (), 0),
    ("every one with a certificate", "without the certificate ones", CERT_INDEXES, 3),
    ("every one with a certificate", "with them all (as shipped)", (), 3),
)


def bench_filter_indexes(sqlite_url: str, pg_url: str, postgres: Postgres, count: int) -> None:
    """What the Events filters' indexes (result, reason, credential, subject, each with
    the time; and the partial ones of the health certificates' type and country) cost the
    writer: Store.write of `count` more events into a copy of the store of a million,
    with each set of them dropped or not, for a tenth of the events with a certificate
    (as generated) and for every one."""
    written = {
        "a tenth with a certificate": index_records(count, lambda seq: seq % 10 == 3),
        "every one with a certificate": index_records(count, lambda seq: True),
    }
    source = Path(sqlite_url.removeprefix("sqlite:///"))
    rows = []
    copies: list[tuple[str, Callable[[str], str]]] = [
        ("SQLite", lambda name: copy_sqlite(source, name)),
        ("PostgreSQL", lambda name: copy_postgres(postgres, pg_url, name)),
    ]
    for label, url_of in copies:
        # Alternated, each on a fresh copy: the machine's other work weighs on all alike.
        rates: list[list[float]] = [[] for _ in INDEX_CASES]
        for round_ in range(ROUNDS):
            for number, (events, _, dropped, _) in enumerate(INDEX_CASES):
                url = url_of(f"case{number}r{round_}")
                rates[number].append(write_rate(url, written[events], dropped))
                discard(postgres, url)
        medians = [statistics.median(found) for found in rates]
        for (events, indexes, _, base), rate in zip(INDEX_CASES, medians, strict=True):
            ratio = f"{rate / medians[base]:.2f}"
            rows.append((label, events, indexes, f"{rate:,.0f}", ratio))
    table(
        f"Store.write, {count} more events (batches of 500) into a store of a million "
        f"(median of {ROUNDS})",
        rows,
        ("store", "events written", "indexes", "events/s", "vs without"),
    )


def copy_sqlite(source: Path, name: str) -> str:
    target = source.with_name(f"{name}-{source.name}")
    shutil.copyfile(source, target)
    return f"sqlite:///{target}"


def copy_postgres(postgres: Postgres, url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{url.rsplit("/", 1)[1]}"')
    return postgres.url(name)


def discard(postgres: Postgres, url: str) -> None:
    """Remove a copy made for one measurement."""
    if url.startswith("sqlite:"):
        for path in Path(url.removeprefix("sqlite:///")).parent.glob(
            Path(url).name.split("?")[0] + "*"
        ):
            path.unlink()
        return
    import psycopg

    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}"')


def write_rate(url: str, records: list[EventRecord], dropped: Sequence[str]) -> float:
    """Events/s of Store.write into the store at `url`, with these indexes dropped first."""
    store = Store(url, create=False)
    with store._transaction("BEGIN") as cursor:
        for statement in dropped:
            cursor.execute("DROP INDEX " + statement.split(" IF NOT EXISTS ")[1].split()[0])
    started = time.perf_counter()
    for start in range(0, len(records), 500):
        store.write(records[start : start + 500])
    took = time.perf_counter() - started
    store.close()
    return len(records) / took


def event_row(item: EventRecord) -> tuple[object, ...]:
    event = item.event
    return (
        event.id, event.site, event.gate, event.seq, item.ts_ms, event.direction, event.type,
        event.result, event.reason, event.credential, event.subject, event.name,
        event.code_sha256, event.latency_ms, event.detail, event.ts_trusted, item.extra, 0,
        item.kid, True, event.cert_type, event.cert_country,
    )  # fmt: skip


# ---- 3. reports on a million events ----------------------------------------------------


def certificate(person: int) -> tuple[str | None, str | None]:
    """The health certificate a person's passages are paired with, if any: one in ten
    people shows one, mostly a vaccination from VN; fifty show a test (ten of them from
    KR), two a recovery, one a certificate from DE, and nobody one from FR."""
    if person % 10 != 3:
        return None, None
    kind = "recovery" if person % 1000 == 3 else "test" if person % 40 == 13 else "vaccination"
    country = "DE" if person == 3 else "KR" if person % 200 == 13 else "VN"
    return kind, country


def generated(people: int, days: int) -> Iterator[tuple[object, ...]]:
    """Each person in and out once a day at their site, a tenth of them with a health
    certificate (`certificate`); per-gate seq in time order."""
    rng = random.Random(8)
    seqs: dict[str, int] = {}
    home = {person: ("north", "south")[person % 2] for person in range(people)}
    for day in range(days):
        base = int((START_DAY + timedelta(days=day)).timestamp() * 1000)
        scans = []
        for person in range(people):
            arrive = base + rng.randint(6 * 3600, 9 * 3600) * 1000
            leave = arrive + rng.randint(7 * 3600, 10 * 3600) * 1000
            # On the last day one in 40 is still inside (an `in`, then a denied `out`).
            stays = day == days - 1 and person % 40 == 0
            scans += [(arrive, person, "in"), (leave, person, "stay" if stays else "out")]
        for ts_ms, person, way in sorted(scans):
            site, direction = home[person], way.replace("stay", "out")
            gate = f"{site}-{direction}-{person % 2}"
            seq = seqs[gate] = seqs.get(gate, 0) + 1
            yield (
                str(uuid.UUID(int=rng.getrandbits(128), version=4)), site, gate, seq, ts_ms,
                direction, "scan", "denied" if way == "stay" else "granted", "ok", "badge",
                f"W-{person:05d}",
                f"Worker {person}", "0" * 64, 10.0, None, True, None, ts_ms, None, True,
                *certificate(person),
            )  # fmt: skip


def fill_sqlite(url: str, people: int, days: int, analyze: bool = True) -> None:
    """Generated events loaded in bulk, and the seq ranges the monitor would have kept."""
    Store(url).close()
    connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    marks = ", ".join("?" * len(EVENT_COLUMNS))
    connection.execute("BEGIN")
    connection.executemany(f"INSERT INTO events VALUES ({marks})", generated(people, days))  # noqa: S608
    for statement in FROM_EVENTS:
        connection.execute(statement)
    connection.execute("COMMIT")
    if analyze:
        connection.execute("ANALYZE")
    connection.close()


def fill_postgres(url: str, people: int, days: int) -> None:
    """The same into PostgreSQL, each month in a partition of its own, made first."""
    import psycopg

    store = Store(url)
    store.prepare_partitions(since_ms=int(START_DAY.timestamp() * 1000))
    store.close()
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            for row in generated(people, days):
                copy.write_row(row)
        for statement in FROM_EVENTS:
            cursor.execute(statement)
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE")


def timed(work: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def full_scan(url: str) -> None:
    """Read one unindexed column of every event: what "touch every row" costs."""
    sql = "SELECT COUNT(*) FROM events WHERE latency_ms >= 0"
    if url.startswith("sqlite:"):
        database = sqlite3.connect(url.removeprefix("sqlite:///"))
        database.execute(sql).fetchall()
        database.close()
        return
    import psycopg

    with psycopg.connect(url) as server:
        server.execute(sql).fetchall()


def bench_reports(url: str, label: str, count: int) -> list[ReportRow]:
    store = Store(url, create=False)
    assert store.count_events() == count
    day = START_DAY + timedelta(days=count // 8000)  # the middle day
    day_ms = int(day.timestamp() * 1000)
    week_ms = day_ms + 7 * 86_400_000
    now_ms = int(time.time() * 1000)
    baseline = timed(lambda: full_scan(url))
    work: list[tuple[str, Callable[[], reports.Report]]] = [
        ("onsite", lambda: reports.onsite(store, now_ms)),
        (
            "attendance (a day)",
            lambda: reports.attendance(store, "d", day_ms, day_ms + 86_400_000, now_ms=now_ms),
        ),
        (
            "contacts (a week)",
            lambda: reports.contacts(store, "W-00042", day_ms, week_ms, now_ms=now_ms),
        ),
        ("gaps", lambda: reports.gaps(store)),
    ]
    rows = [(label, "full scan (baseline)", "", f"{baseline * 1000:.0f}", "1.0")]
    for name, job in work:
        found = len(job().rows)
        took = timed(job)
        rows.append((label, name, str(found), f"{took * 1000:.0f}", f"{took / baseline:.1f}"))
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--report-events", type=int, default=1_000_000)
    args = parser.parse_args()
    # The unsigned runs are of gates not enrolled: the monitor's warning about it is noise here.
    logging.getLogger("monitor").setLevel(logging.ERROR)
    workdir = Path(tempfile.mkdtemp(prefix="qrgate-bench-monitor-"))
    postgres = Postgres(durable=True).start()
    try:
        bench_ingest(args.events, postgres, workdir)
        bench_verify(args.events, workdir)
        bench_write(args.events, workdir)
        people, days = 2000, args.report_events // 4000
        count = people * days * 2
        sqlite_url = f"sqlite:///{workdir}/reports.db"
        started = time.perf_counter()
        fill_sqlite(sqlite_url, people, days)
        print(
            f"\n(generated {count:,} events into SQLite in {time.perf_counter() - started:.0f} s)"
        )
        pg_url = postgres.create_database("reports")
        fill_postgres(pg_url, people, days)
        bench_filter_indexes(sqlite_url, pg_url, postgres, args.events)
        rows = bench_reports(sqlite_url, "SQLite", count) + bench_reports(
            pg_url, "PostgreSQL", count
        )
        table(
            f"Reports on {count:,} events (median of 3)",
            rows,
            ("store", "report", "rows", "ms", "vs full scan"),
        )
    finally:
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
