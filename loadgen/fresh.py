"""Never-seen images for cold-mode loads, pushed to the origin registry before the run.

A pull-through mirror caches by digest, so re-tagging known content would only miss on the
manifest. Each fresh image is therefore unique all the way down: one small layer (a tar of one
file of random bytes) and a config naming it, in repository ``chaosregistry-load/fresh-<token>``
with tags ``f00000``, ``f00001``... The images stay in the origin afterwards (a registry
without deletion enabled cannot drop them); each is about ``FRESH_LAYER_BYTES``.

Pushing is the only registry write in this project; it speaks the distribution API's monolithic
upload (POST, then PUT with the digest) and answers basic or bearer challenges like
:mod:`chaosregistry.oci.client`, whose error translation it reuses.
"""

import base64
import hashlib
import io
import json
import os
import secrets as _random
import ssl
import tarfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from chaosregistry.errors import ErrorClass, PullError
from chaosregistry.oci import failures
from chaosregistry.oci.auth import Challenge
from chaosregistry.oci.reference import Platform
from chaosregistry.settings import RegistryTarget

FRESH_REPOSITORY_PREFIX = "chaosregistry-load/fresh-"
FRESH_LAYER_BYTES = 16 * 1024
PUSH_THREADS = 4
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


def fresh_image(
    platform: Platform, layer_bytes: int = FRESH_LAYER_BYTES
) -> tuple[Blob, Blob, Blob]:
    """(layer, config, manifest) of one new image with content nobody has seen."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("fresh/data.bin")
        info.size = layer_bytes
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(os.urandom(layer_bytes)))
    layer = Blob(archive.getvalue(), OCI_LAYER)
    platform_fields = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        platform_fields["variant"] = platform.variant
    config = Blob(
        json.dumps(
            {
                **platform_fields,
                "config": {"Labels": {"io.chaosregistry.load": "fresh"}},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            }
        ).encode(),
        OCI_CONFIG,
    )
    manifest = Blob(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor()],
            }
        ).encode(),
        OCI_MANIFEST,
    )
    return layer, config, manifest


def push_fresh_images(
    origin: RegistryTarget,
    count: int,
    platform: Platform,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Push ``count`` fresh images to ``origin``; their references, in pull order.

    Raises PullError (classified) when the origin refuses a push.
    """
    repository = FRESH_REPOSITORY_PREFIX + _random.token_hex(4)
    references = [f"{repository}:f{index:05d}" for index in range(count)]
    tags = [reference.rsplit(":", 1)[1] for reference in references]
    with _Pusher(origin) as pusher, ThreadPoolExecutor(PUSH_THREADS) as pool:
        pushed = pool.map(lambda tag: pusher.push(repository, tag, platform), tags)
        for done, _ in enumerate(pushed, start=1):
            if progress is not None:
                progress(done)
    return references


class _Pusher:
    def __init__(self, origin: RegistryTarget) -> None:
        verify: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=origin.verify)
            if isinstance(origin.verify, str)
            else origin.verify
        )
        self._credentials = origin.credentials
        self._authorization: str | None = None
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=origin.url,
            timeout=httpx.Timeout(origin.timeout, connect=min(origin.timeout, 5.0)),
            verify=verify,
            trust_env=False,
        )

    def __enter__(self) -> "_Pusher":
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def push(self, repository: str, tag: str, platform: Platform) -> None:
        layer, config, manifest = fresh_image(platform)
        for blob in (layer, config):
            started = self._send(repository, "POST", f"/v2/{repository}/blobs/uploads/", 202)
            location = started.headers.get("location")
            if not location:
                raise PullError(ErrorClass.PROTOCOL, f"push {repository}: upload has no Location")
            url = httpx.URL(location)
            if not url.is_absolute_url:
                url = self._http.base_url.join(location)
            url = url.copy_add_param("digest", blob.digest)
            self._send(repository, "PUT", url, 201, content=blob.data,
                       headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        self._send(repository, "PUT", f"/v2/{repository}/manifests/{tag}", 201,
                   content=manifest.data, headers={"Content-Type": OCI_MANIFEST})  # fmt: skip

    def _send(
        self,
        repository: str,
        method: str,
        url: str | httpx.URL,
        expected: int,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        what = f"push {repository}: {method}"
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            if self._authorization:
                request_headers["Authorization"] = self._authorization
            try:
                response = self._http.request(method, url, content=content, headers=request_headers)
            except httpx.HTTPError as exc:
                raise failures.from_exception(exc, what) from exc
            if response.status_code == 401 and attempt == 1:
                self._answer(response, repository, what)
                continue
            if response.status_code != expected:
                raise failures.from_response(response, what)
            return response
        raise PullError(ErrorClass.AUTH, f"{what}: refused after authenticating", status=401)

    def _answer(self, response: httpx.Response, repository: str, what: str) -> None:
        challenge = Challenge.parse(response.headers.get("www-authenticate", ""))
        credentials = self._credentials
        if challenge is None:
            raise failures.from_response(response, what)
        basic = None
        if credentials is not None:
            raw = f"{credentials.username}:{credentials.password}".encode()
            basic = "Basic " + base64.b64encode(raw).decode("ascii")
        if challenge.scheme == "basic" and basic:
            with self._lock:
                self._authorization = basic
            return
        if challenge.scheme == "bearer" and challenge.params.get("realm"):
            params = {"scope": f"repository:{repository}:pull,push"}
            if challenge.params.get("service"):
                params["service"] = challenge.params["service"]
            try:
                answer = self._http.get(
                    challenge.params["realm"],
                    params=params,
                    headers={"Authorization": basic} if basic else {},
                )
            except httpx.HTTPError as exc:
                raise failures.from_exception(exc, f"{what}: token request") from exc
            if answer.status_code != 200:
                raise failures.from_response(answer, f"{what}: token request")
            try:
                body = answer.json()
                token = str(body.get("token") or body.get("access_token") or "")
            except (ValueError, AttributeError):
                token = ""
            if not token:
                raise PullError(ErrorClass.PROTOCOL, f"{what}: token response has no token")
            with self._lock:
                self._authorization = f"Bearer {token}"
            return
        raise PullError(ErrorClass.AUTH, f"{what}: cannot answer a {challenge.scheme} challenge")
