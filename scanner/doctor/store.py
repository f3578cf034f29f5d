"""Doctor's checks of the gate's database: the store (schema, soundness, who may write it)
and the outbox (how much waits for the broker), read without creating or changing a file.

A store that cannot be used gets the same finding and fix as the gate's fault state
(`scanner.daemon.storefault`): not a database, damaged (SQLite's `quick_check`), or on a
filesystem mounted read-only.
"""

from __future__ import annotations

import grp
import os
import pwd
import sqlite3
import stat
import time
from contextlib import closing
from pathlib import Path

from mqtt.commands import REPLAY_MIGRATIONS
from mqtt.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from mqtt.outbox import Depth, read_depth
from scanner.config import Config
from scanner.daemon.storefault import (
    SQLITE_CORRUPT,
    SQLITE_NOTADB,
    CorruptionError,
    StoreProblem,
    diagnose,
    read_only_filesystem,
    sqlite_code,
    truncation,
)
from scanner.doctor.finding import Finding, counted, failure, passed, warning
from scanner.mqttconfig import outbox_limits
from scanner.state.store import SCHEMA as STORE_SCHEMA
from scanner.state.store import open_snapshot

# The schema version this qrgate writes, per component sharing the database file.
SCHEMAS = {
    "store": STORE_SCHEMA,
    "outbox": len(OUTBOX_MIGRATIONS),
    "commands": len(REPLAY_MIGRATIONS),
}
# SQLite's files next to the database, while a connection has it open or after a crash.
SIDE_FILES = ("-wal", "-shm", "-journal")
# The outbox is nearly full from this share of its limits: then new scans are denied.
NEARLY_FULL = 0.9
# Seconds the oldest event may wait before it is worth a word: the broker is not taking them.
STALE_S = 300.0
READ_FIX = (
    "run doctor as root (sudo qrgate doctor), and check that store.path is the gate's database"
)


def check_store(config: Config) -> Finding:
    path = config.store.path
    try:
        if not path.exists():
            return missing_store(path)
        with closing(open_snapshot(path)) as connection:
            versions = schema_versions(connection)
            damage = integrity_problem(path, connection)
        cannot_write = write_problem(path)
    except (OSError, sqlite3.Error) as error:  # e.g. the gate's folder is closed to this user
        if sqlite_code(error) in (SQLITE_NOTADB, SQLITE_CORRUPT):
            return problem_finding(diagnose(path, error))
        return failure(f"{path}: cannot read it ({error})", READ_FIX)
    if damage is not None:
        return problem_finding(diagnose(path, damage))
    if read_only_filesystem(path.parent):
        return problem_finding(diagnose(path, OSError(f"{path.parent} is read-only")))
    return store_finding(path, versions, cannot_write)


def integrity_problem(path: Path, connection: sqlite3.Connection) -> CorruptionError | None:
    """A truncated file, or SQLite's `quick_check` (every page and index, read only): its
    first finding, or None for a sound file. Bit rot on an SD card shows here before the
    gate trips on it."""
    truncated = truncation(path)
    if truncated is not None:
        return truncated
    try:
        rows = connection.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.DatabaseError as error:  # so damaged that the check cannot run
        return CorruptionError(str(error))
    finding = str(rows[0][0]) if rows else "no answer"
    return None if finding == "ok" else CorruptionError(finding.splitlines()[-1])


def problem_finding(problem: StoreProblem) -> Finding:
    return failure(problem.finding, problem.fix)


def missing_store(path: Path) -> Finding:
    if path.parent.is_dir():
        return warning(f"{path} does not exist yet: the gate creates it when it first starts")
    return failure(
        f"{path}: its folder {path.parent} does not exist",
        "run the installer (it makes /var/lib/qrgate), or point store.path at the gate's "
        "state folder",
    )


def schema_versions(connection: sqlite3.Connection) -> dict[str, int]:
    """Each component's schema version in the file (none in an empty database)."""
    if not has_table(connection, "schema_version"):
        return {}
    rows = connection.execute("SELECT component, version FROM schema_version").fetchall()
    return {str(component): int(version) for component, version in rows}


def has_table(connection: sqlite3.Connection, name: str) -> bool:
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return found is not None


