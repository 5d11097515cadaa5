"""The one verdict rule (chaosregistry.gameday.verdict) on small journals, and the sandbox-need
rule.

Journals have the shape Chaos Toolkit writes; load records the shape loadgen/records.py
documents, written to real files and read back through ``load_evidence``.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from chaosregistry.gameday.control import after_experiment_control, control_file, run_id_of
from chaosregistry.gameday.runner import sandbox_needs, second_site_needs
from chaosregistry.gameday.verdict import (
    Evidence,
    FaultEvidence,
    LoadEvidence,
    RunFacts,
    Verdict,
    exit_code_of,
    judge,
    load_evidence,
    most_urgent,
)

PULL = {"type": "python", "module": "chaosregistry.probes.pull", "func": "pull_latency"}
LOAD = {"type": "python", "module": "chaosregistry.actions.load", "func": "start_pull_load"}


def activity_run(
    name: str,
    kind: str,
    provider: dict[str, Any],
    status: str = "succeeded",
    output: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    activity = {"type": kind, "name": name, "provider": provider}
    return {"activity": activity, "status": status, "output": output, **extra}


def pulls(succeeded: int, errors: dict[str, int] | None = None, first: str | None = None) -> dict:
    count = succeeded + sum((errors or {}).values())
    return {
        "count": count,
        "succeeded": succeeded,
        "success_ratio": succeeded / count,
        "errors": errors or {},
        "first_error": first,
    }


RUN_ID = "nightly-a1b2c3"


def journal(
    before: list[dict[str, Any]] | None = None,
    run: list[dict[str, Any]] | None = None,
    status: str = "completed",
    deviated: bool = False,
    during: list[dict[str, Any]] | None = None,
    after: list[dict[str, Any]] | None = None,
    run_id: str | None = RUN_ID,
) -> dict[str, Any]:
    """A journal as Chaos Toolkit writes it, signed with ``run_id`` by our control; its
    experiment declares the hypothesis probes run before and a method of the runs' activities
    (one probe when there is none). The steady state after is GOOD_PROBE, judged, unless given."""
    before = before or []
    after = [AFTER_PROBE] if after is None else after
    declared = [p["activity"] for p in before + after] or [GOOD_PROBE["activity"]]
    method = [r["activity"] for r in run or []] or [METHOD_PROBE]
    data: dict[str, Any] = {
        "status": status,
        "deviated": deviated,
        "experiment": {
            "steady-state-hypothesis": {"probes": declared},
            "method": method,
        },
        "steady_states": {
            "before": {"steady_state_met": True, "probes": before},
            "after": {"steady_state_met": not deviated, "probes": after},
            "during": during or [],
        },
        "run": run or [],
    }
    if run_id is not None:
        data["extensions"] = [{"name": "chaosregistry-run", "run_id": run_id}]
    return data


def facts(data: dict[str, Any] | None, **changes: Any) -> RunFacts:
    """The game day's facts of a journal: its run id, and the exit status chaos run gives it."""
    explained = int(not data or data.get("status") != "completed" or bool(data.get("deviated")))
    given: dict[str, Any] = {"run_id": RUN_ID, "chaos_exit_code": explained, "configuration": {}}
    return RunFacts(data, **(given | changes))


METHOD_PROBE = {"type": "probe", "name": "pulls-during-the-fault", "provider": PULL}
AFTER_PROBE = {
    **activity_run("pull-p95-within-budget", "probe", PULL, output=pulls(20)),
    "tolerance_met": True,
}
GOOD_PROBE = AFTER_PROBE
GOOD_LOAD = LoadEvidence(
    "L1",
    "start-load",
    "/x",
    True,
    records=300,
    pulls=298,
    attempts=300,
    failures_by_class={"reset": 2},
)


def test_a_genuinely_good_run_passes_with_no_note() -> None:
    judgement = judge(facts(journal([GOOD_PROBE]), loads=(GOOD_LOAD,)))
    assert (judgement.verdict, judgement.exit_code, judgement.notes) == (Verdict.PASSED, 0, ())


def test_exit_codes_are_the_documented_ones() -> None:
    assert {v.value: v.exit_code for v in Verdict} == {
        "passed": 0,
        "error": 1,
        "deviated": 10,
        "failed": 11,
        "interrupted": 12,
        "left-behind": 13,
        "dry-run": 14,
    }
    assert exit_code_of("failed") == 11
    assert exit_code_of("no-such-verdict") == 1


