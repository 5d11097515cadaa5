"""bench/venv_install: the project's venv installed by uv (the Makefile's way) vs by pip.

Every clean clone's `make test` and `make gameday` start by installing `.venv`. This installs
the project (editable, with its dev extras, under constraints.txt) into a fresh venv in a
temporary directory both ways, alternating round by round (A B A B ...) so a noisy machine
slows them alike, with each installer's download cache warm (a first, untimed round fills it):
the warm clean clone's case. It reports the medians of wall time and of CPU (user + system of
the installer and what it runs), the ratio to pip, and checks that both venvs hold the same
packages at the same versions and their bytecode. Goal (issue 21): a shorter warm set-up.

    .venv/bin/python bench/venv_install.py --uv UV [--rounds 2]

UV is the Makefile's uv: ~/.cache/chaostoolkit-registry/uv-<its UV_VERSION>/bin/uv.

`make bench` passes it.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sidebyside import alternate, children_cpu, report

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "python3.11"


def by_pip(venv: Path) -> None:
    """What the Makefile did before uv: a venv by the interpreter, pip upgraded, the project."""
    subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
    pip = str(venv / "bin" / "pip")
    subprocess.run([pip, "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run(
        [pip, "install", "-q", "-c", "constraints.txt", "-e", ".[dev]"], cwd=ROOT, check=True
    )


def by_uv(uv: str) -> Callable[[Path], None]:
    """What the Makefile does: a venv by uv, the project with its bytecode written."""

    def install(venv: Path) -> None:
        subprocess.run([uv, "venv", "-q", "--python", PYTHON, str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--compile-bytecode", "--python",
             str(venv / "bin" / "python"), "-c", "constraints.txt", "-e", ".[dev]"],
            cwd=ROOT, check=True, env={**os.environ, "UV_NATIVE_TLS": "1"},
        )  # fmt: skip

    return install


def packages(venv: Path) -> dict[str, str]:
    """name -> version of every distribution in ``venv`` but the project (names normalised)."""
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import json, importlib.metadata as m; print(json.dumps("
         "{d.metadata['Name']: d.version for d in m.distributions()}))"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    found = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in json.loads(listing).items()}
    # pip and setuptools come with a venv made by the interpreter, not with the project.
    return {
        k: v for k, v in found.items() if k not in {"chaostoolkit-registry", "pip", "setuptools"}
    }


def bytecode_files(venv: Path) -> int:
    return sum(1 for _ in venv.glob("lib/python3*/site-packages/**/*.pyc"))


def timed(install: Callable[[Path], None]) -> tuple[float, float, Path]:
    """(wall, CPU seconds, venv) of one install into a fresh temporary venv."""
    venv = Path(tempfile.mkdtemp(prefix="bench-venv-")) / "venv"
    cpu, started = children_cpu(), time.perf_counter()
    install(venv)
    return time.perf_counter() - started, children_cpu() - cpu, venv


def one_round(install: Callable[[Path], None]) -> tuple[float, float]:
    """(wall, CPU seconds) of one install, its venv removed."""
    wall, cpu, venv = timed(install)
    shutil.rmtree(venv.parent, ignore_errors=True)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", required=True, help="the uv binary (the Makefile's $(UV))")
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    contenders = {"pip": by_pip, "uv": by_uv(options.uv)}
    venvs: dict[str, Path] = {}
    try:
        for name, install in contenders.items():  # untimed: fills each installer's cache
            *_, venvs[name] = timed(install)
        same = packages(venvs["pip"]) == packages(venvs["uv"])
        pyc = {name: bytecode_files(venv) for name, venv in venvs.items()}
    finally:
        for venv in venvs.values():
            shutil.rmtree(venv.parent, ignore_errors=True)
    rounds = {name: partial(one_round, install) for name, install in contenders.items()}
    report(alternate(rounds, options.rounds))
    print(f"same packages at the same versions: {same}; bytecode files: {pyc}")


if __name__ == "__main__":
    main()
