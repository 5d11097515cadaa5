"""A game day in one command: validate -> sandbox up -> ``chaos run`` -> verdict -> clean up.

The verdict and its exit code (0 passed, 1 error, 10 deviated, 11 failed, 12 interrupted,
13 left-behind) come from :mod:`chaosregistry.verdict`, the rule ``chaosregistry report`` uses too.

On the local backend the embedded sandbox is started (when it is not running) only if the
experiment needs it (:func:`sandbox_needs`): an experiment whose activities all reach registries
the configuration names (``registry_url``, ``mirror_url`` when something targets the mirror) and
that neither kills nodes, nor faults a sandbox hop, nor reads the sandbox's logs or metrics runs
without one. ``--sandbox-dir`` says where the sandbox is when one is needed, not whether.
"""

import datetime
import importlib
import inspect
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from chaosregistry.errors import ChaosRegistryError, ConfigError
from chaosregistry.faults.evidence import fault_evidence
from chaosregistry.faults.ledger import Entry, Ledger, RevertReason
from chaosregistry.faults.lifecycle import revert_all
from chaosregistry.prometheus import SERIES_FILE, capture_series, declared_series
from chaosregistry.reports import build_report
from chaosregistry.settings import DEFAULT_SANDBOX_DIR, settings_for
from chaosregistry.validate import activities, substitute, validate
from chaosregistry.verdict import RunFacts, Verdict, judge, load_evidence

# How long the watchdog may take to revert what a finished run still owned.
WATCHDOG_GRACE_SECONDS = 5.0


@dataclass
class GameDayResult:
    verdict: Verdict
    run_dir: Path
    journal: Path
    faults: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report: Path | None = None  # report.html, once written
    score: float | None = None  # None: no hypothesis probes, or a run that earns no score
    fault_evidence: list[dict[str, Any]] = field(default_factory=list)  # FaultEvidence.as_dict

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


# Activities that act on the embedded sandbox itself (local backend), whatever the
# configuration names: its registry processes, its mirror's access log.
SANDBOX_ACTIVITIES = {
    "chaosregistry.actions.node": "kills and restarts the sandbox's registry processes",
    "chaosregistry.probes.mirror": "reads the sandbox mirror's access log",
}


PROMETHEUS_PROBES = "chaosregistry.probes.prometheus"
# Two scrape and rule-evaluation intervals of the sandbox's Prometheus.
PROMETHEUS_SETTLE_SECONDS = 2.0


def sandbox_needs(experiment: dict[str, Any], configuration: dict[str, Any]) -> list[str]:
    """Why a local-backend experiment needs the embedded sandbox; empty when it does not.

    ``configuration`` is the effective, flattened one. The sandbox is needed when the
    configuration names a ``sandbox_dir``, or when an activity of ours (hypothesis, method or
    rollbacks; other providers never need it):

    * kills registry nodes (``actions.node``) or reads the mirror's log (``probes.mirror``);
    * puts a network fault on a hop (``actions.network``) without ``toxiproxy_url`` and
      ``hops`` in the configuration;
    * reads metrics (``registry_metrics``) without a ``metrics_url``;
    * asks Prometheus (``probes.prometheus``) without a ``prometheus_url``;
    * targets a registry by name (``target: registry`` or ``mirror``, the default ``registry``
      included, and a cold load's ``load_origin``) that the configuration gives no
      ``<name>_url`` for: the name would resolve to the sandbox's endpoint and credentials.

    A URL as ``target`` never needs it. The settings named above are read from the typed
    settings of ``configuration``; the mapping itself only fills the ``${...}`` references of
    the activities' arguments, as Chaos Toolkit will.
    """
    settings = settings_for(configuration)
    if settings.registry.configured_sandbox_dir is not None:
        return ["the configuration names a sandbox_dir"]
    reasons = []
    for where, activity in activities(experiment):
        provider = activity.get("provider") or {}
        module_name = str(provider.get("module", ""))
        if provider.get("type") != "python" or not module_name.startswith("chaosregistry."):
            continue
        name = f"{where} ({activity.get('name', '?')})"
        func_name = str(provider.get("func", ""))
        arguments = {
            str(key): substitute(value, configuration)
            for key, value in (provider.get("arguments") or {}).items()
        }
        if module_name in SANDBOX_ACTIVITIES:
            reasons.append(f"{name} {SANDBOX_ACTIVITIES[module_name]}")
        elif module_name == "chaosregistry.actions.network" and not (
            settings.local.toxiproxy_url and settings.local.hops
        ):
            reasons.append(f"{name} puts its fault on a sandbox hop (no toxiproxy_url and hops)")
        elif func_name == "registry_metrics" and not arguments.get("metrics_url"):
            reasons.append(f"{name} reads a sandbox replica's metrics (no metrics_url)")
        elif module_name == PROMETHEUS_PROBES and not configuration.get("prometheus_url"):
            reasons.append(f"{name} asks the sandbox's Prometheus (no prometheus_url)")
        for target in _named_targets(module_name, func_name, arguments, settings.load_origin):
            if not settings.registry.urls.get(target):
                reasons.append(f"{name} targets {target!r} and there is no {target}_url")
    return reasons


