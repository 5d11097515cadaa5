"""Reports from hand-made journals: chart data, summary, verdicts, JUnit, redaction, bad input.

Real journals from real game days are in test_reports.py; these cover the edge cases a real
run cannot be made to produce on demand (a fault left behind, an interrupted run, a corrupt
file, a journal carrying secrets).
"""

import json
import math
import random
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from support.reports import (
    FAULT,
    METHOD_SAMPLES,
    P95_PROBE,
    PASSWORD,
    RATIO_PROBE,
    T0,
    TOKEN,
    action_run,
    at,
    gameday,
    journal,
    probe_run,
    pull_output,
    write_run,
)

from chaosregistry.loadgen import records
from chaosregistry.reports import (
    JournalError,
    build_report,
    build_summary,
    build_trend,
    report_exit_code,
)
from chaosregistry.reports.figures import BarChart, TimeChart
from chaosregistry.reports.render import downsample, render_svg
from chaosregistry.reports.score import score

PYTHON = sys.executable


def charts_by_id(result_charts: list[Any]) -> dict[str, Any]:
    return {chart.chart_id: chart for chart in result_charts}


def only_run(summary: dict[str, Any]) -> dict[str, Any]:
    assert len(summary["runs"]) == 1
    run: dict[str, Any] = summary["runs"][0]
    return run


