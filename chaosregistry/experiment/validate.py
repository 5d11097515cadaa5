"""Pre-flight checks of an experiment and its vars file: one line naming the file and field.

``chaos run`` itself stops at the first problem with a log full of context, silently skips a vars
file it cannot parse, and only finds a negative duration when the action runs, after earlier
faults were injected. We check everything we can before anything runs:

* the files parse (YAML or JSON; :func:`load_document`, the one loader, bounded in size,
  in values once aliases are expanded and in depth) and have the expected shape: every
  structural mistake is one line naming the field (:func:`check_structure`);
* Chaos Toolkit's own validation passes (activities exist, arguments match signatures);
* every argument of our activities is in the domain its signature declares
  (:mod:`chaosregistry.experiment.contracts`, the declaration the activity also checks when
  called), and a tolerance's ``target`` is a key the probe declares it returns;
* every secret and configuration value read from the environment is set;
* the vars file sets only keys the experiment declares (Chaos Toolkit would ignore the rest);
* no mapping repeats a key (PyYAML and json would silently keep the last one);
* the configuration parses into the typed settings the activities will use
  (:func:`chaosregistry.experiment.settings.parse_settings`: registry URLs http(s), request timeouts
  positive numbers, the backend's settings), and range tolerances are in order.

:func:`validate` returns what it parsed (:class:`Validated`), so ``gameday`` runs on it instead
of reading the vars file again.
"""

import importlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml

from chaosregistry import activity_modules
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import (
    PASSED_BY_CHAOS_TOOLKIT,
    SETTINGS_KEY,
    flatten_configuration,
)
from chaosregistry.experiment.contracts import (
    FAULT_DURATION,
    MAX_DURATION,
    PROMQL,
    Range,
    argument_problem,
    contract_of,
    result_keys,
)
from chaosregistry.experiment.settings import SettingError, Settings, parse_settings
from chaosregistry.redaction import Redactor, refuse_url_credentials


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping with the same key twice: YAML forbids it, PyYAML keeps the last silently."""


# Bounds on what a document may make the loader build. A few hundred bytes of nested anchors
# ("billion laughs") expand to billions of nodes: PyYAML shares them, but everything that walks
# the result afterwards (substitution, Chaos Toolkit's own validation) does not.
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_NODES = 100_000  # counted as if every alias were written out
MAX_DEPTH = 64


class BoundsError(yaml.YAMLError):
    """A document past one of the bounds above."""


def _check_bounds(root: yaml.Node) -> None:
    """Refuse a node tree that, aliases expanded, is over MAX_NODES or MAX_DEPTH, or refers to
    itself. Sizes are memoised per node, so an alias costs what a reference costs."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    # An explicit stack (node, depth, children done?) rather than recursion: depth is the input.
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise BoundsError(f"nested deeper than {MAX_DEPTH} levels")
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] > MAX_NODES:
                raise BoundsError(f"over {MAX_NODES} values once its aliases are expanded")
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise BoundsError("an alias refers to the node that contains it")
        open_nodes.add(id(node))
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children if id(child) not in sizes)


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key and a document past the
    bounds (aliases expanded, depth)."""

    def get_single_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_single_node()
        if node is not None:
            _check_bounds(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` then an explicit key is an override, not a repeat
            key = self.construct_object(key_node, deep=True)
            try:
                line = first_seen.get(key)
            except TypeError:
                continue  # an unhashable key: the safe loader's own error says so
            if line is not None:
                raise DuplicateKeyError(
                    problem=f"duplicate key {key!r}, first on line {line}",
                    problem_mark=key_node.start_mark,
                )
            first_seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _json_object(path: Path) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in pairs:
            if key in data:
                raise ConfigError(f"{path}: not valid JSON (duplicate key {key!r})")
            data[key] = value
        return data

    return unique


def load_document(path: Path, what: str) -> dict[str, Any]:
    """Parse a YAML/JSON file into a mapping, or raise ConfigError with one line.

    The one loader of experiments and vars files: bounded in size (MAX_DOCUMENT_BYTES), in
    values once aliases are expanded (MAX_NODES) and in depth (MAX_DEPTH)."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_DOCUMENT_BYTES + 1)
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise ConfigError(
                f"{path}: a {what} file of more than {MAX_DOCUMENT_BYTES} bytes is refused"
            )
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc})") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text, object_pairs_hook=_json_object(path))
            _check_json_depth(data)
        else:
            data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except RecursionError:
        raise ConfigError(f"{path}: not valid {what} (nested too deep)") from None
    except BoundsError as exc:
        raise ConfigError(f"{path}: {what} refused: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the {what} file must be a mapping, not {_kind(data)}")
    return data


