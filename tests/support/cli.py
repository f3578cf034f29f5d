"""Running `qrgate` as a separate process, as a technician or systemd does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QRGATE = (sys.executable, "-m", "scanner")
HEAVY = ("numpy", "zxingcpp", "jwt", "paho", "gpiozero", "cryptography", "PIL")


def qrgate(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `qrgate ARGS` from the repository root; the caller's pin factory is not
    inherited, so a test's config decides it."""
    inherited = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    return subprocess.run(
        [*QRGATE, *(str(arg) for arg in args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
        env={**inherited, **(env or {})},
    )


def heavy_imports(argv: list[str], expected_code: int = 0) -> list[str]:
    """Which heavy libraries a fresh interpreter has loaded after running `qrgate ARGV`."""
    code = (
        "import sys; from scanner.cli import run; "
        f"assert run({argv!r}) == {expected_code}; "
        f"print('loaded:', *sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.splitlines()[-1].split()
    assert loaded[:1] == ["loaded:"], done.stdout
    return loaded[1:]
