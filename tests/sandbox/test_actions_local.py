"""Local-backend faults on the real sandbox: each is in effect while active, gone after its
undo or its expiry, and always recorded in the ledger; bad input injects nothing."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from support.faults import (
    SETTLES_WITHIN,
    assert_refused_before_recording,
    assert_reverted_at_expiry,
)
from support.polling import eventually
from support.pulls import delayed_responses, fastest_pull
from support.sandbox import SandboxInfo

from chaosregistry.actions import network, node
from chaosregistry.faults.ledger import FaultState, Ledger
from chaosregistry.probes import pull as pull_probes
from chaosregistry.sandbox import status
from chaosregistry.sandbox.toxiproxy import Toxiproxy

HOPS = ("client-registry", "client-mirror", "mirror-upstream")


@pytest.fixture
def configuration(sandbox: SandboxInfo, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A configuration with a ledger of its own; checks nothing is left behind after the test."""
    config = {"sandbox_dir": str(sandbox.run_dir), "ledger_dir": str(tmp_path / "ledger")}
    yield config
    network.remove_network_faults(configuration=config)
    node.restart_registry_node(configuration=config)
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as api:
        for hop in HOPS:
            assert api.toxics(hop) == [], f"toxic left on {hop}"
            assert api.proxy(hop)["enabled"]
    assert Ledger(tmp_path / "ledger").active() == []


def toxics(sandbox: SandboxInfo, hop: str = "client-registry") -> list[dict[str, Any]]:
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as api:
        return api.toxics(hop)


