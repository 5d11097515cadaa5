"""Signature faults: a signed image's signature is tampered with or deleted, or its tag is
pointed at an unsigned image; then the registry content is put back.

What a deploy-time verifier (cosign, a policy controller) meets when a registry's content is
changed under it: ``image_signature`` (chaosregistry.probes.signature) reports ``invalid``
(tampered) or ``unsigned`` (deleted, re-pointed), and a steady state of "every deployed image
verifies" catches it. Like every fault it is written to the fault ledger before it is made,
has a ``duration``, and is undone at its expiry, on the rollback (``restore_signatures``), by
``chaosregistry rollback``, or at once if the process running the experiment dies; the undo
returns only once every replica serves the original manifests again. ``break_referrers``
makes the registry's referrers API (where bundle signatures are found) answer an error instead.
Local backend (the sandbox) only.
"""

from typing import Annotated

from chaosregistry.backends import backend_for
from chaosregistry.backends.local_referrers import STATUSES
from chaosregistry.backends.plan import REFERRERS_TARGET
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import FaultSeconds, Image, OneOf
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, ledger_for, revert_matching
from chaosregistry.oci.reference import ImageReference

__all__ = [
    "break_referrers",
    "delete_signature",
    "restore_referrers",
    "restore_signatures",
    "retag_unsigned",
    "tamper_signature",
]

# On the local backend these change the sandbox itself, whatever registry the configuration
# names: gameday starts a sandbox for them (``experiment.needs`` reads this).
SANDBOX_NEED = SandboxNeed("changes what the sandbox serves for a signed image")


def _inject(
    kind: str, image: str, duration: float, configuration: Configuration | None, source: str = ""
) -> Result:
    reference = ImageReference.parse(image)
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    target = f"image:{reference}"
    for entry in ledger_for(settings).active():
        if entry.target == target and entry.kind.startswith("signature."):
            raise ConfigError(
                f"a signature fault ({entry.kind}) is already active on {reference}: restore it "
                "first"
            )
    plan = backend_for(settings).signature_fault(kind, str(reference), source)
    return inject_plan(plan, seconds, settings)


@activity
def tamper_signature(
    image: Image,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Replace ``image``'s cosign signature with a tampered one for ``duration`` seconds.

    The ``.sig`` manifest is replaced by one whose payload vouches for another digest, the
    original signature bytes kept: the forgery a verifier must refuse (``image_signature``
    says ``invalid``; ``cosign verify`` fails).

    Arguments:
      image: a signed image, ``repository:tag``.
      duration: seconds until the signature is restored by itself (> 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (``signature.tamper``), ``target``
    (``image:<image>``), ``state``, ``parameters``, ``applied`` ({``replicas``,
    ``original_digest``, ``signature_tag``, ``original_signature_digest``,
    ``tampered_signature_digest``}), ``injected_at``, ``expires_at``, ``expires_in``.

    Raises ActivityFailed, with nothing changed, for an image that does not exist or is not
    signed, a digest reference, a bad duration, a signature fault already active on the image,
    or the kubernetes backend.
    """
    return _inject("tamper", image, duration, configuration)


@activity
def delete_signature(
    image: Image,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Delete ``image``'s cosign signature (its ``sha256-<hex>.sig`` tag) for ``duration`` s.

    ``image_signature`` then says ``unsigned``. Result (``kind`` ``signature.delete``) and
    refusals as for ``tamper_signature``.

    Arguments:
      image: a signed image of the sandbox (``repository:tag``).
      duration: seconds until the signature is back by itself (> 0, at most 3600).
    """
    return _inject("delete", image, duration, configuration)


@activity
def retag_unsigned(
    image: Image,
    source: Image,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Point ``image``'s tag (a signed image) at ``source``, an unsigned image of the same
    repository, for ``duration`` seconds: someone pushed an unsigned build over a release tag.

    ``image_signature`` on the tag then says ``unsigned`` (its new digest has no signature).
    The result's ``applied`` also has ``now_digest`` (source's). Refused, with nothing
    changed, also when ``source`` is in another repository, does not exist or is signed.

    Arguments:
      image: the signed image whose tag moves (``repository:tag``).
      source: the unsigned image of the same repository the tag then points at.
      duration: seconds until the tag points at the signed image again by itself (> 0, at
        most 3600).
    """
    return _inject("unsigned-image", image, duration, configuration, source)


@activity
def restore_signatures(
    image: Image = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of the signature faults: put ``image``'s manifests back (every image's if
    empty); each fault is reverted only once every replica serves the originals again.

    Idempotent: with nothing to revert it returns ``count`` 0. Returns a mapping: ``count``
    and ``reverted`` (the faults, as the faults' actions return them).

    Arguments:
      image: the image whose signature faults to revert (``repository:tag``); empty: every
        image's.
    """
    target = f"image:{ImageReference.parse(image)}" if image else ""
    return revert_matching(settings_for(configuration), kind_prefix="signature.", target=target)


@activity
def break_referrers(
    status: Annotated[int, OneOf(STATUSES)] = 500,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Make the registry's OCI referrers API answer ``status`` for ``duration`` seconds.

    nginx, in front of the replicas, answers ``GET /v2/<name>/referrers/<digest>`` itself; the
    rest of the API is untouched. A 404 says "no referrers API" (clients fall back to the
    referrers tag, ``sha256-<hex>``: on a registry that has the API, ggcr, bundle-signed
    images then look unsigned); a 5xx is a failure, with no fallback (cosign finds no
    signature of a bundle-signed image; ``image_signature`` reports ``referrers.outcome``
    ``failed``, classified, and a null verdict for it). Legacy ``.sig`` signatures still
    verify.

    Arguments:
      status: 404, 500, 502 or 503.
      duration: seconds until the API is passed on again by itself (> 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (``signature.referrers``), ``target``
    (``referrers:registry``), ``state``, ``parameters``, ``applied`` ({``url``, ``status``,
    ``snippet``, ``nginx_pid``, ``seconds_to_serve``}), ``injected_at``, ``expires_at``,
    ``expires_in``.

    Raises ActivityFailed, with nothing changed, for another status, a bad duration, a
    referrers fault already active, or the kubernetes backend.
    """
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    if any(entry.target == REFERRERS_TARGET for entry in ledger_for(settings).active()):
        raise ConfigError("a referrers fault is already active: restore it first")
    return inject_plan(backend_for(settings).referrers_fault(status), seconds, settings)


@activity
def restore_referrers(
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``break_referrers``: nginx passes the referrers API on again; reverted
    only once it answers without the fault. Idempotent (``count`` 0 when nothing to revert).
    Returns a mapping: ``count`` and ``reverted`` (the faults, as ``break_referrers`` returns
    them)."""
    return revert_matching(
        settings_for(configuration), kind_prefix="signature.referrers", target=REFERRERS_TARGET
    )
