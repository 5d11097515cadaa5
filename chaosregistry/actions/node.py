"""Registry node faults: kill one replica of the registry, and bring it back.

Locally a node is a sandbox replica process (``registry-1``, ``registry-2``) behind nginx, or
the sandbox's pull-through mirror (``mirror``); the kill is a SIGKILL of its process group, like
a node dying. The ledger holds the restart as the
undo: it runs after ``restart_after`` seconds (or ``duration`` when that is 0), on the
experiment's rollback (``restart_registry_node``), or at once if ``chaos run`` dies.

On the kubernetes backend a node is an entry of ``configuration.registry_nodes`` (a pod selector
and a mode: one, all, fixed or fixed-percent); its pods are deleted with no grace period. Their
controller replaces them at once, so the undo cannot keep them down: it verifies the killed
pods are gone and as many pods as before are ready again. ``mirror`` (when ``registry_nodes``
has no entry of that name) is the mirror of the sandbox the cluster pulls through
(``sandbox_dir``), killed and restarted as locally: a node that pulls mirror-first falls back
to the origin while it is down (experiments/mirror-down-fallback.yaml).
"""

from dataclasses import replace
from typing import Annotated

from chaosregistry.backends import backend_for
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import NON_NEGATIVE, FaultSeconds
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, revert_matching

__all__ = ["kill_registry_node", "restart_registry_node"]

# On the local backend these act on the embedded sandbox itself, whatever the configuration
# names: gameday starts one for them (``experiment.needs`` reads this).
SANDBOX_NEED = SandboxNeed("kills and restarts the sandbox's registry processes")


@activity
def kill_registry_node(
    node: str = "registry-1",
    restart_after: Annotated[float, NON_NEGATIVE] = 0,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """SIGKILL one registry node; it is restarted after ``restart_after`` seconds.

    Arguments:
      node: the node to kill (locally ``registry-1``, ``registry-2`` or ``mirror``, the
        pull-through mirror; on kubernetes an entry of ``configuration.registry_nodes``, or
        ``mirror``: the mirror of the sandbox the cluster pulls through).
      restart_after: seconds until the node is restarted by the watchdog; 0 keeps it down until
        the rollback or the end of ``duration``.
      duration: the longest the node may stay down (required, > 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (node.kill), ``target`` (``node:<name>``),
    ``state``, ``parameters``, ``applied`` ({signal, was_running}), ``injected_at``,
    ``expires_at``, ``expires_in``. Raises ActivityFailed for an unknown node or bad numbers.
    """
    seconds = check_duration(duration)
    if isinstance(restart_after, bool) or not isinstance(restart_after, int | float):
        raise ConfigError(f"restart_after must be a number of seconds, got {restart_after!r}")
    if not 0 <= restart_after <= seconds:
        raise ConfigError(f"restart_after must be between 0 and duration ({seconds:g}s)")
    settings = settings_for(configuration)
    plan = backend_for(settings).kill_node(node)
    if restart_after:
        plan = replace(plan, ends_after=float(restart_after))
    return inject_plan(plan, seconds, settings)


@activity
def restart_registry_node(
    node: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``kill_registry_node``: restart killed nodes (all if ``node`` is empty).

    Each node is started again and verified to answer before its fault is marked reverted.
    Idempotent. Returns ``count`` and ``reverted``.

    Arguments:
      node: the node to restart (as ``kill_registry_node`` names it); empty: every killed node.
    """
    return revert_matching(
        settings_for(configuration), kind_prefix="node.", target=f"node:{node}" if node else ""
    )
