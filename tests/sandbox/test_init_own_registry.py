"""`chaosregistry init` and the fault proxy against a registry no one here wrote.

Debian's docker-registry (Distribution 2.8), HTTPS from a private CA, basic auth, started in a
temporary directory (``support.foreign_registry``). As a new user would: ``init`` with the
credentials in the environment; ``validate`` each written experiment; a game day of the written
latency experiment through the fault proxy, whose probes see the latency; TLS checked against
the registry's real name through the proxy; no written file holds the password. A Locust pull
load goes through the proxy too: slowed by its latency, TLS still on the registry's name.
"""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.foreign_registry import USERNAME, ForeignRegistry, running_foreign_registry
from support.gameday import CHAOSREGISTRY, for_a_loaded_machine
from support.polling import eventually
from support.ports import free_ports

from chaosregistry.experiment.settings import FAULT_PROXY_HOP, parse_settings
from chaosregistry.faultproxy.proxy import down, up
from chaosregistry.gameday.journal import parse_journal
from chaosregistry.loadgen import records
from chaosregistry.loadgen.command import LOCUSTFILE
from chaosregistry.onboarding.experiments import EXPERIMENT_FILES
from chaosregistry.sandbox.toxiproxy import Toxiproxy


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForeignRegistry]:
    with running_foreign_registry(tmp_path_factory.mktemp("foreign-registry")) as running:
        yield running


def chaosregistry(
    registry: ForeignRegistry, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHAOSREGISTRY, *args],
        cwd=cwd,
        env=env if env is not None else registry.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def init_args(registry: ForeignRegistry, *extra: str) -> list[str]:
    listen, api = free_ports(2)
    return [
        "init",
        "--registry",
        registry.url,
        "--output",
        "mychaos",
        "--proxy-port",
        str(listen),
        "--proxy-api-port",
        str(api),
        *extra,
    ]


