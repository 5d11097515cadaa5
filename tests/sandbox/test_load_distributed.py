"""Locust's distributed mode as docs/load.md documents it, against the real HTTPS sandbox.

A master and two workers run as separate processes on loopback (docs/load.md's commands, with
a free master port), bounded by the master's --run-time. What the master counted and what
the workers recorded must be the same pulls: the exact records (chaosregistry.loadgen.records)
are only trustworthy if none goes missing and none is invented.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.polling import eventually
from support.ports import free_port
from support.sandbox import SandboxInfo

import chaosregistry.loadgen
from chaosregistry.experiment.settings import resolve_target
from chaosregistry.loadgen import records
from chaosregistry.loadgen.fresh import push_fresh_images
from chaosregistry.oci.reference import Platform

# The installed locustfile, found the way docs/load.md finds it.
LOCUSTFILE = Path(chaosregistry.loadgen.__file__).with_name("locustfile.py")
LOCUST = Path(sys.executable).with_name("locust")
WORKERS = 2
USERS = 4
SECONDS = 4
# Locust's master waits up to this long for its workers, then gives up by itself.
WORKERS_MAX_WAIT = 60


@contextmanager
def started(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process of its own session, stopped (TERM, then KILL) if the test leaves it running."""
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")},
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@dataclass
class DistributedRun:
    master_rows: dict[tuple[str, str], dict[str, Any]]  # (method, name) -> Locust's entry
    records_dirs: list[Path]
    logs: list[Path]

    def records(self) -> list[dict[str, Any]]:
        return [r for directory in self.records_dirs for r in records.read_records(directory)]

    def pull_rows(self) -> dict[str, dict[str, Any]]:
        return {name: row for (method, name), row in self.master_rows.items() if method == "PULL"}

    def tails(self) -> str:
        return "\n".join(f"{log.name}: {log.read_text()[-1500:]}" for log in self.logs)


def worker_command(sandbox: SandboxInfo, master_port: str, records_dir: Path) -> list[str]:
    """docs/load.md's worker command, with this worker's own records directory."""
    return [
        str(LOCUST), "-f", str(LOCUSTFILE), "--worker",
        "--master-host", "127.0.0.1", "--master-port", master_port,
        # A path, never the password: the file stays on the worker.
        "--credentials-file", sandbox.endpoints["credentials_file"],
        "--records-dir", str(records_dir), "--tls-verify", sandbox.ca_file,
    ]  # fmt: skip


def run_distributed(
    sandbox: SandboxInfo,
    work: Path,
    images: str,
    extra: tuple[str, ...] = (),
    meanwhile: Callable[[Path, list[subprocess.Popen[bytes]]], None] | None = None,
) -> DistributedRun:
    """docs/load.md's master and workers on loopback; returns once all three have exited.
    ``meanwhile(master log, workers)`` runs once they have started."""
    port = str(free_port())
    master_dir = work / "master"
    master = [
        str(LOCUST), "-f", str(LOCUSTFILE), "--master",
        "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
        "--expect-workers", str(WORKERS), "--expect-workers-max-wait", str(WORKERS_MAX_WAIT),
        "--headless", "-u", str(USERS), "-r", str(USERS), "-t", f"{SECONDS}s",
        "--host", sandbox.endpoints["registry"], "--images", images, *extra,
        "--csv", str(master_dir / "locust"), "--json-file", str(master_dir / "locust_stats"),
    ]  # fmt: skip
    records_dirs = [work / f"worker-{index}" / "pulls" for index in range(WORKERS)]
    logs = [work / "master.log", *(work / f"worker-{i}.log" for i in range(WORKERS))]
    with ExitStack() as stack:
        master_process = stack.enter_context(started(master, logs[0]))
        workers = [
            stack.enter_context(started(worker_command(sandbox, port, directory), log))
            for directory, log in zip(records_dirs, logs[1:], strict=True)
        ]
        run = DistributedRun({}, records_dirs, logs)
        if meanwhile is not None:
            meanwhile(logs[0], workers)
        try:
            master_code = master_process.wait(timeout=WORKERS_MAX_WAIT + SECONDS + 60)
            # Workers quit when their master does.
            worker_codes = [worker.wait(timeout=30) for worker in workers]
        except subprocess.TimeoutExpired:
            pytest.fail(f"the distributed load did not stop by itself\n{run.tails()}")
    assert (master_code, worker_codes) == (0, [0] * WORKERS), run.tails()
    # The JSON file is written at exit, after the workers' final reports; the CSVs are
    # rewritten every second and may miss the last of them.
    entries = json.loads((master_dir / "locust_stats.json").read_text())
    run.master_rows = {(entry["method"], entry["name"]): entry for entry in entries}
    return run


