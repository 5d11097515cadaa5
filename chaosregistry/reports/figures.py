"""Chart data: pure functions from a run (or several) to what each chart shows.

Nothing here draws. A chart is a small frozen dataclass (series of x/y, shaded fault windows, a
tolerance band, axis labels) that :mod:`chaosregistry.reports.render` turns into SVG and tests
check directly. Time charts put x in seconds since the run started (``origin``, epoch seconds),
or in epoch seconds for trends (``x_is_epoch``).
"""

import dataclasses
import re
import statistics
from dataclasses import dataclass
from typing import Any

from chaosregistry.redaction import Redactor
from chaosregistry.reports.analysis import RunModel, within
from chaosregistry.reports.inputs import as_dict, as_list, as_number, as_text
from chaosregistry.reports.timeline import (
    Family,
    HypothesisProbe,
    Sample,
    in_windows,
    metric_for,
    samples_of,
    value_of,
)

PHASES = ("auth", "manifest", "blobs")
MAX_PHASE_CHARTS = 4
_SECONDS_KEYS = re.compile(
    r"(^|\.)(p\d+|min|max|mean|seconds|total|auth|manifest|blobs|max_attempt|elapsed)$"
)


@dataclass(frozen=True)
class Series:
    """One line or set of points."""

    label: str
    x: tuple[float, ...]
    y: tuple[float | None, ...]
    style: str = "line"  # line | points
    role: str = ""  # before | during | method | after | p50 | p95 | ... (for colours and tests)


@dataclass(frozen=True)
class Window:
    """A shaded span of x: a fault from injection to its end."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Band:
    """The tolerance: a shaded band from ``low`` to ``high`` (a line when they are equal)."""

    low: float
    high: float
    label: str


@dataclass(frozen=True)
class TimeChart:
    """Values over time, with fault windows and a tolerance band."""

    chart_id: str
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    windows: tuple[Window, ...] = ()
    band: Band | None = None
    origin: float = 0.0
    x_is_epoch: bool = False
    missing: tuple[float, ...] = ()  # x of probe runs that produced no value
    caption: str = ""
    span: tuple[float, float] | None = None  # x range to show at least (the whole run)

    def series_by_role(self, role: str) -> list[Series]:
        """The series with this role."""
        return [s for s in self.series if s.role == role]


@dataclass(frozen=True)
class BarGroup:
    """One group of bars (e.g. "baseline"): one value per category, averaged over ``count``."""

    label: str
    values: tuple[float | None, ...]
    count: int


@dataclass(frozen=True)
class BarChart:
    """Grouped bars: categories on x, one bar per group in each."""

    chart_id: str
    title: str
    y_label: str
    categories: tuple[str, ...]
    groups: tuple[BarGroup, ...]
    caption: str = ""


Chart = TimeChart | BarChart


def slug(text: str) -> str:
    """A safe id fragment for ``text``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def unit_label(metric: str | None) -> str:
    """The y-axis label of a metric: ``p95 (s)``, ``success_ratio``."""
    if not metric:
        return "value"
    return f"{metric} (s)" if _SECONDS_KEYS.search(metric) else metric


def windows_of(model: RunModel) -> tuple[Window, ...]:
    """The run's fault windows on the chart's x axis (seconds since the run started)."""
    return tuple(
        Window(
            f"{f.kind} {f.target}".strip(), f.injected_at - model.start, f.window_end - model.start
        )
        for f in model.windows
    )


def _series(
    label: str, role: str, style: str, chosen: list[Sample], metric: str | None, origin: float
) -> Series:
    return Series(
        label=label,
        x=tuple(s.middle - origin for s in chosen),
        y=tuple(value_of(s.output, metric) for s in chosen),
        style=style,
        role=role,
    )


def probe_chart(model: RunModel, probe: HypothesisProbe) -> TimeChart | None:
    """A hypothesis probe before, during (checks and related method probes) and after."""
    own, related = samples_of(probe, model.samples)
    metric = metric_for(probe.tolerance, [s.output for s in own + related])
    if metric is None:
        return None
    origin = model.start
    series = []
    for phase, label, style in (
        ("before", "before (steady state)", "points"),
        ("during", "during: hypothesis checks", "line"),
    ):
        chosen = [s for s in own if s.phase == phase]
        if chosen:
            series.append(_series(label, phase, style, chosen, metric, origin))
    for name in dict.fromkeys(s.probe for s in related):
        chosen = [s for s in related if s.probe == name]
        series.append(_series(f"during: {name}", "method", "line", chosen, metric, origin))
    chosen = [s for s in own if s.phase == "after"]
    if chosen:
        series.append(_series("after (steady state)", "after", "points", chosen, metric, origin))
    if not any(v is not None for s in series for v in s.y):
        return None
    band = probe.tolerance.band
    outside = sum(
        1 for s in own + related if s.phase != "before" and within(probe, metric, s) is False
    )
    return TimeChart(
        chart_id=f"probe-{slug(probe.name)}",
        title=f"{probe.name}: {metric or 'value'} "
        + ("before, during and after the fault" if model.windows else "over the run"),
        x_label="seconds since the run started",
        y_label=unit_label(metric),
        series=tuple(series),
        windows=windows_of(model),
        band=None
        if band is None
        else Band(band[0], band[1], f"tolerance: {probe.tolerance.describe(metric)}"),
        origin=origin,
        missing=tuple(
            s.middle - origin for s in own + related if value_of(s.output, metric) is None
        ),
        caption=f"{outside} sample(s) outside the tolerance after the baseline",
    )


