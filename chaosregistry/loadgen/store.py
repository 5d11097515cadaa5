"""Where a pull load's files live and what they say; finding a load by id.

A load's stats directory, ``<load_dir>/<load_id>`` (``load_dir`` is configuration ``load_dir``,
else ``<configuration run_dir or $CHAOSREGISTRY_RUN_DIR>/load``, else ``./runs/load``; parsed
into ``Settings.load_dir``)::

    load.json        what was started: parameters, Locust's command line (no secret), identity
    status.json      the supervisor's account: state (running, finished, stopped, overran,
                     cancelled), Locust's pid and exit code, started_at / ended_at (epoch s)
    images.json      the image mix handed to Locust
    pulls/           exact per-pull records, one JSON-lines file per Locust process
    locust_stats.json  Locust's final figures per request name (written at exit)
    locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv
                     (Locust rewrites these every second and not at exit: the last second is
                     missing; locust_stats.json and pulls/ are complete)
    locust.log, supervisor.log
    timeseries.json  per-second pulls started / completed / failed and latency percentiles,
                     written when the load ends (and again by stop_pull_load)

Loads are found through their fault-ledger entries (kind ``load.locust``) and by listing
``load_dir``.
"""

import json
import secrets as _random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosregistry.errors import ChaosRegistryError, ConfigError
from chaosregistry.experiment.settings import DEFAULT_LOAD_DIR, RUN_DIR_ENV, Settings
from chaosregistry.faults.injection import ledger_for
from chaosregistry.faults.ledger import Entry
from chaosregistry.osutil.identity import marked_processes

from .processes import GroupIdentity

LOAD_KIND = "load.locust"
__all__ = ["DEFAULT_LOAD_DIR", "LOAD_KIND", "RUN_DIR_ENV", "Load", "LoadError", "find_load"]


class LoadError(ChaosRegistryError):
    """A load could not be started, found or stopped as asked."""


def load_root(settings: Settings) -> Path:
    """The directory holding one subdirectory per load (see the module docstring)."""
    return settings.load_dir


def new_load_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + _random.token_hex(3)


@dataclass(frozen=True)
class Load:
    """A load's stats directory and what its files say."""

    load_id: str
    stats_dir: Path
    spec: dict[str, Any]
    status: dict[str, Any]

    @classmethod
    def read(cls, stats_dir: Path) -> "Load":
        spec = read_json(stats_dir / "load.json")
        if not isinstance(spec, dict) or "load_id" not in spec:
            raise LoadError(f"{stats_dir} is not a load directory (no load.json)")
        status = read_json(stats_dir / "status.json")
        return cls(
            str(spec["load_id"]), stats_dir, spec, status if isinstance(status, dict) else {}
        )

    @property
    def records_dir(self) -> Path:
        return self.stats_dir / "pulls"

    @property
    def started_at(self) -> float:
        return float(self.status.get("started_at") or self.spec.get("created_at") or 0.0)

    @property
    def ended_at(self) -> float | None:
        value = self.status.get("ended_at")
        return None if value is None else float(value)

    def identity(self) -> GroupIdentity | None:
        data = self.spec.get("supervisor")
        if not isinstance(data, dict):
            return None
        return GroupIdentity(
            int(data["pid"]), int(data["start_time"]), int(data["pgid"]), str(data["boot_id"])
        )

    def running(self) -> bool:
        """Whether any process of this load is still alive."""
        identity = self.identity()
        alive = bool(identity.members()) if identity is not None else False
        return alive or bool(marked_processes(self.spec.get("tag", "")))


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or not (yet) complete JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def ledger_loads(settings: Settings) -> list[Entry]:
    """Every load entry of the fault ledger, active or not."""
    return [entry for entry in ledger_for(settings).all() if entry.kind == LOAD_KIND]


def find_load(load_id: str, settings: Settings) -> Load:
    """The load ``load_id`` (the newest one when empty); ConfigError when there is none."""
    if not isinstance(load_id, str):
        raise ConfigError(f"load_id must be a string, got {load_id!r}")
    candidates: dict[str, Path] = {}
    for entry in ledger_loads(settings):
        stats_dir = entry.parameters.get("stats_dir")
        if isinstance(stats_dir, str):
            candidates[str(entry.parameters.get("load_id"))] = Path(stats_dir)
    root = load_root(settings)
    if root.is_dir():
        for child in root.iterdir():
            if (child / "load.json").is_file():
                candidates.setdefault(child.name, child)
    if load_id:
        path = candidates.get(load_id)
        if path is None or not (path / "load.json").is_file():
            raise ConfigError(f"no pull load {load_id!r} (looked in the fault ledger and {root})")
        return Load.read(path)
    loads = [Load.read(path) for path in candidates.values() if (path / "load.json").is_file()]
    if not loads:
        raise ConfigError(f"no pull load found (looked in the fault ledger and {root})")
    return max(loads, key=lambda load: (float(load.spec.get("created_at") or 0.0), load.load_id))
