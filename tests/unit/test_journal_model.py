"""The typed journal model (chaosregistry.gameday.journal): real journals parsed, each probe
result's kind taken from the probe's declaration, malformed journals refused in one line.

tests/data/journals/ holds two journals written by the real ``chaos run`` under
``chaosregistry gameday`` on the sandbox (registry-latency, replication-partition), as the game
day left them (scrubbed).
"""

import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaosregistry import activity_modules
from chaosregistry.experiment.contracts import ResultKind, result_kind
from chaosregistry.gameday.journal import JournalError, kind_of, parse_journal

JOURNALS = Path(__file__).resolve().parents[1] / "data" / "journals"
LATENCY = JOURNALS / "registry-latency.json"
REPLICATION = JOURNALS / "replication-partition.json"


def test_a_real_journal_is_parsed_with_its_phases_runs_rollbacks_and_run_id() -> None:
    journal = parse_journal(LATENCY)
    assert journal.source == str(LATENCY)
    assert journal.experiment.title.startswith("Pulls ride out 300 ms")
    assert (journal.status, journal.deviated) == ("completed", False)
    assert journal.run_id == "20261206t001206z-registry-latency-0beddd"
    assert journal.chaoslib_version == "1.44.0"
    assert journal.start is not None and journal.end is not None
    assert 60 < journal.end - journal.start < 65
    assert journal.before is not None and journal.after is not None
    assert journal.before.met is True and journal.after.met is True
    assert [p.activity.name for p in journal.before.probes] == [
        "pull-p95-within-budget",
        "every-pull-succeeds",
    ]
    assert all(p.succeeded and p.tolerance_met is True for p in journal.probe_runs())
    assert journal.during == ()
    assert [(r.activity.type, r.activity.provider.func) for r in journal.run] == [
        ("action", "add_latency"),
        *[("probe", "pull_latency")] * 5,
        ("action", "remove_network_faults"),
    ]
    (rollback,) = journal.rollbacks
    assert rollback.activity.name == "remove-latency-client-registry" and rollback.succeeded
    # Times inside each run, in order.
    starts = [r.start for r in journal.run]
    assert all(s is not None for s in starts) and starts == sorted(starts)  # type: ignore[type-var]
    # The experiment as it ran: its hypothesis and method declarations.
    assert [a.name for a in journal.experiment.hypothesis] == [
        "pull-p95-within-budget",
        "every-pull-succeeds",
    ]
    assert journal.experiment.hypothesis[0].tolerance["target"] == "p95"


def test_each_result_has_the_kind_its_probe_declares() -> None:
    latency = parse_journal(LATENCY)
    assert {p.kind for p in latency.probe_runs()} == {ResultKind.PULL_STATISTICS}
    assert [r.kind for r in latency.run] == [
        ResultKind.OTHER,  # an action: its output is a ledger entry
        *[ResultKind.PULL_STATISTICS] * 5,
        ResultKind.OTHER,
    ]
    replication = parse_journal(REPLICATION)
    assert {p.kind for p in replication.probe_runs()} == {ResultKind.REPLICATION}
    assert replication.run[1].kind == ResultKind.REPLICATION


def test_the_kind_comes_from_the_probe_that_wrote_the_result_not_from_its_keys() -> None:
    statistics = {"success_ratio": 1.0, "succeeded": 5, "count": 5, "p95": 0.1}
    foreign = {"type": "python", "module": "chaosk8s.probes", "func": "pull_latency"}
    ours = {"type": "python", "module": "chaosregistry.probes.pull", "func": "pull_latency"}
    journal = parse_journal(
        {
            "status": "completed",
            "run": [
                {"activity": {"type": "probe", "provider": foreign}, "output": statistics},
                {"activity": {"type": "probe", "provider": ours}, "output": None},
            ],
        }
    )
    assert [r.kind for r in journal.run] == [ResultKind.OTHER, ResultKind.PULL_STATISTICS]


def our_probes() -> list[tuple[str, str, Any]]:
    found = []
    for module_name, kind in activity_modules().items():
        if kind != "probe":
            continue
        module = importlib.import_module(module_name)
        found += [(module_name, name, getattr(module, name)) for name in module.__all__]
    return found


