"""A pull load's figures: exact statistics over a window and the per-second time series.

Everything is computed from the load's per-pull records (``records``), not from Locust's
rounded histogram; see ``chaosregistry.probes.load`` for the window rules.
"""

import math
import time
from typing import Any

from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import Settings
from chaosregistry.osutil.files import write_json

from . import records
from .store import Load, find_load

# Where the epoch-vs-offset cut-over for time windows lies: a window bound at or above this is
# an epoch timestamp (2001-09-09), below it an offset in seconds from the load's start.
EPOCH_THRESHOLD = 1e9


def write_timeseries(load: Load) -> dict[str, Any]:
    """Compute the load's per-second series from its records and write timeseries.json."""
    pulls = records.read_records(load.records_dir)
    start = math.floor(load.started_at) if load.started_at else None
    series = records.timeseries(pulls, start=start, end=load.ended_at)
    series["load_id"] = load.load_id
    write_json(load.stats_dir / "timeseries.json", series)
    return series


def load_stats(load_id: str, since: float, until: float, settings: Settings) -> dict[str, Any]:
    """Exact figures of a load over a window (see probes/load.py for the window rules)."""
    for name, value in (("since", since), ("until", until)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    load = find_load(load_id, settings)
    now = time.time()
    running = load.running()
    end = now if running or load.ended_at is None else load.ended_at
    pulls = records.read_records(load.records_dir)
    # Pulls begin a moment after Locust starts: by default the window opens at the first one.
    first = pulls[0]["start"] if pulls else load.started_at
    window_start = _bound(since, load.started_at, now, first)
    window_end = _bound(until, load.started_at, now, end)
    if window_end < window_start:
        raise ConfigError(f"the window ends ({until}) before it starts ({since})")
    summary = records.summarize_window(pulls, window_start, window_end)
    return {
        "load_id": load.load_id,
        "running": running,
        "state": load.status.get("state"),
        "mode": load.spec.get("mode"),
        "users": load.spec.get("users"),
        "target_url": load.spec.get("target_url"),
        "stats_dir": str(load.stats_dir),
        **summary,
    }


def _bound(value: float, load_start: float, now: float, default: float) -> float:
    if value == 0:
        return default
    if value < 0:
        return now + value
    if value >= EPOCH_THRESHOLD:
        return float(value)
    return load_start + value
