"""Locust user that pulls container images from a registry the way a node does.

Each user is one node: it learns how the registry authenticates once (``GET /v2/``), then pulls
back to back: the tag's manifest or index (picking the platform's manifest), then the config and
layers, ``--blob-concurrency`` at a time (dockerd pulls 3), checking each blob's size and, with
``--verify-digests``, its sha256 while it streams. Basic auth is sent up front once challenged;
bearer tokens are fetched per repository and reused until shortly before they expire, and
fetched again when the registry answers 401.

What Locust reports: requests named by route template (``/v2/``, ``[token]``,
``/v2/[name]/manifests/[ref]``, ``/v2/[name]/blobs/[digest]``; a blob's time includes its whole
body), plus one ``PULL`` request per whole image pull, named after the image, whose
response_time is the pull's exact duration. Locust's percentiles are rounded, so with
``--records-dir`` every process also writes one exact JSON line per pull there
(``chaosregistry.loadgen.records`` documents and reads them).

Modes: ``warm`` draws images from the weighted mix again and again (a mirror serves them from
its cache); ``cold`` pulls each image of the list once, in order, shared out between processes
by ``worker index + stride * n`` (``--fresh-stride`` = number of worker processes), so every
pull asks for content nobody pulled before; once the list is used up it starts over and the
records say ``"fresh": false``. ``chaosregistry.loadgen.runner`` pushes such never-seen images
to the origin registry before a cold run.

Settings (custom arguments; each also read from the environment variable
``CHAOSREGISTRY_LOAD_<NAME>``, e.g. ``CHAOSREGISTRY_LOAD_IMAGES``; no secret is ever taken from
the command line):

    --images            image mix: JSON list of "repo:tag" / {"image", "weight"}, a
                        comma-separated list, or @file.json                      [IMAGES]
    --pull-mode         warm | cold                                              [MODE]
    --platform          os/arch[/variant] picked from an index                   [PLATFORM]
    --credentials-file  JSON {"username", "password"}                 [CREDENTIALS_FILE]
    --verify-digests    true | false                                             [VERIFY]
    --blob-concurrency  blobs at once per pull (default 3)          [BLOB_CONCURRENCY]
    --records-dir       where each process writes its pull records        [RECORDS_DIR]
    --fresh-stride      cold mode: number of worker processes            [FRESH_STRIDE]
    --pull-timeout      seconds to connect and per read (default 30)          [TIMEOUT]
    --tls-verify        true | false | path to a CA bundle                 [TLS_VERIFY]
    --load-tag          any text; marks the processes of one load                 [TAG]

Run by hand (the runner does the same with ``--processes``)::

    locust -f loadgen/locustfile.py --headless -u 20 -r 10 -t 60s --host http://127.0.0.1:15000 \\
        --images '["tiny/hello:latest", {"image": "shop/api:latest", "weight": 3}]' \\
        --credentials-file run/secrets/credentials.json --records-dir /tmp/pulls
"""

import base64
import hashlib
import itertools
import json
import os
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import gevent
from chaosregistry.loadgen.failures import classify
from chaosregistry.loadgen.mix import ImageChoice, parse_image_mix
from chaosregistry.loadgen.records import record_file_name
from geventhttpclient.response import HTTPParseError
from geventhttpclient.useragent import BadStatusCode
from geventhttpclient.useragent import ConnectionError as UserAgentError
from locust import FastHttpUser, constant, events, task
from locust.contrib.fasthttp import FastResponse
from locust.env import Environment

from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.oci.auth import DEFAULT_TOKEN_LIFETIME, EXPIRY_MARGIN_SECONDS, Challenge
from chaosregistry.oci.client import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES
from chaosregistry.oci.reference import Platform

