"""The local backend: Toxiproxy toxics on the sandbox's hops, and its registry processes.

Network faults map onto one Toxiproxy toxic each:

========================  =================================  ================================
fault                     toxic                              what a client sees
========================  =================================  ================================
``network.latency``       latency (downstream)               every response chunk delayed
``network.bandwidth``     bandwidth (downstream)             responses capped at N KB/s
``network.partition``     timeout 0 (upstream)               requests black-holed: timeouts
(mode ``refuse``)         the proxy disabled                 connections refused or cut
``network.reset``         reset_peer (downstream)            connections reset (RST)
``network.truncate``      limit_data (downstream)            bodies cut after N bytes
========================  =================================  ================================

A node kill SIGKILLs one registry replica's process group, or the pull-through mirror's
(node ``mirror``: a node of the delivery path that a mirror-first client falls back from); its
undo starts it again from the spec saved in the sandbox and verifies it answers.
"""

import secrets as _random
import signal
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from chaosregistry.backends.local_toxics import proxy_disabled, toxic_in_place
from chaosregistry.backends.plan import UNCONFIRMED, FaultPlan, confirmed
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import LocalSettings, sandbox_endpoints
from chaosregistry.faults.undo import UndoError, undo_handler
from chaosregistry.sandbox.layout import HOP_TOKEN_SERVER
from chaosregistry.sandbox.toxiproxy import Toxiproxy

# The sandbox's pull-through mirror: its process name, and the node name a kill takes.
MIRROR_NODE = "mirror"

# fault kind -> (toxic type, stream, attributes from parameters)
_TOXICS: dict[str, tuple[str, str]] = {
    "network.latency": ("latency", "downstream"),
    "network.bandwidth": ("bandwidth", "downstream"),
    "network.partition": ("timeout", "upstream"),
    "network.reset": ("reset_peer", "downstream"),
    "network.truncate": ("limit_data", "downstream"),
}


