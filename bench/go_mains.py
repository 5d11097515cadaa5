"""bench/go_mains: a cold compile of upstream's command vs the project's smaller Go main.

Two of the binaries a cold set-up builds are compiled from Go mains of ours that keep only what
the test beds use (issue 21: the cold set-up is CPU-bound on 2 cores, so less to compile is
less wall time):

- ``distribution``: CNCF Distribution v3's ``cmd/registry`` against ``tools/distribution-registry``
  (the same registry command without the cloud storage drivers);
- ``chaos-mesh``: Chaos Mesh's ``cmd/chaos-controller-manager`` against
  ``chaosregistry/cluster/chaos_controller/main.go`` (its controllers for PodChaos and
  NetworkChaos only), both compiled inside one copy of Chaos Mesh's module, as the test bed's
  build does.

Each compile starts from an empty build cache with the module cache shared (downloads are not
timed), with the project's flags, the two contenders alternating round by round (A B A B ...).
It reports the medians of wall time and of CPU (user + system of go and its compilers).

    .venv/bin/python bench/go_mains.py [--only distribution|chaos-mesh] [--rounds 1]
"""

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sidebyside import alternate, children_cpu, report

from chaosregistry.cluster import build
from chaosregistry.cluster.build import GO_BUILD_FLAGS, go_binary, go_env

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "github.com/distribution/distribution/v3/cmd/registry@v3.1.2"
FLAGS = [*GO_BUILD_FLAGS, "-ldflags=-s -w"]


def compile_cold(command: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one go command, into a throwaway directory, cold cache."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-go-mains-"))
    env = {**go_env(scratch / "bin"), "GOCACHE": str(scratch / "cache")}
    argv = [arg.replace("{out}", str(scratch / "bin" / "out")) for arg in command]
    try:
        cpu, started = children_cpu(), time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True)
        return time.perf_counter() - started, children_cpu() - cpu
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def distribution() -> dict[str, Callable[[], tuple[float, float]]]:
    go = go_binary()
    tool = ROOT / "tools" / "distribution-registry"
    # Fetch both builds' modules once, outside the timings (-n plans a build and runs none).
    subprocess.run([go, "install", "-n", DISTRIBUTION], check=True, capture_output=True)
    subprocess.run([go, "build", "-n", "."], cwd=tool, check=True, capture_output=True)
    return {
        "Distribution's cmd/registry": partial(compile_cold, [go, "install", *FLAGS, DISTRIBUTION]),
        "tools/distribution-registry": partial(
            compile_cold, [go, "build", *FLAGS, "-o", "{out}", "."], tool
        ),
    }


def chaos_mesh(scratch: Path) -> dict[str, Callable[[], tuple[float, float]]]:
    go = go_binary()
    source = build.chaos_mesh_source(scratch / "src")
    for package in ("./cmd/chaos-controller-manager", build.CHAOS_CONTROLLER_PACKAGE):
        subprocess.run(
            [go, "build", "-n", package], cwd=source, env=go_env(), check=True, capture_output=True
        )

    def compile_package(package: str) -> tuple[float, float]:
        return compile_cold([go, "build", *FLAGS, "-o", "{out}", package], source)

    return {
        "Chaos Mesh's cmd/chaos-controller-manager": partial(
            compile_package, "./cmd/chaos-controller-manager"
        ),
        "the test bed's chaos_controller": partial(compile_package, build.CHAOS_CONTROLLER_PACKAGE),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["distribution", "chaos-mesh"])
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-go-mains-src-") as scratch:
        if options.only in (None, "distribution"):
            print("== Distribution v3.1.2")
            report(alternate(distribution(), options.rounds))
        if options.only in (None, "chaos-mesh"):
            print("== Chaos Mesh's controller-manager")
            report(alternate(chaos_mesh(Path(scratch)), options.rounds))


if __name__ == "__main__":
    main()
