"""A private mosquitto on a free loopback port: the demo's broker, and the tests'.

Never the system's broker: every instance has its own config, port and data folder
in a folder of its own, and can be stopped, killed, reloaded and restarted on the same
port (tests use that to take the broker away from a running gate).
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from scanner.errors import QrgateError

STARTUP_TIMEOUT_S = 10.0


class BrokerError(QrgateError):
    """The private broker could not be started."""


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (str(path) for path in (Path("/usr/sbin/mosquitto"),) if path.exists()), None
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Mosquitto:
    """One private broker. `extra_conf` lines go into its listener section, e.g. an ACL,
    TLS files or `allow_anonymous false`; `persistence` keeps sessions over restarts."""

    workdir: Path
    extra_conf: list[str] = field(default_factory=list)
    persistence: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def write_conf(self) -> None:
        lines = [
            # Run as whoever runs the tests: as root it would otherwise switch to the
            # `mosquitto` user and lose access to this private folder.
            f"user {getpass.getuser()}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
        ]
        if not any(line.startswith("allow_anonymous") for line in self.extra_conf):
            lines.append("allow_anonymous true")
        self.conf_path.write_text("\n".join([*lines, *self.extra_conf]) + "\n")

    def start(self) -> Mosquitto:
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerError("mosquitto is not installed (Debian package: mosquitto)")
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_conf()
        with self.log_path.open("ab") as log:
            process = subprocess.Popen([binary, "-c", str(self.conf_path)], stdout=log, stderr=log)
        self.process = process
        self.starts += 1
        self.wait_until_listening(process)
        return self

    def wait_until_listening(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BrokerError(f"mosquitto exited at start:\n{self.log_tail()}")
            if port_open(self.port):
                return
            time.sleep(0.02)
        raise BrokerError(f"mosquitto did not listen on {self.port}:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """A clean stop (SIGTERM): the broker saves its persistent state."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """A crash (SIGKILL): nothing is saved, connections drop without DISCONNECT."""
        self._end(signal.SIGKILL)

    def reload(self) -> None:
        """Re-read the ACL and password files (SIGHUP), keeping every connection."""
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    def _end(self, how: signal.Signals) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(how)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        deadline = time.monotonic() + 5
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
