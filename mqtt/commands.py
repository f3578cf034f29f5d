"""Signed commands from the centre: verified, checked for target and freshness, never
run twice, and each answered with a reply.

A command arrives on `P/{site}/{gate}/cmd/{name}` (one gate) or `P/{site}/cmd/{name}`
(every gate of the site). Its payload is a compact JWS signed with EdDSA or ES256 by a
key of the gate's command key set (chosen by the header's `kid`), with these claims:

    cmd        the command's name: must equal the topic's
    site       the target site; `gate`: the target gate, present exactly on gate topics
    jti        a unique id: a replay is rejected (ids are remembered until expiry)
    iat, exp   issued and expiry times; exp - iat may not exceed max_lifetime_s
    args       the command's arguments (an object; checked per command below)

Retained messages are never run. Whatever happens, the gate publishes a reply whose
`outcome` is `ok`, `rejected: <reason>` (not run; the gate is unchanged) or
`failed: <reason>` (the handler could not complete it). Handlers are the gate's own,
passed in by name; an exception in one becomes a `failed` reply.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import jwt
import msgspec
from msgspec import Meta

from mqtt import db
from mqtt.errors import CommandRejectedError, MqttError, StoreError
from mqtt.events import MAX_SEQ, Name, format_ts
from mqtt.health import compact_json
from mqtt.outbox import MAX_RESEND
from mqtt.topics import GateTopics
from mqtt.validation import FINITE, explained

log = logging.getLogger(__name__)

ALGORITHMS = ("EdDSA", "ES256")
REQUIRED_CLAIMS = ["cmd", "site", "jti", "iat", "exp"]
MAX_COMMAND_BYTES = 4 * 1024 * 1024  # an allowlist snapshot of ~50,000 entries

# Patterns end in \Z, not $: msgspec searches with `re`, whose $ also matches before a
# trailing newline.
Ident = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]
TokenId = Annotated[str, Meta(min_length=1, max_length=128)]
# An EU revocation-list hash (128 bits of SHA-256): base64 as the lists carry it, or hex.
RevocationHash = Annotated[
    str, Meta(pattern=r"^([A-Za-z0-9+/_-]{22}(==)?|[0-9a-fA-F]{32}|[0-9a-fA-F]{64})\Z")
]


class CommandKeyError(MqttError):
    """The command key set cannot be used."""


# --- Arguments, one model per command ---------------------------------------------------


class Args(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A command's arguments; rules across fields are checked in `__post_init__`, whose
    ValueErrors msgspec reports as the arguments' errors. (Each model says frozen=True
    again, though msgspec inherits it, for mypy's sake.)"""


class NoArgs(Args, frozen=True):
    """lockdown (deny everyone), normal (back to normal decisions), emergency (hold open)."""


class OpenArgs(Args, frozen=True):
    """Open the gate once (one relay pulse), or hold it open for `seconds`."""

    seconds: Annotated[float, Meta(gt=0, le=3600)] | None = None


Kind = Literal["badge", "cccd", "vnqr"]
EpochSeconds = Annotated[float, FINITE]


class Entry(Args, frozen=True):
    """One allowlist entry; a bare string is a badge id. `kinds` names every credential
    kind the subject may use; `kind`, one of them (badge by default). `birth_date`, the
    holder's (YYYY-MM-DD, a day that exists), lets a badge pair with a health
    certificate."""

    subject: Ident
    kind: Kind = "badge"
    kinds: Annotated[list[Kind], Meta(min_length=1)] | None = None
    name: Name | None = None  # as events carry it: a listed name goes into scan events
    birth_date: date | None = None
    valid_from: EpochSeconds | None = None
    valid_until: EpochSeconds | None = None


def as_entries(given: list[Entry | str]) -> list[Entry | str]:
    """Each bare string (a badge id, already checked as one) as the entry it stands for."""
    return [Entry(subject=entry) if isinstance(entry, str) else entry for entry in given]


class AllowlistArgs(Args, frozen=True):
    """Either a full snapshot (`entries` with its `version`) or changes (`add`, `remove`)."""

    version: Annotated[int, Meta(ge=1)] | None = None
    entries: list[Entry | Ident] | None = None
    add: list[Entry | Ident] = []
    remove: list[Ident] = []

    def __post_init__(self) -> None:
        if self.entries is not None:
            msgspec.structs.force_setattr(self, "entries", as_entries(self.entries))
        msgspec.structs.force_setattr(self, "add", as_entries(self.add))
        if self.entries is not None and (self.add or self.remove):
            raise ValueError(
                "send a snapshot (entries, version) or changes (add, remove), not both"
            )
        if self.entries is not None and self.version is None:
            raise ValueError("a snapshot needs its version")
        if self.entries is None and not (self.add or self.remove):
            raise ValueError("nothing to do: give entries, add or remove")


