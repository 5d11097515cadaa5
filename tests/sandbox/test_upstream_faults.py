"""Pull-through cache honesty on the real sandbox: the mirror's upstream answers 429 (Docker
Hub's headers) or 503 (``throttle_mirror_upstream``), and what the mirror then serves is
measured, on each implementation the sandbox can run as a pull-through cache.

The mirror is Distribution 2.8 with ``distribution-2`` (and with ``ggcr``, which has no proxy
mode and cannot be a pull-through cache), Distribution v3.1.2 with ``distribution-3``; one
sandbox each. The findings asserted here are the ones measured (docs/findings.md).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chaoslib.exceptions import ActivityFailed
from support.faults import (
    SETTLES_WITHIN,
    SHORT_FAULT,
    assert_refused_before_recording,
    assert_reverted_at_expiry,
    own_ledger,
)
from support.polling import eventually
from support.sandbox import SandboxInfo, running_sandbox

from chaosregistry.actions import upstream as actions
from chaosregistry.faults.ledger import Ledger
from chaosregistry.oci import RegistryClient
from chaosregistry.probes.pull import pull_image
from chaosregistry.sandbox import load_credentials
from chaosregistry.sandbox.implementations import IMPLEMENTATIONS
from chaosregistry.sandbox.seed import push_unique_image

PULL_THROUGH = [
    name for name, chosen in IMPLEMENTATIONS.items() if chosen.capabilities.pull_through
]
CACHED = "shop/frontend:shop-prod-1.4.2"
UNCACHED_REPOSITORY = "scratch/upstream-fault"
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


@pytest.fixture(scope="module", params=PULL_THROUGH)
def mirrored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxInfo]:
    """A seeded sandbox whose mirror is the implementation's Distribution; torn down after."""
    name = str(request.param)
    with running_sandbox(
        tmp_path_factory.mktemp(f"upstream-{name}"), label=f"sandbox[{name}]", implementation=name
    ) as info:
        yield info


