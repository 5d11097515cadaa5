"""Certificate faults: a registry's TLS server serves a bad certificate, then its own again.

Pullers then fail their TLS handshake the way they would on the day a certificate expires,
a load balancer serves another site's certificate, or a CA is rotated without telling the
clients: error class ``tls`` with ``detail.reason`` ``expired``, ``hostname-mismatch`` or
``unknown-ca``. Like every fault it is written to the fault ledger before it is made, always
has a ``duration``, and is undone at its expiry, on the rollback (``restore_certificate``),
by ``chaosregistry rollback``, or at once if the process running the experiment dies.

Locally (the embedded sandbox) the target is one of nginx's TLS servers: ``registry`` (behind
the client-registry hop: what probes and loads pull from by default), ``registry-ratelimited``
(the 429 twin) or ``mirror-upstream`` (what the pull-through mirror fetches from). A fresh leaf
is issued into the sandbox's run dir and nginx is reloaded; the fault counts as applied only
once a TLS handshake sees the new certificate, and as reverted only once it sees the
sandbox's own certificate again (same SHA-256 fingerprint). The kubernetes backend refuses
certificate faults for now.
"""

from typing import Annotated

from chaosregistry.backends import CERTIFICATE_KINDS, backend_for
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import FaultSeconds, OneOf, RegistryTarget
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, revert_matching

__all__ = ["restore_certificate", "serve_bad_certificate"]

# On the local backend the certificate is served by the sandbox's nginx, whatever registry the
# configuration names: gameday starts a sandbox for these (``experiment.needs`` reads this).
SANDBOX_NEED = SandboxNeed("changes the certificate the sandbox's nginx serves")


@activity
def serve_bad_certificate(
    kind: Annotated[str, OneOf(CERTIFICATE_KINDS)] = "expired",
    target: Annotated[str, RegistryTarget()] = "registry",
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Make ``target``'s TLS server serve a bad certificate for ``duration`` seconds.

    Arguments:
      kind: ``expired`` (signed by the trusted CA, not_after a day ago), ``wrong-host``
        (trusted CA, SANs ``wrong-host.invalid`` / ``192.0.2.10`` only) or ``untrusted``
        (right host, valid dates, signed by another CA the clients do not trust).
      target: locally ``registry``, ``registry-ratelimited`` or ``mirror-upstream``;
        ``configuration.allowed_certificate_targets`` (a list) narrows the blast radius.
      duration: seconds until the certificate is restored by itself (required, > 0, at most
        3600).

    Returns the fault: ``fault_id``, ``kind`` (``certificate.<kind>``), ``target``
    (``tls:<target>``), ``state``, ``parameters``, ``applied`` ({``server``, ``url``,
    ``certificate`` {``subject``, ``issuer``, ``sans``, ``not_before``, ``not_after``,
    ``days_left``, ``fingerprint``} as served, ``original_fingerprint``, ``nginx_pid``,
    ``seconds_to_serve``}), ``injected_at``, ``expires_at``, ``expires_in``.

    Raises ActivityFailed, with nothing changed, for an unknown kind or target, a target
    outside the blast radius, a bad duration, a fault already active on the target, or the
    kubernetes backend; and when nginx does not serve the new certificate within 10 s (it is
    then undone).
    """
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    plan = backend_for(settings).certificate_fault(kind, target)
    return inject_plan(plan, seconds, settings)


@activity
def restore_certificate(
    target: Annotated[str, RegistryTarget()] = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``serve_bad_certificate``: serve the original certificate on ``target``
    again (every target if empty).

    Each fault is reverted only once a TLS handshake shows the original certificate (its
    fingerprint) is served again. Idempotent: with nothing to revert it returns ``count`` 0.

    Arguments:
      target: the TLS server whose certificate faults to revert (as ``serve_bad_certificate``
        names it); empty: every target.

    Returns a mapping: ``count`` and ``reverted`` (the faults, as ``serve_bad_certificate``
    returns them).
    """
    return revert_matching(
        settings_for(configuration),
        kind_prefix="certificate.",
        target=f"tls:{target}" if target else "",
    )
