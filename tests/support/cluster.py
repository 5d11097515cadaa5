"""The real test cluster for the ``test_kubernetes_*`` modules: fixtures and helpers.

Loaded with ``pytest_plugins = ["support.cluster"]``. ``kube_cluster`` is the cluster of the
session that every module on ``up()``'s default options shares (``shared_cluster``): a bring-up
costs 30-100 s, a module's tests far less each. A module on it must leave it as it found it
(the demo Deployment on its image and Available, the in-cluster registry ready, no chaos object,
no toxic, no fault left in a ledger): ``kube_cluster`` checks that when the module ends, and a
module that changes the cluster puts it back in a fixture of its own first. A module that needs
other options overrides ``kube_cluster`` with ``running_cluster``. Like ``test_cluster.py``'s
fixture, a cluster comes up in a temporary state directory and is always brought down; it skips
(with the reason) only when the host lacks root or the Debian packages the cluster runs.
Each cluster holds one of the machine's test-cluster instances from before its ``up`` to after
its ``down`` (``cluster_instance``), so two pytest-xdist workers run theirs side by side.
PYTEST_DONT_REWRITE: helpers fail with ``pytest.fail``.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment

from chaosregistry import sandbox
from chaosregistry.cluster import admin_client, down, up
from chaosregistry.cluster.build import BuildError
from chaosregistry.cluster.host import link_exists
from chaosregistry.cluster.images import DEMO_REPOSITORY, DEMO_TAG, image_name
from chaosregistry.cluster.layout import DEMO_NAMESPACE, INSTANCES, PORT_SPAN, Instance, Layout
from chaosregistry.cluster.lifecycle import CHAOS_KINDS, REQUIRED_FILES
from chaosregistry.cluster.readiness import deployment_not_available, statefulset_not_ready
from chaosregistry.cluster.workloads import DEMO_NAME, REGISTRY_NAME, REGISTRY_NAMESPACE
from chaosregistry.faults.ledger import Ledger
from chaosregistry.faults.watchdog import known_ledgers
from chaosregistry.kubernetes import chaosmesh
from chaosregistry.kubernetes.rollout import (
    BAD_TAG_ANNOTATION,
    BAD_TAG_LABEL,
    ORIGINAL_IMAGE_ANNOTATION,
)
from chaosregistry.osutil import locks
from chaosregistry.sandbox.toxiproxy import Toxiproxy
from support.gameday import for_a_loaded_machine
from support.polling import eventually
from support.ports import free_base_port
from support.scheduling import SHARED_CLUSTER_UNIT, cluster_unit


@dataclass
class KubeCluster:
    state_dir: Path
    settings: dict[str, Any]
    client: Client

    @property
    def layout(self) -> Layout:
        """The cluster's paths and its instance's names."""
        return Layout.at(self.state_dir, self.settings["instance"])

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def vars_file(self) -> Path:
        return self.layout.vars_file

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

# One lock file per instance: a test cluster holds its instance's for its whole life.
INSTANCE_LOCK = "/tmp/chaosregistry-cluster-instance-{}.lock"
# How long a cluster waits for an instance: another worker's cluster may hold the only free one
# for its whole life (the shared cluster's: most of the cluster tier).
INSTANCE_WAIT = 1200.0


def take_free_instance() -> tuple[int, ExitStack] | None:
    """The first instance whose lock no one else holds and whose node interface does not exist,
    with its lock held; None while another test cluster holds one. An interface without a lock
    is a cluster not of the tests (``runs/cluster``, say, or one a crash left): its instance is
    passed over, and when every instance has one the test fails at once."""
    foreign = []
    for number in range(INSTANCES):
        held = ExitStack()
        try:
            held.enter_context(locks.hold(Path(INSTANCE_LOCK.format(number)), timeout=0))
        except locks.LockBusy:
            continue
        interface = Instance(number).node_interface
        if not link_exists(interface):
            return number, held
        held.close()
        foreign.append(interface)
    if len(foreign) == INSTANCES:
        pytest.fail(
            f"{', '.join(foreign)} exist: another test cluster runs on every instance "
            "(chaosregistry cluster down)"
        )
    return None


@contextmanager
def cluster_instance() -> Iterator[int]:
    """An instance of the machine's test clusters (``chaosregistry.cluster.layout.Instance``)
    that no other cluster holds, held until the block ends; waits while other test clusters
    hold every free one."""
    number, held = eventually(
        f"a free test-cluster instance (locks {INSTANCE_LOCK})",
        take_free_instance,
        timeout=INSTANCE_WAIT,
        interval=1.0,
    )
    with held:
        yield number


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
    state_dir = tmp_path_factory.mktemp("kcluster")
    with cluster_instance() as instance:
        try:
            try:
                settings = up(
                    state_dir,
                    # Separate halves of the worker's range, so the sandbox's 50 ports never
                    # overlap the cluster's.
                    base_port=free_base_port(PORT_SPAN, part=0, parts=2),
                    sandbox_base_port=free_base_port(part=1, parts=2),
                    instance=instance,
                    progress=lambda line: print(f"cluster: {line}", flush=True),
                    **options,
                )
            except BuildError as exc:
                pytest.fail(build_failure(exc))
            yield KubeCluster(state_dir, settings, admin_client(state_dir))
        finally:
            down(state_dir, progress=lambda line: print(f"cluster: {line}", flush=True))


class SharedCluster:
    """The session's cluster on ``up()``'s default options, brought up at its first use.

    ``stop`` brings it down; tests/cluster/conftest.py calls it as soon as the next test does
    not use it (so its instance is free for the worker's next cluster, and whatever the worker
    runs after the tier never runs beside it), and the ``shared_cluster`` fixture at the end,
    always."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self._running = ExitStack()
        self._cluster: KubeCluster | None = None

    def get(self) -> KubeCluster:
        if self._cluster is None:
            self._cluster = self._running.enter_context(running_cluster(self._tmp_path_factory))
        return self._cluster

    def stop(self) -> None:
        self._cluster = None
        self._running.close()


