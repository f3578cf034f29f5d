"""The MQTT link waits on its socket with poll(): in a process that already holds more
than a thousand descriptors (a monitor serving browsers that sends a command, many
gates in one process) its socket is numbered beyond select()'s limit of 1024."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from mqtt.publisher import Publisher
from tests.support.broker import Mosquitto
from tests.support.gate import TOPICS, new_outbox, publisher_for, scans, start, wait_until
from tests.support.recorder import Recorder

HELD = 1100


def test_a_publisher_beyond_descriptor_1024_connects_and_delivers(
    tmp_path: Path, mosquitto: Mosquitto, running: list[Publisher], request: pytest.FixtureRequest
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < HELD + 200:
        pytest.skip(f"the descriptor limit ({hard}) is too low to hold {HELD}")
    if soft != resource.RLIM_INFINITY and soft < HELD + 200:  # 1024 by default: raise it
        resource.setrlimit(resource.RLIMIT_NOFILE, (HELD + 200, hard))
        request.addfinalizer(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    recorder = Recorder(mosquitto, TOPICS.events).start()  # paho's own loop: made first
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(HELD)]
    try:
        outbox = new_outbox(tmp_path / "q.db")
        publisher = start(running, publisher_for(mosquitto, outbox))
        scans(outbox, 3)
        assert recorder.wait_for_seqs(3, timeout=10), publisher.stats
        assert wait_until(lambda: outbox.depth().rows == 0)
    finally:
        for fd in held:
            os.close(fd)
        recorder.stop()
