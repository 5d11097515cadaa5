"""The configuration, parsed once at the door into typed, frozen settings.

Chaos Toolkit hands every activity the experiment's ``configuration`` as a plain mapping (the
``chaosregistry`` mapping lifted to the top, see ``activity.flatten_configuration``).
:func:`settings_for` turns it into a :class:`Settings` once per distinct configuration and the
rest of the product only reads the typed fields: backends, the loads and the ledger never see the
mapping. ``chaosregistry validate`` and ``gameday`` call the same parser
(:func:`parse_settings`), so a bad value is refused before anything runs, with the same words.

One module rather than a ``config/`` package: every key, its default and its message sit side by
side here, the keys are few enough to read in one file, and the activities' long-standing import
(``from chaosregistry.experiment.settings import resolve_target``) keeps working.

Keys (configuration, or under its ``chaosregistry`` mapping)
    ``registry_url``        the registry to measure, ``http(s)://host[:port]``
    ``mirror_url``          a pull-through mirror of it (activities pick one with ``target``);
                            any ``<name>_url`` names a registry ``target: <name>`` reaches
    ``registry_ca_bundle``  path to a PEM CA bundle for HTTPS registries with a private CA
    ``registry_verify_tls`` ``false`` to skip certificate checks (never the default)
    ``registry_timeout``    seconds per request (default 30)
    ``registry_credentials_file``  a JSON file ``{"username": ..., "password": ...}`` (mode
                            0600) holding the registry's credentials, used when neither the
                            secrets nor the environment give them; the vars file names the
                            file, never the password
    ``fault_proxy``         a Toxiproxy hop in front of ``registry_url`` (a registry the tool
                            does not run): ``{listen: host:port, api: host:port, dir: path}``.
                            The clients connect to ``listen`` but check TLS against the
                            registry's own name; the hop is ``client-registry``, as in the
                            sandbox, so network faults and the shipped experiments work
                            against it (:class:`FaultProxySettings`,
                            :mod:`chaosregistry.faultproxy`)
    ``sandbox_dir``         an embedded sandbox's run directory: its endpoints and credentials
                            are used for whatever the keys above leave unset, and its CA
                            (endpoints' ``ca_file``) verifies any of its HTTPS endpoints when
                            neither ``registry_ca_bundle`` nor ``registry_verify_tls`` is set
    ``backend``             ``local`` (default) or ``kubernetes``
    ``ledger_dir``          the fault ledger (see ``faults.ledger.resolve_ledger_dir``)
    ``load_dir``, ``run_dir``, ``load_origin``   pull loads (see ``chaosregistry/loadgen/store.py``)
    ``toxiproxy_url``, ``hops``, ``allowed_hops``, ``allowed_certificate_targets``
                            the local backend (:class:`LocalSettings`)
    the kubernetes backend's keys: :class:`KubernetesSettings`
    ``prometheus_url``, ``sli_sink``, ``prometheus_timeout``
                            Prometheus and the SLI exporter's sink (:class:`PrometheusSettings`),
                            else the sandbox's
secrets (any scope the activity declares)
    ``registry_username`` / ``registry_password``

Environment fallbacks: ``CHAOSREGISTRY_URL``, ``CHAOSREGISTRY_USERNAME``,
``CHAOSREGISTRY_PASSWORD``, ``CHAOSREGISTRY_SANDBOX_DIR``, ``CHAOSREGISTRY_LEDGER_DIR``,
``CHAOSREGISTRY_RUN_DIR``, ``CHAOSREGISTRY_KUBECONFIG``, ``KUBECONFIG``. Credentials never leave
this module except inside a :class:`~chaosregistry.oci.auth.Credentials`, whose repr hides the
password; they are not part of :class:`Settings` (secrets come with each call).

A sandbox's ``endpoints.json`` (and its credentials file) is read once per sandbox directory
and again only when the file changes (``sandbox up`` rewrites it): :func:`sandbox_endpoints`.
"""

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import flatten_configuration
from chaosregistry.experiment.contracts import (
    KUBE_NAME,
    Contract,
    ExistingFile,
    NoneOf,
    Url,
    contract_of,
)
from chaosregistry.faults.ledger import resolve_ledger_dir
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.client import DEFAULT_TIMEOUT, RegistryClient, validate_registry_url
from chaosregistry.redaction import URL_CREDENTIALS, url_credentials

if TYPE_CHECKING:
    from lightkube import Client