def test_a_load_whose_every_pull_failed_fails_the_run_and_names_its_classes() -> None:
    load = LoadEvidence(
        "ab12cd",
        "start-load",
        "/x",
        True,
        records=812,
        pulls=0,
        attempts=812,
        failures_by_class={"auth": 812},
    )
    judgement = judge(facts(journal([GOOD_PROBE]), loads=(GOOD_LOAD, load)))
    assert judgement.verdict == Verdict.FAILED and judgement.exit_code == 11
    assert judgement.notes == ("load ab12cd: 0 of 812 pulls succeeded (auth 812)",)


def test_a_load_that_wrote_no_record_fails_the_run() -> None:
    load = LoadEvidence("ef34", "start-load", "/runs/load/ef34/pulls", True, records=0)
    judgement = judge(facts(journal([GOOD_PROBE]), loads=(load,)))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "load ef34: wrote no pull record (Locust never finished a pull; "
        "see /runs/load/ef34/locust.log)",
    )


def test_a_load_whose_records_are_gone_is_named_but_not_judged() -> None:
    load = LoadEvidence("gone", "start-load", "/moved/pulls", found=False)
    judgement = judge(facts(journal([GOOD_PROBE]), loads=(load,)))
    assert judgement.verdict == Verdict.PASSED
    assert judgement.notes == (
        "load gone: no records at /moved/pulls: whether it pulled is unknown",
    )


def test_a_deviated_run_whose_load_never_pulled_is_failed_not_deviated() -> None:
    load = LoadEvidence(
        "L2", "start-load", "/x", True, records=5, pulls=0, attempts=5, failures_by_class={"tls": 5}
    )
    assert judge(facts(journal([GOOD_PROBE], deviated=True))).verdict == Verdict.DEVIATED
    assert judge(facts(journal([GOOD_PROBE], deviated=True), loads=(load,))).verdict == (
        Verdict.FAILED
    )


def test_hypothesis_pulls_that_never_reached_the_registry_fail_the_run() -> None:
    tls = activity_run(
        "pull-p95-within-budget",
        "probe",
        PULL,
        output=pulls(0, {"tls": 20}, "certificate verify failed: unknown-ca"),
        tolerance_met=True,  # a lenient tolerance: the steady state was "met"
    )
    raised = activity_run(
        "every-pull-succeeds",
        "probe",
        PULL,
        status="failed",
        exception=["Traceback...\n", "ActivityFailed: registry_ca_bundle: no such file\n"],
    )
    for status, deviated in (("completed", False), ("completed", True), ("failed", False)):
        judgement = judge(facts(journal([tls, raised], status=status, deviated=deviated)))
        assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "probe 'pull-p95-within-budget': every pull failed before reaching the registry "
        "(tls: certificate verify failed: unknown-ca)",
        "probe 'every-pull-succeeds': every pull failed before reaching the registry "
        "(ActivityFailed: registry_ca_bundle: no such file)",
    )


def test_hypothesis_pulls_whose_registry_name_never_resolved_fail_the_run() -> None:
    dns = activity_run(
        "pull-p95-within-budget",
        "probe",
        PULL,
        output=pulls(0, {"dns": 20}, "ping: DNS name-not-known (Name or service not known)"),
        tolerance_met=True,
    )
    judgement = judge(facts(journal([dns])))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "probe 'pull-p95-within-budget': every pull failed before reaching the registry "
        "(dns: ping: DNS name-not-known (Name or service not known))",
    )


def test_one_hypothesis_pull_reaching_the_registry_leaves_the_verdict_to_the_steady_state() -> None:
    auth = activity_run("a", "probe", PULL, output=pulls(0, {"auth": 5}, "401"), tolerance_met=True)
    timeouts = activity_run(
        "b", "probe", PULL, output=pulls(0, {"timeout": 5}, "timed out"), tolerance_met=True
    )
    single = activity_run(
        "c",
        "probe",
        {**PULL, "func": "pull_image"},
        output={"ok": False, "error": {"class": "auth", "message": "401"}},
        tolerance_met=True,
    )
    # A timeout reached the network path under test: the steady state says what it means.
    assert judge(facts(journal([auth, timeouts], deviated=True))).verdict == Verdict.DEVIATED
    assert judge(facts(journal([auth, GOOD_PROBE]))).notes == ()
    assert judge(facts(journal([single]))).verdict == Verdict.FAILED


