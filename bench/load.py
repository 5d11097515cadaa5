"""bench/load: pulls per CPU-second of our Locust user vs a plain FastHttpUser, and the knee.

Part 1, request overhead. Both contenders pull the same small image (``tiny/hello`` by digest,
two blobs) from the same endpoint with the same users, Locust pinned to core 0, in turns
(A B A B ...) so a noisy machine slows both alike. The default endpoint, ``static``, is an
nginx of the bench's own on core 1 serving that image's exact bytes at its registry paths, so
Locust, not the server, is the bottleneck (the sandbox checks a bcrypt password on every
request and saturates first: ``--endpoint registry`` (HTTPS), ``registry_http`` or
``mirror_direct`` measures it instead). ``static-https`` is the same nginx over TLS with the
sandbox's server certificate (ours verifies it with the sandbox's CA; the plain FastHttpUser,
as Locust ships it, does not verify).
A measurement plugin (bench/load_meter.py, loaded identically into both) counts whole pulls
and the Locust process's CPU seconds over the steady part of each run: pulls per CPU-second
is pulls per second per core. We report medians and ours / baseline (goal >= 0.9x). "Ours" is
chaosregistry/loadgen/locustfile.py as the runner starts it:
auth learnt once, manifest parsed and platform checked, blobs fetched concurrently with size
and sha256 checks, a PULL event and an exact record per pull. The baseline
(bench/load_baseline.py) is told the blob digests and fetches them one by one, checking nothing.
A third contender, ours with ``--blob-concurrency 1``, shows what fetching blobs concurrently
(a second connection in flight per user) costs on its own; a fourth, ours with ``--sli-sink``
(each pull reported to the sandbox's SLI exporter, as a game day's load does), what that
costs: ours reporting SLIs / ours (goal 1.0x within noise, issue 13).

Part 2, the sandbox's saturation point. Our load through the real runner (start_pull_load's
code path) against the sandbox's client-facing registry (Toxiproxy hop, nginx, basic auth, two
replicas), with 1, 2, 4, ... users; pulls per second from the exact records with the first
second (ramp-up) left out. The knee is the fewest users that reach 90% of the best pulls/s:
past it, more users only add latency.

    .venv/bin/python bench/load.py [--sandbox-dir DIR] [--rounds 3] [--seconds 10] \\
        [--users 32] [--endpoint static|static-https|registry|registry_http] \\
        [--steps 1,2,4,8,16,32,64] [--skip-saturation] [--json FILE]

Without --sandbox-dir a temporary sandbox is started and stopped.
"""

import argparse
import contextlib
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from chaosregistry import sandbox
from chaosregistry.experiment.settings import settings_for
from chaosregistry.loadgen import records
from chaosregistry.loadgen.command import LOCUSTFILE
from chaosregistry.loadgen.launch import start_load
from chaosregistry.loadgen.parameters import LoadParameters
from chaosregistry.loadgen.store import find_load
from chaosregistry.sandbox.content import RECIPES, build_image

BENCH = Path(__file__).resolve().parent
BASELINE = BENCH / "load_baseline.py"
METER = BENCH / "load_meter.py"
WARMUP = 2.0