def test_init_writes_experiments_that_validate_and_pass_a_latency_game_day_through_the_proxy(
    registry: ForeignRegistry, tmp_path: Path
) -> None:
    made = chaosregistry(registry, tmp_path, *init_args(registry, "--ca-bundle", str(registry.ca)))
    assert made.returncode == 0, made.stderr
    assert f"image: {registry.image}" in made.stdout  # picked from the catalog
    output = tmp_path / "mychaos"
    vars_file = output / "vars/local.yaml"
    for name in EXPERIMENT_FILES:
        checked = chaosregistry(
            registry, tmp_path, "validate", str(output / name), "--vars", str(vars_file)
        )
        assert checked.returncode == 0, checked.stderr
    latency = output / "registry-latency.yaml"
    experiment = yaml.safe_load(latency.read_text())
    budget = experiment["steady-state-hypothesis"]["probes"][0]["tolerance"]["range"][1]
    delay_ms = experiment["method"][0]["provider"]["arguments"]["latency_ms"]
    comments = " ".join(
        line.strip().removeprefix("# ")
        for line in latency.read_text().splitlines()
        if line.strip().startswith("#")
    )
    assert re.search(r"p95 measured [0-9.]+ s over 40 pulls .* through the fault proxy", comments)
    assert f"budget 2x (at least 0.5 s): {budget:g} s" in comments

    # The generated budget was measured on this loaded machine, at one moment: the run judges
    # the steady state with the suite's (LOADED_P95_BUDGET); the fault must still exceed the
    # generated one (below).
    loaded = for_a_loaded_machine(latency, tmp_path)
    assert loaded != latency
    run = chaosregistry(
        registry, tmp_path, "gameday", str(loaded), "--vars", str(vars_file),
        "--run-dir", "runs/latency",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert "verdict: passed" in run.stdout
    assert "fault proxy: started" in run.stdout and "fault proxy: stopped" in run.stdout
    # The proxy gives the fault its hop: no sandbox is started beside the user's registry.
    assert "sandbox: not needed" in run.stdout
    journal = parse_journal(tmp_path / "runs/latency/journal.json")
    assert journal.before is not None and journal.before.met
    assert journal.after is not None and journal.after.met
    during = [r.output for r in journal.run if r.activity.name == "pulls-during-latency"]
    assert len(during) == 3
    # Two round trips or more per pull, each delayed: the probes saw the fault.
    assert all(sample["succeeded"] == 4 for sample in during)
    assert all(sample["p50"] >= 2 * delay_ms / 1000 * 0.8 for sample in during), during
    assert all(sample["p50"] > budget for sample in during)
    # What the generated budget also proves on a quiet machine, that the fault was gone when
    # the steady state was checked again, proven directly from the ledger's account: reverted
    # before the after-check began. Either ender will do: the experiment's `end-of-fault-window`
    # rollback, or on a slow machine the watchdog at the fault's expiry, which can come first.
    (fault,) = json.loads((tmp_path / "runs/latency/gameday.json").read_text())["faults"]
    after_began = min(p.start for p in journal.after.probes if p.start is not None)
    assert fault["state"] == "reverted", fault
    assert fault["revert_reason"] in ("rollback", "expired"), fault
    assert fault["reverted_at"] < after_began, (fault, after_began)
    (ended,) = [r for r in journal.run if r.activity.name == "end-of-fault-window"]
    reverted_by_rollback = [f["fault_id"] for f in ended.output["reverted"]]
    assert reverted_by_rollback == ([fault["id"]] if fault["revert_reason"] == "rollback" else [])
    assert ended.end is not None and journal.after.probes[0].start is not None
    assert ended.end <= journal.after.probes[0].start

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    holding = [p for p in files if registry.password.encode() in p.read_bytes()]
    assert files and not holding


def test_through_the_proxy_tls_is_checked_against_the_registrys_real_name(
    registry: ForeignRegistry, tmp_path: Path
) -> None:
    from chaosregistry.probes.pull import pull_image
    from chaosregistry.probes.registry import registry_tls

    listen, api = free_ports(2)
    results = {}
    for host in ("localhost", "127.0.0.1"):
        configuration = {
            "registry_url": f"https://{host}:{registry.port}",
            "registry_ca_bundle": str(registry.ca),
            "fault_proxy": {
                "listen": f"127.0.0.1:{listen}",
                "api": f"127.0.0.1:{api}",
                "dir": str(tmp_path / "proxy"),
            },
        }
        proxy = parse_settings(configuration).fault_proxy
        assert proxy is not None
        up(proxy)
        try:
            secrets = {"registry_username": "alice", "registry_password": registry.password}
            results[host] = (
                registry_tls(configuration=configuration),
                pull_image(image=registry.image, configuration=configuration, secrets=secrets),
            )
        finally:
            down(proxy, force=True)
    tls, pulled = results["localhost"]
    assert tls["verified"] is True and tls["hostname_match"] is True
    assert pulled["ok"] is True
    # The same listener, the same certificate: only the name checked differs, and the
    # certificate names localhost, not 127.0.0.1.
    tls, pulled = results["127.0.0.1"]
    assert tls["verified"] is False and tls["error"]["detail"]["reason"] == "hostname-mismatch"
    assert pulled["error"]["class"] == "tls"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("other-ca", "TLS: https://localhost:{port}'s certificate is not signed by a CA in"),
        ("wrong-password", "auth: https://localhost:{port} refused the credentials (HTTP 401)"),
        ("no-credentials", "auth: https://localhost:{port} asks for credentials (basic)"),
        ("unreachable", "unreachable: https://localhost:1 (refused)"),
    ],
)
def test_init_refuses_bad_input_in_one_line_and_writes_nothing(
    registry: ForeignRegistry, tmp_path: Path, case: str, expected: str
) -> None:
    env = registry.env()
    args = init_args(registry, "--ca-bundle", str(registry.ca))
    if case == "other-ca":
        args = init_args(registry, "--ca-bundle", str(registry.other_ca))
    elif case == "wrong-password":
        env["CHAOSREGISTRY_PASSWORD"] = "not-" + registry.password
    elif case == "no-credentials":
        del env["CHAOSREGISTRY_USERNAME"], env["CHAOSREGISTRY_PASSWORD"]
    elif case == "unreachable":
        args[args.index(registry.url)] = "https://localhost:1"
    result = chaosregistry(registry, tmp_path, *args, env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: " + expected.format(port=registry.port))
    assert not (tmp_path / "mychaos").exists()


def test_proxy_commands_start_it_and_refuse_to_stop_it_under_an_active_fault(
    registry: ForeignRegistry, tmp_path: Path
) -> None:
    from chaosregistry.actions.network import add_latency, remove_network_faults

    listen, api = free_ports(2)
    env = {**registry.env(), "CHAOSREGISTRY_LEDGER_DIR": str(tmp_path / "ledger")}
    where = ["--dir", str(tmp_path / "proxy")]
    started = chaosregistry(
        registry,
        tmp_path,
        *["proxy", "up", "--registry", registry.url, *where],
        *["--listen-port", str(listen), "--api-port", str(api)],
        env=env,
    )
    assert started.returncode == 0, started.stderr
    assert f"127.0.0.1:{listen} -> localhost:{registry.port}" in started.stdout
    configuration = {
        "registry_url": registry.url,
        "registry_ca_bundle": str(registry.ca),
        "ledger_dir": env["CHAOSREGISTRY_LEDGER_DIR"],
        "fault_proxy": {
            "listen": f"127.0.0.1:{listen}",
            "api": f"127.0.0.1:{api}",
            "dir": str(tmp_path / "proxy"),
        },
    }
    fault = add_latency(
        hop="client-registry", latency_ms=50, duration=60, configuration=configuration
    )
    try:
        assert fault["injected"] == "confirmed"
        status = chaosregistry(registry, tmp_path, "proxy", "status", *where, env=env)
        assert fault["applied"]["toxic"]["name"] in status.stdout
        refused = chaosregistry(registry, tmp_path, "proxy", "down", *where, env=env)
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            f"Error: fault proxy: active faults on its hop ({fault['fault_id']}): "
            "revert them first (`chaosregistry rollback`)"
        )
    finally:
        remove_network_faults(hop="client-registry", configuration=configuration)
    stopped = chaosregistry(registry, tmp_path, "proxy", "down", *where, env=env)
    assert stopped.returncode == 0 and "fault proxy: stopped" in stopped.stdout


