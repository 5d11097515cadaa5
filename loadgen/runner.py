"""Run Locust pull loads in the background, on the same timeline and ledger as the faults.

The chaos process never imports Locust (it monkey-patches the interpreter): a load is a
process group started in its own session::

    supervisor   python -m chaosregistry.loadgen.runner supervise <stats_dir>
      locust     python -m locust -f loadgen/locustfile.py --headless --run-time Ns ...
        workers  (forked by Locust's --processes N)

Lifecycle (docs/architecture.md, "The fault lifecycle"): the supervisor starts first and waits; its
identity (pid, start time, process group, boot id) goes into a fault-ledger entry of kind
``load.locust`` whose undo is ``process.terminate``; only then is it told to start Locust. So a
load ends when Locust's ``--run-time`` is up, when ``stop_pull_load`` (the rollback) reverts the
entry, when the ledger entry expires (run time plus start-up and stop allowances), or at once
when the process that started it dies (the ledger's watchdog reverts entries whose owner is
gone), SIGKILL included. If the chaos process dies before "go", the supervisor sees its pipe
close and exits without starting anything.

A load's stats directory, ``<load_dir>/<load_id>`` (``load_dir`` is configuration ``load_dir``,
else ``<configuration run_dir or $CHAOSREGISTRY_RUN_DIR>/load``, else ``./runs/load``)::

    load.json        what was started: parameters, Locust's command line (no secret), identity
    status.json      the supervisor's account: state (running, finished, stopped, overran,
                     cancelled), Locust's pid and exit code, started_at / ended_at (epoch s)
    images.json      the image mix handed to Locust
    pulls/           exact per-pull records, one JSON-lines file per Locust process
    locust_stats.json  Locust's final figures per request name (written at exit)
    locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv
                     (Locust rewrites these every second and not at exit: the last second is
                     missing; locust_stats.json and pulls/ are complete)
    locust.log, supervisor.log
    timeseries.json  per-second pulls started / completed / failed and latency percentiles,
                     written when the load ends (and again by stop_pull_load)

Credentials reach Locust only as a file: a private copy (mode 0600 in a 0700 temporary
directory) deleted when the load ends, whichever way it ends.

Growing past one core, then past one machine
--------------------------------------------
One Locust process uses one core. ``processes=N`` runs Locust's master plus N forked worker
processes on this machine (``locust --processes N``); each writes its own records file, and
the stats here merge them. Beyond one machine, run the same locustfile as a Locust master here
and workers on other hosts (or as Kubernetes Jobs); every worker host needs this package
installed and a synchronised clock (records carry wall-clock times)::

    # master (this host): no users of its own, waits for 4 workers, then runs 120 s
    locust -f $(python -c 'import chaosregistry.loadgen, os; print(os.path.dirname(
        chaosregistry.loadgen.__file__))')/locustfile.py --master --master-bind-port 5557 \\
        --expect-workers 4 --expect-workers-max-wait 120 \\
        --headless -u 200 -r 50 -t 120s --host https://registry.example:5000 \\
        --images '["shop/api:latest", {"image": "shop/frontend:latest", "weight": 3}]' \\
        --csv runs/load/manual/locust --json-file runs/load/manual/locust_stats
    # each worker host: custom arguments travel from the master, except the worker's own
    # --credentials-file, --records-dir and --tls-verify, which win when given here
    locust -f .../locustfile.py --worker --master-host master.example --master-port 5557 \\
        --processes -1 --credentials-file /etc/chaosregistry/registry.json \\
        --records-dir /var/tmp/pulls --tls-verify /etc/chaosregistry/ca.crt

Copy every worker's ``pulls-*.jsonl`` into one directory and ``records.read_records`` /
``records.timeseries`` compute exact figures over all of them; the master's ``--json-file``
counts the same pulls minus those recorded ``interrupted``. In cold mode pass
``--fresh-stride`` = total number of worker processes so workers do not pull the same image.
"""

