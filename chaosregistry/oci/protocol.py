"""The OCI pull protocol without I/O: what to send next, and what each answer means.

The way h11 and h2 keep HTTP apart from sockets, this module holds every rule of a pull and
none of its I/O: authentication (challenge parsing, basic, the bearer-token flow and token
reuse), manifest and index handling (media types, digest and size checks, platform choice),
blob checks (size and sha256 while streaming) and, through :mod:`chaosregistry.oci.failures`,
what a status means. Two drivers run it: :class:`chaosregistry.oci.client.RegistryClient`
(httpx, threads) for the probes, and the Locust user (geventhttpclient, greenlets) for the
load, so what the probe tests prove holds for the load too.

A step of the protocol is a generator: it yields a :class:`Request`, the driver sends it and
sends back an :class:`Answer`; the generator's return value is the step's result, and a failure
is raised from it as a classified :class:`~chaosregistry.errors.PullError`. A driver is a loop::

    request = next(steps)
    while True:
        answer = send(request)            # the only I/O
        try:
            request = steps.send(answer)
        except StopIteration as done:
            return done.value

Blob bodies are the one thing a driver streams itself: a :class:`Request` with ``stream`` set
answered 2xx carries no body, and the driver feeds the body's chunks to a :class:`BlobCheck`.
"""

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from chaosregistry.errors import ErrorClass, PullError
from chaosregistry.oci import failures
from chaosregistry.oci.auth import DEFAULT_TOKEN_LIFETIME, Challenge, Credentials, TokenCache
from chaosregistry.oci.blobs import sha256_digest
from chaosregistry.oci.reference import ImageReference, Platform

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_MEDIA_TYPES = frozenset(MANIFEST_MEDIA_TYPES[0::2])
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
# The distribution spec lets registries refuse manifests over 4 MiB; a pull refuses them too.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Bodies are hashed exactly as sent: never ask for a content coding.
IDENTITY = {"Accept-Encoding": "identity"}

PULL = "pull"
PUSH = "pull,push"  # a push also reads (HEAD blob), so its token covers both
CATALOG = "registry:catalog"  # the resource ``GET /v2/_catalog`` needs, with actions "*"

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """One HTTP request the protocol wants sent.

    ``target`` is a path under the registry (``/v2/...``) or an absolute URL (a token realm).
    ``route`` names it by template for load statistics (``/v2/[name]/blobs/[digest]``).
    """

    method: str
    target: str
    what: str
    route: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    stream: bool = False  # a 2xx body is the driver's to stream; otherwise it is read whole

    def with_headers(self, extra: Mapping[str, str]) -> "Request":
        if not extra:
            return self
        # Not dataclasses.replace(): it costs several times a direct call, on every request.
        return Request(
            self.method,
            self.target,
            self.what,
            self.route,
            {**self.headers, **extra},
            self.params,
            self.content,
            self.stream,
        )


@dataclass(frozen=True)
class Answer:
    """What came back: status, headers (looked up case-insensitively) and the body read whole.

    ``body`` is empty for a streamed 2xx answer: its body is still on the wire.
    ``redirected_to`` is the origin (``scheme://host:port``) that gave the answer when the
    driver followed redirects to another origin than the request's (``other_origin``), else
    empty: credentials are ours for the request's origin only.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    redirected_to: str = ""

    def header(self, name: str) -> str:
        return str(self.headers.get(name) or self.headers.get(name.lower()) or "")


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> str:
    """``scheme://host:port`` of an absolute URL, the default port written out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def other_origin(sent: str, answered: str) -> str:
    """The origin of ``answered`` (the URL a driver's redirects ended at) when it is not the
    origin of ``sent`` (the URL it was asked for), else empty: what drivers put in
    ``Answer.redirected_to``. An upgrade from http on port 80 to https on 443 of the same host
    is no other origin here (httpx keeps the Authorization on it)."""
    before, after = origin(sent), origin(answered)
    host = urlsplit(before).hostname
    upgrade = (f"http://{host}:80", f"https://{host}:443")
    return "" if before == after or (before, after) == upgrade else after


Steps = Generator[Request, Answer, T]


