"""Badges: a plain identifier printed on a card, granted only when on the allowlist."""

from __future__ import annotations

import re

BADGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_badge_id(text: str) -> bool:
    """True for a valid badge id, which is also the form of every allowlist subject."""
    return BADGE_ID.fullmatch(text) is not None
