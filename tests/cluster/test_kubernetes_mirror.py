"""The node pulls mirror-first and falls back to the origin, on the real test cluster.

The cluster is brought up with ``node_pulls="mirror-first"``: containerd's hosts.toml lists the
sandbox's pull-through mirror, then the registry's client-facing hop. Which path a pull took is
read from the sandbox's nginx access log, which logs the port of each request: the client hop
lands on the registry's server, the mirror's fetches on the mirror-upstream server. The mirror
kill goes through the fault ledger and is undone after SIGKILL of ``chaos run``.
"""

import itertools
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lightkube.resources.apps_v1 import Deployment
from support.cluster import (
    KubeCluster,
    outputs,
    run_gameday,
    running_cluster,
    wait_available,
)
from support.polling import eventually

from chaosregistry import sandbox
from chaosregistry.cluster.images import (
    DEMO_REPOSITORY,
    DEMO_TAG,
    build_image,
    busybox_layer_tar,
    cluster_images,
    image_name,
)
from chaosregistry.cluster.layout import DEMO_NAMESPACE, REGISTRY_HOST, Layout
from chaosregistry.cluster.workloads import DEMO_NAME, DEMO_PROGRESS_DEADLINE_SECONDS
from chaosregistry.experiment.settings import resolve_target
from chaosregistry.faults.ledger import FaultState, Ledger, RevertReason
from chaosregistry.osutil.identity import port_holders

pytest_plugins = ["support.cluster"]

BIN = Path(sys.executable).parent
ORIGINAL = image_name(DEMO_REPOSITORY, DEMO_TAG)


@pytest.fixture(scope="module")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    with running_cluster(tmp_path_factory, node_pulls="mirror-first") as cluster:
        yield cluster


@pytest.fixture
def env(kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    return tmp_path / "ledger"


@pytest.fixture
def demo_restored(kube_cluster: KubeCluster) -> Iterator[None]:
    yield
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": ORIGINAL}]}}}}
    kube_cluster.client.patch(Deployment, DEMO_NAME, patch, namespace=DEMO_NAMESPACE)
    wait_available(kube_cluster.client, DEMO_NAMESPACE)


def endpoints(kube_cluster: KubeCluster) -> dict[str, Any]:
    return dict(sandbox.load_endpoints(kube_cluster.settings["sandbox_dir"]))


_LINE = re.compile(
    r'"(?P<method>[A-Z]+) /v2/(?P<repository>\S+)/manifests/(?P<ref>[^?\s]+)(?P<query>\S*) '
    r'HTTP/[\d.]+" (?P<status>\d{3}) .* port=(?P<port>\d+)$'
)
# containerd adds the image's registry host as ``?ns=`` to every request of a pull (resolver.go
# addNamespace): what tells the node's requests from our pushes and the mirror's fetches.
NODE_QUERY = f"?ns={REGISTRY_HOST}"


def manifest_requests(kube_cluster: KubeCluster, tag: str, status: str = "200") -> Counter[str]:
    """HEAD/GET requests for ``demo/app:<tag>``'s manifest in nginx's access log answered
    ``status``, by who made them: ``node-at-origin`` (the node, through the client hop to the
    registry) and ``mirror-upstream`` (the mirror fetching from its upstream for the node)."""
    found = endpoints(kube_cluster)
    origin = str(found["hops"]["client-registry"]["upstream"]).rsplit(":", 1)[1]
    upstream = str(found["hops"]["mirror-upstream"]["upstream"]).rsplit(":", 1)[1]
    log = Path(found["logs_dir"]) / "nginx-access.log"
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        match = _LINE.search(line)
        if match is None or match["repository"] != DEMO_REPOSITORY or match["ref"] != tag:
            continue
        if match["method"] not in ("HEAD", "GET") or match["status"] != status:
            continue
        if match["port"] == origin and match["query"] == NODE_QUERY:
            counts["node-at-origin"] += 1
        elif match["port"] == upstream:
            counts["mirror-upstream"] += 1
    return counts


def test_hosts_toml_on_the_node_names_the_mirror_first(kube_cluster: KubeCluster) -> None:
    layout = Layout.at(kube_cluster.state_dir)
    hosts = tomllib.loads((layout.registry_hosts_dir / REGISTRY_HOST / "hosts.toml").read_text())
    found = endpoints(kube_cluster)
    assert list(hosts["host"]) == [found["mirror"], found["registry"]]
    assert kube_cluster.settings["node_pulls"] == "mirror-first"


def test_mirror_down_fallback_game_day_rolls_out_through_the_origin(
    kube_cluster: KubeCluster, env: Path, tmp_path: Path, demo_restored: None
) -> None:
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    process, journal = run_gameday(kube_cluster, tmp_path, "mirror-down-fallback")
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]
    out = outputs(journal)
    up, down = out["release-with-the-mirror-up"], out["release-with-the-mirror-down"]
    for release in (up, down):
        assert release["ok"] is True and release["error"] is None, release
        assert release["health"]["ready_replicas"] == 3
        assert len(release["kubelet_pull_seconds"]) == 3, release
    assert out["kill-the-mirror"]["kind"] == "node.kill"
    assert out["kill-the-mirror"]["target"] == "node:mirror"
    assert out["kill-the-mirror"]["applied"]["was_running"] is True
    assert out["no-pull-failed-while-the-mirror-was-down"]["pull_failures"] == 0
    # Which way each release's pulls went, from nginx's log (the push itself is a PUT).
    paths = {
        name: manifest_requests(kube_cluster, release["image"].rsplit(":", 1)[1])
        for name, release in (("up", up), ("down", down))
    }
    pulls = {
        name: release["kubelet_pull_seconds"] for name, release in (("up", up), ("down", down))
    }
    print(f"\nmirror-down-fallback: requests by server {paths}, kubelet pull seconds {pulls}")
    # Mirror up: the node resolved the tag at the mirror (which asked its upstream), never at
    # the origin.
    assert paths["up"]["mirror-upstream"] >= 1 and paths["up"]["node-at-origin"] == 0, paths
    # Mirror down: every pod's pull resolved the tag at the origin, none through the mirror.
    assert paths["down"]["node-at-origin"] >= 3, paths
    assert paths["down"]["mirror-upstream"] == 0, paths
    (entry,) = Ledger(env).all()
    assert entry.state is FaultState.REVERTED and entry.revert_reason is RevertReason.ROLLBACK
    assert sandbox.status(kube_cluster.settings["sandbox_dir"])["processes"]["mirror"]["running"]


