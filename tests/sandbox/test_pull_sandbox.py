"""The pull client and probes against the real sandbox: bytes, digests, auth and every error
class a real part can produce."""

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from chaoslib.exceptions import ActivityFailed
from support.sandbox import SandboxInfo, assert_pulls_the_catalogued_bytes

from chaosregistry.errors import ErrorClass, PullError
from chaosregistry.oci import ImageReference, Platform, RegistryClient, pull
from chaosregistry.oci.auth import Credentials
from chaosregistry.probes import pull as pull_probes
from chaosregistry.probes import registry as registry_probes
from chaosregistry.sandbox import start_process, stop_process
from chaosregistry.sandbox.seed import push_unique_image
from chaosregistry.sandbox.toxiproxy import Toxiproxy


def creds(sandbox: SandboxInfo) -> Credentials:
    return Credentials(sandbox.username, sandbox.password)


def config(sandbox: SandboxInfo) -> dict[str, Any]:
    return {"sandbox_dir": str(sandbox.run_dir)}


def test_every_seeded_image_and_platform_pulls_with_the_catalogued_bytes(
    sandbox: SandboxInfo,
) -> None:
    assert_pulls_the_catalogued_bytes(sandbox)


def test_both_platforms_of_the_index_resolve_to_different_manifests(sandbox: SandboxInfo) -> None:
    entry = sandbox.image("shop/api", "shop-prod-2.0.1")
    with RegistryClient(
        sandbox.endpoints["registry"], credentials=creds(sandbox), verify=sandbox.ca_file
    ) as client:
        amd = pull(client, ImageReference.parse("shop/api:shop-prod-2.0.1"))
        arm = pull(
            client,
            ImageReference.parse("shop/api:shop-prod-2.0.1"),
            platform=Platform.parse("linux/arm64"),
        )
        missing = pull(
            client,
            ImageReference.parse("shop/api:shop-prod-2.0.1"),
            platform=Platform.parse("linux/s390x"),
        )
    assert amd.ok and arm.ok
    assert amd.digest == arm.digest == entry["digest"]
    assert {amd.manifest_digest, arm.manifest_digest} == {
        p["manifest_digest"] for p in entry["platforms"]
    }
    assert missing.error is not None
    assert missing.error.error_class is ErrorClass.PLATFORM_NOT_FOUND
    assert "linux/amd64, linux/arm64" in str(missing.error)


def _error(url: str, image: str, credentials: Credentials | None, **kw: Any) -> Any:
    with RegistryClient(url, credentials=credentials, **kw) as client:
        result = pull(client, ImageReference.parse(image))
    assert not result.ok and result.error is not None
    return result.error


def test_wrong_password_and_missing_credentials_are_auth_errors(sandbox: SandboxInfo) -> None:
    url = sandbox.endpoints["registry"]
    wrong = _error(
        url,
        "tiny/hello:latest",
        Credentials(sandbox.username, "not-the-password"),
        verify=sandbox.ca_file,
    )
    assert wrong.error_class is ErrorClass.AUTH and wrong.status == 401
    anonymous = _error(url, "tiny/hello:latest", None, verify=sandbox.ca_file)
    assert anonymous.error_class is ErrorClass.AUTH
    token_wrong = _error(
        sandbox.endpoints["token_registry"],
        "tiny/hello:latest",
        Credentials("chaos", "nope"),
        verify=sandbox.ca_file,
    )
    assert token_wrong.error_class is ErrorClass.AUTH


def test_unknown_tag_and_unknown_blob_are_not_found(sandbox: SandboxInfo) -> None:
    error = _error(
        sandbox.endpoints["registry"],
        "tiny/hello:no-such-tag",
        creds(sandbox),
        verify=sandbox.ca_file,
    )
    assert error.error_class is ErrorClass.NOT_FOUND
    assert error.detail["codes"] == ["MANIFEST_UNKNOWN"]
    with (
        RegistryClient(
            sandbox.endpoints["registry"], credentials=creds(sandbox), verify=sandbox.ca_file
        ) as client,
        pytest.raises(PullError) as caught,
    ):
        client.fetch_blob("tiny/hello", "sha256:" + "ab" * 32, 10)
    assert caught.value.error_class is ErrorClass.NOT_FOUND
    assert caught.value.detail["codes"] == ["BLOB_UNKNOWN"]


