"""Everything the views share: settings, the store pool, the live hub, the people index,
the login limiter, the command sender; one per running dashboard."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from starlette.concurrency import run_in_threadpool

from monitor.dashboard.commands import CommandSender
from monitor.dashboard.db import DashboardStore, StorePool
from monitor.dashboard.live import Hub
from monitor.dashboard.passwords import DEFAULT_COST, Cost
from monitor.dashboard.people import PeopleIndex
from monitor.dashboard.ratelimit import LoginLimiter
from monitor.intake.state import LiveState

T = TypeVar("T")
HERE = Path(__file__).parent


def template_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True)
class Settings:
    db_url: str
    zone: tzinfo
    zone_name: str
    stale_after_s: float = 90.0  # online, but no health message for this long: stale
    session_s: float = 12 * 3600.0
    page_size: int = 50
    export_max: int = 100_000
    password_cost: Cost = DEFAULT_COST


@dataclass
class Dashboard:
    settings: Settings
    pool: StorePool
    hub: Hub = field(default_factory=Hub)
    people: PeopleIndex = field(default_factory=PeopleIndex)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    commands: CommandSender | None = None
    monitor_state: LiveState | None = None  # set when served by `qrgate monitor`
    clock: Callable[[], float] = time.time
    url: str = ""  # where it is served, once it is
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    templates: jinja2.Environment = field(default_factory=template_environment)

    def now_ms(self) -> int:
        return round(self.clock() * 1000)

    async def read(self, work: Callable[[DashboardStore], T]) -> T:
        """Run `work` with a store of the pool, on a worker thread."""
        return await run_in_threadpool(self._with_store, work)

    def _with_store(self, work: Callable[[DashboardStore], T]) -> T:
        with self.pool.store() as store:
            return work(store)

    async def off_loop(self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking work (a command round trip, a password hash) on a worker thread."""
        return await run_in_threadpool(work, *args)
