"""Network faults on a named hop between pullers and the registry.

Hops are backend-neutral names: ``client-registry`` (pullers -> registry), ``client-mirror``
(pullers -> pull-through mirror), ``mirror-upstream`` (mirror -> its upstream registry) and
``sync-dr`` (replication -> the second site's registry, in a sandbox with ``--second-site``). The
backend (``configuration.backend``, default ``local``) decides how a fault is made: Toxiproxy
toxics locally. Every fault is written to the fault ledger before it is injected and always has a
``duration``: it ends then even if nothing else reverts it, and at once if the process that runs
the experiment dies. The undo partner is ``remove_network_faults``.

Each fault action returns a mapping: ``fault_id``, ``kind``, ``target`` (``hop:<name>``),
``state``, ``parameters``, ``applied`` (what the backend actually did), ``injected_at``,
``expires_at`` (epoch seconds) and ``expires_in`` (seconds).
"""

from typing import Annotated, Any

from chaosregistry.backends import backend_for
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import (
    Configuration,
    Result,
    Secrets,
    activity,
)
from chaosregistry.experiment.contracts import NON_NEGATIVE, FaultSeconds, OneOf, Range
from chaosregistry.experiment.needs import SandboxNeed, SecondSiteWhen
from chaosregistry.experiment.settings import settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, revert_matching
from chaosregistry.sandbox.layout import (
    HOP_CLIENT_MIRROR,
    HOP_CLIENT_REGISTRY,
    HOP_MIRROR_UPSTREAM,
    HOP_SYNC_DR,
    SECOND_SITE_HOPS,
)

PARTITION_MODES = ("blackhole", "refuse")
# The hops a network fault can name (the token server's own faults are in actions/auth.py).
NETWORK_HOPS = (HOP_CLIENT_REGISTRY, HOP_CLIENT_MIRROR, HOP_MIRROR_UPSTREAM, HOP_SYNC_DR)
Hop = Annotated[
    str, OneOf(NETWORK_HOPS), SecondSiteWhen(SECOND_SITE_HOPS, "faults the {value} hop")
]
# On the local backend a hop is the sandbox's unless the configuration names a Toxiproxy and
# its hops: gameday starts a sandbox for these otherwise (``experiment.needs`` reads this).
SANDBOX_NEED = SandboxNeed(
    "puts its fault on a sandbox hop", unless_configured=("toxiproxy_url", "hops")
)

__all__ = [
    "add_latency",
    "limit_bandwidth",
    "partition",
    "remove_network_faults",
    "reset_connections",
    "truncate_transfers",
]


def _network_fault(
    kind: str,
    hop: str,
    duration: float,
    parameters: dict[str, Any],
    configuration: Configuration | None,
) -> Result:
    seconds = check_duration(duration)
    if not isinstance(hop, str) or not hop:
        raise ConfigError(f"hop must name a hop ({', '.join(NETWORK_HOPS)})")
    # Backends whose faults end by themselves (Chaos Mesh) need the duration in the object.
    settings = settings_for(configuration)
    plan = backend_for(settings).network_fault(kind, hop, {**parameters, "duration": seconds})
    return inject_plan(plan, seconds, settings)


