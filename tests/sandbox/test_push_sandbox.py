"""Pushing with the client against the real sandbox, then pulling back what was pushed."""

import io
import secrets
import tarfile

import pytest
from support.sandbox import SandboxInfo

from chaosregistry.cluster import images
from chaosregistry.errors import ErrorClass, PullError
from chaosregistry.loadgen.fresh import fresh_image
from chaosregistry.oci import ImageReference, Platform, RegistryClient, pull
from chaosregistry.oci.auth import Credentials


def creds(sandbox: SandboxInfo) -> Credentials:
    return Credentials(sandbox.username, sandbox.password)


def push_and_pull_back(client: RegistryClient, repository: str) -> None:
    layer, config, manifest = fresh_image(Platform.parse("linux/amd64"))
    assert client.push_blob(repository, layer.data) == layer.digest
    assert client.push_blob(repository, config.data, config.digest) == config.digest
    pushed = client.push_manifest(repository, "v1", manifest.data, manifest.media_type)

    result = pull(client, ImageReference(repository, "v1"))

    assert result.ok, result.error
    assert result.verified
    assert result.digest == result.manifest_digest == pushed == manifest.digest
    assert [(b.digest, b.size) for b in result.blob_timings] == [
        (config.digest, len(config.data)),
        (layer.digest, len(layer.data)),
    ]


def test_an_image_pushed_with_basic_auth_pulls_back_with_the_same_digests(
    sandbox: SandboxInfo,
) -> None:
    with RegistryClient(
        sandbox.endpoints["registry"], credentials=creds(sandbox), verify=sandbox.ca_file
    ) as client:
        push_and_pull_back(client, f"scratch/push-basic-{secrets.token_hex(4)}")


def test_an_image_pushed_through_the_token_flow_pulls_back_with_the_same_digests(
    sandbox: SandboxInfo,
) -> None:
    with RegistryClient(
        sandbox.endpoints["token_registry"], credentials=creds(sandbox), verify=sandbox.ca_file
    ) as client:
        push_and_pull_back(client, f"scratch/push-token-{secrets.token_hex(4)}")
    # One token scoped pull,push for the whole push, one scoped pull for the pull.
    assert client.tokens.fetched == 2


def test_a_push_without_credentials_is_an_auth_error(sandbox: SandboxInfo) -> None:
    with (
        RegistryClient(sandbox.endpoints["registry"], verify=sandbox.ca_file) as client,
        pytest.raises(PullError) as caught,
    ):
        client.push_blob("scratch/anonymous", b"never stored")
    assert caught.value.error_class is ErrorClass.AUTH
    assert str(caught.value).startswith("push blob scratch/anonymous@sha256:")


def test_cluster_images_are_pushed_once_then_skipped(sandbox: SandboxInfo) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        entry = tarfile.TarInfo("nonce")
        nonce = secrets.token_bytes(16)
        entry.size = len(nonce)
        tar.addfile(entry, io.BytesIO(nonce))
    image = images.build_image(
        f"scratch/cluster-{secrets.token_hex(4)}", "1", ["/bin/true"], archive.getvalue()
    )
    url = sandbox.endpoints["replicas"][0]["url"]

    args = (url, sandbox.username, sandbox.password, [image])
    assert images.push_images(*args, ca_file=sandbox.ca_file) == 1
    assert images.push_images(*args, ca_file=sandbox.ca_file) == 0

    with RegistryClient(url, credentials=creds(sandbox), verify=sandbox.ca_file) as client:
        result = pull(client, ImageReference(image.repository, image.tag))
    assert result.ok, result.error
    assert result.digest == image.manifest.digest
