"""The verdict of a game day: one rule, its exit codes, its evidence and the notes that explain it.

``chaosregistry gameday`` and ``chaosregistry report`` both call :func:`judge`, so a run gets the
same verdict whoever reads it. *passed* is a claim the run's own records back, never the absence
of a failure: :func:`judge` returns a checklist of :class:`Evidence` (``Judgement.evidence``),
and every item must be proven for a run to pass:

``this run's journal``
    the journal carries the run id the game day gave this run (``chaosregistry.gameday.control``
    writes it from inside ``chaos run``), and ``chaos run``'s exit status is the one its journal
    explains (0 for completed and not deviated, 1 otherwise). A missing journal, one an earlier
    run left in a reused run directory, or a journal judged without its gameday.json (no run id
    to match) is not proven.
``steady state before and after``
    at least one steady-state probe judged (it ran and its tolerance was applied) before the
    method and one after it, around a method that is not empty. An experiment whose
    ``chaosregistry`` extension (or Chaos Toolkit's ``runtime.hypothesis.strategy``) declares a
    strategy that skips a phase (``before-method-only``, ``after-method-only``,
    ``during-method-only``) needs a judged probe in each phase it does check, and a note says
    which phase went unchecked. No steady-state probe at all is never proven.
``faults applied, confirmed and measured``
    every fault of the run (``RunFacts.faults``, read from the ledger by
    ``chaosregistry.gameday.fault_evidence``, and every fault the journal's actions report) applied,
    confirmed in place and crossed by a measurement while active. A method that injects nothing
    (a probe-only experiment) proves it with "no fault injected"; an action of the method that
    never ran (the steady state failed before it, say) leaves it unproven.
``tolerances judged with the run's values``
    every tolerance declared on a probe of the method judged, its ``${name}`` references
    resolved with the values the run used (``RunFacts.configuration``, recorded by the game
    day). A probe that raised, a reference no value resolves, a tolerance that cannot be
    applied to the output or a ``probe``-type tolerance (code the verdict will not run again)
    leave it unproven.

The rule, in order (the first that applies wins):

====  ===============  ==========================================================================
code  verdict          when
====  ===============  ==========================================================================
13    left-behind      a fault outlived the run and had to be reverted afterwards
12    interrupted      SIGINT / SIGTERM reached the run, or its journal says interrupted
14    dry-run          a fault applied nothing by design (a backend's ``dry_run``) or Chaos
                       Toolkit ran with ``--dry``: nothing was tested; never *passed*, and apart
                       from *failed* so that CI tells "did nothing, as asked" from "broke"
11    failed           an item of the evidence is not proven (above); the run did not complete
                       (aborted, steady state not met before the method); an action of the
                       method failed; a pull load never completed a pull; every pull probe of the
                       hypothesis before the method failed before reaching the registry (tls,
                       auth, dns, or the probe raised); a Prometheus probe got no answer
10    deviated         completed, but the steady state did not hold after the method or in a
                       check run during it, or a probe of the method missed its own tolerance
0     passed           every item of the evidence proven, and none of the above
1     error            bad input: nothing was run (never the result of :func:`judge`)
====  ===============  ==========================================================================

Every cause of *failed* is named by a note (one line) whatever the verdict ends up being, so a
left-behind or interrupted run still says what else went wrong. A check that failed or could not
be judged names its probe and why: the error's class and reason and its message
(``reachable: tls/unknown-ca: ...``), or the value the tolerance looked at. A failed rollback
is noted (it is *left-behind* when its fault outlived the run, which the game day checks).

Why the last two causes of *failed*: a load whose every pull failed (wrong password, a CA it does
not trust) and a steady state that was never measured (every probe stopped at TLS or auth) leave
Chaos Toolkit's run "completed", and with lenient tolerances even "met". Such a game day proved
nothing about the fault, so it must not pass, and it did not deviate either: it is broken.
"""

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from chaosregistry.errors import ErrorClass
from chaosregistry.gameday.journal import ActivityRun, Journal, ResultKind, SteadyState, journal_of
from chaosregistry.loadgen import records

