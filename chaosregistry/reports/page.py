"""report.html: one self-contained page (inline CSS and SVG; no script, font or image to fetch)."""

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from chaosregistry.reports.inputs import as_dict, as_list, as_number, parse_time

VERDICT_TEXT = {
    "passed": "the experiment completed and the steady state held before, during (where "
    "checked) and after the fault",
    "deviated": "the experiment completed but the steady state did not hold",
    "failed": "the run broke, or what a pass needs was not proven (see what was proven)",
    "dry-run": "a dry run: its faults applied nothing, so nothing was tested",
    "interrupted": "the run was interrupted (SIGINT / SIGTERM)",
    "left-behind": "a fault outlived the run and had to be reverted afterwards, or could not be",
}

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
       sans-serif; color: var(--ink); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 6px; border-top: 2px solid var(--line); padding-top: 18px; }
h3 { font-size: 17px; margin: 26px 0 8px; }
p.sub, .muted { color: var(--muted); }
.banner { border-radius: 8px; padding: 14px 18px; margin: 16px 0; color: #fff;
          display: flex; gap: 18px; align-items: center; flex-wrap: wrap; }
.banner .word { font-size: 24px; font-weight: 700; letter-spacing: .04em;
                text-transform: uppercase; }
.banner .code { font-family: ui-monospace, monospace; background: rgba(0,0,0,.18);
                padding: 2px 8px; border-radius: 4px; }
