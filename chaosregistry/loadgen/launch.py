"""Start a Locust pull load in the background, on the same timeline and ledger as the faults.

The chaos process never imports Locust (it monkey-patches the interpreter): a load is a
process group started in its own session::

    supervisor   python -m chaosregistry.loadgen.supervisor supervise <stats_dir>
      locust     python -m locust -f loadgen/locustfile.py --headless --run-time Ns ...
        workers  (forked by Locust's --processes N)

Lifecycle (docs/architecture.md, "The fault lifecycle"): the images are checked first (warm
mode: one manifest GET each; cold mode: the target is pinged and fresh images are pushed to the
origin), then the supervisor starts and waits; its identity (pid, start time, process group,
boot id) goes into a fault-ledger entry of kind ``load.locust`` whose undo is
``process.terminate``; only then is it told "go" and it starts Locust. So a load ends when
Locust's ``--run-time`` is up, when ``stop_pull_load`` (the rollback) reverts the entry, when
the ledger entry expires (run time plus start-up and stop allowances), or at once when the
process that started it dies (the ledger's watchdog reverts entries whose owner is gone),
SIGKILL included. If the chaos process dies before "go", the supervisor sees its pipe close and
exits without starting anything.

The files a load leaves are described in ``store``; how credentials reach Locust in
``credentials``; running the locustfile on many machines in ``command``.
"""

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosregistry.backends import FaultPlan
from chaosregistry.errors import ConfigError, PullError
from chaosregistry.experiment.settings import RegistryTarget, Settings
from chaosregistry.faults.injection import inject_plan
from chaosregistry.oci.reference import ImageReference, Platform
from chaosregistry.osutil.files import write_json
from chaosregistry.osutil.spawn import read_line, spawn_detached

from .command import child_env, locust_command
from .credentials import remove_private_credentials, write_private_credentials
from .mix import ImageChoice, mix_to_json, parse_image_mix
from .parameters import STARTUP_ALLOWANCE, STOP_GRACE, LoadParameters
from .processes import GroupIdentity, terminate_undo
from .store import LOAD_KIND, LoadError, load_root, new_load_id

SUPERVISOR_MODULE = "chaosregistry.loadgen.supervisor"
# How long the supervisor may take to report Locust started after "go".
START_TIMEOUT = 15.0


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
    settings: Settings,
    secrets: Mapping[str, Any] | None,
    sli_sink: str | None = None,
) -> dict[str, Any]:
    """Check everything, then start the load in the background; returns its description.

    ``sli_sink``: where each pull reports to the SLI exporter
    (``chaosregistry.observability.sli``), or None.
    """
    registry = settings.registry.resolve(secrets, parameters.target)
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
        origin = settings.registry.resolve(secrets, settings.load_origin)
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
    stats_dir = load_root(settings) / load_id
    (stats_dir / "pulls").mkdir(parents=True)
    (stats_dir / "images.json").write_text(mix_to_json(mix) + "\n")
    credentials_dir = write_private_credentials(registry)
    tag = f"chaosregistry-load:{load_id}"
    command = locust_command(parameters, registry, stats_dir, tag, credentials_dir)
    if sli_sink:  # each pull also reports to the SLI exporter (chaosregistry.observability.sli)
        command += ["--sli-sink", sli_sink]
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
        **parameters.backoff.describe(),
        "pull_interval": parameters.pull_interval,
        "images": [] if parameters.mode == "cold" else [c.to_dict() for c in mix],
        "fresh_images": len(mix) if parameters.mode == "cold" else 0,
        "fresh_repository": fresh_repository,
        "stats_dir": str(stats_dir),
        "credentials_dir": str(credentials_dir) if credentials_dir is not None else "",
        "command": command,
    }
    try:
        return _launch(parameters, spec, stats_dir, credentials_dir, settings)
    except BaseException:
        if credentials_dir is not None:
            remove_private_credentials(credentials_dir)
        raise


def _split(reference: str) -> tuple[str, str]:
    parsed = ImageReference.parse(reference)
    return parsed.repository, parsed.reference


def _launch(
    parameters: LoadParameters,
    spec: dict[str, Any],
    stats_dir: Path,
    credentials_dir: Path | None,
    settings: Settings,
) -> dict[str, Any]:
    go_read, go_write = os.pipe()
    ready_read, ready_write = os.pipe()
    try:
        supervisor = spawn_detached(
            [
                sys.executable,
                "-m",
                SUPERVISOR_MODULE,
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
            env=child_env(),
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
        fault = inject_plan(plan, parameters.duration, settings)
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
        **parameters.backoff.describe(),
        "pull_interval": parameters.pull_interval,
        "images": spec["images"],
        "fresh_images": spec["fresh_images"],
        "fresh_repository": spec["fresh_repository"],
        "started_at": fault["injected_at"],
        "expires_at": fault["expires_at"],
    }
