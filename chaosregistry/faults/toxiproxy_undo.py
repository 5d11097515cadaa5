"""Undo handlers for faults made with Toxiproxy (the local backend's network faults).

``toxiproxy.toxic``   params ``api_url``, ``proxy``, ``toxic``: remove the toxic, then check
                      the proxy's toxic list no longer holds it; returns the hop's byte
                      counters read then (``hop_traffic``, see ``toxiproxy.traffic_sample``).
``toxiproxy.enable``  params ``api_url``, ``proxy``: re-enable a disabled proxy, then check it
                      reports ``enabled``.

``toxic_undo`` and ``enable_undo`` build the ledger's undo specs for them.
"""

import functools
from collections.abc import Mapping
from typing import Any

import httpx

from chaosregistry.faults.undo import UndoError, string_param, undo_handler
from chaosregistry.sandbox.toxiproxy import Toxiproxy, ToxiproxyError, traffic_sample

TOXIC = "toxiproxy.toxic"
ENABLE = "toxiproxy.enable"


def toxic_undo(api_url: str, proxy: str, toxic: str) -> dict[str, Any]:
    """The undo spec that removes toxic ``toxic`` from ``proxy``."""
    return {"kind": TOXIC, "params": {"api_url": api_url, "proxy": proxy, "toxic": toxic}}


def enable_undo(api_url: str, proxy: str) -> dict[str, Any]:
    """The undo spec that re-enables ``proxy``."""
    return {"kind": ENABLE, "params": {"api_url": api_url, "proxy": proxy}}


@functools.lru_cache(maxsize=16)
def _client(api_url: str) -> Toxiproxy:
    # One client per API for the life of the process: the watchdog reverts within a poll
    # interval, and building an httpx client (its TLS context) costs about 0.1 s each time.
    # The Toxiproxy API is plain HTTP on a private address; no TLS context is needed for it.
    transport = httpx.HTTPTransport(verify=False) if api_url.startswith("http://") else None
    return Toxiproxy(api_url, transport=transport)


def _is_not_found(exc: ToxiproxyError) -> bool:
    return "(404)" in str(exc)


@undo_handler(TOXIC)
def remove_toxic(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """Remove the toxic and verify it is absent (a proxy that no longer exists has no toxics);
    returns the hop's byte counters read once it is gone (the end of the fault's evidence)."""
    api_url, proxy, toxic = (string_param(params, key) for key in ("api_url", "proxy", "toxic"))
    client = _client(api_url)
    client.remove_toxic(proxy, toxic)
    try:
        remaining = [item.get("name") for item in client.toxics(proxy)]
    except ToxiproxyError as exc:
        if _is_not_found(exc):
            return None
        raise
    if toxic in remaining:
        raise UndoError(f"toxic {toxic!r} is still on proxy {proxy!r} after removing it")
    return {"hop_traffic": traffic_sample(client, proxy)}


@undo_handler(ENABLE)
def enable_proxy(params: Mapping[str, Any]) -> None:
    """Re-enable the proxy and verify it is enabled (a proxy that no longer exists is not
    disabled either: nothing to undo)."""
    api_url, proxy = string_param(params, "api_url"), string_param(params, "proxy")
    client = _client(api_url)
    try:
        client.set_enabled(proxy, True)
        enabled = client.proxy(proxy).get("enabled")
    except ToxiproxyError as exc:
        if _is_not_found(exc):
            return
        raise
    if enabled is not True:
        raise UndoError(f"proxy {proxy!r} is still disabled after enabling it")