LOAD_MODULE = "chaosregistry.actions.load"
LOAD_START = "start_pull_load"
# The results of a pull probe, and of a Prometheus probe (declared by the probes' ``Returns``).
PULL_KINDS = frozenset(
    {ResultKind.PULL, ResultKind.MANIFEST, ResultKind.PULL_STATISTICS, ResultKind.PULL_RECOVERY}
)
PROMETHEUS_KINDS = frozenset(
    {ResultKind.PROMETHEUS_QUERY, ResultKind.PROMETHEUS_RANGE, ResultKind.PROMETHEUS_ALERTS}
)
# Errors a pull meets before the registry has served anything: what it measured is the client's
# set-up (a CA, a password, the registry's host name), not the registry.
BEFORE_REGISTRY = frozenset({ErrorClass.TLS.value, ErrorClass.AUTH.value, ErrorClass.DNS.value})


class Verdict(StrEnum):
    """What a game day came to. Stable strings: they appear in gameday.json and summary.json."""

    PASSED = "passed"
    ERROR = "error"
    DEVIATED = "deviated"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    LEFT_BEHIND = "left-behind"
    DRY_RUN = "dry-run"

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
    Verdict.DRY_RUN: 14,
}


# From the least to the most urgent: the order of the rule (the first that applies is the most
# urgent). Several runs are summed up by their most urgent verdict, not their highest code.
PRECEDENCE: tuple[Verdict, ...] = (
    Verdict.PASSED,
    Verdict.DEVIATED,
    Verdict.FAILED,
    Verdict.DRY_RUN,
    Verdict.INTERRUPTED,
    Verdict.LEFT_BEHIND,
    Verdict.ERROR,
)


def most_urgent(verdicts: Iterable[object]) -> Verdict:
    """The most urgent of some verdicts' strings (an unknown one is ``error``); passed for none."""
    found = []
    for verdict in verdicts:
        try:
            found.append(Verdict(str(verdict)))
        except ValueError:
            found.append(Verdict.ERROR)
    return max(found, key=PRECEDENCE.index, default=Verdict.PASSED)


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
    measurements by ``chaosregistry.gameday.fault_evidence``).

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

    @classmethod
    def from_dict(cls, entry: Any) -> "FaultEvidence | None":
        """A ``fault_evidence[]`` entry read back (gameday.json); None when it is not one."""
        if not isinstance(entry, dict):
            return None
        fault_id, kind, target = (entry.get(k) for k in ("id", "kind", "target"))
        applied, confirmed, measured = (entry.get(k) for k in ("applied", "confirmed", "measured"))
        if not (
            isinstance(fault_id, str)
            and isinstance(kind, str)
            and isinstance(target, str)
            and isinstance(applied, bool)
            and isinstance(confirmed, bool)
            and isinstance(measured, bool)
        ):
            return None
        return cls(
            fault_id,
            kind,
            target,
            applied,
            confirmed,
            measured,
            dry_run=entry.get("dry_run") is True,
            detail=str(entry.get("detail") or ""),
        )

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
    """Everything the verdict depends on.

    ``run_id``, ``chaos_exit_code`` and ``configuration`` are the game day's account of the run
    (gameday.json): the id it gave the run, ``chaos run``'s exit status, and the values the
    ``${name}`` references of the experiment's tolerances had in the run (vars file and
    environment resolved). None: there is no such account (a journal judged on its own).
    """

    journal: Journal | Mapping[str, Any] | None  # a mapping is parsed (``journal.parse_journal``)
    interrupted: bool = False
    left_behind: bool = False
    loads: tuple[LoadEvidence, ...] = ()
    faults: tuple[FaultEvidence, ...] = ()
    run_id: str | None = None
    chaos_exit_code: int | None = None
    configuration: dict[str, Any] | None = None
    # chaos run's last line of output when it wrote no journal (what it died of: a crash in
    # Chaos Toolkit itself, say a range tolerance given a null), secrets scrubbed.
    chaos_last_words: str | None = None


