"""An OCI distribution client that pulls the way a container runtime does, and times each phase.

It also pushes (blobs, then manifests): the sandbox seed, the cluster's images and cold-mode
load images all go up through it.

All registry HTTP in this project goes through :class:`RegistryClient`; errors are translated
into :class:`chaosregistry.errors.PullError` in one place (``chaosregistry.oci.failures``).

Layer: protocols (may import foundations; see docs/architecture.md).
"""

from chaosregistry.oci.client import RegistryClient
from chaosregistry.oci.pull import PullResult, pull
from chaosregistry.oci.reference import ImageReference, Platform

__all__ = ["ImageReference", "Platform", "PullResult", "RegistryClient", "pull"]
