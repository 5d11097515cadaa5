"""bench/pull: our verified pull vs curl, skopeo and crane, over TLS and plain HTTP, h1 and h2.

Bulk: the sandbox's biggest image (``big/blob``, 3 x 64 MiB layers + config). Each round runs
every contender in turn (A B C ... A B C ...), so a noisy machine slows them alike; we report
medians and ratios of medians to curl (HTTP/1.1, /dev/null) on the same scheme. TLS rows pull
from ``registry_direct`` (nginx HTTPS, no Toxiproxy hop, which would cap throughput); plain rows
from ``registry_http`` (the same nginx and replicas over HTTP/1.1). The HTTP version each
contender actually used is read from nginx's access log, not assumed.

Small requests: manifest GETs and HEADs per second, HTTP/1.1 vs HTTP/2, one thread (one
connection, latency-bound) and 8 threads (8 connections for h1, one multiplexed for h2), on
``registry_direct`` (basic auth: the registry checks the bcrypt password on every request) and
``token_registry`` (a bearer token fetched once and reused).

Goals (issue 2): ours (sha256 verified) >= 0.6x curl over TLS, >= 0.55x on plain HTTP, ahead
of crane and skopeo on both. Issue 23: ours h2 (libcurl, the ``http2=True`` default) verified
>= 0.6x curl --http2, and our h1/h2 time ratio within 15% of curl's; httpx's own h2 is kept as
a row for comparison.

    .venv/bin/python bench/pull.py [--sandbox-dir DIR] [--rounds 5] [--json FILE] [--tls-only]

Without --sandbox-dir a temporary sandbox is started and stopped.
"""

import argparse
import base64
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from chaosregistry import sandbox
from chaosregistry.oci import ImageReference, RegistryClient, pull
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.client import tls_context
from chaosregistry.oci.protocol import manifest_request
from chaosregistry.oci.transport import PerThreadTransport
from chaosregistry.osutil.identity import group_members, proc_stat
from chaosregistry.sandbox.layout import Layout
from chaosregistry.sandbox.processes import recorded_pid

CRANE = Path(
    os.environ.get(
        "CHAOSREGISTRY_CRANE",
        Path.home() / ".cache/chaostoolkit-registry/crane-0.22.1/crane",
    )
)
PARALLEL = 3  # blobs at once for curl and ours, as dockerd pulls
SMALL_THREADS = 8


class ContenderFailed(Exception):
    """A pull that did not complete: counted and reported, its time left out of the medians."""


@dataclass
class Target:
    """One endpoint of the sandbox and what every contender needs to pull from it."""

    url: str
    image: dict[str, Any]
    creds: Credentials
    ca_file: str
    secrets: Path  # a 0700 directory: curl's config, a docker config.json for crane and skopeo
    scratch: Path  # where crane and skopeo write the image (tmpfs when there is one)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    @property
    def tls(self) -> bool:
        return self.url.startswith("https:")

    def blobs(self) -> list[dict[str, Any]]:
        platform = self.image["platforms"][0]
        return [platform["config"], *platform["layers"]]

    def blob_url(self, blob: dict[str, Any]) -> str:
        return f"{self.url}/v2/{self.image['repository']}/blobs/{blob['digest']}"