BACKENDS = ("local", "kubernetes")
# Where `chaosregistry sandbox up` puts the sandbox by default (relative to the working dir).
DEFAULT_SANDBOX_DIR = Path("runs/sandbox")
SANDBOX_DIR_ENV = "CHAOSREGISTRY_SANDBOX_DIR"
# Pull loads: ``<load_dir>/<load_id>``; see chaosregistry/loadgen/store.py.
DEFAULT_LOAD_DIR = Path("runs") / "load"
# Set by ``chaosregistry gameday``: the run's own directory.
RUN_DIR_ENV = "CHAOSREGISTRY_RUN_DIR"
# The kubernetes backend.
DEFAULT_CLUSTER_STATE_DIR = Path("runs/cluster")
DEFAULT_MAX_PODS = 10
DEFAULT_KUBE_TIMEOUT = (
    15.0  # chaosregistry.kubernetes.client.DEFAULT_TIMEOUT, without importing lightkube
)
DEFAULT_CHAOS_MESH_CONFIRM_TIMEOUT = 5.0
# Seconds per Prometheus query.
DEFAULT_PROMETHEUS_TIMEOUT = 5.0
NETWORK_PROVIDERS = ("toxiproxy", "chaos-mesh")
NODE_KILL_PROVIDERS = ("api", "chaos-mesh")
# How the nodes reach the sandbox (`cluster up --node-pulls`, written into its vars file): only
# "mirror-first" nodes pull through the mirror, so only there does killing it test a fallback.
NODE_PULLS_ORIGIN = "origin"
NODE_PULLS_MIRROR_FIRST = "mirror-first"
NODE_PULLS = (NODE_PULLS_ORIGIN, NODE_PULLS_MIRROR_FIRST)
# Never a chaos target, whoever names them (configuration.namespace, an activity's argument).
PROTECTED_NAMESPACES = ("kube-system", "kube-public")
# The domain of a namespace, configured or given to an activity.
Namespace = Annotated[str, KUBE_NAME, NoneOf(PROTECTED_NAMESPACES, "never a chaos target")]

# The environment the parse reads: part of the cache key, so a changed variable (tests, a
# game day's child) is never answered with settings parsed under the old value.
ENV_KEYS = (
    "CHAOSREGISTRY_URL",
    SANDBOX_DIR_ENV,
    "CHAOSREGISTRY_LEDGER_DIR",
    "XDG_STATE_HOME",
    "HOME",
    RUN_DIR_ENV,
    "CHAOSREGISTRY_KUBECONFIG",
    "KUBECONFIG",
)


class SettingError(ConfigError):
    """A bad configuration value. ``key`` is its path under ``configuration`` (``max_pods``,
    ``registry_nodes.registry-1``); the message starts with ``configuration.<key>``, so
    ``validate`` can say which file and mapping set it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _fail(key: str, rest: str) -> NoReturn:
    raise SettingError(key, f"configuration.{key}{rest}")


# -- a sandbox's published files, read once per change ------------------------------------------
T = TypeVar("T")
_file_cache: dict[tuple[str, Path], tuple[tuple[int, int, int], Any]] = {}
_file_lock = threading.Lock()


def _read_once(kind: str, path: Path, read: Callable[[Path], T]) -> T:
    """``read(path)``, again only when the file's mtime, size or inode changed."""
    try:
        stat = path.stat()
    except OSError:
        return read(path)  # missing: the reader's own error names it
    signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    key = (kind, path.absolute())
    with _file_lock:
        cached = _file_cache.get(key)
        if cached is not None and cached[0] == signature:
            value: T = cached[1]
            return value
    value = read(path)
    with _file_lock:
        _file_cache[key] = (signature, value)
    return value


