"""One configuration pipeline: Prometheus's keys are part of the typed settings, the game day
runs on the settings validation parsed, given its sandbox, never on a reparsed copy, and
``${name}`` references are filled by Chaos Toolkit's own substitution, secrets included, as
``chaos run`` fills them."""

import ast
import importlib
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaosregistry import activity_modules
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import PASSED_BY_CHAOS_TOOLKIT
from chaosregistry.experiment.contracts import contract_of
from chaosregistry.experiment.settings import SettingError, parse_settings, settings_for
from chaosregistry.experiment.validate import run_secrets, validate


def publish(sandbox: Path, **endpoints: str) -> None:
    sandbox.mkdir(parents=True, exist_ok=True)
    (sandbox / "endpoints.json").write_text(json.dumps(endpoints))


def test_prometheus_keys_are_parsed_with_the_rest_of_the_settings() -> None:
    settings = settings_for(
        {"chaosregistry": {"prometheus_url": "http://prom:9090/", "prometheus_timeout": 2}}
    )
    assert settings.prometheus.url == "http://prom:9090"
    assert settings.prometheus.timeout == 2.0
    # What an activity parses refuses a bad Prometheus key too, not only `validate`.
    with pytest.raises(SettingError) as caught:
        settings_for({"sli_sink": "no-port"})
    assert caught.value.key == "sli_sink"


def test_settings_parsed_before_the_sandbox_is_up_find_its_prometheus_once_published(
    tmp_path: Path,
) -> None:
    sandbox = tmp_path / "sandbox"
    settings = parse_settings({"sandbox_dir": str(sandbox)})
    assert (settings.prometheus.url, settings.prometheus.sli_sink) == (None, None)
    publish(sandbox, prometheus="http://127.0.0.1:9090/", sli_sink="127.0.0.1:9091")
    assert settings.prometheus.url == "http://127.0.0.1:9090"
    assert settings.prometheus.sli_sink == "127.0.0.1:9091"


def test_settings_given_a_sandbox_are_those_of_a_configuration_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAOSREGISTRY_SANDBOX_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./runs/sandbox here
    sandbox = tmp_path / "sandbox"
    publish(sandbox, prometheus="http://127.0.0.1:9090", registry="http://127.0.0.1:5000")
    configuration = {"backend": "local", "registry_timeout": 7}
    given = parse_settings(configuration).in_sandbox(sandbox)
    assert given == parse_settings({**configuration, "sandbox_dir": str(sandbox)})
    assert given.prometheus.url == "http://127.0.0.1:9090"
    assert given.registry.resolve(None).url == "http://127.0.0.1:5000"


# -- ${name} references: Chaos Toolkit's substitution, secrets included ---------------------------
LATENCY = Path(__file__).resolve().parents[2] / "experiments/registry-latency.yaml"


def experiment_with_image_secret(tmp_path: Path, image: str) -> Path:
    """registry-latency.yaml with its probe image moved from configuration to a secret (the
    arguments keep their ``${probe_image}``, which chaos run fills from either)."""
    experiment = yaml.safe_load(LATENCY.read_text())
    del experiment["configuration"]["probe_image"]
    experiment["secrets"] = {"images": {"probe_image": image}}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


def test_an_argument_referring_to_a_secret_is_checked_with_the_secret_s_value(
    tmp_path: Path,
) -> None:
    checked = validate(experiment_with_image_secret(tmp_path, "shop/frontend:shop-prod-1.4.2"))
    assert checked.experiment["secrets"]["images"]["probe_image"]


def test_a_secret_s_value_outside_an_argument_s_domain_is_refused_without_repeating_it(
    tmp_path: Path,
) -> None:
    value = "Not-An-Image-Reference!!"
    with pytest.raises(ConfigError) as caught:
        validate(experiment_with_image_secret(tmp_path, value))
    message = str(caught.value)
    assert ".arguments.image: " in message, message
    assert value not in message, message


def test_a_vars_file_secret_scope_replaces_the_experiment_s_as_chaos_run_loads_it() -> None:
    experiment = {"secrets": {"images": {"probe_image": "a/b:1", "other": {"type": "vault"}}}}
    vars_data = {"secrets": {"images": {"probe_image": "c/d:2"}}}
    assert run_secrets(experiment, {}) == {"images": {"probe_image": "a/b:1"}}
    assert run_secrets(experiment, vars_data) == {"images": {"probe_image": "c/d:2"}}


# -- an activity's facts stated once --------------------------------------------------------------
def _hand_checks(function: Any) -> list[str]:
    """The arguments ``function``'s body checks by hand again although their annotation
    declares a domain (the @activity decorator checks that before the body runs)."""
    parameters = inspect.signature(function).parameters
    declared = {
        name
        for name, parameter in parameters.items()
        if contract_of(parameter.annotation).domains and name not in PASSED_BY_CHAOS_TOOLKIT
    }
    found = []
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("require_positive_int", "require_positive_number")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in declared
        ):
            found.append(f"{function.__name__}: {node.func.id}({node.args[0].value!r})")
        if (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Name)
            and node.left.id in declared
            and any(isinstance(op, ast.NotIn) for op in node.ops)
        ):
            found.append(f"{function.__name__}: {node.left.id} not in ...")
    return found


