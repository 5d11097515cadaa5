"""The real test cluster for the ``test_kubernetes_*`` modules: a module-scoped fixture and helpers.

Loaded with ``pytest_plugins = ["support.cluster"]``. Like ``test_cluster.py``'s fixture, it
brings a cluster up in a temporary state directory and always brings it down; it skips (with
the reason) only when the host lacks root or the Debian packages the cluster runs.
PYTEST_DONT_REWRITE: helpers fail with ``pytest.fail``.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment

from chaosregistry.cluster import admin_client, down, up
from chaosregistry.cluster.build import BuildError
from chaosregistry.cluster.layout import NODE_INTERFACE, PORT_SPAN, Layout
from chaosregistry.cluster.lifecycle import REQUIRED_FILES
from chaosregistry.cluster.readiness import deployment_not_available
from chaosregistry.cluster.workloads import DEMO_NAME
from support.polling import eventually
from support.ports import free_base_port


@dataclass
class KubeCluster:
    state_dir: Path
    settings: dict[str, Any]
    client: Client

    @property
    def kubeconfig(self) -> Path:
        return Layout.at(self.state_dir).kubeconfig

    @property
    def vars_file(self) -> Path:
        return Layout.at(self.state_dir).vars_file

    def vars_configuration(self) -> dict[str, Any]:
        """The configuration of the vars file ``cluster up`` wrote, as a user passes it."""
        configuration: dict[str, Any] = yaml.safe_load(self.vars_file.read_text())["configuration"]
        return configuration


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the test cluster needs root"
    missing = sorted({pkg for path, pkg in REQUIRED_FILES.items() if not Path(path).exists()})
    if missing:
        return f"Debian packages missing: {' '.join(missing)}"
    return None


BUILD_LOG_TAIL = 40


def build_failure(exc: BuildError) -> str:
    """What a cluster test fails with when the binaries do not build: the error, then the last
    BUILD_LOG_TAIL lines of the build's log."""
    tail = exc.log.read_text().splitlines()[-BUILD_LOG_TAIL:] if exc.log else []
    return "\n".join([f"the test bed's binaries did not build: {exc}", *tail])


@contextmanager
def running_cluster(
    tmp_path_factory: pytest.TempPathFactory, **options: Any
) -> Iterator[KubeCluster]:
    """A cluster with its own sandbox in a temp state dir, ``up(**options)``; always brought
    down. A module that needs other options overrides ``kube_cluster`` with this.

    ``up`` builds the test bed's binaries when they are missing, or waits for the build that
    holds their lock (``make pytest-all`` starts one beside the tests); a failed build fails
    the test with the build log's tail."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if Path("/sys/class/net", NODE_INTERFACE).exists():
        pytest.fail(f"{NODE_INTERFACE} exists: another test cluster runs here (cluster down)")
    state_dir = tmp_path_factory.mktemp("kcluster")
    try:
        try:
            settings = up(
                state_dir,
                # Separate halves of the worker's range, so the sandbox's 50 ports never overlap
                # the cluster's.
                base_port=free_base_port(PORT_SPAN, part=0, parts=2),
                sandbox_base_port=free_base_port(part=1, parts=2),
                progress=lambda line: print(f"cluster: {line}", flush=True),
                **options,
            )
        except BuildError as exc:
            pytest.fail(build_failure(exc))
        yield KubeCluster(state_dir, settings, admin_client(state_dir))
    finally:
        down(state_dir, progress=lambda line: print(f"cluster: {line}", flush=True))


@pytest.fixture(scope="module")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A running cluster with its own sandbox in a temp state dir; always brought down."""
    with running_cluster(tmp_path_factory) as cluster:
        yield cluster


def demo_image(client: Client, namespace: str, name: str = DEMO_NAME) -> str:
    deployment = client.get(Deployment, name, namespace=namespace)
    if deployment.spec is None or deployment.spec.template.spec is None:
        pytest.fail(f"deployment {name} has no pod spec")
    return str(deployment.spec.template.spec.containers[0].image)


def wait_available(client: Client, namespace: str, timeout: float = 120) -> None:
    eventually(
        f"{namespace}/{DEMO_NAME} Available",
        lambda: deployment_not_available(client, namespace, DEMO_NAME) is None,
        timeout=timeout,
    )


ROOT = Path(__file__).resolve().parents[2]


def run_gameday(
    kube_cluster: KubeCluster,
    tmp_path: Path,
    name: str,
    *,
    settings: dict[str, Any] | None = None,
    cwd: Path | None = None,
    **overrides: Any,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """experiments/<name>.yaml through the real ``chaosregistry gameday`` with
    experiments/vars/kubernetes.yaml, on this cluster and its sandbox. ``overrides`` replace
    configuration keys the experiment declares, ``settings`` keys of its ``chaosregistry``
    mapping (the backend settings). With ``cwd`` the game day runs there with no kubeconfig in
    its environment: it must find the cluster the way ``settings`` say, relative to ``cwd``."""
    vars_data = yaml.safe_load((ROOT / "experiments/vars/kubernetes.yaml").read_text())
    vars_data["configuration"].update(overrides)
    vars_data["configuration"]["chaosregistry"].update(settings or {})
    vars_file = tmp_path / f"{name}-vars.yaml"
    vars_file.write_text(yaml.safe_dump(vars_data))
    run_dir = tmp_path / f"{name}-run"
    env = {
        **os.environ,
        # The probes that pull measure the registry through the cluster's sandbox (unless
        # ``settings`` names another registry_url).
        "CHAOSREGISTRY_SANDBOX_DIR": str(kube_cluster.settings["sandbox_dir"]),
    }
    if cwd is not None:
        env.pop("CHAOSREGISTRY_KUBECONFIG", None)
        env.pop("KUBECONFIG", None)
    process = subprocess.run(
        [
            str(Path(sys.executable).with_name("chaosregistry")),
            "gameday",
            str(ROOT / f"experiments/{name}.yaml"),
            "--vars",
            str(vars_file),
            "--run-dir",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        cwd=cwd,
    )
    journal_file = run_dir / "journal.json"
    if not journal_file.exists():
        pytest.fail(f"no journal: {process.stdout[-3000:]}{process.stderr[-2000:]}")
    return process, json.loads(journal_file.read_text())


def outputs(journal: dict[str, Any]) -> dict[str, Any]:
    """{activity name: output} of a journal's method (the last of repeated names wins)."""
    return {r["activity"]["name"]: r["output"] for r in journal["run"]}