def _frozen(value: Any) -> Any:
    """A read-only copy: cached endpoints are shared by every caller of this process."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _load_endpoints(endpoints_file: Path) -> Mapping[str, Any]:
    from chaosregistry.sandbox.layout import load_endpoints

    frozen: Mapping[str, Any] = _frozen(load_endpoints(endpoints_file.parent))
    return frozen


def sandbox_endpoints(run_dir: Path) -> Mapping[str, Any]:
    """The endpoints of the sandbox in ``run_dir`` (ConfigError when it holds none), read-only.

    Read once per sandbox directory; read again only when ``endpoints.json`` changes."""
    return _read_once("endpoints", Path(run_dir) / "endpoints.json", _load_endpoints)


def _sandbox_credentials(endpoints: Mapping[str, Any]) -> Credentials | None:
    from chaosregistry.sandbox.credentials import read_credentials_file

    path = endpoints.get("credentials_file")
    return _read_once("credentials", Path(path), read_credentials_file) if path else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    # The sandbox's certificate names both; its endpoints are published as 127.0.0.1.
    return parts.scheme, "127.0.0.1" if host == "localhost" else host, parts.port


def _sandbox_origins(endpoints: Mapping[str, Any]) -> set[tuple[str, str, int | None]]:
    """scheme, host and port of every URL the sandbox publishes (replicas' included)."""
    values: list[Any] = list(endpoints.values())
    values += [value for replica in endpoints.get("replicas") or () for value in replica.values()]
    return {_origin(value) for value in values if isinstance(value, str) and "://" in value}


def _sandbox_ca(endpoints: Mapping[str, Any], url: str) -> str | None:
    """The sandbox's CA file when ``url`` is one of its endpoints (else the system's CAs)."""
    ca_file = endpoints.get("ca_file")
    if ca_file and _origin(url) in _sandbox_origins(endpoints):
        return str(ca_file)
    return None


# -- the registry part -------------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryTarget:
    url: str
    credentials: Credentials | None
    verify: bool | str
    timeout: float
    # Where to open connections instead of the URL's host and port (a fault proxy's listener);
    # TLS still checks the URL's host name.
    connect_to: tuple[str, int] | None = None

    def client(
        self, *, max_connections: int = 16, timeout: float | None = None, http2: bool = False
    ) -> RegistryClient:
        """A client for this registry; ``timeout`` overrides the configured one (both phases);
        ``http2`` speaks HTTP/2 where the server offers it (ALPN)."""
        return RegistryClient(
            self.url,
            credentials=self.credentials,
            verify=self.verify,
            timeout=timeout or self.timeout,
            connect_timeout=min(timeout or self.timeout, 5.0),
            max_connections=max_connections,
            http2=http2,
            connect_to=self.connect_to,
        )


@dataclass(frozen=True)
class RegistrySettings:
    """Where the registries are and how to talk to them."""

    # ``<name>_url`` values by name (``registry``, ``mirror``...), as configured.
    urls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    ca_bundle: str | None = None
    verify_tls: bool | None = None  # None: not set (the sandbox's CA, else the system's)
    timeout: float = DEFAULT_TIMEOUT
    # The sandbox in use: configuration, else $CHAOSREGISTRY_SANDBOX_DIR, else ./runs/sandbox
    # when it holds one. ``configured_sandbox_dir`` is the configuration's own value only.
    sandbox_dir: Path | None = None
    configured_sandbox_dir: Path | None = None
    credentials_file: Path | None = None
    # "host:port" of a registry -> (host, port) its connections go to instead (a fault proxy).
    connect_to: Mapping[str, tuple[str, int]] = field(default_factory=lambda: MappingProxyType({}))

    def endpoints(self) -> Mapping[str, Any]:
        """The sandbox's endpoints ({} without a sandbox; ConfigError when it holds none)."""
        return sandbox_endpoints(self.sandbox_dir) if self.sandbox_dir is not None else {}

    def resolve(
        self, secrets: Mapping[str, Any] | None, target: str = "registry"
    ) -> RegistryTarget:
        """The registry an activity talks to.

        ``target`` is a URL, or the name of a configured registry: ``registry``, ``mirror``...
        For a name, ``<name>_url`` wins, then the sandbox's endpoint of that name, then (for
        ``registry``) ``CHAOSREGISTRY_URL``. TLS: ``registry_ca_bundle``, else
        ``registry_verify_tls``, else the sandbox's CA for a URL of the sandbox, else the
        system CAs.
        """
        if not isinstance(target, str) or not target:
            raise ConfigError("target must name a registry (registry, mirror) or be a URL")
        secrets = secrets or {}
        endpoints = self.endpoints()
        if "://" in target:
            url: Any = target
        else:
            url = self.urls.get(target) or endpoints.get(target) or ""
            if not url and target == "registry":
                url = os.environ.get("CHAOSREGISTRY_URL", "")
        if not url:
            raise ConfigError(
                f"no {target!r} registry: set configuration '{target}_url' or 'sandbox_dir'"
            )
        url = validate_registry_url(str(url))

        username = secrets.get("registry_username") or os.environ.get("CHAOSREGISTRY_USERNAME")
        password = secrets.get("registry_password") or os.environ.get("CHAOSREGISTRY_PASSWORD")
        credentials: Credentials | None = None
        if username and password:
            credentials = Credentials(str(username), str(password))
        elif username or password:
            raise ConfigError("secrets: registry_username and registry_password go together")
        elif self.credentials_file is not None:
            from chaosregistry.sandbox.credentials import read_credentials_file

            credentials = _read_once("credentials", self.credentials_file, read_credentials_file)
        elif endpoints and _origin(url) in _sandbox_origins(endpoints):
            # Only the sandbox's own endpoints get its credentials: a registry_url elsewhere,
            # named without secrets while a sandbox is around, must never be sent its password.
            credentials = _sandbox_credentials(endpoints)

        verify: bool | str = True
        if self.ca_bundle:
            verify = self.ca_bundle
        elif self.verify_tls is not None:
            verify = self.verify_tls
        else:
            verify = _sandbox_ca(endpoints, url) or True
        return RegistryTarget(
            url, credentials, verify, self.timeout, self.connect_to.get(origin_address(url))
        )


def origin_address(url: str) -> str:
    """``host:port`` of ``url``, the port filled in from the scheme (443 for https)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def split_address(text: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port``; None when it is not one."""
    host, _, port = str(text).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


# -- the local backend -------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalSettings:
    """The local backend's keys; what the sandbox publishes fills in the rest (LocalBackend)."""

    toxiproxy_url: str | None = None
    hops: Mapping[str, str] | None = None  # {hop: Toxiproxy proxy name}; None: the sandbox's
    allowed_hops: tuple[str, ...] | None = None
    allowed_certificate_targets: tuple[str, ...] | None = None
    sandbox_dir: Path | None = None  # the sandbox whose hops, replicas and nginx it acts on


# -- a fault proxy in front of a registry we do not run ------------------------------------------
# The sandbox's name for the hop between the clients and the registry: the shipped experiments
# name it, so they run unchanged against a registry behind a fault proxy.
FAULT_PROXY_HOP = "client-registry"


@dataclass(frozen=True)
class FaultProxySettings:
    """``fault_proxy``: a local Toxiproxy server whose one proxy (``FAULT_PROXY_HOP``) listens on
    ``listen`` and passes TCP (TLS and all) to ``registry_url``'s host and port."""

    registry_url: str
    listen: tuple[str, int]
    api: tuple[str, int]
    state_dir: Path  # its pid file, log and the declaration it was started with

    @property
    def toxiproxy_url(self) -> str:
        return f"http://{self.api[0]}:{self.api[1]}"

    @property
    def upstream(self) -> str:
        return origin_address(self.registry_url)

    @property
    def listen_address(self) -> str:
        return f"{self.listen[0]}:{self.listen[1]}"

    def as_configuration(self) -> dict[str, str]:
        """The ``fault_proxy`` mapping that declares it."""
        return {
            "listen": self.listen_address,
            "api": f"{self.api[0]}:{self.api[1]}",
            "dir": str(self.state_dir),
        }


# -- Prometheus and the SLI sink ----------------------------------------------------------------
@dataclass(frozen=True)
class PrometheusSettings:
    """Where Prometheus and the SLI exporter's datagram sink are: ``prometheus_url`` and
    ``sli_sink`` as configured, else the sandbox's endpoints (``prometheus``, ``sli_sink``) when
    a sandbox is in use and has published them."""

    configured_url: str | None = None  # the Prometheus server (http://host:port), as configured
    configured_sli_sink: str | None = None  # host:port, as configured
    timeout: float = DEFAULT_PROMETHEUS_TIMEOUT
    sandbox_dir: Path | None = None  # the sandbox whose endpoints fill in what is not configured

    def _published(self, name: str) -> str | None:
        # A sandbox directory without endpoints.json (not started yet, or gone) publishes
        # nothing: Prometheus is then "not configured", the probes' classified error.
        if self.sandbox_dir is None or not (self.sandbox_dir / "endpoints.json").is_file():
            return None
        value = sandbox_endpoints(self.sandbox_dir).get(name)
        return str(value) if value else None

    @property
    def url(self) -> str | None:
        """The Prometheus server to ask, without a trailing slash; None: none known."""
        url = self.configured_url or self._published("prometheus")
        return url.rstrip("/") if url else None

    @property
    def sli_sink(self) -> str | None:
        """host:port of the SLI exporter's sink; None: none known (SLIs are not sent)."""
        return self.configured_sli_sink or self._published("sli_sink")


# -- the kubernetes backend --------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryNode:
    """``registry_nodes.<node>``: the registry pods ``kill_registry_node(node)`` deletes."""

    selector: Mapping[str, str]
    mode: str = "one"  # one | all | fixed | fixed-percent (the kill's rule, checked when parsed)
    value: int | None = None
    namespace: str = ""


@dataclass(frozen=True)
class KubernetesSettings:
    """The kubernetes backend's keys (see :mod:`chaosregistry.backends.kubernetes`)."""

    kubeconfig: Path
    context: str | None = None
    namespace: str = ""
    max_pods: int = DEFAULT_MAX_PODS
    dry_run: bool = False
    timeout: float = DEFAULT_KUBE_TIMEOUT
    network_provider: str = "toxiproxy"
    node_kill_provider: str = "api"
    hop_selectors: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    hop_external_targets: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    registry_nodes: Mapping[str, RegistryNode] = field(default_factory=lambda: MappingProxyType({}))
    chaos_mesh_confirm_timeout: float = DEFAULT_CHAOS_MESH_CONFIRM_TIMEOUT
    node_pulls: str | None = None  # None: not said (a cluster that is not our test bed)
    # {registry host: (mirror hosts...)}: where the nodes' runtime pulls that host's images
    # first (containerd's hosts.toml, dockerd's registry-mirrors); read by the blast radius.
    registry_mirrors: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def client(self) -> "Client":
        from chaosregistry.kubernetes import client as kube

        with kube.translated():
            return kube.client(self.kubeconfig, timeout=self.timeout, context=self.context)

    def namespace_or(self, namespace: str) -> str:
        chosen = namespace or self.namespace
        if not chosen:
            raise ConfigError("no namespace: pass one or set configuration.namespace")
        return chosen

    def deployment_target(self, deployment: str, namespace: str) -> tuple["Client", str]:
        """A client and the namespace for a probe of one Deployment (ConfigError naming what is
        missing)."""
        if not isinstance(deployment, str) or not deployment:
            raise ConfigError("deployment must name a Deployment")
        return self.client(), self.namespace_or(namespace)


# -- everything ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    backend: str
    registry: RegistrySettings
    ledger_dir: Path
    load_dir: Path  # the directory holding one subdirectory per pull load
    load_origin: str  # the registry a cold load pushes its fresh images to
    local: LocalSettings
    kubernetes: KubernetesSettings
    prometheus: PrometheusSettings
    fault_proxy: FaultProxySettings | None = None
    # The keys the configuration gives a value (not null, not empty), for declarations that
    # name a key rather than a setting (``experiment.needs``: "unless prometheus_url is set").
    given: frozenset[str] = frozenset()

    def configures(self, *keys: str) -> bool:
        """Whether the configuration gives every one of ``keys`` a value (not null, not
        empty)."""
        return all(key in self.given for key in keys)

    def in_sandbox(self, sandbox_dir: Path) -> "Settings":
        """These settings with the sandbox in ``sandbox_dir`` in use, as configuration
        ``sandbox_dir`` would give it: its endpoints, credentials, hops and Prometheus fill in
        what is not configured (the game day's, once it has a sandbox running)."""
        return replace(
            self,
            registry=replace(
                self.registry, sandbox_dir=sandbox_dir, configured_sandbox_dir=sandbox_dir
            ),
            local=replace(self.local, sandbox_dir=sandbox_dir),
            prometheus=replace(self.prometheus, sandbox_dir=sandbox_dir),
            given=self.given | {"sandbox_dir"},
        )


def _text(configuration: Mapping[str, Any], key: str) -> str | None:
    """A path or name: unset, empty or null is None."""
    value = configuration.get(key)
    return str(value) if value not in (None, "") else None


def _positive_seconds(configuration: Mapping[str, Any], key: str, default: float) -> float:
    value = configuration.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        _fail(key, f": must be a positive number of seconds, got {value!r}")
    return float(value)


def _flag(configuration: Mapping[str, Any], key: str) -> bool | None:
    if key not in configuration:
        return None
    value = configuration[key]
    if not isinstance(value, bool):
        _fail(key, f" must be true or false, not {value!r}")
    return value


def _names(configuration: Mapping[str, Any], key: str, what: str) -> tuple[str, ...] | None:
    value = configuration.get(key)
    if value is None:
        return None
    if not (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)):
        _fail(key, f" must be a list of {what}")
    return tuple(value)


