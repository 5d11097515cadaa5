"""The blast radius's analysis over API objects (tests/data/blast-radius/cluster.json: a small
cluster written by hand in the shape the API lists it: three nodes, one cordoned; Deployments,
their ReplicaSets and pods, a StatefulSet, a DaemonSet, a CronJob with its Job, a finished Job,
a bare pod, HPAs and PDBs), and the probe and the command that drive it."""

import json
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from click.testing import CliRunner

from chaosregistry.cli import main
from chaosregistry.errors import ConfigError
from chaosregistry.kubernetes import inventory as inventory_module
from chaosregistry.kubernetes.blast_radius import (
    BREAKS,
    DEGRADED,
    KEEPS_RUNNING,
    NODE_IMAGES_CAP,
    Inventory,
    Outage,
    analyze,
    backoff_after,
    parse_duration,
    resolve_image,
    table_lines,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "blast-radius" / "cluster.json"
REGISTRY = "registry.example:5000"


def recorded() -> Inventory:
    return Inventory(**json.loads(DATA.read_text()))


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{w['kind']}/{w['name']}": w for w in result["workloads"]}


def test_images_resolve_to_their_registry_host_with_docker_hub_defaults() -> None:
    nginx = resolve_image("nginx")
    assert (nginx.host, nginx.repository, nginx.tag, nginx.pinned) == (
        "docker.io",
        "library/nginx",
        None,
        "tag",
    )
    assert nginx.default_pull_policy() == "Always"
    assert resolve_image("bitnami/redis:7.2").repository == "bitnami/redis"
    assert resolve_image("index.docker.io/library/nginx:1.25").key == "docker.io/library/nginx:1.25"
    pinned = resolve_image(f"{REGISTRY}/shop/api:1.4@sha256:{'c' * 64}")
    assert (pinned.host, pinned.tag, pinned.pinned) == (REGISTRY, "1.4", "digest")
    assert pinned.key == f"{REGISTRY}/shop/api@sha256:{'c' * 64}"
    assert pinned.default_pull_policy() == "IfNotPresent"
    assert resolve_image("localhost/app:latest").default_pull_policy() == "Always"
    with pytest.raises(ConfigError):
        resolve_image("Not An Image")


def test_each_workload_gets_its_class_and_reason_from_pull_policy_and_cached_nodes() -> None:
    result = by_name(analyze(recorded(), Outage(hosts=None, seconds=600)))
    assert result["Deployment/web"]["class"] == KEEPS_RUNNING
    assert "every schedulable node" in result["Deployment/web"]["reason"]
    # Cached on node-a only (node-c is cordoned and does not count, node-b lacks it).
    assert result["Deployment/api"]["class"] == DEGRADED
    assert "image on 1 of 2 schedulable nodes" in result["Deployment/api"]["reason"]
    assert "HPA may scale it to 8" in result["Deployment/api"]["reason"]
    assert result["Deployment/latest"]["class"] == BREAKS
    assert "pullPolicy Always (defaulted)" in result["Deployment/latest"]["reason"]
    assert result["StatefulSet/db"]["class"] == BREAKS
    assert "image on no node" in result["StatefulSet/db"]["reason"]
    assert result["DaemonSet/node-exporter"]["class"] == KEEPS_RUNNING
    assert result["CronJob/report"]["class"] == DEGRADED
    assert result["Pod/debug"]["class"] == KEEPS_RUNNING
    assert "Never" in result["Pod/debug"]["reason"]
    assert result["Deployment/ghost"]["class"] == BREAKS
    assert "cannot be pulled even now (ImagePullBackOff" in result["Deployment/ghost"]["reason"]
    # The init container's Always pull breaks a workload whose main image is cached everywhere.
    assert result["Deployment/migrating"]["class"] == BREAKS
    assert result["Deployment/migrating"]["reason"].startswith("migrate: pullPolicy Always")
    assert result["Job/seed-once"]["class"] == KEEPS_RUNNING
    assert result["Job/seed-once"]["reason"] == "finished: starts no pod"


def test_pods_are_grouped_under_their_controllers_and_runs_under_their_cron_job() -> None:
    result = analyze(recorded(), Outage())
    workloads = by_name(result)
    assert "ReplicaSet/web-5d4f" not in workloads and "Job/report-29000000" not in workloads
    assert workloads["Deployment/web"]["pods"] == 2
    assert workloads["Deployment/web"]["nodes"] == ["node-a", "node-b"]
    assert workloads["CronJob/report"]["pods"] == 1
    assert workloads["Job/seed-once"]["pods"] == 0  # its pod Succeeded
    assert result["pods"] == 12
    assert (result["nodes"], result["schedulable_nodes"]) == (3, 2)
    assert result["notes"] == [
        "1 node(s) list no images (a kubelet reports them within about 30 s of starting): "
        "node-c; images count as absent there"
    ]
    assert result["classes"] == {KEEPS_RUNNING: 4, DEGRADED: 2, BREAKS: 4}
    assert (result["keeps_running"], result["degraded"], result["breaks"]) == (4, 2, 4)
    assert [w["class"] for w in result["workloads"]][:4] == [BREAKS] * 4


def test_a_node_not_ready_takes_no_new_pods_and_does_not_count() -> None:
    data = json.loads(DATA.read_text())
    node_b = data["nodes"][1]
    node_b["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    result = analyze(Inventory(**data), Outage())
    assert result["schedulable_nodes"] == 1
    # Cached on node-a, the only schedulable node left: it can restart, scale and move there.
    assert by_name(result)["Deployment/api"]["class"] == KEEPS_RUNNING
    node_b["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert by_name(analyze(Inventory(**data), Outage()))["Deployment/api"]["class"] == DEGRADED


def test_containers_report_image_pin_policy_and_the_nodes_holding_it() -> None:
    workloads = by_name(analyze(recorded(), Outage()))
    (worker,) = workloads["CronJob/report"]["containers"]
    assert worker["pinned"] == "digest" and worker["digest"] == "sha256:" + "b" * 64
    assert worker["nodes_with_image"] == ["node-a"] and not worker["on_every_node"]
    (nginx,) = workloads["Deployment/web"]["containers"]
    assert (nginx["host"], nginx["repository"], nginx["tag"]) == (
        "docker.io",
        "library/nginx",
        "1.25",
    )
    assert (nginx["pull_policy"], nginx["pull_policy_source"]) == ("IfNotPresent", "written")
    assert nginx["nodes_with_image"] == ["node-a", "node-b"] and nginx["on_every_node"]
    migrate = workloads["Deployment/migrating"]["containers"][0]
    assert migrate["init"] and migrate["name"] == "migrate"


def test_hpa_bounds_and_matching_pdbs_are_attached() -> None:
    workloads = by_name(analyze(recorded(), Outage()))
    assert workloads["Deployment/web"]["hpa"] == {
        "name": "web",
        "min_replicas": 2,
        "max_replicas": 10,
        "current_replicas": 2,
    }
    assert [p["name"] for p in workloads["Deployment/web"]["pdbs"]] == ["web"]
    assert workloads["StatefulSet/db"]["pdbs"] == [
        {
            "name": "shop-no-db",
            "min_available": None,
            "max_unavailable": 1,
            "disruptions_allowed": 0,
        }
    ]
    assert workloads["Deployment/api"]["pdbs"] == []


def test_a_registry_not_cut_or_reached_through_an_uncut_mirror_keeps_running() -> None:
    quay_only = by_name(analyze(recorded(), Outage(hosts=frozenset({"quay.io"}))))
    assert quay_only["Deployment/latest"]["class"] == KEEPS_RUNNING
    assert quay_only["StatefulSet/db"]["reason"] == f"db: pulls from {REGISTRY}, not cut"
    # A pull error now breaks whatever the outage: the image is not pullable at all.
    assert quay_only["Deployment/ghost"]["class"] == BREAKS

    mirrored = Outage(hosts=frozenset({REGISTRY}), mirrors={REGISTRY: ("mirror.example:5001",)})
    through_mirror = by_name(analyze(recorded(), mirrored))
    assert through_mirror["Deployment/latest"]["class"] == KEEPS_RUNNING
    assert through_mirror["Deployment/latest"]["containers"][0]["sources"] == [
        "mirror.example:5001",
        REGISTRY,
    ]
    both_cut = Outage(
        hosts=frozenset({REGISTRY, "mirror.example:5001"}),
        mirrors={REGISTRY: ("mirror.example:5001",)},
    )
    assert by_name(analyze(recorded(), both_cut))["Deployment/latest"]["class"] == BREAKS


def node_with(name: str, images: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"images": [{"names": [image]} for image in images]},
    }


def test_a_node_listing_the_kubelets_cap_of_images_is_named_and_makes_a_miss_uncertain() -> None:
    filler = [f"docker.io/library/filler{i}:1" for i in range(NODE_IMAGES_CAP)]
    inventory = Inventory(
        nodes=[node_with("full", filler), node_with("small", ["docker.io/library/app:1"])],
        pods=[
            {
                "metadata": {"name": "app", "namespace": "default"},
                "spec": {
                    "nodeName": "small",
                    "containers": [
                        {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent"}
                    ],
                },
                "status": {"phase": "Running"},
            }
        ],
    )
    result = analyze(inventory, Outage())
    assert result["capped_nodes"] == ["full"]
    assert any("exactly 50 images" in note for note in result["notes"])
    (app,) = result["workloads"]
    assert app["class"] == DEGRADED
    assert app["containers"][0]["uncertain"] is True
    assert "the kubelet's cap of images" in app["reason"]
    # One image fewer: the node's list is whole, so the miss is certain.
    result = analyze(
        Inventory(nodes=[node_with("full", filler[1:]), inventory.nodes[1]], pods=inventory.pods),
        Outage(),
    )
    assert result["capped_nodes"] == [] and not result["workloads"][0]["containers"][0]["uncertain"]


def test_backoff_after_an_outage_doubles_from_10_to_300_seconds() -> None:
    assert backoff_after(5) == 10
    assert backoff_after(25) == 20
    assert backoff_after(600) == 300
    assert analyze(Inventory(), Outage(seconds=45))["outage"] == {
        "registries": None,
        "seconds": 45,
        "backoff_after_heal_seconds": 40,
    }


def test_durations_parse_with_units_and_refuse_anything_else() -> None:
    assert parse_duration("10m") == 600
    assert parse_duration("90") == 90
    assert parse_duration("1h") == 3600
    with pytest.raises(ConfigError, match="--outage 'soon' is not a duration"):
        parse_duration("soon", "--outage")
    with pytest.raises(ConfigError, match="longer than 0"):
        parse_duration("0s")


def test_the_table_shows_every_workload_and_the_totals() -> None:
    lines = table_lines(analyze(recorded(), Outage(hosts=frozenset({REGISTRY}), seconds=600)))
    assert lines[0].split() == ["CLASS", "WORKLOAD", "PULL:PIN", "REASON"]
    assert any(
        line.startswith("degraded") and "Deployment/shop/api" in line and "IfNotPresent:tag" in line
        for line in lines
    )
    assert lines[-2] == (
        f"outage of {REGISTRY} for 600 s: 4 keeps-running, 2 degraded, 4 breaks (10 workloads, "
        "12 pods, 3 nodes); pods failing to pull wait up to 300 s of back-off after it heals"
    )
    assert lines[-1].startswith("note: 1 node(s) list no images")


# -- the I/O around it: one paged list call per kind ----------------------------------------
def api_server(
    inventory: dict[str, list[dict[str, Any]]], requests: list[httpx.Request]
) -> httpx.MockTransport:
    paths = {
        "/api/v1/nodes": "nodes",
        "/api/v1/pods": "pods",
        "/apis/apps/v1/replicasets": "replica_sets",
        "/apis/apps/v1/deployments": "deployments",
        "/apis/apps/v1/statefulsets": "stateful_sets",
        "/apis/apps/v1/daemonsets": "daemon_sets",
        "/apis/batch/v1/jobs": "jobs",
        "/apis/batch/v1/cronjobs": "cron_jobs",
        "/apis/autoscaling/v2/horizontalpodautoscalers": "autoscalers",
        "/apis/policy/v1/poddisruptionbudgets": "disruption_budgets",
    }

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        items = inventory[paths[request.url.path]]
        limit = int(request.url.params["limit"])
        start = int(request.url.params.get("continue") or 0)
        page = items[start : start + limit]
        more = str(start + limit) if start + limit < len(items) else None
        return httpx.Response(
            200, json={"kind": "List", "metadata": {"continue": more}, "items": page}
        )

    return httpx.MockTransport(answer)


def test_predict_lists_each_kind_once_paged_never_per_pod(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from lightkube import Client
    from lightkube.config.kubeconfig import SingleConfig
    from lightkube.config.models import Cluster, Context, User

    data = json.loads(DATA.read_text())
    # Enough pods for three pages.
    pod = data["pods"][-1]
    data["pods"] += [
        {**pod, "metadata": {**pod["metadata"], "name": f"debug-{i}", "uid": f"u{i}"}}
        for i in range(2 * inventory_module.PAGE_SIZE)
    ]
    requests: list[httpx.Request] = []
    transport = api_server(data, requests)
    config = SingleConfig(
        context_name="test",
        context=Context(cluster="test"),
        cluster=Cluster(server="http://cluster.invalid"),
        user=User(token="test"),
    )

    class Settings:
        registry_mirrors: ClassVar = {"index.docker.io": ["mirror.example"]}

        def client(self) -> Client:
            return Client(config=config, trust_env=False, transport=transport)

    result = inventory_module.predict(Settings(), registry="docker.io", outage_seconds=60)  # type: ignore[arg-type]
    paths = [r.url.path for r in requests]
    assert paths.count("/api/v1/pods") == 3  # 1000 + 13 pods, 500 a page
    assert len(paths) == 10 + 2
    assert all(r.method == "GET" and r.url.params["limit"] == "500" for r in requests)
    assert result["pods"] == 12 + 2 * inventory_module.PAGE_SIZE
    assert result["outage"]["registries"] == ["docker.io"]
    web = by_name(result)["Deployment/web"]["containers"][0]
    assert web["sources"] == ["mirror.example", "docker.io"] and not web["cut"]


def test_the_command_refuses_a_bad_outage_in_one_line(tmp_path: Path) -> None:
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text(yaml.safe_dump({"configuration": {"backend": "kubernetes"}}))
    outcome = CliRunner().invoke(
        main, ["blast-radius", "--vars", str(vars_file), "--outage", "ten minutes"]
    )
    assert outcome.exit_code == 1
    assert (
        outcome.output.strip()
        == "Error: --outage 'ten minutes' is not a duration (90, 90s, 10m, 1h)"
    )


def test_the_command_names_a_missing_kubeconfig_in_one_line(tmp_path: Path) -> None:
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text(
        yaml.safe_dump({"configuration": {"chaosregistry": {"kubeconfig": str(tmp_path / "none")}}})
    )
    outcome = CliRunner().invoke(main, ["blast-radius", "--vars", str(vars_file)])
    assert outcome.exit_code == 1
    assert outcome.output.strip() == f"Error: kubeconfig {tmp_path / 'none'} does not exist"


def test_registry_mirrors_must_map_hosts_to_lists() -> None:
    from chaosregistry.experiment.settings import parse_settings

    with pytest.raises(
        ConfigError, match=r"configuration.registry_mirrors.docker.io: must be a list"
    ):
        parse_settings({"registry_mirrors": {"docker.io": "mirror.example"}})
    parsed = parse_settings({"registry_mirrors": {"docker.io": ["mirror.example"]}})
    assert dict(parsed.kubernetes.registry_mirrors) == {"docker.io": ("mirror.example",)}


# -- the report -------------------------------------------------------------------------------
def test_a_journals_prediction_shows_in_summary_html_and_markdown(tmp_path: Path) -> None:
    from support.reports import action_run, gameday, journal, write_run

    from chaosregistry.reports import build_report

    prediction = analyze(recorded(), Outage(hosts=frozenset({REGISTRY}), seconds=600))
    run = action_run(
        "predict", "blast_radius", prediction, 1.0, 1.5, "chaosregistry.probes.blast_radius"
    )
    run["activity"]["type"] = "probe"
    data = journal()
    data["run"].insert(0, run)
    data["experiment"]["method"].insert(0, run["activity"])
    built = build_report([write_run(tmp_path / "run", data, gameday())], tmp_path / "out")

    (summary,) = json.loads(built.summary_json.read_text())["runs"][0]["blast_radius"]
    assert summary["name"] == "predict" and summary["registries"] == [REGISTRY]
    assert summary["classes"] == {KEEPS_RUNNING: 4, DEGRADED: 2, BREAKS: 4}
    assert summary["backoff_after_heal_seconds"] == 300
    assert summary["workloads"][0] == {
        "kind": "Deployment",
        "namespace": "shop",
        "name": "ghost",
        "class": BREAKS,
        "reason": prediction["workloads"][0]["reason"],
    }
    page = built.html.read_text()
    assert "Blast radius (predicted): predict" in page
    assert "<td>StatefulSet/db</td>" in page
    assert (
        f"blast radius `predict` (outage of {REGISTRY}): 4 keeps-running, 2 degraded, 4 breaks"
        in (built.summary_md.read_text())
    )


def test_the_prediction_waits_for_nodes_that_have_not_reported_their_images() -> None:
    # A kubelet lists its node's images only once its image cache is filled (30-40 s after a
    # test cluster's `up`); until then a schedulable node lists none, read as "nothing cached".
    from chaosregistry.kubernetes.inventory import (
        IMAGE_REPORT_POLL,
        silent_nodes,
        wait_for_image_reports,
    )

    def node(name: str, images: list[str], **spec: Any) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": spec,
            "status": {"images": [{"names": [i]} for i in images]},
        }

    cordoned = node("node-c", [], unschedulable=True)
    silent = Inventory(nodes=[node("node-a", ["pause:1"]), node("node-b", []), cordoned])
    reported = Inventory(nodes=[node("node-a", ["pause:1"]), node("node-b", ["pause:1"]), cordoned])
    assert silent_nodes(silent) == ["node-b"]  # a cordoned node takes no pods: not waited for
    assert silent_nodes(reported) == []

    lists = iter([silent, silent, reported])
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    got = wait_for_image_reports(lambda: next(lists), sleep=sleep, clock=lambda: now[0])
    assert got is reported and slept == [IMAGE_REPORT_POLL, IMAGE_REPORT_POLL]
    # A node that never reports (it may hold no image at all): the last list, after the wait.
    slept.clear()
    got = wait_for_image_reports(lambda: silent, wait=5, sleep=sleep, clock=lambda: now[0])
    assert got is silent and sum(slept) >= 5 and len(slept) == 3
