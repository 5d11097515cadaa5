"""A game day in one command: validate -> sandbox up -> ``chaos run`` -> verdict -> clean up.

The verdict and its exit code (0 passed, 1 error, 10 deviated, 11 failed, 12 interrupted,
13 left-behind, 14 dry-run) come from :mod:`chaosregistry.gameday.verdict`, the rule ``chaosregistry
report`` uses too. The game day supplies its evidence: a run id, handed to ``chaos run`` through
a control (:mod:`chaosregistry.gameday.control`) that writes it into the journal; ``chaos run``'s
exit status; the values the tolerances' ``${name}`` references had in the run. All of them go into
gameday.json with the checklist (``evidence``). An earlier run's journal and report in a reused
run directory are moved to ``earlier/<time>/`` before the run, so they can never be taken for
this run's.

On the local backend the embedded sandbox is started (when it is not running) only if the
experiment needs it (:func:`sandbox_needs`): an experiment whose activities all reach registries
the configuration names (``registry_url``, ``mirror_url`` when something targets the mirror) and
that does nothing its activities declare needs the sandbox itself
(:mod:`chaosregistry.experiment.needs`: killing nodes, faulting a sandbox hop, changing nginx's
certificate, reading the sandbox's logs or metrics...) runs without one. ``--sandbox-dir`` says
where the sandbox is when one is needed, not whether.
"""

import datetime
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from chaosregistry.errors import ChaosRegistryError, ConfigError
from chaosregistry.experiment.activity import flatten_configuration
from chaosregistry.experiment.needs import needs_of
from chaosregistry.experiment.settings import (
    DEFAULT_SANDBOX_DIR,
    RUN_DIR_ENV,
    SANDBOX_DIR_ENV,
    FaultProxySettings,
    Settings,
    sandbox_endpoints,
    settings_for,
)
from chaosregistry.experiment.validate import activities, effective_configuration, validate
from chaosregistry.faults.ledger import RUN_ID_ENV, Entry, Ledger, RevertReason
from chaosregistry.faults.lifecycle import revert_all
from chaosregistry.gameday.control import control_file
from chaosregistry.gameday.fault_evidence import fault_evidence
from chaosregistry.gameday.journal import (
    Journal,
    JournalError,
    ResultKind,
    journal_of,
    parse_journal,
)
from chaosregistry.gameday.verdict import (
    Evidence,
    RunFacts,
    Verdict,
    judge,
    load_evidence,
    started_loads,
    tolerance_references,
)
from chaosregistry.observability.prometheus import SERIES_FILE, capture_series, declared_series
from chaosregistry.redaction import Redactor
from chaosregistry.reports import build_report
from chaosregistry.sandbox.layout import SECOND_SITE_REGISTRIES

# How long the watchdog may take to revert what a finished run still owned.
WATCHDOG_GRACE_SECONDS = 5.0
# What a run leaves in its run directory that a later run in the same directory must not be
# mistaken for (moved to earlier/<time>/ first).
RUN_ARTIFACTS = (
    "journal.json",
    "gameday.json",
    "summary.json",
    "summary.md",
    "report.html",
    "junit.xml",
    SERIES_FILE,
)
CONTROL_FILE = "chaosregistry-control.json"


@dataclass
class GameDayResult:
    verdict: Verdict
    run_dir: Path
    journal_path: Path  # journal.json (the parsed journal is gameday.journal.Journal)
    faults: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report: Path | None = None  # report.html, once written
    score: float | None = None  # None: no hypothesis probes, or a run that earns no score
    evidence: tuple[Evidence, ...] = ()  # what the verdict stands on (verdict.judge)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


# Two scrape and rule-evaluation intervals of the sandbox's Prometheus.
PROMETHEUS_SETTLE_SECONDS = 2.0


