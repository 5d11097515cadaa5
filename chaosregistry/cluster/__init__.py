"""A real Kubernetes test bed (one node, or two), built from Go modules, pulling from the sandbox.

``up(state_dir)`` builds (cached) etcd and the Kubernetes server binaries, starts the registry
sandbox, containerd, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the
kubelet, installs Chaos Mesh's CRDs and the demo Deployment, and returns the settings (with the
admin ``kubeconfig`` path). ``down(state_dir)`` stops and cleans everything; ``status`` reports.
Versions live in :mod:`chaosregistry.cluster.versions`; the layout of the state directory in
:mod:`chaosregistry.cluster.layout`. The CLI is ``chaosregistry cluster up | down | status``.

Layer: services (may import the package root, protocols and foundations; see docs/architecture.md).
"""

from chaosregistry.cluster.layout import DEFAULT_BASE_PORT, DEFAULT_STATE_DIR, DEMO_NAMESPACE
from chaosregistry.cluster.lifecycle import admin_client, down, status, up
from chaosregistry.cluster.processes import ClusterError

__all__ = [
    "DEFAULT_BASE_PORT",
    "DEFAULT_STATE_DIR",
    "DEMO_NAMESPACE",
    "ClusterError",
    "admin_client",
    "down",
    "status",
    "up",
]