@pytest.mark.parametrize("status", [429, 503])
def test_a_release_rolls_out_while_the_mirrors_upstream_throttles(
    kube_cluster: KubeCluster, env: Path, tmp_path: Path, demo_restored: None, status: int
) -> None:
    """mirror-upstream-throttled-rollout under ``chaos run``: a fresh tag (one the mirror never
    saw) rolled out while the mirror's upstream answers ``status``. The mirror answers the
    node's tag lookup 404 (tests/sandbox/test_upstream_faults.py), and containerd moves on to
    the next host in hosts.toml, the origin: measured, every pod pulled there, the release
    completed, and the verdict passed with the fault applied, confirmed and measured."""
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    process, journal = run_gameday(
        kube_cluster,
        tmp_path,
        "mirror-upstream-throttled-rollout",
        settings={"node_pulls": kube_cluster.settings["node_pulls"]},
        upstream_status=status,
    )
    out = outputs(journal)
    fault, release = out["throttle-mirror-upstream"], out["release-while-the-upstream-throttles"]
    tag = release["image"].rsplit(":", 1)[1]
    refused = manifest_requests(kube_cluster, tag, str(status))
    served = manifest_requests(kube_cluster, tag)
    gameday = json.loads(
        (tmp_path / "mirror-upstream-throttled-rollout-run/gameday.json").read_text()
    )
    print(
        f"\nmirror upstream {status}: verdict {gameday['verdict']}, release ok={release['ok']} "
        f"total {release['total_seconds']} s, phases {release['phases']}, kubelet pull seconds "
        f"{release['kubelet_pull_seconds']}; answered {status}: {dict(refused)}, 200: "
        f"{dict(served)}; node_pull_hosts {out['the-origin-served-the-release']}; fault "
        f"evidence {gameday['fault_evidence']}"
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]
    assert gameday["verdict"] == "passed", gameday["notes"]
    assert (fault["kind"], fault["target"]) == ("mirror.upstream-status", "upstream:mirror")
    assert fault["state"] == "injected" and fault["parameters"]["status"] == status
    (evidence,) = gameday["fault_evidence"]
    assert evidence["id"] == fault["fault_id"]
    assert (evidence["applied"], evidence["confirmed"], evidence["measured"]) == (
        True,
        True,
        True,
    ), evidence["detail"]
    assert release["ok"] is True and release["error"] is None, release
    assert len(release["kubelet_pull_seconds"]) == 3, release
    assert out["no-pull-of-the-release-failed"]["pull_failures"] == 0
    # The mirror asked its upstream and was refused; the node then resolved the tag at the
    # origin, and nothing reached the upstream with a 200.
    assert refused["mirror-upstream"] >= 1, refused
    assert served["node-at-origin"] >= 3 and served["mirror-upstream"] == 0, served
    # The experiment's own reading of where the node pulled from agrees with the log's.
    hosts = out["the-origin-served-the-release"]
    assert hosts["origin_resolves"] == served["node-at-origin"], hosts
    assert hosts["mirror_upstream"] == {str(status): refused["mirror-upstream"]}, hosts
    assert hosts["mirror_fetches"] == 0, hosts
    (entry,) = Ledger(env).all()
    assert entry.state is FaultState.REVERTED and entry.revert_reason is RevertReason.ROLLBACK