class RevokeArgs(Args, frozen=True):
    """Revoke passes by token id (`jti`), everything of some subjects, and/or health
    certificates by the hashes of the EU revocation lists (`dcc`); for good or `until` a
    time (epoch seconds)."""

    jti: list[TokenId] = []
    subjects: list[Ident] = []
    dcc: list[RevocationHash] = []
    until: EpochSeconds | None = None

    def __post_init__(self) -> None:
        if not (self.jti or self.subjects or self.dcc):
            raise ValueError("nothing to revoke: give jti, subjects or dcc")


class KeysArgs(Args, frozen=True):
    """A new set of trusted public keys for passes (RFC 7517), replacing the old one."""

    jwks: dict[str, Any]

    def __post_init__(self) -> None:
        try:
            public_keys(self.jwks)
        except ValueError as error:
            raise ValueError(f"jwks: {error}") from None


class TrustListArgs(Args, frozen=True):
    """A new health-certificate trust list (the EU gateway's JSON: an array of signer
    certificates, or {"certificates": [...]}), replacing the one in use."""

    trust_list: list[dict[str, Any]] | dict[str, list[dict[str, Any]]]

    def __post_init__(self) -> None:
        value = self.trust_list
        certificates = value.get("certificates") if isinstance(value, dict) else value
        if not isinstance(certificates, list) or not certificates:
            raise ValueError(
                'trust_list: expected [...] or {"certificates": [...]} with at least one'
            )
        if not all(isinstance(entry.get("rawData"), str) for entry in certificates):
            raise ValueError("trust_list: every certificate needs rawData (base64 DER)")


Seq = Annotated[int, Meta(ge=1, le=MAX_SEQ)]
SeqRange = Annotated[list[Seq], Meta(min_length=2, max_length=2)]  # [first, last]


class ResendArgs(Args, frozen=True):
    """Send again, unchanged, the gate's kept events with the seqs of `ranges` (inclusive
    pairs, at most MAX_RESEND seqs in all) and/or every kept event after seq `after`."""

    ranges: Annotated[list[SeqRange], Meta(max_length=1000)] = []
    after: Annotated[int, Meta(ge=0, le=MAX_SEQ)] | None = None

    def __post_init__(self) -> None:
        if any(first > last for first, last in self.ranges):
            raise ValueError("each range is [first, last] with first <= last")
        if sum(last - first + 1 for first, last in self.ranges) > MAX_RESEND:
            raise ValueError(f"at most {MAX_RESEND} events at once")
        if not self.ranges and self.after is None:
            raise ValueError("nothing to resend: give ranges or after")


ARGUMENTS: Mapping[str, type[Args]] = {
    "open": OpenArgs,
    "lockdown": NoArgs,
    "normal": NoArgs,
    "emergency": NoArgs,
    "allowlist": AllowlistArgs,
    "revoke": RevokeArgs,
    "keys": KeysArgs,
    "trustlist": TrustListArgs,
    "resend": ResendArgs,
}


def check_args(name: str, args: object) -> dict[str, Any]:
    """The command's arguments, validated and written out in full as JSON values (every
    field, defaults included), as handlers get them; CommandRejectedError if bad."""
    model = ARGUMENTS.get(name)
    if model is None:
        raise CommandRejectedError("unsupported")
    try:
        checked = msgspec.convert(args if args is not None else {}, model)
        written: dict[str, Any] = msgspec.to_builtins(checked)
        msgspec.json.encode(written)  # every text has a UTF-8 form, to be stored and sent
    except msgspec.ValidationError as error:
        raise CommandRejectedError(f"bad_args: {explained(error, model)}") from None
    except UnicodeEncodeError:  # JSON's \ud800, or bytes a shell could not decode
        raise CommandRejectedError("bad_args: text with no UTF-8 form (a lone surrogate)") from None
    return written


# --- Keys -------------------------------------------------------------------------------


