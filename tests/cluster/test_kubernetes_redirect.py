"""The registry-move drill on the real test cluster: ``registry-redirects`` under the real
``chaosregistry gameday``. The sandbox's registry, which the node pulls from (the default
``node_pulls: origin``), answers every ``/v2/<name>/`` request with a 307 to the same registry
as ``localhost``; the demo Deployment is restarted meanwhile (``imagePullPolicy: Always``), then
the redirect ends and the rollout completes.

What the node did is read from the kubelet's events and from nginx's access log: containerd
adds ``?ns=<registry host>`` to each request of a pull (remotes/docker resolver.go), which the
redirect's ``Location`` keeps, so the node's requests at the old name (answered 307) and at the
new host (answered by the registry) are told apart from our probes' by that query.
"""

import re
from collections import Counter
from pathlib import Path

import pytest
from support.cluster import KubeCluster, outputs, restore_demo, run_gameday, wait_available

from chaosregistry import sandbox
from chaosregistry.cluster.images import DEMO_REPOSITORY
from chaosregistry.cluster.layout import DEMO_NAMESPACE, REGISTRY_HOST
from chaosregistry.faults.ledger import FaultState, Ledger, RevertReason

pytest_plugins = ["support.cluster"]

_LINE = re.compile(
    r'"(?P<method>[A-Z]+) /v2/(?P<repository>\S+?)/(?P<kind>manifests|blobs)/[^?\s]+'
    r'(?P<query>\S*) HTTP/[\d.]+" (?P<status>\d{3}) '
)
NODE_QUERY = f"?ns={REGISTRY_HOST}"


def node_answers(kube_cluster: KubeCluster, since_line: int) -> Counter[str]:
    """``<method> <kind> <status>`` of the node's requests for the demo image in nginx's
    access log, from line ``since_line`` on."""
    found = sandbox.load_endpoints(kube_cluster.settings["sandbox_dir"])
    lines = (Path(found["logs_dir"]) / "nginx-access.log").read_text(errors="replace")
    counts: Counter[str] = Counter()
    for line in lines.splitlines()[since_line:]:
        match = _LINE.search(line)
        if match and match["repository"] == DEMO_REPOSITORY and match["query"] == NODE_QUERY:
            counts[f"{match['method']} {match['kind']} {match['status']}"] += 1
    return counts


def log_length(kube_cluster: KubeCluster) -> int:
    found = sandbox.load_endpoints(kube_cluster.settings["sandbox_dir"])
    return len((Path(found["logs_dir"]) / "nginx-access.log").read_text().splitlines())


def test_registry_redirects_game_day_the_node_follows_and_is_refused_at_the_new_host(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured (two runs, 94 s each with the cluster's bring-up): containerd follows the
    307 to the new host without its credentials (a hosts.toml header for the old name): each
    HEAD of the tag there is answered 401 and the pull fails, its message naming the old
    host; the restart stalls, the old pods serving (maxUnavailable 0); our probe's pull fails
    as ``auth`` naming the new host. Once the redirect ends the rollout completes 22.7 and
    24.9 s later (what was left of the new pod's back-off, then the pulls)."""
    ledger = tmp_path / "ledger"
    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(ledger))
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    start = log_length(kube_cluster)
    try:
        process, journal = run_gameday(kube_cluster, tmp_path, "registry-redirects")
    finally:
        restore_demo(kube_cluster.client)
    out = outputs(journal)
    answers = node_answers(kube_cluster, start)
    during = out["rollout-while-redirected"]
    after = out["rollout-after-the-redirect"]
    events = out["kubelet-pulls-while-redirected"]
    failures = sorted({e["message"] for e in events["events"] if e["reason"] == "Failed"})
    print(
        f"\nregistry-redirects: exit {process.returncode}; our pull during "
        f"{out['pull-while-redirected']['error']}; rollout during: complete={during['complete']} "
        f"waiting={during['health']['waiting']}; kubelet during: counts={events['counts']} "
        f"failures={failures}; after the redirect: complete={after['complete']} in "
        f"{after['waited']} s (rollout {after['seconds']} s from its start); node requests "
        f"{dict(answers)}"
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]
    assert out["redirect-registry-to-new-host"]["kind"] == "registry.redirect"
    pulled = out["pull-while-redirected"]
    assert not pulled["ok"] and pulled["error"]["class"] == "auth", pulled
    assert not during["complete"] and during["health"]["image_pull_errors"] >= 1, during
    # containerd names the host it was configured with, not the one that refused it.
    old_host = str(sandbox.load_endpoints(kube_cluster.settings["sandbox_dir"])["registry"])
    refused = f"pulling from host {old_host.removeprefix('https://')} failed"
    assert events["pull_failures"] >= 1, events
    assert any(refused in m and "401 Unauthorized" in m for m in failures), failures
    # The node asked the old name, was sent on, and was refused at the new host.
    assert answers["HEAD manifests 307"] >= 1 and answers["HEAD manifests 401"] >= 1, answers
    assert after["complete"] and out["pull-after-the-redirect"]["ok"], after
    (entry,) = Ledger(ledger).all()
    assert entry.state is FaultState.REVERTED and entry.revert_reason is RevertReason.ROLLBACK
