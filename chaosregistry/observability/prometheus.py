"""Prometheus's HTTP query API as numbers with classified errors.

Where Prometheus is comes from the settings (``settings_for(configuration).prometheus``,
:class:`chaosregistry.experiment.settings.PrometheusSettings`). This module asks the
API (``/api/v1/query``, ``/api/v1/query_range``) and turns answers into plain floats: a failure
(unreachable, a bad query, a server error) is a ``PrometheusError`` with a stable ``kind`` that
the probes put in their result, never a traceback.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from chaosregistry.errors import ChaosRegistryError, PullError
from chaosregistry.experiment.settings import DEFAULT_PROMETHEUS_TIMEOUT, PrometheusSettings
from chaosregistry.oci import failures
from chaosregistry.osutil.tls import system_trust

# Error kinds besides the transport classes of oci.failures (refused, timeout, reset, tls...).
BAD_QUERY = "bad-query"
SERVER_ERROR = "server-error"
PROTOCOL = "protocol"
NOT_CONFIGURED = "not-configured"
# An alert a probe asked about that no rules file Prometheus loaded defines.
NOT_LOADED = "not-loaded"


class PrometheusError(ChaosRegistryError):
    """A query that got no usable answer; ``kind`` is stable (see the module constants)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def as_dict(self) -> dict[str, str]:
        return {"class": self.kind, "message": str(self)}


def number(value: Any) -> float:
    """A sample value as Prometheus' API writes it ("1.5", "NaN", "+Inf") -> float."""
    return float(value)


