"""The unit tier: every test collected under this directory is marked ``unit``."""

import pytest


def pytest_itemcollected(item: pytest.Item) -> None:
    # Called through the item's own hook proxy, so only for tests under this directory.
    item.add_marker(pytest.mark.unit)