# -- authentication ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenRequest:
    """Ask ``request`` (the realm) for a bearer token; ``key`` is where it will be kept."""

    request: Request
    key: tuple[str, str, str]


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class Authenticator:
    """How one client authenticates to one registry.

    It learns the scheme from the first challenge and sends credentials up front from then on:
    basic on every request, bearer tokens per (realm, service, scope) reused until shortly
    before they expire. A token the registry refuses is dropped and fetched again once.
    Thread-safe: concurrent blob fetches of one client share it.
    """

    def __init__(self, credentials: Credentials | None, tokens: TokenCache | None = None) -> None:
        self.credentials = credentials
        self.tokens = tokens or TokenCache()
        self.scheme: str | None = None  # "basic" or "bearer" once challenged
        self._realm = ""
        self._service = ""
        self._lock = threading.Lock()
        self._basic: tuple[Credentials, str] | None = None

    def _basic_header(self, credentials: Credentials) -> str:
        # Basic auth goes up front on every request: encode it once per credentials.
        cached = self._basic
        if cached is None or cached[0] is not credentials:
            cached = self._basic = (credentials, basic_header(credentials))
        return cached[1]

    def authorization(self, repository: str, actions: str = PULL) -> dict[str, str]:
        """Headers to send up front, from what the registry challenged us with before."""
        if self.scheme == "basic" and self.credentials is not None:
            return {"Authorization": self._basic_header(self.credentials)}
        if self.scheme == "bearer":
            token = self.tokens.get(self._key(repository, actions))
            if token is not None:
                return {"Authorization": f"Bearer {token}"}
        return {}

    def on_challenge(
        self,
        answer: Answer,
        repository: str,
        actions: str,
        what: str,
        sent: Mapping[str, str],
    ) -> "str | TokenRequest":
        """A 401 to a request that carried ``sent``: the Authorization to retry it with, or the
        token request to make first. Raises PullError when the challenge cannot be answered."""
        challenge = Challenge.parse(answer.header("www-authenticate"))
        if challenge is None:
            raise failures.status_error(answer.status, answer.headers, answer.body, what)
        if challenge.scheme == "basic":
            if self.credentials is None:
                raise PullError(
                    ErrorClass.AUTH,
                    f"{what}: registry wants basic auth and no credentials were given",
                    status=401,
                )
            header = self._basic_header(self.credentials)
            if sent.get("Authorization") == header:
                raise failures.status_error(answer.status, answer.headers, answer.body, what)
            with self._lock:
                self.scheme = "basic"
            return header
        if challenge.scheme == "bearer":
            if not challenge.params.get("realm"):
                raise PullError(ErrorClass.PROTOCOL, f"{what}: bearer challenge without a realm")
            with self._lock:
                self.scheme = "bearer"
                self._realm = challenge.params["realm"]
                self._service = challenge.params.get("service", "")
            key = self._key(repository, actions)
            cached = self.tokens.get(key)
            if cached is not None and sent.get("Authorization") != f"Bearer {cached}":
                return f"Bearer {cached}"  # another request fetched one meanwhile
            self.tokens.drop(key)  # refused (revoked, key rotated) or none yet
            return TokenRequest(self._token_request(key, what), key)
        raise PullError(ErrorClass.AUTH, f"{what}: unsupported auth scheme {challenge.scheme!r}")

    def on_token(self, pending: TokenRequest, answer: Answer, what: str) -> str:
        """The Authorization header from the realm's answer (the token is kept for reuse)."""
        if answer.status != 200:
            raise failures.status_error(
                answer.status, answer.headers, answer.body, f"{what}: token request", token=True
            )
        try:
            body = json.loads(answer.body or b"{}")
            token = str(body.get("token") or body.get("access_token") or "")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError) as exc:
            raise PullError(ErrorClass.PROTOCOL, f"{what}: token response is not JSON") from exc
        if not token:
            raise PullError(ErrorClass.PROTOCOL, f"{what}: token response has no token")
        self.tokens.put(pending.key, token, lifetime)
        return f"Bearer {token}"

    def _key(self, repository: str, actions: str) -> tuple[str, str, str]:
        # The catalog is the one resource that is not a repository: its scope is
        # registry:catalog:* (a repository name never holds a colon, so the two cannot clash).
        if repository == CATALOG:
            return (self._realm, self._service, f"{CATALOG}:{actions}")
        return (self._realm, self._service, f"repository:{repository}:{actions}")

    def _token_request(self, key: tuple[str, str, str], what: str) -> Request:
        realm, service, scope = key
        params = {"scope": scope}
        if service:
            params["service"] = service
        headers = dict(IDENTITY)
        if self.credentials is not None:
            headers["Authorization"] = self._basic_header(self.credentials)
        return Request(
            "GET", realm, f"{what}: token request", failures.TOKEN_ROUTE, headers, params
        )


