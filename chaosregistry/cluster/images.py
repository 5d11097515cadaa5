"""The cluster's images, built here from Debian's busybox-static and pushed to the sandbox.

Nothing is downloaded: each image is one OCI layer (a reproducible tar of ``/bin/busybox``
plus a few applet links), a config and a manifest, pushed with
:class:`chaosregistry.oci.RegistryClient` (blobs, then the manifest). Pods name them under
``REGISTRY_HOST``, which containerd maps to the sandbox's client-facing hop.

* ``cluster/pause`` is the pod sandbox ("pause") image: busybox ``sleep`` as PID 1. containerd
  stops sandboxes with SIGKILL, so it needs no signal handling.
* ``demo/app`` is the demo workload: a shell loop that exits at once on SIGTERM.
* ``cluster/registry`` is the in-cluster registry (the victim of registry node kills): Debian's
  Distribution binary and the C library it links, on the busybox layer.
"""

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from chaosregistry.cluster.layout import REGISTRY_HOST
from chaosregistry.cluster.processes import ClusterError
from chaosregistry.errors import PullError
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.blobs import OCI_CONFIG, OCI_MANIFEST, Blob, sha256_digest

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "sleep", "true", "false", "echo", "cat", "ls", "ps", "wget", "env", "hostname")
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0

PAUSE_REPOSITORY = "cluster/pause"
PAUSE_TAG = "1"
DEMO_REPOSITORY = "demo/app"
DEMO_TAG = "1"
# Never pushed: the bad-tag rollout points at it.
MISSING_TAG = "does-not-exist"

