"""systemd/install.sh, run with --root into a temp folder: the tree, re-runs, uninstall."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scanner import __version__

ROOT = Path(__file__).resolve().parent.parent
INSTALLER = ROOT / "systemd" / "install.sh"


def system_python() -> str:
    """The interpreter a Pi would use: Debian's, when it can make venvs; else ours."""
    debian = Path("/usr/bin/python3")
    probe = [str(debian), "-c", "import ensurepip, venv"]
    if debian.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return str(debian)
    return sys.executable


def install(*args: str, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installer (optionally through `user`, a command that drops root)."""
    return subprocess.run(
        [*(user or []), str(INSTALLER), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHON": system_python()},
    )


def staged(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = install("--root", str(target), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_stages_the_whole_tree(tmp_path: Path) -> None:
    done = staged(tmp_path, "--no-venv")
    config = tmp_path / "etc/qrgate/config.toml"
    unit = tmp_path / "etc/systemd/system/qrgate.service"
    assert config.read_text() == (ROOT / "config.toml").read_text()
    assert mode(config) == 0o640
    assert unit.read_text() == (ROOT / "systemd/qrgate.service").read_text()
    assert mode(unit) == 0o644
    assert mode(tmp_path / "etc/qrgate") == 0o755
    assert mode(tmp_path / "var/lib/qrgate") == 0o700
    assert os.readlink(tmp_path / "usr/local/bin/qrgate") == "/opt/qrgate/venv/bin/qrgate"
    assert (tmp_path / "opt/qrgate/docs/install.md").read_text() == (
        ROOT / "docs/install.md"
    ).read_text()
    assert not (tmp_path / "opt/qrgate/venv").exists()
    assert "skipped (--no-venv)" in done.stdout
    sandboxed = tmp_path / "usr/local/sbin/qrgate-sandboxed"
    assert sandboxed.read_text() == (ROOT / "systemd/qrgate-sandboxed").read_text()
    assert mode(sandboxed) == 0o755


def test_shows_the_system_commands_it_would_run(tmp_path: Path) -> None:
    lines = staged(tmp_path, "--no-venv").stdout.splitlines()
    shown = [line.removeprefix("would run: ") for line in lines if line.startswith("would run")]
    assert shown == [
        "apt-get install -y --no-install-recommends "
        "python3-picamera2 python3-lgpio python3-venv libzbar0 python3-rpi.gpio",
        "groupadd --system gpio",
        "groupadd --system video",
        "useradd --system --user-group --home-dir /var/lib/qrgate --no-create-home "
        "--shell /usr/sbin/nologin --comment 'qrgate gate daemon' qrgate",
        "usermod --append --groups gpio,video qrgate",
        "chown qrgate:qrgate /var/lib/qrgate",
        "chgrp qrgate /etc/qrgate/config.toml",
        "systemctl daemon-reload",
        "systemctl enable qrgate.service",
        "systemctl restart qrgate.service",
    ]


def test_rerun_keeps_the_config_and_replaces_the_unit(tmp_path: Path) -> None:
    staged(tmp_path, "--no-venv")
    config = tmp_path / "etc/qrgate/config.toml"
    unit = tmp_path / "etc/systemd/system/qrgate.service"
    config.write_text('[gate]\nid = "gate-7"\n')
    unit.write_text("[Service]\nExecStart=/old/qrgate run\n")

    done = staged(tmp_path, "--no-venv")
    assert config.read_text() == '[gate]\nid = "gate-7"\n'
    assert "kept /etc/qrgate/config.toml" in done.stdout
    assert "chgrp" not in done.stdout
    assert unit.read_text() == (ROOT / "systemd/qrgate.service").read_text()


def test_no_start_enables_without_starting(tmp_path: Path) -> None:
    done = staged(tmp_path, "--no-venv", "--no-start")
    assert "would run: systemctl enable qrgate.service" in done.stdout
    assert "systemctl restart" not in done.stdout
    assert "not started" in done.stdout


EVENT_KEY = "would run: /opt/qrgate/venv/bin/qrgate event-key -c /etc/qrgate/config.toml"


def test_shows_the_event_key_of_a_configured_gate_before_starting_it(tmp_path: Path) -> None:
    fresh = staged(tmp_path, "--no-venv").stdout
    assert EVENT_KEY not in fresh  # the defaults name no real gate yet
    assert "once [gate] site and id are set: sudo qrgate event-key, and enroll" in fresh
    (tmp_path / "etc/qrgate/config.toml").write_text('[gate]\nsite = "s-2"\nid = "gate-7"\n')
    lines = staged(tmp_path, "--no-venv").stdout.splitlines()
    assert lines.index(EVENT_KEY) < lines.index("would run: systemctl restart qrgate.service")


def test_uninstall_keeps_config_and_state_unless_purged(tmp_path: Path) -> None:
    staged(tmp_path, "--no-venv")
    (tmp_path / "opt/qrgate/venv/bin").mkdir(parents=True)
    (tmp_path / "var/lib/qrgate/qrgate.db").write_bytes(b"unsent events")
    (tmp_path / "etc/systemd/system/qrgate.service.d").mkdir()

    done = staged(tmp_path, "--uninstall")
    shown = [line for line in done.stdout.splitlines() if line.startswith("would run")]
    assert shown[0] == "would run: systemctl disable --now qrgate.service"
    assert "would run: userdel qrgate" in shown
    assert not (tmp_path / "opt/qrgate").exists()
    assert not (tmp_path / "etc/systemd/system/qrgate.service").exists()
    assert not (tmp_path / "usr/local/sbin/qrgate-sandboxed").exists()
    assert not (tmp_path / "usr/local/bin/qrgate").is_symlink()
    assert (tmp_path / "etc/qrgate/config.toml").is_file()
    assert (tmp_path / "var/lib/qrgate/qrgate.db").read_bytes() == b"unsent events"
    assert "--purge removes them" in done.stdout

    staged(tmp_path, "--uninstall", "--purge")
    for gone in ("etc/qrgate", "var/lib/qrgate", "etc/systemd/system/qrgate.service.d"):
        assert not (tmp_path / gone).exists(), gone


def test_uninstall_leaves_someone_elses_qrgate_command(tmp_path: Path) -> None:
    link = tmp_path / "usr/local/bin/qrgate"
    link.parent.mkdir(parents=True)
    link.symlink_to("/home/pi/qrgate/.venv/bin/qrgate")
    staged(tmp_path, "--uninstall")
    assert os.readlink(link) == "/home/pi/qrgate/.venv/bin/qrgate"


def test_refuses_politely_without_root() -> None:
    # Off --root it needs root; as root ourselves, drop to nobody to see the refusal.
    drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    done = install("--no-start", user=drop if os.geteuid() == 0 else None)
    assert done.returncode == 1
    assert "needs root: sudo " in done.stderr
    assert "--no-start" in done.stderr
    assert done.stdout == ""


def test_refuses_a_32_bit_system(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "dpkg").write_text('#!/bin/sh\n[ "$1" = --print-architecture ] && echo armhf\n')
    (tools / "dpkg").chmod(0o755)
    done = subprocess.run(
        [str(INSTALLER), "--root", str(tmp_path / "root"), "--no-venv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"},
    )
    assert done.returncode == 1
    assert "this is a armhf system: qrgate needs 64-bit Raspberry Pi OS" in done.stderr
    assert not (tmp_path / "root/etc/qrgate").exists()


def staged_dpkg(root: Path, packages: dict[str, str]) -> None:
    """A dpkg database in the staged system with these packages installed."""
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    (status.parent / "info").mkdir()
    status.write_text(
        "".join(
            f"Package: {name}\nStatus: install ok installed\nVersion: {version}\n"
            "Architecture: all\nMaintainer: x\nDescription: x\n\n"
            for name, version in packages.items()
        )
    )


@pytest.mark.parametrize(("version", "refused"), [("0.3.19-1", True), ("0.3.20-1", False)])
def test_refuses_a_picamera2_without_capture_timeouts(
    tmp_path: Path, version: str, refused: bool
) -> None:
    staged_dpkg(tmp_path, {"python3-picamera2": version})
    done = install("--root", str(tmp_path), "--no-venv")
    assert (done.returncode == 1) is refused, done.stderr
    if refused:
        assert f"python3-picamera2 {version} is older than 0.3.20" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown option: --bogus"),
        (["--purge"], "--purge goes with --uninstall"),
        (["--no-venv"], "--no-venv is for --root staging only"),
        (["--root"], "--root needs a folder"),
        (["--root", "/"], "--root / is the real system"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    done = install(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_help_shows_the_usage() -> None:
    done = install("--help")
    assert done.returncode == 0
    assert "sudo systemd/install.sh --uninstall --purge" in done.stdout
    assert "set -euo" not in done.stdout


def test_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: run the README's test command, which installs it")
    done = subprocess.run(
        ["shellcheck", str(INSTALLER)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout


def checkout_listing() -> set[str]:
    skip = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}
    return {path.name for path in ROOT.iterdir() if path.name not in skip}


@pytest.mark.slow
@pytest.mark.timeout(300)  # pip builds and installs qrgate with its dependencies
def test_builds_the_venv_and_checks_the_config(tmp_path: Path) -> None:
    before = checkout_listing()
    done = staged(tmp_path, "--no-start")
    venv = tmp_path / "opt/qrgate/venv"
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    version = subprocess.run(
        [str(venv / "bin/qrgate"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"qrgate, version {__version__}"
    assert f"installed qrgate, version {__version__}" in done.stdout
    assert "==> checking /etc/qrgate/config.toml" in done.stdout
    assert checkout_listing() == before  # built from a copy: no build/ or egg-info here
    shown = event_key(venv, tmp_path)  # what the installer runs on a configured gate
    assert re.fullmatch(
        r"gate        s-2/gate-7\npublic key  (\S{43})\nkey id      \S{43}\n"
        r"enroll it at the monitor with:\n  qrgate gates enroll s-2/gate-7 \1 --db URL\n",
        shown,
    ), shown

    # A re-run reuses the venv; a config the new version rejects is named, not started.
    venv_made = (venv / "pyvenv.cfg").stat().st_mtime_ns
    (tmp_path / "etc/qrgate/config.toml").write_text("[gpio]\nrealy = 17\n")
    done = install("--root", str(tmp_path))
    assert done.returncode == 78
    assert "gpio.realy = 17: unknown key" in done.stderr
    assert "would run: systemctl enable qrgate.service" in done.stdout
    assert "would run: systemctl restart" not in done.stdout
    assert "fix /etc/qrgate/config.toml" in done.stdout
    assert (venv / "pyvenv.cfg").stat().st_mtime_ns == venv_made


def event_key(venv: Path, folder: Path) -> str:
    """`qrgate event-key` from the installed venv, for a gate configured in `folder`."""
    config = folder / "gate.toml"
    state = folder / "gate-state" / "qrgate.db"
    config.write_text(f'[gate]\nsite = "s-2"\nid = "gate-7"\n[store]\npath = "{state}"\n')
    done = subprocess.run(
        [str(venv / "bin/qrgate"), "event-key", "-c", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == f"made a new event key: {state.parent / 'event-key.pem'}\n"
    return done.stdout


def setup_arguments(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What setup.py hands to setuptools."""
    import runpy

    import setuptools

    seen: dict[str, Any] = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: seen.update(kwargs))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    return seen


