"""summary.md: a short markdown summary to paste into a pull-request comment."""

from typing import Any

from chaosregistry.reports.inputs import as_dict, as_list, as_number

MARKS = {
    "passed": "✅",
    "deviated": "⚠️",
    "failed": "❌",
    "interrupted": "⏹️",
    "left-behind": "🧹",
    "dry-run": "🧪",
}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(value: Any, digits: int = 3) -> str:
    value = as_number(value)
    if value is None:
        return "–"
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"


def _yes(value: Any) -> str:
    return {True: "yes", False: "**no**"}.get(value, "–")


def _signed_percent(value: Any) -> str:
    number = as_number(value)
    return "–" if number is None else f"{number:+.1f} %"


def _seconds(value: Any) -> str:
    number = as_number(value)
    return "–" if number is None else f"{number:g} s"


def _table(headers: list[str], alignment: str, rows: list[list[str]]) -> list[str]:
    """A markdown table's lines (cells already escaped), a blank line after it; none without
    rows, so a run without probes or series shows no empty table."""
    if not rows:
        return []
    return [
        "| " + " | ".join(headers) + " |",
        alignment,
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def render_markdown(summary: dict[str, Any]) -> str:
    """The markdown text of a summary."""
    verdict = str(summary.get("verdict"))
    score = summary.get("score")
    lines = [
        f"### {MARKS.get(verdict, '')} Game day: {verdict} (exit {summary.get('exit_code')})"
        + ("" if score is None else f" · resilience score {score:.1f}"),
        "",
    ]
    for run in map(as_dict, as_list(summary.get("runs"))):
        meta = as_dict(run.get("metadata"))
        recovery = as_dict(run.get("recovery"))
        run_score = as_dict(run.get("score")).get("value")
        ttr = recovery.get("time_to_recover_seconds")
        recovered = recovery.get("recovered")
        recovery_text = (
            "not recovered"
            if recovered is False
            else "no fault"
            if recovered is None
            else f"{_num(ttr, 2)} s"
        )
        lines.append(
            f"**{_cell(meta.get('title') or 'experiment')}**: {run.get('verdict')}, "
            f"score {_num(run_score, 1)}, time to recover {recovery_text}"
        )
        lines.append("")
        lines += _table(
            ["what was proven", "", "how, or what is missing"],
            "|---|:---:|---|",
            [
                [
                    _cell(item.get("name")),
                    "✅" if item.get("proven") is True else "❌ **not proven**",
                    _cell(item.get("detail")),
                ]
                for item in map(as_dict, as_list(run.get("evidence")))
            ],
        )
        probes = [as_dict(p) for p in as_list(run.get("probes"))]
        lines += _table(
            ["probe", "tolerance", "before", "during (worst)", "after", "deviation", "held"],
            "|---|---|---:|---:|---:|---:|:---:|",
            [
                [
                    _cell(probe.get("name")),
                    _cell(as_dict(probe.get("tolerance")).get("text")),
                    _num(as_dict(probe.get("before")).get("value")),
                    _num(as_dict(probe.get("during")).get("worst")),
                    _num(as_dict(probe.get("after")).get("value")),
                    _signed_percent(probe.get("deviation_percent")),
                    _yes(probe.get("held")),
                ]
                for probe in probes
            ],
        )
        series = [as_dict(p) for p in as_list(run.get("prometheus_series"))]
        lines += _table(
            [
                "Prometheus series",
                "SLO",
                "before (mean)",
                "faults: max",
                "faults: mean",
                "beyond SLO",
                "last",
            ],
            "|---|---:|---:|---:|---:|---:|---:|",
            [
                [
                    _cell(entry.get("name")),
                    _num(entry.get("slo")),
                    _num(entry.get("before_mean")),
                    _num(entry.get("during_max")),
                    _num(entry.get("during_mean")),
                    _seconds(entry.get("seconds_over_slo_during")),
                    _num(entry.get("last")),
                ]
                for entry in series
            ],
        )
        faults = [as_dict(f) for f in as_list(run.get("faults"))]
        left = [
            f
            for f in faults + [as_dict(x) for x in as_list(run.get("loads"))]
            if f.get("left_behind")
        ]
        outcomes = ", ".join(
            f"`{_cell(f.get('kind'))}` on {_cell(f.get('target') or '?')} → {f.get('state')}"
            + (f" ({f.get('revert_reason')})" if f.get("revert_reason") else "")
            for f in faults
        )
        lines.append(
            f"Faults: {len(faults)}"
            + (f" ({outcomes})" if outcomes else "")
            + f". Rollbacks run: {len(as_list(run.get('rollbacks')))}."
            + (f" **{len(left)} left behind.**" if left else "")
        )
        for load in map(as_dict, as_list(run.get("load_pulls"))):
            if load.get("records_found"):
                classes = ", ".join(
                    f"{_cell(k)} {v}"
                    for k, v in sorted(as_dict(load.get("failures_by_class")).items())
                )
                lines.append(
                    f"- load `{_cell(load.get('load_id'))}`: {load.get('pulls')} of "
                    f"{load.get('attempts')} pulls succeeded"
                    + (f" (failures: {classes})" if classes else "")
                )
        for load_series in map(as_dict, as_list(run.get("load_series"))):
            phases = {p: as_dict(load_series.get(p)) for p in ("before", "during", "after")}
            rates = "; ".join(
                f"{name} {_num(phase.get('attempts_per_second'))} / "
                f"{_num(phase.get('pulls_per_second'))}"
                for name, phase in phases.items()
            )
            lines.append(
                f"- load `{_cell(load_series.get('load_id'))}` attempts/s / successful "
                f"pulls/s: {rates}"
            )
        for prediction in map(as_dict, as_list(run.get("blast_radius"))):
            counts = as_dict(prediction.get("classes"))
            cut = ", ".join(map(str, as_list(prediction.get("registries")))) or "every registry"
            lines.append(
                f"- blast radius `{_cell(prediction.get('name'))}` (outage of {_cell(cut)}): "
                + ", ".join(
                    f"{counts.get(name, 0)} {name}"
                    for name in ("keeps-running", "degraded", "breaks")
                )
            )
        for note in as_list(run.get("verdict_notes")):
            lines.append(f"- note: {_cell(note)}")
        failed = [as_dict(a) for a in as_list(run.get("failed_activities"))]
        for activity in failed:
            lines.append(
                f"- failed: `{_cell(activity.get('name'))}`: {_cell(activity.get('error'))}"
            )
        lines.append("")
    lines.append("_Full report: report.html (charts), summary.json, junit.xml._")
    return "\n".join(lines) + "\n"
