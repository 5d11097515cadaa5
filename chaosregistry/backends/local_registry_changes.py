"""The local backend's registry changes: a tag deleted, and the registry switched read-only.

**A tag deleted** (``registry.tag-deleted``, as when Bitnami moved its images in 2025): before
anything changes, the tag's manifest (its exact bytes and media type) is read and stored in the
undo; the tag is then deleted on each replica that has a storage of its own (one for
Distribution, every ggcr node), and the fault counts as applied once none serves it. Only the
tag goes: the manifest stays reachable by digest, as do other tags of the same digest.
Distribution 3 and ggcr delete a tag through the API (``DELETE /v2/<name>/manifests/<tag>``,
202); Distribution 2.8 has no such API (it answers that DELETE 400 ``DIGEST_INVALID``, and a
DELETE by digest would take the manifest and every tag of it), so on 2.8 the tag's link
directory is removed from the shared storage: what 3.x's DELETE by tag does
(``tagStore.Untag``). The undo (``registry.restore-manifests``, shared with the signature
faults) pushes the saved bytes under the tag again and returns once each replica serves the
tag at its original digest.

**Read-only** (``registry.read-only``, Distribution's ``storage.maintenance.readonly``, as Quay
went read-only in 2020): the replicas and the token registry (every Distribution on the
registry's storage) are restarted one at a time with ``readonly: {enabled: true}`` in their
configuration. Distribution reads its configuration once, so a restart is the only way in; one
at a time, the next replica only once nginx passes requests to the restarted one again, so
nginx always has a replica to pass each pull to, and a replica told to stop finishes the blobs it
is serving first (``http.draintimeout``, sandbox/configs.py; without it a blob was once cut
short). Measured: no pull failed during the switch.
We restart the real registry rather than have nginx imitate it: the answer is then Distribution's
own, whatever its version says (2.8 and 3.1.2: ``405 Method Not Allowed``, ``Allow: GET,
HEAD``, a plain-text body ``Method not allowed``, no registry error code), and a restart takes
under a second a process. The fault counts as applied once each of them refuses a write (a
blob mount, which starts nothing when refused); the undo writes the configuration back as
``sandbox up`` wrote it, restarts each one still read-only, and returns once each accepts a
write again (the mount's upload is cancelled). ggcr has no read-only mode: refused.
"""

import contextlib
import re
import shutil
import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from chaosregistry.backends.local_signatures import (
    RESTORE,
    replica_client,
    replica_urls,
    saved_manifest,
    serves,
)
from chaosregistry.backends.plan import READ_ONLY_TARGET, FaultPlan, confirmed
from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.faults.undo import UndoError, string_param, undo_handler
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.blobs import sha256_digest
from chaosregistry.oci.reference import ImageReference
from chaosregistry.sandbox import load_credentials, load_endpoints, start_process, stop_process
from chaosregistry.sandbox.configs import REPLICA_FAIL_TIMEOUT, is_read_only, set_read_only
from chaosregistry.sandbox.implementations import implementation
from chaosregistry.sandbox.layout import Layout
from chaosregistry.sandbox.processes import running_pid

READ_ONLY_RESTORE = "sandbox.read-only-restore"
# The Distribution process on the registry's storage besides the replicas.
TOKEN_REGISTRY = "registry-token"
# Where the write check mounts a blob that exists nowhere: a refused mount changes nothing, an
# accepted one starts an upload that is cancelled at once.
PROBE_REPOSITORY = "chaosregistry/read-only-probe"
PROBE_DIGEST = sha256_digest(b"chaosregistry read-only probe")
# The refusal Distribution's read-only mode answers every write with.
READ_ONLY_STATUS = 405
# How long a restarted replica may take to get requests from nginx again: nginx's fail_timeout
# after the failures its stop caused, with room for a loaded machine.
NGINX_RETURN_TIMEOUT = REPLICA_FAIL_TIMEOUT + 10.0


