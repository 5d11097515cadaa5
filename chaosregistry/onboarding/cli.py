"""``chaosregistry init``: flags for CI, prompts on a terminal."""

import sys
from pathlib import Path

import click

from chaosregistry.errors import ConfigError
from chaosregistry.onboarding import DEFAULT_LOAD_USERS, DEFAULT_PULLS

DEFAULT_OUTPUT = Path("chaos")


def _interactive() -> bool:
    return sys.stdin.isatty()


def _choose(candidates: list[str]) -> str:
    """On a terminal, ask which image to measure; else the first the catalog lists."""
    if not _interactive():
        click.echo(f"image: {candidates[0]} (the catalog's first; --image picks another)")
        return candidates[0]
    for index, name in enumerate(candidates, 1):
        click.echo(f"  {index}. {name}")
    index = click.prompt(
        "Which image should the experiments pull?",
        type=click.IntRange(1, len(candidates)),
        default=1,
    )
    return candidates[index - 1]


@click.command("init")
@click.option("--registry", "registry_url", help="Your registry's URL, https://host[:port].")
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM CA bundle that signed the registry's certificate (default: the system's CAs).",
)
@click.option(
    "--credentials-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSON {"username": ..., "password": ...} (mode 0600); default: '
    "$CHAOSREGISTRY_USERNAME and $CHAOSREGISTRY_PASSWORD.",
)
@click.option("--image", help="repository:tag to measure; default: pick one from the catalog.")
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A cluster's kubeconfig, recorded in the vars file for the rollout probes.",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Where to write the vars file and experiments (default ./{DEFAULT_OUTPUT}).",
)
@click.option("--pulls", default=DEFAULT_PULLS, show_default=True, help="Baseline pulls (>= 5).")
@click.option(
    "--load-users",
    default=DEFAULT_LOAD_USERS,
    show_default=True,
    help="Users of the load experiment.",
)
@click.option("--proxy-port", type=click.IntRange(1, 65535), help="Fault proxy listener port.")
@click.option("--proxy-api-port", type=click.IntRange(1, 65535), help="Toxiproxy API port.")
@click.option("--force", is_flag=True, help="Replace files an earlier init wrote there.")
def init_command(
    registry_url: str | None,
    ca_bundle: Path | None,
    credentials_file: Path | None,
    image: str | None,
    kubeconfig: Path | None,
    output: Path | None,
    pulls: int,
    load_users: int,
    proxy_port: int | None,
    proxy_api_port: int | None,
    force: bool,
) -> None:
    """Write a vars file and experiments for your registry, tolerances from a measured baseline.

    \b
    Checks the registry (reachable, TLS verifies, the credentials work: one line for each
    failure, nothing written), measures a baseline through a local fault proxy (pulls of the
    image, /v2/ round trips, the certificate's days left) and writes into --output:
      vars/local.yaml            your registry, the fault proxy, no secret
      registry-latency.yaml      latency on the proxy's hop
      registry-partition.yaml    a black-holed hop, and the recovery
      registry-certificate.yaml  the certificate verifies and has days left (https)
      registry-load.yaml         a pull load without failures
    Each tolerance's comment says what was measured and the budget applied. Run one with
    `chaosregistry gameday OUTPUT/registry-latency.yaml`.

    Credentials never go on the command line: $CHAOSREGISTRY_USERNAME and
    $CHAOSREGISTRY_PASSWORD, or --credentials-file. On a terminal, init asks for what the
    flags leave out; elsewhere (CI) a missing --registry is an error.
    """
    from chaosregistry.onboarding.init import InitRequest, run_init

    if not registry_url:
        if not _interactive():
            raise ConfigError("--registry URL is required (stdin is not a terminal)")
        registry_url = click.prompt("Registry URL (https://host[:port])")
    if output is None:
        output = (
            Path(click.prompt("Write the experiments to", default=str(DEFAULT_OUTPUT)))
            if _interactive()
            else DEFAULT_OUTPUT
        )
    if proxy_port is None or proxy_api_port is None:
        from chaosregistry.sandbox import find_free_base_port

        # Three candidates: when one port was given, it may be among them, and two remain.
        base = find_free_base_port(span=3)
        free = [p for p in range(base, base + 3) if p not in (proxy_port, proxy_api_port)]
        proxy_api_port = proxy_api_port or free[0]
        proxy_port = proxy_port or free[1]
    request = InitRequest(
        registry_url=str(registry_url),
        output=output,
        ca_bundle=ca_bundle,
        credentials_file=credentials_file,
        image=image,
        kubeconfig=kubeconfig,
        pulls=pulls,
        load_users=load_users,
        proxy_api_port=proxy_api_port,
        proxy_listen_port=proxy_port,
        force=force,
    )
    written = run_init(request, choose=_choose, say=click.echo)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        f"next: chaosregistry validate {output}/registry-latency.yaml "
        f"--vars {output}/vars/local.yaml; chaosregistry gameday {output}/registry-latency.yaml"
    )
