"""The one registry HTTP client: ping, manifests and blobs over the OCI distribution API.

Synchronous (httpx), thread-safe (concurrent blob fetches share one connection pool), explicit
timeouts on every call. Authentication answers whatever the registry challenges with: nothing,
HTTP basic, or the bearer-token flow, remembering the scheme so later requests skip the 401.
Pushes (blobs, then manifests) ask for a token scoped ``pull,push``; pulls for ``pull`` only.
"""

import base64
import hashlib
import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.oci import failures
from chaosregistry.oci.auth import DEFAULT_TOKEN_LIFETIME, Challenge, Credentials, TokenCache
from chaosregistry.oci.transport import StdlibTransport

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_MEDIA_TYPES = frozenset(MANIFEST_MEDIA_TYPES[0::2])

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0

PULL = "pull"
PUSH = "pull,push"  # a push also reads (HEAD blob), so its token covers both


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str
    auth_seconds: float

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError as exc:
            raise PullError(ErrorClass.PROTOCOL, f"manifest {self.digest} is not JSON") from exc
        if not isinstance(value, dict):
            raise PullError(ErrorClass.PROTOCOL, f"manifest {self.digest} is not a JSON object")
        return value


@dataclass(frozen=True)
class BlobFetch:
    digest: str
    size: int
    seconds: float
    auth_seconds: float


@dataclass(frozen=True)
class Ping:
    status: int
    auth_scheme: str  # "none", "basic" or "bearer"
    api_version: str
    seconds: float


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """The SSL context for ``verify``: the system CAs, none (no checks), or a CA bundle path."""
    if verify is True:
        return ssl.create_default_context()
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if not os.path.isfile(verify):
        raise ConfigError(f"CA bundle {verify!r} does not exist")
    try:
        return ssl.create_default_context(cafile=verify)
    except ssl.SSLError as exc:
        raise ConfigError(f"CA bundle {verify!r} is not a PEM certificate bundle: {exc}") from exc


def validate_registry_url(url: str) -> str:
    """Return the URL without a trailing slash, or raise ConfigError naming what is wrong."""
    if not isinstance(url, str) or not url:
        raise ConfigError("registry URL is empty")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"registry URL {url!r} must look like http(s)://host[:port]")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(f"registry URL {url!r} has an invalid port") from exc
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"registry URL {url!r} must not have a path (the client adds /v2/)")
    return url.rstrip("/")