def test_nginx_rate_limit_is_classified_with_its_headers(sandbox: SandboxInfo) -> None:
    errors = []
    with RegistryClient(
        sandbox.endpoints["registry_ratelimited"],
        credentials=creds(sandbox),
        verify=sandbox.ca_file,
    ) as c:
        for _ in range(30):
            result = pull(c, ImageReference.parse("tiny/hello:latest"))
            if result.error is not None:
                errors.append(result.error)
                break
    assert errors, "30 quick pulls never hit nginx's limit_req"
    assert errors[0].error_class is ErrorClass.RATE_LIMITED
    assert errors[0].status == 429
    assert "retry-after" in errors[0].detail
    assert "ratelimit-remaining" in errors[0].detail


def test_a_stopped_registry_refuses_connections(sandbox: SandboxInfo) -> None:
    replica = sandbox.endpoints["replicas"][1]
    assert stop_process(sandbox.run_dir, replica["name"])
    try:
        error = _error(replica["url"], "tiny/hello:latest", creds(sandbox), verify=sandbox.ca_file)
        assert error.error_class is ErrorClass.REFUSED
    finally:
        start_process(sandbox.run_dir, replica["name"])
    with RegistryClient(
        replica["url"], credentials=creds(sandbox), verify=sandbox.ca_file
    ) as client:
        assert pull(client, ImageReference.parse("tiny/hello:latest")).ok


@pytest.fixture
def toxiproxy(sandbox: SandboxInfo) -> Any:
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as api:
        yield api
        for toxic in api.toxics("client-registry"):
            api.remove_toxic("client-registry", toxic["name"])
        assert api.toxics("client-registry") == []


def test_connections_reset_by_toxiproxy_are_reset_errors(
    sandbox: SandboxInfo, toxiproxy: Toxiproxy
) -> None:
    toxiproxy.add_toxic(
        "client-registry", name="t-reset", type="reset_peer", attributes={"timeout": 0}
    )
    error = _error(
        sandbox.endpoints["registry"], "tiny/hello:latest", creds(sandbox), verify=sandbox.ca_file
    )
    assert error.error_class is ErrorClass.RESET


def test_black_holed_requests_are_timeouts(sandbox: SandboxInfo, toxiproxy: Toxiproxy) -> None:
    toxiproxy.add_toxic(
        "client-registry",
        name="t-hole",
        type="timeout",
        stream="upstream",
        attributes={"timeout": 0},
    )
    error = _error(
        sandbox.endpoints["registry"],
        "tiny/hello:latest",
        creds(sandbox),
        timeout=1.0,
        verify=sandbox.ca_file,
    )
    assert error.error_class is ErrorClass.TIMEOUT


def test_a_cut_transfer_is_truncated(sandbox: SandboxInfo, toxiproxy: Toxiproxy) -> None:
    toxiproxy.add_toxic(
        "client-registry", name="t-cut", type="limit_data", attributes={"bytes": 256 * 1024}
    )
    error = _error(
        sandbox.endpoints["registry"], "medium/app:latest", creds(sandbox), verify=sandbox.ca_file
    )
    assert error.error_class is ErrorClass.TRUNCATED


def test_corrupt_blob_on_the_registry_disk_is_a_digest_mismatch(sandbox: SandboxInfo) -> None:
    entry = push_unique_image(
        sandbox.endpoints["replicas"][0]["url"], creds(sandbox), "scratch/corrupt", "v1"
    )
    layer = entry["platforms"][0]["layers"][0]["digest"].split(":")[1]
    data = (
        sandbox.run_dir
        / "storage/registry/docker/registry/v2/blobs/sha256"
        / layer[:2]
        / layer
        / "data"
    )
    content = bytearray(data.read_bytes())
    content[-1] ^= 0xFF  # same size, different bytes: only a digest check can notice
    data.write_bytes(bytes(content))
    error = _error(
        sandbox.endpoints["registry"], "scratch/corrupt:v1", creds(sandbox), verify=sandbox.ca_file
    )
    assert error.error_class is ErrorClass.DIGEST_MISMATCH


