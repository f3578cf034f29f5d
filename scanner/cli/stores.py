"""How commands open the local store: read-only without creating it, or for writing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from scanner.errors import ConfigError
from scanner.state.store import Store, StoreError


@contextmanager
def reading_store(path: Path) -> Iterator[Store]:
    """The store as it is, changing nothing; an empty one (said on stderr) if the file is missing.

    A command that only looks must not create `/var/lib/qrgate/...` on a machine that
    is not a gate, nor take a gate's store for a missing one in silence.
    """
    if store_exists(path):
        store = Store.open_readonly(path)
    else:
        click.echo(f"qrgate: store {path} does not exist: the allowlist is empty", err=True)
        store = Store.in_memory()
    with store:
        yield store


def store_exists(path: Path) -> bool:
    """Whether the store is there; StoreError when this user may not even look (the
    gate's state directory is the service's alone)."""
    try:
        return path.exists()
    except PermissionError:
        raise StoreError(
            f"store {path}: permission denied; run this as the gate's user "
            "(sudo -u qrgate qrgate ...) or as root"
        ) from None


@contextmanager
def writing_store(path: Path) -> Iterator[Store]:
    """The store, created and migrated if needed, in a folder that must exist."""
    if not path.parent.is_dir():
        raise ConfigError.single("store.path", "its folder does not exist", value=str(path))
    with Store.open(path) as store:
        yield store