_REQUEST = re.compile(
    r'\[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) /v2/(?P<repository>\S+)/(?P<kind>manifests|blobs)/'
    r'(?P<ref>[^?\s]+)(?P<query>\S*) HTTP/[\d.]+" (?P<status>\d{3}) .* port=(?P<port>\d+)$'
)


def node_requests_at_origin(kube_cluster: KubeCluster, since: float) -> list[tuple[float, str]]:
    """The node's requests for ``demo/app`` that reached the origin (the registry's server,
    through the client hop) from ``since`` (epoch seconds) on, answered 200, in the log's
    order: (epoch seconds, whole seconds as nginx logs them; ``HEAD manifests/<tag>``, ``GET
    manifests/<digest>`` or ``GET blobs/<digest>``)."""
    found = endpoints(kube_cluster)
    origin = str(found["hops"]["client-registry"]["upstream"]).rsplit(":", 1)[1]
    log = Path(found["logs_dir"]) / "nginx-access.log"
    requests = []
    for line in log.read_text(errors="replace").splitlines():
        match = _REQUEST.search(line)
        if match is None or match["repository"] != DEMO_REPOSITORY or match["status"] != "200":
            continue
        if match["port"] != origin or match["query"] != NODE_QUERY:
            continue
        at = datetime.fromisoformat(match["time"]).timestamp()
        if at >= since:
            requests.append((at, f"{match['method']} {match['kind']}/{match['ref']}"))
    return requests


def push_demo_with_fresh_layer(configuration: dict[str, Any]) -> tuple[str, list[str]]:
    """Push the demo image with a fresh file in its layer, so a node pulling it must fetch its
    config and layer, not only its manifests (a fresh tag over the same blobs, what
    push_to_running pushes, makes a manifest-only pull). Returns its name and blob digests."""
    (demo,) = (image for image in cluster_images() if image.repository == DEMO_REPOSITORY)
    entrypoint = json.loads(demo.config.data)["config"]["Entrypoint"]
    nonce = secrets.token_hex(6)
    layer = busybox_layer_tar(extra_files={"etc/release": (nonce.encode(), 0o644)})
    image = build_image(DEMO_REPOSITORY, f"hang-{nonce}", entrypoint, layer)
    with resolve_target(configuration, None).client() as client:
        for blob in (image.layer, image.config):
            client.push_blob(image.repository, blob.data, blob.digest)
        client.push_manifest(
            image.repository, image.tag, image.manifest.data, image.manifest.media_type
        )
    return image_name(image.repository, image.tag), [image.config.digest, image.layer.digest]


@pytest.fixture
def kubernetes_progress_deadline(kube_cluster: KubeCluster) -> Iterator[None]:
    """The demo Deployment with Kubernetes' default progress deadline (600 s) instead of the
    test bed's 30 s (short so that bad-tag rollouts fail fast), put back afterwards: a pod
    whose pull fetches blobs through a hanging mirror takes 40 s to pull, and the 30 s
    deadline declared the release failed (ProgressDeadlineExceeded) while the pull was still
    falling back."""

    def deadline(seconds: int) -> None:
        patch = {"spec": {"progressDeadlineSeconds": seconds}}
        kube_cluster.client.patch(Deployment, DEMO_NAME, patch, namespace=DEMO_NAMESPACE)

    deadline(600)
    try:
        yield
    finally:
        deadline(DEMO_PROGRESS_DEADLINE_SECONDS)