def test_a_failed_fault_action_is_named_and_fails_a_completed_run() -> None:
    exception = ["Traceback (most recent call last):\n", "ActivityFailed: kubeconfig missing\n"]
    kill = {"type": "python", "module": "chaosregistry.actions.node", "func": "kill_registry_node"}
    run = [activity_run("kill-registry-node", "action", kill, "failed", exception=exception)]
    judgement = judge(facts(journal([GOOD_PROBE], run)))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "action 'kill-registry-node' failed: ActivityFailed: kubeconfig missing",
    )


def test_precedence_left_behind_then_interrupted_then_failed() -> None:
    broken = LoadEvidence("L3", "start-load", "/x", True, records=0)
    good = journal([GOOD_PROBE])
    assert judge(facts(good, interrupted=True, loads=(broken,))).verdict == Verdict.INTERRUPTED
    assert judge(facts(journal(status="interrupted"))).verdict == Verdict.INTERRUPTED
    left = judge(facts(good, interrupted=True, left_behind=True, loads=(broken,)))
    assert left.verdict == Verdict.LEFT_BEHIND and left.notes[0].startswith("load L3")
    assert judge(facts(None)).verdict == Verdict.FAILED
    assert judge(facts(None, interrupted=True)).verdict == Verdict.INTERRUPTED
    assert judge(facts(journal(status="aborted"))).verdict == Verdict.FAILED


def test_a_check_failed_during_the_method_is_a_deviation() -> None:
    during = [{"steady_state_met": True}, {"steady_state_met": False}]
    assert judge(facts(journal([GOOD_PROBE], during=during))).verdict == Verdict.DEVIATED
    assert judge(facts(journal([GOOD_PROBE], during=during[:1]))).verdict == Verdict.PASSED


ALERTS = {
    "type": "python",
    "module": "chaosregistry.probes.prometheus",
    "func": "prometheus_alerts",
}


def method_check(value: float, tolerance: Any, status: str = "succeeded") -> dict[str, Any]:
    run = activity_run("alert-pages", "probe", ALERTS, status, {"ok": True, "value": value})
    run["activity"]["tolerance"] = tolerance
    return run


def test_a_method_probe_that_misses_its_tolerance_is_a_deviation_with_a_note() -> None:
    fires = {"type": "range", "range": [1, 1], "target": "value"}
    passed = judge(facts(journal([GOOD_PROBE], run=[method_check(1.0, fires)])))
    assert passed.verdict == Verdict.PASSED and passed.notes == ()
    missed = judge(facts(journal([GOOD_PROBE], run=[method_check(0.0, fires)])))
    assert missed.verdict == Verdict.DEVIATED
    assert missed.notes == (
        "method check 'alert-pages' out of tolerance "
        '{"type":"range","range":[1,1],"target":"value"}: output value=0.0',
    )
    # Chaos Toolkit's own rule: a plain boolean tolerance compares the whole output.
    assert judge(facts(journal([GOOD_PROBE], run=[method_check(1.0, True)]))).verdict == (
        Verdict.DEVIATED
    )


def test_method_tolerances_are_judged_with_the_values_the_run_used() -> None:
    # The journal keeps ${budget} as the experiment wrote it (2); the vars file made it 3.
    budget = {"type": "range", "range": [0, "${budget}"], "target": "value"}
    data = journal([GOOD_PROBE], run=[method_check(2.5, budget)])
    data["experiment"]["configuration"] = {"budget": 2}
    judgement = judge(facts(data, configuration={"budget": 3}))
    assert judgement.verdict == Verdict.PASSED, judgement.notes
    assert judgement.evidence[3] == Evidence(
        "tolerances judged with the run's values",
        True,
        "1 method check(s) judged with the run's values",
    )
    assert judge(facts(data, configuration={"budget": 2})).verdict == Verdict.DEVIATED
    # A value the run's configuration does not hold is a check that could not be judged.
    unknown = judge(facts(data, configuration={}))
    assert unknown.verdict == Verdict.FAILED
    assert unknown.notes[0] == (
        "method check 'alert-pages' could not be judged: its tolerance refers to ${budget}, "
        "which the run's configuration does not hold"
    )
    # Without the game day's values (a journal judged alone) the written value is used, and
    # the item stays unproven: the run may have used another.
    alone = judge(facts(data, configuration=None)).evidence[3]
    assert not alone.proven and "written configuration" in alone.detail


