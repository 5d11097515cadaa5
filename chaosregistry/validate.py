"""Pre-flight checks of an experiment and its vars file: one line naming the file and field.

``chaos run`` itself stops at the first problem with a log full of context, silently skips a vars
file it cannot parse, and only finds a negative duration when the action runs, after earlier
faults were injected. We check everything we can before anything runs:

* the files parse (YAML or JSON) and have the expected shape;
* Chaos Toolkit's own validation passes (activities exist, arguments match signatures);
* every argument of our activities has the annotated type and a sensible value (durations,
  counts, hops, nodes, image references, platforms);
* every secret and configuration value read from the environment is set;
* the vars file sets only keys the experiment declares (Chaos Toolkit would ignore the rest);
* no mapping repeats a key (PyYAML and json would silently keep the last one);
* the configuration parses into the typed settings the activities will use
  (:func:`chaosregistry.settings.parse_settings`: registry URLs http(s), request timeouts
  positive numbers, the backend's settings), and range tolerances are in order.

:func:`validate` returns what it parsed (:class:`Validated`), so ``gameday`` runs on it instead
of reading the vars file again.
"""

import importlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chaosregistry.activity import SETTINGS_KEY, flatten_configuration
from chaosregistry.errors import ConfigError
from chaosregistry.injection import MAX_DURATION
from chaosregistry.oci.reference import ImageReference, Platform, repository_name, tag_pattern
from chaosregistry.prometheus import prometheus_settings
from chaosregistry.redaction import refuse_url_credentials
from chaosregistry.settings import SettingError, Settings, parse_settings

