"""Reports of game days: how far the steady state deviated, and how fast it came back.

``build_report(journals, out_dir, load_dir=None)`` reads Chaos Toolkit journals (with the
``gameday.json`` beside each and any pull-load ``timeseries.json``) and writes into ``out_dir``:

``report.html``  one self-contained page: verdict, what was proven (the verdict's evidence),
                 resilience score and its formula, the steady-state table, recovery, charts
                 (inline SVG), faults, rollbacks, metadata
``summary.json`` the same facts for machines (schema below)
``junit.xml``    a test case per hypothesis probe, "nothing left behind", "experiment ran to
                 completion"
``summary.md``   a few lines for a pull-request comment, with what was proven

``build_trend(run_dirs, out_dir)`` charts the score and the key probes across runs
(``trend.html``, ``trend.json``). ``report_exit_code(summary)`` is the CI exit code: the
game-day codes 0 passed, 10 deviated, 11 failed, 12 interrupted, 13 left-behind, 14 dry-run
(over several runs, the most urgent verdict's: ``chaosregistry.gameday.verdict.PRECEDENCE``).
Secrets of the experiment never reach an artifact (see ``chaosregistry.redaction``).

summary.json, schema_version 2
------------------------------
Times are ISO 8601 UTC strings, durations seconds, ``null`` where a value does not exist::

    schema_version   2
    generator        "chaostoolkit-registry <version>"
    generated_at     time
    verdict          passed | deviated | failed | dry-run | interrupted | left-behind
                     (the most urgent run's)
    exit_code        0 | 10 | 11 | 14 | 12 | 13                              (that verdict's)
    score            number 0-100 | null                                    (lowest run)
    runs[]:
      journal        path of the journal
      verdict, exit_code   this run's (``chaosregistry.gameday.verdict``, as ``chaosregistry
      gameday``)
      score          {value, probe_score, held_weight, total_weight, recovery_penalty,
                      formula, worked}  (see ``score``)
      recovery       {time_to_recover_seconds, recovered (bool | null: no fault),
                      fault_end (time), from: [{source, seconds}]}
      probes[]       one per steady-state hypothesis probe:
        name, metric (output key charted; "" = the output itself), weight,
        tolerance    {text, low, high, declared}
        before       {value, met, at, error} | null
        during       {samples (probe runs under a fault), worst, outside_tolerance,
                      checks (continuous hypothesis checks), checks_failed, met,
                      method_probes (names of method probes measuring the same pulls)}
        after        {value, met, at, error} | null
        held         met before, after and in every check during; false when a judgement
                     missed; null when never judged before or after and none missed
        deviated     any measurement after the baseline outside the tolerance
        deviation    worst during - baseline;  deviation_percent, after_deviation_percent
        time_to_recover_seconds, recovered   (0 / true when it never deviated)
      method_probes[]  {name, metric, runs, failed_runs, min, max, last, first_error}
      prometheus_series[]  one per series the experiment declared (prometheus.json), read
                     against the fault windows: {name, query, slo, unit, error, points,
                     before_mean, during_max, during_mean, seconds_over_slo_during, last}
      blast_radius[]  one per blast-radius prediction in the journal
                     (``chaosregistry.probes.blast_radius``): {name, at, registries (null:
                     every one), outage_seconds, backoff_after_heal_seconds, classes {class:
                     workloads}, nodes, pods, capped_nodes (how many list the kubelet's cap),
                     notes, workloads [{kind, namespace, name, class, reason}]}
      faults[], loads[]  {id, kind, target, action, parameters, injected_at, window_end,
                      window_end_source, seconds, state (ledger state or "unknown"),
                      revert_reason, reverted_at, reverted_after_run_end, left_behind, source}
      load_series[]  {load_id, file, seconds, completed, failed, before|during|after:
                      {seconds, completed, failed, attempts_per_second (pulls that ended,
                      failed or not), pulls_per_second (successful), failure_ratio,
                      p95_median, p95_max},
                      time_to_recover_seconds, recovered}
      load_pulls[]   one per load started by start_pull_load, from its exact per-pull records
                     over the whole load: {load_id, action, records_found, records, pulls
                     (succeeded), attempts, interrupted, failures_by_class {class: n}}
      rollbacks[]    {name, status, start, end, reverted (fault ids), error}
      failed_activities[]  {name, phase (run | rollbacks), status, error}
      metadata       {title, description, tags, experiment_file, vars_file, backend,
                      chaoslib_version, platform, node, start, end, duration_seconds,
                      chaos_status, chaos_deviated, deviated_during, chaos_exit_code,
                      gameday_verdict, during_checks, configuration (redacted),
                      secrets (scope names only)}
      notes[]        strings (gameday.json's, then the verdict's)
      verdict_notes[]  why the verdict is what it is beyond the journal's status: a failed
                     action, a load that never completed a pull, hypothesis pull probes that
                     never reached the registry, an item of the evidence not proven, a check
                     that missed or could not be judged with its probe, error class, reason
                     and message (``chaosregistry.gameday.verdict``)
      evidence[]     what the verdict stands on, every item needed for passed:
                     {name, proven (bool), detail (one line: how, or what is missing)};
                     names: "this run's journal", "steady state before and after",
                     "faults applied, confirmed and measured", "tolerances judged with the
                     run's values" (``chaosregistry.gameday.verdict``)
      fault_evidence[]  per fault, from gameday.json: {id, kind, target, applied, confirmed,
                     measured, dry_run, detail}
      charts[]       {id, title, kind (time | bars), caption}

New keys may appear within a schema_version; a key's meaning never changes without a new
one. Version 2 (from 1): ``evidence[]`` and ``fault_evidence[]``, the verdict ``dry-run``
(exit 14), and a run judged without its gameday.json is never passed.

Layer: runners (may import services, protocols and foundations; see docs/architecture.md).
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosregistry.osutil.files import write_text_atomic
from chaosregistry.redaction import Redactor
from chaosregistry.reports.analysis import report_exit_code
from chaosregistry.reports.figures import Chart
from chaosregistry.reports.inputs import JournalError
from chaosregistry.reports.junit import render_junit
from chaosregistry.reports.markdown import render_markdown
from chaosregistry.reports.page import render_page
from chaosregistry.reports.summary import build_summary
from chaosregistry.reports.trend import TrendResult, build_trend

__all__ = [
    "JournalError",
    "ReportResult",
    "TrendResult",
    "build_report",
    "build_summary",
    "build_trend",
    "report_exit_code",
]

NO_MATPLOTLIB = (
    "charts left out: matplotlib is not installed (pip install 'chaostoolkit-registry[reports]')"
)


@dataclass(frozen=True)
class ReportResult:
    """What ``build_report`` wrote, and the verdict CI should act on."""

    out_dir: Path
    html: Path
    summary_json: Path
    junit_xml: Path
    summary_md: Path
    verdict: str
    exit_code: int
    score: float | None
    summary: dict[str, Any] = dataclasses.field(repr=False)
    charts: list[list[Chart]] = dataclasses.field(repr=False)


def build_report(
    journals: list[Path], out_dir: Path, *, load_dir: Path | None = None
) -> ReportResult:
    """Write report.html, summary.json, junit.xml and summary.md for ``journals`` into ``out_dir``.

    ``load_dir``: a load's stats directory (with timeseries.json) or a directory of them;
    default: the loads the journal's actions name, else ``<journal dir>/load/*``.
    Raises JournalError (one line naming the file) for input that is not a journal.
    """
    summary, models, charts = build_summary(journals, load_dir=load_dir)
    redactor = Redactor(value for model in models for value in model.redactor.values)
    svgs: list[list[tuple[dict[str, Any], str]]] = []
    try:
        from chaosregistry.reports.render import render_svg
    except ImportError:  # installed without the [reports] extra: the page, without charts
        for run in summary["runs"]:
            run["notes"].append(NO_MATPLOTLIB)
    else:
        svgs = [
            [(entry, render_svg(chart)) for entry, chart in zip(run["charts"], drawn, strict=True)]
            for run, drawn in zip(summary["runs"], charts, strict=True)
        ]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out_dir / "report.html",
        "json": out_dir / "summary.json",
        "junit": out_dir / "junit.xml",
        "md": out_dir / "summary.md",
    }
    texts = {
        "html": render_page(summary, svgs),
        "json": json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
        "junit": render_junit(summary),
        "md": render_markdown(summary),
    }
    for key, path in paths.items():
        write_text_atomic(path, redactor.scrub_text(texts[key]))
    return ReportResult(
        out_dir=out_dir,
        html=paths["html"],
        summary_json=paths["json"],
        junit_xml=paths["junit"],
        summary_md=paths["md"],
        verdict=summary["verdict"],
        exit_code=summary["exit_code"],
        score=summary["score"],
        summary=summary,
        charts=charts,
    )