@dataclass(frozen=True)
class Evidence:
    """One item of what a *passed* needs: its name, whether the run proved it, and one line
    saying how, or what is missing."""

    name: str
    proven: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """gameday.json's and summary.json's ``evidence[]`` entry."""
        return {"name": self.name, "proven": self.proven, "detail": self.detail}


# The checklist's items, in the order they are shown.
JOURNAL_ITEM = "this run's journal"
STEADY_STATE_ITEM = "steady state before and after"
FAULTS_ITEM = "faults applied, confirmed and measured"
TOLERANCES_ITEM = "tolerances judged with the run's values"


@dataclass(frozen=True)
class Judgement:
    """A verdict, the evidence it stands on, and the notes (one line each) that say why it is
    not simply the journal's."""

    verdict: Verdict
    notes: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


def judge(facts: RunFacts) -> Judgement:
    """The verdict of a run (the rule is in the module docstring)."""
    journal = journal_of(facts.journal)
    checks = method_checks(journal, facts.configuration)
    faults, dry_faults = fault_evidence_item(journal, facts.faults)
    steady, strategy_notes = steady_state_evidence(journal)
    evidence = (journal_evidence(journal, facts), steady, faults, checks.evidence)
    unproven = [f"not proven: {item.name}: {item.detail}" for item in evidence if not item.proven]
    failures = [
        *failed_actions(journal),
        *load_notes(facts.loads),
        *unreached_registry(journal),
        *unanswered_prometheus(journal),
        *not_met_before(journal),
        *checks.unjudged,
    ]
    missed = checks.missed
    notes = tuple(
        failures
        + unproven
        + missed
        + not_held(journal)
        + strategy_notes
        + failed_rollbacks(journal)
        + missing_load_notes(facts.loads)
    )
    status = journal.status if journal is not None else None
    if facts.left_behind:
        verdict = Verdict.LEFT_BEHIND
    elif facts.interrupted or status == "interrupted":
        verdict = Verdict.INTERRUPTED
    elif dry_faults or (journal is not None and journal.experiment.dry):
        verdict = Verdict.DRY_RUN
    elif journal is None or failures or unproven:
        verdict = Verdict.FAILED
    elif journal.deviated or (status == "completed" and (deviated_during(journal) or missed)):
        verdict = Verdict.DEVIATED
    elif status == "completed":
        verdict = Verdict.PASSED
    else:  # aborted, or the steady state was not met before the method
        verdict = Verdict.FAILED
    return Judgement(verdict, notes, evidence)


# -- the evidence -----------------------------------------------------------------------------
def journal_evidence(journal: Journal | None, facts: RunFacts) -> Evidence:
    """Whether the journal judged is this run's, and explains how ``chaos run`` exited."""
    code = facts.chaos_exit_code
    if journal is None:
        exited = "" if code is None else f": chaos run exited {code} without writing one"
        if facts.chaos_last_words:
            exited += f" (its last words: {facts.chaos_last_words})"
        return Evidence(JOURNAL_ITEM, False, f"no journal{exited}")
    if facts.run_id is None:
        return Evidence(
            JOURNAL_ITEM,
            False,
            "no game day's run id to find in the journal (no gameday.json beside it, or one "
            "from before run ids): whose journal it is cannot be told",
        )
    found = journal.run_id
    if found is None:
        return Evidence(
            JOURNAL_ITEM,
            False,
            f"the journal carries no run id, this run's is {facts.run_id}: a journal an earlier "
            "run left in the run directory?",
        )
    if found != facts.run_id:
        return Evidence(
            JOURNAL_ITEM,
            False,
            f"the journal is run {found}'s, not this run's ({facts.run_id}): a journal an "
            "earlier run left in the run directory?",
        )
    status, deviated = journal.status, journal.deviated
    told = f"status {status}{', deviated' if deviated else ''}"
    if code is None:
        return Evidence(JOURNAL_ITEM, False, f"run {found}; chaos run's exit status is unknown")
    expected = 0 if status == "completed" and not deviated else 1
    if code != expected:
        return Evidence(
            JOURNAL_ITEM,
            False,
            f"run {found}: chaos run exited {code}, which its journal ({told}) does not "
            f"explain (it would exit {expected})",
        )
    return Evidence(JOURNAL_ITEM, True, f"run {found}; chaos run exited {code} ({told})")


