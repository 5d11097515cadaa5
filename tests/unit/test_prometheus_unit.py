"""Prometheus without a Prometheus: the SLI wire format and exporter metrics, the query client's
edge cases (httpx.MockTransport, for answers a healthy Prometheus never gives), an unreachable
Prometheus (a real closed port), results a range tolerance can compare, and the verdict."""

import json
import math
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from chaoslib.hypothesis import within_tolerance
from prometheus_client import CollectorRegistry

from chaosregistry.experiment.settings import parse_settings
from chaosregistry.gameday.runner import sandbox_needs
from chaosregistry.gameday.verdict import RunFacts, Verdict, judge
from chaosregistry.observability.prometheus import (
    BAD_QUERY,
    PROTOCOL,
    SERVER_ERROR,
    PrometheusClient,
    PrometheusError,
)
from chaosregistry.observability.sli import SliSink, parse_message
from chaosregistry.observability.sli_exporter import SliMetrics
from chaosregistry.probes import prometheus as prom_probes
from chaosregistry.sandbox.implementations import IMPLEMENTATIONS
from chaosregistry.sandbox.layout import Layout, Ports
from chaosregistry.sandbox.monitoring import RULES_FILE, prometheus_config


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the SLI wire format and the exporter ------------------------------------------------------
def test_a_pull_message_round_trips_and_updates_every_phase() -> None:
    received: list[bytes] = []

    class Capture(SliSink):
        def _send(self, message: str) -> None:
            received.append(message.encode())

    sink = Capture("127.0.0.1:9")
    sink.pull("https://r", True, None, 0.5, 0.1, 0.1, 0.3)
    sink.pull("https://r", False, "timeout", 2.0)
    sink.deploy(ok=False)
    registry = CollectorRegistry()
    metrics = SliMetrics(registry)
    for data in received:
        metrics.apply(data)
    metrics.apply(b"garbage\tline")
    value = registry.get_sample_value
    labels = {"target": "https://r", "outcome": "success"}
    assert value("chaosregistry_pull_duration_seconds_count", {**labels, "phase": "total"}) == 1
    assert value("chaosregistry_pull_duration_seconds_sum", {**labels, "phase": "blobs"}) == 0.3
    assert value("chaosregistry_pull_duration_seconds_bucket", {**labels, "phase": "total",
                                                                 "le": "0.5"}) == 1  # fmt: skip
    assert value("chaosregistry_pulls_total", {"outcome": "failure", "error_class": "timeout"}) == 1
    assert value("chaosregistry_pulls_total", {"outcome": "success", "error_class": "none"}) == 1
    assert value("chaosregistry_deploys_total", {"outcome": "failure"}) == 1
    assert value("chaosregistry_deploys_total", {"outcome": "success"}) == 0
    assert value("chaosregistry_sli_messages_total", {"kind": "pull"}) == 2
    assert value("chaosregistry_sli_malformed_total") == 1


def test_a_sink_without_an_exporter_drops_and_never_raises() -> None:
    sink = SliSink(f"127.0.0.1:{closed_port()}")
    for _ in range(3):  # the second send may see the first one's ICMP refusal
        sink.pull("https://r", True, None, 0.1)
    sink.close()
    assert SliSink(None).address is None
    SliSink(None).pull("https://r", True, None, 0.1)  # no exporter configured: a no-op


@pytest.mark.parametrize(
    "data", [b"pull\tt\tmaybe\tnone\t1\t0\t0\t0", b"deploy\tsometimes", b"pull\tt", b"\xff"]
)
def test_malformed_messages_are_refused(data: bytes) -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)):
        parse_message(data)


# -- configuration -----------------------------------------------------------------------------
def test_settings_come_from_configuration_else_the_sandbox(tmp_path: Path) -> None:
    (tmp_path / "endpoints.json").write_text(
        json.dumps({"prometheus": "http://127.0.0.1:9090/", "sli_sink": "127.0.0.1:9091"})
    )
    sandbox = parse_settings({"sandbox_dir": str(tmp_path)}).prometheus
    assert (sandbox.url, sandbox.sli_sink) == ("http://127.0.0.1:9090", "127.0.0.1:9091")
    mine = parse_settings(
        {"sandbox_dir": str(tmp_path), "prometheus_url": "http://prom:9090", "sli_sink": "h:1"}
    ).prometheus
    assert (mine.url, mine.sli_sink) == ("http://prom:9090", "h:1")


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("prometheus_url", "ftp://prom", "configuration.prometheus_url: "),
        ("sli_sink", "no-port", "configuration.sli_sink: must be host:port"),
        ("prometheus_timeout", 0, "configuration.prometheus_timeout: must be a positive"),
    ],
)
def test_bad_prometheus_settings_name_their_key(key: str, value: Any, words: str) -> None:
    from chaosregistry.experiment.settings import SettingError

    with pytest.raises(SettingError) as caught:
        parse_settings({key: value})
    assert caught.value.key == key and str(caught.value).startswith(words), str(caught.value)


