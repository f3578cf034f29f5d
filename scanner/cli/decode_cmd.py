"""`qrgate decode`: read the QR codes in image files with the configured decoder."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scanner.cli.common import config_option, load

if TYPE_CHECKING:
    from scanner.vision.decode import Code, Decoder


@dataclass
class Result:
    file: str
    codes: list[Code] = field(default_factory=list)
    ms: float = 0.0  # decode time only, not reading the file
    error: str | None = None

    def as_json(self) -> str:
        codes = [{"text": code.text, "bytes_b64": b64(code.payload)} for code in self.codes]
        document: dict[str, object] = {"file": self.file, "codes": codes, "ms": round(self.ms, 3)}
        if self.error is not None:
            document["error"] = self.error
        return json.dumps(document)

    def as_lines(self) -> list[str]:
        if not self.codes:
            return [f"{self.file}: no code found"]
        return [f"{self.file}: {readable(code)}" for code in self.codes]


@click.command("decode")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, one per line.")
@config_option
@click.argument(
    "images", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="IMAGE..."
)
@click.pass_context
def decode(
    ctx: click.Context, as_json: bool, config_path: Path | None, images: tuple[Path, ...]
) -> int:
    """Read the QR codes in IMAGE files, in the order given (a folder: its images in name order).

    Uses the configured decoder (camera.decoder) and takes the time each image needs to
    find every code zxing-cpp or pyzbar would find alone. With --json, each image gives
    {"file", "codes": [{"text", "bytes_b64"}], "ms"}, where text is null when the code is
    not UTF-8 and ms is the decode time; an unreadable file gets empty codes and an
    "error". Exits 0 when every file could be read, 1 otherwise.
    """
    config, _ = load(ctx, config_path)
    from scanner.vision.decode import make_decoder

    decoder = make_decoder(config.camera.decoder)
    all_read = True
    for result in decode_all(decoder, expand(images)):
        all_read &= result.error is None
        if as_json:
            click.echo(result.as_json())
        elif result.error is not None:
            click.echo(f"{result.file}: error: {result.error}", err=True)
        else:
            click.echo("\n".join(result.as_lines()))
    return 0 if all_read else 1


def expand(arguments: Iterable[Path]) -> Iterator[Path]:
    """The files to decode: each argument, a folder standing for its image files."""
    from scanner.vision.images import image_files

    for path in arguments:
        if path.is_dir():
            files = image_files(path)
            yield from files or [path]
        else:
            yield path


def decode_all(decoder: Decoder, paths: Iterable[Path]) -> Iterator[Result]:
    from scanner.vision.images import ImageError, load_gray

    for path in paths:
        if path.is_dir():
            yield Result(str(path), error="a folder without image files")
            continue
        try:
            image = load_gray(path)
        except ImageError as error:
            yield Result(str(path), error=str(error).removeprefix(f"{path}: "))
            continue
        start = time.perf_counter()
        codes = decoder.decode(image)
        yield Result(str(path), codes, (time.perf_counter() - start) * 1000)


def b64(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


def readable(code: Code) -> str:
    """The code's text with control characters escaped; binary shown as base64."""
    if code.text is None:
        return f"[{len(code.payload)} bytes, not UTF-8] base64:{b64(code.payload)}"
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in code.text)
