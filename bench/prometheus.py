"""bench/prometheus: what Prometheus scraping every second costs the pulls, and a pull's SLI cost.

Part 1: pull p50 with the sandbox's Prometheus scraping every second (every registry, the mirror,
the upstream and the SLI exporter, and evaluating the rules) against the same sandbox with
Prometheus frozen (SIGSTOP of its process group: no scrape, no rule evaluation, nothing else
changed). Rounds go in ABBA order (scraping, frozen, frozen, scraping, ...) so a machine whose
load drifts slows both alike; each round is ``--pulls`` sequential pulls of ``--image`` through
the client-registry hop with our verified client, reporting to the SLI exporter as the probes
do. Figures: the p50 of all pulls of each mode, and the median over pairs of neighbouring
rounds of their p50 ratio (less sensitive to drift). Goal (issue 13): <= 2 % slower.

Part 2: the SLI report's own cost: ``SliSink.pull`` (one formatted datagram, one ``sendto``)
timed over ``--sends`` calls against the running exporter: what each pull of the Locust user pays.

    .venv/bin/python bench/prometheus.py [--sandbox-dir DIR] [--rounds 8] [--pulls 40] [--json F]

Without --sandbox-dir a temporary sandbox is started and stopped.
"""

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chaosregistry import sandbox
from chaosregistry.observability.sli import SliSink
from chaosregistry.oci import ImageReference, RegistryClient, pull
from chaosregistry.oci.reference import Platform


def pull_round(endpoints: dict[str, Any], image: str, pulls: int) -> list[float]:
    creds = sandbox.load_credentials(endpoints["run_dir"])
    sink = SliSink(endpoints["sli_sink"])
    reference = ImageReference.parse(image)
    durations = []
    with RegistryClient(
        endpoints["registry"], credentials=creds, verify=endpoints["ca_file"], max_connections=3
    ) as client:
        for _ in range(pulls):
            result = pull(client, reference, platform=Platform.parse("linux/amd64"))
            if not result.ok:
                raise SystemExit(f"pull failed: {result.error}")
            sink.pull(
                result.registry,
                True,
                None,
                result.total_seconds,
                result.auth_seconds,
                result.manifest_seconds,
                result.blobs_seconds,
            )
            durations.append(result.total_seconds)
    sink.close()
    return durations


def sink_cost(endpoints: dict[str, Any], sends: int) -> float:
    """Seconds per ``SliSink.pull`` call."""
    sink = SliSink(endpoints["sli_sink"])
    started = time.perf_counter()
    for _ in range(sends):
        sink.pull(endpoints["registry"], True, None, 0.1234, 0.01, 0.02, 0.09)
    elapsed = time.perf_counter() - started
    sink.close()
    return elapsed / sends


def run(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    endpoints = sandbox.load_endpoints(run_dir)
    pull_round(endpoints, args.image, 5)  # warm: connections, caches, the first token
    samples: dict[str, list[float]] = {"scraping": [], "frozen": []}
    rounds: list[dict[str, Any]] = []
    try:
        for index in range(args.rounds):
            mode = "scraping" if index % 4 in (0, 3) else "frozen"
            if mode == "frozen":
                sandbox.stop_process(run_dir, "prometheus", signal.SIGSTOP)
            durations = pull_round(endpoints, args.image, args.pulls)
            if mode == "frozen":
                sandbox.stop_process(run_dir, "prometheus", signal.SIGCONT)
            samples[mode] += durations
            rounds.append({"mode": mode, "p50": statistics.median(durations)})
            print(f"round {index + 1} {mode:<9} p50 {statistics.median(durations):.4f} s")
    finally:
        sandbox.stop_process(run_dir, "prometheus", signal.SIGCONT)
    p50 = {mode: statistics.median(values) for mode, values in samples.items()}
    pairs = [
        (a["p50"] / b["p50"]) if a["mode"] == "scraping" else (b["p50"] / a["p50"])
        for a, b in zip(rounds[::2], rounds[1::2], strict=False)
    ]
    per_send = sink_cost(endpoints, args.sends)
    result = {
        "image": args.image,
        "pulls_per_mode": {mode: len(values) for mode, values in samples.items()},
        "p50": p50,
        "ratio_scraping_over_frozen": p50["scraping"] / p50["frozen"],
        "paired_ratio_median": statistics.median(pairs),
        "paired_ratios": pairs,
        "rounds": rounds,
        "sli_send_seconds": per_send,
    }
    print(
        f"p50 scraping {p50['scraping']:.4f} s, frozen {p50['frozen']:.4f} s: "
        f"{result['ratio_scraping_over_frozen']:.3f}x; paired rounds: median "
        f"{result['paired_ratio_median']:.3f}x (min {min(pairs):.3f}, max {max(pairs):.3f})"
    )
    print(f"SliSink.pull: {per_send * 1e6:.1f} us per pull ({args.sends} sends)")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--pulls", type=int, default=40)
    parser.add_argument("--sends", type=int, default=100_000)
    parser.add_argument("--image", default="shop/frontend:shop-prod-1.4.2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.sandbox_dir:
        result = run(args.sandbox_dir, args)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-prometheus-") as directory:
            sandbox.up(directory, base_port=sandbox.find_free_base_port())
            try:
                result = run(Path(directory), args)
            finally:
                sandbox.down(directory)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