def _our_activities(
    experiment: dict[str, Any], configuration: dict[str, Any]
) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(where and name, module, function, arguments with ``${...}`` filled from the
    configuration by Chaos Toolkit's ``substitute``) of every activity of ours in the experiment
    (hypothesis, method, rollbacks); other providers are left out."""
    from chaoslib import substitute

    for where, activity in activities(experiment):
        provider = activity.get("provider") or {}
        module_name = str(provider.get("module", ""))
        if provider.get("type") != "python" or not module_name.startswith("chaosregistry."):
            continue
        arguments = {
            str(key): substitute(value, configuration, None)
            for key, value in (provider.get("arguments") or {}).items()
        }
        name = f"{where} ({activity.get('name', '?')})"
        yield name, module_name, str(provider.get("func", "")), arguments


def sandbox_needs(
    experiment: dict[str, Any],
    configuration: dict[str, Any],
    settings: Settings | None = None,
) -> list[str]:
    """Why a local-backend experiment needs the embedded sandbox; empty when it does not.

    ``configuration`` is the effective, flattened one; ``settings`` its parsed settings
    (default: parsed here). The sandbox is needed when the configuration names a
    ``sandbox_dir``, or when an activity of ours (hypothesis, method or rollbacks; other
    providers never need it) declares a need the configuration does not meet
    (:mod:`chaosregistry.experiment.needs`): it acts on the sandbox itself (kills registry
    nodes, reads the mirror's log; faults a hop without ``toxiproxy_url`` and ``hops``; asks
    Prometheus without ``prometheus_url``), reads it for an argument not given
    (``registry_metrics`` without ``metrics_url``), or targets a registry by name (``target:
    registry`` or ``mirror``, the default ``registry`` included, and a cold load's
    ``load_origin``) that the configuration gives no ``<name>_url`` for: the name would resolve
    to the sandbox's endpoint and credentials. A URL as ``target`` never needs it.

    The mapping only fills the ``${...}`` references of the activities' arguments, as Chaos
    Toolkit will; what is configured is read from the typed settings.
    """
    settings = settings if settings is not None else settings_for(configuration)
    if settings.registry.configured_sandbox_dir is not None:
        return ["the configuration names a sandbox_dir"]
    reasons = []
    for name, module_name, func_name, arguments in _our_activities(experiment, configuration):
        needs = needs_of(module_name, func_name, arguments, settings)
        reasons += [f"{name} {why}" for why in needs.sandbox]
        for target in needs.targets:
            if not settings.registry.urls.get(target):
                reasons.append(f"{name} targets {target!r} and there is no {target}_url")
    return reasons


def second_site_needs(
    experiment: dict[str, Any],
    configuration: dict[str, Any],
    settings: Settings | None = None,
) -> list[str]:
    """Why a local-backend experiment needs the sandbox's second site; empty when it does not.

    An activity of ours needs it when it reaches, by a name the configuration gives no
    ``<name>_url`` for, a registry only the second site has
    (``sandbox.layout.SECOND_SITE_REGISTRIES``), or when it declares a need of the second site
    for the arguments given (``needs.SecondSiteWhen``: a fault on one of its hops).
    """
    settings = settings if settings is not None else settings_for(configuration)
    reasons = []
    for name, module_name, func_name, arguments in _our_activities(experiment, configuration):
        needs = needs_of(module_name, func_name, arguments, settings)
        for target in needs.targets:
            if target in SECOND_SITE_REGISTRIES and not settings.registry.urls.get(target):
                reasons.append(f"{name} reaches {target!r}")
        reasons += [f"{name} {why}" for why in needs.second_site]
    return reasons


def pull_table(journal: Journal | Mapping[str, Any]) -> list[str]:
    """The game day's pulls as a table: every probe result that carries pull statistics (by
    the kind its probe declares: one pull, many pulls, a load's figures, a recovery)."""

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, int | float) else "-"

    parsed = journal_of(journal)
    assert parsed is not None
    rows = [
        *(("before", run) for run in (parsed.before.probes if parsed.before else ())),
        *(("method", run) for run in parsed.run if run.is_probe),
        *(("after", run) for run in (parsed.after.probes if parsed.after else ())),
    ]
    lines = [f"{'phase':<7} {'probe':<34} {'ok':>7} {'p50 s':>7} {'p95 s':>7} {'max s':>7}  errors"]
    for phase, run in rows:
        out, name = run.result, run.activity.label
        if run.kind == ResultKind.PULL_STATISTICS:
            ok = f"{out.get('succeeded', 0)}/{out.get('count', 0)}"
            p50, p95, worst = out.get("p50"), out.get("p95"), out.get("max_attempt")
            errors = out.get("errors") or {}
        elif run.kind == ResultKind.PULL:
            ok = "1/1" if out.get("ok") else "0/1"
            p50 = p95 = worst = _dict(out.get("timings")).get("total")
            error = _dict(out.get("error"))
            errors = {error.get("class"): 1} if error else {}
        elif run.kind == ResultKind.LOAD_STATISTICS:  # a Locust load's exact statistics
            # "pulls" counts the pulls that succeeded, "attempts" those that ended either way.
            ok = f"{out.get('pulls', 0)}/{out.get('attempts', 0)}"
            p50, p95, worst = out.get("p50"), out.get("p95"), out.get("max")
            errors = out.get("failures_by_class") or {}
        elif run.kind == ResultKind.PULL_RECOVERY:
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


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _load_journal(path: Path) -> tuple[Journal | None, str | None]:
    """The journal ``chaos run`` wrote, parsed (``journal.parse_journal``), or None and why
    (a note) when it wrote none or one that is not a journal: judged as no journal."""
    if not path.is_file():
        return None, None
    try:
        return parse_journal(path), None
    except JournalError as exc:
        return None, f"the journal cannot be judged: {exc}"


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
    # Secrets by value: every line printed now, every file the run leaves (see _scrub_run).
    redactor = Redactor.for_experiment(checked.experiment, checked.vars_data)
    redactor = redactor.adding(_credentials_file_password(checked.settings))
    say = redactor.lines(say)
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
    earlier = _set_aside_earlier_run(run_dir, stamp)
    if earlier is not None:
        say(f"an earlier run's journal and report moved to {earlier}")

    sandbox_path = (
        sandbox_dir or settings.registry.configured_sandbox_dir or DEFAULT_SANDBOX_DIR
    ).absolute()
    env = dict(os.environ)
    env["CHAOSREGISTRY_LEDGER_DIR"] = str(ledger.path)
    env[RUN_DIR_ENV] = str(run_dir)
    # A name unique to this run, usable in image tags (lower case, no dots). The random part
    # keeps two runs with the same run-dir name from sharing a tag a mirror may have cached.
    run_id = f"{run_dir.name.lower().replace('.', '-')[:100]}-{secrets.token_hex(3)}"
    env[RUN_ID_ENV] = run_id
    # The configuration as the child sees it: an env-typed key naming the run id (or the ledger,
    # the run dir) resolves to this run's value there, and the verdict must read the same one.
    configuration = flatten_configuration(
        effective_configuration(experiment_data, checked.vars_data, experiment, vars_file, env)
    )
    # The control signs the journal with the run id (chaosregistry.gameday.control).
    (run_dir / CONTROL_FILE).write_text(json.dumps(control_file(run_id), indent=2))
    argv = [
        _chaos_binary(),
        "--log-file",
        str(run_dir / "chaostoolkit.log"),
        "run",
        "--journal-path",
        str(journal_path),
        "--control-file",
        str(run_dir / CONTROL_FILE),
        "--rollback-strategy",
        "always",
        *checked.runtime_options,
    ]
    if vars_file:
        argv += ["--var-file", str(vars_file.absolute())]
    argv.append(str(experiment.absolute()))

    owned_sandbox: list[Path] = []  # filled as soon as we start one, even half-way
    owned_proxy = False
    result: GameDayResult | None = None
    journal: Journal | None = None
    try:
        if settings.fault_proxy is not None:
            owned_proxy = _ensure_fault_proxy(settings.fault_proxy, say)
        needs = (
            sandbox_needs(experiment_data, configuration, settings) if backend == "local" else []
        )
        if needs:
            second_site = second_site_needs(experiment_data, configuration, settings)
            _ensure_sandbox(sandbox_path, owned_sandbox, say, second_site=second_site)
            # chaos run's activities find it as the settings' environment fallback; this
            # process reads it from the validated settings, given the same sandbox.
            env[SANDBOX_DIR_ENV] = str(sandbox_path)
            settings = settings.in_sandbox(sandbox_path)
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
            last_words = ""  # chaos run's last line: what it died of when it writes no journal
            for line in process.stdout:
                say(f"  chaos | {line.rstrip()}")
                last_words = line.strip() or last_words
            process.wait()
        journal, unreadable = _load_journal(journal_path)
        faults, notes, left_behind = _settle_faults(ledger, env[RUN_ID_ENV])
        notes += [unreadable] if unreadable else []
        notes += _capture_prometheus(experiment_data, settings, run_dir, started)
        loads = load_evidence(journal, run_dir)
        facts = RunFacts(
            journal,
            interrupted=forwarder.received is not None,
            left_behind=left_behind,
            loads=loads,
            faults=fault_evidence(
                _ledger_entries(ledger, faults),
                journal,
                configuration=configuration,
                settings=settings,
                loads=loads,
            ),
            run_id=run_id,
            chaos_exit_code=process.returncode,
            configuration=tolerance_values(experiment_data, configuration),
            chaos_last_words=redactor.scrub_text(last_words) if journal is None else None,
        )
        judgement = judge(facts)
        result = GameDayResult(
            judgement.verdict,
            run_dir,
            journal_path,
            faults,
            [*judgement.notes, *notes],
            evidence=judgement.evidence,
        )
        _write_gameday_json(run_dir, experiment, vars_file, backend, result, facts)
        if journal is not None:
            _write_report(result, say)
        return result
    finally:
        _scrub_run(redactor, run_dir, journal_path, sandbox_path, result, journal=journal)
        if owned_sandbox and not keep_sandbox:
            from chaosregistry import sandbox

            say("sandbox: stopping")
            sandbox.down(sandbox_path)
        if owned_proxy and settings.fault_proxy is not None:
            _stop_fault_proxy(settings.fault_proxy, ledger, say)


