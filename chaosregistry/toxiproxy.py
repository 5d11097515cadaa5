"""A small client for Toxiproxy's HTTP API (the local backend's network-fault engine).

Only what the sandbox and the network actions need: proxies (create, list, enable) and toxics
(add, list, remove). Every call has an explicit timeout; API errors become ``ToxiproxyError``
with one line.
"""

from typing import Any

import httpx

from chaosregistry.errors import ChaosRegistryError

DEFAULT_TIMEOUT = 5.0


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
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout, transport=transport)

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
