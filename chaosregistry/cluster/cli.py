"""``chaosregistry cluster up | down | status``: the test cluster (one node, or two).

``cluster_group`` is registered by the top-level CLI. Our errors become one ``Error:`` line
and a non-zero exit; progress lines go to stderr, results (``status --json``) to stdout.
"""

import json
from pathlib import Path

import click

from chaosregistry.cli_errors import OneLineErrorsGroup
from chaosregistry.cluster.layout import (
    DEFAULT_BASE_PORT,
    DEFAULT_SANDBOX_BASE_PORT,
    DEFAULT_STATE_DIR,
    INSTANCES,
    MAX_NODES,
)
from chaosregistry.cluster.lifecycle import down, status, up
from chaosregistry.experiment.settings import NODE_PULLS, NODE_PULLS_ORIGIN


def _progress(message: str) -> None:
    click.echo(message, err=True)


_state_dir = click.option(
    "--state-dir",
    envvar="CHAOSREGISTRY_CLUSTER_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Where the cluster keeps everything.",
)


@click.group("cluster", cls=OneLineErrorsGroup)
def cluster_group() -> None:
    """A real Kubernetes (built from Go modules, one or two nodes) pulling from the sandbox."""


@cluster_group.command("up")
@_state_dir
@click.option(
    "--base-port",
    default=DEFAULT_BASE_PORT,
    show_default=True,
    help="apiserver port; etcd, kubelet and the rest use the next few.",
)
@click.option(
    "--sandbox-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Pull from this running sandbox instead of starting one in the state dir.",
)
@click.option(
    "--sandbox-base-port",
    default=DEFAULT_SANDBOX_BASE_PORT,
    show_default=True,
    help="Base port of the sandbox the cluster starts for itself.",
)
@click.option(
    "--node-pulls",
    # Checked by up() (one Error: line), not by a click.Choice's three-line usage error.
    default=NODE_PULLS_ORIGIN,
    show_default=True,
    help=f"{' | '.join(NODE_PULLS)}. origin: the node pulls through the sandbox's client-facing "
    "hop; mirror-first: through its pull-through mirror, falling back to that hop "
    "(mirror-down-fallback, mirror-hanging-fallback, mirror-upstream-throttled-rollout).",
)
@click.option(
    "--nodes",
    # Checked by up() (one Error: line naming the range).
    default=1,
    show_default=True,
    help=f"1..{MAX_NODES}. A second node is a kubelet with its own containerd and image store "
    "beside the first, holding only the pause image (registry-outage-recovery).",
)
@click.option(
    "--serial-pulls",
    # Checked by up() (one Error: line naming the cluster's nodes).
    type=int,
    multiple=True,
    metavar="NODE",
    help="The kubelet of node NODE (1..--nodes; repeatable) pulls one image at a time, the "
    "kubelet's default (serializeImagePulls: true); the others pull up to three at once "
    "(head-of-line-pulls).",
)
@click.option(
    "--instance",
    # Checked by up() (one Error: line naming the range).
    default=0,
    show_default=True,
    help=f"0..{INSTANCES - 1}. The machine's test-cluster slot: its node interface, addresses, "
    "bridges, subnets and cgroup root, so two clusters (each with its own state dir and "
    "--base-port) can run side by side. down and status find it in the state dir.",
)
def up_command(
    state_dir: Path,
    base_port: int,
    sandbox_dir: Path | None,
    sandbox_base_port: int,
    node_pulls: str,
    nodes: int,
    serial_pulls: tuple[int, ...],
    instance: int,
) -> None:
    """Build what is missing, start what is stopped, wait until the demo is Available."""
    settings = up(
        state_dir,
        base_port=base_port,
        sandbox_dir=sandbox_dir,
        sandbox_base_port=sandbox_base_port,
        node_pulls=node_pulls,
        nodes=nodes,
        serial_pulls=serial_pulls,
        instance=instance,
        progress=_progress,
    )
    click.echo(f"export KUBECONFIG={settings['kubeconfig']}")
    click.echo(f"# vars file for game days on this cluster: --vars {settings['vars_file']}")
    click.echo(f"# in-cluster registry (registry-node-kill): {settings['cluster_registry']}")


@cluster_group.command("build")
def build_command() -> None:
    """Build what is missing of the test bed's binaries (etcd, Kubernetes, Chaos Mesh) and
    generate Chaos Mesh's CRDs, cached by version; start nothing. `cluster up` does this too."""
    from chaosregistry.cluster.build import ensure_binaries
    from chaosregistry.cluster.crds import generate_crds

    binaries = ensure_binaries(_progress)
    crds = generate_crds(_progress)
    click.echo(
        f"test bed binaries ready: {binaries.kubelet.parent}, {binaries.etcd.parent}; "
        f"{len(crds)} Chaos Mesh CRDs in {crds[0].parent}"
    )


@cluster_group.command("down")
@_state_dir
def down_command(state_dir: Path) -> None:
    """Stop every process, clean mounts, interfaces and cgroups, stop the cluster's sandbox."""
    down(state_dir, progress=_progress)


@cluster_group.command("status")
@_state_dir
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(state_dir: Path, as_json: bool) -> None:
    """Say which processes run, whether the node is Ready, the demo Available and the
    in-cluster registry ready."""
    result = status(state_dir)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for name, pid in result["processes"].items():
            click.echo(f"{name:<24} {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")
        if result["node_ready"] is not None:
            click.echo(f"{'node':<24} {result['node_detail']}")
            click.echo(f"{'deployment demo':<24} {result['demo_detail']}")
            where, detail = result.get("cluster_registry") or "-", result["cluster_registry_detail"]
            click.echo(f"{'in-cluster registry':<24} {where}: {detail}")
            for reverted in result.get("expired_faults_reverted") or []:
                click.echo(f"{'expired fault reverted':<24} bad tag on deployment {reverted}")
        click.echo(f"{'instance':<24} {result['instance']}")
        click.echo(f"{'kubeconfig':<24} {result['kubeconfig']}")
        click.echo(f"{'vars file':<24} {result['vars_file'] or '- (run cluster up)'}")
    if not result["running"]:
        raise SystemExit(3)