def _ensure_fault_proxy(proxy: FaultProxySettings, say: Callable[[str], None]) -> bool:
    """Start the fault proxy the vars file declares unless it runs; True when started here."""
    from chaosregistry.faultproxy.proxy import up

    started = up(proxy)
    where = f"{proxy.listen_address} -> {proxy.upstream}, toxiproxy {proxy.toxiproxy_url}"
    say(f"fault proxy: {'started' if started else 'using the running one'} ({where})")
    return started


def _stop_fault_proxy(
    proxy: FaultProxySettings, ledger: Ledger, say: Callable[[str], None]
) -> None:
    """Stop the fault proxy this run started; left running while a fault on it is active (its
    undo needs the server), and said so."""
    from chaosregistry.faultproxy.proxy import FaultProxyError, down

    try:
        down(proxy, ledger=ledger)
    except FaultProxyError as exc:
        say(f"{exc}; the proxy is left running")
        return
    say("fault proxy: stopped")


def _scrub_run(
    redactor: Redactor,
    run_dir: Path,
    journal_path: Path,
    sandbox_path: Path,
    result: GameDayResult | None,
    *,
    journal: Journal | None = None,
) -> None:
    """Scrub every secret the run could see (``chaosregistry.redaction``), the sandbox's
    password included, from every file in the run directory (the journal and ``chaostoolkit.log``
    that ``chaos run`` wrote, gameday.json, prometheus.json, the reports, the loads kept there),
    from the files of the loads the journal started elsewhere (``load_dir``), and from the notes.
    ``journal``: the one the game day judged; without it, what ``chaos run`` left is read."""
    redactor = redactor.adding(_sandbox_password(sandbox_path))
    if journal is None:
        journal = _load_journal(journal_path)[0]
    loads = [
        Path(str(output["stats_dir"]))
        for _, output in started_loads(journal)
        if output.get("stats_dir")
    ]
    redactor.scrub_tree(run_dir)
    for stats_dir in loads:
        if not stats_dir.is_relative_to(run_dir):
            redactor.scrub_tree(stats_dir)
    if result is not None:
        result.notes = [redactor.text(note) for note in result.notes]
        result.faults = redactor.data(result.faults)


