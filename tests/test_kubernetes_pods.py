"""Registry node kill on the kubernetes backend: pods picked by selector and mode, deleted, and
the fault reverted once the controller has replaced them. On the test bed the registry runs
outside the cluster, so the demo's pods stand in for registry pods."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from chaosregistry.actions.node import kill_registry_node, restart_registry_node
from cluster_support import KubeCluster, wait_available, wait_for
from lightkube.resources.core_v1 import Pod

from chaosregistry.cluster.layout import DEMO_NAMESPACE
from chaosregistry.cluster.workloads import DEMO_LABELS
from chaosregistry.faults.ledger import FaultState, Ledger, RevertReason

pytestmark = pytest.mark.cluster
pytest_plugins = ["cluster_support"]


@pytest.fixture
def ledger_dir(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    yield tmp_path / "ledger"
    wait_available(kube_cluster.client, DEMO_NAMESPACE)


def configuration(mode: str = "one", value: Any = None, **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"selector": dict(DEMO_LABELS), "mode": mode}
    if value is not None:
        node["value"] = value
    return {
        "chaosregistry": {
            "backend": "kubernetes",
            "namespace": DEMO_NAMESPACE,
            "registry_nodes": {"registry-1": node},
            **extra,
        }
    }


def pod_names(kube_cluster: KubeCluster) -> set[str]:
    pods = kube_cluster.client.list(Pod, namespace=DEMO_NAMESPACE, labels=dict(DEMO_LABELS))
    return {p.metadata.name for p in pods if p.metadata and p.metadata.name}


@pytest.mark.parametrize(
    ("mode", "value", "killed"), [("one", None, 1), ("fixed", 2, 2), ("fixed-percent", 50, 1)]
)
def test_kill_deletes_the_chosen_pods_and_rollback_waits_for_replacements(
    kube_cluster: KubeCluster, ledger_dir: Path, mode: str, value: Any, killed: int
) -> None:
    before = pod_names(kube_cluster)
    fault = kill_registry_node("registry-1", duration=60, configuration=configuration(mode, value))
    deleted = fault["applied"]["deleted"]
    assert len(deleted) == killed and set(deleted) <= before
    assert fault["parameters"]["mode"] == mode
    result = restart_registry_node(configuration=configuration(mode, value))
    assert result["count"] == 1 and result["reverted"][0]["state"] == "reverted"
    now = pod_names(kube_cluster)
    assert not (now & set(deleted))  # the killed pods are gone, replaced by new ones
    (entry,) = Ledger(ledger_dir).all()
    assert entry.revert_reason is RevertReason.ROLLBACK


def test_kill_with_restart_after_is_settled_by_the_watchdog(
    kube_cluster: KubeCluster, ledger_dir: Path
) -> None:
    kill_registry_node("registry-1", restart_after=2, duration=30, configuration=configuration())
    (entry,) = Ledger(ledger_dir).all()
    settled = wait_for(
        "the watchdog settles the kill",
        lambda: Ledger(ledger_dir).get(entry.id).state is FaultState.REVERTED,
        30,
    )
    assert settled
    assert Ledger(ledger_dir).get(entry.id).revert_reason is RevertReason.EXPIRED


def test_kill_refusals_and_dry_run_delete_nothing(
    kube_cluster: KubeCluster, ledger_dir: Path
) -> None:
    before = pod_names(kube_cluster)
    with pytest.raises(ActivityFailed, match=r"more than configuration\.max_pods"):
        kill_registry_node("registry-1", duration=10, configuration=configuration(max_pods=2))
    with pytest.raises(ActivityFailed, match="unknown registry node 'registry-2'"):
        kill_registry_node("registry-2", duration=10, configuration=configuration())
    with pytest.raises(ActivityFailed, match="needs a whole number value"):
        kill_registry_node("registry-1", duration=10, configuration=configuration("fixed"))
    with pytest.raises(ActivityFailed, match="never a chaos target"):
        kill_registry_node(
            "registry-1", duration=10, configuration=configuration(namespace="kube-system")
        )
    assert Ledger(ledger_dir).all() == []
    fault = kill_registry_node(
        "registry-1", duration=10, configuration=configuration("all", dry_run=True)
    )
    assert fault["applied"]["dry_run"] is True
    assert set(fault["applied"]["would_delete"]) == before
    assert pod_names(kube_cluster) == before
    restart_registry_node(configuration=configuration())
