"""The local backend's referrers fault: the sandbox nginx answers the OCI referrers API itself,
with an error, in front of the replicas; then it passes it on again.

A verifier that finds bundle signatures through ``GET /v2/<name>/referrers/<digest>`` meets
what a proxy or a registry upgrade gone wrong does to it:

==========  ==================================  ==========================================
status      what a client does (OCI spec)       ``image_signature`` says
==========  ==================================  ==========================================
``404``     "no referrers API": falls back to   ``referrers.outcome`` ``absent``,
            the referrers tag ``sha256-<hex>``  ``fell_back``; where the registry has the
                                                API (ggcr) nothing is in the tag: a
                                                bundle-signed image is ``unsigned``
                                                (cosign: "no signatures found");
                                                Distribution keeps the tag: ``verified``
``500``,    no fallback: the bundles are not    ``referrers.outcome`` ``failed``,
``502``,    found (cosign: "no signatures       ``referrers.error.class`` ``server-error``;
``503``     found" for a bundle-signed image)   a bundle-signed image has verdict null
                                                and that ``error``; legacy ``.sig``
                                                signatures still verify
==========  ==================================  ==========================================

The fault writes ``nginx/route-overrides/referrers.conf`` (a regex ``location`` for
``/v2/.../referrers/...``, included by nginx's ``registry`` and ``registry_http`` servers) and
reloads nginx (``local_routes``); the replicas themselves are untouched, so their direct URLs
still answer. The answer carries the registry error code ``CHAOSREGISTRY_REFERRERS_FAULT`` and
the fault's id: applied once ``registry_direct`` answers the referrers API with it, reverted
(the snippet removed, nginx reloaded) once it answers without it.
"""

import secrets as _random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosregistry.backends.local_routes import (
    RouteOverride,
    error_body,
    remove_override,
    serve_override,
)
from chaosregistry.backends.plan import REFERRERS_TARGET, FaultPlan, confirmed
from chaosregistry.errors import ConfigError
from chaosregistry.faults.undo import string_param, undo_handler
from chaosregistry.oci import RegistryClient
from chaosregistry.sandbox import load_endpoints
from chaosregistry.sandbox.layout import Layout

RESTORE = "sandbox.referrers-restore"
STATUSES = (404, 500, 502, 503)
FAULT_CODE = "CHAOSREGISTRY_REFERRERS_FAULT"
SNIPPET = "referrers.conf"
# Any digest will do: the fault's location answers before a registry is asked.
PROBE_REPOSITORY = "signed/app"
PROBE_DIGEST = "sha256:" + "0" * 64


def _ask(client: RegistryClient) -> tuple[int, list[str]]:
    answer = client.referrers(PROBE_REPOSITORY, PROBE_DIGEST)
    codes = answer.error.detail.get("codes", []) if answer.error is not None else []
    return answer.status, list(codes)


def _override(layout: Layout, url: str) -> RouteOverride:
    return RouteOverride(
        snippet=layout.route_overrides_dir / SNIPPET,
        url=url,
        marker=FAULT_CODE,
        ask=_ask,
        what="the referrers fault",
    )


def _location(fault: str, status: int) -> str:
    body = error_body((FAULT_CODE, f"referrers API fault {fault}"))
    return (
        f"# referrers fault {fault}: removed by its undo\n"
        "location ~ ^/v2/.+/referrers/[^/]+$ {\n"
        "    default_type application/json;\n"
        f"    return {status} {body};\n"
        "}\n"
    )


def referrers_plan(run_dir: Path, status: int) -> FaultPlan:
    """The plan for ``signature.referrers``: nginx answers the referrers API with ``status``."""
    if status not in STATUSES:
        raise ConfigError(f"status must be one of {', '.join(map(str, STATUSES))}, got {status!r}")
    layout = Layout.at(run_dir)
    url = str(load_endpoints(run_dir)["registry_direct"])
    override = _override(layout, url)
    if override.snippet.exists():
        raise ConfigError("a referrers fault is already active: restore it first")
    fault = f"referrers-{status}-{_random.token_hex(4)}"

    def apply() -> dict[str, Any]:
        served = serve_override(layout.run_dir, override, _location(fault, status))
        return {"url": url, "status": status, **served, **confirmed(f"{url} answers {status}")}

    return FaultPlan(
        kind="signature.referrers",
        target=REFERRERS_TARGET,
        parameters={"status": status},
        apply=apply,
        undo={
            "kind": RESTORE,
            "params": {"run_dir": str(layout.run_dir), "url": url, "fault": fault},
        },
    )


@undo_handler(RESTORE)
def restore_referrers(params: Mapping[str, Any]) -> None:
    """Remove the fault's snippet, reload nginx, verify the referrers API is passed on to the
    replicas again. Idempotent; a snippet of another fault (this one never wrote its own) is
    left to that fault's undo. With nginx not running, removing the snippet is enough."""
    run_dir, url, fault = (string_param(params, key) for key in ("run_dir", "url", "fault"))
    layout = Layout.at(run_dir)
    remove_override(layout.run_dir, _override(layout, url), fault)
