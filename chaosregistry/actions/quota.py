"""Registry quota faults: the registry rate-limits manifest requests per client address, as
Docker Hub does; then it stops counting.

What a cluster behind one address meets under Docker Hub's pull limit: every node's manifest
requests (HEAD included: containerd's first request of a pull is a HEAD of the tag) share one
quota, and past it the registry answers 429 with ``ratelimit-limit``, ``ratelimit-remaining:
0`` and ``retry-after``. Blobs are not counted: a pull whose manifest passed completes.

Like every fault it is written to the fault ledger before it is made, has a ``duration``, and
is undone at its expiry, on the rollback (``lift_pull_quota``), by ``chaosregistry
rollback``, or at once if the process running the experiment dies; the undo returns only once
nginx passes manifest requests on uncounted again. Local backend (the sandbox's nginx, in front
of the replicas); on the kubernetes backend only with ``sandbox_dir`` naming the sandbox whose
registry the cluster's node pulls from (``node_pulls: origin``).
"""

from typing import Annotated

from chaosregistry.backends import backend_for
from chaosregistry.backends.local_quota import MAX_WINDOW
from chaosregistry.backends.plan import QUOTA_TARGET
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import AT_LEAST_ONE, FaultSeconds, Range
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, ledger_for, revert_matching

__all__ = ["impose_pull_quota", "lift_pull_quota"]

# On the local backend these rewrite the embedded sandbox's nginx, whatever the configuration
# names: gameday starts one for them (``gameday.runner.sandbox_needs`` reads this).
SANDBOX_NEED = SandboxNeed("makes the sandbox's nginx count manifest requests")


@activity
def impose_pull_quota(
    requests: Annotated[int, AT_LEAST_ONE] = 10,
    window: Annotated[int, Range(1, MAX_WINDOW, unit="seconds")] = 60,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Give each client address a quota of ``requests`` manifest requests per ``window``
    seconds on the registry, for ``duration`` seconds; past it, 429 as Docker Hub answers.

    nginx, in front of the replicas, counts ``GET`` and ``HEAD`` of
    ``/v2/<name>/manifests/<reference>`` (by tag and by digest) per client address; blobs and
    the rest of the API are not counted. The first ``requests`` pass at once; then the quota
    refills continuously (nginx's leaky bucket: one more request every ``window / requests``
    seconds), not all at once at the end of a window. Each 429 carries ``ratelimit-limit:
    <requests>;w=<window>``, ``ratelimit-remaining: 0;w=<window>``, ``retry-after`` (seconds
    until one more request passes) and the error code ``TOOMANYREQUESTS``. Every sandbox
    client is 127.0.0.1: one quota for all of them, as for a cluster behind one NAT address.

    Arguments:
      requests: manifest requests allowed per window (>= 1).
      window: the window in seconds; ``requests`` per ``window`` must be a whole number per
        minute (nginx's finest rate), e.g. 10 per 60, 5 per 30, 100 per 600.
      duration: seconds until the quota is lifted by itself (> 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (``registry.quota``), ``target``
    (``quota:registry``), ``state``, ``parameters`` ({``requests``, ``window``}), ``applied``
    ({``url``, ``headers``, ``snippet``, ``nginx_pid``, ``seconds_to_serve``}),
    ``injected_at``, ``expires_at``, ``expires_in``.

    Raises ActivityFailed, with nothing changed, for a rate that is not a whole number per
    minute, a bad duration, a quota fault already active, or the kubernetes backend without
    ``sandbox_dir``.
    """
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    if any(entry.target == QUOTA_TARGET for entry in ledger_for(settings).active()):
        raise ConfigError("a quota fault is already active: lift it first")
    return inject_plan(backend_for(settings).quota_fault(requests, window), seconds, settings)


@activity
def lift_pull_quota(
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``impose_pull_quota``: nginx stops counting manifest requests; reverted
    only once it passes them on uncounted. Idempotent (``count`` 0 when nothing to revert).
    Returns a mapping: ``count`` and ``reverted`` (the faults, as ``impose_pull_quota`` returns
    them)."""
    return revert_matching(
        settings_for(configuration), kind_prefix="registry.quota", target=QUOTA_TARGET
    )