def _labels(key: str, value: Any, what: str) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in value.items()
    ):
        _fail(key, f": {what}, got {value!r}")
    return MappingProxyType({k: str(v) for k, v in value.items()})


def _declared(key: str, value: Any, contract: Contract) -> None:
    """A set key's value in its declared domain (the contracts activities' arguments use);
    ``key`` is its path under configuration."""
    if value not in (None, ""):
        problem = contract.problem(value)
        if problem is not None:
            _fail(key, f": {problem}")


def _registry_settings(configuration: Mapping[str, Any]) -> RegistrySettings:
    urls: dict[str, str] = {}
    for key, value in configuration.items():
        if not (isinstance(key, str) and key.endswith("_url")) or value in (None, ""):
            continue
        if isinstance(value, str) and url_credentials(value):
            _fail(key, f": the URL {URL_CREDENTIALS}")
        if key in ("registry_url", "mirror_url"):
            try:
                value = validate_registry_url(value)
            except ConfigError as exc:
                _fail(key, f": {exc}")
        urls[key[: -len("_url")]] = str(value)
    verify = _flag(configuration, "registry_verify_tls")
    ca_bundle = contract_of(Annotated[str, ExistingFile("CA bundle")])
    _declared("registry_ca_bundle", configuration.get("registry_ca_bundle"), ca_bundle)
    timeout = _positive_seconds(configuration, "registry_timeout", DEFAULT_TIMEOUT)
    credentials_file = contract_of(Annotated[str, ExistingFile("credentials file")])
    _declared(
        "registry_credentials_file",
        configuration.get("registry_credentials_file"),
        credentials_file,
    )
    configured_credentials = _text(configuration, "registry_credentials_file")
    configured = _text(configuration, "sandbox_dir")
    from_env = os.environ.get(SANDBOX_DIR_ENV)
    sandbox: Path | None = None
    if configured or from_env:
        sandbox = Path(configured or str(from_env))
    elif (DEFAULT_SANDBOX_DIR / "endpoints.json").is_file():
        sandbox = DEFAULT_SANDBOX_DIR.absolute()
    return RegistrySettings(
        urls=MappingProxyType(urls),
        ca_bundle=_text(configuration, "registry_ca_bundle"),
        verify_tls=verify,
        timeout=timeout,
        sandbox_dir=sandbox,
        configured_sandbox_dir=Path(configured) if configured else None,
        credentials_file=Path(configured_credentials) if configured_credentials else None,
    )


