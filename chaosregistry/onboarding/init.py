"""Check a registry, measure its baseline and write a vars file and experiments for it.

The checks and the measurements use what the probes use: the registry client and pull core
(``oci.client``, ``oci.pull``), the TLS inspection (``trust.tlsinspect``), the settings'
resolution of credentials and CA bundles, and the fault proxy (``faultproxy``) the written vars
file declares, so the baseline is measured along the path the game day's probes take.
"""

import datetime
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from chaosregistry.errors import ChaosRegistryError, ConfigError, ErrorClass, PullError
from chaosregistry.experiment.settings import RegistryTarget, Settings, parse_settings
from chaosregistry.faultproxy.proxy import down as proxy_down
from chaosregistry.faultproxy.proxy import up as proxy_up
from chaosregistry.oci.client import RegistryClient
from chaosregistry.oci.pull import pull_many
from chaosregistry.oci.reference import ImageReference
from chaosregistry.onboarding import DEFAULT_LOAD_USERS, DEFAULT_PULLS
from chaosregistry.onboarding.experiments import (
    EXPERIMENT_FILES,
    Baseline,
    experiments,
    vars_text,
)
from chaosregistry.osutil.files import write_text_atomic
from chaosregistry.stats import summarize
from chaosregistry.trust.tlsinspect import Endpoint, inspect

USERNAME_ENV = "CHAOSREGISTRY_USERNAME"
PASSWORD_ENV = "CHAOSREGISTRY_PASSWORD"
PULL_CONCURRENCY = 2  # as the shipped experiments measure theirs
PINGS = 10
CHECK_TIMEOUT = 10.0
PROXY_DIR = "fault-proxy"
# Where `chaosregistry gameday EXPERIMENT` looks for its vars file by default.
VARS_FILE = "vars/local.yaml"


class InitError(ChaosRegistryError):
    """The registry failed a check (one line says which and what to do); nothing written."""


@dataclass(frozen=True)
class InitRequest:
    """What ``chaosregistry init`` was asked (flags or answers to its prompts)."""

    registry_url: str
    output: Path
    ca_bundle: Path | None = None
    credentials_file: Path | None = None
    image: str | None = None
    kubeconfig: Path | None = None
    pulls: int = DEFAULT_PULLS
    load_users: int = DEFAULT_LOAD_USERS
    proxy_api_port: int = 0
    proxy_listen_port: int = 0
    force: bool = False

    def configuration(self) -> dict[str, Any]:
        """The ``chaosregistry`` mapping of the vars file: paths and addresses, no secret."""
        configuration: dict[str, Any] = {"registry_url": self.registry_url.rstrip("/")}
        if self.ca_bundle is not None:
            configuration["registry_ca_bundle"] = str(self.ca_bundle.absolute())
        if self.credentials_file is not None:
            configuration["registry_credentials_file"] = str(self.credentials_file.absolute())
        if self.kubeconfig is not None:
            configuration["kubeconfig"] = str(self.kubeconfig.absolute())
        configuration["fault_proxy"] = {
            "listen": f"127.0.0.1:{self.proxy_listen_port}",
            "api": f"127.0.0.1:{self.proxy_api_port}",
            "dir": str((self.output / PROXY_DIR).absolute()),
        }
        return configuration


def _settings(request: InitRequest) -> Settings:
    """The settings the written vars file will give, parsed by the one parser (a bad value is
    refused here with its words, naming ``configuration.<key>``)."""
    return parse_settings({"backend": "local", **request.configuration()})


def credentials_source(request: InitRequest) -> str:
    """Where the credentials come from, in words for the vars file (never the values)."""
    if os.environ.get(USERNAME_ENV) and os.environ.get(PASSWORD_ENV):
        return f"${USERNAME_ENV} and ${PASSWORD_ENV}, read at run time"
    if request.credentials_file is not None:
        return f"{request.credentials_file.absolute()} (registry_credentials_file)"
    return "none (the registry answers anonymously)"


