"""``chaos discover`` must show every activity with its real argument types and docs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import chaosregistry

pytestmark = pytest.mark.unit


def test_chaos_discover_lists_every_activity_with_types(tmp_path: Path) -> None:
    out = tmp_path / "discovery.json"
    chaos = Path(sys.executable).with_name("chaos")
    subprocess.run(
        [
            str(chaos),
            "discover",
            "--no-install",
            "--discovery-path",
            str(out),
            "chaostoolkit-registry",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=tmp_path,  # chaos writes chaostoolkit.log into its working directory
    )
    discovery = json.loads(out.read_text())
    activities = {(a["mod"], a["name"]): a for a in discovery["activities"]}
    expected = set()
    for module_name in chaosregistry.PROBE_MODULES + chaosregistry.ACTION_MODULES:
        module = __import__(module_name, fromlist=["__all__"])
        expected |= {(module_name, name) for name in module.__all__}
    assert set(activities) == expected

    pull = activities[("chaosregistry.probes.pull", "pull_latency")]
    assert pull["type"] == "probe"
    assert pull["return_type"] == "mapping"
    types = {a["name"]: a.get("type") for a in pull["arguments"]}
    assert types["image"] == "string"
    assert types["count"] == "integer"
    assert types["verify"] == "boolean"
    assert types["configuration"] == "mapping"
    for activity in activities.values():
        assert activity["doc"] and activity["doc"].splitlines()[0].endswith(".")
        assert all("type" in a for a in activity["arguments"]), activity["name"]
