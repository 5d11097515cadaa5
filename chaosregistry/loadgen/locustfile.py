"""Locust user that pulls container images from a registry the way a node does.

Each user is one node. It runs the same pull protocol as the probes
(:mod:`chaosregistry.oci.protocol`: authentication, manifest/index and platform choice, size
and digest checks, error classes) and only does the I/O: the tag's manifest or index, the
platform's manifest, then the config and layers, ``--blob-concurrency`` at a time (dockerd
pulls 3), each blob's size and, with ``--verify-digests``, its sha256 checked while it streams.
Basic auth is sent up front once challenged; bearer tokens are fetched per repository and
reused until shortly before they expire, and fetched again when the registry refuses one.

What Locust reports: requests named by route template (``[token]``,
``/v2/[name]/manifests/[ref]``, ``/v2/[name]/blobs/[digest]``; a blob's time includes its whole
body), plus one ``PULL`` request per whole image pull, named after the image, whose
response_time is the pull's exact duration. Locust's percentiles are rounded, so with
``--records-dir`` every process also writes one exact JSON line per pull there
(``chaosregistry.loadgen.records`` documents and reads them).

Pulls follow each other with no pause while they succeed, unless ``--pull-interval`` spaces
their starts; after a failed pull a node backs off (``chaosregistry.loadgen.pacing``: by default
0.05 s doubling to 1 s while failures go on, jittered, reset by a success), as a real node does,
instead of retrying hundreds of times a second; ``--backoff false`` retries at once (a flood
test).

Modes: ``warm`` draws images from the weighted mix again and again (a mirror serves them from
its cache); ``cold`` pulls each image of the list once, in order, shared out between processes
by ``worker index + stride * n`` (``--fresh-stride`` = number of worker processes), so every
pull asks for content nobody pulled before; once the list is used up it starts over and the
records say ``"fresh": false``. ``chaosregistry.loadgen.launch`` pushes such never-seen images
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
    --connect-to        host:port to open the registry's connections at (a fault proxy's
                        listener); Host, SNI and the name check stay --host's  [CONNECT_TO]
    --load-tag          any text; marks the processes of one load                 [TAG]
    --sli-sink          host:port (UDP) of the SLI exporter: one datagram per pull [SLI_SINK]
    --backoff           true | false: back off after failed pulls (default true)   [BACKOFF]
    --backoff-base      seconds waited after the first failure (default 0.05) [BACKOFF_BASE]
    --backoff-cap       longest wait in seconds (default 1)                    [BACKOFF_CAP]
    --pull-interval     seconds from one pull's start to the node's next (default 0:
                        back to back)                                      [PULL_INTERVAL]

As a Locust worker, the master's settings replace the worker's own when the test starts,
except ``--credentials-file``, ``--records-dir``, ``--tls-verify``, ``--sli-sink`` and
``--connect-to``: they name this machine's files, sink and proxy, so a value given on the
worker's command line wins.

Run by hand (the runner does the same with ``--processes``)::

    locust -f loadgen/locustfile.py --headless -u 20 -r 10 -t 60s --host http://127.0.0.1:15000 \\
        --images '["tiny/hello:latest", {"image": "shop/api:latest", "weight": 3}]' \\
        --credentials-file run/secrets/credentials.json --records-dir /tmp/pulls
"""

import itertools
import json
import os
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urljoin

import gevent
from locust import FastHttpUser, events, task
from locust.contrib.fasthttp import FastResponse
from locust.env import Environment
from locust.rpc import Message
from locust.runners import STATE_MISSING, MasterRunner

from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.experiment.settings import split_address
from chaosregistry.loadgen import failures as wire
from chaosregistry.loadgen.connect import ConnectToClientPool, origin_of
from chaosregistry.loadgen.mix import ImageChoice, parse_image_mix
from chaosregistry.loadgen.pacing import (
    DEFAULT_BACKOFF,
    DEFAULT_PULL_INTERVAL,
    Backoff,
    check_pull_interval,
    next_wait,
)
from chaosregistry.loadgen.records import record_file_name
from chaosregistry.observability.sli import SliSink
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.protocol import (
    Answer,
    Authenticator,
    BlobCheck,
    Descriptor,
    Exchanged,
    Request,
    Steps,
    blob_request,
    exchange,
    other_origin,
    resolve,
)
from chaosregistry.oci.reference import ImageReference, Platform