def _failure(url: str, error: PullError, ca_bundle: Path | None) -> InitError:
    """One line for a failed check: which check, and what to do."""
    reason = error.detail.get("reason")
    trusted_by = f"the CA bundle {ca_bundle}" if ca_bundle else "the system's CAs"
    if error.error_class is ErrorClass.TLS:
        if reason == "unknown-ca":
            return InitError(
                f"TLS: {url}'s certificate is not signed by a CA in {trusted_by}: "
                "pass --ca-bundle with the CA that signed it"
            )
        if reason == "hostname-mismatch":
            host = urlsplit(url).hostname
            return InitError(f"TLS: {url}'s certificate does not name {host}: use a name it has")
        if reason == "expired":
            return InitError(f"TLS: {url}'s certificate has expired (or is not valid yet)")
        return InitError(f"TLS: no TLS handshake with {url} ({error}): is it https?")
    if error.error_class in (ErrorClass.REFUSED, ErrorClass.TIMEOUT, ErrorClass.RESET):
        return InitError(f"unreachable: {url} ({error.error_class}): {error}")
    if error.error_class is ErrorClass.AUTH:
        return InitError(
            f"auth: {url} refused the credentials (HTTP {error.status}): check "
            f"${USERNAME_ENV} / ${PASSWORD_ENV} or --credentials-file"
        )
    if error.status == 400 and url.startswith("http://"):
        return InitError(f"{url} answers HTTP 400 to plain HTTP: is it https?")
    return InitError(f"{url}: {error.error_class}: {error}")


def _client(target: RegistryTarget, transport: httpx.BaseTransport | None = None) -> RegistryClient:
    if transport is None:
        return target.client(timeout=CHECK_TIMEOUT)
    return RegistryClient(
        target.url,
        credentials=target.credentials,
        verify=target.verify,
        timeout=CHECK_TIMEOUT,
        transport=transport,
    )


