"""The figures the benchmarks report: percentiles of timed samples, ratios to a baseline."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(values: Sequence[float], share: float) -> float:
    """The sample nearest to `share` (0 to 1) of the way through the sorted samples."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def p50_p99_max(values: Sequence[float]) -> tuple[str, str, str]:
    """The median, p99 and max, rounded to whole units; "-" each when there are none."""
    if not values:
        return "-", "-", "-"
    return (
        f"{percentile(values, 0.5):.0f}",
        f"{percentile(values, 0.99):.0f}",
        f"{max(values):.0f}",
    )


def ratio(ours: float, baseline: float) -> str:
    """Ours over the baseline, to two places; "-" without a baseline to divide by."""
    return f"{ours / baseline:.2f}" if baseline else "-"
