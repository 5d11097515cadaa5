"""Trends across runs: the score, the time to recover and each hypothesis probe, run after run.

``build_trend(run_dirs, out_dir)`` reads each run directory's summary.json (or, without one,
builds the summary from its journal.json) and writes ``trend.json`` and ``trend.html``. x is the
run's start time, so a scheduled check shows drift: a probe creeping toward its tolerance, a
recovery getting slower, a score going down.

trend.json, schema_version 1::

    schema_version, generated_at
    experiments   [title]                  every experiment seen, in first-run order
    runs[]        {run_dir, journal, report (path of report.html or null), start (time),
                   title, verdict, exit_code, score, time_to_recover_seconds, recovered,
                   probes: {name: {metric, before, during_worst, after, held, low, high}}}
                   sorted by start
"""

import datetime
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosregistry.reports.figures import Band, Series, TimeChart, slug
from chaosregistry.reports.inputs import (
    JournalError,
    as_dict,
    as_list,
    as_number,
    as_text,
    parse_time,
    read_json,
)
from chaosregistry.reports.page import CSS, banner, esc, number, table
from chaosregistry.reports.summary import build_summary

TREND_SCHEMA_VERSION = 1
# summary.json versions a trend reads: 2 added the evidence (what a trend charts is in both).
SUMMARY_SCHEMA_VERSIONS = (1, 2)


@dataclass(frozen=True)
class TrendResult:
    """What ``build_trend`` wrote."""

    out_dir: Path
    html: Path
    trend_json: Path
    runs: int
    trend: dict[str, Any] = field(repr=False)
    charts: list[TimeChart] = field(repr=False)


def _summary_of(run_dir: Path) -> tuple[dict[str, Any], Path | None]:
    """A run directory's summary (read, or built from its journal) and its report.html."""
    if run_dir.is_file():
        candidates = [run_dir]
        run_dir = run_dir.parent
    else:
        candidates = [run_dir / "summary.json", run_dir / "journal.json"]
    report = run_dir / "report.html"
    for path in candidates:
        if not path.exists():
            continue
        data = read_json(path, "summary.json or journal")
        if isinstance(data, dict) and "schema_version" in data:
            if data.get("schema_version") not in SUMMARY_SCHEMA_VERSIONS or not isinstance(
                data.get("runs"), list
            ):
                raise JournalError(
                    f"{path}: a summary.json of schema_version {data.get('schema_version')!r}, "
                    "this version reads 1 and 2"
                )
            return data, report if report.exists() else None
        summary, _, _ = build_summary([path])
        return summary, None
    raise JournalError(f"{run_dir}: no summary.json or journal.json in this run directory")