MODES = ("warm", "cold")
READ_CHUNK = 256 * 1024
# Blobs up to this size are read in one piece (cheaper per request); larger ones stream.
READ_WHOLE = 1024 * 1024
FLUSH_INTERVAL = 0.5
# How long a master waits, at its end, for every worker's final report (see
# _wait_for_final_reports); a worker normally answers within milliseconds.
FINAL_REPORTS_WAIT = 10.0
ALL_STATUSES = frozenset(range(100, 600))

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
    add("--connect-to", "CHAOSREGISTRY_LOAD_CONNECT_TO", "", "host:port to connect to instead")
    add("--sli-sink", "CHAOSREGISTRY_SLI_SINK", "", "host:port of the SLI exporter (UDP)")
    add("--backoff", "CHAOSREGISTRY_LOAD_BACKOFF", "true", "back off after failed pulls")
    add("--backoff-base", "CHAOSREGISTRY_LOAD_BACKOFF_BASE", f"{Backoff.base:g}", "first wait (s)")
    add("--backoff-cap", "CHAOSREGISTRY_LOAD_BACKOFF_CAP", f"{Backoff.cap:g}", "longest wait (s)")
    add("--pull-interval", "CHAOSREGISTRY_LOAD_PULL_INTERVAL", "0", "seconds between pull starts")
    # Only marks the command line, so the runner can find every process of one load.
    add("--load-tag", "CHAOSREGISTRY_LOAD_TAG", "", "marks this load's processes")


# Options that name this machine's files. Locust copies every custom argument of the master
# onto each worker when a test starts, which would replace a worker's own paths with the
# master's (or with the master's empty defaults): a value given on the worker wins.
WORKER_LOCAL_DEFAULTS = {
    "credentials_file": "",
    "records_dir": "",
    "tls_verify": "true",
    "sli_sink": "",
    "connect_to": "",
}


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


def _seconds(name: str, text: str) -> float:
    try:
        return float(str(text))
    except ValueError:
        raise ConfigError(f"--{name} must be seconds, got {text!r}") from None


def _backoff(options: Any) -> Backoff:
    enabled = _flag("backoff", getattr(options, "backoff", "true"))
    base = _seconds("backoff-base", getattr(options, "backoff_base", str(Backoff.base)))
    cap = _seconds("backoff-cap", getattr(options, "backoff_cap", str(Backoff.cap)))
    try:
        return Backoff.check(enabled=enabled, base=base, cap=cap)
    except ConfigError as exc:  # the activity's words (backoff_cap) as this command's flags
        text = f"--{exc}".replace(" backoff_", " --backoff_").replace("backoff_", "backoff-")
        raise ConfigError(text) from None


def _pull_interval(options: Any) -> float:
    interval = _seconds("pull-interval", getattr(options, "pull_interval", "0"))
    try:
        return check_pull_interval(interval)
    except ConfigError as exc:  # the activity's word (pull_interval) as this command's flag
        raise ConfigError(f"--{exc}".replace("pull_interval", "pull-interval")) from None


def _read_credentials(path: str) -> Credentials | None:
    """The credentials in the JSON file ``path`` (None without a path)."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
        return Credentials(str(data["username"]), str(data["password"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--credentials-file {path}: unreadable ({type(exc).__name__})") from None


@dataclass(frozen=True)
class PullSettings:
    """Everything a user needs, parsed once per process from Locust's options."""

    images: tuple[ImageChoice, ...]
    cumulative_weights: tuple[float, ...]
    mode: str
    platform: Platform
    credentials: Credentials | None
    verify: bool
    blob_concurrency: int
    records_dir: Path | None
    fresh_stride: int
    timeout: float
    tls_verify: bool | str
    sli_sink: str
    target: str  # the registry's URL: the SLI histogram's ``target`` label
    backoff: Backoff = DEFAULT_BACKOFF
    pull_interval: float = DEFAULT_PULL_INTERVAL
    # Where the registry's connections go instead of its own address (a fault proxy's listener).
    connect_to: tuple[str, int] | None = None

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
            credentials=_read_credentials(str(options.credentials_file)),
            verify=_flag("verify-digests", options.verify_digests),
            blob_concurrency=_whole("blob-concurrency", options.blob_concurrency, 1),
            records_dir=Path(options.records_dir) if options.records_dir else None,
            fresh_stride=_whole("fresh-stride", options.fresh_stride, 1),
            timeout=timeout,
            tls_verify=tls_verify,
            sli_sink=str(getattr(options, "sli_sink", "") or ""),
            target=str(getattr(options, "host", "") or ""),
            backoff=_backoff(options),
            pull_interval=_pull_interval(options),
            connect_to=_address("connect-to", str(getattr(options, "connect_to", "") or "")),
        )


