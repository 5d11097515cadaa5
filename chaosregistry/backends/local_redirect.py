"""The local backend's redirect fault: the registry has moved, and its old name answers every
API request with an HTTP redirect to the new one; then it serves again.

What k8s.gcr.io did from March 2023: its traffic was redirected to registry.k8s.io, whose own
front (archeio) answers ``/v2/`` itself and every other ``/v2/`` request, manifests, tags and
blobs, GET and HEAD, with a ``307 Temporary Redirect`` to the backend that holds the content.
So here: nginx, in front of the replicas (``registry`` and ``registry_http``), answers every
request under ``/v2/<name>/`` (manifests, blobs, tags, uploads; every method) with ``status``
(301, 302, 307 or 308) and ``Location: https://localhost:<port><path>``, ``<port>`` the
client-facing hop's, so the redirected requests still cross the hop. ``/v2/`` itself keeps
answering (the auth ping), as archeio's does.

The new host is the same registry under another host name, ``localhost`` (the sandbox's
certificate names it): the content is the same, the origin is not, which is what decides
what a client does with its credentials on the way (an HTTP client drops ``Authorization``
on a redirect to another host). Requests that arrive for ``localhost`` are served as usual.

The fault writes ``nginx/route-overrides/redirect.conf`` (see ``local_routes``): server-level
``if`` blocks, so the redirect comes before any location (another fault's included), and a
probe path, ``/v2/chaosregistry/redirect-probe/manifests/probe``, that only the new host
answers, with the marker ``CHAOSREGISTRY_REDIRECT_FAULT``: asked through the old name, our
client follows the redirect and meets the marker, which confirms the redirect and that the
new host serves (reverted once the old name passes the probe path on to the replicas again).
"""

import secrets as _random
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaosregistry.backends.local_routes import (
    RouteOverride,
    error_body,
    remove_override,
    serve_override,
)
from chaosregistry.backends.plan import REDIRECT_TARGET, FaultPlan, confirmed
from chaosregistry.errors import ConfigError
from chaosregistry.faults.undo import string_param, undo_handler
from chaosregistry.oci import RegistryClient
from chaosregistry.sandbox import load_endpoints
from chaosregistry.sandbox.layout import Layout

RESTORE = "sandbox.redirect-restore"
# 307 is what registry.k8s.io answers; 308 is its permanent twin; 301 and 302 let a client
# turn a POST into a GET (RFC 9110 15.4), which is what a push meets on a careless move.
STATUSES = (301, 302, 307, 308)
FAULT_CODE = "CHAOSREGISTRY_REDIRECT_FAULT"
SNIPPET = "redirect.conf"
NEW_HOST = "localhost"
PROBE_REPOSITORY = "chaosregistry/redirect-probe"
PROBE_TAG = "probe"


def _ask(client: RegistryClient) -> tuple[int, list[str]]:
    client.get_manifest(PROBE_REPOSITORY, PROBE_TAG)
    return 200, []  # a manifest no one pushed: never reached while the new host answers


def _override(layout: Layout, url: str) -> RouteOverride:
    return RouteOverride(
        snippet=layout.route_overrides_dir / SNIPPET,
        url=url,
        marker=FAULT_CODE,
        ask=_ask,
        what="the redirect fault",
    )


def new_location(hop_url: str) -> str:
    """Where the old name sends requests: the client-facing hop, under the new host name."""
    parts = urlsplit(hop_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"https://{NEW_HOST}:{port}"


def check_status(status: int) -> int:
    if isinstance(status, bool) or status not in STATUSES:
        raise ConfigError(f"status must be one of {', '.join(map(str, STATUSES))}, got {status!r}")
    return status


def redirect_snippet(fault: str, status: int, location: str) -> str:
    """The server context's snippet of redirect fault ``fault``."""
    flag = "$chaosregistry_" + fault.replace("-", "_")
    marker = error_body((FAULT_CODE, f"redirect fault {fault}: served by the new host"))
    return (
        f"# redirect fault {fault}: removed by its undo\n"
        f'set {flag} "";\n'
        f'if ($host != "{NEW_HOST}") {{\n'
        f'    set {flag} "moved";\n'
        "}\n"
        # /v2/ itself (the auth ping) stays, as registry.k8s.io's does.
        'if ($uri !~ "^/v2/.+") {\n'
        f'    set {flag} "";\n'
        "}\n"
        f'if ({flag} = "moved") {{\n'
        f"    return {status} {location}$request_uri;\n"
        "}\n"
        f"location = /v2/{PROBE_REPOSITORY}/manifests/{PROBE_TAG} {{\n"
        "    default_type application/json;\n"
        f"    return 404 {marker};\n"
        "}\n"
    )


def redirect_plan(run_dir: Path, status: int) -> FaultPlan:
    """The plan for ``registry.redirect``: the old name answers ``status`` to the new one."""
    check_status(status)
    layout = Layout.at(run_dir)
    endpoints = load_endpoints(run_dir)
    url = str(endpoints["registry_direct"])
    location = new_location(str(endpoints["registry"]))
    override = _override(layout, url)
    if override.snippet.exists():
        raise ConfigError("a redirect fault is already active: stop it first")
    fault = f"redirect-{_random.token_hex(4)}"

    def apply() -> dict[str, Any]:
        served = serve_override(layout.run_dir, override, redirect_snippet(fault, status, location))
        return {
            "url": url,
            "location": location,
            **served,
            **confirmed(f"{url} redirects to {location}, which answers the fault's probe path"),
        }

    return FaultPlan(
        kind="registry.redirect",
        target=REDIRECT_TARGET,
        parameters={"status": status, "location": location},
        apply=apply,
        undo={
            "kind": RESTORE,
            "params": {"run_dir": str(layout.run_dir), "url": url, "fault": fault},
        },
    )


@undo_handler(RESTORE)
def restore_redirect(params: Mapping[str, Any]) -> None:
    """Remove the fault's snippet, reload nginx, verify the old name serves the probe path
    itself again. Idempotent; another fault's snippet is left to its undo."""
    run_dir, url, fault = (string_param(params, key) for key in ("run_dir", "url", "fault"))
    layout = Layout.at(run_dir)
    remove_override(layout.run_dir, _override(layout, url), fault)
