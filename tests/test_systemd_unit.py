"""The systemd units: `systemd-analyze verify` passes, and they hold what the gate needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from scanner.config import DEFAULT_PATHS, CameraSection, StoreSection

ROOT = Path(__file__).resolve().parent.parent
GATE_UNIT = ROOT / "systemd" / "qrgate.service"
MONITOR_UNIT = ROOT / "systemd" / "qrgate-monitor.service"
INSTALLED_QRGATE = "/opt/qrgate/venv/bin/qrgate"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections of a unit file, each key with all its values in order (keys may repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] = defaultdict(list)
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), defaultdict(list))
            continue
        key, _, value = line.partition("=")
        section[key.strip()].append(value.strip())
    return unit


def seconds(span: str) -> float:
    """A systemd time span such as `20s`, `500ms` or `2min`."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|min)?", span)
    assert match, f"unexpected time span {span!r}"
    return float(match[1]) * {"ms": 0.001, "s": 1.0, None: 1.0, "min": 60.0}[match[2]]


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(GATE_UNIT.read_text())["Service"]


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key, [])
    assert len(values) == 1, f"{key}= should be set once, found {values}"
    return values[0]


def verify(unit: Path, tmp_path: Path, edit: tuple[str, str] = ("", "")) -> str:
    """Run `systemd-analyze verify` on a copy of `unit`; return what it said about it.

    The copy runs a stub at the installed path's place, since verify checks that
    ExecStart= binaries exist and /opt/qrgate is not installed on this machine.
    """
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    stub = tmp_path / "bin" / "qrgate"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = unit.read_text().replace(INSTALLED_QRGATE, str(stub)).replace(*edit)
    copy = tmp_path / unit.name
    copy.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Lines about other units come from the host's own configuration, not from ours.
    said = [line for line in (done.stdout + done.stderr).splitlines() if unit.stem in line]
    return f"exit {done.returncode}\n" + "\n".join(said)


@pytest.mark.parametrize("unit", [GATE_UNIT, MONITOR_UNIT], ids=lambda path: path.name)
def test_unit_passes_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    assert verify(unit, tmp_path) == "exit 0\n"


def test_verify_would_catch_a_misspelt_directive(tmp_path: Path) -> None:
    said = verify(GATE_UNIT, tmp_path, ("WatchdogSec=", "WatchdogSecs="))
    assert "Unknown key 'WatchdogSecs'" in said


def test_installed_command_is_what_the_unit_runs(service: dict[str, list[str]]) -> None:
    assert one(service, "ExecStart") == f"{INSTALLED_QRGATE} run"
    assert one(service, "ExecStopPost") == f"{INSTALLED_QRGATE} safe-state"
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"


def test_notify_protocol_and_watchdog(service: dict[str, list[str]]) -> None:
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    watchdog = seconds(one(service, "WatchdogSec"))
    # The daemon's own camera recovery (a stall, then a restart) acts before systemd's.
    camera = CameraSection()
    assert watchdog >= 2 * (camera.stall_s + camera.capture_timeout_s)


def test_restarts_for_ever_except_on_bad_config(service: dict[str, list[str]]) -> None:
    unit = parse_unit(GATE_UNIT.read_text())["Unit"]
    assert one(service, "Restart") == "always"
    assert seconds(one(service, "RestartSec")) >= 1
    assert one(unit, "StartLimitIntervalSec") == "0"
    assert "78" in one(service, "RestartPreventExitStatus").split()


def test_stops_in_time_and_kills_leftovers(service: dict[str, list[str]]) -> None:
    assert seconds(one(service, "TimeoutStopSec")) > 2  # the daemon stops within 2 s
    assert one(service, "KillMode") == "mixed"


def test_runs_as_its_own_user_with_gpio_and_camera_groups(service: dict[str, list[str]]) -> None:
    assert one(service, "User") == "qrgate"
    assert one(service, "Group") == "qrgate"
    assert set(one(service, "SupplementaryGroups").split()) == {"gpio", "video"}


def test_directories_match_the_config_defaults(service: dict[str, list[str]]) -> None:
    state = Path("/var/lib") / one(service, "StateDirectory")
    config = Path("/etc") / one(service, "ConfigurationDirectory")
    assert state == StoreSection().path.parent
    assert one(service, "WorkingDirectory") == str(state)  # writable, for lgpio's FIFO
    assert f"LG_WD={state}" in service["Environment"]
    assert f"QRGATE_CONFIG={config / 'config.toml'}" in service["Environment"]
    assert config / "config.toml" == DEFAULT_PATHS[0]


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "DevicePolicy": "closed",
    "LockPersonality": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
}


@pytest.mark.parametrize(("key", "value"), HARDENING.items())
def test_hardened(service: dict[str, list[str]], key: str, value: str) -> None:
    assert one(service, key) == value


