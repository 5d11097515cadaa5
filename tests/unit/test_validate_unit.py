"""Mistakes ``chaos run`` would accept: refused by ``validate`` and at the game day's door with
one line naming the file and field, a non-zero exit, and nothing run (no ledger, no run dir).

In this process through click's runner; tests/unit/test_cli.py runs the installed command."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from chaosregistry.cli import main
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.validate import validate

ROOT = Path(__file__).resolve().parents[2]
LATENCY = ROOT / "experiments/registry-latency.yaml"
LOCAL_VARS = ROOT / "experiments/vars/local.yaml"


@pytest.fixture
def refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Path, Path, list[str]], None]:
    """Check that ``validate`` and ``gameday`` both refuse EXPERIMENT with VARS in one line."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.delenv("CHAOSREGISTRY_SANDBOX_DIR", raising=False)

    def check(experiment: Path, vars_file: Path, fragments: list[str]) -> None:
        # validate first: had it passed, gameday would go on to start a sandbox.
        for command in ("validate", "gameday"):
            result = CliRunner().invoke(main, [command, str(experiment), "--vars", str(vars_file)])
            assert result.exit_code == 1, (command, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit)
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), (command, result.stderr)
            for fragment in fragments:
                assert fragment in lines[0], (command, lines[0])
        assert not (tmp_path / "ledger").exists()
        assert not (tmp_path / "runs").exists()

    return check


