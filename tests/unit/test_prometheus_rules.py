"""The shipped rules file passes ``promtool check rules``; a broken one, or invalid PromQL in an
experiment, is refused in one line naming the file and the field, before anything starts."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from test_validate_unit import LOCAL_VARS, refused, write_experiment  # noqa: F401 (fixture)

from chaosregistry.experiment.validate import validate
from chaosregistry.observability.promql import check_expression, check_rules_file, promtool
from chaosregistry.sandbox.monitoring import RULES_FILE


def test_promtool_is_installed_by_make_setup() -> None:
    assert promtool() is not None, "make setup installs Debian's prometheus package (promtool)"


def test_the_shipped_rules_file_passes_promtool() -> None:
    assert RULES_FILE.is_file()
    assert check_rules_file(RULES_FILE) is None
    rules = yaml.safe_load(RULES_FILE.read_text())["groups"]
    recorded = {rule["record"] for group in rules for rule in group["rules"] if "record" in rule}
    assert {
        "chaosregistry:pull_duration_seconds:p99_30s",
        "chaosregistry:deploy_success:ratio_10m",
        "chaosregistry:mirror_cache_hit:ratio_30s",
    } <= recorded
    assert any("alert" in rule for group in rules for rule in group["rules"])


def test_a_broken_rules_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules.yml"
    text = RULES_FILE.read_text().replace("[30s])))", "[30s]))", 1)
    assert text != RULES_FILE.read_text()
    broken.write_text(text)
    problem = check_rules_file(broken)
    assert problem is not None and "\n" not in problem
    assert str(broken) in problem and "parse" in problem, problem


def test_promql_expressions_are_checked_by_promtool() -> None:
    assert check_expression('sum(rate(x{a="b"}[1m]))') is None
    assert check_expression("sum(rate(x[1m])") == (
        "invalid PromQL: 1:16: parse error: unclosed left parenthesis"
    )
    assert check_expression("") == "must be a PromQL expression"


def add_prometheus_probe(query: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(experiment: dict[str, Any]) -> None:
        experiment["method"].append(
            {
                "type": "probe",
                "name": "slo-during",
                "provider": {
                    "type": "python",
                    "module": "chaosregistry.probes.prometheus",
                    "func": "prometheus_query",
                    "arguments": {"query": query},
                },
            }
        )

    return mutate


def test_invalid_promql_in_an_experiment_is_refused_before_anything_starts(
    tmp_path: Path,
    refused: Callable[..., None],  # noqa: F811
) -> None:
    path = write_experiment(tmp_path, add_prometheus_probe("histogram_quantile(0.99, sum(x)"))
    refused(
        path,
        LOCAL_VARS,
        [
            f"{path}: method[",
            "(slo-during).arguments.query: invalid PromQL: ",
            "unclosed left parenthesis",
        ],
    )


def test_valid_promql_in_an_experiment_passes(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, add_prometheus_probe("up == 1"))
    assert validate(path, LOCAL_VARS).experiment["title"]


def add_alerts_probe(**arguments: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(experiment: dict[str, Any]) -> None:
        experiment["method"].append(
            {
                "type": "probe",
                "name": "alert-pages",
                "tolerance": {"type": "range", "range": [1, 1], "target": "value"},
                "provider": {
                    "type": "python",
                    "module": "chaosregistry.probes.prometheus",
                    "func": "prometheus_alerts",
                    "arguments": arguments,
                },
            }
        )

    return mutate


def test_a_broken_rules_file_named_by_an_experiment_is_refused_naming_file_and_field(
    tmp_path: Path,
    refused: Callable[..., None],  # noqa: F811
) -> None:
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(RULES_FILE.read_text().replace("[30s])))", "[30s]))", 1))
    path = write_experiment(tmp_path, add_alerts_probe(rules_file=str(broken)))
    refused(
        path,
        LOCAL_VARS,
        [f"{path}: method[", f"(alert-pages).arguments.rules_file: {broken}: promtool check rules"],
    )
    missing = tmp_path / "missing.rules.yml"
    path = write_experiment(tmp_path, add_alerts_probe(rules_file=str(missing)))
    refused(path, LOCAL_VARS, [f"(alert-pages).arguments.rules_file: {missing}: cannot read"])
    recording_only = tmp_path / "recording.rules.yml"
    recording_only.write_text("groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n")
    path = write_experiment(tmp_path, add_alerts_probe(rules_file=str(recording_only)))
    refused(path, LOCAL_VARS, [f"{recording_only}: the rules file defines no alert"])
    path = write_experiment(tmp_path, add_alerts_probe(alerts="RegistryPullP99OverSLO"))
    refused(path, LOCAL_VARS, ["(alert-pages).arguments.alerts: must be a list of names"])


def test_the_shipped_rules_file_named_by_an_experiment_passes(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, add_alerts_probe(rules_file=str(RULES_FILE)))
    assert validate(path, LOCAL_VARS).experiment["title"]


def test_a_bad_prometheus_url_in_the_vars_file_is_refused_naming_file_and_key(
    tmp_path: Path,
    refused: Callable[..., None],  # noqa: F811
) -> None:
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text(
        "configuration:\n  backend: local\n  chaosregistry:\n    prometheus_url: ftp://prom:9090\n"
    )
    path = write_experiment(tmp_path, add_prometheus_probe("up"))
    refused(path, vars_file, [f"{vars_file}: configuration.chaosregistry.prometheus_url: "])
