"""bench/sandbox_up: what a piece of ``sandbox up`` costs, side by side, A B A B ...

Each ``up`` runs in a new temporary run dir on free ports and is stopped again. No sandbox
needed. Two comparisons:

- ``--compare second-site`` (issue 15): an unseeded sandbox without the second site, then one
  with it. Unseeded on purpose: the seed (~230 MiB) is the same for both and would hide the
  difference in its noise.
- ``--compare seed-template`` (issue 21): a seeded sandbox that pushes its seed (today's path
  without a template: the cache is made unusable, so nothing is read or saved) against one
  whose storage is copied from the seed template (a cache of the benchmark's own, warmed by one
  ``up`` first), for each implementation given. Prints the wall time of ``up`` and the CPU it
  cost: this process's and every sandbox process's (registries, nginx, Prometheus...) until
  ``up`` returned, with the ratio template / push.

    .venv/bin/python bench/sandbox_up.py [--rounds 3]
    .venv/bin/python bench/sandbox_up.py --compare seed-template [--rounds 3] \\
        [--implementation distribution-2 --implementation ggcr ...]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from chaosregistry.sandbox import down, find_free_base_port, up
from chaosregistry.sandbox.implementations import IMPLEMENTATION_NAMES
from chaosregistry.sandbox.layout import Layout
from chaosregistry.sandbox.processes import group_members, read_specs, recorded_pid

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def one_up(second_site: bool) -> float:
    run_dir = tempfile.mkdtemp(prefix="bench-up-")
    try:
        started = time.perf_counter()
        up(
            run_dir,
            base_port=find_free_base_port(),
            seed_content=False,
            second_site=second_site,
            progress=lambda line: None,
        )
        return time.perf_counter() - started
    finally:
        down(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def second_site(rounds: int) -> None:
    seconds: dict[str, list[float]] = {"without": [], "with second site": []}
    for _ in range(rounds):
        seconds["without"].append(one_up(False))
        seconds["with second site"].append(one_up(True))
    base = statistics.median(seconds["without"])
    for name, values in seconds.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"up {name:18} median {median:6.2f} s  +{median - base:5.2f} s  ({runs})")


def _sandbox_cpu(layout: Layout) -> float:
    """CPU seconds every process of the sandbox has used so far (each process group's
    members: a ggcr node's registry runs under its Python parent)."""
    total = 0
    for name in read_specs(layout):
        pgid = recorded_pid(layout, name)
        for pid in group_members(pgid) if pgid is not None else []:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def seeded_up(implementation: str, cache: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one seeded ``up`` with ``$CHAOSREGISTRY_CACHE=cache``."""
    run_dir = tempfile.mkdtemp(prefix="bench-up-")
    os.environ["CHAOSREGISTRY_CACHE"] = cache
    try:
        cpu = time.process_time()
        started = time.perf_counter()
        up(
            run_dir,
            base_port=find_free_base_port(),
            implementation=implementation,
            progress=lambda line: None,
        )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu + _sandbox_cpu(Layout.at(run_dir))
        return wall, cpu
    finally:
        down(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def seed_template(rounds: int, implementations: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-seed-template-"))
    # A cache under a regular file: no template is found and none can be saved (today's path).
    (work / "no-cache").write_text("")
    no_cache = str(work / "no-cache" / "cache")
    cache = str(work / "cache")
    try:
        for implementation in implementations:
            seeded_up(implementation, cache)  # saves the template
            runs: dict[str, list[tuple[float, float]]] = {"push": [], "template": []}
            for _ in range(rounds):
                runs["push"].append(seeded_up(implementation, no_cache))
                runs["template"].append(seeded_up(implementation, cache))
            wall = {name: statistics.median(w for w, _ in values) for name, values in runs.items()}
            cpu = {name: statistics.median(c for _, c in values) for name, values in runs.items()}
            for name, values in runs.items():
                each = ", ".join(f"{w:.2f}" for w, _ in values)
                print(
                    f"{implementation:15} {name:8} up median {wall[name]:5.2f} s ({each}); "
                    f"CPU median {cpu[name]:5.2f} s"
                )
            print(
                f"{implementation:15} ratio template/push: wall "
                f"{wall['template'] / wall['push']:.2f}, CPU {cpu['template'] / cpu['push']:.2f}"
            )
    finally:
        os.environ.pop("CHAOSREGISTRY_CACHE", None)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--compare", choices=("second-site", "seed-template"), default="second-site"
    )
    parser.add_argument(
        "--implementation", action="append", choices=IMPLEMENTATION_NAMES, dest="implementations"
    )
    args = parser.parse_args()
    if args.compare == "second-site":
        second_site(args.rounds)
    else:
        seed_template(args.rounds, args.implementations or list(IMPLEMENTATION_NAMES))


if __name__ == "__main__":
    main()