def method_chart(model: RunModel, name: str, runs: list[Sample]) -> TimeChart | None:
    """A method probe that no hypothesis probe measures too."""
    metric = metric_for(None, [s.output for s in runs])
    if metric is None:
        return None
    series = _series(f"{name}", "method", "line", runs, metric, model.start)
    if not any(v is not None for v in series.y):
        return None
    return TimeChart(
        chart_id=f"method-{slug(name)}",
        title=f"{name}: {metric or 'value'} during the method",
        x_label="seconds since the run started",
        y_label=unit_label(metric),
        series=(series,),
        windows=windows_of(model),
        origin=model.start,
        missing=tuple(s.middle - model.start for s in runs if value_of(s.output, metric) is None),
    )


def _column(series: dict[str, Any], name: str) -> list[float | None]:
    return [as_number(v) for v in as_list(series.get(name))]


def load_charts(model: RunModel, series: dict[str, Any]) -> list[TimeChart]:
    """A load's pull latency percentiles, its attempts against its successful pulls, and its
    failure ratio, per second."""
    step = as_number(series.get("step")) or 1.0
    times = _column(series, "t")
    rows = [i for i, t in enumerate(times) if t is not None]
    x = tuple(times[i] + step / 2 - model.start for i in rows)  # type: ignore[operator]
    load_id = as_text(series.get("load_id"), "load")
    percentiles = []
    for key in ("p50", "p95", "p99"):
        column = _column(series, key)
        percentiles.append(Series(key, x, tuple(column[i] for i in rows), "line", key))
    completed, failed = _column(series, "completed"), _column(series, "failed")
    ratio = []
    attempts, pulls = [], []
    for i in rows:
        ok, bad = completed[i] or 0.0, failed[i] or 0.0
        ratio.append(bad / (ok + bad) if ok + bad else None)
        attempts.append((ok + bad) / step)
        pulls.append(ok / step)
    windows = windows_of(model)
    return [
        TimeChart(
            chart_id=f"load-latency-{slug(load_id)}",
            title=f"Load {load_id}: pull latency per second",
            x_label="seconds since the run started",
            y_label="pull duration (s)",
            series=tuple(percentiles),
            windows=windows,
            origin=model.start,
            caption="percentiles of the pulls completed in each second (successful pulls)",
        ),
        TimeChart(
            chart_id=f"load-rate-{slug(load_id)}",
            title=f"Load {load_id}: attempts and successful pulls per second",
            x_label="seconds since the run started",
            y_label="pulls per second",
            series=(
                Series("attempts/s", x, tuple(attempts), "line", "attempts"),
                Series("successful pulls/s", x, tuple(pulls), "line", "pulls"),
            ),
            windows=windows,
            origin=model.start,
            caption="pulls that ended in each second, failed or not, against the successful "
            "ones: how hard the load's nodes retried under the fault (their back-off)",
        ),
        TimeChart(
            chart_id=f"load-failures-{slug(load_id)}",
            title=f"Load {load_id}: failed pulls per second",
            x_label="seconds since the run started",
            y_label="failure ratio",
            series=(Series("failed / (completed + failed)", x, tuple(ratio), "line", "failure"),),
            windows=windows,
            origin=model.start,
        ),
    ]


def prometheus_charts(model: RunModel) -> list[TimeChart]:
    """Each Prometheus series the experiment declared (prometheus.json), over the run, with the
    fault windows shaded and its SLO drawn as a line."""
    charts = []
    for entry in as_list(as_dict(model.prometheus).get("series")):
        entry = as_dict(entry)
        name = as_text(entry.get("name"), as_text(entry.get("query"), "series"))
        lines = []
        for found in as_list(entry.get("series")):
            found = as_dict(found)
            points = [p for p in as_list(found.get("points")) if len(as_list(p)) == 2]
            labels = ",".join(f"{k}={v}" for k, v in sorted(as_dict(found.get("labels")).items()))
            lines.append(
                Series(
                    labels or name,
                    tuple((as_number(p[0]) or 0.0) - model.start for p in points),
                    tuple(as_number(p[1]) for p in points),
                    "line",
                    "prometheus",
                )
            )
        slo = as_number(entry.get("slo"))
        error = as_dict(entry.get("error"))
        unit = as_text(entry.get("unit"))
        caption = f"PromQL: {as_text(entry.get('query'))}"
        if error:
            caption += f" (Prometheus gave no answer: {as_text(error.get('class'))})"
        charts.append(
            TimeChart(
                chart_id=f"prometheus-{slug(name)}",
                title=f"Prometheus: {name}",
                x_label="seconds since the run started",
                y_label=f"{name} ({unit})" if unit else name,
                series=tuple(lines),
                windows=windows_of(model),
                band=Band(slo, slo, f"SLO {slo:g}{unit}") if slo is not None else None,
                origin=model.start,
                caption=caption,
            )
        )
    return charts