def write_vars(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vars.yaml"
    path.write_text(text)
    return path


def write_experiment(tmp_path: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    experiment = yaml.safe_load(LATENCY.read_text())
    mutate(experiment)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


# -- range tolerances -------------------------------------------------------------------------
def reversed_range(bounds: list[Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(experiment: dict[str, Any]) -> None:
        experiment["steady-state-hypothesis"]["probes"][1]["tolerance"]["range"] = bounds

    return mutate


@pytest.mark.parametrize("bounds", [[5, 1], [1, 0.5], ["${high}", "${low}"]])
def test_a_range_tolerance_with_reversed_bounds_is_refused(
    tmp_path: Path, refused: Callable[..., None], bounds: list[Any]
) -> None:
    def mutate(experiment: dict[str, Any]) -> None:
        reversed_range(bounds)(experiment)
        experiment["configuration"].update(high=5, low=1)

    path = write_experiment(tmp_path, mutate)
    refused(
        path,
        LOCAL_VARS,
        [
            f"{path}: steady-state-hypothesis.probes[1] (every-pull-succeeds).tolerance.range",
            "reversed",
        ],
    )


@pytest.mark.parametrize("bounds", [[1, 1], [0, 0.4], [-1, 0]])
def test_a_range_tolerance_in_order_or_empty_width_is_valid(
    tmp_path: Path, bounds: list[Any]
) -> None:
    path = write_experiment(tmp_path, reversed_range(bounds))
    assert validate(path, LOCAL_VARS).experiment["title"]


# -- duplicate keys ---------------------------------------------------------------------------
def test_a_key_twice_in_the_experiment_is_refused_with_both_lines(
    tmp_path: Path, refused: Callable[..., None]
) -> None:
    text = LATENCY.read_text()
    title_line = next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith("title:"))
    path = tmp_path / "experiment.yaml"
    path.write_text(text + "title: a second title\n")
    last = len(path.read_text().splitlines())
    refused(
        path, LOCAL_VARS, [f"{path}:{last}:", f"duplicate key 'title', first on line {title_line}"]
    )


def test_a_nested_key_twice_in_the_vars_file_is_refused(
    tmp_path: Path, refused: Callable[..., None]
) -> None:
    vars_file = write_vars(
        tmp_path,
        "configuration:\n  backend: local\n  chaosregistry:\n"
        "    registry_timeout: 10\n    registry_timeout: 5\n",
    )
    refused(
        LATENCY, vars_file, [f"{vars_file}:5:", "duplicate key 'registry_timeout', first on line 4"]
    )


def test_a_key_twice_in_a_json_experiment_is_refused(
    tmp_path: Path, refused: Callable[..., None]
) -> None:
    text = json.dumps(yaml.safe_load(LATENCY.read_text()))
    path = tmp_path / "experiment.json"
    path.write_text(text.replace('"version":', '"tags": [], "version":', 1))
    assert '"tags"' in text  # so the replacement did repeat a key
    refused(path, LOCAL_VARS, [f"{path}:", "duplicate key 'tags'"])


def test_a_merge_key_then_an_override_is_not_a_duplicate(tmp_path: Path) -> None:
    vars_file = write_vars(
        tmp_path,
        "defaults: &defaults {registry_timeout: 10, registry_verify_tls: true}\n"
        "configuration:\n  chaosregistry:\n    <<: *defaults\n    registry_timeout: 5\n",
    )
    # `defaults` is not a vars key: the file parses, then is refused for that reason alone.
    with pytest.raises(ConfigError, match=r"defaults: only 'configuration' and 'secrets'"):
        validate(LATENCY, vars_file)


# -- registry URLs ----------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["registry_url", "mirror_url"])
@pytest.mark.parametrize("url", ["ftp://registry.example", "file:///var/lib/registry"])
def test_a_registry_url_with_another_scheme_is_refused(
    tmp_path: Path, refused: Callable[..., None], key: str, url: str
) -> None:
    vars_file = write_vars(tmp_path, f"configuration:\n  chaosregistry:\n    {key}: {url}\n")
    refused(LATENCY, vars_file, [f"{vars_file}: configuration.chaosregistry.{key}", url])


def test_a_url_set_in_the_experiment_names_the_experiment(
    tmp_path: Path, refused: Callable[..., None]
) -> None:
    def mutate(experiment: dict[str, Any]) -> None:
        experiment["configuration"]["registry_url"] = "ftp://registry.example"

    path = write_experiment(tmp_path, mutate)
    refused(path, LOCAL_VARS, [f"{path}: configuration.registry_url", "ftp://"])


@pytest.mark.parametrize("url", ["https://registry.example:5000", "http://127.0.0.1:15000", ""])
def test_http_and_https_registry_urls_are_valid(tmp_path: Path, url: str) -> None:
    vars_file = write_vars(tmp_path, f"configuration:\n  chaosregistry:\n    mirror_url: '{url}'\n")
    assert validate(LATENCY, vars_file).experiment["title"]


# -- timeouts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["registry_timeout", "kube_timeout"])
@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("-3", "-3"), ("'10'", "'10'")])
def test_a_timeout_that_is_not_a_positive_number_is_refused(
    tmp_path: Path, refused: Callable[..., None], key: str, value: str, shown: str
) -> None:
    vars_file = write_vars(tmp_path, f"configuration:\n  chaosregistry:\n    {key}: {value}\n")
    refused(
        LATENCY,
        vars_file,
        [
            f"{vars_file}: configuration.chaosregistry.{key}",
            f"positive number of seconds, got {shown}",
        ],
    )


@pytest.mark.parametrize("value", ["10", "0.5"])
def test_a_positive_timeout_is_valid(tmp_path: Path, value: str) -> None:
    vars_file = write_vars(
        tmp_path, f"configuration:\n  chaosregistry:\n    registry_timeout: {value}\n"
    )
    assert validate(LATENCY, vars_file).experiment["title"]


def test_every_shipped_experiment_validates_with_every_shipped_vars_file() -> None:
    experiments = sorted((ROOT / "experiments").glob("*.yaml"))
    vars_files = sorted((ROOT / "experiments/vars").glob("*.yaml"))
    assert len(experiments) >= 8 and len(vars_files) >= 2
    for experiment in experiments:
        for vars_file in vars_files:
            assert validate(experiment, vars_file).experiment["title"], (experiment, vars_file)


# -- YAML booleans where a word was meant ------------------------------------------------------
def test_an_unquoted_yaml_boolean_for_a_mode_says_to_quote_it(
    tmp_path: Path, refused: Callable[[Path, Path, list[str]], None]
) -> None:
    text = (ROOT / "experiments/registry-partition.yaml").read_text()
    assert "mode: blackhole" in text
    experiment = tmp_path / "partition.yaml"
    experiment.write_text(text.replace("mode: blackhole", "mode: off"))
    refused(experiment, LOCAL_VARS, ["arguments.mode", "got the boolean False", "quote the word"])


# -- structure: one line, never a traceback ------------------------------------------------------
def _hypothesis_as_text(experiment: dict[str, Any]) -> None:
    experiment["steady-state-hypothesis"] = "the registry is fine"


def _provider_as_text(experiment: dict[str, Any]) -> None:
    experiment["method"][0]["provider"] = "chaosregistry.actions.network.add_latency"


def _configuration_as_list(experiment: dict[str, Any]) -> None:
    experiment["configuration"] = ["registry_url"]


def _secrets_as_list(experiment: dict[str, Any]) -> None:
    experiment["secrets"] = ["registry_password"]


def _integer_key(experiment: dict[str, Any]) -> None:
    experiment["method"][0]["provider"]["arguments"][300] = "latency"


def _method_entry_as_text(experiment: dict[str, Any]) -> None:
    experiment["method"][1] = "add latency"


def _probes_null(experiment: dict[str, Any]) -> None:
    experiment["steady-state-hypothesis"]["probes"] = None


def _not_an_activity_module(experiment: dict[str, Any]) -> None:
    # Importing it would monkey-patch the validating process (gevent): never imported.
    experiment["method"][0]["provider"]["module"] = "chaosregistry.loadgen.locustfile"


def _unknown_tolerance_target(experiment: dict[str, Any]) -> None:
    experiment["steady-state-hypothesis"]["probes"][1]["tolerance"]["target"] = "sucess_ratio"


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (_hypothesis_as_text, ["steady-state-hypothesis must be a mapping", "not str"]),
        (_provider_as_text, ["method[0].provider must be a mapping", "not str"]),
        (_configuration_as_list, ["configuration must be a mapping", "not list"]),
        (_secrets_as_list, ["secrets must be a mapping", "not list"]),
        (_integer_key, ["method[0].provider.arguments: the key 300 is not a name (int)"]),
        (_method_entry_as_text, ["method[1] must be a mapping", "'add latency'"]),
        (_probes_null, ["steady-state-hypothesis.probes must be a list, not null"]),
        (_not_an_activity_module, ["method[0]", "provider.module", "not an activity module"]),
        (
            _unknown_tolerance_target,
            [
                "steady-state-hypothesis.probes[1] (every-pull-succeeds).tolerance.target",
                "pull_latency returns no key 'sucess_ratio'",
                "success_ratio",
            ],
        ),
    ],
)
def test_a_structural_mistake_is_one_line_naming_the_field(
    tmp_path: Path,
    refused: Callable[..., None],
    mutate: Callable[[dict[str, Any]], None],
    fragments: list[str],
) -> None:
    path = write_experiment(tmp_path, mutate)
    refused(path, LOCAL_VARS, [f"{path}: ", *fragments])


