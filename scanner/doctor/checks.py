"""The checks of `qrgate doctor` in the order they run, the runner, and the checks of the
keys, camera, decoder, pins, clock and disk (the broker, store and outbox have modules of
their own)."""

from __future__ import annotations

import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import segno
from numpy.typing import NDArray

from firmware.errors import PinFactoryError
from firmware.pins import ROLE_NAMES, make_pin_factory
from mqtt.clock import SANE_FLOOR, kernel_clock_synced
from mqtt.commands import CommandKeyError, load_command_keys
from scanner.camera import CameraError, open_source
from scanner.config import Config, GpioSection, file_problem
from scanner.credentials.passes import load_jwks
from scanner.daemon.hardware import input_pins, output_pins
from scanner.doctor.broker import check_broker
from scanner.doctor.finding import Finding, Result, Status, counted, failure, passed, warning
from scanner.doctor.store import check_outbox, check_store
from scanner.doctor.trustlist import check_trust_list
from scanner.errors import ConfigError
from scanner.vision.aim import Aim, Figures, Summary, hints, measure
from scanner.vision.decode import DecodeError, ZbarReader, make_decoder

if TYPE_CHECKING:
    from gpiozero.pins import Factory

    from scanner.config import CameraSection

log = logging.getLogger(__name__)

# A check that has not answered by then has hung (a camera stuck in the kernel, a
# black-holed network): it is reported as failed and left behind.
CHECK_DEADLINE_S = 10.0
# Seconds of frames the camera check looks at.
CAMERA_SAMPLE_S = 1.0
MB = 1024 * 1024
# Free space below which the store cannot be trusted to take the next events.
DISK_FAIL_BYTES = 64 * MB
# What a generated test code says; the decoder check reads it back.
TEST_PAYLOAD = b"qrgate doctor: decoder self-test"


Check = Callable[[Config], Finding]


# --- Config and keys --------------------------------------------------------------------


def config_finding(found: Path | None) -> Finding:
    if found is None:
        return warning(
            "no config file: the built-in defaults apply",
            "install one at /etc/qrgate/config.toml (the installer does), or give -c FILE",
        )
    return passed(f"{found} is valid")


def bad_config_finding(error: ConfigError) -> Finding:
    return failure(error.render(), "fix each key named (qrgate check-config checks the file)")


def check_pass_keys(config: Config) -> Finding:
    if "pass" not in config.policy.accept:
        return passed('not needed: policy.accept has no "pass"')
    path = config.passes.jwks
    try:
        keys = load_jwks(path, config.passes.algorithms)
    except ConfigError as error:
        return failure(
            problems_of(error),
            f"put the public key set (JWKS) that passes are signed with at {path}",
        )
    return passed(f"{counted(len(keys), 'key')} ({', '.join(sorted(keys))}) in {path}")


def check_command_keys(config: Config) -> Finding:
    commands = config.commands
    if not commands.enabled:
        return warning(
            "disabled (commands.enabled = false): the centre cannot open, lock down or "
            "update this gate"
        )
    fix = (
        f"put the centre's command key set (JWKS) at {commands.jwks}, "
        "or set commands.enabled = false"
    )
    problem = file_problem(commands.jwks)
    if problem is not None:
        return failure(f"commands.jwks: {commands.jwks}: {problem}", fix)
    try:
        keys = load_command_keys(commands.jwks)
    except CommandKeyError as error:
        return failure(str(error), fix)
    return passed(f"{counted(len(keys), 'key')} ({', '.join(sorted(keys))}) in {commands.jwks}")


def problems_of(error: ConfigError) -> str:
    return "; ".join(str(problem) for problem in error.problems)


# --- Camera and decoder -----------------------------------------------------------------


def check_camera(config: Config) -> Finding:
    camera = config.camera
    try:
        decoder = make_decoder(camera.decoder, live_share=camera.second_look_share)
    except DecodeError:  # the decoder line says why; frames are judged all the same
        decoder = make_decoder("zxing", live_share=camera.second_look_share)
    try:
        source = open_source(camera)
    except CameraError as error:
        return failure(str(error), camera_fix(camera))
    try:
        session = Aim(source, decoder, every_s=math.inf)
        session.run(lambda _: None, seconds=CAMERA_SAMPLE_S)
    except CameraError as error:
        return failure(str(error), camera_fix(camera))
    finally:
        source.close()
    # The last frame is judged: a camera settles its exposure over the first few.
    last = None if session.latest is None else measure(session.latest.image)
    return camera_finding(source.name, session.overall(), last, camera)