@pytest.fixture
def configuration(
    mirrored: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A ledger of its own; afterwards no fault is active and its watchdog has exited."""
    with own_ledger(mirrored.run_dir, tmp_path, monkeypatch) as config:
        yield config
        actions.restore_mirror_upstream(configuration=config)


def upstream_answer(sandbox: SandboxInfo, method: str, path: str) -> httpx.Response:
    """One anonymous request to nginx's server in front of the mirror's upstream."""
    with httpx.Client(verify=sandbox.tls, timeout=10) as http:
        return http.request(
            method, sandbox.endpoints["token_registry"] + path, headers={"Accept": MANIFEST_TYPES}
        )


def mirror_head(sandbox: SandboxInfo, repository: str, reference: str) -> int:
    """The status of ``HEAD /v2/<repository>/manifests/<reference>`` on the mirror (anonymous):
    containerd's first request of a pull."""
    with httpx.Client(verify=sandbox.tls, timeout=10) as http:
        path = f"/v2/{repository}/manifests/{reference}"
        return http.head(
            sandbox.endpoints["mirror"] + path, headers={"Accept": MANIFEST_TYPES}
        ).status_code


def outcome(pull: dict[str, Any]) -> str:
    """A pull's outcome in one word: ``ok``, or the error's class and status (and, for a 429,
    whether it told the client when to retry)."""
    if pull["ok"]:
        return "ok"
    error = pull["error"]
    retry = " retry-after" if "retry-after" in error["detail"] else ""
    return f"{error['class']} {error['status']}{retry}"


def measure(sandbox: SandboxInfo, config: dict[str, Any], status: int) -> dict[str, str]:
    """Warm the mirror with CACHED, push an image it never saw, fault its upstream with
    ``status``, then pull through the mirror: what each pull met."""
    repository, _, tag = CACHED.partition(":")
    warm = pull_image(CACHED, target="mirror", configuration=config)
    assert warm["ok"], warm["error"]
    uncached_tag = f"never-mirrored-{status}"
    fresh = push_unique_image(
        sandbox.endpoints["registry"],
        load_credentials(sandbox.run_dir),
        UNCACHED_REPOSITORY,
        uncached_tag,
        verify=sandbox.ca_file,
    )

    def through_mirror(image: str) -> str:
        return outcome(pull_image(image, target="mirror", timeout=10, configuration=config))

    actions.throttle_mirror_upstream(status=status, duration=60, configuration=config)
    found = {
        "cached by tag": through_mirror(CACHED),
        "cached by digest": through_mirror(f"{repository}@{warm['digest']}"),
        "cached HEAD by tag": str(mirror_head(sandbox, repository, tag)),
        "uncached by tag": through_mirror(f"{UNCACHED_REPOSITORY}:{uncached_tag}"),
        "uncached by digest": through_mirror(f"{UNCACHED_REPOSITORY}@{fresh['digest']}"),
    }
    actions.restore_mirror_upstream(configuration=config)
    # Healed: the image the mirror never saw pulls through it.
    assert through_mirror(f"{UNCACHED_REPOSITORY}:{uncached_tag}") == "ok"
    return found


# Measured (docs/findings.md, "Pull-through cache honesty"). Both mirrors serve what they hold,
# by tag too (the tag lookup upstream fails, the mirror answers from its own tag). What they
# never saw: a tag is "not found" (404 MANIFEST_UNKNOWN: the upstream's refusal is hidden), a
# digest a 500, except Distribution 3 passing a 429 on (without its retry-after).
CACHED_SERVED = {
    "cached by tag": "ok",
    "cached by digest": "ok",
    "cached HEAD by tag": "200",
    "uncached by tag": "not-found 404",
}
MEASURED = {
    ("distribution-2", 429): {**CACHED_SERVED, "uncached by digest": "server-error 500"},
    ("distribution-2", 503): {**CACHED_SERVED, "uncached by digest": "server-error 500"},
    ("distribution-3", 429): {**CACHED_SERVED, "uncached by digest": "rate-limited 429"},
    ("distribution-3", 503): {**CACHED_SERVED, "uncached by digest": "server-error 500"},
}


@pytest.mark.parametrize("status", [429, 503])
def test_what_the_mirror_serves_while_its_upstream_refuses(
    mirrored: SandboxInfo, configuration: dict[str, Any], status: int
) -> None:
    implementation = str(mirrored.endpoints["implementation"])
    assert measure(mirrored, configuration, status) == MEASURED[(implementation, status)]


def test_the_upstream_answers_429_with_docker_hubs_headers_to_get_and_head(
    mirrored: SandboxInfo, configuration: dict[str, Any]
) -> None:
    digest = mirrored.image(*CACHED.split(":"))["digest"]
    repository = CACHED.partition(":")[0]
    fault = actions.throttle_mirror_upstream(
        status=429, retry_after=42, duration=60, configuration=configuration
    )
    assert (fault["kind"], fault["target"], fault["state"]) == (
        "mirror.upstream-status",
        "upstream:mirror",
        "injected",
    )
    assert fault["applied"]["injected"] == "confirmed"
    for method, path in [
        ("GET", f"/v2/{repository}/manifests/{digest}"),
        ("HEAD", f"/v2/{repository}/manifests/shop-prod-1.4.2"),
        ("GET", f"/v2/{repository}/blobs/{digest}"),
    ]:
        answer = upstream_answer(mirrored, method, path)
        assert answer.status_code == 429, (method, path)
        assert answer.headers["retry-after"] == "42"
        assert answer.headers["ratelimit-limit"] == "100;w=21600"
        assert answer.headers["ratelimit-remaining"] == "0;w=21600"
        if method == "GET":
            codes = [error["code"] for error in answer.json()["errors"]]
            assert codes == ["TOOMANYREQUESTS", "CHAOSREGISTRY_UPSTREAM_FAULT"]
    # The auth ping is untouched: it still challenges for a token.
    assert upstream_answer(mirrored, "GET", "/v2/").status_code == 401
    # The registry behind nginx is untouched too.
    with RegistryClient(
        mirrored.endpoints["registry"],
        credentials=load_credentials(mirrored.run_dir),
        verify=mirrored.ca_file,
    ) as client:
        assert client.get_manifest(repository, digest).digest == digest

    undone = actions.restore_mirror_upstream(configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    assert (
        upstream_answer(mirrored, "HEAD", f"/v2/{repository}/manifests/{digest}").status_code == 401
    )
    assert actions.restore_mirror_upstream(configuration=configuration)["count"] == 0


def test_a_503_carries_retry_after_and_no_quota_headers(
    mirrored: SandboxInfo, configuration: dict[str, Any]
) -> None:
    actions.throttle_mirror_upstream(
        status=503, retry_after=7, duration=60, configuration=configuration
    )
    answer = upstream_answer(mirrored, "GET", f"/v2/{CACHED.partition(':')[0]}/manifests/x")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "7"
    assert "ratelimit-limit" not in answer.headers
    assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"


def test_the_watchdog_ends_the_fault_at_its_duration(
    mirrored: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = actions.throttle_mirror_upstream(
        status=503, duration=SHORT_FAULT, configuration=configuration
    )
    path = f"/v2/{CACHED.partition(':')[0]}/manifests/shop-prod-1.4.2"
    assert upstream_answer(mirrored, "HEAD", path).status_code == 503
    eventually(
        "the upstream answering from the registry",
        lambda: upstream_answer(mirrored, "HEAD", path).status_code == 401,
        timeout=SHORT_FAULT + SETTLES_WITHIN,
    )
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"])


def test_bad_input_and_a_second_fault_are_refused_with_nothing_changed(
    mirrored: SandboxInfo, configuration: dict[str, Any]
) -> None:
    ledger_dir = Path(configuration["ledger_dir"])
    for call, fragment in [
        (
            lambda: actions.throttle_mirror_upstream(status=500, configuration=configuration),
            "status",
        ),
        (
            lambda: actions.throttle_mirror_upstream(retry_after=-1, configuration=configuration),
            "retry_after",
        ),
    ]:
        assert_refused_before_recording(call, fragment, ledger_dir)
    snippets = Path(mirrored.run_dir) / "nginx/route-overrides/mirror-upstream"
    assert list(snippets.iterdir()) == []
    actions.throttle_mirror_upstream(status=429, duration=60, configuration=configuration)
    with pytest.raises(ActivityFailed, match="already active"):
        actions.throttle_mirror_upstream(status=503, duration=60, configuration=configuration)
    assert len(Ledger(ledger_dir).active()) == 1
