"""The dashboard through Starlette's test client: every page, filter, role, CSRF refusal,
login rate limit and audit row, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from monitor.dashboard.commands import CommandSender
from monitor.dashboard.context import Dashboard
from monitor.dashboard.db import DashboardStore
from monitor.dashboard.export import BOM
from monitor.dashboard.ratelimit import Limits, LoginLimiter
from monitor.intake.enrollment import EnrolledKey, Enrollment
from monitor.intake.ingest import EventRecord, classify
from mqtt.commands import CommandIntake, ReplayGuard, load_command_keys
from mqtt.settings import BrokerSettings
from mqtt.signing import EventSigner, public_text
from mqtt.topics import GateTopics
from scanner.credentials.keys import create_signing_key
from tests.support.broker import Mosquitto
from tests.support.dashboard import (
    PASSWORD,
    client_for,
    csrf_of,
    dashboard_for,
    log_in,
    seed,
)
from tests.support.gate import wait_until
from tests.support.monitor_events import gate_event, payload, topic
from tests.support.simgates import centre_key, connected, drained, make_gate

PAGES = (
    "/gates",
    "/events",
    "/people",
    "/people?q=an",
    "/people/W-1?from=2026-03-01&to=2026-03-03",
    "/onsite",
    "/attendance?date=2026-03-02",
    "/contacts?subject=W-1&from=2026-03-01&to=2026-03-03",
    "/gaps",
    "/rejects",
    "/commands",
    "/accounts",
    "/audit",
)
EXPORTS = ("/events", "/onsite", "/attendance", "/contacts", "/gaps", "/rejects", "/audit")


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dashboard]:
    url = f"sqlite:///{tmp_path}/monitor.db"
    seed(url)
    built = dashboard_for(url)
    yield built
    built.pool.close()


def audit_actions(dash: Dashboard) -> list[tuple[str, str, str]]:
    with dash.pool.store() as store:
        return [(row.name, row.action, row.detail) for row in store.audit()]


# ---- every page, on both databases ------------------------------------------------------


def test_every_page_renders_for_an_admin_on_both_stores(store_url: str) -> None:
    seed(store_url)
    dash = dashboard_for(store_url)
    with client_for(dash, "admin") as client:
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:500])
            assert "Trung tâm qrgate" in response.text
        for path in EXPORTS:
            response = client.get(f"{path}.csv", params={"subject": "W-1"})
            assert response.status_code == 200, path
            assert response.content.startswith(BOM.encode()), path
    dash.pool.close()


# ---- nothing before login ---------------------------------------------------------------


def test_nothing_is_served_before_login(dash: Dashboard) -> None:
    with client_for(dash) as client:
        for path in (*PAGES, *(f"{p}.csv" for p in EXPORTS), "/events/rows"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=")
            assert "W-1" not in response.text
            assert "Nguyễn" not in response.text
        assert client.get("/live/events").status_code == 401
        assert client.get("/live/gates").status_code == 401
        assert client.get("/static/htmx.min.js").status_code == 200


def test_login_goes_back_to_the_page_asked_for_and_only_ours(dash: Dashboard) -> None:
    with client_for(dash) as client:
        page = client.get("/events?site=f1")
        token = csrf_of(page.text)
        sent = {"csrf": token, "name": "viewer", "password": PASSWORD}
        landed = client.post(
            "/login", data={**sent, "next": "/events?site=f1"}, follow_redirects=False
        )
        assert landed.headers["location"] == "/events?site=f1"
        elsewhere = client.post(
            "/login", data={**sent, "next": "//evil.example/"}, follow_redirects=False
        )
        assert elsewhere.headers["location"] == "/gates"
        cookie = landed.headers["set-cookie"]
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()


def test_logout_ends_the_session(dash: Dashboard) -> None:
    with client_for(dash, "officer") as client:
        token = csrf_of(client.get("/gates").text)
        assert (
            client.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
        )
        assert client.get("/gates", follow_redirects=False).status_code == 303
    assert ("officer", "logout", "") in audit_actions(dash)


# ---- roles -------------------------------------------------------------------------------


def test_viewer_sees_gates_and_counts_but_no_names(dash: Dashboard) -> None:
    with client_for(dash, "viewer") as client:
        events = client.get("/events")
        assert events.status_code == 200
        assert "in-1" in events.text
        assert "W-1" not in events.text
        assert "Nguyễn" not in events.text
        by_subject = client.get("/events", params={"subject": "W-1"}).text
        assert by_subject.count("data-id=") == 5  # a subject filter is not a viewer's
        onsite = client.get("/onsite")
        assert onsite.status_code == 200
        assert "W-2" not in onsite.text
        assert re.search(r"<b>1</b> người đang có mặt · f1", onsite.text)
        assert client.get("/gaps").status_code == 200
        for path in ("/people", "/people/W-1", "/contacts", "/attendance", "/rejects",
                     "/commands", "/accounts", "/audit", "/events.csv", "/gaps.csv"):  # fmt: skip
            assert client.get(path).status_code == 403, path
        assert "/people" not in client.get("/gates").text  # not offered in the menu


def test_officer_sees_names_and_exports_but_no_commands_or_accounts(dash: Dashboard) -> None:
    with client_for(dash, "officer") as client:
        events = client.get("/events")
        assert "Nguyễn Văn An" in events.text
        assert 'href="/people/W-1"' in events.text
        assert client.get("/events.csv").status_code == 200
        assert client.get("/onsite").text.count('href="/people/W-2"') == 1
        for path in ("/commands", "/accounts", "/audit"):
            assert client.get(path).status_code == 403, path
        token = csrf_of(client.get("/gates").text)
        sent = client.post("/commands/confirm", data={"csrf": token, "command": "lockdown"})
        assert sent.status_code == 403


# ---- CSRF ------------------------------------------------------------------------------


def test_forms_without_the_right_csrf_token_are_refused(dash: Dashboard) -> None:
    with client_for(dash, "admin") as client:
        token = csrf_of(client.get("/accounts").text)
        account = {"name": "new", "role": "viewer", "password": "long enough pw"}
        assert client.post("/accounts", data=account).status_code == 403
        assert client.post("/accounts", data={**account, "csrf": "0" * 64}).status_code == 403
        foreign = client.post(
            "/accounts",
            data={**account, "csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        assert client.post("/logout", data={}).status_code == 403
        assert client.post("/accounts", data={**account, "csrf": token}).status_code == 200
    with dash.pool.store() as store:
        assert [user.name for user in store.users()] == ["admin", "new", "officer", "viewer"]


def test_login_form_needs_its_csrf_token(dash: Dashboard) -> None:
    with client_for(dash) as client:
        client.get("/login")
        refused = client.post("/login", data={"name": "admin", "password": PASSWORD})
        assert refused.status_code == 403
        assert "qrgate_session" not in refused.headers.get("set-cookie", "")


# ---- login rate limit -------------------------------------------------------------------


def test_wrong_passwords_are_rate_limited_even_the_right_one_then(dash: Dashboard) -> None:
    clock = [0.0]
    dash.limiter = LoginLimiter(Limits(failures=3, window_s=600), clock=lambda: clock[0])
    with client_for(dash) as client:
        token = csrf_of(client.get("/login").text)
        wrong = {"csrf": token, "name": "admin", "password": "x"}
        for _ in range(2):
            refused = client.post("/login", data=wrong)
            assert refused.status_code == 401
            assert "Sai tên hoặc mật khẩu." in refused.text
        third = client.post("/login", data=wrong)
        assert third.status_code == 429
        assert "Thử lại sau 10 phút" in third.text
        right = {"csrf": token, "name": "admin", "password": PASSWORD}
        limited = client.post("/login", data=right, follow_redirects=False)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) == 600
        clock[0] = 601
        assert client.post("/login", data=right, follow_redirects=False).status_code == 303
    failed = [row for row in audit_actions(dash) if row[1] == "login_failed"]
    assert len(failed) == 4  # three wrong passwords, one right one while limited
    assert ("admin", "login", "role=admin") in audit_actions(dash)


def test_an_unknown_name_is_refused_like_a_wrong_password(dash: Dashboard) -> None:
    with client_for(dash) as client:
        token = csrf_of(client.get("/login").text)
        response = client.post("/login", data={"csrf": token, "name": "nobody", "password": "x"})
        assert response.status_code == 401
        assert "Sai tên hoặc mật khẩu." in response.text


# ---- events: filters in the URL, paging ---------------------------------------------------


@pytest.mark.parametrize(
    ("query", "seen"),
    [
        ({}, {"W-1", "W-2", "W-3", "W-9"}),
        ({"site": "f2"}, {"W-9"}),
        ({"gate": "out-1"}, {"W-1"}),
        ({"direction": "out"}, {"W-1"}),
        ({"result": "denied"}, {"W-3"}),
        ({"reason": "not_allowed"}, {"W-3"}),
        ({"credential": "badge"}, set()),
        ({"subject": "W-2"}, {"W-2"}),
        ({"from": "2026-03-02T08:04", "to": "2026-03-02T08:30"}, {"W-2", "W-3"}),
        ({"direction": "sideways"}, {"W-1", "W-2", "W-3", "W-9"}),  # not a choice: ignored
        ({"cert_type": "vaccination"}, {"W-2"}),
        ({"cert_country": "kr"}, {"W-9"}),  # read as KR
        ({"cert_type": "test", "cert_country": "VN"}, set()),
        ({"cert_type": "vaccine", "cert_country": "Việt"}, {"W-1", "W-2", "W-3", "W-9"}),
    ],
)
def test_event_filters_come_from_the_url(
    dash: Dashboard, query: dict[str, str], seen: set[str]
) -> None:
    with client_for(dash, "officer") as client:
        page = client.get("/events", params=query)
        shown = set(re.findall(r'href="/people/(W-\d)"', page.text))
        assert shown == seen
        exported = csv.DictReader(io.StringIO(client.get("/events.csv", params=query).text[1:]))
        assert {row["subject"] for row in exported} == seen


@pytest.mark.parametrize("role", ["viewer", "officer", "admin"])
def test_every_role_sees_and_filters_health_certificates_names_only_beyond_viewers(
    dash: Dashboard, role: str
) -> None:
    """Type and country are no one's name: viewers see them, filter on them and count
    them on site; the names stay with officers, and so does the export."""
    officer = role != "viewer"
    with client_for(dash, role) as client:
        page = client.get("/events", params={"cert_type": "vaccination", "cert_country": "vn"})
        assert page.text.count("data-id=") == 1
        assert 'data-cert="vaccination/VN">tiêm chủng · VN</span>' in page.text
        assert '<option value="vaccination" selected>' in page.text  # the view is a bookmark
        assert 'name="cert_country" value="VN"' in page.text
        assert ("Đặng Thị Bình" in page.text) is officer
        english = client.get("/events?cert_country=KR", headers={"Accept-Language": "en"})
        assert "<th>health certificate</th>" in english.text
        assert 'data-cert="test/KR">test · KR</span>' in english.text
        assert english.text.count("data-id=") == 1
        assert ("Lê Văn C" in english.text) is officer
        onsite = client.get("/onsite").text
        for site, badge in (("f1", "tiêm chủng · VN"), ("f2", "xét nghiệm · KR")):
            assert re.search(rf"· {site}\s*<ul class=\"certs\"[^>]*>\s*<li><span[^>]*>{badge}"
                             r"</span>\s*<b>1</b></li>", onsite), site  # fmt: skip
        assert ("W-2" in onsite) is officer
        exported = client.get("/events.csv", params={"cert_type": "test"})
        if not officer:
            assert exported.status_code == 403
            return
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [(r["subject"], r["cert_type"], r["cert_country"]) for r in rows] == [
        ("W-9", "test", "KR")
    ]
    header = exported.text.splitlines()[0]
    assert header.endswith("subject,name,cert_type,cert_country,latency_ms")


def test_older_events_page_by_cursor(dash: Dashboard) -> None:
    dash.settings = type(dash.settings)(**{**dash.settings.__dict__, "page_size": 2})
    with client_for(dash, "officer") as client:
        first = client.get("/events")
        assert re.findall(r'href="/people/(W-\d)"', first.text) == ["W-1", "W-9"]
        older = re.search(r'hx-get="/events/rows\?([^"]+)"', first.text)
        assert older
        rows = client.get(f"/events/rows?{older.group(1).replace('&amp;', '&')}")
        assert re.findall(r'href="/people/(W-\d)"', rows.text) == ["W-3", "W-2"]
        last = re.search(r'hx-get="/events/rows\?([^"]+)"', rows.text)
        assert last
        end = client.get(f"/events/rows?{last.group(1).replace('&amp;', '&')}")
        assert re.findall(r'href="/people/(W-\d)"', end.text) == ["W-1"]
        assert "hx-get" not in end.text


# ---- people, contacts, exports: found and audited ---------------------------------------


def test_search_without_diacritics_finds_vietnamese_names_and_is_audited(dash: Dashboard) -> None:
    with client_for(dash, "officer") as client:
        found = client.get("/people", params={"q": "nguyen van an"})
        assert "Nguyễn Văn An" in found.text
        assert "Đặng" not in found.text
        assert "Đặng Thị Bình" in client.get("/people", params={"q": "DANG thi"}).text
        assert "Không tìm thấy ai." in client.get("/people", params={"q": "tran"}).text
        person = client.get("/people/W-1", params={"from": "2026-03-02", "to": "2026-03-03"})
        assert "Nguyễn Văn An" in person.text
        assert "02/03/2026 08:00:00" in person.text  # the stay, in Vietnamese style, UTC+7
        assert "02/03/2026 16:00:00" in person.text
    actions = audit_actions(dash)
    assert ("officer", "person_search", "q='nguyen van an' (1 found)") in actions
    assert any(row[1] == "person" and "subject='W-1'" in row[2] for row in actions)


def test_contacts_report_and_exports_are_audited(dash: Dashboard) -> None:
    with client_for(dash, "officer") as client:
        query = {"subject": "W-1", "from": "2026-03-02T00:00", "to": "2026-03-03T00:00"}
        page = client.get("/contacts", params=query)
        assert "Đặng Thị Bình" in page.text
        exported = client.get("/contacts.csv", params=query)
        assert exported.headers["content-type"] == "text/csv; charset=utf-8"
        assert exported.headers["content-disposition"] == 'attachment; filename="contacts-W-1.csv"'
    actions = [row[1:] for row in audit_actions(dash)]
    assert ("contacts", "subject='W-1' from=1772384400000 to=1772470800000") in actions
    assert any(action == "export" and detail.startswith("/contacts.csv?subject=W-1")
               for action, detail in actions)  # fmt: skip


def test_csv_is_utf8_with_bom_and_formulas_are_neutralised(dash: Dashboard) -> None:
    with client_for(dash, "officer") as client:
        body = client.get("/events.csv").content
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    names = {row["subject"]: row["name"] for row in rows}
    assert names["W-1"] == "Nguyễn Văn An"
    assert names["W-3"] == '\'=HYPERLINK("x")'
    assert rows[0]["ts_ms"] == "2026-03-02T16:00:00.000+07:00"


# ---- language and time ---------------------------------------------------------------------


def test_language_from_the_browser_and_switchable(dash: Dashboard) -> None:
    with client_for(dash, "officer") as client:
        english = client.get("/events", headers={"Accept-Language": "en-GB,en;q=0.9,vi;q=0.5"})
        assert "<th>result</th>" in english.text
        assert "2026-03-02 16:00:00" in english.text
        vietnamese = client.get("/events", headers={"Accept-Language": "vi,en;q=0.5"})
        assert "<th>kết quả</th>" in vietnamese.text
        assert "02/03/2026 16:00:00" in vietnamese.text
        switched = client.get("/lang/en?next=/events", follow_redirects=False)
        assert switched.headers["location"] == "/events"
        assert "<th>result</th>" in client.get("/events", headers={"Accept-Language": "vi"}).text


# ---- gates and gaps -------------------------------------------------------------------------


def test_gates_and_gaps(dash: Dashboard) -> None:
    with client_for(dash, "viewer") as client:
        gates = client.get("/gates")
        assert gates.text.count('class="gate ') == 3
        assert 'data-gate="f1/in-1" data-state="unknown"' in gates.text
        gaps = client.get("/gaps")
        assert re.search(r"<td[^>]*>in-1</td>\s*<td[^>]*>3</td>\s*<td[^>]*>3</td>", gaps.text)


def test_a_retired_gate_leaves_the_gates_page_and_the_commands_its_events_stay(
    dash: Dashboard, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    key, _ = create_signing_key(tmp_path, "centre", "EdDSA")
    dash.commands = CommandSender.from_key_file(
        BrokerSettings("127.0.0.1", mosquitto.port), "qrgate", key, "centre"
    )
    retire = classify("qrgate", "qrgate/f1/in-1/status", b"", 0)  # its status cleared
    with dash.pool.store() as store:
        store.write([retire])
    with client_for(dash, "admin") as client:
        gates = client.get("/gates").text
        assert gates.count('class="gate ') == 2
        assert 'data-gate="f1/in-1"' not in gates
        commands = client.get("/commands").text
        assert 'value="out-1"' in commands
        assert 'value="in-1"' not in commands
        assert re.search(r"<td[^>]*>in-1</td>", client.get("/gaps").text)


def gate_card(html: str, where: str) -> str:
    """The HTML of one gate's card on the Gates page."""
    (found,) = [part for part in html.split("<article")[1:] if f'data-gate="{where}"' in part]
    return found