def hypothesis_strategy(experiment: Mapping[str, Any]) -> tuple[str, str]:
    """The hypothesis strategy an experiment declares, and where: the ``chaosregistry``
    extension's (``gameday`` passes it to ``chaos run``), else Chaos Toolkit's own
    ``runtime.hypothesis.strategy``, else ``default``."""
    for extension in experiment.get("extensions") or []:
        if isinstance(extension, dict) and extension.get("name") == "chaosregistry":
            # gameday passes the extension's strategy, "default" when it names none.
            strategy = extension.get("hypothesis_strategy", "default")
            return str(strategy), "its chaosregistry extension"
    runtime = _dict(_dict(experiment.get("runtime")).get("hypothesis")).get("strategy")
    if isinstance(runtime, str):
        return runtime, "runtime.hypothesis.strategy"
    return "default", ""


# The phases each strategy checks the steady state in.
STRATEGY_PHASES = {
    "default": ("before", "after"),
    "continuously": ("before", "after"),
    "continously": ("before", "after"),
    "before-method-only": ("before",),
    "after-method-only": ("after",),
    "during-method-only": ("during",),
}


def steady_state_evidence(journal: Journal | None) -> tuple[Evidence, list[str]]:
    """Whether the steady state was measured before and after the method (or in each phase an
    explicitly declared strategy checks), and a note per phase such a strategy skips."""
    if journal is None:
        return Evidence(STEADY_STATE_ITEM, False, "no journal"), []
    experiment = journal.experiment
    if not experiment.hypothesis:
        return Evidence(
            STEADY_STATE_ITEM, False, "the experiment declares no steady-state probe"
        ), []
    if not experiment.method:
        return Evidence(
            STEADY_STATE_ITEM, False, "the method is empty: nothing ran between the checks"
        ), []
    strategy, where = hypothesis_strategy(experiment.raw)
    phases = STRATEGY_PHASES.get(strategy, ("before", "after"))
    judged = {
        "before": _judged(journal.before),
        "after": _judged(journal.after),
        "during": sum(1 for check in journal.during if _judged(check)),
    }
    unit = {"before": "probe(s) judged", "after": "probe(s) judged", "during": "check(s)"}
    missing = [phase for phase in phases if not judged[phase]]
    notes = [
        f"the steady state was not checked {phase} the method: the experiment's hypothesis "
        f"strategy {strategy} ({where}) skips it"
        for phase in ("before", "after")
        if phase not in phases
    ]
    shown = [p for p in ("before", "during", "after") if p in phases or judged[p]]
    detail = "; ".join(f"{p}: {judged[p]} {unit[p]}" for p in shown)
    if missing:
        return Evidence(
            STEADY_STATE_ITEM,
            False,
            f"no probe judged {' or '.join(missing)} the method ({detail})",
        ), notes
    if strategy not in ("default", "continuously", "continously"):
        detail += f" (strategy {strategy})"
    return Evidence(STEADY_STATE_ITEM, True, detail), notes


def _judged(state: SteadyState | None) -> int:
    """How many probe runs of a check ran and had their tolerance applied."""
    probes = state.probes if state is not None else ()
    return sum(1 for run in probes if run.succeeded and run.tolerance_met is not None)