def trend_rows(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """One row per run found in ``run_dirs``, oldest first."""
    rows: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        summary, report = _summary_of(Path(run_dir))
        for run in map(as_dict, as_list(summary.get("runs"))):
            meta = as_dict(run.get("metadata"))
            start = parse_time(meta.get("start"))
            if start is None:
                raise JournalError(f"{run_dir}: a run without a start time in its summary")
            probes = {}
            for probe in map(as_dict, as_list(run.get("probes"))):
                tolerance = as_dict(probe.get("tolerance"))
                probes[as_text(probe.get("name"), "?")] = {
                    "metric": probe.get("metric"),
                    "before": as_number(as_dict(probe.get("before")).get("value")),
                    "during_worst": as_number(as_dict(probe.get("during")).get("worst")),
                    "after": as_number(as_dict(probe.get("after")).get("value")),
                    "held": probe.get("held"),
                    "low": as_number(tolerance.get("low")),
                    "high": as_number(tolerance.get("high")),
                }
            recovery = as_dict(run.get("recovery"))
            rows.append(
                {
                    "run_dir": str(run_dir),
                    "journal": run.get("journal"),
                    "report": str(report) if report else None,
                    "start": meta.get("start"),
                    "start_epoch": start,
                    "title": as_text(meta.get("title"), "experiment"),
                    "verdict": run.get("verdict"),
                    "exit_code": run.get("exit_code"),
                    "score": as_number(as_dict(run.get("score")).get("value")),
                    "time_to_recover_seconds": as_number(recovery.get("time_to_recover_seconds")),
                    "recovered": recovery.get("recovered"),
                    "probes": probes,
                }
            )
    rows.sort(key=lambda r: r["start_epoch"])
    return rows


def trend_charts(rows: list[dict[str, Any]]) -> list[TimeChart]:
    """Score and time to recover per experiment, and each probe's values, across runs."""
    titles = list(dict.fromkeys(r["title"] for r in rows))
    charts: list[TimeChart] = []
    for key, chart_id, name, y_label in (
        ("score", "trend-score", "Resilience score per run", "score (0-100)"),
        ("time_to_recover_seconds", "trend-recovery", "Time to recover per run", "seconds"),
    ):
        series = tuple(
            Series(
                title,
                tuple(r["start_epoch"] for r in rows if r["title"] == title),
                tuple(r[key] for r in rows if r["title"] == title),
                "line",
                "score" if key == "score" and len(titles) == 1 else "",
            )
            for title in titles
        )
        if any(v is not None for s in series for v in s.y):
            charts.append(
                TimeChart(chart_id, name, "run start (UTC)", y_label, series, x_is_epoch=True)
            )
    for title in titles:
        runs = [r for r in rows if r["title"] == title]
        for probe in dict.fromkeys(p for r in runs for p in r["probes"]):
            having = [r for r in runs if probe in r["probes"]]
            latest = having[-1]["probes"][probe]
            series = tuple(
                Series(
                    label,
                    tuple(r["start_epoch"] for r in having),
                    tuple(r["probes"][probe][key] for r in having),
                    "line",
                    role,
                )
                for key, label, role in (
                    ("before", "baseline (before)", "before"),
                    ("during_worst", "worst during the fault", "during"),
                    ("after", "after", "after"),
                )
            )
            if not any(v is not None for s in series for v in s.y):
                continue
            band = None
            if latest["low"] is not None and latest["high"] is not None:
                band = Band(latest["low"], latest["high"], "tolerance (latest run)")
            metric = latest["metric"] or "value"
            charts.append(
                TimeChart(
                    f"trend-{slug(title)}-{slug(probe)}",
                    f"{title}: {probe} ({metric}) per run",
                    "run start (UTC)",
                    metric,
                    series,
                    band=band,
                    x_is_epoch=True,
                )
            )
    return charts


def _page(
    trend: dict[str, Any],
    rows: list[dict[str, Any]],
    svgs: list[tuple[TimeChart, str]],
    out_dir: Path,
) -> str:
    latest = rows[-1] if rows else {}
    table_rows = []
    for row in reversed(rows):
        link = esc(row["start"])
        if row["report"]:
            target = os.path.relpath(row["report"], out_dir)
            link = f'<a href="{html.escape(target)}">{link}</a>'
        table_rows.append(
            [
                link,
                esc(row["title"]),
                esc(row["verdict"]),
                number(row["score"], 1),
                "-"
                if row["time_to_recover_seconds"] is None
                else f"{number(row['time_to_recover_seconds'], 2)} s",
                esc(row["run_dir"]),
            ]
        )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Game day trend</title>",
        f"<style>{CSS}</style></head><body><main>",
        "<h1>Game day trend</h1>",
        f'<p class="sub">{len(rows)} run(s) of {len(trend["experiments"])} experiment(s) · '
        f"generated {esc(trend['generated_at'])}</p>",
    ]
    if latest:
        parts.append(
            banner(str(latest["verdict"]), latest["exit_code"], f" · latest run, {latest['start']}")
        )
    for chart, svg in svgs:
        parts.append(
            f'<figure id="chart-{esc(chart.chart_id)}"><h4>{esc(chart.title)}</h4>{svg}</figure>'
        )
    parts.append("<h2>Runs</h2>")
    parts.append(
        table(
            ["run start", "experiment", "verdict", "score", "time to recover", "run directory"],
            table_rows,
            {3, 4},
        )
    )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def build_trend(run_dirs: list[Path], out_dir: Path) -> TrendResult:
    """Write trend.json and trend.html for the runs in ``run_dirs`` into ``out_dir``.

    Each entry is a run directory (with summary.json or journal.json) or one of those files.
    Raises JournalError (one line naming the file) for anything that is neither.
    """
    if not run_dirs:
        raise JournalError("no run directory given")
    rows = trend_rows([Path(d) for d in run_dirs])
    charts = trend_charts(rows)
    trend = {
        "schema_version": TREND_SCHEMA_VERSION,
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "experiments": list(dict.fromkeys(r["title"] for r in rows)),
        "runs": [{k: v for k, v in r.items() if k != "start_epoch"} for r in rows],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        from chaosregistry.reports.render import render_svg
    except ImportError:  # installed without the [reports] extra: the table, without charts
        svgs = []
    else:
        svgs = [(chart, render_svg(chart)) for chart in charts]
    html_path, json_path = out_dir / "trend.html", out_dir / "trend.json"
    json_path.write_text(json.dumps(trend, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    html_path.write_text(_page(trend, rows, svgs, out_dir), encoding="utf-8")
    return TrendResult(out_dir, html_path, json_path, len(rows), trend, charts)
