"""RELIABILITY.md fault 19: a lossy link. Connections that drop while events are in
flight lose nothing (what was in flight is sent again), and events parked because the
link kept dropping while they were sent alone go out by themselves once the link is
stable: parking is for what the broker refuses, not for a flaky network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt.publisher import Publisher
from tests.support.broker import Mosquitto
from tests.support.flakylink import FlakyLink
from tests.support.gate import TOPICS, new_outbox, publisher_for, scans, start, wait_until
from tests.support.recorder import Recorder, check_stream


@pytest.fixture
def link(mosquitto: Mosquitto) -> Iterator[FlakyLink]:
    flaky = FlakyLink(mosquitto.port, TOPICS.events.encode()).start()
    yield flaky
    flaky.stop()


def test_events_parked_on_a_flaky_link_go_out_once_it_is_stable(
    mosquitto: Mosquitto, link: FlakyLink, tmp_path: Path, running: list[Publisher]
) -> None:
    recorder = Recorder(mosquitto).start()
    outbox = new_outbox(tmp_path / "q.db", max_refusals=2)
    scans(outbox, 30)
    link.cuts = 5  # the burst, then the oldest alone twice, then the next alone twice
    publisher = start(
        running, publisher_for(link.port, outbox, window=8, release_parked_after_s=0.5)
    )
    try:
        assert wait_until(lambda: link.cut == 5 and outbox.depth().parked == 2, 15)
        assert recorder.wait_for_seqs(30, timeout=15), sorted(e["seq"] for e in recorder.events())
        check_stream(recorder.events(), 30)
        assert wait_until(lambda: outbox.depth().rows == 0)
    finally:
        recorder.stop()
    assert publisher.connected
