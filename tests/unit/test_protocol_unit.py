"""The I/O-free pull protocol, driven by hand: requests out, answers in, no sockets."""

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from chaosregistry.errors import ErrorClass, PullError
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.protocol import (
    Answer,
    Authenticator,
    BlobCheck,
    Descriptor,
    Request,
    Steps,
    exchange,
    fetch_manifest,
    resolve,
)
from chaosregistry.oci.reference import ImageReference, Platform

T = TypeVar("T")
BEARER = 'Bearer realm="https://auth.test/token",service="reg"'


def drive(steps: Steps[T], answer: Callable[[Request], Answer]) -> tuple[T, list[Request]]:
    """The smallest driver: what a real one does, with ``answer`` in place of the network."""
    sent: list[Request] = []
    request = next(steps)
    while True:
        sent.append(request)
        try:
            request = steps.send(answer(request))
        except StopIteration as done:
            return done.value, sent


def manifest_answer(document: dict[str, Any], media_type: str) -> Answer:
    body = json.dumps(document).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return Answer(200, {"content-type": media_type, "docker-content-digest": digest}, body)


def test_basic_challenge_is_answered_once_then_sent_up_front() -> None:
    auth = Authenticator(Credentials("u", "p"))
    first = Request("GET", "/v2/a/manifests/1", "m", "r")

    def registry(request: Request) -> Answer:
        if "Authorization" not in request.headers:
            return Answer(401, {"www-authenticate": 'Basic realm="x"'})
        return Answer(200, {})

    done, sent = drive(exchange(auth, first, "a"), registry)
    assert done.answer.status == 200 and len(sent) == 2
    _, again = drive(exchange(auth, first, "a"), registry)
    assert len(again) == 1 and again[0].headers["Authorization"].startswith("Basic ")


def test_bearer_token_is_fetched_with_scope_and_reused_per_repository() -> None:
    auth = Authenticator(Credentials("u", "p"))
    tokens: list[dict[str, str]] = []

    def registry(request: Request) -> Answer:
        if request.target.startswith("https://auth.test/"):
            tokens.append(dict(request.params))
            return Answer(200, {}, json.dumps({"token": "T1", "expires_in": 300}).encode())
        if request.headers.get("Authorization") != "Bearer T1":
            return Answer(401, {"www-authenticate": BEARER})
        return Answer(200, {})

    request = Request("GET", "/v2/a/blobs/x", "b", "r")
    for _ in range(3):
        drive(exchange(auth, request, "a"), registry)
    assert tokens == [{"scope": "repository:a:pull", "service": "reg"}]
    drive(exchange(auth, request, "other"), registry)
    assert tokens[-1]["scope"] == "repository:other:pull"


def test_a_refused_token_is_dropped_and_fetched_again() -> None:
    auth = Authenticator(None)
    issued = iter(["OLD", "NEW"])
    valid = {"NEW"}

    def registry(request: Request) -> Answer:
        if request.target.startswith("https://auth.test/"):
            return Answer(200, {}, json.dumps({"token": next(issued)}).encode())
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in valid:
            return Answer(200, {})
        return Answer(401, {"www-authenticate": BEARER})

    request = Request("GET", "/v2/a/blobs/x", "b", "r")
    with pytest.raises(PullError) as caught:  # OLD refused even right after it was issued
        drive(exchange(auth, request, "a"), registry)
    assert caught.value.error_class is ErrorClass.AUTH
    done, sent = drive(exchange(auth, request, "a"), registry)  # sends OLD, refused, gets NEW
    assert done.answer.status == 200
    assert [r.headers.get("Authorization") for r in sent] == ["Bearer OLD", None, "Bearer NEW"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (403, ErrorClass.AUTH),
        (404, ErrorClass.NOT_FOUND),
        (429, ErrorClass.RATE_LIMITED),
        (502, ErrorClass.SERVER_ERROR),
        (418, ErrorClass.PROTOCOL),
    ],
)
def test_error_statuses_raise_their_class_with_registry_codes(
    status: int, expected: ErrorClass
) -> None:
    body = json.dumps({"errors": [{"code": "SOME_CODE"}]}).encode()
    request = Request("GET", "/v2/a/manifests/1", "manifest a:1", "r")
    with pytest.raises(PullError) as caught:
        drive(exchange(Authenticator(None), request, "a"), lambda _: Answer(status, {}, body))
    assert caught.value.error_class is expected
    assert caught.value.detail["codes"] == ["SOME_CODE"]
    assert str(caught.value).startswith("manifest a:1: HTTP")


