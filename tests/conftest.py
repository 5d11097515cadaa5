"""Shared fixtures and the tier rule. ``sandbox``: one real embedded sandbox for the whole test
session. The tests live in one directory per tier (unit, sandbox, cluster), whose conftest.py
marks them; their helpers are in tests/support."""

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from support.sandbox import SandboxInfo, running_sandbox
from support.tiers import check_one_tier

from chaosregistry.sandbox.implementations import DEFAULT_IMPLEMENTATION, IMPLEMENTATION_NAMES


def pytest_configure(config: pytest.Config) -> None:
    # The index of known ledgers (faults.watchdog) that the sandboxes' guardians watch: one per
    # session, so tests never add their ledgers to the user's own index (nor read it). Set
    # before any sandbox starts; every process the tests spawn inherits it.
    if "CHAOSREGISTRY_LEDGER_INDEX" not in os.environ:
        os.environ["CHAOSREGISTRY_LEDGER_INDEX"] = tempfile.mkdtemp(prefix="ledger-index-")
        config.add_cleanup(
            lambda: shutil.rmtree(os.environ.pop("CHAOSREGISTRY_LEDGER_INDEX"), True)
        )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: an untiered test must fail every run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    check_one_tier(items)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sandbox-implementation",
        choices=IMPLEMENTATION_NAMES,
        default=DEFAULT_IMPLEMENTATION,
        help="what the session sandbox's replicas run (test_implementations.py runs all)",
    )


@pytest.fixture(scope="session")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[SandboxInfo]:
    """Bring up one sandbox (free base port, temp run dir, replicas running
    ``--sandbox-implementation``); always torn down at the end."""
    implementation = str(pytestconfig.getoption("--sandbox-implementation"))
    with running_sandbox(tmp_path_factory.mktemp("sandbox"), implementation=implementation) as info:
        yield info
