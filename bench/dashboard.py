"""The dashboard: event to browser, pages on a million events, fifty live browsers.

    .venv/bin/python -m bench.dashboard [--events 200] [--page-events 1000000] [--clients 50]

1. Latency. `qrgate monitor --http` in this process (subscriber, store, web server) and
   a real headless Chromium on the Events page; a gate publishes events at 20/s. From
   the moment the monitor has committed and acknowledged an event (it hands it to the
   live hub then) to the moment its row is in the page (a MutationObserver notes
   Date.now()): p50, p99, max. Baseline: a bare SSE echo (a minimal Starlette stream
   and a page that appends each message) in the same browser, at the same rate.
2. Pages on 1,000,000 generated events (2,000 people x 250 days, a tenth of them with a
   health certificate; SQLite, as the monitor keeps it: with the sampled statistics of
   its hourly upkeep): server time per page through the ASGI app (query, template,
   response), median of 3, against the bare query of that page.
3. Fifty browsers on the live stream: `qrgate monitor --http` as its own process, 50
   SSE connections to /live/events while a gate publishes 20 events/s for 15 s: the
   monitor's CPU and memory, against the same monitor with no browser, and a bare SSE
   echo process with the same 50 connections and messages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.figures import p50_p99_max, percentile, ratio
from bench.monitor import fill_sqlite, table, timed
from bench.proc import cpu_seconds, status_kib
from monitor.dashboard.app import create_app
from monitor.dashboard.auth import new_user
from monitor.dashboard.context import Dashboard, Settings
from monitor.dashboard.db import DashboardStore, StorePool
from monitor.dashboard.passwords import Cost
from monitor.reporting import reports
from monitor.storage.records import EventFilter
from monitor.storage.store import Store
from tests.support.broker import Mosquitto, free_port
from tests.support.cli import ROOT
from tests.support.dashboard import monitor_with_dashboard
from tests.support.monitor_events import gate_event, payload, topic

ZONE = "Asia/Ho_Chi_Minh"
PASSWORD = "bench password 1"  # noqa: S105 - a private store of the run
RATE = 20.0  # events per second from the gate
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Notes when each row (by its data-id) or echo line appears, in the page's clock.
OBSERVER = """
window.__seen = {};
const target = document.querySelector(arguments[0]);
new MutationObserver(records => {
  const now = Date.now();
  for (const record of records) for (const node of record.addedNodes)
    if (node.dataset && node.dataset.id) window.__seen[node.dataset.id] = now;
}).observe(target, {childList: true});
"""


# ---- a gate that publishes ----------------------------------------------------------------


def gate_client(broker: Mosquitto) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def publish_at_rate(broker: Mosquitto, count: int, first_seq: int = 1) -> list[str]:
    """`count` events at RATE per second; their ids."""
    client = gate_client(broker)
    ids = []
    start = time.monotonic()
    try:
        for number in range(count):
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            event = gate_event(first_seq + number, ts, subject=f"W-{number % 50}",
                               name="Nguyễn Văn An")  # fmt: skip
            client.publish(topic(event), payload(event), qos=1).wait_for_publish(5)
            ids.append(event["id"])
            delay = start + (number + 1) / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    finally:
        client.loop_stop()
        client.disconnect()
    return ids


# ---- a bare SSE echo: the baseline -----------------------------------------------------------


ECHO_PAGE = """<!doctype html><meta charset="utf-8"><table><tbody id="rows"></tbody></table>
<script src="/echo.js"></script>"""
ECHO_JS = """
const rows = document.getElementById("rows");
const source = new EventSource("/stream");
source.addEventListener("scan", e => rows.insertAdjacentHTML("afterbegin", e.data));
"""


class Echo:
    """Messages put in from any thread reach every connected stream at once."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queues: list[asyncio.Queue[str | None]] = []
        self.sent: dict[str, float] = {}

    def put(self, key: str) -> None:
        self.sent[key] = time.time()
        html = f'<tr data-id="{key}"><td>{key}</td></tr>'
        assert self.loop is not None
        for queue in list(self.queues):
            self.loop.call_soon_threadsafe(queue.put_nowait, html)

    def close(self) -> None:
        """Streams end (None), so that the server stops at once."""
        if self.loop is not None:
            for queue in list(self.queues):
                self.loop.call_soon_threadsafe(queue.put_nowait, None)

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse, Response, StreamingResponse
        from starlette.routing import Route

        async def page(_request: Any) -> Response:
            return HTMLResponse(ECHO_PAGE)

        async def script(_request: Any) -> Response:
            return Response(ECHO_JS, media_type="text/javascript")

        async def stream(_request: Any) -> Response:
            self.loop = asyncio.get_running_loop()
            queue: asyncio.Queue[str | None] = asyncio.Queue()
            self.queues.append(queue)

            async def body() -> AsyncIterator[str]:
                number = 0
                while (html := await queue.get()) is not None:
                    number += 1
                    yield f"id: {number}\nevent: scan\ndata: {html}\n\n"

            return StreamingResponse(body(), media_type="text/event-stream")

        return Starlette(
            routes=[Route("/", page), Route("/echo.js", script), Route("/stream", stream)]
        )


