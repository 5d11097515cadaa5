"""What a probe returns is what its signature declares (``Returns`` on its return annotation):
``validate`` refuses a tolerance ``target`` outside the declared keys, so a declared key the
probe never returns would pass validation and be missing at run time, and a returned key not
declared would be refused although it works.

Run against the real sandbox for every probe the local sandbox can answer. Not here: the
Kubernetes probes (``probes/rollout.py``), the second site's (``probes/replication.py``) and a
load's statistics (``pull_load_stats``), which need their own test beds.
"""

from collections.abc import Callable
from typing import Any

import pytest
from support.sandbox import SandboxInfo

from chaosregistry.experiment.contracts import result_keys
from chaosregistry.probes import hygiene, mirror, prometheus, pull, registry, signature

IMAGE = "tiny/hello:latest"
Call = Callable[[dict[str, Any]], dict[str, Any]]

CALLS: dict[str, tuple[Callable[..., Any], Call]] = {
    "pull_image": (pull.pull_image, lambda c: pull.pull_image(IMAGE, configuration=c)),
    "pull_latency": (
        pull.pull_latency,
        lambda c: pull.pull_latency(IMAGE, count=2, configuration=c),
    ),
    "manifest_digest": (
        pull.manifest_digest,
        lambda c: pull.manifest_digest(IMAGE, platform="linux/amd64", configuration=c),
    ),
    "pull_recovery": (pull.pull_recovery, lambda c: pull.pull_recovery(IMAGE, configuration=c)),
    "registry_reachable": (
        registry.registry_reachable,
        lambda c: registry.registry_reachable(configuration=c),
    ),
    "registry_tls": (registry.registry_tls, lambda c: registry.registry_tls(configuration=c)),
    "registry_metrics": (
        registry.registry_metrics,
        lambda c: registry.registry_metrics(configuration=c),
    ),
    "tag_compliance": (
        hygiene.tag_compliance,
        lambda c: hygiene.tag_compliance(repositories=["tiny/hello"], configuration=c),
    ),
    "layer_reuse": (
        hygiene.layer_reuse,
        lambda c: hygiene.layer_reuse(repositories=["tiny/hello"], configuration=c),
    ),
    "image_signature": (
        signature.image_signature,
        lambda c: signature.image_signature("signed/app:signed-prod-1.0.0", configuration=c),
    ),
    "upstream_fetches": (
        mirror.upstream_fetches,
        lambda c: mirror.upstream_fetches(IMAGE, configuration=c),
    ),
    "prometheus_query": (
        prometheus.prometheus_query,
        lambda c: prometheus.prometheus_query("up", configuration=c),
    ),
    "prometheus_range": (
        prometheus.prometheus_range,
        lambda c: prometheus.prometheus_range("up", start=-10, configuration=c),
    ),
    "sli_pull_p99": (prometheus.sli_pull_p99, lambda c: prometheus.sli_pull_p99(configuration=c)),
    "sli_deploy_success_rate": (
        prometheus.sli_deploy_success_rate,
        lambda c: prometheus.sli_deploy_success_rate(configuration=c),
    ),
    "sli_cache_hit_ratio": (
        prometheus.sli_cache_hit_ratio,
        lambda c: prometheus.sli_cache_hit_ratio(configuration=c),
    ),
    "prometheus_alerts": (
        prometheus.prometheus_alerts,
        lambda c: prometheus.prometheus_alerts(configuration=c),
    ),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_probe_returns_exactly_the_keys_it_declares(sandbox: SandboxInfo, name: str) -> None:
    function, call = CALLS[name]
    declared = result_keys(function)
    assert declared, f"{name} declares no result keys"
    result = call({"sandbox_dir": str(sandbox.run_dir)})
    assert sorted(set(result) - set(declared)) == [], "returned, not declared"
    assert sorted(set(declared) - set(result)) == [], "declared, not returned"
