"""The local backend's mirror-upstream fault: the pull-through mirror's remote answers 429 (rate
limited, as Docker Hub does) or 503 instead of vanishing; then it serves again.

The mirror reaches its remote through the ``mirror-upstream`` hop and nginx's
``mirror-upstream`` server, in front of the token-auth registry. The fault writes
``nginx/route-overrides/mirror-upstream/upstream-status.conf`` (see ``local_routes``): a regex
``location`` answering every manifest and blob request (``/v2/<name>/manifests/...``,
``/v2/<name>/blobs/...``, GET and HEAD alike) with the status, before the registry is asked.
``/v2/`` itself (the mirror's auth ping) and the token realm keep answering, as Docker Hub's do
while it throttles. A 429 carries Docker Hub's headers (``ratelimit-limit``,
``ratelimit-remaining: 0``, ``retry-after``) and its error code ``TOOMANYREQUESTS``; a 503
carries ``retry-after`` and ``UNAVAILABLE``. Both also carry the error code
``CHAOSREGISTRY_UPSTREAM_FAULT``: applied once nginx's server answers a manifest request with
it, reverted once it answers without it.
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
from chaosregistry.backends.plan import MIRROR_UPSTREAM_TARGET, FaultPlan, confirmed
from chaosregistry.errors import ConfigError
from chaosregistry.faults.undo import string_param, undo_handler
from chaosregistry.oci import RegistryClient
from chaosregistry.sandbox import load_endpoints
from chaosregistry.sandbox.layout import Layout

RESTORE = "sandbox.upstream-restore"
STATUSES = (429, 503)
FAULT_CODE = "CHAOSREGISTRY_UPSTREAM_FAULT"
SNIPPET = "upstream-status.conf"
# Docker Hub's anonymous quota at the time of writing: 100 pulls per 6 hours (a window in
# seconds, as its ``ratelimit-limit: 100;w=21600`` says).
RATELIMIT_LIMIT = 100
RATELIMIT_WINDOW = 21600
# The registry error code each status comes with (Docker Hub's for 429, the spec's for 503).
STATUS_CODES = {
    429: ("TOOMANYREQUESTS", "You have reached your pull rate limit."),
    503: (
        "UNAVAILABLE",
        "service unavailable",
    ),
}
# Any repository and digest will do: the fault's location answers before a registry is asked.
PROBE_REPOSITORY = "chaosregistry/probe"
PROBE_DIGEST = "sha256:" + "0" * 64


def _ask(client: RegistryClient) -> tuple[int, list[str]]:
    client.get_manifest(PROBE_REPOSITORY, PROBE_DIGEST)
    return 200, []  # a manifest no one pushed: never reached while nginx answers


def _override(layout: Layout, url: str) -> RouteOverride:
    return RouteOverride(
        snippet=layout.mirror_upstream_overrides_dir / SNIPPET,
        url=url,
        marker=FAULT_CODE,
        ask=_ask,
        what="the mirror-upstream fault",
    )


def upstream_headers(status: int, retry_after: int) -> dict[str, str]:
    """The headers of the fault's answers: Docker Hub's on a 429, ``retry-after`` on both."""
    headers = {"retry-after": str(retry_after)}
    if status == 429:
        headers["ratelimit-limit"] = f"{RATELIMIT_LIMIT};w={RATELIMIT_WINDOW}"
        headers["ratelimit-remaining"] = f"0;w={RATELIMIT_WINDOW}"
    return headers


def _location(fault: str, status: int, retry_after: int) -> str:
    code, message = STATUS_CODES[status]
    body = error_body((code, message), (FAULT_CODE, f"mirror-upstream fault {fault}"))
    headers = "".join(
        f'    add_header {name} "{value}" always;\n'
        for name, value in upstream_headers(status, retry_after).items()
    )
    return (
        f"# mirror-upstream fault {fault}: removed by its undo\n"
        "location ~ ^/v2/.+/(manifests|blobs)/[^/]+$ {\n"
        "    default_type application/json;\n"
        f"{headers}"
        f"    return {status} {body};\n"
        "}\n"
    )


def upstream_plan(run_dir: Path, status: int, retry_after: int) -> FaultPlan:
    """The plan for ``mirror.upstream-status``: the mirror's remote answers ``status``."""
    if status not in STATUSES:
        raise ConfigError(f"status must be one of {', '.join(map(str, STATUSES))}, got {status!r}")
    if not 0 <= retry_after <= 86400:
        raise ConfigError(f"retry_after must be 0-86400 seconds, got {retry_after!r}")
    layout = Layout.at(run_dir)
    url = str(load_endpoints(run_dir)["token_registry"])
    override = _override(layout, url)
    if override.snippet.exists():
        raise ConfigError("a mirror-upstream fault is already active: restore it first")
    fault = f"upstream-{status}-{_random.token_hex(4)}"

    def apply() -> dict[str, Any]:
        served = serve_override(layout.run_dir, override, _location(fault, status, retry_after))
        return {
            "url": url,
            "status": status,
            "headers": upstream_headers(status, retry_after),
            **served,
            **confirmed(f"{url} answers {status} to a manifest request"),
        }

    return FaultPlan(
        kind="mirror.upstream-status",
        target=MIRROR_UPSTREAM_TARGET,
        parameters={"status": status, "retry_after": retry_after},
        apply=apply,
        undo={
            "kind": RESTORE,
            "params": {"run_dir": str(layout.run_dir), "url": url, "fault": fault},
        },
    )


@undo_handler(RESTORE)
def restore_upstream(params: Mapping[str, Any]) -> None:
    """Remove the fault's snippet, reload nginx, verify the mirror's remote answers manifest
    requests from the registry again. Idempotent; a snippet of another fault is left to that
    fault's undo."""
    run_dir, url, fault = (string_param(params, key) for key in ("run_dir", "url", "fault"))
    layout = Layout.at(run_dir)
    remove_override(layout.run_dir, _override(layout, url), fault)
