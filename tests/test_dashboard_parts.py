"""The dashboard's parts on their own: the live hub and its streams, folding for search,
gate states, passwords, the language table, serving rules, the CLI; and the monitor's
event retention on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from pathlib import Path

import pytest

from monitor.dashboard import i18n
from monitor.dashboard.context import Dashboard
from monitor.dashboard.errors import DashboardError
from monitor.dashboard.feed import Feed, PublishingState, StorePoller
from monitor.dashboard.gatecards import card
from monitor.dashboard.i18n import Locale, negotiate
from monitor.dashboard.live import Hub
from monitor.dashboard.passwords import DEFAULT_COST, hash_password, verify_password
from monitor.dashboard.people import PeopleIndex
from monitor.dashboard.server import Bind, Tls, check_exposure
from monitor.dashboard.text import fold
from monitor.intake.ingest import StatusRecord
from monitor.storage.records import EventRow, GateRow
from monitor.storage.retention import Upkeep, UpkeepPolicy, prune
from monitor.storage.store import Store
from scanner.cli import run
from tests.support.dashboard import PASSWORD, client_for, dashboard_for, seed
from tests.support.gate import wait_until
from tests.support.monitor_events import gate_event, record

DASHBOARD = Path(__file__).resolve().parent.parent / "monitor" / "dashboard"


# ---- the live hub and its streams -----------------------------------------------------------


def test_hub_resumes_after_the_last_id_and_says_when_too_much_was_missed() -> None:
    hub = Hub(capacity=3)
    for _ in range(5):
        hub.publish("gates")
    resumed = hub.since(3)
    assert [update.id for update in resumed.updates] == [4, 5]
    assert not resumed.missed
    assert hub.since(1).missed  # 2 is no longer kept
    assert not hub.since(5).missed
    assert hub.since(5).updates == []
    assert hub.since(99).missed  # an id from before a restart


def seeded(folder: Path) -> Dashboard:
    url = f"sqlite:///{folder}/m.db"
    seed(url)
    return dashboard_for(url)


def stream_text(dash: Dashboard, path: str, headers: dict[str, str] | None = None) -> str:
    with client_for(dash, "officer") as client:
        dash.hub.close()
        with client.stream("GET", path, headers=headers or {}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            return "".join(response.iter_text())


def test_event_stream_sends_each_new_event_with_its_id_from_last_event_id(tmp_path: Path) -> None:
    dash = seeded(tmp_path)
    state = PublishingState(Feed(dash.hub, dash.people))
    events = [
        record(gate_event(seq, f"2026-03-02T0{seq}:00", subject=f"S-{seq}", name="Trần Thị Hà"))
        for seq in (5, 6, 7)
    ]
    state.stored([events[0]], [events[0]])  # ids 1 (event), 2 (gates)
    state.stored(events[1:], events[1:])  # ids 3, 4 (events), 5 (gates)
    text = stream_text(dash, "/live/events?gate=in-1", {"Last-Event-ID": "2"})
    messages = re.findall(r"id: (\d+)\nevent: scan\n((?:data: .*\n)+)", text)
    assert [int(number) for number, _ in messages] == [3, 4]
    assert "S-6" in messages[0][1]
    assert "Trần Thị Hà" in messages[0][1]
    assert text.startswith("retry: 2000\n\n")
    assert text.endswith("id: 5\n\n")  # the gates update moves Last-Event-ID on
    filtered = stream_text(dash, "/live/events?after=0&gate=out-1")
    assert "event: scan" not in filtered
    assert "id: 5\n\n" in filtered
    assert "people" not in filtered  # nothing for another gate
    assert dash.people.search("tran thi ha")


def test_a_stream_that_missed_too_much_is_told_to_reload(tmp_path: Path) -> None:
    dash = seeded(tmp_path)
    dash.hub = Hub(capacity=2)
    for _ in range(4):
        dash.hub.publish("gates")
    text = stream_text(dash, "/live/gates?after=1")
    assert "event: reload" in text
    assert "id: 4" in text


def test_gates_stream_redraws_the_grid_with_the_new_state(tmp_path: Path) -> None:
    dash = seeded(tmp_path)
    state = PublishingState(Feed(dash.hub, dash.people))
    status = StatusRecord("f1", "in-1", "offline", None, "1.0", 1)
    store = Store(dash.settings.db_url)
    store.write([status])
    store.close()
    state.stored([status], [])
    text = stream_text(dash, "/live/gates?after=0")
    assert "event: gates" in text
    assert 'data-gate="f1/in-1" data-state="offline"' in text
    assert "mất kết nối" in text


def test_viewer_streams_carry_no_names(tmp_path: Path) -> None:
    """Nor does a stream filtered on a health certificate, which shows it as a badge."""
    dash = seeded(tmp_path)
    event = record(gate_event(9, "2026-03-02T05:00", subject="S-9", name="Trần Thị Hà"))
    paired = gate_event(10, "2026-03-02T05:01", subject="S-10", cert=("recovery", "DE"))
    for item in (event, record(paired)):
        dash.hub.publish("event", EventRow.from_record(item))
    with client_for(dash, "viewer") as client:
        dash.hub.close()
        with client.stream("GET", "/live/events?after=0") as response:
            text = "".join(response.iter_text())
        with client.stream("GET", "/live/events?after=0&cert_country=de") as response:
            certified = "".join(response.iter_text())
    assert "event: scan" in text
    assert "S-9" not in text
    assert "Trần" not in text
    assert certified.count("event: scan") == 1
    assert f'data-id="{paired["id"]}"' in certified
    assert "đã khỏi bệnh · DE</span>" in certified
    assert "S-10" not in certified


# ---- text, people, gates, passwords, language --------------------------------------------------


def test_folding_drops_vietnamese_marks_and_d_stroke() -> None:
    assert fold("Nguyễn  Văn ẤN") == "nguyen van an"
    assert fold("Đặng Thị Bình") == "dang thi binh"
    assert fold("ĐƯỜNG") == "duong"


def test_people_index_finds_by_folded_name_or_subject() -> None:
    people = PeopleIndex()
    people.note([EventRow.from_record(record(gate_event(1, "2026-03-02T01:00", subject="W-1",
                                             name="Nguyễn Văn An")))])  # fmt: skip
    assert [p.subject for p in people.search("van an nguyen")] == ["W-1"]
    assert [p.subject for p in people.search("w-1")] == ["W-1"]
    assert people.search("nguyen van binh") == []


def test_a_gate_online_without_recent_health_is_stale() -> None:
    now = 1_000_000
    fresh = GateRow(
        "f1", "g", "online", health_received_ms=now - 10_000, health={"mode": "lockdown"}
    )
    assert card(fresh, now, 90).state == "online"
    assert card(fresh, now, 5).state == "stale"
    assert card(fresh, now, 90).mode == "lockdown"
    assert card(GateRow("f1", "g", "offline"), now, 90).state == "offline"
    faulty = GateRow("f1", "g", "online", state_received_ms=now,
                     health={"faults": {"camera": "no frames"}, "outbox": {"rows": 3, "fill": 0.5},
                             "cpu_temp_c": 61.5})  # fmt: skip
    shown = card(faulty, now, 90)
    assert (shown.faults, shown.outbox, shown.fill, shown.cpu_temp_c) == (
        {"camera": "no frames"}, 3.0, 0.5, 61.5,
    )  # fmt: skip


def test_passwords_use_memory_hard_scrypt_at_the_default_cost() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith(f"scrypt${DEFAULT_COST.n}$8$1$")
    assert DEFAULT_COST.n * DEFAULT_COST.r * 128 >= 32 * 2**20  # 32 MiB per guess
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert not verify_password("x", "garbage")


def test_language_negotiation_and_vietnamese_formats() -> None:
    assert negotiate("en-US,en;q=0.9") == "en"
    assert negotiate("fr,vi;q=0.2,en;q=0.1") == "vi"
    assert negotiate(None) == "vi"
    assert negotiate("en", chosen="vi") == "vi"
    vi = Locale("vi")
    assert vi.number(1234567.5, 1) == "1.234.567,5"
    assert vi.time(0) == "01/01/1970 00:00:00"
    assert vi.age(1000, 181_000) == "3 phút"
    assert Locale("en").number(1234567.5, 1) == "1,234,567.5"


def test_every_message_has_a_vietnamese_translation() -> None:
    pattern = re.compile(r"""_\(\s*(?:"([^"]+)"|'([^']+)')""")
    texts = [path.read_text(encoding="utf-8") for path in DASHBOARD.rglob("*.html")]
    texts += [path.read_text(encoding="utf-8") for path in DASHBOARD.rglob("*.py")]
    found = {"".join(pair) for text in texts for pair in pattern.findall(text)}
    labels = {label for path in (DASHBOARD / "views").glob("common.py")
              for label in re.findall(r'\("/\w+", "([^"]+)"', path.read_text())}  # fmt: skip
    missing = sorted((found | labels) - set(i18n.VI))
    assert not missing, missing
    assert len(found) > 60


