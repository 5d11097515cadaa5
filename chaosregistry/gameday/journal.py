"""A Chaos Toolkit journal (journal.json), parsed once into frozen dataclasses.

``parse_journal(path or mapping)`` reads what ``chaos run`` wrote and returns a :class:`Journal`:
the experiment as it ran, the status, the steady state before, during and after the method (each
probe's :class:`ActivityRun`: status, times, output, tolerance met or not, exception), the
method's runs, the rollbacks, and our extension (the run id ``chaosregistry.gameday.control``
writes). The verdict, the game day, fault evidence and the reports read this model; none of
them walks the journal's dicts.

Each run's result has an explicit :class:`~chaosregistry.experiment.contracts.ResultKind`,
decided from the activity's declared identity (the provider's module and function, whose
``Returns(..., kind=...)`` says which shape of result it returns), never guessed from the
result's key names. A provider that is not one of our probes is ``OTHER``.

Strict on the journal's structure, lenient inside a run: a journal whose structure is wrong
(``run`` not a list, a run that is not an object, ``steady_states.before.probes`` not a list,
``experiment`` not an object...) raises :class:`JournalError`, one line naming the file and the
field; inside a run, a value of the wrong type (an activity or provider that is not an object, a
name, a status, a time, ``tolerance_met``, an exception) is read as absent, so the verdict and
a report still say what they can. ``run`` (a list) is required: every journal ``chaos run``
writes has one. A reader that needs more says so (a report needs the experiment, the status
and the start time: ``chaosregistry.reports.inputs.load_journal``).
"""

import ast
import datetime
import functools
import importlib.util
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosregistry.errors import ConfigError
from chaosregistry.experiment.contracts import ResultKind
from chaosregistry.gameday.control import run_id_of

__all__ = [
    "Activity",
    "ActivityRun",
    "Experiment",
    "Journal",
    "JournalError",
    "Provider",
    "ResultKind",
    "SteadyState",
    "journal_of",
    "kind_of",
    "parse_journal",
    "parse_time",
    "read_json",
]

# Where our probes live: a provider in these modules declares its result's kind.
PROBE_PACKAGE = "chaosregistry.probes."
_EMPTY: Mapping[str, Any] = {}


class JournalError(ConfigError):
    """An input file that cannot be read as what it should be (one line, names the file)."""


# -- the model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Provider:
    """How an activity is called: ``python`` (module, func), ``process`` or ``http`` (path)."""

    type: str = "python"
    module: str = ""
    func: str = ""
    path: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ours(self) -> bool:
        """A function of this package."""
        return self.module.startswith("chaosregistry.")


@dataclass(frozen=True)
class Activity:
    """An activity as the experiment declares it (a probe or an action)."""

    type: str | None  # probe | action (None when the journal does not say)
    name: str | None
    provider: Provider
    tolerance: Any = None  # as written (``${name}`` unresolved); None when none is declared
    kind: ResultKind = ResultKind.OTHER

    @property
    def label(self) -> str:
        """The name, '?' when the journal does not say."""
        return self.name if self.name is not None else "?"


@dataclass(frozen=True)
class ActivityRun:
    """One run of an activity: hypothesis probe, method activity or rollback."""

    activity: Activity
    # succeeded | failed; None when the journal does not say, "" when it says something else
    status: str | None
    start: float | None  # epoch seconds
    end: float | None
    output: Any
    exception: tuple[str, ...] = ()  # the traceback's lines, the last one the error
    tolerance_met: bool | None = None  # hypothesis probes only

    @property
    def kind(self) -> ResultKind:
        """What the output is (declared by the probe that wrote it)."""
        return self.activity.kind

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def is_probe(self) -> bool:
        return self.activity.type == "probe"

    @property
    def is_action(self) -> bool:
        return self.activity.type == "action"

    @property
    def result(self) -> Mapping[str, Any]:
        """The output when it is a mapping (every result of ours is), else empty."""
        return self.output if isinstance(self.output, Mapping) else _EMPTY

    @property
    def last_exception_line(self) -> str | None:
        """The raised error's line (the traceback's last), None when it raised nothing."""
        return self.exception[-1].strip() if self.exception else None


