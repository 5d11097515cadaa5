"""Registry node kill on the kubernetes backend, on the test cluster's in-cluster registry
(StatefulSet ``registry``: two Distribution replicas behind a balancer): pods picked by selector
and mode, deleted, the fault reverted once the controller has replaced them, and the
registry-node-kill experiment run by the real ``chaos run`` against it."""

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed
from lightkube.resources.core_v1 import Pod
from support.cluster import KubeCluster, outputs, run_gameday
from support.polling import eventually

from chaosregistry.actions.node import kill_registry_node, restart_registry_node
from chaosregistry.backends.kubernetes_pods import PODS_BACK_WAIT
from chaosregistry.cluster.layout import Layout
from chaosregistry.cluster.readiness import statefulset_not_ready
from chaosregistry.cluster.workloads import REGISTRY_LABELS, REGISTRY_NAME, REGISTRY_NAMESPACE
from chaosregistry.faults.ledger import FaultState, Ledger, RevertReason
from chaosregistry.kubernetes import chaosmesh
from chaosregistry.probes.pull import pull_image

pytest_plugins = ["support.cluster"]


def registry_ready(kube_cluster: KubeCluster) -> None:
    eventually(
        "the in-cluster registry has 2 ready replicas",
        lambda: (
            statefulset_not_ready(kube_cluster.client, REGISTRY_NAMESPACE, REGISTRY_NAME) is None
        ),
        timeout=60,
    )