def write_secrets(directory: Path, creds: Credentials, hosts: list[str]) -> None:
    """Credentials in files, never on a command line (which ps and logs would show)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    quoted = f"{creds.username}:{creds.password}".replace("\\", "\\\\").replace('"', '\\"')
    curl_config = directory / "curl.conf"
    curl_config.touch(mode=0o600)
    curl_config.write_text(f'user = "{quoted}"\n')
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    docker_config = directory / "config.json"  # DOCKER_CONFIG for crane, --authfile for skopeo
    docker_config.touch(mode=0o600)
    docker_config.write_text(json.dumps({"auths": {host: {"auth": token} for host in hosts}}))
    # skopeo reads every *.crt of a directory as a CA and wants a .cert beside any .key, so the
    # sandbox's pki directory cannot be given as is.
    (directory / "certs").mkdir(exist_ok=True)


# -- bulk contenders: each returns the seconds one whole pull took ---------------------------
def run_curl(target: Target, http: str) -> float:
    """curl, every blob to /dev/null, 3 at a time: 3 connections in h1, multiplexed on one in h2."""
    argv = [
        "curl",
        "-K",
        str(target.secrets / "curl.conf"),
        "-sf",
        "--no-progress-meter",
        http,
        "--parallel",
        "--parallel-max",
        str(PARALLEL),
        "--cacert",
        target.ca_file,
    ]
    for blob in target.blobs():
        argv += ["-o", "/dev/null", target.blob_url(blob)]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_curl_sha256(target: Target) -> float:
    """``curl | openssl dgst -sha256`` for every blob at once (the config is 1 KiB), digests
    checked: curl with the verification ours does. OpenSSL, not coreutils' ``sha256sum``: Debian's
    sha256sum hashes at ~180 MB/s here, OpenSSL (and hashlib, which is OpenSSL) at 1.0-1.2 GB/s."""
    started = time.perf_counter()
    pipelines = []
    for blob in target.blobs():
        argv = ["curl", "-K", str(target.secrets / "curl.conf"), "-sf", "--http1.1"]
        argv += ["--cacert", target.ca_file, target.blob_url(blob)]
        fetch = subprocess.Popen(argv, stdout=subprocess.PIPE)
        digest = subprocess.Popen(
            ["openssl", "dgst", "-sha256", "-r"], stdin=fetch.stdout, stdout=subprocess.PIPE
        )
        assert fetch.stdout is not None
        fetch.stdout.close()  # openssl holds the pipe now
        pipelines.append((blob, fetch, digest))
    for blob, fetch, digest in pipelines:
        out, _ = digest.communicate()
        if fetch.wait() != 0 or "sha256:" + out.split()[0].decode() != blob["digest"]:
            raise ContenderFailed(f"curl | openssl: {blob['digest']} failed or did not match")
    return time.perf_counter() - started


def httpx_h2(ca_file: str) -> httpx.BaseTransport:
    """httpx's own HTTP/2 (httpcore + h2), one connection per thread: the h2 before issue 23."""
    context = tls_context(ca_file)
    return PerThreadTransport(lambda: httpx.HTTPTransport(verify=context, http2=True))


def run_ours(target: Target, *, verify: bool, http2: bool, httpx_h2_stack: bool = False) -> float:
    started = time.perf_counter()
    transport = httpx_h2(target.ca_file) if httpx_h2_stack else None
    with RegistryClient(
        target.url,
        credentials=target.creds,
        verify=target.ca_file,
        http2=http2,
        transport=transport,
    ) as client:
        result = pull(
            client,
            ImageReference(target.image["repository"], target.image["tag"]),
            concurrency=PARALLEL,
            verify=verify,
        )
    if not result.ok:
        raise ContenderFailed(f"our pull failed: {result.error}")
    return time.perf_counter() - started


def run_skopeo(target: Target) -> float:
    dest = target.scratch / "skopeo"
    shutil.rmtree(dest, ignore_errors=True)
    certs = target.secrets / "certs"
    shutil.copyfile(target.ca_file, certs / "ca.crt")
    tls = f"--src-cert-dir={certs}" if target.tls else "--src-tls-verify=false"
    argv = ["skopeo", "copy", "-q", tls, f"--authfile={target.secrets / 'config.json'}"]
    argv += [f"docker://{target.host}/{target.image['repository']}:{target.image['tag']}"]
    argv += [f"dir:{dest}"]
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest, ignore_errors=True)
    return elapsed


def run_crane(target: Target) -> float:
    dest = target.scratch / "crane"
    shutil.rmtree(dest, ignore_errors=True)
    # Go reads SSL_CERT_FILE as the roots; crane reads credentials from $DOCKER_CONFIG.
    env = {**os.environ, "DOCKER_CONFIG": str(target.secrets), "SSL_CERT_FILE": target.ca_file}
    argv = [str(CRANE), "pull", "--format=oci", *([] if target.tls else ["--insecure"])]
    argv += [f"{target.host}/{target.image['repository']}:{target.image['tag']}", str(dest)]
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=env)
    elapsed = time.perf_counter() - started
    shutil.rmtree(dest, ignore_errors=True)
    return elapsed


