"""The redirect fault on the real sandbox: the registry's old name answers its API with
redirects to a new host name that serves the same content; what our pull and push clients do
on the way; ended through the ledger (rollback action, watchdog at expiry); bad input is one
line and changes nothing."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.faults import (
    SETTLES_WITHIN,
    SHORT_FAULT,
    assert_refused_before_recording,
    assert_reverted_at_expiry,
    own_ledger,
)
from support.locust_runs import locust_classes
from support.polling import eventually
from support.sandbox import SandboxInfo

from chaosregistry.actions import redirect as actions
from chaosregistry.errors import PullError
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.auth import Credentials
from chaosregistry.probes.pull import pull_image

IMAGE = ("shop/frontend", "shop-prod-1.4.2")
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


@pytest.fixture
def configuration(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A ledger of its own; afterwards no redirect is active and its watchdog has exited."""
    with own_ledger(sandbox.run_dir, tmp_path, monkeypatch) as config:
        yield config
        actions.stop_registry_redirect(configuration=config)


@pytest.fixture
def registry(sandbox: SandboxInfo) -> Iterator[httpx.Client]:
    """A client of the registry's old name (nginx in front of the replicas) that does not
    follow redirects: it sees what the old name answers."""
    with httpx.Client(
        base_url=sandbox.endpoints["registry_direct"],
        verify=sandbox.tls,
        auth=sandbox.auth,
        headers={"Accept": MANIFEST_TYPES},
    ) as client:
        yield client


def client_of(sandbox: SandboxInfo, url: str) -> RegistryClient:
    return RegistryClient(
        url, credentials=Credentials(sandbox.username, sandbox.password), verify=sandbox.ca_file
    )


def test_the_api_moves_to_the_new_host_and_our_clients_keep_the_credentials_to_the_old(
    sandbox: SandboxInfo, registry: httpx.Client, configuration: dict[str, Any]
) -> None:
    """Our pulls and pushes follow the redirect, reach the new host without the registry's
    credentials (another origin), and fail as ``auth`` naming it, while the new host serves
    the same image to a client given its name."""
    repository, tag = IMAGE
    hop_port = httpx.URL(sandbox.endpoints["registry"]).port
    new_host = f"https://localhost:{hop_port}"
    fault = actions.redirect_registry(status=307, duration=60, configuration=configuration)
    assert (fault["kind"], fault["target"], fault["applied"]["injected"]) == (
        "registry.redirect",
        "redirect:registry",
        "confirmed",
    )
    assert fault["parameters"]["location"] == new_host
    # Every API request is sent on, same path; /v2/ (the ping) is answered as before.
    for path in (
        f"/v2/{repository}/manifests/{tag}",
        f"/v2/{repository}/blobs/{sandbox.image(*IMAGE)['digest']}",
        f"/v2/{repository}/tags/list",
        f"/v2/{repository}/blobs/uploads/",
    ):
        method = "POST" if path.endswith("/uploads/") else "GET"
        moved = registry.request(method, path)
        assert (moved.status_code, moved.headers["location"]) == (307, new_host + path)
    assert registry.get("/v2/").status_code == 200

    pulled = pull_image(f"{repository}:{tag}", configuration=configuration)
    assert not pulled["ok"] and pulled["error"]["class"] == "auth"
    assert pulled["error"]["detail"] == {"redirected_to": new_host}
    with (
        client_of(sandbox, sandbox.endpoints["registry"]) as old,
        pytest.raises(PullError, match=f"redirected to {new_host}, which asks for cred"),
    ):
        old.push_blob("chaosregistry/redirect-check", b"pushed while the registry moved")
    # The new host serves the same content to a client that names it.
    with client_of(sandbox, new_host) as new:
        assert new.get_manifest(repository, tag).digest == sandbox.image(*IMAGE)["digest"]

    undone = actions.stop_registry_redirect(configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    assert registry.get(f"/v2/{repository}/manifests/{tag}").status_code == 200
    assert pull_image(f"{repository}:{tag}", configuration=configuration)["ok"]
    assert actions.stop_registry_redirect(configuration=configuration)["count"] == 0


def test_the_locust_driver_meets_the_move_as_the_probes_client_does(
    sandbox: SandboxInfo, tmp_path: Path, configuration: dict[str, Any]
) -> None:
    """The load's driver (geventhttpclient) follows the redirect too, drops the credentials on
    the way, and records the same ``auth`` failure naming the new host."""
    new_host = f"https://localhost:{httpx.URL(sandbox.endpoints['registry']).port}"
    actions.redirect_registry(status=307, duration=60, configuration=configuration)
    load, pulls = locust_classes(
        tmp_path,
        sandbox.endpoints["registry"],
        ":".join(IMAGE),
        password=sandbox.password,
        ca_file=sandbox.ca_file,
    )
    assert set(load) == {"auth"}, load
    assert all(f"redirected to {new_host}, which asks" in p["message"] for p in pulls), pulls[0]


def test_the_redirect_ends_at_its_duration(
    registry: httpx.Client, configuration: dict[str, Any]
) -> None:
    path = f"/v2/{IMAGE[0]}/manifests/{IMAGE[1]}"
    fault = actions.redirect_registry(status=308, duration=SHORT_FAULT, configuration=configuration)
    assert registry.head(path).status_code == 308

    def old_name_answers() -> bool:
        try:
            return registry.head(path).status_code == 200
        except httpx.RemoteProtocolError:
            # The revert's nginx reload closed this kept-alive connection as the HEAD went out
            # (seen once in CI). Our own transport retries such a request on a new connection
            # (oci/transport.py), as Go's does for containerd; httpx does not.
            return False

    eventually(
        "the old name serving its API again", old_name_answers, timeout=SHORT_FAULT + SETTLES_WITHIN
    )
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"])


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [({"status": 303}, "status must be one of 301, 302, 307, 308"), ({"duration": 0}, "duration")],
)
def test_bad_input_is_one_line_and_changes_nothing(
    sandbox: SandboxInfo,
    registry: httpx.Client,
    configuration: dict[str, Any],
    arguments: dict[str, Any],
    fragment: str,
) -> None:
    assert_refused_before_recording(
        lambda: actions.redirect_registry(**arguments, configuration=configuration),
        fragment,
        Path(configuration["ledger_dir"]),
    )
    overrides = Path(sandbox.run_dir) / "nginx/route-overrides"
    assert sorted(p.name for p in overrides.rglob("*.conf")) == []
    assert registry.head(f"/v2/{IMAGE[0]}/manifests/{IMAGE[1]}").status_code == 200
