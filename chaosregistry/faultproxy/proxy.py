"""Start, check and stop a fault proxy (``fault_proxy`` in a vars file).

One Toxiproxy server per proxy directory, supervised as every process we start
(``osutil.supervise``: a record with pid, start time and boot id; a whole-group stop), with one
proxy, ``client-registry``, from its ``listen`` address to the registry's host and port. Its
directory holds the record (``toxiproxy.pid``), the server's log and ``proxy.json`` (the
declaration it was started with, so ``proxy down --dir`` knows what it stops).
"""

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from chaosregistry.errors import ChaosRegistryError, ConfigError
from chaosregistry.experiment.settings import (
    FAULT_PROXY_HOP,
    FaultProxySettings,
    split_address,
)
from chaosregistry.faults.ledger import Ledger
from chaosregistry.osutil.files import write_json
from chaosregistry.osutil.supervise import read_record, running, start_recorded, stop_group
from chaosregistry.sandbox.pieces import toxiproxy_binary
from chaosregistry.sandbox.toxiproxy import Toxiproxy, ToxiproxyError

READY_TIMEOUT = 15.0
STOP_GRACE = 5.0
RECORD_FILE = "toxiproxy.pid"
LOG_FILE = "toxiproxy.log"
DECLARATION_FILE = "proxy.json"


class FaultProxyError(ChaosRegistryError):
    """The fault proxy could not be started, checked or stopped (one line says why)."""


def _listening(address: tuple[str, int], timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _last_log_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def status(proxy: FaultProxySettings) -> dict[str, Any]:
    """``{running, pid, toxiproxy, listen, upstream, hop, toxics}``: what runs now."""
    record = running(proxy.state_dir / RECORD_FILE)
    result: dict[str, Any] = {
        "running": record is not None,
        "pid": record.pid if record is not None else None,
        "toxiproxy": proxy.toxiproxy_url,
        "listen": proxy.listen_address,
        "upstream": proxy.upstream,
        "hop": FAULT_PROXY_HOP,
        "toxics": [],
    }
    if record is not None:
        try:
            with Toxiproxy(proxy.toxiproxy_url) as toxiproxy:
                result["toxics"] = [t.get("name") for t in toxiproxy.toxics(FAULT_PROXY_HOP)]
        except ToxiproxyError as exc:
            result["error"] = str(exc)
    return result


def up(proxy: FaultProxySettings) -> bool:
    """Start the proxy unless it runs, and make sure its hop passes to the registry; True when
    this call started the server. Raises FaultProxyError (one line) when it cannot."""
    state_dir = proxy.state_dir
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    record_file = state_dir / RECORD_FILE
    started = False
    if running(record_file) is None:
        if _listening(proxy.api, timeout=0.5):
            raise FaultProxyError(
                f"fault proxy: {proxy.api[0]}:{proxy.api[1]} is taken by another program "
                "(fault_proxy.api): choose another port"
            )
        log = state_dir / LOG_FILE
        argv = [toxiproxy_binary(), "-host", proxy.api[0], "-port", str(proxy.api[1])]
        # The bytes the hop carried: a fault's evidence that traffic crossed it.
        argv.append("-proxy-metrics")
        try:
            process = start_recorded(
                argv,
                record=record_file,
                log=log,
                cwd=state_dir,
                # Toxiproxy's default (debug) logs every proxied connection twice.
                env={**os.environ, "LOG_LEVEL": "info"},
                header=f"-- fault proxy for {proxy.upstream}, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
            )
        except OSError as exc:
            raise FaultProxyError(f"fault proxy: cannot start Toxiproxy: {exc}") from exc
        started = True
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if process.poll() is not None:
                record_file.unlink(missing_ok=True)
                raise FaultProxyError(
                    f"fault proxy: Toxiproxy exited while starting ({_last_log_line(log)!r}); "
                    f"see {log}"
                )
            try:
                with Toxiproxy(proxy.toxiproxy_url, timeout=1.0) as toxiproxy:
                    toxiproxy.version()
                break
            except ToxiproxyError:
                if time.monotonic() > deadline:
                    down(proxy, force=True)
                    raise FaultProxyError(
                        f"fault proxy: Toxiproxy did not answer on {proxy.toxiproxy_url} within "
                        f"{READY_TIMEOUT:.0f} s; see {log}"
                    ) from None
                time.sleep(0.05)
    try:
        with Toxiproxy(proxy.toxiproxy_url) as toxiproxy:
            existing = toxiproxy.proxies().get(FAULT_PROXY_HOP)
            # Only a missing or different hop is (re)made: an update would drop nothing, but a
            # hop already right is left alone with whatever fault it carries.
            if existing is None or (existing.get("listen"), existing.get("upstream")) != (
                proxy.listen_address,
                proxy.upstream,
            ):
                toxiproxy.ensure_proxy(
                    FAULT_PROXY_HOP, listen=proxy.listen_address, upstream=proxy.upstream
                )
    except ToxiproxyError as exc:
        if started:
            down(proxy, force=True)
        raise FaultProxyError(f"fault proxy: {exc}") from exc
    write_json(
        state_dir / DECLARATION_FILE,
        {"registry_url": proxy.registry_url, **proxy.as_configuration()},
    )
    return started


def faults_on(proxy: FaultProxySettings, ledger: Ledger) -> list[str]:
    """The ids of the ledger's active faults on this proxy's Toxiproxy."""
    return [
        entry.id
        for entry in ledger.active()
        if (entry.undo or {}).get("params", {}).get("api_url") == proxy.toxiproxy_url
    ]


def down(proxy: FaultProxySettings, *, ledger: Ledger | None = None, force: bool = False) -> bool:
    """Stop the proxy's server; False when none ran. Refused while ``ledger`` holds an active
    fault on it (its undo needs the server: revert it first, e.g. ``chaosregistry rollback``),
    unless ``force``."""
    if ledger is not None and not force:
        active = faults_on(proxy, ledger)
        if active:
            raise FaultProxyError(
                f"fault proxy: active faults on its hop ({', '.join(active)}): "
                "revert them first (`chaosregistry rollback`)"
            )
    record_file = proxy.state_dir / RECORD_FILE
    record = read_record(record_file)
    if record is None or not record.runs():
        record_file.unlink(missing_ok=True)
        return False
    survivors = stop_group(record, grace=STOP_GRACE)
    if survivors:
        raise FaultProxyError(f"fault proxy: Toxiproxy survived SIGKILL: {survivors}")
    record_file.unlink(missing_ok=True)
    return True


def declared_in(state_dir: Path) -> FaultProxySettings:
    """The proxy started in ``state_dir`` (from its ``proxy.json``)."""
    path = state_dir / DECLARATION_FILE
    try:
        data = json.loads(path.read_text())
        listen, api = split_address(data["listen"]), split_address(data["api"])
        registry_url = str(data["registry_url"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: no fault proxy declared there ({exc})") from exc
    if listen is None or api is None:
        raise ConfigError(f"{path}: listen and api must be host:port")
    return FaultProxySettings(registry_url, listen, api, state_dir.absolute())