@dataclass(frozen=True)
class Exchanged:
    """A request that succeeded (2xx or 3xx), after answering at most one challenge."""

    answer: Answer
    auth_seconds: float  # answering the challenge: the token round trip, if any


def exchange(
    auth: Authenticator,
    request: Request,
    repository: str,
    actions: str = PULL,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> Steps[Exchanged]:
    """Send ``request`` with what ``auth`` knows, answer one 401, refuse any error status."""
    first = request.with_headers(auth.authorization(repository, actions))
    answer = yield first
    auth_seconds = 0.0
    if answer.status == 401 and answer.redirected_to:
        # Our credentials are the registry's: a challenge from the host a redirect led to is
        # not answered with them (its realm would get them), and a retry here would lose its
        # Authorization on the same redirect again. Docker's registry client drops it on a
        # redirect too (kept only between docker.com / docker.io hosts), as does curl -L.
        raise PullError(
            ErrorClass.AUTH,
            f"{request.what}: redirected to {answer.redirected_to}, which asks for "
            "credentials: the registry's are not sent to another host",
            status=401,
            detail={"redirected_to": answer.redirected_to},
        )
    if answer.status == 401:
        started = clock()
        step = auth.on_challenge(answer, repository, actions, request.what, first.headers)
        if isinstance(step, TokenRequest):
            header = auth.on_token(step, (yield step.request), request.what)
        else:
            header = step
        auth_seconds = clock() - started
        # The retried request's round trip is part of the work, not of authentication.
        answer = yield request.with_headers({"Authorization": header})
    if answer.status >= 400:
        raise failures.status_error(answer.status, answer.headers, answer.body, request.what)
    return Exchanged(answer, auth_seconds)


# -- ping -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ping:
    status: int
    auth_scheme: str  # "none", "basic", "bearer" or "unknown"
    api_version: str
    seconds: float


def ping_request(url: str) -> Request:
    return Request("GET", "/v2/", f"{url}/v2/", "/v2/", dict(IDENTITY))


def read_ping(answer: Answer, what: str, seconds: float) -> Ping:
    """``/v2/``'s answer: 200 (anonymous) or 401 (which scheme it wants); else an error."""
    if answer.status not in (200, 401):
        raise failures.status_error(answer.status, answer.headers, answer.body, what)
    scheme = "none"
    if answer.status == 401:
        challenge = Challenge.parse(answer.header("www-authenticate"))
        scheme = challenge.scheme if challenge else "unknown"
    return Ping(answer.status, scheme, answer.header("docker-distribution-api-version"), seconds)


# -- manifests --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Descriptor:
    digest: str
    size: int
    media_type: str = ""

    @classmethod
    def parse(cls, value: Any, what: str) -> "Descriptor":
        if not isinstance(value, dict):
            raise PullError(ErrorClass.PROTOCOL, f"{what}: a descriptor is not an object")
        digest, size = value.get("digest"), value.get("size")
        if not isinstance(digest, str) or isinstance(size, bool) or not isinstance(size, int):
            raise PullError(ErrorClass.PROTOCOL, f"{what}: a descriptor lacks digest or size")
        return cls(digest, size, str(value.get("mediaType") or ""))


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str
    auth_seconds: float = 0.0

    @property
    def is_index(self) -> bool:
        if self.media_type:
            return self.media_type in INDEX_MEDIA_TYPES
        # A registry that names no type: judge by shape (an index lists manifests, no layers).
        body = self.json()
        return isinstance(body.get("manifests"), list) and "layers" not in body

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except ValueError as exc:
            raise PullError(ErrorClass.PROTOCOL, f"manifest {self.digest} is not JSON") from exc
        if not isinstance(value, dict):
            raise PullError(ErrorClass.PROTOCOL, f"manifest {self.digest} is not a JSON object")
        return value


def manifest_request(repository: str, reference: str) -> Request:
    return Request(
        "GET",
        f"/v2/{repository}/manifests/{reference}",
        f"manifest {repository}:{reference}",
        "/v2/[name]/manifests/[ref]",
        {**IDENTITY, "Accept": MANIFEST_ACCEPT},
    )


def read_manifest(reference: str, answer: Answer, what: str, auth_seconds: float) -> Manifest:
    """Check a manifest's size and digest (against a digest reference, else the server's
    ``Docker-Content-Digest``)."""
    body = answer.body
    if len(body) > MAX_MANIFEST_BYTES:
        raise PullError(ErrorClass.PROTOCOL, f"{what}: manifest over {MAX_MANIFEST_BYTES} bytes")
    digest = sha256_digest(body)
    expected = (
        reference
        if reference.startswith("sha256:")
        else answer.header("docker-content-digest") or digest
    )
    if expected != digest:
        raise PullError(
            ErrorClass.DIGEST_MISMATCH, f"{what}: body hashes to {digest}, expected {expected}"
        )
    media_type = answer.header("content-type").split(";")[0].strip()
    return Manifest(body, media_type, digest, auth_seconds)


def fetch_manifest(auth: Authenticator, repository: str, reference: str) -> Steps[Manifest]:
    request = manifest_request(repository, reference)
    done = yield from exchange(auth, request, repository)
    return read_manifest(reference, done.answer, request.what, done.auth_seconds)


@dataclass
class Resolved:
    """What a tag resolved to, down to the platform's image manifest and its blobs."""

    digest: str  # what the reference pointed to (an index for multi-arch images)
    media_type: str
    manifest_digest: str  # the platform's image manifest
    blobs: list[Descriptor]  # config first, then the layers
    auth_seconds: float


def choose_platform(index: Manifest, platform: Platform | None, image: str) -> str:
    """The digest of ``platform``'s manifest in ``index``; PLATFORM_NOT_FOUND when absent."""
    if platform is None:
        raise PullError(
            ErrorClass.PLATFORM_NOT_FOUND, f"{image} is a multi-platform index; name a platform"
        )
    entries = [e for e in index.json().get("manifests") or [] if isinstance(e, dict)]
    for entry in entries:
        if platform.matches(entry.get("platform") or {}):
            return Descriptor.parse(entry, f"index of {image}").digest
    available = sorted(
        "/".join(
            str(p) for p in (e["platform"].get(k) for k in ("os", "architecture", "variant")) if p
        )
        for e in entries
        if isinstance(e.get("platform"), dict)
    )
    raise PullError(
        ErrorClass.PLATFORM_NOT_FOUND,
        f"{image} has no {platform} manifest (available: {', '.join(available) or 'none'})",
    )


def index_manifests(index: Manifest) -> list[Descriptor]:
    """Every manifest an index names (each platform's, attestations too), in index order."""
    entries = index.json().get("manifests")
    if not isinstance(entries, list):
        raise PullError(ErrorClass.PROTOCOL, f"index {index.digest} has no manifests list")
    what = f"index {index.digest[:19]}"
    return [Descriptor.parse(entry, what) for entry in entries]


def image_blobs(manifest: Manifest) -> list[Descriptor]:
    """Config, then layers, of an image manifest (schema 1 and other shapes are refused)."""
    body = manifest.json()
    config, layers = body.get("config"), body.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise PullError(
            ErrorClass.PROTOCOL, f"manifest {manifest.digest} has no config/layers (schema 1?)"
        )
    what = f"manifest {manifest.digest[:19]}"
    return [Descriptor.parse(d, what) for d in (config, *layers)]


def resolve(
    auth: Authenticator, image: ImageReference, platform: Platform | None
) -> Steps[Resolved]:
    """Tag (or digest) -> index -> the platform's manifest -> the blobs to fetch."""
    top = yield from fetch_manifest(auth, image.repository, image.reference)
    chosen, auth_seconds = top, top.auth_seconds
    if top.is_index:
        digest = choose_platform(top, platform, str(image))
        chosen = yield from fetch_manifest(auth, image.repository, digest)
        auth_seconds += chosen.auth_seconds
    return Resolved(top.digest, top.media_type, chosen.digest, image_blobs(chosen), auth_seconds)


# -- blobs ------------------------------------------------------------------------------------
def blob_request(repository: str, digest: str, *, method: str = "GET") -> Request:
    return Request(
        method,
        f"/v2/{repository}/blobs/{digest}",
        f"blob {repository}@{digest[:19]}",
        "/v2/[name]/blobs/[digest]",
        dict(IDENTITY),
        stream=method == "GET",
    )


def fetch_blob(auth: Authenticator, repository: str, digest: str) -> Steps[Exchanged]:
    """The exchange for one blob; its 2xx body is then streamed through a BlobCheck."""
    return exchange(auth, blob_request(repository, digest), repository)


class BlobCheck:
    """Checks a streamed blob: never more than its size, then exactly its size and digest."""

    __slots__ = ("_hasher", "descriptor", "received", "what")

    def __init__(self, descriptor: Descriptor, what: str, *, verify: bool = True) -> None:
        self.descriptor = descriptor
        self.what = what
        self.received = 0
        self._hasher = hashlib.sha256() if verify else None

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.descriptor.size:
            raise PullError(
                ErrorClass.DIGEST_MISMATCH,
                f"{self.what}: more than the {self.descriptor.size} bytes its descriptor states",
            )
        if self._hasher is not None:
            self._hasher.update(chunk)  # hashlib releases the GIL on large chunks

    def finish(self) -> None:
        if self.received < self.descriptor.size:
            raise PullError(
                ErrorClass.TRUNCATED,
                f"{self.what}: got {self.received} of {self.descriptor.size} bytes",
            )
        if self._hasher is not None:
            actual = "sha256:" + self._hasher.hexdigest()
            if actual != self.descriptor.digest:
                raise PullError(
                    ErrorClass.DIGEST_MISMATCH, f"{self.what}: content hashes to {actual}"
                )

    @property
    def verified(self) -> bool:
        return self._hasher is not None


# -- listings: the catalog and a repository's tags --------------------------------------------
# A guard against a registry whose Link headers never end (each one new, so no loop is seen).
MAX_LISTING_PAGES = 100_000


@dataclass(frozen=True)
class Listing:
    """A whole listing (repository or tag names, sorted) and how the registry paged it.

    ``paging``: ``single`` (one page shorter than ``n``), ``link`` (followed ``Link: rel="next"``
    headers), ``n-ignored`` (more than ``n`` names in one answer without a Link: everything),
    ``last`` (full pages without a Link, continued with ``last=<the page's last name>``),
    ``unpaged`` (the registry answered ``last`` with names at or before it, or out of order: the
    names came from one request without ``n``).
    """

    names: list[str]
    pages: int
    paging: str


def listing_request(path: str, what: str, route: str, params: Mapping[str, str]) -> Request:
    return Request("GET", path, what, route, dict(IDENTITY), dict(params))


def read_listing(answer: Answer, key: str, what: str) -> list[str]:
    """The names under ``key`` (``repositories`` or ``tags``); null or absent is none."""
    try:
        body = json.loads(answer.body or b"{}")
    except ValueError as exc:
        raise PullError(ErrorClass.PROTOCOL, f"{what}: answer is not JSON") from exc
    names = body.get(key) if isinstance(body, dict) else None
    if names is None and isinstance(body, dict):
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PullError(ErrorClass.PROTOCOL, f"{what}: {key!r} is not a list of names")
    return names


def next_link(answer: Answer, base_url: str, path: str, what: str) -> dict[str, str] | None:
    """The query of the ``Link: <...>; rel="next"`` (RFC 5988) of a listing page, or None.

    A next page on another origin, or at another path, is refused (PROTOCOL): following it would
    send this registry's credentials elsewhere, or list something else.
    """
    header = answer.header("link")
    if not header:
        return None
    for link in _split_links(header):
        target, _, attributes = link.partition(">")
        rels: list[str] = []
        for attribute in attributes.split(";"):
            name, _, value = attribute.strip().partition("=")
            if name.strip().lower() == "rel":
                rels += value.strip().strip('"').lower().split()
        if "next" not in rels:
            continue
        url = urlsplit(target.strip().lstrip("<").strip())
        ours = urlsplit(base_url)
        if url.netloc and (url.scheme, url.netloc) != (ours.scheme, ours.netloc):
            raise PullError(
                ErrorClass.PROTOCOL,
                f"{what}: next page is on another origin ({url.scheme}://{url.netloc}); "
                "not followed",
            )
        if url.path != path:
            raise PullError(
                ErrorClass.PROTOCOL, f"{what}: next page is at {url.path!r}, not {path!r}"
            )
        return dict(parse_qsl(url.query, keep_blank_values=True))
    return None


def _split_links(header: str) -> list[str]:
    """Link values split at the commas between them (not those inside ``<...>``)."""
    links: list[str] = []
    current: list[str] = []
    inside = False
    for char in header:
        if char == "<":
            inside = True
        elif char == ">":
            inside = False
        if char == "," and not inside:
            links.append("".join(current))
            current = []
        else:
            current.append(char)
    links.append("".join(current))
    return [link.strip() for link in links if link.strip().startswith("<")]


def list_names(
    auth: Authenticator,
    base_url: str,
    path: str,
    key: str,
    resource: str,
    page_size: int,
    what: str,
) -> Steps[Listing]:
    """Every name of a paged listing (``/v2/_catalog`` or ``/v2/<name>/tags/list``).

    Asks ``n=page_size``, follows ``Link: rel="next"``, and copes with what real registries do
    instead: answer everything at once (ignore ``n``), page without a Link (continue with
    ``last``), or ignore ``last`` (then one request without ``n`` has the whole listing).
    """
    actions = "*" if resource == CATALOG else PULL
    route = "/v2/_catalog" if resource == CATALOG else "/v2/[name]/tags/list"

    def get(params: dict[str, str]) -> Steps[Answer]:
        request = listing_request(path, what, route, params)
        return (yield from exchange(auth, request, resource, actions)).answer

    params: dict[str, str] = {"n": str(page_size)}
    asked: set[tuple[tuple[str, str], ...]] = set()
    names: list[str] = []
    seen: set[str] = set()
    pages, by_link, by_last, n_ignored = 0, False, False, False
    while True:
        marker = tuple(sorted(params.items()))
        if marker in asked:
            raise PullError(
                ErrorClass.PROTOCOL, f"{what}: pagination loops (asked twice: {params})"
            )
        if pages >= MAX_LISTING_PAGES:
            raise PullError(ErrorClass.PROTOCOL, f"{what}: over {MAX_LISTING_PAGES} pages")
        asked.add(marker)
        answer = yield from get(params)
        pages += 1
        page = read_listing(answer, key, what)
        link = next_link(answer, base_url, path, what)
        after = params.get("last", "")
        if after and link is None and page and page == names[: len(page)]:
            # The first page again: either ``last`` is ignored, or the registry starts again
            # from the top when asked past the end (ggcr's tags). One request without ``n``
            # tells them apart.
            answer = yield from get({})
            pages += 1
            whole = sorted(set(read_listing(answer, key, what)))
            if whole != sorted(names):
                return Listing(whole, pages, "unpaged")
            break
        unordered = page != sorted(page) and link is None and len(page) == page_size
        if unordered or (after and link is None and any(n <= after or n in seen for n in page)):
            # ``last`` not honoured (or meaningless, names out of order): paging cannot be
            # trusted here, one request without ``n`` can.
            answer = yield from get({})
            return Listing(sorted(set(read_listing(answer, key, what))), pages + 1, "unpaged")
        fresh = [n for n in page if n not in seen]
        seen.update(fresh)
        names += fresh
        if link is not None:
            params, by_link = link, True
            continue
        if after and fresh:
            by_last = True
        if len(page) > page_size:
            n_ignored = True
            break
        if len(page) < page_size:
            break
        # A full page and no Link: some registries page without one; ask what comes after it.
        params = {"n": str(page_size), "last": page[-1]}
    paging = "link" if by_link else "last" if by_last else "n-ignored" if n_ignored else "single"
    return Listing(sorted(names), pages, paging)
