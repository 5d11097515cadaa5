"""Malformed variants of every shipped experiment, generated from the declared contracts, are
each refused by ``validate`` in one line naming the file and the field, with nothing started.

For every argument of every activity a shipped experiment calls, hypothesis draws a value
outside the domain the activity's signature declares (``chaosregistry.experiment.contracts``): a
word not in an enumeration, a number past a bound, a file that does not exist, a URL with another
scheme or with credentials, a value of another type. Other variants break the document's
structure (a hypothesis or provider given as a string, configuration as a list, an integer
key, a method entry that is a string, a tolerance target the probe does not return) or a
configuration key's domain in the vars file. Each must raise ``ConfigError`` (the CLI's one
line, never a traceback). The slowest validation is printed at the end (``-s``); time is
measured, never asserted.
"""

import inspect
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaosregistry.errors import ConfigError
from chaosregistry.experiment import contracts
from chaosregistry.experiment.contracts import (
    Domain,
    Each,
    ExistingFile,
    NoneOf,
    OneOf,
    Parsed,
    Range,
    RegistryTarget,
    Url,
    contract_of,
    is_default,
)
from chaosregistry.experiment.validate import activities, validate
from chaosregistry.observability.promql import promtool
from chaosregistry.probes.prometheus import WINDOW

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
VARS_FILES = [ROOT / "experiments/vars/local.yaml", ROOT / "experiments/vars/kubernetes.yaml"]
PASSED_BY_CHAOS_TOOLKIT = ("configuration", "secrets")

# Values each parsed domain refuses (none of them any activity's default).
BAD_PARSED: dict[Parsed, list[Any]] = {
    contracts.IMAGE: ["Upper/Case:tag", "a b:c", ":tag", "repo@sha256:short"],
    contracts.PLATFORM: ["linux", "linux/", "a/b/c/d"],
    contracts.REPOSITORY: ["UPPER", "a//b", "repo:tag", "-lead"],
    contracts.TAG_PATTERN: ["[a-", "(unclosed", "*start"],
    contracts.PROMQL: ["sum(", "rate(x[5m]", "1 +"],
    contracts.RULES_FILE: ["/nonexistent/chaosregistry/alerts.rules.yml"],
    contracts.KUBE_NAME: ["Upper", "-lead", "under_score", "a" * 300],
    WINDOW: ["5", "m", "5 minutes", "1w2"],
}

# Every value of another type than each base type.
WRONG_TYPES: dict[Any, st.SearchStrategy[Any]] = {
    str: st.one_of(st.integers(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2)),
    int: st.one_of(st.text(max_size=5), st.just(2.5), st.booleans(), st.just([1])),
    float: st.one_of(st.text(max_size=5), st.booleans(), st.just({"a": 1})),
    bool: st.one_of(st.text(min_size=1, max_size=5), st.integers(), st.just([True])),
    list: st.one_of(st.text(min_size=1, max_size=5), st.integers(), st.just({"a": 1})),
}


def parsed_domains(domains: tuple[Domain, ...]) -> Iterator[Parsed]:
    for domain in domains:
        if isinstance(domain, Parsed):
            yield domain
        elif isinstance(domain, Each):
            yield from parsed_domains((domain.domain,))


def out_of_domain(domain: Domain, base: Any) -> st.SearchStrategy[Any]:
    """Values ``domain`` refuses (of the right base type, so the domain is what speaks)."""
    if isinstance(domain, OneOf):
        if all(isinstance(word, int) for word in domain.words):
            return st.integers(-1000, 1000).filter(lambda n: n not in domain.words)
        return st.text(min_size=1, max_size=16).filter(lambda t: t not in domain.words)
    if isinstance(domain, NoneOf):
        return st.sampled_from(domain.words)
    if isinstance(domain, Range):
        whole = base is int
        options = []
        if domain.minimum is not None:
            low = domain.minimum
            options.append(
                st.integers(max_value=math.ceil(low) - (0 if domain.above else 1))
                if whole
                else st.floats(max_value=low, exclude_max=not domain.above, allow_nan=False)
            )
        if domain.maximum is not None:
            high = domain.maximum
            options.append(
                st.integers(min_value=math.floor(high) + (0 if domain.below else 1))
                if whole
                else st.floats(min_value=high, exclude_min=not domain.below, allow_nan=False)
            )
        if not whole:
            options.append(st.just(math.nan))
        return st.one_of(options)
    if isinstance(domain, ExistingFile):
        return st.from_regex(r"/nonexistent/[a-z]{1,8}\.pem", fullmatch=True)
    if isinstance(domain, Url):
        return st.sampled_from(
            ["ftp://registry.example", "http://", "https://user:secret@registry.example", "x"]
        )
    if isinstance(domain, RegistryTarget):
        return st.sampled_from(["bad name!", "ftp://x.example", "https://u:p@x.example", "-"])
    if isinstance(domain, Parsed):
        return st.sampled_from(BAD_PARSED[domain])
    if isinstance(domain, Each):
        return out_of_domain(domain.domain, str).map(lambda bad: [bad])
    raise AssertionError(f"no generator for {domain!r}: add one")


