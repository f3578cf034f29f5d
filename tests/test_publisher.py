"""The publisher against a real mosquitto: order, status, health, protocol, login."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mqtt.link import Link, Waker
from mqtt.outbox import Outbox
from mqtt.publisher import Publisher
from tests.support.broker import Mosquitto, free_port
from tests.support.gate import TOPICS, new_outbox, publisher_for, scans, start, wait_until
from tests.support.recorder import Recorder, check_stream, retained


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return new_outbox(tmp_path / "qrgate.db")


@pytest.fixture
def recorder(mosquitto: Mosquitto) -> Iterator[Recorder]:
    recorder = Recorder(mosquitto).start()
    yield recorder
    recorder.stop()


def test_events_arrive_oldest_first_and_leave_the_outbox(
    mosquitto: Mosquitto, outbox: Outbox, recorder: Recorder, running: list[Publisher]
) -> None:
    scans(outbox, 30)
    publisher = start(running, publisher_for(mosquitto, outbox, window=8))
    assert recorder.wait_for_seqs(30)
    scans(outbox, 10)
    publisher.wake()
    assert recorder.wait_for_seqs(40)
    stream = check_stream(recorder.events(), 40)
    assert stream.seqs == list(range(1, 41))
    assert stream.duplicates == 0
    assert wait_until(lambda: outbox.depth().rows == 0)
    assert all(m.topic == TOPICS.events for m in recorder.on("events"))
    assert publisher.connected
    assert publisher.alive


def test_status_is_online_while_connected_and_stopped_after_a_clean_stop(
    mosquitto: Mosquitto, outbox: Outbox, running: list[Publisher]
) -> None:
    publisher = start(running, publisher_for(mosquitto, outbox))
    assert wait_until(lambda: publisher.connected)
    online = retained(mosquitto, TOPICS.status)
    assert online["state"] == "online"
    assert online["version"] == "9.9.9"
    publisher.stop()
    assert not publisher.alive
    stopped = retained(mosquitto, TOPICS.status)
    assert stopped["state"] == "stopped"
    assert stopped["ts"] >= online["ts"]


def test_health_is_retained_with_the_gates_and_the_publishers_figures(
    mosquitto: Mosquitto, outbox: Outbox, recorder: Recorder, running: list[Publisher]
) -> None:
    figures = {"camera_fps": 29.9, "decode_ms": 1.4, "last_scan": "2026-11-25T07:58:03.412Z"}
    scans(outbox, 3)
    start(running, publisher_for(mosquitto, outbox, health=lambda: figures, heartbeat_s=0.2))
    assert recorder.wait(lambda r: len(r.on("health")) >= 3)
    health = recorder.on("health")[-1].json()
    assert {key: health[key] for key in figures} == figures
    assert health["outbox"]["rows"] == 0
    assert health["mqtt"]["connects"] == 1
    assert health["uptime_s"] > 0
    assert "cpu_temp_c" in health
    assert retained(mosquitto, TOPICS.health)["version"] == "9.9.9"


def test_a_failing_health_source_is_reported_not_fatal(
    mosquitto: Mosquitto, outbox: Outbox, recorder: Recorder, running: list[Publisher]
) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("camera gone")

    publisher = start(running, publisher_for(mosquitto, outbox, health=broken, heartbeat_s=0.2))
    assert recorder.wait(lambda r: len(r.on("health")) >= 2)
    assert recorder.on("health")[-1].json()["health_error"] == "RuntimeError: camera gone"
    scans(outbox, 2)
    publisher.wake()
    assert recorder.wait_for_seqs(2)
    assert publisher.alive


def test_mqtt_3_1_1_is_selectable(
    mosquitto: Mosquitto, outbox: Outbox, recorder: Recorder, running: list[Publisher]
) -> None:
    scans(outbox, 5)
    start(running, publisher_for(mosquitto, outbox, protocol="v311"))
    assert recorder.wait_for_seqs(5)
    check_stream(recorder.events(), 5)


def test_logs_in_with_username_and_password(
    locked_broker: Mosquitto, outbox: Outbox, running: list[Publisher]
) -> None:
    scans(outbox, 3)
    publisher = start(
        running, publisher_for(locked_broker, outbox, username="gate-1", password="s3cret")
    )
    assert wait_until(lambda: outbox.depth().rows == 0)
    assert publisher.connected


def test_a_wrong_password_is_reported_and_events_wait(
    locked_broker: Mosquitto, outbox: Outbox, running: list[Publisher]
) -> None:
    scans(outbox, 3)
    publisher = start(
        running, publisher_for(locked_broker, outbox, username="gate-1", password="wrong")
    )
    assert wait_until(lambda: publisher.stats.last_error is not None)
    assert "refused the connection" in str(publisher.stats.last_error)
    assert not publisher.connected
    assert outbox.depth().rows == 3
    assert publisher.alive


def test_the_publisher_folds_the_write_ahead_log_while_the_broker_is_down(
    outbox: Outbox, running: list[Publisher]
) -> None:
    publisher = start(running, publisher_for(free_port(), outbox))
    scans(outbox, 100)
    publisher.wake()
    # Until a checkpoint, rows live in the -wal file only: the database file holds them after.
    # Checkpoints come every 64 appends or 2 s, so the last of the 100 may take a moment.
    assert wait_until(
        lambda: outbox.appended_since_checkpoint == 0 and outbox.path.stat().st_size > 100 * 300
    )
    assert outbox.depth().rows == 100


def test_a_connected_idle_publisher_sleeps_between_deadlines(
    mosquitto: Mosquitto,
    outbox: Outbox,
    running: list[Publisher],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    pump = Link.pump

    def counted(link: Link, timeout: float, waker: Waker) -> None:
        waits.append(timeout)
        pump(link, timeout, waker)

    monkeypatch.setattr(Link, "pump", counted)
    publisher = start(running, publisher_for(mosquitto, outbox, heartbeat_s=30.0))
    assert wait_until(lambda: publisher.connected and publisher.stats.connects == 1)
    time.sleep(0.3)  # status and health acknowledged: nothing is due for a while
    waits.clear()
    time.sleep(0.5)
    # Only the poll wakes it now (once a second); a loop that spins calls pump with 0.
    assert len(waits) <= 3
    assert all(timeout > 0 for timeout in waits)


def fails_once(real: Callable[..., None], error: Exception, left: dict[str, int], name: str) -> Any:
    """`real`, raising `error` instead while `left[name]` counts down to 0."""

    def call(*args: Any) -> None:
        if left[name]:
            left[name] -= 1
            raise error
        real(*args)

    return call


@pytest.mark.parametrize(
    ("owner", "method", "error"),
    [
        (Link, "close", OSError("the socket would not close")),
        (Publisher, "_recover", RuntimeError("a bug in the recovery")),
    ],
    ids=["closing the link fails", "the recovery itself fails"],
)
def test_a_step_that_fails_and_then_its_recovery_do_not_end_the_publisher(
    *,
    mosquitto: Mosquitto,
    outbox: Outbox,
    recorder: Recorder,
    running: list[Publisher],
    monkeypatch: pytest.MonkeyPatch,
    owner: type,
    method: str,
    error: Exception,
) -> None:
    """A bug in a step makes the publisher recover; when the recovery fails as well, it
    pauses and tries again: the thread lives on and every event is delivered."""
    publisher = start(running, publisher_for(mosquitto, outbox))
    assert wait_until(lambda: publisher.connected)
    failures = {"step": 1, method: 1}
    bug = RuntimeError("a bug in a step")
    monkeypatch.setattr(
        Publisher, "_publish_due", fails_once(Publisher._publish_due, bug, failures, "step")
    )
    monkeypatch.setattr(owner, method, fails_once(getattr(owner, method), error, failures, method))
    scans(outbox, 5)
    publisher.wake()
    assert recorder.wait_for_seqs(5)
    assert failures == {"step": 0, method: 0}
    assert publisher.alive
