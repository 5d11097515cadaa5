"""The shared test cluster's rules (tests/support/cluster.py), without a cluster: the cluster
tier's order, the check that a module left the cluster as it found it, what a cluster test
fails with when the test bed's binaries do not build, and the instance a test cluster takes."""

import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import pytest
import support.cluster
from support.cluster import (
    BUILD_LOG_TAIL,
    ClusterState,
    assert_as_found,
    build_failure,
    cluster_instance,
    shared_cluster_last,
    take_free_instance,
)

from chaosregistry.cluster.build import BuildError
from chaosregistry.cluster.layout import Instance

TIER = Path("/repo/tests/cluster")


@dataclass
class FakeItem:
    """What the ordering reads of a collected test: where it lives and its fixtures."""

    path: Path
    fixturenames: tuple[str, ...]


def test_shared_cluster_tests_run_after_the_tiers_others_and_nothing_else_moves() -> None:
    shared_1 = FakeItem(TIER / "test_a.py", ("kube_cluster", "shared_cluster"))
    own = FakeItem(TIER / "test_b.py", ("cluster",))
    sandbox = FakeItem(Path("/repo/tests/sandbox/test_c.py"), ("sandbox",))
    shared_2 = FakeItem(TIER / "test_a.py", ("shared_cluster",))
    # A module that overrides kube_cluster with a cluster of its own.
    overridden = FakeItem(TIER / "test_d.py", ("kube_cluster",))
    items: list[Any] = [shared_1, own, sandbox, shared_2, overridden]
    shared_cluster_last(items, TIER)
    assert items == [own, overridden, sandbox, shared_1, shared_2]


FOUND = ClusterState(
    demo_image="registry/demo:1",
    demo_available=True,
    demo_fault_marks=(),
    registry_ready=True,
    chaos_objects=(),
    toxics=(),
    active_faults=frozenset({"network.latency 1 in /ledger"}),
)


def test_a_module_that_left_the_cluster_as_it_found_it_passes() -> None:
    assert_as_found(FOUND, FOUND, "test_x")
    # A fault that was active when the module began may have been reverted since.
    assert_as_found(FOUND, replace(FOUND, active_faults=frozenset()), "test_x")


CHANGED: dict[str, Any] = {
    "demo_image": "registry/demo:does-not-exist",
    "demo_available": False,
    "demo_fault_marks": ("chaosregistry.io/bad-tag",),
    "registry_ready": False,
    "chaos_objects": ("NetworkChaos chaos-demo/x",),
    "toxics": ("client-registry/latency",),
}


def test_the_fields_compared_are_every_field_but_the_faults() -> None:
    assert set(CHANGED) | {"active_faults"} == {field.name for field in fields(ClusterState)}


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_a_module_that_changed_the_cluster_fails_naming_itself_and_the_change(name: str) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        assert_as_found(FOUND, replace(FOUND, **{name: CHANGED[name]}), "test_x")
    message = str(failed.value)
    assert message.startswith("test_x left the shared test cluster changed: ")
    assert f"{name}: {getattr(FOUND, name)!r} -> {CHANGED[name]!r}" in message


def test_a_module_that_left_a_fault_active_fails_naming_it() -> None:
    left = replace(FOUND, active_faults=FOUND.active_faults | {"node.kill 2 in /ledger"})
    with pytest.raises(pytest.fail.Exception) as failed:
        assert_as_found(FOUND, left, "test_x")
    assert str(failed.value) == (
        "test_x left the shared test cluster changed: "
        "faults left active: ['node.kill 2 in /ledger']"
    )


def test_a_failed_build_fails_the_cluster_test_with_the_tail_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    error = f"go build k8s failed (exit 1): line 99 — see {log}"
    first, *tail = build_failure(BuildError(error, log)).splitlines()
    assert first == f"the test bed's binaries did not build: {error}"
    assert tail == [f"line {i}" for i in range(100 - BUILD_LOG_TAIL, 100)]
    # A failure before any Go step wrote a log: the message alone.
    assert build_failure(BuildError("no Go toolchain: install Go or set CHAOSREGISTRY_GO")) == (
        "the test bed's binaries did not build: no Go toolchain: install Go or set CHAOSREGISTRY_GO"
    )


@pytest.fixture
def instance_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """The instances' lock files in a temp dir and the node interfaces that "exist" (a set to
    fill); the locks taken by ``cluster_instance`` are released at the end."""
    links: set[str] = set()
    monkeypatch.setattr(support.cluster, "INSTANCE_LOCK", str(tmp_path / "instance-{}.lock"))
    monkeypatch.setattr(support.cluster, "link_exists", lambda name: name in links)
    yield links


def held_elsewhere(path: str) -> int:
    """Hold ``path``'s lock on an open file description of its own, as another process would."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_test_cluster_takes_the_first_instance_no_one_holds(instance_locks: set[str]) -> None:
    with cluster_instance() as first:
        assert first == 0
    other = held_elsewhere(support.cluster.INSTANCE_LOCK.format(0))
    try:
        with cluster_instance() as second:
            assert second == 1
    finally:
        os.close(other)


def test_an_instance_whose_interface_exists_unlocked_is_passed_over(
    instance_locks: set[str],
) -> None:
    # A cluster not of the tests (runs/cluster, say) on instance 0.
    instance_locks.add(Instance(0).node_interface)
    with cluster_instance() as number:
        assert number == 1
    instance_locks.add(Instance(1).node_interface)
    with pytest.raises(pytest.fail.Exception) as failed:
        take_free_instance()
    assert str(failed.value) == (
        "chaosreg-node0, chaosreg1-node0 exist: another test cluster runs on every instance "
        "(chaosregistry cluster down)"
    )


def test_while_other_test_clusters_hold_every_free_instance_it_waits(
    instance_locks: set[str],
) -> None:
    instance_locks.add(Instance(1).node_interface)
    other = held_elsewhere(support.cluster.INSTANCE_LOCK.format(0))
    try:
        assert take_free_instance() is None
    finally:
        os.close(other)
    taken = take_free_instance()
    assert taken is not None and taken[0] == 0
    taken[1].close()
