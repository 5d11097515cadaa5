"""One bounded Locust process of our locustfile, and the error classes of the pulls it
recorded: how the sandbox tier compares the Locust driver with the probes' client."""

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from chaosregistry.loadgen import records
from chaosregistry.loadgen.command import LOCUSTFILE

SECONDS = 3


def locust_classes(
    tmp_path: Path, host: str, image: str, *, password: str, ca_file: str, users: int = 1
) -> tuple[dict[str | None, int], list[dict[str, Any]]]:
    """Run one bounded Locust process; the error classes of the pulls it recorded."""
    run = tmp_path / uuid.uuid4().hex[:8]
    run.mkdir()
    credentials = run / "credentials.json"
    credentials.write_text(json.dumps({"username": "chaos", "password": password}))
    credentials.chmod(0o600)
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users), "-t", f"{SECONDS}s", "--only-summary",
        "--host", host, "--images", json.dumps([image]),
        "--credentials-file", str(credentials), "--records-dir", str(run / "records"),
        "--tls-verify", ca_file, "--pull-timeout", "5",
    ]  # fmt: skip
    subprocess.run(argv, cwd=run, capture_output=True, timeout=SECONDS + 60, check=False)
    pulls = records.read_records(run / "records")
    classes: dict[str | None, int] = {}
    # A pull cut short by the end of the run is neither outcome (records mark it).
    pulls = [record for record in pulls if not record["interrupted"]]
    for record in pulls:
        classes[record["error"]] = classes.get(record["error"], 0) + 1
    return classes, pulls
