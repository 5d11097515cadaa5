"""summary.json's content: the run models of some journals, summarised and compared.

Apart from the package's ``__init__`` (which writes the report files) so that ``trend`` can
summarise a run that has no summary.json yet without importing the package it is part of.
"""

import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from chaosregistry.gameday.verdict import most_urgent
from chaosregistry.reports.analysis import RunModel, build_model, report_exit_code, summarize
from chaosregistry.reports.figures import BarChart, Chart, run_charts
from chaosregistry.reports.inputs import JournalError, load_run

SCHEMA_VERSION = 2


def generator() -> str:
    """``chaostoolkit-registry <version>``."""
    try:
        return f"chaostoolkit-registry {metadata.version('chaostoolkit-registry')}"
    except metadata.PackageNotFoundError:
        return "chaostoolkit-registry"


def _model(path: Path, load_dir: Path | None) -> RunModel:
    run = load_run(path, load_dir)
    try:
        return build_model(run)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise JournalError(
            f"{path}: unexpected journal content ({type(exc).__name__}: {exc})"
        ) from None


def build_summary(
    journals: list[Path], *, load_dir: Path | None = None
) -> tuple[dict[str, Any], list[RunModel], list[list[Chart]]]:
    """summary.json's content for ``journals``, with the run models and chart data behind it."""
    if not journals:
        raise JournalError("no journal given")
    models = [_model(Path(p), load_dir) for p in journals]
    runs: list[dict[str, Any]] = []
    charts: list[list[Chart]] = []
    for model in models:
        try:
            run = summarize(model)
            run_figures = run_charts(model)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise JournalError(
                f"{model.path}: unexpected journal content ({type(exc).__name__}: {exc})"
            ) from None
        run["charts"] = [
            {
                "id": c.chart_id,
                "title": c.title,
                "kind": "bars" if isinstance(c, BarChart) else "time",
                "caption": c.caption,
            }
            for c in run_figures
        ]
        runs.append(run)
        charts.append(run_figures)
    worst = most_urgent(r["verdict"] for r in runs)
    scores = [r["score"]["value"] for r in runs if r["score"]["value"] is not None]
    summary = {
        "schema_version": SCHEMA_VERSION,
        "generator": generator(),
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "verdict": worst.value,
        "exit_code": report_exit_code({"runs": runs}),
        "score": min(scores) if scores else None,
        "runs": runs,
    }
    return summary, models, charts
