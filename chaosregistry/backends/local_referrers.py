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
reloads nginx; the replicas themselves are untouched, so their direct URLs still answer. The
answer carries the registry error code ``CHAOSREGISTRY_REFERRERS_FAULT`` and the fault's id:
applied once ``registry_direct`` answers the referrers API with it, reverted (the snippet
removed, nginx reloaded) once it answers without it.
"""

import secrets as _random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosregistry.backends.plan import REFERRERS_TARGET, FaultPlan, confirmed
from chaosregistry.errors import ConfigError, PullError
from chaosregistry.faults.undo import UndoError, string_param, undo_handler
from chaosregistry.oci import RegistryClient
from chaosregistry.sandbox import SandboxError, load_credentials, load_endpoints, reload_nginx
from chaosregistry.sandbox.layout import Layout

RESTORE = "sandbox.referrers-restore"
STATUSES = (404, 500, 502, 503)
FAULT_CODE = "CHAOSREGISTRY_REFERRERS_FAULT"
SNIPPET = "referrers.conf"
# A reload takes nginx well under a second on the sandbox; 10 s covers a machine under load.
RELOAD_TIMEOUT = 10.0
# Any digest will do: the fault's location answers before a registry is asked.
PROBE_REPOSITORY = "signed/app"
PROBE_DIGEST = "sha256:" + "0" * 64


def _snippet(layout: Layout) -> Path:
    return layout.route_overrides_dir / SNIPPET


def _location(fault: str, status: int) -> str:
    body = (
        f'{{"errors":[{{"code":"{FAULT_CODE}","message":"referrers API fault {fault}",'
        '"detail":null}]}'
    )
    return (
        f"# referrers fault {fault}: removed by its undo\n"
        "location ~ ^/v2/.+/referrers/[^/]+$ {\n"
        "    default_type application/json;\n"
        f"    return {status} '{body}';\n"
        "}\n"
    )


def _answers_fault(run_dir: Path, url: str) -> int | None:
    """The status of the fault's answer if nginx gives it now, else None."""
    with RegistryClient(
        url,
        credentials=load_credentials(run_dir),
        verify=str(load_endpoints(run_dir)["ca_file"]),
        timeout=5.0,
        connect_timeout=2.0,
    ) as client:
        try:
            answer = client.referrers(PROBE_REPOSITORY, PROBE_DIGEST)
        except PullError:
            return None  # no answer during the reload: keep looking
    if answer.error is not None and FAULT_CODE in answer.error.detail.get("codes", ()):
        return answer.status
    return None


def _wait(run_dir: Path, url: str, *, faulty: bool) -> None:
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while (_answers_fault(run_dir, url) is not None) != faulty:
        if time.monotonic() > deadline:
            state = "does not answer with" if faulty else "still answers with"
            raise UndoError(
                f"{url} {state} the referrers fault {RELOAD_TIMEOUT:g}s after the nginx reload "
                "(see logs/nginx-error.log)"
            )
        time.sleep(0.1)


def referrers_plan(run_dir: Path, status: int) -> FaultPlan:
    """The plan for ``signature.referrers``: nginx answers the referrers API with ``status``."""
    if status not in STATUSES:
        raise ConfigError(f"status must be one of {', '.join(map(str, STATUSES))}, got {status!r}")
    layout = Layout.at(run_dir)
    url = str(load_endpoints(run_dir)["registry_direct"])
    snippet = _snippet(layout)
    if snippet.exists():
        raise ConfigError("a referrers fault is already active: restore it first")
    fault = f"referrers-{status}-{_random.token_hex(4)}"

    def apply() -> dict[str, Any]:
        layout.route_overrides_dir.mkdir(parents=True, exist_ok=True)
        with snippet.open("x", encoding="utf-8") as handle:
            handle.write(_location(fault, status))
        started = time.monotonic()
        nginx_pid = reload_nginx(run_dir)
        _wait(run_dir, url, faulty=True)
        return {
            "url": url,
            "status": status,
            "snippet": str(snippet),
            "nginx_pid": nginx_pid,
            "seconds_to_serve": time.monotonic() - started,
            **confirmed(f"{url} answers {status}"),
        }

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
    if not layout.run_dir.is_dir():
        return  # the sandbox is gone, and with it what nginx answered
    snippet = _snippet(layout)
    try:
        text = snippet.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    if text is not None and fault not in text:
        return
    if text is None and _answers_fault(Path(run_dir), url) is None:
        return  # never applied, or already reverted: no reload needed
    if text is not None:
        snippet.unlink()
    try:
        reload_nginx(run_dir)
    except SandboxError:
        return
    _wait(Path(run_dir), url, faulty=False)