def test_mirror_hanging_fallback_game_day_waits_out_a_handshake_timeout_per_request(
    kube_cluster: KubeCluster,
    env: Path,
    tmp_path: Path,
    demo_restored: None,
    kubernetes_progress_deadline: None,
) -> None:
    """mirror-hanging-fallback under ``chaos run``: the node's hop to the mirror black-holed
    (connections accepted, nothing answered), a release of an image with a fresh layer. Measured
    on the kubelet and in the origin's log: containerd falls back to the origin for every
    request, each after its 10 s TLS handshake timeout at the mirror, one request after
    another: the first pod's pull (tag, manifest, config, layer) took four of them, the next
    pods' pulls (the tag only: the rest is on the node) one each."""
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    image, blobs = push_demo_with_fresh_layer(kube_cluster.vars_configuration())
    started = time.time()
    process, journal = run_gameday(
        kube_cluster, tmp_path, "mirror-hanging-fallback", hanging_release_image=image
    )
    out = outputs(journal)
    healthy = out["release-with-the-mirror-healthy"]
    hanging = out["release-with-the-mirror-hanging"]
    fault = out["black-hole-the-mirror"]
    requests = node_requests_at_origin(kube_cluster, started - 1)
    print(
        f"\nmirror-hanging-fallback: healthy release {healthy['total_seconds']} s, phases "
        f"{healthy['phases']}, kubelet pull seconds {healthy['kubelet_pull_seconds']}; "
        f"hanging release {hanging['total_seconds']} s, phases {hanging['phases']}, kubelet "
        f"pull seconds {hanging['kubelet_pull_seconds']}; the node's requests at the origin "
        f"{[(round(at - started, 1), what) for at, what in requests]}"
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]
    assert (fault["kind"], fault["target"]) == ("network.partition", "hop:client-mirror")
    assert fault["parameters"]["mode"] == "blackhole"
    for release in (healthy, hanging):
        assert release["ok"] is True and release["error"] is None, release
        assert len(release["kubelet_pull_seconds"]) == 3, release
    assert max(healthy["kubelet_pull_seconds"]) < 5, healthy
    # The hanging release, one request after another: the first pod's pull resolved the tag
    # (HEAD), fetched the manifest, then the config, then the layer, each at the origin a
    # handshake timeout after the request before it (nginx logs whole seconds, hence 8 rather
    # than 10); the two pulls after it found the manifest and blobs on the node and only
    # resolved the tag, one wait each. Nothing of the release reached the mirror.
    tag = image.rsplit(":", 1)[1]
    heads = [at for at, what in requests if what == f"HEAD manifests/{tag}"]
    assert len(heads) == 3, requests
    first_pull = [(at, what) for at, what in requests if at < heads[1]]
    assert [what.split("/")[0] for _, what in first_pull] == [
        "HEAD manifests",
        "GET manifests",
        "GET blobs",
        "GET blobs",
    ], requests
    assert sorted(what.split("/", 1)[1] for _, what in first_pull[2:]) == sorted(blobs)
    arrivals = [at for at, _ in first_pull]
    assert all(later - earlier >= 8 for earlier, later in itertools.pairwise(arrivals)), requests
    assert not [what for at, what in requests if at > heads[1] and not what.startswith("HEAD")]
    assert manifest_requests(kube_cluster, tag)["mirror-upstream"] == 0
    # The kubelet's own figures agree: 4 waits of 10 s, then 1 and 1. None waited much
    # longer: containerd gave up on the mirror each time.
    *resolve_only, whole_image = sorted(hanging["kubelet_pull_seconds"])
    assert all(9.5 <= seconds < 15 for seconds in resolve_only), hanging
    assert 39.5 <= whole_image < 50, hanging
    slowest = out["pulls-fell-back-after-the-handshake-timeout"]["slowest_pull_seconds"]
    assert slowest == whole_image
    assert out["no-pull-failed-while-the-mirror-hung"]["pull_failures"] == 0
    gameday = json.loads((tmp_path / "mirror-hanging-fallback-run/gameday.json").read_text())
    (evidence,) = gameday["fault_evidence"]
    assert evidence["measured"] is True, evidence
    (entry,) = Ledger(env).all()
    assert entry.state is FaultState.REVERTED and entry.revert_reason is RevertReason.ROLLBACK


KILL_DURATION = 30


def open_connections(listen: str) -> list[str]:
    """The connections open on a hop's listening address (its listener and closed ones aside)."""
    port = int(listen.rsplit(":", 1)[1])
    return [h for h in port_holders(port) if h.endswith(("established", "close-wait"))]


