"""Decision speed per credential kind: decisions per second and p50/p99 latency.

    .venv/bin/python -m bench.decide [--rounds N]

The policy runs as on a gate: a real SQLite store file (WAL, synchronous=FULL) holding
5,000 allowlist entries and 1,000 revoked passes, keys from a JWKS file, the system
clock. Each kind is measured beside a baseline doing the least that kind needs, in the
same run: a bare `jwt.decode` of the same token (PyJWT with the public key object), a
bare SQLite lookup of the same subject, or only the SHA-256 every decision records.
The ratio is ours / baseline at p50. Target: p99 for a pass <= 500 µs.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

from scanner.clock import SystemClock
from scanner.config import PolicySection
from scanner.credentials.keys import PrivateKey, generate_key, public_jwk, write_key_list
from scanner.credentials.passes import PassVerifier, issue_pass
from scanner.decision.policy import Policy
from scanner.state.store import AllowEntry, Store

PASS_TARGET_US = 500.0
CARD = "001099012345|123456789|Nguyễn Văn An|01011990|Nam|12 Lê Lợi, Hà Nội|15082021"


@dataclass(frozen=True)
class Timing:
    per_second: float
    p50_us: float
    p99_us: float


@dataclass(frozen=True)
class Case:
    kind: str
    ours: Callable[[], object]
    baseline_name: str
    baseline: Callable[[], object]


def measure(call: Callable[[], object], rounds: int) -> Timing:
    for _ in range(min(200, rounds)):
        call()
    gc.collect()
    samples = []
    started = time.perf_counter_ns()
    for _ in range(rounds):
        begin = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - begin)
    elapsed_s = (time.perf_counter_ns() - started) / 1e9
    quantiles = statistics.quantiles(samples, n=100, method="inclusive")
    return Timing(rounds / elapsed_s, quantiles[49] / 1e3, quantiles[98] / 1e3)


def build_store(path: Path) -> Store:
    store = Store.open(path)
    entries = [AllowEntry(f"W-{index:05d}", f"Worker {index}") for index in range(5_000)]
    store.allowlist.add_all([*entries, AllowEntry("001099012345", kinds=frozenset({"cccd"}))])
    for index in range(1_000):
        store.revocations.revoke(jti=f"revoked-{index}")
    return store


def build_keys(folder: Path) -> tuple[Path, dict[str, PrivateKey]]:
    keys: dict[str, PrivateKey] = {"EdDSA": generate_key("EdDSA"), "ES256": generate_key("ES256")}
    jwks = folder / "jwks.json"
    write_key_list(jwks, [public_jwk(key, kid) for kid, key in keys.items()])
    return jwks, keys


def cases(folder: Path) -> list[Case]:
    jwks, keys = build_keys(folder)
    store = build_store(folder / "qrgate.db")
    rules = PolicySection(accept=["pass", "badge", "cccd"], repeat_window_s=0)
    verifier = PassVerifier(jwks, ["EdDSA", "ES256"], "factory-1", rules.clock_skew_s)
    policy = Policy(rules, store, SystemClock(), verifier)
    lookup = sqlite3.connect(folder / "qrgate.db")
    now = time.time()

    def token(alg: str) -> bytes:
        return issue_pass(
            keys[alg], alg, "W-01042", now=now, valid_for_s=86_400, name="Nguyễn Văn An",
            sites=["factory-1"],
        ).encode()  # fmt: skip

    def bare_decode(alg: str, payload: bytes) -> Callable[[], object]:
        public = keys[alg].public_key()
        return lambda: jwt.decode(payload, public, algorithms=[alg])

    def bare_lookup(subject: str) -> Callable[[], object]:
        sql = (
            "SELECT subject, name, kinds, valid_from, valid_until FROM allowlist WHERE subject = ?"
        )
        return lambda: lookup.execute(sql, (subject,)).fetchone()

    def bare_hash(payload: bytes) -> Callable[[], object]:
        return lambda: hashlib.sha256(payload).hexdigest()

    eddsa, es256, card = token("EdDSA"), token("ES256"), CARD.encode()
    unknown, too_large = b"https://example.com/not-a-credential", b"W" * 3_000
    return [
        Case("pass EdDSA", lambda: policy.decide(eddsa), "jwt.decode", bare_decode("EdDSA", eddsa)),
        Case("pass ES256", lambda: policy.decide(es256), "jwt.decode", bare_decode("ES256", es256)),
        Case("badge", lambda: policy.decide(b"W-01042"), "SQLite lookup", bare_lookup("W-01042")),
        Case("cccd", lambda: policy.decide(card), "SQLite lookup", bare_lookup("001099012345")),
        Case("unknown", lambda: policy.decide(unknown), "sha256", bare_hash(unknown)),
        Case("too_large", lambda: policy.decide(too_large), "sha256", bare_hash(too_large)),
    ]


def report(rows: list[tuple[Case, Timing, Timing]]) -> None:
    head = (
        f"{'kind':<11} {'decisions/s':>11} {'p50 µs':>8} {'p99 µs':>8}   "
        f"{'baseline':<13} {'base/s':>8} {'p50 µs':>8} {'p99 µs':>8} {'ratio p50':>9}"
    )
    print(head)
    print("-" * len(head))
    for case, ours, base in rows:
        print(
            f"{case.kind:<11} {ours.per_second:>11,.0f} {ours.p50_us:>8.1f} {ours.p99_us:>8.1f}   "
            f"{case.baseline_name:<13} {base.per_second:>8,.0f} {base.p50_us:>8.1f} "
            f"{base.p99_us:>8.1f} {ours.p50_us / base.p50_us:>8.2f}x"
        )
    worst = max(ours.p99_us for case, ours, _ in rows if case.kind.startswith("pass"))
    verdict = "met" if worst <= PASS_TARGET_US else "NOT met"
    print(
        f"\ntarget: pass p99 <= {PASS_TARGET_US:.0f} µs; worst pass p99 {worst:.1f} µs: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5_000, help="decisions per kind")
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory(prefix="qrgate-bench-") as folder:
        rows = []
        for case in cases(Path(folder)):
            ours = measure(case.ours, rounds)
            rows.append((case, ours, measure(case.baseline, rounds)))
    report(rows)


if __name__ == "__main__":
    main()