def _fault_proxy(
    configuration: Mapping[str, Any], registry: RegistrySettings
) -> FaultProxySettings | None:
    declared = configuration.get("fault_proxy")
    if declared in (None, {}):
        return None
    if not isinstance(declared, Mapping):
        _fail("fault_proxy", " must be a mapping {listen: host:port, api: host:port, dir: path}")
    registry_url = registry.urls.get("registry")
    if not registry_url:
        _fail("fault_proxy", ": needs registry_url (the registry it stands in front of)")
    addresses: dict[str, tuple[str, int]] = {}
    for key in ("listen", "api"):
        address = split_address(str(declared.get(key) or ""))
        if address is None:
            _fail(f"fault_proxy.{key}", f": must be host:port, not {declared.get(key)!r}")
        addresses[key] = address
    if addresses["listen"] == addresses["api"]:
        _fail("fault_proxy.api", ": must differ from fault_proxy.listen")
    state_dir = declared.get("dir")
    if not isinstance(state_dir, str) or not state_dir:
        _fail("fault_proxy.dir", ": must name the proxy's directory (its pid file and log)")
    return FaultProxySettings(
        registry_url=registry_url,
        listen=addresses["listen"],
        api=addresses["api"],
        state_dir=Path(state_dir).expanduser().absolute(),
    )


