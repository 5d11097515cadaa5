"""The pull client at its HTTP boundary, for edge cases a real registry will not produce.

Real-registry behaviour is tested against the sandbox in test_pull_sandbox.py.
"""

import hashlib
import json
import ssl
from collections.abc import Callable

import httpx
import pytest

from chaosregistry.errors import ConfigError, ErrorClass
from chaosregistry.oci import ImageReference, Platform, RegistryClient, pull
from chaosregistry.oci.auth import Challenge, Credentials
from chaosregistry.oci.failures import from_exception

LAYER = b"layer-bytes" * 1000
CONFIG = b'{"architecture":"amd64","os":"linux"}'


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest(layer: bytes = LAYER, layer_size: int | None = None) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": digest(CONFIG), "size": len(CONFIG), "mediaType": "x"},
            "layers": [
                {"digest": digest(layer), "size": layer_size or len(layer), "mediaType": "y"}
            ],
        }
    ).encode()


def registry(
    *, layer_body: bytes = LAYER, manifest_body: bytes | None = None, auth: str = "none"
) -> tuple[Callable[[httpx.Request], httpx.Response], dict[str, int]]:
    """A tiny in-memory registry; ``calls`` counts what it saw."""
    body = manifest_body or manifest()
    calls = {"token": 0, "requests": 0, "unauthorized": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/token":
            calls["token"] += 1
            return httpx.Response(200, json={"token": f"t{calls['token']}", "expires_in": 300})
        calls["requests"] += 1
        header = request.headers.get("authorization", "")
        if auth == "bearer" and not header.startswith("Bearer "):
            calls["unauthorized"] += 1
            return httpx.Response(
                401,
                headers={
                    "www-authenticate": 'Bearer realm="http://reg.test/token",service="reg",'
                    'scope="repository:app:pull"'
                },
            )
        if path.endswith("/manifests/v1"):
            return httpx.Response(
                200,
                content=body,
                headers={
                    "content-type": "application/vnd.oci.image.manifest.v1+json",
                    "docker-content-digest": digest(body),
                },
            )
        if path.endswith(digest(CONFIG)):
            return httpx.Response(200, content=CONFIG)
        if "/blobs/" in path:
            return httpx.Response(200, content=layer_body)
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})

    return handler, calls


def client_for(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> RegistryClient:
    return RegistryClient("http://reg.test", transport=httpx.MockTransport(handler), **kw)  # type: ignore[arg-type]


def test_bearer_token_is_fetched_once_and_reused_across_pulls() -> None:
    handler, calls = registry(auth="bearer")
    with client_for(handler, credentials=Credentials("u", "p")) as client:
        for _ in range(3):
            result = pull(client, ImageReference.parse("app:v1"))
            assert result.ok, result.error
    assert calls["token"] == 1
    assert calls["unauthorized"] == 1  # only the very first request was challenged


def test_blob_with_wrong_content_is_a_digest_mismatch() -> None:
    handler, _ = registry(layer_body=b"X" * len(LAYER))
    with client_for(handler) as client:
        result = pull(client, ImageReference.parse("app:v1"))
    assert not result.ok and result.error is not None
    assert result.error.error_class is ErrorClass.DIGEST_MISMATCH


def test_blob_shorter_than_its_descriptor_is_truncated() -> None:
    handler, _ = registry(layer_body=LAYER[:-10])
    with client_for(handler) as client:
        result = pull(client, ImageReference.parse("app:v1"))
    assert result.error is not None and result.error.error_class is ErrorClass.TRUNCATED


def test_blob_longer_than_its_descriptor_is_refused() -> None:
    handler, _ = registry(layer_body=LAYER + b"extra")
    with client_for(handler) as client:
        result = pull(client, ImageReference.parse("app:v1"))
    assert result.error is not None and result.error.error_class is ErrorClass.DIGEST_MISMATCH


def test_manifest_that_does_not_match_its_digest_header_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=manifest(),
            headers={"docker-content-digest": "sha256:" + "0" * 64, "content-type": "x"},
        )

    with client_for(handler) as client:
        result = pull(client, ImageReference.parse("app:v1"))
    assert result.error is not None and result.error.error_class is ErrorClass.DIGEST_MISMATCH