def test_a_method_check_that_could_not_be_judged_fails_the_run_with_its_reason() -> None:
    fires = {"type": "range", "range": [1, 1], "target": "value"}
    raised = method_check(0.0, fires, "failed")
    raised["exception"] = ["Traceback...\n", "ActivityFailed: image_pull_events: API error 500\n"]
    mistyped = method_check(1.0, {"type": "range", "range": [1, 1], "target": "nope"})
    mistyped["output"] = {"ok": True, "value": {"nested": 1}}
    cases = {
        "raised": (
            raised,
            "method check 'alert-pages' could not be judged: the probe raised: "
            "ActivityFailed: image_pull_events: API error 500",
        ),
        "probe-type": (
            method_check(0.0, {"type": "probe"}),
            "method check 'alert-pages' could not be judged: a tolerance of type probe is code "
            "the verdict does not run again (use a range, or move the check to the hypothesis)",
        ),
        "not applicable": (
            mistyped,
            "method check 'alert-pages' could not be judged: tolerance "
            '{"type":"range","range":[1,1],"target":"nope"} cannot be applied to its output '
            "(TypeError: conversion from dict to Decimal is not supported)",
        ),
    }
    for case, (run, note) in cases.items():
        judgement = judge(facts(journal([GOOD_PROBE], run=[run])))
        assert judgement.verdict == Verdict.FAILED, case
        assert judgement.notes[0] == note, case
        assert not judgement.evidence[3].proven
        assert judgement.notes[1] == (
            "not proven: tolerances judged with the run's values: could not be judged: "
            "'alert-pages' (0 other(s) judged)"
        )


def record(ok: bool, start: float, error: str | None = None, interrupted: bool = False) -> str:
    return json.dumps(
        {
            "start": start,
            "end": start + 0.1,
            "duration": 0.1,
            "image": "tiny/hello:latest",
            "ok": ok,
            "error": error,
            "message": None,
            "interrupted": interrupted,
            "bytes": 10,
            "blobs": 1,
            "phases": {},
            "worker": "h:1",
            "fresh": None,
        }
    )


def test_load_evidence_reads_the_records_the_start_action_named(tmp_path: Path) -> None:
    failing, good, empty = (tmp_path / n / "pulls" for n in ("failing", "good", "empty"))
    for directory in (failing, good, empty):
        directory.mkdir(parents=True)
    lines = [record(False, 1e9 + i, "auth") for i in range(3)] + [record(False, 2e9, "tls")]
    (failing / "pulls-h-1.jsonl").write_text("\n".join([*lines, record(False, 3e9, None, True)]))
    (failing / "pulls-h-2.jsonl").write_text('{"start": 1, "truncated mid-wri')
    (good / "pulls-h-1.jsonl").write_text(record(True, 1e9) + "\n" + record(False, 1e9, "reset"))
    run = [
        activity_run(
            "load-a", "action", LOAD, output={"load_id": "a", "records_dir": str(failing)}
        ),
        activity_run(
            "load-b", "action", LOAD, output={"load_id": "b", "stats_dir": str(good.parent)}
        ),
        activity_run("load-c", "action", LOAD, output={"load_id": "c", "records_dir": str(empty)}),
        activity_run("load-d", "action", LOAD, "failed", output=None),
        activity_run("load-e", "action", LOAD, output={"load_id": "e", "records_dir": "/nowhere"}),
    ]
    loads = load_evidence(journal(run=run), tmp_path)
    assert [(x.load_id, x.found, x.records, x.pulls, x.attempts) for x in loads] == [
        ("a", True, 5, 0, 4),
        ("b", True, 2, 1, 2),
        ("c", True, 0, 0, 0),
        ("e", False, 0, 0, 0),
    ]
    assert loads[0].failures_by_class == {"auth": 3, "tls": 1} and loads[0].interrupted == 1
    assert judge(facts(journal([GOOD_PROBE], run=run), loads=loads)).notes == (
        "action 'load-d' failed: no exception recorded",
        "load a: 0 of 4 pulls succeeded (auth 3, tls 1, 1 cut short)",
        f"load c: wrote no pull record (Locust never finished a pull; see {empty.parent}"
        "/locust.log)",
        "load e: no records at /nowhere: whether it pulled is unknown",
    )


def test_load_evidence_finds_records_moved_with_the_run_directory(tmp_path: Path) -> None:
    moved = tmp_path / "load" / "a" / "pulls"
    moved.mkdir(parents=True)
    (moved / "pulls-h-1.jsonl").write_text(record(True, 1e9))
    run = [activity_run("load", "action", LOAD, output={"load_id": "a", "records_dir": "/gone"})]
    (loaded,) = load_evidence(journal(run=run), tmp_path)
    assert (loaded.found, loaded.pulls) == (True, 1)


