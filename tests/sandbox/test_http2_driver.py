"""HTTP/2 pulls on libcurl (``http2=True``, chaosregistry.oci.curl) against two registry
implementations behind the sandbox's HTTPS nginx: basic and bearer auth through the protocol
core, the protocol the answers actually came over, and a blob whose bytes do not match its
digest refused. One sandbox per implementation, shared by its tests."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.sandbox import SandboxInfo, running_sandbox

from chaosregistry.errors import ErrorClass
from chaosregistry.oci import ImageReference, RegistryClient, pull
from chaosregistry.oci.auth import Credentials
from chaosregistry.probes import pull as pull_probes
from chaosregistry.sandbox import start_process, stop_process
from chaosregistry.sandbox.seed import push_unique_image
from chaosregistry.sandbox.toxiproxy import Toxiproxy

# Distribution 3 authenticates in-process (htpasswd) and its token registry is Distribution 3;
# ggcr has no auth of its own (nginx checks the password) and its token registry is 2.8.
IMPLEMENTATIONS = ("distribution-3", "ggcr")


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxInfo]:
    name = str(request.param)
    with running_sandbox(
        tmp_path_factory.mktemp(f"h2-{name}"), label=f"sandbox[{name}]", implementation=name
    ) as info:
        yield info


def creds(sandbox: SandboxInfo) -> Credentials:
    return Credentials(sandbox.username, sandbox.password)


def test_probe_pull_over_h2_with_basic_auth_is_verified_and_says_http2(
    running: SandboxInfo,
) -> None:
    entry = running.image("shop/api", "shop-prod-2.0.1")
    result = pull_probes.pull_image(
        "shop/api:shop-prod-2.0.1",
        http2=True,
        configuration={"sandbox_dir": str(running.run_dir)},
    )
    assert result["error"] is None and result["ok"] is True
    assert result["http_version"] == "HTTP/2"
    assert result["verified"] is True
    assert result["digest"] == entry["digest"]
    platform = entry["platforms"][0]
    assert result["bytes"] == platform["config"]["size"] + sum(
        layer["size"] for layer in platform["layers"]
    )


def test_h2_pull_with_bearer_tokens_is_verified_and_says_http2(running: SandboxInfo) -> None:
    entry = running.image("shop/api", "shop-prod-2.0.1")
    with RegistryClient(
        running.endpoints["token_registry"],
        credentials=creds(running),
        verify=running.ca_file,
        http2=True,
    ) as client:
        result = pull(client, ImageReference("shop/api", "shop-prod-2.0.1"), concurrency=3)
        assert client.auth.scheme == "bearer"
    assert result.ok, result.error
    assert result.verified and result.digest == entry["digest"]
    assert result.http_version == "HTTP/2"


def test_h2_pull_with_a_wrong_password_is_an_auth_error(running: SandboxInfo) -> None:
    with RegistryClient(
        running.endpoints["registry"],
        credentials=Credentials(running.username, "not-the-password"),
        verify=running.ca_file,
        http2=True,
    ) as client:
        result = pull(client, ImageReference("tiny/hello", "latest"))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.AUTH and result.error.status == 401


def test_h2_pull_of_a_blob_that_does_not_match_its_digest_is_refused(
    running: SandboxInfo,
) -> None:
    # Pushed to one replica (ggcr's replicas do not share storage; nginx tries the next
    # replica on a 404), then one byte of its layer changed on that replica's disk: same size,
    # so only the digest check can notice.
    entry = push_unique_image(
        running.endpoints["replicas"][0]["url"], creds(running), "scratch/h2-corrupt", "v1"
    )
    layer = entry["platforms"][0]["layers"][0]["digest"].split(":")[1]
    stored = _blob_files(running.run_dir / "storage", layer)
    assert stored, f"layer {layer[:12]} not found on any replica's disk"
    for path in stored:
        content = bytearray(path.read_bytes())
        content[-1] ^= 0xFF
        path.write_bytes(bytes(content))
    with RegistryClient(
        running.endpoints["registry"],
        credentials=creds(running),
        verify=running.ca_file,
        http2=True,
    ) as client:
        result = pull(client, ImageReference("scratch/h2-corrupt", "v1"))
        assert client.http_version == "HTTP/2"
    assert result.error is not None
    if running.endpoints["implementation"] == "ggcr":
        # ggcr itself will not serve a blob whose bytes changed on its disk (404 BLOB_UNKNOWN,
        # seen on the replica directly): no client ever receives them.
        assert result.error.error_class is ErrorClass.NOT_FOUND, result.error
    else:
        assert result.error.error_class is ErrorClass.DIGEST_MISMATCH, result.error


def _blob_files(storage: Path, hex_digest: str) -> list[Path]:
    """A blob's bytes on disk: Distribution keeps ``.../sha256/ab/<hex>/data``, ggcr's disk
    handler a file named by the digest."""
    return [
        path
        for path in storage.rglob("*")
        if path.is_file()
        and hex_digest in str(path)
        and (path.name == "data" or path.name.endswith(hex_digest))
    ]


@pytest.fixture
def toxiproxy(running: SandboxInfo) -> Iterator[Toxiproxy]:
    with Toxiproxy(running.endpoints["toxiproxy"]) as api:
        yield api
        for toxic in api.toxics("client-registry"):
            api.remove_toxic("client-registry", toxic["name"])
        assert api.toxics("client-registry") == []


@pytest.mark.parametrize(
    ("toxic", "attributes", "image", "expected"),
    [
        ("reset_peer", {"timeout": 0}, "tiny/hello:latest", ErrorClass.RESET),
        ("timeout", {"timeout": 0}, "tiny/hello:latest", ErrorClass.TIMEOUT),
        ("limit_data", {"bytes": 256 * 1024}, "medium/app:latest", ErrorClass.TRUNCATED),
    ],
)
def test_h2_wire_failures_get_the_classes_of_the_one_table(
    running: SandboxInfo,
    toxiproxy: Toxiproxy,
    toxic: str,
    attributes: dict[str, int],
    image: str,
    expected: ErrorClass,
) -> None:
    # The timeout toxic holds what the client sends (stream upstream): no answer ever comes.
    stream = "upstream" if toxic == "timeout" else "downstream"
    toxiproxy.add_toxic(
        "client-registry", name=f"h2-{toxic}", type=toxic, stream=stream, attributes=attributes
    )
    with RegistryClient(
        running.endpoints["registry"],
        credentials=creds(running),
        verify=running.ca_file,
        timeout=1.0,
        http2=True,
    ) as client:
        result = pull(client, ImageReference.parse(image))
    assert result.error is not None
    assert result.error.error_class is expected, result.error


def test_h2_pull_from_a_closed_port_is_refused(running: SandboxInfo) -> None:
    replica = running.endpoints["replicas"][1]
    assert stop_process(running.run_dir, replica["name"])
    try:
        with RegistryClient(
            replica["url"], credentials=creds(running), verify=running.ca_file, http2=True
        ) as client:
            result = pull(client, ImageReference.parse("tiny/hello:latest"))
    finally:
        start_process(running.run_dir, replica["name"])
    assert result.error is not None
    assert result.error.error_class is ErrorClass.REFUSED, result.error


def test_h2_push_of_binary_content_round_trips(running: SandboxInfo) -> None:
    # Every byte value, NULs included: pushes (seed, cold-mode load images) go through the same
    # transport when the client speaks HTTP/2.
    data = bytes(range(256)) * 1024 + os.urandom(64)
    with RegistryClient(
        running.endpoints["registry_direct"],
        credentials=creds(running),
        verify=running.ca_file,
        http2=True,
    ) as client:
        digest = client.push_blob("scratch/h2-push", data)
        assert client.http_version == "HTTP/2"
        assert client.read_blob("scratch/h2-push", digest, len(data)) == data
