"""Every version the test cluster is built from, pinned here and nowhere else.

Kubernetes v1.34.4 (the newest 1.34 patch on the module proxy when this was written).
1.34 is the newest minor whose kubelet still starts on a cgroup v1 host without extra
settings: its ``KubeletConfiguration.failCgroupV1`` defaults to ``false``, while from 1.35 on it
defaults to ``true`` and the kubelet refuses cgroup v1 unless told otherwise (cgroup v1 support
is in maintenance mode upstream and due to be removed). The test machines run cgroup v1, so we
stay on the newest minor that supports it as a matter of course rather than by opt-out.

etcd v3.6.5 is the version kubeadm v1.34 deploys (``DefaultEtcdVersion``); the apiserver's own
client is 3.6.4, a patch away.

Chaos Mesh publishes its Go API module (``github.com/chaos-mesh/chaos-mesh/api``) without tags,
so it is pinned by pseudo-version (the module proxy's ``@latest`` when this was written).
controller-gen comes from controller-tools v0.18.0, the version Chaos Mesh's own dev image
installs to generate these CRDs; we pass it Chaos Mesh's own options
(``crd:ignoreUnexportedFields=true,crdVersions=v1``).

Chaos Mesh's controller-manager is built from the main module, also untagged: its ``@latest``
when this was written. The proxy has no API module at that commit (nor the main module at the
API's), so the build pairs it with the API pinned above (4 days newer, the one the CRDs come
from); the main module's ``replace .../api => ./api`` points at that copy.
"""

KUBERNETES_VERSION = "v1.34.4"
# k8s.io/kubernetes pins its k8s.io/* staging modules at v0.<minor>.<patch> of the same release.
KUBERNETES_STAGING_VERSION = "v0." + KUBERNETES_VERSION.removeprefix("v1.")
ETCD_VERSION = "v3.6.5"
CONTROLLER_TOOLS_VERSION = "v0.18.0"
CHAOS_MESH_API_VERSION = "v0.0.0-20260906172039-d70b66ad97ac"
CHAOS_MESH_VERSION = "v0.9.1-0.20260902003049-47411975a8cb"

# The server binaries built from k8s.io/kubernetes, by command package. No kube-proxy: the
# test bed needs no Services reached through cluster IPs (pods reach the registry by host IP).
KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
)
