"""``chaosregistry proxy up`` / ``status`` / ``down``: a fault proxy in front of your registry."""

from pathlib import Path

import click

from chaosregistry.cli_errors import OneLineErrorsGroup
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import FaultProxySettings, Settings, parse_settings

DEFAULT_DIR = Path("runs/fault-proxy")
LOOPBACK = "127.0.0.1"


@click.group("proxy", cls=OneLineErrorsGroup)
def proxy_group() -> None:
    """A fault proxy (a local Toxiproxy hop) in front of your own registry.

    \b
    The hop, client-registry, passes TCP through: TLS is the registry's own, and the probes
    connect to the proxy's listener while checking the registry's real host name. Declare it in
    a vars file (`chaosregistry init` writes one) and network faults (add_latency, partition...)
    work against your registry; `chaosregistry gameday` starts it from the vars file.
    """


def _vars_settings(vars_file: Path) -> Settings:
    from chaosregistry.experiment.validate import load_document

    configuration = load_document(vars_file, "vars").get("configuration")
    if not isinstance(configuration, dict):
        raise ConfigError(f"{vars_file}: configuration must be a mapping")
    settings = parse_settings(configuration)
    if settings.fault_proxy is None:
        raise ConfigError(f"{vars_file}: configuration.fault_proxy: not declared")
    return settings


def _from_flags(
    registry: str, state_dir: Path, listen_port: int | None, api_port: int | None
) -> FaultProxySettings:
    if listen_port is None or api_port is None:
        from chaosregistry.sandbox import find_free_base_port

        base = find_free_base_port(span=2)
        api_port = api_port or base
        listen_port = listen_port or base + 1
    declaration = {
        "listen": f"{LOOPBACK}:{listen_port}",
        "api": f"{LOOPBACK}:{api_port}",
        "dir": str(state_dir),
    }
    proxy = parse_settings({"registry_url": registry, "fault_proxy": declaration}).fault_proxy
    assert proxy is not None  # declared just above
    return proxy


def _say_status(proxy: FaultProxySettings) -> None:
    from chaosregistry.faultproxy.proxy import status

    state = status(proxy)
    running = f"running (pid {state['pid']})" if state["running"] else "stopped"
    click.echo(
        f"fault proxy {running}"
        f": hop {state['hop']} {state['listen']} -> {state['upstream']}, "
        f"toxiproxy {state['toxiproxy']}, toxics: {', '.join(state['toxics']) or 'none'}"
    )


@proxy_group.command("up")
@click.option("--registry", help="The registry's URL, https://host[:port].")
@click.option(
    "--vars",
    "vars_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A vars file declaring fault_proxy (instead of --registry and the ports).",
)
@click.option(
    "--dir",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="The proxy's directory (record, log, declaration).",
)
@click.option("--listen-port", type=click.IntRange(1, 65535), help="Default: a free port.")
@click.option("--api-port", type=click.IntRange(1, 65535), help="Default: a free port.")
def up_command(
    registry: str | None,
    vars_file: Path | None,
    state_dir: Path,
    listen_port: int | None,
    api_port: int | None,
) -> None:
    """Start the fault proxy in front of --registry (or as a vars file declares it)."""
    from chaosregistry.faultproxy.proxy import up

    if (registry is None) == (vars_file is None):
        raise ConfigError("give --registry URL or --vars FILE (one of them)")
    if vars_file is not None:
        proxy = _vars_settings(vars_file).fault_proxy
        assert proxy is not None  # _vars_settings refuses a file without one
    else:
        proxy = _from_flags(str(registry), state_dir.absolute(), listen_port, api_port)
    up(proxy)
    _say_status(proxy)
    if vars_file is None:
        click.echo("declare it in your vars file (configuration.chaosregistry):")
        click.echo(f"  registry_url: {proxy.registry_url}")
        click.echo("  fault_proxy:")
        for key, value in proxy.as_configuration().items():
            click.echo(f"    {key}: {value}")


def _named(vars_file: Path | None, state_dir: Path) -> tuple[FaultProxySettings, Settings | None]:
    from chaosregistry.faultproxy.proxy import declared_in

    if vars_file is not None:
        settings = _vars_settings(vars_file)
        assert settings.fault_proxy is not None
        return settings.fault_proxy, settings
    return declared_in(state_dir), None


@proxy_group.command("status")
@click.option("--vars", "vars_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dir",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
)
def status_command(vars_file: Path | None, state_dir: Path) -> None:
    """Say whether the fault proxy runs, where, and which toxics its hop carries."""
    _say_status(_named(vars_file, state_dir)[0])


@proxy_group.command("down")
@click.option("--vars", "vars_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dir",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
)
def down_command(vars_file: Path | None, state_dir: Path) -> None:
    """Stop the fault proxy; refused while the ledger holds an active fault on its hop."""
    from chaosregistry.faultproxy.proxy import down
    from chaosregistry.faults.ledger import Ledger

    proxy, settings = _named(vars_file, state_dir)
    ledger = Ledger((settings or parse_settings({})).ledger_dir)
    stopped = down(proxy, ledger=ledger)
    click.echo("fault proxy: stopped" if stopped else "fault proxy: was not running")
