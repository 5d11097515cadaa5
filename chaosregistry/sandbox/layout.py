"""Where a sandbox keeps everything (paths under one run dir) and which ports it listens on.

Every port is ``base_port + offset`` so two sandboxes with different base ports run side by
side. The endpoints dict built here is the sandbox's public contract (see the package docstring).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosregistry.errors import ChaosRegistryError, ConfigError
from chaosregistry.trust.pki import Pki

HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 15000
# Ports used are base_port .. base_port + PORT_SPAN - 1.
PORT_SPAN = 50
TOKEN_SERVICE = "chaosregistry-sandbox"
TOKEN_ISSUER = "chaosregistry-sandbox-token-server"
USERNAME = "chaos"
CA_NAME = "chaosregistry-sandbox-ca"
# The one serving certificate (127.0.0.1 and localhost) every HTTPS listener presents.
SERVER_CERT = "sandbox-server"

REPLICAS = ("registry-1", "registry-2")
# Start order: Prometheus early (it applies its scrape targets only ~5 s after it starts),
# Toxiproxy before the rest (hops may exist before their upstreams), the mirror after nginx
# because Distribution's proxy mode pings its remote (through a hop and nginx) while starting.
PROCESS_NAMES = (
    "guardian",
    "prometheus",
    "toxiproxy",
    "registry-1",
    "registry-2",
    "token-server",
    "registry-token",
    "nginx",
    "mirror",
    "sli-exporter",
)
# With the second site (``up(..., second_site=True)``), after the rest: the DR registry, the
# receiver of the registries' notifications, then regsync (which needs both sites up).
SECOND_SITE_PROCESS_NAMES = ("registry-dr", "event-receiver", "regsync")

HOP_CLIENT_REGISTRY = "client-registry"
HOP_CLIENT_MIRROR = "client-mirror"
HOP_MIRROR_UPSTREAM = "mirror-upstream"
# In front of the token server: every token fetch (clients' and the mirror's) crosses it.
HOP_TOKEN_SERVER = "token-server"
# regsync -> the DR registry (second site only).
HOP_SYNC_DR = "sync-dr"
# The repositories regsync copies to the DR registry (a regsync ``repos.allow`` pattern).
REPLICATED_REPOSITORIES = "replication/.*"
# What only a sandbox with its second site has: the registries it names in its endpoints (where
# a push must go for regsync to see it, the DR registry) and the hops. An activity that reaches
# one of them by name needs ``up(..., second_site=True)`` (gameday reads these).
SECOND_SITE_REGISTRIES = ("replication_source", "dr_registry")
SECOND_SITE_HOPS = (HOP_SYNC_DR,)


class SandboxError(ChaosRegistryError):
    """A sandbox piece could not be started, stopped or seeded."""


@dataclass(frozen=True)
class Ports:
    """Every port of one sandbox, derived from ``base``."""

    base: int

    def __post_init__(self) -> None:
        if not 1024 <= self.base <= 65535 - PORT_SPAN:
            raise ConfigError(
                f"base port {self.base} out of range (1024..{65535 - PORT_SPAN}): "
                f"the sandbox uses {PORT_SPAN} ports from it"
            )

    # Toxiproxy hops (what clients and the mirror talk to) and its API.
    @property
    def hop_client_registry(self) -> int:
        return self.base

    @property
    def hop_client_mirror(self) -> int:
        return self.base + 1

    @property
    def hop_mirror_upstream(self) -> int:
        return self.base + 2

    @property
    def toxiproxy_api(self) -> int:
        return self.base + 3

    @property
    def hop_token_server(self) -> int:
        """In front of the token server: every token fetch crosses it."""
        return self.base + 4

    @property
    def hop_sync_dr(self) -> int:
        """regsync's way to the DR registry (second site)."""
        return self.base + 5

    # nginx servers.
    @property
    def nginx_registry(self) -> int:
        return self.base + 10

    @property
    def nginx_ratelimited(self) -> int:
        return self.base + 11

    @property
    def nginx_mirror_upstream(self) -> int:
        return self.base + 12

    @property
    def nginx_registry_http(self) -> int:
        """The plain-HTTP twin of ``nginx_registry``, kept for HTTP vs HTTPS comparisons."""
        return self.base + 13

    # Distribution instances: (http, debug) pairs.
    def replica(self, index: int) -> tuple[int, int]:
        """HTTP and debug port of replica ``index`` (0-based)."""
        return self.base + 20 + 2 * index, self.base + 21 + 2 * index

    @property
    def registry_token(self) -> tuple[int, int]:
        return self.base + 26, self.base + 27

    @property
    def mirror(self) -> tuple[int, int]:
        return self.base + 30, self.base + 31

    @property
    def registry_dr(self) -> tuple[int, int]:
        """The DR registry's HTTPS and debug ports (second site)."""
        return self.base + 32, self.base + 33

    @property
    def token_server(self) -> int:
        return self.base + 40

    @property
    def event_receiver(self) -> int:
        """Where the registries POST their notifications (second site)."""
        return self.base + 41

    # Monitoring (sandbox/monitoring.py).
    @property
    def prometheus(self) -> int:
        return self.base + 45

    @property
    def sli_exporter(self) -> int:
        """The SLI exporter's /metrics (TCP)."""
        return self.base + 46

    @property
    def sli_sink(self) -> int:
        """Where feeders send SLI datagrams (UDP)."""
        return self.base + 47

    def all(self) -> dict[str, int]:
        """Every port by what listens on it (for free-port checks and error messages)."""
        ports = {
            f"{HOP_CLIENT_REGISTRY} hop": self.hop_client_registry,
            f"{HOP_CLIENT_MIRROR} hop": self.hop_client_mirror,
            f"{HOP_MIRROR_UPSTREAM} hop": self.hop_mirror_upstream,
            f"{HOP_TOKEN_SERVER} hop": self.hop_token_server,
            "toxiproxy api": self.toxiproxy_api,
            "nginx registry": self.nginx_registry,
            "nginx ratelimited": self.nginx_ratelimited,
            "nginx mirror-upstream": self.nginx_mirror_upstream,
            "nginx registry-http": self.nginx_registry_http,
            "registry-token": self.registry_token[0],
            "registry-token debug": self.registry_token[1],
            "mirror": self.mirror[0],
            "mirror debug": self.mirror[1],
            "token-server": self.token_server,
            "prometheus": self.prometheus,
            "sli-exporter": self.sli_exporter,
        }
        for index, name in enumerate(REPLICAS):
            ports[name], ports[f"{name} debug"] = self.replica(index)
        ports[f"{HOP_SYNC_DR} hop"] = self.hop_sync_dr
        ports["registry-dr"], ports["registry-dr debug"] = self.registry_dr
        ports["event-receiver"] = self.event_receiver
        return ports