def bulk_contenders(target: Target) -> dict[str, Callable[[], float]]:
    contenders: dict[str, Callable[[], float]] = {
        "curl --http1.1, /dev/null": lambda: run_curl(target, "--http1.1"),
        "curl --http1.1 | openssl sha256": lambda: run_curl_sha256(target),
        "ours h1, sha256 verified": lambda: run_ours(target, verify=True, http2=False),
        "ours h1, no verification": lambda: run_ours(target, verify=False, http2=False),
    }
    if target.tls:  # the plain nginx server speaks HTTP/1.1 only (no h2c)
        contenders["curl --http2, /dev/null"] = lambda: run_curl(target, "--http2")
        contenders["ours h2, sha256 verified"] = lambda: run_ours(target, verify=True, http2=True)
        contenders["ours h2, no verification"] = lambda: run_ours(target, verify=False, http2=True)
        contenders["ours h2 httpx, verified"] = lambda: run_ours(
            target, verify=True, http2=True, httpx_h2_stack=True
        )
    contenders["skopeo copy (dir:)"] = lambda: run_skopeo(target)
    if CRANE.exists():
        contenders["crane pull (oci layout)"] = lambda: run_crane(target)
    return contenders


class AccessLog:
    """nginx's access log: which HTTP version the blob GETs since ``mark()`` came over."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def mark(self) -> None:
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def blob_protocols(self) -> str:
        with self.path.open("rb") as log:
            log.seek(self._offset)
            lines = log.read().decode(errors="replace").splitlines()
        seen = {
            line.split('"')[1].rsplit(" ", 1)[-1]
            for line in lines
            if "/blobs/sha256:" in line and line.count('"') >= 2
        }
        return "+".join(sorted(seen)) or "?"


def client_cpu_seconds() -> float:
    """CPU time of this process (ours runs in it) and of its waited-for children (the tools).

    A second figure beside wall time: on a shared 2-core machine, wall time moves with the
    neighbours' load, the CPU a client spends per pull much less."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def server_pids(run_dir: Path) -> list[int]:
    """The processes that serve a blob: nginx (master and workers) and the two replicas."""
    layout = Layout.at(run_dir)
    pgids = [recorded_pid(layout, name) for name in ("nginx", "registry-1", "registry-2")]
    return [pid for pgid in pgids if pgid is not None for pid in group_members(pgid)]


def server_cpu_seconds(pids: list[int]) -> float:
    """CPU time the sandbox's serving processes have spent so far. With the client's, it tells
    what one pull costs the machine: on 2 shared cores wall time follows that sum."""
    return sum(stat.cpu_seconds for pid in pids if (stat := proc_stat(pid)) is not None)


@dataclass
class Section:
    title: str
    unit: str
    rows: dict[str, list[float]] = field(default_factory=dict)
    protocols: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    server: list[int] = field(default_factory=list)  # pids whose CPU per run is counted too
    server_cpu: dict[str, list[float]] = field(default_factory=dict)

    def attempt(self, name: str, run: Callable[[], float]) -> None:
        # The server's counters are read outside the client's, so reading them costs ours nothing.
        served = server_cpu_seconds(self.server)
        spent = client_cpu_seconds()
        try:
            self.rows[name].append(run())
        except (ContenderFailed, subprocess.CalledProcessError) as exc:
            self.failures[name].append(str(exc))
            return
        self.cpu.setdefault(name, []).append(client_cpu_seconds() - spent)
        self.server_cpu.setdefault(name, []).append(server_cpu_seconds(self.server) - served)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(v) if v else float("nan") for name, v in self.rows.items()}


def measure_bulk(
    target: Target, rounds: int, log: AccessLog, title: str, server: list[int]
) -> tuple[Section, list[str]]:
    contenders = bulk_contenders(target)
    section = Section(title, "s", server=server)
    for name, run in contenders.items():  # warm-up: page cache, connections; and the protocol
        section.rows[name], section.failures[name] = [], []
        log.mark()
        section.attempt(name, run)
        section.protocols[name] = log.blob_protocols()
        section.rows[name].clear()
        section.cpu.pop(name, None)
        section.server_cpu.pop(name, None)
    for _ in range(rounds):
        for name, run in contenders.items():
            section.attempt(name, run)
    return section, list(contenders)


