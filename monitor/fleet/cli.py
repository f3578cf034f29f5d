"""`qrgate fleet ...`: provision gates and site bridges into a fleet folder (`provision`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from monitor.fleet.provision import (
    Endpoint,
    Fleet,
    FleetError,
    GateSettings,
    Provisioned,
    read_gate_csv,
)

F = TypeVar("F", bound=Callable[..., Any])


def fleet_options(func: F) -> F:
    func = click.option(
        "--dir",
        "folder",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("fleet"),
        show_default=True,
        envvar="QRGATE_FLEET_DIR",
        help="The fleet folder (also $QRGATE_FLEET_DIR).",
    )(func)
    func = click.option(
        "--broker-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("/etc/mosquitto/qrgate"),
        show_default=True,
        help="Where each broker will find its passwd and acl (named in broker.conf).",
    )(func)
    return click.option(
        "--prefix", default="qrgate", show_default=True, help="The gates' topic prefix."
    )(func)


def gate_options(func: F) -> F:
    func = click.option(
        "--broker",
        required=True,
        help="The site broker, as gates reach it: mqtts://HOST[:8883] or mqtt://HOST[:1883].",
    )(func)
    func = click.option(
        "--ca-file",
        default="/etc/qrgate/broker-ca.pem",
        show_default=True,
        help="Path, on the gate, of the CA that signed the site broker's certificate.",
    )(func)
    return click.option(
        "--password-file",
        default="/etc/qrgate/mqtt-password",
        show_default=True,
        help="Path, on the gate, where its mqtt-password file goes.",
    )(func)


@click.group("fleet")
def fleet() -> None:
    """Provision gates: broker accounts, ACL entries, gate config, site bridges.

    Files go into the fleet folder (--dir): per site the broker's passwd, acl,
    broker.conf and bridge.conf; per gate its mqtt-password and qrgate.toml. Every
    command can run again: what exists is kept (passwords included).
    """


@fleet.command("add")
@click.argument("site")
@click.argument("gate")
@gate_options
@fleet_options
@click.option("--quiet", is_flag=True, help="Write the files only; print nothing.")
def add(
    *, site: str, gate: str, broker: str, ca_file: str, password_file: str, folder: Path,
    prefix: str, broker_dir: Path, quiet: bool,
) -> None:  # fmt: skip
    """Give gate SITE/GATE a broker account; print its credentials, the site broker's
    password-file line and ACL entries, and the gate's config."""
    settings = GateSettings(endpoint(broker), ca_file, password_file)
    made = Fleet(folder, prefix, broker_dir=broker_dir).add_gate(site, gate, settings)
    if not quiet:
        click.echo(describe(made, folder))


@fleet.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
@gate_options
@fleet_options
def import_csv(
    *, csv_file: Any, broker: str, ca_file: str, password_file: str, folder: Path, prefix: str,
    broker_dir: Path,
) -> None:  # fmt: skip
    """Provision every gate of CSV_FILE (`site,gate[,broker]` per line, `-` for stdin).

    Prints one line per gate: site, gate, `new` or `kept`.
    """
    rows = []
    for number, site, gate, own_broker in read_gate_csv(csv_file.read()):
        try:
            settings = GateSettings(Endpoint.parse(own_broker or broker), ca_file, password_file)
        except FleetError as error:
            raise FleetError(f"line {number}: {error}") from None
        rows.append((site, gate, settings))
    for made in Fleet(folder, prefix, broker_dir=broker_dir).add_gates(rows):
        account = made.account
        click.echo(f"{account.site},{account.gate},{'new' if made.created else 'kept'}")


@fleet.command("retire")
@click.argument("site")
@click.argument("gate")
@fleet_options
def retire(site: str, gate: str, folder: Path, prefix: str, broker_dir: Path) -> None:
    """Remove gate SITE/GATE's account from its site broker's files."""
    if not Fleet(folder, prefix, broker_dir=broker_dir).retire_gate(site, gate):
        raise FleetError(f"no gate {site}/{gate} in {folder}")
    click.echo(f"retired {site}/{gate}: reload the site broker (SIGHUP)")


@fleet.command("bridge")
@click.argument("site")
@click.option("--centre", required=True, help="The central broker: mqtts://HOST[:8883].")
@click.option(
    "--ca-file",
    default="/etc/mosquitto/certs/centre-ca.pem",
    show_default=True,
    help="Path, on the site broker, of the CA that signed the central broker's certificate.",
)
@fleet_options
def bridge(
    *, site: str, centre: str, ca_file: str, folder: Path, prefix: str, broker_dir: Path
) -> None:
    """Give site SITE's broker a bridge to the centre: its account in central/ and
    sites/SITE/bridge.conf."""
    conf = Fleet(folder, prefix, broker_dir=broker_dir).add_bridge(
        site, endpoint(centre, "--centre"), ca_file
    )
    click.echo(f"wrote {conf} and {folder / 'central'}/passwd, acl")


def endpoint(url: str, hint: str = "--broker") -> Endpoint:
    try:
        return Endpoint.parse(url)
    except FleetError as error:
        raise click.BadParameter(str(error), param_hint=hint) from None


def describe(made: Provisioned, folder: Path) -> str:
    account = made.account
    site = folder / "sites" / account.site
    gate = folder / "gates" / account.site / account.gate
    return "\n".join(
        [
            f"# gate {account.username}: {'new account' if made.created else 'account kept'}",
            f"# user name and password (also in {gate}/mqtt-password):",
            f"{account.username}",
            f"{made.password}",
            f"# the site broker's password_file line ({site}/passwd):",
            made.passwd_line,
            f"# the site broker's acl_file entries ({site}/acl):",
            *account.acl()[1:],
            f"# the gate's config ({gate}/qrgate.toml):",
            made.config.rstrip("\n"),
        ]
    )
