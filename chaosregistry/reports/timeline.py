"""A run on one timeline: probe samples, tolerances and fault windows (pure functions).

Times are epoch seconds. A probe *sample* is one probe run: before or after the method (the
steady-state hypothesis), during it (a continuous hypothesis check, ``steady_states.during``)
or a probe of the method itself. A *fault window* runs from a fault's injection to its end:
``reverted_at`` from gameday.json (the ledger's account) when there is one, else the earliest of
the activity that reverted it, its expiry and the end of the run.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaosregistry.gameday.journal import ActivityRun, Experiment, Journal
from chaosregistry.reports.inputs import as_dict, as_list, as_number, as_text

# Keys charted when a probe has no tolerance target, in order of preference.
KNOWN_KEYS = ("p95", "success_ratio", "seconds", "timings.total", "failure_ratio", "p50")
# A method action outside this package whose function looks like this undoes a fault.
UNDO_NAME = re.compile(r"^(remove|restart|heal|undo|revert|rollback|stop|delete|uncordon|resume)")
# Ledger states of a fault that still needed undoing when the ledger was last read.
ACTIVE_STATES = ("pending", "injected", "revert-failed")

Family = tuple[str, str, str | None, str | None]


@dataclass(frozen=True)
class Tolerance:
    """A hypothesis probe's tolerance, reduced to what a chart and a table can show."""

    raw: Any
    target: str | None = None
    low: float | None = None
    high: float | None = None

    @property
    def band(self) -> tuple[float, float] | None:
        """(low, high) when the tolerance is a numeric band, else None."""
        if self.low is None or self.high is None:
            return None
        return (self.low, self.high)

    def contains(self, value: float | None) -> bool | None:
        """Whether ``value`` is inside the band; None when that cannot be told."""
        band = self.band
        if band is None or value is None:
            return None
        return band[0] <= value <= band[1]

    def describe(self, metric: str | None) -> str:
        """One line for a reader: ``0 <= p95 <= 0.25``, ``success_ratio == 1``, ``true``."""
        name = metric or "value"
        band = self.band
        if band is not None:
            if band[0] == band[1]:
                return f"{name} == {band[0]:g}"
            return f"{band[0]:g} <= {name} <= {band[1]:g}"
        raw = self.raw
        if isinstance(raw, bool):
            return f"{name} is {str(raw).lower()}"
        if raw is None:
            return "none"
        if isinstance(raw, dict):
            kind = as_text(raw.get("type"), "?")
            detail = raw.get("pattern") or raw.get("path") or ""
            return f"{kind} {detail}".strip()
        return str(raw)


@dataclass(frozen=True)
class Sample:
    """One probe run on the timeline."""

    probe: str
    phase: str  # before | during | method | after
    start: float
    end: float
    output: Any
    ok: bool  # the probe ran (status succeeded)
    tolerance_met: bool | None  # as Chaos Toolkit recorded it (hypothesis probes only)
    error: str | None
    family: Family

    @property
    def middle(self) -> float:
        """The middle of the probe run: where its value is drawn."""
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class HypothesisProbe:
    """A probe of the steady-state hypothesis as the experiment declares it."""

    name: str
    tolerance: Tolerance
    module: str
    func: str
    weight: float = 1.0


@dataclass(frozen=True)
class Fault:
    """A fault (or a load) with its window and the ledger's account of how it ended."""

    fault_id: str
    kind: str
    target: str
    injected_at: float
    window_end: float
    end_source: str  # reverted | undone by <activity> | expired | run end | undo action
    state: str  # a ledger state, or "unknown" without gameday.json
    revert_reason: str | None = None
    reverted_at: float | None = None
    action: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    source: str = "journal"
    run_end: float = 0.0

    @property
    def is_load(self) -> bool:
        """A pull load shares the ledger with faults but is not one."""
        return self.kind.startswith("load.")

    @property
    def reverted_after_run_end(self) -> bool:
        """It was reverted only after the journal's end."""
        return self.reverted_at is not None and self.reverted_at > self.run_end

    @property
    def left_behind(self) -> bool:
        """It outlived the run: still active, or reverted by hand once the run was over.

        The same rule as ``chaosregistry gameday``: a fault the watchdog ends by expiry or
        because ``chaos run`` is gone is the safety net working, not a fault left behind.
        """
        if self.state in ACTIVE_STATES:
            return True
        return self.revert_reason == "manual" and self.reverted_after_run_end


