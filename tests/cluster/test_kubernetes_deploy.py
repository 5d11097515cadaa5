"""The bad-tag fault on the real test cluster: the game day, SIGKILL of ``chaos run``, the
blast-radius guard and bad input.

The session's shared cluster serves the module (``support.cluster``); every object made here
has a unique name and is deleted, and the demo is back on its image when the module ends.
Timings are printed at the end (run with ``-s`` to see them).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed
from lightkube.codecs import from_dict
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import Namespace
from support.cluster import KubeCluster, demo_image, restore_demo, wait_available
from support.faults import OUTLIVES_AT_MOST, SETTLES_WITHIN, reverted_by
from support.polling import eventually

from chaosregistry.actions.deploy import deploy_bad_tag, rollback_deployment
from chaosregistry.cluster.images import DEMO_REPOSITORY, DEMO_TAG, image_name
from chaosregistry.cluster.layout import DEMO_NAMESPACE
from chaosregistry.cluster.workloads import DEMO_NAME
from chaosregistry.faults.ledger import FaultState, Ledger, RevertReason
from chaosregistry.faults.watchdog import (
    LEDGER_INDEX_ENV,
    known_ledgers,
    known_ledgers_dir,
    watchdog_pid,
)
from chaosregistry.kubernetes.rollout import (
    BAD_TAG_ANNOTATION,
    BAD_TAG_LABEL,
    ORIGINAL_IMAGE_ANNOTATION,
    owned_replica_sets,
    revision_of,
)

pytest_plugins = ["support.cluster"]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ORIGINAL = image_name(DEMO_REPOSITORY, DEMO_TAG)
MEASURED: dict[str, list[float]] = {}


@pytest.fixture(scope="module", autouse=True)
def print_measurements() -> Iterator[None]:
    yield
    for name, values in MEASURED.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"\n{name}: n={len(values)} max={max(values):.2f} s [{shown}]")


@pytest.fixture(scope="module", autouse=True)
def demo_put_back(kube_cluster: KubeCluster) -> Iterator[None]:
    """The bad tags change the demo's image: it is the original again when the module ends."""
    yield
    restore_demo(kube_cluster.client)