def test_registry_latency_meets_no_measurement_when_the_node_pulls_through_the_mirror(
    kube_cluster: KubeCluster, env: Path, tmp_path: Path, demo_restored: None
) -> None:
    """rollout-under-registry-latency on a mirror-first node (as the vars file ``cluster up``
    wrote says): the 500 ms sit on the client-registry hop, the node pulls through the mirror,
    so the rollout under "latency" crossed no faulted hop and the fault met no measurement."""
    wait_available(kube_cluster.client, DEMO_NAMESPACE)
    # A rollout before this test may have pulled through the origin (the mirror down), and
    # containerd keeps those connections idle for a while (30 s). Toxiproxy counts a
    # connection's bytes when it closes: one closing inside this fault's window would count
    # as a pull through the hop.
    hop = endpoints(kube_cluster)["hops"]["client-registry"]["listen"]
    eventually(
        "no connection open through the client-registry hop",
        lambda: not open_connections(hop),
        timeout=120,
    )
    process, journal = run_gameday(
        kube_cluster,
        tmp_path,
        "rollout-under-registry-latency",
        settings={"node_pulls": kube_cluster.settings["node_pulls"]},
    )
    gameday = json.loads((tmp_path / "rollout-under-registry-latency-run/gameday.json").read_text())
    (fault,) = gameday["fault_evidence"]
    print(f"\nrollout-under-registry-latency, mirror-first: {fault}, verdict {gameday['verdict']}")
    assert fault["target"] == "hop:client-registry"
    assert (fault["applied"], fault["confirmed"]) == (True, True), fault["detail"]
    assert fault["measured"] is False, fault["detail"] + process.stdout[-3000:]
    assert "no bytes crossed the hop" in fault["detail"]
    # The rollout did run under the fault: the kubelet pulled, only not through that hop.
    assert outputs(journal)["time-to-available-under-latency"]["seconds"] > 0
    # So the game day proved nothing about registry latency: failed, saying which fault.
    assert (gameday["verdict"], process.returncode) == ("failed", 11), process.stdout[-3000:]
    assert any(
        note.startswith("not proven: faults applied, confirmed and measured: ")
        and f"fault {fault['id']} " in note
        and "met no measurement" in note
        for note in gameday["notes"]
    ), gameday["notes"]


def test_sigkill_of_chaos_run_after_the_mirror_kill_restarts_the_mirror(
    kube_cluster: KubeCluster, env: Path, tmp_path: Path
) -> None:
    sandbox_dir = str(kube_cluster.settings["sandbox_dir"])
    experiment = tmp_path / "kill.yaml"
    experiment.write_text(
        yaml.safe_dump(
            {
                "version": "1.0.0",
                "title": "the mirror killed, then a long wait (the test SIGKILLs chaos run)",
                "description": "t",
                "configuration": {
                    "backend": "kubernetes",
                    "chaosregistry": {"namespace": DEMO_NAMESPACE, "sandbox_dir": sandbox_dir},
                },
                "method": [
                    {
                        "type": "action",
                        "name": "kill-the-mirror",
                        "provider": {
                            "type": "python",
                            "module": "chaosregistry.actions.node",
                            "func": "kill_registry_node",
                            "arguments": {"node": "mirror", "duration": KILL_DURATION},
                        },
                    },
                    {
                        "type": "action",
                        "name": "wait",
                        "provider": {"type": "process", "path": "sleep", "arguments": "120"},
                    },
                ],
            }
        )
    )
    ledger = Ledger(env)
    process = subprocess.Popen(
        [str(BIN / "chaos"), "--log-file", str(tmp_path / "chaos.log"), "run", str(experiment)],
        cwd=tmp_path,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        entry = eventually(
            "mirror kill injected",
            lambda: next((e for e in ledger.all() if e.state is FaultState.INJECTED), None),
            timeout=60,
            interval=0.05,
        )
        assert not sandbox.status(sandbox_dir)["processes"]["mirror"]["running"]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reverted = eventually(
        "mirror kill reverted",
        lambda: (e := ledger.get(entry.id)).state is FaultState.REVERTED and e,
        timeout=KILL_DURATION + 30,
    )
    # Not the fault's expiry: the watchdog saw its owner die.
    assert reverted.revert_reason is RevertReason.OWNER_GONE
    assert sandbox.status(sandbox_dir)["processes"]["mirror"]["running"]
    found = endpoints(kube_cluster)
    trust = ssl.create_default_context(cafile=str(found["ca_file"]))
    answer = httpx.get(f"{found['mirror']}/v2/", verify=trust, trust_env=False)
    assert answer.status_code == 200
