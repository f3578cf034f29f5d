"""The live view, rendered to text from a known set of gates and events."""

from __future__ import annotations

from rich.console import Console

from monitor.intake.ingest import HealthRecord, StatusRecord
from monitor.intake.state import LiveState
from monitor.reporting.view import render
from monitor.storage.records import GateRow
from tests.support.monitor_events import full_ts, gate_event, record

NOW_MS = 1_772_442_000_000  # 2026-03-02T09:00:00Z


def screen(state: LiveState) -> str:
    console = Console(record=True, width=180, color_system=None)
    console.print(render(state.snapshot(), NOW_MS))
    return console.export_text()


def test_gates_events_and_counters_are_shown() -> None:
    state = LiveState()
    state.seed([GateRow("f1", "out-1", state="offline", state_received_ms=NOW_MS - 7_200_000)], [])
    state.set_connected(True)
    first = record(gate_event(1, "2026-03-02T08:58", subject="W-1042", name="Nguyễn Văn A",
                              cert=("vaccination", "VN")))  # fmt: skip
    denied = record(gate_event(3, "2026-03-02T08:59", subject="W-7", result="denied"))
    state.stored(
        [
            StatusRecord(
                "f1", "in-1", "online", full_ts("2026-03-02T08:00"), "0.1", NOW_MS - 60_000
            ),
            HealthRecord(
                "f1",
                "in-1",
                {"outbox": {"depth": 4}, "camera_fps": 29.96, "decode_ms": 1.25},
                NOW_MS - 5_000,
            ),
            first,
            denied,
            first,
        ],
        [first, denied],
    )
    text = screen(state)
    gate_line = next(line for line in text.splitlines() if "in-1" in line and "online" in line)
    cells = [cell.strip() for cell in gate_line.split("│")[1:-1]]
    assert cells == [
        "f1",
        "in-1",
        "online",
        "1 min",
        "1 min",
        "2",
        "1",
        "NOT ENROLLED",
        "4",
        "30.0",
        "1.2",
        "",
        "5 s",
    ]
    offline = next(line for line in text.splitlines() if "out-1" in line)
    assert [cell.strip() for cell in offline.split("│")[1:4]] == ["f1", "out-1", "offline"]
    assert "2 h" in offline
    events = [line for line in text.splitlines() if "2026-03-02 08:5" in line]
    assert all(word in events[0] for word in ("W-7", "denied", "not_allowed"))
    assert all(word in events[1] for word in ("W-1042", "Nguyễn Văn A", "granted"))
    assert "vaccination VN" in events[1]
    assert "vaccination" not in events[0]
    assert "broker: connected   received 5, stored 2, duplicates 1, rejected 0" in text


def test_a_broken_store_and_a_lost_broker_are_shown() -> None:
    state = LiveState()
    state.set_store_problem("postgresql store unavailable: connection refused")
    text = screen(state)
    assert "broker: NOT connected" in text
    assert "store: postgresql store unavailable: connection refused" in text
    assert "Gates (0)" in text


def test_health_read_leniently() -> None:
    state = LiveState()
    odd = {"outbox_depth": "lots", "fps": True, "last_scan": "2026-03-02T08:59:30.000Z"}
    state.stored([HealthRecord("f1", "g", odd, NOW_MS)], [])
    line = next(line for line in screen(state).splitlines() if " g " in line)
    cells = [cell.strip() for cell in line.split("│")[1:-1]]
    assert cells[8:12] == ["", "", "", "08:59:30"]  # what is not a number shows blank


def test_figures_no_view_can_show_are_blank() -> None:
    state = LiveState()
    huge = int("9" * 400)
    odd = {
        "outbox_depth": huge,
        "camera_fps": float("inf"),
        "decode_ms": 1e300,
        "last_scan": "\ud800" * 50,
    }
    stored = GateRow.from_row(("f1", "g", None, None, None, None, "{not json", None, 0, 0, 0))
    state.seed([stored], [])
    state.stored([HealthRecord("f1", "h", odd, NOW_MS)], [])
    text = screen(state)
    line = next(line for line in text.splitlines() if " h " in line)
    assert [cell.strip() for cell in line.split("│")[1:-1]][8:12] == ["", "", "", ""]
    assert next(line for line in text.splitlines() if " g " in line)  # unreadable health: none
