"""Per-pull records of a load run, and the figures computed from them (pure functions).

Locust's own percentiles come from a rounded histogram (exact below 100 ms, then 10 ms steps to
1 s, 100 ms steps to 10 s), so its p99 can exceed its max. Every Locust process of a load
therefore writes one JSON line per whole image pull to ``pulls-<host>-<pid>.jsonl`` in the
load's records directory, and everything here is computed from those exact durations::

    {"start": 1795890399.512, "end": 1795890399.530, "duration": 0.0181,   # epoch s, s
     "image": "shop/api:latest", "ok": true, "verified": true, "error": null, "message": null,
     "interrupted": false, "bytes": 1465202, "blobs": 3,
     "phases": {"auth": 0.0, "manifest": 0.0021, "blobs": 0.0157},          # seconds
     "worker": "host:4242", "fresh": null}

``error`` is an :class:`~chaosregistry.errors.ErrorClass` value when ``ok`` is false.
``verified`` is true for a successful pull whose blobs' sha256 were checked (``--verify-digests``;
sizes and manifest digests are checked either way).
``interrupted`` marks a pull cut short because the load stopped (neither a success nor a
failure: it counts as started only). ``fresh`` is true for a cold-mode pull of an image never
pulled before in this load, false when the cold pool ran out and an image was pulled again.

Percentiles use :func:`chaosregistry.stats.percentile` (numpy's default "linear" definition).
Latency figures cover successful pulls only; failed pulls count in ``failure_ratio``.
"""

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from chaosregistry.stats import percentile

RECORD_GLOB = "pulls-*.jsonl"


