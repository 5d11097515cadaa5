"""The vars file and the experiments ``chaosregistry init`` writes, as YAML text with comments.

Every tolerance is computed from the measured :class:`Baseline` (what ``init`` measured)
and says so beside it: what was measured, over how many pulls, and the budget applied. The
network faults go on the fault proxy's hop, ``client-registry``.
"""

import json
import math
from dataclasses import dataclass
from typing import Any

from chaosregistry.experiment.settings import FAULT_PROXY_HOP

LATENCY = "registry-latency.yaml"
PARTITION = "registry-partition.yaml"
CERTIFICATE = "registry-certificate.yaml"
LOAD = "registry-load.yaml"
EXPERIMENT_FILES = (LATENCY, PARTITION, CERTIFICATE, LOAD)
# The budget over the measured p95 (idle pulls), and under the load (Locust pulls, another
# client on the same cores: more room).
BUDGET = 2.0
LOAD_BUDGET = 3.0
# Seconds: below it, a busy machine (a CI runner) decides the verdict, not the registry.
MIN_BUDGET = 0.5
MIN_LATENCY_MS = 300
# Alert this many days before the certificate expires (when it has more left).
CERTIFICATE_WARNING_DAYS = 30


@dataclass(frozen=True)
class Baseline:
    """What ``init`` measured, through the fault proxy (seconds as floats)."""

    image: str
    pulls: int
    pull_p50: float
    pull_p95: float
    pull_max: float
    pull_bytes: int
    load_users: int
    load_pulls: int
    load_p95: float
    ping_p95: float
    pings: int
    http_version: str
    tls: bool
    tls_version: str | None
    days_left: float | None
    measured_at: str


def _q(value: Any) -> str:
    """A YAML scalar: JSON's quoting of strings is YAML's too."""
    return json.dumps(value)


def _up(value: float, step: float) -> float:
    return round(math.ceil(value / step - 1e-9) * step, 6)


def pull_budget(baseline: Baseline) -> float:
    return _up(max(BUDGET * baseline.pull_p95, MIN_BUDGET), 0.01)


def latency_ms(baseline: Baseline) -> int:
    """At least the whole budget per round trip: a pull makes two or more, so a pull with the
    fault still in place cannot come in within the budget."""
    return max(MIN_LATENCY_MS, int(_up(pull_budget(baseline) * 1000, 100)))


def _measured(baseline: Baseline) -> str:
    return (
        f"p95 measured {baseline.pull_p95:.3f} s over {baseline.pulls} pulls (2 at a time, "
        f"p50 {baseline.pull_p50:.3f} s, max {baseline.pull_max:.3f} s) through the fault proxy "
        f"by chaosregistry init at {baseline.measured_at}"
    )


def vars_text(keys: dict[str, Any], baseline: Baseline, credentials: str) -> str:
    """The vars file: ``keys`` (``InitRequest.configuration()``: paths and addresses, no
    secret) under ``configuration.chaosregistry``, the fault proxy's with its comment."""
    keys = dict(keys)
    proxy = keys.pop("fault_proxy")
    lines = [
        f"# Written by `chaosregistry init` at {baseline.measured_at}.",
        *_comment("", f"Credentials: {credentials}. They are never written here."),
        "configuration:",
        "  backend: local",
        "  chaosregistry:",
    ]
    lines += [f"    {key}: {_q(value)}" for key, value in keys.items()]
    lines += [
        "    # The fault proxy: a local Toxiproxy hop (client-registry) in front of the registry.",
        "    # TCP passes through it untouched: the probes connect to `listen` and check TLS",
        "    # against the registry's own name. `chaosregistry gameday` starts it (and stops it",
        "    # after); by hand: `chaosregistry proxy up --vars FILE` / `proxy down --vars FILE`.",
        "    fault_proxy:",
        *(f"      {key}: {_q(value)}" for key, value in proxy.items()),
        "    # Faults may touch only the proxy's hop.",
        f"    allowed_hops: [{FAULT_PROXY_HOP}]",
        "",
    ]
    return "\n".join(lines)


