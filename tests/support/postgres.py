"""A private PostgreSQL server in a temporary folder, for tests and benchmarks.

`initdb` and `postgres` come from Debian's packages (`/usr/lib/postgresql/*/bin`). The
server listens on a free loopback port and on a socket in its own folder, trusts local
connections, and is gone with the folder. PostgreSQL refuses to run as root, so when
the tests run as root the folder is handed to the `postgres` user (or `nobody`) and the
server runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from tests.support.broker import free_port, port_open

STARTUP_TIMEOUT_S = 30.0
SERVICE_USERS = ("postgres", "nobody")


class AsUser(TypedDict, total=False):
    """The subprocess arguments that run a command as another user (none: as ourselves)."""

    user: int
    group: int
    extra_groups: list[int]


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in SERVICE_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user for PostgreSQL exists")


@dataclass
class Postgres:
    """One private server. `durable=False` turns fsync off: for tests, never benchmarks."""

    durable: bool = False
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qrgate-pg-")))
    process: subprocess.Popen[bytes] | None = None
    user: pwd.struct_passwd | None = field(default_factory=run_as)

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://qrgate@127.0.0.1:{self.port}/{database}"

    def start(self) -> Postgres:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian package: postgresql)")
        if self.user is not None:
            os.chown(self.workdir, self.user.pw_uid, self.user.pw_gid)
        self._run(
            str(bindir / "initdb"), "-D", str(self.datadir), "-U", "qrgate",
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        self._spawn(bindir / "postgres")
        self._wait_until_listening()
        return self

    def _settings(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.workdir),
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
        }
        return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=120, **self._as_user()
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed:\n{done.stdout}\n{done.stderr}")

    def _spawn(self, binary: Path) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(binary), "-D", str(self.datadir), *self._settings()],
            stdout=log,
            stderr=log,
            **self._as_user(),
        )
        log.close()

    def _as_user(self) -> AsUser:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited at start:\n{self.log_tail()}")
            if port_open(self.port) and self._accepts_queries():
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres did not start on {self.port}:\n{self.log_tail()}")

    def _accepts_queries(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: ends open sessions
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