# -- does the game day need the sandbox? -------------------------------------------------------
def experiment(*activities: dict[str, Any]) -> dict[str, Any]:
    probe = {"type": "probe", "name": "pulls", "provider": {**PULL, "arguments": {"image": "a:b"}}}
    return {"steady-state-hypothesis": {"probes": [probe]}, "method": list(activities)}


def action(name: str, module: str, func: str, **arguments: Any) -> dict[str, Any]:
    provider = {"type": "python", "module": module, "func": func, "arguments": arguments}
    return {"type": "action", "name": name, "provider": provider}


EXTERNAL = {"backend": "local", "registry_url": "https://registry.example.internal"}


def test_an_experiment_on_configured_registries_needs_no_sandbox() -> None:
    load = action("load", "chaosregistry.actions.load", "start_pull_load", images=["a:b"])
    by_url = action(
        "push",
        "chaosregistry.actions.content",
        "push_fresh_image",
        image="x:y",
        target="https://other.example.internal",
    )
    shell = {"type": "action", "name": "sh", "provider": {"type": "process", "path": "true"}}
    assert sandbox_needs(experiment(load, by_url, shell), EXTERNAL) == []


def test_what_needs_the_second_site_is_named_from_the_declared_registry_targets() -> None:
    # replication-partition: the lag probe reaches replication_source and dr_registry by its
    # defaults (both declared registry targets), the partition faults the sync-dr hop.
    lag = {
        **action("lag", "chaosregistry.probes.replication", "replication_lag", within=20),
        "type": "probe",
    }
    cut = action("cut", "chaosregistry.actions.network", "partition", hop="${sync_hop}")
    configuration = {"backend": "local", "sync_hop": "sync-dr"}
    assert second_site_needs(experiment(lag, cut), configuration) == [
        "method[0] (lag) reaches 'replication_source'",
        "method[0] (lag) reaches 'dr_registry'",
        "method[1] (cut) faults the sync-dr hop",
    ]
    # Named registries the configuration gives URLs for, and other hops, need no second site.
    given = {
        **configuration,
        "replication_source_url": "https://a.example.internal",
        "dr_registry_url": "https://b.example.internal",
        "sync_hop": "client-registry",
    }
    assert second_site_needs(experiment(lag, cut), given) == []
    assert second_site_needs(experiment(), configuration) == []


def test_what_needs_the_sandbox_is_named() -> None:
    mirror_load = action(
        "load", "chaosregistry.actions.load", "start_pull_load", target="${load_target}"
    )
    configuration = {**EXTERNAL, "load_target": "mirror"}
    assert sandbox_needs(experiment(mirror_load), configuration) == [
        "method[0] (load) targets 'mirror' and there is no mirror_url"
    ]
    assert (
        sandbox_needs(experiment(mirror_load), {**configuration, "mirror_url": "https://m"}) == []
    )
    assert sandbox_needs(experiment(), {"backend": "local"}) == [
        "steady-state-hypothesis.probes[0] (pulls) targets 'registry' and there is no registry_url"
    ]
    kill = action("kill", "chaosregistry.actions.node", "kill_registry_node", node="registry-1")
    latency = action("slow", "chaosregistry.actions.network", "add_latency", hop="client-registry")
    cold = action(
        "cold", "chaosregistry.actions.load", "start_pull_load", mode="cold", target="https://r"
    )
    metrics = {**action("m", "chaosregistry.probes.registry", "registry_metrics"), "type": "probe"}
    reasons = sandbox_needs(
        experiment(kill, latency, cold, metrics), EXTERNAL | {"load_origin": "origin"}
    )
    assert [r.split(" ", 2)[1:] for r in reasons] == [
        ["(kill)", "kills and restarts the sandbox's registry processes"],
        ["(slow)", "puts its fault on a sandbox hop (no toxiproxy_url and hops)"],
        ["(cold)", "targets 'origin' and there is no origin_url"],
        ["(m)", "reads a sandbox replica's metrics (no metrics_url)"],
    ]
    toxiproxy = {"toxiproxy_url": "http://127.0.0.1:8474", "hops": {"client-registry": "p"}}
    assert sandbox_needs(experiment(latency), EXTERNAL | toxiproxy) == []
    assert sandbox_needs(experiment(), EXTERNAL | {"sandbox_dir": "runs/sb"}) == [
        "the configuration names a sandbox_dir"
    ]