def test_gates_say_whether_their_events_are_authenticated(dash: Dashboard, tmp_path: Path) -> None:
    """f1/in-1 enrolled after its first events, then a signed one; f3/new-1 enrolled and
    never heard from; f1/out-1 not enrolled: stored, then (--enrolled-only) set aside.
    Every reader gets the words; admins the key ids, and how to enroll one."""
    signer = EventSigner.load_or_create(tmp_path / "gate-key.pem")
    key = EnrolledKey.make("f1", "in-1", public_text(signer.public), 0)
    signed = {**gate_event(5, "2026-03-02T03:00", subject="W-5"), "kid": signer.kid}
    kept = classify("qrgate", topic(signed), signer.sign(payload(signed)), 0, Enrollment.of([key]))
    assert isinstance(kept, EventRecord)
    assert kept.authenticated
    with dash.pool.store() as store:
        store.enroll(key)
        store.enroll(EnrolledKey.make("f3", "new-1", public_text(signer.public), 0))
        store.write([kept])
    with client_for(dash, "viewer") as client:
        page = client.get("/gates").text
        enrolled = gate_card(page, "f1/in-1")
        assert 'data-trust="verified"' in enrolled
        assert "Đã xác thực" in enrolled
        assert "Sự kiện lưu trước đó, chưa xác thực: 3." in enrolled
        assert 'data-trust="verified"' in gate_card(page, "f3/new-1")
        stored = gate_card(page, "f1/out-1")
        assert 'data-trust="not_enrolled"' in stored
        assert "Chưa xác thực" in stored
        assert signer.kid not in page
        assert "qrgate gates enroll" not in page
    with client_for(dash, "admin") as client:
        english = {"Accept-Language": "en"}
        page = client.get("/gates", headers=english).text
        assert f"<code>{signer.kid}</code>" in gate_card(page, "f1/in-1")
        assert "Authenticated</b>: its events carry the signature" in gate_card(page, "f1/in-1")
        out = gate_card(page, "f1/out-1")
        assert "Not authenticated</b>: no key enrolled: its events are stored" in out
        assert "<code>qrgate gates enroll f1/out-1 KEY</code>" in out
        with dash.pool.store() as store:
            store.note_enrolled_only(True)
        aside = gate_card(client.get("/gates", headers=english).text, "f1/out-1")
        assert 'data-trust="set_aside"' in aside
        assert "Events set aside</b>: no key enrolled, and the monitor keeps only" in aside
        assert "Events stored earlier, not authenticated: 1." in aside
        assert 'data-trust="verified"' in gate_card(client.get("/gates").text, "f1/in-1")


