"""The quota fault on the real sandbox: nginx counts manifest requests per client address,
HEAD included, and past the quota answers 429 with Docker Hub's headers; lifted through the
ledger (rollback action, watchdog at expiry); bad input is one line and changes nothing."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chaoslib.exceptions import ActivityFailed
from support.faults import (
    SETTLES_WITHIN,
    SHORT_FAULT,
    assert_refused_before_recording,
    assert_reverted_at_expiry,
    own_ledger,
)
from support.polling import eventually
from support.sandbox import SandboxInfo

from chaosregistry.actions import quota as actions
from chaosregistry.faults.ledger import Ledger

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
    """A ledger of its own; afterwards no quota is active and its watchdog has exited."""
    with own_ledger(sandbox.run_dir, tmp_path, monkeypatch) as config:
        yield config
        actions.lift_pull_quota(configuration=config)


@pytest.fixture
def registry(sandbox: SandboxInfo) -> Iterator[httpx.Client]:
    """An authenticated client of the registry (nginx in front of the replicas)."""
    with httpx.Client(
        base_url=sandbox.endpoints["registry_direct"],
        verify=sandbox.tls,
        auth=sandbox.auth,
        headers={"Accept": MANIFEST_TYPES},
        timeout=10,
    ) as client:
        yield client


def manifest(registry: httpx.Client, method: str, reference: str = IMAGE[1]) -> httpx.Response:
    return registry.request(method, f"/v2/{IMAGE[0]}/manifests/{reference}")


def test_head_counts_and_past_the_quota_a_429_carries_docker_hubs_headers(
    sandbox: SandboxInfo, registry: httpx.Client, configuration: dict[str, Any]
) -> None:
    digest = sandbox.image(*IMAGE)["digest"]
    # A single-platform image: its manifest names a config blob.
    config_digest = registry.get(f"/v2/{IMAGE[0]}/manifests/{digest}").json()["config"]["digest"]
    fault = actions.impose_pull_quota(
        requests=5, window=60, duration=60, configuration=configuration
    )
    assert (fault["kind"], fault["target"], fault["applied"]["injected"]) == (
        "registry.quota",
        "quota:registry",
        "confirmed",
    )
    # Five HEADs spend the whole quota: the GET after them is refused.
    assert [manifest(registry, "HEAD").status_code for _ in range(5)] == [200] * 5
    refused = manifest(registry, "GET", digest)
    assert refused.status_code == 429
    assert refused.headers["ratelimit-limit"] == "5;w=60"
    assert refused.headers["ratelimit-remaining"] == "0;w=60"
    assert refused.headers["retry-after"] == "12"  # one more request every 60/5 s
    assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    head = manifest(registry, "HEAD")
    assert head.status_code == 429 and head.headers["retry-after"] == "12"
    # Blobs are not counted: a pull whose manifest passed completes.
    assert registry.get(f"/v2/{IMAGE[0]}/blobs/{config_digest}").status_code == 200

    undone = actions.lift_pull_quota(configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    assert [manifest(registry, "HEAD").status_code for _ in range(8)] == [200] * 8
    assert actions.lift_pull_quota(configuration=configuration)["count"] == 0


def test_a_new_quota_starts_every_count_at_zero_and_ends_at_its_duration(
    registry: httpx.Client, configuration: dict[str, Any]
) -> None:
    fault = actions.impose_pull_quota(
        requests=2, window=60, duration=SHORT_FAULT, configuration=configuration
    )
    assert [manifest(registry, "HEAD").status_code for _ in range(3)] == [200, 200, 429]
    eventually(
        "manifest requests passed on uncounted",
        lambda: manifest(registry, "HEAD").status_code == 200,
        timeout=SHORT_FAULT + SETTLES_WITHIN,
    )
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"])


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"requests": 7, "window": 60 * 7 + 1}, "whole number per minute"),
        ({"requests": 0}, "requests"),
        ({"window": 0}, "window"),
        ({"duration": 0}, "duration"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    sandbox: SandboxInfo,
    registry: httpx.Client,
    configuration: dict[str, Any],
    arguments: dict[str, Any],
    fragment: str,
) -> None:
    assert_refused_before_recording(
        lambda: actions.impose_pull_quota(**arguments, configuration=configuration),
        fragment,
        Path(configuration["ledger_dir"]),
    )
    overrides = Path(sandbox.run_dir) / "nginx/route-overrides"
    assert sorted(p.name for p in overrides.rglob("*.conf")) == []
    assert [manifest(registry, "HEAD").status_code for _ in range(12)] == [200] * 12


def test_a_second_quota_is_refused_while_one_is_active(configuration: dict[str, Any]) -> None:
    actions.impose_pull_quota(requests=50, window=60, duration=60, configuration=configuration)
    with pytest.raises(ActivityFailed, match="already active"):
        actions.impose_pull_quota(requests=5, window=60, duration=60, configuration=configuration)
    assert len(Ledger(configuration["ledger_dir"]).active()) == 1
