"""Content-addressed bytes: a blob's ``sha256:<hex>`` digest, its OCI descriptor, and the OCI
media types of the documents every image has (manifest, index, config).

Pure: no I/O. The images this project builds (the sandbox's seed, cold-mode load images, the
cluster's images, cosign's signature and bundle artifacts) and the pull protocol's checks all
compute digests here.
"""

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def sha256_digest(data: bytes) -> str:
    """The content digest of ``data``: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """Bytes of one media type, addressed by their digest."""

    media_type: str
    data: bytes = field(repr=False)

    @cached_property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        """The OCI descriptor that points at this blob: ``mediaType``, ``digest``, ``size``."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
