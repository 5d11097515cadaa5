"""The embedded sandbox against its real parts: Distribution, nginx, Toxiproxy, the token server."""

import base64
import gzip
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import tarfile
import threading
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from support.polling import eventually
from support.ports import free_base_port
from support.sandbox import SandboxInfo

from chaosregistry.errors import ConfigError
from chaosregistry.sandbox import (
    PROCESS_NAMES,
    SandboxError,
    down,
    load_endpoints,
    start_process,
    status,
    stop_process,
    up,
)
from chaosregistry.sandbox.cli import sandbox_group
from chaosregistry.sandbox.content import (
    DOCKER_MANIFEST_LIST,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    RECIPES,
    build_image,
)
from chaosregistry.sandbox.toxiproxy import Toxiproxy

ACCEPT = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
MiB = 1024 * 1024
TAG_PATTERN = re.compile(r"^[a-z]+-[a-z]+-\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$")


def _http(endpoints: dict[str, Any]) -> httpx.Client:
    """Trusts this sandbox's CA (each sandbox has its own), and only it."""
    ca = ssl.create_default_context(cafile=endpoints["ca_file"])
    return httpx.Client(timeout=30.0, trust_env=False, verify=ca)


def _challenge(response: httpx.Response) -> tuple[str, dict[str, str]]:
    scheme, _, params = response.headers["WWW-Authenticate"].partition(" ")
    return scheme, dict(re.findall(r'(\w+)="([^"]*)"', params))


def _alive(pid: int) -> bool:
    """True for a live process (a zombie is dead: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _pids_mentioning(run_dir: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if f"{run_dir}/".encode() in cmdline:
                found.append(int(entry))
    return found


def _in_group(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


@pytest.fixture
def spare_sandbox(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A second, unseeded sandbox next to the session one (tests that stop or break pieces)."""
    run_dir = tmp_path / "spare"
    try:
        yield up(
            run_dir,
            base_port=free_base_port(),
            seed_content=False,
            progress=lambda _line: None,
        )
    finally:
        down(run_dir)


# -- lifecycle --------------------------------------------------------------------------------
def test_status_reports_every_process_running_with_its_pid(sandbox: SandboxInfo) -> None:
    report = status(sandbox.run_dir)
    assert list(report["processes"]) == list(PROCESS_NAMES)
    assert report["running"] is True
    for name, item in report["processes"].items():
        assert item["running"], name
        cmdline = Path(f"/proc/{item['pid']}/cmdline").read_bytes().decode()
        assert str(sandbox.run_dir) in cmdline, name
        assert Path(item["log"]).is_file(), name
    assert report["endpoints"] == sandbox.endpoints


def test_up_again_keeps_running_pieces_and_returns_same_endpoints(sandbox: SandboxInfo) -> None:
    before = {name: item["pid"] for name, item in status(sandbox.run_dir)["processes"].items()}
    lines: list[str] = []
    started = time.monotonic()
    endpoints = up(sandbox.run_dir, base_port=sandbox.endpoints["base_port"], progress=lines.append)
    elapsed = time.monotonic() - started
    after = {name: item["pid"] for name, item in status(sandbox.run_dir)["processes"].items()}
    assert endpoints == sandbox.endpoints
    assert after == before
    assert sum("already running" in line for line in lines) == len(PROCESS_NAMES)
    assert any("already present" in line for line in lines), lines
    # Nothing was started or written again (above): that is what makes it quick, not a clock.
    print(f"a warm up took {elapsed:.1f} s")


def test_up_refuses_to_move_a_running_sandbox_to_other_ports(sandbox: SandboxInfo) -> None:
    with pytest.raises(ConfigError, match="runs a sandbox on base port"):
        up(sandbox.run_dir, base_port=sandbox.endpoints["base_port"] + 100)


