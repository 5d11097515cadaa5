"""Probes of a registry as a service: is it answering, and what do its metrics say."""

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from chaosregistry.activity import Configuration, Result, Secrets, activity, require_positive_number
from chaosregistry.errors import ConfigError, PullError
from chaosregistry.settings import resolve_target, sandbox_dir, sandbox_endpoints

__all__ = ["registry_metrics", "registry_reachable"]


@activity
def registry_reachable(
    target: str = "registry",
    timeout: float = 5.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Check that a registry answers its ``/v2/`` endpoint, and how fast.

    Reachable means an HTTP answer of 200 (anonymous) or 401 (it wants credentials): both prove
    the registry process is up and speaks the distribution API.

    Arguments:
      target: ``registry``, ``mirror`` (see chaosregistry.settings) or a URL.
      timeout: seconds to wait for the connection and the answer.

    Returns a mapping: ``reachable`` (bool), ``url``, ``status`` (HTTP status or null),
    ``auth_scheme`` (none, basic, bearer), ``api_version``, ``seconds``, ``error`` (null or
    {class, message, status, detail}).
    """
    seconds = require_positive_number("timeout", timeout)
    registry = resolve_target(configuration, secrets, target=target)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "reachable": False,
        "url": registry.url,
        "status": None,
        "auth_scheme": None,
        "api_version": "",
        "error": None,
    }
    client = registry.client(max_connections=1, timeout=seconds)
    try:
        ping = client.ping()
        result.update(
            reachable=True,
            status=ping.status,
            auth_scheme=ping.auth_scheme,
            api_version=ping.api_version,
        )
    except PullError as exc:
        result.update(error=exc.as_dict(), status=exc.status)
    finally:
        client.close()
    result["seconds"] = time.perf_counter() - started
    return result


@activity
def registry_metrics(
    metrics_url: str = "",
    series: list = None,  # type: ignore[type-arg]
    replica: str = "",
    timeout: float = 5.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Scrape a registry's Prometheus endpoint and return the selected series.

    Arguments:
      metrics_url: the ``/metrics`` URL. Empty: the sandbox replica named by ``replica``
        (default the first), or the mirror when ``replica`` is ``mirror``.
      series: metric family names to keep (e.g. ``registry_http_requests_total``; a counter may
        be named with or without ``_total``); empty keeps every ``registry_*`` family.
      timeout: seconds for the scrape.

    Returns a mapping: ``url``, ``seconds``, ``samples`` (count), ``series`` {family name
    (counters without ``_total``): [{``name``, ``labels``, ``value``}]} and ``totals`` {family
    name: sum of its samples}.
    """
    seconds = require_positive_number("timeout", timeout)
    url = metrics_url or _sandbox_metrics_url(configuration, replica)
    if series is not None and (
        not isinstance(series, list) or not all(isinstance(s, str) for s in series)
    ):
        raise ConfigError("series must be a list of metric family names")
    wanted = set(series or [])
    started = time.perf_counter()
    try:
        response = httpx.get(url, timeout=seconds)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot scrape {url}: {exc}") from None
    selected: dict[str, list[dict[str, Any]]] = {}
    try:
        families = list(text_string_to_metric_families(response.text))
    except ValueError as exc:
        raise ConfigError(f"{url} did not serve Prometheus text format: {exc}") from None
    for family in families:
        # The parser names a counter family without its "_total"; accept either spelling.
        names = {family.name, f"{family.name}_total"}
        keep = bool(names & wanted) if wanted else family.name.startswith("registry_")
        if keep:
            selected[family.name] = [
                {"name": s.name, "labels": dict(s.labels), "value": s.value} for s in family.samples
            ]
    return {
        "url": url,
        "seconds": time.perf_counter() - started,
        "samples": sum(len(v) for v in selected.values()),
        "series": selected,
        "totals": {name: sum(s["value"] for s in samples) for name, samples in selected.items()},
    }


def _sandbox_metrics_url(configuration: Configuration | None, replica: str) -> str:
    run_dir = sandbox_dir(configuration)
    if run_dir is None:
        raise ConfigError("registry_metrics needs metrics_url or configuration 'sandbox_dir'")
    endpoints = sandbox_endpoints(run_dir)
    if replica == "mirror":
        return str(endpoints["mirror_metrics_url"])
    replicas = endpoints.get("replicas") or []
    for entry in replicas:
        if not replica or entry.get("name") == replica:
            if not entry.get("metrics_url"):
                raise ConfigError(
                    f"sandbox replica {entry.get('name')!r} has no metrics endpoint "
                    f"(it runs {endpoints.get('implementation')}); use replica 'mirror'"
                )
            return str(entry["metrics_url"])
    names = ", ".join(str(r.get("name")) for r in replicas)
    raise ConfigError(f"no sandbox replica named {replica!r} (have: {names})")