def check_registry(
    request: InitRequest,
    *,
    choose: Callable[[list[str]], str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """Reachability, TLS and auth, straight to the registry; the image to measure (the one
    asked for, else one the catalog lists: ``choose(candidates)`` picks, default the first).

    Raises InitError (one line) when a check fails, ConfigError for a bad flag.
    """
    target = _settings(request).registry.resolve(None)
    # Straight to the registry: the proxy is not running yet, and a failure here is the
    # registry's (or the flags'), not the proxy's.
    target = RegistryTarget(target.url, target.credentials, target.verify, target.timeout)
    with _client(target, transport) as client:
        try:
            ping = client.ping()
        except PullError as exc:
            raise _failure(target.url, exc, request.ca_bundle) from None
        if ping.status == 401 and target.credentials is None:
            raise InitError(
                f"auth: {target.url} asks for credentials ({ping.auth_scheme}): set "
                f"${USERNAME_ENV} and ${PASSWORD_ENV}, or pass --credentials-file"
            )
        try:
            if request.image:
                client.get_manifest(*_repository_and_tag(request.image))
                return request.image
            candidates = _catalog_images(client)
        except PullError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND and request.image:
                raise InitError(f"image: {request.image} is not in {target.url}") from None
            raise _failure(target.url, exc, request.ca_bundle) from None
    if not candidates:
        raise InitError(f"image: {target.url}'s catalog lists no tagged image: pass --image")
    return (choose or (lambda names: names[0]))(candidates)


def _repository_and_tag(image: str) -> tuple[str, str]:
    reference = ImageReference.parse(image)
    return reference.repository, reference.reference


def _catalog_images(client: RegistryClient, limit: int = 20) -> list[str]:
    """``repository:tag`` for the first tag of up to ``limit`` repositories of the catalog."""
    images: list[str] = []
    for repository in client.list_repositories().names[:limit]:
        tags = client.list_tags(repository).names
        if tags:
            images.append(f"{repository}:{'latest' if 'latest' in tags else tags[0]}")
    return images


def measure(request: InitRequest, image: str) -> Baseline:
    """The baseline, through the fault proxy the vars file declares (started here, and
    stopped again if this call started it). Raises InitError when a baseline pull fails."""
    settings = _settings(request)
    proxy = settings.fault_proxy
    assert proxy is not None  # InitRequest.configuration always declares it
    started = proxy_up(proxy)
    try:
        return _measure(settings, image, request.pulls, request.load_users)
    finally:
        if started:
            proxy_down(proxy, force=True)


def _measure(settings: Settings, image: str, pulls: int, load_users: int) -> Baseline:
    target = settings.registry.resolve(None)
    reference = ImageReference.parse(image)
    with target.client(max_connections=max(PULL_CONCURRENCY, load_users) * 3) as client:
        results = pull_many(client, reference, count=pulls, concurrency=PULL_CONCURRENCY)
        failed = [r for r in results if not r.ok]
        if failed:
            raise InitError(
                f"baseline: {len(failed)} of {pulls} pulls of {image} failed: {failed[0].error}"
            )
        loaded = pull_many(client, reference, count=load_users * 2, concurrency=load_users)
        if not all(r.ok for r in loaded):
            raise InitError(f"baseline: pulls of {image}, {load_users} at a time, failed")
        pings = []
        for _ in range(PINGS):
            pings.append(client.ping().seconds)
    stats = summarize([r.total_seconds for r in results])
    load_stats = summarize([r.total_seconds for r in loaded])
    parts = urlsplit(target.url)
    tls = parts.scheme == "https"
    facts: dict[str, Any] = {}
    if tls:
        endpoint = Endpoint(parts.hostname or "", parts.port or 443, target.connect_to)
        facts = inspect(endpoint, verify=target.verify, timeout=5.0, what=target.url)
        if not facts["verified"]:
            raise InitError(
                f"TLS: {target.url} did not verify through the fault proxy: {facts['error']}"
            )
    return Baseline(
        image=image,
        pulls=pulls,
        pull_p50=float(stats["p50"] or 0.0),
        pull_p95=float(stats["p95"] or 0.0),
        pull_max=float(stats["max"] or 0.0),
        pull_bytes=results[0].bytes,
        load_users=load_users,
        load_pulls=len(loaded),
        load_p95=float(load_stats["p95"] or 0.0),
        ping_p95=float(summarize(pings)["p95"] or 0.0),
        pings=len(pings),
        http_version=results[0].http_version,
        tls=tls,
        tls_version=facts.get("tls_version"),
        days_left=facts.get("min_days_left"),
        measured_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def planned_files(output: Path) -> list[Path]:
    return [output / VARS_FILE, *(output / name for name in EXPERIMENT_FILES)]


def refuse_overwrite(request: InitRequest) -> None:
    """ConfigError when the output directory holds files init would replace (unless --force)."""
    if request.force:
        return
    present = [
        str(path.relative_to(request.output))
        for path in planned_files(request.output)
        if path.exists()
    ]
    if present:
        raise ConfigError(
            f"--output {request.output}: holds {', '.join(present)} already: "
            "choose another directory or pass --force"
        )


def write(request: InitRequest, baseline: Baseline) -> list[Path]:
    """The vars file and the experiments, written atomically; their paths."""
    (request.output / VARS_FILE).parent.mkdir(parents=True, exist_ok=True)
    texts = {VARS_FILE: vars_text(request.configuration(), baseline, credentials_source(request))}
    texts.update(experiments(baseline))
    written = []
    for name, text in texts.items():
        path = request.output / name
        write_text_atomic(path, text)
        written.append(path)
    return written


def run_init(
    request: InitRequest,
    *,
    choose: Callable[[list[str]], str] | None = None,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """Check, measure, write; the files written. Nothing is written when a check fails."""
    if request.pulls < 5:
        raise ConfigError(f"--pulls must be 5 or more, got {request.pulls}")
    refuse_overwrite(request)
    image = check_registry(request, choose=choose)
    say(f"registry {request.registry_url}: reachable, TLS and auth check out; image {image}")
    started = time.perf_counter()
    baseline = measure(request, image)
    say(
        f"baseline ({time.perf_counter() - started:.0f} s, through the fault proxy): pull p95 "
        f"{baseline.pull_p95:.3f} s over {baseline.pulls} pulls; {baseline.load_users} at a "
        f"time p95 {baseline.load_p95:.3f} s; /v2/ p95 {baseline.ping_p95:.3f} s"
        + (f"; certificate {baseline.days_left:.0f} days left" if baseline.days_left else "")
    )
    return write(request, baseline)