def test_hardening_still_allows_gpio_and_the_camera(service: dict[str, list[str]]) -> None:
    allowed = {entry.split()[0]: entry.split()[1] for entry in service["DeviceAllow"]}
    assert allowed == {
        "char-gpiochip": "rw",
        "char-*gpiomem": "rw",  # RPi.GPIO: bcm2835-gpiomem or rpi-gpiomem, by kernel
        "char-video4linux": "rw",  # /dev/video*, /dev/v4l-subdev*
        "char-media": "rw",
        "char-dma_heap": "rw",
    }
    assert "PrivateDevices" not in service  # it would hide every one of them
    assert "ProcSubset" not in service  # gpiozero reads /proc/cpuinfo to know the board
    # Whether the clock is synchronised (adjtimex) stays readable: events are flagged
    # when it is not. ProtectClock= would deny that query too.
    assert "adjtimex" in service["SystemCallFilter"][-1].split()
    assert "ProtectClock" not in service
    assert set(one(service, "RestrictAddressFamilies").split()) == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
    }


def test_no_device_path_that_only_some_boards_have(service: dict[str, list[str]]) -> None:
    # A path (/dev/gpiomem is missing on a Pi 5) is warned about at every start; a
    # device group a board lacks is skipped quietly.
    assert [entry for entry in service["DeviceAllow"] if entry.startswith("/")] == []


def test_camera_modules_are_loaded_before_the_device_groups_are_resolved() -> None:
    # char-video4linux and char-media resolve only when videodev and mc are loaded; a
    # service started before udev loads them would keep the camera locked out.
    unit = parse_unit(GATE_UNIT.read_text())["Unit"]
    groups = {
        entry.split()[0] for entry in parse_unit(GATE_UNIT.read_text())["Service"]["DeviceAllow"]
    }
    modules = {"char-video4linux": "videodev", "char-media": "mc"}
    wants = " ".join(unit["Wants"]).split()
    after = " ".join(unit["After"]).split()
    for group, module in modules.items():
        assert group in groups
        assert f"modprobe@{module}.service" in wants
        assert f"modprobe@{module}.service" in after


def test_memory_backstop_is_above_the_target(service: dict[str, list[str]]) -> None:
    limit = one(service, "MemoryMax")
    assert limit.endswith("M")
    assert int(limit[:-1]) >= 4 * 72  # over four times the 72 MB target, as install.md says


def test_secrets_by_load_credential_are_documented() -> None:
    text = GATE_UNIT.read_text()
    assert "LoadCredential=mqtt-password:/etc/qrgate/mqtt-password" in text
    assert 'password_file = "mqtt-password"' in text


def test_enabled_for_boot() -> None:
    for unit in (GATE_UNIT, MONITOR_UNIT):
        assert parse_unit(unit.read_text())["Install"]["WantedBy"] == ["multi-user.target"]


def test_monitor_runs_the_monitor_from_its_environment_file() -> None:
    service = parse_unit(MONITOR_UNIT.read_text())["Service"]
    assert one(service, "ExecStart").startswith(
        f"{INSTALLED_QRGATE} monitor --quiet --broker ${{QRGATE_MONITOR_BROKER}} "
        "--db ${QRGATE_MONITOR_DB}"
    )
    assert one(service, "EnvironmentFile") == "/etc/qrgate/monitor.env"
    assert one(service, "RestartPreventExitStatus") == "78"


SANDBOXED = ROOT / "systemd" / "qrgate-sandboxed"
LIFE_CYCLE = {"Type", "NotifyAccess", "ExecStart", "ExecReload", "ExecStopPost", "Restart"}


def fake_systemd(folder: Path, active: bool) -> dict[str, str]:
    """systemctl (is-active, cat) and systemd-run stand-ins on PATH; systemd-run prints
    its arguments, one per line."""
    folder.mkdir()
    (folder / "systemctl").write_text(
        "#!/bin/sh\n"
        f'[ "$1" = is-active ] && exit {0 if active else 3}\n'
        f'[ "$1" = cat ] && exec cat "{GATE_UNIT}"\n'
        "exit 1\n"
    )
    (folder / "systemd-run").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    for tool in ("systemctl", "systemd-run"):
        (folder / tool).chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin"}


def run_sandboxed(tmp_path: Path, active: bool, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SANDBOXED), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=fake_systemd(tmp_path / "bin", active),
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="qrgate-sandboxed runs as root")
def test_sandboxed_runs_the_command_with_every_setting_of_the_service(
    tmp_path: Path, service: dict[str, list[str]]
) -> None:
    done = run_sandboxed(tmp_path, False, "doctor")
    assert done.returncode == 0, done.stderr
    words = done.stdout.splitlines()
    assert words[-3:] == ["--", INSTALLED_QRGATE, "doctor"]
    passed = [words[i + 1] for i, word in enumerate(words) if word == "-p"]
    expected = [
        f"{key}={value}"
        for key, values in service.items()
        for value in values
        if key not in LIFE_CYCLE
        and not key.startswith(("Restart", "Timeout"))
        and key not in ("WatchdogSec", "KillMode")
    ]
    assert sorted(passed) == sorted(expected)
    for setting in ("User=qrgate", "DevicePolicy=closed", "DeviceAllow=char-gpiochip rw"):
        assert setting in passed


def test_sandboxed_refuses_while_the_gate_runs(tmp_path: Path) -> None:
    done = run_sandboxed(tmp_path, True, "aim")
    assert done.returncode == 1
    if os.geteuid() == 0:
        assert "holds the camera and the GPIO lines: sudo systemctl stop qrgate" in done.stderr
    else:
        assert "needs root" in done.stderr


def test_sandboxed_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: run the README's test command, which installs it")
    done = subprocess.run(
        ["shellcheck", str(SANDBOXED)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout
