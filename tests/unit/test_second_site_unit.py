"""The second site's pure parts: configs it renders, the receiver's records, the probes' input
checks and their reading of the events file (no server; the sandbox tests run the real ones)."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from chaosregistry.actions import network
from chaosregistry.faults.ledger import Ledger
from chaosregistry.osutil.files import append_line
from chaosregistry.probes.replication import push_events, replication_lag
from chaosregistry.sandbox.configs import toxiproxy_proxies, write_configs
from chaosregistry.sandbox.credentials import Credentials
from chaosregistry.sandbox.event_receiver import records
from chaosregistry.sandbox.implementations import IMPLEMENTATION_NAMES, implementation
from chaosregistry.sandbox.layout import (
    HOP_SYNC_DR,
    SECOND_SITE_PROCESS_NAMES,
    Layout,
    Ports,
    build_endpoints,
)
from chaosregistry.sandbox.second_site import notifications_config, regsync_config
from chaosregistry.sandbox.tls import ensure_sandbox_pki

PORTS = Ports(20000)
CREDS = Credentials("chaos", "not-a-real-password")


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    made = Layout.at(tmp_path / "run")
    made.make_dirs()
    ensure_sandbox_pki(made)
    return made


def test_endpoints_name_the_second_site_only_when_it_runs(layout: Layout) -> None:
    plain = build_endpoints(layout, PORTS)
    assert plain["second_site"] is False
    assert HOP_SYNC_DR not in plain["hops"]
    assert "dr_registry" not in plain and "events_file" not in plain

    dr = build_endpoints(layout, PORTS, second_site=True)
    assert dr["dr_registry"] == "https://127.0.0.1:20032"
    assert dr["event_receiver"] == "http://127.0.0.1:20041"
    assert dr["events_file"] == str(layout.run_dir / "state/events.jsonl")
    assert dr["hops"][HOP_SYNC_DR] == {
        "proxy": HOP_SYNC_DR,
        "listen": "127.0.0.1:20005",
        "upstream": "127.0.0.1:20032",
    }
    assert {k: v for k, v in dr.items() if k in plain and k != "second_site"} == {
        k: v for k, v in plain.items() if k not in ("hops", "second_site")
    } | {"hops": dr["hops"]}
    assert [hop["name"] for hop in toxiproxy_proxies(PORTS, second_site=True)][-1] == HOP_SYNC_DR
    assert (
        len(toxiproxy_proxies(PORTS)) == 4
    )  # client-registry, client-mirror, mirror-upstream, token-server


def test_the_second_sites_ports_are_inside_the_span_and_clash_with_none() -> None:
    ports = PORTS.all()
    assert len(set(ports.values())) == len(ports)
    assert all(PORTS.base <= port < PORTS.base + 50 for port in ports.values())


def test_notifications_post_to_the_receiver_under_the_senders_name_and_skip_pulls() -> None:
    section = notifications_config(PORTS, "registry-2")
    (endpoint,) = section["endpoints"]
    assert endpoint["url"] == "http://127.0.0.1:20041/events/registry-2"
    assert endpoint["ignore"] == {"actions": ["pull"]}
    # Distribution parses these as Go durations (2.8 and 3.1 alike).
    assert endpoint["timeout"] == "2s" and endpoint["backoff"] == "1s"


@pytest.mark.parametrize("name", IMPLEMENTATION_NAMES)
def test_written_configs_wire_the_replicas_dr_and_regsync(layout: Layout, name: str) -> None:
    chosen = implementation(name)
    write_configs(layout, PORTS, CREDS, "secret", chosen, second_site=True)
    dr = yaml.safe_load(layout.config_file("registry-dr").read_text())
    assert dr["http"]["addr"] == "127.0.0.1:20032"
    assert dr["http"]["tls"]["certificate"].endswith("sandbox-server.crt")
    assert dr["storage"]["filesystem"]["rootdirectory"] == str(layout.dr_storage)
    assert dr["notifications"]["endpoints"][0]["url"].endswith("/events/registry-dr")
    if name != "ggcr":
        replica = yaml.safe_load(layout.config_file("registry-1").read_text())
        assert replica["notifications"]["endpoints"][0]["url"].endswith("/events/registry-1")
    sync = yaml.safe_load(layout.config_file("regsync").read_text())
    (step,) = sync["sync"]
    assert step["type"] == "registry"
    assert step["repos"] == {"allow": ["replication/.*"]}
    assert step["target"] == "127.0.0.1:20005"  # through the sync-dr hop
    hosts = {entry["registry"]: entry for entry in sync["creds"]}
    assert hosts["127.0.0.1:20005"]["tls"] == "enabled"
    assert "BEGIN CERTIFICATE" in hosts["127.0.0.1:20005"]["regcert"]
    if chosen.capabilities.shared_storage:
        assert step["source"] == "127.0.0.1:20010"  # nginx, HTTPS
        assert hosts[step["source"]]["tls"] == "enabled"
    else:
        assert step["source"] == "127.0.0.1:20020"  # registry-1: ggcr replicas share nothing
        assert hosts[step["source"]]["tls"] == "disabled"
    # The file holds the password: owner only.
    assert layout.config_file("regsync").stat().st_mode & 0o777 == 0o600


def test_without_the_second_site_nothing_names_it(layout: Layout) -> None:
    write_configs(layout, PORTS, CREDS, "secret", implementation("distribution-2"))
    replica = yaml.safe_load(layout.config_file("registry-1").read_text())
    assert "notifications" not in replica
    assert not layout.config_file("regsync").exists()
    assert not layout.config_file("registry-dr").exists()
    assert SECOND_SITE_PROCESS_NAMES == ("registry-dr", "event-receiver", "regsync")


def test_regsync_config_holds_the_credentials_it_needs_and_no_others(layout: Layout) -> None:
    config = regsync_config(layout, PORTS, CREDS, implementation("distribution-3"))
    assert {(c["user"], c["pass"]) for c in config["creds"]} == {("chaos", "not-a-real-password")}
    assert config["defaults"]["skipDockerConfig"] is True


ENVELOPE = {
    "events": [
        {
            "id": "e1",
            "timestamp": "2026-12-01T15:08:27.763651144Z",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": 473,
                "digest": "sha256:" + "a" * 64,
                "repository": "replication/probe",
                "tag": "t1",
            },
            "actor": {"name": "chaos"},
            "request": {"addr": "127.0.0.1:1234", "useragent": "x"},
        },
        {"id": "e2", "timestamp": "not a time", "action": "delete", "target": {}},
    ]
}


def test_records_keep_the_event_fields_and_drop_the_actor_and_request() -> None:
    first, second = records(ENVELOPE, "registry-1", 1796137707.77)
    assert first == {
        "received_at": 1796137707.77,
        "registry": "registry-1",
        "id": "e1",
        "action": "push",
        "repository": "replication/probe",
        "tag": "t1",
        "digest": "sha256:" + "a" * 64,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "size": 473,
        "timestamp": "2026-12-01T15:08:27.763651144Z",
        "event_time": pytest.approx(1796137707.763651),
    }
    assert second["event_time"] is None and second["tag"] == ""


@pytest.mark.parametrize("body", [[], {"events": "x"}, {"events": [1]}, {"no": "events"}], ids=repr)
def test_records_refuse_what_is_not_an_envelope(body: Any) -> None:
    with pytest.raises(ValueError):
        records(body, "registry-1", 0.0)


def test_append_line_appends_whole_lines_and_refuses_a_newline(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append_line(path, '{"a": 1}')
    append_line(path, '{"a": 2}')
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'
    with pytest.raises(ValueError):
        append_line(path, "two\nlines")
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'


def fake_sandbox(tmp_path: Path, events: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A run dir with an endpoints.json (nothing runs) and an events file."""
    layout = Layout.at(tmp_path / "fake")
    layout.make_dirs()
    endpoints = build_endpoints(layout, PORTS, second_site=True) | extra
    layout.endpoints_file.write_text(json.dumps(endpoints))
    for event in events:
        append_line(layout.events_file, json.dumps(event))
    with layout.events_file.open("a") as handle:
        handle.write('{"half a line')  # a line being written is skipped
    return {"sandbox_dir": str(layout.run_dir)}


def event(registry: str, tag: str, received: float, created: float) -> dict[str, Any]:
    return {
        "action": "push",
        "registry": registry,
        "repository": "replication/probe",
        "tag": tag,
        "digest": "sha256:" + "b" * 64,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "received_at": received,
        "event_time": created,
    }


def test_push_events_counts_manifest_pushes_and_their_delivery(tmp_path: Path) -> None:
    blob = event("registry-1", "", 10.0, 9.0) | {"media_type": "application/octet-stream"}
    configuration = fake_sandbox(
        tmp_path,
        [
            event("registry-1", "t1", 10.5, 10.0),
            event("registry-2", "t2", 12.0, 11.0),
            event("registry-dr", "t1", 13.0, 12.5),
            blob,
        ],
        implementation="distribution-3",
    )
    result = push_events(configuration=configuration)
    assert result["supported"] is True and result["note"] == ""
    assert result["push_events"] == 3
    assert result["by_registry"] == {"registry-1": 1, "registry-2": 1, "registry-dr": 1}
    assert result["tags"] == 2
    assert result["delivery_seconds"]["min"] == 0.5
    assert result["delivery_seconds"]["max"] == 1.0
    only = push_events(registry="registry-dr", configuration=configuration)
    assert only["push_events"] == 1
    assert push_events(since_seconds=60, configuration=configuration)["push_events"] == 0


