"""Redirects at the HTTP boundary: what the one pull core does when a registry answers with a
redirect (blobs to storage, or the whole API to a registry's new host), and the redirect
fault's nginx snippet (the sandbox tier applies it for real)."""

import hashlib
import json
from collections.abc import Callable

import httpx
import pytest

from chaosregistry.backends.local_redirect import check_status, new_location, redirect_snippet
from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.oci import ImageReference, RegistryClient, pull
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.protocol import PULL, Answer, Request, exchange, other_origin

Handler = Callable[[httpx.Request], httpx.Response]
BEARER_NEW = 'Bearer realm="http://new.test/token",service="new",scope="repository:app:pull"'
BLOBS = {b'{"architecture":"amd64","os":"linux"}', b"layer bytes"}


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def registry(*, auth: str = "none") -> tuple[Handler, dict[str, int]]:
    """Image ``app:v1`` (a config and one layer) on reg.test, anonymous or behind bearer
    tokens; ``calls`` counts the tokens it issued."""
    config, layer = sorted(BLOBS, key=len, reverse=True)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": digest(config), "size": len(config), "mediaType": "x"},
            "layers": [{"digest": digest(layer), "size": len(layer), "mediaType": "y"}],
        }
    ).encode()
    blobs = {digest(blob): blob for blob in BLOBS}
    calls = {"token": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/token":
            calls["token"] += 1
            return httpx.Response(200, json={"token": "t", "expires_in": 300})
        if auth == "bearer" and not request.headers.get("authorization", "").startswith("Bearer"):
            challenge = 'Bearer realm="http://reg.test/token",service="reg"'
            return httpx.Response(401, headers={"www-authenticate": challenge})
        if path == "/v2/app/manifests/v1":
            media = "application/vnd.oci.image.manifest.v1+json"
            return httpx.Response(
                200,
                content=body,
                headers={"content-type": media, "docker-content-digest": digest(body)},
            )
        return httpx.Response(200, content=blobs[path.rpartition("/")[2]])

    return handler, calls


def routed(hosts: dict[str, Handler], seen: list[httpx.Request]) -> RegistryClient:
    """A client of http://reg.test whose requests reach the handler of their host."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return hosts[request.url.host](request)

    return RegistryClient(
        "http://reg.test",
        transport=httpx.MockTransport(handler),
        credentials=Credentials("u", "p"),
    )


def test_blobs_redirected_to_storage_are_fetched_without_the_registrys_authorization() -> None:
    inner, _ = registry(auth="bearer")
    storage, _ = registry()  # serves anyone: a signed URL, in life

    def old(request: httpx.Request) -> httpx.Response:
        if "/blobs/" in request.url.path and request.headers.get("authorization"):
            return httpx.Response(307, headers={"location": f"http://store.test{request.url.path}"})
        return inner(request)

    seen: list[httpx.Request] = []
    with routed({"reg.test": old, "store.test": storage}, seen) as client:
        result = pull(client, ImageReference.parse("app:v1"))
    assert result.ok, result.error
    stored = [r for r in seen if r.url.host == "store.test"]
    assert len(stored) == 2  # the config and the layer
    assert all("authorization" not in r.headers for r in stored)


def test_an_api_moved_to_a_host_that_asks_for_credentials_fails_as_auth_naming_it() -> None:
    """The registry redirects every request to its new host, which challenges: the registry's
    credentials go neither to the new host nor to the realm it names."""

    def old(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"location": f"http://new.test{request.url.path}"})

    def new(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "stolen", "expires_in": 300})
        return httpx.Response(401, headers={"www-authenticate": BEARER_NEW})

    seen: list[httpx.Request] = []
    with routed({"reg.test": old, "new.test": new}, seen) as client:
        result = pull(client, ImageReference.parse("app:v1"))
    assert not result.ok and result.error is not None
    assert result.error.error_class is ErrorClass.AUTH
    assert "redirected to http://new.test:80, which asks for credentials" in str(result.error)
    assert result.error.detail == {"redirected_to": "http://new.test:80"}
    at_new = [r for r in seen if r.url.host == "new.test"]
    assert [r.url.path for r in at_new] == ["/v2/app/manifests/v1"]  # no token request
    assert all("authorization" not in r.headers for r in at_new)


def test_a_redirect_on_the_same_origin_keeps_answering_the_registrys_challenge() -> None:
    inner, calls = registry(auth="bearer")

    def moved_path(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/old/"):
            url = request.url.copy_with(path=request.url.path[4:])
            return inner(httpx.Request(request.method, url, headers=request.headers))
        if request.url.path.startswith("/v2/"):
            return httpx.Response(308, headers={"location": f"/old{request.url.path}"})
        return inner(request)

    seen: list[httpx.Request] = []
    with routed({"reg.test": moved_path}, seen) as client:
        result = pull(client, ImageReference.parse("app:v1"))
    assert result.ok, result.error
    assert calls["token"] == 1


def test_the_core_refuses_a_challenge_from_another_origin_without_asking_a_token() -> None:
    steps = exchange(_Nobody(), Request("GET", "/v2/app/manifests/v1", "manifest", "m"), "app")
    next(steps)
    answer = Answer(401, {"www-authenticate": BEARER_NEW}, redirected_to="http://new.test:80")
    with pytest.raises(PullError) as refused:
        steps.send(answer)
    assert refused.value.error_class is ErrorClass.AUTH and refused.value.status == 401


class _Nobody:
    """An authenticator that must not be asked about the challenge."""

    def authorization(self, repository: str, actions: str = PULL) -> dict[str, str]:
        return {}

    def on_challenge(self, *args: object) -> str:
        raise AssertionError("a challenge from another origin was answered")


@pytest.mark.parametrize(
    ("sent", "answered", "other"),
    [
        ("https://a.test/v2/x", "https://a.test/v2/y", ""),
        ("https://a.test/v2/x", "https://A.test:443/v2/y", ""),
        ("http://a.test/v2/x", "https://a.test/v2/x", ""),  # an upgrade to https
        ("http://a.test:5000/v2/x", "https://a.test:5001/v2/x", "https://a.test:5001"),
        ("http://a.test/v2/x", "https://b.test/v2/x", "https://b.test:443"),
        ("https://a.test/v2/x", "http://a.test/v2/x", "http://a.test:80"),  # a downgrade
        ("https://127.0.0.1:15000/v2/x", "https://localhost:15000/v2/x", "https://localhost:15000"),
        ("https://a.test:5000/v2/x", "https://a.test:5001/v2/x", "https://a.test:5001"),
    ],
)
def test_another_origin_is_another_scheme_host_or_port(
    sent: str, answered: str, other: str
) -> None:
    assert other_origin(sent, answered) == other


def test_the_snippet_redirects_the_api_but_not_the_ping_nor_the_new_host() -> None:
    location = new_location("https://127.0.0.1:15000")
    assert location == "https://localhost:15000"
    snippet = redirect_snippet("redirect-0a1b", 308, location)
    assert 'if ($host != "localhost")' in snippet
    assert 'if ($uri !~ "^/v2/.+")' in snippet
    assert "return 308 https://localhost:15000$request_uri;" in snippet
    assert "CHAOSREGISTRY_REDIRECT_FAULT" in snippet


@pytest.mark.parametrize("status", [200, 303, 404, True, "307"])
def test_a_status_that_is_no_redirect_it_makes_is_refused(status: object) -> None:
    with pytest.raises(ConfigError, match="status must be one of 301, 302, 307, 308"):
        check_status(status)  # type: ignore[arg-type]
