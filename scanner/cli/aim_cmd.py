"""`qrgate aim`: live camera figures for mounting the gate, and snapshots."""

from __future__ import annotations

import contextlib
import io
import os
import select
import shutil
import sys
import termios
import tty
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

import click

from scanner.cli.common import FILE, config_option, load

if TYPE_CHECKING:
    from scanner.config import CameraSection
    from scanner.vision.aim import Aim, Summary

# Seconds between figures: refreshed in place on a terminal, one line each in a pipe.
TERMINAL_EVERY_S = 0.5
PIPE_EVERY_S = 1.0


@click.command("aim")
@config_option
@click.option("--frames", type=click.IntRange(min=1), help="Stop after N frames.")
@click.option(
    "--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop after S seconds."
)
@click.option(
    "--snapshot",
    type=FILE,
    help="Save the last frame as a PNG file at the end (and on the key s on a terminal).",
)
@click.pass_context
def aim(
    ctx: click.Context,
    config_path: Path | None,
    frames: int | None,
    seconds: float | None,
    snapshot: Path | None,
) -> None:
    """Live camera figures for mounting the gate: frame rate, brightness, sharpness, and
    whether a code is seen and read, with advice when a figure is out of range.

    Hold a code where workers will show theirs and move the camera, its focus and the
    light until the code is read in nearly every frame. Only the kind, the first
    characters and the length of a code are shown. Runs until Ctrl-C (or q), or for
    --frames or --seconds; stop the gate first (sudo systemctl stop qrgate): the camera
    serves one program at a time.
    """
    if frames is not None and seconds is not None:
        raise click.UsageError("give --frames or --seconds, not both")
    if snapshot is not None and not snapshot.parent.is_dir():
        raise click.BadParameter(
            f"folder {snapshot.parent} does not exist", param_hint="--snapshot"
        )
    config, _ = load(ctx, config_path)
    from scanner.camera import open_source
    from scanner.vision.aim import Aim, describe_total
    from scanner.vision.decode import make_decoder

    camera = config.camera
    decoder = make_decoder(camera.decoder, live_share=camera.second_look_share)
    printer = Printer(sys.stdout.isatty(), camera)
    source = open_source(camera)
    try:
        session = Aim(source, decoder, every_s=printer.every_s)
        title = f"aim: {source.name} at {camera.fps:g} fps"
        watch(session, title, printer, snapshot, frames=frames, seconds=seconds)
    finally:
        source.close()
    printer.note(f"aim: {describe_total(session.overall())}")
    if snapshot is not None:
        save_snapshot(session, snapshot, printer)


def watch(
    session: Aim,
    title: str,
    printer: Printer,
    snapshot: Path | None,
    *,
    frames: int | None,
    seconds: float | None,
) -> None:
    """Run until a limit, Ctrl-C, or q on a terminal, where s saves a snapshot."""
    with Keys(sys.stdin) as keys, contextlib.suppress(KeyboardInterrupt):
        stops = "Ctrl-C or q stops" if keys.active else "Ctrl-C stops"
        saves = f"; s saves a snapshot to {snapshot}" if keys.active and snapshot else ""
        printer.note(f"{title}; {stops}{saves}")

        def keep_going() -> bool:
            key = keys.pressed()
            if key == "s" and snapshot is not None:
                save_snapshot(session, snapshot, printer)
            return key not in ("q", "Q")

        session.run(printer.show, frames=frames, seconds=seconds, keep_going=keep_going)


def save_snapshot(session: Aim, path: Path, printer: Printer) -> None:
    """Save the latest frame, if there is one yet, and say so."""
    from scanner.vision.aim import save_png

    if session.latest is None:
        return
    save_png(session.latest.image, path)
    height, width = session.latest.image.shape
    printer.note(f"aim: snapshot saved to {path} ({width}x{height} PNG)")


class Printer:
    """Figures refreshed in one line on a terminal, one line per report in a pipe."""

    def __init__(self, in_place: bool, camera: CameraSection) -> None:
        self.in_place = in_place
        self.every_s = TERMINAL_EVERY_S if in_place else PIPE_EVERY_S
        self._camera = camera
        self._drawn = False

    def show(self, summary: Summary) -> None:
        from scanner.vision.aim import describe

        line = describe(summary, self._camera)
        if not self.in_place:
            click.echo(line)
            return
        width = shutil.get_terminal_size().columns - 1
        click.echo(f"\r{line[:width]}\x1b[K", nl=False)
        self._drawn = True

    def note(self, text: str) -> None:
        """A line of its own, above the refreshed one."""
        if self._drawn:
            click.echo("\r\x1b[K", nl=False)
            self._drawn = False
        click.echo(text)


class Keys:
    """Single key presses on a terminal, without Enter (cbreak mode; Ctrl-C still works)."""

    def __init__(self, stream: TextIO) -> None:
        self._fd = terminal_fd(stream)
        self._saved: list[Any] | None = None

    @property
    def active(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> Keys:
        if self._fd is not None:
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def pressed(self) -> str | None:
        """The key pressed since the last call, if any; never waits."""
        if self._fd is None or not select.select([self._fd], [], [], 0)[0]:
            return None
        return os.read(self._fd, 1).decode(errors="replace")


def terminal_fd(stream: TextIO) -> int | None:
    try:
        return stream.fileno() if stream.isatty() else None
    except (AttributeError, io.UnsupportedOperation, ValueError):
        return None
