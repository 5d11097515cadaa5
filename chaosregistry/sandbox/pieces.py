"""What runs in a sandbox: one ``ProcessSpec`` per piece, and where the binaries are."""

import os
import shutil
import sys
from pathlib import Path

from chaosregistry.errors import ConfigError
from chaosregistry.sandbox.layout import (
    HOST,
    REPLICAS,
    TOKEN_ISSUER,
    TOKEN_SERVICE,
    Layout,
    Ports,
    url,
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

    def registry(name: str, http_port: int, debug_port: int) -> ProcessSpec:
        return ProcessSpec(
            name=name,
            argv=[distribution, "serve", str(layout.config_file(name))],
            cwd=run,
            log=str(layout.log_file(name)),
            ready_url=url(http_port) + "/v2/",
            ports=[http_port, debug_port],
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
            ready_url=url(ports.toxiproxy_api) + "/version",
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
            ],
            cwd=run,
            log=str(layout.log_file("token-server")),
            ready_url=url(ports.token_server) + "/healthz",
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
            ready_url=url(ports.nginx_registry) + "/v2/",
            ports=[ports.nginx_registry, ports.nginx_ratelimited, ports.nginx_mirror_upstream],
        ),
        registry("mirror", *ports.mirror),
    ]
    return specs
