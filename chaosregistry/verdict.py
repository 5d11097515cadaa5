"""The verdict of a game day: one rule, its exit codes and the notes that explain it.

``chaosregistry gameday`` and ``chaosregistry report`` both call :func:`judge`, so a run gets the
same verdict whoever reads it. The rule, in order (the first that applies wins):

====  ===============  ==========================================================================
code  verdict          when
====  ===============  ==========================================================================
13    left-behind      a fault outlived the run and had to be reverted afterwards
12    interrupted      SIGINT / SIGTERM reached the run, or its journal says interrupted
11    failed           no journal; the run did not complete (aborted, steady state not met
                       before the method); an action of the method failed; a pull load never
                       completed a pull; every pull probe of the hypothesis before the method
                       failed before reaching the registry (tls, auth, or the probe raised);
                       a Prometheus probe got no answer (unreachable, a bad query, an error)
10    deviated         completed, but the steady state did not hold after the method or in a
                       check run during it, or a probe of the method missed its own tolerance
0     passed           none of the above
1     error            bad input: nothing was run (never the result of :func:`judge`)
====  ===============  ==========================================================================

Every cause of *failed* is named by a note (one line) whatever the verdict ends up being, so a
left-behind or interrupted run still says what else went wrong.

Why the last two causes of *failed*: a load whose every pull failed (wrong password, a CA it does
not trust) and a steady state that was never measured (every probe stopped at TLS or auth) leave
Chaos Toolkit's run "completed", and with lenient tolerances even "met". Such a game day proved
nothing about the fault, so it must not pass, and it did not deviate either: it is broken.
"""

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from chaosregistry.errors import ErrorClass
from chaosregistry.loadgen import records

LOAD_MODULE = "chaosregistry.actions.load"
LOAD_START = "start_pull_load"
PULL_PROBE_MODULE = "chaosregistry.probes.pull"
PROMETHEUS_PROBE_MODULE = "chaosregistry.probes.prometheus"
# Errors a pull meets before the registry has served anything: what it measured is the client's
# set-up (a CA, a password), not the registry.
BEFORE_REGISTRY = frozenset({ErrorClass.TLS.value, ErrorClass.AUTH.value})


class Verdict(StrEnum):
    """What a game day came to. Stable strings: they appear in gameday.json and summary.json."""

    PASSED = "passed"
    ERROR = "error"
    DEVIATED = "deviated"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    LEFT_BEHIND = "left-behind"

    @property
    def exit_code(self) -> int:
        """The process exit code CI acts on."""
        return EXIT_CODES[self]


EXIT_CODES: dict[Verdict, int] = {
    Verdict.PASSED: 0,
    Verdict.ERROR: 1,
    Verdict.DEVIATED: 10,
    Verdict.FAILED: 11,
    Verdict.INTERRUPTED: 12,
    Verdict.LEFT_BEHIND: 13,
}


def exit_code_of(verdict: object) -> int:
    """The exit code of a verdict's string; 1 (bad input) for anything that is not one."""
    try:
        return Verdict(str(verdict)).exit_code
    except ValueError:
        return EXIT_CODES[Verdict.ERROR]


@dataclass(frozen=True)
class LoadEvidence:
    """What one load started by ``start_pull_load`` did, from its exact per-pull records.

    ``found`` is False when its records directory does not exist (a journal moved without its
    run directory): such a load is named in a note and not judged.
    """

    load_id: str
    action: str
    records_dir: str
    found: bool
    records: int = 0
    pulls: int = 0  # successful
    attempts: int = 0  # successful + failed (cut-short pulls are neither)
    interrupted: int = 0
    failures_by_class: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """summary.json's ``load_pulls[]`` entry."""
        return {
            "load_id": self.load_id,
            "action": self.action,
            "records_found": self.found,
            "records": self.records,
            "pulls": self.pulls,
            "attempts": self.attempts,
            "interrupted": self.interrupted,
            "failures_by_class": dict(self.failures_by_class),
        }


