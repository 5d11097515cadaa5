"""Shared fixtures. ``sandbox``: one real embedded sandbox for the whole test session."""

import json
import os
import shutil
import ssl
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chaosregistry.sandbox import down, find_free_base_port, load_credentials, up
from chaosregistry.sandbox.implementations import DEFAULT_IMPLEMENTATION, IMPLEMENTATION_NAMES

# Every test is in exactly one tier (pyproject.toml's markers), set by its module's
# `pytestmark`: `make test-unit` runs `pytest -m unit`, and a test without a tier would silently
# never run there, a test with two would run where its servers are not wanted.
TIERS = ("unit", "sandbox", "cluster")


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
    problems = []
    for item in items:
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) != 1:
            has = " and ".join(tiers) if tiers else "none"
            problems.append(
                f"{item.nodeid}: needs exactly one tier marker ({', '.join(TIERS)}; "
                f"a module-level pytestmark), has {has}"
            )
    if problems:
        raise pytest.UsageError("\n".join(problems))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sandbox-implementation",
        choices=IMPLEMENTATION_NAMES,
        default=DEFAULT_IMPLEMENTATION,
        help="what the session sandbox's replicas run (tests/test_implementations.py runs all)",
    )


@dataclass(frozen=True)
class SandboxInfo:
    """A running sandbox: its endpoints dict, the user's credentials and the seeded catalog."""

    endpoints: dict[str, Any]
    username: str
    password: str = field(repr=False)  # keeps the password out of assertion messages
    catalog: list[dict[str, Any]] = field(repr=False)
    run_dir: Path

    @property
    def ca_file(self) -> str:
        """The sandbox's CA (PEM path), which verifies every HTTPS endpoint of it."""
        return str(self.endpoints["ca_file"])

    @property
    def tls(self) -> ssl.SSLContext:
        """An SSL context trusting this sandbox's CA only (for httpx and raw sockets)."""
        return ssl.create_default_context(cafile=self.ca_file)

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def image(self, repository: str, tag: str) -> dict[str, Any]:
        """The catalog entry of ``repository:tag``."""
        for entry in self.catalog:
            if (entry["repository"], entry["tag"]) == (repository, tag):
                return entry
        raise KeyError(f"{repository}:{tag} not in the seeded catalog")


@pytest.fixture(scope="session")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[SandboxInfo]:
    """Bring up one sandbox (free base port, temp run dir, replicas running
    ``--sandbox-implementation``); always torn down at the end."""
    run_dir = tmp_path_factory.mktemp("sandbox")
    try:
        endpoints = up(
            run_dir,
            base_port=find_free_base_port(),
            implementation=str(pytestconfig.getoption("--sandbox-implementation")),
            progress=lambda line: print(f"sandbox: {line}", file=sys.stderr),
        )
        creds = load_credentials(run_dir)
        catalog = json.loads(Path(endpoints["catalog_file"]).read_text())
        yield SandboxInfo(endpoints, creds.username, creds.password, catalog, Path(run_dir))
    finally:
        down(run_dir)
