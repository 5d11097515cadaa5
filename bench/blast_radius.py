"""bench/blast_radius: the blast radius's analysis over a generated cluster of 10,000 pods on
1,000 nodes, beside the cost of decoding the same objects from JSON.

``chaosregistry blast-radius`` lists each kind once (paged) and hands the objects to
``kubernetes.blast_radius.analyze``, which must stay fast on real clusters (issue 22: under 2 s
here for 10,000 pods on 1,000 nodes). The baseline is ``json.loads`` of the same inventory, the
least any reader of the API's answers pays, so the ratio says what the analysis adds.

The generated cluster (seeded, the same every run): 1,000 nodes each listing 40 images of a pool
of 600 (three registries, tags and digests; one node in ten at the kubelet's cap of 50),
1,200 Deployments of 5 pods (with their ReplicaSets), 100 StatefulSets of 5, 3 DaemonSets
(a pod on every node), 200 CronJobs with one running Job each, 300 bare pods: 10,000 pods;
300 HPAs and 500 PDBs.

    .venv/bin/python bench/blast_radius.py [--rounds 5] [--json F]
"""

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from chaosregistry.kubernetes.blast_radius import (
    NODE_IMAGES_CAP,
    Inventory,
    Outage,
    analyze,
    resolve_image,
)

NODES = 1000
REGISTRIES = ("registry.example:5000", "docker.io/library", "quay.io/team")
POOL = 600


def image(i: int) -> str:
    registry = REGISTRIES[i % len(REGISTRIES)]
    if i % 5 == 0:
        return f"{registry}/app{i}@sha256:{i:064x}"
    return f"{registry}/app{i}:{'latest' if i % 7 == 0 else f'1.{i}'}"


