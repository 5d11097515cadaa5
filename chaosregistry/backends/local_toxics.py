"""Toxiproxy faults checked in place as they are applied (the local backend's network faults
and the token-server hop's auth faults).

A toxic just added must be listed on its proxy, a proxy just disabled must say so; and a toxic's
hop has its byte counters read, the start of the evidence that traffic crossed the fault (its
undo, ``toxiproxy.toxic``, reads them again; ``faults.evidence`` compares the two).
"""

from typing import Any

from chaosregistry.backends.plan import confirmed
from chaosregistry.sandbox.toxiproxy import Toxiproxy, ToxiproxyError, traffic_sample


def toxic_in_place(toxiproxy: Toxiproxy, proxy: str, toxic: str) -> dict[str, Any]:
    """Confirm a toxic just added is listed on its proxy (ToxiproxyError when not), and read the
    hop's byte counters: the start of the evidence that traffic crossed the fault (its undo,
    ``toxiproxy.toxic``, reads them again)."""
    if toxic not in [item.get("name") for item in toxiproxy.toxics(proxy)]:
        raise ToxiproxyError(f"toxic {toxic!r} was added but is not listed on proxy {proxy!r}")
    return {
        **confirmed(f"toxic {toxic} listed on proxy {proxy}"),
        "hop_traffic": traffic_sample(toxiproxy, proxy),
    }


def proxy_disabled(toxiproxy: Toxiproxy, proxy: str) -> dict[str, Any]:
    """Confirm a proxy just disabled says so (ToxiproxyError when not). A disabled proxy
    listens no more, so it counts no bytes: what crossed it shows in the probes only."""
    if toxiproxy.proxy(proxy).get("enabled") is not False:
        raise ToxiproxyError(f"proxy {proxy!r} was disabled but still reports enabled")
    return confirmed(f"proxy {proxy} reports enabled: false")
