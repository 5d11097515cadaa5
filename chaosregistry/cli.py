"""The ``chaosregistry`` command: sandbox, pull, faults and rollback.

Every user mistake ends as one line on stderr and a non-zero exit; never a traceback.
"""

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from chaosregistry.cli_errors import OneLineErrorsGroup
from chaosregistry.errors import ConfigError

# Commands whose modules import heavy libraries (httpx, lightkube, chaoslib, matplotlib,
# cryptography): registered by name and imported only when one of them is looked up, so that
# `chaosregistry --help` (and every other command) does not pay for all of them at start-up.
# name -> (module, attribute, the one-line summary `chaosregistry --help` lists: the first
# paragraph of the command's docstring, which tests/unit/test_cli_startup.py keeps equal).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "sandbox": (
        "chaosregistry.sandbox.cli",
        "sandbox_group",
        "Run the embedded registry sandbox (Distribution x2 behind nginx, a mirror, Toxiproxy).",
    ),
    "cluster": (
        "chaosregistry.cluster.cli",
        "cluster_group",
        "A real Kubernetes (built from Go modules, one or two nodes) pulling from the sandbox.",
    ),
    "proxy": (
        "chaosregistry.faultproxy.cli",
        "proxy_group",
        "A fault proxy (a local Toxiproxy hop) in front of your own registry.",
    ),
    "init": (
        "chaosregistry.onboarding.cli",
        "init_command",
        "Write a vars file and experiments for your registry, tolerances from a measured baseline.",
    ),
    "faults": (
        "chaosregistry.faults.cli",
        "faults_command",
        "List the faults in the ledger (active ones unless --all).",
    ),
    "rollback": (
        "chaosregistry.faults.cli",
        "rollback_command",
        "Revert the faults FAULT_ID..., or every active fault of every run; safe to run again.",
    ),
    "report": (
        "chaosregistry.reports.cli",
        "report_command",
        "Write report.html, summary.json, junit.xml and summary.md for JOURNAL(s).",
    ),
    "trend": (
        "chaosregistry.reports.cli",
        "trend_command",
        "Chart the score, recovery and probes across RUN_DIR(s).",
    ),
}


