"""From one run's inputs to its summary: verdict, probes, deviation, recovery, faults, score.

Everything here is a pure function of the journal, its gameday.json and its load series; the
summary it returns is the ``runs[]`` entry of summary.json (schema in the package docstring).
"""

import math
import statistics
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from chaosregistry.experiment.kinds import ResultKind
from chaosregistry.gameday.journal import ActivityRun, Experiment, Journal
from chaosregistry.gameday.verdict import (
    FaultEvidence,
    Judgement,
    LoadEvidence,
    RunFacts,
    Verdict,
    deviated_during,
    judge,
    most_urgent,
)
from chaosregistry.redaction import Redactor
from chaosregistry.reports.inputs import RunInput, as_dict, as_list, as_number, as_text, iso
from chaosregistry.reports.score import score
from chaosregistry.reports.timeline import (
    Fault,
    HypothesisProbe,
    Sample,
    faults,
    finite,
    hypothesis_probes,
    in_windows,
    metric_for,
    report_weights,
    run_bounds,
    samples,
    samples_of,
    value_of,
)


@dataclass
class RunModel:
    """One run, parsed onto a timeline: what summaries and charts are computed from."""

    path: Path
    journal: Journal
    gameday: dict[str, Any] | None
    loads: list[dict[str, Any]]
    start: float
    end: float
    samples: list[Sample]
    faults: list[Fault]
    probes: list[HypothesisProbe]
    redactor: Redactor
    notes: list[str] = field(default_factory=list)
    load_pulls: tuple[LoadEvidence, ...] = ()
    prometheus: dict[str, Any] | None = None

    @property
    def windows(self) -> list[Fault]:
        """The fault windows (loads excluded)."""
        return [f for f in self.faults if not f.is_load]

    @property
    def fault_end(self) -> float | None:
        """When the last fault window closed."""
        return max((f.window_end for f in self.windows), default=None)

    @property
    def experiment(self) -> Experiment:
        """The journal's experiment."""
        return self.journal.experiment


def build_model(run: RunInput) -> RunModel:
    """Put one run's inputs on a timeline."""
    experiment = run.journal.experiment
    weights, notes = report_weights(experiment)
    start, end = run_bounds(run.journal)
    probes = hypothesis_probes(experiment, weights)
    for name in sorted(set(weights) - {p.name for p in probes}):
        notes.append(f"weight given for {name!r}, which is not a hypothesis probe")
    if run.gameday is None:
        notes.append(
            "no gameday.json beside the journal: fault windows and outcomes come from the "
            "journal alone, and whether a fault outlived the run is unknown"
        )
    else:
        notes.extend(as_text(n) for n in as_list(run.gameday.get("notes")) if as_text(n))
    return RunModel(
        path=run.path,
        journal=run.journal,
        gameday=run.gameday,
        loads=run.loads,
        start=start,
        end=end,
        samples=samples(run.journal),
        faults=faults(run.journal, run.gameday),
        probes=probes,
        redactor=Redactor.for_experiment(dict(experiment.raw)),
        notes=notes,
        load_pulls=run.load_pulls,
        prometheus=run.prometheus,
    )


# -- verdict ----------------------------------------------------------------------------------
def verdict(model: RunModel) -> Judgement:
    """The game-day verdict of this run: ``chaosregistry gameday``'s own rule (``verdict.judge``)
    on the journal, gameday.json's account of the run (signals, faults and their evidence, the
    run id, ``chaos run``'s exit status, the tolerances' values) and the loads' records.

    Without gameday.json the journal is judged on its own: whose journal it is cannot be told,
    so it is never *passed* (the checklist says so)."""
    gameday = model.gameday or {}
    gameday_verdict = as_text(gameday.get("verdict"))
    run_id, code, values = (
        gameday.get(k) for k in ("run_id", "chaos_exit_code", "tolerance_values")
    )
    fault_evidence = (FaultEvidence.from_dict(f) for f in as_list(gameday.get("fault_evidence")))
    return judge(
        RunFacts(
            model.journal,
            interrupted=gameday_verdict == Verdict.INTERRUPTED,
            left_behind=gameday_verdict == Verdict.LEFT_BEHIND
            or any(f.left_behind for f in model.faults),
            loads=model.load_pulls,
            faults=tuple(f for f in fault_evidence if f is not None),
            run_id=run_id if isinstance(run_id, str) else None,
            chaos_exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            configuration=values if isinstance(values, dict) else None,
        )
    )