def _named_targets(
    module_name: str, func_name: str, arguments: dict[str, Any], load_origin: str
) -> list[str]:
    """The registries an activity reaches by name (URLs left out)."""
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        parameters = inspect.signature(func).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return ["registry"]  # validate() has already refused these; stay on the safe side
    names = []
    if "target" in parameters:
        names.append(arguments.get("target", parameters["target"].default))
    if func_name == "start_pull_load" and arguments.get("mode") == "cold":
        names.append(load_origin)
    return [str(n) for n in names if isinstance(n, str) and n and "://" not in n]


def pull_table(journal: dict[str, Any]) -> list[str]:
    """The game day's pulls as a table: every probe result that carries pull statistics."""

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, int | float) else "-"

    rows: list[tuple[str, str, dict[str, Any]]] = []
    states = journal.get("steady_states") or {}
    for phase in ("before",):
        for probe in (states.get(phase) or {}).get("probes") or []:
            rows.append((phase, probe["activity"]["name"], probe.get("output") or {}))
    for run in journal.get("run") or []:
        if run["activity"].get("type") == "probe":
            rows.append(("method", run["activity"]["name"], run.get("output") or {}))
    for probe in (states.get("after") or {}).get("probes") or []:
        rows.append(("after", probe["activity"]["name"], probe.get("output") or {}))
    lines = [f"{'phase':<7} {'probe':<34} {'ok':>7} {'p50 s':>7} {'p95 s':>7} {'max s':>7}  errors"]
    for phase, name, out in rows:
        if not isinstance(out, dict):
            continue
        if "success_ratio" in out:
            ok = f"{out.get('succeeded', 0)}/{out.get('count', 0)}"
            p50, p95, worst = out.get("p50"), out.get("p95"), out.get("max_attempt")
            errors = out.get("errors") or {}
        elif "ok" in out and "timings" in out:
            ok = "1/1" if out["ok"] else "0/1"
            p50 = p95 = worst = out["timings"].get("total")
            errors = {out["error"]["class"]: 1} if out.get("error") else {}
        elif "pulls_per_second" in out:  # a Locust load's exact statistics
            # "pulls" counts the pulls that succeeded, "attempts" those that ended either way.
            ok = f"{out.get('pulls', 0)}/{out.get('attempts', 0)}"
            p50, p95, worst = out.get("p50"), out.get("p95"), out.get("max")
            errors = out.get("failures_by_class") or {}
        elif "recovered" in out:
            ok = "yes" if out["recovered"] else "no"
            p50 = p95 = worst = out.get("seconds")
            errors = out.get("errors") or {}
        else:
            continue
        error_text = ", ".join(f"{k} {v}" for k, v in errors.items()) or "-"
        lines.append(
            f"{phase:<7} {name[:34]:<34} {ok:>7} {fmt(p50):>7} {fmt(p95):>7} {fmt(worst):>7}  "
            f"{error_text}"
        )
    return lines


def _chaos_binary() -> str:
    beside = Path(sys.executable).with_name("chaos")
    found = str(beside) if beside.exists() else shutil.which("chaos")
    if not found:
        raise ConfigError("the 'chaos' command is not installed (pip install chaostoolkit)")
    return found


