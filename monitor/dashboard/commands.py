"""Commands from the dashboard: signed exactly as `qrgate cmd` signs them (the same
mqtt.remote code), sent through the broker, with the gates' replies collected. A
command waits for a confirmation first: the confirmation is a one-time token, bound to
the account that asked, that expires."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.dashboard.errors import DashboardError
from monitor.fleet.resend import Sender
from mqtt.remote import (
    CommandError,
    GateReply,
    load_signing_key,
    send_command,
)
from mqtt.settings import BrokerSettings

# What the dashboard offers; allowlists, revocations and keys stay with `qrgate cmd`.
OFFERED = ("lockdown", "normal", "emergency", "open")
CONFIRM_WITHIN_S = 120.0
MAX_OPEN_S = 3600


@dataclass(frozen=True)
class Request:
    """A command as asked for: `gate` None means every gate of the site."""

    name: str
    site: str
    gate: str | None
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"{self.site}/{self.gate}" if self.gate else f"{self.site}/*"


@dataclass(frozen=True)
class Pending:
    request: Request
    user: str
    expires: float


@dataclass
class CommandSender(Sender):
    """The dashboard's commands: held for a confirmation, then signed and sent."""

    clock: Callable[[], float] = time.time
    _pending: dict[str, Pending] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_key_file(
        cls, broker: BrokerSettings, prefix: str, path: Path, kid: str
    ) -> CommandSender:
        try:
            key = load_signing_key(path)
        except CommandError as error:
            raise DashboardError(f"command key: {error}") from None
        return cls(broker, prefix, key, kid)

    def ask(self, request: Request, user: str) -> str:
        """Hold a command for confirmation; returns the confirmation token."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = self.clock()
            self._pending = {k: p for k, p in self._pending.items() if p.expires > now}
            self._pending[token] = Pending(request, user, now + CONFIRM_WITHIN_S)
        return token

    def confirmed(self, token: str, user: str) -> Request | None:
        """The command held under `token` for `user`, once; None if unknown or expired."""
        with self._lock:
            pending = self._pending.pop(token, None)
        if pending is None or pending.user != user or pending.expires <= self.clock():
            return None
        return pending.request

    def send(self, request: Request) -> tuple[str, list[GateReply]]:
        """Sign and send; the command's id and the replies that came within the timeout."""
        command = self.sign(request.name, request.site, request.gate, request.args)
        replies = send_command(self.link(), self.prefix, command, timeout_s=self.timeout_s)
        return command.id, replies

    def link(self) -> BrokerSettings:
        """A client id of its own per exchange (a command, or the resends of the Gaps
        page): never the monitor's (the broker would throw the monitor's session off),
        never shared by two sent at once."""
        return dataclasses.replace(
            self.broker, client_id=f"qrgate-dashboard-{secrets.token_hex(6)}"
        )