def camera_finding(
    name: str, frames: Summary, last: Figures | None, camera: CameraSection
) -> Finding:
    """Judge what the camera gave: no frame fails; a last frame out of range gets advice."""
    if last is None:
        return failure(f"{name}: no frame ({frames.trouble or 'none came'})", camera_fix(camera))
    text = (
        f"{name}: {counted(frames.frames, 'frame')} at {frames.fps:.1f} fps, "
        f"brightness {last.brightness:.0f}, sharpness {last.sharpness:.0f}"
    )
    if frames.read:
        text += ", a code in view is read"
    advice = hints(last, camera, frames.fps)
    if not advice:
        return passed(text)
    problems = "; ".join(hint.problem for hint in advice)
    fixes = "; ".join(hint.fix for hint in advice)
    status: Status = "FAIL" if advice[0].severe else "WARN"
    return Finding(status, f"{text}: {problems}", fixes)


def camera_fix(camera: CameraSection) -> str:
    kind = camera.source.partition(":")[0]
    if kind == "replay":
        return "check the path in camera.source"
    if kind == "v4l2":
        return (
            "check that the webcam is plugged in and that camera.source names it "
            "(ls /dev/video*); close other programs using it"
        )
    return (
        "check the ribbon cable (rpicam-hello --list-cameras lists the camera); stop the "
        "gate first (sudo systemctl stop qrgate): the camera serves one program at a time"
    )


def check_decoder(config: Config) -> Finding:
    name = config.camera.decoder
    try:
        decoder = make_decoder(name)
    except DecodeError as error:
        return failure(str(error), 'sudo apt install libzbar0, or set camera.decoder = "auto"')
    start = time.perf_counter()
    codes = decoder.decode(generated_code())
    took_ms = (time.perf_counter() - start) * 1000
    if [code.payload for code in codes] != [TEST_PAYLOAD]:
        return failure(
            f"{decoder.name} does not read a generated test code",
            "reinstall qrgate: its decoder libraries are damaged",
        )
    text = f"{decoder.name} reads a generated test code ({took_ms:.1f} ms)"
    if name == "auto" and "pyzbar" not in decoder.name:
        try:
            ZbarReader()
        except DecodeError as error:
            text += f"; {error}"
        return warning(text, "sudo apt install libzbar0: pyzbar reads dim codes zxing-cpp misses")
    return passed(text)


def generated_code() -> NDArray[np.uint8]:
    """TEST_PAYLOAD as a QR code: black modules on white, 4 px each, quiet zone included."""
    rows = segno.make_qr(TEST_PAYLOAD).matrix_iter(scale=4, border=4)
    return np.where(np.array(list(rows), dtype=bool), 0, 255).astype(np.uint8)


# --- Pins -------------------------------------------------------------------------------

PINS_FIX = (
    "on a Raspberry Pi: sudo apt install python3-lgpio, and the user in group gpio; "
    'elsewhere set gpio.pin_factory = "mock"'
)


def check_pins(config: Config) -> Finding:
    gpio = config.gpio
    try:
        with lgpio_scratch_folder():
            factory = make_pin_factory(gpio.pin_factory)
    except PinFactoryError as error:
        return failure(str(error), PINS_FIX)
    try:
        kind, board = type(factory).__name__.removesuffix("Factory"), board_of(factory)
    finally:
        factory.close()
    if kind == "Mock":
        return warning(
            f"mock pins: a simulation, nothing is driven ({wiring(gpio)})",
            'on a gate, set gpio.pin_factory = "auto"',
        )
    return passed(f"{kind} on {board}: {wiring(gpio)}")


@contextmanager
def lgpio_scratch_folder() -> Iterator[None]:
    """Importing lgpio makes a FIFO in $LG_WD (changing into it) or in the working
    directory, and leaves it there: give it a temporary folder, so that the check leaves
    nothing behind, and come back. A $LG_WD set by the user stands."""
    if os.environ.get("LG_WD"):
        yield
        return
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="qrgate-doctor-") as scratch:
        os.environ["LG_WD"] = scratch
        try:
            yield
        finally:
            del os.environ["LG_WD"]
            os.chdir(here)


def board_of(factory: Factory) -> str:
    info = getattr(factory, "board_info", None)
    return str(getattr(info, "description", None) or "an unknown board")


def wiring(gpio: GpioSection) -> str:
    """The fitted outputs and inputs with their BCM pins, as people name them."""
    parts = [f"{ROLE_NAMES[role]} {pin}" for role, pin in output_pins(gpio).fitted()]
    inputs = input_pins(gpio)
    for field in fields(inputs):
        contact = getattr(inputs, field.name)
        if contact is not None:
            parts.append(f"{field.name.replace('_', ' ')} {contact.pin}")
    return ", ".join(parts)


