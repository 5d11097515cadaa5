"""Whether the registry takes a push, and how long it took: a push's outcome as data.

A pipeline's push is the write path of the delivery path; when the registry refuses writes
(read-only, quota, auth) this says how, the way the pull probes say how a pull failed.
``push_outcome`` pushes one small image of its own (new content under a unique tag, as
``replication_lag`` does): a write, on purpose, named in docs/architecture.md's "Where probes
may write". A refused push changes nothing.
"""

import secrets as _random
import time
from typing import Annotated

from chaosregistry.errors import PullError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import REPOSITORY, ResultKind, Returns, Target
from chaosregistry.experiment.settings import settings_for
from chaosregistry.oci.reference import ImageReference
from chaosregistry.sandbox.content import catalog_entries
from chaosregistry.sandbox.seed import push_content, unique_image

__all__ = ["push_outcome"]


@activity
def push_outcome(
    repository: Annotated[str, REPOSITORY] = "chaosregistry-probe/push",
    target: Target = "registry",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result, Returns("ok status seconds image registry digest error", kind=ResultKind.PUSH)
]:
    """Push one small image (64 KiB of new content, a unique tag) and report whether the
    registry took it.

    Arguments:
      repository: where to push (the tag is ``push-<epoch ms>-<random>``).
      target: ``registry`` (see chaosregistry.experiment.settings) or a URL.

    Returns a mapping: ``ok`` (bool), ``status`` (the HTTP status of the last answer: 201 when
    the manifest was stored, else the refusal's, e.g. 405 from a read-only Distribution; null
    when no answer came), ``seconds``, ``image``, ``registry``, ``digest`` (null when
    refused), ``error`` (null, or {``class``, ``message``, ``status``, ``detail``}, classes as
    the pull probes'). Raises ActivityFailed on bad arguments, never for a refused push.
    """
    ImageReference.parse(f"{repository}:x")  # validates the name
    tag = f"push-{int(time.time() * 1000)}-{_random.token_hex(3)}"
    registry = settings_for(configuration).registry.resolve(secrets, target)
    image = unique_image(repository, tag)
    started = time.perf_counter()
    error: PullError | None = None
    with registry.client(max_connections=2) as client:
        try:
            push_content(client, image, lambda _: None)
        except PullError as exc:
            error = exc
    seconds = round(time.perf_counter() - started, 4)
    return {
        "ok": error is None,
        "status": 201 if error is None else error.status,
        "seconds": seconds,
        "image": f"{repository}:{tag}",
        "registry": registry.url,
        "digest": catalog_entries(image)[0]["digest"] if error is None else None,
        "error": error.as_dict() if error is not None else None,
    }
