"""Draw chart data (:mod:`chaosregistry.reports.figures`) as inline SVG with matplotlib.

One ``Figure`` per chart, never pyplot: no global figure state, nothing shared between charts.
Settings apply through ``rc_context`` for the one chart being drawn. Text stays text in the SVG
(``svg.fonttype: none``), so the page is small, searchable, and uses the reader's local fonts.
Long series are thinned for drawing only (:func:`downsample`, min and max per pixel column):
the chart looks the same and keeps every extreme; the data stays whole in summary.json.
"""

import datetime
import io
import math
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from chaosregistry.reports.figures import BarChart, Chart, TimeChart

WIDTH_INCHES = 9.0
HEIGHT_INCHES = 3.0
DPI = 72
AXES_RECT = (0.095, 0.17, 0.60, 0.75)
LEGEND_WIDTH = 30  # characters per legend line
# Pixel columns of the plotting area: a series longer than twice this is thinned to min/max.
COLUMNS = int(WIDTH_INCHES * DPI * AXES_RECT[2])
ROLE_COLOURS = {
    "before": "#1f77b4",
    "during": "#ff7f0e",
    "after": "#0b6e4f",
    "p50": "#1f77b4",
    "p95": "#ff7f0e",
    "p99": "#9467bd",
    "failure": "#d62728",
    "attempts": "#ff7f0e",
    "pulls": "#0b6e4f",
    "score": "#1f77b4",
}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
FAULT_COLOUR = "#d62728"
BAND_COLOUR = "#2ca02c"
RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.size": 9,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
}


def downsample(
    x: Sequence[float], y: Sequence[float | None], columns: int = COLUMNS
) -> tuple[list[float], list[float]]:
    """Thin a series to at most three points per column: its min, its max, and a NaN if any.

    Columns split the x range evenly. A column with a missing value keeps one NaN point (at
    the first missing x) so the line still breaks there. Series no longer than ``2 * columns``
    come back whole (NaN for None). Every column's extremes survive, so the series' min and
    max always do.
    """
    pairs = sorted(
        ((float(a), math.nan if b is None else float(b)) for a, b in zip(x, y, strict=True)),
        key=lambda p: p[0],
    )
    if len(pairs) <= 2 * columns or columns < 1:
        return [p[0] for p in pairs], [p[1] for p in pairs]
    low, high = pairs[0][0], pairs[-1][0]
    width = (high - low) / columns or 1.0
    out: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    current = -1

    def flush() -> None:
        finite = [p for p in bucket if not math.isnan(p[1])]
        kept = set()
        if finite:
            kept.add(min(finite, key=lambda p: p[1]))
            kept.add(max(finite, key=lambda p: p[1]))
        gap = next((p for p in bucket if math.isnan(p[1])), None)
        points = sorted(kept, key=lambda p: p[0])
        if gap is not None:  # keep the line broken where values are missing
            points.append(gap)
            points.sort(key=lambda p: p[0])
        out.extend(points)

    for point in pairs:
        column = min(columns - 1, int((point[0] - low) / width))
        if column != current and bucket:
            flush()
            bucket = []
        current = column
        bucket.append(point)
    if bucket:
        flush()
    return [p[0] for p in out], [p[1] for p in out]


