"""`qrgate keys new`: a signing key for passes, and the public key set gates trust."""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import click


@click.group("keys")
def keys() -> None:
    """Signing keys for passes."""


@keys.command("new")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for KID.key.pem (private) and jwks.json (public); created if missing.",
)
@click.option("--kid", default=None, help="Key id (default: today's date and 4 random hex).")
@click.option(
    "--alg",
    "algorithm",
    type=click.Choice(["EdDSA", "ES256"]),
    default="EdDSA",
    show_default=True,
    help="EdDSA: Ed25519 keys; ES256: ECDSA on P-256.",
)
def new(out_dir: Path, kid: str | None, algorithm: str) -> None:
    """Make a signing key: OUT/KID.key.pem (mode 0600, never overwritten) and the public
    OUT/jwks.json (the key is added, or replaces the one with the same kid).

    Copy jwks.json to every gate (passes.jwks); keep the .key.pem where passes are issued.
    """
    from scanner.config import PassAlgorithm
    from scanner.credentials.keys import create_signing_key, default_kid

    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = default_kid(time.time()) if kid is None else kid
    key_path, jwks_path = create_signing_key(out_dir, chosen, cast(PassAlgorithm, algorithm))
    click.echo(f"kid {chosen} ({algorithm})")
    click.echo(f"private key: {key_path}  (keep secret: it signs passes)")
    click.echo(f"public keys: {jwks_path}  (install on gates as passes.jwks)")