def bad_values(parameter: inspect.Parameter) -> st.SearchStrategy[Any] | None:
    """Values outside ``parameter``'s declaration (None when it declares nothing to break)."""
    contract = contract_of(parameter.annotation)
    base = getattr(contract.base, "__origin__", contract.base)
    options = [out_of_domain(domain, base) for domain in contract.domains]
    if base in WRONG_TYPES:
        options.append(WRONG_TYPES[base])
    if not contract.optional and base in WRONG_TYPES and parameter.default is not None:
        options.append(st.none())
    if not options:
        return None
    return st.one_of(options).filter(lambda value: not is_default(parameter, value))


def our_activities(
    experiment: dict[str, Any],
) -> list[tuple[str, dict[str, Any], Callable[..., Any]]]:
    found = []
    for field, activity in activities(experiment):
        provider = activity.get("provider") or {}
        module = str(provider.get("module", ""))
        if provider.get("type") == "python" and module.startswith("chaosregistry."):
            function = getattr(__import__(module, fromlist=["__all__"]), provider["func"])
            found.append((field, activity, function))
    return found


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


SHIPPED = {path: load(path) for path in EXPERIMENTS}
SLOWEST: list[tuple[float, str]] = []
COUNTS = {"variants": 0, "rejected": 0, "tracebacks": 0}
FIELDS: set[str] = set()


# -- variants ---------------------------------------------------------------------------------
@st.composite
def argument_variant(draw: st.DrawFn) -> tuple[Path, dict[str, Any], str]:
    """A shipped experiment with one argument of one of our activities out of its domain."""
    path = draw(st.sampled_from(EXPERIMENTS))
    experiment = json.loads(json.dumps(SHIPPED[path]))  # no shared (aliased) parts
    choices = []
    for field, activity, function in our_activities(experiment):
        for parameter in inspect.signature(function).parameters.values():
            if parameter.name in PASSED_BY_CHAOS_TOOLKIT:
                continue
            domain = contract_of(parameter.annotation)
            if promtool() is None and contracts.PROMQL in domain.domains:
                continue  # without promtool PromQL is not checked offline
            strategy = bad_values(parameter)
            if strategy is not None:
                choices.append((field, activity, parameter.name, strategy))
    field, activity, name, strategy = draw(st.sampled_from(choices))
    activity["provider"].setdefault("arguments", {})[name] = draw(strategy)
    return path, experiment, f"{field} ({activity['name']}).arguments.{name}"


