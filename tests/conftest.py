"""Shared fixtures and the tier rule. ``sandbox``: one real embedded sandbox for the whole test
session. The tests live in one directory per tier (unit, sandbox, cluster), whose conftest.py
marks them; their helpers are in tests/support."""

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.sandbox import SandboxInfo, running_sandbox
from support.tiers import check_one_tier

from chaosregistry.sandbox.implementations import DEFAULT_IMPLEMENTATION, IMPLEMENTATION_NAMES


def _interruptible() -> None:
    """SIGINT and SIGQUIT as in a terminal, for this process and every process it starts.

    A suite started in the background (``make test &``, ``nohup``, some CI runners) inherits both
    ignored, and so would every ``chaos run``, fault owner and watchdog the tests start: a test
    that interrupts one with SIGINT would then wait on a process that cannot hear it (seen:
    test_fault_ends_when_its_owner_dies[SIGINT], its owner's SigIgn 0x...06)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def pytest_configure(config: pytest.Config) -> None:
    _interruptible()
    if not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no":
        return  # the pytest-xdist controller runs no test; each worker is a session of its own
    # State of one session (of one xdist worker), set before any sandbox starts; every process
    # the tests spawn inherits it. XDG_STATE_HOME: where a ledger no test names lives (and the
    # default index), never the user's, never another worker's. The index of known ledgers
    # (faults.watchdog) that the sandboxes' guardians watch: one per session, so tests never add
    # their ledgers to the user's own index (nor read it), and no worker's guardian restarts
    # the watchdog of another worker's ledger.
    state = Path(tempfile.mkdtemp(prefix="chaosregistry-tests-"))
    config.add_cleanup(lambda: shutil.rmtree(state, True))
    overrides = {"XDG_STATE_HOME": str(state / "state")}
    if "CHAOSREGISTRY_LEDGER_INDEX" not in os.environ:
        overrides["CHAOSREGISTRY_LEDGER_INDEX"] = str(state / "ledger-index")
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)

    def restore() -> None:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    config.add_cleanup(restore)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, called in parallel runs only
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from support.scheduling import TierScheduling

    return TierScheduling(config, log)


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
