"""The blast radius verified, without a cluster: which case each predicted workload provokes
(over the recorded cluster of tests/data/blast-radius), what a provoked workload's pods show,
and the agreement of observed with predicted."""

import json
from pathlib import Path
from typing import Any

from chaosregistry.kubernetes.blast_radius import (
    BREAKS,
    DEGRADED,
    KEEPS_RUNNING,
    Inventory,
    Outage,
    analyze,
)
from chaosregistry.kubernetes.verification import (
    MOVE,
    PENDING,
    PULL_FAILED,
    RESTART,
    RUNNING,
    SCALE_UP,
    Provocation,
    agreement,
    judge,
    not_provoked,
    observed_class,
    pod_outcome,
    provocation_for,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "blast-radius" / "cluster.json"
PROVOKED_AT = 1_767_000_000.4  # 2025-12-29T09:20:00.4Z
BEFORE = "2025-12-29T09:10:00Z"
AFTER = "2025-12-29T09:20:00Z"  # the provocation's second: whole seconds, so new


def pod(
    name: str,
    created: str,
    *,
    app: str = "api",
    phase: str = "Pending",
    ready: bool = False,
    waiting: str | None = None,
    init_waiting: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    def status(container: str, reason: str | None, is_ready: bool) -> dict[str, Any]:
        state = {"waiting": {"reason": reason, "message": "dial tcp: refused"}} if reason else {}
        return {"name": container, "ready": is_ready, "state": state}

    metadata: dict[str, Any] = {"name": name, "labels": {"app": app}, "creationTimestamp": created}
    if deleting:
        metadata["deletionTimestamp"] = AFTER
    return {
        "metadata": metadata,
        "status": {
            "phase": phase,
            "containerStatuses": [status("app", waiting, ready)],
            "initContainerStatuses": [status("init", init_waiting, False)] if init_waiting else [],
        },
    }


def test_each_predicted_deployment_provokes_the_case_its_class_names() -> None:
    inventory = Inventory(**json.loads(DATA.read_text()))
    result = analyze(inventory, Outage(hosts=None, seconds=600))
    schedulable = ["node-a", "node-b"]  # node-c is cordoned
    chosen = {
        w["name"]: provocation_for(w, schedulable)
        for w in result["workloads"]
        if w["kind"] == "Deployment"
    }
    assert chosen == {
        # keeps running: restarted, its image cached everywhere
        "web": Provocation(RESTART),
        # degraded (cached on node-a only): moved to the node without the image
        "api": Provocation(MOVE, "node-b"),
        # breaks by pulling Always, or by an image not pullable even now: restarted
        "latest": Provocation(RESTART),
        "migrating": Provocation(RESTART),
        "ghost": Provocation(RESTART),
    }
    db = next(w for w in result["workloads"] if w["name"] == "db")
    # Only Deployments are provoked; an image on no node is provoked by a new replica.
    assert provocation_for(db, schedulable) is None
    assert provocation_for({**db, "kind": "Deployment"}, schedulable) == Provocation(SCALE_UP)
    # A Deployment at zero replicas would restart nothing: it scales up instead.
    web = next(w for w in result["workloads"] if w["name"] == "web")
    assert provocation_for({**web, "replicas": 0}, schedulable) == Provocation(SCALE_UP)
    # Degraded with every schedulable node holding the image (one is cordoned): nowhere to go.
    api = next(w for w in result["workloads"] if w["name"] == "api")
    assert provocation_for(api, ["node-a"]) is None
    assert not_provoked(api, ["node-a"]) == "no schedulable node lacks its image"
    # Degraded at zero replicas: no pod keeps running and none can be moved (a move was
    # refused for matching no pod, and failed the game day).
    assert provocation_for({**api, "replicas": 0}, schedulable) is None
    assert "zero replicas" in str(not_provoked({**api, "replicas": 0}, schedulable))
    assert not_provoked(db, schedulable) == "only Deployments are provoked"
    assert not_provoked(api, schedulable) is None


def test_a_pods_outcome_is_running_pull_failed_or_pending() -> None:
    assert pod_outcome(pod("p", BEFORE, phase="Running", ready=True))[0] == RUNNING
    # Running but not ready yet is not "running again".
    assert pod_outcome(pod("p", BEFORE, phase="Running"))[0] == PENDING
    outcome, detail = pod_outcome(pod("p", AFTER, waiting="ErrImagePull"))
    assert outcome == PULL_FAILED
    assert detail == "app: ErrImagePull: dial tcp: refused"
    # An init container's pull error counts too.
    assert pod_outcome(pod("p", AFTER, init_waiting="ImagePullBackOff"))[0] == PULL_FAILED
    assert pod_outcome(pod("p", AFTER, waiting="ContainerCreating")) == (PENDING, "Pending")


def test_what_the_pods_show_is_judged_by_the_provocation() -> None:
    ran, failed, waiting = (RUNNING, "ok"), (PULL_FAILED, "app: ErrImagePull"), (PENDING, "x")
    assert observed_class(RESTART, [ran], 0)[0] == KEEPS_RUNNING
    assert observed_class(RESTART, [failed], 1)[0] == BREAKS
    assert observed_class(SCALE_UP, [ran, failed], 1)[0] == BREAKS
    # A move that cannot pull while the old pod keeps running where the image is: degraded.
    klass, why = observed_class(MOVE, [failed], 1)
    assert klass == DEGRADED and "1 pod(s) keep running" in why
    assert observed_class(MOVE, [failed], 0)[0] == BREAKS
    assert observed_class(MOVE, [ran], 1)[0] == KEEPS_RUNNING
    # Nothing to judge yet.
    assert observed_class(RESTART, [], 1) == (None, "no new pod yet")
    assert observed_class(RESTART, [ran, waiting], 1)[0] is None


def test_judge_tells_new_pods_from_old_by_creation_and_reads_only_the_workloads() -> None:
    pods = [
        pod("old", BEFORE, phase="Running", ready=True),
        pod("moved", AFTER, waiting="ImagePullBackOff"),
        pod("going", BEFORE, phase="Running", ready=True, deleting=True),
        pod("other", AFTER, app="web", phase="Running", ready=True),
    ]
    seen = judge(MOVE, PROVOKED_AT, {"app": "api"}, pods)
    assert seen["observed"] == DEGRADED
    assert (seen["new_pods"], seen["old_running"]) == (1, 1)
    assert judge(RESTART, PROVOKED_AT, {"app": "web"}, pods)["observed"] == KEEPS_RUNNING
    assert judge(RESTART, PROVOKED_AT, {"app": "db"}, pods)["observed"] is None


def test_agreement_is_the_fraction_of_workloads_observed_as_predicted() -> None:
    rows = [
        {
            "kind": "Deployment",
            "namespace": "n",
            "name": "a",
            "predicted": BREAKS,
            "observed": BREAKS,
        },
        {
            "kind": "Deployment",
            "namespace": "n",
            "name": "b",
            "predicted": DEGRADED,
            "observed": None,
        },
        {
            "kind": "Deployment",
            "namespace": "n",
            "name": "c",
            "predicted": KEEPS_RUNNING,
            "observed": BREAKS,
        },
        {
            "kind": "Deployment",
            "namespace": "n",
            "name": "d",
            "predicted": DEGRADED,
            "observed": DEGRADED,
        },
    ]
    result = agreement(rows)
    assert (result["verified"], result["agreed"], result["agreement"]) == (4, 2, 0.5)
    assert result["disagreements"] == [
        "Deployment/n/b: predicted degraded, observed nothing decided",
        "Deployment/n/c: predicted keeps-running, observed breaks",
    ]
    # Nothing provoked proves nothing.
    assert agreement([])["agreement"] == 0.0