# ---- accounts -------------------------------------------------------------------------------


def test_admin_adds_and_removes_accounts(dash: Dashboard) -> None:
    with client_for(dash, "admin") as client:
        token = csrf_of(client.get("/accounts").text)
        short = client.post(
            "/accounts", data={"csrf": token, "name": "x", "role": "viewer", "password": "short"}
        )
        assert short.status_code == 400
        assert "at least 10 characters" in short.text
        bad_role = {"csrf": token, "name": "x", "role": "root", "password": "long enough pw"}
        assert client.post("/accounts", data=bad_role).status_code == 400
        added = {"csrf": token, "name": "hạnh", "role": "officer", "password": "long enough pw"}
        assert client.post("/accounts", data=added, follow_redirects=False).status_code == 303
        removed = client.post("/accounts/remove", data={"csrf": token, "name": "viewer"})
        assert removed.status_code == 200
        assert (
            client.post("/accounts/remove", data={"csrf": token, "name": "admin"}).status_code
            == 400
        )
    with dash.pool.store() as store:
        assert {user.name: user.role for user in store.users()} == {
            "admin": "admin", "hạnh": "officer", "officer": "officer",
        }  # fmt: skip
    with client_for(dash) as client:
        log_in(client, "hạnh", "long enough pw")


# ---- commands ---------------------------------------------------------------------------------