def test_a_steady_state_not_met_before_the_method_fails_even_when_chaos_says_completed() -> None:
    # Chaos Toolkit 1.44 with --rollback-strategy always: "completed", not deviated, no method.
    p99 = activity_run("p99", "probe", PULL, output={**pulls(20), "p99": 0.9}, tolerance_met=False)
    p99["activity"]["tolerance"] = {"type": "range", "range": [0, 0.5], "target": "p99"}
    data = journal([GOOD_PROBE, p99], after=[])
    data["steady_states"]["before"]["steady_state_met"] = False
    # The method declared a fault, which never ran: not "no fault injected", proven.
    latency = action("add-latency", "chaosregistry.actions.network", "add_latency")
    data["experiment"]["method"] = [latency, METHOD_PROBE]
    judgement = judge(facts(data))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes[0] == (
        "the steady state was not met before the method (p99: output p99=0.9): the method never ran"
    )
    faults = judgement.evidence[2]
    assert (faults.name, faults.proven) == ("faults applied, confirmed and measured", False)
    assert faults.detail == "the method's action(s) add-latency never ran"


def test_a_failed_check_names_its_probe_error_class_reason_and_message() -> None:
    message = "https://127.0.0.1:23000/v2/: TLS unknown-ca (certificate verify failed)"
    error = {"class": "tls", "message": message, "status": None, "detail": {"reason": "unknown-ca"}}
    reachable = activity_run(
        "reachable",
        "probe",
        {"type": "python", "module": "chaosregistry.probes.registry", "func": "registry_reachable"},
        output={"reachable": False, "error": error},
        tolerance_met=False,
    )
    reachable["activity"]["tolerance"] = {"type": "jsonpath", "path": "$.reachable", "expect": True}
    data = journal([reachable], after=[])
    data["steady_states"]["before"]["steady_state_met"] = False
    (note, *_) = judge(facts(data)).notes
    assert note == (
        f"the steady state was not met before the method (reachable: tls/unknown-ca: {message}): "
        "the method never ran"
    )
    # After the method: the deviation names what deviated, and why.
    slow = activity_run(
        "pull-p95-within-budget",
        "probe",
        PULL,
        output=pulls(3, {"timeout": 2}, "GET /v2/tiny/hello/manifests/latest: timed out"),
        tolerance_met=False,
    )
    slow["activity"]["tolerance"] = {"type": "range", "range": [1, 1], "target": "success_ratio"}
    deviated = judge(facts(journal([GOOD_PROBE], after=[slow], deviated=True)))
    assert deviated.verdict == Verdict.DEVIATED
    assert deviated.notes == (
        "the steady state did not hold after the method (pull-p95-within-budget: output "
        "success_ratio=0.6; timeout 2: GET /v2/tiny/hello/manifests/latest: timed out)",
    )


# -- the evidence: this run's journal ----------------------------------------------------------
def test_a_good_run_shows_every_item_of_its_evidence_proven() -> None:
    judgement = judge(facts(journal([GOOD_PROBE])))
    assert [(e.name, e.proven) for e in judgement.evidence] == [
        ("this run's journal", True),
        ("steady state before and after", True),
        ("faults applied, confirmed and measured", True),
        ("tolerances judged with the run's values", True),
    ]
    assert [e.detail for e in judgement.evidence] == [
        f"run {RUN_ID}; chaos run exited 0 (status completed)",
        "before: 1 probe(s) judged; after: 1 probe(s) judged",
        "no fault injected",
        "no probe of the method declares a tolerance",
    ]
    assert judgement.evidence[0].as_dict() == {
        "name": "this run's journal",
        "proven": True,
        "detail": f"run {RUN_ID}; chaos run exited 0 (status completed)",
    }


