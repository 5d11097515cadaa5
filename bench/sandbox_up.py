"""bench/sandbox_up: what the second site adds to ``sandbox up``, side by side (issue 15).

Starts an unseeded sandbox without the second site, then one with it (``second_site=True``),
A B A B ..., each in a new temporary run dir on free ports, and stops it again; prints each
median and the difference. Unseeded on purpose: the seed (~230 MiB) is the same for both and
would hide the difference in its noise. No sandbox needed.

    .venv/bin/python bench/sandbox_up.py [--rounds 3]
"""

import argparse
import shutil
import statistics
import tempfile
import time

from chaosregistry.sandbox import down, find_free_base_port, up


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    seconds: dict[str, list[float]] = {"without": [], "with second site": []}
    for _ in range(rounds):
        seconds["without"].append(one_up(False))
        seconds["with second site"].append(one_up(True))
    base = statistics.median(seconds["without"])
    for name, values in seconds.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"up {name:18} median {median:6.2f} s  +{median - base:5.2f} s  ({runs})")


if __name__ == "__main__":
    main()
