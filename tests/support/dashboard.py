"""The dashboard for tests: an app over a store of known events, accounts of each role,
and a logged-in test client per role."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.testclient import TestClient

from monitor.dashboard.app import create_app
from monitor.dashboard.auth import new_user
from monitor.dashboard.context import Dashboard, Settings
from monitor.dashboard.db import DashboardStore, StorePool
from monitor.dashboard.passwords import Cost
from monitor.storage.store import Store
from tests.support.broker import port_open
from tests.support.cli import QRGATE, ROOT
from tests.support.gate import wait_until
from tests.support.monitor_events import gate_event, record

ZONE = "Asia/Ho_Chi_Minh"
PASSWORD = "correct horse battery"
# Cheap for tests; the default cost is checked on its own.
TEST_COST = Cost(n=2**10)
ROLES = ("viewer", "officer", "admin")


def seed(url: str) -> None:
    """Two sites, Vietnamese names, granted and denied scans, one gap at gate in-1; two
    passages paired with a health certificate (W-2's, W-9's)."""
    events = [
        gate_event(1, "2026-03-02T01:00", subject="W-1", name="Nguyễn Văn An"),
        gate_event(
            2, "2026-03-02T01:05", subject="W-2", name="Đặng Thị Bình", cert=("vaccination", "VN")
        ),
        gate_event(4, "2026-03-02T01:10", subject="W-3", name='=HYPERLINK("x")', result="denied"),
        gate_event(
            1,
            "2026-03-02T09:00",
            gate="out-1",
            direction="out",
            subject="W-1",
            name="Nguyễn Văn An",
        ),
        gate_event(
            1,
            "2026-03-02T02:00",
            site="f2",
            gate="g-1",
            subject="W-9",
            name="Lê Văn C",
            cert=("test", "KR"),
        ),
    ]
    store = Store(url)
    store.write([record(event) for event in events])
    store.close()
    accounts = DashboardStore(url)
    for role in ROLES:
        new_user(accounts, role, role, PASSWORD, now_ms=0, cost=TEST_COST)
    accounts.close()


def monitor_with_dashboard(
    broker_url: str, db: str, port: int, client_id: str, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    """`qrgate monitor --quiet --http` as deployed; returns once its pages answer."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*QRGATE, "monitor", "--quiet", "--broker", broker_url, "--db", db,
             "--client-id", client_id, "--http", f"127.0.0.1:{port}", "--tz", ZONE, *extra],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    if not wait_until(lambda: port_open(port) or process.poll() is not None, 20):
        process.kill()
    if process.poll() is not None or not port_open(port):
        raise RuntimeError(f"the monitor did not serve on {port}:\n{log.read_text()}")
    return process


def dashboard_for(url: str, **settings: object) -> Dashboard:
    options = {"password_cost": TEST_COST, **settings}
    return Dashboard(Settings(url, ZoneInfo(ZONE), ZONE, **options), StorePool(url))  # type: ignore[arg-type]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD) -> None:
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"csrf": token, "name": name, "password": password, "next": "/gates"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


@contextmanager
def client_for(dash: Dashboard, role: str | None = None) -> Iterator[TestClient]:
    with TestClient(create_app(dash)) as client:
        dash.people.loaded.wait(10)
        if role is not None:
            log_in(client, role)
        yield client