# -- small requests ---------------------------------------------------------------------------
def small_rate(
    url: str, creds: Credentials, ca_file: str, *, http2: bool, head: bool, threads: int, s: float
) -> tuple[float, int, str]:
    """Manifest requests per second for ``s`` seconds from ``threads`` threads sharing one
    client, and how many of them failed (counted in the rate too)."""
    request = manifest_request("big/blob", "latest")
    if head:
        request = replace(request, method="HEAD", what="HEAD manifest big/blob:latest")
    with RegistryClient(url, credentials=creds, verify=ca_file, http2=http2) as client:
        client.get_manifest("big/blob", "latest")  # connection, token
        counts = [0] * threads
        failed = [0] * threads
        deadline = time.perf_counter() + s

        def work(index: int) -> None:
            while time.perf_counter() < deadline:
                try:
                    if head:
                        # No public HEAD of a manifest: the exchange is what a HEAD would use.
                        client._exchange(request, "big/blob")
                    else:
                        client.get_manifest("big/blob", "latest")
                except Exception:
                    # A PullError is a classified failure; anything else (KeyError and
                    # RuntimeError from httpcore's HTTP/2 state under threads) would kill the
                    # thread silently and under-count.
                    failed[index] += 1
                counts[index] += 1

        started = time.perf_counter()
        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return sum(counts) / (time.perf_counter() - started), sum(failed), client.http_version


def measure_small(
    endpoints: dict[str, Any], creds: Credentials, rounds: int, seconds: float
) -> list[Section]:
    sections = []
    for key in ("registry_direct", "token_registry"):
        section = Section(f"small requests, {key} ({endpoints[key]})", "req/s")
        cases = {
            f"{verb} x{threads} thread{'s' if threads > 1 else ''}, {proto}": (h2, verb, threads)
            for verb, threads in (("GET", 1), ("HEAD", 1), ("GET", SMALL_THREADS))
            for proto, h2 in (("h1", False), ("h2", True))
        }
        for name in cases:
            section.rows[name], section.failures[name] = [], []
        for _ in range(rounds):
            for name, (h2, verb, threads) in cases.items():
                rate, failed, version = small_rate(
                    endpoints[key],
                    creds,
                    endpoints["ca_file"],
                    http2=h2,
                    head=verb == "HEAD",
                    threads=threads,
                    s=seconds,
                )
                section.rows[name].append(rate)
                section.failures[name] += [f"{failed} requests failed"] if failed else []
                section.protocols[name] = version
        sections.append(section)
    return sections


# -- report -----------------------------------------------------------------------------------
def print_bulk(section: Section, size: int, baseline: str) -> dict[str, Any]:
    medians = section.medians()
    print(f"\n{section.title}")
    header = f"{'client':<32}{'proto':>10}{'median s':>10}{'MB/s':>7}{'x curl':>8}{'spread':>8}"
    print(header + f"{'CPU s':>7}{'server CPU s':>13}{'failed':>7}")
    figures = {}
    for name, values in section.rows.items():
        failures = section.failures[name]
        if not values:
            print(f"{name:<32}{section.protocols[name]:>10}  every run failed: {failures[0]}")
            continue
        ratio = medians[baseline] / medians[name]
        spread = (max(values) - min(values)) / medians[name]
        print(
            f"{name:<32}{section.protocols[name]:>10}{medians[name]:>10.3f}"
            f"{size / medians[name] / 1e6:>7.0f}{ratio:>7.2f}x{spread:>7.0%}"
            f"{statistics.median(section.cpu[name]):>7.3f}"
            f"{statistics.median(section.server_cpu[name]):>13.3f}{len(failures):>7}"
        )
        figures[name] = {
            "protocol": section.protocols[name],
            "seconds": values,
            "median_s": medians[name],
            "mb_per_s": size / medians[name] / 1e6,
            "x_curl": ratio,
            "client_cpu_s": section.cpu[name],
            "server_cpu_s": section.server_cpu[name],
            "failures": failures,
        }
    return figures


