"""The benchmarks' own readings: the units their ratios are taken between, what they list."""

from __future__ import annotations

from pathlib import Path

from bench.gate_daemon import importable
from bench.mqtt import peak_rss_mb, rss_mb


def status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {key}")


def test_bench_mqtt_reads_peak_and_idle_memory_in_the_same_unit() -> None:
    """bench.mqtt reports the peak over the idle RSS: both in MB of 10^6 bytes, from the
    kernel's kB of 1024 bytes (a peak read as kB / 1000 came out 2.4 % short)."""
    idle = rss_mb()
    before = status_kib("VmHWM") * 1024 / 1e6
    peak = peak_rss_mb()
    after = status_kib("VmHWM") * 1024 / 1e6
    assert before <= peak <= after
    assert idle <= peak


def test_bench_gate_lists_only_the_packages_the_daemon_could_import() -> None:
    """`-X importtime` logs failed imports as well: msvcrt is tried, and fails, on Linux."""
    assert importable({"json", "msvcrt", "nt", "_winapi"}) == ["json"]
