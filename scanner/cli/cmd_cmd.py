"""`qrgate cmd NAME`: sign a command, send it to a gate or a site, print the replies."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mqtt.settings import BrokerSettings, BrokerUrl, TlsSettings
from mqtt.topics import COMMANDS
from scanner.cli.common import FILE, config_option, load
from scanner.config import Config

if TYPE_CHECKING:
    from mqtt.remote import SignedCommand

# Every command and argument the gates take (mqtt/commands.py; a test parses each line).
EXAMPLES = """
\b
Examples, one per command and argument ("..." is --key ops.key.pem --kid ops-1 --site factory-1):
  qrgate cmd open --key ops.key.pem --kid ops-1 --site factory-1 --gate gate-1 seconds=10
  qrgate cmd open ... --gate gate-1
  qrgate cmd lockdown ...
  qrgate cmd normal ...
  qrgate cmd emergency ... --gate gate-1
  qrgate cmd allowlist ... add='["W-1042", "W-1043"]' remove='["W-17"]'
  qrgate cmd allowlist ... add='[{"subject": "001099012345", "kinds": ["cccd", "vnqr"]}]'
  qrgate cmd allowlist ... add='[{"subject": "W-9", "kind": "badge", "name": "Lê Văn C"}]'
  qrgate cmd allowlist ... add='[{"subject": "W-9", "name": "Lê An", "birth_date": "1990-04-30"}]'
  qrgate cmd allowlist ... add='[{"subject": "V-7", "valid_from": 1767225600}]'
  qrgate cmd allowlist ... add='[{"subject": "V-8", "valid_until": 1767312000}]'
  qrgate cmd allowlist ... version=12 entries=@allowlist.json
  qrgate cmd revoke ... jti='["5f0c9a7e-pass"]' subjects='["W-17"]' until=1767312000
  qrgate cmd revoke ... dcc='["cwi/yt0rCV2KiGwY9PYvHw=="]'
  qrgate cmd keys ... jwks=@jwks.json
  qrgate cmd trustlist ... trust_list=@dsc-list.json
  qrgate cmd resend ... --gate gate-1 ranges='[[6, 15], [40, 40]]' after=52

Arguments are KEY=VALUE, VALUE read as JSON where it parses (else as a string), or @FILE
for a JSON file.

open: seconds holds the gate open (at most 3600); without it, one relay pulse. lockdown
denies everyone, emergency holds the gate open, normal ends either.

allowlist: add (entries) and remove (subjects) edit the list; entries, a list of
entries numbered by version, replaces it (a gate ignores a version older than its own).
An entry is a badge id, or {"subject", "kind": "badge", "cccd" or "vnqr" (or "kinds":
[...]), "name", "birth_date": "YYYY-MM-DD", "valid_from", "valid_until"}, times in
epoch seconds.

revoke: pass ids (jti), subjects, health certificates by the hashes of the EU revocation
lists (dcc; `qrgate dcc inspect` prints a certificate's), until a time (until, epoch
seconds) or for good.

keys: the public key set (JWKS) passes are checked against. trustlist: the EU gateway's
trust list (JSON) of health-certificate signers. Both replace what the gate uses.