MODES = ("warm", "cold")
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
# The distribution spec lets registries refuse manifests over 4 MiB; so do we.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
READ_CHUNK = 256 * 1024
# Blobs up to this size are read in one piece (cheaper per request); larger ones stream.
STREAM_ABOVE = 1024 * 1024
FLUSH_INTERVAL = 0.5
# Bodies are hashed exactly as sent: ask for no content coding (Locust asks for gzip by default).
IDENTITY = {"Accept-Encoding": "identity"}

T = TypeVar("T")


# -- settings ---------------------------------------------------------------------------------
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("chaosregistry pull load")

    def add(name: str, env: str, default: str, text: str) -> None:
        group.add_argument(name, type=str, default=default, env_var=env, help=text)

    add("--images", "CHAOSREGISTRY_LOAD_IMAGES", "", "image mix (JSON list, a,b,c or @file)")
    add("--pull-mode", "CHAOSREGISTRY_LOAD_MODE", "warm", "warm | cold")
    add("--platform", "CHAOSREGISTRY_LOAD_PLATFORM", "linux/amd64", "platform to pull")
    add("--credentials-file", "CHAOSREGISTRY_LOAD_CREDENTIALS_FILE", "", "JSON credentials")
    add("--verify-digests", "CHAOSREGISTRY_LOAD_VERIFY", "true", "check sha256 while streaming")
    add("--blob-concurrency", "CHAOSREGISTRY_LOAD_BLOB_CONCURRENCY", "3", "blobs at once")
    add("--records-dir", "CHAOSREGISTRY_LOAD_RECORDS_DIR", "", "directory for pull records")
    add("--fresh-stride", "CHAOSREGISTRY_LOAD_FRESH_STRIDE", "1", "cold: worker processes")
    add("--pull-timeout", "CHAOSREGISTRY_LOAD_TIMEOUT", "30", "seconds per connect / read")
    add("--tls-verify", "CHAOSREGISTRY_LOAD_TLS_VERIFY", "true", "true | false | CA bundle")
    # Only marks the command line, so the runner can find every process of one load.
    add("--load-tag", "CHAOSREGISTRY_LOAD_TAG", "", "marks this load's processes")