_BOOLEAN_WORDS = frozenset({"true", "false", "1", "0", "yes", "no"})


def _address(name: str, text: str) -> tuple[str, int] | None:
    if not text:
        return None
    address = split_address(text)
    if address is None:
        raise ConfigError(f"--{name} must be host:port, got {text!r}")
    return address


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
        self.sink = SliSink(None)
        self.local_options: dict[str, Any] = {}

    def remember_local_options(self, options: Any) -> None:
        """On a worker, before the master's options arrive: what this worker was given."""
        self.local_options = {
            name: getattr(options, name)
            for name, default in WORKER_LOCAL_DEFAULTS.items()
            if getattr(options, name, default) != default
        }

    def configure(self, environment: Environment) -> PullSettings:
        options = environment.parsed_options
        vars(options).update(self.local_options)
        self.settings = PullSettings.from_options(options)
        self.sink.close()
        self.sink = SliSink(self.settings.sli_sink or None)
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


def _wait_for_final_reports(runner: MasterRunner) -> None:
    """Make the master's ``quit`` wait until every worker has sent its last report.

    Locust's master tells its workers to quit and then waits a fixed 0.5 s before it stops
    listening and writes its figures. Each worker answers with a final stats report (the pulls
    since its last one, up to 3 s of them), then its "quit". On a busy machine a worker can take
    longer than 0.5 s, and its last pulls vanish from the master's counts while the workers'
    records hold them (seen at load 10: 65 pulls counted of 94 recorded). This sends the same
    "quit" and waits for each worker's own "quit", which Locust's master receives after that
    worker's final report (one ordered connection per worker); then Locust's own quit runs, with
    no worker left to tell. A worker already marked missing is not waited for."""
    locust_quit = runner.quit

    def quit_after_final_reports() -> None:
        runner.stop(send_stop_to_client=False)
        for client in list(runner.clients.all):
            runner.server.send_to_client(Message("quit", None, client.id))  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + FINAL_REPORTS_WAIT
        while time.monotonic() < deadline and any(
            client.state != STATE_MISSING for client in runner.clients.all
        ):
            gevent.sleep(0.05)
        locust_quit()

    runner.quit = quit_after_final_reports  # type: ignore[method-assign]


def _on_init(environment: Environment, **_: Any) -> None:
    # Fail fast with one line on the node that was given the options; remote workers receive
    # them from the master only when the test starts.
    # Locust starts its --run-time timer from gevent's cached loop time, which is stale by the
    # time it took to import this file: refresh it, or a 3 s run lasts 2.
    gevent.get_hub().loop.update_now()
    if isinstance(environment.runner, MasterRunner):
        _wait_for_final_reports(environment.runner)
    options = environment.parsed_options
    if options is None:
        return
    if getattr(options, "worker", False):
        _process.remember_local_options(options)
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
def _locust_ssl_factory(settings: PullSettings) -> Callable[..., ssl.SSLContext]:
    """What geventhttpclient calls (``factory(cafile=...)`` or ``factory()``) for each pool."""
    cafile = settings.tls_verify if isinstance(settings.tls_verify, str) else None

    def factory(*_: Any, **__: Any) -> ssl.SSLContext:
        # Our CA, not the one geventhttpclient would pass in (certifi's), and never h2: this
        # client speaks HTTP/1.1 only, so offer only that by ALPN.
        context = ssl.create_default_context(cafile=cafile)
        context.set_alpn_protocols(["http/1.1"])
        return context

    return factory


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
        RegistryPullUser.ssl_context_factory = _locust_ssl_factory(settings)


class _Phases:
    __slots__ = ("auth",)

    def __init__(self) -> None:
        self.auth = 0.0


