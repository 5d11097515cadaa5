"""What we read of a registry besides our own pulls.

``prometheus`` is Prometheus's query API as numbers with classified errors (where it is: the
settings' ``prometheus`` part); ``promql`` checks expressions and rules files offline with
``promtool``; ``sli`` is the client-side SLI feeder (one UDP datagram per pull or rollout
outcome) and ``sli_exporter`` the process Prometheus scrapes; ``registry_events`` reads the
registries' push notifications as the sandbox's receiver records them. May import ``oci``,
``experiment`` (settings) and the foundations; never an activity, a backend or a test bed.

Layer: services (may import the package root, protocols and foundations; see docs/architecture.md).
"""
