"""``chaos discover`` must show every activity with its real argument types and docs."""

import json
import subprocess
import sys
from pathlib import Path

import chaosregistry

PACKAGE = Path(chaosregistry.__file__).resolve().parent


def modules_on_disk() -> dict[str, str]:
    """Activity module name -> probe/action, from the package's probes/ and actions/ files."""
    found = {}
    for folder, kind in (("probes", "probe"), ("actions", "action")):
        for path in (PACKAGE / folder).glob("*.py"):
            if not path.name.startswith("_"):
                found[f"chaosregistry.{folder}.{path.stem}"] = kind
    return found


def test_discovery_finds_every_activity_module_on_disk() -> None:
    on_disk = modules_on_disk()
    assert len(on_disk) >= 17  # the folders were read
    assert chaosregistry.activity_modules() == on_disk


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
    for module_name, kind in modules_on_disk().items():
        module = __import__(module_name, fromlist=["__all__"])
        assert module.__all__, module_name
        expected |= {(module_name, name) for name in module.__all__}
        for name in module.__all__:
            assert activities[(module_name, name)]["type"] == kind, (module_name, name)
    assert set(activities) == expected
    assert {mod for mod, _ in activities} == set(modules_on_disk())

    pull = activities[("chaosregistry.probes.pull", "pull_latency")]
    assert pull["type"] == "probe"
    assert pull["return_type"] == "mapping"
    types = {a["name"]: a.get("type") for a in pull["arguments"]}
    assert types["image"] == "string"
    assert types["count"] == "integer"
    assert types["verify"] == "boolean"
    assert types["configuration"] == "mapping"
    latency = activities[("chaosregistry.actions.network", "add_latency")]
    arguments = {a["name"]: a for a in latency["arguments"]}
    assert arguments["latency_ms"]["type"] == "integer"
    assert arguments["latency_ms"]["domain"] == ">= 1 ms"
    assert arguments["hop"]["type"] == "string"
    assert arguments["hop"]["domain"].startswith("one of client-registry, client-mirror")
    assert arguments["duration"]["type"] == "number"
    assert "p95" in pull["result_keys"]
    for activity in activities.values():
        # The summary: the first paragraph (some wrap their first sentence over two lines).
        assert activity["doc"] and activity["doc"].split("\n\n")[0].endswith("."), activity["name"]
        assert all("type" in a for a in activity["arguments"]), activity["name"]
        # Every argument's declared type is one Chaos Toolkit can name.
        assert all(a["type"] != "object" for a in activity["arguments"]), activity["name"]
        if activity["type"] == "probe":
            assert activity["result_keys"], activity["name"]