def wanted(requirements: list[str], machine: str, python: str) -> dict[str, Any]:
    """The requirements that apply on a machine, by project name."""
    from packaging.requirements import Requirement

    env = {"platform_machine": machine, "python_version": python}
    chosen: dict[str, Any] = {}
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(env):
            assert requirement.name not in chosen, f"{requirement.name} twice on {machine}"
            chosen[requirement.name] = requirement.specifier
    return chosen


def test_raspberry_pi_os_keeps_its_numpy_1(monkeypatch: pytest.MonkeyPatch) -> None:
    # apt's picamera2 is built for Bookworm's numpy 1.24: numpy 2 in the venv (pulled in
    # by OpenCV 4.12 and newer) makes `import picamera2` fail.
    setup = setup_arguments(monkeypatch)
    extras = setup["extras_require"]
    for requirements in (setup["install_requires"], extras["webcam"], extras["dev"]):
        bookworm = wanted(requirements, "aarch64", "3.11")
        if "numpy" in bookworm:
            assert "1.24.2" in bookworm["numpy"]
            assert "2.0.0" not in bookworm["numpy"]
        if "opencv-python-headless" in bookworm:
            assert "4.11.0.86" in bookworm["opencv-python-headless"]  # allows numpy 1.x
            assert "4.12.0.88" not in bookworm["opencv-python-headless"]  # needs numpy 2
    elsewhere = wanted(extras["webcam"], "x86_64", "3.11")
    assert "5.0.0.93" in elsewhere["opencv-python-headless"]
    trixie = wanted(setup["install_requires"], "aarch64", "3.13")  # numpy 2 from apt
    assert "2.2.4" in trixie["numpy"]


def test_64_bit_only(monkeypatch: pytest.MonkeyPatch) -> None:
    extras = setup_arguments(monkeypatch)["extras_require"]
    assert "armv7l" not in " ".join(extras["pi"])
    assert "RPi.GPIO" in " ".join(wanted(extras["pi"], "aarch64", "3.11"))