import argparse
import contextlib
import json
import math
import os
import secrets as _random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosregistry.activity import require_positive_int, require_positive_number
from chaosregistry.backends import FaultPlan
from chaosregistry.errors import ChaosRegistryError, ConfigError, PullError
from chaosregistry.faults.ledger import Entry, RevertReason
from chaosregistry.faults.lifecycle import revert
from chaosregistry.injection import check_duration, inject_plan, ledger_for
from chaosregistry.oci.reference import ImageReference, Platform
from chaosregistry.osutil.files import write_json
from chaosregistry.osutil.identity import group_members, marked_processes
from chaosregistry.osutil.spawn import env_with_this_package, read_line, send_line, spawn_detached
from chaosregistry.settings import RegistryTarget, resolve_target

from . import records
from .mix import ImageChoice, mix_to_json, parse_image_mix
from .processes import GroupIdentity, terminate_group, terminate_undo

LOAD_KIND = "load.locust"
MODES = ("warm", "cold")
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
DEFAULT_LOAD_DIR = Path("runs") / "load"
# Set by ``chaosregistry gameday``: the run's own directory.
RUN_DIR_ENV = "CHAOSREGISTRY_RUN_DIR"
# Locust needs a moment to import, fork its workers and connect them before its run time
# counts; the ledger entry and the supervisor's own deadline allow for it.
STARTUP_ALLOWANCE = 30.0
STOP_GRACE = 10.0
START_TIMEOUT = 15.0
# The group's SIGTERM reaches Locust directly; the supervisor repeats it only when Locust is
# still there this long after (someone signalled the supervisor alone).
FORWARD_DELAY = 2.0
POLL = 0.1
MAX_PROCESSES = 64
MAX_USERS = 100_000
MAX_BLOB_CONCURRENCY = 32
MAX_FRESH_IMAGES = 10_000
DEFAULT_FRESH_IMAGES = 100
# Where the stats directory and the epoch-vs-offset cut-over for time windows meet: a window
# bound at or above this is an epoch timestamp (2001-09-09), below it an offset in seconds.
EPOCH_THRESHOLD = 1e9


class LoadError(ChaosRegistryError):
    """A load could not be started, found or stopped as asked."""


# -- where loads live -------------------------------------------------------------------------
def load_root(configuration: Mapping[str, Any] | None) -> Path:
    """The directory holding one subdirectory per load (see the module docstring)."""
    configuration = configuration or {}
    if configuration.get("load_dir"):
        return Path(str(configuration["load_dir"])).expanduser().absolute()
    run_dir = configuration.get("run_dir") or os.environ.get(RUN_DIR_ENV)
    if run_dir:
        return (Path(str(run_dir)) / "load").expanduser().absolute()
    return DEFAULT_LOAD_DIR.absolute()


def new_load_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + _random.token_hex(3)


@dataclass(frozen=True)
class Load:
    """A load's stats directory and what its files say."""

    load_id: str
    stats_dir: Path
    spec: dict[str, Any]
    status: dict[str, Any]

    @classmethod
    def read(cls, stats_dir: Path) -> "Load":
        spec = _read_json(stats_dir / "load.json")
        if not isinstance(spec, dict) or "load_id" not in spec:
            raise LoadError(f"{stats_dir} is not a load directory (no load.json)")
        status = _read_json(stats_dir / "status.json")
        return cls(
            str(spec["load_id"]), stats_dir, spec, status if isinstance(status, dict) else {}
        )

    @property
    def records_dir(self) -> Path:
        return self.stats_dir / "pulls"

    @property
    def started_at(self) -> float:
        return float(self.status.get("started_at") or self.spec.get("created_at") or 0.0)

    @property
    def ended_at(self) -> float | None:
        value = self.status.get("ended_at")
        return None if value is None else float(value)

    def identity(self) -> GroupIdentity | None:
        data = self.spec.get("supervisor")
        if not isinstance(data, dict):
            return None
        return GroupIdentity(
            int(data["pid"]), int(data["start_time"]), int(data["pgid"]), str(data["boot_id"])
        )

    def running(self) -> bool:
        """Whether any process of this load is still alive."""
        identity = self.identity()
        alive = bool(identity.members()) if identity is not None else False
        return alive or bool(marked_processes(self.spec.get("tag", "")))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _ledger_loads(configuration: Mapping[str, Any] | None) -> list[Entry]:
    return [entry for entry in ledger_for(configuration).all() if entry.kind == LOAD_KIND]