def _check_json_depth(data: Any) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BoundsError(f"nested deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            stack.extend((child, depth + 1) for child in children)


def load_vars(path: Path, experiment: dict[str, Any]) -> dict[str, Any]:
    """Parse and check a vars file against the experiment's declared configuration."""
    data = load_document(path, "vars")
    _string_keys(data, "", path)
    unknown = sorted(set(data) - {"configuration", "secrets"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: only 'configuration' and 'secrets' belong here")
    for section in ("configuration", "secrets"):
        _expect(data.get(section, {}), dict, section, path, "a mapping")
    for scope, keys in data.get("secrets", {}).items():
        _expect(keys, dict, f"secrets.{scope}", path, "a mapping of secret names")
    nested = data.get("configuration", {}).get(SETTINGS_KEY)
    if nested is not None:
        _expect(nested, dict, f"configuration.{SETTINGS_KEY}", path, "a mapping of settings")
    declared = set(experiment.get("configuration") or {})
    for key in data.get("configuration", {}):
        if key not in declared:
            raise ConfigError(
                f"{path}: configuration.{key}: not declared by the experiment, Chaos Toolkit "
                f"would ignore it (put backend settings under configuration.{SETTINGS_KEY})"
            )
    return data


def effective_configuration(
    experiment: dict[str, Any],
    vars_data: dict[str, Any],
    experiment_path: Path,
    vars_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Configuration values as ``chaos run`` will see them (env lookups resolved in
    ``environ``, default this process's environment: a game day passes its child's); a missing
    variable is blamed on the file that asked for it."""
    environ = os.environ if environ is None else environ
    overrides = vars_data.get("configuration", {})
    resolved: dict[str, Any] = {}
    for key, value in (experiment.get("configuration") or {}).items():
        source = vars_path if vars_path is not None and key in overrides else experiment_path
        value = overrides.get(key, value)
        if isinstance(value, dict) and value.get("type") == "env":
            env_key = str(value.get("key", ""))
            if env_key in environ:
                value = environ[env_key]
            elif "default" in value:
                value = value["default"]
            else:
                raise ConfigError(
                    f"{source}: configuration.{key}: environment variable {env_key} is not set"
                )
        resolved[key] = value
    return resolved


def check_settings(
    vars_data: dict[str, Any],
    configuration: dict[str, Any],
    experiment_path: Path,
    vars_path: Path | None,
) -> Settings:
    """The configuration parsed as the activities will parse it (:func:`parse_settings`);
    a bad value is refused naming the file and the key that set it."""
    overrides = vars_data.get("configuration", {})

    def where(key: str) -> str:
        # A top-level key wins over the same key under `chaosregistry` (flatten_configuration);
        # the vars file replaces a top-level key of the experiment whole.
        top = key if key in configuration else SETTINGS_KEY
        source = vars_path if vars_path is not None and top in overrides else experiment_path
        field = f"configuration.{key}" if top == key else f"configuration.{SETTINGS_KEY}.{key}"
        return f"{source}: {field}"

    try:
        return parse_settings(configuration)
    except SettingError as exc:
        # "configuration.<key>[.<sub>]<rest>" -> "<file>: configuration[.chaosregistry].<key>..."
        top = exc.key.split(".", 1)[0]
        rest = str(exc)[len(f"configuration.{top}") :]
        raise ConfigError(f"{where(top)}{rest}") from None
    except ConfigError as exc:
        raise ConfigError(f"{vars_path or experiment_path}: {exc}") from None


def check_tolerances(
    experiment: dict[str, Any],
    configuration: dict[str, Any],
    source: Path,
    secrets: dict[str, Any] | None = None,
) -> None:
    """A ``range`` tolerance's bounds in order: ``[5, 1]`` holds for no value at all, so the
    steady state could never be met (Chaos Toolkit accepts it and deviates). ``${name}``
    references are substituted by Chaos Toolkit's own ``substitute``, as ``chaos run`` will."""
    from chaoslib import substitute

    hypothesis = experiment.get("steady-state-hypothesis") or {}
    for index, probe in enumerate(hypothesis.get("probes") or []):
        tolerance = probe.get("tolerance") if isinstance(probe, dict) else None
        if not isinstance(tolerance, dict) or tolerance.get("type") != "range":
            continue
        bounds = substitute(tolerance.get("range"), configuration, secrets)
        if not isinstance(bounds, list) or len(bounds) != 2:
            continue  # Chaos Toolkit's own validation names a malformed range
        low, high = bounds
        numbers = all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
        if numbers and low > high:
            name = probe.get("name", "?")
            raise ConfigError(
                f"{source}: steady-state-hypothesis.probes[{index}] ({name}).tolerance.range: "
                f"bounds reversed, {bounds} (the lower bound comes first)"
            )


def check_secrets(experiment: dict[str, Any], vars_data: dict[str, Any], source: Path) -> None:
    overrides = vars_data.get("secrets", {})
    for scope, keys in (experiment.get("secrets") or {}).items():
        if not isinstance(keys, dict):
            raise ConfigError(f"{source}: secrets.{scope} must be a mapping")
        for key, value in keys.items():
            if isinstance(overrides.get(scope), dict) and key in overrides[scope]:
                continue
            if isinstance(value, dict) and value.get("type") == "env":
                env_key = str(value.get("key", ""))
                if env_key not in os.environ and "default" not in value:
                    raise ConfigError(
                        f"{source}: secrets.{scope}.{key}: environment variable {env_key} "
                        "is not set"
                    )


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__.replace("dict", "mapping")


def _string_keys(value: Any, field: str, source: Path) -> None:
    """Every mapping key in the document is a string (YAML allows ``1:``, ``null:``, ``[a]:``;
    Chaos Toolkit and our checks look keys up by name)."""
    stack = [(value, field)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    place = f"{where}: " if where else ""
                    raise ConfigError(
                        f"{source}: {place}the key {key!r} is not a name ({_kind(key)}); quote it"
                    )
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(node))


def _expect(
    value: Any, kinds: type | tuple[type, ...], field: str, source: Path, what: str
) -> None:
    if not isinstance(value, kinds):
        given = "null" if value is None else f"{_kind(value)} {value!r:.60}"
        raise ConfigError(f"{source}: {field} must be {what}, not {given}")


# Pauses Chaos Toolkit takes around an activity, in seconds.
PAUSE = Annotated[float, Range(0, MAX_DURATION, unit="seconds")]


def check_activity_shape(field: str, activity: Any, source: Path) -> None:
    """One entry of the hypothesis's probes, the method or the rollbacks, as Chaos Toolkit
    reads it (before its own validation, which would raise a Python error on most of these)."""
    _expect(activity, dict, field, source, "a mapping (an activity, or {ref: name})")
    if "ref" in activity:
        _expect(activity["ref"], str, f"{field}.ref", source, "the name of an earlier activity")
        return
    _expect(activity.get("name"), str, f"{field}.name", source, "a name")
    if activity.get("type") not in ("probe", "action"):
        raise ConfigError(
            f"{source}: {field}.type must be probe or action, not {activity.get('type')!r}"
        )
    provider = activity.get("provider")
    _expect(provider, dict, f"{field}.provider", source, "a mapping (type, module, func...)")
    if provider.get("type") not in ("python", "process", "http"):
        raise ConfigError(
            f"{source}: {field}.provider.type must be python, process or http, "
            f"not {provider.get('type')!r}"
        )
    if provider["type"] == "python":
        for key in ("module", "func"):
            _expect(provider.get(key), str, f"{field}.provider.{key}", source, "a name")
        arguments = provider.get("arguments")
        if arguments is not None:
            _expect(arguments, dict, f"{field}.provider.arguments", source, "a mapping")
    pauses = activity.get("pauses")
    if pauses is not None:
        _expect(pauses, dict, f"{field}.pauses", source, "a mapping (before, after)")
        for when, seconds in pauses.items():
            problem = (
                contract_of(PAUSE).problem(seconds)
                if when in ("before", "after")
                else ("unknown (before or after)")
            )
            if problem is not None and not _is_reference(seconds):
                raise ConfigError(f"{source}: {field}.pauses.{when}: {problem}")
    for flag in ("background",):
        if flag in activity:
            _expect(activity[flag], bool, f"{field}.{flag}", source, "true or false")


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def check_structure(experiment: dict[str, Any], source: Path) -> None:
    """The experiment's shape, each mistake one line naming the field: the checks after this
    one (and Chaos Toolkit's) may then read the document without meeting a wrong type."""
    _string_keys(experiment, "", source)
    for key in ("title", "description"):
        _expect(experiment.get(key), str, key, source, "text")
    # A key that is present must hold its kind: Chaos Toolkit reads ``method: null`` as a list.
    for key in ("configuration", "secrets", "contributions"):
        if key in experiment:
            _expect(experiment[key], dict, key, source, "a mapping")
    for scope, keys in (experiment.get("secrets") or {}).items():
        _expect(keys, dict, f"secrets.{scope}", source, "a mapping of secret names")
    nested = (experiment.get("configuration") or {}).get(SETTINGS_KEY)
    if nested is not None:
        _expect(nested, dict, f"configuration.{SETTINGS_KEY}", source, "a mapping of settings")
    for key in ("tags", "extensions", "controls", "method", "rollbacks"):
        if key in experiment:
            _expect(experiment[key], list, key, source, "a list")
    for index, tag in enumerate(experiment.get("tags") or []):
        _expect(tag, str, f"tags[{index}]", source, "text")
    for key in ("extensions", "controls"):
        for index, entry in enumerate(experiment.get(key) or []):
            _expect(entry, dict, f"{key}[{index}]", source, "a mapping")
    if "steady-state-hypothesis" in experiment:
        hypothesis = experiment["steady-state-hypothesis"]
        _expect(hypothesis, dict, "steady-state-hypothesis", source, "a mapping (title, probes)")
        _expect(hypothesis.get("title"), str, "steady-state-hypothesis.title", source, "text")
        if "probes" in hypothesis:
            _expect(hypothesis["probes"], list, "steady-state-hypothesis.probes", source, "a list")
    for field, activity in activities(experiment):
        check_activity_shape(field, activity, source)


def activities(experiment: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, activity) for every activity of the experiment."""
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    for index, activity in enumerate(hypothesis.get("probes") or []):
        yield f"steady-state-hypothesis.probes[{index}]", activity
    for section in ("method", "rollbacks"):
        for index, activity in enumerate(experiment.get(section) or []):
            yield f"{section}[{index}]", activity


def run_secrets(experiment: dict[str, Any], vars_data: dict[str, Any]) -> dict[str, Any]:
    """The secrets ``chaos run`` substitutes ``${name}`` references with, loaded as it loads
    them (``chaoslib.secret.load_secrets``: a vars file's scope replaces the experiment's,
    environment references are read). A vault reference is not fetched before the run, and a
    variable that is not set is :func:`check_secrets`'s to name: their references stay as
    written."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.secret import load_secrets

    declared = {
        scope: {
            key: value
            for key, value in keys.items()
            if not (isinstance(value, dict) and value.get("type") == "vault")
        }
        for scope, keys in (experiment.get("secrets") or {}).items()
        if isinstance(keys, dict)
    }
    try:
        loaded: dict[str, Any] = load_secrets(declared, None, dict(vars_data.get("secrets") or {}))
    except (ChaosException, KeyError, TypeError):
        return {}
    return loaded


def _duration(value: Any) -> str | None:
    return contract_of(Annotated[float, FAULT_DURATION]).problem(value)


def _promql(value: Any) -> str | None:
    return contract_of(Annotated[str, PROMQL]).problem(value)


def _activity_function(
    where: str, provider: dict[str, Any]
) -> tuple[str, Callable[..., Any]] | None:
    """Our activity a provider names (None for another extension's), or ConfigError."""
    module_name = provider.get("module", "")
    if provider.get("type") != "python" or not str(module_name).startswith("chaosregistry."):
        return None
    if module_name not in activity_modules():
        # Never imported: only the activity modules are safe to import here (the locustfile,
        # for one, monkey-patches the process).
        raise ConfigError(
            f"{where}.provider.module: {module_name!r} is not an activity module "
            "(chaosregistry.probes.* or chaosregistry.actions.*)"
        )
    try:
        module = importlib.import_module(str(module_name))
    except ImportError:
        raise ConfigError(f"{where}.provider.module: no module {module_name!r}") from None
    func_name = provider.get("func", "")
    if not isinstance(func_name, str) or func_name not in getattr(module, "__all__", ()):
        raise ConfigError(f"{where}.provider.func: {module_name} has no activity {func_name!r}")
    return func_name, getattr(module, func_name)


def check_activity(
    field: str,
    activity: dict[str, Any],
    configuration: dict[str, Any],
    secrets: dict[str, Any] | None = None,
) -> None:
    """Our activity's arguments against the domains its signature declares
    (:mod:`chaosregistry.experiment.contracts`), ``${key}`` references substituted from the
    configuration and ``secrets`` (:func:`run_secrets`) by Chaos Toolkit's own ``substitute``,
    as ``chaos run`` will; a tolerance's ``target`` against the keys the probe declares it
    returns."""
    from chaoslib import substitute

    where = f"{field} ({activity.get('name', '?')})"
    found = _activity_function(where, activity.get("provider") or {})
    if found is None:
        return
    func_name, function = found
    signature = inspect.signature(function)
    arguments = activity["provider"].get("arguments") or {}
    for arg in arguments:
        if arg not in signature.parameters or arg in PASSED_BY_CHAOS_TOOLKIT:
            known = ", ".join(p for p in signature.parameters if p not in PASSED_BY_CHAOS_TOOLKIT)
            raise ConfigError(
                f"{where}.arguments.{arg}: {func_name} takes no such argument (it takes: {known})"
            )
    for param in signature.parameters.values():
        if param.name in PASSED_BY_CHAOS_TOOLKIT:
            continue
        if param.name not in arguments:
            if param.default is inspect.Parameter.empty:
                raise ConfigError(f"{where}.arguments.{param.name}: required and missing")
            continue
        value = substitute(arguments[param.name], configuration, secrets)
        problem = argument_problem(param, value)
        if problem is not None:
            raise ConfigError(f"{where}.arguments.{param.name}: {problem}")
    tolerance = activity.get("tolerance")
    keys = result_keys(function)
    if isinstance(tolerance, dict) and "target" in tolerance and keys is not None:
        target = substitute(tolerance["target"], configuration, secrets)
        if target not in keys:
            raise ConfigError(
                f"{where}.tolerance.target: {func_name} returns no key {target!r} "
                f"(it returns: {', '.join(keys)})"
            )


HYPOTHESIS_STRATEGIES = (
    "default",
    "before-method-only",
    "after-method-only",
    "during-method-only",
    "continuously",
)


def runtime_options(experiment: dict[str, Any], source: Path) -> list[str]:
    """``chaos run`` options an experiment asks for in its ``chaosregistry`` extension.

    Chaos Toolkit takes the hypothesis strategy only on the command line; an experiment whose
    steady state must also hold *during* the fault says so here, and ``gameday`` passes it on::

        extensions:
          - name: chaosregistry
            hypothesis_strategy: continuously
            hypothesis_frequency: 4
    """
    for index, extension in enumerate(experiment.get("extensions") or []):
        if not isinstance(extension, dict) or extension.get("name") != "chaosregistry":
            continue
        where = f"{source}: extensions[{index}]"
        unknown = sorted(set(extension) - {"name", "hypothesis_strategy", "hypothesis_frequency"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown setting")
        options: list[str] = []
        strategy = extension.get("hypothesis_strategy", "default")
        if strategy not in HYPOTHESIS_STRATEGIES:
            raise ConfigError(
                f"{where}.hypothesis_strategy: {strategy!r} is not one of "
                f"{', '.join(HYPOTHESIS_STRATEGIES)}"
            )
        options += ["--hypothesis-strategy", strategy]
        if "hypothesis_frequency" in extension:
            problem = _duration(extension["hypothesis_frequency"])
            if problem:
                raise ConfigError(f"{where}.hypothesis_frequency: {problem}")
            options += ["--hypothesis-frequency", str(extension["hypothesis_frequency"])]
        return options
    return []


def check_chaostoolkit(experiment: dict[str, Any], source: Path) -> None:
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    # chaoslib logs its progress at INFO; we only want its verdict.
    logger = logging.getLogger("chaostoolkit")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        ensure_experiment_is_valid(experiment)
    except ChaosException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{source}: {first}") from None
    except Exception as exc:
        # Chaos Toolkit's validation assumes the shape it validates; whatever it trips on is
        # the user's document, so it is one line too, never a traceback.
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"{source}: Chaos Toolkit cannot read this experiment ({type(exc).__name__}: {first})"
        ) from None
    finally:
        logger.setLevel(previous)


@dataclass(frozen=True)
class Validated:
    """What a successful validation found, for the caller to use rather than re-read."""

    experiment: dict[str, Any]
    vars_data: dict[str, Any]  # the vars file as parsed ({} without one)
    # The effective configuration as ``chaos run`` will hand it over (env lookups resolved),
    # flattened (the ``chaosregistry`` mapping's keys at the top).
    configuration: dict[str, Any]
    settings: Settings  # the same configuration, parsed
    runtime_options: list[str]  # ``chaos run`` options of the experiment's extension


def validate(experiment_path: Path, vars_path: Path | None = None) -> Validated:
    """Check an experiment (and vars file); returns what it parsed or raises ConfigError."""
    experiment = load_document(experiment_path, "experiment")
    check_structure(experiment, experiment_path)
    vars_data = load_vars(vars_path, experiment) if vars_path else {}
    configuration = effective_configuration(experiment, vars_data, experiment_path, vars_path)
    refuse_url_credentials(experiment, vars_data, configuration, experiment_path, vars_path)
    settings = check_settings(vars_data, configuration, experiment_path, vars_path)
    check_secrets(experiment, vars_data, experiment_path)
    secrets = run_secrets(experiment, vars_data)
    # A refused value may have come from a secret by ``${name}``: never repeat it.
    redactor = Redactor.for_experiment(experiment, vars_data)
    try:
        check_tolerances(experiment, configuration, experiment_path, secrets)
    except ConfigError as exc:
        raise ConfigError(redactor.text(str(exc))) from None
    for field, activity in activities(experiment):
        try:
            check_activity(field, activity, configuration, secrets)
        except ConfigError as exc:
            raise ConfigError(redactor.text(f"{experiment_path}: {exc}")) from None
    check_prometheus_series(experiment, experiment_path)
    options = runtime_options(experiment, experiment_path)
    check_chaostoolkit(experiment, experiment_path)
    return Validated(
        experiment=experiment,
        vars_data=vars_data,
        configuration=flatten_configuration(configuration),
        settings=settings,
        runtime_options=options,
    )


def check_prometheus_series(experiment: dict[str, Any], source: Path) -> None:
    """The PromQL of the series a report charts (``chaosregistry-prometheus`` extension)."""
    from chaosregistry.observability.prometheus import EXTENSION

    for index, extension in enumerate(experiment.get("extensions") or []):
        if not isinstance(extension, dict) or extension.get("name") != EXTENSION:
            continue
        series = extension.get("series")
        if not isinstance(series, list):
            raise ConfigError(f"{source}: extensions[{index}].series must be a list")
        for number, entry in enumerate(series):
            where = f"{source}: extensions[{index}].series[{number}]"
            if not isinstance(entry, dict) or not entry.get("name"):
                raise ConfigError(f"{where}: needs a name and a query")
            problem = _promql(entry.get("query"))
            if problem is not None:
                raise ConfigError(f"{where}.query: {problem}")
            slo = entry.get("slo")
            if slo is not None and (isinstance(slo, bool) or not isinstance(slo, int | float)):
                raise ConfigError(f"{where}.slo: must be a number, got {slo!r}")
