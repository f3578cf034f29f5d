"""`qrgate event-key`: the public half of the gate's event signing key, for enrollment."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scanner.cli.common import config_option, load


@click.command("event-key")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print a JWK with the gate's site and id.")
@click.pass_context
def event_key(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """Show the public key this gate signs its events with, and how to enroll it.

    The private key lives in the gate's state directory (beside store.path) and never
    leaves it; it is made on the gate's first start, or here if there is none yet.
    Enroll the public key at the monitor, which then sets aside any event of this gate
    that it did not sign.
    """
    from mqtt.signing import EventSigner, create_key, public_text
    from scanner.mqttconfig import event_key_path

    config, _ = load(ctx, config_path)
    path = event_key_path(config.store.path)
    if create_key(path):
        click.echo(f"made a new event key: {path}", err=True)
    signer = EventSigner.load(path)
    where = f"{config.gate.site}/{config.gate.id}"
    public = public_text(signer.public)
    if as_json:
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": public, "kid": signer.kid}
        click.echo(json.dumps({"site": config.gate.site, "gate": config.gate.id, **jwk}))
        return
    click.echo(f"gate        {where}")
    click.echo(f"public key  {public}")
    click.echo(f"key id      {signer.kid}")
    click.echo("enroll it at the monitor with:")
    click.echo(f"  qrgate gates enroll {where} {public} --db URL")