def _flag(name: str, text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ConfigError(f"--{name} must be true or false, got {text!r}")


def _whole(name: str, text: str, low: int) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise ConfigError(f"--{name} must be a whole number, got {text!r}") from None
    if value < low:
        raise ConfigError(f"--{name} must be >= {low}, got {value}")
    return value


def _read_credentials(path: str) -> str | None:
    """The ``Basic`` header value for the credentials in ``path`` (None without a path)."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
        raw = f"{data['username']}:{data['password']}".encode()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--credentials-file {path}: unreadable ({type(exc).__name__})") from None
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class PullSettings:
    """Everything a user needs, parsed once per process from Locust's options."""

    images: tuple[ImageChoice, ...]
    cumulative_weights: tuple[float, ...]
    mode: str
    platform: Platform
    basic_auth: str | None
    verify: bool
    blob_concurrency: int
    records_dir: Path | None
    fresh_stride: int
    timeout: float
    tls_verify: bool | str

    @classmethod
    def from_options(cls, options: Any) -> "PullSettings":
        """Parse Locust's parsed options; ConfigError names the first bad one."""
        mode = str(options.pull_mode)
        if mode not in MODES:
            raise ConfigError(f"--pull-mode must be warm or cold, got {mode!r}")
        images = tuple(parse_image_mix(options.images))
        try:
            timeout = float(options.pull_timeout)
        except ValueError:
            raise ConfigError(
                f"--pull-timeout must be seconds, got {options.pull_timeout!r}"
            ) from None
        if not timeout > 0:
            raise ConfigError(f"--pull-timeout must be positive, got {timeout}")
        tls = str(options.tls_verify)
        tls_verify: bool | str = tls if tls.lower() not in _BOOLEAN_WORDS else _flag("tls", tls)
        return cls(
            images=images,
            cumulative_weights=tuple(itertools.accumulate(choice.weight for choice in images)),
            mode=mode,
            platform=Platform.parse(str(options.platform)),
            basic_auth=_read_credentials(str(options.credentials_file)),
            verify=_flag("verify-digests", options.verify_digests),
            blob_concurrency=_whole("blob-concurrency", options.blob_concurrency, 1),
            records_dir=Path(options.records_dir) if options.records_dir else None,
            fresh_stride=_whole("fresh-stride", options.fresh_stride, 1),
            timeout=timeout,
            tls_verify=tls_verify,
        )


_BOOLEAN_WORDS = frozenset({"true", "false", "1", "0", "yes", "no"})


# -- per-process state ------------------------------------------------------------------------
class RecordWriter:
    """Appends this process's pull records to its own JSON-lines file, flushed every 0.5 s."""

    def __init__(self, directory: Path, worker: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / record_file_name(worker)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._pending: list[str] = []
        self._flusher = gevent.spawn(self._flush_forever)

    def add(self, record: dict[str, Any]) -> None:
        self._pending.append(json.dumps(record, separators=(",", ":")))

    def flush(self) -> None:
        if not self._pending:
            return
        data = ("\n".join(self._pending) + "\n").encode()
        self._pending.clear()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL)
            self.flush()


class _Process:
    """State shared by the users of this Locust process."""

    def __init__(self) -> None:
        self.settings: PullSettings | None = None
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.worker_index = 0
        self.fresh_count = itertools.count()
        self._writer: RecordWriter | None = None

    def configure(self, environment: Environment) -> PullSettings:
        self.settings = PullSettings.from_options(environment.parsed_options)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"  # after a fork, this process
        self.worker_index = max(0, int(getattr(environment.runner, "worker_index", 0) or 0))
        _tune_user_class(self.settings)
        return self.settings

    def writer(self) -> RecordWriter | None:
        if self._writer is None and self.settings is not None and self.settings.records_dir:
            self._writer = RecordWriter(self.settings.records_dir, self.worker)
        return self._writer

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def next_fresh(self, settings: PullSettings) -> tuple[ImageChoice, bool]:
        index = self.worker_index + settings.fresh_stride * next(self.fresh_count)
        return settings.images[index % len(settings.images)], index < len(settings.images)


_process = _Process()


def _on_init(environment: Environment, **_: Any) -> None:
    # Fail fast with one line on the node that was given the options; remote workers receive
    # them from the master only when the test starts.
    # Locust starts its --run-time timer from gevent's cached loop time, which is stale by the
    # time it took to import this file: refresh it, or a 3 s run lasts 2.
    gevent.get_hub().loop.update_now()
    options = environment.parsed_options
    if options is None or getattr(options, "worker", False):
        return
    try:
        _process.configure(environment)
    except ConfigError as exc:
        raise SystemExit(f"chaosregistry locustfile: {exc}") from None


def _on_test_start(environment: Environment, **_: Any) -> None:
    _process.configure(environment)


def _on_test_stop(**_: Any) -> None:
    _process.flush()


def _on_quitting(**_: Any) -> None:
    _process.flush()


def _listen(hook: Any, handler: Callable[..., None]) -> None:
    hook.add_listener(handler)


_listen(events.init_command_line_parser, _add_arguments)
_listen(events.init, _on_init)
_listen(events.test_start, _on_test_start)
_listen(events.test_stop, _on_test_stop)
_listen(events.quitting, _on_quitting)


# -- the user ---------------------------------------------------------------------------------
class _Phases:
    __slots__ = ("auth",)

    def __init__(self) -> None:
        self.auth = 0.0


class NodeAuth:
    """How one node authenticates: learnt once from ``GET /v2/``, tokens kept per repository."""

    def __init__(self, user: "RegistryPullUser", basic_auth: str | None) -> None:
        self._user = user
        self._basic = basic_auth
        self.scheme: str | None = None  # "none", "basic" or "bearer" once learnt
        self._realm = ""
        self._service = ""
        self._tokens: dict[str, tuple[str, float]] = {}

    def headers(self, repository: str, phases: _Phases) -> dict[str, str]:
        """Request headers for ``repository``: pings and fetches a token first when needed."""
        if self.scheme is None:
            self._ping(phases)
        if self.scheme == "basic" and self._basic:
            return {**IDENTITY, "Authorization": self._basic}
        if self.scheme == "bearer":
            cached = self._tokens.get(repository)
            if cached is not None and cached[1] > time.monotonic():
                return {**IDENTITY, "Authorization": f"Bearer {cached[0]}"}
            return {**IDENTITY, "Authorization": f"Bearer {self._fetch_token(repository, phases)}"}
        return dict(IDENTITY)

    def answer(self, header: str | None, repository: str, phases: _Phases) -> bool:
        """Learn from a 401's challenge; True when sending the request again may succeed."""
        challenge = Challenge.parse(header or "")
        if challenge is None:
            return False
        if challenge.scheme == "basic":
            retry = self.scheme != "basic" and self._basic is not None
            self.scheme = "basic"
            return retry
        if challenge.scheme == "bearer" and challenge.params.get("realm"):
            self.scheme = "bearer"
            self._realm = challenge.params["realm"]
            self._service = challenge.params.get("service", "")
            self._tokens.pop(repository, None)  # expired or revoked: fetch a new one
            self._fetch_token(repository, phases)
            return True
        return False

    def _ping(self, phases: _Phases) -> None:
        started = time.perf_counter()
        try:
            with self._user.client.get(
                "/v2/", name="/v2/", headers=dict(IDENTITY), catch_response=True
            ) as response:
                status = response.status_code
                if status == 200:
                    self.scheme = "none"
                elif status == 401:
                    challenge = Challenge.parse(_header(response, "www-authenticate"))
                    if challenge is None or challenge.scheme not in ("basic", "bearer"):
                        failure = PullError(ErrorClass.AUTH, "ping auth: unsupported challenge")
                        response.failure(failure)
                        raise failure
                    self.scheme = challenge.scheme
                    self._realm = challenge.params.get("realm", "")
                    self._service = challenge.params.get("service", "")
                    response.success()
                else:
                    failure = _request_failure(
                        "ping", response.status_code, getattr(response, "error", None), response
                    )
                    response.failure(failure)
                    raise failure
        finally:
            phases.auth += time.perf_counter() - started

    def _fetch_token(self, repository: str, phases: _Phases) -> str:
        if not self._realm:
            raise PullError(ErrorClass.PROTOCOL, "token: bearer challenge without a realm")
        started = time.perf_counter()
        params = {"scope": f"repository:{repository}:pull"}
        if self._service:
            params["service"] = self._service
        headers = dict(IDENTITY)
        if self._basic:
            headers["Authorization"] = self._basic
        try:
            with self._user.client.get(
                self._realm, name="[token]", headers=headers, params=params, catch_response=True
            ) as response:
                if response.status_code != 200:
                    failure = _request_failure(
                        "token", response.status_code, getattr(response, "error", None), response
                    )
                    response.failure(failure)
                    raise failure
                try:
                    body = json.loads(response.content or b"{}")
                    token = str(body.get("token") or body.get("access_token") or "")
                    lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
                except (ValueError, AttributeError, TypeError):
                    token, lifetime = "", 0.0
                if not token:
                    failure = PullError(ErrorClass.PROTOCOL, "token: response holds no token")
                    response.failure(failure)
                    raise failure
        finally:
            phases.auth += time.perf_counter() - started
        expires = time.monotonic() + max(0.0, lifetime - EXPIRY_MARGIN_SECONDS)
        self._tokens[repository] = (token, expires)
        return token


def _request_failure(
    what: str, status: int, error: BaseException | None, response: Any = None
) -> PullError:
    """A PullError for a request that got no usable answer; the message names no image, so
    Locust's failure table groups by cause."""
    error_class = classify(status=status, error=error)
    if status:
        detail: dict[str, Any] = {}
        if status == 429 and response is not None:
            detail = {
                key: _header(response, key)
                for key in ("retry-after", "ratelimit-limit", "ratelimit-remaining")
                if _header(response, key)
            }
        return PullError(error_class, f"{what} {error_class}: HTTP {status}", status=status,
                         detail=detail)  # fmt: skip
    cause = getattr(error, "original", None) or error
    return PullError(error_class, f"{what} {error_class}: {type(cause).__name__}")


def _tune_user_class(settings: PullSettings) -> None:
    """FastHttpUser reads these class attributes when a user is created."""
    RegistryPullUser.network_timeout = settings.timeout
    RegistryPullUser.connection_timeout = settings.timeout
    RegistryPullUser.concurrency = settings.blob_concurrency
    if settings.tls_verify is False:
        RegistryPullUser.insecure = True
        RegistryPullUser.ssl_context_factory = None
    else:
        RegistryPullUser.insecure = False
        cafile = settings.tls_verify if isinstance(settings.tls_verify, str) else None
        RegistryPullUser.ssl_context_factory = lambda: ssl.create_default_context(cafile=cafile)


class RegistryPullUser(FastHttpUser):
    """One node pulling images back to back (see the module docstring)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        settings = _process.settings or _process.configure(self.environment)
        self.settings = settings
        self.auth = NodeAuth(self, settings.basic_auth)
        self.rng = random.Random()

    @task
    def pull_next(self) -> None:
        settings = self.settings
        if settings.mode == "cold":
            choice, fresh = _process.next_fresh(settings)
            self.pull(choice, label=f"{choice.repository}:[fresh]", fresh=fresh)
        else:
            (choice,) = self.rng.choices(settings.images, cum_weights=settings.cumulative_weights)
            self.pull(choice, label=choice.label, fresh=None)

    # -- one pull -----------------------------------------------------------------------------
    def pull(self, choice: ImageChoice, *, label: str, fresh: bool | None) -> None:
        """Pull ``choice`` once; fire its PULL event and write its record."""
        phases = _Phases()
        start = time.time()
        started = time.perf_counter()
        manifest_seconds = blobs_seconds = 0.0
        size = blobs = 0
        error: PullError | None = None
        interrupted = False
        try:
            manifest = self._resolve(choice, phases)
            resolved = time.perf_counter()
            manifest_seconds = resolved - started - phases.auth
            descriptors = [manifest["config"], *manifest["layers"]]
            auth_before_blobs = phases.auth
            size = self._fetch_blobs(choice.repository, descriptors, phases)
            blobs = len(descriptors)
            blobs_seconds = time.perf_counter() - resolved - (phases.auth - auth_before_blobs)
        except PullError as exc:
            error = exc
        except gevent.GreenletExit:
            interrupted = True  # the load is stopping: neither a success nor a failure
            raise
        except Exception as exc:
            error = PullError(ErrorClass.PROTOCOL, f"unexpected {type(exc).__name__}: {exc}")
            raise
        finally:
            duration = time.perf_counter() - started
            if not interrupted:
                self.environment.events.request.fire(
                    request_type="PULL",
                    name=label,
                    response_time=duration * 1000.0,
                    response_length=size,
                    exception=error,
                    context={},
                )
            writer = _process.writer()
            if writer is not None:
                writer.add(
                    {
                        "start": start,
                        "end": start + duration,
                        "duration": duration,
                        "image": choice.label,
                        "ok": error is None and not interrupted,
                        "error": None if error is None else str(error.error_class),
                        "message": None if error is None else str(error),
                        "interrupted": interrupted,
                        "bytes": size,
                        "blobs": blobs,
                        "phases": {
                            "auth": phases.auth,
                            "manifest": manifest_seconds,
                            "blobs": blobs_seconds,
                        },
                        "worker": _process.worker,
                        "fresh": fresh,
                    }
                )

    def _resolve(self, choice: ImageChoice, phases: _Phases) -> dict[str, Any]:
        """The platform's image manifest for ``choice`` (through an index when there is one)."""
        body, media_type = self._manifest(choice.repository, choice.reference, phases)
        document = _json_object(body, "manifest")
        if media_type in INDEX_MEDIA_TYPES or "manifests" in document:
            entries = document.get("manifests")
            platform = self.settings.platform
            digest = next(
                (
                    str(entry.get("digest"))
                    for entry in entries or []
                    if isinstance(entry, dict) and platform.matches(entry.get("platform") or {})
                ),
                None,
            )
            if digest is None:
                raise PullError(ErrorClass.PLATFORM_NOT_FOUND, f"index has no {platform} manifest")
            body, _ = self._manifest(choice.repository, digest, phases)
            document = _json_object(body, "manifest")
        if not isinstance(document.get("config"), dict) or not isinstance(
            document.get("layers"), list
        ):
            raise PullError(ErrorClass.PROTOCOL, "manifest has no config/layers")
        return document

    def _manifest(self, repository: str, reference: str, phases: _Phases) -> tuple[bytes, str]:
        def read(response: FastResponse, body: bytes | None) -> tuple[bytes, str]:
            assert body is not None  # manifests are small: read whole
            if len(body) > MAX_MANIFEST_BYTES:
                raise PullError(ErrorClass.PROTOCOL, f"manifest over {MAX_MANIFEST_BYTES} bytes")
            if self.settings.verify:
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                expected = (
                    reference
                    if reference.startswith("sha256:")
                    else _header(response, "docker-content-digest") or digest
                )
                if digest != expected:
                    raise PullError(ErrorClass.DIGEST_MISMATCH, "manifest: body digest differs")
            return body, _header(response, "content-type").split(";")[0].strip()

        return self._exchange(
            f"/v2/{repository}/manifests/{reference}",
            "/v2/[name]/manifests/[ref]",
            "manifest",
            repository,
            phases,
            read,
            accept=MANIFEST_ACCEPT,
        )

    def _fetch_blobs(
        self, repository: str, descriptors: list[dict[str, Any]], phases: _Phases
    ) -> int:
        """Fetch every blob, ``blob_concurrency`` at a time (this greenlet and helpers).

        After the first failure no blob is started and running ones stop at their next chunk.
        """
        pending = list(reversed(descriptors))
        failures: list[BaseException] = []
        fetched = [0]

        def work() -> None:
            while pending and not failures:
                descriptor = pending.pop()
                try:
                    received = self._blob(repository, descriptor, phases, failures)
                except Exception as exc:
                    failures.append(exc)
                else:
                    fetched[0] += received  # after the call: other greenlets ran meanwhile

        # Spawning costs: this greenlet is one of the workers.
        workers = min(self.settings.blob_concurrency, len(descriptors))
        helpers = [gevent.spawn(work) for _ in range(workers - 1)]
        try:
            work()
            for helper in helpers:
                helper.join()
        finally:
            if not all(helper.dead for helper in helpers):  # we are being killed
                gevent.killall(helpers, block=True)
        if failures:
            raise failures[0]
        return fetched[0]

    def _blob(
        self,
        repository: str,
        descriptor: dict[str, Any],
        phases: _Phases,
        failures: list[BaseException],
    ) -> int:
        digest = str(descriptor.get("digest"))
        size = int(descriptor.get("size") or 0)
        verify = self.settings.verify

        def read(response: FastResponse, body: bytes | None) -> int:
            hasher = hashlib.sha256() if verify else None
            received = 0
            for chunk in _chunks(response) if body is None else (body,):
                if failures:
                    raise PullError(ErrorClass.PROTOCOL, "blob: cancelled, the pull failed")
                received += len(chunk)
                if received > size:
                    raise PullError(ErrorClass.DIGEST_MISMATCH, "blob: longer than its descriptor")
                if hasher is not None:
                    hasher.update(chunk)
            if received < size:
                raise PullError(ErrorClass.TRUNCATED, f"blob: got {received} of {size} bytes")
            if hasher is not None and "sha256:" + hasher.hexdigest() != digest:
                raise PullError(ErrorClass.DIGEST_MISMATCH, "blob: content digest differs")
            return received

        return self._exchange(
            f"/v2/{repository}/blobs/{digest}",
            "/v2/[name]/blobs/[digest]",
            "blob",
            repository,
            phases,
            read,
            stream=size > STREAM_ABOVE,
        )

    def _exchange(
        self,
        path: str,
        name: str,
        what: str,
        repository: str,
        phases: _Phases,
        consume: Callable[[FastResponse, bytes | None], T],
        *,
        accept: str = "",
        stream: bool = False,
    ) -> T:
        """GET ``path`` (answering one auth challenge) and hand the response to ``consume``,
        with the whole body (or None with ``stream``: ``consume`` reads it).

        Sent through this FastHttpUser's own client and connection pool; the request event is
        fired here so its time covers the whole body. Failures are reported to Locust and
        raised as classified PullErrors.
        """
        url = self.client.base_url + path if self.client.base_url else path
        for attempt in (1, 2):
            headers = self.auth.headers(repository, phases)
            if accept:
                headers["Accept"] = accept
            start = time.time()
            started = time.perf_counter()
            response, error = self._open(url, headers)
            status = response.status_code if response is not None else 0
            if status == 401 and attempt == 1 and response is not None:
                challenged = time.perf_counter() - started
                if self.auth.answer(_header(response, "www-authenticate"), repository, phases):
                    # A challenge answered is no failure; its time excludes the token fetch.
                    self._report(name, start, challenged, 0, None)
                    continue
            length = 0
            try:
                if response is None or not 200 <= status < 300:
                    raise _request_failure(what, status, error, response)
                try:
                    body = None if stream else response.content
                    length = len(body) if body is not None else 0
                    result = consume(response, body)
                except (OSError, gevent.Timeout, HTTPParseError) as exc:
                    error_class = classify(error=exc, in_body=True)
                    raise PullError(
                        error_class, f"{what} {error_class}: {type(exc).__name__}"
                    ) from exc
                finally:
                    if stream:
                        response.release()
            except PullError as failure:
                self._report(name, start, time.perf_counter() - started, length, failure)
                raise
            elapsed = time.perf_counter() - started
            self._report(name, start, elapsed, length or _content_length(response), None)
            return result
        raise PullError(ErrorClass.AUTH, f"{what} auth: challenged again after authenticating")

    def _open(
        self, url: str, headers: dict[str, str]
    ) -> tuple[FastResponse | None, BaseException | None]:
        """The response (status < 400, or the error status's response) or the error."""
        try:
            response = self.client.client.urlopen(url, method="GET", headers=headers)
            return cast(FastResponse, response), None
        except BadStatusCode as exc:
            return getattr(exc, "response", None), exc
        except (OSError, gevent.Timeout, HTTPParseError, UserAgentError) as exc:
            return None, exc

    def _report(
        self, name: str, start: float, seconds: float, length: int, failure: BaseException | None
    ) -> None:
        self.environment.events.request.fire(
            request_type="GET",
            name=name,
            response_time=seconds * 1000.0,
            response_length=length,
            exception=failure,
            context={},
            start_time=start,
            url=None,
            response=None,
        )


def _content_length(response: FastResponse) -> int:
    try:
        return int(_header(response, "content-length") or 0)
    except ValueError:
        return 0


def _header(response: Any, name: str) -> str:
    headers = response.headers
    value = headers.get(name) if headers else None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value or "")


def _chunks(response: FastResponse) -> Iterator[bytes]:
    while chunk := response.read(READ_CHUNK):
        yield chunk


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise PullError(ErrorClass.PROTOCOL, f"{what}: not JSON") from None
    if not isinstance(value, dict):
        raise PullError(ErrorClass.PROTOCOL, f"{what}: not a JSON object")
    return value
