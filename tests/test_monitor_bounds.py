"""What junk may cost the monitor's store: rejects kept in part and bounded by count and
age, an event's unknown fields capped."""

from __future__ import annotations

import json
from collections.abc import Callable

from monitor.intake.ingest import MAX_EXTRA_BYTES, MAX_KEPT_PAYLOAD, EventRecord, Rejected, classify
from monitor.storage.store import RejectLimits, Store
from tests.support.broker import Mosquitto
from tests.support.central import gate_client, running_monitor
from tests.support.gate import wait_until
from tests.support.monitor_events import gate_event, payload, topic

DAY = "2026-03-02"
DAY_MS = 86_400_000
# As docs/monitor.md asks of a central broker: queue whatever the monitor has not taken.
CENTRAL_BROKER = ["max_queued_messages 0"]


def test_a_flood_of_junk_keeps_the_rejects_table_bounded(
    broker_factory: Callable[..., Mosquitto], store_url: str
) -> None:
    mosquitto = broker_factory(CENTRAL_BROKER)
    junk = b"x" * 16_384
    big_field = gate_event(1, f"{DAY}T08:00")
    big_field["photo"] = "A" * (2 * 1024 * 1024)
    with (
        running_monitor(mosquitto, store_url, RejectLimits(max_rows=500)) as monitor,
        gate_client(mosquitto, inflight=500) as client,
    ):
        infos = [client.publish("qrgate/f1/in-1/events", junk, qos=1) for _ in range(3000)]
        infos.append(client.publish(topic(big_field), payload(big_field), qos=1))
        for info in infos:
            info.wait_for_publish(30)
        counters = lambda: monitor.state.snapshot().counters  # noqa: E731
        assert wait_until(lambda: counters().received == 3001, 30), counters()
    store = Store(store_url, create=False)
    rejects = store.rejects(limit=10_000)
    assert len(rejects) <= 500 + 500  # the bound, give or take one batch
    assert all(len(kept) == MAX_KEPT_PAYLOAD for _, _, _, kept in rejects)
    (extra,) = [row[0] for row in store._read("SELECT extra FROM events")]
    assert len(extra.encode()) <= MAX_EXTRA_BYTES
    assert json.loads(extra) == {"_dropped_fields": 1}
    store.close()


def test_rejects_older_than_their_age_limit_go(store_url: str) -> None:
    store = Store(store_url, rejects=RejectLimits(max_age_ms=DAY_MS))
    now = 1_772_442_000_000
    store.write([Rejected("qrgate/x", "old", b"1", now - 2 * DAY_MS)])
    store.write([Rejected("qrgate/x", "recent", b"2", now - DAY_MS // 2)])
    store.write([Rejected("qrgate/x", "new", b"3", now)])
    assert [reason for _, _, reason, _ in store.rejects()] == ["new", "recent"]
    store.close()


def test_unknown_fields_kept_small_and_whole_when_they_fit() -> None:
    event = gate_event(1, f"{DAY}T08:00")
    event.update(certificate="vaccination", country="VN", note="n" * 3000, blob="b" * 9000)
    record = classify("qrgate", topic(event), payload(event), 0)
    assert isinstance(record, EventRecord)
    assert record.extra is not None
    kept = json.loads(record.extra)
    assert kept == {
        "certificate": "vaccination",
        "country": "VN",
        "note": "n" * 3000,
        "_dropped_fields": 1,
    }
    small = gate_event(2, f"{DAY}T08:00")
    small["certificate"] = "test"
    record = classify("qrgate", topic(small), payload(small), 0)
    assert isinstance(record, EventRecord)
    assert record.extra == '{"certificate": "test"}'
