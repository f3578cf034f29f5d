"""The local store: a real SQLite file shared with the outbox, migrations, allowlist
(and HR's CSV), revocations, mode and passages."""

from __future__ import annotations

import sqlite3
import threading
from datetime import date, datetime
from pathlib import Path

import pytest

from mqtt.outbox import Outbox
from scanner.state.store import MIGRATIONS, SCHEMA, AllowEntry, Store, StoreError
from tests.support import together

NOW = 1_800_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "qrgate.db"


@pytest.fixture
def store(db_path: Path) -> Store:
    with Store.open(db_path) as opened:
        yield opened


def test_shares_the_file_with_other_components(db_path: Path) -> None:
    # The outbox may have created the file and its own tables first.
    with sqlite3.connect(db_path) as other:
        other.execute(
            "CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        other.execute("INSERT INTO schema_version VALUES ('outbox', 3)")
    with Store.open(db_path) as store:
        assert store.schema_version() == SCHEMA
    with sqlite3.connect(db_path) as check:
        versions = dict(check.execute("SELECT component, version FROM schema_version"))
        assert versions == {"outbox": 3, "store": SCHEMA}
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrating_twice_changes_nothing(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.allowlist.add(AllowEntry("W-1"))
    with Store.open(db_path) as store:
        assert store.allowlist.get("W-1") == AllowEntry("W-1")


def test_an_allowlist_of_schema_2_gains_birth_dates_and_keeps_its_entries(db_path: Path) -> None:
    with sqlite3.connect(db_path) as old:
        old.execute(
            "CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        for statement in (*MIGRATIONS[0], *MIGRATIONS[1]):
            old.execute(statement)
        old.execute("INSERT INTO schema_version VALUES ('store', 2)")
        old.execute("INSERT INTO allowlist VALUES ('W-1', 'An', 'badge,cccd', NULL, NULL)")
    with Store.open(db_path) as store:
        assert store.schema_version() == SCHEMA == 3
        assert store.allowlist.get("W-1") == AllowEntry("W-1", "An", frozenset({"badge", "cccd"}))
        store.allowlist.add(AllowEntry("W-2", birth_date=date(1990, 1, 1)))
        assert store.allowlist.entries()[1].birth_date == date(1990, 1, 1)


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    Store.open(db_path).close()
    with sqlite3.connect(db_path) as other:
        other.execute("UPDATE schema_version SET version = 99 WHERE component = 'store'")
    with pytest.raises(StoreError, match="newer"):
        Store.open(db_path)


def test_readonly_store_neither_creates_nor_writes(db_path: Path) -> None:
    with pytest.raises(StoreError):
        Store.open_readonly(db_path)
    assert not db_path.exists()
    with Store.open(db_path) as store:
        store.allowlist.add(AllowEntry("W-1"))
    with Store.open_readonly(db_path) as readonly:
        assert readonly.readonly
        assert readonly.allowlist.get("W-1") is not None
        with pytest.raises(StoreError, match="readonly"):
            readonly.allowlist.add(AllowEntry("W-2"))


def test_changes_from_another_connection_are_seen(store: Store, db_path: Path) -> None:
    with Store.open(db_path) as cli:
        cli.allowlist.add(AllowEntry("W-9", "Chín"))
    assert store.allowlist.get("W-9") == AllowEntry("W-9", "Chín")


def test_allowlist_is_idempotent(store: Store) -> None:
    entry = AllowEntry("W-1", "Một", frozenset({"badge"}), NOW, NOW + 10)
    store.allowlist.add(entry)
    store.allowlist.add(entry)
    assert store.allowlist.entries() == [entry]
    store.allowlist.add(AllowEntry("W-1", "Một"))
    assert store.allowlist.get("W-1") == AllowEntry("W-1", "Một")
    assert store.allowlist.remove("W-1")
    assert not store.allowlist.remove("W-1")
    assert len(store.allowlist) == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"subject": "a b"}, "subject"),
        ({"subject": "x" * 65}, "subject"),
        ({"subject": "W-1", "name": "x" * 257}, "name"),
        ({"subject": "W-1", "name": "a\nb"}, "name"),
        ({"subject": "W-1", "kinds": frozenset()}, "kinds"),
        ({"subject": "W-1", "kinds": frozenset({"pass"})}, "kinds"),
        ({"subject": "W-1", "valid_from": NOW, "valid_until": NOW}, "before"),
        ({"subject": "W-1", "valid_until": float("nan")}, "finite"),
        ({"subject": "W-1", "birth_date": "1990-01-01"}, "birth_date"),
        ({"subject": "W-1", "birth_date": datetime(1990, 1, 1)}, "birth_date"),
        ({"subject": "W-1", "birth_date": date(1899, 12, 31)}, "birth_date"),
    ],
)
def test_invalid_entries_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(StoreError, match=message):
        AllowEntry(**fields)  # type: ignore[arg-type]


