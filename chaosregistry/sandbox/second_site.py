"""The sandbox's second site: a DR registry kept in sync by regsync, and push notifications.

Opt-in (``up(..., second_site=True)``, ``sandbox up --second-site``): three more processes
that every other sandbox does without.

- ``registry-dr``: CNCF Distribution on its own storage (``storage/registry-dr``), HTTPS with
  the sandbox's certificate, the sandbox's htpasswd. The Distribution of the chosen
  implementation (2.8 for ``ggcr``, which the token registry and the mirror run too).
- ``regsync``: regclient's regsync (built by ``make setup``), ``once`` in a loop
  (``sandbox.regsync_loop``): each pass lists the primary's catalog and copies every tag of
  ``replication/*`` the DR registry lacks or holds at another digest, writing to the DR registry
  through the ``sync-dr`` Toxiproxy hop (so the network faults can cut or slow the sync path).
  It reads the primary through nginx (HTTPS, no hop); for ``ggcr``, whose replicas share
  nothing, from ``registry-1`` itself (plain HTTP, internal), where ``replication_source``
  points pushes.
- ``event-receiver``: records the Distribution notifications (``notifications.endpoints``,
  the same YAML in 2.8 and 3.1) of the replicas and the DR registry, one JSON object a line in
  ``state/events.jsonl`` (``sandbox.event_receiver``). Pulls are not sent (``ignore.actions``):
  a pull storm would otherwise post one event per request. ggcr sends no notifications.

Traffic paths::

    regsync -> nginx (registry_direct) -> registry-1 | registry-2     (reads; ggcr: registry-1)
    regsync -> [sync-dr hop] -> registry-dr                           (writes)
    registry-1 | registry-2 | registry-dr -> event-receiver           (POST /events/<name>)
"""

import sys
from typing import Any

from chaosregistry.sandbox.binaries import CACHE, find_binary
from chaosregistry.sandbox.credentials import Credentials
from chaosregistry.sandbox.implementations import Implementation
from chaosregistry.sandbox.layout import (
    HOST,
    REPLICATED_REPOSITORIES,
    Layout,
    Ports,
    http_url,
)
from chaosregistry.sandbox.processes import ProcessSpec

REGSYNC_ENV = "CHAOSREGISTRY_REGSYNC"
REGSYNC_CACHED = CACHE / "regsync-0.11.7/regsync"
# Seconds between the end of one regsync pass and the start of the next.
SYNC_INTERVAL = 0.5
# A pass that takes longer (a black-holed sync path) is killed and the next one started.
PASS_TIMEOUT = 20.0
# Distribution's notification endpoint: a short timeout and back-off, so a receiver restart
# costs a second of events, not minutes.
NOTIFY_TIMEOUT = "2s"
NOTIFY_BACKOFF = "1s"
NOTIFY_THRESHOLD = 3


def regsync_binary() -> str:
    """$CHAOSREGISTRY_REGSYNC, else regsync on PATH, else the `make setup` build."""
    return find_binary("regsync", env=REGSYNC_ENV, cached=REGSYNC_CACHED, on_path="regsync")


def notifications_config(ports: Ports, registry: str) -> dict[str, Any]:
    """Distribution's ``notifications`` section: POST every event but pulls to the receiver,
    at ``/events/<registry>`` so the receiver knows who sent it."""
    return {
        "events": {"includereferences": True},
        "endpoints": [
            {
                "name": "chaosregistry-event-receiver",
                "disabled": False,
                "url": f"{http_url(ports.event_receiver)}/events/{registry}",
                "timeout": NOTIFY_TIMEOUT,
                "threshold": NOTIFY_THRESHOLD,
                "backoff": NOTIFY_BACKOFF,
                "ignore": {"actions": ["pull"]},
            }
        ],
    }


def source_host(ports: Ports, chosen: Implementation) -> tuple[str, bool]:
    """Where regsync reads the primary (``host:port``) and whether over TLS."""
    if chosen.capabilities.shared_storage:
        return f"{HOST}:{ports.nginx_registry}", True
    return f"{HOST}:{ports.replica(0)[0]}", False


def regsync_config(
    layout: Layout, ports: Ports, creds: Credentials, chosen: Implementation
) -> dict[str, Any]:
    """regsync's YAML: copy ``replication/*`` from the primary to the DR registry's hop.

    Holds the password and the CA's PEM (written 0600 in the private config dir)."""
    ca_pem = layout.pki.ca_cert.read_text(encoding="ascii")
    source, source_tls = source_host(ports, chosen)
    target = f"{HOST}:{ports.hop_sync_dr}"

    def host(name: str, tls: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"registry": name, "user": creds.username, "pass": creds.password}
        if tls:
            entry.update({"tls": "enabled", "regcert": ca_pem})
        else:
            entry["tls"] = "disabled"
        return entry

    return {
        "version": 1,
        "creds": [host(source, source_tls), host(target, True)],
        "defaults": {"parallel": 2, "skipDockerConfig": True},
        "sync": [
            {
                "source": source,
                "target": target,
                "type": "registry",
                "repos": {"allow": [REPLICATED_REPOSITORIES]},
            }
        ],
    }


def replication_source(endpoints: dict[str, Any], chosen: Implementation) -> str:
    """The URL a push must go to for regsync to see it (``replication_source``)."""
    if chosen.capabilities.shared_storage:
        return str(endpoints["registry"])
    return str(endpoints["replicas"][0]["url"])


def second_site_specs(layout: Layout, ports: Ports, chosen: Implementation) -> list[ProcessSpec]:
    """registry-dr, event-receiver, regsync, in start order."""
    run = str(layout.run_dir)
    layout.dr_storage.mkdir(parents=True, exist_ok=True)
    return [
        chosen.distribution_spec(layout, "registry-dr", *ports.registry_dr, tls=True),
        ProcessSpec(
            name="event-receiver",
            argv=[
                sys.executable,
                "-m",
                "chaosregistry.sandbox.event_receiver",
                "--listen",
                f"{HOST}:{ports.event_receiver}",
                "--events-file",
                str(layout.events_file),
            ],
            cwd=run,
            log=str(layout.log_file("event-receiver")),
            ready_url=http_url(ports.event_receiver) + "/healthz",
            ports=[ports.event_receiver],
        ),
        ProcessSpec(
            name="regsync",
            argv=[
                sys.executable,
                "-m",
                "chaosregistry.sandbox.regsync_loop",
                "--regsync",
                regsync_binary(),
                "--config",
                str(layout.config_file("regsync")),
                "--interval",
                str(SYNC_INTERVAL),
                "--pass-timeout",
                str(PASS_TIMEOUT),
                "--ready-file",
                str(layout.regsync_ready_file),
            ],
            cwd=run,
            log=str(layout.log_file("regsync")),
            ready_url="",
            ports=[],
            ready_file=str(layout.regsync_ready_file),
        ),
    ]
