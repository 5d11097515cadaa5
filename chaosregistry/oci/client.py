"""The registry HTTP client: the httpx driver of the pull protocol (``oci.protocol``).

Synchronous (httpx), thread-safe (concurrent blob fetches share one connection pool), explicit
timeouts on every call. What to send and what an answer means (authentication, manifests,
digests, error classes) is the protocol core's; this module only sends and receives.
Pushes (blobs, then manifests) ask for a token scoped ``pull,push``; pulls for ``pull`` only.
"""

import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.oci import failures
from chaosregistry.oci.auth import Credentials, TokenCache
from chaosregistry.oci.blobs import sha256_digest
from chaosregistry.oci.curl import CurlTransport
from chaosregistry.oci.protocol import (
    CATALOG,
    PULL,
    PUSH,
    Answer,
    Authenticator,
    BlobCheck,
    Descriptor,
    Listing,
    Manifest,
    Ping,
    Request,
    Resolved,
    Steps,
    blob_request,
    exchange,
    fetch_manifest,
    list_names,
    other_origin,
    ping_request,
    read_ping,
    resolve,
)
from chaosregistry.oci.protocol import fetch_blob as protocol_fetch_blob
from chaosregistry.oci.reference import ImageReference, Platform
from chaosregistry.oci.transport import StdlibTransport
from chaosregistry.osutil.tls import system_trust
from chaosregistry.redaction import URL_CREDENTIALS, url_credentials

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
# read_blob holds a blob in memory: signature payloads and configs are a few KiB.
MAX_READ_BYTES = 4 * 1024 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Mount:
    """What a cross-repository blob mount did: ``mounted`` (201), else an upload was started
    (202) and we tried to cancel it: ``cancel_status`` is the DELETE's HTTP status (None when
    the answer named no upload), ``cancel_error`` the DELETE's failure, if any."""

    status: int
    mounted: bool
    cancel_status: int | None = None
    cancel_error: str = ""


@dataclass(frozen=True)
class BlobFetch:
    digest: str
    size: int
    seconds: float
    auth_seconds: float


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """The SSL context for ``verify``: the system CAs, none (no checks), or a CA bundle path.

    The system CAs' context is shared by the whole process (``osutil.tls``): never change it."""
    if verify is True:
        return system_trust()
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA store: nothing is checked
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
    if url_credentials(url):  # checked first: no message below may repeat the password
        raise ConfigError(f"registry URL {URL_CREDENTIALS}")
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


@dataclass(frozen=True)
class ReferrersAnswer:
    """What the referrers API answered: its status, its body (a 2xx's), the classified error
    of a status >= 400."""

    status: int
    body: bytes
    error: PullError | None


