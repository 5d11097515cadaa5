"""A token realm that cannot answer is ``auth-unavailable``; one that refuses the credentials is
``auth``: the edge cases behind the auth faults, at the HTTP boundary (httpx.MockTransport).
The real token server down, slow or refused is in tests/sandbox/test_auth_faults.py."""

import json
from collections.abc import Callable

import httpx
import pytest

from chaosregistry.errors import ErrorClass, PullError
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.failures import from_exception, status_error

REALM = "http://token.test/token"
CHALLENGE = f'Bearer realm="{REALM}",service="reg",scope="repository:shop/api:pull"'
MANIFEST = json.dumps({"schemaVersion": 2, "config": {}, "layers": []}).encode()


def registry_sending_to(realm: Callable[[httpx.Request], httpx.Response]) -> RegistryClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "token.test":
            return realm(request)
        return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE})

    return RegistryClient(
        "http://reg.test",
        credentials=Credentials("chaos", "secret"),
        transport=httpx.MockTransport(handler),
    )


def manifest_error(client: RegistryClient) -> PullError:
    with client, pytest.raises(PullError) as caught:
        client.get_manifest("shop/api", "1.0")
    return caught.value


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


@pytest.mark.parametrize(
    ("realm", "cause"),
    [
        (refused, "refused"),
        (timed_out, "timeout"),
        (lambda request: httpx.Response(502), "server-error"),
        (lambda request: httpx.Response(404), "not-found"),
    ],
)
def test_a_token_realm_that_cannot_answer_is_auth_unavailable(
    realm: Callable[[httpx.Request], httpx.Response], cause: str
) -> None:
    error = manifest_error(registry_sending_to(realm))
    assert error.error_class is ErrorClass.AUTH_UNAVAILABLE
    assert error.detail["cause"] == cause
    assert "token request" in str(error) and "secret" not in str(error)


def test_a_token_realm_that_refuses_the_credentials_is_auth() -> None:
    error = manifest_error(registry_sending_to(lambda request: httpx.Response(401)))
    assert error.error_class is ErrorClass.AUTH and error.status == 401


def test_a_token_the_registry_refuses_is_auth_not_unavailable() -> None:
    token = {"token": "t", "expires_in": 300}
    error = manifest_error(registry_sending_to(lambda request: httpx.Response(200, json=token)))
    assert error.error_class is ErrorClass.AUTH and error.status == 401


def test_the_registry_itself_unreachable_stays_refused() -> None:
    client = RegistryClient(
        "http://reg.test", transport=httpx.MockTransport(lambda request: refused(request))
    )
    error = manifest_error(client)
    assert error.error_class is ErrorClass.REFUSED


def test_only_a_token_request_is_reclassified() -> None:
    refusal = ConnectionRefusedError(111, "Connection refused")
    assert from_exception(refusal, "x").error_class is ErrorClass.REFUSED
    assert from_exception(refusal, "x", token=True).error_class is ErrorClass.AUTH_UNAVAILABLE
    assert status_error(503, {}, b"", "x").error_class is ErrorClass.SERVER_ERROR
    assert status_error(503, {}, b"", "x", token=True).error_class is ErrorClass.AUTH_UNAVAILABLE
    assert status_error(429, {}, b"", "x", token=True).error_class is ErrorClass.RATE_LIMITED
    assert status_error(403, {}, b"", "x", token=True).error_class is ErrorClass.AUTH


def test_a_405_is_method_not_allowed_with_the_registrys_codes() -> None:
    # Distribution's answer to a write while read-only (a push, a delete) is plain text; a
    # registry that sends the spec's error body keeps its codes.
    plain = status_error(405, {"allow": "GET, HEAD"}, b"Method not allowed\n", "manifest x:1")
    assert plain.error_class is ErrorClass.METHOD_NOT_ALLOWED and plain.status == 405
    assert str(plain) == "manifest x:1: HTTP 405"
    body = b'{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}'
    coded = status_error(405, {}, body, "manifest x:1")
    assert coded.error_class is ErrorClass.METHOD_NOT_ALLOWED
    assert str(coded) == "manifest x:1: HTTP 405 (UNSUPPORTED)"