@pytest.fixture
def ledger_dir(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    registry_ready(kube_cluster)
    yield tmp_path / "ledger"
    registry_ready(kube_cluster)


def configuration(
    kube_cluster: KubeCluster, mode: str = "one", value: Any = None, **extra: Any
) -> dict[str, Any]:
    node: dict[str, Any] = {"selector": dict(REGISTRY_LABELS), "mode": mode}
    if value is not None:
        node["value"] = value
    return {
        "chaosregistry": {
            "backend": "kubernetes",
            "namespace": REGISTRY_NAMESPACE,
            "registry_url": kube_cluster.settings["cluster_registry"],
            "registry_nodes": {"registry-1": node},
            **extra,
        }
    }


def registry_pods(kube_cluster: KubeCluster) -> dict[str, str]:
    """{uid: name} of the registry's pods."""
    pods = kube_cluster.client.list(Pod, namespace=REGISTRY_NAMESPACE, labels=dict(REGISTRY_LABELS))
    return {p.metadata.uid: p.metadata.name for p in pods if p.metadata and p.metadata.uid}


def test_in_cluster_registry_serves_the_sandbox_content_through_its_balancer(
    kube_cluster: KubeCluster,
) -> None:
    image = "shop/frontend:shop-prod-1.4.2"
    in_cluster = pull_image(
        image, configuration={"registry_url": kube_cluster.settings["cluster_registry"]}
    )
    sandbox = pull_image(image, configuration={"sandbox_dir": kube_cluster.settings["sandbox_dir"]})
    assert in_cluster["ok"] and in_cluster["verified"], in_cluster
    assert in_cluster["manifest_digest"] == sandbox["manifest_digest"]
    assert in_cluster["bytes"] == sandbox["bytes"] > 0
    assert sorted(registry_pods(kube_cluster).values()) == ["registry-0", "registry-1"]
    # Both replicas answered through the balancer (nginx's access log names the upstreams).
    log = Layout.at(kube_cluster.state_dir).log_file("registry-lb-access").read_text()
    ports = set(re.findall(r"upstream=127\.0\.0\.1:(\d+)", log))
    assert len(ports) == 2, ports


@pytest.mark.parametrize(
    ("mode", "value", "killed"), [("one", None, 1), ("fixed", 2, 2), ("fixed-percent", 50, 1)]
)
def test_kill_deletes_the_chosen_pods_and_rollback_waits_for_replacements(
    kube_cluster: KubeCluster, ledger_dir: Path, mode: str, value: Any, killed: int
) -> None:
    before = registry_pods(kube_cluster)
    config = configuration(kube_cluster, mode, value)
    fault = kill_registry_node("registry-1", duration=60, configuration=config)
    deleted = fault["applied"]["deleted"]
    assert len(deleted) == killed and set(deleted) <= set(before.values())
    assert fault["parameters"]["mode"] == mode
    result = restart_registry_node(configuration=config)
    assert result["count"] == 1 and result["reverted"][0]["state"] == "reverted"
    now = registry_pods(kube_cluster)
    # A StatefulSet's replacement keeps the name: the killed pods are gone by uid, and the
    # revert waited until as many pods as before were ready again.
    gone = {uid for uid, name in before.items() if name in deleted}
    assert len(gone) == killed and not (gone & set(now))
    assert sorted(now.values()) == sorted(before.values())
    assert statefulset_not_ready(kube_cluster.client, REGISTRY_NAMESPACE, REGISTRY_NAME) is None
    (entry,) = Ledger(ledger_dir).all()
    assert entry.revert_reason is RevertReason.ROLLBACK


def test_kill_with_restart_after_is_settled_by_the_watchdog(
    kube_cluster: KubeCluster, ledger_dir: Path
) -> None:
    kill_registry_node(
        "registry-1", restart_after=2, duration=30, configuration=configuration(kube_cluster)
    )
    (entry,) = Ledger(ledger_dir).all()
    settled = eventually(
        "the watchdog settles the kill",
        lambda: Ledger(ledger_dir).get(entry.id).state is FaultState.REVERTED,
        timeout=30,
    )
    assert settled
    assert Ledger(ledger_dir).get(entry.id).revert_reason is RevertReason.EXPIRED


def test_kill_refusals_and_dry_run_delete_nothing(
    kube_cluster: KubeCluster, ledger_dir: Path
) -> None:
    before = registry_pods(kube_cluster)
    with pytest.raises(ActivityFailed, match=r"more than configuration\.max_pods"):
        kill_registry_node(
            "registry-1", duration=10, configuration=configuration(kube_cluster, max_pods=1)
        )
    with pytest.raises(ActivityFailed, match="unknown registry node 'registry-2'"):
        kill_registry_node("registry-2", duration=10, configuration=configuration(kube_cluster))
    with pytest.raises(ActivityFailed, match="needs a whole number value"):
        kill_registry_node(
            "registry-1", duration=10, configuration=configuration(kube_cluster, "fixed")
        )
    with pytest.raises(ActivityFailed, match="never a chaos target"):
        kill_registry_node(
            "registry-1",
            duration=10,
            configuration=configuration(kube_cluster, namespace="kube-system"),
        )
    # Probes that measure another registry than the one killed would pass whatever happens.
    unmeasured = configuration(kube_cluster)
    del unmeasured["chaosregistry"]["registry_url"]
    refused = r"^kill_registry_node: configuration\.registry_url: set it"
    with pytest.raises(ActivityFailed, match=refused):
        kill_registry_node("registry-1", duration=10, configuration=unmeasured)
    with pytest.raises(ActivityFailed, match="node_kill_provider must be one of api, chaos-mesh"):
        kill_registry_node(
            "registry-1",
            duration=10,
            configuration=configuration(kube_cluster, node_kill_provider="litmus"),
        )
    assert Ledger(ledger_dir).all() == []
    planned = kill_registry_node(
        "registry-1",
        duration=10,
        configuration=configuration(kube_cluster, dry_run=True, node_kill_provider="chaos-mesh"),
    )
    assert planned["applied"]["would_apply"]["kind"] == "PodChaos"
    assert list(kube_cluster.client.list(chaosmesh.resource("PodChaos"), namespace="*")) == []
    restart_registry_node(configuration=configuration(kube_cluster))
    fault = kill_registry_node(
        "registry-1", duration=10, configuration=configuration(kube_cluster, "all", dry_run=True)
    )
    assert fault["applied"]["dry_run"] is True
    assert set(fault["applied"]["would_delete"]) == set(before.values())
    assert registry_pods(kube_cluster) == before
    restart_registry_node(configuration=configuration(kube_cluster))


def test_pod_kill_through_chaos_mesh_is_carried_out_by_its_controller_and_reverted(
    kube_cluster: KubeCluster, ledger_dir: Path
) -> None:
    """node_kill_provider chaos-mesh: a PodChaos pod-kill that the real Chaos Mesh controller
    (namespace-scoped to the registry's namespace on the test bed) carries out and records."""
    before = registry_pods(kube_cluster)
    config = configuration(kube_cluster, node_kill_provider="chaos-mesh")
    fault = kill_registry_node("registry-1", duration=60, configuration=config)
    applied = fault["applied"]
    assert applied["injected"] == "confirmed", applied
    assert applied["object"].startswith(f"PodChaos {REGISTRY_NAMESPACE}/chaosregistry-pod-kill-")
    assert applied["spec"]["action"] == "pod-kill" and applied["spec"]["mode"] == "one"
    (victim,) = applied["deleted"]
    victim_uid = next(uid for uid, name in before.items() if name == victim)
    eventually(
        f"Chaos Mesh deleted {victim}",
        lambda: victim_uid not in registry_pods(kube_cluster),
        timeout=15,
    )
    result = restart_registry_node(configuration=config)
    assert result["count"] == 1 and result["reverted"][0]["state"] == "reverted"
    assert list(kube_cluster.client.list(chaosmesh.resource("PodChaos"), namespace="*")) == []
    now = registry_pods(kube_cluster)
    assert sorted(now.values()) == sorted(before.values()) and victim_uid not in now
    (entry,) = Ledger(ledger_dir).all()
    assert entry.revert_reason is RevertReason.ROLLBACK


@pytest.mark.parametrize("provider", ["api", "chaos-mesh"])
def test_registry_node_kill_game_day_on_the_kubernetes_backend(
    kube_cluster: KubeCluster, ledger_dir: Path, tmp_path: Path, provider: str
) -> None:
    """The experiment file unchanged, vars/kubernetes.yaml plus the in-cluster registry as the
    registry measured: one replica is deleted under Locust load, the balancer routes around it,
    the StatefulSet replaces it, the steady state holds before, during and after. The cluster is
    found from a state dir given relative to where the game day is started."""
    before = registry_pods(kube_cluster)
    lb_log = Layout.at(kube_cluster.state_dir).log_file("registry-lb-access")
    log_start = lb_log.stat().st_size
    here = tmp_path / "workdir"
    here.mkdir()
    (here / "cluster").symlink_to(kube_cluster.state_dir)
    process, journal = run_gameday(
        kube_cluster,
        tmp_path,
        "registry-node-kill",
        settings={
            "registry_url": kube_cluster.settings["cluster_registry"],
            "cluster_state_dir": "cluster",
            "node_kill_provider": provider,
        },
        cwd=here,
    )
    assert process.returncode == 0, process.stdout[-4000:]
    out = outputs(journal)
    kill = out["kill-registry-node"]
    assert kill["kind"] == "node.kill" and kill["applied"]["namespace"] == REGISTRY_NAMESPACE
    if provider == "chaos-mesh":
        assert kill["applied"]["injected"] == "confirmed", kill
    (victim,) = kill["applied"]["deleted"]
    samples = [
        r["output"] for r in journal["run"] if r["activity"]["name"] == "pulls-with-one-node-down"
    ]
    assert len(samples) == 3 and all(s["success_ratio"] >= 0.95 for s in samples), samples
    load = out["load-through-the-kill"]
    assert load["pulls"] >= 50 and load["failure_ratio"] <= 0.05, load
    print(
        f"\nnode kill on the cluster ({provider}): {victim} deleted; samples "
        f"{[s['success_ratio'] for s in samples]}; load {load['pulls']} pulls, "
        f"failure ratio {load['failure_ratio']}"
    )
    # The pod was really replaced (same name, new uid) and both replicas serve again.
    registry_ready(kube_cluster)
    now = registry_pods(kube_cluster)
    assert sorted(now.values()) == sorted(before.values())
    assert {u for u, n in before.items() if n == victim}.isdisjoint(now)
    # The load went through the balancer to both replicas (the killed one before and after).
    with lb_log.open() as handle:
        handle.seek(log_start)
        ports = re.findall(r"upstream=127\.0\.0\.1:(\d+)", handle.read())
    assert len(set(ports)) == 2 and len(ports) > 100, len(ports)
    kinds = sorted(e.kind for e in Ledger(ledger_dir).all())
    assert "node.kill" in kinds, kinds
    assert all(e.state is FaultState.REVERTED for e in Ledger(ledger_dir).all())


def test_killing_every_registry_pod_is_a_deviation_the_game_day_reports(
    kube_cluster: KubeCluster, ledger_dir: Path, tmp_path: Path
) -> None:
    """The same experiment with mode all: nothing is left to route to, the pulls sampled right
    after the kill fail, and the game day says deviated (exit 10). The check can fail."""
    every_pod = {"namespace": REGISTRY_NAMESPACE, "selector": dict(REGISTRY_LABELS), "mode": "all"}
    process, journal = run_gameday(
        kube_cluster,
        tmp_path,
        "registry-node-kill",
        settings={
            "registry_url": kube_cluster.settings["cluster_registry"],
            "registry_nodes": {"registry-1": every_pod},
        },
    )
    assert process.returncode == 10, process.stdout[-4000:]
    assert "verdict: deviated" in process.stdout
    assert sorted(outputs(journal)["kill-registry-node"]["applied"]["deleted"]) == [
        "registry-0",
        "registry-1",
    ]
    first = next(
        r["output"] for r in journal["run"] if r["activity"]["name"] == "pulls-with-one-node-down"
    )
    assert first["success_ratio"] < 0.95 and "server-error" in first["errors"], first
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    registry_ready(kube_cluster)
    assert all(e.state is FaultState.REVERTED for e in Ledger(ledger_dir).all())


def test_a_kill_the_probes_would_not_see_fails_the_game_day_and_kills_nothing(
    kube_cluster: KubeCluster, ledger_dir: Path, tmp_path: Path
) -> None:
    """vars/kubernetes.yaml as shipped measures the sandbox, not the in-cluster registry: the
    kill refuses, and a run whose fault never happened is failed (exit 11), never passed."""
    before = registry_pods(kube_cluster)
    process, _ = run_gameday(kube_cluster, tmp_path, "registry-node-kill")
    assert process.returncode == 11, process.stdout[-4000:]
    (note,) = [line for line in process.stdout.splitlines() if line.startswith("note: action")]
    assert "'kill-registry-node' failed" in note and "configuration.registry_url" in note, note
    assert registry_pods(kube_cluster) == before
    assert not [e for e in Ledger(ledger_dir).all() if e.kind == "node.kill"]


def test_sigkill_of_chaos_run_after_a_pod_chaos_kill_leaves_no_chaos_object(
    kube_cluster: KubeCluster, ledger_dir: Path, tmp_path: Path
) -> None:
    """The ledger's watchdog settles a PodChaos whose owner died: the object is deleted (its
    finalizer released by the running controller) and the replacements are ready."""
    settings = configuration(kube_cluster, node_kill_provider="chaos-mesh")["chaosregistry"]
    experiment = {
        "version": "1.0.0",
        "title": "pod kill through Chaos Mesh, then a long wait (the test SIGKILLs chaos run)",
        "description": "t",
        "configuration": {"backend": "kubernetes", "chaosregistry": settings},
        "method": [
            {
                "type": "action",
                "name": "kill",
                "provider": {
                    "type": "python",
                    "module": "chaosregistry.actions.node",
                    "func": "kill_registry_node",
                    "arguments": {"node": "registry-1", "duration": 8},
                },
            },
            {
                "type": "action",
                "name": "wait",
                "provider": {"type": "process", "path": "sleep", "arguments": "60"},
            },
        ],
    }
    path = tmp_path / "kill.yaml"
    path.write_text(yaml.safe_dump(experiment))
    ledger = Ledger(ledger_dir)
    pod_chaos = chaosmesh.resource("PodChaos")
    settled_after = []
    for trial in range(3):
        registry_ready(kube_cluster)
        known = {e.id for e in ledger.all()}
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("chaos")), "run", str(path)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            def injected(known: set[str] = known) -> Any:
                fresh = [e for e in ledger.all() if e.id not in known]
                return fresh[0] if fresh and fresh[0].state is FaultState.INJECTED else None

            entry = eventually(
                f"trial {trial}: pod kill injected", injected, timeout=60, interval=0.05
            )
            assert list(kube_cluster.client.list(pod_chaos, namespace=REGISTRY_NAMESPACE))
            process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        eventually(
            f"trial {trial}: entry reverted",
            lambda entry_id=entry.id: ledger.get(entry_id).state is FaultState.REVERTED,
            timeout=8 + PODS_BACK_WAIT,
            interval=0.1,
        )
        settled_after.append(round(time.monotonic() - killed, 2))
        assert ledger.get(entry.id).revert_reason is RevertReason.OWNER_GONE
        assert list(kube_cluster.client.list(pod_chaos, namespace=REGISTRY_NAMESPACE)) == []
    print(f"\nSIGKILL after a PodChaos kill -> object gone, pods back (s): {settled_after}")