def _header(title: str, description: str, tags: list[str], extra: dict[str, Any]) -> list[str]:
    lines = [
        "version: 1.0.0",
        f"title: {_q(title)}",
        "description: >",
        *(f"  {line}" for line in _wrap(description)),
        f"tags: [{', '.join(tags)}]",
        "configuration:",
        # Declared so the vars file may set them (Chaos Toolkit keeps only declared keys).
        "  backend: local",
        "  chaosregistry: {}",
    ]
    lines += [f"  {key}: {_q(value)}" for key, value in extra.items()]
    return lines


def _comment(indent: str, text: str) -> list[str]:
    return [f"{indent}# {line}" for line in _wrap(text, 96 - len(indent))]


def _wrap(text: str, width: int = 96) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def _pull_probe(
    name: str, indent: str, *, count: int, concurrency: int = 1, timeout: float = 0
) -> list[str]:
    lines = [
        f"{indent}provider:",
        f"{indent}  type: python",
        f"{indent}  module: chaosregistry.probes.pull",
        f"{indent}  func: pull_latency",
        f"{indent}  arguments:",
        f'{indent}    image: "${{probe_image}}"',
        f"{indent}    count: {count}",
    ]
    if concurrency > 1:
        lines.append(f"{indent}    concurrency: {concurrency}")
    if timeout:
        lines.append(f"{indent}    timeout: {timeout:g}")
    return [f"{indent[:-2]}- type: probe", f"{indent}name: {name}", *lines]


def _network_action(name: str, func: str, arguments: dict[str, Any]) -> list[str]:
    lines = [
        "  - type: action",
        f"    name: {name}",
        "    provider:",
        "      type: python",
        "      module: chaosregistry.actions.network",
        f"      func: {func}",
        "      arguments:",
        f"        hop: {FAULT_PROXY_HOP}",
    ]
    lines += [f"        {key}: {value}" for key, value in arguments.items()]
    return lines


def _remove_faults(name: str) -> list[str]:
    return _network_action(name, "remove_network_faults", {})


def _every_pull_succeeds(timeout: float = 0) -> list[str]:
    return [
        *_pull_probe("every-pull-succeeds", "      ", count=10, timeout=timeout),
        "      # Measured: every baseline pull succeeded.",
        "      tolerance:",
        "        type: range",
        "        range: [1, 1]",
        "        target: success_ratio",
    ]


def _p95_within_budget(baseline: Baseline) -> list[str]:
    budget = pull_budget(baseline)
    return [
        *_pull_probe("pull-p95-within-budget", "      ", count=baseline.pulls, concurrency=2),
        *_comment(
            "      ",
            f"{_measured(baseline)}; budget {BUDGET:g}x (at least {MIN_BUDGET:g} s): {budget:g} s.",
        ),
        "      tolerance:",
        "        type: range",
        f"        range: [0, {budget:g}]",
        "        target: p95",
    ]


