"""bench/faults: how fast a fault takes effect after its action returns, and how fast it is gone
after its undo returns, against the bare Toxiproxy API call as the baseline, side by side.

A probe thread sends back-to-back ``GET /v2/`` requests through the client-registry hop on one
keep-alive connection and records each request's start and duration. A request is "affected"
when it took >= 250 ms (300 ms latency fault) or timed out (partition). The lag to effect is
the start of the first affected request minus the moment the action returned (negative: the
fault was already in place before the action returned); the lag to gone is the start of the
first unaffected request after the undo returned. Goal (issue 4): <= 100 ms each.

    .venv/bin/python bench/faults.py [--sandbox-dir DIR] [--trials 10]
"""

import argparse
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from chaosregistry import sandbox
from chaosregistry.actions import network
from chaosregistry.sandbox.toxiproxy import Toxiproxy

AFFECTED_SECONDS = 0.25
PROBE_TIMEOUT = 0.5


class Probe:
    def __init__(self, url: str, ca_file: str) -> None:
        self.url = url
        self.ca_file = ca_file
        self.records: list[tuple[float, float]] = []  # (start, seconds; inf when it failed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(
            timeout=PROBE_TIMEOUT, verify=ssl.create_default_context(cafile=self.ca_file)
        ) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    client.get(self.url)
                    took = time.perf_counter() - start
                except httpx.HTTPError:
                    took = float("inf")
                self.records.append((start, took))

    def __enter__(self) -> "Probe":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def first(self, after: float, affected: bool, deadline: float = 5.0) -> float:
        """Start of the first request after ``after`` (minus a request's length of slack) that is
        (or is not) affected; waits for it up to ``deadline`` seconds."""
        limit = time.perf_counter() + deadline
        while time.perf_counter() < limit:
            for start, took in list(self.records):
                in_window = start >= (after - PROBE_TIMEOUT if affected else after)
                if in_window and (took >= AFFECTED_SECONDS) == affected:
                    return start - after
            time.sleep(0.01)
        raise SystemExit("the probe never saw the change")


def trial(
    probe: Probe, inject: Callable[[], Any], undo: Callable[[], Any]
) -> tuple[float, float, float, float]:
    time.sleep(0.3)  # a healthy stretch first
    started = time.perf_counter()
    inject()
    returned = time.perf_counter()
    on_lag = probe.first(returned, affected=True)
    time.sleep(0.3)
    undo_started = time.perf_counter()
    undo()
    undone = time.perf_counter()
    off_lag = probe.first(undone, affected=False)
    return returned - started, on_lag, undone - undo_started, off_lag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", type=Path)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    owned = args.sandbox_dir is None
    run_dir = args.sandbox_dir or Path(tempfile.mkdtemp(prefix="bench-faults-"))
    ledger_dir = Path(tempfile.mkdtemp(prefix="bench-faults-ledger-"))
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    try:
        endpoints = (
            sandbox.up(run_dir, seed_content=False) if owned else sandbox.load_endpoints(run_dir)
        )
        config = {"sandbox_dir": str(run_dir), "ledger_dir": str(ledger_dir)}
        api = Toxiproxy(endpoints["toxiproxy"])
        cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "latency: toxiproxy API (baseline)": (
                lambda: api.add_toxic(
                    "client-registry", name="bench", type="latency", attributes={"latency": 300}
                ),
                lambda: api.remove_toxic("client-registry", "bench"),
            ),
            "latency: add_latency (ledger)": (
                lambda: network.add_latency(latency_ms=300, duration=60, configuration=config),
                lambda: network.remove_network_faults(configuration=config),
            ),
            "partition: toxiproxy API (baseline)": (
                lambda: api.add_toxic(
                    "client-registry",
                    name="bench",
                    type="timeout",
                    stream="upstream",
                    attributes={"timeout": 0},
                ),
                lambda: api.remove_toxic("client-registry", "bench"),
            ),
            "partition: partition (ledger)": (
                lambda: network.partition(duration=60, configuration=config),
                lambda: network.remove_network_faults(configuration=config),
            ),
        }
        with Probe(endpoints["registry"] + "/v2/", endpoints["ca_file"]) as probe:
            for _ in range(args.trials):
                for name, (inject, undo) in cases.items():  # interleaved: A B A B ...
                    rows.setdefault(name, []).append(trial(probe, inject, undo))
    finally:
        if owned:
            sandbox.down(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(ledger_dir, ignore_errors=True)

    print(
        f"{'case':<38}{'call ms':>9}{'to effect':>11}{'undo ms':>9}{'to gone':>9}   (medians, ms)"
    )
    medians: dict[str, list[float]] = {}
    for name, values in rows.items():
        medians[name] = [statistics.median(v[i] for v in values) * 1000 for i in range(4)]
        m = medians[name]
        worst = max(max(v[1], v[3]) for v in values) * 1000
        print(
            f"{name:<38}{m[0]:>9.1f}{m[1]:>11.1f}{m[2]:>9.1f}{m[3]:>9.1f}   worst lag {worst:.1f}"
        )
    for kind in ("latency", "partition"):
        base = medians[f"{kind}: toxiproxy API (baseline)"]
        ours = next(v for k, v in medians.items() if k.startswith(kind) and "baseline" not in k)
        print(
            f"{kind}: action call {ours[0] / base[0]:.1f}x the bare API call; undo call "
            f"{ours[2] / base[2]:.1f}x (the ledger's fsyncs and verification)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