def test_a_master_and_two_workers_count_exactly_the_pulls_the_workers_recorded(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    mix = ["tiny/hello:latest", {"image": "shop/api:latest", "weight": 2}]
    run = run_distributed(sandbox, tmp_path, json.dumps(mix))

    files = [sorted(directory.glob(records.RECORD_GLOB)) for directory in run.records_dirs]
    assert [len(found) for found in files] == [1] * WORKERS, run.tails()
    per_worker = [records.read_records(directory) for directory in run.records_dirs]
    assert all(per_worker), "a worker wrote no records"
    identities = [{record["worker"] for record in pulls} for pulls in per_worker]
    assert all(len(identity) == 1 for identity in identities)
    assert identities[0] != identities[1]  # two processes, each with its own host:pid

    pulls = run.records()
    # A pull cut short when the master stops the workers is recorded as interrupted and never
    # reported to Locust (it is neither a success nor a failure); each user has at most one
    # pull in flight, so at most USERS of them. Every other record is one PULL the master saw.
    completed = [record for record in pulls if not record["interrupted"]]
    interrupted = [record for record in pulls if record["interrupted"]]
    assert len(interrupted) <= USERS
    assert all(not record["ok"] for record in interrupted)

    pull_rows = run.pull_rows()
    assert set(pull_rows) == {"tiny/hello:latest", "shop/api:latest"}
    assert sum(row["num_failures"] for row in pull_rows.values()) == 0, run.tails()
    master_pulls = {name: row["num_requests"] for name, row in pull_rows.items()}
    assert master_pulls == dict(Counter(record["image"] for record in completed))
    assert sum(master_pulls.values()) >= 10
    print(
        f"master PULL requests {sum(master_pulls.values())} ({master_pulls}); records "
        f"{len(pulls)}: {len(completed)} completed, {len(interrupted)} interrupted; per worker "
        f"{[len(p) for p in per_worker]}"
    )

    # Every pull got every byte of its image and checked each blob's sha256.
    amd64 = {
        name: next(
            p
            for p in sandbox.image(*name.split(":"))["platforms"]
            if p["platform"] == "linux/amd64"
        )
        for name in ("tiny/hello:latest", "shop/api:latest")
    }
    for record in completed:
        assert record["ok"] and record["verified"] and record["error"] is None, record
        platform = amd64[record["image"]]
        blobs = [platform["config"], *platform["layers"]]
        assert (record["bytes"], record["blobs"]) == (sum(b["size"] for b in blobs), len(blobs))
    # The master's blob requests are the completed pulls' blobs, plus at most the blobs that
    # interrupted pulls had finished or failed on (none failed: none was reported failed).
    blob_row = run.master_rows[("GET", "/v2/[name]/blobs/[digest]")]
    assert blob_row["num_failures"] == 0
    recorded_blobs = sum(record["blobs"] for record in completed)
    most_blobs = max(record["blobs"] for record in completed)
    assert recorded_blobs <= blob_row["num_requests"] <= recorded_blobs + USERS * most_blobs

    # Bounded: the workers pulled for the master's --run-time and then stopped.
    span = max(r["end"] for r in pulls) - min(r["start"] for r in pulls)
    assert SECONDS - 1.5 <= span <= SECONDS + 5


def test_cold_mode_shares_fresh_images_between_workers_by_stride(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    origin = resolve_target({"sandbox_dir": str(sandbox.run_dir)}, {}, "registry")
    fresh = push_fresh_images(origin, 60, Platform.parse("linux/amd64"))
    images = tmp_path / "images.json"
    images.write_text(json.dumps(fresh))
    run = run_distributed(
        sandbox, tmp_path, f"@{images}", ("--pull-mode", "cold", "--fresh-stride", str(WORKERS))
    )

    position = {reference: index for index, reference in enumerate(fresh)}
    completed = [r for r in run.records() if not r["interrupted"]]
    assert completed and all(r["ok"] and r["verified"] for r in completed)
    (row,) = run.pull_rows().values()
    assert row["num_requests"] == len(completed) and row["num_failures"] == 0
    fresh_pulls = [r for r in completed if r["fresh"]]
    # Nobody pulled a fresh image twice: the stride kept the workers apart.
    assert len({r["image"] for r in fresh_pulls}) == len(fresh_pulls) >= 4
    # Each worker took every WORKERS-th image, from its own offset.
    offsets = {}
    for directory in run.records_dirs:
        mine = [position[r["image"]] for r in records.read_records(directory) if r["fresh"]]
        assert mine, f"{directory} has no fresh pull"
        assert len({index % WORKERS for index in mine}) == 1
        offsets[directory] = mine[0] % WORKERS
    assert sorted(offsets.values()) == list(range(WORKERS))


def test_a_worker_that_answers_the_end_late_still_has_its_last_pulls_counted(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    # Locust's master waits a fixed 0.5 s for its workers' final reports; a busy machine once
    # made a worker slower than that, and the master lost 29 of 94 pulls. Here one worker is
    # stopped (SIGSTOP) across the end of the run and let go 1.2 s after it, well past 0.5 s
    # and short of the 3 s after which the master would count it missing.
    def pause_a_worker_across_the_end(
        master_log: Path, workers: list[subprocess.Popen[bytes]]
    ) -> None:
        eventually(
            "the master's run-time set",
            lambda: "Run time limit set" in master_log.read_text(),
            timeout=WORKERS_MAX_WAIT,
            interval=0.05,
        )
        time.sleep(SECONDS - 0.5)  # the scenario: the pause starts just before the end
        os.kill(workers[0].pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            eventually(
                "the master's run-time reached",
                lambda: "--run-time limit reached" in master_log.read_text(),
                timeout=30,
                interval=0.05,
            )
            # The scenario: the worker answers late, past the master's 0.5 s; and it is let go
            # within 2.5 s of its stop even when this process saw the end late (a loaded
            # machine), short of the ~3 s of missed heartbeats that would count it missing.
            time.sleep(max(0.7, min(1.2, stopped + 2.5 - time.monotonic())))
        finally:
            os.kill(workers[0].pid, signal.SIGCONT)

    run = run_distributed(
        sandbox, tmp_path, "tiny/hello:latest", meanwhile=pause_a_worker_across_the_end
    )
    completed = [r for r in run.records() if not r["interrupted"]]
    per_worker = [
        [r for r in records.read_records(directory) if not r["interrupted"]]
        for directory in run.records_dirs
    ]
    assert all(per_worker), "a worker completed no pull"
    (row,) = run.pull_rows().values()
    assert row["num_failures"] == 0
    assert row["num_requests"] == len(completed), run.tails()
