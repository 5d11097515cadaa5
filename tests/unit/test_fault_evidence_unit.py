"""What a run shows about each of its faults (chaosregistry.gameday.fault_evidence): applied,
confirmed, and measured by traffic through the faulted hop or by a probe or load that crossed
its target inside its window.

Ledger entries are built as the lifecycle stores them, journals in the shape Chaos Toolkit
writes, the sandbox's endpoints by ``sandbox.layout`` itself, load records as loadgen writes
them; the ledger's own keeping of an undo's observations is checked on a real ledger.
"""

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from chaosregistry.faults.ledger import Entry, FaultState, Ledger, RevertReason
from chaosregistry.gameday.fault_evidence import fault_evidence, hop_bytes
from chaosregistry.gameday.verdict import LoadEvidence
from chaosregistry.loadgen.store import LOAD_KIND
from chaosregistry.sandbox.layout import Layout, Ports, build_endpoints
from chaosregistry.sandbox.toxiproxy import parse_received_bytes

T0 = 1_800_000_000.0
PULL = {"type": "python", "module": "chaosregistry.probes.pull", "func": "pull_latency"}
ROLLOUT = {"type": "python", "module": "chaosregistry.probes.rollout", "func": "rollout_time"}
REPLICATION = {
    "type": "python",
    "module": "chaosregistry.probes.replication",
    "func": "replication_lag",
}
SIGNATURE = {
    "type": "python",
    "module": "chaosregistry.probes.signature",
    "func": "image_signature",
}
LOAD = {"type": "python", "module": "chaosregistry.actions.load", "func": "start_pull_load"}
AGREEMENT = {
    "type": "python",
    "module": "chaosregistry.probes.blast_radius",
    "func": "prediction_agreement",
}
BLAST_RADIUS = {
    "type": "python",
    "module": "chaosregistry.probes.blast_radius",
    "func": "blast_radius",
}
CONFIRMED = {"injected": "confirmed", "confirmed_by": "checked"}


@pytest.fixture
def sandbox_dir(tmp_path: Path) -> Path:
    """A directory holding the endpoints a sandbox on base port 15000 publishes (second site
    on): what the evidence reads of the sandbox's wiring."""
    layout = Layout.at(tmp_path / "sandbox")
    layout.run_dir.mkdir()
    endpoints = build_endpoints(layout, Ports(15000), second_site=True)
    layout.endpoints_file.write_text(json.dumps(endpoints))
    return layout.run_dir