class _ResponseHeaders(Mapping[str, str]):
    """A response's headers as the protocol reads them, without copying them per request.

    geventhttpclient already keys them by lower-cased name; the protocol reads two or three of
    them, and only on some answers. A repeated header reads as its last line's value.
    """

    __slots__ = ("_headers",)

    def __init__(self, headers: Any) -> None:
        self._headers = headers if headers is not None else {}

    def __getitem__(self, name: str) -> str:
        value = self._headers[name]  # case-insensitive lookup
        return str(value[-1] if isinstance(value, list) else value)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.keys(self._headers))  # the lower-cased names

    def __len__(self) -> int:
        return len(self._headers)


def _answer_of(response: FastResponse, url: str, *, read_body: bool) -> Answer:
    headers = _ResponseHeaders(response.headers)
    moved = ""
    if response.history:  # redirects followed: where they led, from each hop's Location
        final = url
        for hop in response.history:
            final = urljoin(final, _ResponseHeaders(hop.headers).get("location") or "")
        moved = other_origin(url, final)
    body = response.content if read_body else b""
    return Answer(response.status_code, headers, body, moved)


class RegistryPullUser(FastHttpUser):
    """One node pulling images back to back (see the module docstring).

    It drives the same protocol steps as the probes' client (``chaosregistry.oci.protocol``):
    this class only sends requests through FastHttpUser's connection pool, reports each one to
    Locust by route, and streams blob bodies through the protocol's BlobCheck.
    """

    def wait_time(self) -> float:
        """After a success what is left of the pull interval (none by default); after
        failures, the back-off (module docstring)."""
        return next_wait(
            self.settings.backoff,
            self.failures_in_a_row,
            self.rng,
            pull_interval=self.settings.pull_interval,
            pull_seconds=self.last_pull_seconds,
        )

    def on_start(self) -> None:
        self.failures_in_a_row = 0
        self.last_pull_seconds = 0.0
        settings = _process.settings or _process.configure(self.environment)
        self.settings = settings
        # One node, one identity: tokens are kept per node, as each kubelet keeps its own.
        self.auth = Authenticator(settings.credentials)
        self.rng = random.Random()
        # Every status is an answer for the protocol to judge (a 401's challenge, a 404's
        # error codes): geventhttpclient would otherwise raise and release the body.
        self.client.client.valid_response_codes = ALL_STATUSES  # type: ignore[misc]  # per node
        if settings.connect_to is not None:
            # Behind a fault proxy: this node's connections to the registry go to its listener.
            agent = self.client.client
            unused = agent.clientpool  # nothing was sent yet: it holds no connection
            agent.clientpool = ConnectToClientPool(
                origin_of(self.client.base_url or ""), settings.connect_to, **unused.client_args
            )

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
            image = ImageReference(choice.repository, choice.reference)
            resolved = self._drive(resolve(self.auth, image, self.settings.platform), phases)
            phases.auth += resolved.auth_seconds
            resolved_at = time.perf_counter()
            manifest_seconds = resolved_at - started - phases.auth
            auth_before_blobs = phases.auth
            size = self._fetch_blobs(choice.repository, resolved.blobs, phases)
            blobs = len(resolved.blobs)
            blobs_seconds = time.perf_counter() - resolved_at - (phases.auth - auth_before_blobs)
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
            self.last_pull_seconds = duration
            self.failures_in_a_row = 0 if error is None else self.failures_in_a_row + 1
            if not interrupted:
                self._report(label, start, duration, size, error, request_type="PULL")
            if not interrupted:  # one datagram, never waited for (chaosregistry.observability.sli)
                _process.sink.pull(
                    self.settings.target,
                    error is None,
                    None if error is None else str(error.error_class),
                    duration,
                    phases.auth,
                    manifest_seconds,
                    blobs_seconds,
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
                        "verified": error is None and not interrupted and self.settings.verify,
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

    def _fetch_blobs(self, repository: str, descriptors: list[Descriptor], phases: _Phases) -> int:
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
        descriptor: Descriptor,
        phases: _Phases,
        failures: list[BaseException],
    ) -> int:
        request = blob_request(repository, descriptor.digest)
        check = BlobCheck(descriptor, request.what, verify=self.settings.verify)
        steps = exchange(self.auth, request, repository)
        done, response, start, started = self._drive_streamed(steps, phases)
        phases.auth += done.auth_seconds
        try:
            if descriptor.size <= READ_WHOLE:
                check.feed(response.content)  # one read is cheaper for small blobs
            else:
                while chunk := response.read(READ_CHUNK):
                    if failures:
                        raise PullError(ErrorClass.PROTOCOL, f"{request.what}: cancelled")
                    check.feed(chunk)
            check.finish()
        except PullError as failure:
            self._report(request.route, start, time.perf_counter() - started, 0, failure)
            raise
        except wire.WIRE_ERRORS as exc:
            broken = wire.from_exception(exc, request.what, in_body=True)
            self._report(request.route, start, time.perf_counter() - started, 0, broken)
            raise broken from exc
        finally:
            response.release()
        self._report(request.route, start, time.perf_counter() - started, check.received, None)
        return check.received

    # -- the driver ---------------------------------------------------------------------------
    def _drive(self, steps: Steps[T], phases: _Phases) -> T:
        """Run protocol ``steps`` to their result, every request reported to Locust."""
        request = next(steps)
        while True:
            answer, _, start, started = self._send(request)
            try:
                following = steps.send(answer)
            except StopIteration as done:
                self._report(request.route, start, time.perf_counter() - started, 0, None)
                return done.value  # type: ignore[no-any-return]
            except PullError as failure:
                self._report(request.route, start, time.perf_counter() - started, 0, failure)
                raise
            # A challenge answered is no failure.
            self._report(request.route, start, time.perf_counter() - started, 0, None)
            request = following

    def _drive_streamed(
        self, steps: Steps[Exchanged], phases: _Phases
    ) -> tuple[Exchanged, FastResponse, float, float]:
        """Like ``_drive`` for a step whose last answer's body the caller streams: the last
        request is reported by the caller, once its body is read."""
        request = next(steps)
        while True:
            answer, response, start, started = self._send(request)
            try:
                following = steps.send(answer)
            except StopIteration as done:
                assert response is not None  # a streamed 2xx keeps its response
                return done.value, response, start, started
            except PullError as failure:
                self._report(request.route, start, time.perf_counter() - started, 0, failure)
                raise
            self._report(request.route, start, time.perf_counter() - started, 0, None)
            request = following

    def _send(self, request: Request) -> tuple[Answer, FastResponse | None, float, float]:
        """The only I/O: ``(answer, response kept open for a streamed 2xx, start, started)``."""
        target = request.target
        url = target if "://" in target else f"{self.client.base_url or ''}{target}"
        if request.params:
            url += ("&" if "?" in url else "?") + urlencode(request.params)
        start = time.time()
        started = time.perf_counter()
        try:
            response = cast(
                FastResponse,
                self.client.client.urlopen(
                    url,
                    method=request.method,
                    headers=request.headers,  # read only: urlopen copies it into its own
                    payload=request.content,
                ),
            )
        except wire.WIRE_ERRORS as exc:
            failure = wire.from_exception(exc, request.what, route=request.route)
            self._report(request.route, start, time.perf_counter() - started, 0, failure)
            raise failure from exc
        streamed = request.stream and 200 <= response.status_code < 300
        try:
            answer = _answer_of(response, url, read_body=not streamed)
        except wire.WIRE_ERRORS as exc:
            failure = wire.from_exception(exc, request.what, in_body=True, route=request.route)
            self._report(request.route, start, time.perf_counter() - started, 0, failure)
            raise failure from exc
        return answer, (response if streamed else None), start, started

    def _report(
        self,
        name: str,
        start: float,
        seconds: float,
        length: int,
        failure: PullError | None,
        request_type: str = "GET",
    ) -> None:
        """One entry in Locust's statistics: a request by its route (``GET``), or a whole pull
        by its image (``PULL``); a failure grouped by its cause."""
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=seconds * 1000.0,
            response_length=length,
            exception=_grouped(failure),
            context={},
            start_time=start,
            url=None,
            response=None,
        )


class _GroupedFailure(Exception):
    """What Locust's failure table shows: the class and the step, no image or digest, so
    failures group by cause (the records keep the full message)."""


def _grouped(error: PullError | None) -> Exception | None:
    if error is None:
        return None
    status = f": HTTP {error.status}" if error.status else ""
    reason = f" {error.detail['reason']}" if error.detail.get("reason") else ""
    return _GroupedFailure(f"{error.error_class}{reason}{status}")