def test_the_sandbox_scrapes_ggcr_replicas_not_at_all_and_loads_the_shipped_rules(
    tmp_path: Path,
) -> None:
    def jobs(name: str) -> dict[str, Any]:
        config = prometheus_config(Layout.at(tmp_path), Ports(20000), IMPLEMENTATIONS[name])
        assert config["global"]["scrape_interval"] == "1s"
        assert config["rule_files"] == [str(RULES_FILE)]
        return {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}

    assert set(jobs("distribution-2")) == {"registry", "mirror", "upstream", "chaosregistry"}
    assert [s["labels"]["replica"] for s in jobs("distribution-3")["registry"]] == [
        "registry-1",
        "registry-2",
    ]
    assert set(jobs("ggcr")) == {"mirror", "upstream", "chaosregistry"}


def test_prometheus_probes_need_the_sandbox_only_without_a_prometheus_url() -> None:
    experiment = {
        "method": [
            {
                "type": "probe",
                "name": "p99",
                "provider": {
                    "type": "python",
                    "module": "chaosregistry.probes.prometheus",
                    "func": "sli_pull_p99",
                },
            }
        ]
    }
    assert sandbox_needs(experiment, {}) == [
        "method[0] (p99) asks the sandbox's Prometheus (no prometheus_url)"
    ]
    assert sandbox_needs(experiment, {"prometheus_url": "http://prom:9090"}) == []


# -- the query client: edge cases --------------------------------------------------------------
def client_answering(status: int, body: Any) -> PrometheusClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return PrometheusClient("http://prom", transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}, BAD_QUERY),
        (422, {"status": "error", "errorType": "execution", "error": "too many"}, SERVER_ERROR),
        (503, b"Service Unavailable", SERVER_ERROR),
        (200, b"<html>a proxy's login page</html>", PROTOCOL),
        (200, {"status": "success", "data": {"resultType": "streams", "result": []}}, PROTOCOL),
    ],
)
def test_answers_that_are_not_numbers_are_classified(status: int, body: Any, kind: str) -> None:
    with pytest.raises(PrometheusError) as caught:
        client_answering(status, body).query("up")
    assert caught.value.kind == kind


def test_nan_infinity_and_labelled_sets_become_values_a_tolerance_can_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {
        "one": [{"metric": {}, "value": [1.0, "0.25"]}],
        "nan": [{"metric": {}, "value": [1.0, "NaN"]}],
        "inf": [{"metric": {}, "value": [1.0, "+Inf"]}],
        "none": [],
        "two": [
            {"metric": {"job": "a"}, "value": [1.0, "1"]},
            {"metric": {"job": "b"}, "value": [1.0, "NaN"]},
        ],
    }

    def answer(request: httpx.Request) -> httpx.Response:
        result = answers[request.url.params["query"]]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    transport = httpx.MockTransport(answer)
    monkeypatch.setattr(
        prom_probes, "_client", lambda _c: PrometheusClient("http://prom", transport=transport)
    )
    results = {name: prom_probes.prometheus_query(name) for name in answers}
    assert results["one"]["value"] == 0.25
    assert results["nan"]["value"] == "no value (NaN)"
    assert results["inf"]["value"] == "+Inf"
    assert results["none"]["value"] == "no value (no series)"
    assert results["two"]["values"] == {'{job="a"}': 1.0, '{job="b"}': None}
    json.dumps(results, allow_nan=False)  # every result is strict JSON
    # Chaos Toolkit's range tolerance compares each without raising: only 0.25 is within.
    tolerance = {"type": "range", "range": [0, 0.5], "target": "value"}
    assert {name: within_tolerance(tolerance, r) for name, r in results.items()} == {
        "one": True,
        "nan": False,
        "inf": False,
        "none": False,
        "two": False,
    }
    assert within_tolerance({"type": "range", "range": [0, math.inf], "target": "value"},
                            results["inf"])  # fmt: skip


def test_a_range_query_summarises_its_points(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {}, "values": [[10, "0.1"], [11, "NaN"], [12, "0.3"]]}],
        },
    }
    transport = httpx.MockTransport(lambda _r: httpx.Response(200, json=body))
    monkeypatch.setattr(
        prom_probes, "_client", lambda _c: PrometheusClient("http://prom", transport=transport)
    )
    result = prom_probes.prometheus_range("x", start=10, end=12, step=1)
    assert (result["points"], result["min"], result["max"], result["value"]) == (3, 0.1, 0.3, 0.3)
    assert result["series"][0]["points"][1] == [11.0, None]


# -- unreachable: a real closed port -----------------------------------------------------------
def test_an_unreachable_prometheus_is_a_classified_error_in_the_result() -> None:
    config = {"prometheus_url": f"http://127.0.0.1:{closed_port()}", "sli_sink": "127.0.0.1:9"}
    for result in (
        prom_probes.prometheus_query("up", configuration=config),
        prom_probes.prometheus_range("up", start=-10, configuration=config),
        prom_probes.sli_pull_p99(configuration=config),
        prom_probes.sli_deploy_success_rate(configuration=config),
        prom_probes.sli_cache_hit_ratio(configuration=config),
    ):
        assert result["ok"] is False
        assert result["error"]["class"] == "refused", result
        assert result["value"] == "no value (Prometheus: refused)"
        assert (
            within_tolerance({"type": "range", "range": [0, 1], "target": "value"}, result) is False
        )


