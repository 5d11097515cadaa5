"""What runs in a sandbox: one ``ProcessSpec`` per piece, and where the binaries are."""

import os
import shutil
import sys
from pathlib import Path

from chaosregistry.errors import ConfigError
from chaosregistry.sandbox.layout import (
    HOST,
    REPLICAS,
    SERVER_CERT,
    TOKEN_ISSUER,
    TOKEN_SERVICE,
    Layout,
    Ports,
    http_url,
    https_url,
)
from chaosregistry.sandbox.processes import ProcessSpec

DISTRIBUTION = "/usr/bin/docker-registry"
NGINX = "/usr/sbin/nginx"
TOXIPROXY_ENV = "CHAOSREGISTRY_TOXIPROXY"
TOXIPROXY_CACHED = Path.home() / ".cache/chaostoolkit-registry/toxiproxy-2.5.0/server"


def _require(path: str, what: str) -> str:
    if not os.access(path, os.X_OK):
        raise ConfigError(f"{what} not found at {path}: run `make setup`")
    return path


def toxiproxy_binary() -> str:
    """$CHAOSREGISTRY_TOXIPROXY, else toxiproxy-server on PATH, else the `make setup` build."""
    configured = os.environ.get(TOXIPROXY_ENV)
    if configured:
        return _require(configured, f"Toxiproxy server (${TOXIPROXY_ENV})")
    on_path = shutil.which("toxiproxy-server")
    if on_path:
        return on_path
    if os.access(TOXIPROXY_CACHED, os.X_OK):
        return str(TOXIPROXY_CACHED)
    raise ConfigError(
        f"Toxiproxy server not found (${TOXIPROXY_ENV}, toxiproxy-server on PATH, "
        f"{TOXIPROXY_CACHED}): run `make setup`"
    )


def process_specs(layout: Layout, ports: Ports) -> list[ProcessSpec]:
    """Every piece, in start order (see ``layout.PROCESS_NAMES``)."""
    run = str(layout.run_dir)
    distribution = _require(DISTRIBUTION, "CNCF Distribution (docker-registry)")
    nginx = _require(NGINX, "nginx")

    def registry(name: str, http_port: int, debug_port: int, *, tls: bool = False) -> ProcessSpec:
        return ProcessSpec(
            name=name,
            argv=[distribution, "serve", str(layout.config_file(name))],
            cwd=run,
            log=str(layout.log_file(name)),
            ready_url=(https_url if tls else http_url)(http_port) + "/v2/",
            ports=[http_port, debug_port],
            # Go reads extra roots from SSL_CERT_FILE on Linux: the mirror calls its upstream
            # and the token realm over HTTPS signed by our CA. (A path, not a secret.)
            env={"SSL_CERT_FILE": str(layout.pki.ca_cert)} if tls else {},
        )

    specs = [
        ProcessSpec(
            name="toxiproxy",
            argv=[
                toxiproxy_binary(),
                "-host",
                HOST,
                "-port",
                str(ports.toxiproxy_api),
                "-config",
                str(layout.config_file("toxiproxy", ".json")),
            ],
            cwd=run,
            log=str(layout.log_file("toxiproxy")),
            ready_url=http_url(ports.toxiproxy_api) + "/version",
            # Its default (debug) logs every proxied connection twice; benchmarks open many.
            env={"LOG_LEVEL": "info"},
            ports=[
                ports.toxiproxy_api,
                ports.hop_client_registry,
                ports.hop_client_mirror,
                ports.hop_mirror_upstream,
            ],
        )
    ]
    specs += [registry(name, *ports.replica(index)) for index, name in enumerate(REPLICAS)]
    specs += [
        ProcessSpec(
            name="token-server",
            argv=[
                sys.executable,
                "-m",
                "chaosregistry.sandbox.token_server",
                "--listen",
                f"{HOST}:{ports.token_server}",
                "--credentials",
                str(layout.credentials_file),
                "--key",
                str(layout.token_key_file),
                "--cert",
                str(layout.token_cert_file),
                "--issuer",
                TOKEN_ISSUER,
                "--service",
                TOKEN_SERVICE,
                "--tls-cert",
                str(layout.pki.cert(SERVER_CERT)),
                "--tls-key",
                str(layout.pki.key(SERVER_CERT)),
            ],
            cwd=run,
            log=str(layout.log_file("token-server")),
            ready_url=https_url(ports.token_server) + "/healthz",
            ports=[ports.token_server],
        ),
        registry("registry-token", *ports.registry_token),
        ProcessSpec(
            name="nginx",
            argv=[
                nginx,
                "-p",
                str(layout.nginx_prefix),
                "-c",
                str(layout.config_file("nginx", ".conf")),
                "-e",
                str(layout.log_file("nginx-error")),
            ],
            cwd=run,
            log=str(layout.log_file("nginx")),
            ready_url=https_url(ports.nginx_registry) + "/v2/",
            ports=[
                ports.nginx_registry,
                ports.nginx_ratelimited,
                ports.nginx_mirror_upstream,
                ports.nginx_registry_http,
            ],
        ),
        registry("mirror", *ports.mirror, tls=True),
    ]
    return specs
