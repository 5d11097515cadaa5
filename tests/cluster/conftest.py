"""The cluster tier: every test collected under this directory is marked ``cluster``.

The modules on ``up()``'s default options share one cluster (``support.cluster``): they run
after the modules with a cluster of their own, so it comes up once, and it goes down as soon as
the next test does not use it (its instance is then free for the worker's next cluster). In a
parallel run the two kinds of module go to two workers (``support.scheduling``)."""

from collections.abc import Generator
from pathlib import Path

import pytest
from support.cluster import (
    SHARED_CLUSTER,
    check_cluster_units,
    shared_cluster_last,
    uses_shared_cluster,
)

HERE = Path(__file__).parent


def pytest_itemcollected(item: pytest.Item) -> None:
    # Called through the item's own hook proxy, so only for tests under this directory.
    item.add_marker(pytest.mark.cluster)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A session-wide hook: it sees every tier's items, and reorders this tier's only.
    check_cluster_units(items, HERE)
    shared_cluster_last(items, HERE)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    # Called through the item's own hook proxy, so only after tests under this directory.
    try:
        return (yield)
    finally:
        shared = item.config.stash.get(SHARED_CLUSTER, None)
        if shared is not None and (nextitem is None or not uses_shared_cluster(nextitem)):
            shared.stop()
