"""Roles and what each may do. Roles are ranked: each may do what the ones below may.

- viewer: gates, events without names, counts;
- officer: names, people, contacts, every report, exports, asking gates to resend;
- admin: commands to gates, accounts, and the ids of the gates' enrolled keys.
"""

from __future__ import annotations

from typing import Literal

Role = Literal["viewer", "officer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "officer", "admin")

# What a permission needs at least.
PERMISSIONS: dict[str, Role] = {
    "gates": "viewer",
    "events": "viewer",
    "counts": "viewer",
    "names": "officer",
    "people": "officer",
    "reports": "officer",
    "export": "officer",
    "resend": "officer",
    "audit": "admin",
    "commands": "admin",
    "accounts": "admin",
    "keys": "admin",
}


def is_role(value: str) -> bool:
    return value in ROLES


def allows(role: str, permission: str) -> bool:
    """Whether `role` has `permission`; unknown roles and permissions have nothing."""
    needed = PERMISSIONS.get(permission)
    if needed is None or role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)