# ---- serving rules ------------------------------------------------------------------------------


def test_bind_parsing_and_exposure_rules(tmp_path: Path) -> None:
    assert Bind.parse("127.0.0.1:8080") == Bind("127.0.0.1", 8080)
    assert Bind.parse("[::1]:80").loopback
    with pytest.raises(DashboardError, match="HOST:PORT"):
        Bind.parse("8080")
    check_exposure(Bind("localhost", 1), None, insecure=False)
    with pytest.raises(DashboardError, match="without TLS"):
        check_exposure(Bind("0.0.0.0", 8080), None, insecure=False)
    check_exposure(Bind("0.0.0.0", 8080), Tls(tmp_path / "c", tmp_path / "k"), insecure=False)
    check_exposure(Bind("192.0.2.1", 8080), None, insecure=True)


def test_monitor_refuses_to_serve_a_public_address_without_tls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = run(["monitor", "--broker", "mqtt://127.0.0.1:1", "--db",
                f"sqlite:///{tmp_path}/m.db", "--http", "0.0.0.0:8080", "--quiet"])  # fmt: skip
    assert code == 1
    assert "refusing to serve the dashboard on 0.0.0.0 without TLS" in capsys.readouterr().err


# ---- the CLI ------------------------------------------------------------------------------------


def test_user_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/m.db"
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    args = ["dashboard", "user", "add", "hạnh", "--role", "officer", "--password-file", str(secret)]
    assert run([*args, "--db", db]) == 0
    assert run(["dashboard", "user", "list", "--db", db]) == 0
    assert "hạnh\tofficer" in capsys.readouterr().out
    secret.write_text("short")
    assert run([*args, "--db", db]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert run(["dashboard", "user", "add", "x", "--role", "root", "--db", db]) == 2
    assert run(["dashboard", "user", "remove", "hạnh", "--db", db]) == 0
    assert run(["dashboard", "user", "remove", "hạnh", "--db", db]) == 1


# ---- retention ----------------------------------------------------------------------------------


def test_retention_deletes_old_events_logs_the_count_and_keeps_gaps_true(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(store_url)
    events = [gate_event(seq, f"2026-03-0{day}T08:00") for seq, day in
              ((1, 1), (2, 1), (3, 2), (5, 4), (6, 5))]  # fmt: skip
    store.write([record(event) for event in events])
    now_ms = 1772697600000  # 2026-03-05T08:00Z
    with caplog.at_level(logging.INFO, logger="monitor.storage.retention"):
        assert prune(store, 2.5, now_ms, batch=2) == 3
    assert "retention: deleted 3 events older than 2026-03-02T20:00:00+00:00" in caplog.text
    assert store.count_events() == 2
    gaps = store.gaps()
    assert [(gap.first, gap.last) for gap in gaps] == [(4, 4)]  # 1-3 were deleted, not lost
    assert prune(store, 2.5, now_ms) == 0
    store.close()


def test_upkeep_prunes_and_refreshes_statistics_at_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    store = Store(url)
    store.write(
        [record(gate_event(1, "2020-01-01T08:00")), record(gate_event(2, "2099-01-01T08:00"))]
    )
    upkeep = Upkeep(url, UpkeepPolicy(retain_days=30, every_s=3600)).start()
    assert wait_until(lambda: upkeep.runs >= 1, 10)
    upkeep.stop()
    assert store.count_events() == 1
    store.close()
    with sqlite3.connect(tmp_path / "m.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT tbl FROM sqlite_stat1")}
    assert "events" in tables


def test_dashboard_alone_follows_the_store(tmp_path: Path) -> None:
    """`qrgate dashboard` has no monitor in its process: it polls the store."""
    url = f"sqlite:///{tmp_path}/m.db"
    seed(url)
    hub, people = Hub(), PeopleIndex()
    poller = StorePoller(url, Feed(hub, people), interval_s=0.05).start()
    try:
        time.sleep(0.2)  # what the store held before is not news
        assert hub.last_id == 0
        store = Store(url)
        store.write([record(gate_event(5, "2026-03-02T03:00", subject="W-5", name="Vũ Thị Mai"))])
        store.close()
        assert wait_until(lambda: hub.last_id >= 2, 5)
    finally:
        poller.stop()
    kinds = [(u.kind, u.event.subject if u.event else None) for u in hub.since(0).updates]
    assert kinds == [("event", "W-5"), ("gates", None)]
    assert [p.subject for p in people.search("vu thi mai")] == ["W-5"]
