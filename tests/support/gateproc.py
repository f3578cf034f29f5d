"""`qrgate run` as a real process for end-to-end tests: its config written as TOML, its
store inspected read-only from outside, signals sent to it like systemd does."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from scanner.cli.config_cmd import render_toml
from scanner.config import Config
from tests.support.cli import QRGATE, ROOT


def badge_gate_config(frames: Path, folder: Path, port: int) -> Config:
    """A gate reading badges from replayed frames at 20 fps, mock pins, a local broker,
    its store under `folder/state`."""
    from scanner.config import parse_config

    (folder / "state").mkdir(parents=True, exist_ok=True)
    return parse_config(
        {
            "camera": {"source": f"replay:{frames}", "fps": 20.0},
            "gpio": {"pin_factory": "mock"},
            "policy": {"accept": ["badge"]},
            "store": {"path": str(folder / "state" / "qrgate.db")},
            "mqtt": {"host": "127.0.0.1", "port": port, "retry_min_s": 0.2, "retry_max_s": 0.5},
            "commands": {"enabled": False},
        }
    )


def write_config(config: Config, path: Path) -> Path:
    """The config as the TOML file a gate would read (what check-config prints)."""
    path.write_text(render_toml(config) + "\n", encoding="utf-8")
    return path


class GateProcess:
    """One `python -m scanner run -c CONFIG` with its stderr in a file."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = config_path.with_suffix(f".{time.monotonic_ns()}.log")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*QRGATE, "run", "-c", str(config_path)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    @classmethod
    def under_systemd(cls, config_path: Path, notify_socket: str, watchdog_us: int) -> GateProcess:
        """As systemd starts it: NOTIFY_SOCKET given, a watchdog of `watchdog_us`."""
        env = {"NOTIFY_SOCKET": notify_socket, "WATCHDOG_USEC": str(watchdog_us)}
        return cls(config_path, env)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout_s: float = 10.0) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the stop took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout_s)
        return code, time.monotonic() - started

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()


def outbox_rows(db: Path) -> list[tuple[int, str]]:
    """(seq, id) of the events waiting in a gate's outbox (not those kept after the broker
    acknowledged them), read without changing it."""
    if not db.exists():
        return []
    with sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute(
                "SELECT seq, json_extract(payload, '$.id') FROM outbox"
                " WHERE acked IS NULL ORDER BY seq"
            ).fetchall()
        except sqlite3.OperationalError:  # the gate has not created its tables yet
            return []
    return [(int(seq), str(event_id)) for seq, event_id in rows]


def outbox_events(db: Path) -> list[dict[str, Any]]:
    """The events waiting in a gate's outbox, oldest first, read without changing it."""
    with sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT payload FROM outbox WHERE acked IS NULL ORDER BY seq"
        ).fetchall()
    return [json.loads(payload) for (payload,) in rows]
