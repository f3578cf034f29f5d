"""A whole gate in one process, on real parts: SQLite store and outbox, gpiozero's mock
pins, the real policy, the gate's own command handlers behind the real command intake.

For tests that must reach what the running daemon reaches (event building, the
handlers), without a camera or a broker.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from gpiozero.pins.mock import MockFactory

from firmware.scheduler import ManualScheduler
from mqtt.clock import ClockTrust
from mqtt.commands import CommandIntake, ReplayGuard, Reply
from mqtt.outbox import Outbox
from mqtt.topics import GateTopics
from scanner.clock import ManualClock
from scanner.config import Config, parse_config
from scanner.daemon.gate import Gate
from scanner.daemon.hardware import open_outputs
from scanner.daemon.remote import Remote, pushed_jwks_path
from scanner.decision.policy import Policy
from scanner.state.store import Store
from tests.support.tokens import IssuerKey, write_jwks

RELAY = 17
TOPICS = GateTopics("qrgate", "factory-1", "gate-1")


class RealGate:
    """Gate, store, outbox, outputs and command intake of one gate in `folder`."""

    def __init__(
        self, folder: Path, factory: MockFactory, accept: list[str], **sections: Any
    ) -> None:
        """`sections`: more of the config (`dcc={...}`)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.issuer, self.centre = IssuerKey.ed25519("issuer"), IssuerKey.ed25519("centre")
        self.config: Config = parse_config(
            {
                "gpio": {"pin_factory": "mock"},
                "policy": {"accept": accept, "repeat_window_s": 1.0},
                "passes": {"jwks": str(write_jwks(folder / "jwks.json", self.issuer))},
                "store": {"path": str(folder / "state" / "q.db")},
                **sections,
            }
        )
        self.clock, self.timer, self.factory = ManualClock(), ManualScheduler(), factory
        self.outbox = Outbox(self.config.store.path, "factory-1", "gate-1", "in")
        self.store = Store.open(self.config.store.path)
        self.outputs = open_outputs(self.config.gpio, factory, scheduler=self.timer)
        trust = ClockTrust(wall=self.clock.now, monotonic=self.clock.monotonic, synced=lambda: None)
        policy = Policy.from_config(self.config, self.store, self.clock)
        self.gate = Gate(policy, self.outbox, self.outputs, self.clock, trust)
        remote = Remote(
            self.gate, self.store, pushed_jwks_path(self.config.store.path), self.outbox
        )
        self.replay = ReplayGuard(self.config.store.path)
        keys = {"centre": jwt.PyJWK(self.centre.jwk(), algorithm="EdDSA")}
        self.intake = CommandIntake(
            TOPICS, keys, remote.handlers(), self.replay, clock=self.clock.now
        )
        self._ids = itertools.count(1)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(row.payload) for row in self.outbox.pending(limit=10_000)]

    def relay_moves(self) -> int:
        return len(self.factory.pin(RELAY).states) - 1  # the first is the initial state

    def pass_token(self, claims: dict[str, Any]) -> bytes:
        """A pass signed by the trusted issuer, with exactly these claims."""
        return jwt.encode(claims, self.issuer.private, "EdDSA", {"kid": "issuer"}).encode()

    def command(self, name: str, *, retained: bool = False, **claims: Any) -> Reply:
        """A command signed by the centre's key, for this gate, through the intake."""
        now = int(self.clock.now())
        body = {"cmd": name, "site": "factory-1", "gate": "gate-1", "iat": now, "exp": now + 60}
        body.update(claims)
        body.setdefault("jti", f"{name}-{next(self._ids)}")
        token = jwt.encode(body, self.centre.private, "EdDSA", {"kid": "centre"}).encode()
        return self.intake.handle(TOPICS.command(name), token, retained=retained)

    def close(self) -> None:
        for close in self._closers():
            close()

    def _closers(self) -> list[Callable[[], None]]:
        return [self.outputs.close, self.replay.close, self.store.close, self.outbox.close]