def _credentials_file_password(settings: Settings) -> list[str]:
    """The password in ``registry_credentials_file``, if the configuration names one (its
    value is in no document the redactor reads)."""
    from chaosregistry.sandbox.credentials import read_credentials_file

    path = settings.registry.credentials_file
    return [read_credentials_file(path).password] if path is not None else []


def _sandbox_password(sandbox_path: Path) -> list[str]:
    """The password of the sandbox in ``sandbox_path`` (from the file its endpoints name)."""
    from chaosregistry.sandbox.credentials import read_credentials_file

    try:
        credentials_file = sandbox_endpoints(sandbox_path).get("credentials_file")
        if credentials_file:
            return [read_credentials_file(Path(str(credentials_file))).password]
    except (ConfigError, OSError, ValueError):
        pass  # no sandbox there
    return []


def _capture_prometheus(
    experiment: dict[str, Any], settings: Settings, run_dir: Path, started: float
) -> list[str]:
    """prometheus.json: the experiment's declared Prometheus series over the run, read before
    the sandbox (and its Prometheus) stops; a note per series Prometheus did not answer."""
    if not declared_series(experiment):
        return []
    time.sleep(PROMETHEUS_SETTLE_SECONDS)  # the last scrape and rule evaluation of the run
    captured = capture_series(experiment, settings.prometheus, started, time.time())
    if captured is None:
        return []
    (run_dir / SERIES_FILE).write_text(json.dumps(captured, indent=2, allow_nan=False))
    return [
        f"prometheus series {s['name']!r} not charted: {s['error']['class']}: "
        f"{s['error']['message']}"
        for s in captured["series"]
        if s["error"]
    ]


def tolerance_values(experiment: dict[str, Any], configuration: dict[str, Any]) -> dict[str, Any]:
    """The values the ``${name}`` references of the experiment's tolerances have in this run
    (``configuration``: vars file and environment resolved), and nothing else of the
    configuration: the rest may hold credentials, and gameday.json keeps these."""
    return {
        name: configuration[name]
        for name in tolerance_references(experiment)
        if name in configuration
    }


