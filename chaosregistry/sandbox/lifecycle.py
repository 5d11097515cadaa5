"""Bring a whole sandbox up, report on it, tear it down."""

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from chaosregistry.errors import ConfigError
from chaosregistry.faults.guardian import watched_ledgers
from chaosregistry.osutil import locks
from chaosregistry.osutil.files import write_json
from chaosregistry.sandbox.configs import toxiproxy_proxies, write_configs
from chaosregistry.sandbox.credentials import ensure_credentials, ensure_http_secret
from chaosregistry.sandbox.implementations import (
    DEFAULT_IMPLEMENTATION,
    Implementation,
    implementation,
)
from chaosregistry.sandbox.layout import (
    DEFAULT_BASE_PORT,
    HOP_CLIENT_MIRROR,
    HOP_CLIENT_REGISTRY,
    Layout,
    Ports,
    SandboxError,
    build_endpoints,
    load_endpoints,
)
from chaosregistry.sandbox.monitoring import targets_health, wait_for_first_scrapes
from chaosregistry.sandbox.pieces import process_specs
from chaosregistry.sandbox.processes import (
    group_members,
    kill_strays,
    process_status,
    read_specs,
    recorded_pid,
    running_pid,
    start_process,
    stop_process,
    strays,
    write_specs,
)
from chaosregistry.sandbox.second_site import replication_source
from chaosregistry.sandbox.seed import seed
from chaosregistry.sandbox.seed_template import apply_template, save_template, storage_is_empty
from chaosregistry.sandbox.signing import sign_content
from chaosregistry.sandbox.tls import client_context, ensure_sandbox_pki
from chaosregistry.sandbox.tokens import ensure_signing_pair
from chaosregistry.sandbox.toxiproxy import Toxiproxy

Progress = Callable[[str], None]


@contextmanager
def _exclusive(layout: Layout) -> Iterator[None]:
    """One `up` or `down` at a time per run dir (a game day and a user may race)."""
    with locks.hold(layout.run_dir / ".lock", timeout=None):
        yield


def _to_stderr(message: str) -> None:
    print(f"sandbox: {message}", file=sys.stderr, flush=True)


def _check_base_port(layout: Layout, base_port: int) -> None:
    """Refuse to move a running sandbox to other ports (its processes would be orphaned)."""
    if not (layout.endpoints_file.is_file() and layout.processes_file.is_file()):
        return
    previous = int(load_endpoints(layout.run_dir)["base_port"])
    if previous == base_port:
        return
    running = [name for name in read_specs(layout) if running_pid(layout, name) is not None]
    if running:
        raise ConfigError(
            f"{layout.run_dir} runs a sandbox on base port {previous} "
            f"({', '.join(running)} up); use --base-port {previous} or run `sandbox down` first"
        )


def _choose_implementation(layout: Layout, name: str | None) -> Implementation:
    """``name``, else the run dir's, else the default; refuses to swap a running sandbox's."""
    previous = None
    if layout.endpoints_file.is_file():
        previous = load_endpoints(layout.run_dir).get("implementation", DEFAULT_IMPLEMENTATION)
    chosen = implementation(name or previous or DEFAULT_IMPLEMENTATION)
    if previous is None or previous == chosen.name or not layout.processes_file.is_file():
        return chosen
    running = [n for n in read_specs(layout) if running_pid(layout, n) is not None]
    if running:
        raise ConfigError(
            f"{layout.run_dir} runs a {previous} sandbox ({', '.join(running)} up); "
            f"use --implementation {previous} or run `sandbox down` first"
        )
    return chosen


def _choose_second_site(layout: Layout, wanted: bool | None) -> bool:
    """``wanted``, else the run dir's choice, else off; refuses to change a running sandbox's
    (the replicas' configs name the event receiver, or do not)."""
    previous = None
    if layout.endpoints_file.is_file():
        previous = bool(load_endpoints(layout.run_dir).get("second_site", False))
    chosen = wanted if wanted is not None else bool(previous)
    if previous is None or previous == chosen or not layout.processes_file.is_file():
        return chosen
    running = [n for n in read_specs(layout) if running_pid(layout, n) is not None]
    if running:
        flag = "--second-site" if previous else "--no-second-site"
        raise ConfigError(
            f"{layout.run_dir} runs a sandbox {'with' if previous else 'without'} the second "
            f"site ({', '.join(running)} up); use {flag} or run `sandbox down` first"
        )
    return chosen


