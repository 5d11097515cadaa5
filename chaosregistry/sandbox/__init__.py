"""The embedded registry sandbox: real registries, nginx, a mirror, a token server, Toxiproxy.

``up(run_dir, base_port=15000)`` starts (or keeps) every piece on 127.0.0.1, seeds content and
returns the endpoints; ``down(run_dir)`` stops every process of ours; ``status(run_dir)`` says
what runs. ``start_process`` / ``stop_process`` act on one piece by name (e.g. SIGKILL
``registry-2``, then start it again). Everything lives under ``run_dir``::

    endpoints.json  processes.json  catalog.json  state/seed.json
    config/   (0700: Distribution YAML, nginx.conf, toxiproxy.json)
    secrets/  (0700: credentials.json, htpasswd, http_secret, token signing key + cert)
    pki/      (0700: ca.crt/ca.key "chaosregistry-sandbox-ca", sandbox-server.crt/.key for
               127.0.0.1 and localhost; made once, kept across restarts)
    storage/registry (shared by registry-1, registry-2, registry-token)  storage/mirror
    logs/<process>.log, logs/nginx-access.log, logs/nginx-error.log   pids/<process>.pid

Processes (start order): ``guardian``, ``prometheus`` (Debian's; it scrapes every
Distribution's metrics and the SLI exporter every second: ``sandbox.monitoring``; started early
because it applies its targets only ~5 s after it starts), ``toxiproxy``, ``registry-1``,
``registry-2``, ``token-server``, ``registry-token``, ``nginx``, ``mirror``, ``sli-exporter``.
A new sandbox's storage is copied from the seed template when the cache has one
(``sandbox.seed_template``), so ``up`` pushes only the signed images. The replicas run CNCF
Distribution 2.8 by default, or Distribution v3 or go-containerregistry
(``up(..., implementation=...)``; what differs is in ``chaosregistry.sandbox.implementations``).
With ``up(..., second_site=True)`` three more start last: ``registry-dr``, ``event-receiver``,
``regsync`` (``sandbox.second_site``).

Traffic paths::

    client -> [client-registry hop] -> nginx -> registry-1 | registry-2   (htpasswd, shared storage)
    client -> [client-mirror hop] -> mirror (anonymous pull-through cache)
    mirror -> [mirror-upstream hop] -> nginx -> registry-token  (bearer tokens from token-server)
    regsync -> [sync-dr hop] -> registry-dr                     (second site only)

Client-facing listeners are HTTPS with the sandbox's CA and offer HTTP/2 by ALPN (nginx's three
TLS servers, the mirror); the token server is HTTPS with HTTP/1.1. The mirror pulls through over
TLS (it trusts the CA via ``SSL_CERT_FILE``); Toxiproxy hops are TCP, so TLS passes through.
Behind nginx, the replicas and registry-token are plain HTTP, as are the debug/metrics ports and
Toxiproxy's API. ``registry_http`` is a plain-HTTP nginx server for HTTP vs HTTPS comparisons.

The mirror's upstream is the token-auth registry because Distribution's proxy mode sends its
configured credentials only in answer to a Bearer challenge (as Docker Hub issues), never to a
Basic one. It serves the same storage as the replicas, so the mirror sees the same content.

endpoints.json (no secret in it; every URL is ``https://127.0.0.1:<base_port + offset>``
except the ones marked plain, ``http://``)::

    {
      "run_dir": "/abs/run/dir",
      "base_port": 15000,
      "ca_file": "/abs/run/dir/pki/ca.crt",  # the CA that verifies every https:// URL here
      "implementation": "distribution-2" | "distribution-3" | "ggcr",  # what the replicas run
      "registry": URL,              # client-facing: client-registry hop -> nginx (basic auth)
      "registry_direct": URL,       # nginx, no hop
      "registry_http": URL,         # plain: nginx, no hop, same replicas and basic auth
      "registry_ratelimited": URL,  # nginx with limit_req: 429 + Retry-After, ratelimit-* headers
      "replicas": [{"name": "registry-1", "url": URL, "metrics_url": URL + "/metrics" | null},
                   ...],            # plain (internal, behind nginx); metrics_url null when
                                    # the implementation has no metrics
      "mirror": URL,                # client-mirror hop -> mirror (anonymous)
      "mirror_direct": URL,
      "mirror_metrics_url": URL,    # plain (debug port)
      "mirror_upstream": URL,       # mirror-upstream hop (the mirror's proxy.remoteurl)
      "token_registry": URL,        # nginx (TLS) -> registry-token, no hop (Bearer auth)
      "token_realm": URL + "/token",  # token-server hop -> token server (distribution-3:
                                      # mirror-upstream hop -> nginx -> token-server hop)
      "token_server_direct": URL,   # the token server itself, no hop (/healthz, /stats, /token)
      "token_service": "chaosregistry-sandbox",
      "token_stats_url": URL + "/stats",   # {"tokens_issued": n, "refused": m}
      "toxiproxy": URL,             # plain: Toxiproxy API
      "prometheus": URL,            # plain: the sandbox's Prometheus (query API)
      "sli_metrics_url": URL,       # plain: the SLI exporter's /metrics
      "sli_sink": "127.0.0.1:port", # UDP: where pulls and rollouts report
      (chaosregistry.observability.sli)
      "upstream_metrics_url": URL,  # plain: registry-token's (the mirror's upstream) /metrics
      "hops": {"client-registry" | "client-mirror" | "mirror-upstream" | "token-server":
                   {"proxy": name, "listen": "127.0.0.1:port", "upstream": "127.0.0.1:port"}},
      "credentials_file": "/abs/run/dir/secrets/credentials.json",  # {"username", "password"}
      "catalog_file": "/abs/run/dir/catalog.json",
      "signing_public_key": "/abs/run/dir/pki/signing.pub",  # verifies the signed images
      "signatures_file": "/abs/run/dir/state/signatures.json",  # which (sandbox.signing)
      "logs_dir": "/abs/run/dir/logs",
      "second_site": bool,          # the keys below exist only when it is true
      "dr_registry": URL,           # the DR registry (HTTPS, basic auth), no hop
      "dr_metrics_url": URL,        # plain: its /metrics
      "dr_sync_hop": "sync-dr",     # the hop regsync writes through (also in "hops")
      "replicated_repositories": "replication/.*",  # what regsync copies (a regex)
      "replication_source": URL,    # where a push must go for regsync to see it
      "event_receiver": URL,        # plain: where the registries POST notifications
      "events_file": "/abs/run/dir/state/events.jsonl"  # what it recorded, a JSON object a line
    }

catalog.json: one entry per tag::

    {"repository": "shop/api", "tag": "shop-prod-2.0.1",
     "digest": digest the tag points to, "media_type": its media type, "size": its size,
     "platforms": [{"platform": "linux/amd64", "manifest_digest", "manifest_media_type",
                    "manifest_size", "config": {"digest", "size"},
                    "layers": [{"digest", "size", "media_type", "diff_id"}]}],
     "total_bytes": sum of config and layer sizes over all platforms}

Layer: services (may import the package root, protocols and foundations; see docs/architecture.md).
"""

from chaosregistry.sandbox.credentials import Credentials, load_credentials
from chaosregistry.sandbox.layout import (
    DEFAULT_BASE_PORT,
    PORT_SPAN,
    PROCESS_NAMES,
    Ports,
    SandboxError,
    load_endpoints,
)
from chaosregistry.sandbox.lifecycle import down, status, up
from chaosregistry.sandbox.processes import (
    find_free_base_port,
    reload_nginx,
    start_process,
    stop_process,
)

__all__ = [
    "DEFAULT_BASE_PORT",
    "PORT_SPAN",
    "PROCESS_NAMES",
    "Credentials",
    "Ports",
    "SandboxError",
    "down",
    "find_free_base_port",
    "load_credentials",
    "load_endpoints",
    "reload_nginx",
    "start_process",
    "status",
    "stop_process",
    "up",
]