def injected_faults(journal: Journal | None) -> dict[str, str]:
    """{fault id: "kind on target"} of every fault the method's actions report injecting
    (their output is the ledger entry; loads share the ledger but are not faults)."""
    found = {}
    for run in _runs(journal):
        output = run.result
        fault_id, kind = output.get("fault_id"), output.get("kind")
        if (
            run.succeeded
            and isinstance(fault_id, str)
            and isinstance(kind, str)
            and not kind.startswith("load.")
        ):
            found[fault_id] = f"{kind} on {output.get('target') or '?'}"
    return found


def actions_that_never_ran(journal: Journal | None) -> list[str]:
    """The method's declared actions with no run in the journal, by name, in method order."""
    if journal is None:
        return []
    ran = {run.activity.name for run in journal.run}
    return [
        activity.label
        for activity in journal.experiment.method
        if activity.type == "action" and activity.name not in ran
    ]


def fault_evidence_item(
    journal: Journal | None, faults: Iterable[FaultEvidence]
) -> tuple[Evidence, bool]:
    """Whether every fault of the run applied, was confirmed and was measured; and whether the
    run was a dry run (a fault that applied nothing by design)."""
    known = {fault.id: fault for fault in faults}
    problems: list[str] = []
    dry = False
    for fault in known.values():
        if fault.dry_run:
            dry = True
            problems.append(
                f"fault {fault.id} ({fault.kind} on {fault.target}): a dry run, nothing applied"
            )
            continue
        lacking = [
            word
            for word, ok in (
                ("applied", fault.applied),
                ("confirmed", fault.confirmed),
                ("measured", fault.measured),
            )
            if not ok
        ]
        if lacking:
            problems.append(
                f"fault {fault.id} ({fault.kind} on {fault.target}) not {', '.join(lacking)}"
                + (f": {fault.detail}" if fault.detail else "")
            )
    for fault_id, what in injected_faults(journal).items():
        if fault_id not in known:
            problems.append(f"fault {fault_id} ({what}): no evidence recorded of it")
    unrun = actions_that_never_ran(journal)
    if unrun:
        # Its fault, if it injects one, was never tried: "no fault injected" would be the
        # absence of a failure, not evidence (the steady state failed before the method, say).
        problems.append(f"the method's action(s) {', '.join(unrun)} never ran")
    if problems:
        return Evidence(FAULTS_ITEM, False, "; ".join(problems)), dry
    if not known:
        return Evidence(FAULTS_ITEM, True, "no fault injected"), False
    # How each was proven (the toxic seen, the bytes through its hop...), where the reader looks.
    proven = "; ".join(
        f"{f.id} ({f.kind} on {f.target})" + (f": {f.detail}" if f.detail else "")
        for f in known.values()
    )
    return Evidence(FAULTS_ITEM, True, f"{len(known)} fault(s): {proven}"), False


@dataclass(frozen=True)
class MethodChecks:
    """The method probes' tolerances, judged: the tolerances item, a note per check that missed
    its tolerance (a deviation) and per check that could not be judged (a failure)."""

    evidence: Evidence
    missed: list[str]
    unjudged: list[str]


