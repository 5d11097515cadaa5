"""bench/startup: how long ``chaosregistry --help`` takes to start, against a bare interpreter.

Runs ``python -c pass``, ``python -c 'import click'`` (the floor: every command needs click) and
``chaosregistry --help`` in turn (A B C A B C ...), so a noisy machine slows them alike, and
prints each median and its ratio to the bare interpreter. Goal: --help <= 2x ``python -c pass``.
No sandbox needed.

    .venv/bin/python bench/startup.py [--rounds 30]
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    python = sys.executable
    contenders = {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import click'": [python, "-c", "import click"],
        "chaosregistry --help": [str(Path(python).with_name("chaosregistry")), "--help"],
    }
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, command in contenders.items():
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            seconds[name].append(time.perf_counter() - started)
    bare = statistics.median(seconds["python -c pass"])
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:26} median {median * 1000:6.1f} ms  {median / bare:4.2f}x  (n={rounds})")


if __name__ == "__main__":
    main()