.v-passed { background: #1e7d45; } .v-deviated { background: #b35c00; }
.v-failed { background: #b3261e; } .v-interrupted { background: #5b6475; }
.v-left-behind { background: #6a1b9a; } .v-error { background: #333; }
.v-dry-run { background: #3d6f8e; }
.score { display: flex; gap: 22px; align-items: center; background: #fff;
         border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; }
.score .big { font-size: 44px; font-weight: 700; min-width: 110px; text-align: center; }
.score code { display: block; white-space: pre-wrap; font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ok { color: #1e7d45; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
.na { color: var(--muted); }
figure { margin: 14px 0 22px; background: #fff; border: 1px solid var(--line); border-radius: 8px;
         padding: 10px 12px 6px; }
figure h4 { margin: 0 0 4px; font-size: 15px; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; padding: 2px 0 4px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; background: #fff;
     border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; word-break: break-word; }
pre { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px;
      overflow-x: auto; font-size: 13px; }
ul.notes li { margin: 2px 0; }
footer { color: var(--muted); font-size: 13px; margin-top: 40px; }
"""


def esc(value: Any) -> str:
    """HTML-escaped text of any value ('-' for None)."""
    return "-" if value is None else html.escape(str(value))


def failure_classes(counts: dict[str, Any]) -> str:
    """``auth 812, timeout 3`` ('none' without failures)."""
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"


def number(value: Any, digits: int = 3) -> str:
    """A number for a table: up to ``digits`` decimals, '-' when there is none."""
    value = as_number(value)
    if value is None:
        return "-"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def met(value: Any) -> str:
    """A tolerance outcome as a coloured word."""
    if value is True:
        return '<span class="ok">yes</span>'
    if value is False:
        return '<span class="bad">no</span>'
    return '<span class="na">-</span>'


def status(value: Any) -> str:
    """An activity status, green when it succeeded."""
    css = "ok" if value == "succeeded" else "bad"
    return f'<span class="{css}">{esc(value)}</span>'


def clock(moment: Any, origin: float | None) -> str:
    """``18:38:20.261 (+23.6 s)`` for an ISO time on a run that started at ``origin``."""
    epoch = parse_time(moment)
    if epoch is None:
        return "-"
    text = str(moment)[11:23]
    if origin is not None:
        text += f" (+{epoch - origin:.1f} s)"
    return esc(text)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    """An HTML table; cells are already HTML, columns in ``numeric`` right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if index in numeric else f"<td>{cell}</td>"
            for index, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def banner(verdict: str, exit_code: Any, extra: str = "") -> str:
    """The verdict banner."""
    return (
        f'<div class="banner v-{esc(verdict)}" id="verdict">'
        f'<span class="word">{esc(verdict)}</span>'
        f'<span class="code">exit {esc(exit_code)}</span>'
        f"<span>{esc(VERDICT_TEXT.get(verdict, ''))}{esc(extra)}</span></div>"
    )


def proven_section(run: dict[str, Any], index: int) -> str:
    """ "What was proven": the verdict's checklist, each item with how it was proven or what is
    missing, then the notes that say why a check failed or could not be judged."""
    items = [as_dict(e) for e in as_list(run.get("evidence"))]
    if not items:
        return ""
    rows = [
        [
            esc(item.get("name")),
            '<span class="ok">proven</span>'
            if item.get("proven") is True
            else '<span class="bad">not proven</span>',
            esc(item.get("detail")),
        ]
        for item in items
    ]
    why = [str(n) for n in as_list(run.get("verdict_notes"))]
    notes = (
        '<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in why) + "</ul>" if why else ""
    )
    return (
        f'<h3 id="proven-{index}">What was proven</h3>'
        + table(["evidence", "", "how, or what is missing"], rows, set())
        + notes
    )


def _probe_rows(run: dict[str, Any]) -> list[list[str]]:
    rows = []
    for probe in as_list(run.get("probes")):
        probe = as_dict(probe)
        before, during, after = (
            as_dict(probe.get("before")),
            as_dict(probe.get("during")),
            as_dict(probe.get("after")),
        )
        during_text = number(during.get("worst"))
        if during.get("samples"):
            during_text += f' <span class="muted">worst of {esc(during.get("samples"))}</span>'
        if during.get("checks"):
            failed = during.get("checks_failed") or 0
            during_text += (
                f'<br><span class="muted">{esc(during["checks"])} check(s), '
                f"{esc(failed)} failed</span>"
            )
        recovery = probe.get("time_to_recover_seconds")
        if probe.get("recovered") is False:
            recovery_text = '<span class="bad">not recovered</span>'
        elif not probe.get("deviated") and recovery is not None:
            recovery_text = '<span class="na">no deviation</span>'
        else:
            recovery_text = f"{number(recovery, 2)} s" if recovery is not None else "-"
        percent = probe.get("deviation_percent")
        rows.append(
            [
                f"<strong>{esc(probe.get('name'))}</strong>"
                + (f'<br><span class="muted">weight {number(probe.get("weight"))}</span>'),
                esc(as_dict(probe.get("tolerance")).get("text")),
                f"{number(before.get('value'))} {met(before.get('met'))}",
                during_text
                if not during.get("checks")
                else f"{during_text} {met(during.get('met'))}",
                f"{number(after.get('value'))} {met(after.get('met'))}",
                "-" if percent is None else f"{percent:+.1f} %",
                recovery_text,
                met(probe.get("held")),
            ]
        )
    return rows


def _fault_rows(faults: list[Any], origin: float | None) -> list[list[str]]:
    rows = []
    for fault in faults:
        fault = as_dict(fault)
        outcome = esc(fault.get("state"))
        if fault.get("revert_reason"):
            outcome += f" ({esc(fault['revert_reason'])})"
        if fault.get("left_behind"):
            outcome += ' <span class="bad">left behind</span>'
        elif fault.get("reverted_after_run_end"):
            outcome += ' <span class="muted">after the run ended</span>'
        rows.append(
            [
                f"<code>{esc(fault.get('id'))}</code>",
                esc(fault.get("kind")),
                esc(fault.get("target")),
                esc(fault.get("action")),
                clock(fault.get("injected_at"), origin),
                clock(fault.get("window_end"), origin)
                + f'<br><span class="muted">{esc(fault.get("window_end_source"))}</span>',
                f"{number(fault.get('seconds'), 1)} s",
                outcome,
            ]
        )
    return rows


def blast_radius_section(prediction: dict[str, Any], origin: float | None) -> str:
    """One blast-radius prediction: what the outage was, the counts, each workload's class."""
    registries = as_list(prediction.get("registries"))
    counts = as_dict(prediction.get("classes"))
    parts = [
        f"<h3>Blast radius (predicted): {esc(prediction.get('name'))}</h3>",
        f"<p>An outage of <strong>{esc(', '.join(map(str, registries)) or 'every registry')}"
        f"</strong> for {number(prediction.get('outage_seconds'), 0)} s, predicted "
        f"{clock(prediction.get('at'), origin)} over {esc(prediction.get('pods'))} pods on "
        f"{esc(prediction.get('nodes'))} nodes: "
        + ", ".join(
            f'<span class="{"bad" if name == "breaks" else ""}">{esc(counts.get(name, 0))} '
            f"{esc(name)}</span>"
            for name in ("keeps-running", "degraded", "breaks")
        )
        + f". Pods failing to pull wait up to "
        f"{number(prediction.get('backoff_after_heal_seconds'), 0)} s of the kubelet's back-off "
        "after it heals.</p>",
    ]
    workloads = [as_dict(w) for w in as_list(prediction.get("workloads"))]
    if workloads:
        parts.append(
            table(
                ["class", "workload", "namespace", "reason"],
                [
                    [
                        esc(w.get("class")),
                        esc(f"{w.get('kind')}/{w.get('name')}"),
                        esc(w.get("namespace") or ""),
                        esc(w.get("reason")),
                    ]
                    for w in workloads
                ],
                set(),
            )
        )
    if prediction.get("notes"):
        parts.append(
            '<ul class="notes">'
            + "".join(f"<li>{esc(n)}</li>" for n in as_list(prediction.get("notes")))
            + "</ul>"
        )
    return "\n".join(parts)


def run_section(
    run: dict[str, Any], index: int, svgs: list[tuple[dict[str, Any], str]], many: bool
) -> str:
    """One run: verdict, score, steady state, recovery, charts, faults, rollbacks, metadata."""
    meta = as_dict(run.get("metadata"))
    origin = parse_time(meta.get("start"))
    score = as_dict(run.get("score"))
    recovery = as_dict(run.get("recovery"))
    parts = [f'<section class="run" id="run-{index}">']
    parts.append(f"<h2>{esc(meta.get('title') or 'Untitled experiment')}</h2>")
    if meta.get("description"):
        parts.append(f'<p class="muted">{esc(meta["description"])}</p>')
    if many:
        parts.append(banner(str(run.get("verdict")), run.get("exit_code")))
    parts.append(proven_section(run, index))
    value = score.get("value")
    parts.append(
        '<div class="score" id="score"><div class="big">'
        + ("-" if value is None else f"{value:.1f}")
        + "</div><div><strong>Resilience score</strong> (0-100)"
        + f"<code>{esc(score.get('formula'))}</code>"
        + f"<code>this run: {esc(score.get('worked'))}</code></div></div>"
    )

    parts.append("<h3>Steady state: baseline, during the fault, after</h3>")
    rows = _probe_rows(run)
    if rows:
        parts.append(
            table(
                [
                    "hypothesis probe",
                    "tolerance",
                    "baseline (before)",
                    "during (worst)",
                    "after",
                    "deviation",
                    "time to recover",
                    "held",
                ],
                rows,
                {2, 3, 4, 5, 6},
            )
        )
    else:
        parts.append('<p class="muted">The experiment has no steady-state hypothesis probe.</p>')

    ttr = recovery.get("time_to_recover_seconds")
    if recovery.get("recovered") is False:
        recovery_text = '<span class="bad">did not recover</span> before the run ended'
    elif recovery.get("recovered") is None:
        recovery_text = "no fault was injected"
    else:
        recovery_text = f"<strong>{number(ttr, 2)} s</strong> after the last fault ended"
    sources = ", ".join(
        f"{esc(s.get('source'))}: {number(s.get('seconds'), 2)} s"
        for s in map(as_dict, as_list(recovery.get("from")))
    )
    parts.append(
        f"<p>Time to recover: {recovery_text}"
        + (f" ({clock(recovery.get('fault_end'), origin)})" if recovery.get("fault_end") else "")
        + (f'. <span class="muted">From {sources}.</span>' if sources else ".")
        + ' <span class="muted">Measured from the end of the last fault window to the end of '
        "the first measurement back within tolerance: an upper bound at the experiment's "
        "sampling rate.</span></p>"
    )

    if svgs:
        parts.append("<h3>Charts</h3>")
        for chart, svg in svgs:
            caption = chart.get("caption") or ""
            parts.append(
                f'<figure id="chart-{esc(chart.get("id"))}"><h4>{esc(chart.get("title"))}</h4>'
                f"{svg}"
                + (f"<figcaption>{esc(caption)}</figcaption>" if caption else "")
                + "</figure>"
            )

    parts.append("<h3>Faults injected</h3>")
    faults = as_list(run.get("faults"))
    if faults:
        parts.append(
            table(
                [
                    "fault",
                    "kind",
                    "target",
                    "action",
                    "injected",
                    "ended",
                    "lasted",
                    "ledger outcome",
                ],
                _fault_rows(faults, origin),
                {6},
            )
        )
    else:
        parts.append('<p class="muted">No fault was recorded.</p>')
    if as_list(run.get("loads")):
        parts.append("<h3>Loads</h3>")
        parts.append(
            table(
                [
                    "load",
                    "kind",
                    "target",
                    "action",
                    "started",
                    "ended",
                    "lasted",
                    "ledger outcome",
                ],
                _fault_rows(as_list(run.get("loads")), origin),
                {6},
            )
        )
        series_rows = [
            [
                esc(s.get("load_id")),
                esc(s.get("completed")),
                esc(s.get("failed")),
                *(
                    f"{number(as_dict(s.get(p)).get('failure_ratio'))} / "
                    f"{number(as_dict(s.get(p)).get('p95_median'))} s"
                    for p in ("before", "during", "after")
                ),
                "-"
                if s.get("time_to_recover_seconds") is None
                else f"{number(s.get('time_to_recover_seconds'), 2)} s",
            ]
            for s in map(as_dict, as_list(run.get("load_series")))
        ]
        if series_rows:
            parts.append(
                table(
                    [
                        "load",
                        "completed",
                        "failed",
                        "before: failure ratio / median p95",
                        "during",
                        "after",
                        "time to recover",
                    ],
                    series_rows,
                    {1, 2, 3, 4, 5, 6},
                )
            )

    # How hard each load retried (its nodes' back-off) against what it got done.
    rate_rows = [
        [
            esc(s.get("load_id")),
            *(
                f"{number(as_dict(s.get(p)).get('attempts_per_second'), 1)} / "
                f"{number(as_dict(s.get(p)).get('pulls_per_second'), 1)}"
                for p in ("before", "during", "after")
            ),
        ]
        for s in map(as_dict, as_list(run.get("load_series")))
    ]
    if rate_rows:
        parts.append("<h3>Load attempts and successful pulls per second</h3>")
        parts.append(
            table(
                ["load", "before: attempts/s / successful pulls/s", "during", "after"],
                rate_rows,
                {1, 2, 3},
            )
        )

    pulls_rows = [
        [
            esc(load.get("load_id")),
            esc(load.get("action")),
            f"{esc(load.get('pulls'))} / {esc(load.get('attempts'))}"
            if load.get("records_found")
            else "records not found",
            esc(load.get("interrupted")),
            esc(failure_classes(as_dict(load.get("failures_by_class")))),
        ]
        for load in map(as_dict, as_list(run.get("load_pulls")))
    ]
    if pulls_rows:
        parts.append("<h3>Load pulls (exact per-pull records, whole load)</h3>")
        parts.append(
            table(
                ["load", "started by", "succeeded / attempts", "cut short", "failures by class"],
                pulls_rows,
                {2, 3},
            )
        )

    parts.append("<h3>Rollbacks run</h3>")
    rollbacks = as_list(run.get("rollbacks"))
    if rollbacks:
        parts.append(
            table(
                ["rollback", "status", "started", "reverted", "error"],
                [
                    [
                        esc(r.get("name")),
                        status(r.get("status")),
                        clock(r.get("start"), origin),
                        ", ".join(f"<code>{esc(i)}</code>" for i in as_list(r.get("reverted")))
                        or '<span class="muted">nothing left to revert</span>',
                        esc(r.get("error") or ""),
                    ]
                    for r in map(as_dict, rollbacks)
                ],
                set(),
            )
        )
    else:
        parts.append('<p class="muted">No rollback ran.</p>')

    failed = as_list(run.get("failed_activities"))
    if failed:
        parts.append("<h3>Activities that failed</h3>")
        parts.append(
            table(
                ["activity", "phase", "status", "error"],
                [
                    [
                        esc(a.get("name")),
                        esc(a.get("phase")),
                        esc(a.get("status")),
                        esc(a.get("error") or ""),
                    ]
                    for a in map(as_dict, failed)
                ],
                set(),
            )
        )

    method = as_list(run.get("method_probes"))
    if method:
        parts.append("<h3>Method probes</h3>")
        parts.append(
            table(
                ["probe", "metric", "runs", "failed", "min", "max", "last", "first error"],
                [
                    [
                        esc(m.get("name")),
                        esc(m.get("metric")),
                        esc(m.get("runs")),
                        esc(m.get("failed_runs")),
                        number(m.get("min")),
                        number(m.get("max")),
                        number(m.get("last")),
                        esc(m.get("first_error") or ""),
                    ]
                    for m in map(as_dict, method)
                ],
                {2, 3, 4, 5, 6},
            )
        )

    series = as_list(run.get("prometheus_series"))
    if series:
        parts.append("<h3>Prometheus series against the fault windows</h3>")
        parts.append(
            table(
                [
                    "series",
                    "SLO",
                    "before (mean)",
                    "faults: max",
                    "faults: mean",
                    "beyond SLO (s)",
                    "last",
                    "error",
                ],
                [
                    [
                        esc(m.get("name")),
                        number(m.get("slo")),
                        number(m.get("before_mean")),
                        number(m.get("during_max")),
                        number(m.get("during_mean")),
                        number(m.get("seconds_over_slo_during"), 1),
                        number(m.get("last")),
                        esc(as_dict(m.get("error")).get("class") or ""),
                    ]
                    for m in map(as_dict, series)
                ],
                {1, 2, 3, 4, 5, 6},
            )
        )

    for prediction in map(as_dict, as_list(run.get("blast_radius"))):
        parts.append(blast_radius_section(prediction, origin))

    notes = [str(n) for n in as_list(run.get("notes"))]
    if notes:
        parts.append('<h3>Notes</h3><ul class="notes">')
        parts.extend(f"<li>{esc(n)}</li>" for n in notes)
        parts.append("</ul>")

    parts.append("<h3>Run metadata</h3><dl>")
    for key, label in (("journal", "journal"),):
        parts.append(f"<dt>{esc(label)}</dt><dd>{esc(run.get(key))}</dd>")
    for key in (
        "experiment_file",
        "vars_file",
        "backend",
        "start",
        "end",
        "duration_seconds",
        "chaos_status",
        "chaos_deviated",
        "deviated_during",
        "during_checks",
        "chaos_exit_code",
        "gameday_verdict",
        "chaoslib_version",
        "platform",
        "node",
        "tags",
        "secrets",
    ):
        value = meta.get(key)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or None
        parts.append(f"<dt>{esc(key.replace('_', ' '))}</dt><dd>{esc(value)}</dd>")
    parts.append("</dl>")
    parts.append('<h3>Configuration <span class="muted">(secrets redacted)</span></h3>')
    parts.append(
        f"<pre>{esc(json.dumps(meta.get('configuration'), indent=2, sort_keys=True))}</pre>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def render_page(summary: dict[str, Any], svgs: list[list[tuple[dict[str, Any], str]]]) -> str:
    """The whole report page; ``svgs[i]`` are run i's charts as (chart entry, inline svg)."""
    runs = [as_dict(r) for r in as_list(summary.get("runs"))]
    titles = [as_dict(r.get("metadata")).get("title") or "experiment" for r in runs]
    heading = titles[0] if len(titles) == 1 else f"{len(titles)} experiments"
    score = summary.get("score")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Game day report: {esc(heading)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>Game day report: {esc(heading)}</h1>",
        f'<p class="sub">{esc(len(runs))} run(s) · generated {esc(summary.get("generated_at"))}'
        f" by {esc(summary.get('generator'))}</p>",
        banner(
            str(summary.get("verdict")),
            summary.get("exit_code"),
            "" if score is None else f" · resilience score {score:.1f}",
        ),
    ]
    for index, run in enumerate(runs):
        parts.append(
            run_section(run, index + 1, svgs[index] if index < len(svgs) else [], len(runs) > 1)
        )
    parts.append(
        "<footer>summary.json, junit.xml and summary.md sit beside this page. "
        "Exit codes: 0 passed, 10 deviated, 11 failed, 12 interrupted, 13 left-behind, "
        "14 dry-run."
        "</footer></main></body></html>"
    )
    return "\n".join(parts) + "\n"