def test_a_secrets_scope_given_as_a_list_in_the_vars_file_is_one_line(
    tmp_path: Path, refused: Callable[..., None]
) -> None:
    vars_file = write_vars(tmp_path, "secrets:\n  registry: [registry_password]\n")
    refused(LATENCY, vars_file, [f"{vars_file}: secrets.registry must be a mapping"])


# -- YAML loading is bounded --------------------------------------------------------------------
BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{','.join(['*' + previous] * 9)}]"
            for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (BILLION_LAUGHS, "over 100000 values once its aliases are expanded"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
        ("a: &a [*a]\n", "refers to the node that contains it"),
        ("title: " + "x" * (1024 * 1024) + "\n", "more than 1048576 bytes"),
    ],
    ids=["billion-laughs", "deep", "recursive-alias", "too-large"],
)
def test_a_yaml_bomb_is_refused_in_one_line(
    tmp_path: Path, refused: Callable[..., None], text: str, fragment: str
) -> None:
    assert len(BILLION_LAUGHS) < 700  # the size of the file that once ran for minutes
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    refused(path, LOCAL_VARS, [f"{path}", fragment])


def test_a_deeply_nested_json_experiment_is_refused_in_one_line(
    tmp_path: Path, refused: Callable[..., None]
) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"a": ' + "[" * 100 + "]" * 100 + "}")
    refused(path, LOCAL_VARS, [f"{path}", "nested deeper than 64 levels"])
