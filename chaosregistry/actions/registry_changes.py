"""Registry changes: a tag deleted (the 2025 Bitnami move), the registry switched read-only
(Quay's 2020 read-only incident, Distribution's ``storage.maintenance.readonly``); then put back.

What clients meet: a pull of the deleted tag fails ``not-found`` (404 ``MANIFEST_UNKNOWN``), by
digest it still pulls; a kubelet rolling out the tag reports ``ErrImagePull`` ("not found").
While read-only, pulls keep working and every write (a push's blob upload, a manifest, a
delete) is refused ``405 Method Not Allowed`` (``Allow: GET, HEAD``).

Like every fault these are written to the fault ledger before they are made, have a
``duration``, and are undone at expiry, on the rollback (``restore_tag``,
``restore_registry_writes``), by ``chaosregistry rollback``, or at once if the process running
the experiment dies; each undo returns only once it has seen the change gone. Local backend
(the sandbox's registry, ``chaosregistry.backends.local_registry_changes`` says how); on the
kubernetes backend only with ``sandbox_dir`` naming the sandbox whose registry the cluster's
node pulls from.
"""

from chaosregistry.backends import backend_for
from chaosregistry.backends.plan import READ_ONLY_TARGET
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import FaultSeconds, Image
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, ledger_for, revert_matching
from chaosregistry.oci.reference import ImageReference

__all__ = ["delete_tag", "restore_registry_writes", "restore_tag", "set_registry_read_only"]

# On the local backend these change the sandbox's registry itself, whatever the configuration
# names: gameday starts one for them (``gameday.runner.sandbox_needs`` reads this).
SANDBOX_NEED = SandboxNeed("changes the sandbox's registry (its tags, its configuration)")

TAG_KIND = "registry.tag-deleted"
READ_ONLY_KIND = "registry.read-only"


@activity
def delete_tag(
    image: Image,
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Delete tag ``image`` from the registry for ``duration`` seconds, then push it back.

    Only the tag goes: the manifest it named stays (pullable by digest), and so do other tags
    of the same digest. Its manifest's exact bytes and media type are saved in the fault's
    undo first, so the tag comes back at the same digest.

    Arguments:
      image: ``repository:tag`` of the registry (not a digest).
      duration: seconds until the tag is pushed back by itself (> 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (``registry.tag-deleted``), ``target``
    (``image:<image>``), ``state``, ``parameters`` ({``image``}), ``applied`` ({``url``,
    ``replicas``, ``digest``, ``media_type``, ``deleted_by``: ``api`` or ``storage`` (on
    Distribution 2.8, which has no delete-by-tag API)}), ``injected_at``, ``expires_at``,
    ``expires_in``.

    Raises ActivityFailed, with nothing changed, for a tag that does not exist, a digest, a bad
    duration, a fault already active on the image, or the kubernetes backend without
    ``sandbox_dir``.
    """
    reference = ImageReference.parse(image)
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    target = f"image:{reference}"
    for entry in ledger_for(settings).active():
        if entry.target == target:
            raise ConfigError(f"a fault ({entry.kind}) is already active on {reference}")
    return inject_plan(backend_for(settings).tag_fault(str(reference)), seconds, settings)


@activity
def restore_tag(
    image: Image = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``delete_tag``: push ``image``'s saved manifest back under its tag
    (every deleted tag's if empty); reverted only once the registry serves the tag at its
    original digest. Idempotent (``count`` 0 when nothing to revert). Returns a mapping:
    ``count`` and ``reverted`` (the faults, as ``delete_tag`` returns them)."""
    target = f"image:{ImageReference.parse(image)}" if image else ""
    return revert_matching(settings_for(configuration), kind_prefix=TAG_KIND, target=target)


@activity
def set_registry_read_only(
    duration: FaultSeconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Switch the registry read-only for ``duration`` seconds (Distribution's
    ``storage.maintenance.readonly``): pulls keep working, every write is refused.

    Each Distribution process on the registry's storage is restarted, one at a time (pulls go
    to the ones still up), with ``readonly`` on; it then answers every push, manifest PUT and
    delete ``405 Method Not Allowed`` with ``Allow: GET, HEAD`` (what 2.8 and 3.x answer).
    Needs Distribution (the sandbox's ``distribution-2`` or ``distribution-3``).

    Arguments:
      duration: seconds until writes are accepted again by themselves (> 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (``registry.read-only``), ``target``
    (``read-only:registry``), ``state``, ``parameters``, ``applied`` ({``url``,
    ``processes``, ``restart_seconds`` {process: s}, ``write_answers`` {process: 405}}),
    ``injected_at``, ``expires_at``, ``expires_in``.

    Raises ActivityFailed, with nothing changed, for a registry that is read-only already or
    has a process down, a registry implementation without a read-only mode (ggcr), a bad
    duration, or the kubernetes backend without ``sandbox_dir``.
    """
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    if any(entry.target == READ_ONLY_TARGET for entry in ledger_for(settings).active()):
        raise ConfigError("a read-only fault is already active: restore writes first")
    return inject_plan(backend_for(settings).read_only_fault(), seconds, settings)


@activity
def restore_registry_writes(
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``set_registry_read_only``: the registry accepts writes again; reverted
    only once each of its processes accepts one. Idempotent (``count`` 0 when nothing to
    revert). Returns a mapping: ``count`` and ``reverted`` (the faults, as
    ``set_registry_read_only`` returns them)."""
    return revert_matching(
        settings_for(configuration), kind_prefix=READ_ONLY_KIND, target=READ_ONLY_TARGET
    )