@dataclass(frozen=True)
class SteadyState:
    """One check of the steady-state hypothesis (before, during or after the method)."""

    met: bool | None
    probes: tuple[ActivityRun, ...] = ()


@dataclass(frozen=True)
class Experiment:
    """The experiment as it ran (the journal's copy; ``raw`` is that mapping as written)."""

    title: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    configuration: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, Any] = field(default_factory=dict)
    hypothesis: tuple[Activity, ...] = ()  # the steady-state hypothesis' probes
    method: tuple[Activity, ...] = ()
    extensions: tuple[Mapping[str, Any], ...] = ()
    dry: bool = False  # chaos run --dry
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Journal:
    """A Chaos Toolkit journal (see the module docstring). ``source`` names where it came from
    (the file, or ``journal`` for a mapping), for messages."""

    source: str
    experiment: Experiment
    has_experiment: bool
    status: str | None  # completed | failed | aborted | interrupted
    deviated: bool
    start: float | None
    end: float | None
    before: SteadyState | None
    after: SteadyState | None
    during: tuple[SteadyState, ...]
    run: tuple[ActivityRun, ...]  # the method's
    rollbacks: tuple[ActivityRun, ...]
    run_id: str | None  # the game day's (chaosregistry.gameday.control), None without it
    chaoslib_version: str | None = None
    platform: str | None = None
    node: str | None = None

    def probe_runs(self) -> Iterator[ActivityRun]:
        """Every probe run of the hypothesis: before, each check during, after."""
        for state in (self.before, *self.during, self.after):
            if state is not None:
                yield from state.probes

    def activity_runs(self) -> Iterator[ActivityRun]:
        """The method's runs, then the rollbacks'."""
        yield from self.run
        yield from self.rollbacks


# -- reading ----------------------------------------------------------------------------------
def read_json(path: Path, what: str) -> Any:
    """Parse ``path`` as JSON; JournalError (one line naming the file) when it cannot."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JournalError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise JournalError(f"{path}: is a directory, not a {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalError(f"{path}: cannot read the {what}: {exc}") from None
    if not text.strip():
        raise JournalError(f"{path}: empty file, not a {what}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JournalError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}; "
            f"a truncated or corrupt {what}?"
        ) from None
    except ValueError as exc:  # e.g. a number too long to convert
        raise JournalError(
            f"{path}: not valid JSON: {exc}; a truncated or corrupt {what}?"
        ) from None
    except RecursionError:
        raise JournalError(f"{path}: JSON nested too deeply to be a {what}") from None


def parse_journal(source: Path | str | Mapping[str, Any]) -> Journal:
    """The journal at ``source`` (a path) or in it (a mapping, e.g. one already loaded).

    Raises JournalError, one line naming the file and the field, when it is not a journal.
    """
    if isinstance(source, Mapping):
        where, data = "journal", source
    else:
        where = str(source)
        data = read_json(Path(source), "Chaos Toolkit journal")
        if not isinstance(data, dict):
            raise JournalError(
                f"{where}: not a Chaos Toolkit journal (a JSON {type(data).__name__}, not an "
                "object)"
            )
    try:
        return _Parser(where).journal(data)
    except RecursionError:
        raise JournalError(f"{where}: nested too deeply to be a Chaos Toolkit journal") from None


def journal_of(value: "Journal | Mapping[str, Any] | None") -> Journal | None:
    """``value`` as a Journal: parsed when it is a mapping, as it is otherwise."""
    if value is None or isinstance(value, Journal):
        return value
    return parse_journal(value)


def kind_of(module: str, func: str) -> ResultKind:
    """The result kind a provider declares (``Returns(..., kind=...)`` on the probe); OTHER for
    a function that is not one of our probes or that this version does not have."""
    if not module.startswith(PROBE_PACKAGE) or not func:
        return ResultKind.OTHER
    return _declared_kinds(module).get(func, ResultKind.OTHER)


@functools.cache
def _declared_kinds(module: str) -> dict[str, ResultKind]:
    """{function: kind} as the probe module declares them, read from its source.

    Not imported: a probe module brings its clients (``probes.rollout`` imports lightkube,
    about 0.5 s), which a report on a journal never needs. The declaration read is the one
    ``contracts.result_kind`` reads from the imported function (a unit test compares both).
    """
    try:
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec is not None else None
        tree = ast.parse(Path(origin).read_text(encoding="utf-8")) if origin else None
    except (ImportError, ValueError, OSError, SyntaxError):
        return {}
    kinds: dict[str, ResultKind] = {}
    for node in tree.body if tree is not None else []:
        if not isinstance(node, ast.FunctionDef) or node.returns is None:
            continue
        for call in ast.walk(node.returns):
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Returns"):
                continue
            for keyword in call.keywords:
                value = keyword.value
                if keyword.arg == "kind" and isinstance(value, ast.Attribute):
                    kinds[node.name] = ResultKind.__members__.get(value.attr, ResultKind.OTHER)
    return kinds


def parse_time(value: Any) -> float | None:
    """Epoch seconds from a journal time (ISO 8601; naive means UTC) or a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


