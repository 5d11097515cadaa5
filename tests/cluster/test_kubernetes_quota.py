"""The quota drill on the real kubelet, under ``chaos run`` (``chaosregistry gameday``
experiments/pull-quota-rollout.yaml): a release of the demo Deployment (3 pods, rolled one surge
pod at a time) while the sandbox's registry allows the node's address 4 manifest requests a
minute. The node pulls from the origin (the shared cluster's default), through nginx's
``registry`` server, where the quota counts; the release's push shares the address. The new
pod's pulls meet 429 and it waits in back-off; once the quota is lifted, the release's pods
run and the recovery probe says, per pod, how much of the wait was the kubelet's back-off."""

import re
from collections import Counter
from pathlib import Path

import pytest
from support.cluster import (
    KubeCluster,
    demo_image,
    outputs,
    restore_demo,
    run_gameday,
    wait_available,
)
from support.gameday import assert_held

from chaosregistry import sandbox
from chaosregistry.cluster.images import DEMO_REPOSITORY, DEMO_TAG, image_name
from chaosregistry.cluster.layout import DEMO_NAMESPACE
from chaosregistry.faults.ledger import FaultState, Ledger, RevertReason

pytest_plugins = ["support.cluster"]

ORIGINAL = image_name(DEMO_REPOSITORY, DEMO_TAG)
_LINE = re.compile(
    r'"(?P<method>[A-Z]+) /v2/(?P<repository>\S+)/manifests/(?P<ref>[^?\s]+)\S* '
    r'HTTP/[\d.]+" (?P<status>\d{3}) '
)


def manifest_answers(kube_cluster: KubeCluster, references: set[str]) -> Counter[str]:
    """``<method> <status>`` of every request for ``demo/app``'s manifests ``references`` in
    nginx's access log."""
    found = sandbox.load_endpoints(kube_cluster.settings["sandbox_dir"])
    log = Path(found["logs_dir"]) / "nginx-access.log"
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        match = _LINE.search(line)
        if match and match["repository"] == DEMO_REPOSITORY and match["ref"] in references:
            counts[f"{match['method']} {match['status']}"] += 1
    return counts


def test_a_release_under_a_pull_quota_fails_on_429s_and_runs_after_the_back_off(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    ledger = tmp_path / "ledger"
    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(ledger))
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    try:
        process, journal = run_gameday(
            kube_cluster,
            tmp_path,
            "pull-quota-rollout",
            settings={"sandbox_dir": str(kube_cluster.settings["sandbox_dir"])},
        )
    finally:
        # The release is not a fault: the shared cluster's demo goes back to its image.
        restore_demo(kube_cluster.client)
    out = outputs(journal)
    release = out["release-under-the-quota"]
    in_back_off = out["pods-in-back-off-under-the-quota"]
    recovery = out["heal-to-every-pod-of-the-release-running"]
    references = {release["image"].rsplit(":", 1)[1], str(release["digest"])}
    answers = manifest_answers(kube_cluster, references)
    print(
        f"\npull-quota-rollout: release {release['error']} after {release['phases']}; "
        f"in back-off {[(p['pod'], p['waiting_reason'], p['failed_pulls']) for p in in_back_off['pods'] if p['in_back_off']]}; "  # noqa: E501
        f"manifest answers {dict(answers)}; recovery {recovery['seconds']} s, back-off "
        f"{recovery['back_off_seconds']} s (left at the heal {recovery['back_off_left_seconds']}"
        f" s), pull to running {recovery['pull_to_running_seconds']} s; per pod "
        f"{[(p['pod'], p['failed_pulls'], p['seconds'], p['back_off_seconds']) for p in recovery['pods']]}"  # noqa: E501
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]
    assert_held(journal)

    assert out["impose-the-pull-quota"]["kind"] == "registry.quota"
    # The release did not complete under the quota: its new pod's pulls were refused.
    assert release["ok"] is False and release["error"]["class"] == "image-pull", release
    assert release["kubelet_pull_seconds"] == []
    # The node's manifest requests met the quota: 429s in nginx's log (measured: 24 a run, 12
    # HEAD and 12 GET in two runs, 24 GET in two more; containerd does not always HEAD first).
    refused = sum(n for key, n in answers.items() if key.endswith(" 429"))
    assert refused >= 2, answers
    # Which pods failed: the one surge pod of the release, waiting on its pull; the old pods run.
    failing = [p for p in in_back_off["pods"] if p["in_back_off"]]
    assert len(failing) == 1 and failing[0]["failed_pulls"] >= 1, in_back_off
    assert failing[0]["waiting_reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert in_back_off["running"] == 3

    # The recovery per pod: every pod of the release runs; the failed one waited out back-off.
    assert recovery["recovered"] is True and len(recovery["pods"]) == 3, recovery
    by_pod = {p["pod"]: p for p in recovery["pods"]}
    failed = by_pod[failing[0]["pod"]]
    assert failed["failed_pulls"] >= 1 and failed["back_off_seconds"] > 0, failed
    others = [p for name, p in by_pod.items() if name != failing[0]["pod"]]
    assert all(p["failed_pulls"] == 0 for p in others), others
    assert all(p["back_off_seconds"] == 0 for p in others), others

    # Every fault reverted, the demo restored.
    (entry,) = Ledger(ledger).all()
    assert entry.kind == "registry.quota"
    assert entry.state is FaultState.REVERTED and entry.revert_reason is RevertReason.ROLLBACK
    assert demo_image(kube_cluster.client, DEMO_NAMESPACE) == ORIGINAL
