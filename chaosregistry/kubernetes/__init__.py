"""Kubernetes as the probes and actions see it, through lightkube.

``client`` makes every API client (an explicit kubeconfig, explicit timeouts) and translates its
errors; ``rollout`` reads a Deployment's rollout as ``kubectl rollout status`` does (pure);
``chaosmesh`` builds Chaos Mesh objects as plain dicts; ``delivery`` follows one release from
the push to every pod running it; ``tagpoller`` is a minimal image updater; ``blast_radius``
predicts what a registry outage does to every workload (pure), from the objects ``inventory``
lists once per kind. May import ``oci``, ``observability`` (SLIs), ``experiment`` (settings) and
the kubernetes backends (delivery and the tag poller patch Deployments through them). The test
cluster is ``chaosregistry.cluster``: the product never needs it.

Layer: services (may import the package root, protocols and foundations; see docs/architecture.md).
"""
