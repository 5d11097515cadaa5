"""What differs between the registry implementations the sandbox can run as its replicas.

``registry-1`` and ``registry-2`` (behind nginx) run the chosen implementation:

- ``distribution-2``: Debian's CNCF Distribution 2.8 (the default).
- ``distribution-3``: CNCF Distribution v3.1.2, built by ``make setup``.
- ``ggcr``: go-containerregistry v0.22.1's registry (``pkg/registry``, what ``crane registry
  serve`` runs) with the OCI 1.1 referrers API on: ``tools/ggcr-registry``, built by ``make
  setup`` (crane has no flag for the API).

The mirror (pull-through cache) and the token-auth registry need Distribution whatever the
replicas run (ggcr has no proxy mode and no auth): Distribution 3.1.2 for ``distribution-3``,
2.8 otherwise.

ggcr keeps manifests in memory and blobs on disk (``--disk``), has no auth and no metrics. So
for ``ggcr``: nginx checks the sandbox's htpasswd itself (``auth_basic``), each replica and the
token registry are seeded separately (nothing is shared), and each replica runs under
``chaosregistry.sandbox.ggcr_node``, which pushes the seeded manifests again whenever the node
starts: a killed and restarted ggcr replica comes back with the seeded content (its blobs are on
its disk) but without anything pushed to it after the seed.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosregistry.errors import ConfigError
from chaosregistry.sandbox.binaries import CACHE, find_binary, require_executable
from chaosregistry.sandbox.layout import HOST, REPLICAS, Layout, Ports, http_url, https_url
from chaosregistry.sandbox.processes import ProcessSpec

DEFAULT_IMPLEMENTATION = "distribution-2"

DISTRIBUTION_2 = "/usr/bin/docker-registry"
DISTRIBUTION_3_ENV = "CHAOSREGISTRY_DISTRIBUTION3"
DISTRIBUTION_3_CACHED = CACHE / "distribution-3.1.2/registry"
GGCR_REGISTRY_ENV = "CHAOSREGISTRY_GGCR_REGISTRY"
GGCR_REGISTRY_CACHED = CACHE / "ggcr-registry-0.22.1/ggcr-registry"

# Distribution v3 exports OpenTelemetry traces to localhost:4318 unless told not to: nothing
# listens there, and every request would try.
DISTRIBUTION_3_ENVIRONMENT = {"OTEL_TRACES_EXPORTER": "none"}


@dataclass(frozen=True)
class Capabilities:
    """What an implementation offers the sandbox (and what the tests may expect of it)."""

    # Replicas serve one storage: a push to one is pulled from the other; restarts keep content.
    shared_storage: bool
    # The registry checks the htpasswd itself; False: nginx does (auth_basic).
    auth_in_process: bool
    # Can run as the pull-through mirror.
    pull_through: bool
    # Prometheus /metrics on the replicas' debug port.
    metrics: bool
    # Bearer token auth (the token registry).
    token_auth: bool
    # The OCI 1.1 referrers API (GET /v2/<name>/referrers/<digest>); False: it answers 404 and
    # referrers are found through the referrers tag schema (``sha256-<hex>``).
    referrers_api: bool = False


@dataclass(frozen=True)
class Implementation:
    name: str
    description: str
    capabilities: Capabilities

    def distribution_binary(self) -> str:
        """The Distribution that runs the mirror and the token registry for this choice."""
        if self.name == "distribution-3":
            return find_binary(
                "CNCF Distribution v3 (registry)",
                env=DISTRIBUTION_3_ENV,
                cached=DISTRIBUTION_3_CACHED,
            )
        return require_executable(DISTRIBUTION_2, "CNCF Distribution 2.8 (docker-registry)")

    def distribution_environment(self) -> dict[str, str]:
        return dict(DISTRIBUTION_3_ENVIRONMENT) if self.name == "distribution-3" else {}

    def replica_storage(self, layout: Layout, name: str) -> Path:
        if self.capabilities.shared_storage:
            return layout.registry_storage
        return layout.run_dir / "storage" / name

    def distribution_spec(
        self, layout: Layout, name: str, http_port: int, debug_port: int, *, tls: bool = False
    ) -> ProcessSpec:
        """A Distribution process serving ``layout.config_file(name)`` (HTTPS with ``tls``)."""
        env = self.distribution_environment()
        if tls:
            # Go reads extra roots from SSL_CERT_FILE on Linux: the mirror calls its upstream
            # and the token realm over HTTPS signed by our CA. (A path, not a secret.)
            env["SSL_CERT_FILE"] = str(layout.pki.ca_cert)
        return ProcessSpec(
            name=name,
            argv=[self.distribution_binary(), "serve", str(layout.config_file(name))],
            cwd=str(layout.run_dir),
            log=str(layout.log_file(name)),
            ready_url=(https_url if tls else http_url)(http_port) + "/v2/",
            ports=[http_port, debug_port],
            env=env,
        )

    def replica_binary(self) -> str:
        """The program the replicas run (for ``distribution-*``, ``distribution_binary``)."""
        if self.name != "ggcr":
            return self.distribution_binary()
        return find_binary(
            "go-containerregistry's registry (tools/ggcr-registry)",
            env=GGCR_REGISTRY_ENV,
            cached=GGCR_REGISTRY_CACHED,
        )

    def replica_spec(
        self, layout: Layout, name: str, http_port: int, debug_port: int
    ) -> ProcessSpec:
        """How replica ``name`` runs (Distribution: from its YAML config)."""
        if self.name != "ggcr":
            return self.distribution_spec(layout, name, http_port, debug_port)
        registry = self.replica_binary()
        return ProcessSpec(
            name=name,
            argv=[
                sys.executable,
                "-m",
                "chaosregistry.sandbox.ggcr_node",
                "--registry",
                registry,
                "--listen",
                f"{HOST}:{http_port}",
                "--disk",
                str(self.replica_storage(layout, name)),
                "--ready",
                f"{HOST}:{debug_port}",
                "--manifests",
                str(layout.seed_manifests_file),
            ],
            cwd=str(layout.run_dir),
            log=str(layout.log_file(name)),
            # Answers only once the seeded manifests are back in the node's memory.
            ready_url=http_url(debug_port) + "/ready",
            ports=[http_port, debug_port],
        )

    def seeded_storages(self, layout: Layout) -> list[Path]:
        """The storage directories the seed fills: the replicas' and the token registry's."""
        replicas = [self.replica_storage(layout, name) for name in REPLICAS]
        return sorted({*replicas, layout.registry_storage})

    def seed_targets(self, endpoints: dict[str, Any]) -> list[str]:
        """Registries the seed must be pushed to: one per storage."""
        if self.capabilities.shared_storage:
            return [endpoints["replicas"][0]["url"]]
        # The token registry (the mirror's upstream) is Distribution on its own storage here.
        return [replica["url"] for replica in endpoints["replicas"]] + [endpoints["token_registry"]]

    def token_realm(self, ports: Ports) -> str:
        """Where the token registry sends clients for a token.

        Distribution v3.1.2's proxy mode only sends its credentials to a realm on its remote's
        own host:port (or a shared registrable domain, never for IP literals): for it the realm
        is on the mirror's upstream hop, and nginx passes ``/token`` on to the token server's
        hop. Either way every token fetch crosses the ``token-server`` hop.
        """
        if self.name == "distribution-3":
            return https_url(ports.hop_mirror_upstream) + "/token"
        return https_url(ports.hop_token_server) + "/token"

    def nginx_mirror_upstream_directives(self, ports: Ports) -> str:
        """Extra directives for nginx's server in front of the token registry."""
        if self.name != "distribution-3":
            return ""
        return (
            "        location /token {\n"
            f"            proxy_pass {https_url(ports.hop_token_server)};\n"
            "        }\n"
        )

    def describe_endpoints(self, endpoints: dict[str, Any], ports: Ports) -> dict[str, Any]:
        """The endpoints with this implementation's name; no replica metrics URL without metrics."""
        replicas = [
            {
                **replica,
                "metrics_url": replica["metrics_url"] if self.capabilities.metrics else None,
            }
            for replica in endpoints["replicas"]
        ]
        return {
            **endpoints,
            "implementation": self.name,
            "replicas": replicas,
            "token_realm": self.token_realm(ports),
        }

    def nginx_registry_directives(self, htpasswd: Path) -> str:
        """Extra directives for nginx's servers in front of the replicas."""
        if self.capabilities.auth_in_process:
            return ""
        # Nothing is shared between ggcr replicas: a 404 from one may be content only the
        # other holds (a node re-seeding after a restart), so GET/HEAD try the other one.
        # nginx never retries a POST/PUT/PATCH (non_idempotent is not set).
        return (
            '        auth_basic "chaosregistry-sandbox";\n'
            f"        auth_basic_user_file {htpasswd};\n"
            "        proxy_next_upstream error timeout http_404;\n"
        )


IMPLEMENTATIONS: dict[str, Implementation] = {
    "distribution-2": Implementation(
        "distribution-2",
        "CNCF Distribution 2.8 (Debian)",
        Capabilities(
            shared_storage=True,
            auth_in_process=True,
            pull_through=True,
            metrics=True,
            token_auth=True,
        ),
    ),
    "distribution-3": Implementation(
        "distribution-3",
        "CNCF Distribution v3.1.2",
        Capabilities(
            shared_storage=True,
            auth_in_process=True,
            pull_through=True,
            metrics=True,
            token_auth=True,
        ),
    ),
    "ggcr": Implementation(
        "ggcr",
        "go-containerregistry v0.22.1 (pkg/registry, referrers API on)",
        Capabilities(
            shared_storage=False,
            auth_in_process=False,
            pull_through=False,
            metrics=False,
            token_auth=False,
            referrers_api=True,
        ),
    ),
}
IMPLEMENTATION_NAMES = tuple(IMPLEMENTATIONS)


def implementation(name: str) -> Implementation:
    """The implementation called ``name``; ConfigError naming the choices otherwise."""
    try:
        return IMPLEMENTATIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown registry implementation {name!r} (choose from {', '.join(IMPLEMENTATIONS)})"
        ) from None
