"""A load node's back-off after failed pulls (``chaosregistry.loadgen.pacing``), the arguments
that set it (the action's contract, Locust's command line) and the report's attempt rate.

The real Locust load under a real fault, with and without back-off, is in
tests/sandbox/test_load_backoff.py.
"""

import inspect
import json
import random
from pathlib import Path
from typing import Any

import pytest
from support.reports import T0, gameday, journal, write_run

from chaosregistry.actions.load import start_pull_load
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.contracts import argument_problem
from chaosregistry.experiment.settings import RegistryTarget
from chaosregistry.loadgen import records
from chaosregistry.loadgen.command import locust_command
from chaosregistry.loadgen.pacing import DEFAULT_BACKOFF, Backoff, next_wait
from chaosregistry.loadgen.parameters import LoadParameters
from chaosregistry.reports import build_report, build_summary


# -- the schedule -----------------------------------------------------------------------------
def test_the_ceiling_doubles_from_the_base_to_the_cap_and_resets_without_failures() -> None:
    backoff = Backoff(base=0.05, cap=1.0)
    assert [backoff.ceiling(n) for n in range(0, 8)] == [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.ceiling(10_000) == 1.0  # no overflow however long the outage


def test_each_wait_is_jittered_between_half_the_ceiling_and_the_ceiling() -> None:
    backoff = Backoff(base=0.1, cap=2.0)
    rng = random.Random(7)
    for failures in (1, 3, 5, 9):
        ceiling = backoff.ceiling(failures)
        waits = [backoff.wait(failures, rng) for _ in range(2000)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits), failures
        assert backoff.floor(failures) == ceiling / 2
        # Spread over the whole interval, not one value: nodes that failed together drift apart.
        assert min(waits) < ceiling * 0.52 and max(waits) > ceiling * 0.98
        assert len(set(waits)) == len(waits)
    assert backoff.wait(0, rng) == 0.0


def test_two_nodes_failing_in_step_do_not_retry_in_step() -> None:
    backoff = Backoff()
    first, second = random.Random(1), random.Random(2)
    moments_a = moments_b = 0.0
    gaps = []
    for failures in range(1, 12):
        moments_a += backoff.wait(failures, first)
        moments_b += backoff.wait(failures, second)
        gaps.append(abs(moments_a - moments_b))
    assert max(gaps) > 0.1


def test_without_backoff_a_node_retries_at_once() -> None:
    flood = Backoff(enabled=False)
    rng = random.Random(0)
    assert [flood.wait(n, rng) for n in range(0, 20)] == [0.0] * 20
    assert flood.ceiling(5) == 0.0


def test_the_expected_attempt_rate_of_a_capped_node_is_about_one_over_three_quarters_cap() -> None:
    """What the sandbox test measures, from the schedule alone: at the cap a failing node waits
    0.75 cap on average, so it makes at most 2 / cap attempts a second and about 1.33 / cap."""
    backoff = Backoff(base=0.05, cap=1.0)
    rng = random.Random(11)
    waited = sum(backoff.wait(failures, rng) for failures in range(1, 601))
    assert 590 / waited == pytest.approx(1 / 0.75, rel=0.05)


@pytest.mark.parametrize(
    ("enabled", "base", "cap", "fragment"),
    [
        (True, 2.0, 1.0, "backoff_base (2 s) must not exceed backoff_cap (1 s)"),
        (True, 0, 1.0, "backoff_base must be a positive number of seconds, got 0"),
        (True, 0.05, -1, "backoff_cap must be a positive number of seconds"),
        (True, 0.05, 301, "backoff_cap must be at most 300 seconds"),
        (True, "fast", 1.0, "backoff_base must be a positive number of seconds, got str"),
        (True, 0.05, True, "backoff_cap must be a positive number of seconds, got bool"),
        (True, float("nan"), 1.0, "backoff_base must be a number > 0 and <= 300 seconds"),
        ("yes", 0.05, 1.0, "backoff must be true or false"),
    ],
)
def test_a_bad_backoff_is_one_line_naming_the_argument(
    enabled: Any, base: Any, cap: Any, fragment: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        Backoff.check(enabled=enabled, base=base, cap=cap)
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


# -- the pull interval ------------------------------------------------------------------------
def test_an_interval_waits_out_what_the_pull_left_of_it_and_never_shortens_a_back_off() -> None:
    rng = random.Random(7)
    backoff = Backoff(base=0.05, cap=1.0)
    assert next_wait(backoff, 0, rng) == 0.0  # back to back by default
    assert next_wait(backoff, 0, rng, pull_interval=0.5, pull_seconds=0.2) == pytest.approx(0.3)
    assert next_wait(backoff, 0, rng, pull_interval=0.5, pull_seconds=0.8) == 0.0  # behind
    # After failures the longer of the two: the back-off's ceiling here is 1 s.
    waits = [next_wait(backoff, 9, rng, pull_interval=0.1, pull_seconds=0.0) for _ in range(50)]
    assert all(0.5 <= wait <= 1.0 for wait in waits)
    assert next_wait(backoff, 9, rng, pull_interval=5.0, pull_seconds=1.0) == 4.0


@pytest.mark.parametrize("value", [-0.1, 301, float("nan"), "fast", True, None])
def test_a_bad_pull_interval_is_one_line_naming_the_argument(value: Any) -> None:
    with pytest.raises(ConfigError) as raised:
        parameters(pull_interval=value)
    assert "pull_interval" in str(raised.value) and "\n" not in str(raised.value)
    problem = argument_problem(
        inspect.signature(start_pull_load).parameters["pull_interval"], value
    )
    assert problem is not None


def test_the_load_passes_its_pull_interval_to_locust_and_defaults_to_none() -> None:
    registry = RegistryTarget("https://127.0.0.1:1", None, True, 10.0)

    def flag(load: LoadParameters) -> str:
        command = locust_command(load, registry, Path("/tmp/stats"), "tag", None)
        return command[command.index("--pull-interval") + 1]

    assert parameters().pull_interval == 0.0 and flag(parameters()) == "0"
    assert flag(parameters(pull_interval=0.25)) == "0.25"


# -- the arguments ----------------------------------------------------------------------------
def parameters(**backoff: Any) -> LoadParameters:
    return LoadParameters.check(
        users=2, spawn_rate=2, duration=5, processes=1, target="registry", mode="warm",
        platform="linux/amd64", verify=True, blob_concurrency=3, fresh_images=4, **backoff,
    )  # fmt: skip


def test_the_load_passes_its_backoff_to_locust_and_defaults_to_on() -> None:
    registry = RegistryTarget("https://127.0.0.1:1", None, True, 10.0)

    def flags(load: LoadParameters) -> dict[str, str]:
        command = locust_command(load, registry, Path("/tmp/stats"), "tag", None)
        names = ("--backoff", "--backoff-base", "--backoff-cap")
        return {name: command[command.index(name) + 1] for name in names}

    assert parameters().backoff == DEFAULT_BACKOFF == Backoff(True, 0.05, 1.0)
    assert flags(parameters()) == {"--backoff": "true", "--backoff-base": "0.05",
                                   "--backoff-cap": "1"}  # fmt: skip
    flood = parameters(backoff=False, backoff_base=0.2, backoff_cap=5)
    assert flags(flood) == {"--backoff": "false", "--backoff-base": "0.2", "--backoff-cap": "5"}
    with pytest.raises(ConfigError, match="must not exceed backoff_cap"):
        parameters(backoff_base=3.0, backoff_cap=1.0)


def test_the_action_declares_its_backoff_arguments_for_validate_and_discovery() -> None:
    signature = inspect.signature(start_pull_load)
    backoff = signature.parameters["backoff"]
    base, cap = signature.parameters["backoff_base"], signature.parameters["backoff_cap"]
    assert backoff.default is True and base.default == 0.05 and cap.default == 1.0
    assert argument_problem(backoff, "on") is not None
    assert argument_problem(base, 0) is not None
    assert argument_problem(cap, 301) is not None
    assert argument_problem(cap, "soon") is not None
    assert argument_problem(cap, 30) is None and argument_problem(backoff, False) is None


def test_discovery_reports_the_backoff_arguments_with_their_domains() -> None:
    from chaosregistry import discover

    (load,) = [a for a in discover()["activities"] if a["name"] == "start_pull_load"]
    arguments = {a["name"]: a for a in load["arguments"]}
    assert arguments["backoff"]["type"] == "boolean"
    assert arguments["backoff_cap"]["type"] == "number"
    assert "300" in arguments["backoff_cap"]["domain"]
    assert "seconds" in arguments["backoff_base"]["domain"]


# -- the report -------------------------------------------------------------------------------
def failing_then_healthy_load() -> list[dict[str, Any]]:
    """24 good pulls a second, except 5 failed attempts a second from 3 s to 15 s."""
    pulls = []
    for second in range(30):
        failing = 3 <= second < 15
        count = 5 if failing else 24
        for k in range(count):
            start = T0 + second + k / count
            pulls.append(
                {
                    "start": start,
                    "end": start + 0.01,
                    "duration": 0.01,
                    "ok": not failing,
                    "error": "auth" if failing else None,
                    "interrupted": False,
                }
            )
    return pulls


def test_the_report_shows_attempts_against_successful_pulls_per_second(tmp_path: Path) -> None:
    # The load starts 3 s before its first pull (Locust's start-up) and ends 2 s after its last
    # (its stop): no part of any rate.
    series = records.timeseries(failing_then_healthy_load(), start=T0 - 3, end=T0 + 32)
    stats = tmp_path / "run" / "load" / "load-1"
    stats.mkdir(parents=True)
    (stats / "timeseries.json").write_text(json.dumps(series))
    path = write_run(tmp_path / "run", journal(), gameday())

    summary, _, charts = build_summary([path])
    (load,) = summary["runs"][0]["load_series"]
    assert load["before"]["attempts_per_second"] == 24.0
    assert load["before"]["pulls_per_second"] == 24.0
    assert load["after"]["attempts_per_second"] == load["after"]["pulls_per_second"] == 24.0
    during = load["during"]
    assert during["failed"] == 60
    assert during["attempts_per_second"] == (during["completed"] + 60) / during["seconds"]
    assert during["pulls_per_second"] == during["completed"] / during["seconds"]
    assert during["pulls_per_second"] < during["attempts_per_second"] < 24.0

    (rate,) = [c for c in charts[0] if c.chart_id == "load-rate-load-1"]
    attempts, pulls = rate.series
    assert [attempts.role, pulls.role] == ["attempts", "pulls"]
    assert attempts.y[:3] == pulls.y[:3] == (0.0, 0.0, 0.0)  # Locust starting
    assert attempts.y[3 + 5] == 5.0 and pulls.y[3 + 5] == 0.0  # a second inside the fault
    assert attempts.y[3 + 20] == pulls.y[3 + 20] == 24.0
    assert rate.windows and attempts.x[3] == 0.5

    result = build_report([path], tmp_path / "out")
    html = result.html.read_text()
    assert "before: attempts/s / successful pulls/s" in html
    assert "24 / 24" in html
    markdown = result.summary_md.read_text()
    assert "attempts/s / successful pulls/s: before 24 / 24;" in markdown