def test_no_activity_body_checks_again_what_its_arguments_declare() -> None:
    found = []
    for module_name in activity_modules():
        module = importlib.import_module(module_name)
        for name in module.__all__:
            found += _hand_checks(inspect.unwrap(getattr(module, name)))
    assert found == []


def test_the_token_server_modes_an_experiment_may_name_are_the_backend_s() -> None:
    from chaosregistry.actions.auth import token_server_outage
    from chaosregistry.backends import local_auth, plan

    mode = inspect.signature(token_server_outage).parameters["mode"]
    (domain,) = contract_of(mode.annotation).domains
    assert domain.words == plan.TOKEN_SERVER_MODES
    assert local_auth.TOKEN_SERVER_MODES is plan.TOKEN_SERVER_MODES


def test_gameday_starts_the_sandbox_for_what_an_activity_module_declares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chaosregistry.experiment.needs import SandboxNeed
    from chaosregistry.gameday.runner import sandbox_needs
    from chaosregistry.probes import hygiene

    configuration = {"registry_url": "https://registry.example", "backend": "local"}
    experiment = {
        "method": [
            {
                "type": "probe",
                "name": "reuse",
                "provider": {
                    "type": "python",
                    "module": "chaosregistry.probes.hygiene",
                    "func": "layer_reuse",
                    "arguments": {"top": 3},
                },
            }
        ]
    }
    assert sandbox_needs(experiment, configuration) == []
    need = SandboxNeed("reads the sandbox's storage")
    monkeypatch.setattr(hygiene, "SANDBOX_NEED", need, raising=False)
    assert sandbox_needs(experiment, configuration) == [
        "method[0] (reuse) reads the sandbox's storage"
    ]


def test_node_kills_and_the_mirror_log_need_the_sandbox_as_their_modules_declare() -> None:
    from chaosregistry.gameday.runner import sandbox_needs

    def our(module: str, func: str, arguments: dict[str, Any]) -> dict[str, Any]:
        provider = {"type": "python", "module": module, "func": func, "arguments": arguments}
        return {"type": "action", "name": func, "provider": provider}

    configuration = {"registry_url": "https://registry.example", "backend": "local"}
    experiment = {
        "method": [
            our("chaosregistry.actions.node", "kill_registry_node", {"duration": 5}),
            our("chaosregistry.probes.mirror", "upstream_fetches", {"image": "a/b:1"}),
        ]
    }
    assert sandbox_needs(experiment, configuration) == [
        "method[0] (kill_registry_node) kills and restarts the sandbox's registry processes",
        "method[1] (upstream_fetches) reads the sandbox mirror's access log",
    ]


# -- docs/architecture.md's layering rule: where configuration is read ---------------------------
PACKAGE = Path(importlib.import_module("chaosregistry").__file__ or "").resolve().parent
# The parser, and the door it stands behind (flattening, validation's env lookups and messages).
PARSERS = {"experiment/settings.py", "experiment/activity.py", "experiment/validate.py"}
# Reports read journals: the record of a run's configuration, not one to run with.
RECORDS = "reports/"


def _configuration_reads(path: Path) -> list[str]:
    """``configuration.get("key")``, ``(configuration or {}).get("key")`` or
    ``configuration["key"]`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        target, key = None, None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "get" and node.args:
                target, key = node.func.value, node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            target, key = node.value, node.slice
        if isinstance(target, ast.BoolOp):
            target = target.values[0]
        if (
            isinstance(target, ast.Name)
            and target.id == "configuration"
            and isinstance(key, ast.Constant)
            and isinstance(key.value, str)
        ):
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {key.value}")
    return found


def test_no_module_but_the_settings_parser_reads_a_configuration_key() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in PARSERS or relative.startswith(RECORDS):
            continue
        found += _configuration_reads(path)
    assert found == []


def test_an_env_typed_key_resolves_in_the_environment_the_run_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A game day sets CHAOSREGISTRY_RUN_ID for its chaos run only; the verdict must see the same
    # value chaos run does, not this process's (unset here: the default, "manual").
    from chaosregistry.experiment.validate import effective_configuration

    monkeypatch.delenv("CHAOSREGISTRY_RUN_ID", raising=False)
    experiment = {
        "configuration": {
            "run_id": {"type": "env", "key": "CHAOSREGISTRY_RUN_ID", "default": "manual"},
            "plain": 3,
        }
    }
    here = effective_configuration(experiment, {}, Path("e.yaml"))
    child = effective_configuration(
        experiment, {}, Path("e.yaml"), environ={"CHAOSREGISTRY_RUN_ID": "run-7f3a"}
    )
    assert (here["run_id"], child["run_id"]) == ("manual", "run-7f3a")
    assert here["plain"] == child["plain"] == 3
