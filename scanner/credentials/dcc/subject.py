"""The subject that stands for a health certificate in events: a keyed hash of its UVCI.

The same certificate gives the same subject at this gate (so repeats, anti-passback and
revocation by subject work), but the UVCI cannot be recovered from it, nor matched
against a list of UVCIs, without the key, which stays on the gate (`[dcc]
subject_key_file`, else a key the gate makes in its state directory). Gates that share
the key (a site wanting one subject per person across its gates) give the same subject.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from scanner.errors import ConfigError

KEY_BYTES = 32
SUBJECT_HEX = 32  # 128 bits: no collisions among any site's certificates
SUBJECT_PREFIX = "dcc-"
DEFAULT_KEY_NAME = "dcc-subject.key"
KEY = "dcc.subject_key_file"


def certificate_subject(key: bytes, uvci: str) -> str:
    """`dcc-` and 32 hex digits of HMAC-SHA-256(key, UVCI)."""
    digest = hmac.new(key, uvci.encode(), hashlib.sha256).hexdigest()
    return SUBJECT_PREFIX + digest[:SUBJECT_HEX]


def default_key_path(store_path: Path) -> Path:
    """Where the gate keeps its own key: beside the store, in the state directory."""
    return store_path.parent / DEFAULT_KEY_NAME


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """The key subjects are made with; `stand_in` says why it is not the gate's (a key
    of this process only), None when it is."""

    secret: bytes
    stand_in: str | None = None


def load_subject_key(path: Path, *, create: bool) -> SubjectKey:
    """The key in `path`; when it does not exist, a new one written there (mode 0600)
    if `create`, else a stand-in for this process only, which says so: a read-only
    check changes nothing, and its subjects are then not the gate's."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if create:
            return SubjectKey(write_new_key(path))
        return SubjectKey(secrets.token_bytes(KEY_BYTES), f"{path} does not exist")
    except OSError as error:
        raise ConfigError.single(KEY, f"cannot read: {error}", value=str(path)) from None
    if len(key) < KEY_BYTES:
        raise ConfigError.single(KEY, f"must hold at least {KEY_BYTES} bytes", value=str(path))
    return SubjectKey(key)


def write_new_key(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "wb") as file:
            file.write(key)
            file.flush()
            os.fsync(file.fileno())
    except FileExistsError:
        return path.read_bytes()  # another process made it first: use theirs
    except OSError as error:
        raise ConfigError.single(KEY, f"cannot create: {error}", value=str(path)) from None
    return key