def test_latency_is_seen_by_pulls_and_gone_after_its_undo(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    image = "tiny/hello:latest"
    fault = network.add_latency(latency_ms=300, duration=30, configuration=configuration)
    assert fault["state"] == "injected" and fault["target"] == "hop:client-registry"
    assert fault["applied"]["toxic"]["attributes"]["latency"] == 300
    # Every pull pays at least two delayed responses, the fastest too.
    assert fastest_pull(configuration, image) >= delayed_responses(300)
    undone = network.remove_network_faults(hop="client-registry", configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    assert toxics(sandbox) == []
    # Gone: a pull faster than the fault allows.
    assert fastest_pull(configuration, image) < delayed_responses(300)
    entry = Ledger(configuration["ledger_dir"]).get(fault["fault_id"])
    assert entry.state is FaultState.REVERTED and entry.revert_reason == "rollback"


def test_a_fault_ends_by_itself_at_its_duration(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = network.add_latency(latency_ms=100, duration=1.5, configuration=configuration)
    assert len(toxics(sandbox)) == 1
    eventually("the toxic removed", lambda: toxics(sandbox) == [], timeout=1.5 + SETTLES_WITHIN)
    # The watchdog removes the toxic, verifies it gone, then marks the entry reverted: the
    # entry follows the toxic a moment later.
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"])


def test_bandwidth_limit_slows_blob_transfer(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    image = "shop/frontend:shop-prod-1.4.2"  # ~400 KB
    network.limit_bandwidth(rate_kbps=200, duration=30, configuration=configuration)
    result = pull_probes.pull_image(image, configuration=configuration)
    assert result["ok"]
    assert result["timings"]["blobs"] > 1.2  # 400 KB at 200 KB/s is ~2 s
    assert result["throughput_bytes_per_second"] < 300_000


@pytest.mark.parametrize(
    ("mode", "expected"), [("blackhole", {"timeout"}), ("refuse", {"refused", "reset"})]
)
def test_partition_modes_fail_pulls_with_their_class(
    sandbox: SandboxInfo, configuration: dict[str, Any], mode: str, expected: set[str]
) -> None:
    network.partition(mode=mode, duration=30, configuration=configuration)
    result = pull_probes.pull_image(
        "tiny/hello:latest", timeout=1, configuration={**configuration, "registry_timeout": 30}
    )
    assert not result["ok"]
    assert result["error"]["class"] in expected
    # The probe's 1 s, not the configured 30 s (the bound leaves a loaded machine room).
    assert result["timings"]["total"] < 10
    network.remove_network_faults(configuration=configuration)
    assert pull_probes.pull_image("tiny/hello:latest", configuration=configuration)["ok"]


def test_a_second_refusing_partition_of_a_cut_hop_is_refused_and_changes_nothing(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    first = network.partition(mode="refuse", duration=30, configuration=configuration)
    with pytest.raises(ActivityFailed) as caught:
        network.partition(mode="refuse", duration=30, configuration=configuration)
    message = str(caught.value)
    assert "'client-registry' is cut already" in message and "\n" not in message
    # Only the first is recorded, and the hop stays cut until the first one's own undo.
    assert [e.id for e in Ledger(configuration["ledger_dir"]).all()] == [first["fault_id"]]
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as api:
        assert api.proxy("client-registry")["enabled"] is False
    network.remove_network_faults(configuration=configuration)
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as api:
        assert api.proxy("client-registry")["enabled"] is True


def test_reset_and_truncate_faults_are_classified(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    network.reset_connections(duration=30, configuration=configuration)
    reset = pull_probes.pull_image("tiny/hello:latest", configuration=configuration)
    assert reset["error"]["class"] == "reset"
    network.remove_network_faults(configuration=configuration)

    network.truncate_transfers(after_bytes=200_000, duration=30, configuration=configuration)
    cut = pull_probes.pull_image("medium/app:latest", configuration=configuration)
    assert cut["error"]["class"] == "truncated"


def test_faults_on_the_mirror_hop_leave_the_registry_hop_alone(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    network.partition(hop="client-mirror", duration=30, configuration=configuration)
    assert toxics(sandbox, "client-mirror") and toxics(sandbox) == []
    assert pull_probes.pull_image("tiny/hello:latest", configuration=configuration)["ok"]
    mirror = pull_probes.pull_image(
        "tiny/hello:latest", target="mirror", timeout=1, configuration=configuration
    )
    assert mirror["error"]["class"] == "timeout"


def running(sandbox: SandboxInfo, name: str) -> bool:
    return bool(status(sandbox.run_dir)["processes"][name]["running"])


def test_killing_one_node_keeps_pulls_working_through_nginx(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = node.kill_registry_node(node="registry-1", duration=30, configuration=configuration)
    assert fault["applied"] == {
        "signal": "SIGKILL",
        "was_running": True,
        "injected": "confirmed",
        "confirmed_by": "registry-1's process group gone after SIGKILL",
    }
    assert not running(sandbox, "registry-1")
    during = pull_probes.pull_latency(
        "tiny/hello:latest", count=10, concurrency=2, configuration=configuration
    )
    assert during["success_ratio"] == 1.0
    node.restart_registry_node(node="registry-1", configuration=configuration)
    assert running(sandbox, "registry-1")


def test_killing_the_mirror_fails_pulls_through_it_until_the_restart(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = node.kill_registry_node(node="mirror", duration=30, configuration=configuration)
    assert (fault["kind"], fault["target"]) == ("node.kill", "node:mirror")
    assert fault["applied"] == {
        "signal": "SIGKILL",
        "was_running": True,
        "injected": "confirmed",
        "confirmed_by": "mirror's process group gone after SIGKILL",
    }
    assert not running(sandbox, "mirror")
    through_mirror = pull_probes.pull_latency(
        "tiny/hello:latest", count=2, target="mirror", timeout=5, configuration=configuration
    )
    assert through_mirror["success_ratio"] == 0.0, through_mirror
    # The origin is untouched: a mirror-first client's fallback still pulls.
    origin = pull_probes.pull_latency("tiny/hello:latest", count=2, configuration=configuration)
    assert origin["success_ratio"] == 1.0
    reverted = node.restart_registry_node(node="mirror", configuration=configuration)
    assert reverted["count"] == 1 and reverted["reverted"][0]["state"] == "reverted"
    assert running(sandbox, "mirror")
    after = pull_probes.pull_latency(
        "tiny/hello:latest", count=2, target="mirror", configuration=configuration
    )
    assert after["success_ratio"] == 1.0


def test_a_killed_node_is_restarted_after_restart_after(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    node.kill_registry_node(
        node="registry-2", restart_after=1, duration=30, configuration=configuration
    )
    assert not running(sandbox, "registry-2")
    eventually(
        "registry-2 running again",
        lambda: running(sandbox, "registry-2"),
        timeout=1 + SETTLES_WITHIN,
    )


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda c: network.add_latency(hop="client-nowhere", configuration=c), "hop must be one"),
        (lambda c: network.add_latency(duration=-5, configuration=c), "duration"),
        (lambda c: network.add_latency(duration=0, configuration=c), "duration"),
        (lambda c: network.add_latency(duration=7200, configuration=c), "limit"),
        (lambda c: network.add_latency(latency_ms=100, jitter_ms=200, configuration=c), "jitter"),
        (lambda c: network.add_latency(latency_ms="300", configuration=c), "latency_ms"),
        (lambda c: network.partition(mode="sideways", configuration=c), "mode"),
        (lambda c: network.limit_bandwidth(rate_kbps=0, configuration=c), "rate_kbps"),
        (
            lambda c: node.kill_registry_node(node="registry-9", configuration=c),
            "unknown registry node",
        ),
        (
            lambda c: node.kill_registry_node(restart_after=99, duration=10, configuration=c),
            "restart_after",
        ),
        (lambda c: network.add_latency(configuration={**c, "backend": "mainframe"}), "backend"),
        (
            lambda c: network.add_latency(configuration={**c, "allowed_hops": ["client-mirror"]}),
            "blast radius",
        ),
    ],
)
def test_bad_input_is_one_line_and_injects_nothing(
    sandbox: SandboxInfo, configuration: dict[str, Any], call: Any, fragment: str
) -> None:
    assert_refused_before_recording(
        lambda: call(configuration), fragment, configuration["ledger_dir"]
    )
    assert toxics(sandbox) == []
    assert running(sandbox, "registry-1") and running(sandbox, "registry-2")