# Hop and node names every backend understands (see actions/network.py and actions/node.py).
# ``sync-dr`` (the replication path to a second site) exists in a sandbox started with
# ``--second-site``; on Kubernetes a hop is whatever ``hop_selectors`` names.
KNOWN_HOPS = ("client-registry", "client-mirror", "mirror-upstream", "sync-dr")


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping with the same key twice: YAML forbids it, PyYAML keeps the last silently."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key."""

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
    """Parse a YAML/JSON file into a mapping, or raise ConfigError with one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc})") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text, object_pairs_hook=_json_object(path))
        else:
            data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping, not {type(data).__name__}")
    return data


def load_vars(path: Path, experiment: dict[str, Any]) -> dict[str, Any]:
    """Parse and check a vars file against the experiment's declared configuration."""
    data = load_document(path, "vars")
    unknown = sorted(set(data) - {"configuration", "secrets"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: only 'configuration' and 'secrets' belong here")
    for section in ("configuration", "secrets"):
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"{path}: {section} must be a mapping")
    declared = set(experiment.get("configuration") or {})
    for key in data.get("configuration", {}):
        if key not in declared:
            raise ConfigError(
                f"{path}: configuration.{key}: not declared by the experiment, Chaos Toolkit "
                f"would ignore it (put backend settings under configuration.{SETTINGS_KEY})"
            )
    return data


def effective_configuration(
    experiment: dict[str, Any], vars_data: dict[str, Any], source: Path
) -> dict[str, Any]:
    """Configuration values as ``chaos run`` will see them (env lookups resolved)."""
    overrides = vars_data.get("configuration", {})
    resolved: dict[str, Any] = {}
    for key, value in (experiment.get("configuration") or {}).items():
        value = overrides.get(key, value)
        if isinstance(value, dict) and value.get("type") == "env":
            env_key = str(value.get("key", ""))
            if env_key in os.environ:
                value = os.environ[env_key]
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
        settings = parse_settings(configuration)
        prometheus_settings(flatten_configuration(configuration))  # its keys, checked
        return settings
    except SettingError as exc:
        # "configuration.<key>[.<sub>]<rest>" -> "<file>: configuration[.chaosregistry].<key>..."
        top = exc.key.split(".", 1)[0]
        rest = str(exc)[len(f"configuration.{top}") :]
        raise ConfigError(f"{where(top)}{rest}") from None
    except ConfigError as exc:
        raise ConfigError(f"{vars_path or experiment_path}: {exc}") from None


def check_tolerances(
    experiment: dict[str, Any], configuration: dict[str, Any], source: Path
) -> None:
    """A ``range`` tolerance's bounds in order: ``[5, 1]`` holds for no value at all, so the
    steady state could never be met (Chaos Toolkit accepts it and deviates)."""
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    for index, probe in enumerate(hypothesis.get("probes") or []):
        tolerance = probe.get("tolerance") if isinstance(probe, dict) else None
        if not isinstance(tolerance, dict) or tolerance.get("type") != "range":
            continue
        bounds = substitute(tolerance.get("range"), configuration)
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


def activities(experiment: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, activity) for every activity of the experiment."""
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    for index, activity in enumerate(hypothesis.get("probes") or []):
        yield f"steady-state-hypothesis.probes[{index}]", activity
    for section in ("method", "rollbacks"):
        for index, activity in enumerate(experiment.get(section) or []):
            yield f"{section}[{index}]", activity


def substitute(value: Any, configuration: dict[str, Any]) -> Any:
    """``${key}`` as Chaos Toolkit substitutes it (a whole-string reference keeps its type)."""
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}") and value.count("${") == 1:
            return configuration.get(value[2:-1], value)
        for key, replacement in configuration.items():
            value = value.replace("${" + key + "}", str(replacement))
        return value
    if isinstance(value, list):
        return [substitute(v, configuration) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, configuration) for k, v in value.items()}
    return value


def _positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else f"must be a whole number >= 1, got {value!r}"


def _positive_seconds(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return f"must be a positive number of seconds, got {value!r}"
    return None


def _duration(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return f"must be a positive number of seconds, got {value!r}"
    if value > MAX_DURATION:
        return f"{value}s is over the {MAX_DURATION:g}s limit"
    return None


def _parses(parser: Callable[[str], object]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value == "" and parser is Platform.parse:
            return None
        try:
            parser(value)
        except ConfigError as exc:
            return str(exc)
        return None

    return check


def _promql(value: Any) -> str | None:
    from chaosregistry.promql import check_expression

    return check_expression(value)


def _rules_file(value: Any) -> str | None:
    from chaosregistry.promql import alert_names

    if value == "":
        return None
    if not isinstance(value, str):
        return f"must be the path of a Prometheus rules file, got {value!r}"
    try:
        alert_names(Path(value))
    except ConfigError as exc:
        return str(exc)
    return None


def _regex(value: Any) -> str | None:
    try:
        tag_pattern(value, "")
    except ConfigError as exc:
        return str(exc).lstrip()
    return None


def _names(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"must be a list of names, got {value!r}"
    return None


def _repositories(value: Any) -> str | None:
    problem = _names(value)
    if problem is None:
        for name in value:
            try:
                repository_name(name, "")
            except ConfigError as exc:
                return str(exc).lstrip()
    return problem


def _repository(value: Any) -> str | None:
    try:
        repository_name(value, "")
    except ConfigError as exc:
        return str(exc).lstrip()
    return None


def _one_of(names: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value in names or value == "":
            return None
        return f"unknown {value!r} (known: {', '.join(names)})"

    return check


# Checks by argument name, shared by every activity that takes that argument; a
# "function.argument" key applies to one activity only and wins.
VALUE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "duration": _duration,
    "count": _positive_int,
    "concurrency": _positive_int,
    "blob_concurrency": _positive_int,
    "latency_ms": _positive_int,
    "rate_kbps": _positive_int,
    "after_bytes": _positive_int,
    "users": _positive_int,
    "size_kib": _positive_int,
    "image": _parses(ImageReference.parse),
    "platform": _parses(Platform.parse),
    "hop": _one_of(KNOWN_HOPS),
    "partition.mode": _one_of(("blackhole", "refuse")),
    "push_to_running.mode": _one_of(("direct", "observe")),
    "prometheus_query.query": _promql,
    "prometheus_range.query": _promql,
    "prometheus_alerts.rules_file": _rules_file,
    "prometheus_alerts.alerts": _names,
    "page_size": _positive_int,
    "top": _positive_int,
    "repositories": _repositories,
    "tag_compliance.pattern": _regex,
    "tag_compliance.allowed": _names,
    "layer_reuse.mount_repository": _repository,
}


def _type_error(value: Any, annotation: Any) -> str | None:
    expected: tuple[type, ...]
    origin = getattr(annotation, "__origin__", annotation)
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    if origin is bool:
        expected = (bool,)
    elif origin is int:
        expected = (int,)
    elif origin is float:
        expected = (int, float)
    elif origin is str:
        expected = (str,)
    elif origin is list:
        expected = (list,)
    elif origin is dict:
        expected = (dict,)
    else:
        return None
    if isinstance(value, bool) and origin is str:
        # YAML 1.1 reads unquoted on/off/yes/no/true/false as booleans.
        return (
            f"must be str, got the boolean {value!r} (YAML reads unquoted on/off/yes/no as "
            "booleans: quote the word)"
        )
    if isinstance(value, bool) and origin is not bool:
        return f"must be {origin.__name__}, got a boolean"
    if not isinstance(value, expected):
        return f"must be {origin.__name__}, got {type(value).__name__} {value!r}"
    return None


def check_activity(field: str, activity: dict[str, Any], configuration: dict[str, Any]) -> None:
    provider = activity.get("provider") or {}
    module_name = str(provider.get("module", ""))
    if provider.get("type") != "python" or not module_name.startswith("chaosregistry."):
        return
    name = activity.get("name", "?")
    where = f"{field} ({name})"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(f"{where}.provider.module: no module {module_name!r}") from None
    func_name = str(provider.get("func", ""))
    if func_name not in getattr(module, "__all__", ()):
        raise ConfigError(f"{where}.provider.func: {module_name} has no activity {func_name!r}")
    signature = inspect.signature(getattr(module, func_name))
    arguments = provider.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise ConfigError(f"{where}.provider.arguments must be a mapping")
    for arg in arguments:
        if arg not in signature.parameters or arg in ("configuration", "secrets"):
            known = ", ".join(
                p for p in signature.parameters if p not in ("configuration", "secrets")
            )
            raise ConfigError(
                f"{where}.arguments.{arg}: {func_name} takes no such argument (it takes: {known})"
            )
    for param in signature.parameters.values():
        if param.name in ("configuration", "secrets"):
            continue
        if param.name not in arguments:
            if param.default is inspect.Parameter.empty:
                raise ConfigError(f"{where}.arguments.{param.name}: required and missing")
            continue
        value = substitute(arguments[param.name], configuration)
        problem = _type_error(value, param.annotation)
        check = VALUE_CHECKS.get(f"{func_name}.{param.name}") or VALUE_CHECKS.get(param.name)
        if problem is None and check is not None:
            problem = check(value)
        if problem is not None:
            raise ConfigError(f"{where}.arguments.{param.name}: {problem}")


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
    vars_data = load_vars(vars_path, experiment) if vars_path else {}
    configuration = effective_configuration(experiment, vars_data, vars_path or experiment_path)
    refuse_url_credentials(experiment, vars_data, configuration, experiment_path, vars_path)
    settings = check_settings(vars_data, configuration, experiment_path, vars_path)
    check_secrets(experiment, vars_data, experiment_path)
    check_tolerances(experiment, configuration, experiment_path)
    for field, activity in activities(experiment):
        if not isinstance(activity, dict):
            raise ConfigError(f"{experiment_path}: {field} must be a mapping")
        try:
            check_activity(field, activity, configuration)
        except ConfigError as exc:
            raise ConfigError(f"{experiment_path}: {exc}") from None
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
    from chaosregistry.prometheus import EXTENSION

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
