"""The quota drill on the real test cluster: a release of the demo Deployment (3 pods) rolled
out while the sandbox's registry allows the node's address 4 manifest requests a minute
(``impose_pull_quota``). The node pulls from the origin (the default ``node_pulls``), through
nginx's ``registry`` server, where the quota counts; the release's push shares the address.

Measured (three runs): the new pod's pull is refused (``ErrImagePull``) and ``push_to_running``
reports the release failed at once (class ``image-pull``); 24 of the node's manifest requests
were answered 429 within the release's seconds (one run: 24 GETs; two: 12 HEADs, 12 GETs).
When the pods recover after the quota is lifted is not measured here: the action stops at the
first failed pull."""

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube.resources.apps_v1 import Deployment
from support.cluster import KubeCluster, wait_available

from chaosregistry import sandbox
from chaosregistry.cluster.images import DEMO_REPOSITORY, DEMO_TAG, image_name
from chaosregistry.cluster.layout import DEMO_NAMESPACE
from chaosregistry.cluster.workloads import DEMO_NAME
from chaosregistry.faults.ledger import FaultState, Ledger, RevertReason

pytest_plugins = ["support.cluster"]

ORIGINAL = image_name(DEMO_REPOSITORY, DEMO_TAG)
_LINE = re.compile(
    r'"(?P<method>[A-Z]+) /v2/(?P<repository>\S+)/manifests/(?P<ref>[^?\s]+)\S* '
    r'HTTP/[\d.]+" (?P<status>\d{3}) '
)


@pytest.fixture
def demo_restored(kube_cluster: KubeCluster) -> Iterator[None]:
    yield
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": ORIGINAL}]}}}}
    kube_cluster.client.patch(Deployment, DEMO_NAME, patch, namespace=DEMO_NAMESPACE)
    wait_available(kube_cluster.client, DEMO_NAMESPACE)


def manifest_answers(kube_cluster: KubeCluster, reference: str) -> Counter[str]:
    """``<method> <status>`` of every request for ``demo/app``'s manifest ``reference`` in
    nginx's access log."""
    found = sandbox.load_endpoints(kube_cluster.settings["sandbox_dir"])
    log = Path(found["logs_dir"]) / "nginx-access.log"
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        match = _LINE.search(line)
        if match and match["repository"] == DEMO_REPOSITORY and match["ref"] == reference:
            counts[f"{match['method']} {match['status']}"] += 1
    return counts


def test_a_release_under_a_docker_hub_style_quota_fails_on_the_nodes_429s(
    kube_cluster: KubeCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    demo_restored: None,
) -> None:
    from chaosregistry.actions.deploy import push_to_running
    from chaosregistry.actions.quota import impose_pull_quota, lift_pull_quota

    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    configuration = kube_cluster.vars_configuration()
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    fault = impose_pull_quota(requests=4, window=60, duration=600, configuration=configuration)
    try:
        release = push_to_running(DEMO_NAME, timeout=240, configuration=configuration)
    finally:
        lift_pull_quota(configuration=configuration)
    tag = release["image"].rsplit(":", 1)[1]
    answers = manifest_answers(kube_cluster, tag) + manifest_answers(
        kube_cluster, str(release["digest"])
    )
    print(
        f"\nquota 4/60 s: release ok={release['ok']} total {release['total_seconds']} s, "
        f"phases {release['phases']}, pods {release['pods']}, kubelet pull seconds "
        f"{release['kubelet_pull_seconds']}; manifest answers {dict(answers)}; error "
        f"{release.get('error')}; {sorted(release)}"
    )
    assert fault["kind"] == "registry.quota" and fault["state"] == "injected"
    assert release["ok"] is False and release["error"]["class"] == "image-pull", release
    assert "ErrImagePull" in release["error"]["message"]
    assert release["kubelet_pull_seconds"] == []
    # The node's manifest requests met the quota.
    refused = sum(n for key, n in answers.items() if key.endswith(" 429"))
    assert refused >= 4, answers
    (entry,) = Ledger(tmp_path / "ledger").all()
    assert entry.state is FaultState.REVERTED and entry.revert_reason is RevertReason.ROLLBACK
