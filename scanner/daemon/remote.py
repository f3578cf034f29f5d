"""The gate's side of the centre's signed commands (docs/mqtt.md, "Commands").

The mqtt package verifies each command (signature, target, expiry, replay) and hands it
here as a `Command`; these handlers check the arguments, change the gate and return the
reply's detail. A handler refuses bad arguments with `CommandRejectedError`, which the
reply reports as `rejected: <reason>` with the gate unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.patterns import MODES, Mode
from mqtt.errors import CommandRejectedError
from mqtt.outbox import Outbox
from mqtt.resend import resend_handler
from scanner.config import file_problem
from scanner.daemon.gate import Gate
from scanner.errors import ConfigError
from scanner.state.store import ALLOW_KINDS, AllowEntry, AllowKind, Store, StoreError

if TYPE_CHECKING:  # the intake's module loads only on gates that take commands
    from mqtt.commands import Command, Handler

log = logging.getLogger(__name__)

PUSHED_JWKS_NAME = "pushed-jwks.json"


def pushed_jwks_path(store_path: Path) -> Path:
    """Where pass keys pushed by a `keys` command live: beside the store, in the state
    directory, since the configuration directory is read-only to the service."""
    return store_path.parent / PUSHED_JWKS_NAME


class Remote:
    """Command handlers acting on one gate, its store, its pass keys and its outbox."""

    def __init__(self, gate: Gate, store: Store, pushed_jwks: Path, outbox: Outbox) -> None:
        self._gate = gate
        self._store = store
        self._pushed_jwks = pushed_jwks
        self._outbox = outbox

    def handlers(self) -> Mapping[str, Handler]:
        modes: dict[str, Handler] = {mode: self._mode_handler(mode) for mode in MODES}
        return {
            **modes,
            "open": self.open,
            "allowlist": self.allowlist,
            "revoke": self.revoke,
            "keys": self.keys,
            "trustlist": self.trust_list,
            "resend": resend_handler(self._outbox),
        }

    def open(self, command: Command) -> str:
        seconds = command.args.get("seconds")
        if seconds is not None and not (is_number(seconds) and 0 < seconds <= 3600):
            raise CommandRejectedError("seconds must be a number from 0 to 3600")
        return self._gate.open(seconds, by=f"command {command.id}")

    def _mode_handler(self, mode: Mode) -> Callable[[Command], str]:
        def change(command: Command) -> str:
            return self._gate.set_mode(mode, by=f"command {command.id}")

        return change

    def allowlist(self, command: Command) -> str:
        args = command.args
        try:
            if args.get("entries") is not None:  # validated arguments carry entries: None
                return self._replace_allowlist(args)
            return self._edit_allowlist(args)
        except StoreError as error:
            raise CommandRejectedError(str(error)) from None

    def _replace_allowlist(self, args: dict[str, Any]) -> str:
        version = args.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise CommandRejectedError("a snapshot needs a positive integer version")
        entries = [allow_entry(item) for item in as_list(args, "entries")]
        if not self._store.allowlist.replace_all(entries, version):
            return f"snapshot {version} ignored: version {self._store.allowlist.version} is newer"
        return f"allowlist replaced by snapshot {version} ({len(entries)} entries)"

    def _edit_allowlist(self, args: dict[str, Any]) -> str:
        if not {"add", "remove"} & args.keys():
            raise CommandRejectedError("expected entries (a snapshot) or add/remove")
        added = [allow_entry(item) for item in as_list(args, "add")]
        removed = [subject_of(item) for item in as_list(args, "remove")]
        self._store.allowlist.add_all(added)
        gone = sum(self._store.allowlist.remove(subject) for subject in removed)
        return f"allowlist: {len(added)} added or updated, {gone} removed"

    def revoke(self, command: Command) -> str:
        args = command.args
        jtis = [text_item(item, "jti") for item in as_list(args, "jti")]
        subjects = [text_item(item, "subject") for item in as_list(args, "subjects")]
        certificates = [dcc_hash(item) for item in as_list(args, "dcc")]
        until = args.get("until")
        if until is not None and not is_number(until):
            raise CommandRejectedError("until must be epoch seconds")
        if not jtis and not subjects and not certificates:
            raise CommandRejectedError("nothing to revoke: give jti, subjects and/or dcc")
        for jti in jtis:
            self._store.revocations.revoke(jti=jti, until=until)
        for subject in subjects:
            self._store.revocations.revoke(subject=subject, until=until)
        self._store.revocations.revoke_dcc(certificates, until)
        revoked = f"revoked {len(jtis)} passes and {len(subjects)} subjects"
        return revoked + (f" and {len(certificates)} health certificates" if certificates else "")

    def keys(self, command: Command) -> str:
        jwks = command.args.get("jwks")
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise CommandRejectedError('expected {"jwks": {"keys": [...]}}')
        staged = stage_file(self._pushed_jwks, json.dumps(jwks, indent=2).encode())
        try:
            self._gate.policy.use_keys(staged)
        except ConfigError as error:
            staged.unlink(missing_ok=True)
            raise CommandRejectedError(error.problems[0].message) from None
        staged.replace(self._pushed_jwks)
        self._gate.policy.use_keys(self._pushed_jwks)
        log.info("pass keys replaced by command %s: %s", command.id, self._pushed_jwks)
        return f"pass keys replaced ({len(jwks['keys'])} keys)"

    def trust_list(self, command: Command) -> str:
        """A new health-certificate trust list, kept in the state directory; it replaces
        `[dcc] trust_list` from now on and after restarts."""
        # Health certificates' modules load only on gates that use them.
        from scanner.credentials.dcc.trustlist import PUSHED_NAME, signers_from_json

        document = command.args.get("trust_list")
        try:
            usable = list(signers_from_json(document))
        except ValueError as error:
            raise CommandRejectedError(str(error)) from None
        if not usable:
            raise CommandRejectedError("no usable signer certificate")
        if self._gate.policy.trust_list is None:
            raise CommandRejectedError('this gate does not accept "dcc"')
        target = self._pushed_jwks.with_name(PUSHED_NAME)  # the same state directory
        stage_file(target, json.dumps(document).encode()).replace(target)
        self._gate.policy.use_trust_list(target)
        trust = self._gate.policy.trust_list
        count = len(trust) if trust is not None else 0
        log.info("health-certificate trust list replaced by command %s: %s", command.id, target)
        return f"trust list replaced ({count} signers)"


def dcc_hash(item: object) -> str:
    """A revocation hash from a command, in the stored form."""
    from scanner.credentials.dcc.revocation import normalise_hash

    hashed = normalise_hash(item) if isinstance(item, str) else None
    if hashed is None:
        raise CommandRejectedError("each dcc hash must be 16 bytes in base64, or hex")
    return hashed


def load_pushed_keys(gate: Gate, pushed: Path) -> None:
    """At start: keys pushed earlier replace passes.jwks until removed. A state folder
    the system will not look into has none (the store's fault says why)."""
    if file_problem(pushed) is not None:
        return
    try:
        gate.policy.use_keys(pushed)
    except ConfigError as error:
        log.error("ignoring pushed pass keys %s: %s", pushed, error.problems[0].message)
        return
    log.info("pass keys from %s (pushed by a keys command) replace passes.jwks", pushed)


def stage_file(target: Path, content: bytes) -> Path:
    """Write `content` durably to a temporary file beside `target`, for an atomic rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(handle, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    return Path(name)


def allow_entry(item: object) -> AllowEntry:
    """An allowlist entry from a command: a badge id, or {subject, name, kind(s),
    birth_date, valid_*}."""
    if isinstance(item, str):
        return AllowEntry(item)
    if not isinstance(item, dict):
        raise CommandRejectedError("an allowlist entry is a badge id or an object")
    kinds = entry_kinds(item)
    for key in ("valid_from", "valid_until"):
        if item.get(key) is not None and not is_number(item[key]):
            raise CommandRejectedError(f"{key} must be epoch seconds")
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise CommandRejectedError("name must be text")
    return AllowEntry(
        subject_of(item),
        name,
        kinds,
        item.get("valid_from"),
        item.get("valid_until"),
        birth_date(item.get("birth_date")),
    )


def birth_date(value: object) -> date | None:
    """An entry's birth date, YYYY-MM-DD (the store checks the year)."""
    if value is None:
        return None
    try:
        if isinstance(value, str) and len(value) == len("YYYY-MM-DD"):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise CommandRejectedError("birth_date must be a date, YYYY-MM-DD")


def entry_kinds(item: dict[str, Any]) -> frozenset[AllowKind]:
    """`kinds` when given, else `[kind]`, else every kind."""
    given = item.get("kinds") or ([item["kind"]] if item.get("kind") else list(ALLOW_KINDS))
    if not isinstance(given, list) or not given or not set(given) <= ALLOW_KINDS:
        raise CommandRejectedError(f"kind must be one of {', '.join(sorted(ALLOW_KINDS))}")
    return frozenset(given)


def subject_of(item: object) -> str:
    subject = item.get("subject") if isinstance(item, dict) else item
    return text_item(subject, "subject")


def text_item(item: object, what: str) -> str:
    if not isinstance(item, str) or not item:
        raise CommandRejectedError(f"each {what} must be non-empty text")
    return item


def as_list(args: dict[str, Any], key: str) -> list[Any]:
    value = args.get(key, [])
    if not isinstance(value, list):
        raise CommandRejectedError(f"{key} must be a list")
    return value


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
