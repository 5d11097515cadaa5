"""Deploy outcomes counted on the real test cluster: the bad-tag game day's rollout declared
failed, then the rollback's rollout completed, each counted once in
chaosregistry_deploys_total as the cluster's sandbox Prometheus scrapes it.

The cluster is the session's shared one: other modules' rollouts count there too, so the game
day's are counted from the values before it."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cluster import KubeCluster, restore_demo
from support.polling import eventually

from chaosregistry.cluster.layout import Layout
from chaosregistry.observability.prometheus import PrometheusClient
from chaosregistry.sandbox import load_endpoints

pytest_plugins = ["support.cluster"]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def deploys(client: PrometheusClient, outcome: str, over: str = "") -> float:
    """The counter now, or with ``over`` (``min_over_time``'s range) its least value over that
    range: its first scraped one (a counter never falls while its exporter runs)."""
    selector = f'chaosregistry_deploys_total{{outcome="{outcome}"}}'
    series = client.query(f"min_over_time({selector}[{over}])" if over else selector)
    return series[0].points[-1][1] if series else -1.0


@pytest.fixture(scope="module", autouse=True)
def demo_put_back(kube_cluster: KubeCluster) -> Iterator[None]:
    """The game day's bad tag changes the demo's image: it is the original again when the
    module ends."""
    yield
    restore_demo(kube_cluster.client)


def test_a_bad_tag_rollout_and_its_rollback_count_one_failure_and_one_success(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    sandbox_dir = Layout.at(kube_cluster.state_dir).sandbox_dir
    prometheus = PrometheusClient(load_endpoints(sandbox_dir)["prometheus"])
    first = {outcome: deploys(prometheus, outcome, "1d") for outcome in ("success", "failure")}
    assert first == {"success": 0.0, "failure": 0.0}  # exported at 0 from the start
    before = {outcome: deploys(prometheus, outcome) for outcome in ("success", "failure")}
    env = {
        **os.environ,
        "CHAOSREGISTRY_KUBECONFIG": str(kube_cluster.kubeconfig),
        "CHAOSREGISTRY_LEDGER_DIR": str(tmp_path / "ledger"),
        "CHAOSREGISTRY_WATCHDOG_IDLE_EXIT": "1",
        # Where the rollout probes find the SLI exporter (the cluster's sandbox).
        "CHAOSREGISTRY_SANDBOX_DIR": str(sandbox_dir),
    }
    process = subprocess.run(
        [
            str(BIN / "chaosregistry"),
            "gameday",
            str(ROOT / "experiments/bad-tag-rollback.yaml"),
            "--vars",
            str(ROOT / "experiments/vars/kubernetes.yaml"),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]
    counted = (before["success"] + 1, before["failure"] + 1)
    eventually(
        "Prometheus to see one failed and one successful rollout more",
        lambda: (deploys(prometheus, "success"), deploys(prometheus, "failure")) == counted,
        timeout=15,
    )
