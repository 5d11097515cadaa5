"""The vars file ``chaosregistry cluster up`` writes for the product: ``<state_dir>/vars.yaml``.

The product never reads the test bed's own state (``cluster.json``): what a game day needs to
reach this cluster and the sandbox it pulls through, it gets from this file, passed like any
vars file (``chaosregistry gameday EXPERIMENT --vars <state_dir>/vars.yaml``, or ``chaos run
--var-file``). It is a whole vars file, experiments/vars/kubernetes.yaml with this cluster's
paths filled in, because Chaos Toolkit replaces a top-level configuration key whole: a second
vars file with its own ``chaosregistry`` mapping would drop the first one's settings.
"""

from pathlib import Path
from typing import Any

import yaml

from chaosregistry.cluster.layout import DEMO_NAMESPACE, REGISTRY_NAMESPACE, Layout
from chaosregistry.cluster.workloads import REGISTRY_NAME
from chaosregistry.experiment.settings import NODE_PULLS_ORIGIN
from chaosregistry.osutil.files import write_text_atomic

HEADER = """\
# Written by `chaosregistry cluster up` for the test cluster in {state_dir}.
# Pass it as the vars file: chaosregistry gameday EXPERIMENT --vars {path}
# (experiments/vars/kubernetes.yaml, with this cluster's kubeconfig and sandbox filled in).
"""

FOOTER = """\
    # registry-node-kill must measure the registry whose pods it kills: for it, set the
    # in-cluster registry's balancer as the registry the probes and the load measure.
    # registry_url: {cluster_registry}
"""


def vars_document(settings: dict[str, Any]) -> dict[str, Any]:
    """The vars file's data for a cluster's settings (``cluster.json`` as ``up`` has it)."""
    return {
        "configuration": {
            "backend": "kubernetes",
            "chaosregistry": {
                "kubeconfig": str(settings["kubeconfig"]),
                # The sandbox the cluster's node pulls through: the Toxiproxy hops the
                # network faults act on, and the registry the probes measure by default.
                "sandbox_dir": str(settings["sandbox_dir"]),
                "namespace": DEMO_NAMESPACE,
                "network_provider": "toxiproxy",
                "node_kill_provider": "api",
                # How the node pulls (`cluster up --node-pulls`): the mirror kill refuses to
                # run on "origin", where it would test no fallback.
                "node_pulls": str(settings.get("node_pulls") or NODE_PULLS_ORIGIN),
                "registry_nodes": {
                    "registry-1": {
                        "namespace": REGISTRY_NAMESPACE,
                        "selector": {"app.kubernetes.io/name": REGISTRY_NAME},
                        "mode": "one",
                    }
                },
            },
        }
    }


def write_vars_file(layout: Layout, settings: dict[str, Any]) -> Path:
    """Write ``<state_dir>/vars.yaml`` for ``settings``; returns its path."""
    path = layout.vars_file
    text = (
        HEADER.format(state_dir=layout.state_dir, path=path)
        + yaml.safe_dump(vars_document(settings), sort_keys=False, default_flow_style=False)
        + FOOTER.format(cluster_registry=settings.get("cluster_registry") or "http://...")
    )
    write_text_atomic(path, text)
    return path
