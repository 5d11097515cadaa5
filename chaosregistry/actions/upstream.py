"""Pull-through cache faults: the mirror's upstream answers 429 or 503 instead of vanishing;
then it serves again.

A pull-through cache (Distribution's proxy mode, Harbor's proxy projects) meets its upstream
refusing rather than gone when Docker Hub rate-limits it (429 with ``ratelimit-*`` and
``retry-after`` headers) or the upstream is overloaded (503). A cache that is honest about what
it holds keeps serving it; one that asks the upstream first and passes its error on fails
cached pulls too (Harbor issues #19257, #18270, #14822). Pull through the mirror during the
fault (``chaosregistry.probes.pull`` with ``target: mirror``) to see which it is: the findings
on the sandbox's mirrors are in docs/findings.md and experiments/mirror-upstream-throttled.yaml;
what a release on a node pulling through that mirror does, in
experiments/mirror-upstream-throttled-rollout.yaml.

Like every fault it is written to the fault ledger before it is made, has a ``duration``, and
is undone at its expiry, on the rollback (``restore_mirror_upstream``), by ``chaosregistry
rollback``, or at once if the process running the experiment dies; the undo returns only once
the upstream answers from the registry again. Local backend (the sandbox's nginx, in front of
the mirror's remote); on the kubernetes backend only with ``sandbox_dir`` naming the sandbox
whose mirror the cluster's node pulls through.
"""

from typing import Annotated

from chaosregistry.backends import backend_for
from chaosregistry.backends.local_upstream import STATUSES
from chaosregistry.backends.plan import MIRROR_UPSTREAM_TARGET
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import FaultSeconds, OneOf, Range
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, ledger_for, revert_matching

__all__ = ["restore_mirror_upstream", "throttle_mirror_upstream"]

# On the local backend these rewrite the embedded sandbox's nginx, whatever the configuration
# names: gameday starts one for them (``gameday.runner.sandbox_needs`` reads this).
SANDBOX_NEED = SandboxNeed("makes the sandbox's nginx answer for the mirror's upstream")


@activity
def throttle_mirror_upstream(
    status: Annotated[int, OneOf(STATUSES)] = 429,
    retry_after: Annotated[int, Range(0, 86400, unit="seconds")] = 60,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Make the pull-through mirror's upstream answer ``status`` for ``duration`` seconds.

    Every manifest and blob request of the mirror to its remote (GET and HEAD, by tag and by
    digest) is answered by nginx with ``status``, before the registry is asked; ``/v2/`` (the
    mirror's auth ping) and the token realm keep answering. A 429 is Docker Hub's: headers
    ``ratelimit-limit: 100;w=21600``, ``ratelimit-remaining: 0;w=21600``, ``retry-after``, error
    code ``TOOMANYREQUESTS``. A 503 carries ``retry-after`` and ``UNAVAILABLE``. Clients still
    reach the mirror itself: what they get is what the mirror does with its upstream's refusal.

    Arguments:
      status: 429 (rate limited) or 503 (unavailable).
      retry_after: the ``retry-after`` header's seconds (0-86400).
      duration: seconds until the upstream serves again by itself (> 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (``mirror.upstream-status``), ``target``
    (``upstream:mirror``), ``state``, ``parameters`` ({``status``, ``retry_after``}),
    ``applied`` ({``url``, ``status``, ``headers``, ``snippet``, ``nginx_pid``,
    ``seconds_to_serve``}), ``injected_at``, ``expires_at``, ``expires_in``.

    Raises ActivityFailed, with nothing changed, for another status, a bad ``retry_after`` or
    duration, a mirror-upstream fault already active, or the kubernetes backend without
    ``sandbox_dir``.
    """
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    if any(entry.target == MIRROR_UPSTREAM_TARGET for entry in ledger_for(settings).active()):
        raise ConfigError("a mirror-upstream fault is already active: restore it first")
    plan = backend_for(settings).upstream_fault(status, retry_after)
    return inject_plan(plan, seconds, settings)


@activity
def restore_mirror_upstream(
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``throttle_mirror_upstream``: the mirror's upstream answers from the
    registry again; reverted only once it answers without the fault. Idempotent (``count`` 0
    when nothing to revert). Returns a mapping: ``count`` and ``reverted`` (the faults, as
    ``throttle_mirror_upstream`` returns them)."""
    return revert_matching(
        settings_for(configuration), kind_prefix="mirror.upstream", target=MIRROR_UPSTREAM_TARGET
    )
