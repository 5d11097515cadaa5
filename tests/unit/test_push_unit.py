"""Pushing with the client, at its HTTP boundary, for answers a real registry will not give.

Real pushes (then pulls of what was pushed) are tested against the sandbox in
test_push_sandbox.py.
"""

import hashlib
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from chaosregistry.errors import ErrorClass, PullError
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.auth import Credentials

BLOB = b"blob-bytes" * 100
MANIFEST = b'{"schemaVersion":2}'
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
Handler = Callable[[httpx.Request], httpx.Response]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def client_for(handler: Handler, **kw: object) -> RegistryClient:
    return RegistryClient("http://reg.test", transport=httpx.MockTransport(handler), **kw)  # type: ignore[arg-type]


def uploads(
    *,
    has: bool = False,
    start: httpx.Response | None = None,
    location: str = "/v2/app/blobs/uploads/u1?_state=signed%3D%3D",
) -> tuple[Handler, list[httpx.Request]]:
    """A registry that takes uploads; ``seen`` keeps every request, in order."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "HEAD":
            return httpx.Response(200 if has else 404)
        if request.method == "POST":
            return start or httpx.Response(202, headers={"location": location})
        if request.method == "PUT" and "/blobs/uploads/" in request.url.path:
            return httpx.Response(201, headers={"docker-content-digest": digest(request.read())})
        return httpx.Response(404)

    return handler, seen


def push_error(handler: Handler) -> PullError:
    with client_for(handler) as client, pytest.raises(PullError) as caught:
        client.push_blob("app", BLOB)
    return caught.value


def test_a_blob_the_registry_has_is_not_uploaded_again() -> None:
    handler, seen = uploads(has=True)
    with client_for(handler) as client:
        assert client.push_blob("app", BLOB) == digest(BLOB)
    assert [r.method for r in seen] == ["HEAD"]


def test_upload_keeps_the_location_query_and_adds_the_digest() -> None:
    handler, seen = uploads()
    with client_for(handler) as client:
        client.push_blob("app", BLOB)
    put = seen[-1]
    assert [r.method for r in seen] == ["HEAD", "POST", "PUT"]
    assert put.url.host == "reg.test" and put.url.path == "/v2/app/blobs/uploads/u1"
    assert parse_qs(put.url.query.decode()) == {"_state": ["signed=="], "digest": [digest(BLOB)]}
    assert put.read() == BLOB


def test_refused_upload_is_classified_in_one_line() -> None:
    denied = httpx.Response(403, json={"errors": [{"code": "DENIED"}]})
    error = push_error(uploads(start=denied)[0])
    assert error.error_class is ErrorClass.AUTH and error.status == 403
    assert str(error) == f"push blob app@{digest(BLOB)[:19]}: HTTP 403 (DENIED)"


def test_upload_start_without_a_location_is_a_protocol_error() -> None:
    error = push_error(uploads(start=httpx.Response(202))[0])
    assert error.error_class is ErrorClass.PROTOCOL
    assert "without a Location" in str(error) and "\n" not in str(error)


def test_upload_start_with_an_unexpected_success_code_is_a_protocol_error() -> None:
    error = push_error(uploads(start=httpx.Response(200, headers={"location": "/x"}))[0])
    assert error.error_class is ErrorClass.PROTOCOL and error.status == 200
    assert "expected 202" in str(error)


def test_manifest_stored_under_another_digest_is_a_mismatch() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"docker-content-digest": digest(b"other")})

    with client_for(handler) as client, pytest.raises(PullError) as caught:
        client.push_manifest("app", "v1", MANIFEST, OCI_MANIFEST)
    assert caught.value.error_class is ErrorClass.DIGEST_MISMATCH


def test_manifest_is_sent_with_its_media_type_and_its_digest_returned() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, headers={"docker-content-digest": digest(request.read())})

    with client_for(handler) as client:
        assert client.push_manifest("app", "v1", MANIFEST, OCI_MANIFEST) == digest(MANIFEST)
    assert seen[0].url.path == "/v2/app/manifests/v1"
    assert seen[0].headers["content-type"] == OCI_MANIFEST


def test_push_asks_for_a_pull_push_token_and_pull_keeps_its_own() -> None:
    scopes: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            scope = request.url.params["scope"]
            scopes.append(scope)
            return httpx.Response(200, json={"token": scope, "expires_in": 300})
        scope = request.headers.get("authorization", "").removeprefix("Bearer ")
        needed = "repository:app:pull" if request.method == "GET" else "repository:app:pull,push"
        if scope != needed:
            challenge = f'Bearer realm="http://reg.test/token",service="reg",scope="{needed}"'
            return httpx.Response(401, headers={"www-authenticate": challenge})
        if request.method == "GET":
            return httpx.Response(200, content=MANIFEST, headers={"content-type": OCI_MANIFEST})
        return uploads()[0](request)

    with client_for(handler, credentials=Credentials("u", "p")) as client:
        client.push_blob("app", BLOB)
        client.push_blob("app", b"second")
        client.get_manifest("app", "v1")
    # One token per scope: the push's covered its HEAD, POST and PUT of both blobs.
    assert scopes == ["repository:app:pull,push", "repository:app:pull"]