# -- values -----------------------------------------------------------------------------------
def value_of(output: Any, key: str | None) -> float | None:
    """The number at ``key`` in a probe output (``a.b`` looks into nested objects).

    ``key`` "" means the output itself; None means there is no numeric metric.
    """
    if key is None:
        return None
    node: Any = output
    if key != "":
        if not isinstance(output, dict):
            return None
        if key in output:
            node = output[key]
        else:
            for part in key.split("."):
                if not isinstance(node, dict) or part not in node:
                    return None
                node = node[part]
    number: float | None = as_number(node)
    return number


def metric_for(tolerance: Tolerance | None, outputs: list[Any]) -> str | None:
    """Which value of a probe to chart: its tolerance target, else the first known key."""
    if tolerance is not None and tolerance.target:
        return tolerance.target
    if any(as_number(o) is not None for o in outputs):
        return ""
    if (
        tolerance is not None
        and isinstance(tolerance.raw, int)
        and not isinstance(tolerance.raw, bool)
        and any(isinstance(o, dict) and "status" in o for o in outputs)
    ):
        return "status"  # Chaos Toolkit compares an integer tolerance with "status"
    for key in KNOWN_KEYS:
        if any(value_of(o, key) is not None for o in outputs):
            return key
    return None


def parse_tolerance(raw: Any, configuration: Mapping[str, Any]) -> Tolerance:
    """A tolerance from its declaration: ranges, 2-element lists and numbers become bands.

    Journals keep ``${name}`` as written: the tolerance itself and each bound, when a
    reference, are substituted by Chaos Toolkit's own ``substitute`` from the plain
    configuration values (an environment lookup the journal's configuration still holds stays
    as written); a declared mapping is kept as written."""
    from chaoslib import substitute

    plain = {k: v for k, v in configuration.items() if isinstance(v, int | float | str | bool)}

    def resolved(value: Any) -> Any:
        return substitute(value, plain, None) if isinstance(value, str) else value

    raw = resolved(raw)

    def number(value: Any) -> float | None:
        value = resolved(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return None
        return None if isinstance(value, bool) else as_number(value)

    if isinstance(raw, dict):
        target = as_text(raw.get("target")) or None
        if raw.get("type") == "range":
            bounds = as_list(raw.get("range"))
            if len(bounds) == 2:
                low, high = number(bounds[0]), number(bounds[1])
                if low is not None and high is not None:
                    return Tolerance(raw, target, low, high)
        return Tolerance(raw, target)
    if isinstance(raw, list) and len(raw) == 2:
        low, high = number(raw[0]), number(raw[1])
        if low is not None and high is not None:
            return Tolerance(raw, None, low, high)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return Tolerance(raw, None, float(raw), float(raw))
    return Tolerance(raw)


# -- samples ----------------------------------------------------------------------------------
def _family(run: ActivityRun) -> Family:
    provider = run.activity.provider
    image, registry = run.result.get("image"), run.result.get("registry")
    return (
        provider.module,
        provider.func,
        image if isinstance(image, str) else None,
        registry if isinstance(registry, str) else None,
    )


def _error_text(run: ActivityRun) -> str | None:
    if run.exception:
        return run.last_exception_line or None
    output = run.result
    error = output.get("error") or output.get("first_error") or output.get("last_error")
    if isinstance(error, dict):
        return f"{as_text(error.get('class'), 'error')}: {as_text(error.get('message'))}"
    if isinstance(error, str) and error:
        counts = ", ".join(
            f"{name} {count}" for name, count in as_dict(output.get("errors")).items()
        )
        return f"{counts}: {error}" if counts else error
    return None


def _sample(run: ActivityRun, phase: str, fallback: float) -> Sample | None:
    if run.activity.type not in (None, "probe"):  # the type unsaid: a probe
        return None
    start = fallback if run.start is None else run.start
    end = start if run.end is None or run.end < start else run.end
    return Sample(
        probe=run.activity.label,
        phase=phase,
        start=start,
        end=end,
        output=run.output,
        ok=run.succeeded,
        tolerance_met=run.tolerance_met,
        error=_error_text(run),
        family=_family(run),
    )


def samples(journal: Journal) -> list[Sample]:
    """Every probe run of the journal, in time order."""
    run_start = journal.start or 0.0
    phases = [
        *(
            (phase, state)
            for phase, state in (("before", journal.before), ("after", journal.after))
        ),
        *(("during", check) for check in journal.during),
    ]
    found: list[Sample] = []
    for phase, state in phases:
        for run in state.probes if state is not None else ():
            if sample := _sample(run, phase, run_start):
                found.append(sample)
    for run in journal.run:
        if sample := _sample(run, "method", run_start):
            found.append(sample)
    found.sort(key=lambda s: s.start)
    return found


def hypothesis_probes(experiment: Experiment, weights: dict[str, float]) -> list[HypothesisProbe]:
    """The probes of the experiment's steady-state hypothesis, with their weights."""
    probes = []
    for item in experiment.hypothesis:
        if item.type not in (None, "probe") or item.name is None:
            continue
        probes.append(
            HypothesisProbe(
                name=item.name,
                tolerance=parse_tolerance(item.tolerance, experiment.configuration),
                module=item.provider.module,
                func=item.provider.func,
                weight=weights.get(item.name, 1.0),
            )
        )
    return probes


def report_weights(experiment: Experiment) -> tuple[dict[str, float], list[str]]:
    """Probe weights from ``extensions: [{name: chaosregistry-report, weights: {probe: w}}]``.

    Returns the weights and a note per weight that could not be used.
    """
    weights: dict[str, float] = {}
    notes: list[str] = []
    for extension in experiment.extensions:
        if extension.get("name") != "chaosregistry-report":
            continue
        for name, weight in as_dict(extension.get("weights")).items():
            value = as_number(weight)
            if value is None or value <= 0 or isinstance(weight, bool):
                notes.append(f"weight of probe {name!r} ignored: {weight!r} is not positive")
            else:
                weights[str(name)] = value
    return weights, notes


def samples_of(
    probe: HypothesisProbe, all_samples: list[Sample]
) -> tuple[list[Sample], list[Sample]]:
    """A hypothesis probe's own runs, and the method probes that measure the same thing.

    A method probe measures the same thing when it calls the same function and, where both
    outputs say, pulls the same image from the same registry.
    """
    own = [s for s in all_samples if s.probe == probe.name and s.phase != "method"]
    references = {s.family for s in own}
    related = [
        s
        for s in all_samples
        if s.phase == "method"
        and s.probe != probe.name
        and (s.family[0], s.family[1]) == (probe.module, probe.func)
        and any(_same_family(s.family, ref) for ref in references or {s.family})
    ]
    return own, related


def _same_family(a: Family, b: Family) -> bool:
    if a[:2] != b[:2]:
        return False
    return all(x is None or y is None or x == y for x, y in zip(a[2:], b[2:], strict=True))


# -- faults -----------------------------------------------------------------------------------
def run_bounds(journal: Journal) -> tuple[float, float]:
    """The run's start and end (the last activity's end when the journal has no end)."""
    start = journal.start or 0.0
    end = journal.end
    if end is None:
        ends = [run.end for run in journal.activity_runs()]
        end = max([e for e in ends if e is not None], default=start)
    return start, max(start, end)


def faults(journal: Journal, gameday: dict[str, Any] | None) -> list[Fault]:
    """The run's faults and loads, from the journal's action outputs and gameday.json."""
    _, run_end = run_bounds(journal)
    runs = list(journal.activity_runs())
    method_count = len(journal.run)
    found: dict[str, dict[str, Any]] = {}
    reverted_by: dict[str, tuple[str, float]] = {}
    for index, run in enumerate(runs):
        output = run.result
        started = run.start or run_end
        finished = run.end or started
        fault_id = output.get("fault_id")
        if isinstance(fault_id, str) and isinstance(output.get("kind"), str):
            injected = as_number(output.get("injected_at"))
            found[fault_id] = {
                "fault_id": fault_id,
                "kind": output["kind"],
                "target": as_text(output.get("target")),
                "injected_at": started if injected is None else injected,
                "expires_at": as_number(output.get("expires_at")),
                "action": run.activity.label,
                "parameters": as_dict(output.get("parameters")),
            }
        for item in as_list(output.get("reverted")):
            item_id = as_dict(item).get("fault_id")
            if isinstance(item_id, str) and item_id not in reverted_by:
                reverted_by[item_id] = (run.activity.label, finished)
        foreign = _foreign_fault(run, runs[index + 1 :], started) if index < method_count else None
        if foreign is not None:
            found[foreign["fault_id"]] = foreign
    ledger = {
        as_text(f.get("id")): f
        for f in as_list((gameday or {}).get("faults"))
        if isinstance(f, dict) and isinstance(f.get("id"), str)
    }
    result = []
    for fault_id in [*found, *(i for i in ledger if i not in found)]:
        seen = found.get(fault_id, {})
        entry = ledger.get(fault_id)
        injected = as_number((entry or {}).get("injected_at"))
        injected = seen.get("injected_at", injected) if injected is None else injected
        if injected is None:
            continue
        reverted_at = as_number((entry or {}).get("reverted_at"))
        if reverted_at is not None:
            end, end_source = reverted_at, "reverted"
        else:
            candidates = [(run_end, "run end")]
            if seen.get("undone_by") is not None:
                candidates.append(seen["undone_by"])
            if fault_id in reverted_by:
                name, moment = reverted_by[fault_id]
                candidates.append((moment, f"undone by {name}"))
            if seen.get("expires_at") is not None:
                candidates.append((seen["expires_at"], "expired"))
            end, end_source = min(candidates, key=lambda c: c[0])
        if entry is not None:
            state = as_text(entry.get("state"), "unknown")
            reason = entry.get("revert_reason")
        else:
            state = "reverted" if fault_id in reverted_by else "unknown"
            reason = "rollback" if fault_id in reverted_by else None
        result.append(
            Fault(
                fault_id=fault_id,
                kind=as_text((entry or {}).get("kind")) or seen.get("kind", "?"),
                target=as_text((entry or {}).get("target")) or seen.get("target", ""),
                injected_at=injected,
                window_end=max(injected, end),
                end_source=end_source,
                state=state,
                revert_reason=reason if isinstance(reason, str) else None,
                reverted_at=reverted_at,
                action=seen.get("action"),
                parameters=seen.get("parameters", {}),
                source=("journal + gameday.json" if seen else "gameday.json")
                if entry is not None
                else "journal",
                run_end=run_end,
            )
        )
    result.sort(key=lambda f: f.injected_at)
    return result


def _foreign_fault(
    run: ActivityRun, later: list[ActivityRun], started: float
) -> dict[str, Any] | None:
    """A method action of another extension: a fault from its start to the next undo."""
    provider = run.activity.provider
    module = provider.module
    func = provider.func or provider.path
    if (
        not run.is_action
        or provider.type != "python"
        or module.startswith("chaosregistry")
        or UNDO_NAME.match(func or "")
        or not run.succeeded
    ):
        return None
    undone = None
    for nxt in later:
        nxt_func = nxt.activity.provider.func or nxt.activity.provider.path
        if UNDO_NAME.match(nxt_func) or UNDO_NAME.match(nxt.activity.label):
            moment = nxt.start
            if moment is not None and moment >= started:
                undone = (moment, f"undo action {nxt.activity.label}")
                break
    name = run.activity.label
    return {
        "fault_id": f"action:{name}",
        "kind": ".".join(p for p in (module, func) if p) or "action",
        "target": "",
        "injected_at": started,
        "expires_at": None,
        "action": name,
        "parameters": {},
        "undone_by": undone,
    }


def in_windows(start: float, end: float, windows: list[Fault]) -> bool:
    """Whether ``[start, end]`` overlaps any fault window."""
    return any(start <= f.window_end and end >= f.injected_at for f in windows)


def finite(values: list[float | None]) -> list[float]:
    """The values that are finite numbers."""
    return [v for v in values if v is not None and math.isfinite(v)]
