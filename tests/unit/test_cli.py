"""The CLI on bad input: one ``Error:`` line naming what is wrong, a non-zero exit, no traceback,
and nothing started or injected."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from chaosregistry.cli import main

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("chaosregistry"))


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def assert_one_line_error(process: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert process.returncode != 0
    assert "Traceback" not in process.stderr + process.stdout
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("Error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["pull", "tiny/hello", "--registry", "ftp://example"], ["ftp://example"]),
        (["pull", "tiny/hello", "--registry", "http://127.0.0.1:99999"], ["port"]),
        (["pull", "Tiny/Hello"], ["repository"]),
        (["pull", "tiny/hello", "--platform", "linux"], ["platform", "os/arch"]),
        (["pull", "tiny/hello", "--count", "0"], ["--count"]),
        (["pull", "tiny/hello", "--count", "-3"], ["--count"]),
        (
            ["pull", "tiny/hello", "--concurrency", "0", "--registry", "http://127.0.0.1:1"],
            ["concurrency"],
        ),
        (["pull", "tiny/hello", "--sandbox-dir", "/tmp"], ["not a sandbox directory"]),
        (["sandbox", "status", "--run-dir", "/tmp"], ["not a sandbox directory"]),
        (["sandbox", "down", "--run-dir", "/tmp"], ["not a sandbox directory"]),
        (
            ["tag-poller", "demo", "--tag", "release", "--vars", "/nonexistent/vars.yaml"],
            ["/nonexistent/vars.yaml: no such vars file"],
        ),
        (
            ["tag-poller", "demo", "--tag", "release", "--vars", "x.yaml", "--interval", "0"],
            ["interval must be positive seconds"],
        ),
        (
            ["cluster", "up", "--node-pulls", "mirror-only"],
            ["node_pulls must be one of origin, mirror-first, got 'mirror-only'"],
        ),
    ],
)
def test_bad_cli_input_is_one_line(args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(run(*args), *fragments)


def write_experiment(tmp_path: Path, mutate: object) -> Path:
    experiment = yaml.safe_load((ROOT / "experiments/registry-latency.yaml").read_text())
    mutate(experiment)  # type: ignore[operator]
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    return path


def method_arg(name: str, value: object):  # type: ignore[no-untyped-def]
    def mutate(experiment: dict) -> None:  # type: ignore[type-arg]
        experiment["method"][0]["provider"]["arguments"][name] = value

    return mutate


def add_secret(experiment: dict) -> None:  # type: ignore[type-arg]
    experiment["secrets"] = {
        "registry": {"registry_password": {"type": "env", "key": "CHAOSREGISTRY_TEST_NOT_SET"}}
    }


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (method_arg("hop", "client-nowhere"), ["method[0]", "arguments.hop", "client-nowhere"]),
        (method_arg("duration", -5), ["method[0]", "arguments.duration", "-5"]),
        (method_arg("latency_ms", "300"), ["method[0]", "arguments.latency_ms", "whole number"]),
        (method_arg("jitter", 5), ["method[0]", "arguments.jitter", "no such argument"]),
        (add_secret, ["secrets.registry.registry_password", "CHAOSREGISTRY_TEST_NOT_SET"]),
    ],
)
def test_malformed_experiments_are_one_line_naming_file_and_field(
    tmp_path: Path, mutate: object, fragments: list[str]
) -> None:
    path = write_experiment(tmp_path, mutate)
    env = {**os.environ, "CHAOSREGISTRY_LEDGER_DIR": str(tmp_path / "ledger")}
    for command in ("validate", "gameday"):
        process = run(
            command,
            str(path),
            "--vars",
            str(ROOT / "experiments/vars/local.yaml"),
            env=env,
            cwd=tmp_path,
        )
        assert_one_line_error(process, str(path), *fragments)
    # Nothing ran: no ledger, no sandbox, no run directory.
    assert not (tmp_path / "ledger").exists()
    assert not (tmp_path / "runs").exists()


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("title: x\nmethod: [\n  - oops: {\n")
    assert_one_line_error(run("validate", str(path)), str(path), "not valid YAML")


@pytest.mark.parametrize(
    ("vars_text", "fragments"),
    [
        ("configuration: [1, 2\n", ["not valid YAML"]),
        ("configuration:\n  backend: mainframe\n", ["configuration.backend", "mainframe"]),
        ("configuration:\n  not_declared: 1\n", ["configuration.not_declared", "not declared"]),
        ("settings: {}\n", ["settings"]),
    ],
)
def test_malformed_vars_are_one_line_naming_file_and_field(
    tmp_path: Path, vars_text: str, fragments: list[str]
) -> None:
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text(vars_text)
    process = run(
        "validate", str(ROOT / "experiments/registry-latency.yaml"), "--vars", str(vars_file)
    )
    assert_one_line_error(process, str(vars_file), *fragments)


def test_every_shipped_experiment_validates() -> None:
    # In this process (click's runner): a `chaosregistry` process per experiment spent ~2 s each
    # importing chaoslib and every activity module again.
    paths = sorted((ROOT / "experiments").glob("*.yaml"))
    assert len(paths) >= 8
    for path in paths:
        result = CliRunner().invoke(
            main, ["validate", str(path), "--vars", str(ROOT / "experiments/vars/local.yaml")]
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"{path}: valid ("), result.output
