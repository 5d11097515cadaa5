"""Auth faults: the token server down or slow, the registry refusing every token (its trusted
signing key rotated), the registry's credentials changed.

Pullers then fail the way they do when a token service has an outage (``auth-unavailable``:
the registry answered, the token realm did not), when a signing key is rotated on one side
only (``auth``: 401 even with a fresh token), or when someone rotates a password without
telling the clients (``auth``: basic refused). Like every fault each is written to the fault
ledger before it is made, always has a ``duration``, and is undone at its expiry, on the
rollback (``restore_token_server``, ``restore_token_key``, ``restore_credentials``), by
``chaosregistry rollback``, or at once if the process running the experiment dies. Every undo
is verified by authenticating: a fresh client (no cached token) fetches a seeded manifest with
the original credentials.

Locally (the embedded sandbox): the ``token-server`` Toxiproxy hop that every token fetch
crosses (``configuration.allowed_hops`` narrows it), registry-token (the token-auth registry,
``token_registry`` endpoint; restarted trusting a fresh certificate) and the htpasswd of the
registry behind nginx (``registry``). The kubernetes backend refuses auth faults for now.

Each action returns the fault: ``fault_id``, ``kind`` (``auth.<...>``), ``target``
(``auth:<target>``), ``state``, ``parameters``, ``applied`` (what was done and what a fresh
authentication ``seen`` then), ``injected_at``, ``expires_at``, ``expires_in``.
"""

from typing import Annotated

from chaosregistry.backends import backend_for
from chaosregistry.backends.plan import TOKEN_SERVER_MODES
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import (
    Configuration,
    Result,
    Secrets,
    activity,
)
from chaosregistry.experiment.contracts import AT_LEAST_ONE, FaultSeconds, OneOf, Target
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, revert_matching

__all__ = [
    "restore_credentials",
    "restore_token_key",
    "restore_token_server",
    "rotate_token_key",
    "swap_credentials",
    "token_server_outage",
]

# On the local backend these change the sandbox itself, whatever registry the configuration
# names: gameday starts a sandbox for them (``experiment.needs`` reads this).
SANDBOX_NEED = SandboxNeed("changes the sandbox's token server, signing key or credentials")


@activity
def token_server_outage(
    mode: Annotated[str, OneOf(TOKEN_SERVER_MODES)] = "down",
    latency_ms: Annotated[int, AT_LEAST_ONE] = 2000,
    duration: FaultSeconds = 30,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Cut the token server off (``down``) or slow it (``slow``) for ``duration`` seconds.

    Arguments:
      mode: ``down`` (its path refused: a new token cannot be fetched; the fault counts as
        applied once a fresh client fails with ``auth-unavailable``) or ``slow`` (every token
        fetch delayed by ``latency_ms``).
      latency_ms: the delay for ``slow`` (>= 1); ignored for ``down``.
      duration: seconds until the token server is back by itself (required, > 0, at most
        3600).

    Returns the fault (see the module documentation). Raises ActivityFailed, with nothing
    changed, for an unknown mode, a bad latency or duration, the ``token-server`` hop outside
    ``configuration.allowed_hops``, or the kubernetes backend.
    """
    latency = latency_ms if mode == "slow" else 0
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    plan = backend_for(settings).auth_fault("token-server", {"mode": mode, "latency_ms": latency})
    return inject_plan(plan, seconds, settings)


@activity
def restore_token_server(
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``token_server_outage``: the token server's path back, verified by a
    fresh client getting a token the registry accepts. Idempotent (``count`` 0 when nothing
    was active).

    Returns a mapping: ``count`` and ``reverted`` (the faults, as the action returns them).
    """
    return revert_matching(settings_for(configuration), kind_prefix="auth.token-server-")


@activity
def rotate_token_key(
    target: Annotated[str, OneOf(("token-registry",))] = "token-registry",
    duration: FaultSeconds = 30,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Make the token-auth registry trust another signing certificate for ``duration`` seconds:
    every token, cached or fresh, is refused (401).

    Arguments:
      target: ``token-registry`` (the sandbox's registry-token).
      duration: seconds until the original key is trusted again by itself (required, > 0, at
        most 3600).

    Returns the fault (see the module documentation). Raises ActivityFailed, with nothing
    changed, for an unknown target, a bad duration, a rotation already active, or the
    kubernetes backend; and when the registry does not refuse tokens within 20 s (it is then
    undone).
    """
    if target != "token-registry":
        raise ConfigError(f"unknown token-key target {target!r} (known: token-registry)")
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    plan = backend_for(settings).auth_fault("token-key", {"target": target})
    return inject_plan(plan, seconds, settings)


@activity
def restore_token_key(
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``rotate_token_key``: the registry trusts the token server's key again,
    verified by a fresh token being accepted. Idempotent (``count`` 0 when nothing was active).

    Returns a mapping: ``count`` and ``reverted`` (the faults, as the action returns them).
    """
    return revert_matching(settings_for(configuration), kind_prefix="auth.token-key-")


@activity
def swap_credentials(
    target: Target = "registry",
    duration: FaultSeconds = 30,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Change the registry's credentials for ``duration`` seconds: its htpasswd holds the same
    user with a random password nobody is told, so basic auth is refused (401).

    Arguments:
      target: ``registry`` (the replicas behind nginx, ``registry`` and ``registry_direct``
        endpoints).
      duration: seconds until the original credentials work again by itself (required, > 0,
        at most 3600).

    Returns the fault (see the module documentation). Raises ActivityFailed, with nothing
    changed, for an unknown target, a bad duration, a swap already active, or the kubernetes
    backend; and when the original credentials still authenticate 20 s later (it is then
    undone).
    """
    if not isinstance(target, str) or not target:
        raise ConfigError("target must name a registry whose credentials change (registry)")
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    plan = backend_for(settings).auth_fault("credentials", {"target": target})
    return inject_plan(plan, seconds, settings)


@activity
def restore_credentials(
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``swap_credentials``: the original htpasswd back, verified by the
    original credentials authenticating. Idempotent (``count`` 0 when nothing was active).

    Returns a mapping: ``count`` and ``reverted`` (the faults, as the action returns them).
    """
    return revert_matching(settings_for(configuration), kind_prefix="auth.credentials-")