def _local_settings(configuration: Mapping[str, Any], sandbox: Path | None) -> LocalSettings:
    hops = configuration.get("hops") or None
    if hops is not None and not (
        isinstance(hops, Mapping) and all(isinstance(k, str) for k in hops)
    ):
        _fail("hops", " must map hop names to Toxiproxy proxy names")
    toxiproxy = contract_of(Annotated[str, Url(("http",))])
    _declared("toxiproxy_url", configuration.get("toxiproxy_url"), toxiproxy)
    return LocalSettings(
        toxiproxy_url=_text(configuration, "toxiproxy_url"),
        hops=MappingProxyType({k: str(v) for k, v in hops.items()}) if hops else None,
        allowed_hops=_names(configuration, "allowed_hops", "hop names"),
        allowed_certificate_targets=_names(
            configuration, "allowed_certificate_targets", "target names"
        ),
        sandbox_dir=sandbox,
    )


def _kubeconfig(configuration: Mapping[str, Any]) -> Path:
    """``kubeconfig``, else $CHAOSREGISTRY_KUBECONFIG, else $KUBECONFIG, else the test
    cluster's (``<cluster_state_dir>/kubeconfig``)."""
    value = (
        _text(configuration, "kubeconfig")
        or os.environ.get("CHAOSREGISTRY_KUBECONFIG")
        or os.environ.get("KUBECONFIG")
    )
    if value:
        return Path(value).expanduser().absolute()
    state_dir = _text(configuration, "cluster_state_dir") or DEFAULT_CLUSTER_STATE_DIR
    return (Path(state_dir) / "kubeconfig").absolute()


def _registry_nodes(configuration: Mapping[str, Any]) -> Mapping[str, RegistryNode]:
    nodes = configuration.get("registry_nodes") or {}
    if not isinstance(nodes, Mapping):
        _fail("registry_nodes", " must map node names to pod selectors")
    parsed: dict[str, RegistryNode] = {}
    for name, choice in nodes.items():
        key = f"registry_nodes.{name}"
        if not isinstance(choice, Mapping) or not isinstance(choice.get("selector"), Mapping):
            _fail(key, ": needs a selector (the labels of the registry pods it kills)")
        selector = _labels(f"{key}.selector", choice["selector"], "must map label names to values")
        value = choice.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            _fail(f"{key}.value", f": must be a whole number, got {value!r}")
        namespace = choice.get("namespace") or ""
        if not isinstance(namespace, str):
            _fail(f"{key}.namespace", f": must be a namespace name, got {namespace!r}")
        _declared(f"{key}.namespace", namespace, contract_of(Namespace))
        _kill_mode(key, choice.get("mode", "one"), value)
        parsed[str(name)] = RegistryNode(
            selector=selector, mode=str(choice.get("mode", "one")), value=value, namespace=namespace
        )
    return MappingProxyType(parsed)