resend: the gate sends again, unchanged, the events it kept after the broker took them,
with the seqs of ranges (inclusive, at most 10000) and/or every one after seq after;
qrgate report gaps --resend asks every gate for what the monitor's store misses.
docs/mqtt.md has every detail.
"""


@click.command("cmd", epilog=EXAMPLES)
@click.argument("name", type=click.Choice(COMMANDS))
@click.argument("arguments", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=FILE,
    help="Private signing key (PEM, Ed25519 or P-256).",
)
@click.option("--kid", required=True, help="The key's id in the gates' command key set.")
@click.option("--site", default=None, help="Target site (default: gate.site of the config).")
@click.option("--gate", default=None, help="Target gate; without it, every gate of the site.")
@click.option(
    "--lifetime",
    type=click.FloatRange(1, 86_400),
    default=60.0,
    show_default=True,
    help="Seconds the command stays valid.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=10.0,
    show_default=True,
    help="Seconds to wait for replies.",
)
@click.option(
    "--expect",
    type=click.IntRange(1),
    default=None,
    help="Site-wide: stop waiting after this many replies.",
)
@click.option(
    "--broker",
    "broker_url",
    default=None,
    help="mqtt://HOST:PORT or mqtts://HOST:PORT (default: [mqtt] of the config).",
)
@click.option(
    "--ca-file",
    type=FILE,
    help="CA of the broker's certificate (implies TLS).",
)
@click.option(
    "--cert-file",
    type=FILE,
    help="Client certificate for the broker (with --cert-key).",
)
@click.option(
    "--cert-key",
    type=FILE,
    help="The client certificate's private key.",
)
@click.option("--username", default=None, help="Broker login.")
@click.option(
    "--password-file",
    type=FILE,
    help="File holding the broker password.",
)
@click.option("--json", "as_json", is_flag=True, help="Print each reply as one JSON object.")
@config_option
@click.pass_context
def cmd(
    ctx: click.Context,
    /,
    name: str,
    arguments: tuple[str, ...],
    config_path: Path | None,
    **options: Any,
) -> None:
    """Send a signed command to a gate (--gate) or to every gate of a site, and print the
    replies. Exits 0 when every reply is ok, 1 on a refusal, a failure or no reply."""
    from mqtt.remote import send_command

    opts = Options(**options)
    config, _ = load(ctx, config_path)
    command = signed(name, parse_arguments(arguments), opts, opts.site or config.gate.site)
    replies = send_command(
        command_broker(config, opts),
        config.mqtt.topic_prefix,
        command,
        timeout_s=opts.timeout,
        expect=opts.expect,
    )
    for reply in replies:
        shown = {"site": reply.site, "gate": reply.gate, **reply.reply}
        click.echo(json.dumps(shown) if opts.as_json else describe(shown))
    if not replies:
        target = f"{command.site}/{command.gate}" if command.gate else f"any gate of {command.site}"
        click.echo(f"qrgate: no reply from {target} within {opts.timeout:g} s", err=True)
    enough = len(replies) >= (opts.expect or 1)
    ctx.exit(0 if enough and all(reply.ok for reply in replies) else 1)


def signed(name: str, args: dict[str, Any], opts: Options, site: str) -> SignedCommand:
    """The command, signed; a bad key or bad arguments are usage errors (exit 2)."""
    from mqtt.remote import CommandError, load_signing_key, sign_command

    try:
        key = load_signing_key(opts.key_path)
        return sign_command(
            name,
            key=key,
            kid=opts.kid,
            site=site,
            gate=opts.gate,
            args=args,
            lifetime_s=opts.lifetime,
        )
    except CommandError as error:
        raise click.UsageError(str(error)) from None


@dataclass(frozen=True)
class Options:
    """The options of `qrgate cmd`, as click passes them."""

    key_path: Path
    kid: str
    site: str | None
    gate: str | None
    lifetime: float
    timeout: float
    expect: int | None
    broker_url: str | None
    ca_file: Path | None
    cert_file: Path | None
    cert_key: Path | None
    username: str | None
    password_file: Path | None
    as_json: bool


def parse_arguments(arguments: tuple[str, ...]) -> dict[str, Any]:
    """KEY=VALUE pairs: JSON values where they parse, @FILE for a JSON file, else strings."""
    parsed: dict[str, Any] = {}
    for argument in arguments:
        key, sep, raw = argument.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{argument!r} is not KEY=VALUE", param_hint="ARGUMENTS")
        parsed[key] = argument_value(raw)
    return parsed


def argument_value(raw: str) -> Any:
    if raw.startswith("@"):
        try:
            return json.loads(Path(raw[1:]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise click.BadParameter(f"{raw}: {error}", param_hint="ARGUMENTS") from None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def command_broker(config: Config, opts: Options) -> BrokerSettings:
    """The config's broker settings with the options' overrides, under a client id of
    its own (never the gate's: the broker would throw the gate off)."""
    from scanner.mqttconfig import broker_settings, read_secret

    broker = broker_settings(config)
    changes: dict[str, Any] = {"client_id": f"qrgate-cmd-{uuid.uuid4().hex[:12]}"}
    if opts.broker_url is not None:
        changes |= broker_address(opts.broker_url, broker.tls)
    if opts.ca_file or opts.cert_file:
        tls = changes.get("tls", broker.tls) or TlsSettings()
        changes["tls"] = dataclasses.replace(
            tls,
            ca_file=opts.ca_file or tls.ca_file,
            cert_file=opts.cert_file or tls.cert_file,
            key_file=opts.cert_key or tls.key_file,
        )
    if opts.username is not None:
        password = read_secret("--password-file", opts.password_file)
        changes |= {"username": opts.username, "password": password}
    return dataclasses.replace(broker, **changes)


def broker_address(url: str, tls: TlsSettings | None) -> dict[str, Any]:
    try:
        named = BrokerUrl.parse(url)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--broker") from None
    return {
        "host": named.host,
        "port": named.port,
        "tls": (tls or TlsSettings()) if named.tls else None,
    }


def describe(reply: dict[str, Any]) -> str:
    detail = f" ({reply['detail']})" if reply.get("detail") else ""
    return f"{reply['site']}/{reply['gate']}: {reply.get('outcome')}{detail}"
