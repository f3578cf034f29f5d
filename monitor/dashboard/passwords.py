"""Password hashes with scrypt (memory-hard, in the standard library).

Stored as `scrypt$N$r$p$SALT$HASH` (salt and hash base64), so the cost can be raised
later while old hashes still verify. N=2^15, r=8 takes 32 MiB and some 60 ms per guess.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from monitor.dashboard.errors import DashboardError

MIN_LENGTH = 10


@dataclass(frozen=True)
class Cost:
    n: int = 2**15
    r: int = 8
    p: int = 1

    @property
    def maxmem(self) -> int:
        return 128 * self.r * (self.n + self.p + 2) + 1024 * 1024


DEFAULT_COST = Cost()


def hash_password(password: str, cost: Cost = DEFAULT_COST) -> str:
    salt = secrets.token_bytes(16)
    digest = derive(password, salt, cost)
    encoded = (base64.b64encode(part).decode() for part in (salt, digest))
    return "$".join(("scrypt", str(cost.n), str(cost.r), str(cost.p), *encoded))


def verify_password(password: str, stored: str) -> bool:
    """True when `password` is the one `stored` was made from; False for anything else."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        cost = Cost(int(n), int(r), int(p))
        expected = base64.b64decode(digest, validate=True)
        salt_bytes = base64.b64decode(salt, validate=True)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    return hmac.compare_digest(derive(password, salt_bytes, cost), expected)


def derive(password: str, salt: bytes, cost: Cost) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=cost.n, r=cost.r, p=cost.p, maxmem=cost.maxmem, dklen=32
    )


def check_new_password(password: str) -> str:
    """A new password long enough to resist guessing, or DashboardError saying why not."""
    if len(password) < MIN_LENGTH:
        raise DashboardError(f"a password needs at least {MIN_LENGTH} characters")
    return password