def test_every_probe_declares_a_kind_and_the_journal_reads_the_same_declaration() -> None:
    probes = our_probes()
    assert len(probes) >= 20
    for module_name, name, function in probes:
        declared = result_kind(function)
        assert declared != ResultKind.OTHER, f"{module_name}.{name} declares no result kind"
        # The model reads the declaration from the source (no import of the probe's clients).
        assert kind_of(module_name, name) == declared, f"{module_name}.{name}"
    assert kind_of("chaosregistry.probes.pull", "no_such_probe") == ResultKind.OTHER
    assert kind_of("chaosregistry.actions.network", "add_latency") == ResultKind.OTHER


def test_reading_kinds_imports_no_probe_module() -> None:
    code = (
        "import sys; from chaosregistry.gameday.journal import parse_journal; "
        f"parse_journal({str(LATENCY)!r}); parse_journal({str(REPLICATION)!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('chaosregistry.probes.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_model_is_frozen() -> None:
    journal = parse_journal(LATENCY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        journal.status = "failed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        journal.run[0].status = "failed"  # type: ignore[misc]


def damaged(change: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(LATENCY.read_text())
    change(data)
    return data


MALFORMED = {
    "run-not-a-list": (lambda d: d.update(run={"a": 1}), "field run: an object, not a list"),
    "no-run": (lambda d: d.pop("run"), "field run: missing"),
    "run-entry-not-an-object": (
        lambda d: d["run"].__setitem__(2, "pull"),
        "field run[2]: a string, not an object",
    ),
    "experiment-a-list": (
        lambda d: d.update(experiment=[1]),
        "field experiment: a list, not an object",
    ),
    "steady-states-a-number": (
        lambda d: d.update(steady_states=3),
        "field steady_states: a number, not an object",
    ),
    "before-probes-not-a-list": (
        lambda d: d["steady_states"]["before"].update(probes="p"),
        "field steady_states.before.probes: a string, not a list",
    ),
    "during-an-object": (
        lambda d: d["steady_states"].update(during={}),
        "field steady_states.during: an object, not a list",
    ),
    "method-a-number": (
        lambda d: d["experiment"].update(method=-1.5),
        "field experiment.method: a number, not a list",
    ),
    "rollback-entry-null": (
        lambda d: d["rollbacks"].__setitem__(0, None),
        "field rollbacks[0]: null, not an object",
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_journal_is_refused_in_one_line_naming_file_and_field(
    tmp_path: Path, name: str
) -> None:
    change, words = MALFORMED[name]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(damaged(change)))
    with pytest.raises(JournalError) as caught:
        parse_journal(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not a Chaos Toolkit journal (") and words in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[1, 2]", "a JSON list, not an object"),
        ('{"run": [', "not valid JSON"),
        ("", "empty file"),
    ],
)
def test_a_file_that_is_no_journal_is_refused_in_one_line(
    tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "journal.json"
    path.write_text(text)
    with pytest.raises(JournalError, match=words) as caught:
        parse_journal(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_values_of_the_wrong_type_inside_a_run_read_as_absent() -> None:
    def spoil(data: dict[str, Any]) -> None:
        run = data["run"][1]
        run.update(status=0, start="yesterday", tolerance_met="yes", exception=[None, "E: x\n"])
        run["activity"]["name"] = 5
        data["run"][2]["activity"] = "not a mapping"

    journal = parse_journal(damaged(spoil))
    spoiled, bare = journal.run[1], journal.run[2]
    # A status of the wrong type is "" (said, but neither succeeded nor failed).
    assert (spoiled.status, spoiled.start, spoiled.tolerance_met) == ("", None, None)
    assert not spoiled.succeeded and not spoiled.failed
    assert spoiled.activity.label == "?" and spoiled.last_exception_line == "E: x"
    assert spoiled.kind == ResultKind.PULL_STATISTICS  # the provider still says what it is
    assert (bare.activity.type, bare.activity.provider.module, bare.kind) == (None, "", "other")


def test_a_report_on_a_malformed_journal_is_one_line_naming_file_and_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(damaged(lambda d: d["run"].__setitem__(0, 7))))
    process = subprocess.run(
        [sys.executable, "-m", "chaosregistry.reports", "report", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 1
    (line,) = process.stderr.strip().splitlines()
    assert (
        line
        == f"Error: {path}: not a Chaos Toolkit journal (field run[0]: a number, not an object)"
    )
    assert not (tmp_path / "report.html").exists()