def test_validity_window_bounds() -> None:
    entry = AllowEntry("W-1", valid_from=NOW, valid_until=NOW + 10)
    assert entry.window_reason(NOW - 0.001) == "not_yet_valid"
    assert entry.window_reason(NOW) is None
    assert entry.window_reason(NOW + 9.999) is None
    assert entry.window_reason(NOW + 10) == "expired"


def test_snapshots_from_the_centre_replace_atomically_and_only_forwards(store: Store) -> None:
    store.allowlist.add(AllowEntry("local"))
    assert store.allowlist.version is None
    assert store.allowlist.replace_all([AllowEntry("A"), AllowEntry("B")], version=5)
    assert [entry.subject for entry in store.allowlist.entries()] == ["A", "B"]
    assert not store.allowlist.replace_all([AllowEntry("C")], version=5)
    assert not store.allowlist.replace_all([AllowEntry("C")], version=4)
    assert store.allowlist.version == 5
    assert store.allowlist.replace_all([], version=6)
    assert len(store.allowlist) == 0


def csv_file(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "hr.csv"
    path.write_text(text, encoding=encoding)
    return path


def end_of(day: str) -> float:
    return datetime.fromisoformat(day).timestamp() + 86_400


def test_hr_csv_without_header(store: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "W-1,Nguyễn Văn An,2026-12-31\nW-2,Trần Bình,31/12/2026\nW-3\n\n")
    assert store.allowlist.import_csv(path) == 3
    assert store.allowlist.get("W-1") == AllowEntry(
        "W-1", "Nguyễn Văn An", valid_until=end_of("2026-12-31")
    )
    assert store.allowlist.get("W-2") == AllowEntry(
        "W-2", "Trần Bình", valid_until=end_of("2026-12-31")
    )
    assert store.allowlist.get("W-3") == AllowEntry("W-3")
    assert store.allowlist.import_csv(path) == 3
    assert len(store.allowlist) == 3


def test_hr_csv_from_a_spreadsheet(store: Store, tmp_path: Path) -> None:
    text = (
        "Subject;Name;Valid_From;Valid_Until;Kinds;Birth_Date\n"
        "001099012345;Lê Thị Cúc;2026-01-01;2026-06-30T17:00:00+07:00;cccd;\n"
        "W-4;;;;badge cccd;\n"
        "162979388586171100;Hồ Thị Ánh Tuyết;;;vnqr;18/01/1987\n"
        "W-5;Đặng Văn Lâm;;;;1993-08-13\n"
    )
    store.allowlist.import_csv(csv_file(tmp_path, text, encoding="utf-8-sig"))
    card = store.allowlist.get("001099012345")
    assert card is not None
    assert card.kinds == frozenset({"cccd"})
    assert card.valid_from == datetime.fromisoformat("2026-01-01").timestamp()
    assert card.valid_until == datetime.fromisoformat("2026-06-30T10:00:00+00:00").timestamp()
    assert store.allowlist.get("W-4") == AllowEntry("W-4", kinds=frozenset({"badge", "cccd"}))
    assert store.allowlist.get("162979388586171100") == AllowEntry(
        "162979388586171100",
        "Hồ Thị Ánh Tuyết",
        frozenset({"vnqr"}),
        birth_date=date(1987, 1, 18),
    )
    assert store.allowlist.get("W-5") == AllowEntry(
        "W-5", "Đặng Văn Lâm", birth_date=date(1993, 8, 13)
    )  # no kinds: every identity kind


def test_a_bad_csv_imports_nothing_and_says_where(store: Store, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, "W-1,An,2026-12-31\nbad id,x\nW-2,B,31/02/2026\nW-1,again\nW-3,a,b,c\n"
    )
    with pytest.raises(StoreError) as caught:
        store.allowlist.import_csv(path)
    message = str(caught.value)
    assert "4 problems, nothing imported" in message
    for expected in ("line 2: ", "line 3: '31/02/2026'", "line 4: W-1 is listed twice", "line 5"):
        assert expected in message
    assert len(store.allowlist) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subject,colour\nW-1,red\n", "unknown columns"),
        ("W-1,a,tomorrow\n", "not a date"),
        ("subject,birth_date\nW-1,1990-02-30\n", "not a calendar date"),
        ("subject,birth_date\nW-1,30.01.1990\n", "birth date '30.01.1990' is not a date"),
        ("subject,birth_date\nW-1,01/01/1850\n", "from 1900"),
        ("subject,kinds\nW-1,pass\n", "one or more of badge, cccd, vnqr"),
    ],
)
def test_csv_problems_are_named(store: Store, tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.allowlist.import_csv(csv_file(tmp_path, text))


def test_csv_that_is_not_text(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "hr.csv"
    path.write_bytes(b"\xff\xfe\x00W")
    with pytest.raises(StoreError, match="cannot read"):
        store.allowlist.import_csv(path)


def test_revocations_by_jti_and_subject(store: Store) -> None:
    store.revocations.revoke(jti="p-1")
    store.revocations.revoke(subject="W-2", until=NOW + 60)
    assert store.revocations.is_revoked(jti="p-1", subject="W-1", now=NOW)
    assert store.revocations.is_revoked(jti=None, subject="W-2", now=NOW + 59)
    assert not store.revocations.is_revoked(jti=None, subject="W-2", now=NOW + 60)
    assert not store.revocations.is_revoked(jti="p-2", subject="W-1", now=NOW)
    store.revocations.revoke(jti="p-1", until=NOW)  # lifted
    assert not store.revocations.is_revoked(jti="p-1", subject=None, now=NOW)
    with pytest.raises(StoreError, match="exactly one"):
        store.revocations.revoke(jti="a", subject="b")


def test_mode_survives_a_restart(db_path: Path) -> None:
    with Store.open(db_path) as store:
        assert store.get_mode() == "normal"
        store.set_mode("lockdown")
        with pytest.raises(StoreError, match="unknown gate mode"):
            store.set_mode("party")  # type: ignore[arg-type]
    with Store.open(db_path) as store:
        assert store.get_mode() == "lockdown"


def test_a_damaged_mode_fails_closed(store: Store, db_path: Path) -> None:
    with sqlite3.connect(db_path) as other:
        other.execute("INSERT INTO gate_state VALUES ('mode', 'lockdwn')")
    assert store.get_mode() == "lockdown"


def test_passages_and_pruning(store: Store) -> None:
    store.record_passage("W-1", NOW - 100)
    store.record_passage("W-2", NOW - 10)
    store.record_passage("W-1", NOW - 5)
    assert store.passages_since(NOW - 50) == {"W-1": NOW - 5, "W-2": NOW - 10}
    store.revocations.revoke(jti="old", until=NOW - 1)
    store.revocations.revoke(jti="kept")
    store.prune(NOW, passages_before=NOW - 7)
    assert store.passages_since(0) == {"W-1": NOW - 5}
    assert store.revocations.is_revoked(jti="kept", subject=None, now=NOW)


def test_threads_share_a_store(store: Store) -> None:
    def add(prefix: str) -> None:
        for index in range(50):
            store.allowlist.add(AllowEntry(f"{prefix}-{index}"))

    threads = [threading.Thread(target=add, args=(prefix,)) for prefix in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(store.allowlist) == 100


def test_a_broken_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=str(path)):
        Store.open(path)


def test_read_only_open_leaves_no_side_files(tmp_path: Path) -> None:
    """`qrgate allow list` as root beside a stopped gate must not leave root-owned files."""
    path = tmp_path / "q.db"
    with Store.open(path) as store:
        store.allowlist.add(AllowEntry("B-1"))
    before = sorted(p.name for p in tmp_path.iterdir())
    with Store.open_readonly(path) as store:
        assert [entry.subject for entry in store.allowlist.entries()] == ["B-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def open_gate_files(path: str) -> None:
    Store.open(Path(path)).close()
    Outbox(Path(path), "f1", "in-1", "in").close()


def test_processes_making_one_new_gate_store_at_once_all_open_it(tmp_path: Path) -> None:
    """The daemon's first start and a technician's `qrgate allow import` on a store not
    made yet: each opens it (switching a new file to WAL used to fail at once,
    "database is locked", when another process held it at that moment)."""
    paths = [str(tmp_path / f"new-{attempt}.db") for attempt in range(10)]
    assert together.opened_together(open_gate_files, paths) == []
