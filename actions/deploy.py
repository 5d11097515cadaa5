"""Deployment faults (kubernetes backend): ship a bad image tag, and roll it back.

``deploy_bad_tag`` points one container of a Deployment at an image that cannot be pulled, the
way a broken release does. Before the patch, the original image is written to the fault ledger
(with the Deployment's revision) and to the annotation ``chaosregistry.io/original-image`` on the
Deployment. The undo is the equivalent of ``kubectl rollout undo``: the pod template of the
revision before the fault is restored. It runs on the experiment's rollback
(``rollback_deployment``), when ``duration`` is up, or at once if ``chaos run`` dies, by the
watchdog. The expiry and the undo are also written on the Deployment: with the watchdog and the
ledger both gone, the next of our Kubernetes actions or ``chaosregistry cluster status`` reverts
an expired bad tag (``kubernetes_deploy.revert_expired_bad_tags``). Every call first passes the
blast-radius guard (see ``chaosregistry.backends.kubernetes``); with ``configuration.dry_run``
it only logs the patches.
"""

from chaosregistry.activity import Configuration, Result, Secrets, activity
from chaosregistry.backends.kubernetes_deploy import bad_tag_plan, restart, sweep
from chaosregistry.errors import ConfigError
from chaosregistry.injection import check_duration, inject_plan, revert_matching
from chaosregistry.settings import settings_for

__all__ = ["deploy_bad_tag", "restart_rollout", "rollback_deployment"]


@activity
def deploy_bad_tag(
    deployment: str,
    container: str = "",
    image: str = "",
    tag: str = "does-not-exist",
    namespace: str = "",
    duration: float = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Roll out an image that cannot be pulled to a Deployment; undone after ``duration``.

    Arguments:
      deployment: the Deployment's name.
      container: the container to change; may be empty when the pod has only one.
      image: the full bad image to set; when empty, the current image with ``tag`` instead.
      tag: the tag that does not exist (used when ``image`` is empty).
      namespace: the Deployment's namespace (default ``configuration.namespace``); it must be
        labelled ``chaosregistry.io/chaos=enabled`` and is never kube-system or kube-public.
      duration: seconds until the rollout is undone by itself (required, > 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (deploy.bad-tag), ``target``
    (``deployment:<namespace>/<name>``), ``state``, ``parameters`` (container,
    ``original_image``, ``image``, ``revision``...), ``applied`` ({image, original_image,
    generation, rollout_started_at}), ``injected_at``, ``expires_at``, ``expires_in``. In dry-run
    mode: ``dry_run`` true and ``would_apply`` (the patches), nothing changed. Raises
    ActivityFailed (one line, nothing changed) for an unknown Deployment or container, a bad
    duration, or a target outside the blast radius.
    """
    seconds = check_duration(duration)
    if not isinstance(deployment, str) or not deployment:
        raise ConfigError("deployment must name a Deployment")
    if image and tag != "does-not-exist":
        raise ConfigError("give image or tag, not both")
    settings = settings_for(configuration)
    sweep(settings.kubernetes)
    plan, intent = bad_tag_plan(
        settings.kubernetes,
        deployment=deployment,
        container=container,
        image=image,
        tag=tag,
        namespace=namespace,
        duration=seconds,
    )
    if plan is None:
        return intent
    return inject_plan(plan, seconds, settings)


@activity
def rollback_deployment(
    deployment: str = "",
    namespace: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``deploy_bad_tag``: roll back the Deployments it changed.

    Arguments:
      deployment: only this Deployment (all when empty).
      namespace: its namespace (default ``configuration.namespace``).

    Each Deployment gets the pod template of its revision before the fault (as
    ``kubectl rollout undo``); its fault is marked reverted once the Deployment runs the
    original image again. Idempotent. Returns ``count`` and ``reverted``.
    """
    settings = settings_for(configuration)
    sweep(settings.kubernetes)
    target = ""
    if deployment:
        target = f"deployment:{settings.kubernetes.namespace_or(namespace)}/{deployment}"
    return revert_matching(settings, kind_prefix="deploy.", target=target)


@activity
def restart_rollout(
    deployment: str,
    namespace: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Start a rollout that replaces every pod of a Deployment (``kubectl rollout restart``).

    Not a fault: the new pods are the same as the old ones, so there is nothing to undo and
    nothing is written to the fault ledger. It makes the nodes pull the image again, so a
    rollout can be timed (``rollout_time``) with and without a fault on the registry. It passes
    the blast-radius guard first and only logs the patch in dry-run mode.

    Arguments:
      deployment: the Deployment's name.
      namespace: its namespace (default ``configuration.namespace``).

    Returns a mapping: ``deployment``, ``namespace``, ``pods`` (before the restart),
    ``rollout_started_at`` (epoch seconds, also written to the annotation
    ``chaosregistry.io/rollout-started-at`` for ``rollout_time``) and ``generation``.
    Raises ActivityFailed for an unknown Deployment or a target outside the blast radius.
    """
    if not isinstance(deployment, str) or not deployment:
        raise ConfigError("deployment must name a Deployment")
    settings = settings_for(configuration).kubernetes
    sweep(settings)
    return restart(settings, deployment=deployment, namespace=namespace)