class RegistryClient:
    """A client for one registry, e.g. ``RegistryClient("https://127.0.0.1:15000")``.

    ``http2``: speak HTTP/2 where the server offers it by ALPN (libcurl and nghttp2, see
    :mod:`chaosregistry.oci.curl`); the default is HTTP/1.1 on our fast transport, as
    containerd pulls. httpx's own h2 stays available as ``transport=`` (bench/pull.py compares
    them). ``http_version`` says what the last answer actually came over. ``connect_to``:
    ``(host, port)`` to open the registry's connections to instead of the URL's (a fault
    proxy's listener), with the Host header, SNI and the certificate's host-name check still
    the URL's host (see ``oci.transport``, ``oci.curl``); a redirect to another origin (blob
    storage) connects directly.
    """

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        verify: bool | str = True,
        max_connections: int = 16,
        http2: bool = False,
        transport: httpx.BaseTransport | None = None,
        connect_to: tuple[str, int] | None = None,
    ) -> None:
        self.url = validate_registry_url(url)
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigError("timeouts must be positive numbers of seconds")
        self.auth = Authenticator(credentials)
        self.http_version = ""
        context = tls_context(verify)
        if transport is None:
            redirect = {}
            if connect_to is not None:
                parts = urlsplit(self.url)
                port = parts.port or (443 if parts.scheme == "https" else 80)
                redirect = {(parts.hostname or "", port): connect_to}
            transport = (
                CurlTransport(verify=verify, connect_to=redirect)
                if http2
                else StdlibTransport(
                    ssl_context=context, max_connections=max_connections, connect_to=redirect
                )
            )
        self._http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            verify=context,
            follow_redirects=True,  # blobs may redirect to storage; httpx drops auth cross-origin
            transport=transport,
        )

    @property
    def credentials(self) -> Credentials | None:
        return self.auth.credentials

    @property
    def tokens(self) -> TokenCache:
        return self.auth.tokens

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- API -------------------------------------------------------------------------------
    def ping(self) -> Ping:
        """GET /v2/: which auth the registry wants and whether it speaks the v2 API."""
        request = ping_request(self.url)
        started = time.perf_counter()
        with _Call(self) as call:
            answer = call.send(request)
        return read_ping(answer, request.what, time.perf_counter() - started)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """Fetch a manifest or index by tag or digest and check its digest."""
        with _Call(self) as call:
            return call.run(fetch_manifest(self.auth, repository, reference))

    def find_manifest(self, repository: str, reference: str) -> Manifest | None:
        """Like :meth:`get_manifest`, but None when the registry says there is none
        (``not-found``); PullError for any other failure."""
        try:
            return self.get_manifest(repository, reference)
        except PullError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return None
            raise

    def resolve(self, image: ImageReference, platform: Platform | None) -> Resolved:
        """The image's manifest (through its index, for ``platform``) and the blobs to fetch."""
        with _Call(self) as call:
            return call.run(resolve(self.auth, image, platform))

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
        started = time.perf_counter()
        steps = protocol_fetch_blob(self.auth, repository, digest)
        with _Call(self) as call:
            done = call.run(steps)
            check = BlobCheck(Descriptor(digest, size), call.what, verify=verify)
            for chunk in call.body():
                check.feed(chunk)
                if cancel is not None and cancel.is_set():
                    raise PullError(ErrorClass.PROTOCOL, f"{call.what}: cancelled")
        check.finish()
        return BlobFetch(digest, size, time.perf_counter() - started, done.auth_seconds)

    def read_blob(self, repository: str, digest: str, size: int) -> bytes:
        """A small blob's bytes (a signature payload), checked against ``size`` and ``digest``."""
        if size > MAX_READ_BYTES:
            raise PullError(
                ErrorClass.PROTOCOL, f"blob {digest[:19]}: {size} bytes is too large to read whole"
            )
        steps = protocol_fetch_blob(self.auth, repository, digest)
        chunks = []
        with _Call(self) as call:
            call.run(steps)
            check = BlobCheck(Descriptor(digest, size), call.what)
            for chunk in call.body():
                check.feed(chunk)
                chunks.append(chunk)
        check.finish()
        return b"".join(chunks)

    def referrers(self, repository: str, digest: str) -> "ReferrersAnswer":
        """``GET /v2/<name>/referrers/<digest>`` (OCI 1.1), its answer whatever its HTTP status:
        a registry without the API answers 404 (Distribution). A status >= 400 comes with its
        classified ``error`` (the registry's error codes in its detail). PullError only when no
        answer came (timeout, refused, TLS)."""
        request = Request(
            "GET",
            f"/v2/{repository}/referrers/{digest}",
            f"referrers of {repository}@{digest[:19]}",
            "/v2/[name]/referrers/[digest]",
            {"Accept": "application/vnd.oci.image.index.v1+json"},
        )
        try:
            answer = self._exchange(request, repository)
        except PullError as exc:
            if exc.status is None:
                raise  # no answer at all (timeout, refused): the caller decides
            return ReferrersAnswer(exc.status, b"", exc)
        return ReferrersAnswer(answer.status, answer.body, None)

    def delete_manifest(self, repository: str, reference: str) -> int:
        """DELETE a manifest by digest (or by tag, where the registry allows it); its status.

        A 404 (already gone) is returned, not raised; other refusals raise PullError.
        """
        path = f"/v2/{repository}/manifests/{reference}"
        delete = Request(
            "DELETE", path, f"delete {repository}:{reference}", "/v2/[name]/manifests/[ref]"
        )
        try:
            return self._exchange(delete, repository, PUSH).status
        except PullError as exc:
            if exc.status == 404:
                return 404
            raise

    def push_blob(self, repository: str, data: bytes, digest: str | None = None) -> str:
        """Upload ``data`` as a blob of ``repository`` unless the registry has it; its digest.

        One monolithic upload (POST, then PUT of the whole body with ``?digest=``): the blobs
        this project pushes fit in memory. ``digest`` saves hashing when the caller knows it;
        the registry checks it either way. Raises PullError when a step is refused.
        """
        digest = digest or sha256_digest(data)
        what = f"push blob {repository}@{digest[:19]}"
        if self._has_blob(repository, digest, what):
            return digest
        start = Request("POST", f"/v2/{repository}/blobs/uploads/", what, "[upload]")
        answer = self._exchange(start, repository, PUSH)
        _expect_status(answer, 202, f"{what}: upload start")
        location = answer.header("location")
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
        finish = Request("PUT", str(url), what, "[upload]", headers, content=data)
        _expect_status(self._exchange(finish, repository, PUSH), 201, what)
        return digest

    def push_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest or index under ``reference`` (a tag or its digest); returns its digest.

        Every blob it names, and every manifest an index names, must be pushed first: the
        registry refuses a manifest that points at content it lacks. Raises PullError when the
        registry refuses it or says it stored other bytes than these.
        """
        digest = sha256_digest(data)
        what = f"push manifest {repository}:{reference}"
        request = Request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            what,
            "/v2/[name]/manifests/[ref]",
            {"Content-Type": media_type},
            content=data,
        )
        answer = self._exchange(request, repository, PUSH)
        _expect_status(answer, 201, what)
        stored = answer.header("docker-content-digest") or digest
        if stored != digest:
            raise PullError(
                ErrorClass.DIGEST_MISMATCH, f"{what}: registry stored {stored}, expected {digest}"
            )
        return digest

    def list_repositories(self, page_size: int = 100) -> Listing:
        """Every repository of the catalog (``GET /v2/_catalog``, paged ``page_size`` at a time)."""
        steps = list_names(
            self.auth, self.url, "/v2/_catalog", "repositories", CATALOG, page_size, "catalog"
        )
        with _Call(self) as call:
            return call.run(steps)

    def list_tags(self, repository: str, page_size: int = 100) -> Listing:
        """Every tag of ``repository`` (``GET /v2/<name>/tags/list``, paged)."""
        path = f"/v2/{repository}/tags/list"
        steps = list_names(
            self.auth, self.url, path, "tags", repository, page_size, f"tags of {repository}"
        )
        with _Call(self) as call:
            return call.run(steps)

    def mount_blob(self, repository: str, digest: str, source: str) -> Mount:
        """Ask to mount blob ``digest`` of ``source`` into ``repository`` (a write: on 201 the
        blob is linked into ``repository``). A 202 means the registry started an ordinary
        upload instead: it is cancelled (DELETE on its Location) before this returns."""
        what = f"mount {source}@{digest[:19]} into {repository}"
        request = Request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            what,
            "[upload]",
            params={"mount": digest, "from": source},
        )
        answer = self._exchange(request, repository, PUSH)
        if answer.status == 201:
            return Mount(201, True)
        _expect_status(answer, 202, what)
        location = answer.header("location")
        if not location:
            return Mount(202, False)
        cancel = Request("DELETE", self._absolute(location), f"{what}: cancel upload", "[upload]")
        try:
            status = self._exchange(cancel, repository, PUSH).status
        except PullError as exc:
            # The upload is left to the registry's purge of stale uploads; the mount's answer
            # (not mounted) stands.
            return Mount(202, False, exc.status, str(exc))
        return Mount(202, False, status)

    def _absolute(self, location: str) -> str:
        url = httpx.URL(location)
        return str(url if url.is_absolute_url else self._http.base_url.join(location))

    def delete_repository_tags(self, repository: str) -> list[str]:
        """Delete the manifest behind every tag of ``repository``; returns the digests deleted."""
        what = f"tags of {repository}"
        listing = Request("GET", f"/v2/{repository}/tags/list", what, "/v2/[name]/tags/list")
        try:
            tags = json.loads(self._exchange(listing, repository).body).get("tags") or []
        except PullError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return []
            raise
        deleted: list[str] = []
        for tag in tags:
            digest = self.get_manifest(repository, tag).digest
            if digest in deleted:
                continue
            path = f"/v2/{repository}/manifests/{digest}"
            delete = Request("DELETE", path, f"delete {digest}", "/v2/[name]/manifests/[ref]")
            self._exchange(delete, repository, PUSH)
            deleted.append(digest)
        return deleted

    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the registry serves blob ``digest`` of ``repository`` (a HEAD, pull scope);
        PullError for anything but found or not found."""
        return self._has_blob(repository, digest, f"blob {repository}@{digest[:19]}", PULL)

    def _has_blob(self, repository: str, digest: str, what: str, actions: str = PUSH) -> bool:
        try:
            head = replace(blob_request(repository, digest, method="HEAD"), what=what)
            return self._exchange(head, repository, actions).status == 200
        except PullError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                return False
            raise

    def _exchange(self, request: Request, repository: str, actions: str = PULL) -> Answer:
        with _Call(self) as call:
            return call.run(exchange(self.auth, request, repository, actions)).answer