@pytest.fixture
def env(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment for our activities and ``chaos run``: this cluster, a fresh ledger."""
    values = {
        "CHAOSREGISTRY_KUBECONFIG": str(kube_cluster.kubeconfig),
        "CHAOSREGISTRY_LEDGER_DIR": str(tmp_path / "ledger"),
        "CHAOSREGISTRY_WATCHDOG_IDLE_EXIT": "1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **values}


def configuration(**extra: Any) -> dict[str, Any]:
    return {"chaosregistry": {"backend": "kubernetes", "namespace": DEMO_NAMESPACE, **extra}}


def annotations(kube_cluster: KubeCluster, name: str = DEMO_NAME) -> dict[str, str]:
    found = kube_cluster.client.get(Deployment, name, namespace=DEMO_NAMESPACE)
    return dict((found.metadata.annotations if found.metadata else None) or {})


def generation(kube_cluster: KubeCluster, name: str, namespace: str = DEMO_NAMESPACE) -> int:
    found = kube_cluster.client.get(Deployment, name, namespace=namespace)
    return int(found.metadata.generation or 0) if found.metadata else 0


def test_bad_tag_game_day_stalls_then_rolls_back(
    kube_cluster: KubeCluster, env: dict[str, str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    process = subprocess.run(
        [
            str(BIN / "chaosregistry"),
            "gameday",
            str(ROOT / "experiments/bad-tag-rollback.yaml"),
            "--vars",
            str(ROOT / "experiments/vars/kubernetes.yaml"),
            "--run-dir",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]
    journal = json.loads((run_dir / "journal.json").read_text())
    out = {r["activity"]["name"]: r["output"] for r in journal["run"]}

    fault = out["deploy-a-tag-that-does-not-exist"]
    assert fault["parameters"]["original_image"] == ORIGINAL
    assert fault["applied"]["image"].endswith(":does-not-exist")

    failure = out["rollout-declared-failed"]
    assert failure["failed"] is True and failure["reason"] == "ProgressDeadlineExceeded"
    # The demo's deadline is 30 s; the controller notices within its next sync.
    assert 30 <= failure["seconds"] <= 60, failure
    assert failure["first_pull_error_after"] is not None and failure["first_pull_error_after"] < 30
    assert failure["health"]["image_pull_errors"] >= 1
    assert failure["serving_replicas"] == 3  # the old pods kept serving throughout

    assert out["roll-back"]["count"] == 1
    assert out["roll-back"]["reverted"][0]["state"] == "reverted"
    recovery = out["time-to-available-after-rollback"]
    assert recovery["complete"] is True and recovery["started_from"] == "annotation"
    events = out["kubelet-pull-events"]
    assert events["pull_failures"] >= 1
    assert any(i.endswith(":does-not-exist") for i in events["images"])

    MEASURED["bad tag: declared failed after (s)"] = [failure["seconds"]]
    MEASURED["bad tag: Available again after rollback (s)"] = [recovery["seconds"]]
    assert demo_image(kube_cluster.client, DEMO_NAMESPACE) == ORIGINAL
    assert ORIGINAL_IMAGE_ANNOTATION not in annotations(kube_cluster)
    (entry,) = Ledger(env["CHAOSREGISTRY_LEDGER_DIR"]).all()
    assert entry.state is FaultState.REVERTED and entry.revert_reason is RevertReason.ROLLBACK
    wait_available(kube_cluster.client, DEMO_NAMESPACE)


KILL_EXPERIMENT = {
    "version": "1.0.0",
    "title": "bad tag, then a long probe (the test SIGKILLs chaos run)",
    "description": "t",
    "configuration": {"backend": "kubernetes", "chaosregistry": {"namespace": DEMO_NAMESPACE}},
    "method": [
        {
            "type": "action",
            "name": "bad-tag",
            "provider": {
                "type": "python",
                "module": "chaosregistry.actions.deploy",
                "func": "deploy_bad_tag",
                "arguments": {"deployment": DEMO_NAME, "duration": 8},
            },
        },
        {
            "type": "probe",
            "name": "wait",
            "provider": {
                "type": "python",
                "module": "chaosregistry.probes.rollout",
                "func": "rollout_failure",
                "arguments": {"deployment": DEMO_NAME, "timeout": 60},
            },
        },
    ],
}
KILL_TRIALS = 10
KILL_DURATION = 8.0


def test_sigkill_of_chaos_run_after_bad_tag_puts_the_original_image_back(
    kube_cluster: KubeCluster, env: dict[str, str], tmp_path: Path
) -> None:
    experiment = tmp_path / "kill.yaml"
    experiment.write_text(yaml.safe_dump(KILL_EXPERIMENT))
    ledger = Ledger(env["CHAOSREGISTRY_LEDGER_DIR"])
    restored_after: list[float] = []
    for trial in range(KILL_TRIALS):
        known = {e.id for e in ledger.all()}
        process = subprocess.Popen(
            [str(BIN / "chaos"), "--log-file", str(tmp_path / "chaos.log"), "run", str(experiment)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            def injected(known: set[str] = known) -> Any:
                fresh = [e for e in ledger.all() if e.id not in known]
                return fresh[0] if fresh and fresh[0].state is FaultState.INJECTED else None

            entry = eventually(
                f"trial {trial}: bad tag injected", injected, timeout=60, interval=0.05
            )
            assert demo_image(kube_cluster.client, DEMO_NAMESPACE).endswith(":does-not-exist")
            time.sleep(random.uniform(0, 1.0))  # the scenario: the kill at a random point
            process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        eventually(
            f"trial {trial}: original image back",
            lambda: demo_image(kube_cluster.client, DEMO_NAMESPACE) == ORIGINAL,
            timeout=KILL_DURATION + SETTLES_WITHIN,
            interval=0.05,
        )
        restored_after.append(time.monotonic() - killed)
        reverted = eventually(
            f"trial {trial}: entry reverted",
            lambda entry_id=entry.id: (
                (e := ledger.get(entry_id)).state is FaultState.REVERTED and e
            ),
            timeout=SETTLES_WITHIN,
        )
        assert reverted.revert_reason is RevertReason.OWNER_GONE
        assert ORIGINAL_IMAGE_ANNOTATION not in annotations(kube_cluster)
        assert BAD_TAG_ANNOTATION not in annotations(kube_cluster)
    MEASURED["SIGKILL of chaos run -> original image back (s)"] = restored_after
    assert max(restored_after) <= KILL_DURATION + 3
    wait_available(kube_cluster.client, DEMO_NAMESPACE)


def labels(kube_cluster: KubeCluster, name: str = DEMO_NAME) -> dict[str, str]:
    found = kube_cluster.client.get(Deployment, name, namespace=DEMO_NAMESPACE)
    return dict((found.metadata.labels if found.metadata else None) or {})


def test_sigkill_of_chaos_run_and_its_watchdog_together_still_puts_the_image_back(
    kube_cluster: KubeCluster, env: dict[str, str], tmp_path: Path
) -> None:
    """The cluster's sandbox runs a guardian: it starts a new watchdog for the ledger, which
    reverts the bad tag (its owner is dead) well within the expiry + 5 s bound."""
    experiment = tmp_path / "kill.yaml"
    experiment.write_text(yaml.safe_dump(KILL_EXPERIMENT))
    ledger_dir = Path(env["CHAOSREGISTRY_LEDGER_DIR"])
    ledger = Ledger(ledger_dir)
    rng = random.Random(int(os.environ.get("CHAOSREGISTRY_TRIAL_SEED", time.time_ns())))
    outcomes: list[dict[str, Any]] = []
    for trial in range(KILL_TRIALS):
        known = {e.id for e in ledger.all()}
        process = subprocess.Popen(
            [str(BIN / "chaos"), "--log-file", str(tmp_path / "chaos.log"), "run", str(experiment)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:

            def injected(known: set[str] = known) -> Any:
                fresh = [e for e in ledger.all() if e.id not in known]
                return fresh[0] if fresh and fresh[0].state is FaultState.INJECTED else None

            entry = eventually(
                f"trial {trial}: bad tag injected", injected, timeout=60, interval=0.05
            )
            assert labels(kube_cluster).get(BAD_TAG_LABEL) == "bad-tag"
            marker = json.loads(annotations(kube_cluster)[BAD_TAG_ANNOTATION])
            assert entry.expires_at <= marker["expires_at"] <= entry.expires_at + 2
            time.sleep(rng.uniform(0, KILL_DURATION / 2))  # the scenario: a random kill point
            watchdog = watchdog_pid(ledger_dir)
            os.killpg(process.pid, signal.SIGKILL)
            if watchdog is not None:
                os.kill(watchdog, signal.SIGKILL)
            killed = time.time()
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        eventually(
            f"trial {trial}: original image back",
            lambda: demo_image(kube_cluster.client, DEMO_NAMESPACE) == ORIGINAL,
            timeout=KILL_DURATION + OUTLIVES_AT_MOST + 5,
            interval=0.05,
        )
        back = time.time()
        outcome = {
            "trial": trial,
            "watchdog_killed": watchdog is not None,
            "outlived_expiry": round(back - entry.expires_at, 2),
            "back_after_kill": round(back - killed, 2),
        }
        outcomes.append(outcome)
        assert back - entry.expires_at <= OUTLIVES_AT_MOST, outcome
        eventually(
            f"trial {trial}: entry reverted",
            lambda entry_id=entry.id: ledger.get(entry_id).state is FaultState.REVERTED,
            timeout=10,
        )
        if watchdog is not None:
            # Reverted by a watchdog started after the kill: only a guardian was left to start
            # one (this cluster's sandbox's, or another sandbox's watching the same index).
            assert reverted_by(ledger_dir, entry.id) not in (None, watchdog), outcome
        assert BAD_TAG_ANNOTATION not in annotations(kube_cluster), outcome
        assert BAD_TAG_LABEL not in labels(kube_cluster), outcome
    print("\n" + "\n".join(json.dumps(o) for o in outcomes))
    MEASURED["SIGKILL of chaos run + watchdog -> original image back (s)"] = [
        o["back_after_kill"] for o in outcomes
    ]
    assert sum(o["watchdog_killed"] for o in outcomes) >= KILL_TRIALS // 2, outcomes
    wait_available(kube_cluster.client, DEMO_NAMESPACE)


def test_an_expired_bad_tag_whose_ledger_is_lost_is_reverted_by_cluster_status(
    kube_cluster: KubeCluster,
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second net: the Deployment itself records the fault's expiry and undo."""
    ledger_dir = tmp_path / "lost-ledger"
    # The ledger lives on a machine of its own, with its own index of known ledgers: the
    # guardians of this session's sandboxes watch another index, so none of them starts the
    # watchdog again once it is killed (as they would for a ledger of their machine).
    guardians_index = known_ledgers_dir()
    lost_index = tmp_path / "lost-index"
    monkeypatch.setenv(LEDGER_INDEX_ENV, str(lost_index))
    fault = deploy_bad_tag(
        deployment=DEMO_NAME,
        duration=2,
        configuration={**configuration(), "ledger_dir": str(ledger_dir)},
    )
    assert known_ledgers(lost_index) == [ledger_dir]
    assert ledger_dir not in known_ledgers(guardians_index)
    watchdog = watchdog_pid(ledger_dir)
    assert watchdog is not None
    # The ledger's machine is gone: its watchdog, its files and its index with it.
    os.kill(watchdog, signal.SIGKILL)
    eventually("the watchdog gone", lambda: watchdog_pid(ledger_dir) is None, timeout=5)
    subprocess.run(["rm", "-rf", str(ledger_dir), str(lost_index)], check=True)
    # An absence, which no poll can wait for: past the expiry, nothing (no watchdog, no ledger)
    # has put the image back; only the cluster-status sweep below may.
    time.sleep(max(0.0, fault["expires_at"] - time.time()) + 1.0)
    assert demo_image(kube_cluster.client, DEMO_NAMESPACE).endswith(":does-not-exist")

    status = subprocess.run(
        [
            str(BIN / "chaosregistry"),
            "cluster",
            "status",
            "--state-dir",
            str(kube_cluster.state_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert f"bad tag on deployment {DEMO_NAMESPACE}/{DEMO_NAME}" in status.stdout, status.stdout
    assert demo_image(kube_cluster.client, DEMO_NAMESPACE) == ORIGINAL
    assert BAD_TAG_ANNOTATION not in annotations(kube_cluster)
    assert ORIGINAL_IMAGE_ANNOTATION not in annotations(kube_cluster)
    assert BAD_TAG_LABEL not in labels(kube_cluster)
    # Said once: a second status has nothing left to revert.
    again = subprocess.run(
        [
            str(BIN / "chaosregistry"),
            "cluster",
            "status",
            "--state-dir",
            str(kube_cluster.state_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "expired fault reverted" not in again.stdout, again.stdout
    wait_available(kube_cluster.client, DEMO_NAMESPACE)


@pytest.fixture
def scratch(kube_cluster: KubeCluster) -> Iterator[dict[str, str]]:
    """A namespace without the opt-in label and a Deployment of no pods in the demo namespace,
    each with a Deployment (replicas 0), uniquely named; deleted afterwards."""
    suffix = uuid.uuid4().hex[:6]
    names = {"namespace": f"no-optin-{suffix}", "empty": f"empty-{suffix}"}
    client = kube_cluster.client
    client.create(
        from_dict(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": names["namespace"]}}
        )
    )

    def deployment(name: str, namespace: str) -> Any:
        labels = {"app": name}
        return from_dict(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "app", "image": ORIGINAL}]},
                    },
                },
            }
        )

    client.create(deployment(DEMO_NAME, names["namespace"]))
    client.create(deployment(names["empty"], DEMO_NAMESPACE))
    try:
        yield names
    finally:
        client.delete(Deployment, names["empty"], namespace=DEMO_NAMESPACE)
        client.delete(Namespace, names["namespace"])


def assert_refused(match: str, **kwargs: Any) -> str:
    with pytest.raises(ActivityFailed) as refused:
        deploy_bad_tag(**kwargs)
    message = str(refused.value)
    assert "\n" not in message and match in message, message
    return message


def test_blast_radius_refusals_change_nothing(
    kube_cluster: KubeCluster, env: dict[str, str], scratch: dict[str, str]
) -> None:
    before = {
        "demo": generation(kube_cluster, DEMO_NAME),
        "empty": generation(kube_cluster, scratch["empty"]),
        "other": generation(kube_cluster, DEMO_NAME, scratch["namespace"]),
        "annotations": annotations(kube_cluster),
    }
    assert_refused(
        "namespace 'kube-system' is never a chaos target",
        deployment="kube-apiserver",
        namespace="kube-system",
        duration=10,
        configuration=configuration(),
    )
    assert_refused(
        "lacks the label chaosregistry.io/chaos=enabled",
        deployment=DEMO_NAME,
        namespace=scratch["namespace"],
        duration=10,
        configuration=configuration(),
    )
    assert_refused(
        "matches no pod",
        deployment=scratch["empty"],
        duration=10,
        configuration=configuration(),
    )
    assert_refused(
        "matches 3 pods in chaos-demo, more than configuration.max_pods (2)",
        deployment=DEMO_NAME,
        duration=10,
        configuration=configuration(max_pods=2),
    )
    assert {
        "demo": generation(kube_cluster, DEMO_NAME),
        "empty": generation(kube_cluster, scratch["empty"]),
        "other": generation(kube_cluster, DEMO_NAME, scratch["namespace"]),
        "annotations": annotations(kube_cluster),
    } == before
    assert demo_image(kube_cluster.client, DEMO_NAMESPACE) == ORIGINAL
    assert Ledger(env["CHAOSREGISTRY_LEDGER_DIR"]).all() == []


def test_bad_input_is_one_line_and_changes_nothing(
    kube_cluster: KubeCluster, env: dict[str, str]
) -> None:
    before = generation(kube_cluster, DEMO_NAME)
    assert_refused(
        "deployment 'no-such-deployment' not found in namespace 'chaos-demo'",
        deployment="no-such-deployment",
        duration=10,
        configuration=configuration(),
    )
    assert_refused(
        "container 'sidecar' is not in the pod spec (containers: app)",
        deployment=DEMO_NAME,
        container="sidecar",
        duration=10,
        configuration=configuration(),
    )
    assert_refused(
        "duration must be a positive number of seconds, got str '5 minutes'",
        deployment=DEMO_NAME,
        duration="5 minutes",
        configuration=configuration(),
    )
    assert_refused(
        "duration must be at most 3600 seconds (the limit), got 7200",
        deployment=DEMO_NAME,
        duration=7200,
        configuration=configuration(),
    )
    assert generation(kube_cluster, DEMO_NAME) == before
    assert Ledger(env["CHAOSREGISTRY_LEDGER_DIR"]).all() == []


def test_dry_run_logs_the_patches_and_applies_nothing(
    kube_cluster: KubeCluster, env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    before = generation(kube_cluster, DEMO_NAME)
    result = deploy_bad_tag(
        DEMO_NAME, tag="nope", duration=10, configuration=configuration(dry_run=True)
    )
    assert result["dry_run"] is True
    (test_op, replace_op) = result["would_apply"]["json-patch"]
    assert test_op == {
        "op": "test",
        "path": "/spec/template/spec/containers/0/image",
        "value": ORIGINAL,
    }
    assert replace_op["value"] == image_name(DEMO_REPOSITORY, "nope")
    assert "dry run: would patch deployment chaos-demo/demo" in caplog.text
    assert generation(kube_cluster, DEMO_NAME) == before
    assert ORIGINAL_IMAGE_ANNOTATION not in annotations(kube_cluster)
    assert Ledger(env["CHAOSREGISTRY_LEDGER_DIR"]).all() == []
    # The undo partner with nothing to undo is a no-op.
    assert rollback_deployment(DEMO_NAME, configuration=configuration())["count"] == 0


DRY_RUN_EXPERIMENT = {
    "version": "1.0.0",
    "title": "a bad tag in a dry run: the game day applies nothing and says so",
    "description": "t",
    "configuration": {
        "backend": "kubernetes",
        "chaosregistry": {"namespace": DEMO_NAMESPACE, "dry_run": True},
    },
    "steady-state-hypothesis": {
        "title": "the demo is healthy",
        "probes": [
            {
                "type": "probe",
                "name": "demo-healthy",
                "tolerance": {"type": "range", "range": [1, 100], "target": "available_replicas"},
                "provider": {
                    "type": "python",
                    "module": "chaosregistry.probes.rollout",
                    "func": "rollout_health",
                    "arguments": {"deployment": DEMO_NAME},
                },
            }
        ],
    },
    "method": [
        {
            "type": "action",
            "name": "bad-tag",
            "provider": {
                "type": "python",
                "module": "chaosregistry.actions.deploy",
                "func": "deploy_bad_tag",
                "arguments": {"deployment": DEMO_NAME, "duration": 20},
            },
        },
    ],
    "rollbacks": [
        {
            "type": "action",
            "name": "roll-back",
            "provider": {
                "type": "python",
                "module": "chaosregistry.actions.deploy",
                "func": "rollback_deployment",
                "arguments": {"deployment": DEMO_NAME},
            },
        }
    ],
}


def test_a_dry_run_game_day_has_the_dry_run_verdict_never_passed(
    kube_cluster: KubeCluster, env: dict[str, str], tmp_path: Path
) -> None:
    """The real ``chaos run`` through ``gameday`` with ``dry_run: true``: the steady state holds
    (nothing was applied), which today's rule called passed; it is dry-run, exit 14."""
    before = generation(kube_cluster, DEMO_NAME)
    experiment = tmp_path / "dry-run.json"
    experiment.write_text(json.dumps(DRY_RUN_EXPERIMENT))
    run_dir = tmp_path / "run"
    process = subprocess.run(
        [str(BIN / "chaosregistry"), "gameday", str(experiment), "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    output = process.stdout[-3000:] + process.stderr[-2000:]
    assert process.returncode == 14, output
    assert "verdict: dry-run (exit 14)" in process.stdout, output
    gameday = json.loads((run_dir / "gameday.json").read_text())
    assert gameday["verdict"] == "dry-run"
    assert [f["dry_run"] for f in gameday["fault_evidence"]] == [True], gameday["fault_evidence"]
    assert generation(kube_cluster, DEMO_NAME) == before  # nothing was patched


def test_rollback_restores_the_image_alone_when_the_recorded_revision_is_gone(
    kube_cluster: KubeCluster, env: dict[str, str]
) -> None:
    """``kubectl rollout undo`` needs the previous ReplicaSet; someone (or a
    revisionHistoryLimit) may have deleted it. The undo then puts the original image back
    by itself, and the Deployment rolls out to Available on it."""
    client = kube_cluster.client
    fault = deploy_bad_tag(DEMO_NAME, duration=120, configuration=configuration())
    revision = fault["parameters"]["revision"]
    deployment = client.get(Deployment, DEMO_NAME, namespace=DEMO_NAMESPACE)
    owned = owned_replica_sets(deployment, client.list(ReplicaSet, namespace=DEMO_NAMESPACE))
    (recorded,) = [rs for rs in owned if revision_of(rs) == revision]
    assert recorded.metadata is not None and recorded.metadata.name
    client.delete(ReplicaSet, recorded.metadata.name, namespace=DEMO_NAMESPACE)
    eventually(
        "the recorded revision's ReplicaSet is gone",
        lambda: all(
            revision_of(rs) != revision for rs in client.list(ReplicaSet, namespace=DEMO_NAMESPACE)
        ),
        timeout=30,
    )
    result = rollback_deployment(configuration=configuration())
    assert result["count"] == 1 and result["reverted"][0]["state"] == "reverted"
    assert demo_image(client, DEMO_NAMESPACE) == ORIGINAL
    assert ORIGINAL_IMAGE_ANNOTATION not in annotations(kube_cluster)
    wait_available(client, DEMO_NAMESPACE, timeout=120)


def scaled_to_zero(name: str, image: str) -> dict[str, Any]:
    """A Deployment of no pods: its ReplicaSets (the revisions) exist all the same."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": DEMO_NAMESPACE},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def test_rollback_readiness_says_undo_would_fail_before_anyone_tries_it(
    kube_cluster: KubeCluster, env: dict[str, str]
) -> None:
    """Two revisions of a Deployment whose images live in the cluster's sandbox: undo is ready
    while revision 1's image is in the registry; once its manifest is deleted (or no earlier
    revision is kept), the probe says undo would fail, with the reason."""
    from chaosregistry.experiment.settings import settings_for
    from chaosregistry.probes.rollout import rollback_readiness
    from chaosregistry.sandbox import load_credentials
    from chaosregistry.sandbox.seed import push_unique_image

    client = kube_cluster.client
    config = configuration(sandbox_dir=str(kube_cluster.settings["sandbox_dir"]))
    registry = settings_for(config).registry
    endpoints = registry.endpoints()
    stamp = uuid.uuid4().hex[:8]
    old, new = f"rollback/old-{stamp}", f"rollback/new-{stamp}"
    for repository, tag in ((old, "v1"), (new, "v2")):
        push_unique_image(
            endpoints["replicas"][0]["url"],
            load_credentials(Path(kube_cluster.settings["sandbox_dir"])),
            repository,
            tag,
        )
    name = f"rollback-{stamp}"
    client.create(from_dict(scaled_to_zero(name, image_name(old, "v1"))))
    try:
        eventually(
            "revision 1",
            lambda: revision_of(client.get(Deployment, name, namespace=DEMO_NAMESPACE)) == 1,
            timeout=30,
        )
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": image_name(new, "v2")}]}}}}  # fmt: skip
        client.patch(Deployment, name, patch, namespace=DEMO_NAMESPACE)
        eventually(
            "revision 2",
            lambda: revision_of(client.get(Deployment, name, namespace=DEMO_NAMESPACE)) == 2,
            timeout=30,
        )

        ready = rollback_readiness(name, configuration=config)
        assert ready["ready"] is True and ready["reason"] is None, ready
        assert (ready["revision"], ready["undo_revision"]) == (2, 1)
        assert ready["undo_images"] == {"app": image_name(old, "v1")}
        assert ready["revision_history_limit"] == 10
        assert [r["revision"] for r in ready["revisions"]] == [1, 2]
        (image,) = ready["images"]
        assert image["pullable"] is True and image["missing_blobs"] == [], image
        assert image["blobs"] == 2 and image["host"] == image_name(old, "v1").split("/")[0]

        # Revision 1's image is deleted from the registry: undo would roll out an image no
        # node can pull, and the probe says so now.
        with registry.resolve(None, "registry").client() as registry_client:
            assert len(registry_client.delete_repository_tags(old)) == 1
        gone = rollback_readiness(name, configuration=config)
        assert gone["ready"] is False and gone["undo_revision"] == 1, gone
        (image,) = gone["images"]
        assert image["pullable"] is False and image["error"]["class"] == "not-found", image
        assert gone["reason"].startswith(
            f"revision 1's image {image_name(old, 'v1')} cannot be pulled from "
        ), gone["reason"]

        # No earlier revision kept at all: nothing to go back to.
        limit = {"spec": {"revisionHistoryLimit": 0}}
        client.patch(Deployment, name, limit, namespace=DEMO_NAMESPACE)
        eventually(
            "revision 1's ReplicaSet collected",
            lambda: len(rollback_readiness(name, configuration=config)["revisions"]) == 1,
            timeout=30,
        )
        none_kept = rollback_readiness(name, configuration=config)
        assert none_kept["ready"] is False and none_kept["undo_revision"] is None
        assert none_kept["reason"] == (
            "no earlier revision kept (revisionHistoryLimit 0): rollout undo has nothing to go "
            "back to"
        )
    finally:
        client.delete(Deployment, name, namespace=DEMO_NAMESPACE)


def test_rollback_readiness_under_a_bad_tag_names_the_good_image_undo_goes_back_to(
    kube_cluster: KubeCluster, env: dict[str, str]
) -> None:
    from chaosregistry.probes.rollout import rollback_readiness

    config = configuration(sandbox_dir=str(kube_cluster.settings["sandbox_dir"]))
    fault = deploy_bad_tag(DEMO_NAME, duration=120, configuration=configuration())
    try:
        ready = rollback_readiness(DEMO_NAME, configuration=config)
        assert ready["ready"] is True, ready
        assert ready["undo_revision"] == fault["parameters"]["revision"]
        assert list(ready["undo_images"].values()) == [ORIGINAL]
        current = [r for r in ready["revisions"] if r["revision"] == ready["revision"]]
        assert list(current[0]["images"].values()) == [fault["parameters"]["image"]]
    finally:
        rollback_deployment(configuration=configuration())
    wait_available(kube_cluster.client, DEMO_NAMESPACE, timeout=120)