@pytest.mark.parametrize(
    ("data", "changes", "note"),
    [
        (
            None,
            {"chaos_exit_code": 1},
            "not proven: this run's journal: no journal: chaos run exited 1 without writing one",
        ),
        (
            None,  # Chaos Toolkit itself crashed (a range tolerance given a null): say on what
            {
                "chaos_exit_code": 1,
                "chaos_last_words": "TypeError: conversion from NoneType to Decimal is not"
                " supported",
            },
            "not proven: this run's journal: no journal: chaos run exited 1 without writing one"
            " (its last words: TypeError: conversion from NoneType to Decimal is not supported)",
        ),
        (
            journal([GOOD_PROBE], run_id=None),  # yesterday's, from before run ids, or not ours
            {},
            f"not proven: this run's journal: the journal carries no run id, this run's is "
            f"{RUN_ID}: a journal an earlier run left in the run directory?",
        ),
        (
            journal([GOOD_PROBE], run_id="nightly-000000"),
            {},
            f"not proven: this run's journal: the journal is run nightly-000000's, not this "
            f"run's ({RUN_ID}): a journal an earlier run left in the run directory?",
        ),
        (
            journal([GOOD_PROBE]),  # completed, not deviated: chaos run exits 0
            {"chaos_exit_code": 1},
            f"not proven: this run's journal: run {RUN_ID}: chaos run exited 1, which its "
            "journal (status completed) does not explain (it would exit 0)",
        ),
        (
            journal([GOOD_PROBE]),
            {"chaos_exit_code": -9},
            f"not proven: this run's journal: run {RUN_ID}: chaos run exited -9, which its "
            "journal (status completed) does not explain (it would exit 0)",
        ),
        (
            journal([GOOD_PROBE]),  # `chaosregistry report` without gameday.json
            {"run_id": None},
            "not proven: this run's journal: no game day's run id to find in the journal (no "
            "gameday.json beside it, or one from before run ids): whose journal it is cannot be "
            "told",
        ),
    ],
)
def test_a_journal_that_is_not_this_runs_own_fails_the_run(
    data: dict[str, Any] | None, changes: dict[str, Any], note: str
) -> None:
    judgement = judge(facts(data, **changes))
    assert (judgement.verdict, judgement.exit_code) == (Verdict.FAILED, 11)
    assert note in judgement.notes
    assert not judgement.evidence[0].proven


def test_a_deviated_journal_explains_chaos_runs_exit_status_1() -> None:
    judgement = judge(facts(journal([GOOD_PROBE], deviated=True), chaos_exit_code=1))
    assert judgement.verdict == Verdict.DEVIATED and judgement.evidence[0].proven


# -- the evidence: the steady state ------------------------------------------------------------
def test_a_journal_that_ran_nothing_is_not_passed() -> None:
    # A well-formed journal, status completed: no steady state, no activity.
    empty = journal(after=[])
    empty["experiment"] = {"steady-state-hypothesis": {"probes": []}, "method": []}
    judgement = judge(facts(empty))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "not proven: steady state before and after: the experiment declares no steady-state probe",
    )


def test_an_empty_method_proves_nothing() -> None:
    data = journal([GOOD_PROBE])
    data["experiment"]["method"] = []
    judgement = judge(facts(data))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "not proven: steady state before and after: the method is empty: nothing ran between "
        "the checks",
    )


def test_a_steady_state_never_checked_after_the_method_is_not_passed() -> None:
    # runtime.hypothesis.strategy before-method-only in a vars file or settings, say: the
    # experiment does not declare it, so no after-check is not allowed.
    judgement = judge(facts(journal([GOOD_PROBE], after=[])))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "not proven: steady state before and after: no probe judged after the method "
        "(before: 1 probe(s) judged; after: 0 probe(s) judged)",
    )


def test_a_declared_strategy_that_skips_a_phase_passes_with_a_note_saying_so() -> None:
    data = journal([GOOD_PROBE], after=[])
    data["experiment"]["extensions"] = [
        {"name": "chaosregistry", "hypothesis_strategy": "before-method-only"}
    ]
    judgement = judge(facts(data))
    assert judgement.verdict == Verdict.PASSED
    assert judgement.evidence[1].detail == "before: 1 probe(s) judged (strategy before-method-only)"
    assert judgement.notes == (
        "the steady state was not checked after the method: the experiment's hypothesis "
        "strategy before-method-only (its chaosregistry extension) skips it",
    )
    # during-method-only: the checks during the method are what must have been judged.
    data["experiment"]["extensions"][0]["hypothesis_strategy"] = "during-method-only"
    data["steady_states"]["before"]["probes"] = []
    assert judge(facts(data)).verdict == Verdict.FAILED
    data["steady_states"]["during"] = [{"steady_state_met": True, "probes": [GOOD_PROBE]}]
    during = judge(facts(data))
    assert during.verdict == Verdict.PASSED and len(during.notes) == 2


# -- the evidence: faults ----------------------------------------------------------------------
LATENCY = FaultEvidence(
    "fa01", "network.latency", "hop:client-registry", True, True, True, detail="toxic seen"
)
LATENCY_ACTION = activity_run(
    "add-latency",
    "action",
    {"type": "python", "module": "chaosregistry.actions.network", "func": "add_latency"},
    output={"fault_id": "fa01", "kind": "network.latency", "target": "hop:client-registry"},
)


