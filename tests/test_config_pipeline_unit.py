"""One configuration pipeline: Prometheus's keys are part of the typed settings, and the game
day runs on the settings validation parsed, given its sandbox, never on a reparsed copy."""

import json
from pathlib import Path

import pytest

from chaosregistry.experiment.settings import SettingError, parse_settings, settings_for

pytestmark = pytest.mark.unit


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
