"""Read-only measurements of a registry: probes change nothing, except the writes
docs/architecture.md names ("Where probes may write").

Layer: activities (may import services, protocols and foundations; see docs/architecture.md).
"""