def record_file_name(worker: str) -> str:
    """The records file of one Locust process (``worker`` is ``host:pid``)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in worker)
    return f"pulls-{safe}.jsonl"


def read_records(directory: Path) -> list[dict[str, Any]]:
    """Every record under ``directory``, oldest start first.

    A line that is not a complete record (a process killed mid-write) is skipped.
    """
    records: list[dict[str, Any]] = []
    for path in sorted(directory.glob(RECORD_GLOB)):
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and _is_record(record):
                records.append(record)
    records.sort(key=lambda record: record["start"])
    return records


def _is_record(record: dict[str, Any]) -> bool:
    return all(
        isinstance(record.get(key), int | float) for key in ("start", "end", "duration")
    ) and isinstance(record.get("ok"), bool)


def _outcome(record: dict[str, Any]) -> str:
    if record.get("interrupted"):
        return "interrupted"
    return "ok" if record["ok"] else "failed"


def summarize_window(
    records: Iterable[dict[str, Any]], window_start: float, window_end: float
) -> dict[str, Any]:
    """Figures over the pulls that ENDED in ``[window_start, window_end)`` (epoch seconds).

    Keys (all top level, so Chaos Toolkit tolerances can target them):
      ``pulls`` successful pulls, ``failed``, ``interrupted``, ``attempts`` (pulls + failed),
      ``started`` (pulls that began in the window), ``pulls_per_second`` (successful pulls /
      window seconds), ``failure_ratio`` (failed / attempts; null without attempts),
      ``p50`` ``p95`` ``p99`` ``max`` ``min`` ``mean`` (seconds, successful pulls; null when
      none), ``bytes`` and ``bytes_per_second`` (successful pulls), ``fresh_pulls`` (cold-mode
      pulls of never-pulled images), ``failures_by_class`` {error class: count},
      ``window_start``, ``window_end``, ``window_seconds``.
    """
    seconds = max(0.0, window_end - window_start)
    durations: list[float] = []
    outcomes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    started = 0
    total_bytes = 0
    fresh = 0
    for record in records:
        if window_start <= record["start"] < window_end:
            started += 1
        if not window_start <= record["end"] < window_end:
            continue
        outcome = _outcome(record)
        outcomes[outcome] += 1
        if outcome == "ok":
            durations.append(float(record["duration"]))
            total_bytes += int(record.get("bytes") or 0)
            if record.get("fresh"):
                fresh += 1
        elif outcome == "failed":
            failures[str(record.get("error") or "unknown")] += 1
    durations.sort()
    attempts = outcomes["ok"] + outcomes["failed"]
    return {
        "pulls": outcomes["ok"],
        "failed": outcomes["failed"],
        "interrupted": outcomes["interrupted"],
        "attempts": attempts,
        "started": started,
        "pulls_per_second": outcomes["ok"] / seconds if seconds > 0 else 0.0,
        "failure_ratio": outcomes["failed"] / attempts if attempts else None,
        **latency_summary(durations),
        "bytes": total_bytes,
        "bytes_per_second": total_bytes / seconds if seconds > 0 else 0.0,
        "fresh_pulls": fresh,
        "failures_by_class": dict(sorted(failures.items())),
        "window_start": window_start,
        "window_end": window_end,
        "window_seconds": seconds,
    }


def latency_summary(sorted_durations: Sequence[float]) -> dict[str, float | None]:
    """p50 / p95 / p99 / max / min / mean of sorted durations; None each when empty."""
    if not sorted_durations:
        return dict.fromkeys(("p50", "p95", "p99", "max", "min", "mean"))
    return {
        "p50": percentile(sorted_durations, 50),
        "p95": percentile(sorted_durations, 95),
        "p99": percentile(sorted_durations, 99),
        "max": sorted_durations[-1],
        "min": sorted_durations[0],
        "mean": math.fsum(sorted_durations) / len(sorted_durations),
    }


def timeseries(
    records: Sequence[dict[str, Any]],
    *,
    start: float | None = None,
    end: float | None = None,
    step: float = 1.0,
) -> dict[str, Any]:
    """Per-``step`` series of a load, for charts on the same timeline as the faults.

    Bucket ``i`` covers ``[start + i*step, start + (i+1)*step)``. A pull counts as started in
    the bucket of its start and as completed (ok), failed or interrupted in the bucket of its
    end; latency percentiles are over the pulls completed in the bucket (null when none).
    ``start`` defaults to the earliest start rounded down to a whole second, ``end`` to the
    latest end. Returns columns of equal length::

        {"start": epoch, "step": 1.0, "t": [epoch...], "offset": [0.0, 1.0, ...],
         "started": [...], "completed": [...], "failed": [...], "interrupted": [...],
         "p50": [...], "p95": [...], "p99": [...], "max": [...]}
    """
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if start is None:
        start = math.floor(min((r["start"] for r in records), default=0.0))
    if end is None:
        end = max((r["end"] for r in records), default=start)
    buckets = max(0, math.ceil((end - start) / step - 1e-9))
    if records and end >= start and buckets == 0:
        buckets = 1
    started = [0] * buckets
    completed = [0] * buckets
    failed = [0] * buckets
    interrupted = [0] * buckets
    latencies: list[list[float]] = [[] for _ in range(buckets)]

    def bucket(moment: float) -> int | None:
        index = math.floor((moment - start) / step)
        return index if 0 <= index < buckets else None

    for record in records:
        first = bucket(record["start"])
        if first is not None:
            started[first] += 1
        last = bucket(record["end"])
        if last is None:
            continue
        outcome = _outcome(record)
        if outcome == "ok":
            completed[last] += 1
            latencies[last].append(float(record["duration"]))
        elif outcome == "failed":
            failed[last] += 1
        else:
            interrupted[last] += 1
    summaries = [latency_summary(sorted(values)) for values in latencies]
    return {
        "start": start,
        "step": step,
        "t": [start + index * step for index in range(buckets)],
        "offset": [index * step for index in range(buckets)],
        "started": started,
        "completed": completed,
        "failed": failed,
        "interrupted": interrupted,
        "p50": [s["p50"] for s in summaries],
        "p95": [s["p95"] for s in summaries],
        "p99": [s["p99"] for s in summaries],
        "max": [s["max"] for s in summaries],
    }