def iso(epoch: float) -> str:
    """A journal time as Chaos Toolkit writes it (naive UTC)."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).replace(tzinfo=None).isoformat()


def entry(
    kind: str = "network.latency",
    target: str = "hop:client-registry",
    *,
    applied: dict[str, Any] | None = None,
    injected_at: float | None = T0 + 10,
    reverted_at: float | None = T0 + 20,
    state: FaultState = FaultState.REVERTED,
    last_error: str | None = None,
) -> Entry:
    return Entry(
        id="f0a1b2c3d4e5",
        kind=kind,
        target=target,
        parameters={},
        undo={"kind": "toxiproxy.toxic", "params": {}},
        created_at=T0 + 9,
        expires_at=T0 + 100,
        owner=None,
        state=state,
        applied=applied,
        injected_at=injected_at,
        reverted_at=reverted_at,
        last_error=last_error,
    )


def traffic(upstream: int, downstream: int) -> dict[str, Any]:
    return {"proxy": "p", "at": T0, "received": {"upstream": upstream, "downstream": downstream}}


def probe(
    name: str, provider: dict[str, Any], start: float, end: float, **arguments: Any
) -> dict[str, Any]:
    activity = {"type": "probe", "name": name, "provider": {**provider, "arguments": arguments}}
    return {"activity": activity, "status": "succeeded", "start": iso(start), "end": iso(end)}


def journal(*runs: dict[str, Any], during: list[dict[str, Any]] | None = None) -> dict:
    return {
        "status": "completed",
        "steady_states": {
            "before": {"steady_state_met": True, "probes": []},
            "after": {"steady_state_met": True, "probes": []},
            "during": [{"steady_state_met": True, "probes": during or []}],
        },
        "run": list(runs),
    }


def only(entries: list[Entry], run_journal: dict | None, **options: Any) -> Any:
    (evidence,) = fault_evidence(entries, run_journal, **options)
    return evidence


# -- applied and confirmed -----------------------------------------------------------------------
def test_a_dry_run_fault_is_marked_dry_run_and_never_applied(sandbox_dir: Path) -> None:
    dry = entry(applied={"dry_run": True, "would_apply": {}, "injected": "unconfirmed"})
    evidence = only([dry], journal(), configuration={"sandbox_dir": str(sandbox_dir)})
    assert (evidence.dry_run, evidence.applied, evidence.confirmed) == (True, False, False)
    assert "dry run" in evidence.detail


def test_a_dry_run_action_that_recorded_no_fault_has_dry_run_evidence() -> None:
    """The bad-tag deploy records no ledger entry when it changes nothing."""
    deploy = {"type": "python", "module": "chaosregistry.actions.deploy", "func": "deploy_bad_tag"}
    run = {
        "activity": {"type": "action", "name": "bad-tag", "provider": deploy},
        "status": "succeeded",
        "output": {"deployment": "demo", "dry_run": True, "would_apply": {}},
    }
    (evidence,) = fault_evidence([], journal(run))
    assert (evidence.id, evidence.dry_run, evidence.applied) == ("dry-run:bad-tag", True, False)
    assert fault_evidence([], journal()) == ()


def test_a_chaos_mesh_injection_never_reported_is_applied_but_not_confirmed() -> None:
    unconfirmed = entry(applied={"object": "NetworkChaos x", "injected": "unconfirmed"})
    evidence = only([unconfirmed], journal())
    assert (evidence.applied, evidence.confirmed, evidence.measured) == (True, False, False)
    assert "injected: unconfirmed" in evidence.detail


def test_an_applied_record_without_the_backends_confirmation_is_not_confirmed() -> None:
    evidence = only([entry(applied={"toxic": {"name": "t"}})], journal())
    assert evidence.applied and not evidence.confirmed


def test_a_fault_that_failed_to_inject_is_not_applied_and_says_why() -> None:
    failed = entry(
        applied=None,
        injected_at=None,
        state=FaultState.FAILED_TO_INJECT,
        last_error="inject failed: ToxiproxyError: unreachable",
    )
    evidence = only([failed], journal())
    assert not evidence.applied
    assert "unreachable" in evidence.detail


def test_a_loads_own_ledger_entry_is_not_a_fault() -> None:
    load = entry(kind=LOAD_KIND, target="load:abc", applied=CONFIRMED)
    assert fault_evidence([load], journal()) == ()


# -- measured: bytes through the hop -------------------------------------------------------------
def test_bytes_through_the_faulted_hop_inside_the_window_measure_it() -> None:
    applied = {
        **CONFIRMED,
        "hop_traffic": traffic(100, 2000),
        "at_revert": {"hop_traffic": traffic(900, 52_000)},
    }
    evidence = only([entry(applied=applied)], journal())
    assert evidence.measured
    assert "50800 bytes crossed the hop" in evidence.detail


def test_a_hop_whose_counters_did_not_move_met_no_measurement() -> None:
    applied = {
        **CONFIRMED,
        "hop_traffic": traffic(100, 2000),
        "at_revert": {"hop_traffic": traffic(100, 2000)},
    }
    evidence = only([entry(applied=applied)], journal())
    assert not evidence.measured
    assert "met no measurement" in evidence.detail
    assert "no bytes crossed the hop" in evidence.detail


def test_counters_that_went_back_are_no_evidence_either_way() -> None:
    applied = {"hop_traffic": traffic(500, 500), "at_revert": {"hop_traffic": traffic(0, 10)}}
    assert hop_bytes(applied) is None
    assert hop_bytes({"hop_traffic": traffic(1, 1)}) is None  # never read at revert


# -- measured: probes and loads that crossed the target -------------------------------------------
def test_latency_on_a_hop_no_probe_uses_met_no_measurement(sandbox_dir: Path) -> None:
    fault = entry(target="hop:client-mirror", applied=CONFIRMED)
    run = journal(probe("pulls", PULL, T0 + 11, T0 + 15, image="a:1", target="registry"))
    evidence = only([fault], run, configuration={"sandbox_dir": str(sandbox_dir)})
    assert not evidence.measured
    assert evidence.detail.startswith("met no measurement in its 10.0s window")


def test_an_apply_that_took_much_of_the_duration_is_said_with_the_window(
    sandbox_dir: Path,
) -> None:
    # Asked for 6 s from its record; the apply took 4 s of them, so it was in place for 2.
    slow = dataclasses.replace(
        entry(target="hop:client-mirror", applied=CONFIRMED, injected_at=T0 + 13),
        expires_at=T0 + 15,
        reverted_at=T0 + 15,
    )
    evidence = only([slow], journal(), configuration={"sandbox_dir": str(sandbox_dir)})
    assert evidence.detail.startswith(
        "met no measurement in its 2.0s window (its apply took 4.0s of the 6s asked)"
    )
    # A quick apply (1 s of 91 s, the default entry) is not remarked on.
    quick = only(
        [entry(applied=CONFIRMED)], journal(), configuration={"sandbox_dir": str(sandbox_dir)}
    )
    assert "apply" not in quick.detail


def test_a_probe_through_the_hop_inside_the_window_measures_it(sandbox_dir: Path) -> None:
    fault = entry(target="hop:client-registry", applied=CONFIRMED)
    run = journal(probe("pulls-during", PULL, T0 + 11, T0 + 15, image="a:1"))  # default target
    evidence = only([fault], run, configuration={"sandbox_dir": str(sandbox_dir)})
    assert evidence.measured
    assert "pulls-during" in evidence.detail


def test_a_probe_after_a_short_fault_ended_did_not_measure_it(sandbox_dir: Path) -> None:
    """A 1 s fault, then a 5 s pause before the probes: they pulled through a healthy hop."""
    fault = entry(applied=CONFIRMED, injected_at=T0 + 10, reverted_at=T0 + 11)
    run = journal(probe("pulls", PULL, T0 + 16, T0 + 18, image="a:1"))
    evidence = only([fault], run, configuration={"sandbox_dir": str(sandbox_dir)})
    assert not evidence.measured


def test_a_check_during_the_method_counts_like_a_method_probe(sandbox_dir: Path) -> None:
    fault = entry(applied=CONFIRMED)
    run = journal(during=[probe("steady", PULL, T0 + 12, T0 + 13, image="a:1")])
    assert only([fault], run, configuration={"sandbox_dir": str(sandbox_dir)}).measured


def test_arguments_from_the_configuration_are_resolved(sandbox_dir: Path) -> None:
    fault = entry(target="hop:client-mirror", applied=CONFIRMED)
    run = journal(probe("pulls", PULL, T0 + 11, T0 + 12, image="a:1", target="${where}"))
    configuration = {"sandbox_dir": str(sandbox_dir), "where": "mirror"}
    assert only([fault], run, configuration=configuration).measured


def test_a_cut_mirror_upstream_is_crossed_by_pulls_through_the_mirror(sandbox_dir: Path) -> None:
    """A disabled proxy counts no bytes: the mirror's pulls, which go on through its upstream
    hop, are the evidence (followed through the sandbox's wiring)."""
    fault = entry(kind="network.partition", target="hop:mirror-upstream", applied={**CONFIRMED})
    run = journal(probe("uncached", PULL, T0 + 11, T0 + 14, image="s:1", target="mirror"))
    assert only([fault], run, configuration={"sandbox_dir": str(sandbox_dir)}).measured


def test_a_killed_replica_is_crossed_by_registry_pulls_not_mirror_pulls(sandbox_dir: Path) -> None:
    kill = entry(kind="node.kill", target="node:registry-1", applied=CONFIRMED)
    configuration = {"sandbox_dir": str(sandbox_dir)}
    through_mirror = journal(probe("m", PULL, T0 + 11, T0 + 14, image="a:1", target="mirror"))
    through_registry = journal(probe("r", PULL, T0 + 11, T0 + 14, image="a:1"))
    assert not only([kill], through_mirror, configuration=configuration).measured
    assert only([kill], through_registry, configuration=configuration).measured


def test_killed_registry_pods_are_crossed_by_pulls_of_the_registry_they_serve(
    sandbox_dir: Path,
) -> None:
    """Kubernetes registry_nodes: registry-1 is the cluster's registry pods, not the sandbox's
    process of the same name (the node-kill game day on the kubernetes backend)."""
    kill = entry(kind="node.kill", target="node:registry-1", applied=CONFIRMED)
    cluster_registry = "https://10.96.0.50:5000"
    configuration = {
        "backend": "kubernetes",
        "sandbox_dir": str(sandbox_dir),
        "registry_url": cluster_registry,
        "registry_nodes": {
            "registry-1": {"namespace": "registry", "selector": {"app": "registry"}}
        },
    }
    through_registry = journal(probe("r", PULL, T0 + 11, T0 + 14, image="a:1"))
    elsewhere = journal(
        probe("s", PULL, T0 + 11, T0 + 14, image="a:1", target="https://127.0.0.1:15000")
    )
    assert only([kill], through_registry, configuration=configuration).measured
    assert not only([kill], elsewhere, configuration=configuration).measured


def test_a_certificate_fault_is_crossed_by_pulls_of_the_server_it_changed(
    sandbox_dir: Path,
) -> None:
    endpoints = json.loads((sandbox_dir / "endpoints.json").read_text())
    fault = entry(
        kind="certificate.expired",
        target="tls:registry",
        applied={**CONFIRMED, "url": endpoints["registry_direct"]},
    )
    run = journal(probe("pull", PULL, T0 + 11, T0 + 12, image="a:1"))
    assert only([fault], run, configuration={"sandbox_dir": str(sandbox_dir)}).measured


def test_the_kubelet_pulls_through_the_hop_node_pulls_names(sandbox_dir: Path) -> None:
    """rollout-under-registry-latency: 500 ms on client-registry; with mirror-first the node
    pulls through the mirror and the rollout measured nothing of the fault."""
    fault = entry(
        target="hop:client-registry",
        applied={
            **CONFIRMED,
            "hop_traffic": traffic(10, 10),
            "at_revert": {"hop_traffic": traffic(10, 10)},
        },
    )
    run = journal(probe("time-to-available", ROLLOUT, T0 + 11, T0 + 16, deployment="demo"))
    base = {"backend": "kubernetes", "sandbox_dir": str(sandbox_dir)}
    mirror_first = only([fault], run, configuration={**base, "node_pulls": "mirror-first"})
    origin = only([fault], run, configuration={**base, "node_pulls": "origin"})
    unsaid = only([fault], run, configuration=base)
    assert not mirror_first.measured
    assert origin.measured
    assert unsaid.measured  # without node_pulls the node may pull either way


def test_a_killed_mirror_is_crossed_by_the_kubelet_unless_it_pulls_from_the_origin(
    sandbox_dir: Path,
) -> None:
    kill = entry(kind="node.kill", target="node:mirror", applied=CONFIRMED)
    run = journal(probe("pull-events", ROLLOUT, T0 + 11, T0 + 16, deployment="demo"))
    base = {"backend": "kubernetes", "sandbox_dir": str(sandbox_dir)}
    assert only([kill], run, configuration={**base, "node_pulls": "mirror-first"}).measured
    assert only([kill], run, configuration=base).measured
    assert not only([kill], run, configuration={**base, "node_pulls": "origin"}).measured


PULL_EVENTS = {
    "type": "python",
    "module": "chaosregistry.probes.rollout",
    "func": "image_pull_events",
}


def test_the_mirrors_upstream_throttled_is_crossed_by_the_kubelet_unless_it_pulls_from_the_origin(
    sandbox_dir: Path,
) -> None:
    """mirror-upstream-throttled-rollout: the mirror's upstream (nginx's mirror-upstream server,
    what the fault's ``url`` names) answers 429 while a release rolls out; a node that pulls
    through the mirror asks it through the mirror, one that pulls from the origin never does.
    A cached pull straight from the origin registry crosses nothing of it."""
    endpoints = json.loads((sandbox_dir / "endpoints.json").read_text())
    throttled = entry(
        kind="mirror.upstream-status",
        target="upstream:mirror",
        applied={**CONFIRMED, "url": endpoints["token_registry"], "status": 429},
    )
    run = journal(probe("pull-events", PULL_EVENTS, T0 + 11, T0 + 16, deployment="demo"))
    base = {"backend": "kubernetes", "sandbox_dir": str(sandbox_dir)}
    mirror_first = only([throttled], run, configuration={**base, "node_pulls": "mirror-first"})
    assert mirror_first.measured and "pull-events" in mirror_first.detail
    assert not only([throttled], run, configuration={**base, "node_pulls": "origin"}).measured
    from_origin = journal(probe("origin", PULL, T0 + 11, T0 + 14, image="a:1"))
    assert not only([throttled], from_origin, configuration=base).measured


def test_a_replication_probe_crosses_the_hop_into_its_replica(sandbox_dir: Path) -> None:
    fault = entry(kind="network.partition", target="hop:sync-dr", applied=CONFIRMED)
    run = journal(probe("push-during", REPLICATION, T0 + 11, T0 + 15, image="replication/p"))
    assert only([fault], run, configuration={"sandbox_dir": str(sandbox_dir)}).measured


def test_an_image_fault_is_crossed_by_a_probe_of_that_image() -> None:
    fault = entry(kind="signature.tamper", target="image:signed/app:1.0", applied=CONFIRMED)
    same = journal(probe("sig", SIGNATURE, T0 + 11, T0 + 12, image="signed/app:1.0"))
    other = journal(probe("sig", SIGNATURE, T0 + 11, T0 + 12, image="signed/app:2.0"))
    assert only([fault], same).measured
    assert not only([fault], other).measured


def test_a_deployment_fault_is_crossed_by_a_probe_of_that_deployment() -> None:
    fault = entry(kind="deploy.bad-tag", target="deployment:shop/demo", applied=CONFIRMED)
    same = journal(probe("failed", ROLLOUT, T0 + 11, T0 + 30, deployment="demo"))
    other = journal(probe("failed", ROLLOUT, T0 + 11, T0 + 30, deployment="api"))
    assert only([fault], same).measured
    assert not only([fault], other).measured


def test_the_prediction_agreement_crosses_its_namespaces_deployments_and_their_pulls(
    sandbox_dir: Path,
) -> None:
    """blast-radius-verified: the probe that judges every provoked Deployment of a namespace
    measures each provocation there and the cut the kubelet's pulls met; the prediction alone
    (the same namespace, nothing provoked or pulled) measures neither."""
    provoked = entry(kind="deploy.provoke", target="deployment:verify/cold", applied=CONFIRMED)
    elsewhere = entry(kind="deploy.provoke", target="deployment:other/cold", applied=CONFIRMED)
    cut = entry(kind="network.partition", target="hop:client-registry", applied=CONFIRMED)
    configuration = {"backend": "kubernetes", "sandbox_dir": str(sandbox_dir)}
    judged = journal(probe("agree", AGREEMENT, T0 + 11, T0 + 15, namespace="verify"))
    assert only([provoked], judged, configuration=configuration).measured
    assert not only([elsewhere], judged, configuration=configuration).measured
    assert only([cut], judged, configuration=configuration).measured
    predicted = journal(probe("predict", BLAST_RADIUS, T0 + 11, T0 + 15, namespace="verify"))
    assert not only([provoked], predicted, configuration=configuration).measured
    assert not only([cut], predicted, configuration=configuration).measured


def write_records(directory: Path, pulls: list[tuple[float, float]]) -> None:
    directory.mkdir(parents=True)
    lines = [
        json.dumps(
            {"start": s, "end": e, "duration": e - s, "ok": True, "image": "a:1", "bytes": 10}
        )
        for s, e in pulls
    ]
    (directory / "pulls-host-1.jsonl").write_text("\n".join(lines) + "\n")


def load_journal(target_url: str) -> dict:
    started = {
        "activity": {"type": "action", "name": "load", "provider": LOAD},
        "status": "succeeded",
        "output": {"load_id": "L1", "target_url": target_url},
        "start": iso(T0),
        "end": iso(T0 + 1),
    }
    return journal(started)


def test_a_load_pull_through_the_hop_inside_the_window_measures_it(
    sandbox_dir: Path, tmp_path: Path
) -> None:
    endpoints = json.loads((sandbox_dir / "endpoints.json").read_text())
    records = tmp_path / "load" / "pulls"
    fault = entry(target="hop:client-mirror", applied=CONFIRMED)
    configuration = {"sandbox_dir": str(sandbox_dir)}
    load = LoadEvidence("L1", "load", str(records), found=True)
    write_records(records, [(T0 + 2, T0 + 3), (T0 + 19, T0 + 21)])
    through_mirror = only(
        [fault], load_journal(endpoints["mirror"]), configuration=configuration, loads=[load]
    )
    through_registry = only(
        [fault], load_journal(endpoints["registry"]), configuration=configuration, loads=[load]
    )
    assert through_mirror.measured and "load L1" in through_mirror.detail
    assert not through_registry.measured


def test_a_load_whose_pulls_all_ended_before_the_fault_did_not_measure_it(
    sandbox_dir: Path, tmp_path: Path
) -> None:
    endpoints = json.loads((sandbox_dir / "endpoints.json").read_text())
    records = tmp_path / "load" / "pulls"
    write_records(records, [(T0 + 2, T0 + 3), (T0 + 4, T0 + 9.5)])
    load = LoadEvidence("L1", "load", str(records), found=True)
    evidence = only(
        [entry(applied=CONFIRMED)],
        load_journal(endpoints["registry"]),
        configuration={"sandbox_dir": str(sandbox_dir)},
        loads=[load],
    )
    assert not evidence.measured


def test_a_fault_never_reverted_is_judged_up_to_the_end_of_the_run(sandbox_dir: Path) -> None:
    fault = entry(applied=CONFIRMED, reverted_at=None, state=FaultState.REVERT_FAILED)
    run = journal(probe("late", PULL, T0 + 40, T0 + 41, image="a:1"))
    configuration = {"sandbox_dir": str(sandbox_dir)}
    assert only([fault], run, configuration=configuration, run_ended=T0 + 50).measured
    assert not only([fault], run, configuration=configuration, run_ended=T0 + 30).measured


def test_a_journal_with_odd_values_yields_evidence_without_failing(sandbox_dir: Path) -> None:
    odd = [
        probe("int-target", PULL, T0 + 11, T0 + 12, image="a:1", target=5),
        {"activity": "not a mapping", "start": iso(T0 + 11), "end": iso(T0 + 12)},
        {"activity": {"type": "probe", "provider": PULL}, "start": "yesterday", "end": None},
        probe("unknown-func", {**PULL, "func": "no_such_probe"}, T0 + 11, T0 + 12),
    ]
    evidence = only(
        [entry(applied=CONFIRMED)], journal(*odd), configuration={"sandbox_dir": str(sandbox_dir)}
    )
    assert not evidence.measured


# -- the pieces the evidence stands on -----------------------------------------------------------
def test_toxiproxy_received_bytes_are_read_per_proxy_and_direction() -> None:
    exposition = "\n".join(
        [
            "# TYPE toxiproxy_proxy_received_bytes_total counter",
            'toxiproxy_proxy_received_bytes_total{direction="downstream",listener="127.0.0.1:1",'
            'proxy="client-registry",upstream="127.0.0.1:2"} 808',
            'toxiproxy_proxy_received_bytes_total{direction="upstream",listener="127.0.0.1:1",'
            'proxy="client-registry",upstream="127.0.0.1:2"} 158',
            'toxiproxy_proxy_received_bytes_total{direction="upstream",listener="127.0.0.1:3",'
            'proxy="client-mirror",upstream="127.0.0.1:4"} 5',
            'toxiproxy_proxy_sent_bytes_total{direction="upstream",listener="127.0.0.1:1",'
            'proxy="client-registry",upstream="127.0.0.1:2"} 999',
        ]
    )
    assert parse_received_bytes(exposition, "client-registry") == {
        "upstream": 158,
        "downstream": 808,
    }
    assert parse_received_bytes(exposition, "token-server") == {"upstream": 0, "downstream": 0}


def test_the_ledger_keeps_what_an_undo_observed_with_what_was_applied(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger")
    undo = {"kind": "toxiproxy.toxic", "params": {}}
    recorded = ledger.record("network.latency", "hop:x", {}, undo, 60, owner_pid=None)
    ledger.mark_injected(recorded.id, {"toxic": "t", "hop_traffic": traffic(1, 2)})
    reverted = ledger.mark_reverted(
        recorded.id, RevertReason.ROLLBACK, observed={"hop_traffic": traffic(3, 4)}
    )
    stored = ledger.get(recorded.id).applied
    assert stored == reverted.applied
    assert stored is not None
    assert stored["toxic"] == "t"
    assert stored["at_revert"] == {"hop_traffic": traffic(3, 4)}
    assert hop_bytes(stored) == 4