def _kill_mode(key: str, mode: Any, value: Any) -> None:
    # The kill's own rule (Chaos Mesh's selector modes), imported only when nodes are named:
    # it lives beside the pods it picks, with lightkube.
    from chaosregistry.backends.kubernetes_pods import kill_mode

    try:
        kill_mode(mode, value)
    except ConfigError as exc:
        _fail(f"{key}.mode", f": {exc}")


def _kubernetes_settings(configuration: Mapping[str, Any]) -> KubernetesSettings:
    max_pods = configuration.get("max_pods", DEFAULT_MAX_PODS)
    if isinstance(max_pods, bool) or not isinstance(max_pods, int) or max_pods < 1:
        _fail("max_pods", f" must be a whole number >= 1: {max_pods!r}")
    dry_run = _flag(configuration, "dry_run")
    timeout = _positive_seconds(configuration, "kube_timeout", DEFAULT_KUBE_TIMEOUT)
    provider = configuration.get("network_provider", "toxiproxy")
    if provider not in NETWORK_PROVIDERS:
        _fail(
            "network_provider",
            f" must be one of {', '.join(NETWORK_PROVIDERS)}, not {provider!r}",
        )
    node_kill = configuration.get("node_kill_provider", "api")
    if node_kill not in NODE_KILL_PROVIDERS:
        _fail(
            "node_kill_provider",
            f" must be one of {', '.join(NODE_KILL_PROVIDERS)}, not {node_kill!r}",
        )
    selectors = configuration.get("hop_selectors") or {}
    if not isinstance(selectors, Mapping):
        _fail("hop_selectors", " must map hop names to pod labels")
    external = configuration.get("hop_external_targets") or {}
    if not isinstance(external, Mapping):
        _fail("hop_external_targets", " must map hop names to lists of hosts or CIDRs")
    targets: dict[str, tuple[str, ...]] = {}
    for hop, hosts in external.items():
        hosts = hosts or []
        if not (isinstance(hosts, list | tuple) and all(isinstance(h, str) for h in hosts)):
            _fail(f"hop_external_targets.{hop}", f": must be a list of hosts or CIDRs: {hosts!r}")
        targets[str(hop)] = tuple(hosts)
    confirm = configuration.get("chaos_mesh_confirm_timeout", DEFAULT_CHAOS_MESH_CONFIRM_TIMEOUT)
    if isinstance(confirm, bool) or not isinstance(confirm, int | float) or confirm < 0:
        _fail("chaos_mesh_confirm_timeout", f": must be a number of seconds >= 0, got {confirm!r}")
    node_pulls = configuration.get("node_pulls")
    if node_pulls is not None and node_pulls not in NODE_PULLS:
        _fail("node_pulls", f" must be one of {', '.join(NODE_PULLS)}, not {node_pulls!r}")
    context = _text(configuration, "kube_context")
    _declared("namespace", configuration.get("namespace"), contract_of(Namespace))
    return KubernetesSettings(
        kubeconfig=_kubeconfig(configuration),
        context=context,
        namespace=str(configuration.get("namespace") or ""),
        max_pods=max_pods,
        dry_run=bool(dry_run),
        timeout=timeout,
        network_provider=str(provider),
        node_kill_provider=str(node_kill),
        hop_selectors=MappingProxyType(
            {
                str(hop): _labels(f"hop_selectors.{hop}", labels, "must map label names to values")
                for hop, labels in selectors.items()
            }
        ),
        hop_external_targets=MappingProxyType(targets),
        registry_nodes=_registry_nodes(configuration),
        chaos_mesh_confirm_timeout=float(confirm),
        node_pulls=None if node_pulls is None else str(node_pulls),
        registry_mirrors=_registry_mirrors(configuration),
    )


def _registry_mirrors(configuration: Mapping[str, Any]) -> Mapping[str, tuple[str, ...]]:
    mirrors = configuration.get("registry_mirrors") or {}
    if not isinstance(mirrors, Mapping):
        _fail("registry_mirrors", " must map registry hosts to lists of mirror hosts")
    parsed: dict[str, tuple[str, ...]] = {}
    for host, hosts in mirrors.items():
        if not (isinstance(hosts, list | tuple) and all(isinstance(h, str) and h for h in hosts)):
            _fail(f"registry_mirrors.{host}", f": must be a list of mirror hosts, got {hosts!r}")
        parsed[str(host)] = tuple(hosts)
    return MappingProxyType(parsed)


def _address(value: Any) -> bool:
    host, _, port = str(value).rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _prometheus_settings(
    configuration: Mapping[str, Any], sandbox: Path | None
) -> PrometheusSettings:
    url, sink = configuration.get("prometheus_url") or None, configuration.get("sli_sink") or None
    if url is not None:
        try:
            url = validate_registry_url(str(url))
        except ConfigError as exc:
            _fail("prometheus_url", f": {exc}")
    if sink is not None and not _address(sink):
        _fail("sli_sink", f": must be host:port, not {sink!r}")
    return PrometheusSettings(
        configured_url=str(url).rstrip("/") if url else None,
        configured_sli_sink=str(sink) if sink else None,
        timeout=_positive_seconds(configuration, "prometheus_timeout", DEFAULT_PROMETHEUS_TIMEOUT),
        sandbox_dir=sandbox,
    )


