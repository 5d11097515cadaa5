"""bench/report: building a game-day report from a long run, against loading its journal alone.

Synthesizes a realistic one-hour run: the steady state checked continuously every second (3600
checks of two pull_latency probes, like registry-latency with ``hypothesis_strategy:
continuously``), a 20-minute latency fault in the middle with its gameday.json, and a pull load
with a 3600-row timeseries.json. Each round times ``json.load`` of the journal and a whole
``build_report`` (read, summarize, chart, write four files) in turn, so a noisy machine slows
both alike; we report medians and their ratio. Goal (issue 6): report <= 5x load.

    .venv/bin/python bench/report.py [--rounds 5] [--keep DIR]
"""

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from chaosregistry.reports import build_report, build_summary
from chaosregistry.reports.figures import run_charts
from chaosregistry.reports.render import render_svg

HOUR = 3600
T0 = 1_795_890_000.0
FAULT_START, FAULT_END = T0 + 1200, T0 + 2400


def iso(epoch: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat()


def pull_output(rng: random.Random, slow: bool, count: int) -> dict[str, Any]:
    base = 0.7 if slow else 0.03
    durations = sorted(base + rng.random() * base * 0.4 for _ in range(count))
    failed = 1 if slow and rng.random() < 0.05 else 0
    return {
        "image": "shop/frontend:shop-prod-1.4.2",
        "registry": "http://127.0.0.1:23000",
        "count": count,
        "succeeded": count - failed,
        "failed": failed,
        "success_ratio": (count - failed) / count,
        "min": durations[0],
        "mean": sum(durations) / count,
        "p50": durations[count // 2],
        "p95": durations[int(count * 0.95) - 1],
        "p99": durations[-1],
        "max": durations[-1],
        "phases": {"auth": 0.0001, "manifest": base * 0.3, "blobs": base * 0.65},
        "errors": {"timeout": failed} if failed else {},
        "first_error": "manifest shop/frontend:shop-prod-1.4.2: timed out" if failed else None,
        "bytes": 400237,
        "max_attempt": durations[-1],
        "durations": durations,
        "elapsed": sum(durations),
    }


def probe(name: str, target: str, low: float, high: float, count: int) -> dict[str, Any]:
    return {
        "type": "probe",
        "name": name,
        "tolerance": {"type": "range", "range": [low, high], "target": target},
        "provider": {
            "type": "python",
            "module": "chaosregistry.probes.pull",
            "func": "pull_latency",
            "arguments": {"image": "${probe_image}", "count": count},
        },
    }


PROBES = [
    probe("pull-p95-within-budget", "p95", 0, 0.25, 10),
    probe("every-pull-succeeds", "success_ratio", 1, 1, 5),
]


def check(rng: random.Random, moment: float) -> dict[str, Any]:
    slow = FAULT_START <= moment < FAULT_END
    runs = []
    for declared in PROBES:
        output = pull_output(rng, slow, declared["provider"]["arguments"]["count"])
        target = declared["tolerance"]["target"]
        low, high = declared["tolerance"]["range"]
        runs.append(
            {
                "activity": declared,
                "output": output,
                "start": iso(moment),
                "status": "succeeded",
                "end": iso(moment + 0.3),
                "duration": 0.3,
                "tolerance_met": low <= output[target] <= high,
            }
        )
    return {"steady_state_met": all(r["tolerance_met"] for r in runs), "probes": runs}


def synthesize(directory: Path) -> Path:
    """Write journal.json, gameday.json and load/<id>/timeseries.json of a one-hour run."""
    rng = random.Random(6)
    stats_dir = directory / "load" / "bench-load"
    stats_dir.mkdir(parents=True)
    fault = {
        "fault_id": "f00dfa017001",
        "kind": "network.latency",
        "target": "hop:client-registry",
        "state": "injected",
        "parameters": {"latency_ms": 300, "jitter_ms": 50, "duration": 1200.0},
        "applied": {"toxic": {"type": "latency"}},
        "injected_at": FAULT_START,
        "expires_at": FAULT_END + 5,
        "expires_in": 1205.0,
    }
    journal = {
        "chaoslib-version": "1.44.0",
        "platform": "Linux",
        "node": "bench",
        "experiment": {
            "version": "1.0.0",
            "title": "One hour of pulls under 300 ms of latency (bench)",
            "description": "synthetic",
            "tags": ["bench"],
            "configuration": {"backend": "local", "probe_image": "shop/frontend:shop-prod-1.4.2"},
            "steady-state-hypothesis": {"title": "Pulls are fast", "probes": PROBES},
            "method": [],
            "rollbacks": [],
        },
        "start": iso(T0),
        "status": "completed",
        "deviated": False,
        "steady_states": {
            "before": check(rng, T0),
            "after": check(rng, T0 + HOUR + 1),
            "during": [check(rng, T0 + 1 + second) for second in range(HOUR)],
        },
        "run": [
            {
                "activity": {
                    "type": "action",
                    "name": "start-load",
                    "provider": {
                        "type": "python",
                        "module": "chaosregistry.actions.load",
                        "func": "start_pull_load",
                        "arguments": {},
                    },
                },
                "output": {"load_id": "bench-load", "stats_dir": str(stats_dir)},
                "start": iso(T0 + 0.5),
                "status": "succeeded",
                "end": iso(T0 + 0.9),
                "duration": 0.4,
            },
            {
                "activity": {
                    "type": "action",
                    "name": "add-latency",
                    "provider": {
                        "type": "python",
                        "module": "chaosregistry.actions.network",
                        "func": "add_latency",
                        "arguments": {},
                    },
                },
                "output": fault,
                "start": iso(FAULT_START - 0.1),
                "status": "succeeded",
                "end": iso(FAULT_START),
                "duration": 0.1,
            },
            {
                "activity": {
                    "type": "action",
                    "name": "remove-latency",
                    "provider": {
                        "type": "python",
                        "module": "chaosregistry.actions.network",
                        "func": "remove_network_faults",
                        "arguments": {},
                    },
                },
                "output": {"reverted": [dict(fault, state="reverted")], "count": 1},
                "start": iso(FAULT_END - 0.1),
                "status": "succeeded",
                "end": iso(FAULT_END),
                "duration": 0.1,
            },
        ],
        "rollbacks": [],
        "end": iso(T0 + HOUR + 2),
        "duration": HOUR + 2.0,
    }
    path = directory / "journal.json"
    path.write_text(json.dumps(journal, indent=2))
    (directory / "gameday.json").write_text(
        json.dumps(
            {
                "experiment": "bench",
                "vars": None,
                "backend": "local",
                "verdict": "passed",
                "exit_code": 0,
                "chaos_exit_code": 0,
                "notes": [],
                "faults": [
                    {
                        "id": fault["fault_id"],
                        "kind": fault["kind"],
                        "target": fault["target"],
                        "state": "reverted",
                        "revert_reason": "rollback",
                        "injected_at": FAULT_START,
                        "reverted_at": FAULT_END,
                    }
                ],
            }
        )
    )
    rows = range(HOUR)
    slow = [FAULT_START <= T0 + i < FAULT_END for i in rows]
    (stats_dir / "timeseries.json").write_text(
        json.dumps(
            {
                "start": T0,
                "step": 1.0,
                "load_id": "bench-load",
                "t": [T0 + i for i in rows],
                "offset": [float(i) for i in rows],
                "started": [20 for _ in rows],
                "completed": [18 if s else 20 for s in slow],
                "failed": [rng.choice((0, 0, 1, 2)) if s else 0 for s in slow],
                "interrupted": [0 for _ in rows],
                "p50": [(0.65 if s else 0.02) + rng.random() * 0.01 for s in slow],
                "p95": [(0.8 if s else 0.04) + rng.random() * 0.05 for s in slow],
                "p99": [(0.9 if s else 0.05) + rng.random() * 0.1 for s in slow],
                "max": [(1.0 if s else 0.06) + rng.random() * 0.2 for s in slow],
            }
        )
    )
    return path


def timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the synthetic run and report here")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        journal = synthesize(directory)
        out = directory / "report"

        def load() -> None:
            with journal.open() as handle:
                json.load(handle)

        def report() -> None:
            build_report([journal], out)

        def summary() -> None:
            build_summary([journal])

        def charts() -> None:
            _, models, _ = build_summary([journal])
            for chart in run_charts(models[0]):
                render_svg(chart)

        report()  # warm up: imports, font cache
        figures: dict[str, list[float]] = {"load": [], "report": [], "summary": [], "charts": []}
        for _ in range(args.rounds):
            figures["load"].append(timed(load))
            figures["report"].append(timed(report))
            figures["summary"].append(timed(summary))
            figures["charts"].append(timed(charts))
        medians = {k: statistics.median(v) for k, v in figures.items()}
        size = journal.stat().st_size
        summary_data, _, _ = build_summary([journal])
        chart_count = len(summary_data["runs"][0]["charts"])
        print(
            f"journal: {size / 1e6:.1f} MB, {HOUR} during checks x {len(PROBES)} probes, "
            f"{HOUR}-row load series; {chart_count} charts; {args.rounds} rounds, medians"
        )
        print(f"{'what':<44} {'median s':>9} {'x load':>7}")
        rows = [
            ("json.load(journal)  [baseline]", "load"),
            ("build_report (read+summary+charts+write)", "report"),
            ("  of which: read + summarize", "summary"),
            ("  of which: read + summarize + draw charts", "charts"),
        ]
        for label, key in rows:
            print(f"{label:<44} {medians[key]:>9.3f} {medians[key] / medians['load']:>6.2f}x")
        ratio = medians["report"] / medians["load"]
        print(f"goal: report <= 5x load -> {'met' if ratio <= 5 else 'NOT met'} ({ratio:.2f}x)")
        sizes = {p.name: p.stat().st_size for p in out.iterdir()}
        print(
            "artifacts: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sorted(sizes.items()))
        )
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
