"""The kinds of result a probe declares (``contracts.Returns(..., kind=...)``).

Apart from ``contracts`` so that a reader of journals (``chaosregistry.gameday.journal``, the
reports) has the names without importing the contracts' machinery.
"""

from enum import StrEnum

__all__ = ["ResultKind"]


class ResultKind(StrEnum):
    """What a probe's result is, declared with its keys (``Returns(..., kind=...)``): readers of
    a journal (``chaosregistry.gameday.journal``) tell a pull's statistics from a rollout's by
    the probe that wrote the result, never by the result's key names. One kind per shape."""

    PULL = "pull"  # one image pulled: ok, timings {total...}, error
    MANIFEST = "manifest"  # one manifest resolved: ok, digest, seconds, error
    PUSH = "push"  # one image pushed: ok, status, seconds, error
    PULL_STATISTICS = "pull-statistics"  # many pulls: count, succeeded, p50, p95, errors
    PULL_RECOVERY = "pull-recovery"  # pulls until one succeeds: recovered, seconds, errors
    LOAD_STATISTICS = "load-statistics"  # a load's exact figures: pulls, attempts, p95...
    ROLLOUT_HEALTH = "rollout-health"
    ROLLOUT_TIME = "rollout-time"
    ROLLOUT_FAILURE = "rollout-failure"
    ROLLBACK_READINESS = "rollback-readiness"
    IMAGE_PULL_EVENTS = "image-pull-events"
    IMAGE_PULL_BACKOFF = "image-pull-backoff"  # pods in the kubelet's pull back-off: in_back_off
    BACKOFF_RECOVERY = "backoff-recovery"  # heal to every pod running: recovered, seconds
    REACHABILITY = "reachability"
    TLS = "tls"
    REGISTRY_METRICS = "registry-metrics"
    PROMETHEUS_QUERY = "prometheus-query"
    PROMETHEUS_RANGE = "prometheus-range"
    PROMETHEUS_ALERTS = "prometheus-alerts"
    SIGNATURE = "signature"
    UPSTREAM_FETCHES = "upstream-fetches"
    # a Deployment's image lookups by host: at_origin, mirror_upstream, origin_resolves...
    NODE_PULL_HOSTS = "node-pull-hosts"
    TAG_COMPLIANCE = "tag-compliance"
    LAYER_REUSE = "layer-reuse"
    PUSH_EVENTS = "push-events"
    REPLICATION = "replication"
    BLAST_RADIUS = "blast-radius"  # workloads classed by what a registry outage does to them
    # the blast radius's provocations judged: per workload predicted vs observed, agreement
    PREDICTION_AGREEMENT = "prediction-agreement"
    # Not one of our probes (another extension's, or one this version does not know), or an
    # action: its result is read as it is.
    OTHER = "other"
