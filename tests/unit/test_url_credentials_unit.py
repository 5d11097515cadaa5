"""A URL carrying credentials (``https://user:password@host``) is refused before anything runs,
in one line that names the file and field, says where credentials go instead, and never repeats
the password; and wherever a registry URL or an image reference is parsed at run time.

A URL's text reaches Locust's command line, load.json, the ledger, the journal and every report;
credentials belong in secrets or the environment (see chaosregistry.redaction), and reach
Locust as a private file, never on its command line (/proc/<pid>/cmdline is world-readable)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from chaosregistry.cli import main
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import (
    RegistrySettings,
    RegistryTarget,
    SettingError,
    parse_settings,
)
from chaosregistry.loadgen.command import locust_command
from chaosregistry.loadgen.parameters import LoadParameters
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.client import validate_registry_url
from chaosregistry.oci.reference import ImageReference
from chaosregistry.redaction import url_credentials

ROOT = Path(__file__).resolve().parents[2]
LATENCY = ROOT / "experiments/registry-latency.yaml"
PASSWORD = "canary-userinfo-Pw7Lk3"
USERINFO_URL = f"https://ci-bot:{PASSWORD}@127.0.0.1:1"
WHERE_THEY_GO = "secrets registry_username and registry_password"


@pytest.fixture
def refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Path, Path | None, list[str]], None]:
    """``validate`` and ``gameday`` both refuse in one line, without the password, having
    started nothing (no ledger, no run directory, no sandbox)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.delenv("CHAOSREGISTRY_SANDBOX_DIR", raising=False)

    def check(experiment: Path, vars_file: Path | None, fragments: list[str]) -> None:
        vars_args = ["--vars", str(vars_file)] if vars_file else []
        for command in ("validate", "gameday"):
            result = CliRunner().invoke(main, [command, str(experiment), *vars_args])
            assert result.exit_code == 1, (command, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit)
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), (command, result.stderr)
            for fragment in [*fragments, WHERE_THEY_GO]:
                assert fragment in lines[0], (command, lines[0])
            assert PASSWORD not in result.output
        assert not (tmp_path / "ledger").exists()
        assert not (tmp_path / "runs").exists()  # no run dir, no sandbox in runs/sandbox

    return check


def write_experiment(tmp_path: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    experiment = yaml.safe_load(LATENCY.read_text())
    mutate(experiment)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


def test_a_registry_url_with_userinfo_in_the_vars_file_is_refused(
    tmp_path: Path, refused: Callable[..., None]
) -> None:
    experiment = write_experiment(tmp_path, lambda e: None)
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text(
        yaml.safe_dump({"configuration": {"chaosregistry": {"registry_url": USERINFO_URL}}})
    )
    refused(experiment, vars_file, [f"{vars_file}: configuration.chaosregistry.registry_url"])


def test_a_target_url_with_userinfo_in_an_activity_is_refused(
    tmp_path: Path, refused: Callable[..., None]
) -> None:
    def mutate(experiment: dict[str, Any]) -> None:
        experiment["method"][0]["provider"]["arguments"]["target"] = USERINFO_URL

    experiment = write_experiment(tmp_path, mutate)
    name = yaml.safe_load(experiment.read_text())["method"][0]["name"]
    refused(experiment, None, [f"{experiment}: method[0] ({name}).arguments.target"])


def test_a_token_given_as_the_user_of_an_https_url_is_refused(
    tmp_path: Path, refused: Callable[..., None]
) -> None:
    def mutate(experiment: dict[str, Any]) -> None:
        experiment["configuration"]["chaosregistry"] = {
            "mirror_url": f"https://{PASSWORD}@127.0.0.1:2"
        }

    experiment = write_experiment(tmp_path, mutate)
    refused(experiment, None, [f"{experiment}: configuration.chaosregistry.mirror_url"])


def test_a_url_with_userinfo_from_the_environment_is_refused(
    tmp_path: Path, refused: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_REGISTRY_URL", USERINFO_URL)

    def mutate(experiment: dict[str, Any]) -> None:
        experiment["configuration"]["registry_url"] = {"type": "env", "key": "CANARY_REGISTRY_URL"}

    experiment = write_experiment(tmp_path, mutate)
    refused(experiment, None, [f"{experiment}: configuration.registry_url", "environment"])


@pytest.mark.parametrize(
    ("url", "carries"),
    [
        (USERINFO_URL, True),
        (f"https://{PASSWORD}@host", True),  # a token as the user name
        (f"postgres://app:{PASSWORD}@db/x", True),
        ("ssh://git@github.example/org/repo", False),  # a user, no password
        ("https://127.0.0.1:5000", False),
        ("https://host/search?email=a@b.example", False),  # @ after the host
        (f"http://u:{PASSWORD}@[::1", True),  # malformed, still refused
        ("not a url @ all", False),
    ],
)
def test_which_urls_carry_credentials(url: str, carries: bool) -> None:
    assert url_credentials(url) is carries


def test_every_run_time_url_parser_refuses_userinfo_without_repeating_it(
    tmp_path: Path,
) -> None:
    attempts: list[Callable[[], object]] = [
        lambda: validate_registry_url(USERINFO_URL),
        lambda: RegistrySettings().resolve(None, USERINFO_URL),  # a `target:` given as a URL
        lambda: parse_settings({"registry_url": USERINFO_URL}),
        lambda: parse_settings({"toxiproxy_url": f"http://admin:{PASSWORD}@127.0.0.1:1"}),
        lambda: parse_settings({"prometheus_url": f"http://admin:{PASSWORD}@127.0.0.1:1"}),
        lambda: ImageReference.parse(f"ci-bot:{PASSWORD}@registry.example:5000/shop/api:1"),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigError) as caught:
            attempt()
        message = str(caught.value)
        assert "carries credentials" in message and WHERE_THEY_GO in message, message
        assert PASSWORD not in message and "\n" not in message


def test_a_setting_refusal_names_its_key() -> None:
    with pytest.raises(SettingError) as caught:
        parse_settings({"chaosregistry": {"metrics_url": f"http://u:{PASSWORD}@127.0.0.1:1"}})
    assert caught.value.key == "metrics_url"
    assert str(caught.value).startswith("configuration.metrics_url: the URL carries credentials")


def test_the_pull_command_refuses_a_registry_url_with_userinfo(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["pull", "tiny/hello:latest", "--registry", USERINFO_URL])
    assert result.exit_code == 1, result.output
    assert PASSWORD not in result.output
    assert "carries credentials" in result.stderr and len(result.stderr.splitlines()) == 1


def test_locusts_command_line_names_the_credentials_file_never_the_credentials(
    tmp_path: Path,
) -> None:
    registry = RegistryTarget("https://127.0.0.1:1", Credentials("ci-bot", PASSWORD), True, 10.0)
    parameters = LoadParameters.check(
        users=2, spawn_rate=2, duration=5, processes=1, target="registry", mode="warm",
        platform="linux/amd64", verify=True, blob_concurrency=3, fresh_images=4,
    )  # fmt: skip
    command = locust_command(parameters, registry, tmp_path / "stats", "tag", tmp_path / "creds")
    assert command[command.index("--credentials-file") + 1] == str(
        tmp_path / "creds" / "credentials.json"
    )
    assert not [part for part in command if PASSWORD in part or "ci-bot" in part]