def test_token_flow_pulls_and_reuses_one_token(sandbox: SandboxInfo) -> None:
    stats_url = sandbox.endpoints["token_stats_url"]
    before = httpx.get(stats_url, verify=sandbox.tls).json()["tokens_issued"]
    with RegistryClient(
        sandbox.endpoints["token_registry"], credentials=creds(sandbox), verify=sandbox.ca_file
    ) as client:
        ping = client.ping()
        results = [pull(client, ImageReference.parse("shop/frontend:latest")) for _ in range(3)]
    assert ping.auth_scheme == "bearer"
    assert all(r.ok for r in results), [r.error for r in results]
    assert httpx.get(stats_url, verify=sandbox.tls).json()["tokens_issued"] - before == 1
    assert client.tokens.fetched == 1
    assert results[0].auth_seconds > 0  # the first pull paid for the token...
    assert results[1].auth_seconds == 0  # ...the next ones did not


def test_anonymous_mirror_serves_the_same_digest(sandbox: SandboxInfo) -> None:
    origin = pull_probes.manifest_digest(
        "shop/frontend:shop-prod-1.4.2", configuration=config(sandbox)
    )
    mirror = pull_probes.manifest_digest(
        "shop/frontend:shop-prod-1.4.2", target="mirror", configuration=config(sandbox)
    )
    assert origin["ok"] and mirror["ok"]
    assert origin["digest"] == mirror["digest"] != ""
    assert origin["registry"] != mirror["registry"]


def test_probes_report_stable_keys_on_the_sandbox(sandbox: SandboxInfo) -> None:
    result = pull_probes.pull_image("shop/api:shop-prod-2.0.1", configuration=config(sandbox))
    assert result["ok"] and result["error"] is None
    assert set(result["timings"]) == {"auth", "manifest", "blobs", "total"}
    assert result["timings"]["total"] >= result["timings"]["blobs"] > 0
    json.dumps(result)  # JSON-serialisable

    latency = pull_probes.pull_latency(
        "tiny/hello:latest", count=6, concurrency=3, configuration=config(sandbox)
    )
    assert latency["succeeded"] == 6 and latency["success_ratio"] == 1.0
    assert latency["min"] <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert len(latency["durations"]) == 6

    reachable = registry_probes.registry_reachable(configuration=config(sandbox))
    assert reachable["reachable"] and reachable["auth_scheme"] == "basic"
    assert reachable["status"] == 401

    metrics = registry_probes.registry_metrics(
        series=["registry_http_requests_total"], configuration=config(sandbox)
    )
    assert metrics["totals"]["registry_http_requests"] > 0

    recovery = pull_probes.pull_recovery("tiny/hello:latest", configuration=config(sandbox))
    assert recovery["recovered"] and recovery["attempts"] == 1


def test_unreachable_registry_probe_reports_refused(sandbox: SandboxInfo) -> None:
    replica = sandbox.endpoints["replicas"][1]
    stop_process(sandbox.run_dir, replica["name"])
    try:
        result = registry_probes.registry_reachable(target=replica["url"], timeout=2)
    finally:
        start_process(sandbox.run_dir, replica["name"])
    assert result["reachable"] is False
    assert result["error"]["class"] == "refused"


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (
            lambda c: pull_probes.pull_latency("tiny/hello:latest", count=0, configuration=c),
            "count",
        ),
        (
            lambda c: pull_probes.pull_latency(
                "tiny/hello:latest", concurrency=-1, configuration=c
            ),
            "concurrency",
        ),
        (
            lambda c: pull_probes.pull_image(
                "tiny/hello:latest", platform="linux", configuration=c
            ),
            "platform",
        ),
        (lambda c: pull_probes.pull_image("Bad:Ref", configuration=c), "repository"),
        (lambda c: pull_probes.pull_image("tiny/hello", target="ftp://x", configuration=c), "URL"),
        (
            lambda c: pull_probes.pull_image(
                "tiny/hello", configuration={"sandbox_dir": "/nonexistent"}
            ),
            "not a sandbox",
        ),
        (lambda c: registry_probes.registry_reachable(timeout=0, configuration=c), "timeout"),
    ],
)
def test_bad_arguments_raise_activity_failed_with_one_line(
    sandbox: SandboxInfo, call: Any, fragment: str
) -> None:
    with pytest.raises(ActivityFailed) as caught:
        call(config(sandbox))
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_secrets_override_the_sandbox_credentials(sandbox: SandboxInfo) -> None:
    result = pull_probes.pull_image(
        "tiny/hello:latest",
        configuration=config(sandbox),
        secrets={"registry_username": sandbox.username, "registry_password": "wrong"},
    )
    assert result["error"]["class"] == "auth"
    assert "wrong" not in json.dumps(result)