def test_verification_off_skips_the_hash_but_not_the_size_check() -> None:
    handler, _ = registry(layer_body=b"X" * len(LAYER))
    with client_for(handler) as client:
        result = pull(client, ImageReference.parse("app:v1"), verify=False)
    assert result.ok and not result.verified


def test_rate_limit_keeps_retry_after_and_ratelimit_headers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"retry-after": "7", "ratelimit-limit": "100;w=21600", "x-other": "no"},
            json={"errors": [{"code": "TOOMANYREQUESTS"}]},
        )

    with client_for(handler) as client:
        result = pull(client, ImageReference.parse("app:v1"))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.RATE_LIMITED
    assert result.error.detail["retry-after"] == "7"
    assert result.error.detail["ratelimit-limit"] == "100;w=21600"
    assert "x-other" not in result.error.detail
    assert result.error.detail["codes"] == ["TOOMANYREQUESTS"]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("slow"), ErrorClass.TIMEOUT),
        (httpx.ReadTimeout("slow"), ErrorClass.TIMEOUT),
        (httpx.ConnectError("[Errno 111] Connection refused"), ErrorClass.REFUSED),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), ErrorClass.RESET),
        (
            httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            ),
            ErrorClass.TRUNCATED,
        ),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            ErrorClass.RESET,
        ),
    ],
)
def test_transport_failures_are_classified(exc: Exception, expected: ErrorClass) -> None:
    assert from_exception(exc, "x").error_class is expected


def test_server_error_and_unknown_manifest_are_classified() -> None:
    for status, expected in ((503, ErrorClass.SERVER_ERROR), (404, ErrorClass.NOT_FOUND)):
        with client_for(lambda r, s=status: httpx.Response(s)) as client:
            result = pull(client, ImageReference.parse("app:v1"))
        assert result.error is not None and result.error.error_class is expected


def test_challenge_parsing_handles_quoted_and_bare_values() -> None:
    c = Challenge.parse('Bearer realm="https://a/token",service=reg,scope="repository:x:pull,push"')
    assert c is not None and c.scheme == "bearer"
    assert c.params == {
        "realm": "https://a/token",
        "service": "reg",
        "scope": "repository:x:pull,push",
    }


def test_credentials_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(Credentials("user", "s3cret"))


@pytest.mark.parametrize(
    ("text", "repository", "reference"),
    [
        ("shop/web:shop-prod-1.4.2", "shop/web", "shop-prod-1.4.2"),
        ("shop/web", "shop/web", "latest"),
        ("a@sha256:" + "a" * 64, "a", "sha256:" + "a" * 64),
    ],
)
def test_references_parse(text: str, repository: str, reference: str) -> None:
    parsed = ImageReference.parse(text)
    assert (parsed.repository, parsed.reference) == (repository, reference)


@pytest.mark.parametrize("text", ["", "UPPER:x", "a:b:c", "a@sha256:short", "a:" + "t" * 200])
def test_bad_references_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        ImageReference.parse(text)


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d", ""])
def test_bad_platforms_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        Platform.parse(text)


@pytest.mark.parametrize("url", ["", "ftp://x", "http://", "http://h:99999", "http://h/v2/"])
def test_bad_registry_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        RegistryClient(url)


def test_tls_eof_inside_a_body_is_a_truncated_transfer_but_a_handshake_eof_is_tls() -> None:
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    in_body = httpx.ReadError("read failed")
    in_body.__cause__ = eof
    assert from_exception(in_body, "blob", in_body=True).error_class is ErrorClass.TRUNCATED
    handshake = httpx.ConnectError("handshake failed")
    handshake.__cause__ = eof
    assert from_exception(handshake, "ping").error_class is ErrorClass.TLS


@pytest.mark.parametrize(
    ("name", "host", "reference"),
    [
        ("registry.chaosregistry.test/shop/app:v1", "registry.chaosregistry.test", "shop/app:v1"),
        ("127.0.0.1:5000/app@sha256:" + "a" * 64, "127.0.0.1:5000", "app@sha256:" + "a" * 64),
        ("localhost/app", "localhost", "app:latest"),
        ("shop/app:v2", "", "shop/app:v2"),
        ("busybox", "", "busybox:latest"),
    ],
)
def test_a_pod_image_name_splits_into_its_registry_host_and_reference(
    name: str, host: str, reference: str
) -> None:
    from chaosregistry.oci.reference import split_image_name

    found_host, found = split_image_name(name)
    assert (found_host, str(found)) == (host, reference)
