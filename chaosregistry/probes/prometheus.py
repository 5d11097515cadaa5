"""Probes that ask Prometheus: any PromQL, and the three registry SLIs by name.

Results are numbers a tolerance can compare: ``value`` is a float when the query gave exactly
one finite number, so ``tolerance: {type: range, range: [0, 0.5], target: value}`` works as it
is. Otherwise ``value`` is a string: ``"+Inf"`` / ``"-Inf"`` (Chaos Toolkit's range check
reads them as infinities and compares them correctly), or ``"no value (...)"`` saying why (no
series, NaN such as 0/0, several series, Prometheus unreachable), which a range tolerance
rejects cleanly instead of crashing on NaN. ``values`` holds every series by its labels
(``{job="mirror"}``), NaN and infinities as null (JSON has no such numbers).

Prometheus unreachable, a bad query or a server error is data, not an exception: ``ok`` is
false and ``error`` is {``class``, ``message``} with class ``refused``, ``dns``, ``timeout``,
``reset``, ``tls``, ``bad-query``, ``server-error``, ``protocol`` or ``not-configured``; the game
day's verdict is then *failed* (``chaosregistry.gameday.verdict``). Where Prometheus is: the
settings' ``prometheus`` part (configuration ``prometheus_url``, else the sandbox's).
"""

import math
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import (
    POSITIVE,
    PROMQL,
    RULES_FILE,
    Parsed,
    Range,
    ResultKind,
    Returns,
    Url,
)
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.observability.prometheus import (
    NOT_CONFIGURED,
    NOT_LOADED,
    PrometheusClient,
    PrometheusError,
    Series,
    finite_or_none,
    labels_key,
)

__all__ = [
    "prometheus_alerts",
    "prometheus_query",
    "prometheus_range",
    "sli_cache_hit_ratio",
    "sli_deploy_success_rate",
    "sli_pull_p99",
]

# Without a prometheus_url these ask the sandbox's Prometheus: gameday starts one for them
# (``experiment.needs`` reads this).
SANDBOX_NEED = SandboxNeed("asks the sandbox's Prometheus", unless_configured=("prometheus_url",))

# The SLIs' PromQL; examples/prometheus/registry-slis.rules.yml records the same expressions.
PULL_P99 = (
    "histogram_quantile({quantile}, sum by (le) (rate("
    'chaosregistry_pull_duration_seconds_bucket{{phase="{phase}",outcome="success"{target}}}'
    "[{window}])))"
)
DEPLOY_SUCCESS = (
    'sum(increase(chaosregistry_deploys_total{{outcome="success"}}[{window}]))'
    " / sum(increase(chaosregistry_deploys_total[{window}]))"
)
# Distribution 3.x counts hits and requests of its pull-through cache itself.
CACHE_HIT_3X = (
    'sum(rate(registry_proxy_hits_total{{job="{mirror}",type="blob"}}[{window}]))'
    ' / sum(rate(registry_proxy_requests_total{{job="{mirror}",type="blob"}}[{window}]))'
)
# Distribution 2.8 exports no misses: a miss is a blob the mirror had to GET from its upstream,
# so the ratio is 1 - upstream blob GETs / mirror blob GETs (both from registry_http_requests),
# floored at 0: 2.8 fetches a blob once per concurrent miss (and again while it is still storing
# it), so under a cold storm the upstream serves more blob GETs than the mirror does.
CACHE_HIT_28 = (
    'clamp_min(1 - sum(rate(registry_http_requests_total{{job="{upstream}",handler="blob",'
    'method="get",code=~"2.."}}[{window}])) / sum(rate(registry_http_requests_total{{'
    'job="{mirror}",handler="blob",method="get",code=~"2.."}}[{window}])), 0)'
)
HAS_PROXY_COUNTERS = 'count(registry_proxy_requests_total{{job="{mirror}",type="blob"}})'


def _client(configuration: Configuration | None) -> PrometheusClient:
    settings = settings_for(configuration).prometheus
    url = settings.url
    if not url:
        raise PrometheusError(
            NOT_CONFIGURED, "no Prometheus: set configuration 'prometheus_url' or 'sandbox_dir'"
        )
    return PrometheusClient(url, timeout=settings.timeout)


