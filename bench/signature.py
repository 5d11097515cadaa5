"""bench/signature: the ``image_signature`` probe vs ``cosign verify`` of the same image.

On a sandbox (its signed ``signed/app:signed-prod-1.0.0``, legacy format, or with ``--image``
another, e.g. ``signed/app:bundle-prod-1.0.0`` in the bundle format; the sandbox's key), alternates,
round by round: ``cosign verify --key ... --insecure-ignore-tlog`` (a whole process: cosign's
start-up included), the probe in a fresh Python process (``python -c``: interpreter start-up and
imports included, what a one-shot caller pays) and the probe in this process (what a
``chaos run`` that already imported it pays). Every run must agree: cosign exits 0, the probe
says ``verified``. Reports each one's median and the ratios to cosign. Goal (issue 14): the
probe faster than the cosign process, start-up included.

    .venv/bin/python bench/signature.py [--sandbox-dir DIR] [--implementation distribution-3]
        [--rounds 9] [--image signed/app:bundle-prod-1.0.0]

Without --sandbox-dir a temporary sandbox is started and stopped. Needs cosign (make setup).
"""

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chaosregistry import sandbox
from chaosregistry.probes.signature import image_signature
from chaosregistry.sandbox.binaries import cosign_binary

IMAGE = "signed/app:signed-prod-1.0.0"
DEAD_PROXY = "http://127.0.0.1:9"  # Go never proxies loopback: nothing leaves the machine
PROBE_PROCESS = (
    "import json, sys\n"
    "from chaosregistry.probes.signature import image_signature\n"
    "r = image_signature(sys.argv[1], configuration={'sandbox_dir': sys.argv[2]})\n"
    "sys.exit(0 if r['verdict'] == 'verified' else 1)\n"
)


def cosign_env(home: Path, endpoints: dict[str, object], run_dir: Path) -> dict[str, str]:
    creds = sandbox.load_credentials(run_dir)
    host = str(endpoints["registry"]).removeprefix("https://")
    auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    config = home / "config.json"
    config.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    config.chmod(0o600)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DOCKER_CONFIG": str(home),
        "HTTPS_PROXY": DEAD_PROXY,
        "HTTP_PROXY": DEAD_PROXY,
    }


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stderr.strip()[-300:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", type=Path)
    parser.add_argument("--implementation", default="distribution-2")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--image", default=IMAGE, help="a signed image of the sandbox")
    args = parser.parse_args()
    temporary = args.sandbox_dir is None
    run_dir = args.sandbox_dir or Path(tempfile.mkdtemp(prefix="bench-signature-"))
    home = Path(tempfile.mkdtemp(prefix="bench-cosign-"))
    try:
        if temporary:
            endpoints = sandbox.up(
                run_dir,
                base_port=sandbox.find_free_base_port(),
                implementation=args.implementation,
                progress=lambda _: None,
            )
        else:
            endpoints = dict(sandbox.load_endpoints(run_dir))
        key = str(endpoints["signing_public_key"])
        registry = str(endpoints["registry"]).removeprefix("https://")
        cosign = [
            cosign_binary(),
            "verify",
            "--key",
            key,
            "--insecure-ignore-tlog=true",
            "--registry-cacert",
            str(endpoints["ca_file"]),
            f"{registry}/{args.image}",
        ]
        env = cosign_env(home, endpoints, run_dir)
        probe_process = [sys.executable, "-c", PROBE_PROCESS, args.image, str(run_dir)]
        config = {"sandbox_dir": str(run_dir)}
        figures: dict[str, list[float]] = {
            "cosign": [],
            "probe_process": [],
            "probe_in_process": [],
        }
        # One warm-up of each: page cache, TLS session setup paths, the registry's caches.
        timed(cosign, env)
        timed(probe_process)
        image_signature(args.image, configuration=config)
        for _ in range(args.rounds):
            figures["cosign"].append(timed(cosign, env))
            figures["probe_process"].append(timed(probe_process))
            started = time.perf_counter()
            result = image_signature(args.image, configuration=config)
            figures["probe_in_process"].append(time.perf_counter() - started)
            if result["verdict"] != "verified":
                raise SystemExit(f"the probe said {result['verdict']}: {result['detail']}")
        medians = {name: statistics.median(values) for name, values in figures.items()}
        report = {
            "implementation": endpoints.get("implementation"),
            "image": args.image,
            "discovery": result["discovery"],
            "rounds": args.rounds,
            "median_seconds": medians,
            "min_seconds": {name: min(values) for name, values in figures.items()},
            "max_seconds": {name: max(values) for name, values in figures.items()},
            "ratio_to_cosign": {
                name: medians[name] / medians["cosign"]
                for name in ("probe_process", "probe_in_process")
            },
            "phases_last_in_process": result["seconds"],
        }
        print(json.dumps(report, indent=2))
        return 0
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if temporary:
            sandbox.down(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
