"""The live terminal view: every gate's state and health, the latest events, counters.

`render(snapshot, now_ms)` is pure: the CLI redraws it with rich's Live, tests render
it to text. Health payloads are read leniently: a figure may sit at the top level or
one level down (`outbox_depth` or `{"outbox": {"depth": ...}}`), and anything missing
or unexpected (a string where a number belongs, a number no float holds, a time that
is no time) shows as blank, never as an error. Text from gates (names, subjects) is
shown without its control characters: a terminal would obey them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from monitor.intake.state import Snapshot
from monitor.storage.records import EventRow, GateRow
from monitor.text import printable

MAX_FIGURE_CHARS = 12
MAX_TIME_CHARS = 40
STATE_STYLES = {"online": "bold green", "offline": "bold red", "stopped": "yellow"}
RESULT_STYLES = {"granted": "green", "denied": "red"}
# Where a figure may be found in a gate's health payload, first match wins.
HEALTH_FIGURES = {
    "outbox": ("outbox_depth", "outbox.rows", "outbox.depth", "outbox"),
    "fps": ("camera_fps", "camera.fps", "fps"),
    "decode": ("decode_ms", "camera.decode_ms", "decode.ms"),
    "last_scan": ("last_scan", "last_scan_ts", "last_scan.ts"),
}


def render(snapshot: Snapshot, now_ms: int) -> RenderableType:
    return Group(
        gates_table(snapshot.gates, now_ms, snapshot.enrolled),
        events_table(snapshot.recent),
        footer(snapshot),
    )


def gates_table(
    gates: tuple[GateRow, ...], now_ms: int, enrolled: frozenset[tuple[str, str]] = frozenset()
) -> Table:
    table = Table(title=f"Gates ({len(gates)})", title_justify="left", expand=True)
    for header in ("site", "gate", "state", "for", "last event", "events", "missing", "key"):
        table.add_column(header, justify="right" if header in ("events", "missing") else "left")
    for header in ("outbox", "fps", "decode ms", "last scan", "health age"):
        table.add_column(header, justify="right")
    for gate in gates:
        table.add_row(*gate_cells(gate, now_ms, (gate.site, gate.gate) in enrolled))
    return table


def gate_cells(gate: GateRow, now_ms: int, enrolled: bool = False) -> list[RenderableType]:
    health = gate.health if isinstance(gate.health, dict) else {}
    state = gate.state if gate.state in STATE_STYLES else "unknown"
    return [
        gate.site,
        gate.gate,
        Text(state, style=STATE_STYLES.get(state, "dim")),
        age(gate.state_received_ms, now_ms),
        age(gate.last_event_ms or None, now_ms),
        str(gate.events),
        Text(str(gate.missing), style="bold red" if gate.missing else ""),
        key_cell(enrolled),
        number(figure(health, "outbox"), "{:.0f}"),
        number(figure(health, "fps"), "{:.1f}"),
        number(figure(health, "decode"), "{:.1f}"),
        short_time(figure(health, "last_scan")),
        age(gate.health_received_ms, now_ms),
    ]


def events_table(recent: tuple[EventRow, ...]) -> Table:
    table = Table(title="Latest events", title_justify="left", expand=True)
    for header in ("time (UTC)", "site", "gate", "seq", "dir", "type", "result", "reason"):
        table.add_column(header, justify="right" if header == "seq" else "left")
    table.add_column("subject")
    table.add_column("name")
    table.add_column("certificate")
    for line in reversed(recent):
        table.add_row(
            datetime.fromtimestamp(line.ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),
            line.site,
            line.gate,
            str(line.seq),
            line.direction,
            line.type,
            Text(line.result or "", style=RESULT_STYLES.get(line.result or "", "")),
            Text(printable(line.reason or "")),
            Text(printable(line.subject or "")),
            Text(printable(line.name or "")),
            certificate(line.cert_type, line.cert_country),
        )
    return table


def certificate(cert_type: str | None, country: str | None) -> str:
    """A health certificate's type and issuing country ("vaccination VN"), if any."""
    return " ".join(part for part in (cert_type, country) if part)


def key_cell(enrolled: bool) -> Text:
    """Whether the gate's events are verified by its enrolled key, or taken on trust."""
    return Text("enrolled", style="green") if enrolled else Text("NOT ENROLLED", style="bold red")


def footer(snapshot: Snapshot) -> Text:
    counters = snapshot.counters
    text = Text()
    if snapshot.connected:
        text.append("broker: connected", style="green")
    else:
        text.append("broker: NOT connected", style="bold red")
    text.append(
        f"   received {counters.received}, stored {counters.stored},"
        f" duplicates {counters.duplicates}, rejected {counters.rejected}"
    )
    unenrolled = snapshot.unenrolled
    if unenrolled:
        text.append(
            f"\n{len(unenrolled)} gate(s) not enrolled: their events are not authenticated"
            " (qrgate gates enroll)",
            style="bold red",
        )
    if snapshot.store_problem:
        text.append(f"\nstore: {printable(snapshot.store_problem)}", style="bold red")
    return text


def figure(health: dict[str, Any], name: str) -> Any:
    """The first of a figure's known places in a health payload that holds a plain value."""
    for path in HEALTH_FIGURES[name]:
        value: Any = health
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not isinstance(value, dict | list):
            return value
    return None


def number(value: Any, pattern: str) -> str:
    """A figure as `pattern` shows it; blank for anything but a finite number that fits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    try:
        if not math.isfinite(value):
            return ""
        shown = pattern.format(value)
    except (OverflowError, ValueError):  # an int no float holds: 400 digits in a JSON health
        return ""
    return shown if len(shown) <= MAX_FIGURE_CHARS else ""


def short_time(value: Any) -> str:
    """A health timestamp (ISO 8601 text or epoch seconds) as HH:MM:SS UTC; else blank."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC).strftime("%H:%M:%S")
        if isinstance(value, str) and len(value) <= MAX_TIME_CHARS:
            return datetime.fromisoformat(value).astimezone(UTC).strftime("%H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return ""
    return ""


def age(ms: int | None, now_ms: int) -> str:
    """How long ago, in the largest unit that fits: 42 s, 7 min, 3 h, 2 d."""
    if ms is None:
        return ""
    seconds = max(now_ms - ms, 0) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
