"""Locust's command line and environment for one load.

The chaos process never imports Locust (it monkey-patches the interpreter): the supervisor runs
``python -m locust -f loadgen/locustfile.py --headless --run-time Ns ...`` as a subprocess.

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
    # --credentials-file, --records-dir, --tls-verify and --connect-to (a fault proxy's
    # listener), which win when given here
    locust -f .../locustfile.py --worker --master-host master.example --master-port 5557 \\
        --processes -1 --credentials-file /etc/chaosregistry/registry.json \\
        --records-dir /var/tmp/pulls --tls-verify /etc/chaosregistry/ca.crt

Copy every worker's ``pulls-*.jsonl`` into one directory and ``records.read_records`` /
``records.timeseries`` compute exact figures over all of them; the master's ``--json-file``
counts the same pulls minus those recorded ``interrupted``. In cold mode pass
``--fresh-stride`` = total number of worker processes so workers do not pull the same image.
"""

import math
import os
import sys
from pathlib import Path

from chaosregistry.experiment.settings import RegistryTarget
from chaosregistry.osutil.spawn import env_with_this_package

from .credentials import CREDENTIALS_FILE
from .parameters import LoadParameters

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def locust_command(
    parameters: LoadParameters,
    registry: RegistryTarget,
    stats_dir: Path,
    tag: str,
    credentials_dir: Path | None,
) -> list[str]:
    """Locust's command line for this load; credentials only as a file path."""
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
        "--backoff", str(parameters.backoff.enabled).lower(),
        "--backoff-base", f"{parameters.backoff.base:g}",
        "--backoff-cap", f"{parameters.backoff.cap:g}",
        "--pull-interval", f"{parameters.pull_interval:g}",
    ]  # fmt: skip
    if credentials_dir is not None:
        command += ["--credentials-file", str(credentials_dir / CREDENTIALS_FILE)]
    if registry.connect_to is not None:  # a fault proxy: the probes' address, not a second one
        host, port = registry.connect_to
        command += ["--connect-to", f"{host}:{port}"]
    if parameters.processes > 1:
        command += ["--processes", str(parameters.processes)]
    return command


def child_env() -> dict[str, str]:
    """Our environment minus Locust's own settings (LOCUST_*), which would change the run,
    plus this copy of the package on PYTHONPATH (a source tree works without installing)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
    return env_with_this_package(env)