# -- a tag deleted --------------------------------------------------------------------------------
def tag_plan(run_dir: Path, image: str) -> FaultPlan:
    """The plan for ``registry.tag-deleted``: ``image`` (``repository:tag``) stops existing."""
    reference = ImageReference.parse(image)
    if reference.is_digest:
        raise ConfigError(f"image {image!r}: name a tag (a digest is not a tag)")
    repository, tag = reference.repository, reference.reference
    endpoints = load_endpoints(run_dir)
    urls = replica_urls(run_dir)
    with replica_client(run_dir, urls[0]) as client:
        try:
            current = client.get_manifest(repository, tag)
        except PullError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                raise ConfigError(f"image {image} does not exist: no tag to delete") from None
            raise ConfigError(f"cannot read {image}: {exc}") from None
    storage = Layout.at(run_dir).registry_storage
    tag_dir = storage / "docker/registry/v2/repositories" / repository / "_manifests/tags" / tag

    def apply() -> dict[str, Any]:
        deleted_by = ""
        for url in urls:
            with replica_client(run_dir, url) as client:
                deleted_by = _untag(client, repository, tag, tag_dir)
                if serves(client, repository, tag):
                    raise UndoError(f"{url} still serves {image} after the delete")
        return {
            "url": str(endpoints["registry_direct"]),
            "replicas": urls,
            "digest": current.digest,
            "media_type": current.media_type,
            "deleted_by": deleted_by,
            **confirmed(f"{len(urls)} replica(s) answer 404 for {image}"),
        }

    return FaultPlan(
        kind="registry.tag-deleted",
        target=f"image:{reference}",
        parameters={"image": str(reference)},
        apply=apply,
        undo={
            "kind": RESTORE,
            "params": {
                "run_dir": str(run_dir),
                "urls": urls,
                "repository": repository,
                "manifests": [saved_manifest(tag, current.media_type, current.body)],
            },
        },
    )


def _untag(client: RegistryClient, repository: str, tag: str, tag_dir: Path) -> str:
    """Delete ``tag`` through the API where the registry can; else (Distribution 2.8, which
    answers 400) remove its link from the shared storage. How it went: ``api`` or
    ``storage``."""
    try:
        client.delete_manifest(repository, tag)
    except PullError as exc:
        if exc.status != 400 or not tag_dir.is_dir():
            raise
        shutil.rmtree(tag_dir)
        return "storage"
    return "api"


# -- the registry switched read-only ------------------------------------------------------------
def _distributions(run_dir: Path) -> list[str]:
    """The Distribution processes on the registry's storage: the replicas, the token registry."""
    endpoints = load_endpoints(run_dir)
    chosen = implementation(str(endpoints.get("implementation") or "distribution-2"))
    if not chosen.capabilities.shared_storage:
        raise ConfigError(
            f"the sandbox's registry runs {chosen.name}, which has no read-only mode: the "
            "read-only fault needs Distribution (distribution-2 or distribution-3)"
        )
    names = [str(r["name"]) for r in endpoints.get("replicas") or ()]
    layout = Layout.at(run_dir)
    if layout.config_file(TOKEN_REGISTRY).is_file():
        names.append(TOKEN_REGISTRY)
    return names


def _write_url(run_dir: Path, name: str) -> tuple[str, bool | str]:
    """Where to ask process ``name`` for a write, and how to verify TLS there."""
    endpoints = load_endpoints(run_dir)
    if name == TOKEN_REGISTRY:
        return str(endpoints["token_registry"]), str(endpoints["ca_file"])
    replica = next(r for r in endpoints["replicas"] if r["name"] == name)
    return str(replica["url"]), True


def write_answer(run_dir: Path, name: str) -> int:
    """The status process ``name`` answers a write with: 405 when read-only, 201/202 when it
    accepts it (an upload it started is cancelled)."""
    url, verify = _write_url(run_dir, name)
    with RegistryClient(
        url,
        credentials=load_credentials(run_dir),
        verify=verify,
        timeout=10.0,
        connect_timeout=2.0,
    ) as client:
        try:
            return client.mount_blob(PROBE_REPOSITORY, PROBE_DIGEST, PROBE_REPOSITORY).status
        except PullError as exc:
            if exc.status is None:
                raise
            return exc.status


def _restart(run_dir: Path, name: str) -> float:
    started = time.monotonic()
    stop_process(run_dir, name)
    start_process(run_dir, name)
    return time.monotonic() - started


def _restart_in_turn(run_dir: Path, names: list[str], *, read_only: bool) -> dict[str, float]:
    """Restart each process with ``readonly`` set as asked; seconds each restart took.

    A replica is stopped only once nginx passes requests to the one restarted before it
    again: nginx leaves a replica alone for its fail_timeout after a request to it failed, and
    stopping the other one inside that window leaves it none (measured: pulls answered 502 when
    the restarts came back to back)."""
    layout = Layout.at(run_dir)
    endpoints = load_endpoints(run_dir)
    replicas = {str(r["name"]): str(r["url"]) for r in endpoints.get("replicas") or ()}
    seconds: dict[str, float] = {}
    for name in names:
        set_read_only(layout.config_file(name), read_only)
        seconds[name] = round(_restart(run_dir, name), 3)
        # From here on: a request answered before the stop is no sign of the new process.
        log = layout.log_file("nginx-access")
        offset = log.stat().st_size if log.is_file() else 0
        if name in replicas:
            _wait_until_nginx_passes_to(run_dir, replicas[name], log, offset)
    return seconds


