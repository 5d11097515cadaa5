"""The shared test cluster's rules (tests/support/cluster.py), without a cluster: the cluster
tier's order, the check that a module left the cluster as it found it, and what a cluster test
fails with when the test bed's binaries do not build."""

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import pytest
from support.cluster import (
    BUILD_LOG_TAIL,
    ClusterState,
    assert_as_found,
    build_failure,
    shared_cluster_last,
)

from chaosregistry.cluster.build import BuildError

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
