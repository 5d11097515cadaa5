"""Reports of REAL game days: ``chaosregistry gameday`` runs the real ``chaos run`` on the
sandbox (two short runs shared by the module), then the report's figures, summary and JUnit are
checked against the journal and gameday.json they came from, and the page is opened in
headless Chromium with the network cut off.
"""

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.gameday import run_shipped_experiment
from support.sandbox import SandboxInfo

from chaosregistry.reports import ReportResult, build_report, build_trend
from chaosregistry.reports.figures import TimeChart
from chaosregistry.reports.inputs import parse_time

ROOT = Path(__file__).resolve().parents[2]
CHAOSREGISTRY = str(Path(sys.executable).with_name("chaosregistry"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class GameDay:
    """One real game day and the report built from it."""

    exit_code: int
    run_dir: Path
    journal: dict[str, Any]
    gameday: dict[str, Any]
    report: ReportResult

    def chart(self, chart_id: str) -> TimeChart:
        for chart in self.report.charts[0]:
            if chart.chart_id == chart_id and isinstance(chart, TimeChart):
                return chart
        raise KeyError(chart_id)


def run_gameday(sandbox: SandboxInfo, base: Path, name: str, **overrides: Any) -> GameDay:
    """experiments/<name>.yaml through ``chaosregistry gameday`` with shorter faults."""
    process, run_dir = run_shipped_experiment(sandbox.run_dir, base, name, **overrides)
    report = build_report([run_dir / "journal.json"], base / "report")
    return GameDay(
        process.returncode,
        run_dir,
        json.loads((run_dir / "journal.json").read_text()),
        json.loads((run_dir / "gameday.json").read_text()),
        report,
    )


@pytest.fixture(scope="module")
def latency(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GameDay]:
    """registry-latency with an 8 s fault: passes; its method samples pulls under the fault."""
    yield run_gameday(
        sandbox, tmp_path_factory.mktemp("latency"), "registry-latency", fault_duration=8
    )


@pytest.fixture(scope="module")
def blackhole(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GameDay]:
    """mirror-upstream-outage with a black-holed upstream: deviates during the cut."""
    yield run_gameday(
        sandbox,
        tmp_path_factory.mktemp("blackhole"),
        "mirror-upstream-outage",
        fault_duration=10,
        cut_mode="blackhole",
    )


def outputs(journal: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in journal["run"] if r["activity"]["name"] == name]


def middle(run: dict[str, Any], origin: float) -> float:
    start, end = parse_time(run["start"]), parse_time(run["end"])
    assert start is not None and end is not None
    return (start + end) / 2 - origin


def test_the_report_verdict_is_the_game_day_exit_code(latency: GameDay, blackhole: GameDay) -> None:
    assert (latency.exit_code, latency.report.exit_code, latency.report.verdict) == (0, 0, "passed")
    assert (blackhole.exit_code, blackhole.report.exit_code) == (10, 10)
    assert blackhole.report.verdict == blackhole.gameday["verdict"] == "deviated"


def test_latency_chart_series_are_the_journal_values(latency: GameDay) -> None:
    journal = latency.journal
    origin = parse_time(journal["start"])
    assert origin is not None
    chart = latency.chart("probe-pull-p95-within-budget")
    assert chart.origin == origin
    before_run = journal["steady_states"]["before"]["probes"][0]
    after_run = journal["steady_states"]["after"]["probes"][0]
    (before,) = chart.series_by_role("before")
    (after,) = chart.series_by_role("after")
    assert before.y == (before_run["output"]["p95"],)
    assert before.x == pytest.approx((middle(before_run, origin),))
    assert after.y == (after_run["output"]["p95"],)
    samples = outputs(journal, "pulls-during-latency")
    (method,) = chart.series_by_role("method")
    assert method.y == tuple(s["output"]["p95"] for s in samples)
    assert method.x == pytest.approx(tuple(middle(s, origin) for s in samples))
    # The first sample ran with 300 ms on every round trip: far outside the 0.25 s budget.
    assert method.y[0] is not None and method.y[0] > 0.5


def test_fault_windows_are_the_ledger_timestamps(latency: GameDay, blackhole: GameDay) -> None:
    for game in (latency, blackhole):
        (fault,) = game.gameday["faults"]
        origin = parse_time(game.journal["start"])
        assert origin is not None
        for chart in game.report.charts[0]:
            if not isinstance(chart, TimeChart):
                continue
            (window,) = chart.windows
            assert window.start + origin == pytest.approx(fault["injected_at"], abs=1e-6)
            assert window.end + origin == pytest.approx(fault["reverted_at"], abs=1e-6)
            assert fault["kind"] in window.label


def test_tolerance_bands_are_the_experiments_tolerances(
    latency: GameDay, blackhole: GameDay
) -> None:
    declared = {
        p["name"]: p["tolerance"]["range"]
        for game in (latency, blackhole)
        for p in game.journal["experiment"]["steady-state-hypothesis"]["probes"]
    }
    checked = 0
    for game in (latency, blackhole):
        for name, (low, high) in declared.items():
            try:
                chart = game.chart(f"probe-{name}")
            except KeyError:
                continue
            assert chart.band is not None and (chart.band.low, chart.band.high) == (low, high)
            checked += 1
    assert checked == 3


def test_blackhole_during_checks_show_the_deviation(blackhole: GameDay) -> None:
    journal = blackhole.journal
    chart = blackhole.chart("probe-cached-image-pulls-through-mirror")
    (during,) = chart.series_by_role("during")
    checks = [c["probes"][0] for c in journal["steady_states"]["during"]]
    assert during.y == tuple(c["output"]["success_ratio"] for c in checks)
    assert min(v for v in during.y if v is not None) < 1.0
    (probe,) = blackhole.report.summary["runs"][0]["probes"]
    failed = sum(1 for c in checks if not c["tolerance_met"])
    assert probe["during"]["checks"] == len(checks) and probe["during"]["checks_failed"] == failed
    assert failed >= 1 and probe["held"] is False and probe["deviated"] is True
    assert probe["before"]["met"] is True and probe["after"]["met"] is True
    assert probe["deviation_percent"] < 0
    root = ET.parse(blackhole.report.junit_xml).getroot()
    failure = root.find(
        ".//testcase[@name='steady state: cached-image-pulls-through-mirror']/failure"
    )
    assert failure is not None
    assert failure.get("message", "").startswith(
        f"during: {failed} of {len(checks)} checks outside"
    )
    assert blackhole.report.score is not None and blackhole.report.score <= 80.0
    assert "deviated (exit 10)" in blackhole.report.summary_md.read_text()


def test_summary_json_follows_the_documented_schema(latency: GameDay) -> None:
    summary = json.loads(latency.report.summary_json.read_text())
    assert set(summary) == {
        "schema_version",
        "generator",
        "generated_at",
        "verdict",
        "exit_code",
        "score",
        "runs",
    }
    assert summary["schema_version"] == 2
    (run,) = summary["runs"]
    assert set(run) == {
        "journal",
        "verdict",
        "exit_code",
        "score",
        "recovery",
        "probes",
        "method_probes",
        "prometheus_series",
        "faults",
        "loads",
        "load_series",
        "load_pulls",
        "rollbacks",
        "failed_activities",
        "metadata",
        "notes",
        "verdict_notes",
        "evidence",
        "fault_evidence",
        "charts",
        "blast_radius",
    }
    assert run["blast_radius"] == []  # this experiment predicts nothing
    assert [set(item) for item in run["evidence"]] == [{"name", "proven", "detail"}] * 4
    assert set(run["score"]) == {
        "value",
        "probe_score",
        "held_weight",
        "total_weight",
        "recovery_penalty",
        "formula",
        "worked",
    }
    for probe in run["probes"]:
        assert set(probe) == {
            "name",
            "metric",
            "weight",
            "tolerance",
            "before",
            "during",
            "after",
            "held",
            "deviated",
            "deviation",
            "deviation_percent",
            "after_deviation_percent",
            "time_to_recover_seconds",
            "recovered",
        }
        assert set(probe["before"]) == set(probe["after"]) == {"value", "met", "at", "error"}
    p95 = run["probes"][0]
    before = latency.journal["steady_states"]["before"]["probes"][0]["output"]["p95"]
    worst = max(
        s["output"]["p95"]
        for s in outputs(latency.journal, "pulls-during-latency")
        if s["output"]["p95"] is not None and s["output"]["p95"] > 0.25
    )
    assert p95["before"]["value"] == before
    assert p95["during"]["worst"] >= worst
    assert p95["deviation_percent"] == pytest.approx(
        round(100 * (p95["during"]["worst"] - before) / before, 2)
    )
    (fault,) = run["faults"]
    ledger = latency.gameday["faults"][0]
    assert (fault["id"], fault["state"], fault["revert_reason"]) == (
        ledger["id"],
        ledger["state"],
        ledger["revert_reason"],
    )
    assert fault["left_behind"] is False
    assert [r["name"] for r in run["rollbacks"]] == [
        r["activity"]["name"] for r in latency.journal["rollbacks"]
    ]
    assert run["recovery"]["recovered"] is True
    assert run["metadata"]["experiment_file"].endswith("registry-latency.yaml")
    assert {c["id"] for c in run["charts"]} >= {
        "probe-pull-p95-within-budget",
        "probe-every-pull-succeeds",
    }


def test_report_command_on_a_real_journal_exits_with_the_verdict(
    blackhole: GameDay, tmp_path: Path
) -> None:
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaosregistry.reports",
            "report",
            str(blackhole.run_dir / "journal.json"),
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert process.returncode == 10, process.stderr
    assert process.stdout.startswith("report: deviated (exit 10), score ")
    assert str(tmp_path / "report.html") in process.stdout
    assert {p.name for p in tmp_path.iterdir()} == {
        "report.html",
        "summary.json",
        "junit.xml",
        "summary.md",
    }


def test_trend_over_the_real_runs(latency: GameDay, blackhole: GameDay, tmp_path: Path) -> None:
    for game in (latency, blackhole):
        shutil.copy(game.report.summary_json, game.run_dir / "summary.json")
    result = build_trend([blackhole.run_dir, latency.run_dir], tmp_path)
    starts = [r["start"] for r in result.trend["runs"]]
    assert starts == sorted(starts) and len(starts) == 2
    score_chart = next(c for c in result.charts if c.chart_id == "trend-score")
    assert len(score_chart.series) == 2  # one line per experiment


def _page_requests(net_log: Path) -> list[str]:
    """URLs the PAGE asked for (not Chromium's own background requests), from its net log."""
    data = json.loads(net_log.read_text())
    start_job = data["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in data["events"]:
        params = event.get("params") or {}
        # Chromium's updater and sign-in probes run with no origin; a page's are its own.
        if (
            event["type"] == start_job
            and "url" in params
            and params.get("initiator") != "not an origin"
        ):
            urls.append(params["url"])
    return urls


def open_offline(page: Path, work: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium with every host unresolvable and a dead proxy."""
    work.mkdir(parents=True, exist_ok=True)
    net_log = work / "netlog.json"
    process = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={work / 'profile'}",
            "--proxy-server=127.0.0.1:1",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--log-net-log={net_log}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    return process.stdout, _page_requests(net_log)


def test_report_html_renders_offline_in_headless_chromium(
    blackhole: GameDay, tmp_path: Path
) -> None:
    # The check itself must be able to fail: a page with one remote image is caught.
    control = tmp_path / "control.html"
    control.write_text('<!doctype html><p>x</p><img src="http://example.invalid/chart.png">')
    _, control_requests = open_offline(control, tmp_path / "control")
    assert control_requests == ["http://example.invalid/chart.png"]

    dom, requests = open_offline(blackhole.report.html, tmp_path / "report")
    assert requests == []
    charts = blackhole.report.summary["runs"][0]["charts"]
    assert len(charts) >= 3
    assert dom.count("<svg") == len(charts)
    for chart in charts:
        assert f'id="svg-{chart["id"]}"' in dom
    assert dom.count("<img") == 0 and "<script" not in dom
    assert 'id="verdict"' in dom and "deviated" in dom
    assert "Exit codes: 0 passed" in dom  # the footer: the page loaded to its end
