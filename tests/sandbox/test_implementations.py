"""The probe, load and fault suites against each registry implementation the sandbox can run,
and the protocol differences between them, found by running each (docs/sandbox.md, "Registry
implementations"). One real sandbox per implementation, shared by its tests."""

import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chaoslib.exceptions import ActivityFailed
from support.pulls import delayed_responses, fastest_pull
from support.sandbox import SandboxInfo, running_sandbox

from chaosregistry.actions import network, node
from chaosregistry.actions.load import start_pull_load, stop_pull_load
from chaosregistry.faults.ledger import Ledger
from chaosregistry.loadgen import records
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.auth import Credentials
from chaosregistry.probes import pull as pull_probes
from chaosregistry.probes import registry as registry_probes
from chaosregistry.probes.load import pull_load_stats
from chaosregistry.sandbox import status
from chaosregistry.sandbox.content import MANIFEST_MEDIA_TYPES, OCI_MANIFEST
from chaosregistry.sandbox.implementations import IMPLEMENTATION_NAMES, IMPLEMENTATIONS
from chaosregistry.sandbox.seed import push_unique_image
from chaosregistry.sandbox.toxiproxy import Toxiproxy

ACCEPT = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
IMAGE = "shop/api:latest"
SMALL = "tiny/hello:latest"


@pytest.fixture(scope="module", params=IMPLEMENTATION_NAMES)
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxInfo]:
    """A seeded sandbox whose replicas run one implementation; always torn down."""
    name = str(request.param)
    with running_sandbox(
        tmp_path_factory.mktemp(f"sandbox-{name}"), label=f"sandbox[{name}]", implementation=name
    ) as running:
        yield running


