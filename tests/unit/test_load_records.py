"""Pull records -> exact figures and time series; the image mix; geventhttpclient error classes.

Figures are checked against numpy, computed independently from the same raw records.
"""

import errno
import json
import random
import socket
from pathlib import Path
from typing import Any

import gevent
import numpy
import pytest
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient.useragent import RetriesExceeded, UserAgent

from chaosregistry.errors import ConfigError, ErrorClass
from chaosregistry.loadgen import records
from chaosregistry.loadgen.failures import from_exception
from chaosregistry.loadgen.mix import ImageChoice, mix_to_json, parse_image_mix

T0 = 1_800_000_000.0


def synthetic_records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Pulls spread over ~20 s: mostly ok, some failed (by class), some interrupted."""
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        start = T0 + rng.uniform(0, 20)
        duration = rng.lognormvariate(-2.5, 0.8)
        roll = rng.random()
        ok = roll < 0.85
        interrupted = roll >= 0.95
        result.append(
            {
                "start": start,
                "end": start + duration,
                "duration": duration,
                "image": rng.choice(["a/b:1", "c/d:2"]),
                "ok": ok,
                "error": None if ok or interrupted else rng.choice(["timeout", "reset"]),
                "message": None,
                "interrupted": interrupted,
                "bytes": 1000 if ok else 0,
                "blobs": 2,
                "phases": {"auth": 0.0, "manifest": duration / 3, "blobs": duration / 2},
                "worker": "host:1",
                "fresh": None,
            }
        )
    return result


def numpy_percentiles(durations: list[float]) -> dict[str, float]:
    values = numpy.array(durations)
    return {
        "p50": float(numpy.percentile(values, 50)),
        "p95": float(numpy.percentile(values, 95)),
        "p99": float(numpy.percentile(values, 99)),
        "max": float(values.max()),
    }


def test_window_summary_matches_an_independent_numpy_computation() -> None:
    pulls = synthetic_records(2000)
    start, end = T0 + 5, T0 + 12
    summary = records.summarize_window(pulls, start, end)

    in_window = [p for p in pulls if start <= p["end"] < end]
    ok = [p["duration"] for p in in_window if p["ok"] and not p["interrupted"]]
    failed = [p for p in in_window if not p["ok"] and not p["interrupted"]]
    expected = numpy_percentiles(ok)
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert summary["pulls"] == len(ok)
    assert summary["failed"] == len(failed)
    assert summary["interrupted"] == sum(1 for p in in_window if p["interrupted"])
    assert summary["failure_ratio"] == pytest.approx(len(failed) / (len(ok) + len(failed)))
    assert summary["pulls_per_second"] == pytest.approx(len(ok) / 7)
    assert summary["started"] == sum(1 for p in pulls if start <= p["start"] < end)
    assert summary["failures_by_class"] == {
        cls: sum(1 for p in failed if p["error"] == cls) for cls in ("reset", "timeout")
    }
    assert summary["p99"] <= summary["max"]


def test_an_empty_window_has_null_latencies_and_no_failure_ratio() -> None:
    summary = records.summarize_window(synthetic_records(50), T0 + 100, T0 + 110)
    assert summary["pulls"] == 0
    assert summary["p50"] is None and summary["max"] is None
    assert summary["failure_ratio"] is None
    assert summary["pulls_per_second"] == 0.0


def test_timeseries_buckets_by_second_and_matches_numpy_per_bucket() -> None:
    pulls = synthetic_records(3000, seed=11)
    series = records.timeseries(pulls, start=T0, end=T0 + 22)
    assert series["t"][:3] == [T0, T0 + 1, T0 + 2]
    assert len(series["t"]) == 22
    assert all(len(series[key]) == 22 for key in ("started", "completed", "failed", "p99"))
    assert sum(series["started"]) == len(pulls)
    assert sum(series["completed"]) == sum(1 for p in pulls if p["ok"])
    assert sum(series["failed"]) == sum(1 for p in pulls if not p["ok"] and not p["interrupted"])
    for index in (0, 7, 15):
        low, high = T0 + index, T0 + index + 1
        ok = [p["duration"] for p in pulls if p["ok"] and low <= p["end"] < high]
        assert series["completed"][index] == len(ok)
        assert series["p95"][index] == pytest.approx(numpy.percentile(ok, 95), rel=1e-12)
        assert series["max"][index] == max(ok)
    # Seconds without completed pulls have no latency, not zero latency.
    quiet = records.timeseries(pulls, start=T0 - 5, end=T0 + 1)
    assert quiet["p50"][:5] == [None] * 5
    assert quiet["completed"][:5] == [0] * 5


def test_records_are_read_from_every_process_file_skipping_a_torn_last_line(
    tmp_path: Path,
) -> None:
    pulls = synthetic_records(10)
    first = tmp_path / records.record_file_name("host:1")
    second = tmp_path / records.record_file_name("host:2")
    first.write_text("".join(json.dumps(p) + "\n" for p in pulls[:6]))
    # A process killed mid-write leaves half a line.
    second.write_text("".join(json.dumps(p) + "\n" for p in pulls[6:]) + '{"start": 18')
    read = records.read_records(tmp_path)
    assert len(read) == 10
    assert [p["start"] for p in read] == sorted(p["start"] for p in pulls)


def test_image_mix_accepts_every_documented_form(tmp_path: Path) -> None:
    expected = [
        ImageChoice("tiny/hello", "latest", 1.0),
        ImageChoice("shop/api", "shop-prod-2.0.1", 3.0),
    ]
    as_list = ["tiny/hello:latest", {"image": "shop/api:shop-prod-2.0.1", "weight": 3}]
    assert parse_image_mix(as_list) == expected
    assert parse_image_mix(json.dumps(as_list)) == expected
    assert parse_image_mix(mix_to_json(expected)) == expected
    mix_file = tmp_path / "mix.json"
    mix_file.write_text(json.dumps(as_list))
    assert parse_image_mix(f"@{mix_file}") == expected
    assert parse_image_mix("tiny/hello, shop/api:1") == [
        ImageChoice("tiny/hello", "latest"),
        ImageChoice("shop/api", "1"),
    ]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([], "at least one image"),
        (None, "at least one image"),
        ([{"image": "a/b:1", "weight": 0}], "positive number"),
        ([{"image": "a/b:1", "extra": 1}], '{"image"'),
        (["Not/Valid"], "invalid repository"),
        ("[not json", "not a JSON list"),
        ("@/nonexistent/mix.json", "cannot read"),
    ],
)
def test_image_mix_rejects_bad_input_with_a_reason(value: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=r"images|image reference") as raised:
        parse_image_mix(value)
    assert fragment in str(raised.value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("error", "in_body", "expected"),
    [
        (gevent.Timeout(), False, ErrorClass.TIMEOUT),
        (TimeoutError("timed out"), True, ErrorClass.TIMEOUT),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), False, ErrorClass.REFUSED),
        (ConnectionResetError(errno.ECONNRESET, "reset"), False, ErrorClass.RESET),
        (ConnectionResetError(errno.ECONNRESET, "reset"), True, ErrorClass.RESET),
        (HTTPConnectionClosed("connection closed."), True, ErrorClass.TRUNCATED),
        (HTTPConnectionClosed("connection closed."), False, ErrorClass.RESET),
        (HTTPParseError("bad"), False, ErrorClass.PROTOCOL),
        (HTTPParseError("Incomplete response."), True, ErrorClass.TRUNCATED),
        (OSError(errno.EHOSTUNREACH, "no route"), False, ErrorClass.REFUSED),
        (RetriesExceeded("u", 0, original=gevent.Timeout()), False, ErrorClass.TIMEOUT),
    ],
)
def test_transport_errors_map_to_the_same_classes_as_the_httpx_client(
    error: BaseException, in_body: bool, expected: ErrorClass
) -> None:
    assert from_exception(error, "blob x", in_body=in_body).error_class is expected


def test_a_real_refused_connection_is_classified_refused() -> None:
    agent = UserAgent(max_retries=0, connection_timeout=2, network_timeout=2)
    with pytest.raises(Exception) as raised:
        agent.urlopen(f"http://127.0.0.1:{free_port()}/v2/")
    assert from_exception(raised.value, "ping").error_class is ErrorClass.REFUSED
