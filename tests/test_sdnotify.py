"""The systemd notify protocol, against real Unix datagram sockets the tests open."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.daemon.sdnotify import Heartbeat, Notifier, Watchdog, socket_address, watchdog_interval
from tests.support.notify import NotifySocket


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # tmp_path can exceed the 107 bytes a Unix socket path may have.
    with tempfile.TemporaryDirectory(prefix="sd-") as folder:
        yield Path(folder)


@pytest.fixture
def path_receiver() -> Iterator[NotifySocket]:
    with NotifySocket.path() as receiver:
        yield receiver


@pytest.fixture
def abstract_receiver() -> Iterator[NotifySocket]:
    with NotifySocket.abstract() as receiver:
        yield receiver


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest) -> NotifySocket:
    found: NotifySocket = request.getfixturevalue(f"{request.param}_receiver")
    return found


@pytest.fixture
def notifier(receiver: NotifySocket) -> Iterator[Notifier]:
    made = Notifier(receiver.env_value)
    yield made
    made.close()


def test_without_notify_socket_nothing_happens() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert notifier.ready("up") is False
    assert notifier.watchdog() is False
    notifier.close()


def test_reads_notify_socket_from_environment(path_receiver: NotifySocket) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path_receiver.env_value})
    assert notifier.enabled
    assert notifier.ready()
    assert path_receiver.messages() == [b"READY=1"]
    notifier.close()


def test_ready_with_status_is_one_datagram(receiver: NotifySocket, notifier: Notifier) -> None:
    assert notifier.ready("scanning at 30 fps")
    assert receiver.messages() == [b"READY=1\nSTATUS=scanning at 30 fps"]


@pytest.mark.parametrize(
    ("method", "args", "expected"),
    [
        ("watchdog", (), b"WATCHDOG=1"),
        ("stopping", (), b"STOPPING=1"),
        ("stopping", ("relay off",), b"STOPPING=1\nSTATUS=relay off"),
        ("status", ("outbox 3",), b"STATUS=outbox 3"),
    ],
)
def test_each_state_change(
    receiver: NotifySocket, notifier: Notifier, method: str, args: tuple[str, ...], expected: bytes
) -> None:
    assert getattr(notifier, method)(*args) is True
    assert receiver.messages() == [expected]


def test_status_stays_on_one_line(receiver: NotifySocket, notifier: Notifier) -> None:
    notifier.status("camera stalled\nrestarting\r\nnow")
    assert receiver.messages() == [b"STATUS=camera stalled restarting now"]


def test_status_is_utf8(receiver: NotifySocket, notifier: Notifier) -> None:
    notifier.status("cổng 1: sẵn sàng")
    assert receiver.messages() == ["STATUS=cổng 1: sẵn sàng".encode()]


def test_abstract_name_becomes_a_leading_nul() -> None:
    assert socket_address("@qrgate/notify") == "\0qrgate/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("") is None
    assert socket_address(None) is None


def test_unusable_address_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier("vsock-or-garbage")
    assert not notifier.enabled
    assert notifier.ready() is False
    assert "neither a path nor @name" in caplog.text


def test_gone_receiver_is_logged_once_then_recovers(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    address = str(short_dir / "notify")
    notifier = Notifier(address)
    caplog.set_level(logging.DEBUG, logger="scanner.daemon.sdnotify")
    assert notifier.watchdog() is False
    assert notifier.watchdog() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot notify systemd (WATCHDOG)" in warnings[0].getMessage()

    with NotifySocket(address, address) as systemd:
        assert notifier.watchdog()
        assert systemd.messages() == [b"WATCHDOG=1"]
    assert "notifying systemd works again" in caplog.text
    notifier.close()


def test_full_receiver_never_blocks_the_sender(path_receiver: NotifySocket) -> None:
    notifier = Notifier(path_receiver.env_value)
    # Nobody reads: the kernel queue fills within a few hundred datagrams at most, and
    # then a send fails at once instead of waiting for systemd.
    for _ in range(10_000):
        if not notifier.status("busy"):
            break
    else:
        pytest.fail("10,000 datagrams queued without the receiver reading")
    assert len(path_receiver.pending()) >= 1
    notifier.close()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "20000000"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "4242"}, 10.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval_is_half_the_period_for_our_pid(
    environ: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(environ, pid=4242) == expected


def test_watchdog_interval_defaults_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 1.5


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_heartbeat_is_alive_only_while_fresh() -> None:
    clock = FakeClock()
    heartbeat = Heartbeat(max_age_s=5, clock=clock)
    assert not heartbeat.alive()
    heartbeat.beat()
    clock.now += 5
    assert heartbeat.alive()
    clock.now += 0.1
    assert not heartbeat.alive()
    heartbeat.beat()
    assert heartbeat.alive()


def test_watchdog_pings_while_checks_pass(receiver: NotifySocket, notifier: Notifier) -> None:
    watchdog = Watchdog(notifier, {"frame loop": lambda: True, "publisher": lambda: True}, 10)
    assert watchdog.tick()
    assert receiver.messages() == [b"WATCHDOG=1"]


def test_watchdog_withholds_pings_while_a_loop_is_stuck(
    path_receiver: NotifySocket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scanner.daemon.sdnotify")
    clock = FakeClock()
    frames, publisher = Heartbeat(5, clock), Heartbeat(5, clock)
    notifier = Notifier(path_receiver.env_value)
    watchdog = Watchdog(notifier, {"frame loop": frames.alive, "publisher": publisher.alive}, 10)
    frames.beat()
    publisher.beat()
    assert watchdog.tick()
    clock.now += 6
    publisher.beat()
    assert not watchdog.tick()
    assert not watchdog.tick()
    assert path_receiver.messages() == [b"WATCHDOG=1"]
    assert caplog.text.count("not pinging the systemd watchdog: frame loop not alive") == 1

    frames.beat()
    assert watchdog.tick()
    assert path_receiver.messages() == [b"WATCHDOG=1"]
    assert "pinging the systemd watchdog again" in caplog.text
    notifier.close()


def test_a_check_that_raises_has_failed(
    path_receiver: NotifySocket, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> bool:
        raise RuntimeError("queue gone")

    notifier = Notifier(path_receiver.env_value)
    watchdog = Watchdog(notifier, {"publisher": broken}, 10)
    assert not watchdog.tick()
    assert not watchdog.tick()
    assert path_receiver.pending() == []
    assert caplog.text.count("RuntimeError: queue gone") == 1
    notifier.close()


def test_watchdog_thread_pings_each_interval_until_stopped(
    receiver: NotifySocket, notifier: Notifier
) -> None:
    watchdog = Watchdog(notifier, {"frame loop": lambda: True}, interval_s=0.01)
    watchdog.start()
    receiver.sock.settimeout(2)
    received = [receiver.sock.recv(64) for _ in range(3)]
    watchdog.stop()
    assert received == [b"WATCHDOG=1"] * 3
    assert set(receiver.pending()) <= {b"WATCHDOG=1"}
    time.sleep(0.05)  # five intervals: a thread still running would have pinged
    assert receiver.pending() == []


def test_no_watchdog_means_no_thread(path_receiver: NotifySocket) -> None:
    notifier = Notifier(path_receiver.env_value)
    watchdog = Watchdog(notifier, {}, interval_s=None)
    assert not watchdog.enabled
    watchdog.start()
    assert watchdog._thread is None
    watchdog.stop()
    notifier.close()


def test_watchdog_from_environment(
    path_receiver: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier(path_receiver.env_value)
    watchdog = Watchdog.from_environment(notifier, {})
    assert watchdog.enabled
    assert watchdog.interval_s == 2.0
    notifier.close()