class _Parser:
    """One journal's parse: ``where`` names it in every message."""

    def __init__(self, where: str) -> None:
        self.where = where
        # Chaos Toolkit copies an activity's declaration into each of its runs: a journal of
        # continuous checks repeats a few declarations thousands of times. Equal ones share
        # one (frozen) Activity.
        self.activities: dict[tuple[Any, ...], list[tuple[Mapping[str, Any], Activity]]] = {}

    def activity(self, declared: Mapping[str, Any]) -> Activity:
        provider = _dict(declared.get("provider"))
        key = (declared.get("name"), provider.get("module"), provider.get("func"))
        if not all(k is None or type(k) is str for k in key):
            return _activity(declared)
        seen = self.activities.setdefault(key, [])
        for earlier, activity in seen:
            if earlier == declared:
                return activity
        activity = _activity(declared)
        seen.append((declared, activity))
        return activity

    def refuse(self, field_path: str, problem: str) -> JournalError:
        return JournalError(
            f"{self.where}: not a Chaos Toolkit journal (field {field_path}: {problem})"
        )

    def mapping(self, value: Any, field_path: str, *, optional: bool = True) -> Mapping[str, Any]:
        if value is None and optional:
            return _EMPTY
        if type(value) is not dict and not isinstance(value, Mapping):  # dict: the fast path
            raise self.refuse(field_path, f"{_json_type(value)}, not an object")
        return value

    def items(self, value: Any, field_path: str, *, optional: bool = True) -> list[Any]:
        if value is None and optional:
            return []
        if not isinstance(value, list):
            raise self.refuse(field_path, f"{_json_type(value)}, not a list")
        return value

    def journal(self, data: Mapping[str, Any]) -> Journal:
        if "run" not in data:
            raise self.refuse("run", "missing")
        has_experiment = "experiment" in data and data["experiment"] is not None
        experiment = self.experiment(self.mapping(data.get("experiment"), "experiment"))
        states = self.mapping(data.get("steady_states"), "steady_states")
        during = self.items(states.get("during"), "steady_states.during")
        return Journal(
            source=self.where,
            experiment=experiment,
            has_experiment=has_experiment,
            status=_text(data.get("status")),
            deviated=bool(data.get("deviated")),
            start=parse_time(data.get("start")),
            end=parse_time(data.get("end")),
            before=self.steady_state(states.get("before"), "steady_states.before"),
            after=self.steady_state(states.get("after"), "steady_states.after"),
            during=tuple(
                state
                for index, check in enumerate(during)
                if (state := self.steady_state(check, f"steady_states.during[{index}]"))
            ),
            run=self.runs(data.get("run"), "run", optional=False),
            rollbacks=self.runs(data.get("rollbacks"), "rollbacks"),
            run_id=run_id_of(data),
            chaoslib_version=_text(data.get("chaoslib-version")),
            platform=_text(data.get("platform")),
            node=_text(data.get("node")),
        )

    def experiment(self, raw: Mapping[str, Any]) -> Experiment:
        hypothesis = self.mapping(
            raw.get("steady-state-hypothesis"), "experiment.steady-state-hypothesis"
        )
        return Experiment(
            title=_text(raw.get("title")) or "",
            description=_text(raw.get("description")) or "",
            tags=tuple(t if isinstance(t, str) else "" for t in _list(raw.get("tags"))),
            configuration=_dict(raw.get("configuration")),
            secrets=_dict(raw.get("secrets")),
            hypothesis=self.declarations(
                hypothesis.get("probes"), "experiment.steady-state-hypothesis.probes"
            ),
            method=self.declarations(raw.get("method"), "experiment.method"),
            extensions=tuple(e for e in _list(raw.get("extensions")) if isinstance(e, Mapping)),
            dry=bool(raw.get("dry")),
            raw=raw,
        )

    def declarations(self, value: Any, field_path: str) -> tuple[Activity, ...]:
        return tuple(
            self.activity(self.mapping(item, f"{field_path}[{index}]", optional=False))
            for index, item in enumerate(self.items(value, field_path))
        )

    def steady_state(self, value: Any, field_path: str) -> SteadyState | None:
        if value is None:
            return None
        state = self.mapping(value, field_path)
        met = state.get("steady_state_met")
        return SteadyState(
            met if isinstance(met, bool) else None,
            self.runs(state.get("probes"), f"{field_path}.probes"),
        )

    def runs(
        self, value: Any, field_path: str, *, optional: bool = True
    ) -> tuple[ActivityRun, ...]:
        return tuple(
            self.activity_run(item, f"{field_path}[{index}]")
            for index, item in enumerate(self.items(value, field_path, optional=optional))
        )

    def activity_run(self, value: Any, field_path: str) -> ActivityRun:
        run = self.mapping(value, field_path, optional=False)
        met = run.get("tolerance_met")
        return ActivityRun(
            activity=self.activity(_dict(run.get("activity"))),
            status=_status(run.get("status")),
            start=parse_time(run.get("start")),
            end=parse_time(run.get("end")),
            output=run.get("output"),
            exception=_exception(run.get("exception")),
            tolerance_met=met if isinstance(met, bool) else None,
        )