def method_checks(journal: Journal | None, configuration: dict[str, Any] | None) -> MethodChecks:
    """Judge every probe *of the method* that declares a tolerance.

    Chaos Toolkit judges tolerances in the steady-state hypothesis only and ignores them on
    the method's probes, where a game day asserts what must hold *under* the fault (an alert
    that must page someone, pulls that must keep working through the mirror). We judge them
    with Chaos Toolkit's own rule (``chaoslib.hypothesis.within_tolerance``). The journal keeps
    ``${name}`` as written: resolved with ``configuration``, the values the run used (the game
    day records them), else with the experiment's written configuration, which leaves the item
    unproven (a vars file or the environment may have set another value). Never skipped: a
    probe that raised, a reference nothing resolves, a tolerance that cannot be applied to the
    output, or one of type ``probe`` (code the verdict will not run again) is a check that could
    not be judged.
    """
    from chaoslib import substitute
    from chaoslib.hypothesis import within_tolerance

    written = journal.experiment.configuration if journal is not None else {}
    values = (
        configuration
        if configuration is not None
        else {k: v for k, v in written.items() if not isinstance(v, dict)}
    )
    missed: list[str] = []
    unjudged: list[str] = []
    guessed: list[str] = []
    judged = 0
    for run in _runs(journal):
        declared = run.activity.tolerance
        if not run.is_probe or declared is None:
            continue
        name = f"method check {run.activity.name!r}"
        if not run.succeeded:
            unjudged.append(f"{name} could not be judged: the probe raised: {_why(run)}")
            continue
        if isinstance(declared, dict) and declared.get("type") == "probe":
            unjudged.append(
                f"{name} could not be judged: a tolerance of type probe is code the verdict "
                "does not run again (use a range, or move the check to the hypothesis)"
            )
            continue
        references = sorted(set(_REFERENCE.findall(json.dumps(declared, default=str))))
        tolerance = substitute(declared, values, None)
        unresolved = [r for r in references if r not in values]
        if unresolved:
            unjudged.append(
                f"{name} could not be judged: its tolerance refers to "
                f"{', '.join('${' + r + '}' for r in unresolved)}, which the run's "
                "configuration does not hold"
            )
            continue
        if references and configuration is None:
            guessed.append(name)
        try:
            met = within_tolerance(tolerance, run.output, configuration=values)
        except Exception as exc:  # a tolerance chaoslib cannot apply to this output
            unjudged.append(
                f"{name} could not be judged: tolerance {_compact(tolerance)} cannot be applied "
                f"to its output ({type(exc).__name__}: {exc})"
            )
            continue
        judged += 1
        if met is False:
            missed.append(f"{name} out of tolerance {_compact(tolerance)}: {_why(run, tolerance)}")
    if unjudged:
        names = ", ".join(
            note.split(" could not be judged")[0].removeprefix("method check ") for note in unjudged
        )
        evidence = Evidence(
            TOLERANCES_ITEM, False, f"could not be judged: {names} ({judged} other(s) judged)"
        )
    elif guessed:
        evidence = Evidence(
            TOLERANCES_ITEM,
            False,
            f"{', '.join(guessed)} judged with the experiment's written configuration: the "
            "values the run used are unknown (no gameday.json)",
        )
    elif judged:
        evidence = Evidence(
            TOLERANCES_ITEM, True, f"{judged} method check(s) judged with the run's values"
        )
    else:
        evidence = Evidence(TOLERANCES_ITEM, True, "no probe of the method declares a tolerance")
    return MethodChecks(evidence, missed, unjudged)


_REFERENCE = re.compile(r"\$\{([^}]+)\}")


def tolerance_references(experiment: Mapping[str, Any]) -> list[str]:
    """The configuration names the experiment's tolerances refer to (``${name}``): what a game
    day records of its configuration for the verdict (never the rest: it may hold secrets)."""
    tolerances = [
        item.get("tolerance")
        for item in [
            *(_dict(experiment.get("steady-state-hypothesis")).get("probes") or []),
            *(experiment.get("method") or []),
        ]
        if isinstance(item, dict)
    ]
    return sorted(set(_REFERENCE.findall(json.dumps(tolerances, default=str))))


def deviated_during(journal: Journal | Mapping[str, Any] | None) -> bool:
    """Whether a steady-state check run *during* the method failed.

    Chaos Toolkit records those checks (``--hypothesis-strategy continuously``) but never counts
    them: without ``--fail-fast`` the run stays "completed", with it the run is "failed". For
    us a steady state that broke under the fault is a deviation, whatever the after-check says.
    """
    parsed = journal_of(journal)
    return parsed is not None and any(check.met is False for check in parsed.during)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _short(output: Any, tolerance: Any) -> str:
    """The part of ``output`` a tolerance looked at (its ``target``), else the output."""
    target = tolerance.get("target") if isinstance(tolerance, dict) else None
    if isinstance(output, dict) and isinstance(target, str) and target in output:
        return f"{target}={_compact(output[target])}"
    text = _compact(output)
    return text if len(text) <= 120 else text[:117] + "..."


