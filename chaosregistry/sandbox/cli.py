"""``chaosregistry sandbox up|down|status``: the sandbox from the command line.

``chaosregistry.cli`` adds ``sandbox_group`` to the main command. Errors print as one line
(no traceback) and exit non-zero; progress goes to stderr, results to stdout.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from chaosregistry.cli_errors import one_line_errors
from chaosregistry.experiment.settings import DEFAULT_SANDBOX_DIR
from chaosregistry.sandbox.implementations import DEFAULT_IMPLEMENTATION, IMPLEMENTATION_NAMES
from chaosregistry.sandbox.layout import DEFAULT_BASE_PORT, Layout, load_endpoints
from chaosregistry.sandbox.lifecycle import down, status, up

RUN_DIR_ENV = "CHAOSREGISTRY_SANDBOX_DIR"
DEFAULT_RUN_DIR = DEFAULT_SANDBOX_DIR  # one default for the CLI, settings and gameday


def _run_dir_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--run-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_RUN_DIR,
        envvar=RUN_DIR_ENV,
        show_default=True,
        show_envvar=True,
        help="Directory holding the sandbox's state, configs, logs and storage.",
    )(function)


def _progress(message: str) -> None:
    click.echo(f"sandbox: {message}", err=True)


@click.group("sandbox")
def sandbox_group() -> None:
    """Run the embedded registry sandbox (Distribution x2 behind nginx, a mirror, Toxiproxy)."""


@sandbox_group.command("up")
@_run_dir_option
@click.option(
    "--base-port",
    type=click.IntRange(1024, 65535),
    default=None,
    help=f"First of the sandbox's ports [default: the run dir's, else {DEFAULT_BASE_PORT}].",
)
@click.option(
    "--implementation",
    type=click.Choice(IMPLEMENTATION_NAMES),
    default=None,
    help="What the two replicas behind nginx run "
    f"[default: the run dir's, else {DEFAULT_IMPLEMENTATION}].",
)
@click.option(
    "--second-site/--no-second-site",
    default=None,
    help="Also run a DR registry kept in sync by regsync (behind the sync-dr hop) and the "
    "receiver of the registries' push notifications [default: the run dir's, else off].",
)
def up_command(
    run_dir: Path, base_port: int | None, implementation: str | None, second_site: bool | None
) -> None:
    """Start every piece not already running, seed the images, print the endpoints."""
    with one_line_errors(OSError):
        if base_port is None:
            layout = Layout.at(run_dir)
            base_port = (
                int(load_endpoints(run_dir)["base_port"])
                if layout.endpoints_file.is_file()
                else DEFAULT_BASE_PORT
            )
        endpoints = up(
            run_dir,
            base_port=base_port,
            implementation=implementation,
            second_site=second_site,
            progress=_progress,
        )
    click.echo(
        f"registry  {endpoints['registry']}  ({endpoints['implementation']}, basic auth; "
        f"{endpoints['credentials_file']})"
    )
    click.echo(f"mirror    {endpoints['mirror']}  (anonymous pull-through)")
    click.echo(f"plain     {endpoints['registry_http']}  (the registry over plain HTTP)")
    click.echo(f"ca        {endpoints['ca_file']}  (verifies every https:// endpoint)")
    click.echo(f"toxiproxy {endpoints['toxiproxy']}  hops: {', '.join(endpoints['hops'])}")
    click.echo(
        f"prometheus {endpoints['prometheus']}  (scrapes every 1 s; SLI exporter "
        f"{endpoints['sli_metrics_url']})"
    )
    if endpoints.get("second_site"):
        click.echo(
            f"dr        {endpoints['dr_registry']}  (regsync copies "
            f"{endpoints['replicated_repositories']} over the {endpoints['dr_sync_hop']} hop; "
            f"events {endpoints['events_file']})"
        )
    click.echo(f"endpoints {Layout.at(run_dir).endpoints_file}")


@sandbox_group.command("down")
@_run_dir_option
def down_command(run_dir: Path) -> None:
    """Stop every sandbox process (state, storage and logs stay in the run dir)."""
    with one_line_errors(OSError):
        down(run_dir)
    _progress(f"stopped every process of {Layout.at(run_dir).run_dir}")


@sandbox_group.command("status")
@_run_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(run_dir: Path, as_json: bool) -> None:
    """Show which sandbox processes run (pid, log) and the main endpoints."""
    with one_line_errors(OSError):
        report = status(run_dir)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{'PROCESS':<16}{'STATE':<10}{'PID':<9}LOG")
    for name, item in report["processes"].items():
        state = "running" if item["running"] else "stopped"
        click.echo(f"{name:<16}{state:<10}{item['pid'] or '-'!s:<9}{item['log']}")
    endpoints = report["endpoints"]
    click.echo(f"registry {endpoints['registry']}  mirror {endpoints['mirror']}")
    for item in report["faults"]:
        watchdog = f"watchdog {item['watchdog']}" if item["watchdog"] else "NO WATCHDOG"
        expired = f", {item['expired']} past expiry" if item["expired"] else ""
        click.echo(f"faults: {item['active']} active{expired} in {item['ledger']} ({watchdog})")
    targets = report["prometheus_targets"]
    if isinstance(targets, str):
        click.echo(f"prometheus: {targets}")
        return
    click.echo(f"prometheus {endpoints['prometheus']}  targets:")
    for target in targets:
        error = f"  {target['last_error']}" if target["last_error"] else ""
        click.echo(f"  {target['job']:<14}{target['instance']:<22}{target['health']}{error}")
    if endpoints.get("implementation") == "ggcr":
        click.echo("  (ggcr replicas have no metrics endpoint: not scraped)")
