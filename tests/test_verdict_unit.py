"""The one verdict rule (chaosregistry.verdict) on small journals, and the sandbox-need rule.

Journals have the shape Chaos Toolkit writes; load records the shape loadgen/records.py
documents, written to real files and read back through ``load_evidence``.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from chaosregistry.gameday import sandbox_needs
from chaosregistry.verdict import (
    LoadEvidence,
    RunFacts,
    Verdict,
    exit_code_of,
    judge,
    load_evidence,
)

pytestmark = pytest.mark.unit

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


def journal(
    before: list[dict[str, Any]] | None = None,
    run: list[dict[str, Any]] | None = None,
    status: str = "completed",
    deviated: bool = False,
    during: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "deviated": deviated,
        "steady_states": {
            "before": {"steady_state_met": True, "probes": before or []},
            "after": {"steady_state_met": not deviated, "probes": []},
            "during": during or [],
        },
        "run": run or [],
    }


GOOD_PROBE = activity_run("pull-p95-within-budget", "probe", PULL, output=pulls(20))
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
    judgement = judge(RunFacts(journal([GOOD_PROBE]), loads=(GOOD_LOAD,)))
    assert (judgement.verdict, judgement.exit_code, judgement.notes) == (Verdict.PASSED, 0, ())


def test_exit_codes_are_the_documented_ones() -> None:
    assert {v.value: v.exit_code for v in Verdict} == {
        "passed": 0,
        "error": 1,
        "deviated": 10,
        "failed": 11,
        "interrupted": 12,
        "left-behind": 13,
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
    judgement = judge(RunFacts(journal([GOOD_PROBE]), loads=(GOOD_LOAD, load)))
    assert judgement.verdict == Verdict.FAILED and judgement.exit_code == 11
    assert judgement.notes == ("load ab12cd: 0 of 812 pulls succeeded (auth 812)",)


def test_a_load_that_wrote_no_record_fails_the_run() -> None:
    load = LoadEvidence("ef34", "start-load", "/runs/load/ef34/pulls", True, records=0)
    judgement = judge(RunFacts(journal([GOOD_PROBE]), loads=(load,)))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "load ef34: wrote no pull record (Locust never finished a pull; "
        "see /runs/load/ef34/locust.log)",
    )


def test_a_load_whose_records_are_gone_is_named_but_not_judged() -> None:
    load = LoadEvidence("gone", "start-load", "/moved/pulls", found=False)
    judgement = judge(RunFacts(journal([GOOD_PROBE]), loads=(load,)))
    assert judgement.verdict == Verdict.PASSED
    assert judgement.notes == (
        "load gone: no records at /moved/pulls: whether it pulled is unknown",
    )


def test_a_deviated_run_whose_load_never_pulled_is_failed_not_deviated() -> None:
    load = LoadEvidence(
        "L2", "start-load", "/x", True, records=5, pulls=0, attempts=5, failures_by_class={"tls": 5}
    )
    assert judge(RunFacts(journal([GOOD_PROBE], deviated=True))).verdict == Verdict.DEVIATED
    assert judge(RunFacts(journal([GOOD_PROBE], deviated=True), loads=(load,))).verdict == (
        Verdict.FAILED
    )


def test_hypothesis_pulls_that_never_reached_the_registry_fail_the_run() -> None:
    tls = activity_run(
        "pull-p95-within-budget",
        "probe",
        PULL,
        output=pulls(0, {"tls": 20}, "certificate verify failed: unknown-ca"),
    )
    raised = activity_run(
        "every-pull-succeeds",
        "probe",
        PULL,
        status="failed",
        exception=["Traceback...\n", "ActivityFailed: registry_ca_bundle: no such file\n"],
    )
    for status, deviated in (("completed", False), ("completed", True), ("failed", False)):
        judgement = judge(RunFacts(journal([tls, raised], status=status, deviated=deviated)))
        assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "probe 'pull-p95-within-budget': every pull failed before reaching the registry "
        "(tls: certificate verify failed: unknown-ca)",
        "probe 'every-pull-succeeds': every pull failed before reaching the registry "
        "(ActivityFailed: registry_ca_bundle: no such file)",
    )


def test_one_hypothesis_pull_reaching_the_registry_leaves_the_verdict_to_the_steady_state() -> None:
    auth = activity_run("a", "probe", PULL, output=pulls(0, {"auth": 5}, "401"))
    timeouts = activity_run("b", "probe", PULL, output=pulls(0, {"timeout": 5}, "timed out"))
    single = activity_run(
        "c",
        "probe",
        {**PULL, "func": "pull_image"},
        output={"ok": False, "error": {"class": "auth", "message": "401"}},
    )
    # A timeout reached the network path under test: the steady state says what it means.
    assert judge(RunFacts(journal([auth, timeouts], deviated=True))).verdict == Verdict.DEVIATED
    assert judge(RunFacts(journal([auth, GOOD_PROBE]))).notes == ()
    assert judge(RunFacts(journal([single]))).verdict == Verdict.FAILED


def test_a_failed_fault_action_is_named_and_fails_a_completed_run() -> None:
    exception = ["Traceback (most recent call last):\n", "ActivityFailed: kubeconfig missing\n"]
    kill = {"type": "python", "module": "chaosregistry.actions.node", "func": "kill_registry_node"}
    run = [activity_run("kill-registry-node", "action", kill, "failed", exception=exception)]
    judgement = judge(RunFacts(journal([GOOD_PROBE], run)))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "action 'kill-registry-node' failed: ActivityFailed: kubeconfig missing",
    )


def test_precedence_left_behind_then_interrupted_then_failed() -> None:
    broken = LoadEvidence("L3", "start-load", "/x", True, records=0)
    good = journal([GOOD_PROBE])
    assert judge(RunFacts(good, interrupted=True, loads=(broken,))).verdict == Verdict.INTERRUPTED
    assert judge(RunFacts(journal(status="interrupted"))).verdict == Verdict.INTERRUPTED
    left = judge(RunFacts(good, interrupted=True, left_behind=True, loads=(broken,)))
    assert left.verdict == Verdict.LEFT_BEHIND and left.notes[0].startswith("load L3")
    assert judge(RunFacts(None)).verdict == Verdict.FAILED
    assert judge(RunFacts(None, interrupted=True)).verdict == Verdict.INTERRUPTED
    assert judge(RunFacts(journal(status="aborted"))).verdict == Verdict.FAILED


def test_a_check_failed_during_the_method_is_a_deviation() -> None:
    during = [{"steady_state_met": True}, {"steady_state_met": False}]
    assert judge(RunFacts(journal([GOOD_PROBE], during=during))).verdict == Verdict.DEVIATED
    assert judge(RunFacts(journal([GOOD_PROBE], during=during[:1]))).verdict == Verdict.PASSED


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
    passed = judge(RunFacts(journal([GOOD_PROBE], run=[method_check(1.0, fires)])))
    assert passed.verdict == Verdict.PASSED and passed.notes == ()
    missed = judge(RunFacts(journal([GOOD_PROBE], run=[method_check(0.0, fires)])))
    assert missed.verdict == Verdict.DEVIATED
    assert missed.notes == (
        "method check 'alert-pages' out of tolerance "
        '{"type":"range","range":[1,1],"target":"value"}: output value=0.0',
    )
    # Chaos Toolkit's own rule: a plain boolean tolerance compares the whole output.
    assert judge(RunFacts(journal(run=[method_check(1.0, True)]))).verdict == Verdict.DEVIATED
    # A probe that did not run is judged by the rules for failed runs, not by its tolerance;
    # a probe-type tolerance (code to run again) is not judged here.
    untold = [method_check(0.0, fires, "failed"), method_check(0.0, {"type": "probe"})]
    assert judge(RunFacts(journal([GOOD_PROBE], run=untold))).verdict == Verdict.PASSED

    # The journal keeps ${name} placeholders: resolved from the experiment's configuration;
    # one the journal cannot resolve is not judged.
    budget = {"type": "range", "range": [0, "${budget}"], "target": "value"}
    runs = {"experiment": {"configuration": {"budget": 2}}}
    within = {**journal([GOOD_PROBE], run=[method_check(1.5, budget)]), **runs}
    assert judge(RunFacts(within)).verdict == Verdict.PASSED
    beyond = {**journal([GOOD_PROBE], run=[method_check(2.5, budget)]), **runs}
    assert judge(RunFacts(beyond)).verdict == Verdict.DEVIATED
    unknown = journal([GOOD_PROBE], run=[method_check(2.5, budget)])
    assert judge(RunFacts(unknown)).verdict == Verdict.PASSED


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
    assert judge(RunFacts(journal(run=run), loads=loads)).notes == (
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
    missed = {**GOOD_PROBE, "tolerance_met": False}
    data = journal([GOOD_PROBE, {**missed, "activity": {**missed["activity"], "name": "p99"}}])
    data["steady_states"]["before"]["steady_state_met"] = False
    judgement = judge(RunFacts(data))
    assert judgement.verdict == Verdict.FAILED
    assert judgement.notes == (
        "the steady state was not met before the method (out of tolerance: p99): "
        "the method never ran",
    )
