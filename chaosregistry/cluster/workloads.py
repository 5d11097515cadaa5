"""The objects ``cluster up`` keeps in the cluster: the opted-in namespace and the demo.

Built as plain dicts with the API's own field names, applied server-side (idempotent: a
second ``up`` puts back anything an experiment left changed, such as the demo's image).
"""

from typing import Any

from lightkube import Client
from lightkube.codecs import from_dict

from chaosregistry.cluster.images import DEMO_REPOSITORY, DEMO_TAG, image_name
from chaosregistry.cluster.layout import CHAOS_LABEL, DEMO_NAMESPACE
from chaosregistry.kube import translated

DEMO_NAME = "demo"
DEMO_REPLICAS = 3
# Short so a bad rollout is declared failed quickly (tests wait for it).
DEMO_PROGRESS_DEADLINE_SECONDS = 30
DEMO_REVISION_HISTORY_LIMIT = 3
DEMO_LABELS = {"app.kubernetes.io/name": DEMO_NAME, "app.kubernetes.io/part-of": "chaosregistry"}


def chaos_namespace(name: str = DEMO_NAMESPACE) -> dict[str, Any]:
    key, value = CHAOS_LABEL
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {key: value}},
    }


def demo_deployment(image: str | None = None) -> dict[str, Any]:
    """Deployment ``demo``: busybox from the sandbox, pulled on every pod start (Always)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEMO_NAME, "namespace": DEMO_NAMESPACE, "labels": DEMO_LABELS},
        "spec": {
            "replicas": DEMO_REPLICAS,
            "revisionHistoryLimit": DEMO_REVISION_HISTORY_LIMIT,
            "progressDeadlineSeconds": DEMO_PROGRESS_DEADLINE_SECONDS,
            "selector": {"matchLabels": DEMO_LABELS},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": DEMO_LABELS},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    # No cluster DNS here: say so instead of a MissingClusterDNS event per pod.
                    "dnsPolicy": "Default",
                    "containers": [
                        {
                            "name": "app",
                            "image": image or image_name(DEMO_REPOSITORY, DEMO_TAG),
                            "imagePullPolicy": "Always",
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"memory": "64Mi"},
                            },
                        }
                    ],
                },
            },
        },
    }


def apply_objects(kube: Client, documents: list[dict[str, Any]]) -> None:
    with translated():
        for document in documents:
            kube.apply(from_dict(document), force=True)