def test_load_endpoints_rejects_a_directory_without_a_sandbox(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not a sandbox directory \(no endpoints.json\)"):
        load_endpoints(tmp_path)
    with pytest.raises(ConfigError, match="is not a sandbox directory"):
        down(tmp_path)


def test_missing_toxiproxy_binary_asks_for_make_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_TOXIPROXY", str(tmp_path / "no-such-server"))
    with pytest.raises(ConfigError, match="make setup"):
        up(tmp_path / "run", base_port=free_base_port(), progress=lambda _line: None)


# -- hops, nginx, rate limit ------------------------------------------------------------------
def test_toxiproxy_has_exactly_the_four_hops_of_the_endpoints(sandbox: SandboxInfo) -> None:
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as toxiproxy:
        proxies = toxiproxy.proxies()
    assert set(proxies) == {"client-registry", "client-mirror", "mirror-upstream", "token-server"}
    for name, hop in sandbox.endpoints["hops"].items():
        assert proxies[name]["listen"] == hop["listen"]
        assert proxies[name]["upstream"] == hop["upstream"]
        assert proxies[name]["enabled"] is True
        assert proxies[name]["toxics"] == []


def test_each_hop_forwards_to_its_upstream(sandbox: SandboxInfo) -> None:
    hops = sandbox.endpoints["hops"]
    with _http(sandbox.endpoints) as client:
        registry = client.get(f"https://{hops['client-registry']['listen']}/v2/")
        mirror = client.get(f"https://{hops['client-mirror']['listen']}/v2/")
        upstream = client.get(f"https://{hops['mirror-upstream']['listen']}/v2/")
        authed = client.get(sandbox.endpoints["registry"] + "/v2/", auth=sandbox.auth)
        wrong = client.get(sandbox.endpoints["registry"] + "/v2/", auth=("chaos", "wrong"))
    assert registry.status_code == 401
    assert _challenge(registry)[0] == "Basic"
    assert mirror.status_code == 200
    assert upstream.status_code == 401
    scheme, params = _challenge(upstream)
    assert scheme == "Bearer"
    assert params["realm"] == sandbox.endpoints["token_realm"]
    assert authed.status_code == 200
    assert wrong.status_code == 401


def test_replicas_share_storage_and_expose_metrics(sandbox: SandboxInfo) -> None:
    entry = sandbox.image("shop/frontend", "shop-prod-1.4.2")
    with _http(sandbox.endpoints) as client:
        for replica in sandbox.endpoints["replicas"]:
            head = client.head(
                f"{replica['url']}/v2/shop/frontend/manifests/shop-prod-1.4.2",
                headers=ACCEPT,
                auth=sandbox.auth,
            )
            assert head.headers["Docker-Content-Digest"] == entry["digest"], replica["name"]
            metrics = client.get(replica["metrics_url"])
            assert metrics.status_code == 200
            assert "registry_http_requests_total" in metrics.text, replica["name"]


def test_ratelimited_endpoint_answers_429_with_retry_headers_after_a_burst(
    sandbox: SandboxInfo,
) -> None:
    with _http(sandbox.endpoints) as client:
        responses = [
            client.get(sandbox.endpoints["registry_ratelimited"] + "/v2/") for _ in range(15)
        ]
        unlimited = [client.get(sandbox.endpoints["registry_direct"] + "/v2/") for _ in range(15)]
    statuses = [response.status_code for response in responses]
    assert statuses[0] == 401, statuses  # the first request reaches the registry
    assert 429 in statuses, statuses
    limited = next(response for response in responses if response.status_code == 429)
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["ratelimit-limit"].split(";")[0].isdigit()
    assert limited.headers["ratelimit-remaining"].startswith("0")
    assert limited.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert {response.status_code for response in unlimited} == {401}


# -- token flow -------------------------------------------------------------------------------
def test_token_flow_challenge_token_then_200_with_a_raw_client(sandbox: SandboxInfo) -> None:
    entry = sandbox.image("tiny/hello", "latest")
    url = f"{sandbox.endpoints['token_registry']}/v2/tiny/hello/manifests/latest"
    with _http(sandbox.endpoints) as client:
        issued_before = client.get(sandbox.endpoints["token_stats_url"]).json()["tokens_issued"]
        challenged = client.get(url, headers=ACCEPT)
        assert challenged.status_code == 401
        scheme, params = _challenge(challenged)
        assert scheme == "Bearer"
        assert params["service"] == sandbox.endpoints["token_service"]
        assert params["scope"] == "repository:tiny/hello:pull"
        answer = client.get(
            params["realm"],
            params={"service": params["service"], "scope": params["scope"]},
            auth=sandbox.auth,
        )
        assert answer.status_code == 200
        body = answer.json()
        assert body["token"] == body["access_token"]
        assert body["expires_in"] > 0
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", body["issued_at"])
        for _ in range(3):  # the same token serves several requests
            served = client.get(url, headers={**ACCEPT, "Authorization": f"Bearer {body['token']}"})
            assert served.status_code == 200
            assert served.headers["Docker-Content-Digest"] == entry["digest"]
        issued_after = client.get(sandbox.endpoints["token_stats_url"]).json()["tokens_issued"]
    assert issued_after == issued_before + 1
    header_b64, claims_b64, _ = body["token"].split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=="))
    assert header["alg"] == "ES256" and len(header["x5c"]) == 1
    assert claims["aud"] == sandbox.endpoints["token_service"]
    assert claims["sub"] == sandbox.username
    assert claims["access"] == [{"type": "repository", "name": "tiny/hello", "actions": ["pull"]}]
    assert claims["nbf"] <= claims["iat"] < claims["exp"]


def test_token_server_refuses_wrong_password_and_anonymous(sandbox: SandboxInfo) -> None:
    query = {"service": sandbox.endpoints["token_service"], "scope": "repository:tiny/hello:pull"}
    realm = sandbox.endpoints["token_realm"]
    with _http(sandbox.endpoints) as client:
        refused_before = client.get(sandbox.endpoints["token_stats_url"]).json()["refused"]
        wrong = client.get(realm, params=query, auth=(sandbox.username, "not-the-password"))
        anonymous = client.get(realm, params=query)
        forged = client.get(
            f"{sandbox.endpoints['token_registry']}/v2/tiny/hello/manifests/latest",
            headers={**ACCEPT, "Authorization": "Bearer e30.e30.c2ln"},
        )
        refused_after = client.get(sandbox.endpoints["token_stats_url"]).json()["refused"]
    assert wrong.status_code == 401
    assert "token" not in wrong.json()
    assert anonymous.status_code == 401
    assert forged.status_code == 401
    assert refused_after == refused_before + 1  # anonymous never reaches the password check


def test_token_server_accepts_the_oauth2_password_grant(sandbox: SandboxInfo) -> None:
    form = {
        "grant_type": "password",
        "service": sandbox.endpoints["token_service"],
        "scope": "repository:shop/api:pull",
        "client_id": "chaosregistry-tests",
        "username": sandbox.username,
    }
    with _http(sandbox.endpoints) as client:
        granted = client.post(
            sandbox.endpoints["token_realm"], data={**form, "password": sandbox.password}
        )
        refused = client.post(sandbox.endpoints["token_realm"], data={**form, "password": "x"})
        served = client.head(
            f"{sandbox.endpoints['token_registry']}/v2/shop/api/manifests/latest",
            headers={**ACCEPT, "Authorization": f"Bearer {granted.json()['access_token']}"},
        )
    assert granted.status_code == 200
    assert refused.status_code == 401
    assert served.status_code == 200
    assert served.headers["Docker-Content-Digest"] == sandbox.image("shop/api", "latest")["digest"]


# -- content ----------------------------------------------------------------------------------
def test_catalog_matches_what_the_registry_serves(sandbox: SandboxInfo) -> None:
    with _http(sandbox.endpoints) as client:
        for entry in sandbox.catalog:
            base = f"{sandbox.endpoints['registry']}/v2/{entry['repository']}"
            head = client.head(
                f"{base}/manifests/{entry['tag']}", headers=ACCEPT, auth=sandbox.auth
            )
            assert head.status_code == 200, entry["tag"]
            assert head.headers["Docker-Content-Digest"] == entry["digest"]
            assert head.headers["Content-Type"] == entry["media_type"]
            for platform in entry["platforms"]:
                manifest = client.get(
                    f"{base}/manifests/{platform['manifest_digest']}",
                    headers=ACCEPT,
                    auth=sandbox.auth,
                )
                assert (
                    "sha256:" + hashlib.sha256(manifest.content).hexdigest()
                    == (platform["manifest_digest"])
                )
                for blob in [platform["config"], *platform["layers"]]:
                    blob_head = client.head(f"{base}/blobs/{blob['digest']}", auth=sandbox.auth)
                    assert blob_head.status_code == 200
                    assert int(blob_head.headers["Content-Length"]) == blob["size"]


def test_catalog_has_the_promised_variety(sandbox: SandboxInfo) -> None:
    catalog = sandbox.catalog
    assert len({entry["repository"] for entry in catalog}) >= 5
    tags = {entry["tag"] for entry in catalog}
    assert {"latest", "nightly"} <= tags
    assert {"shop-prod-1.4.2", "shop-staging-1.5.0-rc.1"} <= tags
    assert sum(bool(TAG_PATTERN.match(tag)) for tag in tags) >= 8
    big = sandbox.image("big/blob", "latest")
    assert [layer["size"] >= 63 * MiB for layer in big["platforms"][0]["layers"]] == [True] * 3
    assert big["total_bytes"] >= 3 * 63 * MiB
    layer_counts = {len(p["layers"]) for entry in catalog for p in entry["platforms"]}
    assert min(layer_counts) == 1 and max(layer_counts) == 5
    for media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        multi = next(entry for entry in catalog if entry["media_type"] == media_type)
        platforms = {p["platform"]: p["manifest_digest"] for p in multi["platforms"]}
        assert set(platforms) == {"linux/amd64", "linux/arm64"}
        assert len(set(platforms.values())) == 2
    unique = {
        blob["digest"]: blob["size"]
        for entry in catalog
        for platform in entry["platforms"]
        for blob in [platform["config"], *platform["layers"]]
    }
    assert 200 * MiB <= sum(unique.values()) <= 300 * MiB


@pytest.mark.parametrize(
    ("repository", "tag"),
    [("shop/frontend", "shop-staging-1.5.0-rc.1"), ("payments/worker", "nightly")],
)
def test_layers_are_tars_whose_sha256_are_the_config_diff_ids(
    sandbox: SandboxInfo, repository: str, tag: str
) -> None:
    platform = sandbox.image(repository, tag)["platforms"][0]
    base = f"{sandbox.endpoints['replicas'][0]['url']}/v2/{repository}/blobs"
    with _http(sandbox.endpoints) as client:
        config = client.get(f"{base}/{platform['config']['digest']}", auth=sandbox.auth).json()
        layers = [
            client.get(f"{base}/{layer['digest']}", auth=sandbox.auth).content
            for layer in platform["layers"]
        ]
    assert config["os"] == "linux" and config["rootfs"]["type"] == "layers"
    diff_ids = []
    for data in layers:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        with tarfile.open(fileobj=BytesIO(data)) as archive:
            assert archive.getmembers(), "empty layer"
        diff_ids.append("sha256:" + hashlib.sha256(data).hexdigest())
    assert config["rootfs"]["diff_ids"] == diff_ids


def test_content_is_deterministic() -> None:
    small = next(recipe for recipe in RECIPES if recipe.repository == "shop/api")
    first, second = build_image(small), build_image(small)
    assert first.top.digest == second.top.digest
    assert [p.manifest.digest for p in first.platforms] == [
        p.manifest.digest for p in second.platforms
    ]
    # Shared base layer, distinct per architecture.
    amd64, arm64 = (p.layers[0].blob.digest for p in first.platforms)
    assert amd64 != arm64


def test_mirror_pulls_a_seeded_image_through_and_caches_it(sandbox: SandboxInfo) -> None:
    entry = sandbox.image("shop/api", "shop-prod-2.0.1")
    arm64 = next(p for p in entry["platforms"] if p["platform"] == "linux/arm64")
    base = f"{sandbox.endpoints['mirror']}/v2/shop/api"
    with _http(
        sandbox.endpoints
    ) as client:  # anonymous: the mirror authenticates upstream on its own
        index = client.get(f"{base}/manifests/shop-prod-2.0.1", headers=ACCEPT)
        assert index.status_code == 200
        assert index.headers["Docker-Content-Digest"] == entry["digest"]
        listed = {m["digest"] for m in index.json()["manifests"]}
        assert arm64["manifest_digest"] in listed
        manifest = client.get(f"{base}/manifests/{arm64['manifest_digest']}", headers=ACCEPT)
        assert manifest.status_code == 200
        for blob in [arm64["config"], *arm64["layers"]]:
            data = client.get(f"{base}/blobs/{blob['digest']}").content
            assert len(data) == blob["size"]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"]
    # Pulled through, then stored by the mirror itself (written once the stream completes).
    blobs = Path(sandbox.run_dir, "storage/mirror/docker/registry/v2/blobs/sha256")
    wanted = blobs / arm64["layers"][-1]["digest"][7:9] / arm64["layers"][-1]["digest"][7:] / "data"
    eventually("the mirror's copy of the layer", wanted.is_file, timeout=10)
    assert wanted.stat().st_size == arm64["layers"][-1]["size"]


# -- secrets ----------------------------------------------------------------------------------
def test_password_never_reaches_logs_or_public_files(sandbox: SandboxInfo) -> None:
    # Traffic with credentials first, so there is something that could leak.
    with _http(sandbox.endpoints) as client:
        client.get(sandbox.endpoints["registry"] + "/v2/_catalog", auth=sandbox.auth)
        client.get(sandbox.endpoints["registry"] + "/v2/", auth=("chaos", "wrong"))
    basic = base64.b64encode(f"{sandbox.username}:{sandbox.password}".encode()).decode()
    run_dir = sandbox.run_dir
    public = [*Path(run_dir, "logs").glob("*.log")]
    public += [run_dir / name for name in ("endpoints.json", "catalog.json", "processes.json")]
    assert len(public) >= 10
    for path in public:
        text = path.read_text(errors="replace")
        assert sandbox.password not in text, path
        assert basic not in text, path
    credentials = Path(sandbox.endpoints["credentials_file"])
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert json.loads(credentials.read_text())["password"] == sandbox.password


# -- one process at a time, and down ----------------------------------------------------------
def test_kill_a_replica_then_restart_it_by_name(spare_sandbox: dict[str, Any]) -> None:
    run_dir = spare_sandbox["run_dir"]
    replica_url = spare_sandbox["replicas"][1]["url"]
    old_pid = status(run_dir)["processes"]["registry-2"]["pid"]
    assert stop_process(run_dir, "registry-2", signal.SIGKILL) is True
    assert not _alive(old_pid)
    assert status(run_dir)["processes"]["registry-2"] == {
        "running": False,
        "pid": None,
        "log": str(Path(run_dir, "logs/registry-2.log")),
    }
    with _http(spare_sandbox) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(replica_url + "/v2/")
        # nginx keeps answering through the surviving replica.
        assert {client.get(spare_sandbox["registry"] + "/v2/").status_code for _ in range(4)} == {
            401
        }
        new_pid = start_process(run_dir, "registry-2")
        assert new_pid != old_pid
        assert client.get(replica_url + "/v2/").status_code == 401
    assert start_process(run_dir, "registry-2") == new_pid  # idempotent
    assert stop_process(run_dir, "registry-2", signal.SIGKILL) is True
    assert stop_process(run_dir, "registry-2", signal.SIGKILL) is False  # already gone


def test_up_during_a_fault_leaves_the_hops_faults_alone(spare_sandbox: dict[str, Any]) -> None:
    run_dir = spare_sandbox["run_dir"]
    with Toxiproxy(spare_sandbox["toxiproxy"]) as toxiproxy:
        toxiproxy.add_toxic(
            "client-registry", name="slow", type="latency", attributes={"latency": 50}
        )
        toxiproxy.set_enabled("client-mirror", False)
        up(run_dir, base_port=spare_sandbox["base_port"], seed_content=False, progress=print)
        proxies = toxiproxy.proxies()
    assert [toxic["name"] for toxic in proxies["client-registry"]["toxics"]] == ["slow"]
    assert proxies["client-mirror"]["enabled"] is False


def test_a_restarted_toxiproxy_recreates_the_hops(spare_sandbox: dict[str, Any]) -> None:
    run_dir = spare_sandbox["run_dir"]
    assert stop_process(run_dir, "toxiproxy", signal.SIGKILL) is True
    with _http(spare_sandbox) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(spare_sandbox["registry"] + "/v2/")
        start_process(run_dir, "toxiproxy")
        assert client.get(spare_sandbox["registry"] + "/v2/").status_code == 401
        assert client.get(spare_sandbox["mirror"] + "/v2/").status_code == 200
    with Toxiproxy(spare_sandbox["toxiproxy"]) as toxiproxy:
        assert set(toxiproxy.proxies()) == set(spare_sandbox["hops"])


def test_start_failure_names_the_log_file(spare_sandbox: dict[str, Any]) -> None:
    run_dir = Path(spare_sandbox["run_dir"])
    stop_process(run_dir, "registry-2")
    config = run_dir / "config/registry-2.yml"
    config.write_text("version: 0.1\nstorage: [not, a, mapping]\n")
    with pytest.raises(SandboxError, match=r"registry-2 exited with code \d+ .*registry-2\.log"):
        start_process(run_dir, "registry-2")
    assert status(run_dir)["processes"]["registry-2"]["running"] is False


def test_start_refuses_a_busy_port(spare_sandbox: dict[str, Any]) -> None:
    run_dir = spare_sandbox["run_dir"]
    stop_process(run_dir, "token-server")
    port = int(spare_sandbox["token_server_direct"].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(SandboxError, match=f"port\\(s\\) {port} already in use") as caught:
            start_process(run_dir, "token-server")
    # The message names who holds the port: this test's own process, listening.
    assert f"{port}: pid {os.getpid()} (python" in str(caught.value)
    assert "listen" in str(caught.value)


def test_start_waits_for_a_port_released_a_moment_later(spare_sandbox: dict[str, Any]) -> None:
    run_dir = spare_sandbox["run_dir"]
    stop_process(run_dir, "token-server")
    port = int(spare_sandbox["token_server_direct"].rsplit(":", 1)[1])
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    # Released well inside the start's PORT_RELEASE_TIMEOUT, as a stopped piece's ports are.
    threading.Timer(1.0, squatter.close).start()
    assert start_process(run_dir, "token-server") > 0
    assert status(run_dir)["processes"]["token-server"]["running"] is True


def test_two_sandboxes_run_side_by_side_and_down_leaves_no_process(
    sandbox: SandboxInfo, spare_sandbox: dict[str, Any]
) -> None:
    run_dir = Path(spare_sandbox["run_dir"])
    assert spare_sandbox["base_port"] != sandbox.endpoints["base_port"]
    with _http(spare_sandbox) as spare, _http(sandbox.endpoints) as session:
        assert spare.get(spare_sandbox["registry"] + "/v2/").status_code == 401
        assert session.get(sandbox.endpoints["registry"] + "/v2/").status_code == 401
    pids = {name: item["pid"] for name, item in status(run_dir)["processes"].items()}
    assert all(pids.values()), pids
    nginx_workers = [pid for pid in _in_group(pids["nginx"]) if pid != pids["nginx"]]
    assert nginx_workers, "nginx runs its worker in the master's process group"
    # Worst case for down: nginx's master killed behind our back, its worker orphaned.
    os.kill(pids["nginx"], signal.SIGKILL)
    down(run_dir)
    for name, pid in pids.items():
        assert not _alive(pid), name
        assert _in_group(pid) == [], name
    assert [pid for pid in nginx_workers if _alive(pid)] == []
    assert _pids_mentioning(run_dir) == []
    assert status(run_dir)["running"] is False
    # The session sandbox is untouched.
    assert status(sandbox.run_dir)["running"] is True


# -- CLI --------------------------------------------------------------------------------------
def test_cli_status_prints_a_table_and_json(sandbox: SandboxInfo) -> None:
    runner = CliRunner()
    table = runner.invoke(sandbox_group, ["status", "--run-dir", str(sandbox.run_dir)])
    assert table.exit_code == 0, table.output
    for name in PROCESS_NAMES:
        assert re.search(rf"^{name}\s+running\s+\d+", table.output, re.MULTILINE), name
    as_json = runner.invoke(
        sandbox_group, ["status", "--json"], env={"CHAOSREGISTRY_SANDBOX_DIR": str(sandbox.run_dir)}
    )
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["endpoints"] == sandbox.endpoints


def test_cli_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(sandbox_group, ["down", "--run-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {tmp_path} is not a sandbox directory (no endpoints.json)"
    ]
    for command in ([], ["up"], ["down"], ["status"]):
        assert CliRunner().invoke(sandbox_group, [*command, "--help"]).exit_code == 0