def _expect_status(answer: Answer, expected: int, what: str) -> None:
    """Errors (>= 400) are raised by the exchange; this refuses any other unexpected answer."""
    if answer.status != expected:
        raise PullError(
            ErrorClass.PROTOCOL,
            f"{what}: HTTP {answer.status}, expected {expected}",
            status=answer.status,
        )


class _Call:
    """Drives one protocol step over httpx; keeps a streamed 2xx body open for ``body()``."""

    def __init__(self, client: RegistryClient) -> None:
        self._client = client
        self._stream: httpx.Response | None = None
        self.what = ""

    def __enter__(self) -> "_Call":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def run(self, steps: Steps[T]) -> T:
        request = next(steps)
        while True:
            answer = self.send(request)
            try:
                request = steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def send(self, request: Request) -> Answer:
        """The only I/O: one request, its answer (body read unless a 2xx is to be streamed)."""
        http = self._client._http
        self.what = request.what
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        built = http.build_request(
            request.method,
            request.target,
            headers=request.headers,
            params=request.params or None,
            content=request.content,
        )
        token = request.route == failures.TOKEN_ROUTE
        try:
            response = http.send(built, stream=True)
        except Exception as exc:
            raise failures.from_exception(exc, request.what, token=token) from exc
        self._client.http_version = response.http_version
        moved = other_origin(str(built.url), str(response.url)) if response.history else ""
        if request.stream and 200 <= response.status_code < 300:
            self._stream = response
            return Answer(response.status_code, response.headers, redirected_to=moved)
        try:
            body = response.read()
        except Exception as exc:
            raise failures.from_exception(exc, request.what, in_body=True, token=token) from exc
        finally:
            response.close()
        return Answer(response.status_code, response.headers, body, moved)

    def body(self) -> Iterator[bytes]:
        """The streamed body's chunks; transport failures classified (a short body: truncated)."""
        assert self._stream is not None, "body() follows a streamed request"
        try:
            yield from self._stream.iter_bytes()
        except PullError:
            raise
        except Exception as exc:
            raise failures.from_exception(exc, self.what, in_body=True) from exc
