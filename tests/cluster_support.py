"""The real test cluster for the ``test_kubernetes_*`` modules: a module-scoped fixture and helpers.

Loaded with ``pytest_plugins = ["cluster_support"]``. Like ``test_cluster.py``'s fixture, it
brings a cluster up in a temporary state directory and always brings it down; it skips (with
the reason) only when the host lacks root or the Debian packages the cluster runs.
PYTEST_DONT_REWRITE: helpers fail with ``pytest.fail``.
"""

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment

from chaosregistry.cluster import admin_client, down, up
from chaosregistry.cluster.layout import NODE_INTERFACE, Layout
from chaosregistry.cluster.lifecycle import REQUIRED_FILES
from chaosregistry.cluster.readiness import deployment_available
from chaosregistry.cluster.workloads import DEMO_NAME
from chaosregistry.sandbox import find_free_base_port


@dataclass
class KubeCluster:
    state_dir: Path
    settings: dict[str, Any]
    client: Client

    @property
    def kubeconfig(self) -> Path:
        return Layout.at(self.state_dir).kubeconfig


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the test cluster needs root"
    missing = sorted({pkg for path, pkg in REQUIRED_FILES.items() if not Path(path).exists()})
    if missing:
        return f"Debian packages missing: {' '.join(missing)}"
    return None


@pytest.fixture(scope="module")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A running cluster with its own sandbox in a temp state dir; always brought down."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if Path("/sys/class/net", NODE_INTERFACE).exists():
        pytest.fail(f"{NODE_INTERFACE} exists: another test cluster runs here (cluster down)")
    state_dir = tmp_path_factory.mktemp("kcluster")
    try:
        settings = up(
            state_dir,
            # Below the kernel's ephemeral range (32768+): there, a port found free can be taken
            # by an outgoing connection before our process binds it (seen on a busy machine).
            # Separate ranges, so the sandbox's 50 ports never overlap the cluster's 10.
            base_port=find_free_base_port(low=20000, high=26000, span=10),
            sandbox_base_port=find_free_base_port(low=26000, high=32000),
            progress=lambda line: print(f"cluster: {line}", flush=True),
        )
        yield KubeCluster(state_dir, settings, admin_client(state_dir))
    finally:
        down(state_dir, progress=lambda line: print(f"cluster: {line}", flush=True))


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def demo_image(client: Client, namespace: str, name: str = DEMO_NAME) -> str:
    deployment = client.get(Deployment, name, namespace=namespace)
    if deployment.spec is None or deployment.spec.template.spec is None:
        pytest.fail(f"deployment {name} has no pod spec")
    return str(deployment.spec.template.spec.containers[0].image)


def wait_available(client: Client, namespace: str, timeout: float = 120) -> None:
    wait_for(
        f"{namespace}/{DEMO_NAME} Available",
        lambda: deployment_available(client, namespace, DEMO_NAME) is None,
        timeout,
    )
