"""The sandbox nginx answering some routes itself: how the local backend's HTTP faults work.

A fault writes one nginx snippet (``location`` blocks, server context) into a route-overrides
directory that one or more of nginx's servers include, reloads nginx, and counts as applied only
once the server, asked, answers with the fault's marker (a registry error code in the answer's
body); its undo removes the snippet, reloads, and counts as reverted only once the marker is
gone. The processes behind nginx are untouched. Used by the referrers fault
(``local_referrers``) and the mirror-upstream fault (``local_upstream``).
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosregistry.errors import PullError
from chaosregistry.faults.undo import UndoError
from chaosregistry.oci import RegistryClient
from chaosregistry.sandbox import SandboxError, load_credentials, load_endpoints, reload_nginx

# A reload takes nginx well under a second on the sandbox; 10 s covers a machine under load.
RELOAD_TIMEOUT = 10.0

# What a fault's answer says: its HTTP status and the registry error codes in its body.
Ask = Callable[[RegistryClient], tuple[int, list[str]]]


@dataclass(frozen=True)
class RouteOverride:
    """One fault's snippet and how to see it served: ``url`` is the nginx server that includes
    ``snippet``'s directory, ``ask`` one request to it, ``marker`` the error code every answer
    of the fault carries."""

    snippet: Path
    url: str
    marker: str
    ask: Ask
    what: str  # e.g. "the referrers fault", for messages
    # What the snippet needs declared in nginx's http context (a limit_req_zone), if anything.
    http_snippet: Path | None = None

    def files(self) -> list[Path]:
        return [self.snippet] + ([self.http_snippet] if self.http_snippet else [])


def error_body(*errors: tuple[str, str]) -> str:
    """A registry error body (``{"errors": [...]}``) of ``(code, message)`` pairs, quoted for an
    nginx ``return`` (single quotes, none inside)."""
    body = json.dumps(
        {
            "errors": [
                {"code": code, "message": message, "detail": None} for code, message in errors
            ]
        },
        separators=(",", ":"),
    )
    return "'" + body.replace("'", "") + "'"


def answered_status(run_dir: Path, override: RouteOverride) -> int | None:
    """The status of the fault's answer if nginx gives it now, else None."""
    with RegistryClient(
        override.url,
        credentials=load_credentials(run_dir),
        verify=str(load_endpoints(run_dir)["ca_file"]),
        timeout=5.0,
        connect_timeout=2.0,
    ) as client:
        try:
            status, codes = override.ask(client)
        except PullError as exc:
            if exc.status is None:
                return None  # no answer during the reload: keep looking
            status, codes = exc.status, list(exc.detail.get("codes", ()))
    return status if override.marker in codes else None


def _wait(run_dir: Path, override: RouteOverride, *, faulty: bool) -> None:
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while (answered_status(run_dir, override) is not None) != faulty:
        if time.monotonic() > deadline:
            state = "does not answer with" if faulty else "still answers with"
            raise UndoError(
                f"{override.url} {state} {override.what} {RELOAD_TIMEOUT:g}s after the nginx "
                "reload (see logs/nginx-error.log)"
            )
        time.sleep(0.1)


def serve_override(
    run_dir: Path, override: RouteOverride, text: str, http_text: str = ""
) -> dict[str, Any]:
    """Write the snippet (and ``http_text`` to ``http_snippet``; never over another), reload
    nginx, wait until the fault is answered; what it did: ``snippet``, ``nginx_pid``,
    ``seconds_to_serve``."""
    # The http context's part first: the server's part may use what it declares.
    texts = [text] + ([http_text] if override.http_snippet else [])
    for path, content in reversed(list(zip(override.files(), texts, strict=True))):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:
            handle.write(content)
    started = time.monotonic()
    nginx_pid = reload_nginx(run_dir)
    _wait(run_dir, override, faulty=True)
    return {
        "snippet": str(override.snippet),
        "nginx_pid": nginx_pid,
        "seconds_to_serve": time.monotonic() - started,
    }


def _holds(path: Path, fault: str) -> bool:
    try:
        return fault in path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False


def remove_override(run_dir: Path, override: RouteOverride, fault: str) -> None:
    """Remove fault ``fault``'s snippets, reload nginx, verify the fault is no longer answered.

    Idempotent; a snippet of another fault (this one never wrote its own) is left to that
    fault's undo. With the sandbox gone, or nginx not running, there is nothing to verify."""
    if not run_dir.is_dir():
        return  # the sandbox is gone, and with it what nginx answered
    ours = [path for path in override.files() if _holds(path, fault)]
    if not ours and (override.snippet.exists() or answered_status(run_dir, override) is None):
        return  # another fault's snippet, or never applied, or already reverted
    for path in ours:
        path.unlink()
    try:
        reload_nginx(run_dir)
    except SandboxError:
        return
    _wait(run_dir, override, faulty=False)
