"""The issuing examples of docs/passes.md, run as an outside issuer would run them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.clock import SystemClock
from scanner.config import PolicySection
from scanner.credentials.keys import create_signing_key
from scanner.credentials.passes import PassVerifier
from scanner.decision.policy import Policy
from scanner.state.store import Store

DOC = Path(__file__).resolve().parent.parent / "docs" / "passes.md"


def example(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)
    (issuer,) = [block for block in blocks if "Issue a qrgate pass" in block]
    return issuer


@pytest.mark.parametrize(
    ("language", "runner", "suffix"),
    [("python", sys.executable, ".py"), ("js", "node", ".mjs")],
)
@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_documented_issuers_make_passes_the_gate_grants(
    tmp_path: Path, language: str, runner: str, suffix: str, algorithm: str
) -> None:
    program = shutil.which(runner)
    if program is None:
        pytest.skip(f"{runner} is not installed")
    script = tmp_path / f"issue_pass{suffix}"
    script.write_text(example(language))
    key_path, jwks = create_signing_key(tmp_path, "doc-key", algorithm)  # type: ignore[arg-type]
    done = subprocess.run(
        [program, str(script), str(key_path), "doc-key", "W-1042", "Nguyễn Văn An"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    verifier = PassVerifier(jwks, ["EdDSA", "ES256"], "factory-1", 60)
    policy = Policy(PolicySection(), Store.in_memory(), SystemClock(), verifier)
    decision = policy.evaluate(done.stdout.strip().encode())
    assert (decision.reason, decision.subject, decision.name) == ("ok", "W-1042", "Nguyễn Văn An")