def find_load(load_id: str, configuration: Mapping[str, Any] | None) -> Load:
    """The load ``load_id`` (the newest one when empty); ConfigError when there is none."""
    if not isinstance(load_id, str):
        raise ConfigError(f"load_id must be a string, got {load_id!r}")
    candidates: dict[str, Path] = {}
    for entry in _ledger_loads(configuration):
        stats_dir = entry.parameters.get("stats_dir")
        if isinstance(stats_dir, str):
            candidates[str(entry.parameters.get("load_id"))] = Path(stats_dir)
    root = load_root(configuration)
    if root.is_dir():
        for child in root.iterdir():
            if (child / "load.json").is_file():
                candidates.setdefault(child.name, child)
    if load_id:
        path = candidates.get(load_id)
        if path is None or not (path / "load.json").is_file():
            raise ConfigError(f"no pull load {load_id!r} (looked in the fault ledger and {root})")
        return Load.read(path)
    loads = [Load.read(path) for path in candidates.values() if (path / "load.json").is_file()]
    if not loads:
        raise ConfigError(f"no pull load found (looked in the fault ledger and {root})")
    return max(loads, key=lambda load: (float(load.spec.get("created_at") or 0.0), load.load_id))


# -- starting ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadParameters:
    users: int
    spawn_rate: float
    duration: float
    processes: int
    target: str
    mode: str
    platform: Platform
    verify: bool
    blob_concurrency: int
    fresh_images: int

    @classmethod
    def check(
        cls,
        *,
        users: Any,
        spawn_rate: Any,
        duration: Any,
        processes: Any,
        target: Any,
        mode: Any,
        platform: Any,
        verify: Any,
        blob_concurrency: Any,
        fresh_images: Any,
    ) -> "LoadParameters":
        """Validated parameters; ConfigError names the first bad one."""
        users = require_positive_int("users", users)
        if users > MAX_USERS:
            raise ConfigError(f"users {users} is over the limit of {MAX_USERS}")
        processes = require_positive_int("processes", processes)
        if processes > MAX_PROCESSES:
            raise ConfigError(f"processes {processes} is over the limit of {MAX_PROCESSES}")
        blob_concurrency = require_positive_int("blob_concurrency", blob_concurrency)
        if blob_concurrency > MAX_BLOB_CONCURRENCY:
            raise ConfigError(f"blob_concurrency is at most {MAX_BLOB_CONCURRENCY}")
        fresh_images = require_positive_int("fresh_images", fresh_images)
        if fresh_images > MAX_FRESH_IMAGES:
            raise ConfigError(f"fresh_images is at most {MAX_FRESH_IMAGES}")
        if mode not in MODES:
            raise ConfigError(f"mode must be warm or cold, got {mode!r}")
        if not isinstance(verify, bool):
            raise ConfigError(f"verify must be true or false, got {verify!r}")
        if not isinstance(target, str) or not target:
            raise ConfigError("target must name a registry (registry, mirror) or be a URL")
        if not isinstance(platform, str):
            raise ConfigError(f"platform must be os/arch[/variant], got {platform!r}")
        return cls(
            users=users,
            spawn_rate=require_positive_number("spawn_rate", spawn_rate),
            duration=check_duration(duration),
            processes=processes,
            target=target,
            mode=mode,
            platform=Platform.parse(platform),
            verify=verify,
            blob_concurrency=blob_concurrency,
            fresh_images=fresh_images,
        )


def check_images(registry: RegistryTarget, mix: list[ImageChoice], platform: Platform) -> None:
    """Fetch each image's manifest once; ConfigError for one that cannot be pulled."""
    with registry.client(max_connections=4, timeout=min(registry.timeout, 10.0)) as client:
        for choice in {choice.label: choice for choice in mix}.values():
            try:
                client.resolve(ImageReference(choice.repository, choice.reference), platform)
            except PullError as exc:
                raise ConfigError(
                    f"image {choice.label} cannot be pulled from {registry.url} "
                    f"({exc.error_class}: {exc})"
                ) from None


