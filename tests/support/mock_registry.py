"""A registry that answers from a table of routes, for the unit tests of the signature probe.

Only for what the real sandbox cannot produce on demand (a referrers API answering 500, a
malformed bundle); the probe's real behaviour is tested against the sandbox and cosign.
"""

import hashlib
from typing import Any

import httpx
import pytest

from chaosregistry.experiment.settings import RegistryTarget
from chaosregistry.oci import RegistryClient

# path -> (status, body, media type); any other path answers 404.
Routes = dict[str, tuple[int, bytes, str]]
REGISTRY_URL = "http://reg.test"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def serve(monkeypatch: pytest.MonkeyPatch, routes: Routes) -> list[str]:
    """Make every ``RegistryTarget`` client talk to ``routes`` at ``REGISTRY_URL``; returns the
    list the paths asked for are appended to, in order. A manifest served with 200 carries its
    ``Docker-Content-Digest``, as a registry's does."""
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        status, body, media_type = routes.get(request.url.path, (404, b"{}", "application/json"))
        headers = {"Content-Type": media_type}
        if "/manifests/" in request.url.path and status == 200:
            headers["Docker-Content-Digest"] = sha(body)
        return httpx.Response(status, content=body, headers=headers)

    def client(self: RegistryTarget, **_: Any) -> RegistryClient:
        return RegistryClient(REGISTRY_URL, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(RegistryTarget, "client", client)
    return asked