def test_a_game_day_whose_prometheus_gave_no_answer_is_failed_with_a_note() -> None:
    output = {"ok": False, "error": {"class": "refused", "message": "cannot connect"}}
    probe = {
        "activity": {
            "type": "probe",
            "name": "p99-within-slo",
            "provider": {"module": "chaosregistry.probes.prometheus", "func": "sli_pull_p99"},
        },
        "status": "succeeded",
        "output": output,
    }
    # Chaos Toolkit's account: completed and met (a lenient or absent tolerance), in this
    # game day's own journal (its run id), the steady state measured before and after.
    steady = {**probe, "output": {"ok": True, "error": None, "value": 0.1}, "tolerance_met": True}
    journal = {
        "status": "completed",
        "deviated": False,
        "experiment": {
            "steady-state-hypothesis": {"probes": [steady["activity"]]},
            "method": [probe["activity"]],
        },
        "steady_states": {
            "before": {"probes": [steady]},
            "after": {"probes": [steady]},
            "during": [],
        },
        "run": [probe, {**probe, "activity": {**probe["activity"]}}],
        "rollbacks": [],
        "extensions": [{"name": "chaosregistry-run", "run_id": "r1"}],
    }
    judgement = judge(RunFacts(journal, run_id="r1", chaos_exit_code=0))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "probe 'p99-within-slo': Prometheus gave no answer (refused: cannot connect)",
    )
    answered = {**probe, "output": {"ok": True, "error": None, "value": 0.1}}
    both = RunFacts({**journal, "run": [answered]}, run_id="r1", chaos_exit_code=0)
    assert judge(both).verdict == Verdict.PASSED


# -- reports ------------------------------------------------------------------------------------
def test_the_report_charts_prometheus_series_on_the_run_timeline_with_the_slo(
    tmp_path: Path,
) -> None:
    from support.reports import T0, gameday, journal, write_run

    from chaosregistry.reports import build_report, build_summary
    from chaosregistry.reports.figures import TimeChart

    path = write_run(tmp_path / "run", journal(), gameday())
    series = [
        {"labels": {}, "points": [[T0 + t, 0.1 if t < 3 or t > 15 else 1.4] for t in range(20)]}
    ]
    (path.parent / "prometheus.json").write_text(
        json.dumps(
            {
                "prometheus": "http://127.0.0.1:9090",
                "series": [
                    {"name": "p99 pull time", "query": "q", "slo": 0.5, "unit": "s",
                     "error": None, "series": series},
                    {"name": "burn", "query": "b", "slo": None, "unit": None,
                     "error": {"class": "refused", "message": "down"}, "series": []},
                ],
            }
        )
    )  # fmt: skip
    _, _, charts = build_summary([path])
    by_id = {c.chart_id: c for c in charts[0] if isinstance(c, TimeChart)}
    p99 = by_id["prometheus-p99-pull-time"]
    assert p99.band is not None and (p99.band.low, p99.band.high) == (0.5, 0.5)
    assert "SLO 0.5s" in p99.band.label
    assert p99.windows and p99.windows[0].start == pytest.approx(2.4, abs=0.01)
    (line,) = p99.series
    assert line.x[0] == pytest.approx(0.0) and line.y[4] == 1.4
    assert "no answer: refused" in by_id["prometheus-burn"].caption
    html = build_report([path], tmp_path / "out").html.read_text()
    assert "Prometheus: p99 pull time" in html

    # The same series read against the fault window, in summary.json, the HTML and markdown.
    from chaosregistry.reports.markdown import render_markdown

    summary, _, _ = build_summary([path])
    markdown = render_markdown(summary)
    first, burn = summary["runs"][0]["prometheus_series"]
    window = p99.windows[0]
    inside = [t for t in range(20) if window.start <= t <= window.end]
    over = [t for t in inside if 3 <= t <= 15]
    assert first["before_mean"] == pytest.approx(0.1)
    assert first["during_max"] == 1.4
    expected_mean = (1.4 * len(over) + 0.1 * (len(inside) - len(over))) / len(inside)
    assert first["during_mean"] == pytest.approx(expected_mean)
    assert first["seconds_over_slo_during"] == len(over) and first["last"] == 0.1
    assert burn["error"]["class"] == "refused" and burn["points"] == 0
    assert burn["during_max"] is None and burn["seconds_over_slo_during"] is None
    assert f"| p99 pull time | 0.5 | 0.1 | 1.4 | 1.4 | {len(over)} s | 0.1 |" in markdown
    assert "| burn | – | – | – | – | – | – |" in markdown
    assert "Prometheus series against the fault windows" in html