def _toxic_attributes(kind: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "network.latency":
        return {"latency": int(parameters["latency_ms"]), "jitter": int(parameters["jitter_ms"])}
    if kind == "network.bandwidth":
        return {"rate": int(parameters["rate_kbps"])}
    if kind == "network.partition":
        return {"timeout": 0}  # 0: hold the connection, pass nothing, until the toxic is gone
    if kind == "network.reset":
        return {"timeout": 0}  # 0: reset at once
    if kind == "network.truncate":
        return {"bytes": int(parameters["after_bytes"])}
    raise ConfigError(f"the local backend cannot inject {kind!r}")


class LocalBackend:
    name = "local"

    def __init__(
        self,
        toxiproxy_url: str,
        hop_proxies: dict[str, str],
        run_dir: Path | None,
        replicas: list[str],
        allowed_hops: list[str] | None,
        allowed_certificate_targets: list[str] | None = None,
    ) -> None:
        self.toxiproxy_url = toxiproxy_url
        self.hop_proxies = hop_proxies
        self.run_dir = run_dir
        self.replicas = replicas
        self.allowed_hops = allowed_hops
        self.allowed_certificate_targets = allowed_certificate_targets

    @classmethod
    def from_settings(cls, settings: LocalSettings) -> "LocalBackend":
        """From the sandbox (``sandbox_dir``) or from ``toxiproxy_url`` + ``hops`` {hop: proxy}.

        What the settings leave unset comes from the sandbox's endpoints (read once per change
        of its endpoints.json)."""
        run_dir = settings.sandbox_dir
        endpoints = sandbox_endpoints(run_dir) if run_dir is not None else {}
        toxiproxy_url = settings.toxiproxy_url or endpoints.get("toxiproxy")
        hops = dict(settings.hops or {}) or {
            name: str(hop["proxy"]) for name, hop in (endpoints.get("hops") or {}).items()
        }
        if not toxiproxy_url or not hops:
            raise ConfigError(
                "configuration: the local backend needs 'sandbox_dir' "
                "(or 'toxiproxy_url' and 'hops')"
            )
        replicas = [str(r["name"]) for r in endpoints.get("replicas") or ()]
        if endpoints.get("mirror_direct"):
            replicas.append(MIRROR_NODE)
        return cls(
            str(toxiproxy_url),
            hops,
            run_dir,
            replicas,
            list(settings.allowed_hops) if settings.allowed_hops is not None else None,
            (
                list(settings.allowed_certificate_targets)
                if settings.allowed_certificate_targets is not None
                else None
            ),
        )

    # -- blast radius -------------------------------------------------------------------
    def hops(self) -> list[str]:
        return sorted(self.hop_proxies)

    def nodes(self) -> list[str]:
        return list(self.replicas)

    def _proxy_for(self, hop: str) -> str:
        if hop not in self.hop_proxies:
            raise ConfigError(f"unknown hop {hop!r} (known: {', '.join(self.hops())})")
        if self.allowed_hops is not None and hop not in self.allowed_hops:
            raise ConfigError(
                f"hop {hop!r} is outside the blast radius (configuration.allowed_hops: "
                f"{', '.join(self.allowed_hops) or 'none'})"
            )
        return self.hop_proxies[hop]

    # -- plans --------------------------------------------------------------------------
    def network_fault(self, kind: str, hop: str, parameters: dict[str, Any]) -> FaultPlan:
        proxy = self._proxy_for(hop)
        if kind == "network.partition" and parameters.get("mode") == "refuse":
            return self._refuse(hop, proxy, parameters)
        toxic_type, stream = _TOXICS.get(kind, ("", ""))
        if not toxic_type:
            raise ConfigError(f"the local backend cannot inject {kind!r}")
        attributes = _toxic_attributes(kind, parameters)
        toxic_name = f"chaosregistry-{kind.split('.')[-1]}-{_random.token_hex(4)}"
        api_url = self.toxiproxy_url

        def apply() -> dict[str, Any]:
            with Toxiproxy(api_url) as toxiproxy:
                toxic = toxiproxy.add_toxic(
                    proxy, name=toxic_name, type=toxic_type, stream=stream, attributes=attributes
                )
                in_place = toxic_in_place(toxiproxy, proxy, toxic_name)
            return {"toxiproxy": api_url, "proxy": proxy, "toxic": toxic, **in_place}

        return FaultPlan(
            kind=kind,
            target=f"hop:{hop}",
            parameters=parameters,
            apply=apply,
            undo={
                "kind": "toxiproxy.toxic",
                "params": {"api_url": api_url, "proxy": proxy, "toxic": toxic_name},
            },
        )

    def _refuse(self, hop: str, proxy: str, parameters: dict[str, Any]) -> FaultPlan:
        api_url = self.toxiproxy_url
        # A hop another fault cut already is refused: this fault's undo (enable the hop) would
        # end the other one's cut early.
        with Toxiproxy(api_url) as toxiproxy:
            if toxiproxy.proxy(proxy).get("enabled") is not True:
                raise ConfigError(
                    f"hop {hop!r} is cut already (another fault, or a partition still active): "
                    "restore it first"
                )

        def apply() -> dict[str, Any]:
            with Toxiproxy(api_url) as toxiproxy:
                toxiproxy.set_enabled(proxy, False)
                in_place = proxy_disabled(toxiproxy, proxy)
            return {"toxiproxy": api_url, "proxy": proxy, "enabled": False, **in_place}

        return FaultPlan(
            kind="network.partition",
            target=f"hop:{hop}",
            parameters=parameters,
            apply=apply,
            undo={"kind": "toxiproxy.enable", "params": {"api_url": api_url, "proxy": proxy}},
        )

    def kill_node(self, node: str) -> FaultPlan:
        if self.run_dir is None:
            raise ConfigError("configuration: killing a registry node needs 'sandbox_dir'")
        if node not in self.replicas:
            # self.replicas: the registry replicas, then the mirror (from_settings).
            raise ConfigError(
                f"unknown registry node {node!r} (known: {', '.join(self.replicas) or 'none'})"
            )
        run_dir = str(self.run_dir)

        def apply() -> dict[str, Any]:
            from chaosregistry.sandbox import stop_process

            # stop_process returns once the killed group is gone (it raises if any survives).
            was_running = stop_process(run_dir, node, signal.SIGKILL)
            if not was_running:
                return {"signal": "SIGKILL", "was_running": False, "injected": UNCONFIRMED}
            return {
                "signal": "SIGKILL",
                "was_running": True,
                **confirmed(f"{node}'s process group gone after SIGKILL"),
            }

        return FaultPlan(
            kind="node.kill",
            target=f"node:{node}",
            parameters={"node": node},
            apply=apply,
            undo={"kind": "sandbox.restart-process", "params": {"run_dir": run_dir, "name": node}},
        )

    def certificate_fault(self, kind: str, target: str) -> FaultPlan:
        """nginx's ``target`` server serves a ``kind`` certificate (see local_certificates)."""
        if self.run_dir is None:
            raise ConfigError("configuration: certificate faults need 'sandbox_dir'")
        from chaosregistry.backends.local_certificates import certificate_plan

        return certificate_plan(self.run_dir, kind, target, self.allowed_certificate_targets)

    def auth_fault(self, kind: str, parameters: dict[str, Any]) -> FaultPlan:
        """An auth fault of the sandbox (see local_auth): ``token-server`` ({mode,
        latency_ms}), ``token-key`` or ``credentials`` ({target})."""
        from chaosregistry.backends import local_auth

        if kind == "token-server":
            proxy = self._proxy_for(HOP_TOKEN_SERVER)
            return local_auth.token_server_plan(
                self.run_dir,
                self.toxiproxy_url,
                proxy,
                str(parameters.get("mode")),
                int(parameters.get("latency_ms") or 0),
            )
        if kind == "token-key":
            return local_auth.token_key_plan(
                self.run_dir, self.toxiproxy_url, self.hop_proxies.get(HOP_TOKEN_SERVER)
            )
        if kind == "credentials":
            return local_auth.credentials_plan(self.run_dir, str(parameters.get("target")))
        raise ConfigError(f"the local backend cannot make auth fault {kind!r}")

    def signature_fault(self, kind: str, image: str, source: str = "") -> FaultPlan:
        """A signed image's registry content changed under it (see local_signatures)."""
        if self.run_dir is None:
            raise ConfigError("configuration: signature faults need 'sandbox_dir'")
        from chaosregistry.backends.local_signatures import signature_plan

        return signature_plan(self.run_dir, kind, image, source)

    def referrers_fault(self, status: int) -> FaultPlan:
        """nginx answers the referrers API with ``status`` (see local_referrers)."""
        if self.run_dir is None:
            raise ConfigError("configuration: signature faults need 'sandbox_dir'")
        from chaosregistry.backends.local_referrers import referrers_plan

        return referrers_plan(self.run_dir, status)

    def upstream_fault(self, status: int, retry_after: int) -> FaultPlan:
        """The mirror's remote answers ``status`` (see local_upstream)."""
        if self.run_dir is None:
            raise ConfigError("configuration: mirror-upstream faults need 'sandbox_dir'")
        from chaosregistry.backends.local_upstream import upstream_plan

        return upstream_plan(self.run_dir, status, retry_after)

    def quota_fault(self, requests: int, window: int) -> FaultPlan:
        """nginx counts manifest requests per client address (see local_quota)."""
        if self.run_dir is None:
            raise ConfigError("configuration: quota faults need 'sandbox_dir'")
        from chaosregistry.backends.local_quota import quota_plan

        return quota_plan(self.run_dir, requests, window)

    def redirect_fault(self, status: int) -> FaultPlan:
        """nginx redirects the registry's API to a new host name (see local_redirect)."""
        if self.run_dir is None:
            raise ConfigError("configuration: redirect faults need 'sandbox_dir'")
        from chaosregistry.backends.local_redirect import redirect_plan

        return redirect_plan(self.run_dir, status)


@undo_handler("sandbox.restart-process")
def restart_process(params: Mapping[str, Any]) -> None:
    """Start a sandbox process again (idempotent) and verify it answers HTTP."""
    from chaosregistry.sandbox import start_process, status

    run_dir, name = str(params["run_dir"]), str(params["name"])
    start_process(run_dir, name)
    endpoints = status(run_dir)["endpoints"]
    replica = next((r for r in endpoints["replicas"] if r["name"] == name), None)
    url: str | None = None
    verify: ssl.SSLContext | bool = True
    if replica is not None:
        url = str(replica["url"])
    elif name == MIRROR_NODE and endpoints.get("mirror_direct"):
        # Straight to the mirror, past its hop (which may carry a fault of its own), checked
        # against the sandbox's CA.
        url = str(endpoints["mirror_direct"])
        verify = ssl.create_default_context(cafile=str(endpoints["ca_file"]))
    if url is not None:
        try:
            answer = httpx.get(f"{url}/v2/", timeout=2.0, verify=verify, trust_env=False)
        except httpx.HTTPError as exc:
            raise UndoError(f"{name} restarted but does not answer: {exc}") from exc
        if answer.status_code not in (200, 401):
            raise UndoError(f"{name} restarted but answers HTTP {answer.status_code}")
