"""What runs in a sandbox: one ``ProcessSpec`` per piece, and where the binaries are."""

import sys

from chaosregistry.faults.watchdog import known_ledgers_dir
from chaosregistry.sandbox.binaries import CACHE, find_binary, require_executable
from chaosregistry.sandbox.implementations import DEFAULT_IMPLEMENTATION, implementation
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
from chaosregistry.sandbox.monitoring import prometheus_spec, sli_exporter_spec
from chaosregistry.sandbox.processes import ProcessSpec
from chaosregistry.sandbox.second_site import second_site_specs

NGINX = "/usr/sbin/nginx"
TOXIPROXY_ENV = "CHAOSREGISTRY_TOXIPROXY"
TOXIPROXY_CACHED = CACHE / "toxiproxy-2.5.0/server"


def toxiproxy_binary() -> str:
    """$CHAOSREGISTRY_TOXIPROXY, else toxiproxy-server on PATH, else the `make setup` build."""
    return find_binary(
        "Toxiproxy server", env=TOXIPROXY_ENV, cached=TOXIPROXY_CACHED, on_path="toxiproxy-server"
    )


def process_specs(
    layout: Layout,
    ports: Ports,
    implementation_name: str = DEFAULT_IMPLEMENTATION,
    second_site: bool = False,
) -> list[ProcessSpec]:
    """Every piece, in start order (see ``layout.PROCESS_NAMES``); replicas run the named
    implementation, the token registry and the mirror its Distribution. ``second_site`` adds
    ``layout.SECOND_SITE_PROCESS_NAMES`` at the end (see ``sandbox.second_site``)."""
    run = str(layout.run_dir)
    chosen = implementation(implementation_name)
    nginx = require_executable(NGINX, "nginx")

    def registry(name: str, http_port: int, debug_port: int, *, tls: bool = False) -> ProcessSpec:
        return chosen.distribution_spec(layout, name, http_port, debug_port, tls=tls)

    specs = [
        # First, so that `down` stops it last: it keeps the fault watchdogs alive (see
        # chaosregistry.faults.guardian) for the ledgers indexed where this `up` runs.
        ProcessSpec(
            name="guardian",
            argv=[
                sys.executable,
                "-m",
                "chaosregistry.faults.guardian",
                "--index",
                str(known_ledgers_dir()),
                "--ready-file",
                str(layout.guardian_ready_file),
            ],
            cwd=run,
            log=str(layout.log_file("guardian")),
            ready_url="",
            ports=[],
            ready_file=str(layout.guardian_ready_file),
        ),
        # Second: Prometheus applies its targets only about 5 s after it starts, and `up` waits
        # for its first scrapes; started before what it scrapes, that wait overlaps their start
        # and the seed instead of following them.
        prometheus_spec(layout, ports),
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
                # The bytes each hop carried: a fault's evidence that traffic crossed its hop.
                "-proxy-metrics",
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
                ports.hop_token_server,
                *([ports.hop_sync_dr] if second_site else []),
            ],
        ),
    ]
    specs += [
        chosen.replica_spec(layout, name, *ports.replica(index))
        for index, name in enumerate(REPLICAS)
    ]
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
    # The SLI exporter (Prometheus, started second, scrapes it too).
    specs.append(sli_exporter_spec(layout, ports, sys.executable))
    if second_site:
        specs += second_site_specs(layout, ports, chosen)
    return specs
