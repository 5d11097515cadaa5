"""A minimal image updater: follow a tag by digest and point a Deployment at it.

A stand-in, for the test bed and for ``push_to_running(mode="observe")``, for the image
updaters users run (Flux's image automation, Keel, Argo CD Image Updater), none of which can be
built here. Like their digest strategies it polls the registry for one tag every ``interval``
seconds and, when the tag's manifest digest differs from the one the Deployment's container
pins, sets the container's image to ``name@<digest>`` (``kubectl set image``, through the
blast-radius guard, with the rollout's start annotated as our other releases are). It keeps
nothing of its own: the digest it compares with is the one in the pod template. Like theirs,
its delay is the poll interval plus a registry round trip (Argo CD Image Updater: 2 min by
default); unlike them it follows one tag of one Deployment and knows no version policy.

``chaosregistry tag-poller`` runs it in the foreground until SIGINT/SIGTERM.
"""

import threading
import time
from collections.abc import Callable
from typing import Any

from chaosregistry.backends.kubernetes_deploy import release_target, set_image
from chaosregistry.errors import ConfigError, PullError
from chaosregistry.experiment.settings import Settings
from chaosregistry.kubernetes import client as kube
from chaosregistry.kubernetes.rollout import image_digest, with_digest, with_tag
from chaosregistry.oci.reference import split_image_name

Say = Callable[[str], None]


def check_interval(interval: Any) -> float:
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise ConfigError(f"interval must be positive seconds, got {interval!r}")
    return float(interval)


def poll_once(
    settings: Settings,
    *,
    deployment: str,
    tag: str,
    container: str = "",
    namespace: str = "",
    target: str = "registry",
) -> dict[str, Any]:
    """One poll: the tag's digest on the registry, and the Deployment set to it if it differs.

    Returns {tag (``repository:tag``), digest (null when the tag does not exist yet), image
    (the container's image after the poll), updated (bool)}. Raises ConfigError for an
    unknown Deployment or container, a bad tag or a target outside the blast radius.
    """
    with_tag("name", tag)  # a bad tag: one line, nothing asked
    kubernetes = settings.kubernetes
    chosen = kubernetes.namespace_or(namespace)
    _, _, _, name, current = release_target(
        kubernetes, deployment=deployment, namespace=chosen, container=container
    )
    repository = split_image_name(current)[1].repository
    followed = f"{repository}:{tag}"
    registry = settings.registry.resolve(None, target)
    with registry.client(max_connections=1) as client:
        try:
            digest: str | None = client.get_manifest(repository, tag).digest
        except PullError as exc:
            if exc.status != 404:
                raise
            digest = None
    if digest is None or image_digest(current) == digest:
        return {"tag": followed, "digest": digest, "image": current, "updated": False}
    image = with_digest(current, digest)
    set_image(kubernetes, deployment=deployment, namespace=chosen, container=name, image=image)
    return {"tag": followed, "digest": digest, "image": image, "updated": True}


def run(
    settings: Settings,
    *,
    deployment: str,
    tag: str,
    interval: float = 2.0,
    container: str = "",
    namespace: str = "",
    target: str = "registry",
    stop: threading.Event | None = None,
    say: Say = print,
) -> int:
    """Poll every ``interval`` seconds until ``stop`` is set; returns how many updates it made.

    A poll that fails (registry or API server unreachable, the Deployment changed under the
    patch) is said in one line and tried again at the next tick, as an updater does. Bad
    arguments fail at once (ConfigError), before the first poll.
    """
    seconds = check_interval(interval)
    stop = stop or threading.Event()
    with_tag("name", tag)  # a bad tag is refused before the first poll
    updates = 0
    while not stop.is_set():
        began = time.monotonic()
        try:
            result = poll_once(
                settings,
                deployment=deployment,
                tag=tag,
                container=container,
                namespace=namespace,
                target=target,
            )
        except (PullError, kube.KubeError) as exc:
            say(f"tag-poller: poll failed, trying again in {seconds:g} s: {exc}")
        else:
            if result["updated"]:
                updates += 1
                say(f"tag-poller: {result['tag']} is {result['digest']}: set {result['image']}")
        stop.wait(max(0.0, seconds - (time.monotonic() - began)))
    return updates
