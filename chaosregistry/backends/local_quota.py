"""The local backend's quota fault: the registry counts manifest requests per client address and
answers 429 past a quota, as Docker Hub does; then it stops counting.

nginx, in front of the replicas (``registry`` and ``registry_http``, one count for both), puts
``limit_req`` keyed by ``$binary_remote_addr`` on ``/v2/<name>/manifests/<reference>``: GET and
HEAD alike (Docker Hub counts HEAD too), by tag and by digest; blobs, tags lists and the rest
are not counted. ``requests`` pass at once, then a 429 until the bucket drains: nginx's limit
is a leaky bucket, so one more request is allowed every ``window / requests`` seconds (not a
window that resets all at once). The 429 carries Docker Hub's headers, ``ratelimit-limit:
<requests>;w=<window>``, ``ratelimit-remaining: 0;w=<window>``, ``retry-after`` (the seconds
until one more request passes), and its error code ``TOOMANYREQUESTS``.

The fault writes ``route-overrides/http/quota.conf`` (its ``limit_req_zone``, a new zone each
time: a fault starts with every client's count at zero) and ``route-overrides/quota.conf``
(see ``local_routes``). The latter also answers one path of its own,
``/v2/chaosregistry/quota-probe/manifests/probe``, with the marker ``CHAOSREGISTRY_QUOTA_FAULT``:
how the fault is confirmed (and its removal verified) without spending anyone's quota.
"""

import math
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
from chaosregistry.backends.plan import QUOTA_TARGET, FaultPlan, confirmed
from chaosregistry.errors import ConfigError
from chaosregistry.faults.undo import string_param, undo_handler
from chaosregistry.oci import RegistryClient
from chaosregistry.sandbox import load_endpoints
from chaosregistry.sandbox.layout import Layout

RESTORE = "sandbox.quota-restore"
FAULT_CODE = "CHAOSREGISTRY_QUOTA_FAULT"
SNIPPET = "quota.conf"
PROBE_REPOSITORY = "chaosregistry/quota-probe"
PROBE_TAG = "probe"
# nginx's rate is a whole number of requests per minute at the finest.
MAX_WINDOW = 86400


def _ask(client: RegistryClient) -> tuple[int, list[str]]:
    client.get_manifest(PROBE_REPOSITORY, PROBE_TAG)
    return 200, []  # a manifest no one pushed: never reached while nginx answers


def _override(layout: Layout, url: str) -> RouteOverride:
    return RouteOverride(
        snippet=layout.route_overrides_dir / SNIPPET,
        url=url,
        marker=FAULT_CODE,
        ask=_ask,
        what="the quota fault",
        http_snippet=layout.http_overrides_dir / SNIPPET,
    )


def per_minute(requests: int, window: int) -> int:
    """nginx's rate for ``requests`` per ``window`` seconds, in requests per minute; ConfigError
    when it is not a whole number of at least 1 (nginx's finest)."""
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
        raise ConfigError(f"requests must be a whole number >= 1, got {requests!r}")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
        raise ConfigError(f"window must be 1-{MAX_WINDOW} whole seconds, got {window!r}")
    if (requests * 60) % window:
        raise ConfigError(
            f"{requests} requests per {window} s is not a whole number per minute (nginx's "
            "finest rate): pick a window that divides 60 x requests"
        )
    return requests * 60 // window


def quota_headers(requests: int, window: int) -> dict[str, str]:
    """Docker Hub's headers on the quota's 429: the limit and window, none remaining, and the
    seconds until the bucket lets one more request through."""
    return {
        "ratelimit-limit": f"{requests};w={window}",
        "ratelimit-remaining": f"0;w={window}",
        "retry-after": str(math.ceil(window / requests)),
    }


def _snippets(fault: str, requests: int, window: int) -> tuple[str, str]:
    """(the server context's snippet, the http context's) of quota fault ``fault``."""
    zone = fault.replace("-", "_")
    headers = "".join(
        f'    add_header {name} "{value}" always;\n'
        for name, value in quota_headers(requests, window).items()
    )
    too_many = error_body(
        ("TOOMANYREQUESTS", "You have reached your pull rate limit."),
        (FAULT_CODE, f"quota fault {fault}"),
    )
    marker = error_body((FAULT_CODE, f"quota fault {fault}"))
    server = (
        f"# quota fault {fault}: removed by its undo\n"
        f"location = /v2/{PROBE_REPOSITORY}/manifests/{PROBE_TAG} {{\n"
        "    default_type application/json;\n"
        f"    return 429 {marker};\n"
        "}\n"
        "location ~ ^/v2/.+/manifests/[^/]+$ {\n"
        # nodelay: the first ``requests`` pass at once (the first, then burst more).
        f"    limit_req zone={zone} burst={requests - 1} nodelay;\n"
        "    limit_req_status 429;\n"
        f"    error_page 429 = @{zone};\n"
        "    proxy_pass http://registry_replicas;\n"
        "}\n"
        f"location @{zone} {{\n"
        "    default_type application/json;\n"
        f"{headers}"
        f"    return 429 {too_many};\n"
        "}\n"
    )
    http = (
        f"# quota fault {fault}: removed by its undo\n"
        f"limit_req_zone $binary_remote_addr zone={zone}:1m "
        f"rate={per_minute(requests, window)}r/m;\n"
    )
    return server, http


def quota_plan(run_dir: Path, requests: int, window: int) -> FaultPlan:
    """The plan for ``registry.quota``: ``requests`` manifest requests per ``window`` seconds
    per client address, then 429."""
    per_minute(requests, window)
    layout = Layout.at(run_dir)
    url = str(load_endpoints(run_dir)["registry_direct"])
    override = _override(layout, url)
    if any(path.exists() for path in override.files()):
        raise ConfigError("a quota fault is already active: lift it first")
    fault = f"quota-{_random.token_hex(4)}"

    def apply() -> dict[str, Any]:
        server, http = _snippets(fault, requests, window)
        served = serve_override(layout.run_dir, override, server, http)
        return {
            "url": url,
            "headers": quota_headers(requests, window),
            **served,
            **confirmed(f"{url} answers the quota fault's probe path"),
        }

    return FaultPlan(
        kind="registry.quota",
        target=QUOTA_TARGET,
        parameters={"requests": requests, "window": window},
        apply=apply,
        undo={
            "kind": RESTORE,
            "params": {"run_dir": str(layout.run_dir), "url": url, "fault": fault},
        },
    )


@undo_handler(RESTORE)
def restore_quota(params: Mapping[str, Any]) -> None:
    """Remove the fault's snippets, reload nginx, verify the probe path is passed on to the
    replicas again. Idempotent; another fault's snippets are left to its undo."""
    run_dir, url, fault = (string_param(params, key) for key in ("run_dir", "url", "fault"))
    layout = Layout.at(run_dir)
    remove_override(layout.run_dir, _override(layout, url), fault)