def _phase_values(output: Any) -> dict[str, float] | None:
    output = as_dict(output)
    source = (
        output.get("phases") if isinstance(output.get("phases"), dict) else output.get("timings")
    )
    values = {k: as_number(as_dict(source).get(k)) for k in PHASES}
    if any(v is None for v in values.values()):
        return None
    return {k: v for k, v in values.items() if v is not None}


def phase_charts(model: RunModel) -> list[BarChart]:
    """Mean seconds per pull phase (auth, manifest, blobs): baseline vs under fault vs after.

    Per image and registry pulled (a "family" of probe runs), for the families measured both
    before the first fault and under a fault, so the bars compare like with like.
    """
    windows = model.windows
    if not windows:
        return []
    first_fault = min(f.injected_at for f in windows)
    fault_end = max(f.window_end for f in windows)
    grouped: dict[Family, dict[str, list[dict[str, float]]]] = {}
    for sample in model.samples:
        values = _phase_values(sample.output)
        if values is None:
            continue
        if in_windows(sample.start, sample.end, windows):
            group = "under fault"
        elif sample.end <= first_fault:
            group = "baseline"
        elif sample.start >= fault_end:
            group = "after"
        else:
            continue
        family = (sample.family[0], sample.family[1], sample.family[2], sample.family[3])
        grouped.setdefault(family, {}).setdefault(group, []).append(values)
    charts = []
    for family, groups in grouped.items():
        if "baseline" not in groups or "under fault" not in groups:
            continue
        bars = tuple(
            BarGroup(
                label,
                tuple(statistics.fmean(v[k] for v in groups[label]) for k in PHASES),
                len(groups[label]),
            )
            for label in ("baseline", "under fault", "after")
            if label in groups
        )
        what = " via ".join(p for p in (family[2], family[3]) if p) or family[1]
        charts.append(
            BarChart(
                chart_id=f"phases-{slug(what)}",
                title=f"Pull phases: {what}",
                y_label="mean seconds per pull",
                categories=PHASES,
                groups=bars,
                caption="probe runs: "
                + ", ".join(f"{g.label} {g.count}" for g in bars)
                + f" ({family[1]})",
            )
        )
    return charts[:MAX_PHASE_CHARTS]


def run_charts(model: RunModel) -> list[Chart]:
    """Every chart of one run, secrets redacted from their text."""
    charts: list[Chart] = []
    related: set[str] = set()
    for probe in model.probes:
        chart = probe_chart(model, probe)
        if chart is not None:
            charts.append(chart)
        related.update(s.probe for s in samples_of(probe, model.samples)[1])
    by_name: dict[str, list[Sample]] = {}
    for sample in model.samples:
        if sample.phase == "method" and sample.probe not in related:
            by_name.setdefault(sample.probe, []).append(sample)
    for name, runs in by_name.items():
        chart = method_chart(model, name, runs)
        if chart is not None:
            charts.append(chart)
    for series in model.loads:
        charts.extend(load_charts(model, series))
    charts.extend(prometheus_charts(model))
    charts.extend(phase_charts(model))
    span = (0.0, model.end - model.start)  # every time chart of a run on the same x range
    charts = [dataclasses.replace(c, span=span) if isinstance(c, TimeChart) else c for c in charts]
    return unique_ids([redact_chart(c, model.redactor) for c in charts])


def unique_ids(charts: list[Chart]) -> list[Chart]:
    """Suffix repeated chart ids (two probes whose names slug alike) with -2, -3..."""
    seen: dict[str, int] = {}
    result: list[Chart] = []
    for chart in charts:
        count = seen.get(chart.chart_id, 0) + 1
        seen[chart.chart_id] = count
        result.append(
            chart
            if count == 1
            else dataclasses.replace(chart, chart_id=f"{chart.chart_id}-{count}")
        )
    return result


def redact_chart(chart: Chart, redactor: Redactor) -> Chart:
    """The chart with secrets removed from every text it shows."""
    text = redactor.text
    if isinstance(chart, BarChart):
        return dataclasses.replace(
            chart,
            chart_id=slug(text(chart.chart_id)),
            title=text(chart.title),
            caption=text(chart.caption),
            groups=tuple(dataclasses.replace(g, label=text(g.label)) for g in chart.groups),
        )
    return dataclasses.replace(
        chart,
        chart_id=slug(text(chart.chart_id)),
        title=text(chart.title),
        y_label=text(chart.y_label),
        caption=text(chart.caption),
        series=tuple(dataclasses.replace(s, label=text(s.label)) for s in chart.series),
        windows=tuple(dataclasses.replace(w, label=text(w.label)) for w in chart.windows),
        band=None
        if chart.band is None
        else dataclasses.replace(chart.band, label=text(chart.band.label)),
    )
