"""Rendering of every piece's configuration: Distribution YAML, nginx.conf, Toxiproxy proxies.

Pure functions of the layout, the ports and the secrets; ``write_configs`` puts them on disk
(mode 0600: they embed the http secret, and the mirror's its upstream password).
"""

import json
import os
from pathlib import Path
from typing import Any

import yaml

from chaosregistry.sandbox.credentials import Credentials
from chaosregistry.sandbox.implementations import (
    DEFAULT_IMPLEMENTATION,
    IMPLEMENTATIONS,
    Implementation,
)
from chaosregistry.sandbox.layout import (
    HOST,
    REPLICAS,
    SERVER_CERT,
    TOKEN_ISSUER,
    TOKEN_SERVICE,
    Layout,
    Ports,
    hop_ports,
    https_url,
)
from chaosregistry.sandbox.monitoring import write_prometheus_config
from chaosregistry.sandbox.second_site import notifications_config, regsync_config

HTPASSWD_REALM = "chaosregistry-sandbox"
# The ratelimited server: a client doing more than RATE requests/second beyond BURST sees 429s.
RATE_PER_SECOND = 2
RATE_BURST = 4
RETRY_AFTER_SECONDS = 2
# How long nginx leaves a replica alone after one failed request to it (its fail_timeout).
REPLICA_FAIL_TIMEOUT = 2
# How long a Distribution stopped with SIGTERM may finish its requests in flight; under the
# sandbox's stop timeout (processes.STOP_TIMEOUT, 10 s), after which it is SIGKILLed.
DRAIN_SECONDS = 5


def _distribution_base(
    *, storage: Path, http_port: int, debug_port: int | None, http_secret: str
) -> dict[str, Any]:
    http: dict[str, Any] = {
        "addr": f"{HOST}:{http_port}",
        "secret": http_secret,
        "headers": {"X-Content-Type-Options": ["nosniff"]},
        # On SIGTERM, finish the requests in flight before exiting (Distribution's default, 0,
        # cuts them): a replica restarted behind nginx (registry.read-only) then ends no pull
        # mid-blob. Seen without it: a blob truncated 110592 bytes short during the restarts.
        # A hard stop is SIGKILL (the node-kill fault), which this does not touch.
        "draintimeout": f"{DRAIN_SECONDS}s",
    }
    if debug_port is not None:
        http["debug"] = {
            "addr": f"{HOST}:{debug_port}",
            "prometheus": {"enabled": True, "path": "/metrics"},
        }
    return {
        "version": "0.1",
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            # No blob descriptor cache on purpose: replicas share one storage and a
            # per-process cache would go stale when another replica deletes.
            "delete": {"enabled": True},
        },
        "http": http,
    }


def replica_config(layout: Layout, ports: Ports, index: int, http_secret: str) -> dict[str, Any]:
    http_port, debug_port = ports.replica(index)
    config = _distribution_base(
        storage=layout.registry_storage,
        http_port=http_port,
        debug_port=debug_port,
        http_secret=http_secret,
    )
    config["auth"] = _htpasswd_auth(layout)
    return config


def _htpasswd_auth(layout: Layout) -> dict[str, Any]:
    """Distribution's ``auth``: the sandbox's htpasswd (its one user), Basic realm."""
    return {"htpasswd": {"realm": HTPASSWD_REALM, "path": str(layout.htpasswd_file)}}


def token_registry_config(
    layout: Layout, ports: Ports, http_secret: str, realm: str = ""
) -> dict[str, Any]:
    http_port, debug_port = ports.registry_token
    config = _distribution_base(
        storage=layout.registry_storage,
        http_port=http_port,
        debug_port=debug_port,
        http_secret=http_secret,
    )
    config["auth"] = {
        "token": {
            # What clients are sent to: the token server speaks TLS only.
            "realm": realm or https_url(ports.hop_token_server) + "/token",
            "service": TOKEN_SERVICE,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": str(layout.token_cert_file),
        }
    }
    return config


def mirror_config(
    layout: Layout, ports: Ports, http_secret: str, creds: Credentials
) -> dict[str, Any]:
    """Pull-through cache, anonymous for clients.

    Its remote is the token-auth registry (via the mirror-upstream hop and nginx): Distribution's
    proxy mode only answers Bearer challenges with its configured credentials (it never sends
    them to a Basic realm), so an htpasswd upstream would refuse every pull-through.
    """
    http_port, debug_port = ports.mirror
    config = _distribution_base(
        storage=layout.mirror_storage,
        http_port=http_port,
        debug_port=debug_port,
        http_secret=http_secret,
    )
    # Clients reach the mirror over TLS; Go negotiates h2 by ALPN by itself.
    config["http"]["tls"] = _server_tls(layout)
    # Over TLS through the hop to nginx; the mirror trusts our CA through SSL_CERT_FILE
    # (set in its process environment, see pieces.py).
    config["proxy"] = {
        "remoteurl": https_url(ports.hop_mirror_upstream),
        "username": creds.username,
        "password": creds.password,
    }
    return config


