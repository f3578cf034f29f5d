"""The centre in tests: `qrgate monitor` as a real process (its live view drawn as on a
terminal into a file, stopped with SIGTERM as systemd does) or its subscriber in-process,
its store read from outside, and a plain MQTT client playing the gates."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from monitor.intake.state import LiveState
from monitor.intake.subscriber import Broker, Settings, Subscriber
from monitor.storage.store import RejectLimits, Store
from tests.support.broker import Mosquitto
from tests.support.cli import QRGATE, ROOT

# rich draws its live view only on what it takes for a terminal.
AS_TERMINAL = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "200"}


class MonitorProcess:
    """One `qrgate monitor`; with `live`, its view (and log lines) go to `screen_path`."""

    def __init__(
        self, broker_url: str, db: str, workdir: Path, *extra: str, live: bool = True
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.screen_path = workdir / f"monitor.{time.monotonic_ns()}.out"
        args = ["monitor", "--broker", broker_url, "--db", db, "--client-id", "central-test"]
        if not live:
            args.append("--quiet")
        with self.screen_path.open("wb") as screen:
            self.process = subprocess.Popen(
                [*QRGATE, *args, *extra],
                cwd=ROOT,
                stdout=screen,
                stderr=subprocess.STDOUT,
                env={**os.environ, **AS_TERMINAL},
            )

    @property
    def screen(self) -> str:
        return self.screen_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
        """Until `condition` holds; fails early, with the screen, if the monitor died."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the monitor exited ({self.process.returncode}):\n{self.tail}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.tail}")
            time.sleep(0.05)

    def wait_subscribed(self) -> None:
        self.wait_for(lambda: "subscribed to" in self.screen, "the subscription")

    def redrawn(self, text: str, times: int = 2) -> Callable[[], bool]:
        """A condition: the view has shown `text` in `times` frames (a frame is one update)."""
        return lambda: self.screen.count(text) >= times

    def stop(self, timeout_s: float = 20.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    @property
    def tail(self) -> str:
        return "\n".join(self.screen.splitlines()[-40:])


def stored_events(db: str) -> int:
    """Events in the store, read from outside (0 before the monitor made it)."""
    try:
        store = Store(db, create=False)
    except Exception:  # not created yet
        return 0
    try:
        return store.count_events()
    finally:
        store.close()


@contextmanager
def running_monitor(
    broker: Mosquitto, store_url: str, rejects: RejectLimits | None = None, **options: Any
) -> Iterator[Subscriber]:
    """The monitor's subscriber in this process, subscribed, on a store of its own."""
    options.setdefault("client_id", "monitor-test")
    settings = Settings(Broker("127.0.0.1", broker.port), **options)
    store = Store(store_url, rejects=rejects)
    subscriber = Subscriber(settings, store, LiveState())
    subscriber.start()
    try:
        assert subscriber.subscribed.wait(10)
        yield subscriber
    finally:
        subscriber.stop()
        store.close()


@contextmanager
def gate_client(broker: Mosquitto, inflight: int = 20) -> Iterator[paho.Client]:
    """A plain MQTT v5 client publishing as gates (or as someone with their login) do."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()