LOAD_LATENCY_MS = 150


def test_the_load_goes_through_the_proxy_slowed_by_its_latency_with_tls_on_the_real_name(
    registry: ForeignRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosregistry.actions.load import start_pull_load, stop_pull_load
    from chaosregistry.actions.network import add_latency, remove_network_faults
    from chaosregistry.probes.load import pull_load_stats

    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    listen, api = free_ports(2)
    configuration = {
        "registry_url": registry.url,
        "registry_ca_bundle": str(registry.ca),
        "ledger_dir": str(tmp_path / "ledger"),
        "load_dir": str(tmp_path / "loads"),
        "fault_proxy": {
            "listen": f"127.0.0.1:{listen}",
            "api": f"127.0.0.1:{api}",
            "dir": str(tmp_path / "proxy"),
        },
    }
    secrets = {"registry_username": USERNAME, "registry_password": registry.password}
    proxy = parse_settings(configuration).fault_proxy
    assert proxy is not None
    up(proxy)
    try:
        add_latency(
            hop=FAULT_PROXY_HOP,
            latency_ms=LOAD_LATENCY_MS,
            duration=60,
            configuration=configuration,
        )
        with Toxiproxy(proxy.toxiproxy_url) as toxiproxy:
            before = toxiproxy.received_bytes(FAULT_PROXY_HOP)
            assert before is not None
            load = start_pull_load(
                users=2,
                spawn_rate=2,
                duration=4,
                images=[registry.image],
                configuration=configuration,
                secrets=secrets,
            )
            eventually(
                "the load to end",
                lambda: (
                    not pull_load_stats(load["load_id"], configuration=configuration)["running"]
                ),
                timeout=60,
            )
            stats = pull_load_stats(load["load_id"], configuration=configuration)
            assert stats["pulls"] >= 2 and stats["failed"] == 0, stats
            # Toxiproxy counts a connection's bytes when it closes: the load's have all closed.
            eventually(
                "the load's bytes counted on the hop",
                lambda: (
                    sum((toxiproxy.received_bytes(FAULT_PROXY_HOP) or {}).values())
                    - sum(before.values())
                    >= stats["bytes"]
                ),
                timeout=10,
            )
        remove_network_faults(hop=FAULT_PROXY_HOP, configuration=configuration)
        # A manifest, then the blobs: two answers in a row, each delayed on the hop. Straight
        # to the registry a pull of this image takes a few tens of milliseconds.
        print(f"load through the proxy: {stats['pulls']} pulls, min {stats['min']:.3f} s, "
              f"p50 {stats['p50']:.3f} s, {stats['bytes']} bytes")  # fmt: skip
        assert stats["min"] >= 2 * LOAD_LATENCY_MS / 1000 * 0.95, stats

        # A name the certificate lacks, through the same listener: the handshake reaches the
        # registry (a name that resolves nowhere, so nothing else could answer) and fails
        # its host-name check.
        records_dir = tmp_path / "wrong-name"
        argv = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", "1", "-r", "1", "-t", "2s", "--only-summary",
            "--exit-code-on-error", "0",
            "--host", f"https://wrong-name.invalid:{registry.port}",
            "--connect-to", f"127.0.0.1:{listen}", "--tls-verify", str(registry.ca),
            "--images", registry.image, "--records-dir", str(records_dir),
        ]  # fmt: skip
        run = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        # The pull Locust's stop cuts short is recorded as interrupted (no error): not a pull.
        failed = [r for r in records.read_records(records_dir) if not r["interrupted"]]
        assert failed and all(r["error"] == "tls" for r in failed), failed[:3]
        assert "hostname-mismatch" in failed[0]["message"], failed[0]
    finally:
        remove_network_faults(hop=FAULT_PROXY_HOP, configuration=configuration)
        stop_pull_load("", configuration=configuration)
        down(proxy, force=True)