def store_finding(
    path: Path, versions: dict[str, int], cannot_write: tuple[str, str] | None
) -> Finding:
    """Judge the schema versions found and whether the service can write the store."""
    newer = [name for name, version in versions.items() if version > SCHEMAS.get(name, version)]
    if newer:
        found = ", ".join(
            f"{name} {versions[name]} (this qrgate: {SCHEMAS[name]})" for name in newer
        )
        return failure(
            f"{path} was written by a newer qrgate: schema {found}", "update qrgate on this gate"
        )
    if cannot_write:
        return failure(*cannot_write)
    shown = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
    older = [name for name, version in versions.items() if version < SCHEMAS.get(name, version)]
    if older:
        return warning(
            f"{path}: schema {shown}; {', '.join(older)} will be upgraded when the gate starts"
        )
    return passed(f"{path}: schema {shown or 'empty'}, current; {writer_note(path)}")


def write_problem(path: Path) -> tuple[str, str] | None:
    """Why the gate's service could not write the store (the problem and its fix), or None.

    The service user is taken to be the owner of the store's folder: systemd's
    StateDirectory= hands the folder to the service's User=. The folder must let it create
    files (SQLite's -wal and -shm), and the database and its side files must be its to write.
    """
    folder = path.parent
    owner = folder.stat().st_uid
    groups = groups_of(owner)
    for item in (folder, path, *(Path(f"{path}{suffix}") for suffix in SIDE_FILES)):
        try:
            status = item.stat()
        except FileNotFoundError:
            continue
        if not may_write(status, owner, groups):
            return (
                f"{item} is not writable by {user_name(owner)}, who runs the gate "
                f"(it belongs to {user_name(status.st_uid)}, mode {stat.filemode(status.st_mode)})",
                f"sudo chown -R {user_name(owner)}:{group_name(owner)} {folder}",
            )
    return None


def may_write(status: os.stat_result, uid: int, groups: set[int]) -> bool:
    """Whether user `uid` (in `groups`) may write a file, or create files in a folder."""
    if uid == 0:
        return True
    if status.st_uid == uid:
        bits = status.st_mode >> 6
    elif status.st_gid in groups:
        bits = status.st_mode >> 3
    else:
        bits = status.st_mode
    wanted = 0o3 if stat.S_ISDIR(status.st_mode) else 0o2  # a folder needs write and search
    return bits & wanted == wanted


def writer_note(path: Path) -> str:
    return f"writable by {user_name(path.parent.stat().st_uid)}"


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(uid: int) -> str:
    try:
        return grp.getgrgid(pwd.getpwuid(uid).pw_gid).gr_name
    except KeyError:
        return str(uid)


def groups_of(uid: int) -> set[int]:
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return set()
    return set(os.getgrouplist(user.pw_name, user.pw_gid))


def check_outbox(config: Config) -> Finding:
    path = config.store.path
    never = "empty: the gate has not recorded an event here yet"
    try:
        if not path.exists():
            return passed(never)
        with closing(open_snapshot(path)) as connection:
            if not has_table(connection, "outbox_depth"):
                return passed(never)
            depth = read_depth(connection, outbox_limits(config), time.time())
    except (OSError, sqlite3.Error) as error:
        return failure(f"cannot read the outbox in {path} ({error})", READ_FIX)
    return outbox_finding(depth)


def outbox_finding(depth: Depth) -> Finding:
    """Judge how much waits: nearly full fails; parked or long-waiting events warn."""
    if depth.rows == 0:
        return passed("empty: every event has reached the broker")
    text = f"{counted(depth.rows, 'event')} waiting ({depth.fill:.1%} of the limit)"
    if depth.oldest_age_s is not None:
        text += f", the oldest for {duration(depth.oldest_age_s)}"
    if depth.parked:
        text += f", {depth.parked} parked"
    if depth.fill >= NEARLY_FULL:
        return failure(
            f"{text}: once full, new scans are denied",
            "get the events to the broker (see the broker line); qrgate outbox status "
            "follows the depth",
        )
    if depth.parked:
        return warning(
            text,
            "the broker refused them: qrgate outbox parked says why; fix the broker's rules, "
            "then qrgate outbox retry",
        )
    if depth.oldest_age_s is not None and depth.oldest_age_s > STALE_S:
        return warning(
            text, "events are not leaving: is the gate running, and does the broker line pass?"
        )
    return passed(text)


def duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3.5 h`, `2.1 days`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
