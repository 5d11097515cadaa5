"""What registries and images are trusted by, made and checked without network I/O.

``pki`` is the one place X.509 keys and certificates are made (the sandbox's CA, the test
cluster's, the certificate faults'); ``tlsinspect`` reads a TLS endpoint's facts (version, ALPN,
chain, expiry, trust and host name apart); ``signatures`` and ``signature_bundle`` are cosign's
image signatures in its legacy tag format and its bundle format (OCI 1.1 referrers). May import
``oci`` (references, digests) and the foundations only.

Layer: protocols (may import foundations; see docs/architecture.md).
"""