def _server_tls(layout: Layout) -> dict[str, str]:
    """Distribution's ``http.tls``: the sandbox's server certificate (every name the sandbox
    serves under), signed by its private CA."""
    return {
        "certificate": str(layout.pki.cert(SERVER_CERT)),
        "key": str(layout.pki.key(SERVER_CERT)),
    }


def dr_registry_config(layout: Layout, ports: Ports, http_secret: str) -> dict[str, Any]:
    """The second site's registry: Distribution on its own storage, HTTPS, the sandbox's
    htpasswd; what regsync copies there is announced to the event receiver like a push."""
    http_port, debug_port = ports.registry_dr
    config = _distribution_base(
        storage=layout.dr_storage,
        http_port=http_port,
        debug_port=debug_port,
        http_secret=http_secret,
    )
    config["http"]["tls"] = _server_tls(layout)
    config["auth"] = _htpasswd_auth(layout)
    config["notifications"] = notifications_config(ports, "registry-dr")
    return config


# Stream blobs of any size without spooling them to disk. Responses are buffered in memory
# only (4 MiB per connection, never a temp file): unbuffered proxying reads the upstream in
# proxy_buffer_size pieces and capped a 64 MiB blob at ~300 MB/s; this streams at ~600+.
# Shared with the test cluster's registry balancer.
NGINX_BLOB_STREAMING = """\
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering on;
    proxy_max_temp_file_size 0;
    proxy_buffer_size 256k;
    proxy_buffers 16 256k;
    proxy_busy_buffers_size 512k;
    proxy_http_version 1.1;"""


def nginx_config(
    layout: Layout,
    ports: Ports,
    registry_directives: str = "",
    mirror_upstream_directives: str = "",
) -> str:
    """nginx in front of the replicas, a rate-limited twin, and the mirror's upstream.

    Every server is HTTPS with HTTP/2 (Debian's nginx 1.22 takes ``http2`` on ``listen``; the
    ``http2 on;`` directive came in 1.25), except ``registry_http``: the same replicas and auth
    in plain HTTP, kept so benchmarks can compare the two. The upstreams behind nginx are plain.
    ``registry_directives`` go into every server in front of the replicas and
    ``mirror_upstream_directives`` into the token registry's (an implementation's needs, e.g.
    auth at nginx: see ``implementations``).

    Each TLS server includes ``tls-overrides/<server>.con[f]`` (``registry``,
    ``registry-ratelimited``, ``mirror-upstream``): a glob, so nginx accepts it matching nothing,
    that matches only that server's own file (``registry*.conf`` would match
    ``registry-ratelimited.conf`` too); a certificate fault drops one file there and reloads to
    change one server's certificate. The two servers in front of the replicas (``registry``,
    ``registry_http``) also include ``route-overrides/*.conf``: a signature fault's ``location``
    answering the referrers API; ``mirror-upstream`` includes ``route-overrides/mirror-upstream/
    *.conf``: the mirror's remote answering 429 or 503 (``local_upstream``); the ``http``
    context includes ``route-overrides/http/*.conf`` (the quota fault's zone, ``local_quota``).
    """
    prefix = layout.nginx_prefix
    pki = layout.pki
    tmp = prefix / "tmp"
    overrides = layout.tls_overrides_dir
    routes = layout.route_overrides_dir
    replica_servers = "\n".join(
        f"        server {HOST}:{ports.replica(index)[0]} max_fails=1 "
        f"fail_timeout={REPLICA_FAIL_TIMEOUT}s;"
        for index in range(len(REPLICAS))
    )
    # As root, workers would run as nobody and could not enter a 0700 run dir (temp files).
    user = "user root;\n" if os.geteuid() == 0 else ""
    limit = f"{RATE_PER_SECOND};w=1"
    too_many = (
        '{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit exceeded","detail":null}]}'
    )
    return f"""# Generated by chaosregistry.sandbox; rewritten on every `sandbox up`.
{user}daemon off;
master_process on;
worker_processes 2;
pid {prefix / "nginx.pid"};
error_log {layout.log_file("nginx-error")} info;

events {{
    worker_connections 1024;
}}

http {{
    # Never log Authorization: only the request line and timings.
    log_format sandbox '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent '
                       'rt=$request_time upstream=$upstream_addr ustatus=$upstream_status '
                       'port=$server_port';
    access_log {layout.log_file("nginx-access")} sandbox;

    client_body_temp_path {tmp / "client_body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};

    ssl_certificate {pki.cert(SERVER_CERT)};
    ssl_certificate_key {pki.key(SERVER_CERT)};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:sandbox_tls:1m;

{NGINX_BLOB_STREAMING}
    proxy_read_timeout 900s;
    proxy_send_timeout 900s;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header Authorization $http_authorization;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;

    upstream registry_replicas {{
        # The replicas' failure state (max_fails, fail_timeout) in shared memory: without it
        # each worker keeps its own, and after a recovery one worker could still count every
        # replica failed ("no live upstreams") until its own fail_timeout ran out.
        zone registry_replicas 64k;
{replica_servers}
        keepalive 32;
    }}

    upstream registry_token {{
        server {HOST}:{ports.registry_token[0]};
        keepalive 16;
    }}

    limit_req_zone $binary_remote_addr zone=registry_pulls:1m rate={RATE_PER_SECOND}r/s;
    include {layout.http_overrides_dir}/*.conf;

    server {{
        listen {HOST}:{ports.nginx_registry} ssl http2;
        include {overrides / "registry"}.con[f];
        include {routes}/*.conf;
{registry_directives}        location / {{
            proxy_pass http://registry_replicas;
        }}
    }}

    server {{
        listen {HOST}:{ports.nginx_registry_http};
        include {routes}/*.conf;
{registry_directives}        location / {{
            proxy_pass http://registry_replicas;
        }}
    }}

    server {{
        listen {HOST}:{ports.nginx_ratelimited} ssl http2;
        include {overrides / "registry-ratelimited"}.con[f];
{registry_directives}        location / {{
            limit_req zone=registry_pulls burst={RATE_BURST} nodelay;
            limit_req_status 429;
            error_page 429 = @rate_limited;
            proxy_pass http://registry_replicas;
        }}
        # Docker Hub style answer so clients can honour the limit (headers on the 429 itself).
        location @rate_limited {{
            default_type application/json;
            add_header Retry-After {RETRY_AFTER_SECONDS} always;
            add_header ratelimit-limit "{limit}" always;
            add_header ratelimit-remaining "0;w=1" always;
            return 429 '{too_many}';
        }}
    }}

    server {{
        listen {HOST}:{ports.nginx_mirror_upstream} ssl http2;
        include {overrides / "mirror-upstream"}.con[f];
        include {layout.mirror_upstream_overrides_dir}/*.conf;
{mirror_upstream_directives}        location / {{
            proxy_pass http://registry_token;
        }}
    }}
}}
"""