# --- Clock and disk ---------------------------------------------------------------------


def check_clock(config: Config) -> Finding:
    return clock_finding(time.time(), kernel_clock_synced(), container_kind())


def clock_finding(now: float, synced: bool | None, container: str | None) -> Finding:
    shown = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    ntp_fix = (
        'timedatectl must say "System clock synchronized: yes": let the gate reach an NTP '
        "server (UDP 123), or set NTP= in /etc/systemd/timesyncd.conf"
    )
    if now < SANE_FLOOR:
        floor = time.strftime("%Y-%m-%d", time.gmtime(SANE_FLOOR))
        return failure(f"reads {shown}, before {floor}: passes cannot be judged", ntp_fix)
    if synced:
        return passed(f"synchronised: {shown}")
    if synced is None:
        return warning(f"{shown}; whether it is synchronised is unknown", "check timedatectl")
    if container:
        return warning(
            f"{shown}; the kernel says unsynchronised, and this runs in a container "
            f"({container}), whose clock the host keeps",
            "check the host's clock",
        )
    return failure(f"{shown}, not synchronised: passes may be judged by a wrong time", ntp_fix)


def container_kind() -> str | None:
    """The kind of container this runs in, if any, by the marks containers leave."""
    # systemd and podman name the variable in lower case.
    named = os.environ.get("container")  # noqa: SIM112
    if named:
        return named
    marker = Path("/run/systemd/container")
    if marker.is_file():
        return marker.read_text(encoding="utf-8").strip() or "container"
    if Path("/.dockerenv").exists():
        return "docker"
    if Path("/run/.containerenv").exists():
        return "podman"
    return None


def check_disk(config: Config) -> Finding:
    folder = nearest_folder(config.store.path.parent)
    free = shutil.disk_usage(folder).free
    return disk_finding(free, folder, config.mqtt.outbox_max_mb)


def disk_finding(free: int, folder: Path, outbox_max_mb: int) -> Finding:
    text = f"{free / MB:,.0f} MB free for {folder}"
    fix = "free some space (sudo apt clean; sudo journalctl --vacuum-size=50M)"
    if free < DISK_FAIL_BYTES:
        return failure(f"{text}: too little to record the next events safely", fix)
    if free < outbox_max_mb * MB:
        return warning(
            f"{text}, less than the outbox may take (mqtt.outbox_max_mb = {outbox_max_mb})",
            f"{fix}, or lower mqtt.outbox_max_mb",
        )
    return passed(text)


def nearest_folder(path: Path) -> Path:
    """`path` or, if it does not exist yet (or the system will not look: a name too
    long), its nearest existing parent."""
    while not is_there(path) and path != path.parent:
        path = path.parent
    return path


def is_there(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


CHECKS: tuple[tuple[str, Check], ...] = (
    ("pass keys", check_pass_keys),
    ("trust list", check_trust_list),
    ("command keys", check_command_keys),
    ("camera", check_camera),
    ("decoder", check_decoder),
    ("pins", check_pins),
    ("broker", check_broker),
    ("clock", check_clock),
    ("disk", check_disk),
    ("store", check_store),
    ("outbox", check_outbox),
)


def run_checks(
    config: Config,
    checks: tuple[tuple[str, Check], ...] = CHECKS,
    deadline_s: float = CHECK_DEADLINE_S,
) -> Iterator[Result]:
    """Run the checks in order, each given up on after `deadline_s`."""
    for name, check in checks:
        yield Result(name, bounded(check, config, deadline_s))


def bounded(check: Check, config: Config, deadline_s: float) -> Finding:
    """The check's finding, or a failure when it does not answer within `deadline_s`.

    It runs on a daemon thread, which is abandoned if it hangs: a thread stuck in the
    kernel cannot be stopped, but it must not stop the report either.
    """
    answer: queue.Queue[Finding] = queue.Queue(maxsize=1)

    def work() -> None:
        try:
            answer.put(check(config))
        except Exception as error:  # a broken check is a finding, not a crash
            log.exception("doctor: the check %s failed", check.__name__)
            answer.put(failure(f"the check itself failed: {error!r}", "report this as a bug"))

    threading.Thread(target=work, name=f"doctor-{check.__name__}", daemon=True).start()
    try:
        return answer.get(timeout=deadline_s)
    except queue.Empty:
        return failure(
            f"no answer within {deadline_s:g} s",
            "something it waits for hangs (a camera stuck in the kernel, a network that "
            "drops packets): see the system log, journalctl -b",
        )
