"""Deploy outcomes counted on the real test cluster: the bad-tag game day's rollout declared
failed, then the rollback's rollout completed, each counted once in
chaosregistry_deploys_total as the cluster's sandbox Prometheus scrapes it."""

import os
import subprocess
import sys
from pathlib import Path

from support.cluster import KubeCluster
from support.polling import eventually

from chaosregistry.cluster.layout import Layout
from chaosregistry.observability.prometheus import PrometheusClient
from chaosregistry.sandbox import load_endpoints

pytest_plugins = ["support.cluster"]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def deploys(client: PrometheusClient, outcome: str) -> float:
    series = client.query(f'chaosregistry_deploys_total{{outcome="{outcome}"}}')
    return series[0].points[-1][1] if series else -1.0


def test_a_bad_tag_rollout_and_its_rollback_count_one_failure_and_one_success(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    sandbox_dir = Layout.at(kube_cluster.state_dir).sandbox_dir
    prometheus = PrometheusClient(load_endpoints(sandbox_dir)["prometheus"])
    before = {outcome: deploys(prometheus, outcome) for outcome in ("success", "failure")}
    assert before == {"success": 0.0, "failure": 0.0}  # exported at 0 from the start
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
    eventually(
        "Prometheus to see one failed and one successful rollout",
        lambda: (deploys(prometheus, "success"), deploys(prometheus, "failure")) == (1.0, 1.0),
        timeout=15,
    )
