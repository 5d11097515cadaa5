"""Read what a report is made from: a Chaos Toolkit journal, its gameday.json, load time series.

Every input is untrusted: a file that is not what it claims to be raises :class:`JournalError`
with one line naming the file. The journal is parsed once into the typed model
(``chaosregistry.gameday.journal``); gameday.json, prometheus.json and load series are read
through the defensive accessors here, which never assume a key or a type.
"""

import datetime
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosregistry.gameday.journal import (
    Journal,
    JournalError,
    parse_journal,
    parse_time,
    read_json,
)
from chaosregistry.gameday.verdict import LoadEvidence, load_evidence
from chaosregistry.observability.prometheus import SERIES_FILE

__all__ = [
    "GAMEDAY_FILE",
    "TIMESERIES_FILE",
    "JournalError",
    "RunInput",
    "as_dict",
    "as_list",
    "as_number",
    "as_text",
    "iso",
    "load_journal",
    "load_run",
    "parse_time",
    "read_json",
]

GAMEDAY_FILE = "gameday.json"
TIMESERIES_FILE = "timeseries.json"
TIMESERIES_COLUMNS = ("t", "started", "completed", "failed", "p50", "p95", "p99")


@dataclass
class RunInput:
    """One run to report on: its journal, its gameday.json (or None), its load series and what
    each load's exact records say (``load_pulls``, the verdict's evidence)."""

    path: Path
    journal: Journal
    gameday: dict[str, Any] | None = None
    loads: list[dict[str, Any]] = field(default_factory=list)
    load_pulls: tuple[LoadEvidence, ...] = ()
    prometheus: dict[str, Any] | None = (
        None  # prometheus.json (chaosregistry.observability.prometheus)
    )


def load_journal(path: Path) -> Journal:
    """Read a Chaos Toolkit journal, checking it is one a report can be made of: the model's
    own checks (``parse_journal``), an experiment, a status and a start time (the timeline's
    origin)."""
    journal = parse_journal(path)
    problems = []
    if not journal.has_experiment:
        problems.append("no 'experiment' object")
    if journal.status is None:
        problems.append("no 'status' string")
    if journal.start is None:
        problems.append("no 'start' time")
    if problems:
        raise JournalError(f"{path}: not a Chaos Toolkit journal ({'; '.join(problems)})")
    return journal


def load_gameday(journal_path: Path) -> dict[str, Any] | None:
    """The gameday.json beside a journal, or None when there is none."""
    path = journal_path.parent / GAMEDAY_FILE
    if not path.exists():
        return None
    data = read_json(path, "gameday.json")
    if not isinstance(data, dict) or not isinstance(data.get("faults", []), list):
        raise JournalError(f"{path}: not a chaosregistry gameday.json (no 'faults' list)")
    return data


def load_timeseries(path: Path) -> dict[str, Any]:
    """Read one load's timeseries.json (columns of equal length, see loadgen/records.py)."""
    data = read_json(path, "load timeseries.json")
    if not isinstance(data, dict):
        raise JournalError(f"{path}: not a load timeseries.json (not an object)")
    lengths = set()
    for column in TIMESERIES_COLUMNS:
        values = data.get(column)
        if not isinstance(values, list):
            raise JournalError(f"{path}: not a load timeseries.json (no '{column}' column)")
        lengths.add(len(values))
    if len(lengths) != 1:
        raise JournalError(f"{path}: load timeseries.json columns differ in length")
    data.setdefault("load_id", path.parent.name)
    data["file"] = str(path)
    return data


def find_timeseries(journal_path: Path, journal: Journal, load_dir: Path | None) -> list[Path]:
    """Where this run's load time series are.

    ``load_dir`` given: that directory's own timeseries.json, else those of its subdirectories
    (a ``load_dir`` holds one directory per load). Otherwise the stats directories named by the
    journal's load actions, then ``<journal dir>/load/*``.
    """
    if load_dir is not None:
        if not load_dir.is_dir():
            raise JournalError(f"{load_dir}: no such load directory")
        own = load_dir / TIMESERIES_FILE
        return [own] if own.is_file() else sorted(load_dir.glob(f"*/{TIMESERIES_FILE}"))
    found: list[Path] = []
    for run in journal.activity_runs():
        output = run.output
        for item in [output, *as_list(as_dict(output).get("stopped"))]:
            item = as_dict(item)
            candidate = item.get("timeseries_file") or (
                str(Path(str(item["stats_dir"])) / TIMESERIES_FILE)
                if isinstance(item.get("stats_dir"), str)
                else None
            )
            if isinstance(candidate, str):
                path = Path(candidate)
                if not path.is_absolute():
                    path = journal_path.parent / path
                if path.is_file() and path not in found:
                    found.append(path)
    if not found:
        found = sorted((journal_path.parent / "load").glob(f"*/{TIMESERIES_FILE}"))
    return found


def load_run(journal_path: Path, load_dir: Path | None = None) -> RunInput:
    """Everything about one run: journal, gameday.json, load series and load records."""
    journal = load_journal(journal_path)
    gameday = load_gameday(journal_path)
    loads = [load_timeseries(p) for p in find_timeseries(journal_path, journal, load_dir)]
    return RunInput(
        journal_path,
        journal,
        gameday,
        loads,
        load_evidence(journal, journal_path.parent),
        load_prometheus(journal_path),
    )


def load_prometheus(journal_path: Path) -> dict[str, Any] | None:
    """The prometheus.json beside a journal (the declared series over the run), or None."""
    path = journal_path.parent / SERIES_FILE
    if not path.exists():
        return None
    data = read_json(path, "prometheus.json")
    if not isinstance(data, dict) or not isinstance(data.get("series"), list):
        raise JournalError(f"{path}: not a chaosregistry prometheus.json (no 'series' list)")
    return data


# -- defensive accessors ----------------------------------------------------------------------
def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a dict, else an empty dict."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a list, else an empty list."""
    return value if isinstance(value, list) else []


def as_number(value: Any) -> float | None:
    """A finite float from an int, float or bool; None for anything else."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def as_text(value: Any, default: str = "") -> str:
    """``value`` when it is a string, else ``default``."""
    return value if isinstance(value, str) else default


def iso(epoch: float | None) -> str | None:
    """ISO 8601 UTC for epoch seconds (None stays None)."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat()
