"""The ``chaosregistry`` command: sandbox, pull, faults and rollback.

Every user mistake ends as one line on stderr and a non-zero exit; never a traceback.
"""

import json
import sys
from typing import Any

import click

from chaosregistry.errors import ChaosRegistryError
from chaosregistry.oci.pull import pull as pull_image
from chaosregistry.oci.reference import ImageReference, Platform
from chaosregistry.settings import resolve_target
from chaosregistry.stats import summarize


class _Group(click.Group):
    """A click group that turns our errors into one-line ``Error: ...`` exits."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ChaosRegistryError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chaostoolkit-registry")
def main() -> None:
    """Chaos engineering for container image registries."""


def _register_groups() -> None:
    from chaosregistry.sandbox.cli import sandbox_group

    main.add_command(sandbox_group)


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
    as_json: bool,
) -> None:
    """Pull IMAGE (repository:tag) and print each phase's timing.

    Credentials come from CHAOSREGISTRY_USERNAME / CHAOSREGISTRY_PASSWORD or the sandbox.
    """
    if count < 1:
        raise click.BadParameter("must be >= 1", param_hint="--count")
    configuration: dict[str, Any] = {}
    if sandbox_dir:
        configuration["sandbox_dir"] = sandbox_dir
    if ca_bundle:
        configuration["registry_ca_bundle"] = ca_bundle
    if insecure:
        configuration["registry_verify_tls"] = False
    reference = ImageReference.parse(image)
    wanted = Platform.parse(platform)
    registry = resolve_target(configuration, None, target=target)
    with registry.client(max_connections=max(concurrency, 1)) as client:
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
    first = results[0]
    click.echo(f"image     {first.image} ({first.platform})")
    click.echo(f"registry  {first.registry}")
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


_register_groups()