def print_h1_h2(section: Section) -> dict[str, Any]:
    """Time over h2 / time over h1, ours (verified) beside curl's (/dev/null): the h1-vs-h2
    answer a user reads off our probes should be the one curl gives (goal: within 15%)."""
    medians = section.medians()
    pairs = {
        "curl": ("curl --http1.1, /dev/null", "curl --http2, /dev/null"),
        "ours": ("ours h1, sha256 verified", "ours h2, sha256 verified"),
    }
    if not all(name in medians for pair in pairs.values() for name in pair):
        return {}
    ratios = {who: medians[h2] / medians[h1] for who, (h1, h2) in pairs.items()}
    off = ratios["ours"] / ratios["curl"] - 1
    versus_curl_h2 = medians[pairs["curl"][1]] / medians[pairs["ours"][1]]
    print(
        f"ours h2 verified {versus_curl_h2:.2f}x curl --http2 (goal >= 0.6x); "
        f"h2/h1 time: ours {ratios['ours']:.2f}, curl {ratios['curl']:.2f} "
        f"(ours {off:+.0%} off curl's; goal within 15%)"
    )
    return {"h2_over_h1": ratios, "ours_h2_x_curl_h2": versus_curl_h2}


def print_small(section: Section) -> dict[str, Any]:
    medians = section.medians()
    print(f"\n{section.title}")
    print(f"{'requests':<26}{'proto':>10}{'median req/s':>14}{'spread':>8}{'h2/h1':>7}  failed")
    figures = {}
    for name, values in section.rows.items():
        h1 = medians[name.replace(", h2", ", h1")]
        spread = (max(values) - min(values)) / medians[name]
        ratio = f"{medians[name] / h1:.2f}" if name.endswith("h2") else ""
        failures = "; ".join(section.failures[name])
        print(
            f"{name:<26}{section.protocols[name]:>10}{medians[name]:>14.0f}{spread:>7.0%}"
            f"{ratio:>7}  {failures}"
        )
        figures[name] = {
            "protocol": section.protocols[name],
            "per_s": values,
            "failures": section.failures[name],
        }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", type=Path)
    parser.add_argument("--base-port", type=int, help="for the temporary sandbox")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--small-seconds", type=float, default=1.0, help="per small-request run")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--tls-only", action="store_true", help="only the TLS bulk rows (h1 and h2 side by side)"
    )
    args = parser.parse_args()

    owned = args.sandbox_dir is None
    run_dir = args.sandbox_dir or Path(tempfile.mkdtemp(prefix="bench-pull-"))
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="bench-pull-", dir=shm if shm.is_dir() else None))
    load_before = os.getloadavg()
    try:
        if owned:
            port = {"base_port": args.base_port} if args.base_port else {}
            endpoints = sandbox.up(run_dir, **port)
        else:
            endpoints = sandbox.load_endpoints(run_dir)
        secret = json.loads(Path(endpoints["credentials_file"]).read_text())
        creds = Credentials(secret["username"], secret["password"])
        catalog = json.loads(Path(endpoints["catalog_file"]).read_text())
        image = max(catalog, key=lambda entry: entry["total_bytes"])
        size = image["total_bytes"]
        keys = ("registry_direct", "registry_http")
        write_secrets(work / "secrets", creds, [endpoints[k].split("://")[1] for k in keys])
        log = AccessLog(Path(endpoints["run_dir"]) / "logs" / "nginx-access.log")
        server = server_pids(Path(endpoints["run_dir"]))
        print(
            f"image {image['repository']}:{image['tag']}, {size / 2**20:.0f} MiB, "
            f"{len(image['platforms'][0]['layers'])} layers, {args.rounds} rounds",
            file=sys.stderr,
        )
        bulk = []
        schemes = (("registry_direct", "TLS"), ("registry_http", "plain HTTP"))
        for key, label in schemes[:1] if args.tls_only else schemes:
            target = Target(
                endpoints[key], image, creds, str(endpoints["ca_file"]), work / "secrets", work
            )
            title = f"{label}, {key} ({endpoints[key]}), {size / 2**20:.0f} MiB"
            bulk.append(measure_bulk(target, args.rounds, log, title, server))
        small = (
            []
            if args.tls_only
            else measure_small(endpoints, creds, args.rounds, args.small_seconds)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if owned:
            sandbox.down(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
    load_after = os.getloadavg()

    report: dict[str, Any] = {"bytes": size, "load_before": load_before, "load_after": load_after}
    for section, names in bulk:
        report[section.title] = print_bulk(section, size, names[0])
        report[section.title].update(print_h1_h2(section))
    for section in small:
        report[section.title] = print_small(section)
    print(
        f"\nload average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        "spread = (max - min) / median over the rounds; CPU s = the client's own CPU per pull, "
        "server CPU s = nginx's and the registry replicas' per pull"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