def _when(value: object, name: str, now: float) -> float:
    """0 = now, negative = seconds before now, else an epoch timestamp."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{name} must be seconds (0 = now, negative = before now, or epoch)")
    return now if value == 0 else now + value if value < 0 else float(value)


def _window(window: object) -> str:
    text = str(window)
    if not text or not text[:-1].replace(".", "").isdigit() or text[-1] not in "smhd":
        raise ConfigError(f"window must be a Prometheus duration such as 30s, 5m, 1h: {window!r}")
    return text


WINDOW = Parsed.raising(_window, "a Prometheus duration (30s, 5m, 1h)")
QUERY_KEYS = "ok value values series query at prometheus seconds error"


def _value_of(series: list[Series]) -> float | str:
    if not series:
        return "no value (no series)"
    if len(series) > 1:
        return f"no value ({len(series)} series: see values)"
    last = series[0].points[-1][1] if series[0].points else math.nan
    if math.isnan(last):
        return "no value (NaN)"
    if math.isinf(last):
        return "+Inf" if last > 0 else "-Inf"
    return last


def _failed(base: dict[str, Any], error: PrometheusError) -> dict[str, Any]:
    return {
        **base,
        "ok": False,
        "value": f"no value (Prometheus: {error.kind})",
        "values": {},
        "series": 0,
        "error": error.as_dict(),
    }


def _instant(promql: str, at: float, configuration: Configuration | None) -> dict[str, Any]:
    started = time.perf_counter()
    base: dict[str, Any] = {"query": promql, "at": at, "prometheus": None}
    try:
        client = _client(configuration)
        base["prometheus"] = client.url
        series = client.query(promql, at)
    except PrometheusError as exc:
        return {**_failed(base, exc), "seconds": time.perf_counter() - started}
    return {
        **base,
        "ok": True,
        "value": _value_of(series),
        "values": {labels_key(s.labels): finite_or_none(s.points[-1][1]) for s in series},
        "series": len(series),
        "error": None,
        "seconds": time.perf_counter() - started,
    }


@activity
def prometheus_query(
    query: Annotated[str, PROMQL],
    at: float = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[Result, Returns(QUERY_KEYS, kind=ResultKind.PROMETHEUS_QUERY)]:
    """Evaluate a PromQL expression at one instant; the number(s) it gives.

    Arguments:
      query: any PromQL expression (checked with promtool at validation).
      at: when to evaluate: 0 for now, a negative number for seconds before now, or an epoch
        timestamp.

    Returns a mapping: ``ok``, ``value`` (a float for one finite number; else a string, see the
    module docstring), ``values`` {labels: float or null} for every series, ``series``
    (count), ``query``, ``at`` (epoch), ``prometheus`` (URL), ``seconds``, ``error`` (null or
    {``class``, ``message``}). Raises ActivityFailed only for a bad argument.
    """
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("query must be a PromQL expression")
    return _instant(query, _when(at, "at", time.time()), configuration)


@activity
def prometheus_range(
    query: Annotated[str, PROMQL],
    start: float = -300,
    end: float = 0,
    step: Annotated[float, POSITIVE] = 1,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "ok series points min max mean value query start end step prometheus seconds",
        "error",
        kind=ResultKind.PROMETHEUS_RANGE,
    ),
]:
    """Evaluate a PromQL expression over a time range; its points and their summary.

    Arguments:
      query: any PromQL expression.
      start, end: 0 for now, a negative number for seconds before now, or epoch timestamps.
      step: seconds between points (> 0).

    Returns a mapping: ``ok``, ``series`` [{``labels``, ``points`` [[epoch, value or null]]}],
    ``points`` (count), ``min``, ``max``, ``mean`` (over every finite point of every series;
    null when none), ``value`` (the last point, as for ``prometheus_query``), ``query``,
    ``start``, ``end``, ``step``, ``prometheus``, ``seconds``, ``error``.
    """
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("query must be a PromQL expression")
    now = time.time()
    first, last = _when(start, "start", now), _when(end, "end", now)
    if isinstance(step, bool) or not isinstance(step, int | float) or not step > 0:
        raise ConfigError(f"step must be positive seconds, got {step!r}")
    if first > last:
        raise ConfigError(f"start ({first:.0f}) is after end ({last:.0f})")
    started = time.perf_counter()
    base: dict[str, Any] = {
        "query": query,
        "start": first,
        "end": last,
        "step": float(step),
        "prometheus": None,
    }
    try:
        client = _client(configuration)
        base["prometheus"] = client.url
        found = client.query_range(query, first, last, float(step))
    except PrometheusError as exc:
        failed = _failed(base, exc)
        failed.update(series=[], points=0, min=None, max=None, mean=None)
        return {**failed, "seconds": time.perf_counter() - started}
    finite = [v for s in found for _, v in s.points if math.isfinite(v)]
    return {
        **base,
        "ok": True,
        "series": [
            {"labels": s.labels, "points": [[t, finite_or_none(v)] for t, v in s.points]}
            for s in found
        ],
        "points": sum(len(s.points) for s in found),
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
        "mean": sum(finite) / len(finite) if finite else None,
        "value": _value_of(found),
        "error": None,
        "seconds": time.perf_counter() - started,
    }


def _sli(name: str, promql: str, at: float, configuration: Configuration | None) -> Result:
    result = _instant(promql, _when(at, "at", time.time()), configuration)
    return {"sli": name, **result}


@activity
def sli_pull_p99(
    window: Annotated[str, WINDOW] = "1m",
    quantile: Annotated[float, Range(0, 1, above=True, below=True)] = 0.99,
    target_url: Annotated[str, Url()] = "",
    phase: Literal["total", "auth", "manifest", "blobs"] = "total",
    at: float = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[Result, Returns(QUERY_KEYS, "sli", kind=ResultKind.PROMETHEUS_QUERY)]:
    """Pull time quantile of successful pulls, from the client-side histogram.

    ``histogram_quantile(q, sum by (le) (rate(chaosregistry_pull_duration_seconds_bucket
    {phase, outcome="success"}[window])))``: what the load and the pull probes reported
    (``chaosregistry.observability.sli``), within one bucket of the exact quantile.

    Arguments:
      window: the rate window (a Prometheus duration: 30s, 1m, 5m).
      quantile: 0 < q < 1 (default the p99).
      target_url: only pulls from this registry URL, the histogram's ``target`` label (empty:
        every registry).
      phase: ``total``, ``auth``, ``manifest`` or ``blobs``.
      at: as for ``prometheus_query``.

    Returns what ``prometheus_query`` returns plus ``sli`` (``pull_p99``); ``value`` in seconds.
    """
    selector = f',target="{target_url}"' if target_url else ""
    promql = PULL_P99.format(
        quantile=quantile, phase=phase, target=selector, window=_window(window)
    )
    return _sli("pull_p99", promql, at, configuration)


@activity
def sli_deploy_success_rate(
    window: Annotated[str, WINDOW] = "10m",
    at: float = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[Result, Returns(QUERY_KEYS, "sli", kind=ResultKind.PROMETHEUS_QUERY)]:
    """Share of rollouts that succeeded over ``window`` (``chaosregistry_deploys_total``, fed by
    ``rollout_time`` / ``rollout_failure``); ``no value (NaN)`` when no rollout ended in it.

    Arguments:
      window: the window the rollouts are counted over.
      at: when to evaluate, as for ``prometheus_query`` (0: now; negative: seconds before now).

    Returns what ``prometheus_query`` returns plus ``sli`` (``deploy_success_rate``).
    """
    promql = DEPLOY_SUCCESS.format(window=_window(window))
    return _sli("deploy_success_rate", promql, at, configuration)


@activity
def sli_cache_hit_ratio(
    window: Annotated[str, WINDOW] = "1m",
    method: Literal["auto", "counters", "derived"] = "auto",
    mirror_job: str = "mirror",
    upstream_job: str = "upstream",
    at: float = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result, Returns(QUERY_KEYS, "sli", "method", "method_note", kind=ResultKind.PROMETHEUS_QUERY)
]:
    """Blob hit ratio of a pull-through mirror over ``window``, version-aware.

    Arguments:
      window: the rate window.
      method: ``counters`` (Distribution 3.x: ``registry_proxy_hits_total /
        registry_proxy_requests_total``, type blob), ``derived`` (Distribution 2.8, which
        counts no misses: 1 - the upstream's blob GETs / the mirror's blob GETs, from
        ``registry_http_requests_total``, floored at 0: an upstream fetched twice for one miss,
        as 2.8 does under concurrent misses, counts twice), or ``auto``: counters when the
        mirror exports them, else derived.
      mirror_job, upstream_job: the Prometheus jobs of the mirror and of its upstream (the
        sandbox's are ``mirror`` and ``upstream``).
      at: when to evaluate, as for ``prometheus_query`` (0: now; negative: seconds before now).

    Returns what ``prometheus_query`` returns plus ``sli`` (``cache_hit_ratio``) and
    ``method`` (``counters`` or ``derived``) with ``method_note`` saying how it was computed.
    """
    when = _when(at, "at", time.time())
    span = _window(window)
    if method == "auto":
        probe = _instant(HAS_PROXY_COUNTERS.format(mirror=mirror_job), when, configuration)
        if not probe["ok"]:
            return {"sli": "cache_hit_ratio", "method": None, "method_note": None, **probe}
        method = "counters" if probe["series"] else "derived"
    if method == "counters":
        promql = CACHE_HIT_3X.format(mirror=mirror_job, window=span)
        note = "registry_proxy_hits_total / registry_proxy_requests_total (Distribution 3.x)"
    else:
        promql = CACHE_HIT_28.format(mirror=mirror_job, upstream=upstream_job, window=span)
        note = (
            "derived (Distribution 2.8 exports no cache misses): 1 - upstream blob GETs / "
            "mirror blob GETs, floored at 0 (2.8 fetches a blob once per concurrent miss)"
        )
    result = _instant(promql, when, configuration)
    return {"sli": "cache_hit_ratio", "method": method, "method_note": note, **result}


@activity
def prometheus_alerts(
    alerts: list[str] | None = None,
    rules_file: Annotated[str, RULES_FILE] = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "ok value firing pending inactive rules rules_file prometheus seconds error",
        kind=ResultKind.PROMETHEUS_ALERTS,
    ),
]:
    """The state of alerting rules in Prometheus now: which fire, which are pending.

    Arguments:
      alerts: the alert names to ask about (e.g. ``[RegistryPullP99OverSLO]``).
      rules_file: a rules file (path relative to where ``chaos run`` runs, checked with
        promtool at validation) whose every alert is asked about. With neither, every
        alerting rule Prometheus has loaded.

    Returns a mapping: ``ok``, ``value`` (how many of the asked alerts fire, a float:
    ``tolerance: {type: range, range: [0, 0], target: value}`` asserts that none fires, ``[1,
    1]`` with one alert that it pages), ``firing``, ``pending``, ``inactive`` (names),
    ``rules`` [{name, state, group, file, health, active}], ``prometheus``, ``seconds``,
    ``error``. An asked alert that no loaded rules file defines is an error of class
    ``not-loaded`` (its silence would prove nothing), which fails the game day.
    """
    wanted = _alerts_asked(alerts, rules_file)
    started = time.perf_counter()
    base: dict[str, Any] = {"prometheus": None, "rules_file": rules_file or None}
    empty: dict[str, Any] = {"firing": [], "pending": [], "inactive": [], "rules": []}
    try:
        client = _client(configuration)
        base["prometheus"] = client.url
        loaded = client.alerting_rules()
        rules = [r for r in loaded if not wanted or r["name"] in wanted]
        missing = sorted(set(wanted) - {r["name"] for r in rules})
        if missing:
            raise PrometheusError(
                NOT_LOADED,
                f"Prometheus {client.url} has no alerting rule {', '.join(missing)} loaded "
                "(add its rules file to the rule_files of its configuration)",
            )
    except PrometheusError as exc:
        failed = {**_failed(base, exc), **empty}
        del failed["values"], failed["series"]
        return {**failed, "seconds": time.perf_counter() - started}
    by_state = {
        state: sorted({r["name"] for r in rules if r["state"] == state})
        for state in ("firing", "pending", "inactive")
    }
    return {
        **base,
        "ok": True,
        "value": float(len(by_state["firing"])),
        **by_state,
        "rules": rules,
        "error": None,
        "seconds": time.perf_counter() - started,
    }


def _alerts_asked(alerts: list[str] | None, rules_file: str) -> list[str]:
    from chaosregistry.observability.promql import alert_names

    if alerts is not None and (
        not isinstance(alerts, list) or not all(isinstance(a, str) and a for a in alerts)
    ):
        raise ConfigError(f"alerts must be a list of alert names, got {alerts!r}")
    wanted = list(alerts or [])
    if rules_file:
        if not isinstance(rules_file, str):
            raise ConfigError(f"rules_file must be a path, got {rules_file!r}")
        wanted += [n for n in alert_names(Path(rules_file)) if n not in wanted]
    return wanted
