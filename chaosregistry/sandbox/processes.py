"""Start, check and stop the sandbox's processes by name, from specs kept in the run dir.

``processes.json`` holds each process's argv, cwd, log file, readiness URL and ports, so a
later action (kill a registry node, then restart it) needs nothing but the run dir and a name.
Every process gets its own session (``start_new_session=True``): its process group id is its
pid, and stopping it signals the whole group, which also takes nginx's workers.

Starting, recording, checking and stopping are ``osutil.supervise``'s: a pid file holds the
process's record (pid, start time, boot id), so a pid recycled by another program, or by
another process of this sandbox, is never taken for it nor signalled. What stays here is the
sandbox's own: specs by name, free ports, readiness over HTTP(S) or a file, strays found by the
run dir in their command line, nginx's reload.
"""

import contextlib
import datetime
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chaosregistry.errors import ConfigError
from chaosregistry.osutil import identity
from chaosregistry.osutil.files import write_json
from chaosregistry.osutil.identity import (
    ancestry,
    command_line,
    marked_processes,
    port_holders,
    proc_stat,
)
from chaosregistry.osutil.supervise import (
    ProcessRecord,
    read_record,
    reap,
    signal_group,
    start_recorded,
    stop_group,
)
from chaosregistry.osutil.tls import system_trust
from chaosregistry.sandbox.layout import (
    HOST,
    PORT_SPAN,
    Layout,
    SandboxError,
    read_json,
)
from chaosregistry.sandbox.tls import client_context

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# How long a start waits for its ports to be released (see _ports_still_busy).
PORT_RELEASE_TIMEOUT = 5.0
# Signals after which we wait for the group to be gone (anything else, e.g. SIGSTOP to freeze a
# node, is delivered and left in effect).
TERMINATING = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGKILL})


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    cwd: str
    log: str
    # Any HTTP answer from this URL means the process is serving.
    ready_url: str  # https:// ones are verified against the sandbox's CA
    # Ports it binds; they must be free before it starts.
    ports: list[int]
    # Extra environment (never secrets: this lands in processes.json).
    env: dict[str, str] = field(default_factory=dict)
    # For a process that serves no HTTP (the guardian): ready once it has written this file.
    ready_file: str = ""
    # Emptied before every start: what the process keeps there belongs to one life of the
    # sandbox (Prometheus' TSDB: a game day must not judge an earlier run's series as its own).
    fresh_dir: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ProcessSpec":
        return cls(
            name=str(data["name"]),
            argv=[str(arg) for arg in data["argv"]],
            cwd=str(data["cwd"]),
            log=str(data["log"]),
            ready_url=str(data["ready_url"]),
            ports=[int(port) for port in data["ports"]],
            env={str(key): str(value) for key, value in data.get("env", {}).items()},
            ready_file=str(data.get("ready_file", "")),
            fresh_dir=str(data.get("fresh_dir", "")),
        )


def write_specs(layout: Layout, specs: Iterable[ProcessSpec]) -> None:
    write_json(layout.processes_file, {"processes": [asdict(spec) for spec in specs]})


def read_specs(layout: Layout) -> dict[str, ProcessSpec]:
    """Specs by name, in start order."""
    if not layout.processes_file.is_file():
        raise ConfigError(f"{layout.run_dir} is not a sandbox directory (no processes.json)")
    data = read_json(layout.processes_file)
    specs = [ProcessSpec.from_dict(item) for item in data["processes"]]
    return {spec.name: spec for spec in specs}


def _spec(layout: Layout, name: str) -> ProcessSpec:
    specs = read_specs(layout)
    if name not in specs:
        raise ConfigError(f"unknown sandbox process {name!r}; known: {', '.join(specs)}")
    return specs[name]


# -- /proc ------------------------------------------------------------------------------------
def mentions_run_dir(layout: Layout, pid: int) -> bool:
    # Every argv we build holds a path *inside* the run dir; the trailing slash keeps
    # /runs/a from matching /runs/ab.
    return f"{layout.run_dir}/" in command_line(pid)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of the session/group our child ``pgid`` leads."""
    return identity.group_members(pgid, session=pgid)


def strays(layout: Layout) -> list[int]:
    """Processes (other than us and our ancestors) whose command line names the run dir."""
    ours = ancestry()
    return [pid for pid in marked_processes(f"{layout.run_dir}/") if pid not in ours]


# -- pid files --------------------------------------------------------------------------------
def _record(layout: Layout, name: str) -> ProcessRecord | None:
    # A bare pid (a sandbox started before pid files held records) is ours while its command
    # line names the run dir, the check pid files had then.
    return read_record(layout.pid_file(name), adopt=lambda pid: mentions_run_dir(layout, pid))


def recorded_pid(layout: Layout, name: str) -> int | None:
    """The pid (= process group id) in ``name``'s pid file, whether or not it still runs."""
    record = _record(layout, name)
    return None if record is None else record.pgid