def latency_experiment(baseline: Baseline) -> str:
    delay = latency_ms(baseline)
    lines = _header(
        f"Pulls of {baseline.image} ride out {delay} ms of latency on the way to the registry",
        f"Adds {delay} ms (+-{delay // 6} ms) to every response on the fault proxy's hop for "
        "fault_duration seconds while sampling pulls three times across it. The steady state "
        "(pull p95 within the budget from the measured baseline, every pull succeeding) must "
        "hold before the fault and again once it is gone; the samples during the fault show "
        f"how far pulls deviated (two or more round trips: {2 * delay} ms or more per pull).",
        ["registry", "latency", "network"],
        {"probe_image": baseline.image, "fault_duration": 30, "sample_pause": 3},
    )
    lines += [
        "steady-state-hypothesis:",
        "  title: Pulls are fast and all succeed",
        "  probes:",
        *_p95_within_budget(baseline),
        *_every_pull_succeeds(),
        "method:",
        f"  # {delay} ms: at least the whole budget per round trip, so a pull with the fault",
        "  # still in place cannot pass for healthy.",
        *_network_action(
            f"add-latency-{FAULT_PROXY_HOP}",
            "add_latency",
            {"latency_ms": delay, "jitter_ms": delay // 6, "duration": '"${fault_duration}"'},
        ),
    ]
    sample = [
        "  - &sample",
        "    type: probe",
        "    name: pulls-during-latency",
        *_pull_probe("x", "    ", count=4, concurrency=2)[2:],
        "    pauses:",
        '      after: "${sample_pause}"',
        "  - *sample",
        "  - *sample",
    ]
    lines += sample
    lines += _remove_faults("end-of-fault-window")
    lines += ["rollbacks:", *_remove_faults(f"remove-latency-{FAULT_PROXY_HOP}"), ""]
    return "\n".join(lines)


def partition_timeout(baseline: Baseline) -> float:
    """Seconds a pull may take during the cut: 4x the slowest baseline pull, at least 2 s."""
    return max(2.0, _up(4 * baseline.pull_max, 0.5))


def recovery_budget(baseline: Baseline) -> float:
    return max(5.0, _up(10 * baseline.ping_p95, 1.0))


def partition_experiment(baseline: Baseline) -> str:
    timeout = partition_timeout(baseline)
    recovery = recovery_budget(baseline)
    lines = _header(
        "A cut to the registry makes pulls fail fast and clearly, and they recover at once after",
        "Black-holes the fault proxy's hop for fault_duration seconds: connections open but no "
        "byte reaches the registry, as with a firewall DROP. Pulls during the cut must fail "
        "within their timeout with the timeout error class (the samples show it), and once the "
        f"cut heals a pull must succeed again within {recovery:g} seconds.",
        ["registry", "partition", "network"],
        {"probe_image": baseline.image, "fault_duration": 20},
    )
    lines += [
        "steady-state-hypothesis:",
        f"  title: Pulls succeed, and a pull goes through within {recovery:g} s of asking",
        "  probes:",
        *_comment(
            "    ",
            f"timeout {timeout:g} s: 4x the slowest baseline pull ({baseline.pull_max:.3f} s "
            f"over {baseline.pulls}), at least 2 s.",
        ),
        *_every_pull_succeeds(timeout),
        "    - type: probe",
        "      name: pulls-recover-in-time",
        *_comment(
            "      ",
            f"/v2/ p95 measured {baseline.ping_p95:.3f} s over {baseline.pings} round trips; "
            f"budget 10x, at least 5 s: {recovery:g} s.",
        ),
        "      tolerance:",
        "        type: range",
        f"        range: [0, {recovery:g}]",
        "        target: seconds",
        "      provider:",
        "        type: python",
        "        module: chaosregistry.probes.pull",
        "        func: pull_recovery",
        "        arguments:",
        '          image: "${probe_image}"',
        f"          within: {max(15, int(3 * recovery))}",
        f"          timeout: {timeout:g}",
        "method:",
        *_network_action(
            f"partition-{FAULT_PROXY_HOP}",
            "partition",
            {"mode": "blackhole", "duration": '"${fault_duration}"'},
        ),
        "  - &sample",
        "    type: probe",
        "    name: pulls-during-partition",
        *_pull_probe("x", "    ", count=2, concurrency=2, timeout=timeout)[2:],
        "    pauses:",
        "      after: 1",
        "  - *sample",
        *_remove_faults("heal-partition"),
        "rollbacks:",
        *_remove_faults("remove-partition"),
        "",
    ]
    return "\n".join(lines)


def certificate_days(baseline: Baseline) -> int:
    """The days-left floor: CERTIFICATE_WARNING_DAYS, or less when the certificate has less
    left now (the experiment must pass today; its comment says to renew)."""
    days = baseline.days_left or 0.0
    return (
        CERTIFICATE_WARNING_DAYS if days > CERTIFICATE_WARNING_DAYS + 1 else max(0, int(days) - 1)
    )


def certificate_experiment(baseline: Baseline) -> str:
    floor = certificate_days(baseline)
    days = baseline.days_left or 0.0
    lines = _header(
        "The registry's certificate verifies against its own name and is not about to expire",
        "Checks the registry's TLS (through the fault proxy, the host name checked being the "
        "registry's own) before and after a round of pulls: the chain verifies against the "
        f"configured CA and the certificate has at least {floor} days left. A scheduled run of "
        "this experiment is an expiry alert that needs no monitoring system.",
        ["registry", "tls", "certificate"],
        {"probe_image": baseline.image},
    )
    warning = (
        f"; budget: an alert {CERTIFICATE_WARNING_DAYS} days ahead"
        if floor == CERTIFICATE_WARNING_DAYS
        else f"; fewer than {CERTIFICATE_WARNING_DAYS} left: RENEW IT (floor: 1 day below now)"
    )
    lines += [
        "steady-state-hypothesis:",
        "  title: The certificate verifies and has time left",
        "  probes:",
        "    - type: probe",
        "      name: certificate-verifies",
        *_comment(
            "      ",
            f"Measured: verified ({baseline.tls_version}) by chaosregistry init at "
            f"{baseline.measured_at}. A boolean is 1 or 0 to a range tolerance.",
        ),
        "      tolerance:",
        "        type: range",
        "        range: [1, 1]",
        "        target: verified",
        "      provider:",
        "        type: python",
        "        module: chaosregistry.probes.registry",
        "        func: registry_tls",
        "    - type: probe",
        "      name: certificate-days-left",
        *_comment("      ", f"Measured: {days:.1f} days left on the leaf and chain{warning}."),
        "      tolerance:",
        "        type: range",
        f"        range: [{floor}, 100000]",
        "        target: min_days_left",
        "      provider:",
        "        type: python",
        "        module: chaosregistry.probes.registry",
        "        func: registry_tls",
        "method:",
        *_pull_probe("pulls-over-tls", "    ", count=5, concurrency=2),
        "",
    ]
    return "\n".join(lines)


def load_budget(baseline: Baseline) -> float:
    return _up(max(LOAD_BUDGET * baseline.load_p95, 0.25), 0.05)


def load_experiment(baseline: Baseline) -> str:
    users = baseline.load_users
    budget = load_budget(baseline)
    lines = _header(
        f"The registry serves {users} nodes pulling back to back, fast and without failures",
        f"Starts a pull load of {users} simulated nodes (Locust) pulling the image for "
        "load_seconds; the last 10 seconds of it must show no failed pull and a p95 within "
        "the budget from the baseline. Locust connects straight to the registry (not through "
        "the fault proxy, which this experiment puts no fault on).",
        ["registry", "load"],
        {"probe_image": baseline.image, "load_users": users, "load_seconds": 25},
    )
    lines += [
        "steady-state-hypothesis:",
        "  title: Pulls are fast and all succeed",
        "  probes:",
        *_p95_within_budget(baseline),
        "method:",
        "  - type: action",
        "    name: start-pull-load",
        "    provider:",
        "      type: python",
        "      module: chaosregistry.actions.load",
        "      func: start_pull_load",
        "      arguments:",
        '        users: "${load_users}"',
        '        spawn_rate: "${load_users}"',
        '        duration: "${load_seconds}"',
        '        images: ["${probe_image}"]',
        "    pauses:",
        "      after: 15",
        "  - type: probe",
        "    name: load-p95-within-budget",
        *_comment(
            "    ",
            f"p95 measured {baseline.load_p95:.3f} s over {baseline.load_pulls} pulls, {users} "
            f"at a time, by chaosregistry init at {baseline.measured_at}; budget "
            f"{LOAD_BUDGET:g}x (at least 0.25 s): {budget:g} s.",
        ),
        "    tolerance:",
        "      type: range",
        f"      range: [0, {budget:g}]",
        "      target: p95",
        "    provider:",
        "      type: python",
        "      module: chaosregistry.probes.load",
        "      func: pull_load_stats",
        "      arguments:",
        "        since: -10",
        "  - type: probe",
        "    name: load-without-failures",
        "    # Measured: every baseline pull succeeded.",
        "    tolerance:",
        "      type: range",
        "      range: [0, 0]",
        "      target: failure_ratio",
        "    provider:",
        "      type: python",
        "      module: chaosregistry.probes.load",
        "      func: pull_load_stats",
        "      arguments:",
        "        since: -10",
        "  - type: action",
        "    name: stop-pull-load",
        "    provider:",
        "      type: python",
        "      module: chaosregistry.actions.load",
        "      func: stop_pull_load",
        "rollbacks:",
        "  - type: action",
        "    name: stop-load",
        "    provider:",
        "      type: python",
        "      module: chaosregistry.actions.load",
        "      func: stop_pull_load",
        "",
    ]
    return "\n".join(lines)


def experiments(baseline: Baseline) -> dict[str, str]:
    """File name -> text; the certificate check only for an HTTPS registry."""
    written = {
        LATENCY: latency_experiment(baseline),
        PARTITION: partition_experiment(baseline),
        LOAD: load_experiment(baseline),
    }
    if baseline.tls:
        written[CERTIFICATE] = certificate_experiment(baseline)
    return written