def labels_key(labels: Mapping[str, str]) -> str:
    """``{a="x",b="y"}`` (sorted, without ``__name__``): a labelled set's key in results."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return "{" + inner + "}"


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (epoch seconds, value); NaN stays NaN here


class PrometheusClient:
    """The query API of one Prometheus (``transport``: an httpx transport, for tests)."""

    def __init__(
        self, url: str, timeout: float = DEFAULT_PROMETHEUS_TIMEOUT, transport: Any = None
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.transport = transport

    def _get(self, path: str, params: dict[str, str]) -> Any:
        what = f"Prometheus {self.url}{path}"
        try:
            with httpx.Client(
                timeout=self.timeout,
                trust_env=False,
                transport=self.transport,
                verify=system_trust(),
            ) as c:
                response = c.get(self.url + path, params=params)
        except httpx.HTTPError as exc:
            try:
                error: PullError = failures.from_exception(exc, what)
            except Exception:  # not a transport failure
                raise PrometheusError(PROTOCOL, f"{what}: {exc}") from None
            raise PrometheusError(str(error.error_class), str(error)) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            kind = SERVER_ERROR if response.status_code >= 500 else PROTOCOL
            raise PrometheusError(kind, f"{what}: HTTP {response.status_code}, not its API")
        if body["status"] != "success":
            kind = BAD_QUERY if body.get("errorType") == "bad_data" else SERVER_ERROR
            raise PrometheusError(kind, f"{what}: {body.get('errorType')}: {body.get('error')}")
        return body.get("data")

    def query(self, promql: str, at: float | None = None) -> list[Series]:
        """An instant query: one point per series (a scalar is one series without labels)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        return _series(data, instant=True)

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        params["step"] = f"{step:g}"
        data = self._get("/api/v1/query_range", params)
        return _series(data, instant=False)

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets: [{job, instance, health, last_error, scrape_url}]."""
        data = self._get("/api/v1/targets", {"state": "active"})
        return [
            {
                "job": t.get("labels", {}).get("job", ""),
                "instance": t.get("labels", {}).get("instance", ""),
                "health": t.get("health", ""),
                "last_error": t.get("lastError", ""),
                "scrape_url": t.get("scrapeUrl", ""),
            }
            for t in (data or {}).get("activeTargets", [])
        ]

    def alerting_rules(self) -> list[dict[str, Any]]:
        """Every alerting rule Prometheus has loaded: [{name, state (firing, pending or
        inactive), group, file, health, active (alerts pending or firing)}]."""
        data = self._get("/api/v1/rules", {"type": "alert"})
        groups = (data or {}).get("groups") if isinstance(data, dict) else None
        if not isinstance(groups, list):
            raise PrometheusError(PROTOCOL, "Prometheus answered rules without groups")
        found = []
        for group in groups:
            for rule in group.get("rules") or []:
                if rule.get("type", "alerting") != "alerting":
                    continue
                found.append(
                    {
                        "name": str(rule.get("name", "")),
                        "state": str(rule.get("state", "")),
                        "group": str(group.get("name", "")),
                        "file": str(group.get("file", "")),
                        "health": str(rule.get("health", "")),
                        "active": len(rule.get("alerts") or []),
                    }
                )
        return found


def _series(data: Any, *, instant: bool) -> list[Series]:
    if not isinstance(data, dict):
        raise PrometheusError(PROTOCOL, "Prometheus answered without data")
    kind, result = data.get("resultType"), data.get("result")
    if not isinstance(result, list):
        raise PrometheusError(PROTOCOL, "Prometheus answered a result that is not a list")
    try:
        if kind == "scalar":
            return [Series({}, [(float(result[0]), number(result[1]))])]
        if kind == "vector":
            return [
                Series(dict(r["metric"]), [(float(r["value"][0]), number(r["value"][1]))])
                for r in result
            ]
        if kind == "matrix":
            return [
                Series(dict(r["metric"]), [(float(t), number(v)) for t, v in r["values"]])
                for r in result
            ]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise PrometheusError(PROTOCOL, f"Prometheus answered an unknown shape: {exc}") from None
    raise PrometheusError(PROTOCOL, f"Prometheus answered result type {kind!r}")


def finite_or_none(value: float) -> float | None:
    """JSON-safe: a finite float, else None (NaN and infinities have no JSON number)."""
    return value if math.isfinite(value) else None


# -- series a report charts (experiment extension ``chaosregistry-prometheus``) ------------------
EXTENSION = "chaosregistry-prometheus"
SERIES_FILE = "prometheus.json"


def declared_series(experiment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``extensions: [{name: chaosregistry-prometheus, series: [{name, query, slo, unit}]}]``:
    what the report charts on the run's timeline (``slo``: a line drawn at that value)."""
    found: list[dict[str, Any]] = []
    for extension in experiment.get("extensions") or []:
        if isinstance(extension, dict) and extension.get("name") == EXTENSION:
            found += [s for s in extension.get("series") or [] if isinstance(s, dict)]
    return found


def capture_series(
    experiment: Mapping[str, Any],
    settings: PrometheusSettings,
    start: float,
    end: float,
    step: float = 1.0,
) -> dict[str, Any] | None:
    """Range-query every declared series over ``[start, end]`` (None when none is declared),
    for ``prometheus.json`` beside the journal: the report is often drawn after the sandbox,
    and its Prometheus, are gone. A query that fails keeps its ``error``."""
    wanted = declared_series(experiment)
    if not wanted:
        return None
    url = settings.url
    captured: dict[str, Any] = {"prometheus": url, "start": start, "end": end}
    captured["series"] = []
    for entry in wanted:
        item = {key: entry.get(key) for key in ("name", "query", "slo", "unit")}
        item.update(error=None, series=[])
        try:
            if not url:
                raise PrometheusError(NOT_CONFIGURED, "no Prometheus configured")
            client = PrometheusClient(url, timeout=settings.timeout)
            found = client.query_range(str(entry.get("query")), start, end, step)
            item["series"] = [
                {
                    "labels": s.labels,
                    "points": [[t, finite_or_none(v)] for t, v in s.points],
                }
                for s in found
            ]
        except PrometheusError as exc:
            item["error"] = exc.as_dict()
        captured["series"].append(item)
    return captured
