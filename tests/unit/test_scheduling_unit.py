"""How pytest-xdist shares the tiers among its workers (tests/support/scheduling.py), without
running xdist: the cluster tier's two units, read from the modules' sources, and their start
before everything else."""

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.cluster import check_cluster_units
from support.scheduling import (
    OWN_CLUSTERS_UNIT,
    SHARED_CLUSTER_UNIT,
    TierScheduling,
    cluster_unit,
    cluster_units_first,
    module_uses_shared_cluster,
)

ON_THE_SHARED_CLUSTER = """
def test_a(kube_cluster): ...
"""
THROUGH_A_FIXTURE = """
@pytest.fixture
def env(kube_cluster, tmp_path): ...

class TestB:
    def test_b(self, env): ...
"""
OVERRIDES_KUBE_CLUSTER = """
@pytest.fixture(scope="module")
def kube_cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, nodes=2) as cluster:
        yield cluster

def test_c(kube_cluster): ...
"""
A_CLUSTER_OF_ITS_OWN = """
@pytest.fixture(scope="module")
def cluster(tmp_path_factory): ...

def test_d(cluster): ...
"""


@pytest.mark.parametrize(
    ("source", "shared"),
    [
        (ON_THE_SHARED_CLUSTER, True),
        (THROUGH_A_FIXTURE, True),
        (OVERRIDES_KUBE_CLUSTER, False),
        (A_CLUSTER_OF_ITS_OWN, False),
    ],
    ids=["kube_cluster", "through-a-fixture", "overrides-kube_cluster", "own-fixture"],
)
def test_a_module_on_the_shared_cluster_is_told_from_its_source(source: str, shared: bool) -> None:
    assert module_uses_shared_cluster(source) is shared


def write_tree(root: Path) -> None:
    for name, source in (
        ("test_shared.py", ON_THE_SHARED_CLUSTER),
        ("test_fixture.py", THROUGH_A_FIXTURE),
        ("test_override.py", OVERRIDES_KUBE_CLUSTER),
        ("test_own.py", A_CLUSTER_OF_ITS_OWN),
    ):
        path = root / "tests/cluster" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def scheduler(root: Path) -> TierScheduling:
    # Only _split_scope's reading of the node ids, not xdist's set-up.
    scheduling = TierScheduling.__new__(TierScheduling)
    scheduling.config = SimpleNamespace(rootpath=root)  # type: ignore[assignment]
    return scheduling


def test_the_cluster_tier_is_two_units_of_whole_modules_and_the_other_tiers_as_before(
    tmp_path: Path,
) -> None:
    write_tree(tmp_path)
    split = scheduler(tmp_path)._split_scope
    assert {
        nodeid: split(nodeid)
        for nodeid in (
            "tests/cluster/test_shared.py::test_a",
            "tests/cluster/test_fixture.py::TestB::test_b",
            "tests/cluster/test_override.py::test_c",
            "tests/cluster/test_own.py::test_d[x]",
            "tests/sandbox/test_s.py::test_e[y]",
            "tests/unit/test_u.py::test_f",
        )
    } == {
        "tests/cluster/test_shared.py::test_a": SHARED_CLUSTER_UNIT,
        "tests/cluster/test_fixture.py::TestB::test_b": SHARED_CLUSTER_UNIT,
        "tests/cluster/test_override.py::test_c": OWN_CLUSTERS_UNIT,
        "tests/cluster/test_own.py::test_d[x]": OWN_CLUSTERS_UNIT,
        "tests/sandbox/test_s.py::test_e[y]": "tests/sandbox/test_s.py",
        "tests/unit/test_u.py::test_f": "tests/unit/test_u.py::test_f",
    }


def test_the_suites_cluster_tier_has_modules_in_both_units() -> None:
    tier = Path(__file__).resolve().parents[1] / "cluster"
    units = {cluster_unit(module) for module in tier.glob("test_*.py")}
    assert units == {SHARED_CLUSTER_UNIT, OWN_CLUSTERS_UNIT}


def test_a_cluster_unit_goes_out_before_any_other_and_the_rest_keep_their_order() -> None:
    queue: OrderedDict[str, dict[str, bool]] = OrderedDict(
        (scope, {}) for scope in ("tests/sandbox/a.py", "tests/unit/b.py::t", OWN_CLUSTERS_UNIT)
    )
    queue[SHARED_CLUSTER_UNIT] = {}
    cluster_units_first(queue)
    assert list(queue) == [
        OWN_CLUSTERS_UNIT,
        "tests/sandbox/a.py",
        "tests/unit/b.py::t",
        SHARED_CLUSTER_UNIT,
    ]
    queue.popitem(last=False)
    cluster_units_first(queue)
    assert next(iter(queue)) == SHARED_CLUSTER_UNIT
    queue.popitem(last=False)
    cluster_units_first(queue)
    assert list(queue) == ["tests/sandbox/a.py", "tests/unit/b.py::t"]


@dataclass
class FakeItem:
    """What the collection check reads of a collected test: where it lives and its fixtures."""

    path: Path
    fixturenames: tuple[str, ...]


def test_collection_refuses_a_test_on_the_shared_cluster_the_scheduler_reads_elsewhere(
    tmp_path: Path,
) -> None:
    write_tree(tmp_path)
    tier = tmp_path / "tests/cluster"
    placed: list[Any] = [
        FakeItem(tier / "test_shared.py", ("kube_cluster", "shared_cluster")),
        FakeItem(tier / "test_own.py", ("cluster",)),
    ]
    check_cluster_units(placed, tier)
    # A module the scheduler reads as having a cluster of its own, whose test reaches the
    # shared cluster some other way (a conftest fixture, say).
    misplaced = [*placed, FakeItem(tier / "test_own.py", ("shared_cluster",))]
    with pytest.raises(pytest.UsageError) as refused:
        check_cluster_units(misplaced, tier)
    assert str(refused.value).startswith("tests/cluster/test_own.py: tests on the shared cluster")