class RegistryClient:
    """A client for one registry, e.g. ``RegistryClient("http://127.0.0.1:15000")``."""

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        verify: bool | str = True,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = validate_registry_url(url)
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigError("timeouts must be positive numbers of seconds")
        self.credentials = credentials
        self.tokens = TokenCache()
        self._scheme: str | None = None  # learnt from the first challenge
        self._challenge: dict[str, str] = {}
        self._scheme_lock = threading.Lock()
        context = _tls_context(verify)
        self._http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            verify=context,
            follow_redirects=True,  # blobs may redirect to storage; httpx drops auth cross-origin
            transport=transport
            or StdlibTransport(ssl_context=context, max_connections=max_connections),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- API -------------------------------------------------------------------------------
    def ping(self) -> Ping:
        """GET /v2/: which auth the registry wants and whether it speaks the v2 API."""
        start = time.perf_counter()
        try:
            response = self._http.get("/v2/")
        except Exception as exc:
            raise failures.from_exception(exc, f"{self.url}/v2/") from exc
        seconds = time.perf_counter() - start
        if response.status_code not in (200, 401):
            raise failures.from_response(response, f"{self.url}/v2/")
        scheme = "none"
        if response.status_code == 401:
            challenge = Challenge.parse(response.headers.get("www-authenticate", ""))
            scheme = challenge.scheme if challenge else "unknown"
        return Ping(
            status=response.status_code,
            auth_scheme=scheme,
            api_version=response.headers.get("docker-distribution-api-version", ""),
            seconds=seconds,
        )

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """Fetch a manifest or index by tag or digest and check its digest."""
        what = f"manifest {repository}:{reference}"
        headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        with self._send(
            "GET", f"/v2/{repository}/manifests/{reference}", repository, what, headers
        ) as (response, auth_seconds):
            try:
                body = response.read()
            except Exception as exc:
                raise failures.from_exception(exc, what) from exc
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        expected = (
            reference
            if reference.startswith("sha256:")
            else response.headers.get("docker-content-digest", digest)
        )
        if expected != digest:
            raise PullError(
                ErrorClass.DIGEST_MISMATCH,
                f"{what}: body hashes to {digest}, expected {expected}",
            )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return Manifest(body, media_type, digest, auth_seconds)

    def fetch_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        *,
        verify: bool = True,
        cancel: threading.Event | None = None,
    ) -> BlobFetch:
        """Stream one blob, checking its size and (when ``verify``) its sha256, then discard it.

        The hash is updated in the reading thread, chunk by chunk (1 MiB): the kernel keeps
        receiving into the socket buffer while we hash, and hashlib releases the GIL, so
        concurrent blobs hash in parallel. Measured against a hashing thread fed through a
        queue, this was faster for one blob and for three at once (bench/README.md).
        """
        what = f"blob {repository}@{digest[:19]}"
        start = time.perf_counter()
        with self._send("GET", f"/v2/{repository}/blobs/{digest}", repository, what) as (
            response,
            auth_seconds,
        ):
            received = 0
            hasher = hashlib.sha256() if verify else None
            for chunk in _raw_chunks(response, what):
                received += len(chunk)
                if received > size:
                    raise PullError(
                        ErrorClass.DIGEST_MISMATCH,
                        f"{what}: more than the {size} bytes its descriptor states",
                    )
                if hasher is not None:
                    hasher.update(chunk)
                if cancel is not None and cancel.is_set():
                    raise PullError(ErrorClass.PROTOCOL, f"{what}: cancelled")
            actual = "sha256:" + hasher.hexdigest() if hasher is not None else None
        if received < size:
            raise PullError(ErrorClass.TRUNCATED, f"{what}: got {received} of {size} bytes")
        if actual is not None and actual != digest:
            raise PullError(ErrorClass.DIGEST_MISMATCH, f"{what}: content hashes to {actual}")
        return BlobFetch(digest, size, time.perf_counter() - start, auth_seconds)

    def push_blob(self, repository: str, data: bytes, digest: str | None = None) -> str:
        """Upload ``data`` as a blob of ``repository`` unless the registry has it; its digest.

        One monolithic upload (POST, then PUT of the whole body with ``?digest=``): the blobs
        this project pushes fit in memory. ``digest`` saves hashing when the caller knows it;
        the registry checks it either way. Raises PullError when a step is refused.
        """
        digest = digest or _sha256(data)
        what = f"push blob {repository}@{digest[:19]}"
        if self._has_blob(repository, digest, what):
            return digest
        with self._send(
            "POST", f"/v2/{repository}/blobs/uploads/", repository, what, actions=PUSH
        ) as (response, _):
            _expect_status(response, 202, f"{what}: upload start")
            location = response.headers.get("location")
        if not location:
            raise PullError(
                ErrorClass.PROTOCOL, f"{what}: upload start answered without a Location"
            )
        url = httpx.URL(location)
        if not url.is_absolute_url:
            url = self._http.base_url.join(location)
        # The Location carries the upload's signed state (_state=...): add to its query, since
        # httpx's params= would replace it.
        url = url.copy_add_param("digest", digest)
        headers = {"Content-Type": "application/octet-stream"}
        finish = self._send("PUT", url, repository, what, headers, content=data, actions=PUSH)
        with finish as (response, _):
            _expect_status(response, 201, what)
        return digest

    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest or index under ``reference`` (a tag or its digest); returns its digest.

        Every blob it names, and every manifest an index names, must be pushed first: the
        registry refuses a manifest that points at content it lacks. Raises PullError when the
        registry refuses it or says it stored other bytes than these.
        """
        digest = _sha256(data)
        what = f"push manifest {repository}:{reference}"
        with self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            what,
            {"Content-Type": media_type},
            content=data,
            actions=PUSH,
        ) as (response, _):
            _expect_status(response, 201, what)
            stored = response.headers.get("docker-content-digest", digest)
        if stored != digest:
            raise PullError(
                ErrorClass.DIGEST_MISMATCH, f"{what}: registry stored {stored}, expected {digest}"
            )
        return digest

    def delete_repository_tags(self, repository: str) -> list[str]:
        """Delete the manifest behind every tag of ``repository``; returns the digests deleted."""
        what = f"tags of {repository}"
        try:
            with self._send("GET", f"/v2/{repository}/tags/list", repository, what) as (
                response,
                _,
            ):
                tags = json.loads(response.read()).get("tags") or []
        except PullError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return []
            raise
        deleted: list[str] = []
        for tag in tags:
            digest = self.get_manifest(repository, tag).digest
            if digest in deleted:
                continue
            with self._send(
                "DELETE", f"/v2/{repository}/manifests/{digest}", repository, f"delete {digest}"
            ):
                deleted.append(digest)
        return deleted

    def _has_blob(self, repository: str, digest: str, what: str) -> bool:
        try:
            with self._send(
                "HEAD", f"/v2/{repository}/blobs/{digest}", repository, what, actions=PUSH
            ) as (response, _):
                return response.status_code == 200
        except PullError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return False
            raise

    # -- auth and sending ------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str | httpx.URL,
        repository: str,
        what: str,
        headers: dict[str, str] | None = None,
        *,
        content: bytes | None = None,
        actions: str = PULL,
    ) -> "_Exchange":
        return _Exchange(self, method, path, repository, what, headers or {}, content, actions)

    def _authorization(self, repository: str, actions: str) -> dict[str, str]:
        """Headers to send up front, from what the registry challenged us with before."""
        if self._scheme == "basic" and self.credentials is not None:
            return {"Authorization": _basic(self.credentials)}
        if self._scheme == "bearer":
            token = self.tokens.get(self._token_key(repository, actions))
            if token is not None:
                return {"Authorization": f"Bearer {token}"}
        return {}

    def _token_key(self, repository: str, actions: str) -> tuple[str, str, str]:
        return (
            self._challenge.get("realm", ""),
            self._challenge.get("service", ""),
            f"repository:{repository}:{actions}",
        )

    def _answer_challenge(
        self, response: httpx.Response, repository: str, what: str, actions: str
    ) -> str:
        """Turn a 401 into an Authorization header value, fetching a token when needed."""
        challenge = Challenge.parse(response.headers.get("www-authenticate", ""))
        if challenge is None:
            raise failures.from_response(response, what)
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise PullError(
                    ErrorClass.AUTH,
                    f"{what}: registry wants basic auth and no credentials were given",
                    status=401,
                )
            with self._scheme_lock:
                self._scheme = "basic"
            return _basic(self.credentials)
        if challenge.scheme == "bearer":
            if "realm" not in challenge.params:
                raise PullError(ErrorClass.PROTOCOL, f"{what}: bearer challenge without a realm")
            with self._scheme_lock:
                self._scheme = "bearer"
                self._challenge = {k: challenge.params.get(k, "") for k in ("realm", "service")}
            key = self._token_key(repository, actions)
            token = self.tokens.get(key) or self._fetch_token(key, what)
            return f"Bearer {token}"
        raise PullError(ErrorClass.AUTH, f"{what}: unsupported auth scheme {challenge.scheme!r}")

    def _fetch_token(self, key: tuple[str, str, str], what: str) -> str:
        realm, service, scope = key
        params = {"scope": scope}
        if service:
            params["service"] = service
        auth = (
            httpx.BasicAuth(self.credentials.username, self.credentials.password)
            if self.credentials
            else None
        )
        try:
            response = self._http.get(realm, params=params, auth=auth)
        except Exception as exc:
            raise failures.from_exception(exc, f"{what}: token request") from exc
        if response.status_code != 200:
            raise failures.from_response(response, f"{what}: token request")
        try:
            body = response.json()
            token = str(body.get("token") or body.get("access_token") or "")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError) as exc:
            raise PullError(ErrorClass.PROTOCOL, f"{what}: token response is not JSON") from exc
        if not token:
            raise PullError(ErrorClass.PROTOCOL, f"{what}: token response has no token")
        self.tokens.put(key, token, lifetime)
        return token


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _expect_status(response: httpx.Response, expected: int, what: str) -> None:
    """Errors (>= 400) are raised by the exchange; this refuses any other unexpected answer."""
    if response.status_code != expected:
        raise PullError(
            ErrorClass.PROTOCOL,
            f"{what}: HTTP {response.status_code}, expected {expected}",
            status=response.status_code,
        )


def _basic(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _raw_chunks(response: httpx.Response, what: str) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes()
    except PullError:
        raise
    except Exception as exc:
        raise failures.from_exception(exc, what) from exc


class _Exchange:
    """Context manager: send a request (answering one auth challenge), yield the response."""

    def __init__(
        self,
        client: RegistryClient,
        method: str,
        path: str | httpx.URL,
        repository: str,
        what: str,
        headers: dict[str, str],
        content: bytes | None,
        actions: str,
    ) -> None:
        self._client = client
        self._method = method
        self._path = path
        self._repository = repository
        self._what = what
        self._headers = headers
        self._content = content
        self._actions = actions
        self._response: httpx.Response | None = None

    def _open(self, extra: dict[str, str]) -> httpx.Response:
        http = self._client._http
        request = http.build_request(
            self._method, self._path, headers={**self._headers, **extra}, content=self._content
        )
        try:
            return http.send(request, stream=True)
        except Exception as exc:
            raise failures.from_exception(exc, self._what) from exc

    def __enter__(self) -> tuple[httpx.Response, float]:
        client = self._client
        response = self._open(client._authorization(self._repository, self._actions))
        auth_seconds = 0.0
        if response.status_code == 401:
            started = time.perf_counter()
            response.close()
            header = client._answer_challenge(response, self._repository, self._what, self._actions)
            auth_seconds = time.perf_counter() - started
            response = self._open({"Authorization": header})
            # The retried request's round trip is part of the work, not of authentication.
        self._response = response
        if response.status_code >= 400:
            try:
                error = failures.from_response(response, self._what)
            finally:
                response.close()
            raise error
        return response, auth_seconds

    def __exit__(self, *exc: object) -> None:
        if self._response is not None:
            self._response.close()
