"""summary.md: a short markdown summary to paste into a pull-request comment."""

from typing import Any

from chaosregistry.reports.inputs import as_dict, as_list, as_number

MARKS = {
    "passed": "✅",
    "deviated": "⚠️",
    "failed": "❌",
    "interrupted": "⏹️",
    "left-behind": "🧹",
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
        probes = [as_dict(p) for p in as_list(run.get("probes"))]
        if probes:
            lines.append(
                "| probe | tolerance | before | during (worst) | after | deviation | held |"
            )
            lines.append("|---|---|---:|---:|---:|---:|:---:|")
            for probe in probes:
                percent = as_number(probe.get("deviation_percent"))
                lines.append(
                    "| "
                    + " | ".join(
                        [
                            _cell(probe.get("name")),
                            _cell(as_dict(probe.get("tolerance")).get("text")),
                            _num(as_dict(probe.get("before")).get("value")),
                            _num(as_dict(probe.get("during")).get("worst")),
                            _num(as_dict(probe.get("after")).get("value")),
                            "–" if percent is None else f"{percent:+.1f} %",
                            _yes(probe.get("held")),
                        ]
                    )
                    + " |"
                )
            lines.append("")
        series = [as_dict(p) for p in as_list(run.get("prometheus_series"))]
        if series:
            lines.append(
                "| Prometheus series | SLO | before (mean) | faults: max | faults: mean "
                "| beyond SLO | last |"
            )
            lines.append("|---|---:|---:|---:|---:|---:|---:|")
            for entry in series:
                beyond = as_number(entry.get("seconds_over_slo_during"))
                lines.append(
                    "| "
                    + " | ".join(
                        [
                            _cell(entry.get("name")),
                            _num(entry.get("slo")),
                            _num(entry.get("before_mean")),
                            _num(entry.get("during_max")),
                            _num(entry.get("during_mean")),
                            "–" if beyond is None else f"{beyond:g} s",
                            _num(entry.get("last")),
                        ]
                    )
                    + " |"
                )
            lines.append("")
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