def _ensure_hops(toxiproxy_url: str, ports: Ports, second_site: bool = False) -> set[str]:
    """Create a hop only when missing or pointing elsewhere, so live faults are left alone.

    Returns the hops that carry no fault (enabled, no toxic).
    """
    clean = set()
    with Toxiproxy(toxiproxy_url) as toxiproxy:
        existing = toxiproxy.proxies()
        for hop in toxiproxy_proxies(ports, second_site):
            current = existing.get(hop["name"])
            if (
                current is None
                or current.get("listen") != hop["listen"]
                or current.get("upstream") != hop["upstream"]
            ):
                toxiproxy.ensure_proxy(hop["name"], listen=hop["listen"], upstream=hop["upstream"])
                clean.add(hop["name"])
            elif current.get("enabled") and not current.get("toxics"):
                clean.add(hop["name"])
    return clean


def _check_front_doors(layout: Layout, endpoints: dict[str, Any], clean_hops: set[str]) -> None:
    """The client-facing URLs answer as a client expects (authed registry, anonymous mirror),
    over TLS verified against the sandbox's CA; the plain-HTTP listener too.

    A hop carrying a fault (an `up` during a game day) is checked behind the hop instead.
    """
    expected = {
        endpoints["registry" if HOP_CLIENT_REGISTRY in clean_hops else "registry_direct"]: 401,
        endpoints["registry_http"]: 401,
        endpoints["mirror" if HOP_CLIENT_MIRROR in clean_hops else "mirror_direct"]: 200,
    }
    with httpx.Client(timeout=5.0, trust_env=False, verify=client_context(layout)) as client:
        for base, status in expected.items():
            try:
                got = client.get(base + "/v2/").status_code
            except httpx.HTTPError as exc:
                raise SandboxError(f"{base}/v2/ unreachable after start: {exc}") from exc
            if got != status:
                raise SandboxError(f"{base}/v2/ answered {got}, expected {status}")