def locust_run(
    locustfile: Path,
    host: str,
    users: int,
    seconds: float,
    work: Path,
    extra: list[str],
    env: dict[str, str],
) -> dict[str, Any]:
    """One headless Locust run on core 0 with the meter; returns the meter's figures."""
    meter = work / f"meter-{time.monotonic_ns()}.json"
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    command = [
        *pin, sys.executable, "-m", "locust",
        "-f", f"{locustfile},{METER}",
        "--headless", "-u", str(users), "-r", str(users), "-t", f"{int(seconds)}s",
        "--host", host, "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
        *extra,
    ]  # fmt: skip
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")},
        **env,
        "BENCH_METER_FILE": str(meter),
        "BENCH_WARMUP": str(WARMUP),
    }
    with open(work / "locust.log", "ab") as log:
        subprocess.run(command, env=environment, check=True, stdout=log, stderr=log, cwd=work)
    result: dict[str, Any] = json.loads(meter.read_text())
    failed = {key: n for key, n in result["counts"].items() if key.startswith("FAILED ")}
    if failed:
        raise SystemExit(f"{locustfile.name}: requests failed during the run: {failed}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


NGINX_CONF = """
worker_processes 1;
error_log {work}/nginx-error.log;
pid {work}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port}{tls};
        root {root};
        location = /v2/ {{ default_type application/json; return 200 "{{}}"; }}
        location ~ /manifests/ {{ default_type {media_type}; }}
        location /v2/ {{ default_type application/octet-stream; }}
    }}
}}
"""


@contextlib.contextmanager
def static_registry(work: Path, pki: Path | None = None) -> Iterator[str]:
    """An nginx on core 1 serving tiny/hello's manifest and blobs at their registry paths;
    over HTTPS with the sandbox's server certificate when given its ``pki`` directory."""
    recipe = next(r for r in RECIPES if r.repository == "tiny/hello")
    image = build_image(recipe)
    root = work / "static"
    work.chmod(0o755)  # nginx's workers run as an unprivileged user and must read the files
    repository = root / "v2" / recipe.repository
    (repository / "manifests").mkdir(parents=True)
    (repository / "blobs").mkdir(parents=True)
    (repository / "manifests" / image.top.digest).write_bytes(image.top.data)
    platform = image.platforms[0]
    for blob in (platform.config, *(layer.blob for layer in platform.layers)):
        (repository / "blobs" / blob.digest).write_bytes(blob.data)
    port = free_port()
    conf = work / "nginx.conf"
    tls = (
        f" ssl; ssl_certificate {pki / 'sandbox-server.crt'};"
        f" ssl_certificate_key {pki / 'sandbox-server.key'}"
        if pki
        else ""
    )
    conf.write_text(
        NGINX_CONF.format(work=work, port=port, tls=tls, root=root, media_type=image.top.media_type)
    )
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    nginx = subprocess.Popen(
        [*pin, "/usr/sbin/nginx", "-p", str(work), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"{'https' if pki else 'http'}://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(pki / "ca.crt")) if pki else True
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v2/", timeout=1.0, verify=verify).status_code == 200:
                    break
            if time.monotonic() > deadline or nginx.poll() is not None:
                raise SystemExit(
                    "the static nginx did not start: " + _tail(work / "nginx-error.log")
                )
            time.sleep(0.05)
        yield url
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-1]
    except (OSError, IndexError):
        return "no log"


def overhead_part(
    args: argparse.Namespace, endpoints: dict[str, Any], work: Path
) -> dict[str, Any]:
    catalog = json.loads(Path(endpoints["catalog_file"]).read_text())
    image = next(e for e in catalog if (e["repository"], e["tag"]) == ("tiny/hello", "latest"))
    platform = image["platforms"][0]
    blobs = [platform["config"]["digest"], *(layer["digest"] for layer in platform["layers"])]
    with contextlib.ExitStack() as stack:
        if args.endpoint == "static":
            host = stack.enter_context(static_registry(work))
        elif args.endpoint == "static-https":
            pki = Path(endpoints["ca_file"]).parent
            host = stack.enter_context(static_registry(work, pki))
        else:
            host = endpoints[args.endpoint]
        return _overhead(args, endpoints, work, image, blobs, host)


def _overhead(
    args: argparse.Namespace,
    endpoints: dict[str, Any],
    work: Path,
    image: dict[str, Any],
    blobs: list[str],
    host: str,
) -> dict[str, Any]:
    credentials = endpoints["credentials_file"]
    # The sandbox's CA, for an HTTPS endpoint of it (the static baseline is plain HTTP).
    ca = str(endpoints["ca_file"]) if host.startswith("https:") else ""
    # The baseline sends credentials only where the endpoint asks for them.
    needs_auth = (
        httpx.get(
            f"{host}/v2/", timeout=5.0, verify=ssl.create_default_context(cafile=ca) if ca else True
        ).status_code
        == 401
    )
    reference = f"{image['repository']}@{image['digest']}"
    print(
        f"part 1: {reference} ({image['total_bytes']} bytes, {len(blobs)} blobs) from "
        f"{args.endpoint} {host}, {args.users} users, {args.seconds:g}s x {args.rounds} rounds "
        f"each, Locust on core 0",
        file=sys.stderr,
    )
    ours_arguments = [
        "--images", reference, "--credentials-file", credentials,
        "--records-dir", str(work / "pulls"), *(["--tls-verify", ca] if ca else []),
    ]  # fmt: skip
    contenders = {
        "ours": lambda: locust_run(
            LOCUSTFILE, host, args.users, args.seconds, work, ours_arguments, {}
        ),
        "plain FastHttpUser": lambda: locust_run(
            BASELINE, host, args.users, args.seconds, work, [],
            {"BENCH_REPOSITORY": image["repository"], "BENCH_REFERENCE": image["digest"],
             "BENCH_BLOBS": ",".join(blobs),
             "BENCH_CREDENTIALS_FILE": credentials if needs_auth else ""},
        ),
        "ours, blobs one by one": lambda: locust_run(
            LOCUSTFILE, host, args.users, args.seconds, work,
            [*ours_arguments, "--blob-concurrency", "1"], {},
        ),
        # Each pull also reported to the sandbox's SLI exporter (chaosregistry.observability.sli),
        # as a game day's load does.
        "ours, reporting SLIs": lambda: locust_run(
            LOCUSTFILE, host, args.users, args.seconds, work,
            [*ours_arguments, "--sli-sink", endpoints["sli_sink"]], {},
        ),
    }  # fmt: skip

    def pulls(name: str, meter: dict[str, Any]) -> float:
        counts = meter["counts"]
        if name.startswith("ours"):
            return float(sum(n for key, n in counts.items() if key.startswith("PULL ")))
        return counts.get("GET /v2/[name]/blobs/[digest]", 0) / len(blobs)

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            meter = run()
            count = pulls(name, meter)
            runs[name].append(
                {
                    "pulls": count,
                    "seconds": meter["seconds"],
                    "cpu": meter["cpu"],
                    "pulls_per_second": count / meter["seconds"],
                    "pulls_per_cpu_second": count / meter["cpu"],
                }
            )
    medians = {
        name: {
            key: statistics.median(run[key] for run in values)
            for key in ("pulls_per_second", "pulls_per_cpu_second", "cpu", "seconds")
        }
        for name, values in runs.items()
    }
    baseline = medians["plain FastHttpUser"]["pulls_per_cpu_second"]
    ratio = medians["ours"]["pulls_per_cpu_second"] / baseline
    ratio_sequential = medians["ours, blobs one by one"]["pulls_per_cpu_second"] / baseline
    ratio_sli = (
        medians["ours, reporting SLIs"]["pulls_per_cpu_second"]
        / medians["ours"]["pulls_per_cpu_second"]
    )
    return {
        "image": reference,
        "bytes": image["total_bytes"],
        "endpoint": args.endpoint,
        "users": args.users,
        "runs": runs,
        "medians": medians,
        "ratio": ratio,
        "ratio_blobs_one_by_one": ratio_sequential,
        "ratio_sli_over_ours": ratio_sli,
    }


def saturation_part(args: argparse.Namespace, run_dir: Path, work: Path) -> dict[str, Any]:
    configuration = {
        "sandbox_dir": str(run_dir),
        "ledger_dir": str(work / "ledger"),
        "load_dir": str(work / "loads"),
    }
    steps = [int(step) for step in args.steps.split(",")]
    print(
        f"part 2: tiny/hello:latest via registry (client-facing), users {steps}, "
        f"{args.seconds:g}s each",
        file=sys.stderr,
    )
    results = []
    for users in steps:
        parameters = LoadParameters.check(
            users=users, spawn_rate=1000.0, duration=args.seconds, processes=1,
            target="registry", mode="warm", platform="linux/amd64", verify=True,
            blob_concurrency=3, fresh_images=1,
        )  # fmt: skip
        settings = settings_for(configuration)
        started = start_load(parameters, ["tiny/hello:latest"], settings, None)
        load = find_load(started["load_id"], settings)
        while load.running():
            time.sleep(0.2)
            load = find_load(started["load_id"], settings)
        pulls = records.read_records(load.records_dir)
        first = pulls[0]["start"] if pulls else load.started_at
        end = max(p["end"] for p in pulls) if pulls else first
        summary = records.summarize_window(pulls, first + 1.0, end + 1e-9)
        results.append({"users": users, **{k: summary[k] for k in (
            "pulls_per_second", "p50", "p99", "failed", "pulls")}})  # fmt: skip
        print(
            f"  {users:>4} users: {summary['pulls_per_second']:8.1f} pulls/s  "
            f"p50 {1000 * (summary['p50'] or 0):7.1f} ms  "
            f"p99 {1000 * (summary['p99'] or 0):7.1f} ms  failed {summary['failed']}",
            file=sys.stderr,
        )
    best = max(result["pulls_per_second"] for result in results)
    knee = next(r for r in results if r["pulls_per_second"] >= 0.9 * best)
    return {"steps": results, "best_pulls_per_second": best, "knee": knee}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=32, help="part 1 users")
    parser.add_argument(
        "--endpoint",
        default="static",
        help="part 1: static, static-https (the sandbox's certificate), or an endpoints.json key",
    )
    parser.add_argument("--steps", default="1,2,4,8,16,32,64", help="part 2 user counts")
    parser.add_argument("--skip-saturation", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    owned = args.sandbox_dir is None
    run_dir = args.sandbox_dir or Path(tempfile.mkdtemp(prefix="bench-load-"))
    work = Path(tempfile.mkdtemp(prefix="bench-load-work-"))
    try:
        if owned:
            endpoints = sandbox.up(run_dir, base_port=sandbox.find_free_base_port())
        else:
            endpoints = sandbox.load_endpoints(run_dir)
        overhead = overhead_part(args, endpoints, work)
        saturation = None if args.skip_saturation else saturation_part(args, run_dir, work)
    finally:
        if owned:
            sandbox.down(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'Locust user':<24}{'pulls/s':>10}{'pulls/CPU-s':>13}{'CPU s':>8}{'runs':>6}")
    for name, median in overhead["medians"].items():
        print(
            f"{name:<24}{median['pulls_per_second']:>10.0f}{median['pulls_per_cpu_second']:>13.0f}"
            f"{median['cpu']:>8.2f}{len(overhead['runs'][name]):>6}"
        )
    print(
        f"ours / plain FastHttpUser, pulls per CPU-second: {overhead['ratio']:.2f}x (goal >= 0.9x)"
    )
    print(
        f"ours reporting SLIs / ours, pulls per CPU-second: "
        f"{overhead['ratio_sli_over_ours']:.2f}x (goal: 1.0x within noise)"
    )
    if saturation is not None:
        print(f"\n{'users':>6}{'pulls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
        for step in saturation["steps"]:
            print(
                f"{step['users']:>6}{step['pulls_per_second']:>10.1f}"
                f"{1000 * (step['p50'] or 0):>9.1f}{1000 * (step['p99'] or 0):>9.1f}"
                f"{step['failed']:>8}"
            )
        knee = saturation["knee"]
        print(
            f"knee: {knee['users']} users, {knee['pulls_per_second']:.0f} pulls/s "
            f"(best {saturation['best_pulls_per_second']:.0f} pulls/s)"
        )
    if args.json:
        args.json.write_text(json.dumps({"overhead": overhead, "saturation": saturation}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
