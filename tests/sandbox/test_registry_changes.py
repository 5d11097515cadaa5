"""Registry changes on the real sandbox, on both Distribution versions it runs: a tag deleted
(pulls by tag fail not-found, by digest they still work, the pull-through mirror keeps serving
what it cached) and the registry switched read-only (every write refused 405, pulls keep
working, and a replica stopped for the switch finishes the blob it serves); each put back through
the ledger (rollback action, watchdog at expiry), bad input one line that changes nothing. ggcr
has no read-only mode (refused: tests/unit)."""

import hashlib
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chaoslib.exceptions import ActivityFailed
from support.faults import (
    SHORT_FAULT,
    assert_refused_before_recording,
    assert_reverted_at_expiry,
    own_ledger,
)
from support.polling import eventually
from support.sandbox import SandboxInfo, running_sandbox

from chaosregistry.actions import registry_changes as actions
from chaosregistry.faults.ledger import Ledger
from chaosregistry.oci import RegistryClient
from chaosregistry.probes.pull import pull_image
from chaosregistry.probes.push import push_outcome
from chaosregistry.sandbox import load_credentials, start_process, stop_process
from chaosregistry.sandbox.processes import port_is_free
from chaosregistry.sandbox.seed import push_unique_image

SEEDED = "shop/frontend:shop-prod-1.4.2"
IMPLEMENTATIONS = ["distribution-2", "distribution-3"]


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def registry_sandbox(
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SandboxInfo]:
    """The session's sandbox when it runs this implementation, else one of its own."""
    implementation = str(request.param)
    if pytestconfig.getoption("--sandbox-implementation") == implementation:
        yield request.getfixturevalue("sandbox")
        return
    with running_sandbox(
        tmp_path_factory.mktemp(implementation), label=implementation, implementation=implementation
    ) as info:
        yield info