def public_keys(jwks: object) -> dict[str, jwt.PyJWK]:
    """The usable public keys of a JWK set, by kid; ValueError naming what is wrong."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError('a key set is {"keys": [...]} with at least one key')
    found = {}
    for key in keys:
        if not isinstance(key, dict) or not isinstance(key.get("kid"), str):
            raise ValueError("every key needs a kid")
        if "d" in key:
            raise ValueError(f"key {key['kid']} holds private material: publish public keys only")
        try:
            parsed = jwt.PyJWK(key)
        except jwt.PyJWTError as error:
            raise ValueError(f"key {key['kid']}: {error}") from None
        if parsed.algorithm_name not in ALGORITHMS:
            raise ValueError(f"key {key['kid']}: only Ed25519 (EdDSA) and P-256 (ES256) keys")
        found[key["kid"]] = parsed
    return found


def load_command_keys(path: Path) -> dict[str, jwt.PyJWK]:
    """The command keys the gate trusts, from a JWK set file."""
    try:
        return public_keys(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        raise CommandKeyError(f"command keys {path}: {error}") from None


# --- Replay memory ----------------------------------------------------------------------

REPLAY_MIGRATIONS = (
    """
    CREATE TABLE command_seen (
        jti TEXT PRIMARY KEY,
        expires REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX command_seen_expires ON command_seen (expires);
    """,
)


class ReplayGuard:
    """Command ids seen, in the gate's database, each kept until its command expires."""

    def __init__(self, path: Path) -> None:
        self._conn = db.connect(path, "FULL")
        try:
            db.migrate(self._conn, "commands", REPLAY_MIGRATIONS)
        except sqlite3.Error as error:
            raise StoreError(f"cannot prepare the command memory in {path}: {error}") from error

    def first_time(self, jti: str, expires: float, now: float) -> bool:
        """Remember `jti`; False if it was already seen (a replay); StoreError when the
        database cannot record it."""
        try:
            with db.transaction(self._conn) as conn:
                conn.execute("DELETE FROM command_seen WHERE expires < ?", (now,))
                added = conn.execute(
                    "INSERT OR IGNORE INTO command_seen (jti, expires) VALUES (?, ?)",
                    (jti, expires),
                ).rowcount
        except sqlite3.Error as error:
            raise StoreError(f"cannot remember the command id: {error}") from error
        return added == 1

    def close(self) -> None:
        self._conn.close()


# --- Intake -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A verified command, as handlers receive it."""

    name: str
    args: dict[str, Any]
    id: str
    site: str
    gate: str | None  # None: addressed to every gate of the site
    issued_at: float
    expires_at: float


Handler = Callable[[Command], str | None]  # returns a detail for the reply, or None


@dataclass(frozen=True)
class Reply:
    """The answer to one command, published on `P/{site}/{gate}/reply`."""

    id: str | None
    command: str
    outcome: str
    detail: str | None
    ts: str

    def to_json(self) -> bytes:
        return compact_json(self.__dict__)


@dataclass(frozen=True)
class CommandPolicy:
    algorithms: tuple[str, ...] = ALGORITHMS
    max_lifetime_s: float = 300.0
    clock_skew_s: float = 30.0


class CommandIntake:
    """Turns command messages into handler calls and replies; never raises."""

    def __init__(
        self,
        topics: GateTopics,
        keys: Mapping[str, jwt.PyJWK],
        handlers: Mapping[str, Handler],
        replay: ReplayGuard,
        policy: CommandPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._topics = topics
        self._keys = keys
        self._handlers = handlers
        self._replay = replay
        self._policy = policy or CommandPolicy()
        self._clock = clock

    def handle(self, topic: str, payload: bytes, *, retained: bool) -> Reply:
        name, gate_scope = self._route(topic)
        token_id = peek_id(payload) if len(payload) <= MAX_COMMAND_BYTES else None
        try:
            if retained:
                raise CommandRejectedError("retained")
            command = self._accept(name, gate_scope, payload)
        except CommandRejectedError as rejected:
            return self._rejected(name, token_id, rejected.reason)
        except StoreError as error:
            log.error("command %s (id %s): %s", escaped(name), token_id, error)
            return self._rejected(name, token_id, "store_unavailable")
        except Exception:  # hostile input must be answered, never raise into the link
            log.exception("command %s (id %s) could not be read", escaped(name), token_id)
            return self._rejected(name, token_id, "malformed")
        return self._run(command)

    def _rejected(self, name: str, token_id: str | None, reason: str) -> Reply:
        log.warning("command %s (id %s) rejected: %s", escaped(name), token_id, reason)
        return self._reply(token_id, name, f"rejected: {reason}")

    def _route(self, topic: str) -> tuple[str, bool]:
        for head, gate_scope in (
            (f"{self._topics.base}/cmd/", True),
            (f"{self._topics.prefix}/{self._topics.site}/cmd/", False),
        ):
            if topic.startswith(head):
                return topic[len(head) :], gate_scope
        return topic.rpartition("/")[2], False

    def _accept(self, name: str, gate_scope: bool, payload: bytes) -> Command:
        if name not in self._handlers or name not in ARGUMENTS:
            raise CommandRejectedError("unsupported")
        if len(payload) > MAX_COMMAND_BYTES:
            raise CommandRejectedError("too_large")
        claims = self._verify(payload)
        now = self._clock()
        self._check_times(claims, now)
        self._check_target(claims, name, gate_scope)
        args = check_args(name, claims.get("args"))
        issued, expires = float(claims["iat"]), float(claims["exp"])  # finite: checked
        if not self._replay.first_time(claims["jti"], expires + self._policy.clock_skew_s, now):
            raise CommandRejectedError("replayed")
        return Command(
            name, args, claims["jti"], claims["site"], claims.get("gate"), issued, expires
        )

    def _verify(self, payload: bytes) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(payload)
        except jwt.PyJWTError:
            raise CommandRejectedError("malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self._policy.algorithms:
            raise CommandRejectedError("bad_algorithm")  # `none` and HMAC among others
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise CommandRejectedError("unknown_key")
        if key.algorithm_name != alg:
            raise CommandRejectedError("bad_algorithm")
        try:
            claims = jwt.decode(payload, key.key, algorithms=[alg], options=DECODE_OPTIONS)
        except jwt.MissingRequiredClaimError as error:
            raise CommandRejectedError(f"missing_claim: {error.claim}") from None
        except jwt.InvalidSignatureError:
            raise CommandRejectedError("bad_signature") from None
        except jwt.PyJWTError:
            raise CommandRejectedError("malformed") from None
        if not is_token_id(claims["jti"]):
            raise CommandRejectedError("malformed")
        return claims

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        issued, expires = seconds(claims["iat"]), seconds(claims["exp"])
        if issued is None or expires is None:
            raise CommandRejectedError("malformed")
        skew = self._policy.clock_skew_s
        if now > expires + skew:
            raise CommandRejectedError("expired")
        if issued > now + skew:
            raise CommandRejectedError("not_yet_valid")
        if expires - issued > self._policy.max_lifetime_s:
            raise CommandRejectedError("lifetime_too_long")

    def _check_target(self, claims: Mapping[str, Any], name: str, gate_scope: bool) -> None:
        if claims["cmd"] != name:
            raise CommandRejectedError("wrong_command")
        gate = claims.get("gate")
        wanted_gate = self._topics.gate if gate_scope else None
        if claims["site"] != self._topics.site or gate != wanted_gate:
            raise CommandRejectedError("wrong_target")

    def _run(self, command: Command) -> Reply:
        handler = self._handlers[command.name]
        try:
            detail = handler(command)
        except CommandRejectedError as rejected:
            outcome, detail = f"rejected: {rejected.reason}", None
        except Exception as error:  # a failing handler is reported, never fatal
            log.exception("command %s (id %s) failed", command.name, command.id)
            outcome, detail = f"failed: {type(error).__name__}: {error}", None
        else:
            outcome = "ok"
        log.info("command %s (id %s): %s", command.name, command.id, outcome)
        return self._reply(command.id, command.name, outcome, detail)

    def _reply(
        self, token_id: str | None, name: str, outcome: str, detail: str | None = None
    ) -> Reply:
        # `name` comes from the topic, unverified when the command was rejected.
        return Reply(token_id, escaped(name), outcome, detail, format_ts(self._clock()))


DECODE_OPTIONS: Any = {
    "require": REQUIRED_CLAIMS,
    # Times are checked against the gate's injected clock, in `_check_times`.
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
}


def peek_id(payload: bytes) -> str | None:
    """The token's `jti` without verifying it, only to echo it in a rejection: escaped
    (an unverified string may hold anything, a lone surrogate that no UTF-8 encoder
    takes included), or None when there is none."""
    try:
        claims = jwt.decode(payload, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, RecursionError):
        return None
    token_id = claims.get("jti") if isinstance(claims, dict) else None
    return escaped(token_id[:128]) if isinstance(token_id, str) and token_id else None


def is_token_id(value: object) -> bool:
    """A command id fit to be stored and echoed: 1 to 128 printable characters."""
    return isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable()


def escaped(text: str) -> str:
    """`text` as is when printable, else with every other character escaped (\\x1b,
    \\ud800), so that a reply or a log line always encodes."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def seconds(value: object) -> float | None:
    """A NumericDate claim as a finite float, None if it is anything else (a bool, a
    string, NaN, or a number too large for a float such as 10^400)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