@dataclass(frozen=True)
class FaultEvidence:
    """What the run can show about one fault it injected (read from the ledger and the run's
    measurements by ``chaosregistry.faults.evidence``).

    A *passed* run needs every one of its faults ``applied``, ``confirmed`` (the backend checked
    the fault was in place: a toxic listed, a new pid, a served fingerprint) and ``measured`` (a
    probe or load crossed the faulted hop or target inside the fault's active window). A fault of
    a dry run applies nothing (``dry_run``): such a run is never *passed*. ``detail`` is one line
    saying how each was proven, or why not.
    """

    id: str
    kind: str
    target: str
    applied: bool
    confirmed: bool
    measured: bool
    dry_run: bool = False
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """gameday.json's and summary.json's ``fault_evidence[]`` entry."""
        return {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "applied": self.applied,
            "confirmed": self.confirmed,
            "measured": self.measured,
            "dry_run": self.dry_run,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class RunFacts:
    """Everything the verdict depends on."""

    journal: dict[str, Any] | None
    interrupted: bool = False
    left_behind: bool = False
    loads: tuple[LoadEvidence, ...] = ()
    faults: tuple[FaultEvidence, ...] = ()


@dataclass(frozen=True)
class Judgement:
    """A verdict and the notes (one line each) that say why it is not simply the journal's."""

    verdict: Verdict
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


def judge(facts: RunFacts) -> Judgement:
    """The verdict of a run (the rule is in the module docstring)."""
    journal = facts.journal
    failures = [
        *failed_actions(journal),
        *load_notes(facts.loads),
        *unreached_registry(journal),
        *unanswered_prometheus(journal),
        *not_met_before(journal),
    ]
    missed = method_checks_missed(journal)
    notes = tuple(failures + missed + missing_load_notes(facts.loads))
    status = (journal or {}).get("status")
    if facts.left_behind:
        verdict = Verdict.LEFT_BEHIND
    elif facts.interrupted or status == "interrupted":
        verdict = Verdict.INTERRUPTED
    elif journal is None or failures:
        verdict = Verdict.FAILED
    elif journal.get("deviated") or (
        status == "completed" and (deviated_during(journal) or missed)
    ):
        verdict = Verdict.DEVIATED
    elif status == "completed":
        verdict = Verdict.PASSED
    else:  # aborted, or the steady state was not met before the method
        verdict = Verdict.FAILED
    return Judgement(verdict, notes)


def deviated_during(journal: dict[str, Any] | None) -> bool:
    """Whether a steady-state check run *during* the method failed.

    Chaos Toolkit records those checks (``--hypothesis-strategy continuously``) but never counts
    them: without ``--fail-fast`` the run stays "completed", with it the run is "failed". For
    us a steady state that broke under the fault is a deviation, whatever the after-check says.
    """
    during = (_dict(journal).get("steady_states") or {}).get("during") or []
    return any(isinstance(s, dict) and s.get("steady_state_met") is False for s in during)


def method_checks_missed(journal: dict[str, Any] | None) -> list[str]:
    """One line per probe *of the method* that declares a tolerance and missed it.

    Chaos Toolkit judges tolerances in the steady-state hypothesis only and ignores them on
    the method's probes, where a game day asserts what must hold *under* the fault (an alert
    that must page someone, pulls that must keep working through the mirror). We judge them
    with Chaos Toolkit's own rule (``chaoslib.hypothesis.within_tolerance``); a tolerance of
    type ``probe`` would run code again and is left unjudged.
    """
    from chaoslib import substitute
    from chaoslib.hypothesis import within_tolerance

    configuration = _dict(_dict(_dict(journal).get("experiment")).get("configuration"))
    plain = {k: v for k, v in configuration.items() if not isinstance(v, dict)}
    lines = []
    for run in _runs(journal):
        activity = _dict(run.get("activity"))
        declared = activity.get("tolerance")
        if activity.get("type") != "probe" or declared is None or run.get("status") != "succeeded":
            continue
        if isinstance(declared, dict) and declared.get("type") == "probe":
            continue
        # The journal keeps ${name} as written: resolved from the run's own configuration
        # (a value from elsewhere, such as an env entry, leaves it unjudged: it cannot be told).
        tolerance = substitute(declared, plain, None)
        if "${" in json.dumps(tolerance, default=str):
            continue
        try:
            met = within_tolerance(tolerance, run.get("output"), configuration=plain)
        except Exception as exc:  # a tolerance chaoslib cannot apply to this output
            met, why = False, f"{type(exc).__name__}: {exc}"
        else:
            why = f"output {_short(run.get('output'), tolerance)}"
        if met is False:
            lines.append(
                f"method check {activity.get('name')!r} out of tolerance {_compact(tolerance)}: "
                f"{why}"
            )
    return lines


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _short(output: Any, tolerance: Any) -> str:
    """The part of ``output`` a tolerance looked at (its ``target``), else the output."""
    target = tolerance.get("target") if isinstance(tolerance, dict) else None
    if isinstance(output, dict) and isinstance(target, str) and target in output:
        return f"{target}={_compact(output[target])}"
    text = _compact(output)
    return text if len(text) <= 120 else text[:117] + "..."


def failed_actions(journal: dict[str, Any] | None) -> list[str]:
    """One line per method *action* that failed (Chaos Toolkit logs it and carries on).

    A fault that was never applied leaves the run "completed" and the steady state met: the
    game day proved nothing, so it must not pass.
    """
    lines = []
    for run in _runs(journal):
        activity = _dict(run.get("activity"))
        if activity.get("type") != "action" or run.get("status") != "failed":
            continue
        lines.append(f"action {activity.get('name')!r} failed: {_last_exception_line(run)}")
    return lines


def load_notes(loads: Iterable[LoadEvidence]) -> list[str]:
    """One line per load that never completed a pull (each fails the run)."""
    lines = []
    for load in loads:
        if not load.found:
            continue
        if load.records == 0:
            lines.append(
                f"load {load.load_id}: wrote no pull record (Locust never finished a pull; "
                f"see {Path(load.records_dir).parent / 'locust.log'})"
            )
        elif load.pulls == 0:
            classes = ", ".join(f"{k} {v}" for k, v in sorted(load.failures_by_class.items()))
            if load.interrupted:
                classes = ", ".join(filter(None, [classes, f"{load.interrupted} cut short"]))
            lines.append(f"load {load.load_id}: 0 of {load.attempts} pulls succeeded ({classes})")
    return lines


def unreached_registry(journal: dict[str, Any] | None) -> list[str]:
    """One line per pull probe of the hypothesis before the method, when *every* one of them
    failed before reaching the registry; none when one of them got through (or there is none).
    """
    before = _dict(_dict(_dict(journal).get("steady_states")).get("before"))
    pulls = [
        run
        for run in before.get("probes") or []
        if isinstance(run, dict)
        and _dict(_dict(run.get("activity")).get("provider")).get("module") == PULL_PROBE_MODULE
    ]
    reasons = [_why_unreached(run) for run in pulls]
    if not reasons or any(reason is None for reason in reasons):
        return []
    return [
        f"probe {_dict(run.get('activity')).get('name')!r}: every pull failed before reaching "
        f"the registry ({reason})"
        for run, reason in zip(pulls, reasons, strict=True)
    ]


def not_met_before(journal: dict[str, Any] | None) -> list[str]:
    """One line when the steady state was not met before the method: nothing was injected.

    Chaos Toolkit 1.44 with ``--rollback-strategy always`` still writes such a run "completed"
    and not "deviated", which would otherwise read as passed.
    """
    before = _dict(_dict(_dict(journal).get("steady_states")).get("before"))
    if before.get("steady_state_met") is not False:
        return []
    missed = [
        str(_dict(run.get("activity")).get("name"))
        for run in before.get("probes") or []
        if isinstance(run, dict) and run.get("tolerance_met") is False
    ]
    which = f" (out of tolerance: {', '.join(missed)})" if missed else ""
    return [f"the steady state was not met before the method{which}: the method never ran"]


def unanswered_prometheus(journal: dict[str, Any] | None) -> list[str]:
    """One line per Prometheus probe run (hypothesis or method) that got no answer: its
    ``error`` (``chaosregistry.probes.prometheus``), the first of each probe name only."""
    lines: dict[str, str] = {}
    for run in _all_probe_runs(journal):
        activity = _dict(run.get("activity"))
        if _dict(activity.get("provider")).get("module") != PROMETHEUS_PROBE_MODULE:
            continue
        error = _dict(_dict(run.get("output")).get("error"))
        name = str(activity.get("name"))
        if error and name not in lines:
            lines[name] = (
                f"probe {name!r}: Prometheus gave no answer ({error.get('class')}: "
                f"{error.get('message')})"
            )
    return list(lines.values())


def _all_probe_runs(journal: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    """Every activity run of the journal: the hypothesis' (before, during, after), the method's
    and the rollbacks'."""
    states = _dict(_dict(journal).get("steady_states"))
    for phase in ("before", "after"):
        yield from (r for r in _dict(states.get(phase)).get("probes") or [] if isinstance(r, dict))
    for state in states.get("during") or []:
        yield from (r for r in _dict(state).get("probes") or [] if isinstance(r, dict))
    yield from _runs(journal)
    yield from (r for r in _dict(journal).get("rollbacks") or [] if isinstance(r, dict))


def _why_unreached(run: dict[str, Any]) -> str | None:
    """Why this pull probe never reached the registry, or None when it (or a pull of it) did."""
    if run.get("status") == "failed":  # the probe raised: its configuration, not a pull
        return _last_exception_line(run)
    output = _dict(run.get("output"))
    if "success_ratio" in output:  # pull_latency
        errors = _dict(output.get("errors"))
        if output.get("succeeded") or not errors or not set(errors) <= BEFORE_REGISTRY:
            return None
        return f"{'/'.join(sorted(errors))}: {output.get('first_error')}"
    if "recovered" in output:  # pull_recovery
        errors = _dict(output.get("errors"))
        if output.get("recovered") or not errors or not set(errors) <= BEFORE_REGISTRY:
            return None
        return f"{'/'.join(sorted(errors))}: {output.get('last_error')}"
    if "ok" in output:  # pull_image, manifest_digest
        error = _dict(output.get("error"))
        if output.get("ok") or error.get("class") not in BEFORE_REGISTRY:
            return None
        return f"{error.get('class')}: {error.get('message')}"
    return None


# -- evidence (reads files) -------------------------------------------------------------------
def started_loads(journal: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(action name, output) of every ``start_pull_load`` of the method that succeeded."""
    for run in _runs(journal):
        activity = _dict(run.get("activity"))
        provider = _dict(activity.get("provider"))
        output = _dict(run.get("output"))
        if (
            provider.get("module") == LOAD_MODULE
            and provider.get("func") == LOAD_START
            and run.get("status") == "succeeded"
            and isinstance(output.get("load_id"), str)
        ):
            yield str(activity.get("name") or LOAD_START), output


def load_evidence(journal: dict[str, Any] | None, journal_dir: Path) -> tuple[LoadEvidence, ...]:
    """What every load the journal started did, read from its records (``loadgen.records``).

    The records directory is the one the action returned; when that is gone, the run directory's
    own copy (``<journal dir>/load/<load_id>/pulls``, where a game day keeps its loads).
    """
    evidence = []
    for action, output in started_loads(journal):
        load_id = str(output["load_id"])
        named = output.get("records_dir") or (
            str(Path(str(output["stats_dir"])) / "pulls") if output.get("stats_dir") else ""
        )
        candidates = [Path(str(named))] if named else []
        candidates.append(journal_dir / "load" / load_id / "pulls")
        directory = next((c for c in candidates if c.is_dir()), None)
        if directory is None:
            evidence.append(LoadEvidence(load_id, action, str(candidates[0]), found=False))
            continue
        pulls = records.read_records(directory)
        # Over the whole load: every record, whenever it ended.
        whole = records.summarize_window(pulls, -math.inf, math.inf)
        evidence.append(
            LoadEvidence(
                load_id,
                action,
                str(directory),
                found=True,
                records=len(pulls),
                pulls=int(whole["pulls"]),
                attempts=int(whole["attempts"]),
                interrupted=int(whole["interrupted"]),
                failures_by_class=dict(whole["failures_by_class"]),
            )
        )
    return tuple(evidence)


def missing_load_notes(loads: Iterable[LoadEvidence]) -> list[str]:
    """One line per load whose records are gone (not judged, but not silently either)."""
    return [
        f"load {load.load_id}: no records at {load.records_dir}: whether it pulled is unknown"
        for load in loads
        if not load.found
    ]


def _runs(journal: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    for run in _dict(journal).get("run") or []:
        if isinstance(run, dict):
            yield run


def _last_exception_line(run: dict[str, Any]) -> str:
    exception = run.get("exception")
    if isinstance(exception, list) and exception:
        return str(exception[-1]).strip()
    if isinstance(exception, str) and exception.strip():
        return exception.strip().splitlines()[-1]
    return "no exception recorded"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
