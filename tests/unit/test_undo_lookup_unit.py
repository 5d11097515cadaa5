"""Undo handlers are imported as they are needed: the watchdog started for a fault imports that
fault's handler module when it first sees the entry, not every module that defines one (which
costs about 0.7 s of CPU per watchdog, the Kubernetes backends with their client library).

Each check runs in a fresh interpreter, whose ``sys.modules`` shows what was imported.
"""

import json
import subprocess
import sys
from pathlib import Path

from chaosregistry.faults import undo

PROGRAM = """
import json, sys
from pathlib import Path
from chaosregistry.faults.ledger import Ledger
from chaosregistry.faults.watchdog_daemon import Watchdog
ledger = Ledger(Path(sys.argv[1]))
undo = {"kind": "toxiproxy.toxic", "params": {"api_url": "http://127.0.0.1:9", "proxy": "hop",
        "toxic": "latency"}}
ledger.record("network.latency", "hop", {}, undo, 60, owner_pid=None,
              undo_module="chaosregistry.faults.toxiproxy_undo")
before = set(sys.modules)
busy = Watchdog(ledger, lock_fd=-1).tick()
print(json.dumps({"busy": busy, "imported": sorted(set(sys.modules) - before)}))
"""


def test_the_watchdog_imports_only_the_handler_module_its_entry_names(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path / "ledger")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    seen = json.loads(out)
    assert seen["busy"] is True  # the entry is active and not yet due
    imported = set(seen["imported"])
    assert "chaosregistry.faults.toxiproxy_undo" in imported
    others = set(undo.UNDO_MODULES) - {"chaosregistry.faults.toxiproxy_undo"}
    assert not imported & others, sorted(imported & others)


def test_a_handler_that_is_registered_already_is_found_without_importing_the_others() -> None:
    program = (
        "import sys\n"
        "from chaosregistry.faults import undo\n"
        "import chaosregistry.loadgen.processes\n"
        "undo.get_handler('process.terminate')\n"
        "print(undo._loaded, 'chaosregistry.backends.kubernetes' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.split() == ["False", "False"]