def _load_journal(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class _Forwarder:
    """Pass SIGINT/SIGTERM on to ``chaos run`` (it reverts and journals), remember we got one."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_Forwarder":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)


def run_gameday(
    experiment: Path,
    *,
    vars_file: Path | None,
    run_dir: Path | None = None,
    sandbox_dir: Path | None = None,
    keep_sandbox: bool = False,
    say: Callable[[str], None] = print,
) -> GameDayResult:
    """Run one experiment end to end. Raises ConfigError for bad input (nothing run then)."""
    checked = validate(experiment, vars_file)
    experiment_data, configuration, settings = (
        checked.experiment,
        checked.configuration,
        checked.settings,
    )
    backend = settings.backend
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = (run_dir or Path("runs") / f"{stamp}-{experiment.stem}").absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    journal_path = run_dir / "journal.json"
    ledger = Ledger(settings.ledger_dir)
    say(f"game day: {experiment} ({backend} backend) -> {run_dir}")

    sandbox_path = (
        sandbox_dir or settings.registry.configured_sandbox_dir or DEFAULT_SANDBOX_DIR
    ).absolute()
    env = dict(os.environ)
    env["CHAOSREGISTRY_LEDGER_DIR"] = str(ledger.path)
    env["CHAOSREGISTRY_RUN_DIR"] = str(run_dir)
    # A name unique to this run, usable in image tags (lower case, no dots). The random part
    # keeps two runs with the same run-dir name from sharing a tag a mirror may have cached.
    env["CHAOSREGISTRY_RUN_ID"] = (
        f"{run_dir.name.lower().replace('.', '-')[:100]}-{secrets.token_hex(3)}"
    )
    argv = [
        _chaos_binary(),
        "--log-file",
        str(run_dir / "chaostoolkit.log"),
        "run",
        "--journal-path",
        str(journal_path),
        "--rollback-strategy",
        "always",
        *checked.runtime_options,
    ]
    if vars_file:
        argv += ["--var-file", str(vars_file.absolute())]
    argv.append(str(experiment.absolute()))

    owned_sandbox: list[Path] = []  # filled as soon as we start one, even half-way
    try:
        needs = sandbox_needs(experiment_data, configuration) if backend == "local" else []
        if needs:
            _ensure_sandbox(sandbox_path, owned_sandbox, say)
            env["CHAOSREGISTRY_SANDBOX_DIR"] = str(sandbox_path)
        elif backend == "local":
            say("sandbox: not needed (every activity reaches a configured registry)")
        started = time.time()
        with _Forwarder() as forwarder:
            # In the caller's directory, as `chaos run` would be: relative paths in the vars
            # file (kubeconfig, cluster_state_dir, sandbox_dir...) mean what they say there.
            # Loads find the run dir through CHAOSREGISTRY_RUN_DIR.
            process = subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            forwarder.process = process
            assert process.stdout is not None
            for line in process.stdout:
                say(f"  chaos | {line.rstrip()}")
            process.wait()
        journal = _load_journal(journal_path)
        faults, notes, left_behind = _settle_faults(ledger, process.pid, started)
        prometheus_config = {**configuration}
        if needs:
            prometheus_config["sandbox_dir"] = str(sandbox_path)
        notes += _capture_prometheus(experiment_data, prometheus_config, run_dir, started)
        loads = load_evidence(journal, run_dir)
        evidence = fault_evidence(
            _ledger_entries(ledger, faults), journal, configuration=prometheus_config, loads=loads
        )
        judgement = judge(
            RunFacts(
                journal,
                interrupted=forwarder.received is not None,
                left_behind=left_behind,
                loads=loads,
                faults=evidence,
            )
        )
        result = GameDayResult(
            judgement.verdict, run_dir, journal_path, faults, [*judgement.notes, *notes]
        )
        result.fault_evidence = [item.as_dict() for item in evidence]
        _write_gameday_json(run_dir, experiment, vars_file, backend, result, process.returncode)
        if journal is not None:
            _write_report(result, say)
        return result
    finally:
        if owned_sandbox and not keep_sandbox:
            from chaosregistry import sandbox

            say("sandbox: stopping")
            sandbox.down(sandbox_path)


def _capture_prometheus(
    experiment: dict[str, Any], configuration: dict[str, Any], run_dir: Path, started: float
) -> list[str]:
    """prometheus.json: the experiment's declared Prometheus series over the run, read before
    the sandbox (and its Prometheus) stops; a note per series Prometheus did not answer."""
    if not declared_series(experiment):
        return []
    time.sleep(PROMETHEUS_SETTLE_SECONDS)  # the last scrape and rule evaluation of the run
    captured = capture_series(experiment, configuration, started, time.time())
    if captured is None:
        return []
    (run_dir / SERIES_FILE).write_text(json.dumps(captured, indent=2, allow_nan=False))
    return [
        f"prometheus series {s['name']!r} not charted: {s['error']['class']}: "
        f"{s['error']['message']}"
        for s in captured["series"]
        if s["error"]
    ]


def _write_gameday_json(
    run_dir: Path,
    experiment: Path,
    vars_file: Path | None,
    backend: str,
    result: GameDayResult,
    chaos_exit_code: int,
) -> None:
    (run_dir / "gameday.json").write_text(
        json.dumps(
            {
                "experiment": str(experiment),
                "vars": str(vars_file) if vars_file else None,
                "backend": backend,
                "verdict": result.verdict,
                "exit_code": result.exit_code,
                "chaos_exit_code": chaos_exit_code,
                "faults": result.faults,
                "fault_evidence": result.fault_evidence,
                "notes": result.notes,
            },
            indent=2,
        )
    )


def _write_report(result: GameDayResult, say: Callable[[str], None]) -> None:
    """report.html, summary.json, junit.xml and summary.md beside the journal.

    A report that cannot be built is a note, never a lost game day: the journal is kept.
    """
    try:
        report = build_report([result.journal], result.run_dir)
    except Exception as exc:  # the verdict stands without its report
        result.notes.append(f"report not written: {type(exc).__name__}: {exc}")
        return
    result.report = report.html
    result.score = report.score
    if report.verdict != result.verdict:
        say(f"note: the report's verdict is {report.verdict}, the game day's {result.verdict}")


def _ensure_sandbox(path: Path, owned: list[Path], say: Callable[[str], None]) -> None:
    """Use the sandbox running in ``path``, or start one (recorded in ``owned`` first)."""
    from chaosregistry import sandbox

    try:
        state = sandbox.status(path)
    except ConfigError:
        state = {"running": False, "endpoints": {}}
    if state["running"]:
        say(f"sandbox: using the running one in {path}")
        return
    say(f"sandbox: starting in {path}")
    owned.append(path)
    base_port = state["endpoints"].get("base_port", sandbox.DEFAULT_BASE_PORT)
    sandbox.up(path, base_port=base_port, progress=lambda m: say(f"  sandbox | {m}"))


def _ledger_entries(ledger: Ledger, faults: list[dict[str, Any]]) -> list[Entry]:
    """The ledger entries of the run's faults (as ``_settle_faults`` listed them)."""
    entries = []
    for fault in faults:
        try:
            entries.append(ledger.get(str(fault["id"])))
        except ChaosRegistryError:
            continue  # removed by hand since: its evidence is gone with it
    return entries


def _settle_faults(
    ledger: Ledger, owner_pid: int, since: float
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Wait for the watchdog to finish with this run's faults; revert what is left."""

    def ours() -> list[Entry]:
        return [
            e
            for e in ledger.all()
            if e.created_at >= since - 1 and e.owner is not None and e.owner.pid == owner_pid
        ]

    deadline = time.monotonic() + WATCHDOG_GRACE_SECONDS
    while any(e.active for e in ours()) and time.monotonic() < deadline:
        time.sleep(0.1)
    notes: list[str] = []
    left_behind = False
    still = [e for e in ours() if e.active]
    if still:
        left_behind = True
        notes.append(f"{len(still)} fault(s) still active after the run: reverting them now")
        for outcome in revert_all(ledger, RevertReason.MANUAL):
            if outcome.error:
                notes.append(f"fault {outcome.entry.id}: could not be reverted: {outcome.error}")
    entries = ours()
    for entry in entries:
        # Expiry is a fault ending on schedule; an owner that died is a run that never got to
        # its rollbacks.
        if entry.revert_reason == RevertReason.OWNER_GONE:
            notes.append(
                f"fault {entry.id} ({entry.kind} on {entry.target}) was reverted by the "
                "watchdog because chaos run died before its rollbacks"
            )
    summary = [
        {
            "id": e.id,
            "kind": e.kind,
            "target": e.target,
            "state": str(e.state),
            "revert_reason": str(e.revert_reason) if e.revert_reason else None,
            "injected_at": e.created_at,
            "reverted_at": e.reverted_at,
        }
        for e in entries
    ]
    return summary, notes, left_behind
