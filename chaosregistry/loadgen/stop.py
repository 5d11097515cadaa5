"""Stop pull loads (``stop_pull_load``, the undo partner of ``start_pull_load``) and settle
what a load leaves: its status file, its time series, its whole-load summary."""

import math
import time
from pathlib import Path
from typing import Any

from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import Settings
from chaosregistry.faults.injection import ledger_for
from chaosregistry.faults.ledger import Entry, RevertReason
from chaosregistry.faults.lifecycle import revert
from chaosregistry.osutil.files import write_json
from chaosregistry.osutil.identity import marked_processes

from . import records
from .parameters import STOP_GRACE
from .processes import terminate_group
from .stats import write_timeseries
from .store import Load, LoadError, find_load, ledger_loads

# How often a waiting stop looks whether the load has ended by itself.
WAIT_POLL = 0.2


def stop_loads(load_id: str, settings: Settings, *, wait: bool = False) -> dict[str, Any]:
    """Stop the load ``load_id`` (every active load when empty), verify that none of its
    processes is left, write its time series; returns what was stopped.

    ``wait``: first let each load end by itself (Locust counts its duration from its own start,
    so a load started on a busy machine ends later than ``duration`` after the action returned),
    stopping it only at its ledger expiry."""
    if not isinstance(load_id, str):
        raise ConfigError(f"load_id must be a string, got {load_id!r}")
    ledger = ledger_for(settings)
    entries = [
        entry
        for entry in ledger_loads(settings)
        if entry.active and (not load_id or entry.parameters.get("load_id") == load_id)
    ]
    if wait:
        for entry in entries:
            _wait_for_end(entry)
    loads: dict[str, Load] = {}
    for entry in entries:
        revert(ledger, entry.id, RevertReason.ROLLBACK)
        stats_dir = entry.parameters.get("stats_dir")
        if isinstance(stats_dir, str) and (Path(stats_dir) / "load.json").is_file():
            loads[str(entry.parameters.get("load_id"))] = Load.read(Path(stats_dir))
    if load_id and load_id not in loads:
        loads[load_id] = find_load(load_id, settings)  # ended already, or another ledger
    stopped = []
    for load in loads.values():
        _make_sure_stopped(load)
        stopped.append(finish(Load.read(load.stats_dir)))
    return {"stopped": stopped, "count": len(stopped)}


def _wait_for_end(entry: Entry) -> None:
    """Until the load of ``entry`` has no process left, or its ledger entry expires."""
    stats_dir = entry.parameters.get("stats_dir")
    if not isinstance(stats_dir, str) or not (Path(stats_dir) / "load.json").is_file():
        return
    load = Load.read(Path(stats_dir))
    while load.running() and not entry.expired():
        time.sleep(WAIT_POLL)


def _make_sure_stopped(load: Load) -> None:
    identity = load.identity()
    if identity is not None:
        terminate_group(identity, grace=STOP_GRACE, marker=str(load.spec.get("tag", "")))
    left = marked_processes(str(load.spec.get("tag", "")))
    if left:
        raise LoadError(f"load {load.load_id}: processes still running: {left}")


def finish(load: Load) -> dict[str, Any]:
    """For a load whose processes are gone: settle status.json, write timeseries.json,
    return the load's summary."""
    status = dict(load.status)
    if status.get("state") in (None, "waiting", "running"):
        status["state"] = "stopped"
        status.setdefault("ended_at", time.time())
        write_json(load.stats_dir / "status.json", status)
        load = Load.read(load.stats_dir)
    series = write_timeseries(load)
    pulls = records.read_records(load.records_dir)
    first = pulls[0]["start"] if pulls else load.started_at
    end = max([load.ended_at or time.time()] + [pull["end"] for pull in pulls])
    summary = records.summarize_window(pulls, first, math.nextafter(end, math.inf))
    return {
        "load_id": load.load_id,
        "stats_dir": str(load.stats_dir),
        "state": load.status.get("state"),
        "timeseries_file": str(load.stats_dir / "timeseries.json"),
        "seconds": len(series["t"]),
        **summary,
    }