def serve_in_thread(echo: Echo) -> tuple[Any, int]:
    from monitor.dashboard.server import Bind, WebServer

    server = WebServer(echo.app(), Bind("127.0.0.1", 0), on_stop=echo.close).start()
    return server, server.port


# ---- 1. latency -----------------------------------------------------------------------------


def chromium() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (*CHROMIUM_ARGS, f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(argument)
    return webdriver.Chrome(
        options=options, service=Service(executable_path="/usr/bin/chromedriver")
    )


def log_in_browser(browser: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/login")
    browser.find_element(By.NAME, "name").send_keys("bench")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    deadline = time.monotonic() + 10
    while "/login" in browser.current_url and time.monotonic() < deadline:
        time.sleep(0.05)


def add_account(url: str) -> None:
    store = DashboardStore(url, create=True)
    new_user(store, "bench", "admin", PASSWORD, now_ms=0, cost=Cost(n=2**12))
    store.close()


def latency_ours(browser: Any, workdir: Path, count: int) -> list[float]:
    from monitor.dashboard.cli import serving
    from monitor.dashboard.feed import Feed, PublishingState
    from monitor.dashboard.options import collect
    from monitor.intake.subscriber import Broker, Subscriber
    from monitor.intake.subscriber import Settings as SubSettings

    broker = Mosquitto(workdir / "broker-latency").start()
    db = f"sqlite:///{workdir}/latency.db"
    add_account(db)
    options = collect("127.0.0.1:0", ZONE, insecure=False, tls_cert=None, tls_key=None,
                      command_key=None, command_kid=None, stale_after=90.0)  # fmt: skip
    try:
        with serving(db, options) as dash:
            state = PublishingState(Feed(dash.hub, dash.people))
            store = Store(db)
            subscriber = Subscriber(
                SubSettings(Broker("127.0.0.1", broker.port), client_id="bench-monitor"),
                store,
                state,
            )
            subscriber.start()
            assert subscriber.subscribed.wait(10)
            url = dash.url
            log_in_browser(browser, url)
            browser.get(f"{url}/events")
            browser.execute_script(OBSERVER, "#event-rows")
            ids = publish_at_rate(broker, count)
            wait_seen(browser, ids)
            seen = browser.execute_script("return window.__seen")
            acked = {u.event.id: u.at for u in dash.hub.since(0).updates if u.event is not None}
            subscriber.stop()
            store.close()
    finally:
        broker.kill()
    return [seen[key] - acked[key] * 1000 for key in ids if key in seen and key in acked]


def wait_seen(browser: Any, ids: list[str], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = browser.execute_script("return Object.keys(window.__seen).length")
        if seen >= len(ids):
            return
        time.sleep(0.1)


def latency_echo(browser: Any, count: int) -> list[float]:
    echo = Echo()
    server, port = serve_in_thread(echo)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        browser.execute_script(OBSERVER, "#rows")
        deadline = time.monotonic() + 10
        while not echo.queues and time.monotonic() < deadline:
            time.sleep(0.05)
        keys = [f"e{number}" for number in range(count)]
        start = time.monotonic()
        for number, key in enumerate(keys):
            echo.put(key)
            delay = start + (number + 1) / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        wait_seen(browser, keys)
        seen = browser.execute_script("return window.__seen")
    finally:
        server.stop()
    return [seen[key] - echo.sent[key] * 1000 for key in keys if key in seen]


def bench_latency(workdir: Path, count: int) -> None:
    browser = chromium()
    try:
        ours = latency_ours(browser, workdir, count)
        bare = latency_echo(browser, count)
    finally:
        browser.quit()
    p50 = ratio(percentile(ours, 0.5), percentile(bare, 0.5)) if ours and bare else "-"
    rows = [
        ("bare SSE echo (baseline)", str(len(bare)), *p50_p99_max(bare), ""),
        ("monitor ack -> Events page", str(len(ours)), *p50_p99_max(ours), p50),
    ]
    table(
        f"Event to browser: {count} events at {RATE:g}/s, headless Chromium (ms)",
        rows,
        ("path", "events", "p50", "p99", "max", "p50 vs bare"),
    )


# ---- 2. pages on a million events --------------------------------------------------------------


def fill(url: str, people: int, days: int) -> None:
    """The generated events, the gates table as the monitor keeps it while it stores, and
    the sampled statistics the monitor's upkeep makes at start."""
    fill_sqlite(url, people, days, analyze=False)
    connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    connection.execute(
        "INSERT INTO gates (site, gate, state, events, last_seq, last_event_ms)"
        " SELECT site, gate, 'online', COUNT(*), MAX(seq), MAX(ts_ms) FROM events"
        " GROUP BY site, gate"
    )
    connection.close()
    store = Store(url, create=False)
    store.refresh_statistics()
    store.close()


def bench_pages(workdir: Path, people: int, days: int) -> None:
    from starlette.testclient import TestClient

    url = f"sqlite:///{workdir}/pages.db"
    started = time.monotonic()
    fill(url, people, days)
    add_account(url)
    took = time.monotonic() - started
    print(f"\n(generated {people * days * 2:,} events into SQLite in {took:.0f} s)")
    settings = Settings(url, ZoneInfo(ZONE), ZONE, password_cost=Cost(n=2**12))
    dash = Dashboard(settings, StorePool(url))
    store = Store(url, create=False)
    last = store.events(EventFilter(), None, 51)[-1]
    day_ms = 86_400_000
    end_ms = last.ts_ms
    week = (end_ms - 30 * day_ms, end_ms - 23 * day_ms)
    day = time.strftime("%Y-%m-%d", time.gmtime((end_ms - 20 * day_ms) / 1000))
    day_from = int(time.mktime(time.strptime(day, "%Y-%m-%d"))) * 1000
    when = f"from={time.strftime('%Y-%m-%dT%H:%M', time.gmtime(week[0] / 1000))}"
    when += f"&to={time.strftime('%Y-%m-%dT%H:%M', time.gmtime(week[1] / 1000))}"
    # page, its bare query
    cases: list[tuple[str, Callable[[], object]]] = [
        ("/gates", store.gates),
        ("/events", lambda: store.events(EventFilter(), None, 51)),
        (f"/events?before={last.ts_ms}:{last.id}",
         lambda: store.events(EventFilter(), (last.ts_ms, last.id), 51)),
        ("/events?gate=north-in-0", lambda: store.events(EventFilter(gate="north-in-0"), None, 51)),
        ("/events?result=denied", lambda: store.events(EventFilter(result="denied"), None, 51)),
        ("/events?credential=cccd", lambda: store.events(EventFilter(credential="cccd"), None, 51)),
        # Health certificates (bench.monitor.certificate): common, rare, one person's, none.
        ("/events?cert_type=vaccination",
         lambda: store.events(EventFilter(cert_type="vaccination"), None, 51)),
        ("/events?cert_type=recovery",
         lambda: store.events(EventFilter(cert_type="recovery"), None, 51)),
        ("/events?cert_country=DE", lambda: store.events(EventFilter(cert_country="DE"), None, 51)),
        ("/events?cert_country=FR", lambda: store.events(EventFilter(cert_country="FR"), None, 51)),
        ("/events?cert_type=test&cert_country=KR",
         lambda: store.events(EventFilter(cert_type="test", cert_country="KR"), None, 51)),
        ("/people?q=worker+1234", lambda: None),
        (f"/people/W-01234?{when}",
         lambda: reports.presence(store, *week, subject="W-01234")),
        ("/onsite", lambda: reports.onsite(store, end_ms)),
        (f"/attendance?date={day}",
         lambda: reports.attendance(store, day, day_from, day_from + day_ms, now_ms=end_ms)),
        (f"/contacts?subject=W-01234&{when}",
         lambda: reports.contacts(store, "W-01234", *week, now_ms=end_ms)),
        ("/gaps", store.gaps),
        ("/rejects", lambda: store.rejects(500)),
    ]  # fmt: skip
    rows = []
    with TestClient(create_app(dash)) as client:
        dash.people.loaded.wait(60)
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert token
        client.post("/login", data={"csrf": token.group(1), "name": "bench", "password": PASSWORD})
        for path, bare in cases:
            assert client.get(path).status_code == 200, path
            page_ms = 1000 * timed(lambda path=path: client.get(path))  # type: ignore[misc]
            bare_ms = 1000 * timed(bare)
            rows.append(
                (
                    path[:60],
                    f"{bare_ms:.1f}",
                    f"{page_ms:.1f}",
                    f"{page_ms / max(bare_ms, 0.1):.1f}",
                )
            )
    store.close()
    dash.pool.close()
    table(
        f"Pages on {people * days * 2:,} events, SQLite: server time, median of 3 (ms)",
        rows,
        ("page", "bare query", "page", "ratio"),
    )


# ---- 3. fifty browsers on the live stream -------------------------------------------------------


def proc_figures(pid: int) -> tuple[float, int, int]:
    """CPU seconds used so far, VmRSS and VmHWM in KiB."""
    memory = status_kib(pid, ("VmRSS", "VmHWM"))
    return cpu_seconds(Path(f"/proc/{pid}/stat")), memory["VmRSS"], memory["VmHWM"]


class StreamClient(threading.Thread):
    """One browser's stream, on a raw socket: counts the events it receives."""

    def __init__(self, port: int, path: str, cookie: str) -> None:
        super().__init__(daemon=True)
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        ).encode()
        self.port = port
        self.events = 0
        self.connected = threading.Event()
        self.sock: socket.socket | None = None

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            self.sock = sock
            sock.sendall(self.request)
            self.connected.set()
            while True:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.events += chunk.count(b"event: scan")

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


def login_cookie(port: int) -> str:
    import httpx2 as httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        page = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        client.post("/login", data={"csrf": token.group(1), "name": "bench", "password": PASSWORD})
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def live_after(port: int, cookie: str) -> int:
    """The update id the Events page is rendered at: its stream starts after it."""
    import httpx2 as httpx

    page = httpx.get(f"http://127.0.0.1:{port}/events", headers={"Cookie": cookie})
    found = re.search(r'data-after="(\d+)"', page.text)
    assert found, page.text[:300]
    return int(found.group(1))


Measured = tuple[float, int, int, float]  # CPU % of a core, VmRSS and VmHWM KiB, seconds


def measure_process(pid: int, work: Callable[[], object]) -> Measured:
    cpu_before, _, _ = proc_figures(pid)
    started = time.monotonic()
    work()
    took = time.monotonic() - started
    cpu_after, rss, hwm = proc_figures(pid)
    return (cpu_after - cpu_before) / took * 100, rss, hwm, took


def with_clients(
    port: int, path: str, cookie: str, count: int, work: Callable[[], object]
) -> tuple[list[StreamClient], Callable[[], object]]:
    clients = [StreamClient(port, path, cookie) for _ in range(count)]

    def run() -> None:
        for client in clients:
            client.start()
        for client in clients:
            client.connected.wait(5)
        time.sleep(0.5)
        work()
        time.sleep(1.0)  # the last events reach every stream

    return clients, run


def monitor_process(broker: Mosquitto, db: str, port: int, folder: Path) -> subprocess.Popen[bytes]:
    process = monitor_with_dashboard(broker.url, db, port, "bench-many", folder / "monitor.log")
    time.sleep(1.0)  # subscribed
    return process


ECHO_SERVER = """
import sys, threading, time
from bench.dashboard import Echo, serve_in_thread
echo = Echo()
server, port = serve_in_thread(echo)
print(port, flush=True)
for line in sys.stdin:
    count = int(line)
    start = time.monotonic()
    for number in range(count):
        echo.put(f"e{number}")
        delay = start + (number + 1) / float(sys.argv[1]) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print("done", flush=True)
"""


def bench_clients(workdir: Path, clients: int, seconds: float) -> None:
    count = int(RATE * seconds)
    broker = Mosquitto(workdir / "broker-many").start()
    db = f"sqlite:///{workdir}/many.db"
    add_account(db)
    rows: list[tuple[str, str, Measured, str]] = []
    try:
        port = free_port()
        monitor = monitor_process(broker, db, port, workdir)
        try:
            cookie = login_cookie(port)
            idle = measure_process(monitor.pid, lambda: publish_at_rate(broker, count))
            rows.append(("monitor, no browser", "0", idle, "-"))
            path = f"/live/events?after={live_after(port, cookie)}"  # as the page would
            streams, run = with_clients(
                port, path, cookie, clients, lambda: publish_at_rate(broker, count, count + 1)
            )
            busy = measure_process(monitor.pid, run)
            received = min(client.events for client in streams)
            for client in streams:
                client.close()
            rows.append(("monitor --http", str(clients), busy, f"{received}/{count}"))
        finally:
            monitor.terminate()
            monitor.wait(15)
        echo = subprocess.Popen(
            [sys.executable, "-c", ECHO_SERVER, str(RATE)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert echo.stdout is not None
            assert echo.stdin is not None
            echo_port = int(echo.stdout.readline())

            def pump() -> None:
                assert echo.stdout is not None
                assert echo.stdin is not None
                echo.stdin.write(f"{count}\n")
                echo.stdin.flush()
                echo.stdout.readline()

            streams, run = with_clients(echo_port, "/stream", "", clients, pump)
            bare = measure_process(echo.pid, run)
            received = min(client.events for client in streams)
            for client in streams:
                client.close()
            rows.insert(0, ("bare SSE echo (baseline)", str(clients), bare, f"{received}/{count}"))
        finally:
            echo.kill()
            echo.wait()
    finally:
        broker.kill()
    table(
        f"Live stream: {count} events at {RATE:g}/s; CPU of the serving process over the run",
        [(name, many, *shown(measured, rows[0][2]), each) for name, many, measured, each in rows],
        ("process", "streams", "CPU % of a core", "vs bare echo", "VmRSS MiB", "VmHWM MiB",
         "events each"),
    )  # fmt: skip


def shown(measured: Measured, bare: Measured) -> tuple[str, str, str, str]:
    """CPU, its ratio to the bare echo's, VmRSS and VmHWM (MiB)."""
    cpu, rss, hwm, _ = measured
    return f"{cpu:.1f}", ratio(cpu, bare[0]), f"{rss / 1024:.0f}", f"{hwm / 1024:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200, help="events for the latency run")
    parser.add_argument("--page-events", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--only", choices=["latency", "pages", "clients"], default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qrgate-bench-dashboard-") as folder:
        workdir = Path(folder)
        if args.only in (None, "latency"):
            bench_latency(workdir, args.events)
        if args.only in (None, "clients"):
            bench_clients(workdir, args.clients, args.seconds)
        if args.only in (None, "pages"):
            people = 2000
            bench_pages(workdir, people, max(1, args.page_events // (2 * people)))
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