def _exception(value: Any) -> tuple[str, ...]:
    """The traceback's lines (Chaos Toolkit writes a list; a text is split into its lines)."""
    if isinstance(value, str):
        return tuple(value.strip().splitlines())
    return tuple(line for line in _list(value) if isinstance(line, str))


def _activity(declared: Mapping[str, Any]) -> Activity:
    """An activity from its declaration (lenient: a value of the wrong type reads as absent)."""
    raw_provider = _dict(declared.get("provider"))
    provider_type = raw_provider.get("type", "python")
    provider = Provider(
        type=provider_type if isinstance(provider_type, str) else "",
        module=_text(raw_provider.get("module")) or "",
        func=_text(raw_provider.get("func")) or "",
        path=_text(raw_provider.get("path")) or "",
        arguments=_dict(raw_provider.get("arguments")),
    )
    return Activity(
        type=_text(declared.get("type")),
        name=_text(declared.get("name")),
        provider=provider,
        tolerance=declared.get("tolerance"),
        kind=kind_of(provider.module, provider.func),
    )


def _status(value: Any) -> str | None:
    """A run's status: None when absent, "" when it is not a string (not succeeded either)."""
    return None if value is None else (value if isinstance(value, str) else "")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if type(value) is dict or isinstance(value, Mapping) else _EMPTY


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