class _Group(OneLineErrorsGroup):
    """A click group that turns our errors into one-line ``Error: ...`` exits and imports the
    modules of ``LAZY_COMMANDS`` only when one of their commands is wanted."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module, attribute, _ = LAZY_COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own version looks every command up for its summary, which would import them
        # all; a command not imported yet is listed with its summary from LAZY_COMMANDS, with
        # click's layout and truncation.
        shown: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=LAZY_COMMANDS[name][2])
            if not command.hidden:
                shown.append((name, command))
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        with formatter.section("Commands"):
            formatter.write_dl(
                [(name, command.get_short_help_str(limit)) for name, command in shown]
            )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chaostoolkit-registry")
def main() -> None:
    """Chaos engineering for container image registries."""


@main.command()
@click.argument("experiment", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--vars",
    "vars_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Vars file (experiments/vars/<backend>.yaml).",
)
def validate(experiment: Path, vars_file: Path | None) -> None:
    """Check EXPERIMENT (and its vars file) without running anything."""
    from chaosregistry.experiment.validate import validate as check

    checked = check(experiment, vars_file)
    click.echo(f"{experiment}: valid ({checked.experiment.get('title', '')})")


@main.command()
@click.argument("experiment", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--vars",
    "vars_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Vars file; default experiments/vars/local.yaml beside the experiment.",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the journal, logs and report go (default runs/<time>-<experiment>).",
)
@click.option(
    "--sandbox-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CHAOSREGISTRY_SANDBOX_DIR",
    help="The sandbox to use or start (default runs/sandbox).",
)
@click.option("--keep-sandbox", is_flag=True, help="Leave a sandbox this run started running.")
def gameday(
    experiment: Path,
    vars_file: Path | None,
    run_dir: Path | None,
    sandbox_dir: Path | None,
    keep_sandbox: bool,
) -> None:
    """Run EXPERIMENT as a game day: sandbox up, chaos run, verdict, clean up.

    \b
    Exit codes: 0 passed, 1 bad input, 10 deviated, 11 failed, 12 interrupted,
    13 a fault outlived the run (left behind), 14 dry run (nothing applied).
    """
    from chaosregistry.gameday.runner import run_gameday

    if vars_file is None:
        default_vars = experiment.parent / "vars" / "local.yaml"
        vars_file = default_vars if default_vars.is_file() else None
    result = run_gameday(
        experiment,
        vars_file=vars_file,
        run_dir=run_dir,
        sandbox_dir=sandbox_dir,
        keep_sandbox=keep_sandbox,
        say=click.echo,
    )
    from chaosregistry.gameday.journal import JournalError, parse_journal
    from chaosregistry.gameday.runner import pull_table

    try:  # the journal as the run left it, scrubbed of secrets
        table = (
            pull_table(parse_journal(result.journal_path)) if result.journal_path.is_file() else []
        )
    except JournalError:  # the verdict's notes say why
        table = []
    if len(table) > 1:
        click.echo("")
        for line in table:
            click.echo(line)
        click.echo("")
    for item in result.evidence:  # what the verdict stands on (chaosregistry.gameday.verdict)
        click.echo(f"{'proven' if item.proven else 'NOT proven'}: {item.name}: {item.detail}")
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.report is not None:
        scored = "not scored" if result.score is None else f"score {result.score:.0f}/100"
        click.echo(f"report: {result.report} ({scored})")
    click.echo(
        f"verdict: {result.verdict} (exit {result.exit_code}); journal {result.journal_path}"
    )
    sys.exit(result.exit_code)


def _target_options(f: Any) -> Any:
    f = click.option(
        "--sandbox-dir",
        envvar="CHAOSREGISTRY_SANDBOX_DIR",
        type=click.Path(file_okay=False),
        help="Use this embedded sandbox's endpoints and credentials.",
    )(f)
    f = click.option(
        "--registry",
        "target",
        default="registry",
        show_default=True,
        help="A URL, or a configured registry name (registry, mirror).",
    )(f)
    f = click.option("--ca-bundle", type=click.Path(dir_okay=False), help="PEM CA bundle.")(f)
    f = click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")(f)
    return f


@main.command()
@click.argument("image")
@_target_options
@click.option("--platform", default="linux/amd64", show_default=True, help="os/arch[/variant]")
@click.option("--concurrency", default=3, show_default=True, help="Blobs fetched at once.")
@click.option("--count", default=1, show_default=True, help="Pull this many times; summarise.")
@click.option("--no-verify", is_flag=True, help="Skip sha256 checks of blobs.")
@click.option("--http2", is_flag=True, help="Speak HTTP/2 where the registry offers it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def pull(
    image: str,
    target: str,
    sandbox_dir: str | None,
    ca_bundle: str | None,
    insecure: bool,
    platform: str,
    concurrency: int,
    count: int,
    no_verify: bool,
    http2: bool,
    as_json: bool,
) -> None:
    """Pull IMAGE (repository:tag) and print each phase's timing.

    Credentials come from CHAOSREGISTRY_USERNAME / CHAOSREGISTRY_PASSWORD or the sandbox.
    """
    import json

    from chaosregistry.experiment.settings import settings_for
    from chaosregistry.oci.pull import pull as pull_image
    from chaosregistry.oci.reference import ImageReference, Platform

    if count < 1:
        raise click.ClickException(f"--count must be >= 1, got {count}")
    configuration: dict[str, Any] = {}
    if sandbox_dir:
        configuration["sandbox_dir"] = sandbox_dir
    if ca_bundle:
        configuration["registry_ca_bundle"] = ca_bundle
    if insecure:
        configuration["registry_verify_tls"] = False
    reference = ImageReference.parse(image)
    wanted = Platform.parse(platform)
    registry = settings_for(configuration).registry.resolve(None, target)
    with registry.client(max_connections=max(concurrency, 1), http2=http2) as client:
        results = [
            pull_image(
                client, reference, platform=wanted, concurrency=concurrency, verify=not no_verify
            )
            for _ in range(count)
        ]
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        _print_pulls(results)
    if not all(r.ok for r in results):
        sys.exit(1)


def _print_pulls(results: list[Any]) -> None:
    from chaosregistry.stats import summarize

    first = results[0]
    click.echo(f"image     {first.image} ({first.platform})")
    click.echo(f"registry  {first.registry} ({first.http_version or 'no answer'})")
    good = [r for r in results if r.ok]
    if good:
        click.echo(f"digest    {good[0].digest}")
        click.echo(f"size      {good[0].bytes / 2**20:.1f} MiB in {good[0].blobs} blobs")
    if len(results) == 1:
        r = first
        if r.ok:
            click.echo(f"{'phase':<9} {'seconds':>9}")
            for phase in ("auth", "manifest", "blobs", "total"):
                click.echo(f"{phase:<9} {getattr(r, f'{phase}_seconds'):>9.4f}")
            click.echo(f"throughput {r.throughput / 1e6:.0f} MB/s, digests verified: {r.verified}")
    else:
        stats = summarize([r.total_seconds for r in good])
        click.echo(f"pulls     {len(good)}/{len(results)} succeeded")
        if good:
            click.echo("  ".join(f"{k} {v:.4f}s" for k, v in stats.items() if v is not None))
    for r in results:
        if r.error is not None:
            click.echo(f"error     [{r.error.error_class}] {r.error}", err=True)
            break


@main.command("tag-poller")
@click.argument("deployment")
@click.option("--tag", required=True, help="The tag to follow (by its digest).")
@click.option(
    "--vars",
    "vars_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Vars file naming the cluster and the registry (e.g. the one `cluster up` writes).",
)
@click.option("--container", default="", help="The container (may be empty with one).")
@click.option("--namespace", default="", help="Default: the vars file's namespace.")
@click.option(
    "--registry", "target", default="registry", show_default=True, help="Name or URL to poll."
)
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
def tag_poller(
    deployment: str,
    tag: str,
    vars_file: Path,
    container: str,
    namespace: str,
    target: str,
    interval: float,
) -> None:
    """Follow TAG by digest and set DEPLOYMENT's image to it: a minimal stand-in for an image
    updater (Flux, Keel, Argo CD Image Updater) for push_to_running(mode="observe")."""
    import signal
    import threading

    from chaosregistry.experiment.settings import settings_for
    from chaosregistry.experiment.validate import load_document
    from chaosregistry.kubernetes import tagpoller

    tagpoller.check_interval(interval)
    configuration = load_document(vars_file, "vars").get("configuration")
    if not isinstance(configuration, dict):
        raise ConfigError(f"{vars_file}: configuration must be a mapping")
    settings = settings_for(configuration)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"tag-poller: following {tag} for {deployment} every {interval:g} s", err=True)
    tagpoller.run(
        settings,
        deployment=deployment,
        tag=tag,
        interval=interval,
        container=container,
        namespace=namespace,
        target=target,
        stop=stop,
        say=lambda line: click.echo(line, err=True),
    )


@main.command("blast-radius")
@click.option(
    "--vars",
    "vars_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Vars file naming the cluster (kubeconfig, registry_mirrors), e.g. `cluster up`'s.",
)
@click.option(
    "--registry",
    "registry",
    default="",
    help="The registry host cut off (default: every registry, mirrors included).",
)
@click.option("--outage", default="10m", show_default=True, help="How long: 90s, 10m, 1h.")
@click.option("--namespace", default="", help="Only this namespace's workloads.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def blast_radius(
    vars_file: Path, registry: str, outage: str, namespace: str, as_json: bool
) -> None:
    """Predict which workloads keep running, degrade or break while a registry is cut off.

    Read-only: one paged list call per kind (nodes, pods, controllers, HPAs, PDBs). The same
    result as the probe chaosregistry.probes.blast_radius.
    """
    import json

    from chaosregistry.experiment.settings import settings_for
    from chaosregistry.experiment.validate import load_document
    from chaosregistry.kubernetes.blast_radius import parse_duration, table_lines
    from chaosregistry.kubernetes.inventory import predict

    seconds = parse_duration(outage, "--outage")
    configuration = load_document(vars_file, "vars").get("configuration")
    if not isinstance(configuration, dict):
        raise ConfigError(f"{vars_file}: configuration must be a mapping")
    result = predict(
        settings_for(configuration).kubernetes,
        registry=registry,
        outage_seconds=seconds,
        namespace=namespace,
    )
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for line in table_lines(result):
            click.echo(line)