SHARED_CLUSTER = pytest.StashKey[SharedCluster]()


@pytest.fixture(scope="session")
def shared_cluster(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[SharedCluster]:
    shared = SharedCluster(tmp_path_factory)
    pytestconfig.stash[SHARED_CLUSTER] = shared
    try:
        yield shared
    finally:
        del pytestconfig.stash[SHARED_CLUSTER]
        shared.stop()


def uses_shared_cluster(item: pytest.Item) -> bool:
    return "shared_cluster" in getattr(item, "fixturenames", ())


def shared_cluster_last(items: list[pytest.Item], tier: Path) -> None:
    """Reorder, in place, the tests under ``tier`` so those on the shared cluster come after
    the others (the shared cluster then comes up once); every other item keeps its place, and
    each module its own order."""
    slots = [i for i, item in enumerate(items) if tier in item.path.parents]
    ordered = sorted((items[i] for i in slots), key=uses_shared_cluster)
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


def check_cluster_units(items: list[pytest.Item], tier: Path) -> None:
    """Refuse the collection when a test on the shared cluster lives in a module that the
    pytest-xdist scheduler, reading its source, puts with the modules that have clusters of
    their own (support/scheduling.py): that worker would bring up a second shared cluster."""
    misplaced = sorted(
        {
            str(item.path.relative_to(tier.parent.parent))
            for item in items
            if tier in item.path.parents
            and uses_shared_cluster(item)
            and cluster_unit(item.path) != SHARED_CLUSTER_UNIT
        }
    )
    if misplaced:
        raise pytest.UsageError(
            f"{', '.join(misplaced)}: tests on the shared cluster, but the scheduler does not "
            "read the module as one (support/scheduling.py module_uses_shared_cluster)"
        )


ORIGINAL_DEMO_IMAGE = image_name(DEMO_REPOSITORY, DEMO_TAG)


@dataclass(frozen=True)
class ClusterState:
    """What a module on the shared cluster must leave as it found it."""

    demo_image: str
    demo_available: bool
    # The bad-tag fault's marks on the demo Deployment (present only while it is injected).
    demo_fault_marks: tuple[str, ...]
    registry_ready: bool
    chaos_objects: tuple[str, ...]
    toxics: tuple[str, ...]
    active_faults: frozenset[str]


def cluster_state(cluster: KubeCluster) -> ClusterState:
    client = cluster.client
    demo = client.get(Deployment, DEMO_NAME, namespace=DEMO_NAMESPACE)
    annotations = (demo.metadata.annotations if demo.metadata else None) or {}
    labels = (demo.metadata.labels if demo.metadata else None) or {}
    marks = [a for a in (BAD_TAG_ANNOTATION, ORIGINAL_IMAGE_ANNOTATION) if a in annotations]
    marks += [label for label in (BAD_TAG_LABEL,) if label in labels]
    chaos_objects = [
        f"{kind} {obj.metadata.namespace}/{obj.metadata.name}"
        for kind in CHAOS_KINDS
        for obj in client.list(chaosmesh.resource(kind), namespace="*")
        if obj.metadata is not None
    ]
    endpoints = sandbox.load_endpoints(cluster.settings["sandbox_dir"])
    with Toxiproxy(endpoints["toxiproxy"]) as toxiproxy:
        toxics = [
            f"{proxy}/{toxic['name']}"
            for proxy, found in toxiproxy.proxies().items()
            for toxic in found.get("toxics", [])
        ]
    # Every ledger of the session (the index the sandboxes' guardians watch), whoever made it.
    active = {
        f"{entry.kind} {entry.id} in {directory}"
        for directory in known_ledgers()
        if directory.is_dir()
        for entry in Ledger(directory).active()
    }
    return ClusterState(
        demo_image=demo_image(client, DEMO_NAMESPACE),
        demo_available=deployment_not_available(client, DEMO_NAMESPACE, DEMO_NAME) is None,
        demo_fault_marks=tuple(sorted(marks)),
        registry_ready=statefulset_not_ready(client, REGISTRY_NAMESPACE, REGISTRY_NAME) is None,
        chaos_objects=tuple(sorted(chaos_objects)),
        toxics=tuple(sorted(toxics)),
        active_faults=frozenset(active),
    )


def assert_as_found(found: ClusterState, left: ClusterState, module: str) -> None:
    """Fail unless ``module`` left the cluster as ``found`` (no new active fault; one that was
    active before may have been reverted since)."""
    changed = [
        f"{field.name}: {getattr(found, field.name)!r} -> {getattr(left, field.name)!r}"
        for field in fields(ClusterState)
        if field.name != "active_faults" and getattr(found, field.name) != getattr(left, field.name)
    ]
    new_faults = sorted(left.active_faults - found.active_faults)
    if new_faults:
        changed.append(f"faults left active: {new_faults}")
    if changed:
        pytest.fail(f"{module} left the shared test cluster changed: {'; '.join(changed)}")


@pytest.fixture(scope="module")
def kube_cluster(
    shared_cluster: SharedCluster, request: pytest.FixtureRequest
) -> Iterator[KubeCluster]:
    """The session's shared cluster (with its own sandbox, in a temp state dir); fails the
    module that does not leave it as it found it."""
    cluster = shared_cluster.get()
    found = cluster_state(cluster)
    yield cluster
    assert_as_found(found, cluster_state(cluster), request.module.__name__)


def restore_demo(client: Client) -> None:
    """The demo Deployment back on its original image (a test that failed half-way may have
    left another) and Available."""
    if demo_image(client, DEMO_NAMESPACE) != ORIGINAL_DEMO_IMAGE:
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": ORIGINAL_DEMO_IMAGE}]}}}}  # fmt: skip
        client.patch(Deployment, DEMO_NAME, patch, namespace=DEMO_NAMESPACE)
    wait_available(client, DEMO_NAMESPACE)


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
            str(for_a_loaded_machine(ROOT / f"experiments/{name}.yaml", tmp_path)),
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