def test_env_credentials_are_used_when_no_secret_is_given(
    sandbox: SandboxInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_USERNAME", sandbox.username)
    monkeypatch.setenv("CHAOSREGISTRY_PASSWORD", sandbox.password)
    result = pull_probes.pull_image(
        "tiny/hello:latest",
        configuration={
            "registry_url": sandbox.endpoints["registry"],
            "registry_ca_bundle": sandbox.ca_file,
        },
    )
    assert result["ok"], result["error"]


def test_ca_bundle_that_does_not_exist_is_a_config_error(sandbox: SandboxInfo) -> None:
    with pytest.raises(ActivityFailed, match="CA bundle"):
        pull_probes.pull_image(
            "tiny/hello:latest",
            configuration={**config(sandbox), "registry_ca_bundle": "/nonexistent.pem"},
        )


def _password_in_tree(root: Path, password: str) -> list[Path]:
    hits = []
    for path in root.rglob("*"):
        if (
            path.is_file()
            and "secrets" not in path.parts
            and password.encode() in path.read_bytes()
        ):
            hits.append(path)
    return hits


def test_pulls_leave_no_password_in_logs(sandbox: SandboxInfo) -> None:
    pull_probes.pull_latency("tiny/hello:latest", count=2, configuration=config(sandbox))
    assert _password_in_tree(Path(sandbox.endpoints["logs_dir"]), sandbox.password) == []
    assert os.stat(sandbox.endpoints["credentials_file"]).st_mode & 0o077 == 0


def test_probe_timeout_bounds_a_black_holed_pull(
    sandbox: SandboxInfo, toxiproxy: Toxiproxy
) -> None:
    toxiproxy.add_toxic(
        "client-registry",
        name="t-hole2",
        type="timeout",
        stream="upstream",
        attributes={"timeout": 0},
    )
    result = pull_probes.pull_latency(
        "tiny/hello:latest",
        count=2,
        concurrency=2,
        timeout=1,
        configuration={**config(sandbox), "registry_timeout": 30},
    )
    assert result["errors"] == {"timeout": 2}
    # The probe's 1 s, not the configured 30 s (the upper bound leaves a loaded machine room).
    assert 1.0 <= result["max_attempt"] < 10.0


def test_a_load_balancer_without_live_backends_is_a_server_error(sandbox: SandboxInfo) -> None:
    names = [replica["name"] for replica in sandbox.endpoints["replicas"]]
    for name in names:
        stop_process(sandbox.run_dir, name)
    try:
        error = _error(
            sandbox.endpoints["registry"],
            "tiny/hello:latest",
            creds(sandbox),
            verify=sandbox.ca_file,
        )
        assert error.error_class is ErrorClass.SERVER_ERROR
        assert error.status == 502  # nginx: bad gateway
    finally:
        for name in names:
            start_process(sandbox.run_dir, name)
    # nginx keeps a failed backend out for fail_timeout (2 s) after it comes back.
    recovery = pull_probes.pull_recovery(
        "tiny/hello:latest", within=10, configuration=config(sandbox)
    )
    assert recovery["recovered"] and recovery["seconds"] < 5, recovery
    # The recovery went through one nginx worker. The replicas' failure state is shared by the
    # workers (the upstream's zone), so at once every worker sends to a live replica: pulls on
    # fresh connections, which the kernel spreads over the workers, all succeed. With a state
    # per worker, one that had counted both replicas failed answered 502 "no live upstreams"
    # for up to fail_timeout more (and the next test met it).
    for _ in range(12):
        with RegistryClient(
            sandbox.endpoints["registry"], credentials=creds(sandbox), verify=sandbox.ca_file
        ) as client:
            result = pull(client, ImageReference.parse("tiny/hello:latest"))
        assert result.ok, result.error