def generate(seed: int = 22) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    pool = [image(i) for i in range(POOL)]
    daemon_images = [image(POOL + i) for i in range(3)]
    nodes = []
    for n in range(NODES):
        held = rng.sample(pool, NODE_IMAGES_CAP - 3 if n % 10 == 0 else 37) + daemon_images
        nodes.append(
            {
                "metadata": {"name": f"node-{n:04d}", "uid": f"node-{n}"},
                "spec": {"unschedulable": n % 100 == 0},
                "status": {"images": [{"names": [t], "sizeBytes": 1} for t in held]},
            }
        )
    pods: list[dict[str, Any]] = []
    inventory: dict[str, list[dict[str, Any]]] = {
        "nodes": nodes,
        "pods": pods,
        "replica_sets": [],
        "deployments": [],
        "stateful_sets": [],
        "daemon_sets": [],
        "jobs": [],
        "cron_jobs": [],
        "autoscalers": [],
        "disruption_budgets": [],
    }

    def template(app: str, images: list[str]) -> dict[str, Any]:
        return {
            "metadata": {"labels": {"app": app}},
            "spec": {
                "initContainers": [{"name": "init", "image": images[0]}] if len(images) > 2 else [],
                "containers": [
                    {"name": f"c{i}", "image": text, "imagePullPolicy": "IfNotPresent"}
                    for i, text in enumerate(images)
                ],
            },
        }

    def add_pods(owner_kind: str, owner: str, namespace: str, app: str, tpl: Any, n: int) -> None:
        for i in range(n):
            pods.append(
                {
                    "metadata": {
                        "name": f"{owner}-{i}",
                        "namespace": namespace,
                        "uid": f"pod-{owner}-{i}",
                        "labels": {"app": app},
                        "ownerReferences": [
                            {"kind": owner_kind, "name": owner, "uid": owner, "controller": True}
                        ]
                        if owner_kind
                        else [],
                    },
                    "spec": {
                        **tpl["spec"],
                        "nodeName": f"node-{rng.randrange(NODES):04d}",
                    },
                    "status": {"phase": "Running"},
                }
            )

    def controller(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": namespace, "uid": name},
            "spec": spec,
        }

    for d in range(1200):
        namespace, name = f"ns{d % 50}", f"deploy{d}"
        tpl = template(name, rng.sample(pool, rng.choice((1, 1, 2, 3))))
        inventory["deployments"].append(
            controller(name, namespace, {"replicas": 5, "template": tpl})
        )
        rs = {
            "metadata": {
                "name": f"{name}-rs",
                "namespace": namespace,
                "uid": f"{name}-rs",
                "ownerReferences": [
                    {"kind": "Deployment", "name": name, "uid": name, "controller": True}
                ],
            },
            "spec": {"replicas": 5, "template": tpl},
        }
        inventory["replica_sets"].append(rs)
        add_pods("ReplicaSet", f"{name}-rs", namespace, name, tpl, 5)
        if d % 4 == 0:
            inventory["autoscalers"].append(
                {
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {
                        "scaleTargetRef": {"kind": "Deployment", "name": name},
                        "minReplicas": 2,
                        "maxReplicas": 20,
                    },
                }
            )
    for s in range(100):
        namespace, name = f"ns{s % 50}", f"sts{s}"
        tpl = template(name, rng.sample(pool, 1))
        inventory["stateful_sets"].append(
            controller(name, namespace, {"replicas": 5, "template": tpl})
        )
        add_pods("StatefulSet", name, namespace, name, tpl, 5)
    for s, text in enumerate(daemon_images):
        name = f"daemon{s}"
        tpl = template(name, [text])
        inventory["daemon_sets"].append(controller(name, "kube-system", {"template": tpl}))
        for n in range(NODES):
            add_pods("DaemonSet", name, "kube-system", name, tpl, 1)
            pods[-1]["spec"]["nodeName"] = f"node-{n:04d}"
            pods[-1]["metadata"]["name"] = f"{name}-{n}"
    for c in range(200):
        namespace, name = f"ns{c % 50}", f"cron{c}"
        tpl = template(name, rng.sample(pool, 1))
        inventory["cron_jobs"].append(
            controller(name, namespace, {"jobTemplate": {"spec": {"template": tpl}}})
        )
        job = f"{name}-1"
        inventory["jobs"].append(
            {
                "metadata": {
                    "name": job,
                    "namespace": namespace,
                    "uid": job,
                    "ownerReferences": [
                        {"kind": "CronJob", "name": name, "uid": name, "controller": True}
                    ],
                },
                "spec": {"template": tpl},
                "status": {"active": 1},
            }
        )
        add_pods("Job", job, namespace, name, tpl, 1)
    for b in range(300):
        tpl = template(f"bare{b}", rng.sample(pool, 1))
        add_pods("", f"bare{b}", f"ns{b % 50}", f"bare{b}", tpl, 1)
    for p in range(500):
        inventory["disruption_budgets"].append(
            {
                "metadata": {"name": f"pdb{p}", "namespace": f"ns{p % 50}"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": f"deploy{p * 2}"}}},
                "status": {"disruptionsAllowed": 1},
            }
        )
    return inventory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="Write the figures here.")
    args = parser.parse_args()

    data = generate()
    text = json.dumps(data)
    outage = Outage(hosts=frozenset({"registry.example:5000"}), seconds=600)
    decode, analysis = [], []
    result: dict[str, Any] = {}
    for _ in range(args.rounds):
        # Fresh objects each round, and the image cache emptied: every round is a cold start.
        resolve_image.cache_clear()
        started = time.perf_counter()
        fresh = json.loads(text)
        decode.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = analyze(Inventory(**fresh), outage)
        analysis.append(time.perf_counter() - started)
    figures = {
        "pods": result["pods"],
        "nodes": result["nodes"],
        "workloads": len(result["workloads"]),
        "classes": result["classes"],
        "capped_nodes": len(result["capped_nodes"]),
        "inventory_json_bytes": len(text),
        "rounds": args.rounds,
        "json_loads_median_seconds": round(statistics.median(decode), 3),
        "analysis_median_seconds": round(statistics.median(analysis), 3),
        "analysis_max_seconds": round(max(analysis), 3),
        "analysis_over_json_loads": round(
            statistics.median(analysis) / statistics.median(decode), 2
        ),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