def start_load(
    parameters: LoadParameters,
    images: Any,
    configuration: Mapping[str, Any] | None,
    secrets: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Check everything, then start the load in the background; returns its description."""
    config = dict(configuration or {})
    registry = resolve_target(config, dict(secrets or {}), parameters.target)
    fresh_repository = ""
    if parameters.mode == "warm":
        mix = parse_image_mix(images)
        check_images(registry, mix, parameters.platform)
    else:
        if images:
            raise ConfigError("images: cold mode pulls images it generates; leave images empty")
        with registry.client(max_connections=1, timeout=min(registry.timeout, 10.0)) as client:
            try:
                client.ping()
            except PullError as exc:
                raise ConfigError(
                    f"target {registry.url} cannot be reached ({exc.error_class}: {exc})"
                ) from None
        origin = resolve_target(
            config, dict(secrets or {}), str(config.get("load_origin") or "registry")
        )
        from .fresh import push_fresh_images

        try:
            references = push_fresh_images(origin, parameters.fresh_images, parameters.platform)
        except PullError as exc:
            raise ConfigError(
                f"cannot push fresh images to {origin.url} ({exc.error_class}: {exc})"
            ) from None
        mix = [ImageChoice(*_split(reference)) for reference in references]
        fresh_repository = mix[0].repository

    load_id = new_load_id()
    stats_dir = load_root(config) / load_id
    (stats_dir / "pulls").mkdir(parents=True)
    (stats_dir / "images.json").write_text(mix_to_json(mix) + "\n")
    credentials_dir = _private_credentials(registry)
    tag = f"chaosregistry-load:{load_id}"
    command = _locust_command(parameters, registry, stats_dir, tag, credentials_dir)
    spec: dict[str, Any] = {
        "load_id": load_id,
        "tag": tag,
        "created_at": time.time(),
        "users": parameters.users,
        "spawn_rate": parameters.spawn_rate,
        "duration": parameters.duration,
        "processes": parameters.processes,
        "target": parameters.target,
        "target_url": registry.url,
        "mode": parameters.mode,
        "platform": str(parameters.platform),
        "verify": parameters.verify,
        "blob_concurrency": parameters.blob_concurrency,
        "images": [] if parameters.mode == "cold" else [c.to_dict() for c in mix],
        "fresh_images": len(mix) if parameters.mode == "cold" else 0,
        "fresh_repository": fresh_repository,
        "stats_dir": str(stats_dir),
        "credentials_dir": str(credentials_dir) if credentials_dir is not None else "",
        "command": command,
    }
    try:
        return _launch(parameters, spec, stats_dir, credentials_dir, config)
    except BaseException:
        if credentials_dir is not None:
            _remove_tree(credentials_dir)
        raise


def _split(reference: str) -> tuple[str, str]:
    parsed = ImageReference.parse(reference)
    return parsed.repository, parsed.reference


def _private_credentials(registry: RegistryTarget) -> Path | None:
    if registry.credentials is None:
        return None
    directory = Path(tempfile.mkdtemp(prefix="chaosregistry-load-"))  # mode 0700
    path = directory / "credentials.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {"username": registry.credentials.username, "password": registry.credentials.password},
            handle,
        )
    return directory


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _locust_command(
    parameters: LoadParameters,
    registry: RegistryTarget,
    stats_dir: Path,
    tag: str,
    credentials_dir: Path | None,
) -> list[str]:
    tls = registry.verify if isinstance(registry.verify, str) else str(registry.verify).lower()
    command = [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--headless",
        "--users", str(parameters.users),
        "--spawn-rate", f"{parameters.spawn_rate:g}",
        "--run-time", f"{math.ceil(parameters.duration)}s",
        "--host", registry.url,
        "--csv", str(stats_dir / "locust"),
        "--json-file", str(stats_dir / "locust_stats"),
        "--only-summary",
        "--exit-code-on-error", "0",
        "--images", f"@{stats_dir / 'images.json'}",
        "--pull-mode", parameters.mode,
        "--platform", str(parameters.platform),
        "--verify-digests", str(parameters.verify).lower(),
        "--blob-concurrency", str(parameters.blob_concurrency),
        "--records-dir", str(stats_dir / "pulls"),
        "--fresh-stride", str(parameters.processes),
        "--pull-timeout", f"{registry.timeout:g}",
        "--tls-verify", tls,
        "--load-tag", tag,
    ]  # fmt: skip
    if credentials_dir is not None:
        command += ["--credentials-file", str(credentials_dir / "credentials.json")]
    if parameters.processes > 1:
        command += ["--processes", str(parameters.processes)]
    return command


def _child_env() -> dict[str, str]:
    """Our environment minus Locust's own settings (LOCUST_*), which would change the run,
    plus this copy of the package on PYTHONPATH (a source tree works without installing)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
    return env_with_this_package(env)


def _launch(
    parameters: LoadParameters,
    spec: dict[str, Any],
    stats_dir: Path,
    credentials_dir: Path | None,
    configuration: Mapping[str, Any],
) -> dict[str, Any]:
    go_read, go_write = os.pipe()
    ready_read, ready_write = os.pipe()
    try:
        supervisor = spawn_detached(
            [
                sys.executable,
                "-m",
                "chaosregistry.loadgen.runner",
                "supervise",
                str(stats_dir),
                "--go-fd",
                str(go_read),
                "--ready-fd",
                str(ready_write),
                spec["tag"],
            ],
            log=stats_dir / "supervisor.log",
            cwd=stats_dir,
            env=_child_env(),
            pass_fds=(go_read, ready_write),
        )
    except OSError as exc:
        for fd in (go_read, go_write, ready_read, ready_write):
            os.close(fd)
        raise LoadError(f"cannot start the load supervisor: {exc}") from None
    os.close(go_read)
    os.close(ready_write)
    # Collect the supervisor when it exits, so it does not linger as a zombie of ours.
    threading.Thread(target=supervisor.wait, name="load-reaper", daemon=True).start()
    go = [go_write]
    try:
        identity = GroupIdentity.of(supervisor.pid)
        spec["supervisor"] = {
            "pid": identity.pid,
            "start_time": identity.start_time,
            "pgid": identity.pgid,
            "boot_id": identity.boot_id,
        }
        write_json(stats_dir / "load.json", spec)

        def apply() -> dict[str, Any]:
            os.write(go.pop(), b"go\n")
            line = read_line(ready_read, time.monotonic() + START_TIMEOUT)
            if not line.startswith("started "):
                raise LoadError(f"Locust did not start; see {stats_dir / 'supervisor.log'}")
            return {
                "supervisor_pid": identity.pid,
                "locust_pid": int(line.split()[1]),
                "pgid": identity.pgid,
                "stats_dir": str(stats_dir),
            }

        plan = FaultPlan(
            kind=LOAD_KIND,
            target=f"load:{parameters.target}",
            parameters={
                "load_id": spec["load_id"],
                "stats_dir": str(stats_dir),
                "users": parameters.users,
                "processes": parameters.processes,
                "mode": parameters.mode,
                "target_url": spec["target_url"],
            },
            apply=apply,
            undo=terminate_undo(
                identity,
                grace=STOP_GRACE,
                marker=spec["tag"],
                remove=[str(credentials_dir)] if credentials_dir is not None else [],
            ),
            ends_after=parameters.duration + STARTUP_ALLOWANCE + STOP_GRACE,
        )
        fault = inject_plan(plan, parameters.duration, configuration)
    except BaseException:
        for fd in go:
            os.close(fd)  # the supervisor sees EOF and exits without starting Locust
        with contextlib.suppress(subprocess.TimeoutExpired):
            supervisor.wait(timeout=5.0)
        raise
    finally:
        os.close(ready_read)
    spec["fault_id"] = fault["fault_id"]
    spec["started_at"] = fault["injected_at"]
    write_json(stats_dir / "load.json", spec)
    return {
        "load_id": spec["load_id"],
        "fault_id": fault["fault_id"],
        "pid": identity.pid,
        "locust_pid": fault["applied"]["locust_pid"],
        "pgid": identity.pgid,
        "stats_dir": str(stats_dir),
        "records_dir": str(stats_dir / "pulls"),
        "users": parameters.users,
        "spawn_rate": parameters.spawn_rate,
        "duration": parameters.duration,
        "processes": parameters.processes,
        "target": parameters.target,
        "target_url": spec["target_url"],
        "mode": parameters.mode,
        "platform": spec["platform"],
        "verify": parameters.verify,
        "blob_concurrency": parameters.blob_concurrency,
        "images": spec["images"],
        "fresh_images": spec["fresh_images"],
        "fresh_repository": spec["fresh_repository"],
        "started_at": fault["injected_at"],
        "expires_at": fault["expires_at"],
    }


# -- stopping ---------------------------------------------------------------------------------
def stop_loads(load_id: str, configuration: Mapping[str, Any] | None) -> dict[str, Any]:
    """Stop the load ``load_id`` (every active load when empty), verify that none of its
    processes is left, write its time series; returns what was stopped."""
    if not isinstance(load_id, str):
        raise ConfigError(f"load_id must be a string, got {load_id!r}")
    ledger = ledger_for(configuration)
    entries = [
        entry
        for entry in _ledger_loads(configuration)
        if entry.active and (not load_id or entry.parameters.get("load_id") == load_id)
    ]
    loads: dict[str, Load] = {}
    for entry in entries:
        revert(ledger, entry.id, RevertReason.ROLLBACK)
        stats_dir = entry.parameters.get("stats_dir")
        if isinstance(stats_dir, str) and (Path(stats_dir) / "load.json").is_file():
            loads[str(entry.parameters.get("load_id"))] = Load.read(Path(stats_dir))
    if load_id and load_id not in loads:
        loads[load_id] = find_load(load_id, configuration)  # ended already, or another ledger
    stopped = []
    for load in loads.values():
        _make_sure_stopped(load)
        stopped.append(finish(Load.read(load.stats_dir)))
    return {"stopped": stopped, "count": len(stopped)}


def _make_sure_stopped(load: Load) -> None:
    identity = load.identity()
    if identity is not None:
        terminate_group(identity, grace=STOP_GRACE, marker=str(load.spec.get("tag", "")))
    left = marked_processes(str(load.spec.get("tag", "")))
    if left:
        raise LoadError(f"load {load.load_id}: processes still running: {left}")


def finish(load: Load) -> dict[str, Any]:
    """For a load whose processes are gone: settle status.json, write timeseries.json,
    return the load's summary."""
    status = dict(load.status)
    if status.get("state") in (None, "waiting", "running"):
        status["state"] = "stopped"
        status.setdefault("ended_at", time.time())
        write_json(load.stats_dir / "status.json", status)
        load = Load.read(load.stats_dir)
    series = write_timeseries(load)
    pulls = records.read_records(load.records_dir)
    first = pulls[0]["start"] if pulls else load.started_at
    end = max([load.ended_at or time.time()] + [pull["end"] for pull in pulls])
    summary = records.summarize_window(pulls, first, math.nextafter(end, math.inf))
    return {
        "load_id": load.load_id,
        "stats_dir": str(load.stats_dir),
        "state": load.status.get("state"),
        "timeseries_file": str(load.stats_dir / "timeseries.json"),
        "seconds": len(series["t"]),
        **summary,
    }


def write_timeseries(load: Load) -> dict[str, Any]:
    """Compute the load's per-second series from its records and write timeseries.json."""
    pulls = records.read_records(load.records_dir)
    start = math.floor(load.started_at) if load.started_at else None
    series = records.timeseries(pulls, start=start, end=load.ended_at)
    series["load_id"] = load.load_id
    write_json(load.stats_dir / "timeseries.json", series)
    return series


# -- statistics -------------------------------------------------------------------------------
def load_stats(
    load_id: str, since: float, until: float, configuration: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Exact figures of a load over a window (see probes/load.py for the window rules)."""
    for name, value in (("since", since), ("until", until)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    load = find_load(load_id, configuration)
    now = time.time()
    running = load.running()
    end = now if running or load.ended_at is None else load.ended_at
    pulls = records.read_records(load.records_dir)
    # Pulls begin a moment after Locust starts: by default the window opens at the first one.
    first = pulls[0]["start"] if pulls else load.started_at
    window_start = _bound(since, load.started_at, now, first)
    window_end = _bound(until, load.started_at, now, end)
    if window_end < window_start:
        raise ConfigError(f"the window ends ({until}) before it starts ({since})")
    summary = records.summarize_window(pulls, window_start, window_end)
    return {
        "load_id": load.load_id,
        "running": running,
        "state": load.status.get("state"),
        "mode": load.spec.get("mode"),
        "users": load.spec.get("users"),
        "target_url": load.spec.get("target_url"),
        "stats_dir": str(load.stats_dir),
        **summary,
    }


def _bound(value: float, load_start: float, now: float, default: float) -> float:
    if value == 0:
        return default
    if value < 0:
        return now + value
    if value >= EPOCH_THRESHOLD:
        return float(value)
    return load_start + value


# -- the supervisor ---------------------------------------------------------------------------
def supervise(stats_dir: Path, go_fd: int, ready_fd: int) -> int:
    """Wait for "go", run Locust, end it if it overstays, write the time series."""
    spec = _read_json(stats_dir / "load.json") or {}
    status: dict[str, Any] = {"state": "waiting", "supervisor_pid": os.getpid()}
    write_json(stats_dir / "status.json", status)
    credentials = Path(spec["credentials_dir"]) if spec.get("credentials_dir") else None
    try:
        line = read_line(go_fd, time.monotonic() + 24 * 3600)
        os.close(go_fd)
        if line != "go":
            status.update(state="cancelled", ended_at=time.time())
            write_json(stats_dir / "status.json", status)
            return 0
        return _run_locust(stats_dir, spec, status, ready_fd)
    finally:
        if credentials is not None:
            _remove_tree(credentials)


def _run_locust(
    stats_dir: Path, spec: dict[str, Any], status: dict[str, Any], ready_fd: int
) -> int:
    stop_requested: list[float] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop_requested:
            stop_requested.append(time.monotonic())

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    with open(stats_dir / "locust.log", "ab") as log:
        locust = subprocess.Popen(
            spec["command"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=stats_dir,
            env=_child_env(),
        )
    status.update(state="running", locust_pid=locust.pid, started_at=time.time())
    write_json(stats_dir / "status.json", status)
    send_line(ready_fd, f"started {locust.pid}")
    deadline = time.monotonic() + float(spec.get("duration", 0)) + STARTUP_ALLOWANCE
    state = "finished"
    terminated_at: float | None = None
    killed = False
    while True:
        try:
            exit_code = locust.wait(timeout=POLL)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if terminated_at is None:
            if stop_requested and now - stop_requested[0] >= FORWARD_DELAY:
                state, terminated_at = "stopped", now
                locust.terminate()
            elif now >= deadline:
                state, terminated_at = "overran", now
                locust.terminate()
        elif not killed and now - terminated_at >= STOP_GRACE:
            killed = True
            for pid in group_members(os.getpgid(0)):
                if pid != os.getpid():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
    if stop_requested and state == "finished":
        state = "stopped"
    status.update(state=state, exit_code=exit_code, ended_at=time.time())
    write_json(stats_dir / "status.json", status)
    write_timeseries(Load.read(stats_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m chaosregistry.loadgen.runner supervise STATS_DIR --go-fd N --ready-fd M TAG``
    (TAG only marks the command line, so leftover processes can be found)."""
    parser = argparse.ArgumentParser(prog="python -m chaosregistry.loadgen.runner")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("supervise", help="run one load (started by start_pull_load)")
    run.add_argument("stats_dir", type=Path)
    run.add_argument("--go-fd", type=int, required=True)
    run.add_argument("--ready-fd", type=int, required=True)
    run.add_argument("tag")
    args = parser.parse_args(argv)
    return supervise(args.stats_dir, args.go_fd, args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