def _load_dir(configuration: Mapping[str, Any]) -> Path:
    """``load_dir``, else ``<run_dir or $CHAOSREGISTRY_RUN_DIR>/load``, else ./runs/load."""
    explicit = _text(configuration, "load_dir")
    if explicit:
        return Path(explicit).expanduser().absolute()
    run_dir = _text(configuration, "run_dir") or os.environ.get(RUN_DIR_ENV)
    if run_dir:
        return (Path(run_dir) / "load").expanduser().absolute()
    return DEFAULT_LOAD_DIR.absolute()


def parse_settings(configuration: Mapping[str, Any] | None) -> Settings:
    """Every setting of ``configuration`` (flattened or not), checked; SettingError naming
    the first bad key otherwise. Reads no file: a sandbox's endpoints are read when used."""
    flat: Mapping[str, Any] = flatten_configuration(dict(configuration or {}))
    backend = flat.get("backend", "local")
    if backend not in BACKENDS:
        _fail("backend", f": unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    registry = _registry_settings(flat)
    local = _local_settings(flat, registry.sandbox_dir)
    proxy = _fault_proxy(flat, registry)
    if proxy is not None:
        # The proxy's hop is the local backend's, unless toxiproxy_url and hops say otherwise;
        # the registry's connections go through its listener.
        local = replace(
            local,
            toxiproxy_url=local.toxiproxy_url or proxy.toxiproxy_url,
            hops=local.hops or MappingProxyType({FAULT_PROXY_HOP: FAULT_PROXY_HOP}),
        )
        registry = replace(
            registry,
            connect_to=MappingProxyType({**registry.connect_to, proxy.upstream: proxy.listen}),
        )
    return Settings(
        backend=str(backend),
        registry=registry,
        ledger_dir=resolve_ledger_dir(_text(flat, "ledger_dir")),
        load_dir=_load_dir(flat),
        load_origin=str(flat.get("load_origin") or "registry"),
        local=local,
        kubernetes=_kubernetes_settings(flat),
        prometheus=_prometheus_settings(flat, registry.sandbox_dir),
        fault_proxy=proxy,
        given=frozenset(
            key for key, value in flat.items() if value is not None and value not in ("", {}, [])
        )
        # A fault proxy gives the local backend its Toxiproxy and hops (above): an activity
        # that needs the sandbox only for want of them does not need it.
        | (frozenset({"toxiproxy_url", "hops"}) if proxy is not None else frozenset()),
    )


# -- once per distinct configuration -------------------------------------------------------------
_CACHE_SIZE = 64
_settings_cache: "OrderedDict[str, Settings]" = OrderedDict()
_settings_lock = threading.Lock()


def _cache_key(configuration: Mapping[str, Any]) -> str | None:
    """A digest of what the parse depends on: the configuration's canonical JSON, the
    environment it reads, the working directory (relative paths, ./runs/sandbox). A digest and
    not the text, so no configured value (a password someone put there) is kept in memory."""
    try:
        text = json.dumps(
            [
                configuration,
                [os.environ.get(key) for key in ENV_KEYS],
                os.getcwd(),
                (DEFAULT_SANDBOX_DIR / "endpoints.json").is_file(),
            ],
            sort_keys=True,
            default=repr,
        )
    except (TypeError, ValueError, OSError):
        return None  # keys JSON cannot sort (e.g. mixed types), no cwd: parse every time
    return hashlib.sha256(text.encode()).hexdigest()


def settings_for(configuration: Mapping[str, Any] | None) -> Settings:
    """The typed settings of an activity's ``configuration``, parsed once per distinct one."""
    key = _cache_key(configuration or {})
    if key is not None:
        with _settings_lock:
            cached = _settings_cache.get(key)
            if cached is not None:
                _settings_cache.move_to_end(key)
                return cached
    settings = parse_settings(configuration)
    if key is not None:
        with _settings_lock:
            _settings_cache[key] = settings
            while len(_settings_cache) > _CACHE_SIZE:
                _settings_cache.popitem(last=False)
    return settings


def resolve_target(
    configuration: Mapping[str, Any] | None,
    secrets: Mapping[str, Any] | None,
    target: str = "registry",
) -> RegistryTarget:
    """``settings_for(configuration).registry.resolve(secrets, target)``: for callers holding
    a configuration mapping (scripts, tests); activities call settings_for themselves."""
    return settings_for(configuration).registry.resolve(secrets, target)