def _activity_field(experiment: dict[str, Any], draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    field, activity = draw(st.sampled_from(list(activities(experiment))))
    return field, activity


WRONG = st.one_of(
    st.text(min_size=1, max_size=8), st.integers(), st.lists(st.integers(), min_size=1, max_size=2)
)


@st.composite
def structure_variant(draw: st.DrawFn) -> tuple[Path, dict[str, Any], str]:
    """A shipped experiment with one structural mistake; the field the message must name."""
    path = draw(st.sampled_from(EXPERIMENTS))
    experiment = json.loads(json.dumps(SHIPPED[path]))  # no shared (aliased) parts
    kind = draw(
        st.sampled_from(
            [
                "hypothesis",
                "probes",
                "provider",
                "arguments",
                "configuration",
                "secrets",
                "secret-scope",
                "settings-mapping",
                "integer-key",
                "entry",
                "method",
                "type",
                "provider-type",
                "func",
                "target",
                "pause",
                "title",
                "extension",
            ]
        )
    )
    not_mapping = st.one_of(st.text(min_size=1, max_size=8), st.integers(), st.just(["a"]))
    if kind == "hypothesis":
        experiment["steady-state-hypothesis"] = draw(not_mapping)
        return path, experiment, "steady-state-hypothesis"
    if kind == "probes":
        experiment["steady-state-hypothesis"]["probes"] = draw(
            st.one_of(st.text(), st.integers(), st.none())
        )
        return path, experiment, "steady-state-hypothesis.probes"
    if kind in ("provider", "arguments", "type", "provider-type", "func", "pause"):
        field, activity = _activity_field(experiment, draw)
        if kind == "provider":
            activity["provider"] = draw(not_mapping)
            return path, experiment, f"{field}.provider"
        if kind == "arguments":
            activity["provider"]["arguments"] = draw(
                st.one_of(st.text(min_size=1), st.just(["a", "b"]), st.integers())
            )
            return path, experiment, f"{field}.provider.arguments"
        if kind == "type":
            activity["type"] = draw(st.sampled_from(["probes", "act", "", 3]))
            return path, experiment, f"{field}.type"
        if kind == "provider-type":
            activity["provider"]["type"] = draw(st.sampled_from(["pyhton", 1, ["python"]]))
            return path, experiment, f"{field}.provider.type"
        if kind == "func":
            activity["provider"]["func"] = draw(st.sampled_from(["no_such_activity", 7, ["f"]]))
            return path, experiment, f"{field}"
        activity["pauses"] = {"after": draw(st.sampled_from([-1, 4000, "soon", [1]]))}
        return path, experiment, f"{field}.pauses.after"
    if kind == "configuration":
        experiment["configuration"] = draw(st.one_of(st.just(["a"]), st.text(min_size=1)))
        return path, experiment, "configuration"
    if kind == "secrets":
        experiment["secrets"] = draw(st.one_of(st.just(["a"]), st.text(min_size=1)))
        return path, experiment, "secrets"
    if kind == "secret-scope":
        experiment["secrets"] = {"registry": draw(st.one_of(st.just(["a"]), st.text(min_size=1)))}
        return path, experiment, "secrets.registry"
    if kind == "settings-mapping":
        experiment.setdefault("configuration", {})["chaosregistry"] = draw(
            st.one_of(st.just(["a"]), st.text(min_size=1), st.integers())
        )
        return path, experiment, "configuration.chaosregistry"
    if kind == "integer-key":
        where = draw(st.sampled_from(["top", "configuration", "arguments"]))
        key = draw(st.one_of(st.integers(), st.booleans()))
        if where == "top":
            experiment[key] = "x"
            return path, experiment, f"the key {key!r}"
        if where == "configuration":
            experiment.setdefault("configuration", {})[key] = "x"
            return path, experiment, f"configuration: the key {key!r}"
        field, activity = _activity_field(experiment, draw)
        activity["provider"].setdefault("arguments", {})[key] = "x"
        return path, experiment, f"the key {key!r}"
    if kind == "entry":
        field, _ = _activity_field(experiment, draw)
        section, index = field.rsplit("[", 1)
        entries = (
            experiment["steady-state-hypothesis"]["probes"]
            if section.startswith("steady")
            else experiment[section]
        )
        entries[int(index[:-1])] = draw(st.one_of(st.text(min_size=1), st.integers()))
        return path, experiment, field
    if kind == "method":
        experiment["method"] = draw(st.one_of(st.text(min_size=1), st.just({"a": 1})))
        return path, experiment, "method"
    if kind == "target":
        probes = [
            (field, activity)
            for field, activity, _ in our_activities(experiment)
            if isinstance(activity.get("tolerance"), dict) and "target" in activity["tolerance"]
        ]
        if not probes:
            experiment["title"] = ["not", "text"]
            return path, experiment, "title"
        field, activity = draw(st.sampled_from(probes))
        activity["tolerance"]["target"] = draw(st.sampled_from(["p9S", "sucess_ratio", "nope"]))
        return path, experiment, f"{field} ({activity['name']}).tolerance.target"
    if kind == "title":
        experiment["title"] = draw(st.one_of(st.none(), st.integers(), st.just(["t"])))
        return path, experiment, "title"
    experiment["extensions"] = draw(st.one_of(st.just({"name": "x"}), st.just(["x"])))
    return path, experiment, "extensions"


# Configuration keys' domains, set in a vars file: (key, bad value).
BAD_SETTINGS = [
    ("namespace", "kube-system"),
    ("namespace", "Not_A_Name"),
    ("max_pods", 0),
    ("backend", "docker"),
    ("network_provider", "iptables"),
    ("node_kill_provider", "ssh"),
    ("node_pulls", "sometimes"),
    ("registry_ca_bundle", "/nonexistent/ca.pem"),
    ("toxiproxy_url", "ftp://127.0.0.1:8474"),
    ("registry_timeout", -1),
    ("kube_timeout", "fast"),
    ("registry_url", "ftp://registry.example"),
    ("dry_run", "yes"),
    ("registry_nodes", {"registry-1": {"selector": {"app": "r"}, "mode": "some"}}),
    ("registry_nodes", {"registry-1": {"selector": {"app": "r"}, "namespace": "kube-system"}}),
]


# -- checking one variant ---------------------------------------------------------------------
def refused(experiment_path: Path, vars_path: Path, blamed: Path, field: str) -> None:
    COUNTS["variants"] += 1
    started = time.perf_counter()
    try:
        validate(experiment_path, vars_path)
    except ConfigError as exc:
        message = str(exc)
    except Exception as exc:
        COUNTS["tracebacks"] += 1
        raise AssertionError(f"{type(exc).__name__} (a traceback at the CLI): {exc}") from exc
    else:
        raise AssertionError(f"accepted: {field} in {experiment_path} with {vars_path}")
    finally:
        SLOWEST.append((time.perf_counter() - started, field))
        FIELDS.add(field)
    COUNTS["rejected"] += 1
    assert "\n" not in message, message
    assert message.startswith(f"{blamed}:"), (message, blamed)
    assert field in message, (message, field)


@pytest.fixture(scope="module")
def report() -> Iterator[None]:
    yield
    if SLOWEST:
        seconds, field = max(SLOWEST)
        print(
            f"\ncontracts corpus: {COUNTS['variants']} variants, {COUNTS['rejected']} rejected, "
            f"{COUNTS['tracebacks']} tracebacks, {len(FIELDS)} distinct fields; "
            f"slowest validation {seconds:.3f} s ({field})"
        )


@pytest.fixture
def workdir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A fresh working directory with its own ledger; nothing may appear in either."""
    directory = tmp_path_factory.mktemp("variant")
    monkeypatch.chdir(directory)
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(directory / "ledger"))
    monkeypatch.delenv("CHAOSREGISTRY_SANDBOX_DIR", raising=False)
    yield directory
    assert not (directory / "ledger").exists()
    assert not (directory / "runs").exists()


def write(directory: Path, name: str, document: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return path


SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(variant=argument_variant(), vars_path=st.sampled_from(VARS_FILES))
def test_every_argument_out_of_its_declared_domain_is_refused_naming_it(
    report: None, workdir: Path, variant: tuple[Path, dict[str, Any], str], vars_path: Path
) -> None:
    _, experiment, field = variant
    path = write(workdir, "experiment.yaml", experiment)
    refused(path, vars_path, path, field)


@SETTINGS
@given(variant=structure_variant(), vars_path=st.sampled_from(VARS_FILES))
def test_every_structural_mistake_is_one_line_naming_the_field(
    report: None, workdir: Path, variant: tuple[Path, dict[str, Any], str], vars_path: Path
) -> None:
    _, experiment, field = variant
    path = write(workdir, "experiment.yaml", experiment)
    refused(path, vars_path, path, field)


@settings(max_examples=len(BAD_SETTINGS) * 2, deadline=None, derandomize=True)
@given(
    experiment=st.sampled_from(EXPERIMENTS),
    vars_path=st.sampled_from(VARS_FILES),
    setting=st.sampled_from(BAD_SETTINGS),
)
def test_every_configuration_key_out_of_its_domain_is_refused_naming_the_vars_file(
    report: None,
    tmp_path_factory: pytest.TempPathFactory,
    experiment: Path,
    vars_path: Path,
    setting: tuple[str, Any],
) -> None:
    key, value = setting
    directory = tmp_path_factory.mktemp("vars")
    document = load(vars_path)
    configuration = document["configuration"]
    # A top-level key wins over the same key under `chaosregistry`: set it where it is read.
    section = configuration if key in configuration else configuration["chaosregistry"]
    section[key] = value
    path = write(directory, "vars.yaml", document)
    field = (
        f"configuration.{key}" if section is configuration else f"configuration.chaosregistry.{key}"
    )
    refused(experiment, path, path, field)


def test_every_declared_parsed_domain_has_refused_examples() -> None:
    """A new ``Parsed`` declaration must come with values the corpus can break it with."""
    declared = set()
    for experiment in SHIPPED.values():
        for _, _, function in our_activities(experiment):
            for parameter in inspect.signature(function).parameters.values():
                declared |= set(parsed_domains(contract_of(parameter.annotation).domains))
    assert declared, "the shipped experiments declare no parsed domain?"
    missing = [domain.what for domain in declared if domain not in BAD_PARSED]
    assert missing == []
    for domain, values in BAD_PARSED.items():
        if domain is contracts.PROMQL and promtool() is None:
            continue
        for value in values:
            assert domain.problem(value) is not None, (domain.what, value)


@settings(max_examples=4, deadline=None, derandomize=True)
@given(
    variant=st.one_of(argument_variant(), structure_variant()),
    vars_path=st.sampled_from(VARS_FILES),
)
def test_generated_variants_through_the_cli_exit_non_zero_with_one_line(
    tmp_path_factory: pytest.TempPathFactory,
    variant: tuple[Path, dict[str, Any], str],
    vars_path: Path,
) -> None:
    directory = tmp_path_factory.mktemp("cli")
    _, experiment, field = variant
    path = write(directory, "experiment.yaml", experiment)
    command = Path(sys.executable).with_name("chaosregistry")
    result = subprocess.run(
        [str(command), "validate", str(path), "--vars", str(vars_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=directory,
        env={**os.environ, "CHAOSREGISTRY_LEDGER_DIR": str(directory / "ledger")},
    )
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: "), result.stderr
    assert field in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (directory / "ledger").exists() and not (directory / "runs").exists()