def error_text(output: Any) -> str | None:
    """Why a probe's output says it failed: ``class/reason: message`` from its ``error``
    ({class, message, reason or detail.reason}), or ``class n, ...: first message`` from the
    counts of a probe of many pulls; None when it carries no error."""
    output = _dict(output)
    error = output.get("error")
    if isinstance(error, dict) and error.get("class"):
        reason = error.get("reason") or _dict(error.get("detail")).get("reason")
        kind = f"{error['class']}/{reason}" if reason else str(error["class"])
        return f"{kind}: {error.get('message')}" if error.get("message") else kind
    counts = _dict(output.get("errors"))
    message = output.get("first_error") or output.get("last_error")
    if counts:
        classes = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        return f"{classes}: {message}" if message else classes
    if isinstance(message, str) and message:
        return message
    return None


def _why(run: ActivityRun, tolerance: Any = None) -> str:
    """Why a probe run failed or missed its tolerance, in one line: the exception it raised,
    else the value its tolerance looked at and the error its output carries."""
    if run.failed:
        return _last_exception_line(run)
    declared = tolerance if tolerance is not None else run.activity.tolerance
    output = run.output
    target = declared.get("target") if isinstance(declared, dict) else None
    error = error_text(output)
    if error and not (isinstance(output, dict) and isinstance(target, str) and target in output):
        return error  # the whole output would only repeat it
    looked_at = f"output {_short(output, declared)}"
    return f"{looked_at}; {error}" if error else looked_at


def failed_actions(journal: Journal | None) -> list[str]:
    """One line per method *action* that failed (Chaos Toolkit logs it and carries on).

    A fault that was never applied leaves the run "completed" and the steady state met: the
    game day proved nothing, so it must not pass.
    """
    lines = []
    for run in _runs(journal):
        if not run.is_action or not run.failed:
            continue
        lines.append(f"action {run.activity.name!r} failed: {_last_exception_line(run)}")
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


def unreached_registry(journal: Journal | None) -> list[str]:
    """One line per pull probe of the hypothesis before the method, when *every* one of them
    failed before reaching the registry; none when one of them got through (or there is none).
    """
    before = journal.before if journal is not None else None
    pulls = [run for run in (before.probes if before else ()) if run.kind in PULL_KINDS]
    reasons = [_why_unreached(run) for run in pulls]
    if not reasons or any(reason is None for reason in reasons):
        return []
    return [
        f"probe {run.activity.name!r}: every pull failed before reaching the registry ({reason})"
        for run, reason in zip(pulls, reasons, strict=True)
    ]


def not_met_before(journal: Journal | None) -> list[str]:
    """One line when the steady state was not met before the method: nothing was injected.

    Names each probe that missed and why (:func:`_why`: ``reachable: output reachable=false;
    tls/unknown-ca: ...``). Chaos Toolkit 1.44 with ``--rollback-strategy always`` still writes
    such a run "completed" and not "deviated", which would otherwise read as passed.
    """
    before = journal.before if journal is not None else None
    if before is None or before.met is not False:
        return []
    which = _missed_probes(before)
    return [f"the steady state was not met before the method{which}: the method never ran"]


def not_held(journal: Journal | None) -> list[str]:
    """One line per steady-state check after or during the method that did not hold, naming
    the probe that missed and why (a deviation says what deviated)."""
    if journal is None:
        return []
    lines = []
    after = journal.after
    if after is not None and after.met is False:
        lines.append(f"the steady state did not hold after the method{_missed_probes(after)}")
    failed = [check for check in journal.during if check.met is False]
    if failed:
        lines.append(
            f"{len(failed)} of {len(journal.during)} checks during the method did "
            f"not hold, the first{_missed_probes(failed[0])}"
        )
    return lines


