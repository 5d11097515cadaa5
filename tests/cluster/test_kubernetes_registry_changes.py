"""The registry-changes drill on the real kubelet, under ``chaos run`` (``chaosregistry
gameday``): a rollout of the tag the Deployment runs, deleted from the registry, fails with
ErrImagePull ("not found": imagePullPolicy Always asks the registry even with the image on the
node) while the old pods keep serving, and completes by itself once the tag is back; while the
registry is read-only a push is refused 405 and a restart rollout (every new pod pulls the tag)
completes. One game day runs both cases: they share the steady state and the cluster's
Deployment. The node pulls from the origin (the shared cluster's default), where both changes
are made."""

from pathlib import Path

import pytest
from lightkube.resources.apps_v1 import Deployment
from support.cluster import KubeCluster, outputs, run_gameday, wait_available

from chaosregistry.cluster.images import DEMO_REPOSITORY, DEMO_TAG, image_name
from chaosregistry.cluster.layout import DEMO_NAMESPACE
from chaosregistry.cluster.workloads import DEMO_NAME
from chaosregistry.faults.ledger import FaultState, Ledger, RevertReason

pytest_plugins = ["support.cluster"]

ORIGINAL = image_name(DEMO_REPOSITORY, DEMO_TAG)


def test_a_deleted_tag_fails_the_rollout_not_found_and_read_only_refuses_the_push_only(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    ledger = tmp_path / "ledger"
    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(ledger))
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    process, journal = run_gameday(
        kube_cluster,
        tmp_path,
        "registry-changes",
        settings={"sandbox_dir": str(kube_cluster.settings["sandbox_dir"])},
        fault_duration=120,
    )
    out = outputs(journal)
    print(f"\nregistry-changes: {process.stdout[-1500:]}")
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]

    # A tag deleted: the registry says not found, the kubelet ErrImagePull, the old pods serve.
    deleted = out["delete-the-tag"]
    assert deleted["kind"] == "registry.tag-deleted"
    assert deleted["applied"]["injected"] == "confirmed"
    pulled = out["pull-of-the-deleted-tag-fails"]
    assert pulled["error"]["class"] == "not-found" and pulled["error"]["status"] == 404
    failure = out["rollout-declared-failed"]
    assert failure["failed"] is True and failure["reason"] == "ProgressDeadlineExceeded"
    assert failure["serving_replicas"] == 3
    events = out["kubelet-pull-failures-on-the-deleted-tag"]["events"]
    failed = [e for e in events if e["message"].startswith("Failed to pull image")]
    assert failed and all("not found" in e["message"] for e in failed), failed
    assert any(e["message"] == "Error: ErrImagePull" for e in events), events
    assert out["push-the-tag-back"]["count"] == 1
    recovered = out["rollout-completes-once-the-tag-is-back"]
    assert recovered["complete"] is True

    # Read-only: the push refused with Distribution's 405, the pulls of the existing tag fine.
    read_only = out["switch-the-registry-read-only"]
    assert set(read_only["applied"]["write_answers"].values()) == {405}
    refused = out["push-refused-while-read-only"]
    assert refused["ok"] is False and refused["status"] == 405
    rollout = out["rollout-completes-while-read-only"]
    assert rollout["complete"] is True and rollout["started_from"] == "annotation"
    assert out["push-accepted-again"]["status"] == 201
    print(
        f"deleted tag: first pull error after {failure['first_pull_error_after']} s, declared "
        f"failed after {failure['seconds']} s; tag back, complete {recovered['waited']} s "
        f"later; kubelet message {failed[0]['message']!r}; read-only restarts "
        f"{read_only['applied']['restart_seconds']} s, push refused in {refused['seconds']} s "
        f"({refused['error']['message']}), restart rollout {rollout['seconds']} s"
    )

    entries = Ledger(ledger).all()
    assert sorted(e.kind for e in entries) == ["registry.read-only", "registry.tag-deleted"]
    for entry in entries:
        assert entry.state is FaultState.REVERTED and entry.revert_reason is RevertReason.ROLLBACK
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    deployment = kube_cluster.client.get(Deployment, DEMO_NAME, namespace=DEMO_NAMESPACE)
    assert deployment.spec.template.spec.containers[0].image == ORIGINAL
