"""bench/suite_cpu: the CPU of the small things the test suite does thousands of times, each
against what it replaced, side by side (A B A B ...), as CPU seconds (not wall time, which a
busy machine stretches). No sandbox needed.

- a watchdog's start: importing every undo handler module, as it did, against importing the one
  module its fault names (a fresh interpreter each, CPU from ``getrusage`` of the children);
- an HTTP client: ``httpx.Client()`` (it loads the CA store) against one sharing the process's
  system-CA context (``chaosregistry.osutil.tls``);
- the test bed's registry image layer: gzip level 9 (Python's default) against level 1.

    .venv/bin/python bench/suite_cpu.py [--rounds 5]
"""

import argparse
import gzip
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from chaosregistry.cluster import images
from chaosregistry.osutil.tls import system_trust

WATCHDOG = "import chaosregistry.faults.watchdog_daemon; from chaosregistry.faults import undo; "
STARTS = {
    "watchdog + every handler module": WATCHDOG + "undo.handler_names()",
    "watchdog + the fault's module": WATCHDOG + "import chaosregistry.faults.toxiproxy_undo",
}


def child_cpu(code: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def own_cpu(work: Callable[[], object], repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        work()
    return (time.process_time() - started) / repeat


def report(title: str, samples: dict[str, list[float]], unit: float, label: str) -> None:
    print(title)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = next(iter(medians.values()))
    for name, median in medians.items():
        print(f"  {name:34} {median * unit:9.2f} {label}  {median / baseline:6.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds

    starts: dict[str, list[float]] = {name: [] for name in STARTS}
    clients: dict[str, list[float]] = {"httpx.Client()": [], "httpx.Client(shared)": []}
    layers: dict[str, list[float]] = {"gzip level 9": [], "gzip level 1": []}
    layer_tar = images.busybox_layer_tar(extra_files=images.registry_layer_files())
    for _ in range(rounds):
        for name, code in STARTS.items():
            starts[name].append(child_cpu(code))
        clients["httpx.Client()"].append(own_cpu(lambda: httpx.Client().close(), 20))
        clients["httpx.Client(shared)"].append(
            own_cpu(lambda: httpx.Client(verify=system_trust()).close(), 20)
        )
        for level, name in ((9, "gzip level 9"), (1, "gzip level 1")):
            started = time.process_time()
            gzip.compress(layer_tar, level, mtime=0)
            layers[name].append(time.process_time() - started)
    report("A watchdog's start (CPU of a fresh interpreter)", starts, 1, "s")
    report("One HTTP client (CPU to make and close it)", clients, 1000, "ms")
    report(f"The registry image's layer ({len(layer_tar) / 1e6:.1f} MB)", layers, 1, "s")


if __name__ == "__main__":
    main()