# -- chart data -------------------------------------------------------------------------------
def test_probe_chart_has_before_method_after_series_fault_window_and_band(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run", journal(), gameday())
    _, _, charts = build_summary([path])
    chart = charts_by_id(charts[0])["probe-pull-p95-within-budget"]
    assert isinstance(chart, TimeChart)
    assert chart.origin == T0
    (before,) = chart.series_by_role("before")
    (method,) = chart.series_by_role("method")
    (after,) = chart.series_by_role("after")
    assert before.x == pytest.approx((0.35,)) and before.y == (0.05,)
    assert method.label == "during: pulls-during-latency"
    assert method.x == pytest.approx(tuple((s + e) / 2 for s, e, _ in METHOD_SAMPLES))
    assert method.y == tuple(p for _, _, p in METHOD_SAMPLES)
    assert after.x == pytest.approx((25.25,)) and after.y == (0.06,)
    # The window is the ledger's account (gameday.json), not the action's start and end.
    (window,) = chart.windows
    assert (window.start, window.end) == pytest.approx((2.4, 15.1))
    assert "network.latency" in window.label
    assert chart.band is not None and (chart.band.low, chart.band.high) == (0, 0.25)
    assert chart.y_label == "p95 (s)"
    assert chart.span == (0.0, 30.0)  # every chart of the run spans the whole run


def test_success_ratio_chart_band_is_a_line_at_one(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run", journal(), gameday())
    _, _, charts = build_summary([path])
    chart = charts_by_id(charts[0])["probe-every-pull-succeeds"]
    assert chart.band.low == chart.band.high == 1.0
    assert chart.series_by_role("method")[0].y == (1.0, 1.0, 1.0, 1.0)


def test_without_gameday_json_the_window_ends_when_the_undo_action_reverted_it(
    tmp_path: Path,
) -> None:
    path = write_run(tmp_path / "run", journal())
    summary, _, charts = build_summary([path])
    (window,) = charts_by_id(charts[0])["probe-pull-p95-within-budget"].windows
    assert window.start == pytest.approx(FAULT["injected_at"] - T0)
    assert window.end == pytest.approx(15.2)  # the end of remove-latency, which listed it
    fault = only_run(summary)["faults"][0]
    assert fault["state"] == "reverted" and fault["source"] == "journal"
    assert "undone by remove-latency" in fault["window_end_source"]
    assert any("no gameday.json" in note for note in only_run(summary)["notes"])


def test_without_an_undo_the_window_ends_at_expiry(tmp_path: Path) -> None:
    data = journal()
    data["run"][4]["output"] = {"reverted": [], "count": 0}  # it had expired already
    summary, _, charts = build_summary([write_run(tmp_path / "run", data)])
    (window,) = charts[0][0].windows
    assert window.end == pytest.approx(FAULT["expires_at"] - T0)
    assert only_run(summary)["faults"][0]["state"] == "unknown"


def test_a_foreign_action_is_a_fault_until_the_next_undo_action(tmp_path: Path) -> None:
    data = journal()
    data["run"] = [
        action_run("stress-node", "stress_cpu", {"ok": True}, 3.0, 3.5, module="chaosk8s.node"),
        *data["run"][1:4],
        action_run("uncordon-node", "uncordon_node", None, 14.0, 14.5, module="chaosk8s.node"),
    ]
    summary, _, charts = build_summary([write_run(tmp_path / "run", data)])
    (window,) = charts[0][0].windows
    assert (window.start, window.end) == pytest.approx((3.0, 14.0))
    assert only_run(summary)["faults"][0]["kind"] == "chaosk8s.node.stress_cpu"


def test_continuous_checks_become_the_during_series(tmp_path: Path) -> None:
    data = journal()
    data["steady_states"]["during"] = [
        {
            "steady_state_met": met,
            "probes": [probe_run(P95_PROBE, pull_output(value), start, start + 0.5, met)],
        }
        for start, value, met in ((3.0, 0.1, True), (7.0, 0.4, False), (11.0, 0.2, True))
    ]
    summary, _, charts = build_summary([write_run(tmp_path / "run", data, gameday())])
    chart = charts_by_id(charts[0])["probe-pull-p95-within-budget"]
    (during,) = chart.series_by_role("during")
    assert during.x == pytest.approx((3.25, 7.25, 11.25)) and during.y == (0.1, 0.4, 0.2)
    probe = only_run(summary)["probes"][0]
    assert probe["during"]["checks"] == 3 and probe["during"]["checks_failed"] == 1
    assert probe["during"]["met"] is False and probe["held"] is False
    assert only_run(summary)["verdict"] == "deviated"


def test_a_probe_run_without_a_value_is_marked_missing(tmp_path: Path) -> None:
    data = journal()
    data["run"][2] = probe_run(data["run"][2]["activity"], None, 8.0, 9.0, status="failed")
    data["run"][2]["exception"] = ["Traceback ...", "ActivityFailed: boom\n"]
    _, _, charts = build_summary([write_run(tmp_path / "run", data)])
    chart = charts_by_id(charts[0])["probe-pull-p95-within-budget"]
    assert chart.missing == pytest.approx((8.5,))
    assert chart.series_by_role("method")[0].y[1] is None


def test_phase_bars_compare_baseline_with_pulls_under_the_fault(tmp_path: Path) -> None:
    _, _, charts = build_summary([write_run(tmp_path / "run", journal(), gameday())])
    (bars,) = [c for c in charts[0] if isinstance(c, BarChart)]
    assert bars.categories == ("auth", "manifest", "blobs")
    groups = {g.label: g for g in bars.groups}
    assert groups["baseline"].count == 2  # the two before-probes
    assert groups["under fault"].count == 3
    assert groups["under fault"].values[1] == pytest.approx((0.8 + 0.9 + 0.85) / 3 * 0.3)
    assert groups["baseline"].values[2] == pytest.approx((0.05 + 0.04) / 2 * 0.6)
    assert groups["after"].count == 3  # the method's last sample and the two after-probes


def test_load_charts_follow_the_load_time_series(tmp_path: Path) -> None:
    pulls = []
    for second in range(30):
        slow = 3 <= second < 15
        for k in range(4):
            start = T0 + second + k * 0.2
            duration = 0.7 if slow else 0.05
            failed = slow and k == 0
            pulls.append(
                {
                    "start": start,
                    "end": start + duration,
                    "duration": duration,
                    "ok": not failed,
                    "error": "timeout" if failed else None,
                    "interrupted": False,
                }
            )
    series = records.timeseries(pulls, start=T0, end=T0 + 30)
    stats = tmp_path / "load" / "load-1"
    stats.mkdir(parents=True)
    (stats / "timeseries.json").write_text(json.dumps(series))
    path = write_run(tmp_path, journal(), gameday())
    summary, _, charts = build_summary([path])  # found in <journal dir>/load/* by default
    by_id = charts_by_id(charts[0])
    latency = by_id["load-latency-load-1"]
    assert [s.role for s in latency.series] == ["p50", "p95", "p99"]
    assert latency.series[1].y == tuple(series["p95"])
    assert latency.series[1].x[0] == 0.5  # the middle of the first one-second bucket
    assert latency.windows == by_id["probe-pull-p95-within-budget"].windows
    failures = by_id["load-failures-load-1"].series[0]
    expected = [
        f / (c + f) if c + f else None
        for c, f in zip(series["completed"], series["failed"], strict=True)
    ]
    assert list(failures.y) == expected
    (load,) = only_run(summary)["load_series"]
    assert load["during"]["failed"] > 0 and load["before"]["failed"] == 0
    assert load["recovered"] is True and 0 <= load["time_to_recover_seconds"] <= 2


def test_load_dir_option_points_at_one_load(tmp_path: Path) -> None:
    stats = tmp_path / "elsewhere"
    stats.mkdir()
    series = records.timeseries(
        [{"start": T0 + 1, "end": T0 + 1.1, "duration": 0.1, "ok": True}], start=T0, end=T0 + 3
    )
    (stats / "timeseries.json").write_text(json.dumps(series))
    path = write_run(tmp_path / "run", journal(), gameday())
    summary, _, _ = build_summary([path], load_dir=stats)
    assert [s["load_id"] for s in only_run(summary)["load_series"]] == ["elsewhere"]


# -- downsampling -----------------------------------------------------------------------------
def test_downsampling_keeps_every_columns_extremes() -> None:
    rng = random.Random(3)
    x = [float(i) for i in range(3600)]
    y: list[float | None] = [rng.gauss(0.05, 0.01) for _ in x]
    y[1234], y[2000] = 9.5, -3.0  # spikes
    y[100:110] = [None] * 10
    thin_x, thin_y = downsample(x, y, columns=400)
    assert len(thin_x) <= 3 * 400 < len(x)
    finite = [v for v in thin_y if not math.isnan(v)]
    assert max(finite) == 9.5 and min(finite) == -3.0
    assert (1234.0, 9.5) in zip(thin_x, thin_y, strict=True)
    width = 3599 / 400
    for column in range(400):
        members = [
            v for i, v in enumerate(y) if v is not None and min(399, int(i / width)) == column
        ]
        kept = [
            v
            for xx, v in zip(thin_x, thin_y, strict=True)
            if not math.isnan(v) and min(399, int(xx / width)) == column
        ]
        if members:
            assert max(members) in kept and min(members) in kept
    assert thin_x == sorted(thin_x)
    assert any(math.isnan(v) for v in thin_y)  # the gap still breaks the line


def test_short_series_are_drawn_whole() -> None:
    xs, ys = downsample([2.0, 1.0, 3.0], [0.2, None, 0.3], columns=10)
    assert xs == [1.0, 2.0, 3.0] and math.isnan(ys[0]) and ys[1:] == [0.2, 0.3]


def test_rendered_svg_is_inline_and_fetches_nothing(tmp_path: Path) -> None:
    _, _, charts = build_summary([write_run(tmp_path / "run", journal(), gameday())])
    for chart in charts[0]:
        svg = render_svg(chart)
        assert svg.startswith("<svg ") and svg.rstrip().endswith("</svg>")
        assert "<script" not in svg and "<image" not in svg and "@import" not in svg
        assert 'href="http' not in svg and "url(http" not in svg


# -- summary, verdict, score ------------------------------------------------------------------
def test_summary_values_deviation_and_recovery(tmp_path: Path) -> None:
    summary, _, _ = build_summary([write_run(tmp_path / "run", journal(), gameday())])
    assert summary["schema_version"] == 2
    assert (summary["verdict"], summary["exit_code"], summary["score"]) == ("passed", 0, 100.0)
    run = only_run(summary)
    p95 = run["probes"][0]
    assert p95["name"] == "pull-p95-within-budget" and p95["metric"] == "p95"
    assert p95["before"]["value"] == 0.05 and p95["after"]["value"] == 0.06
    assert p95["during"]["samples"] == 3 and p95["during"]["worst"] == 0.9
    assert p95["during"]["outside_tolerance"] == 3
    assert p95["during"]["method_probes"] == ["pulls-during-latency"]
    assert p95["deviation_percent"] == pytest.approx(1700.0)
    assert p95["after_deviation_percent"] == pytest.approx(20.0)
    assert p95["held"] is True and p95["deviated"] is True
    # Fault over at 15.1 s (ledger); first sample back in tolerance ends at 17 s.
    assert p95["time_to_recover_seconds"] == pytest.approx(1.9)
    assert run["recovery"]["time_to_recover_seconds"] == pytest.approx(1.9)
    assert run["probes"][1]["deviated"] is False
    assert run["probes"][1]["time_to_recover_seconds"] == 0.0
    assert run["faults"][0]["revert_reason"] == "rollback"
    assert run["rollbacks"] == [
        {
            "name": "remove-latency-rollback",
            "status": "succeeded",
            "start": at(28),
            "end": at(28.1),
            "reverted": [],
            "error": None,
        }
    ]
    assert run["metadata"]["title"] == "Pulls ride out latency"
    assert run["metadata"]["start"] == at(0) and run["metadata"]["duration_seconds"] == 30.0


@pytest.mark.parametrize(
    ("status", "deviated", "gameday_verdict", "expected", "code"),
    [
        ("completed", False, "passed", "passed", 0),
        ("completed", True, "deviated", "deviated", 10),
        ("failed", False, "failed", "failed", 11),
        ("aborted", False, "failed", "failed", 11),
        ("interrupted", False, "interrupted", "interrupted", 12),
        ("completed", False, "interrupted", "interrupted", 12),  # gameday saw the signal
    ],
)
def test_verdict_and_exit_code_follow_gameday_rules(
    tmp_path: Path, status: str, deviated: bool, gameday_verdict: str, expected: str, code: int
) -> None:
    data = journal(status=status, deviated=deviated)
    # chaos run exits 0 for a completed run that did not deviate, else 1.
    game = gameday(verdict=gameday_verdict, chaos_exit_code=int(deviated or status != "completed"))
    result = build_report([write_run(tmp_path / "run", data, game)], tmp_path / "out")
    assert (result.verdict, result.exit_code) == (expected, code)
    assert report_exit_code(result.summary) == code
    # A run that did not test what it meant to earns no score, however well its probes held.
    run_score = only_run(result.summary)["score"]
    if expected in ("failed", "interrupted"):
        assert result.score is None and run_score["value"] is None
        assert run_score["worked"].startswith(f"not scored: the run's verdict is {expected}")
    else:
        assert result.score is not None and run_score["value"] == result.score


@pytest.mark.parametrize(
    ("fault_changes", "left"),
    [
        ({"state": "injected", "reverted_at": None, "revert_reason": None}, True),
        ({"state": "revert-failed", "reverted_at": None, "revert_reason": None}, True),
        ({"revert_reason": "manual", "reverted_at": T0 + 45}, True),  # settled after the run
        ({"revert_reason": "owner-gone", "reverted_at": T0 + 30.4}, False),  # the watchdog
        ({"revert_reason": "expired", "reverted_at": T0 + 20}, False),
    ],
)
def test_a_fault_that_outlived_the_run_is_left_behind(
    tmp_path: Path, fault_changes: dict[str, Any], left: bool
) -> None:
    game = gameday()
    game["faults"][0].update(fault_changes)
    result = build_report([write_run(tmp_path / "run", journal(), game)], tmp_path / "out")
    assert (result.verdict == "left-behind") is left
    assert result.exit_code == (13 if left else 0)
    suite = ET.parse(result.junit_xml).getroot()
    case = suite.find(".//testcase[@name='nothing left behind']")
    assert case is not None and (case.find("failure") is not None) is left
    if left:
        assert FAULT["fault_id"] in case.find("failure").get("message", "")


def test_gameday_left_behind_verdict_is_kept(tmp_path: Path) -> None:
    result = build_report(
        [write_run(tmp_path / "run", journal(), gameday(verdict="left-behind"))], tmp_path / "o"
    )
    assert result.exit_code == 13
    assert result.score is None


def test_score_formula_terms() -> None:
    assert score([(1, True), (1, True)], 3.0, True).value == 100.0
    assert score([(1, True), (1, False)], 0.0, True).value == 50.0
    assert score([(3, True), (1, False)], None, None).value == 75.0
    assert score([(1, True)], 12.0, True).value == 93.0  # 12 s: 7 s past the 5 s grace
    assert score([(1, True)], 600.0, True).value == 80.0  # the penalty is capped at 20
    assert score([(1, True)], None, False).value == 80.0  # not recovered: the cap
    assert score([(1, False)], None, False).value == 0.0  # never below zero
    assert score([], 0.0, True).value is None
    assert "100 × 3 / 4" in score([(3, True), (1, False)], None, None).worked()


def test_weights_come_from_the_report_extension(tmp_path: Path) -> None:
    data = journal()
    data["experiment"]["extensions"] = [
        {"name": "chaosregistry-report", "weights": {"pull-p95-within-budget": 3, "nope": 1}}
    ]
    data["steady_states"]["after"]["probes"][1]["tolerance_met"] = False
    data["steady_states"]["after"]["probes"][1]["output"]["success_ratio"] = 0.8
    summary, _, _ = build_summary([write_run(tmp_path / "run", data, gameday())])
    run = only_run(summary)
    assert [p["weight"] for p in run["probes"]] == [3.0, 1.0]
    assert run["score"]["held_weight"] == 3.0 and run["score"]["total_weight"] == 4.0
    assert any("'nope'" in note for note in run["notes"])


def test_a_run_that_never_recovered_loses_the_capped_penalty(tmp_path: Path) -> None:
    data = journal(status="completed", deviated=True)
    data["steady_states"]["after"]["probes"][0].update(output=pull_output(0.7), tolerance_met=False)
    data["steady_states"]["after"]["steady_state_met"] = False
    data["run"][-1]["output"] = pull_output(0.75)
    game = gameday(verdict="deviated", chaos_exit_code=1)
    summary, _, _ = build_summary([write_run(tmp_path / "run", data, game)])
    run = only_run(summary)
    assert run["recovery"]["recovered"] is False
    assert run["probes"][0]["recovered"] is False
    assert run["score"]["value"] == 30.0  # 100 × 1/2 − 20


def test_several_journals_make_one_report_with_the_highest_exit_code(tmp_path: Path) -> None:
    ok = write_run(tmp_path / "a", journal(), gameday())
    bad = write_run(tmp_path / "b", journal(status="failed"), gameday(verdict="failed"))
    result = build_report([ok, bad], tmp_path / "out")
    assert [r["verdict"] for r in result.summary["runs"]] == ["passed", "failed"]
    assert (result.verdict, result.exit_code) == ("failed", 11)
    html = result.html.read_text()
    assert html.count('<section class="run"') == 2


# -- JUnit and markdown -----------------------------------------------------------------------
def test_junit_has_a_case_per_probe_and_a_failure_message(tmp_path: Path) -> None:
    data = journal()
    data["steady_states"]["after"]["probes"][0].update(
        output=pull_output(0.31), tolerance_met=False
    )
    result = build_report([write_run(tmp_path / "run", data, gameday())], tmp_path / "out")
    root = ET.parse(result.junit_xml).getroot()
    names = [c.get("name") for c in root.iter("testcase")]
    assert names == [
        "steady state: pull-p95-within-budget",
        "steady state: every-pull-succeeds",
        "nothing left behind",
        "experiment ran to completion",
    ]
    failure = root.find(".//testcase[@name='steady state: pull-p95-within-budget']/failure")
    assert failure is not None
    assert failure.get("message") == "after: 0.31 outside 0 <= p95 <= 0.25"
    assert root.get("tests") == "4" and root.get("failures") == "1"


def test_junit_reports_a_failed_run_as_an_error(tmp_path: Path) -> None:
    data = journal(status="failed")
    data["run"][0]["status"] = "failed"
    data["run"][0]["exception"] = ["Traceback", "chaoslib.exceptions.ActivityFailed: hop busy\n"]
    result = build_report([write_run(tmp_path / "run", data)], tmp_path / "out")
    root = ET.parse(result.junit_xml).getroot()
    error = root.find(".//testcase[@name='experiment ran to completion']/error")
    assert error is not None and "hop busy" in error.get("message", "")
    skipped = root.find(".//testcase[@name='nothing left behind']/skipped")
    assert skipped is None  # the journal shows the undo reverted it: known, not skipped


def test_markdown_summary_is_short_and_has_the_table(tmp_path: Path) -> None:
    result = build_report([write_run(tmp_path / "run", journal(), gameday())], tmp_path / "o")
    text = result.summary_md.read_text()
    assert text.startswith("### ✅ Game day: passed (exit 0) · resilience score 100.0")
    assert (
        "| pull-p95-within-budget | 0 <= p95 <= 0.25 | 0.05 | 0.9 | 0.06 | +1700.0 % | yes |"
        in text
    )
    assert len(text.splitlines()) < 20


def test_a_probe_never_judged_after_is_shown_unknown_not_failed(tmp_path: Path) -> None:
    # The steady state missed before the method (the p95), so Chaos Toolkit skipped the method
    # and the after-check: the ratio probe held before and was never judged again.
    data = journal(
        steady_states={
            "before": {
                "steady_state_met": False,
                "probes": [
                    probe_run(P95_PROBE, pull_output(0.42), 0.1, 0.6, False),
                    probe_run(RATIO_PROBE, pull_output(0.04), 0.6, 1.0, True),
                ],
            },
            "after": None,
            "during": [],
        },
        run=[],
        rollbacks=[],
    )
    game = gameday(verdict="failed", exit_code=11, fault_evidence=[], faults=[])
    result = build_report([write_run(tmp_path / "run", data, game)], tmp_path / "o")
    summary = json.loads(result.summary_json.read_text())
    p95, ratio = only_run(summary)["probes"]
    assert (p95["held"], ratio["held"]) == (False, None)
    table = result.summary_md.read_text()
    assert "| pull-p95-within-budget | 0 <= p95 <= 0.25 | 0.42 | – | – | – | **no** |" in table
    assert "| every-pull-succeeds | success_ratio == 1 | 1 | – | – | – | – |" in table


# -- secrets ----------------------------------------------------------------------------------
def test_no_artifact_carries_a_secret_value(tmp_path: Path) -> None:
    data = journal()
    experiment = data["experiment"]
    experiment["secrets"] = {
        "registry": {"registry_username": "ci-bot", "registry_password": PASSWORD}
    }
    experiment["configuration"].update(
        {
            "chaosregistry": {"registry_url": "http://127.0.0.1:1", "registry_password": PASSWORD},
            "api_token": TOKEN,
            "run_id": {"type": "env", "key": "CHAOSREGISTRY_RUN_ID", "default": "manual"},
        }
    )
    # The password leaks into a probe's error text and a fault target, as a careless
    # extension might do; the report must still not show it.
    data["run"][1]["output"]["first_error"] = f"auth failed for ci-bot:{PASSWORD}@registry"
    data["run"][0]["output"] = dict(FAULT, target=f"hop:{PASSWORD}")
    game = gameday(notes=[f"note with {TOKEN} in it"])
    result = build_report([write_run(tmp_path / "run", data, game)], tmp_path / "out")
    artifacts = [result.html, result.summary_json, result.junit_xml, result.summary_md]
    for path in artifacts:
        text = path.read_text()
        for secret in (PASSWORD, TOKEN, "Sup3rS3cret", "hunter2-Sup3rS3cret&#x27;"):
            assert secret not in text, f"{secret!r} in {path.name}"
    summary = json.loads(result.summary_json.read_text())
    configuration = only_run(summary)["metadata"]["configuration"]
    assert configuration["api_token"] == "[redacted]"
    assert configuration["chaosregistry"]["registry_password"] == "[redacted]"
    assert configuration["chaosregistry"]["registry_url"] == "http://127.0.0.1:1"
    assert configuration["run_id"]["key"] == "CHAOSREGISTRY_RUN_ID"  # not a secret: kept
    assert only_run(summary)["metadata"]["secrets"] == ["registry"]
    assert "[redacted]" in result.html.read_text()


def test_env_secrets_resolved_at_report_time_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORT_TEST_PASSWORD", "from-the-env-9f8e7d")
    data = journal()
    data["experiment"]["secrets"] = {
        "registry": {"registry_password": {"type": "env", "key": "REPORT_TEST_PASSWORD"}}
    }
    data["run"][1]["output"]["first_error"] = "denied: from-the-env-9f8e7d"
    result = build_report([write_run(tmp_path / "run", data)], tmp_path / "out")
    for path in (result.html, result.summary_json, result.junit_xml, result.summary_md):
        assert "from-the-env-9f8e7d" not in path.read_text()


# -- bad input --------------------------------------------------------------------------------
BAD_INPUTS = {
    "truncated.json": lambda: json.dumps(journal())[:5000],
    "empty.json": lambda: "",
    "list.json": lambda: "[1, 2, 3]",
    "foreign.json": lambda: json.dumps({"name": "left-pad", "version": "1.3.0"}),
    "binary.json": lambda: "\x00\x01\x02garbage",
    "no-start.json": lambda: json.dumps({**journal(), "start": "yesterday"}),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_naming_the_file_exit_1(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(BAD_INPUTS[name]())
    process = subprocess.run(
        [PYTHON, "-m", "chaosregistry.reports", "report", str(path), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 1, process.stdout + process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(path) in lines[0], lines
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "out" / "report.html").exists()


def test_missing_file_and_directory_are_one_line_errors(tmp_path: Path) -> None:
    for target, words in ((tmp_path / "nope.json", "no such file"), (tmp_path, "is a directory")):
        with pytest.raises(JournalError, match=words) as caught:
            build_report([target], tmp_path / "out")
        assert str(target) in str(caught.value) and "\n" not in str(caught.value)


def test_a_corrupt_gameday_json_is_named(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run", journal())
    (tmp_path / "run" / "gameday.json").write_text('{"faults": [')
    with pytest.raises(JournalError, match=r"gameday\.json: not valid JSON"):
        build_report([path], tmp_path / "out")


def test_mangled_journals_build_or_fail_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Knock keys out of and put wrong types into a journal: a report or a JournalError."""
    # Drawing a report's charts costs ~0.7 s of CPU (matplotlib), 40 trials most of the unit
    # tier's time. The damage is in the journal: every trial goes through the analysis and the
    # chart data; one in four also has its charts drawn from that data.
    from chaosregistry.reports import render

    draw = render.render_svg
    rng = random.Random(11)
    replacements: list[Any] = [None, 0, -1.5, "", "x", [], {}, [None], {"a": None}, True]

    def nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [path]
        if isinstance(value, dict):
            for key, item in value.items():
                found += nodes(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                found += nodes(item, (*path, index))
        return found

    original = journal()
    paths = [p for p in nodes(original) if p]
    built = 0
    for trial in range(40):
        data = json.loads(json.dumps(original))
        for _ in range(rng.randint(1, 4)):
            path = rng.choice(paths)
            parent: Any = data
            try:
                for key in path[:-1]:
                    parent = parent[key]
                if rng.random() < 0.3 and isinstance(parent, dict):
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1]] = rng.choice(replacements)
            except (KeyError, IndexError, TypeError):
                continue
        run = write_run(tmp_path / f"t{trial}", data, gameday() if trial % 2 else None)
        monkeypatch.setattr(
            render, "render_svg", draw if trial % 4 == 0 else lambda chart: "<svg/>"
        )
        try:
            build_report([run], tmp_path / f"t{trial}" / "out")
            built += 1
        except JournalError as exc:
            assert "\n" not in str(exc) and str(run) in str(exc)
    assert built > 20  # most damage is survivable: the report says what it can


# -- trend ------------------------------------------------------------------------------------
def test_trend_orders_runs_by_start_and_charts_score_and_probes(tmp_path: Path) -> None:
    dirs = []
    for index, (offset, after_p95) in enumerate(((7200, 0.2), (0, 0.06), (3600, 0.1))):
        data = journal(start=at(offset), end=at(offset + 30))
        data["steady_states"]["after"]["probes"][0]["output"] = pull_output(after_p95)
        run_dir = tmp_path / f"run{index}"
        build_report([write_run(run_dir, data, gameday())], run_dir)
        dirs.append(run_dir)
    result = build_trend(dirs, tmp_path / "trend")
    trend = json.loads(result.trend_json.read_text())
    assert [r["start"] for r in trend["runs"]] == [at(0), at(3600), at(7200)]
    assert trend["experiments"] == ["Pulls ride out latency"]
    by_id = {c.chart_id: c for c in result.charts}
    assert by_id["trend-score"].series[0].x == (T0, T0 + 3600, T0 + 7200)
    assert by_id["trend-score"].series[0].y == (100.0, 100.0, 100.0)
    probe = by_id["trend-pulls-ride-out-latency-pull-p95-within-budget"]
    assert probe.x_is_epoch
    assert probe.series_by_role("after")[0].y == (0.06, 0.1, 0.2)
    assert (probe.band.low, probe.band.high) == (0.0, 0.25)
    assert 'href="../run0/report.html"' in result.html.read_text()


def test_trend_builds_from_a_journal_when_a_run_has_no_summary(tmp_path: Path) -> None:
    write_run(tmp_path / "run", journal(), gameday())
    result = build_trend([tmp_path / "run"], tmp_path / "trend")
    assert result.runs == 1 and result.trend["runs"][0]["score"] == 100.0


def test_trend_cli_rejects_a_directory_without_runs(tmp_path: Path) -> None:
    process = subprocess.run(
        [PYTHON, "-m", "chaosregistry.reports", "trend", str(tmp_path), "-o", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 1
    assert (
        process.stderr.strip()
        == f"Error: {tmp_path}: no summary.json or journal.json in this run directory"
    )


def test_report_command_prints_where_it_wrote_and_exits_with_the_verdict(tmp_path: Path) -> None:
    game = gameday(verdict="deviated", chaos_exit_code=1)
    path = write_run(tmp_path / "run", journal(deviated=True), game)
    process = subprocess.run(
        [PYTHON, "-m", "chaosregistry.reports", "report", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 10, process.stderr
    assert f"-> {tmp_path / 'run' / 'report.html'}" in process.stdout
    assert (tmp_path / "run" / "junit.xml").exists()


def test_report_is_deterministic_apart_from_its_generation_time(tmp_path: Path) -> None:
    path = write_run(tmp_path / "run", journal(), gameday())
    first = build_report([path], tmp_path / "a").html.read_text()
    second = build_report([path], tmp_path / "b").html.read_text()

    def strip(text: str) -> str:
        return "\n".join(line for line in text.splitlines() if "generated" not in line)

    assert strip(first) == strip(second)
    assert RATIO_PROBE["name"] in first


def test_charts_never_touch_pyplot_and_the_page_survives_without_matplotlib(
    tmp_path: Path,
) -> None:
    path = write_run(tmp_path / "run", journal(), gameday())
    script = f"""
import sys
from pathlib import Path
from chaosregistry.reports import build_report
with_charts = build_report([Path({str(path)!r})], Path({str(tmp_path / "a")!r}))
print(with_charts.html.read_text().count("<svg "), "matplotlib.pyplot" in sys.modules)
for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
    del sys.modules[name]
sys.modules.pop("chaosregistry.reports.render", None)
class Block:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "matplotlib":
            raise ImportError(name)
sys.meta_path.insert(0, Block())
bare = build_report([Path({str(path)!r})], Path({str(tmp_path / "b")!r}))
print(bare.html.read_text().count("<svg "), bare.summary["runs"][0]["notes"][-1])
"""
    process = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    drawn, bare = process.stdout.splitlines()
    assert drawn == f"{len(build_summary([path])[0]['runs'][0]['charts'])} False"
    assert bare.startswith("0 charts left out: matplotlib is not installed")


def test_a_load_that_stops_with_the_fault_leaves_its_recovery_unknown(tmp_path: Path) -> None:
    """The node-kill experiments stop their load as the fault ends: its last second straddles
    the revert, so it cannot tell whether pulls recovered, and must not cost the score the
    "not recovered" penalty (the steady state's after-check says it recovered)."""
    pulls = []
    for second in range(15):  # the fault: T0 + 2.4 .. T0 + 15.1 (see gameday())
        slow = second >= 3
        for k in range(4):
            start = T0 + second + k * 0.2
            duration = 0.7 if slow else 0.05
            pulls.append(
                {
                    "start": start,
                    "end": start + duration,
                    "duration": duration,
                    "ok": True,
                    "error": None,
                    "interrupted": False,
                }
            )
    series = records.timeseries(pulls, start=T0, end=T0 + 15.3)
    stats = tmp_path / "load" / "load-1"
    stats.mkdir(parents=True)
    (stats / "timeseries.json").write_text(json.dumps(series))
    summary, _, _ = build_summary([write_run(tmp_path, journal(), gameday())])
    run = only_run(summary)
    (load,) = run["load_series"]
    assert load["after"]["seconds"] == 0 and load["recovered"] is None
    assert run["recovery"]["recovered"] is True
    assert run["score"]["recovery_penalty"] == 0.0


def test_a_load_that_never_pulled_fails_the_report_and_is_shown_with_its_classes(
    tmp_path: Path,
) -> None:
    pulls = tmp_path / "run" / "load" / "ab12cd" / "pulls"
    pulls.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "start": T0 + i,
                "end": T0 + i + 0.01,
                "duration": 0.01,
                "ok": False,
                "error": "auth",
                "interrupted": False,
            }
        )
        for i in range(5)
    ]
    (pulls / "pulls-h-1.jsonl").write_text("\n".join(lines) + "\n")
    data = journal()
    output = {"load_id": "ab12cd", "records_dir": str(pulls)}
    start_load = action_run(
        "start-load", "start_pull_load", output, 1.0, 1.2, "chaosregistry.actions.load"
    )
    data["run"].insert(0, start_load)
    note = "load ab12cd: 0 of 5 pulls succeeded (auth 5)"
    # gameday.json already carries the game day's note: the report shows it once.
    path = write_run(tmp_path / "run", data, gameday(verdict="failed", notes=[note]))
    result = build_report([path], tmp_path / "out")
    run = only_run(result.summary)
    assert (result.verdict, result.exit_code) == ("failed", 11)
    assert run["verdict_notes"] == [note] and run["notes"].count(note) == 1
    assert run["load_pulls"] == [
        {
            "load_id": "ab12cd",
            "action": "start-load",
            "records_found": True,
            "records": 5,
            "pulls": 0,
            "attempts": 5,
            "interrupted": 0,
            "failures_by_class": {"auth": 5},
        }
    ]
    html = result.html.read_text()
    assert "Load pulls" in html and "0 / 5" in html and "auth 5" in html
    assert f"note: {note}" in result.summary_md.read_text()
    assert note in result.junit_xml.read_text()
    # The same run with one successful pull passes: the test can tell the two apart.
    lines[2] = lines[2].replace('"ok": false', '"ok": true')
    (pulls / "pulls-h-1.jsonl").write_text("\n".join(lines) + "\n")
    path = write_run(tmp_path / "run", data, gameday())
    assert build_report([path], tmp_path / "out2").verdict == "passed"


# -- what was proven ---------------------------------------------------------------------------
def test_the_report_shows_what_was_proven_in_every_artifact(tmp_path: Path) -> None:
    result = build_report([write_run(tmp_path / "run", journal(), gameday())], tmp_path / "out")
    assert result.verdict == "passed"
    run = only_run(result.summary)
    assert [(e["name"], e["proven"]) for e in run["evidence"]] == [
        ("this run's journal", True),
        ("steady state before and after", True),
        ("faults applied, confirmed and measured", True),
        ("tolerances judged with the run's values", True),
    ]
    assert run["fault_evidence"][0]["id"] == FAULT["fault_id"]
    written = json.loads(result.summary_json.read_text())
    assert written["schema_version"] == 2 and written["runs"][0]["evidence"] == run["evidence"]
    markdown = result.summary_md.read_text()
    assert "| what was proven |  | how, or what is missing |" in markdown
    assert "| this run's journal | ✅ | run run-latency-a1b2c3; chaos run exited 0" in markdown
    page = result.html.read_text()
    assert "What was proven</h3>" in page
    assert "faults applied, confirmed and measured" in page and "not proven" not in page


def test_a_journal_without_its_gameday_json_is_never_passed(tmp_path: Path) -> None:
    # A deleted gameday.json: the journal alone cannot say it is the run's own.
    result = build_report([write_run(tmp_path / "run", journal())], tmp_path / "out")
    assert (result.verdict, result.exit_code) == ("failed", 11)
    run = only_run(result.summary)
    assert run["evidence"][0] == {
        "name": "this run's journal",
        "proven": False,
        "detail": "no game day's run id to find in the journal (no gameday.json beside it, or "
        "one from before run ids): whose journal it is cannot be told",
    }
    note = f"not proven: this run's journal: {run['evidence'][0]['detail']}"
    assert note in run["verdict_notes"] and note in result.summary_md.read_text()
    assert "❌ **not proven**" in result.summary_md.read_text()
    assert "not proven" in result.html.read_text()


def test_the_report_judges_method_tolerances_with_the_game_days_values(tmp_path: Path) -> None:
    # The method probe must stay under ${p95_budget}: 0.5 as written, 1.0 in the run's vars.
    data = journal()
    data["experiment"]["configuration"]["p95_budget"] = 0.5
    for run in data["run"]:
        if run["activity"]["name"] == "pulls-during-latency":
            run["activity"]["tolerance"] = {
                "type": "range",
                "range": [0, "${p95_budget}"],
                "target": "p95",
            }
    used = gameday(tolerance_values={"p95_budget": 1.0})
    assert build_report([write_run(tmp_path / "a", data, used)], tmp_path / "a").verdict == (
        "passed"
    )
    written = gameday(tolerance_values={"p95_budget": 0.5}, chaos_exit_code=0)
    deviated = build_report([write_run(tmp_path / "b", data, written)], tmp_path / "b")
    assert deviated.verdict == "deviated"
    assert any(
        n.startswith("method check 'pulls-during-latency' out of tolerance")
        for n in only_run(deviated.summary)["verdict_notes"]
    )


def test_a_dry_run_report_says_so(tmp_path: Path) -> None:
    game = gameday()
    game["fault_evidence"][0].update(applied=False, confirmed=False, dry_run=True)
    result = build_report([write_run(tmp_path / "run", journal(), game)], tmp_path / "out")
    assert (result.verdict, result.exit_code, result.score) == ("dry-run", 14, None)
    assert "Game day: dry-run (exit 14)" in result.summary_md.read_text()
    assert 'class="banner v-dry-run"' in result.html.read_text()


def test_trend_reads_summaries_of_schema_version_1_and_2(tmp_path: Path) -> None:
    dirs = []
    for index, version in enumerate((1, 2)):
        run_dir = tmp_path / f"run{index}"
        data = journal(start=at(3600 * index), end=at(3600 * index + 30))
        build_report([write_run(run_dir, data, gameday())], run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        summary["schema_version"] = version
        (run_dir / "summary.json").write_text(json.dumps(summary))
        dirs.append(run_dir)
    assert build_trend(dirs, tmp_path / "trend").runs == 2
    summary["schema_version"] = 3
    (dirs[1] / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(JournalError, match="schema_version 3, this version reads 1 and 2"):
        build_trend(dirs, tmp_path / "trend")
