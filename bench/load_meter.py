"""Locust plugin for bench/load.py: counts requests and CPU time over a measurement window.

Loaded next to the locustfile under test (``-f user.py,bench/load_meter.py``), identically for
every contender. Counting starts ``BENCH_WARMUP`` seconds after the test starts (imports,
connections and spawning excluded) and ends when the test starts stopping; the result goes to
``BENCH_METER_FILE`` as JSON: ``seconds`` (wall), ``cpu`` (this process's user + system
seconds) and ``counts`` {"TYPE name": successful requests, "FAILED TYPE name": failures}.
"""

import json
import os
import resource
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gevent
from locust import events

WARMUP = float(os.environ.get("BENCH_WARMUP", "2"))
_state: dict[str, Any] = {"counting": False, "counts": Counter()}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _begin() -> None:
    _state.update(counting=True, wall=time.monotonic(), cpu=_cpu())


def _on_request(request_type: str, name: str, exception: Any = None, **_: Any) -> None:
    if _state["counting"]:
        _state["counts"][f"{'FAILED ' if exception else ''}{request_type} {name}"] += 1


def _on_test_start(**_: Any) -> None:
    gevent.spawn_later(WARMUP, _begin)


def _on_test_stopping(**_: Any) -> None:
    if not _state["counting"]:
        return
    _state["counting"] = False
    result = {
        "seconds": time.monotonic() - _state["wall"],
        "cpu": _cpu() - _state["cpu"],
        "counts": dict(_state["counts"]),
    }
    Path(os.environ["BENCH_METER_FILE"]).write_text(json.dumps(result))


events.request.add_listener(_on_request)
events.test_start.add_listener(_on_test_start)
events.test_stopping.add_listener(_on_test_stopping)