def running_pid(layout: Layout, name: str) -> int | None:
    """The pid of ``name`` when it runs and is ours, else None."""
    record = _record(layout, name)
    return record.pid if record is not None and record.runs() else None


# -- start ------------------------------------------------------------------------------------
def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _ports_still_busy(ports: Iterable[int], timeout: float = PORT_RELEASE_TIMEOUT) -> list[int]:
    """The ``ports`` still not free after up to ``timeout`` seconds: a piece restarted right
    after it stopped (a fault's restart) may find its ports held a moment longer."""
    deadline = time.monotonic() + timeout
    while True:
        busy = [port for port in ports if not port_is_free(port)]
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.1)


def find_free_base_port(*, low: int = 20000, high: int = 32000, span: int = PORT_SPAN) -> int:
    """A base port whose ``span`` ports are all free, tried in random order.

    Random so that concurrent test sessions on one machine rarely race for the same range.
    Below the kernel's ephemeral range (32768 and up by default): a port found free there can
    be taken by some outgoing connection before our process binds it.
    """
    candidates = list(range(low, high - span, span))
    random.SystemRandom().shuffle(candidates)
    for base in candidates:
        if all(port_is_free(port) for port in range(base, base + span)):
            return base
    raise SandboxError(f"no {span} free consecutive ports between {low} and {high}")


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    # Distribution lets REGISTRY_* variables override its config file: a stray one in the
    # caller's environment must not silently change a sandbox registry.
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _last_log_line(log: Path) -> str:
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 4096))
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def start_process(run_dir: Path | str, name: str, *, timeout: float = READY_TIMEOUT) -> int:
    """Start process ``name`` of the sandbox in ``run_dir`` and wait until it serves.

    Idempotent: a running process is kept and its pid returned. Raises ``SandboxError`` naming
    the log file when the process exits or does not answer within ``timeout`` seconds, and
    ``ConfigError`` for an unknown name or a directory that holds no sandbox.
    """
    layout = Layout.at(run_dir)
    spec = _spec(layout, name)
    pid = running_pid(layout, name)
    if pid is not None:
        return pid
    busy = _ports_still_busy(spec.ports)
    if busy:
        held = "; ".join(
            f"{port}: {', '.join(port_holders(port)) or 'holder not seen'}" for port in busy
        )
        raise SandboxError(
            f"cannot start {name}: port(s) {', '.join(map(str, busy))} already in use "
            f"(another sandbox or program; {held}); choose another base port"
        )
    log = Path(spec.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    prepare_start(spec)
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    process = start_recorded(
        spec.argv,
        record=layout.pid_file(name),
        log=log,
        cwd=spec.cwd,
        env=_child_env(spec.env),
        header=f"--- {stamp} chaosregistry starts {name}",
    )
    _wait_ready(layout, spec, process, timeout)
    return process.pid


def prepare_start(spec: ProcessSpec) -> None:
    """What a start clears first: a stale ready file (it would read as ready at once) and the
    spec's ``fresh_dir``, emptied and made again."""
    if spec.ready_file:
        Path(spec.ready_file).unlink(missing_ok=True)
    if spec.fresh_dir:
        shutil.rmtree(spec.fresh_dir, ignore_errors=True)
        Path(spec.fresh_dir).mkdir(parents=True, exist_ok=True)


def _wait_ready(
    layout: Layout, spec: ProcessSpec, process: subprocess.Popen[bytes], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    # HTTPS endpoints are checked against the sandbox's CA, never without verification.
    verify = client_context(layout) if spec.ready_url.startswith("https:") else system_trust()
    with httpx.Client(timeout=1.0, trust_env=False, verify=verify) as client:
        while True:
            code = process.poll()
            if code is not None:
                layout.pid_file(spec.name).unlink(missing_ok=True)
                raise SandboxError(
                    f"{spec.name} exited with code {code} while starting "
                    f"({_last_log_line(Path(spec.log))!r}); see {spec.log}"
                )
            if spec.ready_file:
                if Path(spec.ready_file).is_file():
                    return
            else:
                try:
                    client.get(spec.ready_url)
                    return
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                stop_process(layout.run_dir, spec.name, signal.SIGKILL)
                missed = (
                    f"did not write {spec.ready_file}"
                    if spec.ready_file
                    else f"did not answer on {spec.ready_url}"
                )
                raise SandboxError(f"{spec.name} {missed} within {timeout:.0f}s; see {spec.log}")
            time.sleep(0.05)


# -- stop -------------------------------------------------------------------------------------
def stop_process(
    run_dir: Path | str,
    name: str,
    sig: int = signal.SIGTERM,
    *,
    timeout: float = STOP_TIMEOUT,
) -> bool:
    """Send ``sig`` to process ``name``'s whole process group; True if it was running.

    For SIGTERM/SIGINT/SIGQUIT it waits up to ``timeout`` seconds, then SIGKILLs what is left;
    for SIGKILL it waits until the group is gone (the "kill a registry node" fault). Other
    signals (SIGSTOP, SIGCONT, SIGHUP) are delivered and left in effect. A pid that is no
    longer ours is never signalled.
    """
    layout = Layout.at(run_dir)
    spec = _spec(layout, name)
    record = _record(layout, name)
    if record is None:
        return False
    # A group whose leader died but whose members live on (nginx workers after their master
    # was SIGKILLed) is still ours; a leader pid reused by another process is not.
    if not record.members():
        layout.pid_file(name).unlink(missing_ok=True)
        reap(record.pid)
        return False
    sig = signal.Signals(sig)
    if sig not in TERMINATING:
        signal_group(record.pgid, sig)
        return True
    grace = timeout if sig != signal.SIGKILL else STOP_TIMEOUT
    survivors = stop_group(record, sig, grace=grace, kill_wait=STOP_TIMEOUT)
    if survivors:
        raise SandboxError(f"{name} (process group {record.pgid}) survived SIGKILL: {survivors}")
    layout.pid_file(name).unlink(missing_ok=True)
    # /proc shows a multi-threaded leader as a zombie (gone, to us) while its other threads
    # still exit and its sockets are still open: a client connecting in that moment is reset by
    # the closing listener instead of refused. Stopped means nothing listens on its ports.
    _ports_still_busy(spec.ports)
    return True


def process_status(layout: Layout) -> dict[str, dict[str, Any]]:
    """Per process: running, pid (None when not running), log file."""
    report = {}
    for name, spec in read_specs(layout).items():
        pid = running_pid(layout, name)
        report[name] = {"running": pid is not None, "pid": pid, "log": spec.log}
    return report


def kill_strays(layout: Layout) -> list[int]:
    """SIGKILL leftover processes naming the run dir (e.g. after pid files were lost).

    A stray that leads its own session is killed with its group, so nginx's workers (whose
    command line does not name the run dir) go with their master.
    """
    found = strays(layout)
    for pid in found:
        stat = proc_stat(pid)
        with contextlib.suppress(ProcessLookupError):
            if stat is not None and stat.sid == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    for pid in found:
        while (mentions_run_dir(layout, pid) or group_members(pid)) and (
            time.monotonic() < deadline
        ):
            reap(pid)
            time.sleep(0.05)
    return found


def reload_nginx(run_dir: Path | str) -> int:
    """Ask the sandbox's nginx master to reload its configuration (SIGHUP); returns its pid.

    Only the master is signalled (not its group): it re-reads nginx.conf and the certificate
    files it names, starts new workers and lets the old ones finish their requests. A config
    nginx cannot load leaves the old one serving, so callers verify the effect they wanted.
    Raises SandboxError when nginx is not running.
    """
    layout = Layout.at(run_dir)
    pid = running_pid(layout, "nginx")
    if pid is None:
        raise SandboxError(f"nginx of the sandbox in {layout.run_dir} is not running")
    old_workers = _workers(pid)
    os.kill(pid, signal.SIGHUP)
    _wait_old_workers_retired(pid, old_workers)
    return pid


def _workers(master: int) -> set[int]:
    return {stat.pid for stat in identity.live_processes() if stat.ppid == master}


def _wait_old_workers_retired(master: int, old: set[int], timeout: float = 10.0) -> None:
    """Until the new workers run and every old one is gone or shutting down.

    Between the SIGHUP and an old worker handling it, old and new workers both accept new
    connections: a handshake may get either configuration (a certificate fault was seen
    "applied" by one connection and not by the next). An old worker sets its title to "worker
    process is shutting down" as it closes its listening sockets. A reload nginx refused starts
    no new worker: then return at once and let the caller's own check report it.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        workers = _workers(master)
        if workers - old and all(
            "shutting down" in command_line(worker) or not identity.is_alive(worker)
            for worker in workers & old
        ):
            return
        if not workers - old and time.monotonic() - started > 2.0:
            return  # no new worker after 2 s: the reload was refused
        time.sleep(0.02)
