"""The Prometheus experiments through the real ``chaosregistry gameday`` on the sandbox: the SLO
game day (p99 breached during the latency, met after; the alert fires and resolves), the mirror's
cache hit ratio under a cold storm, and a game day whose Prometheus is unreachable."""

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.gameday import PACED_LOAD, ROOT, run_shipped_experiment
from support.sandbox import SandboxInfo, running_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxInfo]:
    """A sandbox of this module's own, not the worker's session one: these game days judge
    Prometheus' windows (15 s, 30 s), which on a shared sandbox hold the pulls of whatever test
    ran there just before (a latency test's put the SLO game day's healthy p99 at 1.9 s)."""
    with running_sandbox(tmp_path_factory.mktemp("prometheus-gameday")) as own:
        yield own


def method_outputs(journal: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r["output"] for r in journal["run"] if r["activity"]["name"] == name]


def hypothesis(journal: dict[str, Any], phase: str, name: str) -> dict[str, Any]:
    (found,) = [
        p for p in journal["steady_states"][phase]["probes"] if p["activity"]["name"] == name
    ]
    output: dict[str, Any] = found["output"]
    return output


def test_the_slo_game_day_breaches_the_p99_slo_during_latency_and_meets_it_after(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    process, run_dir = run_shipped_experiment(
        sandbox.run_dir, tmp_path, "registry-latency-slo", load_pull_interval=PACED_LOAD
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, output
    journal = json.loads((run_dir / "journal.json").read_text())
    for phase in ("before", "after"):
        p99 = hypothesis(journal, phase, "pull-p99-within-slo")
        assert isinstance(p99["value"], float) and p99["value"] <= 0.5, (phase, p99)
    (during,) = method_outputs(journal, "p99-during-latency")
    assert isinstance(during["value"], float) and during["value"] > 0.5, during
    (firing,) = method_outputs(journal, "pull-slo-alert-during-latency")
    assert firing["firing"] == ["RegistryPullP99OverSLO"] and firing["value"] == 1.0, firing
    (resolved,) = method_outputs(journal, "pull-slo-alert-after-recovery")
    assert resolved["ok"] is True and resolved["value"] == 0.0, resolved
    assert resolved["firing"] == [] and len(resolved["rules"]) == 2, resolved

    # The report's series, read before the sandbox's Prometheus could go: the recorded p99
    # crossed the SLO during the run and ended under it.
    captured = json.loads((run_dir / "prometheus.json").read_text())
    by_name = {s["name"]: s for s in captured["series"]}
    (line,) = by_name["p99 pull time"]["series"]
    values = [v for _, v in line["points"] if v is not None]
    assert max(values) > 0.5 and values[-1] <= 0.5, values
    html = (run_dir / "report.html").read_text()
    assert "Prometheus: p99 pull time" in html and "SLO 0.5s" in html
    # The same series against the fault window, as figures: beyond the SLO under the fault.
    (run,) = json.loads((run_dir / "summary.json").read_text())["runs"]
    figures = {s["name"]: s for s in run["prometheus_series"]}
    p99 = figures["p99 pull time"]
    assert p99["during_max"] > 0.5 and p99["seconds_over_slo_during"] > 0, p99
    assert figures["pull error budget burn rate"]["error"] is None


def test_the_mirror_hit_ratio_falls_under_a_cold_storm_and_recovers(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    process, run_dir = run_shipped_experiment(sandbox.run_dir, tmp_path, "mirror-cache-hit-ratio")
    output = process.stdout + process.stderr
    assert process.returncode == 0, output
    journal = json.loads((run_dir / "journal.json").read_text())
    before = hypothesis(journal, "before", "mirror-hit-ratio")
    after = hypothesis(journal, "after", "mirror-hit-ratio")
    (during,) = method_outputs(journal, "hit-ratio-during-storm")
    assert before["method"] == during["method"] == "derived"  # the session sandbox runs 2.8
    assert "2.8" in before["method_note"]
    for ratio in (before, after):
        assert isinstance(ratio["value"], float) and ratio["value"] >= 0.8, ratio
    # A cold storm on 2.8: the upstream serves more blob GETs than the mirror (a fetch per
    # concurrent miss), so the derived ratio is floored at 0.
    assert isinstance(during["value"], float) and 0 <= during["value"] < 0.5, during
    assert (run_dir / "prometheus.json").is_file()


def test_a_game_day_whose_prometheus_is_unreachable_is_failed_with_a_note(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process, run_dir = run_shipped_experiment(
        tmp_path / "no-sandbox",
        tmp_path,
        "prometheus-unreachable",
        ROOT / "tests/data/prometheus-unreachable.yaml",
        chaosregistry={"prometheus_url": f"http://127.0.0.1:{port}"},
    )
    output = process.stdout + process.stderr
    assert process.returncode == 11, output
    assert "Traceback" not in output
    assert (
        f"note: probe 'p99-within-slo': Prometheus gave no answer (refused: Prometheus "
        f"http://127.0.0.1:{port}/api/v1/query: cannot connect" in output
    ), output
    assert "verdict: failed (exit 11)" in output
    journal = json.loads((run_dir / "journal.json").read_text())
    (result,) = method_outputs(journal, "p99-within-slo")
    assert result["error"]["class"] == "refused" and result["ok"] is False
