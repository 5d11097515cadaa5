"""bench/pull: our verified pull vs curl vs skopeo, side by side on the same sandbox blobs.

Each round runs the three in turn (A B C A B C ...), so a noisy machine slows them alike; we
report medians and the ratio of medians. Goal (issue 2): ours >= 0.5x curl and >= 3x skopeo.

    .venv/bin/python bench/pull.py [--sandbox-dir DIR] [--rounds 5] [--image big/blob:...]

Without --sandbox-dir a temporary sandbox is started and stopped.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chaosregistry import sandbox
from chaosregistry.oci import ImageReference, RegistryClient, pull
from chaosregistry.oci.auth import Credentials


def biggest_image(catalog: list[dict[str, Any]]) -> dict[str, Any]:
    return max(catalog, key=lambda image: image["total_bytes"])


def run_curl(
    url: str, image: dict[str, Any], creds: Credentials, parallel: int, ca_file: str
) -> float:
    platform = image["platforms"][0]
    blobs = [platform["config"], *platform["layers"]]
    argv = [
        "curl",
        "-sf",
        "--no-progress-meter",
        "--parallel",
        "--parallel-max",
        str(parallel),
        "--cacert",
        ca_file,
        "-u",
        f"{creds.username}:{creds.password}",
    ]
    for blob in blobs:
        argv += ["-o", "/dev/null", f"{url}/v2/{image['repository']}/blobs/{blob['digest']}"]
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - started


def run_skopeo(
    url: str, image: dict[str, Any], creds: Credentials, work: Path, ca_file: str
) -> float:
    dest = work / "skopeo"
    shutil.rmtree(dest, ignore_errors=True)
    host = url.split("://", 1)[1]
    # skopeo reads every *.crt of a directory as a CA and wants a .cert beside any .key, so the
    # sandbox's pki directory cannot be given as is. Plain HTTP needs tls-verify off.
    certs = work / "certs"
    certs.mkdir(exist_ok=True)
    shutil.copyfile(ca_file, certs / "ca.crt")
    tls = f"--src-cert-dir={certs}" if url.startswith("https:") else "--src-tls-verify=false"
    argv = [
        "skopeo",
        "copy",
        "-q",
        tls,
        f"--src-creds={creds.username}:{creds.password}",
        f"docker://{host}/{image['repository']}:{image['tag']}",
        f"dir:{dest}",
    ]
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest, ignore_errors=True)
    return elapsed


def run_ours(
    url: str, image: dict[str, Any], creds: Credentials, parallel: int, verify: bool, ca_file: str
) -> float:
    started = time.perf_counter()
    with RegistryClient(url, credentials=creds, verify=ca_file) as client:
        result = pull(
            client,
            ImageReference(image["repository"], image["tag"]),
            concurrency=parallel,
            verify=verify,
        )
    if not result.ok:
        raise SystemExit(f"our pull failed: {result.error}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=3, help="blobs at once (curl and ours)")
    parser.add_argument(
        "--endpoint",
        default="registry_direct",
        help="endpoints.json key to pull from (registry_direct = nginx over HTTPS, "
        "registry_http = the same over plain HTTP)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    owned = args.sandbox_dir is None
    run_dir = args.sandbox_dir or Path(tempfile.mkdtemp(prefix="bench-pull-"))
    try:
        endpoints = sandbox.up(run_dir) if owned else sandbox.load_endpoints(run_dir)
        secret = json.loads(Path(endpoints["credentials_file"]).read_text())
        creds = Credentials(secret["username"], secret["password"])
        catalog = json.loads(Path(endpoints["catalog_file"]).read_text())
        image = biggest_image(catalog)
        url = endpoints[args.endpoint]
        size = image["total_bytes"]
        print(
            f"image {image['repository']}:{image['tag']}, {size / 2**20:.0f} MiB, "
            f"{len(image['platforms'][0]['layers'])} layers, via {args.endpoint} ({url}), "
            f"{args.rounds} rounds",
            file=sys.stderr,
        )

        work = Path(tempfile.mkdtemp(prefix="bench-pull-work-"))
        ca = str(endpoints["ca_file"])
        contenders = {
            "curl": lambda: run_curl(url, image, creds, args.parallel, ca),
            "ours (sha256 verified)": lambda: run_ours(url, image, creds, args.parallel, True, ca),
            "ours (no verification)": lambda: run_ours(url, image, creds, args.parallel, False, ca),
            "skopeo copy": lambda: run_skopeo(url, image, creds, work, ca),
        }
        for run in contenders.values():  # warm-up: page cache, connections, token
            run()
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, run in contenders.items():
                times[name].append(run())
        shutil.rmtree(work, ignore_errors=True)
    finally:
        if owned:
            sandbox.down(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in times.items()}
    ours = medians["ours (sha256 verified)"]
    print(f"{'client':<24}{'median s':>10}{'MB/s':>10}{'min s':>9}{'max s':>9}")
    for name, values in times.items():
        print(
            f"{name:<24}{medians[name]:>10.3f}{size / medians[name] / 1e6:>10.0f}"
            f"{min(values):>9.3f}{max(values):>9.3f}"
        )
    vs_curl = medians["curl"] / ours
    vs_skopeo = medians["skopeo copy"] / ours
    print(f"ours (verified) vs curl:   {vs_curl:.2f}x curl's throughput (goal >= 0.5x)")
    print(f"ours (verified) vs skopeo: {vs_skopeo:.2f}x skopeo's throughput (goal >= 3x)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "bytes": size,
                    "seconds": times,
                    "medians": medians,
                    "ratio_vs_curl": vs_curl,
                    "ratio_vs_skopeo": vs_skopeo,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