@activity
def add_latency(
    hop: Hop = "client-registry",
    latency_ms: Annotated[int, Range(1, unit="ms")] = 300,
    jitter_ms: Annotated[int, NON_NEGATIVE] = 0,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Delay traffic on a hop by ``latency_ms`` +- ``jitter_ms`` for ``duration`` seconds.

    Arguments:
      hop: the path to fault: client-registry, client-mirror, mirror-upstream or sync-dr (the
        second site's replication hop, which brings the second site up).
      latency_ms: added delay in milliseconds (>= 1), applied to the registry's responses.
      jitter_ms: random variation around it (>= 0, at most latency_ms).
      duration: seconds until the fault ends by itself (required, > 0, at most 3600).

    Returns the fault (see the module documentation). Raises ActivityFailed on bad arguments,
    an unknown hop or a hop outside ``configuration.allowed_hops``; nothing is injected then.
    """
    if (
        isinstance(jitter_ms, bool)
        or not isinstance(jitter_ms, int)
        or not 0 <= jitter_ms <= latency_ms
    ):
        raise ConfigError(
            f"jitter_ms must be a whole number from 0 to latency_ms, got {jitter_ms!r}"
        )
    return _network_fault(
        "network.latency",
        hop,
        duration,
        {"latency_ms": latency_ms, "jitter_ms": jitter_ms},
        configuration,
    )


@activity
def limit_bandwidth(
    hop: Hop = "client-registry",
    rate_kbps: Annotated[int, Range(1, unit="kB/s")] = 1024,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Cap the registry's responses on a hop at ``rate_kbps`` kilobytes per second.

    Arguments:
      hop: the path to fault: client-registry, client-mirror, mirror-upstream or sync-dr (the
        second site's replication hop, which brings the second site up).
      rate_kbps: kilobytes (1000 bytes) per second, >= 1.
      duration: seconds until the fault ends by itself (required, > 0).

    Returns the fault (see the module documentation). Raises ActivityFailed on bad arguments.
    """
    return _network_fault(
        "network.bandwidth", hop, duration, {"rate_kbps": rate_kbps}, configuration
    )


@activity
def partition(
    hop: Hop = "client-registry",
    duration: FaultSeconds = 30,
    mode: Annotated[str, OneOf(PARTITION_MODES)] = "blackhole",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Cut a hop: nothing gets through until the partition heals.

    Arguments:
      hop: the path to fault: client-registry, client-mirror, mirror-upstream or sync-dr (the
        second site's replication hop, which brings the second site up).
      duration: seconds until the partition heals by itself (required, > 0).
      mode: ``blackhole`` (packets vanish: connections hang and requests time out, like a
        firewall DROP or a dead route) or ``refuse`` (connections are refused or cut at once,
        like a firewall REJECT or a stopped load balancer).

    Returns the fault (see the module documentation). Raises ActivityFailed on bad arguments.
    """
    return _network_fault("network.partition", hop, duration, {"mode": mode}, configuration)


@activity
def reset_connections(
    hop: Hop = "client-registry",
    duration: FaultSeconds = 30,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Reset (TCP RST) every connection on a hop as soon as the registry answers.

    Arguments:
      hop: the path to fault: client-registry, client-mirror, mirror-upstream or sync-dr (the
        second site's replication hop, which brings the second site up).
      duration: seconds until the fault ends by itself (required, > 0).

    Returns the fault (see the module documentation). Raises ActivityFailed on bad arguments.
    """
    return _network_fault("network.reset", hop, duration, {}, configuration)


@activity
def truncate_transfers(
    hop: Hop = "client-registry",
    after_bytes: Annotated[int, Range(1, unit="bytes")] = 65536,
    duration: FaultSeconds = 30,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Close connections on a hop after ``after_bytes`` bytes: blob downloads arrive truncated.

    Arguments:
      hop: the path to fault: client-registry, client-mirror, mirror-upstream or sync-dr (the
        second site's replication hop, which brings the second site up).
      after_bytes: bytes let through per connection before it is closed (>= 1).
      duration: seconds until the fault ends by itself (required, > 0).

    Returns the fault (see the module documentation). Raises ActivityFailed on bad arguments.
    """
    return _network_fault(
        "network.truncate", hop, duration, {"after_bytes": after_bytes}, configuration
    )


@activity
def remove_network_faults(
    hop: Hop = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of every network fault: revert this run's active ones on ``hop``.

    With ``hop`` empty, this run's network faults on every hop.

    Only the faults of the run that calls it (the game day's run, else this ``chaos run``) are
    reverted: another run's faults on the same hop stay. Each fault is removed, verified gone,
    and only then marked reverted in the ledger. Idempotent: with nothing to revert it returns
    ``count`` 0.

    Arguments:
      hop: the hop whose faults to revert (a name the fault actions accept); empty: every hop.

    Returns a mapping: ``count`` and ``reverted`` (the faults, as the fault actions return them).
    """
    target = f"hop:{hop}" if hop else ""
    return revert_matching(settings_for(configuration), kind_prefix="network.", target=target)