def render_svg(chart: Chart) -> str:
    """The chart as an ``<svg>`` element to inline in HTML (no XML prolog, no external refs)."""
    settings: dict[Any, Any] = {**RC, "svg.hashsalt": chart.chart_id}
    with matplotlib.rc_context(settings):
        figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI)
        axes = figure.add_axes(AXES_RECT)
        if isinstance(chart, BarChart):
            _draw_bars(axes, chart)
        else:
            _draw_time(axes, chart)
        axes.grid(True, axis="y", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return _inline(buffer.getvalue(), chart)


def _x_values(chart: TimeChart, values: Sequence[float]) -> list[float]:
    if not chart.x_is_epoch:
        return list(values)
    moments = [datetime.datetime.fromtimestamp(v, datetime.UTC) for v in values]
    return list(date2num(moments)) if moments else []  # type: ignore[no-untyped-call]


def _draw_time(axes: Axes, chart: TimeChart) -> None:
    seen_windows: set[str] = set()
    for window in chart.windows:
        start, end = _x_values(chart, [window.start, window.end])
        label = f"fault: {window.label}"
        axes.axvspan(
            start,
            max(end, start),
            color=FAULT_COLOUR,
            alpha=0.13,
            linewidth=0,
            label=None if label in seen_windows else label,
        )
        seen_windows.add(label)
    if chart.band is not None:
        if chart.band.low == chart.band.high:
            axes.axhline(
                chart.band.low,
                color=BAND_COLOUR,
                linestyle="--",
                linewidth=1.2,
                label=chart.band.label,
            )
        else:
            axes.axhspan(
                chart.band.low,
                chart.band.high,
                color=BAND_COLOUR,
                alpha=0.13,
                linewidth=0,
                label=chart.band.label,
            )
    others = iter(OTHER_COLOURS * 4)
    for series in chart.series:
        colour = ROLE_COLOURS.get(series.role) or next(others)
        xs, ys = downsample(series.x, series.y)
        xs = _x_values(chart, xs)
        if series.style == "points":
            axes.plot(
                xs, ys, linestyle="none", marker="D", markersize=6, color=colour, label=series.label
            )
        else:
            marker = "o" if len(xs) <= 60 else None
            axes.plot(
                xs,
                ys,
                linewidth=1.3,
                marker=marker,
                markersize=3.5,
                color=colour,
                label=series.label,
            )
    if chart.missing:
        axes.plot(
            _x_values(chart, chart.missing),
            [0.04] * len(chart.missing),
            linestyle="none",
            marker="x",
            markersize=7,
            color=FAULT_COLOUR,
            label="run without a value",
            transform=axes.get_xaxis_transform(),
            clip_on=False,
        )
    axes.set_xlabel(chart.x_label)
    axes.set_ylabel(chart.y_label)
    axes.yaxis.set_major_locator(MaxNLocator(5))
    if chart.span is not None:
        xs = [*chart.span, *(x for s in chart.series for x in s.x)]
        xs += [v for w in chart.windows for v in (w.start, w.end)]
        low, high = _x_values(chart, [min(xs), max(xs)])
        pad = (high - low) * 0.02 or 1.0
        axes.set_xlim(low - pad, high + pad)
    if chart.x_is_epoch:
        low, high = axes.get_xlim()
        if high - low < 1 / 24:  # one run, or runs within the hour: show at least an hour
            middle = (low + high) / 2
            axes.set_xlim(middle - 1 / 48, middle + 1 / 48)
        locator = AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    else:
        axes.xaxis.set_major_locator(MaxNLocator(8))
    _legend(axes)


def _legend(axes: Axes) -> None:
    handles, labels = axes.get_legend_handles_labels()
    wrapped = [textwrap.fill(label, LEGEND_WIDTH, subsequent_indent="  ") for label in labels]
    axes.legend(handles, wrapped, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _draw_bars(axes: Axes, chart: BarChart) -> None:
    count = max(1, len(chart.groups))
    width = 0.8 / count
    colours = {"baseline": "#1f77b4", "under fault": FAULT_COLOUR, "after": "#0b6e4f"}
    others = iter(OTHER_COLOURS * 4)
    for index, group in enumerate(chart.groups):
        positions = [c - 0.4 + width * (index + 0.5) for c in range(len(chart.categories))]
        values = [math.nan if v is None else v for v in group.values]
        axes.bar(
            positions,
            values,
            width=width * 0.92,
            color=colours.get(group.label) or next(others),
            label=f"{group.label} ({group.count} probe run{'s' if group.count != 1 else ''})",
        )
    axes.set_xticks(range(len(chart.categories)), list(chart.categories))
    axes.set_ylabel(chart.y_label)
    axes.yaxis.set_major_locator(MaxNLocator(5))
    _legend(axes)


_PROLOG = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_SIZE = re.compile(r'(<svg[^>]*?)\s(width|height)="[^"]*"')


def _inline(svg: str, chart: Chart) -> str:
    svg = _PROLOG.sub("", svg, count=1)
    svg = _METADATA.sub("", svg, count=1)
    for _ in range(2):
        svg = _SIZE.sub(r"\1", svg, count=1)
    label = chart.title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return svg.replace(
        "<svg ", f'<svg role="img" aria-label="{label}" class="chart" id="svg-{chart.chart_id}" ', 1
    )