def test_push_events_says_ggcr_sends_none(tmp_path: Path) -> None:
    configuration = fake_sandbox(tmp_path, [], implementation="ggcr")
    result = push_events(configuration=configuration)
    assert result["supported"] is False
    assert "go-containerregistry" in result["note"]
    assert result["push_events"] == 0 and result["delivery_seconds"]["p50"] is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"image": "replication/probe:v1"}, "not a repository name .* no tag"),
        ({"image": "replication/probe@sha256:" + "c" * 64}, "not a repository name .* no tag"),
        ({"image": "shop/api"}, "copies only repositories matching 'replication/.*'"),
        ({"within": 0}, "within must be a positive number"),
        ({"within": 7200}, "within must be at most 3600 seconds"),
        ({"interval": -1}, "interval must be a positive number"),
    ],
)
def test_replication_lag_refuses_bad_input_in_one_line(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    configuration = fake_sandbox(tmp_path, [], implementation="distribution-2")
    with pytest.raises(ActivityFailed, match="replication_lag: .*" + message.replace("(", r"\(")):
        replication_lag(**arguments, configuration=configuration)


def test_push_events_refuses_a_negative_window(tmp_path: Path) -> None:
    configuration = fake_sandbox(tmp_path, [])
    with pytest.raises(ActivityFailed, match="since_seconds must be >= 0"):
        push_events(since_seconds=-1, configuration=configuration)


def test_a_partition_of_the_sync_hop_is_refused_where_there_is_none(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    configuration = {
        "toxiproxy_url": "http://127.0.0.1:1",  # never asked: the refusal comes first
        "hops": {"client-registry": "client-registry"},
        "ledger_dir": str(ledger),
    }
    with pytest.raises(ActivityFailed, match="unknown hop 'sync-dr'"):
        network.partition(hop="sync-dr", duration=5, configuration=configuration)
    outside = {**configuration, "hops": {"sync-dr": "sync-dr"}, "allowed_hops": ["other"]}
    with pytest.raises(ActivityFailed, match="hop 'sync-dr' is outside the blast radius"):
        network.partition(hop="sync-dr", duration=5, configuration=outside)
    assert Ledger(ledger).all() == []