# The in-cluster registry: Debian's Distribution in a pod. Each replica listens on
# REGISTRY_BASE_PORT + its StatefulSet ordinal (host network, loopback only), so the load
# balancer in front of them can name every replica on a fixed port.
REGISTRY_REPOSITORY = "cluster/registry"
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
REGISTRY_LIBRARIES = ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2")
# A force-deleted pod's replacement (same name, same port) can start before the kubelet has
# killed its predecessor's container: wait while the port still answers, or Distribution would
# exit on "address already in use" and the replacement would sit out a crash-loop back-off.
REGISTRY_ENTRYPOINT = (
    "export REGISTRY_HTTP_ADDR=127.0.0.1:$((REGISTRY_BASE_PORT + REGISTRY_ORDINAL)); "
    "n=0; while [ $n -lt 100 ] && wget -q -T 1 -O /dev/null http://$REGISTRY_HTTP_ADDR/v2/; "
    "do n=$((n + 1)); sleep 0.1; done; "
    "exec /bin/registry serve /etc/registry/config.yml"
)
# Anonymous and read-mostly: the storage is the sandbox's, which its own replicas write.
# No blob descriptor cache (another process may delete), no access log (one line per request
# under load would swamp the kubelet's log rotation), no upload purging (uploads in flight
# belong to the sandbox's replicas).
REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:5000
"""


def image_name(repository: str, tag: str) -> str:
    """The name pods and containerd use for ``repository:tag``."""
    return f"{REGISTRY_HOST}/{repository}:{tag}"


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str
    layer: Blob
    config: Blob
    manifest: Blob


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o755) -> None:
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode = len(data), mode
    tar.addfile(entry, io.BytesIO(data))


def busybox_layer_tar(
    busybox: Path = BUSYBOX, extra_files: dict[str, tuple[bytes, int]] | None = None
) -> bytes:
    """A reproducible tar: /bin/busybox, applet symlinks, an empty /tmp (1777), then
    ``extra_files`` ({path in the image: (content, mode)}, their directories created)."""
    if not busybox.is_file():
        raise ClusterError(f"{busybox} missing: install the Debian package busybox-static")
    extra_files = extra_files or {}
    directories = {"bin": 0o755, "tmp": 0o1777, "etc": 0o755}
    for name in extra_files:
        parent = Path(name).parent
        while str(parent) not in (".", ""):
            directories.setdefault(str(parent), 0o755)
            parent = parent.parent
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in sorted(directories.items()):
            entry = tarfile.TarInfo(name)
            entry.type, entry.mode = tarfile.DIRTYPE, mode
            tar.addfile(entry)
        _add_file(tar, "bin/busybox", busybox.read_bytes())
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(link)
        for name, (data, mode) in sorted(extra_files.items()):
            _add_file(tar, name, data, mode)
    return out.getvalue()


def registry_layer_files(binary: Path = REGISTRY_BINARY) -> dict[str, tuple[bytes, int]]:
    """Debian's Distribution binary with the C library it links (it is not static), and a
    config that listens where ``REGISTRY_HTTP_ADDR`` says and serves /var/lib/registry."""
    if not binary.is_file():
        raise ClusterError(f"{binary} missing: install the Debian package docker-registry")
    files = {"bin/registry": (binary.read_bytes(), 0o755)}
    for library in REGISTRY_LIBRARIES:
        # Store the file the symlink points at under the name the loader asks for.
        files[library.lstrip("/")] = (Path(library).resolve().read_bytes(), 0o755)
    files["etc/registry/config.yml"] = (REGISTRY_CONFIG.encode(), 0o644)
    return files


# Every bring-up builds these images again. Level 1 compresses the registry's 25 MB layer in a
# tenth of the CPU of gzip's level 9 (0.26 s against 2.6 s) for 11 % more bytes, which only
# cross the loopback; mtime=0 keeps the header (and so the digest) free of the current time.
LAYER_COMPRESSION = 1


def build_image(repository: str, tag: str, entrypoint: list[str], layer_tar: bytes) -> Image:
    layer = Blob(OCI_LAYER, gzip.compress(layer_tar, compresslevel=LAYER_COMPRESSION, mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Entrypoint": entrypoint, "WorkingDir": "/"},
        "rootfs": {
            "type": "layers",
            "diff_ids": [sha256_digest(layer_tar)],
        },
        "history": [{"created_by": "chaosregistry cluster: busybox-static from Debian"}],
    }
    config_blob = Blob(OCI_CONFIG, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [layer.descriptor()],
    }
    manifest_blob = Blob(OCI_MANIFEST, json.dumps(manifest, sort_keys=True).encode())
    return Image(repository, tag, layer, config_blob, manifest_blob)


def registry_image() -> Image:
    """``cluster/registry``, tagged by its content so a changed binary gets a new tag (the
    StatefulSet pulls IfNotPresent: a replacement pod starts without waiting on a pull)."""
    layer_tar = busybox_layer_tar(extra_files=registry_layer_files())
    tag = "distribution-" + hashlib.sha256(layer_tar).hexdigest()[:12]
    return build_image(
        REGISTRY_REPOSITORY,
        tag,
        ["/bin/sh", "-c", REGISTRY_ENTRYPOINT],
        layer_tar,
    )


def cluster_images() -> list[Image]:
    layer_tar = busybox_layer_tar()
    return [
        build_image(PAUSE_REPOSITORY, PAUSE_TAG, ["/bin/sleep", "2147483647"], layer_tar),
        build_image(
            DEMO_REPOSITORY,
            DEMO_TAG,
            ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
            layer_tar,
        ),
    ]


def push_images(
    registry_url: str, username: str, password: str, images: list[Image], *, ca_file: str
) -> int:
    """Push each image unless the registry already has its tag at the same digest.

    ``ca_file`` verifies the (sandbox's) HTTPS certificate. Returns how many were pushed.
    Raises ClusterError on any refused step.
    """
    pushed = 0
    with RegistryClient(
        registry_url,
        credentials=Credentials(username, password),
        verify=ca_file,
        timeout=TIMEOUT,
        connect_timeout=CONNECT_TIMEOUT,
    ) as client:
        for image in images:
            try:
                if _tag_digest(client, image) == image.manifest.digest:
                    continue
                for blob in (image.layer, image.config):
                    client.push_blob(image.repository, blob.data, blob.digest)
                client.push_manifest(
                    image.repository, image.tag, image.manifest.data, image.manifest.media_type
                )
            except PullError as exc:
                raise ClusterError(str(exc)) from None
            pushed += 1
    return pushed


def _tag_digest(client: RegistryClient, image: Image) -> str | None:
    try:
        return client.get_manifest(image.repository, image.tag).digest
    except PullError:
        return None  # push it: a refused push says what is wrong