def report_exit_code(summary: dict[str, Any]) -> int:
    """The CI exit code of a summary (a whole summary.json or one of its runs).

    The game-day codes: 0 passed, 10 deviated, 11 failed, 12 interrupted, 13 left-behind,
    14 dry-run; for several runs the code of the most urgent verdict (``verdict.PRECEDENCE``:
    left-behind, interrupted, dry-run, failed, deviated, passed). An unknown verdict is 1.
    """
    runs = summary.get("runs")
    if isinstance(runs, list) and runs:
        return most_urgent(as_dict(r).get("verdict") for r in runs).exit_code
    return most_urgent([summary.get("verdict")]).exit_code


# -- probes -----------------------------------------------------------------------------------
def within(probe: HypothesisProbe, metric: str | None, sample: Sample) -> bool | None:
    """Whether a sample is within the probe's tolerance (Chaos Toolkit's word when it has one)."""
    recorded: bool | None = sample.tolerance_met
    if recorded is not None:
        return recorded
    if not sample.ok:
        return False
    inside: bool | None = probe.tolerance.contains(value_of(sample.output, metric))
    return inside


def _point(sample: Sample | None, metric: str | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {
        "value": value_of(sample.output, metric),
        "met": sample.tolerance_met,
        "at": iso(sample.end),
        "error": sample.error if not sample.ok or sample.tolerance_met is False else None,
    }


def _percent(change: float | None, base: float | None) -> float | None:
    if change is None or base is None or base == 0:
        return None
    return round(100.0 * change / abs(base), 2)


def _held(
    before: dict[str, Any] | None, after: dict[str, Any] | None, during_met: bool | None
) -> bool | None:
    """True when met before, after and in every check during; False when some judgement
    missed; None when it was never judged before or after and nothing missed (the method never
    ran, say): "did not hold" would claim a measurement that was never made."""
    met = [_met(before), _met(after)]
    if False in met or during_met is False:
        return False
    if met == [True, True]:
        return True
    return None


def _met(point: dict[str, Any] | None) -> bool | None:
    """A check's outcome: None when it never ran; a probe that raised (no judgement, an error)
    missed."""
    if point is None:
        return None
    if point["met"] is None and point["error"]:
        return False
    met: bool | None = point["met"]
    return met


def probe_summary(model: RunModel, probe: HypothesisProbe) -> dict[str, Any]:
    """Baseline, during and after values of one hypothesis probe, its deviation and recovery."""
    own, related = samples_of(probe, model.samples)
    metric = metric_for(probe.tolerance, [s.output for s in own + related])
    before = next((s for s in own if s.phase == "before"), None)
    after = next((s for s in reversed(own) if s.phase == "after"), None)
    checks = [s for s in own if s.phase == "during"]
    windows = model.windows
    measured = checks + related
    under_fault = [s for s in measured if in_windows(s.start, s.end, windows)] if windows else []
    if not windows:
        under_fault = measured
    baseline = value_of(before.output, metric) if before else None
    band = probe.tolerance.band
    reference = baseline if baseline is not None else (sum(band) / 2 if band else None)
    values = finite([value_of(s.output, metric) for s in under_fault])
    worst: float | None = None
    if values:
        worst = (
            max(values, key=lambda v: abs(v - reference)) if reference is not None else max(values)
        )
    after_value = value_of(after.output, metric) if after else None
    keep = {id(s) for s in measured} | {id(after)}
    later = [s for s in model.samples if id(s) in keep]
    deviated = any(within(probe, metric, s) is False for s in later)
    ttr, recovered = _probe_recovery(model, probe, metric, later, deviated)
    checks_failed = sum(1 for s in checks if s.tolerance_met is False)
    before_point, after_point = _point(before, metric), _point(after, metric)
    during_met = None if not checks else checks_failed == 0
    return {
        "name": probe.name,
        "metric": metric,
        "weight": probe.weight,
        "tolerance": {
            "text": probe.tolerance.describe(metric),
            "low": probe.tolerance.low,
            "high": probe.tolerance.high,
            "declared": probe.tolerance.raw,
        },
        "before": before_point,
        "during": {
            "samples": len(values),
            "worst": worst,
            "outside_tolerance": sum(1 for s in under_fault if within(probe, metric, s) is False),
            "checks": len(checks),
            "checks_failed": checks_failed,
            "met": during_met,
            "method_probes": sorted({s.probe for s in related}),
        },
        "after": after_point,
        "held": _held(before_point, after_point, during_met),
        "deviated": deviated,
        "deviation": None if worst is None or baseline is None else worst - baseline,
        "deviation_percent": _percent(
            None if worst is None or baseline is None else worst - baseline, baseline
        ),
        "after_deviation_percent": _percent(
            None if after_value is None or baseline is None else after_value - baseline,
            baseline,
        ),
        "time_to_recover_seconds": ttr,
        "recovered": recovered,
    }


def _probe_recovery(
    model: RunModel,
    probe: HypothesisProbe,
    metric: str | None,
    later: list[Sample],
    deviated: bool,
) -> tuple[float | None, bool | None]:
    """Seconds from the last fault's end to the end of the first sample back in tolerance."""
    fault_end = model.fault_end
    if fault_end is None:
        return None, None
    if not deviated:
        return 0.0, True
    for sample in sorted(later, key=lambda s: s.end):
        if sample.end > fault_end and within(probe, metric, sample) is True:
            return round(sample.end - fault_end, 3), True
    return None, False


def method_probe_summaries(model: RunModel) -> list[dict[str, Any]]:
    """The method's own probes: how many runs, what they measured, how many failed."""
    names: dict[str, list[Sample]] = {}
    for sample in model.samples:
        if sample.phase == "method":
            names.setdefault(sample.probe, []).append(sample)
    result = []
    for name, runs in names.items():
        metric = metric_for(None, [s.output for s in runs])
        values = finite([value_of(s.output, metric) for s in runs])
        errors = [s.error for s in runs if s.error]
        result.append(
            {
                "name": name,
                "metric": metric,
                "runs": len(runs),
                "failed_runs": sum(1 for s in runs if not s.ok),
                "min": min(values, default=None),
                "max": max(values, default=None),
                "last": value_of(runs[-1].output, metric),
                "first_error": errors[0] if errors else None,
            }
        )
    return result


def prometheus_summaries(model: RunModel) -> list[dict[str, Any]]:
    """Each declared Prometheus series (prometheus.json) read against the fault windows: its
    mean before the first fault, its peak and mean under the faults, how long it stood beyond
    its SLO there (the error-budget burn rate of a pull SLO, say) and its last value."""
    windows = model.windows
    first_fault = min((f.injected_at for f in windows), default=None)
    result = []
    for entry in map(as_dict, as_list(as_dict(model.prometheus).get("series"))):
        points = sorted(
            (t, v)
            for found in map(as_dict, as_list(entry.get("series")))
            for point in as_list(found.get("points"))
            if len(as_list(point)) == 2
            for t, v in [(as_number(point[0]), as_number(point[1]))]
            if t is not None and v is not None and math.isfinite(v)
        )
        before = [v for t, v in points if first_fault is not None and t < first_fault]
        under_fault = [(t, v) for t, v in points if windows and in_windows(t, t, windows)]
        during = [v for _, v in under_fault]
        slo = as_number(entry.get("slo"))
        times = sorted({t for t, _ in points})
        step = min((b - a for a, b in pairwise(times)), default=None)
        # Moments (a point each `step`) when any of its series stood beyond the SLO.
        over = {t for t, v in under_fault if slo is not None and v > slo}
        result.append(
            {
                "name": as_text(entry.get("name"), as_text(entry.get("query"), "series")),
                "query": as_text(entry.get("query")),
                "slo": slo,
                "unit": as_text(entry.get("unit")),
                "error": as_dict(entry.get("error")) or None,
                "points": len(points),
                "before_mean": sum(before) / len(before) if before else None,
                "during_max": max(during, default=None),
                "during_mean": sum(during) / len(during) if during else None,
                "seconds_over_slo_during": (
                    len(over) * step if slo is not None and step is not None else None
                ),
                "last": points[-1][1] if points else None,
            }
        )
    return result


def blast_radius_summaries(journal: Journal) -> list[dict[str, Any]]:
    """Each blast-radius prediction the run recorded (``chaosregistry.probes.blast_radius``),
    in the order taken: the outage, the counts per class and every workload's class and reason
    (the containers' details stay in the journal)."""
    found = []
    for run in (*journal.probe_runs(), *journal.activity_runs()):
        result = run.result
        if run.kind != ResultKind.BLAST_RADIUS or not isinstance(result.get("workloads"), list):
            continue
        outage = as_dict(result.get("outage"))
        found.append(
            {
                "name": run.activity.label,
                "at": iso(run.start),
                "registries": outage.get("registries"),
                "outage_seconds": as_number(outage.get("seconds")),
                "backoff_after_heal_seconds": as_number(outage.get("backoff_after_heal_seconds")),
                "classes": as_dict(result.get("classes")),
                "nodes": result.get("nodes"),
                "pods": result.get("pods"),
                "capped_nodes": len(as_list(result.get("capped_nodes"))),
                "notes": [str(n) for n in as_list(result.get("notes"))],
                "workloads": [
                    {key: as_dict(w).get(key) for key in ("kind", "namespace", "name", "class")}
                    | {"reason": as_text(as_dict(w).get("reason"))}
                    for w in as_list(result.get("workloads"))
                ],
            }
        )
    return found


# -- load -------------------------------------------------------------------------------------
def load_summary(model: RunModel, series: dict[str, Any]) -> dict[str, Any]:
    """A load's pulls before, during and after the faults, and how long it took to recover.

    Per-second rows; "during" is every second that overlaps a fault window. Each phase gives
    ``attempts_per_second`` (pulls that ended, failed or not) beside ``pulls_per_second``
    (successful ones), over the phase's seconds from the load's first pull to its last: under
    a fault that fails pulls at once, how hard the load retried (its nodes' back-off) against
    what it got done. Recovery: the
    seconds from the last fault's end to the end of the first second with completed pulls, no
    failed pull and a p95 no higher than the highest per-second p95 seen before the first fault.
    """
    step = as_number(series.get("step")) or 1.0
    times = [as_number(t) for t in as_list(series.get("t"))]
    completed = [as_number(v) or 0.0 for v in as_list(series.get("completed"))]
    failed = [as_number(v) or 0.0 for v in as_list(series.get("failed"))]
    p95 = [as_number(v) for v in as_list(series.get("p95"))]
    started = [as_number(v) or 0.0 for v in as_list(series.get("started"))]
    # Rates count the seconds from the first pull to the last: Locust's start-up and stop
    # pulled nothing.
    busy = [
        (started[i] if i < len(started) else 0.0) or completed[i] or failed[i]
        for i in range(len(completed))
    ]
    first_pull = next((i for i, pulling in enumerate(busy) if pulling), len(completed))
    last_pull = max((i for i, pulling in enumerate(busy) if pulling), default=-1)
    windows = model.windows
    first_fault = min((f.injected_at for f in windows), default=None)
    fault_end = model.fault_end
    phases: dict[str, list[int]] = {"before": [], "during": [], "after": []}
    for index, moment in enumerate(times):
        if moment is None:
            continue
        if windows and in_windows(moment, moment + step, windows):
            phases["during"].append(index)
        elif first_fault is not None and moment + step <= first_fault:
            phases["before"].append(index)
        elif fault_end is not None and moment >= fault_end:
            phases["after"].append(index)
        elif not windows:
            phases["before"].append(index)

    def figures(indexes: list[int]) -> dict[str, Any]:
        done = sum(completed[i] for i in indexes)
        bad = sum(failed[i] for i in indexes)
        p95s = finite([p95[i] for i in indexes])
        seconds = sum(1 for i in indexes if first_pull <= i <= last_pull) * step
        return {
            "seconds": len(indexes),
            "completed": int(done),
            "failed": int(bad),
            "attempts_per_second": (done + bad) / seconds if seconds else None,
            "pulls_per_second": done / seconds if seconds else None,
            "failure_ratio": bad / (done + bad) if done + bad else None,
            "p95_median": statistics.median(p95s) if p95s else None,
            "p95_max": max(p95s, default=None),
        }

    summary = {name: figures(indexes) for name, indexes in phases.items()}
    limit = summary["before"]["p95_max"]

    def healthy(i: int) -> bool:
        value = p95[i]
        return (
            completed[i] > 0
            and failed[i] == 0
            and (limit is None or value is None or value <= limit)
        )

    ttr: float | None = None
    recovered: bool | None = None
    if fault_end is not None:
        # Samples whose window reaches past the fault's end, with their times.
        tail_at = {i: t for i, t in enumerate(times) if t is not None and t + step > fault_end}
        tail = list(tail_at)
        hurt = [i for i in phases["during"] + tail if (completed[i] + failed[i]) and not healthy(i)]
        if not hurt:
            ttr, recovered = (0.0, True) if tail or phases["during"] else (None, None)
        else:
            last_hurt = max(hurt)
            back = next((i for i in tail if i > last_hurt and healthy(i)), None)
            if back is not None:
                ttr, recovered = round(max(0.0, tail_at[back] + step - fault_end), 3), True
            elif any(tail_at[i] >= fault_end for i in tail if i > last_hurt):
                # Hurt in seconds wholly after the fault: it did not come back while measured.
                recovered = False
            # Else the load stopped with the fault (its last second straddles the fault's end):
            # it says nothing about recovery, so it stays unknown rather than "not recovered".
    return {
        "load_id": as_text(series.get("load_id")),
        "file": as_text(series.get("file")),
        "seconds": len(times),
        "completed": int(sum(completed)),
        "failed": int(sum(failed)),
        "before": summary["before"],
        "during": summary["during"],
        "after": summary["after"],
        "time_to_recover_seconds": ttr,
        "recovered": recovered,
    }


# -- the run ----------------------------------------------------------------------------------
def fault_summary(fault: Fault) -> dict[str, Any]:
    """summary.json's form of a fault or load."""
    return {
        "id": fault.fault_id,
        "kind": fault.kind,
        "target": fault.target,
        "action": fault.action,
        "parameters": fault.parameters,
        "injected_at": iso(fault.injected_at),
        "window_end": iso(fault.window_end),
        "window_end_source": fault.end_source,
        "seconds": round(fault.window_end - fault.injected_at, 3),
        "state": fault.state,
        "revert_reason": fault.revert_reason,
        "reverted_at": iso(fault.reverted_at),
        "reverted_after_run_end": fault.reverted_after_run_end,
        "left_behind": fault.left_behind,
        "source": fault.source,
    }


# Verdicts that say the run did not test what it meant to: its probes earn no score.
_UNSCORED = frozenset(
    {Verdict.FAILED, Verdict.DRY_RUN, Verdict.INTERRUPTED, Verdict.LEFT_BEHIND, Verdict.ERROR}
)


def _unscored(judgement: Judgement) -> str | None:
    if judgement.verdict not in _UNSCORED:
        return None
    why = f" ({judgement.notes[0]})" if judgement.notes else ""
    return f"the run's verdict is {judgement.verdict.value}{why}"


def _activity_error(run: ActivityRun) -> str | None:
    return run.last_exception_line or None


def summarize(model: RunModel) -> dict[str, Any]:
    """The ``runs[]`` entry of summary.json for one run (secrets redacted)."""
    journal = model.journal
    experiment = model.experiment
    probes = [probe_summary(model, p) for p in model.probes]
    loads = [load_summary(model, s) for s in model.loads]
    judgement = verdict(model)
    run_verdict = judgement.verdict
    # gameday.json's notes already hold the game day's own judgement: each line once.
    notes = model.notes + [n for n in judgement.notes if n not in model.notes]

    deviated = [p for p in probes if p["deviated"]]
    recovered: bool | None
    if model.fault_end is None:
        ttr, recovered = None, None
    elif any(p["recovered"] is False for p in deviated) or any(
        load["recovered"] is False for load in loads
    ):
        ttr, recovered = None, False
    else:
        times = [p["time_to_recover_seconds"] for p in deviated] + [
            load["time_to_recover_seconds"] for load in loads
        ]
        ttr, recovered = max(finite(times), default=0.0), True
    run_score = score(
        [(p["weight"], p["held"]) for p in probes], ttr, recovered, withheld=_unscored(judgement)
    )

    rollbacks = [
        {
            "name": run.activity.label,
            "status": run.status or "?",
            "start": iso(run.start),
            "end": iso(run.end),
            "reverted": [
                as_text(as_dict(r).get("fault_id")) for r in as_list(run.result.get("reverted"))
            ],
            "error": _activity_error(run),
        }
        for run in journal.rollbacks
    ]
    failed_activities: list[dict[str, str | None]] = [
        {
            "name": run.activity.label,
            "phase": phase,
            "status": run.status,
            "error": _activity_error(run),
        }
        for phase, runs in (("run", journal.run), ("rollbacks", journal.rollbacks))
        for run in runs
        if run.status not in ("succeeded", None)
    ]
    gameday = model.gameday or {}
    configuration = dict(experiment.configuration)
    summary = {
        "journal": str(model.path),
        "verdict": run_verdict.value,
        "exit_code": run_verdict.exit_code,
        "score": run_score.as_dict(),
        "recovery": {
            "time_to_recover_seconds": ttr,
            "recovered": recovered,
            "fault_end": iso(model.fault_end),
            "from": [
                {"source": f"probe {p['name']}", "seconds": p["time_to_recover_seconds"]}
                for p in deviated
            ]
            + [
                {"source": f"load {load['load_id']}", "seconds": load["time_to_recover_seconds"]}
                for load in loads
                if load["recovered"] is not None
            ],
        },
        "probes": probes,
        "method_probes": method_probe_summaries(model),
        "prometheus_series": prometheus_summaries(model),
        "blast_radius": blast_radius_summaries(journal),
        "faults": [fault_summary(f) for f in model.faults if not f.is_load],
        "loads": [fault_summary(f) for f in model.faults if f.is_load],
        "load_series": loads,
        "load_pulls": [load.as_dict() for load in model.load_pulls],
        "rollbacks": rollbacks,
        "failed_activities": failed_activities,
        "metadata": {
            "title": experiment.title,
            "description": experiment.description,
            "tags": list(experiment.tags),
            "experiment_file": gameday.get("experiment"),
            "vars_file": gameday.get("vars"),
            "backend": gameday.get("backend") or configuration.get("backend"),
            "chaoslib_version": journal.chaoslib_version,
            "platform": journal.platform,
            "node": journal.node,
            "start": iso(model.start),
            "end": iso(model.end),
            "duration_seconds": round(model.end - model.start, 3),
            "chaos_status": journal.status,
            "chaos_deviated": journal.deviated,
            "deviated_during": deviated_during(journal),
            "chaos_exit_code": gameday.get("chaos_exit_code"),
            "gameday_verdict": gameday.get("verdict"),
            "during_checks": len(journal.during),
            "configuration": model.redactor.configuration(configuration),
            "secrets": sorted(str(k) for k in experiment.secrets),
        },
        "notes": notes,
        "verdict_notes": list(judgement.notes),
        "evidence": [item.as_dict() for item in judgement.evidence],
        "fault_evidence": [
            f.as_dict()
            for f in (FaultEvidence.from_dict(e) for e in as_list(gameday.get("fault_evidence")))
            if f is not None
        ],
    }
    redacted: dict[str, Any] = model.redactor.data(summary)
    return redacted
