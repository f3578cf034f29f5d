"""Fixtures every part of the suite uses: a private broker, mock pins, QR frames, and a
private PostgreSQL server for the monitor's store."""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqtt.publisher import Publisher
from tests.support.broker import Mosquitto, mosquitto_binary
from tests.support.certs import CertificateAuthority
from tests.support.frames import Gray, Look, render_qr
from tests.support.postgres import Postgres, postgres_bindir


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Start private brokers with extra config lines; all are stopped after the test."""
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run the README's test command, which installs it")
    started: list[Mosquitto] = []

    def start(extra_conf: list[str] | None = None, persistence: bool = False) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"broker-{len(started)}", extra_conf or [], persistence)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.kill()


@pytest.fixture
def locked_broker(broker_factory: Callable[..., Mosquitto], tmp_path: Path) -> Mosquitto:
    """A broker that wants a login: user gate-1, password s3cret."""
    passwords = tmp_path / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "gate-1", "s3cret"],
        check=True,
        capture_output=True,
    )
    return broker_factory(["allow_anonymous false", f"password_file {passwords}"])


@pytest.fixture
def pki(tmp_path: Path) -> CertificateAuthority:
    """A certificate authority of the test's own, for TLS brokers and clients."""
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def running() -> Iterator[list[Publisher]]:
    """Publishers started by a test (`tests.support.gate.start`); all stopped at its end."""
    started: list[Publisher] = []
    yield started
    for publisher in started:
        publisher.stop()


@pytest.fixture
def mosquitto(broker_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """A running private mosquitto on a free loopback port (stop/kill/restart at will)."""
    return broker_factory()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For tests that configure logging as the CLI does: the root logger is put back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def mock_factory() -> Iterator[object]:
    """gpiozero's own MockFactory, fresh for each test, its pins released afterwards."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    factory = MockFactory(pin_class=MockPWMPin)
    yield factory
    factory.reset()
    factory.close()


@pytest.fixture
def qr_frame() -> Callable[..., Gray]:
    """Render a payload as a QR code in a grayscale frame: qr_frame(payload, look=Look(...))."""

    def render(
        payload: bytes | str,
        size: tuple[int, int] = (640, 480),
        look: Look | None = None,
        **options: object,
    ) -> Gray:
        return render_qr(payload, size, look, **options)  # type: ignore[arg-type]

    return render


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A private PostgreSQL server for the whole session (skipped only if not installed)."""
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL binaries are absent: run scripts/test, which installs them")
    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty monitor store's URL, on SQLite and on the private PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/monitor.db"
    server: Postgres = request.getfixturevalue("postgres")
    return server.create_database(f"t_{uuid.uuid4().hex}")
