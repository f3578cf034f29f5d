"""`qrgate dcc inspect` (what a health certificate says, for a technician at the gate) and
`qrgate dcc issue` (test certificates from a throwaway signer)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from scanner.cli.common import FILE, config_option, load
from scanner.cli.pass_cmd import parse_duration, parse_instant, write_qr

if TYPE_CHECKING:
    from scanner.config import Config
    from scanner.credentials.dcc.chain import Claims, CoseSign1, Reject
    from scanner.credentials.dcc.issue import ThrowawaySigner
    from scanner.credentials.dcc.trustlist import Signer, TrustList

EXIT_FAILURE = 1


@click.group("dcc")
def dcc() -> None:
    """Health certificates (EU DCC, Vietnam's vaccine passport): inspect, or issue test ones."""


@dcc.command("inspect")
@click.argument("source", metavar="PAYLOAD|IMAGE")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@config_option
@click.pass_context
def inspect(ctx: click.Context, source: str, as_json: bool, config_path: Path | None) -> None:
    """Print what a health certificate says: type, country, dates, and whether its signer
    is in this gate's trust list. SOURCE is the QR text (`HC1:...`), `-` for standard
    input, or an image file holding the QR code. No verdict: `qrgate pass check` gives
    the gate's. Exits 1 when SOURCE holds no health certificate."""
    from scanner.credentials.dcc.chain import Reject, decode_chain

    config, _ = load(ctx, config_path)
    payload = read_source(source, config)
    decoded = decode_chain(payload)
    if isinstance(decoded, Reject):
        click.echo(f"qrgate: not a health certificate ({decoded.step}: {decoded.detail})", err=True)
        ctx.exit(EXIT_FAILURE)
    trust, trust_note = trust_list_of(config)
    report = describe(*decoded, trust, trust_note)
    click.echo(json.dumps(report, ensure_ascii=False) if as_json else render(report))


def read_source(source: str, config: Config) -> bytes:
    """The payload: stdin, the first health certificate in an image, or the text itself."""
    if source == "-":
        return sys.stdin.buffer.read().removesuffix(b"\n")
    path = Path(source)
    if not path.is_file():
        return os.fsencode(source)
    from scanner.credentials.kinds import DCC_PREFIX
    from scanner.vision.decode import make_decoder
    from scanner.vision.images import ImageError, load_gray

    try:
        codes = make_decoder(config.camera.decoder).decode(load_gray(path))
    except ImageError as error:
        raise click.BadParameter(str(error), param_hint="IMAGE") from None
    if not codes:
        raise click.BadParameter(f"{path}: no QR code found", param_hint="IMAGE")
    health = [code.payload for code in codes if code.payload.startswith(DCC_PREFIX)]
    return (health or [codes[0].payload])[0]


def trust_list_of(config: Config) -> tuple[TrustList | None, str]:
    from scanner.credentials.dcc.trustlist import trust_list_in_use
    from scanner.errors import ConfigError

    try:
        trust = trust_list_in_use(config.dcc.trust_list, config.store.path)
    except ConfigError as error:
        return None, f"no trust list: {error.problems[0]}"
    return trust, f"{trust.source} ({len(trust)} signers)"


def describe(
    cose: CoseSign1, claims: Claims, trust: TrustList | None, trust_note: str
) -> dict[str, Any]:
    """Everything the certificate says, and what the trust list says of its signer."""
    import base64

    from scanner.credentials.dcc.certificate import groups_present, parse_certificate
    from scanner.credentials.dcc.chain import Reject
    from scanner.credentials.dcc.cose import algorithm_name
    from scanner.credentials.dcc.issue import TEST_ISSUER, TEST_UVCI_MARK
    from scanner.credentials.dcc.revocation import revocation_hashes
    from scanner.credentials.dcc.verifier import find_signer

    certificate = parse_certificate(claims.content)
    signer = find_signer(trust, cose) if trust is not None else None
    found = None if isinstance(signer, Reject) else signer
    report: dict[str, Any] = {
        "type": sorted(groups_present(claims.content)),
        "country": claims.issuer,
        "issued": iso(claims.issued),
        "expires": iso(claims.expires),
        "algorithm": algorithm_name(cose.alg),
        "kid": base64.b64encode(cose.kid).decode() if cose.kid is not None else None,
        "trust_list": trust_note,
        "signer": signer_words(signer),
        "schema": "valid" if certificate is not None else "NOT valid (schema_invalid)",
        "content": plain(claims.content),
    }
    if found is not None:
        report["signer_certificate"] = {
            "country": found.country,
            "subject": found.subject,
            "valid_until": iso(found.not_after),
        }
    if certificate is not None:
        uvci = certificate.entry.uvci
        hashes = revocation_hashes(uvci, claims.issuer, cose.alg, cose.signature)
        report["revocation_hashes"] = hashes
        report["test_data"] = TEST_UVCI_MARK in uvci or TEST_ISSUER in json.dumps(report["content"])
    return report


def signer_words(signer: Signer | Reject | None) -> str:
    from scanner.credentials.dcc.chain import Reject

    if signer is None:
        return "unknown: no trust list"
    if not isinstance(signer, Reject):
        return "found; the signature verifies"
    if signer.reason == "unknown_key":
        return "NOT in the trust list (unknown_key)"
    return "in the trust list, but the signature does NOT verify (bad_signature)"


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plain(value: object, depth: int = 0) -> object:
    """The certificate as JSON values, whatever CBOR it held (bounded depth)."""
    if depth > 8:
        return "..."
    if isinstance(value, Mapping):
        return {str(key): plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item, depth + 1) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return f"<an integer of {value.bit_length()} bits>"  # str() of it may refuse
    if isinstance(value, str | int | float) or value is None:
        return value
    return value.hex() if isinstance(value, bytes) else repr(value)[:80]


def render(report: dict[str, Any]) -> str:
    def shown(value: object) -> str:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    lines = [f"{key:<19} {shown(value)}" for key, value in report.items() if key != "content"]
    lines.append("content")
    lines.append(json.dumps(report["content"], ensure_ascii=False, indent=2))
    return "\n".join(lines)


@dcc.command("issue")
@click.option(
    "--signer",
    "signer_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the throwaway signer: made on first use (with trust-list.json), reused after.",
)
@click.option("--country", default="VN", show_default=True, help="Issuing country (new signer).")
@click.option(
    "--alg",
    type=click.Choice(["ES256", "PS256"]),
    default="ES256",
    show_default=True,
    help="Signature algorithm (new signer).",
)
@click.option(
    "--type",
    "kind",
    type=click.Choice(["vaccination", "test", "recovery"]),
    default="vaccination",
    show_default=True,
)
@click.option("--family", default="Nguyễn", show_default=True, help="Family name.")
@click.option("--given", default="Văn An", show_default=True, help="Given name(s).")
@click.option("--dob", default="1990-01-01", show_default=True, help="Birth date (YYYY[-MM[-DD]]).")
@click.option("--dose", default="2/2", show_default=True, help="Vaccination: dose/series.")
@click.option("--product", default="EU/1/20/1528", show_default=True, help="Vaccination: mp code.")
@click.option(
    "--date",
    "when",
    callback=parse_instant,
    default=None,
    metavar="ISO8601",
    help="Vaccination or first positive date, or test sample time (default: 30 days, 2 h ago).",
)
@click.option("--test-type", type=click.Choice(["rat", "naat"]), default="rat", show_default=True)
@click.option(
    "--result", type=click.Choice(["negative", "positive"]), default="negative", show_default=True
)
@click.option(
    "--valid-for",
    default="365d",
    callback=parse_duration,
    show_default=True,
    help="From now to the certificate's exp: 30s, 90m, 12h, 7d.",
)
@click.option("--png", type=FILE, help="Also write the QR code as PNG.")
@click.option("--svg", type=FILE, help="Also write the QR code as SVG.")
def issue(**options: Any) -> None:
    """Print a TEST health certificate (HC1:...) from a throwaway signer, for trying a gate.

    It is marked as test data (issuer, UVCI, signer certificate). A gate accepts it only
    when its [dcc] trust_list holds the signer (SIGNER/trust-list.json)."""
    from scanner.credentials.dcc import issue as make

    signer_dir: Path = options["signer_dir"]
    now = time.time()
    signer = load_or_create_signer(signer_dir, options["country"], options["alg"], now)
    content = make.content(
        options["family"], options["given"], options["dob"], *entry_of(options, signer.country, now)
    )
    text = make.issue_certificate(
        signer, content, issued_at=now, expires_at=now + options["valid_for"]
    )
    click.echo(text)
    click.echo("TEST DATA: not a real health certificate", err=True)
    write_qr(text, options["png"], options["svg"])


def load_or_create_signer(folder: Path, country: str, alg: Any, now: float) -> ThrowawaySigner:
    from scanner.credentials.dcc import issue as make

    if (folder / make.KEY_NAME).is_file():
        try:
            return make.load_signer(folder)
        except (OSError, ValueError) as error:
            raise click.BadParameter(f"{folder}: {error}", param_hint="--signer") from None
    signer = make.new_signer(country, alg, now=now)
    make.save_signer(signer, folder)
    click.echo(
        f"new throwaway signer in {folder}; trust it with [dcc] trust_list = "
        f'"{folder / make.TRUST_LIST_NAME}"',
        err=True,
    )
    return signer


def entry_of(
    options: dict[str, Any], country: str, now: float
) -> tuple[Literal["v", "t", "r"], dict[str, Any]]:
    from scanner.credentials.dcc import issue as make

    when = options["when"]
    kind = options["kind"]
    if kind == "test":
        sampled = dt.datetime.fromtimestamp(when if when is not None else now - 2 * 3600, dt.UTC)
        return "t", make.covid_test_entry(country, sampled, options["test_type"], options["result"])
    day = dt.datetime.fromtimestamp(when if when is not None else now - 30 * 86_400, dt.UTC).date()
    if kind == "recovery":
        return "r", make.recovery_entry(country, day)
    dose, _, doses = options["dose"].partition("/")
    if not (dose.isdigit() and doses.isdigit()):
        raise click.BadParameter("expected DOSE/SERIES such as 2/2", param_hint="--dose")
    return "v", make.vaccination_entry(country, day, int(dose), int(doses), options["product"])
