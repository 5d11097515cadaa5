"""Exact summary statistics over raw durations (no histogram rounding, unlike Locust's)."""

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks.

    Same definition as numpy's default ("linear"), so anyone can recompute it independently.
    """
    if not sorted_values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def summarize(durations: Sequence[float]) -> dict[str, float | None]:
    """min / mean / p50 / p95 / p99 / max in seconds; ``None`` for an empty input."""
    if not durations:
        return dict.fromkeys(("min", "mean", "p50", "p95", "p99", "max"))
    ordered = sorted(durations)
    return {
        "min": ordered[0],
        "mean": sum(ordered) / len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1],
    }
