"""bench/pull_chunks: how the transport reads a blob body, ``read1`` (before) vs ``read`` (now).

``read1`` returns what one recv gives: about 600 KiB on plain HTTP here, but a single 16 KiB
record over TLS, so a 64 MiB blob came as 4096 chunks, each through httpx, the size check and
the hash call. ``read`` fills every 1 MiB chunk in C. Rounds alternate curl (the yardstick,
HTTP/1.1, 3 blobs at a time to /dev/null) and our verified pull with each way of reading; we
report medians of wall time and of the CPU seconds each spent (ours: this process; curl: the
child), since a busy machine moves wall time more than CPU time.

    .venv/bin/python bench/pull_chunks.py --sandbox-dir DIR [--rounds 7]
"""

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from pull import PARALLEL, Target, run_curl, write_secrets

from chaosregistry import sandbox
from chaosregistry.oci import ImageReference, RegistryClient, pull
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.transport import CHUNK_SIZE, _Body

FILLED = _Body.__iter__


def one_recv_per_chunk(self: _Body) -> Iterator[bytes]:
    """The transport's body loop before: ``read1``, as many chunks as recv calls."""
    read = self._response.read1
    while chunk := read(CHUNK_SIZE):
        yield chunk
    if self._response.length not in (None, 0):
        raise httpx.RemoteProtocolError("peer closed connection before the whole body")


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ours(target: Target, body_loop: Callable[[_Body], Iterator[bytes]]) -> None:
    _Body.__iter__ = body_loop  # type: ignore[method-assign]
    try:
        with RegistryClient(target.url, credentials=target.creds, verify=target.ca_file) as c:
            image = ImageReference(target.image["repository"], target.image["tag"])
            result = pull(c, image, concurrency=PARALLEL, verify=True)
        if not result.ok:
            raise SystemExit(f"our pull failed: {result.error}")
    finally:
        _Body.__iter__ = FILLED  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    endpoints = sandbox.load_endpoints(args.sandbox_dir)
    secret = json.loads(Path(endpoints["credentials_file"]).read_text())
    creds = Credentials(secret["username"], secret["password"])
    catalog = json.loads(Path(endpoints["catalog_file"]).read_text())
    image = max(catalog, key=lambda entry: entry["total_bytes"])
    work = Path(tempfile.mkdtemp(prefix="bench-pull-chunks-"))
    try:
        write_secrets(work, creds, [])
        run_rounds(endpoints, image, creds, work, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # curl's config holds the password
    return 0


def run_rounds(
    endpoints: dict[str, Any], image: dict[str, Any], creds: Credentials, work: Path, rounds: int
) -> None:
    for key in ("registry_direct", "registry_http"):
        target = Target(endpoints[key], image, creds, str(endpoints["ca_file"]), work, work)
        cases: dict[str, Callable[[], object]] = {
            "curl --http1.1, /dev/null": lambda t=target: run_curl(t, "--http1.1"),
            "ours verified, read1 (before)": lambda t=target: ours(t, one_recv_per_chunk),
            "ours verified, read (now)": lambda t=target: ours(t, FILLED),
        }
        wall: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for round_ in range(rounds + 1):  # round 0 warms up
            for name, run in cases.items():
                started, spent = time.perf_counter(), cpu_seconds()
                run()
                if round_:
                    wall[name].append(time.perf_counter() - started)
                    cpu[name].append(cpu_seconds() - spent)
        curl = statistics.median(wall["curl --http1.1, /dev/null"])
        print(f"\n{key} ({endpoints[key]}), {rounds} rounds")
        print(f"{'client':<32}{'median s':>9}{'MB/s':>7}{'x curl':>8}{'CPU s':>7}")
        for name in cases:
            median = statistics.median(wall[name])
            print(
                f"{name:<32}{median:>9.3f}{image['total_bytes'] / median / 1e6:>7.0f}"
                f"{curl / median:>7.2f}x{statistics.median(cpu[name]):>7.3f}"
            )


if __name__ == "__main__":
    sys.exit(main())
