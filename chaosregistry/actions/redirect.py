"""Registry move faults: the registry's old name answers its API with redirects to a new host,
as k8s.gcr.io did to registry.k8s.io in 2023; then it serves again.

Like every fault it is written to the fault ledger before it is made, has a ``duration``, and
is undone at its expiry, on the rollback (``stop_registry_redirect``), by ``chaosregistry
rollback``, or at once if the process running the experiment dies; the undo returns only once
the old name serves the API itself again. Local backend (the sandbox's nginx, in front of the
replicas); on the kubernetes backend only with ``sandbox_dir`` naming the sandbox whose
registry the cluster's node pulls from (``node_pulls: origin``).
"""

from typing import Annotated

from chaosregistry.backends import backend_for
from chaosregistry.backends.local_redirect import STATUSES
from chaosregistry.backends.plan import REDIRECT_TARGET
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import FaultSeconds, OneOf
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, ledger_for, revert_matching

__all__ = ["redirect_registry", "stop_registry_redirect"]

# On the local backend these rewrite the embedded sandbox's nginx, whatever the configuration
# names: gameday starts one for them (``gameday.runner.sandbox_needs`` reads this).
SANDBOX_NEED = SandboxNeed("makes the sandbox's nginx redirect the registry's API")


@activity
def redirect_registry(
    status: Annotated[int, OneOf(STATUSES)] = 307,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Make the registry answer every API request with a redirect to a new host name, for
    ``duration`` seconds: the registry has moved, its old name sends clients on.

    nginx, in front of the replicas, answers each request under ``/v2/<name>/`` (manifests,
    blobs, tags, uploads; every method) with ``status`` and a ``Location`` on the new host,
    ``localhost`` instead of ``127.0.0.1``, same port, same path: the same registry and
    content under another name, as registry.k8s.io served k8s.gcr.io's images. ``/v2/``
    itself (the auth ping) keeps answering, as registry.k8s.io's does. What it shows is
    what each client does on the way: whether it follows, and whether it still
    authenticates on the new host (HTTP clients drop ``Authorization`` on a redirect to
    another host; the new host then asks for credentials of its own).

    Arguments:
      status: 307 (what registry.k8s.io answers, the default), 308, 301 or 302 (with 301
        and 302 a client may turn a push's POST into a GET).
      duration: seconds until the old name serves again by itself (> 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (``registry.redirect``), ``target``
    (``redirect:registry``), ``state``, ``parameters`` ({``status``, ``location``}),
    ``applied`` ({``url``, ``location``, ``snippet``, ``nginx_pid``, ``seconds_to_serve``}),
    ``injected_at``, ``expires_at``, ``expires_in``.

    Raises ActivityFailed, with nothing changed, for another status, a bad duration, a
    redirect fault already active, or the kubernetes backend without ``sandbox_dir``.
    """
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    if any(entry.target == REDIRECT_TARGET for entry in ledger_for(settings).active()):
        raise ConfigError("a redirect fault is already active: stop it first")
    return inject_plan(backend_for(settings).redirect_fault(status), seconds, settings)


@activity
def stop_registry_redirect(
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``redirect_registry``: the registry's old name serves its API again;
    reverted only once it does. Idempotent (``count`` 0 when nothing to revert). Returns a
    mapping: ``count`` and ``reverted`` (the faults, as ``redirect_registry`` returns
    them)."""
    return revert_matching(
        settings_for(configuration), kind_prefix="registry.redirect", target=REDIRECT_TARGET
    )