def test_a_fault_applied_confirmed_and_measured_is_proven() -> None:
    judgement = judge(facts(journal([GOOD_PROBE], run=[LATENCY_ACTION]), faults=(LATENCY,)))
    assert judgement.verdict == Verdict.PASSED
    assert judgement.evidence[2] == Evidence(
        "faults applied, confirmed and measured",
        True,
        "1 fault(s): fa01 (network.latency on hop:client-registry): toxic seen",
    )


def test_a_fault_not_confirmed_or_not_measured_fails_the_run_with_its_detail() -> None:
    unconfirmed = dataclasses.replace(
        LATENCY, confirmed=False, measured=False, detail="Chaos Mesh said injected: unconfirmed"
    )
    judgement = judge(facts(journal([GOOD_PROBE], run=[LATENCY_ACTION]), faults=(unconfirmed,)))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "not proven: faults applied, confirmed and measured: fault fa01 (network.latency on "
        "hop:client-registry) not confirmed, measured: Chaos Mesh said injected: unconfirmed",
    )


def test_a_fault_the_journal_reports_without_evidence_is_not_proven() -> None:
    judgement = judge(facts(journal([GOOD_PROBE], run=[LATENCY_ACTION])))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "not proven: faults applied, confirmed and measured: fault fa01 (network.latency on "
        "hop:client-registry): no evidence recorded of it",
    )


def test_a_dry_run_has_a_verdict_of_its_own_below_interrupted_and_left_behind() -> None:
    dry = dataclasses.replace(LATENCY, applied=False, confirmed=False, dry_run=True, detail="")
    good = journal([GOOD_PROBE], run=[LATENCY_ACTION])
    judgement = judge(facts(good, faults=(dry,)))
    assert (judgement.verdict, judgement.exit_code) == (Verdict.DRY_RUN, 14)
    assert judgement.notes == (
        "not proven: faults applied, confirmed and measured: fault fa01 (network.latency on "
        "hop:client-registry): a dry run, nothing applied",
    )
    broken = LoadEvidence("L3", "start-load", "/x", True, records=0)
    assert judge(facts(good, faults=(dry,), loads=(broken,))).verdict == Verdict.DRY_RUN
    assert judge(facts(good, faults=(dry,), interrupted=True)).verdict == Verdict.INTERRUPTED
    assert judge(facts(good, faults=(dry,), left_behind=True)).verdict == Verdict.LEFT_BEHIND
    # Chaos Toolkit's own dry run (chaos run --dry) is one too.
    chaos_dry = journal([GOOD_PROBE])
    chaos_dry["experiment"]["dry"] = "actions"
    assert judge(facts(chaos_dry)).verdict == Verdict.DRY_RUN


def test_several_runs_are_summed_up_by_their_most_urgent_verdict() -> None:
    assert most_urgent(["passed", "dry-run", "failed"]) == Verdict.DRY_RUN
    assert most_urgent(["dry-run", "left-behind"]) == Verdict.LEFT_BEHIND  # 13 over 14
    assert most_urgent(["passed", "nonsense"]) == Verdict.ERROR
    assert most_urgent([]) == Verdict.PASSED


def test_a_failed_rollback_is_noted() -> None:
    data = journal([GOOD_PROBE])
    data["rollbacks"] = [
        activity_run(
            "restore-certificate",
            "action",
            {"type": "python", "module": "chaosregistry.actions.certificate", "func": "x"},
            status="failed",
            exception=["Traceback...\n", "ActivityFailed: nginx did not reload\n"],
        )
    ]
    judgement = judge(facts(data))
    assert judgement.notes == (
        "rollback 'restore-certificate' failed: ActivityFailed: nginx did not reload",
    )


# -- the game day's side of the evidence ------------------------------------------------------
def test_the_run_control_signs_the_journal_and_the_verdict_reads_it() -> None:
    state: dict[str, Any] = {"status": "completed"}
    after_experiment_control(context={}, state=state, run_id="r-1")
    assert run_id_of(state) == "r-1"
    assert control_file("r-1")["chaosregistry-run"]["provider"] == {
        "type": "python",
        "module": "chaosregistry.gameday.control",
        "arguments": {"run_id": "r-1"},
    }
    assert run_id_of({"extensions": "junk"}) is None and run_id_of(None) is None
