"""A small client for Toxiproxy's HTTP API (the local backend's network-fault engine).

Only what the sandbox and the network actions need: proxies (create, list, enable), toxics
(add, list, remove) and the bytes each proxy carried (``received_bytes``, from the server's
``-proxy-metrics``). Every call has an explicit timeout; API errors become ``ToxiproxyError``
with one line.
"""

import re
import time
from typing import Any

import httpx

from chaosregistry.errors import ChaosRegistryError
from chaosregistry.osutil.tls import system_trust

DEFAULT_TIMEOUT = 5.0
# Toxiproxy 2.5's counter (``-proxy-metrics``) of the bytes a proxy read, by direction: from its
# clients (``upstream``) and from its upstream (``downstream``).
RECEIVED_BYTES_METRIC = "toxiproxy_proxy_received_bytes_total"
DIRECTIONS = ("upstream", "downstream")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ToxiproxyError(ChaosRegistryError):
    """Toxiproxy refused a call or could not be reached."""


class Toxiproxy:
    """Client for one Toxiproxy server, e.g. ``Toxiproxy("http://127.0.0.1:8474")``."""

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.api_url,
            timeout=timeout,
            transport=transport,
            verify=system_trust(),  # plain HTTP: no CA is read, but httpx builds a context
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Toxiproxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise ToxiproxyError(f"toxiproxy at {self.api_url} unreachable: {exc}") from exc
        if response.status_code >= 400:
            try:
                reason = response.json().get("error", response.text)
            except ValueError:
                reason = response.text
            raise ToxiproxyError(
                f"toxiproxy {method} {path} failed ({response.status_code}): {reason.strip()}"
            )
        if not response.content:
            return None
        return response.json()

    # -- server ---------------------------------------------------------------------------
    def version(self) -> str:
        try:
            response = self._http.get("/version")
        except httpx.HTTPError as exc:
            raise ToxiproxyError(f"toxiproxy at {self.api_url} unreachable: {exc}") from exc
        return response.text.strip()

    def received_bytes(self, proxy: str) -> dict[str, int] | None:
        """The bytes ``proxy`` has read so far, ``{"upstream": n, "downstream": n}``; None when
        the server runs without ``-proxy-metrics`` (its ``/metrics`` answers 404).

        Toxiproxy adds a connection's bytes when that connection closes (each direction's copy
        loop ends), not as they flow: a difference between two readings counts the connections
        that closed in between.
        """
        try:
            response = self._http.get("/metrics")
        except httpx.HTTPError as exc:
            raise ToxiproxyError(f"toxiproxy at {self.api_url} unreachable: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ToxiproxyError(f"toxiproxy GET /metrics failed ({response.status_code})")
        return parse_received_bytes(response.text, proxy)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    # -- proxies --------------------------------------------------------------------------
    def proxies(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self._call("GET", "/proxies")
        return result

    def proxy(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/proxies/{name}")
        return result

    def ensure_proxy(self, name: str, *, listen: str, upstream: str) -> dict[str, Any]:
        """Create the proxy, or update it in place when it exists (idempotent)."""
        existing = self.proxies().get(name)
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        if existing is None:
            result: dict[str, Any] = self._call("POST", "/proxies", json=body)
            return result
        result = self._call("POST", f"/proxies/{name}", json=body)
        return result

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._call("POST", f"/proxies/{name}", json={"enabled": enabled})

    # -- toxics ---------------------------------------------------------------------------
    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/proxies/{proxy}/toxics")
        return result

    def add_toxic(
        self,
        proxy: str,
        *,
        name: str,
        type: str,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes or {},
        }
        result: dict[str, Any] = self._call("POST", f"/proxies/{proxy}/toxics", json=body)
        return result

    def remove_toxic(self, proxy: str, name: str) -> bool:
        """Remove a toxic; False when it was already gone (so undo is idempotent)."""
        try:
            self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")
        except ToxiproxyError as exc:
            if "(404)" in str(exc):
                return False
            raise
        return True


def parse_received_bytes(exposition: str, proxy: str) -> dict[str, int]:
    """``proxy``'s received-bytes counters by direction, from Prometheus' text format (0 for a
    direction with no sample: no connection has closed yet)."""
    totals = dict.fromkeys(DIRECTIONS, 0)
    for line in exposition.splitlines():
        if not line.startswith(RECEIVED_BYTES_METRIC + "{"):
            continue
        labels_text, _, value = line[len(RECEIVED_BYTES_METRIC) + 1 :].rpartition("} ")
        labels = dict(_LABEL.findall(labels_text))
        direction = labels.get("direction", "")
        if labels.get("proxy") == proxy and direction in totals:
            totals[direction] += int(float(value))
    return totals


def traffic_sample(toxiproxy: Toxiproxy, proxy: str) -> dict[str, Any]:
    """A fault's reading of its hop's counters, stored in its ledger entry at inject and at
    revert: ``{"proxy", "at" (epoch s), "received": {direction: bytes}}``; ``received`` is
    None and ``error`` says why when there is no reading (no ``-proxy-metrics``, no answer).
    Never raises: a reading is evidence, and its absence must not stop an inject or an undo.
    """
    sample: dict[str, Any] = {"proxy": proxy, "at": time.time(), "received": None}
    try:
        sample["received"] = toxiproxy.received_bytes(proxy)
    except ToxiproxyError as exc:
        sample["error"] = str(exc)
        return sample
    if sample["received"] is None:
        sample["error"] = "toxiproxy runs without -proxy-metrics"
    return sample