def _wait_until_nginx_passes_to(run_dir: Path, replica_url: str, log: Path, offset: int) -> None:
    """Ask nginx (``GET /v2/``) until its access log, past ``offset``, shows a request it
    passed to ``replica_url`` answered; UndoError after NGINX_RETURN_TIMEOUT seconds."""
    address = replica_url.split("://", 1)[-1].rstrip("/")
    endpoints = load_endpoints(run_dir)
    url = str(endpoints["registry_direct"]) + "/v2/"
    served = re.compile(rf"upstream=(?:\S+, )*{re.escape(address)} ustatus=(?:\S+, )*[1-4]\d\d ")
    deadline = time.monotonic() + NGINX_RETURN_TIMEOUT
    verify = ssl.create_default_context(cafile=str(endpoints["ca_file"]))
    with httpx.Client(verify=verify, trust_env=False, timeout=2.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                client.get(url)
            with log.open("rb") as handle:
                handle.seek(offset)
                if served.search(handle.read().decode("utf-8", "replace")):
                    return
            if time.monotonic() > deadline:
                raise UndoError(
                    f"nginx did not pass a request to {address} within {NGINX_RETURN_TIMEOUT:g}s "
                    "of its restart (see logs/nginx-error.log)"
                )
            time.sleep(0.1)


def read_only_plan(run_dir: Path) -> FaultPlan:
    """The plan for ``registry.read-only``: every Distribution on the registry's storage
    restarted with ``storage.maintenance.readonly`` on."""
    names = _distributions(run_dir)
    layout = Layout.at(run_dir)
    for name in names:
        if is_read_only(layout.config_file(name)):
            raise ConfigError(f"{name} is read-only already: restore writes first")
        if running_pid(layout, name) is None:
            raise ConfigError(f"{name} is not running (a node kill still active?): start it first")
    url = str(load_endpoints(run_dir)["registry_direct"])

    def apply() -> dict[str, Any]:
        restarts = _restart_in_turn(run_dir, names, read_only=True)
        answers: dict[str, int] = {}
        for name in names:
            answers[name] = write_answer(run_dir, name)
            if answers[name] != READ_ONLY_STATUS:
                raise UndoError(
                    f"{name} answers a write {answers[name]} after its read-only restart, "
                    f"not {READ_ONLY_STATUS}"
                )
        return {
            "url": url,
            "processes": names,
            "restart_seconds": restarts,
            "write_answers": answers,
            **confirmed(f"{', '.join(names)} refuse a write with {READ_ONLY_STATUS}"),
        }

    return FaultPlan(
        kind="registry.read-only",
        target=READ_ONLY_TARGET,
        parameters={},
        apply=apply,
        undo={"kind": READ_ONLY_RESTORE, "params": {"run_dir": str(run_dir), "names": names}},
    )


@undo_handler(READ_ONLY_RESTORE)
def restore_writes(params: Mapping[str, Any]) -> dict[str, Any]:
    """Write each process's configuration back without ``readonly``, restart the ones still
    read-only, verify each running one accepts a write. Idempotent; a process not running
    (killed by another fault) starts writable from the restored file."""
    run_dir = Path(string_param(params, "run_dir"))
    names = params.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UndoError("undo params need a 'names' list")
    if not run_dir.is_dir():
        return {}  # the sandbox is gone, and its configuration with it
    layout = Layout.at(run_dir)
    for name in names:
        if layout.config_file(name).is_file():
            set_read_only(layout.config_file(name), False)
    running = [name for name in names if running_pid(layout, name) is not None]
    still = [name for name in running if write_answer(run_dir, name) == READ_ONLY_STATUS]
    _restart_in_turn(run_dir, still, read_only=False)
    answers: dict[str, int] = {}
    for name in running:
        answers[name] = write_answer(run_dir, name)
        if answers[name] not in (201, 202):
            raise UndoError(f"{name} answers a write {answers[name]} after the restore")
    return {"write_answers": answers}