@dataclass(frozen=True)
class Layout:
    """Paths of one sandbox; everything lives under ``run_dir`` (always absolute)."""

    run_dir: Path

    @classmethod
    def at(cls, run_dir: Path | str) -> "Layout":
        return cls(Path(run_dir).expanduser().resolve())

    @property
    def endpoints_file(self) -> Path:
        return self.run_dir / "endpoints.json"

    @property
    def processes_file(self) -> Path:
        return self.run_dir / "processes.json"

    @property
    def catalog_file(self) -> Path:
        return self.run_dir / "catalog.json"

    @property
    def seed_marker(self) -> Path:
        return self.run_dir / "state" / "seed.json"

    @property
    def seed_manifests_file(self) -> Path:
        """The seeded manifests, in push order: what a node without storage is re-seeded from."""
        return self.run_dir / "state" / "seed-manifests.json"

    @property
    def signatures_file(self) -> Path:
        """What the sandbox signed (and left unsigned): ``sandbox.signing``."""
        return self.run_dir / "state" / "signatures.json"

    @property
    def signing_key_file(self) -> Path:
        return self.secrets_dir / "signing.key"

    @property
    def signing_public_key_file(self) -> Path:
        """The public half of the sandbox's image-signing key (cosign.pub's format)."""
        return self.run_dir / "pki" / "signing.pub"

    @property
    def guardian_ready_file(self) -> Path:
        """Written by the guardian once it guards (it serves no HTTP to be asked)."""
        return self.run_dir / "state" / "guardian.ready"

    @property
    def events_file(self) -> Path:
        """The registries' notifications, one JSON object a line (``sandbox.event_receiver``)."""
        return self.run_dir / "state" / "events.jsonl"

    @property
    def regsync_ready_file(self) -> Path:
        """Written by the regsync loop after its first completed pass."""
        return self.run_dir / "state" / "regsync.ready"

    @property
    def dr_storage(self) -> Path:
        """The DR registry's own storage: only what regsync copied is there."""
        return self.run_dir / "storage" / "registry-dr"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def config_dir(self) -> Path:
        return self.run_dir / "config"

    @property
    def secrets_dir(self) -> Path:
        return self.run_dir / "secrets"

    @property
    def credentials_file(self) -> Path:
        return self.secrets_dir / "credentials.json"

    @property
    def htpasswd_file(self) -> Path:
        return self.secrets_dir / "htpasswd"

    @property
    def http_secret_file(self) -> Path:
        return self.secrets_dir / "http_secret"

    @property
    def token_key_file(self) -> Path:
        return self.secrets_dir / "token-signing-key.pem"

    @property
    def token_cert_file(self) -> Path:
        return self.secrets_dir / "token-signing-cert.pem"

    @property
    def pki(self) -> Pki:
        """The sandbox's private CA and its serving certificate; ``pki.ca_cert`` is what a
        client trusts to verify every HTTPS endpoint."""
        return Pki(self.run_dir / "pki")

    @property
    def registry_storage(self) -> Path:
        """Shared by both replicas and registry-token."""
        return self.run_dir / "storage" / "registry"

    @property
    def mirror_storage(self) -> Path:
        return self.run_dir / "storage" / "mirror"

    @property
    def nginx_prefix(self) -> Path:
        return self.run_dir / "nginx"

    @property
    def tls_overrides_dir(self) -> Path:
        """Per-server nginx snippets (``<server>.conf``) that replace the serving certificate of
        one TLS server: how a certificate fault swaps what nginx serves (absent when none)."""
        return self.nginx_prefix / "tls-overrides"

    @property
    def route_overrides_dir(self) -> Path:
        """nginx snippets (``*.conf``, server context) included by the servers in front of the
        replicas (``registry``, ``registry_http``): how the referrers fault answers one route
        itself (empty when none)."""
        return self.nginx_prefix / "route-overrides"

    @property
    def mirror_upstream_overrides_dir(self) -> Path:
        """nginx snippets (``*.conf``, server context) included by the server in front of the
        mirror's upstream (``mirror-upstream``): how the mirror-upstream fault makes the
        mirror's remote answer 429 or 503 (empty when none). Not matched by the glob of
        ``route_overrides_dir``."""
        return self.route_overrides_dir / "mirror-upstream"

    @property
    def http_overrides_dir(self) -> Path:
        """nginx snippets (``*.conf``) included in nginx's ``http`` context: what a route
        override needs declared there (the quota fault's ``limit_req_zone``)."""
        return self.route_overrides_dir / "http"

    @property
    def toxiproxy_dir(self) -> Path:
        return self.run_dir / "toxiproxy"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.pids_dir / f"{name}.pid"

    def config_file(self, name: str, suffix: str = ".yml") -> Path:
        return self.config_dir / f"{name}{suffix}"

    def make_dirs(self) -> None:
        for directory in (
            self.logs_dir,
            self.pids_dir,
            self.registry_storage,
            self.mirror_storage,
            self.nginx_prefix / "tmp",
            self.tls_overrides_dir,
            self.route_overrides_dir,
            self.mirror_upstream_overrides_dir,
            self.http_overrides_dir,
            self.toxiproxy_dir,
            self.seed_marker.parent,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        # Configs embed the http secret (and the mirror's the password): owner only.
        for private in (self.config_dir, self.secrets_dir):
            private.mkdir(parents=True, exist_ok=True)
            private.chmod(0o700)


def https_url(port: int) -> str:
    """A client-facing listener: TLS with the sandbox CA's certificate."""
    return f"https://{HOST}:{port}"


def http_url(port: int) -> str:
    """An internal listener (replicas, registry-token, debug/metrics, Toxiproxy's API)."""
    return f"http://{HOST}:{port}"


def hop_ports(ports: Ports, second_site: bool = False) -> dict[str, tuple[int, int]]:
    """Every Toxiproxy hop: name -> (listen port, upstream port)."""
    hops = {
        HOP_CLIENT_REGISTRY: (ports.hop_client_registry, ports.nginx_registry),
        HOP_CLIENT_MIRROR: (ports.hop_client_mirror, ports.mirror[0]),
        HOP_MIRROR_UPSTREAM: (ports.hop_mirror_upstream, ports.nginx_mirror_upstream),
        HOP_TOKEN_SERVER: (ports.hop_token_server, ports.token_server),
    }
    if second_site:
        hops[HOP_SYNC_DR] = (ports.hop_sync_dr, ports.registry_dr[0])
    return hops


def forwarding(ports: Ports, second_site: bool = False) -> dict[int, tuple[int, ...]]:
    """Where a request that arrives on a port (every listener is on ``HOST``) goes on to: each
    hop to its upstream; nginx's registry servers to the replicas, its token-registry server to
    registry-token; the mirror to its remote (through the mirror-upstream hop); and a client of
    the token-auth registry (the mirror's pulls included) to the token-server hop for its token.

    The wiring ``configs`` writes into nginx's, the mirror's and registry-token's configuration;
    ``faults.evidence`` follows it to tell which hops and processes a request crosses.
    """
    replicas = tuple(ports.replica(index)[0] for index in range(len(REPLICAS)))
    edges: dict[int, tuple[int, ...]] = {
        listen: (upstream,) for listen, upstream in hop_ports(ports, second_site).values()
    }
    edges[ports.nginx_registry] = replicas
    edges[ports.nginx_registry_http] = replicas
    edges[ports.nginx_ratelimited] = replicas
    edges[ports.nginx_mirror_upstream] = (ports.registry_token[0], ports.hop_token_server)
    edges[ports.mirror[0]] = (ports.hop_mirror_upstream,)
    return edges


def build_endpoints(layout: Layout, ports: Ports, second_site: bool = False) -> dict[str, Any]:
    """The endpoints dict (schema in the package docstring). Holds no secret."""
    hops = hop_ports(ports, second_site)
    endpoints = {
        "run_dir": str(layout.run_dir),
        "base_port": ports.base,
        "ca_file": str(layout.pki.ca_cert),
        "registry": https_url(ports.hop_client_registry),
        "registry_direct": https_url(ports.nginx_registry),
        "registry_http": http_url(ports.nginx_registry_http),
        "registry_ratelimited": https_url(ports.nginx_ratelimited),
        "replicas": [
            {
                "name": name,
                "url": http_url(ports.replica(index)[0]),
                "metrics_url": http_url(ports.replica(index)[1]) + "/metrics",
            }
            for index, name in enumerate(REPLICAS)
        ],
        "mirror": https_url(ports.hop_client_mirror),
        "mirror_direct": https_url(ports.mirror[0]),
        "mirror_metrics_url": http_url(ports.mirror[1]) + "/metrics",
        "mirror_upstream": https_url(ports.hop_mirror_upstream),
        # nginx's TLS front of registry-token (the mirror's upstream, without the hop).
        "token_registry": https_url(ports.nginx_mirror_upstream),
        "token_realm": https_url(ports.hop_token_server) + "/token",
        # The token server itself, without the hop (its /healthz, /stats and /token).
        "token_server_direct": https_url(ports.token_server),
        "token_service": TOKEN_SERVICE,
        "token_stats_url": https_url(ports.token_server) + "/stats",
        "toxiproxy": http_url(ports.toxiproxy_api),
        "prometheus": http_url(ports.prometheus),
        "sli_metrics_url": http_url(ports.sli_exporter) + "/metrics",
        "sli_sink": f"{HOST}:{ports.sli_sink}",
        "upstream_metrics_url": http_url(ports.registry_token[1]) + "/metrics",
        "hops": {
            name: {"proxy": name, "listen": f"{HOST}:{listen}", "upstream": f"{HOST}:{upstream}"}
            for name, (listen, upstream) in hops.items()
        },
        "credentials_file": str(layout.credentials_file),
        "catalog_file": str(layout.catalog_file),
        "signing_public_key": str(layout.signing_public_key_file),
        "signatures_file": str(layout.signatures_file),
        "logs_dir": str(layout.logs_dir),
        "second_site": second_site,
    }
    if second_site:
        endpoints.update(
            {
                "dr_registry": https_url(ports.registry_dr[0]),
                "dr_metrics_url": http_url(ports.registry_dr[1]) + "/metrics",
                "dr_sync_hop": HOP_SYNC_DR,
                "replicated_repositories": REPLICATED_REPOSITORIES,
                "event_receiver": http_url(ports.event_receiver),
                "events_file": str(layout.events_file),
            }
        )
    return endpoints


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc


def load_endpoints(run_dir: Path | str) -> dict[str, Any]:
    """The endpoints dict of the sandbox in ``run_dir``.

    Raises ``ConfigError`` when ``run_dir`` holds no sandbox (no endpoints.json).
    """
    layout = Layout.at(run_dir)
    if not layout.endpoints_file.is_file():
        raise ConfigError(f"{layout.run_dir} is not a sandbox directory (no endpoints.json)")
    endpoints: dict[str, Any] = read_json(layout.endpoints_file)
    return endpoints
