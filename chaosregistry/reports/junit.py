"""junit.xml: one test suite per run, a test case per hypothesis probe and a few for the run.

Per run: one case per steady-state hypothesis probe (fails when the probe did not hold: outside
its tolerance before, after, or in a check during the method), "nothing left behind" (fails when
a fault outlived the run; skipped without gameday.json, when that cannot be known) and
"experiment ran to completion" (an error when an activity failed or the run was interrupted,
so a broken run is never all green).
"""

import xml.etree.ElementTree as ET
from typing import Any

from chaosregistry.reports.inputs import as_dict, as_list, as_number

SUITES_NAME = "chaostoolkit-registry game day"


def _value(point: dict[str, Any]) -> str:
    value = as_number(point.get("value"))
    return "no value" if value is None else f"{value:g}"


def probe_failure(probe: dict[str, Any]) -> str | None:
    """Why a hypothesis probe did not hold, in one line; None when it held."""
    if probe.get("held"):
        return None
    tolerance = as_dict(probe.get("tolerance")).get("text") or "its tolerance"
    reasons = []
    for phase in ("before", "after"):
        point = probe.get(phase)
        if not isinstance(point, dict):
            reasons.append(f"not measured {phase} the method")
        elif point.get("met") is not True:
            error = f" ({point['error']})" if point.get("error") else ""
            reasons.append(f"{phase}: {_value(point)} outside {tolerance}{error}")
    during = as_dict(probe.get("during"))
    if during.get("checks_failed"):
        worst = as_number(during.get("worst"))
        reasons.append(
            f"during: {during['checks_failed']} of {during.get('checks')} checks outside "
            f"{tolerance}" + ("" if worst is None else f" (worst {worst:g})")
        )
    return "; ".join(reasons) or "did not hold"


def _case(suite: ET.Element, classname: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.SubElement(
        suite, "testcase", {"classname": classname, "name": name, "time": f"{seconds:.3f}"}
    )


def render_junit(summary: dict[str, Any]) -> str:
    """The JUnit XML text of a summary."""
    root = ET.Element("testsuites", {"name": SUITES_NAME})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for index, run in enumerate(map(as_dict, as_list(summary.get("runs")))):
        meta = as_dict(run.get("metadata"))
        title = str(meta.get("title") or f"run {index + 1}")
        classname = f"gameday.{title}"
        suite = ET.SubElement(root, "testsuite", {"name": title})
        properties = ET.SubElement(suite, "properties")
        for key in ("verdict", "exit_code", "journal"):
            ET.SubElement(properties, "property", {"name": key, "value": str(run.get(key))})
        score = as_dict(run.get("score")).get("value")
        ET.SubElement(properties, "property", {"name": "score", "value": str(score)})
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

        for probe in map(as_dict, as_list(run.get("probes"))):
            case = _case(suite, classname, f"steady state: {probe.get('name')}")
            counts["tests"] += 1
            reason = probe_failure(probe)
            if reason is not None:
                counts["failures"] += 1
                failure = ET.SubElement(
                    case, "failure", {"message": reason, "type": "steady-state-deviation"}
                )
                failure.text = reason

        faults = [as_dict(f) for f in as_list(run.get("faults")) + as_list(run.get("loads"))]
        case = _case(suite, classname, "nothing left behind")
        counts["tests"] += 1
        left = [f for f in faults if f.get("left_behind")]
        if left or run.get("verdict") == "left-behind":
            counts["failures"] += 1
            names = ", ".join(
                f"{f.get('id')} ({f.get('kind')} on {f.get('target')}, {f.get('state')})"
                for f in left
            )
            message = "a fault outlived the run" + (f": {names}" if names else "")
            failure = ET.SubElement(case, "failure", {"message": message, "type": "left-behind"})
            failure.text = message
        elif meta.get("gameday_verdict") is None and any(
            f.get("state") == "unknown" for f in faults
        ):
            counts["skipped"] += 1
            ET.SubElement(
                case,
                "skipped",
                {"message": "no gameday.json beside the journal: the ledger's outcome is unknown"},
            )

        case = _case(
            suite,
            classname,
            "experiment ran to completion",
            as_number(meta.get("duration_seconds")) or 0.0,
        )
        counts["tests"] += 1
        if run.get("verdict") in ("failed", "dry-run", "interrupted"):
            counts["errors"] += 1
            failed = [as_dict(a) for a in as_list(run.get("failed_activities"))]
            detail = "; ".join(
                [f"{a.get('name')}: {a.get('error') or a.get('status')}" for a in failed]
                # what failed a run Chaos Toolkit calls completed (a load that never pulled...)
                + [str(n) for n in as_list(run.get("verdict_notes"))]
            )
            message = f"the run {run.get('verdict')} (chaos status {meta.get('chaos_status')})" + (
                f": {detail}" if detail else ""
            )
            error = ET.SubElement(
                case, "error", {"message": message, "type": str(run.get("verdict"))}
            )
            error.text = message

        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{as_number(meta.get('duration_seconds')) or 0.0:.3f}")
        if meta.get("start"):
            suite.set("timestamp", str(meta["start"]))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
