"""What the side-by-side benchmarks of whole commands share: CPU of the commands they run, the
alternating rounds (A B A B ..., so a noisy machine slows the contenders alike) and the medians'
ratios to the first contender, the baseline. Used by bench/go_build.py and bench/venv_install.py
(run as ``python bench/<name>.py``, so this folder is on the import path)."""

import resource
import statistics
from collections.abc import Callable, Mapping

# One round of a contender: (wall seconds, CPU seconds).
Round = Callable[[], tuple[float, float]]


def children_cpu() -> float:
    """User + system CPU seconds of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def alternate(contenders: Mapping[str, Round], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Run each contender once per round, in turn, printing each figure as it comes."""
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for round_ in range(rounds):
        for name, run in contenders.items():
            wall, cpu = run()
            figures[name].append((wall, cpu))
            print(f"round {round_ + 1}: {name:20} wall {wall:6.1f} s  cpu {cpu:6.1f} s", flush=True)
    return figures


def report(figures: Mapping[str, list[tuple[float, float]]]) -> None:
    """Each contender's median wall and CPU, and their ratios to the first contender's."""
    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in figures.items()
    }
    base_wall, base_cpu = next(iter(medians.values()))
    for name, (wall, cpu) in medians.items():
        print(
            f"{name:20} median wall {wall:6.1f} s ({wall / base_wall:4.2f}x)  "
            f"cpu {cpu:6.1f} s ({cpu / base_cpu:4.2f}x)  (n={len(figures[name])})"
        )
