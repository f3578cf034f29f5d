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
    except OSError as error:  # the system will not look: a name too long
        raise StoreError(f"store {path}: {error.strerror or error}") from None


@contextmanager
def writing_store(path: Path) -> Iterator[Store]:
    """The store, created and migrated if needed, in a folder that must exist."""
    problem = folder_problem(path.parent)
    if problem is not None:
        raise ConfigError.single("store.path", f"its folder {problem}", value=str(path))
    with Store.open(path) as store:
        yield store


def folder_problem(folder: Path) -> str | None:
    """Why `folder` is no folder to write in, or None; the system may refuse to look."""
    try:
        return None if folder.is_dir() else "does not exist"
    except OSError as error:
        return f"cannot be looked at: {error.strerror or error}"