class ReplyingGate:
    """The gate's own command intake (mqtt.commands) behind a private broker."""

    def __init__(self, broker: Mosquitto, jwks: Path, folder: Path) -> None:
        topics = GateTopics("qrgate", "f1", "in-1")
        self.ran: list[str] = []
        handlers = dict.fromkeys(("lockdown", "normal", "open", "emergency"), self._handler)
        self.intake = CommandIntake(
            topics, load_command_keys(jwks), handlers, ReplayGuard(folder / "replay.db")
        )
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe([("qrgate/f1/in-1/cmd/+", 1), ("qrgate/f1/cmd/+", 1)])
        self.client.loop_start()
        assert subscribed.wait(5)

    def _handler(self, command: object) -> str:
        self.ran.append(getattr(command, "name"))  # noqa: B009
        return "done"

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        reply = self.intake.handle(message.topic, message.payload, retained=message.retain)
        self.client.publish("qrgate/f1/in-1/reply", reply.to_json(), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_admin_command_is_confirmed_signed_sent_answered_and_audited(
    dash: Dashboard, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    (tmp_path / "keys").mkdir()
    key, jwks = create_signing_key(tmp_path / "keys", "centre", "EdDSA")
    dash.commands = CommandSender.from_key_file(
        BrokerSettings("127.0.0.1", mosquitto.port), "qrgate", key, "centre"
    )
    gate = ReplyingGate(mosquitto, jwks, tmp_path)
    try:
        with client_for(dash, "admin") as client:
            form = client.get("/commands")
            token = csrf_of(form.text)
            asked = {"csrf": token, "command": "lockdown", "site": "f1", "gate": "in-1"}
            confirm = client.post("/commands/confirm", data=asked)
            assert confirm.status_code == 200
            assert "Gửi lệnh này?" in confirm.text
            assert gate.ran == []  # nothing is sent before the confirmation
            held = re.search(r'name="token" value="([^"]+)"', confirm.text)
            assert held
            sent = client.post("/commands/send", data={"csrf": token, "token": held.group(1)})
            assert sent.status_code == 200
            assert re.search(r"<td>in-1</td><td>ok</td><td>done</td>", sent.text)
            again = client.post("/commands/send", data={"csrf": token, "token": held.group(1)})
            assert "Xác nhận đã hết hạn" in again.text  # one confirmation, one command
            bad = client.post("/commands/confirm", data={**asked, "gate": "in/1"})
            assert bad.status_code == 400
    finally:
        gate.close()
    assert gate.ran == ["lockdown"]
    commands = [row for row in audit_actions(dash) if row[1] == "command"]
    assert len(commands) == 1
    assert commands[0][2].startswith("lockdown f1/in-1")
    assert commands[0][2].endswith("-> f1/in-1: ok")


def test_officers_ask_the_gates_for_what_is_missing_from_the_gaps_page(
    dash: Dashboard, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A gate that kept its acknowledged events is asked, from the Gaps page, for seq 3
    (missing from the store): it sends it again; the answer is shown and audited."""
    key, keys = centre_key(tmp_path)
    gate = make_gate(tmp_path / "gates", "f1", "in-1", mosquitto.port, keys, heartbeat_s=5.0)
    gate.publisher.start()
    try:
        assert connected([gate])
        for _ in range(4):
            gate.scan(random.Random(3))
        assert drained([gate])
        with client_for(dash, "officer") as client:
            page = client.get("/gaps")
            assert 'id="resend"' not in page.text  # no key: no button, and no asking
            assert client.post("/gaps/resend", data={"csrf": csrf_of(page.text)}).status_code == 403
        dash.commands = CommandSender.from_key_file(
            BrokerSettings("127.0.0.1", mosquitto.port), "qrgate", key, "centre-1"
        )
        with client_for(dash, "viewer") as client:
            page = client.get("/gaps")
            assert 'id="resend"' not in page.text
            refused = client.post("/gaps/resend", data={"csrf": csrf_of(page.text)})
            assert refused.status_code == 403
        with client_for(dash, "officer") as client:
            page = client.get("/gaps")
            assert 'id="resend"' in page.text
            asked = client.post("/gaps/resend", data={"csrf": csrf_of(page.text), "site": "f1"})
            assert asked.status_code == 200
            assert re.search(r"<td>in-1</td><td>1</td><td>ok</td><td>resending 1 kept", asked.text)
        assert wait_until(lambda: gate.outbox.to_resend(10) == [])  # sent, and accepted
    finally:
        gate.close()
    (row,) = [row for row in audit_actions(dash) if row[1] == "resend"]
    assert row[0] == "officer"
    assert row[2] == "site=f1 -> f1/in-1: ok"


def test_commands_are_off_without_the_key(dash: Dashboard) -> None:
    with client_for(dash, "admin") as client:
        page = client.get("/commands")
        assert "Lệnh đang tắt" in page.text
        assert 'action="/commands/confirm"' not in page.text


# ---- security headers --------------------------------------------------------------------------


def test_pages_forbid_foreign_scripts_and_caching(dash: Dashboard) -> None:
    with client_for(dash, "officer") as client:
        response = client.get("/events")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_accounts_live_in_the_store_beside_the_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    seed(url)
    store = DashboardStore(url)
    assert [user.role for user in store.users()] == ["admin", "officer", "viewer"]
    assert store.user("admin") is not None
    assert store.user("admin").password.startswith("scrypt$1024$8$1$")  # type: ignore[union-attr]
    store.close()