@pytest.fixture
def configuration(running: SandboxInfo, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A configuration with its own ledger; checks no fault outlives the test."""
    config = {
        "sandbox_dir": str(running.run_dir),
        "ledger_dir": str(tmp_path / "ledger"),
        "load_dir": str(tmp_path / "loads"),
    }
    yield config
    network.remove_network_faults(configuration=config)
    node.restart_registry_node(configuration=config)
    with Toxiproxy(running.endpoints["toxiproxy"]) as api:
        for hop in running.endpoints["hops"]:
            assert api.toxics(hop) == [], f"toxic left on {hop}"
    assert Ledger(tmp_path / "ledger").active() == []


def implementation_of(sandbox: SandboxInfo) -> str:
    return str(sandbox.endpoints["implementation"])


# -- probes ------------------------------------------------------------------------------------
def test_endpoints_and_processes_name_the_implementation(running: SandboxInfo) -> None:
    name = implementation_of(running)
    chosen = IMPLEMENTATIONS[name]
    report = status(running.run_dir)
    assert report["running"] is True
    replica_cmdline = Path(f"/proc/{report['processes']['registry-1']['pid']}/cmdline").read_text()
    mirror_cmdline = Path(f"/proc/{report['processes']['mirror']['pid']}/cmdline").read_text()
    if name == "ggcr":
        assert "chaosregistry.sandbox.ggcr_node" in replica_cmdline
        assert "docker-registry" in mirror_cmdline  # the mirror stays on Distribution 2.8
    elif name == "distribution-3":
        assert "distribution-3.1.2/registry" in replica_cmdline
        assert "distribution-3.1.2/registry" in mirror_cmdline
    else:
        assert "docker-registry" in replica_cmdline
    metrics_urls = [replica["metrics_url"] for replica in running.endpoints["replicas"]]
    assert all(metrics_urls) is chosen.capabilities.metrics


def test_the_front_door_wants_the_sandbox_password(running: SandboxInfo) -> None:
    """ggcr has no auth: nginx checks the htpasswd (bcrypt) for it."""
    base = running.endpoints["registry"] + "/v2/"
    ca = ssl.create_default_context(cafile=running.endpoints["ca_file"])
    with httpx.Client(timeout=10.0, trust_env=False, verify=ca) as http:
        assert http.get(base).status_code == 401
        assert http.get(base, auth=(running.username, "not-the-password")).status_code == 401
        assert http.get(base, auth=running.auth).status_code == 200


@pytest.mark.parametrize("target", ["registry", "mirror"])
def test_pulls_from_registry_and_mirror_match_the_catalog(
    running: SandboxInfo, configuration: dict[str, Any], target: str
) -> None:
    entry = running.image(*IMAGE.split(":"))
    result = pull_probes.pull_image(IMAGE, target=target, configuration=configuration)
    assert result["ok"], result["error"]
    assert result["digest"] == entry["digest"]
    assert result["verified"] is True
    platform = next(p for p in entry["platforms"] if p["platform"] == "linux/amd64")
    assert result["manifest_digest"] == platform["manifest_digest"]
    assert result["bytes"] == platform["config"]["size"] + sum(
        layer["size"] for layer in platform["layers"]
    )


def test_pull_latency_succeeds_every_time(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    result = pull_probes.pull_latency(SMALL, count=6, concurrency=2, configuration=configuration)
    assert result["success_ratio"] == 1.0, result["first_error"]
    assert result["succeeded"] == 6


# -- load --------------------------------------------------------------------------------------
def test_a_short_locust_load_pulls_successfully(
    running: SandboxInfo, configuration: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    load = start_pull_load(
        users=2, spawn_rate=50.0, duration=3.0, images=[SMALL, IMAGE], configuration=configuration
    )
    deadline = time.monotonic() + 40
    while pull_load_stats(load["load_id"], configuration=configuration)["running"]:
        assert time.monotonic() < deadline, "the load did not end by itself"
        time.sleep(0.2)
    stop_pull_load(load["load_id"], configuration=configuration)
    completed = [p for p in records.read_records(Path(load["records_dir"])) if not p["interrupted"]]
    assert len(completed) >= 5
    assert all(p["ok"] and p["error"] is None for p in completed), completed[:3]
    assert {p["image"] for p in completed} == {SMALL, IMAGE}
    small = running.image(*SMALL.split(":"))
    assert all(p["bytes"] == small["total_bytes"] for p in completed if p["image"] == SMALL)


# -- faults ------------------------------------------------------------------------------------
def test_latency_slows_pulls_and_is_reverted(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    network.add_latency(latency_ms=300, duration=30, configuration=configuration)
    # Every pull pays at least two delayed responses, the fastest too.
    assert fastest_pull(configuration, SMALL) >= delayed_responses(300)
    undone = network.remove_network_faults(hop="client-registry", configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    # Gone: a pull faster than the fault allows.
    assert fastest_pull(configuration, SMALL) < delayed_responses(300)


def test_a_killed_node_leaves_pulls_working_and_serves_again_after_restart(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    replica = running.endpoints["replicas"][0]["url"]
    credentials = Credentials(running.username, running.password)
    pushed_after_seed = push_unique_image(replica, credentials, "behaviour/late", "v1")
    fault = node.kill_registry_node(node="registry-1", duration=30, configuration=configuration)
    assert fault["applied"] == {
        "signal": "SIGKILL",
        "was_running": True,
        "injected": "confirmed",
        "confirmed_by": "registry-1's process group gone after SIGKILL",
    }
    assert not status(running.run_dir)["processes"]["registry-1"]["running"]
    during = pull_probes.pull_latency(IMAGE, count=6, concurrency=2, configuration=configuration)
    assert during["success_ratio"] == 1.0, during["first_error"]

    node.restart_registry_node(node="registry-1", configuration=configuration)
    # Straight at the restarted node, not through nginx: it serves the seeded content again
    # (for ggcr, whose manifests lived in memory, because its node re-seeded them).
    entry = running.image(*IMAGE.split(":"))
    layer = entry["platforms"][0]["layers"][0]
    with httpx.Client(base_url=replica, timeout=30.0, auth=running.auth, trust_env=False) as http:
        manifest = http.get("/v2/shop/api/manifests/latest", headers=ACCEPT)
        assert manifest.status_code == 200
        assert manifest.headers["Docker-Content-Digest"] == entry["digest"]
        blob = http.get(f"/v2/shop/api/blobs/{layer['digest']}")
        assert blob.status_code == 200 and len(blob.content) == layer["size"]
        # What was pushed after the seed: on shared storage it is still there; a ggcr node
        # only gets the seed back (its other manifests lived in memory).
        late = http.get("/v2/behaviour/late/manifests/v1", headers=ACCEPT)
        if IMPLEMENTATIONS[implementation_of(running)].capabilities.shared_storage:
            assert late.headers["Docker-Content-Digest"] == pushed_after_seed["digest"]
        else:
            assert late.status_code == 404


# -- behaviour differences ---------------------------------------------------------------------
# What each implementation answered when run (docs/sandbox.md, "Registry implementations").
EXPECTED: dict[str, dict[str, Any]] = {
    "distribution-2": {
        "tags_n2": (["latest", "v1", "v2", "a0", "v3"], False),  # n ignored, storage order
        "catalog_link": True,
        "delete_by_tag": 400,  # DIGEST_INVALID: 2.8 deletes by digest only
        "tag_after_digest_delete": 404,
        "mount": 201,
        "unknown_repo_code": "MANIFEST_UNKNOWN",
        "error_content_type": "application/json",
    },
    "distribution-3": {
        "tags_n2": (["a0", "latest"], True),
        "catalog_link": True,
        "delete_by_tag": 202,
        "tag_after_digest_delete": 404,
        "mount": 201,
        "unknown_repo_code": "MANIFEST_UNKNOWN",
        "error_content_type": "application/json",
    },
    "ggcr": {
        "tags_n2": (["a0", "latest"], False),  # pages and sorts, but sends no Link
        "catalog_link": False,
        "delete_by_tag": 202,
        "tag_after_digest_delete": 200,  # deleting the digest leaves its tags in place
        "mount": 202,  # no mount: a plain upload session (blobs are global to the node)
        "unknown_repo_code": "NAME_UNKNOWN",
        "error_content_type": "text/plain",
    },
}
TAGS = ("v3", "v1", "latest", "v2", "a0")


@pytest.fixture(scope="module")
def pushed(running: SandboxInfo) -> dict[str, str]:
    """Three repositories with five tags each, pushed straight to registry-1 (for ggcr, pushes
    through nginx could land on two replicas that share nothing)."""
    replica = running.endpoints["replicas"][0]["url"]
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = b"implementation-behaviour" * 64
    digests: dict[str, str] = {}
    credentials = Credentials(running.username, running.password)
    with RegistryClient(replica, credentials=credentials, timeout=30.0) as client:
        for repository in ("behaviour/zeta", "behaviour/alpha", "behaviour/mid"):
            config_digest = client.push_blob(repository, config)
            layer_digest = client.push_blob(repository, layer)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest,
                        "size": len(config),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer_digest,
                            "size": len(layer),
                        }
                    ],
                }
            ).encode()
            for tag in TAGS:
                digests["manifest"] = client.push_manifest(repository, tag, manifest, OCI_MANIFEST)
            digests["layer"] = layer_digest
    return digests


@pytest.fixture
def replica_http(running: SandboxInfo) -> Iterator[httpx.Client]:
    base = running.endpoints["replicas"][0]["url"]
    with httpx.Client(base_url=base, timeout=10.0, auth=running.auth, trust_env=False) as http:
        yield http


def test_tags_list_paging_and_order(
    running: SandboxInfo, pushed: dict[str, str], replica_http: httpx.Client
) -> None:
    tags, has_link = EXPECTED[implementation_of(running)]["tags_n2"]
    first = replica_http.get("/v2/behaviour/alpha/tags/list", params={"n": 2})
    assert first.json()["tags"] == tags
    assert ("Link" in first.headers) is has_link
    if has_link:
        assert (
            first.headers["Link"] == '</v2/behaviour/alpha/tags/list?last=latest&n=2>; rel="next"'
        )
    everything = replica_http.get("/v2/behaviour/alpha/tags/list").json()["tags"]
    assert sorted(everything) == sorted(TAGS)


def test_catalog_paging(
    running: SandboxInfo, pushed: dict[str, str], replica_http: httpx.Client
) -> None:
    page = replica_http.get("/v2/_catalog", params={"n": 2})
    assert page.status_code == 200 and len(page.json()["repositories"]) == 2
    assert ("Link" in page.headers) is EXPECTED[implementation_of(running)]["catalog_link"]


def test_only_ggcr_serves_the_referrers_api(
    running: SandboxInfo, pushed: dict[str, str], replica_http: httpx.Client
) -> None:
    answer = replica_http.get(f"/v2/behaviour/alpha/referrers/{pushed['manifest']}")
    if implementation_of(running) != "ggcr":
        assert answer.status_code == 404
        return
    # tools/ggcr-registry: the API is on; nothing refers to this image yet.
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    assert answer.json()["manifests"] == []


def test_head_of_a_manifest_gives_its_digest_without_a_body(
    running: SandboxInfo, pushed: dict[str, str], replica_http: httpx.Client
) -> None:
    answer = replica_http.head("/v2/behaviour/alpha/manifests/latest", headers=ACCEPT)
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["Docker-Content-Digest"] == pushed["manifest"]
    assert answer.headers["Content-Type"] == OCI_MANIFEST


def test_404_error_codes_and_bodies(
    running: SandboxInfo, pushed: dict[str, str], replica_http: httpx.Client
) -> None:
    expected = EXPECTED[implementation_of(running)]
    unknown_tag = replica_http.get("/v2/behaviour/alpha/manifests/nope", headers=ACCEPT)
    assert unknown_tag.status_code == 404
    assert unknown_tag.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert unknown_tag.headers["Content-Type"].startswith(expected["error_content_type"])
    unknown_repo = replica_http.get("/v2/nobody/here/manifests/latest", headers=ACCEPT)
    assert unknown_repo.json()["errors"][0]["code"] == expected["unknown_repo_code"]
    blob = replica_http.get("/v2/behaviour/alpha/blobs/sha256:" + "0" * 64)
    assert blob.status_code == 404 and blob.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_cross_repository_blob_mount(
    running: SandboxInfo, pushed: dict[str, str], replica_http: httpx.Client
) -> None:
    answer = replica_http.post(
        "/v2/behaviour/mounted/blobs/uploads/",
        params={"mount": pushed["layer"], "from": "behaviour/alpha"},
    )
    assert answer.status_code == EXPECTED[implementation_of(running)]["mount"]
    head = replica_http.head(f"/v2/behaviour/mounted/blobs/{pushed['layer']}")
    assert head.status_code == 200


def test_manifest_delete_by_tag_and_by_digest(
    running: SandboxInfo, pushed: dict[str, str], replica_http: httpx.Client
) -> None:
    expected = EXPECTED[implementation_of(running)]
    by_tag = replica_http.delete("/v2/behaviour/mid/manifests/v1")
    assert by_tag.status_code == expected["delete_by_tag"]
    by_digest = replica_http.delete(f"/v2/behaviour/zeta/manifests/{pushed['manifest']}")
    assert by_digest.status_code == 202
    tag = replica_http.get("/v2/behaviour/zeta/manifests/v2", headers=ACCEPT)
    assert tag.status_code == expected["tag_after_digest_delete"]


def test_metrics_families(running: SandboxInfo) -> None:
    name = implementation_of(running)
    with httpx.Client(timeout=10.0, trust_env=False) as http:
        mirror = http.get(running.endpoints["mirror_metrics_url"]).text
        assert "registry_http_requests_total" in mirror
        # Only Distribution v3 counts pull-through hits and misses.
        assert ("registry_proxy_misses_total" in mirror) is (name == "distribution-3")
        replica = running.endpoints["replicas"][0]
        if name == "ggcr":
            assert replica["metrics_url"] is None
            with pytest.raises(ActivityFailed, match="has no metrics endpoint"):
                registry_probes.registry_metrics(
                    replica="registry-1", configuration={"sandbox_dir": str(running.run_dir)}
                )
        else:
            assert "registry_http_requests_total" in http.get(replica["metrics_url"]).text