def test_resolve_picks_the_platform_from_an_index_and_lists_config_then_layers() -> None:
    image = {
        "schemaVersion": 2,
        "config": {"digest": "sha256:" + "c" * 64, "size": 10},
        "layers": [{"digest": "sha256:" + "1" * 64, "size": 20}],
    }
    image_answer = manifest_answer(image, "application/vnd.oci.image.manifest.v1+json")
    arm_digest = image_answer.header("docker-content-digest")
    amd = {"os": "linux", "architecture": "amd64"}
    arm = {"os": "linux", "architecture": "arm64"}
    index = {
        "manifests": [
            {"digest": "sha256:" + "a" * 64, "size": 1, "platform": amd},
            {"digest": arm_digest, "size": 1, "platform": arm},
        ]
    }
    index_answer = manifest_answer(index, "application/vnd.oci.image.index.v1+json")

    def registry(request: Request) -> Answer:
        return image_answer if request.target.endswith(arm_digest) else index_answer

    steps = resolve(Authenticator(None), ImageReference.parse("app:v1"), Platform("linux", "arm64"))
    resolved, sent = drive(steps, registry)
    assert [r.target for r in sent] == ["/v2/app/manifests/v1", f"/v2/app/manifests/{arm_digest}"]
    assert resolved.manifest_digest == arm_digest
    assert resolved.blobs == [
        Descriptor("sha256:" + "c" * 64, 10),
        Descriptor("sha256:" + "1" * 64, 20),
    ]

    missing = resolve(
        Authenticator(None), ImageReference.parse("app:v1"), Platform("linux", "s390x")
    )
    with pytest.raises(PullError, match=r"available: linux/amd64, linux/arm64") as caught:
        drive(missing, registry)
    assert caught.value.error_class is ErrorClass.PLATFORM_NOT_FOUND


def test_a_manifest_whose_body_does_not_match_its_digest_is_refused() -> None:
    answer = Answer(200, {"docker-content-digest": "sha256:" + "0" * 64}, b"{}")
    with pytest.raises(PullError) as caught:
        drive(fetch_manifest(Authenticator(None), "app", "v1"), lambda _: answer)
    assert caught.value.error_class is ErrorClass.DIGEST_MISMATCH


def test_blob_check_refuses_long_short_and_altered_bodies() -> None:
    data = b"layer bytes"
    descriptor = Descriptor("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    good = BlobCheck(descriptor, "blob")
    good.feed(data[:4])
    good.feed(data[4:])
    good.finish()
    assert good.received == len(data) and good.verified

    long = BlobCheck(descriptor, "blob")
    with pytest.raises(PullError) as too_long:
        long.feed(data + b"!")
    assert too_long.value.error_class is ErrorClass.DIGEST_MISMATCH

    short = BlobCheck(descriptor, "blob")
    short.feed(data[:-1])
    with pytest.raises(PullError) as truncated:
        short.finish()
    assert truncated.value.error_class is ErrorClass.TRUNCATED

    altered = BlobCheck(descriptor, "blob")
    altered.feed(b"L" + data[1:])
    with pytest.raises(PullError) as mismatch:
        altered.finish()
    assert mismatch.value.error_class is ErrorClass.DIGEST_MISMATCH

    unverified = BlobCheck(descriptor, "blob", verify=False)
    unverified.feed(b"L" + data[1:])
    unverified.finish()  # size only
    assert not unverified.verified