def _missed_probes(state: SteadyState) -> str:
    """`` (name: why; ...)`` for the probes of a steady-state check that missed."""
    missed = [
        f"{run.activity.name}: {_why(run)}" for run in state.probes if run.tolerance_met is False
    ]
    return f" ({'; '.join(missed)})" if missed else ""


def failed_rollbacks(journal: Journal | None) -> list[str]:
    """One line per rollback that failed (the game day's ledger check says whether its fault
    outlived the run: that is *left-behind*)."""
    return [
        f"rollback {run.activity.name!r} failed: {_last_exception_line(run)}"
        for run in (journal.rollbacks if journal is not None else ())
        if run.failed
    ]


def unanswered_prometheus(journal: Journal | None) -> list[str]:
    """One line per Prometheus probe run (hypothesis or method) that got no answer: its
    ``error`` (``chaosregistry.probes.prometheus``), the first of each probe name only."""
    lines: dict[str, str] = {}
    for run in _all_probe_runs(journal):
        if run.kind not in PROMETHEUS_KINDS:
            continue
        error = _dict(run.result.get("error"))
        name = str(run.activity.name)
        if error and name not in lines:
            lines[name] = (
                f"probe {name!r}: Prometheus gave no answer ({error.get('class')}: "
                f"{error.get('message')})"
            )
    return list(lines.values())


def _all_probe_runs(journal: Journal | None) -> Iterator[ActivityRun]:
    """Every activity run of the journal: the hypothesis' (before, during, after), the method's
    and the rollbacks'."""
    if journal is None:
        return
    for state in (journal.before, journal.after, *journal.during):
        yield from (state.probes if state is not None else ())
    yield from journal.activity_runs()


def _why_unreached(run: ActivityRun) -> str | None:
    """Why this pull probe never reached the registry, or None when it (or a pull of it) did."""
    if run.failed:  # the probe raised: its configuration, not a pull
        return _last_exception_line(run)
    output = run.result
    if run.kind == ResultKind.PULL_STATISTICS:
        errors = _dict(output.get("errors"))
        if output.get("succeeded") or not errors or not set(errors) <= BEFORE_REGISTRY:
            return None
        return f"{'/'.join(sorted(errors))}: {output.get('first_error')}"
    if run.kind == ResultKind.PULL_RECOVERY:
        errors = _dict(output.get("errors"))
        if output.get("recovered") or not errors or not set(errors) <= BEFORE_REGISTRY:
            return None
        return f"{'/'.join(sorted(errors))}: {output.get('last_error')}"
    if run.kind in (ResultKind.PULL, ResultKind.MANIFEST):
        error = _dict(output.get("error"))
        if output.get("ok") or error.get("class") not in BEFORE_REGISTRY:
            return None
        return f"{error.get('class')}: {error.get('message')}"
    return None


# -- evidence (reads files) -------------------------------------------------------------------
def started_loads(
    journal: Journal | Mapping[str, Any] | None,
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(action name, output) of every ``start_pull_load`` of the method that succeeded."""
    for run in _runs(journal_of(journal)):
        provider = run.activity.provider
        output = run.result
        if (
            provider.module == LOAD_MODULE
            and provider.func == LOAD_START
            and run.succeeded
            and isinstance(output.get("load_id"), str)
        ):
            yield str(run.activity.name or LOAD_START), output


def load_evidence(
    journal: Journal | Mapping[str, Any] | None, journal_dir: Path
) -> tuple[LoadEvidence, ...]:
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


def _runs(journal: Journal | None) -> tuple[ActivityRun, ...]:
    return journal.run if journal is not None else ()


def _last_exception_line(run: ActivityRun) -> str:
    line = run.last_exception_line
    return "no exception recorded" if line is None else line


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
