"""bench/go_build: a cold compile with the project's Go build flags vs Go's defaults.

Every Go binary the project builds (the Makefile's tools, the test bed's etcd, Kubernetes and
Chaos Mesh) is compiled without DWARF (``chaosregistry.cluster.build.GO_BUILD_FLAGS``). This
compiles one command package cold, with an empty build cache each time and the module cache
shared (so downloads are not timed), alternating the two flag sets round by round (A B A B ...)
so a noisy machine slows them alike. It reports each median of wall time and of CPU (user +
system of the go command and its compilers), and the flags' ratio to the defaults. Goal (issue
21): less CPU for the cold set-up, which is CPU-bound on 2 cores.

    .venv/bin/python bench/go_build.py [--package PKG@VERSION] [--rounds 2]

The default package is CNCF Distribution's registry (~2 CPU-minutes a compile).
"""

import argparse
import shutil
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

from sidebyside import alternate, children_cpu, report

from chaosregistry.cluster.build import GO_BUILD_FLAGS, go_binary, go_env

DEFAULT_PACKAGE = "github.com/distribution/distribution/v3/cmd/registry@v3.1.2"


def compile_cold(package: str, flags: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``go install`` into a throwaway GOBIN, cold cache."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-go-build-"))
    env = {**go_env(scratch / "bin"), "GOCACHE": str(scratch / "cache")}
    try:
        cpu, started = children_cpu(), time.perf_counter()
        subprocess.run([go_binary(), "install", *flags, package], env=env, check=True)
        return time.perf_counter() - started, children_cpu() - cpu
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default=DEFAULT_PACKAGE)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    # The same flags as the project's builds, linked as they are (-s -w).
    contenders = {
        "Go's defaults": ["-p", "2"],
        "the project's flags": [*GO_BUILD_FLAGS, "-ldflags=-s -w"],
    }
    # Download the modules once, outside the timings: -n plans the build (which loads every
    # package, fetching its module) and runs none of it.
    subprocess.run([go_binary(), "install", "-n", options.package], check=True, capture_output=True)
    rounds = {name: partial(compile_cold, options.package, f) for name, f in contenders.items()}
    report(alternate(rounds, options.rounds))


if __name__ == "__main__":
    main()