def toxiproxy_proxies(ports: Ports, second_site: bool = False) -> list[dict[str, Any]]:
    """The hops (four, a fifth with the second site), as Toxiproxy's ``-config`` file wants
    them (recreated on restart)."""
    return [
        {
            "name": name,
            "listen": f"{HOST}:{listen}",
            "upstream": f"{HOST}:{upstream}",
            "enabled": True,
        }
        for name, (listen, upstream) in hop_ports(ports, second_site).items()
    ]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _yaml(config: dict[str, Any]) -> str:
    return "# Generated by chaosregistry.sandbox.\n" + yaml.safe_dump(config, sort_keys=False)


def set_read_only(path: Path, enabled: bool) -> bool:
    """Switch Distribution's ``storage.maintenance.readonly`` on or off in the config file at
    ``path`` (rewritten in place, mode 0600); True when the file changed. Off removes the key
    again, so the file is byte for byte what ``write_configs`` wrote. Takes effect at the
    process's next start: Distribution reads its configuration once."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    storage = config.setdefault("storage", {})
    maintenance = storage.get("maintenance") or {}
    if bool((maintenance.get("readonly") or {}).get("enabled")) == enabled:
        return False
    if enabled:
        storage["maintenance"] = {**maintenance, "readonly": {"enabled": True}}
    else:
        maintenance.pop("readonly", None)
        if maintenance:
            storage["maintenance"] = maintenance
        else:
            storage.pop("maintenance", None)
    _write_private(path, _yaml(config))
    return True


def is_read_only(path: Path) -> bool:
    """Whether the Distribution config file at ``path`` says ``storage.maintenance.readonly``."""
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    maintenance = (config.get("storage") or {}).get("maintenance") or {}
    return bool((maintenance.get("readonly") or {}).get("enabled"))


def write_configs(
    layout: Layout,
    ports: Ports,
    creds: Credentials,
    http_secret: str,
    chosen: Implementation = IMPLEMENTATIONS[DEFAULT_IMPLEMENTATION],
    second_site: bool = False,
) -> None:
    if chosen.name != "ggcr":  # ggcr takes command-line flags only
        for index, name in enumerate(REPLICAS):
            config = replica_config(layout, ports, index, http_secret)
            if second_site:
                config["notifications"] = notifications_config(ports, name)
            _write_private(layout.config_file(name), _yaml(config))
    if second_site:
        _write_private(
            layout.config_file("registry-dr"),
            _yaml(dr_registry_config(layout, ports, http_secret)),
        )
        _write_private(
            layout.config_file("regsync"), _yaml(regsync_config(layout, ports, creds, chosen))
        )
    _write_private(
        layout.config_file("registry-token"),
        _yaml(token_registry_config(layout, ports, http_secret, chosen.token_realm(ports))),
    )
    _write_private(
        layout.config_file("mirror"), _yaml(mirror_config(layout, ports, http_secret, creds))
    )
    _write_private(
        layout.config_file("nginx", ".conf"),
        nginx_config(
            layout,
            ports,
            chosen.nginx_registry_directives(layout.htpasswd_file),
            chosen.nginx_mirror_upstream_directives(ports),
        ),
    )
    _write_private(
        layout.config_file("toxiproxy", ".json"),
        json.dumps(toxiproxy_proxies(ports, second_site), indent=2),
    )
    write_prometheus_config(layout, ports, chosen)
