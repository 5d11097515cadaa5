"""``chaosregistry --help`` imports no heavy library, and lists every command as it always did.

What is imported is checked, not how long it takes: a timing would pass or fail with the load on
the machine. The figures are in bench/README.md ("CLI start-up").
"""

import json
import subprocess
import sys

import click
import pytest

from chaosregistry.cli import LAZY_COMMANDS, main

# Libraries that only some commands need, each costing tens of milliseconds or more to import.
HEAVY_MODULES = (
    "httpx",
    "h2",
    "lightkube",
    "chaoslib",
    "matplotlib",
    "cryptography",
    "OpenSSL",
    "yaml",
    "locust",
    "gevent",
    "numpy",
    "prometheus_client",
    "importlib.metadata",
)
# Our own modules that import those, or that only one command needs.
COMMAND_MODULES = (
    "chaosregistry.sandbox",
    "chaosregistry.cluster",
    "chaosregistry.faults",
    "chaosregistry.reports",
    "chaosregistry.oci",
    "chaosregistry.experiment.settings",
    "chaosregistry.experiment.validate",
    "chaosregistry.gameday.runner",
)

# Run in a fresh interpreter: this test process has imported most of the project already.
HELP_IN_A_FRESH_PROCESS = """
import json, sys
from click.testing import CliRunner
from chaosregistry.cli import main
lazy = CliRunner().invoke(main, ["--help"], prog_name="chaosregistry")
imported = sorted(sys.modules)
for name in main.list_commands(None):
    main.get_command(None, name)
eager = CliRunner().invoke(main, ["--help"], prog_name="chaosregistry")
print(json.dumps({"imported": imported, "lazy": lazy.output, "lazy_exit": lazy.exit_code,
                  "eager": eager.output}))
"""


@pytest.fixture(scope="module")
def fresh_help() -> dict[str, object]:
    process = subprocess.run(
        [sys.executable, "-c", HELP_IN_A_FRESH_PROCESS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(process.stdout)
    return result


def test_help_imports_no_heavy_library_nor_any_commands_module(
    fresh_help: dict[str, object],
) -> None:
    imported = fresh_help["imported"]
    assert isinstance(imported, list)
    assert "chaosregistry.cli" in imported  # the probe itself worked
    unwanted = [
        module
        for module in imported
        for prefix in HEAVY_MODULES + COMMAND_MODULES
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert unwanted == []


def test_help_lists_every_command_as_when_all_are_imported(fresh_help: dict[str, object]) -> None:
    assert fresh_help["lazy_exit"] == 0
    lazy = str(fresh_help["lazy"])
    assert lazy == fresh_help["eager"]
    for name in [*LAZY_COMMANDS, "gameday", "pull", "validate"]:
        assert f"\n  {name} " in lazy, name


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_each_lazy_summary_is_the_first_paragraph_of_the_commands_own_help(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None and command.name == name
    assert command.help is not None
    assert LAZY_COMMANDS[name][2] == command.help.split("\n\n")[0].strip()
