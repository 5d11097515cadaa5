"""bench/rollout_watch: what our polling of a rollout costs the rollout it watches.

``push_to_running`` follows a release by polling the API server every ``delivery.POLL`` (0.2 s:
the Deployment, its ReplicaSets and the new pods), and ``rollout_time`` polls every 0.25 s. On
a single-node cluster sharing 2 cores with the kubelet, the API server and etcd, that polling
could slow the rollout it measures. This bench rolls the demo Deployment out to a fresh tag
(the same blobs under a new digest, as ``push_to_running`` pushes) in three modes:

- ``quiet``: nothing polls; the completion is seen through one watch of the Deployment (the
  API server pushes its changes; ``kubectl rollout status`` waits the same way);
- ``follow``: the same watch, plus ``delivery.follow`` polling as ``push_to_running`` does;
- ``probe``: the same watch, plus ``rollout_time``'s polling (``rollout._wait``).

Every mode times the rollout the same way, from the image patch to the first watch event that
shows it complete (``rollout.status_message``, kubectl's rule), so only the polling differs.
Rounds run in blocks ``quiet follow probe probe follow quiet`` so a drifting machine slows
every mode alike. Figures: each mode's median, and the median over blocks of each block's
``follow / quiet`` and ``probe / quiet`` (the mean of the mode's two rounds over the mean of
quiet's). Goal (issue 15): within 5 %.

    .venv/bin/python bench/rollout_watch.py --state-dir runs/cluster [--blocks 4] [--json F]

The cluster must be up (``chaosregistry cluster up --state-dir ...``); the demo Deployment is
put back on its original image at the end.
"""

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from lightkube.resources.apps_v1 import Deployment

from chaosregistry.cluster import admin_client
from chaosregistry.cluster.images import DEMO_REPOSITORY, DEMO_TAG, image_name
from chaosregistry.cluster.layout import DEMO_NAMESPACE, Layout
from chaosregistry.cluster.workloads import DEMO_NAME
from chaosregistry.experiment.settings import settings_for
from chaosregistry.kubernetes import delivery
from chaosregistry.kubernetes.rollout import status_message, with_tag
from chaosregistry.oci.reference import split_image_name
from chaosregistry.probes import rollout as rollout_probe

MODES = ("quiet", "follow", "probe")
BLOCK = ("quiet", "follow", "probe", "probe", "follow", "quiet")
CONTAINER = "app"


class CompletionWatch:
    """One watch of the Deployment in a thread: when it is first seen complete at ``generation``."""

    def __init__(self, state_dir: Path, generation: int) -> None:
        self.client = admin_client(state_dir, timeout=120)
        self.generation = generation
        self.completed_at: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        watched = self.client.watch(
            Deployment, namespace=DEMO_NAMESPACE, fields={"metadata.name": DEMO_NAME}
        )
        for _, found in watched:
            generation = found.metadata.generation if found.metadata else 0
            complete, _ = status_message(found)
            if (generation or 0) >= self.generation and complete:
                self.completed_at = time.time()
                self.done.set()
                return

    def start(self) -> None:
        self.thread.start()


def one_rollout(
    state_dir: Path, configuration: dict[str, Any], registry: Any, mode: str, index: int
) -> float:
    """Push a fresh tag, patch the demo onto it, wait for completion; seconds patch -> done."""
    client = admin_client(state_dir)
    found = client.get(Deployment, DEMO_NAME, namespace=DEMO_NAMESPACE)
    current = found.spec.template.spec.containers[0].image  # type: ignore[union-attr]
    tag = f"bench-{int(time.time() * 1000)}-{index}"
    delivery.push_fresh_tag(registry, split_image_name(current)[1], tag)
    image = with_tag(current, tag)
    generation = (found.metadata.generation or 0) + 1 if found.metadata else 1
    watch = CompletionWatch(state_dir, generation)
    watch.start()
    time.sleep(0.3)  # the watch is established before the change it must see
    patch = {"spec": {"template": {"spec": {"containers": [{"name": CONTAINER, "image": image}]}}}}
    started = time.time()
    client.patch(Deployment, DEMO_NAME, patch, namespace=DEMO_NAMESPACE)
    if mode == "follow":
        followed = delivery.follow(
            client,
            DEMO_NAMESPACE,
            DEMO_NAME,
            container=CONTAINER,
            image=image,
            since=started,
            timeout=150,
        )
        if followed["error"] is not None:
            raise SystemExit(f"round {index}: {followed['error']}")
    elif mode == "probe":
        result = rollout_probe.rollout_time(DEMO_NAME, timeout=150, configuration=configuration)
        if not result["complete"]:
            raise SystemExit(f"round {index}: rollout_time gave up: {result['health']}")
    if not watch.done.wait(150):
        raise SystemExit(f"round {index}: the rollout did not complete within 150 s")
    assert watch.completed_at is not None
    return watch.completed_at - started


def run(state_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    layout = Layout.at(state_dir)
    configuration = yaml.safe_load(layout.vars_file.read_text())["configuration"]
    settings = settings_for(configuration)
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    blocks: list[dict[str, float]] = []
    rounds: list[dict[str, Any]] = []
    index = 0
    with settings.registry.resolve(None, "registry_direct").client() as registry:
        one_rollout(state_dir, configuration, registry, "quiet", index)  # warm caches
        try:
            for block in range(args.blocks):
                times: dict[str, list[float]] = {mode: [] for mode in MODES}
                for mode in BLOCK:
                    index += 1
                    took = one_rollout(state_dir, configuration, registry, mode, index)
                    times[mode].append(took)
                    seconds[mode].append(took)
                    rounds.append({"block": block, "mode": mode, "seconds": round(took, 3)})
                    print(f"block {block + 1} {mode:<6} {took:.3f} s", flush=True)
                quiet = statistics.mean(times["quiet"])
                blocks.append({m: statistics.mean(times[m]) / quiet for m in MODES if m != "quiet"})
        finally:
            client = admin_client(state_dir)
            original = image_name(DEMO_REPOSITORY, DEMO_TAG)
            patch = {
                "spec": {
                    "template": {"spec": {"containers": [{"name": CONTAINER, "image": original}]}}
                }
            }
            client.patch(Deployment, DEMO_NAME, patch, namespace=DEMO_NAMESPACE)
    median = {mode: statistics.median(values) for mode, values in seconds.items()}
    result: dict[str, Any] = {
        "rounds_per_mode": {mode: len(values) for mode, values in seconds.items()},
        "median_seconds": median,
        "pooled_ratio": {m: median[m] / median["quiet"] for m in MODES if m != "quiet"},
        "block_ratio_median": {
            m: statistics.median(b[m] for b in blocks) for m in MODES if m != "quiet"
        },
        "block_ratios": blocks,
        "rounds": rounds,
    }
    for mode in ("follow", "probe"):
        ratios = [b[mode] for b in blocks]
        print(
            f"{mode} / quiet: medians {median[mode]:.3f} / {median['quiet']:.3f} s = "
            f"{result['pooled_ratio'][mode]:.3f}x; per block median "
            f"{result['block_ratio_median'][mode]:.3f}x (min {min(ratios):.3f}, "
            f"max {max(ratios):.3f})"
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not Layout.at(args.state_dir).vars_file.is_file():
        parser.error(f"{args.state_dir}: no cluster (run chaosregistry cluster up first)")
    if args.blocks < 1:
        parser.error("--blocks must be at least 1")
    result = run(args.state_dir, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
