"""push_to_running's registry-event phase, on the real test cluster pulling from a sandbox with
its second site (the receiver of the registries' push notifications).

The module's cluster pulls from a sandbox the module starts with ``second_site=True`` (the
cluster's own sandbox has none); both are always brought down.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube.resources.apps_v1 import Deployment
from support.cluster import KubeCluster, running_cluster, wait_available
from support.ports import free_base_port

from chaosregistry import sandbox
from chaosregistry.cluster.images import DEMO_REPOSITORY, DEMO_TAG, image_name
from chaosregistry.cluster.layout import DEMO_NAMESPACE
from chaosregistry.cluster.workloads import DEMO_NAME
from chaosregistry.observability.registry_events import find_push_event

pytest_plugins = ["support.cluster"]

ORIGINAL = image_name(DEMO_REPOSITORY, DEMO_TAG)


@pytest.fixture(scope="module")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    run_dir = tmp_path_factory.mktemp("second-site-sandbox")
    try:
        sandbox.up(
            run_dir,
            base_port=free_base_port(),
            second_site=True,
            progress=lambda line: print(f"sandbox: {line}", flush=True),
        )
        with running_cluster(tmp_path_factory, sandbox_dir=run_dir) as cluster:
            yield cluster
    finally:
        sandbox.down(run_dir)


def test_push_to_running_times_the_registry_event_of_its_push(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosregistry.actions.deploy import push_to_running

    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    configuration = kube_cluster.vars_configuration()
    client = kube_cluster.client
    wait_available(client, DEMO_NAMESPACE)
    try:
        result = push_to_running(
            DEMO_NAME, target="registry_direct", timeout=150, configuration=configuration
        )
    finally:
        patch = {
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": ORIGINAL}]}}}
        }
        client.patch(Deployment, DEMO_NAME, patch, namespace=DEMO_NAMESPACE)
    print(f"\npush to running: {result['phases']}, registry event {result['registry_event']}")
    assert result["ok"] is True, result
    event = result["registry_event"]
    assert event["supported"] is True and event["note"] == "", event
    assert isinstance(event["seconds"], float) and isinstance(event["delivery_seconds"], float)
    # The event it timed is the receiver's record of this very push.
    endpoints = sandbox.load_endpoints(kube_cluster.settings["sandbox_dir"])
    tag = result["image"].rsplit(":", 1)[1]
    recorded = find_push_event(
        Path(endpoints["events_file"]), DEMO_REPOSITORY, tag, result["digest"]
    )
    assert recorded is not None and recorded["registry"] in ("registry-1", "registry-2")
    wait_available(client, DEMO_NAMESPACE)


def test_push_to_running_with_a_given_image_has_no_registry_event(
    kube_cluster: KubeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosregistry.actions.deploy import push_to_running

    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    result = push_to_running(
        DEMO_NAME,
        image=ORIGINAL,
        target="registry_direct",
        timeout=60,
        configuration=kube_cluster.vars_configuration(),
    )
    assert result["registry_event"] == {
        "supported": False,
        "seconds": None,
        "delivery_seconds": None,
        "note": "nothing pushed: the image was given",
    }


def test_observe_mode_times_the_tag_pollers_delay_for_two_releases_of_one_tag(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tag poller follows ``release`` by digest; push_to_running pushes to that tag twice
    and waits (observe mode) for the poller to point the Deployment at each new digest."""
    from chaosregistry.actions.deploy import push_to_running

    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    client = kube_cluster.client
    wait_available(client, DEMO_NAMESPACE)
    log = tmp_path / "tag-poller.log"
    poller = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("chaosregistry")),
            "tag-poller",
            DEMO_NAME,
            "--tag",
            "release",
            "--vars",
            str(kube_cluster.vars_file),
            "--registry",
            "registry_direct",
            "--interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env=dict(os.environ),
    )
    results = []
    try:
        for _ in range(2):
            results.append(
                push_to_running(
                    DEMO_NAME,
                    mode="observe",
                    tag="release",
                    target="registry_direct",
                    timeout=120,
                    configuration=kube_cluster.vars_configuration(),
                )
            )
    finally:
        poller.send_signal(signal.SIGTERM)
        poller.wait(timeout=30)
        patch = {
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": ORIGINAL}]}}}
        }
        client.patch(Deployment, DEMO_NAME, patch, namespace=DEMO_NAMESPACE)
    said = log.read_text()
    print(f"\nobserve mode: {[r['phases'] for r in results]}\n{said}")
    assert poller.returncode == 0, said
    for result in results:
        assert result["ok"] is True and result["mode"] == "observe", result
        # The poller pinned the pushed digest; the trigger phase is its delay.
        assert result["image"].endswith(f"@{result['digest']}"), result
        assert result["health"]["images"] == {"app": result["image"]}
        assert isinstance(result["phases"]["trigger"], float)
        assert len(result["kubelet_pull_seconds"]) == 3, result
        assert f"set {result['image']}" in said
    assert results[0]["digest"] != results[1]["digest"]
    wait_available(client, DEMO_NAMESPACE)