@pytest.fixture
def configuration(
    registry_sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A ledger of its own; afterwards nothing is deleted or read-only and its watchdog has
    exited."""
    with own_ledger(registry_sandbox.run_dir, tmp_path, monkeypatch) as config:
        yield config
        actions.restore_registry_writes(configuration=config)
        actions.restore_tag(configuration=config)


def fresh_image(sandbox: SandboxInfo, name: str) -> tuple[str, str]:
    """A new image of our own (so a failed undo hurts no other test): ``repository:tag`` and
    its digest."""
    repository, tag = f"scratch/{name}", f"t-{secrets.token_hex(4)}"
    entry = push_unique_image(
        sandbox.endpoints["registry_direct"],
        load_credentials(sandbox.run_dir),
        repository,
        tag,
        verify=sandbox.ca_file,
    )
    return f"{repository}:{tag}", str(entry["digest"])


def client(sandbox: SandboxInfo) -> RegistryClient:
    return RegistryClient(
        sandbox.endpoints["registry_direct"],
        credentials=load_credentials(sandbox.run_dir),
        verify=sandbox.ca_file,
        timeout=10.0,
    )


def test_a_deleted_tag_is_not_found_while_its_digest_pulls_and_comes_back_byte_for_byte(
    registry_sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    sandbox = registry_sandbox
    image, digest = fresh_image(sandbox, "tag-deleted")
    repository, tag = image.split(":")
    with client(sandbox) as registry:
        original = registry.get_manifest(repository, tag)
        registry.push_manifest(repository, f"{tag}-twin", original.body, original.media_type)
    # The mirror caches the tag before it is deleted.
    assert pull_image(image, target="mirror", configuration=configuration)["ok"] is True

    fault = actions.delete_tag(image=image, duration=60, configuration=configuration)
    assert (fault["kind"], fault["target"]) == ("registry.tag-deleted", f"image:{image}")
    applied = fault["applied"]
    assert applied["injected"] == "confirmed" and applied["digest"] == digest
    # 2.8 has no delete-by-tag API: the tag's link goes from the storage, as 3.x's API does.
    expected = "storage" if sandbox.endpoints["implementation"] == "distribution-2" else "api"
    assert applied["deleted_by"] == expected

    by_tag = pull_image(image, configuration=configuration)
    assert by_tag["ok"] is False
    assert (by_tag["error"]["class"], by_tag["error"]["status"]) == ("not-found", 404)
    assert "MANIFEST_UNKNOWN" in by_tag["error"]["message"]
    # Only the tag went: the manifest by digest, and its other tag, still pull.
    assert pull_image(f"{repository}@{digest}", configuration=configuration)["ok"] is True
    assert pull_image(f"{repository}:{tag}-twin", configuration=configuration)["ok"] is True
    # The pull-through mirror serves the tag it cached: Distribution's proxy falls back to its
    # own copy of a tag its upstream no longer has.
    through_mirror = pull_image(image, target="mirror", configuration=configuration)
    assert through_mirror["ok"] is True and through_mirror["digest"] == digest

    undone = actions.restore_tag(image=image, configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    with client(sandbox) as registry:
        restored = registry.get_manifest(repository, tag)
    assert (restored.body, restored.media_type) == (original.body, original.media_type)
    assert actions.restore_tag(configuration=configuration)["count"] == 0


def test_a_deleted_tag_comes_back_at_its_duration(
    registry_sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    image, digest = fresh_image(registry_sandbox, "tag-expiry")
    fault = actions.delete_tag(image=image, duration=SHORT_FAULT, configuration=configuration)
    assert pull_image(image, configuration=configuration)["ok"] is False
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"])
    back = pull_image(image, configuration=configuration)
    assert back["ok"] is True and back["digest"] == digest


def test_read_only_refuses_every_write_with_405_while_pulls_keep_working(
    registry_sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    sandbox = registry_sandbox
    image, _ = fresh_image(sandbox, "read-only")
    repository, tag = image.split(":")
    # Pulls made while the registry restarts into read-only: none may fail.
    during: list[dict[str, Any]] = []
    stop = threading.Event()

    def keep_pulling() -> None:
        while not stop.is_set():
            during.append(pull_image(SEEDED, timeout=10, configuration=configuration))

    puller = threading.Thread(target=keep_pulling)
    puller.start()
    try:
        fault = actions.set_registry_read_only(duration=60, configuration=configuration)
    finally:
        stop.set()
        puller.join()
    assert (fault["kind"], fault["target"]) == ("registry.read-only", "read-only:registry")
    applied = fault["applied"]
    assert applied["injected"] == "confirmed"
    assert applied["processes"] == ["registry-1", "registry-2", "registry-token"]
    assert set(applied["write_answers"].values()) == {405}
    failed = [p["error"] for p in during if not p["ok"]]
    pushed = push_outcome(configuration=configuration)
    print(
        f"\n{sandbox.endpoints['implementation']}: restarts {applied['restart_seconds']} s, "
        f"{len(during)} pulls during them, failed {failed}; push refused in {pushed['seconds']} s "
        f"({pushed['error']['message']})"
    )
    assert during and failed == []
    assert pushed["ok"] is False and pushed["status"] == 405 and pushed["digest"] is None
    assert pushed["error"]["class"] == "method-not-allowed"
    # What any client sees through nginx: Distribution's own refusal.
    with httpx.Client(
        base_url=sandbox.endpoints["registry_direct"], verify=sandbox.tls, auth=sandbox.auth
    ) as raw:
        for method in ("PUT", "DELETE"):
            answer = raw.request(method, f"/v2/{repository}/manifests/{tag}", content=b"{}")
            assert answer.status_code == 405, (method, answer.text)
            assert answer.headers["allow"] == "GET, HEAD"
            assert answer.text.strip() == "Method not allowed"
    assert pull_image(image, configuration=configuration)["ok"] is True
    assert pull_image(SEEDED, target="mirror", configuration=configuration)["ok"] is True

    undone = actions.restore_registry_writes(configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    again = push_outcome(configuration=configuration)
    assert again["ok"] is True and again["status"] == 201, again
    assert actions.restore_registry_writes(configuration=configuration)["count"] == 0


def test_read_only_ends_at_its_duration(configuration: dict[str, Any]) -> None:
    fault = actions.set_registry_read_only(duration=SHORT_FAULT, configuration=configuration)
    assert push_outcome(configuration=configuration)["status"] == 405
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"])
    assert push_outcome(configuration=configuration)["ok"] is True


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"image": f"shop/frontend@sha256:{'0' * 64}"}, "name a tag"),
        ({"image": "shop/frontend:no-such-tag"}, "does not exist"),
        ({"image": SEEDED, "duration": 0}, "duration"),
    ],
)
def test_a_bad_tag_deletion_is_one_line_and_changes_nothing(
    configuration: dict[str, Any], arguments: dict[str, Any], fragment: str
) -> None:
    assert_refused_before_recording(
        lambda: actions.delete_tag(**arguments, configuration=configuration),
        fragment,
        Path(configuration["ledger_dir"]),
    )
    assert pull_image(SEEDED, configuration=configuration)["ok"] is True


def test_a_second_read_only_fault_is_refused_while_one_is_active(
    configuration: dict[str, Any],
) -> None:
    actions.set_registry_read_only(duration=60, configuration=configuration)
    with pytest.raises(ActivityFailed, match="already active"):
        actions.set_registry_read_only(duration=60, configuration=configuration)
    assert len(Ledger(configuration["ledger_dir"]).active()) == 1


def test_a_replica_stopped_with_sigterm_finishes_the_blob_it_is_serving(
    registry_sandbox: SandboxInfo,
) -> None:
    # What keeps the read-only restarts from cutting a pull (the sandbox's Distributions drain
    # on SIGTERM). A 16 MiB layer is more than loopback's socket buffers hold, so the replica
    # is still writing it when told to stop; the test reads no further until the replica has
    # closed its listener, then reads the rest.
    sandbox = registry_sandbox
    amd64 = next(
        p
        for p in sandbox.image("medium/app", "latest")["platforms"]
        if p["platform"] == "linux/amd64"
    )
    layer = max(amd64["layers"], key=lambda blob: blob["size"])
    assert layer["size"] >= 16 * 1024 * 1024
    replica = sandbox.endpoints["replicas"][0]
    port = int(replica["url"].rstrip("/").rsplit(":", 1)[1])
    received = hashlib.sha256()
    size = 0
    stopping = threading.Thread(target=stop_process, args=(sandbox.run_dir, replica["name"]))
    try:
        with httpx.Client(verify=sandbox.tls, auth=sandbox.auth, timeout=30) as raw:
            url = f"{replica['url'].rstrip('/')}/v2/medium/app/blobs/{layer['digest']}"
            with raw.stream("GET", url) as answer:
                assert answer.status_code == 200
                chunks = answer.iter_raw(64 * 1024)
                first = next(chunks)
                received.update(first)
                size += len(first)
                stopping.start()
                eventually("the replica's listener closed", lambda: port_is_free(port), timeout=10)
                for chunk in chunks:
                    received.update(chunk)
                    size += len(chunk)
    finally:
        if stopping.is_alive():
            stopping.join()
        start_process(sandbox.run_dir, replica["name"])
    assert size == layer["size"]
    assert f"sha256:{received.hexdigest()}" == layer["digest"]