def _set_aside_earlier_run(run_dir: Path, stamp: str) -> Path | None:
    """Move what an earlier run left in ``run_dir`` (journal, gameday.json, report) to
    ``earlier/<stamp>/``; returns where, or None when there was nothing."""
    found = [run_dir / name for name in RUN_ARTIFACTS if (run_dir / name).exists()]
    if not found:
        return None
    target = run_dir / "earlier" / stamp
    suffix = 1
    while target.exists():  # two runs within a second
        suffix += 1
        target = run_dir / "earlier" / f"{stamp}-{suffix}"
    target.mkdir(parents=True)
    for path in found:
        path.rename(target / path.name)
    return target


def _write_gameday_json(
    run_dir: Path,
    experiment: Path,
    vars_file: Path | None,
    backend: str,
    result: GameDayResult,
    facts: RunFacts,
) -> None:
    """gameday.json: the game day's account of the run, which ``chaosregistry report`` reads to
    judge the journal with the same facts (``reports.inputs.facts_of``)."""
    (run_dir / "gameday.json").write_text(
        json.dumps(
            {
                "experiment": str(experiment),
                "vars": str(vars_file) if vars_file else None,
                "backend": backend,
                "run_id": facts.run_id,
                "verdict": result.verdict,
                "exit_code": result.exit_code,
                "chaos_exit_code": facts.chaos_exit_code,
                "tolerance_values": facts.configuration,
                "evidence": [item.as_dict() for item in result.evidence],
                "fault_evidence": [fault.as_dict() for fault in facts.faults],
                "faults": result.faults,
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
        report = build_report([result.journal_path], result.run_dir)
    except Exception as exc:  # the verdict stands without its report
        result.notes.append(f"report not written: {type(exc).__name__}: {exc}")
        return
    result.report = report.html
    result.score = report.score
    if report.verdict != result.verdict:
        say(f"note: the report's verdict is {report.verdict}, the game day's {result.verdict}")


def _ensure_sandbox(
    path: Path, owned: list[Path], say: Callable[[str], None], *, second_site: list[str]
) -> None:
    """Use the sandbox running in ``path``, or start one (recorded in ``owned`` first), with
    its second site when ``second_site`` names why it is needed. A running sandbox without
    the second site the experiment needs is refused in one line (ConfigError): it cannot be
    added to it while it runs."""
    from chaosregistry import sandbox

    try:
        state = sandbox.status(path)
    except ConfigError:
        state = {"running": False, "endpoints": {}}
    if state["running"]:
        if second_site and not state["endpoints"].get("second_site"):
            raise ConfigError(
                f"the sandbox running in {path} has no second site, which "
                f"{second_site[0]} needs: stop it (`chaosregistry sandbox down`) or start it "
                "with `chaosregistry sandbox up --second-site`"
            )
        say(f"sandbox: using the running one in {path}")
        return
    say(f"sandbox: starting in {path}" + (" with its second site" if second_site else ""))
    owned.append(path)
    base_port = state["endpoints"].get("base_port", sandbox.DEFAULT_BASE_PORT)
    sandbox.up(
        path,
        base_port=base_port,
        # None keeps the run dir's own choice when nothing here needs the second site.
        second_site=True if second_site else None,
        progress=lambda m: say(f"  sandbox | {m}"),
    )


def _ledger_entries(ledger: Ledger, faults: list[dict[str, Any]]) -> list[Entry]:
    """The ledger entries of the run's faults (as ``_settle_faults`` listed them)."""
    entries = []
    for fault in faults:
        try:
            entries.append(ledger.get(str(fault["id"])))
        except ChaosRegistryError:
            continue  # removed by hand since: its evidence is gone with it
    return entries


def _settle_faults(ledger: Ledger, run_id: str) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Wait for the watchdog to finish with this run's faults; revert what is left of them.

    This run's faults are the entries recorded under its run id, whatever the wall clock said
    when they were written; another run's faults in the same ledger are left alone."""

    def ours() -> list[Entry]:
        return [e for e in ledger.all() if e.run_id == run_id]

    deadline = time.monotonic() + WATCHDOG_GRACE_SECONDS
    while any(e.active for e in ours()) and time.monotonic() < deadline:
        time.sleep(0.1)
    notes: list[str] = []
    left_behind = False
    still = [e for e in ours() if e.active]
    if still:
        left_behind = True
        notes.append(f"{len(still)} fault(s) still active after the run: reverting them now")
        for outcome in revert_all(ledger, RevertReason.MANUAL, run=run_id):
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