def up(
    run_dir: Path | str,
    *,
    base_port: int = DEFAULT_BASE_PORT,
    seed_content: bool = True,
    implementation: str | None = None,
    second_site: bool | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Start every sandbox piece not already running, seed the content, return the endpoints.

    Idempotent: running pieces are kept; content is pushed only when missing (and not at all
    with ``seed_content=False``, for tests that only need the processes). Progress lines go to
    ``progress`` (default: stderr). Raises ``SandboxError`` (naming the log file) when a piece
    fails to start, ``ConfigError`` when a binary is missing or ``run_dir`` already runs a
    sandbox on another base port. ``implementation`` names what the replicas run
    (``distribution-2``, ``distribution-3`` or ``ggcr``; see ``sandbox.implementations``);
    None keeps the run dir's (``distribution-2`` for a new one); changing it needs a ``down``
    first (``ConfigError``). ``second_site`` adds the DR registry, regsync and the event
    receiver (``sandbox.second_site``); None keeps the run dir's (off for a new one); changing
    it also needs a ``down`` first. Pieces started before a failure keep running: fix the cause
    and call ``up`` again, or ``down``.
    """
    layout = Layout.at(run_dir)
    ports = Ports(base_port)
    with _exclusive(layout):
        chosen = _choose_implementation(layout, implementation)
        dr = _choose_second_site(layout, second_site)
        return _up(layout, ports, chosen, seed_content, progress or _to_stderr, dr)


def _up(
    layout: Layout,
    ports: Ports,
    chosen: Implementation,
    seed_content: bool,
    say: Progress,
    second_site: bool = False,
) -> dict[str, Any]:
    base_port = ports.base
    _check_base_port(layout, base_port)
    layout.make_dirs()
    creds = ensure_credentials(layout)
    http_secret = ensure_http_secret(layout)
    ensure_signing_pair(layout.token_key_file, layout.token_cert_file)
    ensure_sandbox_pki(layout)
    write_configs(layout, ports, creds, http_secret, chosen, second_site)
    specs = process_specs(layout, ports, chosen.name, second_site)
    write_specs(layout, specs)
    endpoints = chosen.describe_endpoints(build_endpoints(layout, ports, second_site), ports)
    if second_site:
        endpoints["replication_source"] = replication_source(endpoints, chosen)
    write_json(layout.endpoints_file, endpoints)
    say(f"run dir {layout.run_dir}, base port {base_port}, replicas: {chosen.description}")
    # A new sandbox's storage starts as a copy of the seed template, when there is one: seed
    # then finds the content there. The first to push into an empty storage saves the template.
    empty_storage = (
        seed_content
        and all(running_pid(layout, spec.name) is None for spec in specs)
        and storage_is_empty(layout, chosen)
    )
    from_template = empty_storage and apply_template(layout, chosen, say)

    clean_hops: set[str] = set()
    for spec in specs:
        pid = running_pid(layout, spec.name)
        if pid is not None:
            say(f"{spec.name} already running (pid {pid})")
        else:
            pid = start_process(layout.run_dir, spec.name)
            say(f"{spec.name} started (pid {pid}), log {spec.log}")
        if spec.name == "toxiproxy":
            clean_hops = _ensure_hops(endpoints["toxiproxy"], ports, second_site)
    # Seeded while Prometheus comes up (started second, it applies its targets about 5 s after
    # it starts, and the seed needs it not): the wait for its first scrapes comes last.
    if seed_content:
        seed(layout, chosen.seed_targets(endpoints), creds, say)
        if empty_storage and not from_template:
            save_template(layout, chosen, say)
        sign_content(layout, chosen.seed_targets(endpoints), creds, say)
    wait_for_first_scrapes(endpoints["prometheus"])
    _check_front_doors(layout, endpoints, clean_hops)
    say(f"ready: registry {endpoints['registry']}, mirror {endpoints['mirror']}")
    return endpoints


def down(run_dir: Path | str) -> None:
    """Stop every sandbox process (SIGTERM, then SIGKILL of the process group).

    Also kills leftovers whose command line names the run dir. Raises ``ConfigError`` when
    ``run_dir`` holds no sandbox and ``SandboxError`` when a process survives.
    """
    layout = Layout.at(run_dir)
    load_endpoints(layout.run_dir)  # the same "not a sandbox directory" error as everywhere
    with _exclusive(layout):
        _down(layout)


def _down(layout: Layout) -> None:
    specs = read_specs(layout)
    pgids = [pid for name in specs if (pid := recorded_pid(layout, name)) is not None]
    for name in reversed(specs):
        stop_process(layout.run_dir, name, signal.SIGTERM)
    kill_strays(layout)
    left = strays(layout) + [pid for pgid in pgids for pid in group_members(pgid)]
    if left:
        raise SandboxError(f"processes still running after down: {sorted(set(left))}")


def status(run_dir: Path | str) -> dict[str, Any]:
    """What runs: ``{"run_dir", "running", "processes", "endpoints"}``.

    ``running`` is True when every process runs; ``processes`` maps each name to
    ``{"running", "pid", "log"}`` (pid None when stopped); ``faults`` lists the known ledgers
    with active faults and their watchdogs (``faults.guardian.watched_ledgers``);
    ``prometheus_targets`` is the sandbox Prometheus' ``[{job, instance, health, last_error,
    scrape_url}]`` (or a line saying why it cannot be asked). Raises ``ConfigError`` for a
    directory that holds no sandbox.
    """
    layout = Layout.at(run_dir)
    endpoints = load_endpoints(layout.run_dir)
    processes = process_status(layout)
    return {
        "run_dir": str(layout.run_dir),
        "running": all(item["running"] for item in processes.values()),
        "processes": processes,
        "endpoints": endpoints,
        "faults": watched_ledgers(),
        "prometheus_targets": _prometheus_targets(endpoints, processes),
    }


def _prometheus_targets(
    endpoints: dict[str, Any], processes: dict[str, dict[str, Any]]
) -> list[dict[str, Any]] | str:
    """Prometheus' scrape targets and their health, or a line saying why there are none."""
    if not endpoints.get("prometheus"):
        return "this sandbox has no Prometheus (started before it had one: down, then up)"
    if not processes.get("prometheus", {}).get("running"):
        return "prometheus is not running"
    return targets_health(str(endpoints["prometheus"]))
