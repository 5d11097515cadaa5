"""The declared domains (``chaosregistry.experiment.contracts``) as the activities' run-time check
sees them: a value that only arrives when ``chaos run`` resolves ``${key}`` is refused in one line
before the activity does anything; and the reader of the declarations itself."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from chaosregistry.actions import network
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.contracts import (
    FAULT_DURATION,
    NoneOf,
    OneOf,
    Range,
    RegistryTarget,
    Url,
    contract_of,
    type_name,
)
from chaosregistry.experiment.settings import parse_settings


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "ledger"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: network.partition(hop="client-registry", mode="sideways", duration=5),
            "partition: mode must be one of blackhole, refuse, got 'sideways'",
        ),
        (
            lambda: network.add_latency(hop="client-nowhere", duration=5),
            "add_latency: hop must be one of client-registry, client-mirror, mirror-upstream,",
        ),
        (
            lambda: network.add_latency(latency_ms=0, duration=5),
            "add_latency: latency_ms must be >= 1 ms, got 0",
        ),
        (
            lambda: network.reset_connections(duration=7200),
            "reset_connections: duration must be at most 3600 seconds (the limit), got 7200",
        ),
    ],
)
def test_an_activity_refuses_an_argument_outside_its_domain_before_doing_anything(
    ledger: Path, call: object, message: str
) -> None:
    with pytest.raises(ActivityFailed) as caught:
        call()  # type: ignore[operator]
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert not ledger.exists()


def test_a_value_resolved_by_chaos_run_at_run_time_is_checked_by_the_activity(
    tmp_path: Path,
) -> None:
    """``validate`` saw a good hop in the environment; ``chaos run`` got another one."""
    experiment = {
        "title": "a hop from the environment",
        "description": "the hop is only known when chaos run resolves it",
        "configuration": {"hop": {"type": "env", "key": "CHAOSREGISTRY_TEST_HOP"}},
        "method": [
            {
                "type": "action",
                "name": "latency",
                "provider": {
                    "type": "python",
                    "module": "chaosregistry.actions.network",
                    "func": "add_latency",
                    "arguments": {"hop": "${hop}", "duration": 5},
                },
            }
        ],
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    env = {
        **os.environ,
        "CHAOSREGISTRY_TEST_HOP": "client-nowhere",
        "CHAOSREGISTRY_LEDGER_DIR": str(tmp_path / "ledger"),
    }
    chaos = Path(sys.executable).with_name("chaos")
    subprocess.run(
        [str(chaos), "run", "--journal-path", str(tmp_path / "journal.json"), str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
    )
    journal = json.loads((tmp_path / "journal.json").read_text())
    (run,) = journal["run"]
    assert run["status"] == "failed"
    assert "add_latency: hop must be one of client-registry" in run["exception"][-1]
    assert "got 'client-nowhere'" in run["exception"][-1]
    assert not (tmp_path / "ledger").exists()


# -- the reader of the declarations ---------------------------------------------------------
def test_the_declarations_read_back_as_base_type_and_domains() -> None:
    hop = contract_of(Annotated[str, OneOf(("a", "b"))])
    assert hop.base is str and hop.domains == (OneOf(("a", "b")),) and not hop.optional
    mode = contract_of(Literal["x", "y"])
    assert mode.base is str and mode.problem("z") == "must be one of x, y, got 'z'"
    maybe = contract_of(list[str] | None)
    assert maybe.optional and maybe.problem(None) is None
    assert maybe.problem(["a", 1]) == "must be a list of names, got ['a', 1]"
    assert type_name(Annotated[int, Range(1)]) == "integer"
    assert type_name(Literal["x"]) == "string"
    assert type_name(list[str] | None) == "list"
    assert type_name(Annotated[float, FAULT_DURATION]) == "number"


@pytest.mark.parametrize(
    ("annotation", "value", "problem"),
    [
        (Annotated[int, Range(1)], True, "must be a whole number >= 1, got bool True"),
        (Annotated[int, Range(1)], 2.5, "must be a whole number, got float 2.5"),
        (Annotated[float, Range(0, above=True)], float("nan"), "must be a number > 0, got nan"),
        (Annotated[float, Range(0, 1, below=True)], 1, "must be below 1 (the limit), got 1"),
        (Annotated[str, Url()], "https://me:pw@registry.example", "must not carry credentials"),
        (Annotated[str, Url()], "ftp://registry.example", "must be a http or https URL"),
        (Annotated[str, RegistryTarget()], "no such name", "must name a registry"),
        (Annotated[str, NoneOf(("kube-system",), "never a chaos target")], "kube-system", "never"),
        (Annotated[str, OneOf(("on", "off"))], False, "got the boolean False"),
    ],
)
def test_a_value_outside_its_declaration_says_why(
    annotation: object, value: object, problem: str
) -> None:
    found = contract_of(annotation).problem(value)
    assert found is not None and problem in found, found


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("namespace", "kube-system", "configuration.namespace: 'kube-system' is never a chaos"),
        ("namespace", "Bad_Name", "configuration.namespace: must be a Kubernetes object name"),
        ("max_pods", 0, "configuration.max_pods must be a whole number >= 1"),
        (
            "registry_ca_bundle",
            "/nonexistent/ca.pem",
            "cannot read the CA bundle file /nonexistent/ca.pem",
        ),
        ("toxiproxy_url", "https://127.0.0.1:8474", "must be a http URL"),
        (
            "registry_nodes",
            {"r1": {"selector": {"app": "registry"}, "mode": "most"}},
            "configuration.registry_nodes.r1.mode: pod kill mode must be one of",
        ),
    ],
)
def test_a_configuration_key_outside_its_domain_is_refused_by_the_one_parser(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"chaosregistry": {key: value}})
    assert message in str(caught.value)
