"""`chaosregistry init` and the fault proxy's settings, without a registry.

Bad input (unreachable, bad auth, a CA that did not sign the certificate) is one line naming the
check and what to do, a non-zero exit and nothing written; the experiments written from a
baseline validate, state each tolerance's measurement, and hold no secret; a fault proxy's
declaration gives the local backend its hop and the registry a connect-to address.
"""

import socket
import ssl
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
import yaml
from click.testing import CliRunner

from chaosregistry.cli import main
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import FAULT_PROXY_HOP, SettingError, parse_settings
from chaosregistry.experiment.validate import validate
from chaosregistry.onboarding.experiments import EXPERIMENT_FILES, Baseline
from chaosregistry.onboarding.init import (
    VARS_FILE,
    InitError,
    InitRequest,
    check_registry,
    write,
)

PASSWORD = "s3cret-Pa55word-never-written"


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("CHAOSREGISTRY_URL", "CHAOSREGISTRY_SANDBOX_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHAOSREGISTRY_USERNAME", "alice")
    monkeypatch.setenv("CHAOSREGISTRY_PASSWORD", PASSWORD)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(
    tmp_path: Path, url: str = "https://registry.example:5000", **kwargs: object
) -> InitRequest:
    fields: dict[str, object] = {
        "registry_url": url,
        "output": tmp_path / "out",
        "image": "demo/app:1.0",
        "proxy_api_port": 26400,
        "proxy_listen_port": 26401,
    }
    fields.update(kwargs)
    return InitRequest(**fields)  # type: ignore[arg-type]


def always_401(request: httpx.Request) -> httpx.Response:
    return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="demo"'})


def untrusted_certificate(request: httpx.Request) -> httpx.Response:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_code = 20
    error.verify_message = "unable to get local issuer certificate"
    raise httpx.ConnectError("certificate verify failed") from error


def test_unreachable_registry_is_one_line_naming_it(tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    with pytest.raises(InitError) as caught:
        check_registry(request(tmp_path, url))
    message = str(caught.value)
    assert message.startswith(f"unreachable: {url} (refused)")
    assert "\n" not in message


def test_credentials_the_registry_refuses_are_one_line_naming_the_variables(
    tmp_path: Path,
) -> None:
    with pytest.raises(InitError) as caught:
        check_registry(request(tmp_path), transport=httpx.MockTransport(always_401))
    message = str(caught.value)
    assert message.startswith("auth: https://registry.example:5000 refused the credentials")
    assert "$CHAOSREGISTRY_PASSWORD" in message and PASSWORD not in message
    assert "\n" not in message


def test_no_credentials_for_a_registry_that_wants_them_says_where_to_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHAOSREGISTRY_USERNAME")
    monkeypatch.delenv("CHAOSREGISTRY_PASSWORD")
    with pytest.raises(InitError, match=r"^auth: .* asks for credentials \(basic\): set"):
        check_registry(request(tmp_path), transport=httpx.MockTransport(always_401))


def test_a_ca_that_did_not_sign_the_certificate_is_one_line_naming_the_bundle(
    tmp_path: Path,
) -> None:
    bundle = Path(certifi.where())
    with pytest.raises(InitError) as caught:
        check_registry(
            request(tmp_path, ca_bundle=bundle),
            transport=httpx.MockTransport(untrusted_certificate),
        )
    message = str(caught.value)
    assert message == (
        "TLS: https://registry.example:5000's certificate is not signed by a CA in the CA "
        f"bundle {bundle}: pass --ca-bundle with the CA that signed it"
    )


def test_a_ca_bundle_that_is_not_pem_is_refused_before_any_connection(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="is not a PEM certificate bundle"):
        check_registry(request(tmp_path, ca_bundle=not_pem))


def test_init_cli_failure_is_one_error_line_with_exit_1_and_writes_nothing(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "init",
            "--registry",
            f"https://127.0.0.1:{closed_port()}",
            "--output",
            str(output),
            "--proxy-port",
            "26401",
            "--proxy-api-port",
            "26400",
        ],
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: unreachable: https://127.0.0.1:")
    assert not output.exists()


def test_init_without_a_terminal_needs_registry_on_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", "--output", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --registry URL is required (stdin is not a terminal)"


BASELINE = Baseline(
    image="demo/app:1.0",
    pulls=20,
    pull_p50=0.12,
    pull_p95=0.21,
    pull_max=0.3,
    pull_bytes=4_000_000,
    load_users=4,
    load_pulls=8,
    load_p95=0.4,
    ping_p95=0.004,
    pings=10,
    http_version="HTTP/1.1",
    tls=True,
    tls_version="TLSv1.3",
    days_left=20.4,
    measured_at="2026-12-06T05:00:00Z",
)


def steady_tolerance(path: Path, name: str) -> list[float]:
    experiment = yaml.safe_load(path.read_text())
    probes = experiment["steady-state-hypothesis"]["probes"]
    return next(p["tolerance"]["range"] for p in probes if p["name"] == name)


def test_written_experiments_validate_and_state_their_measured_tolerances(
    tmp_path: Path,
) -> None:
    init = request(tmp_path, ca_bundle=Path(certifi.where()))
    written = write(init, BASELINE)
    vars_file = init.output / VARS_FILE
    assert sorted(p.name for p in written) == sorted([*EXPERIMENT_FILES, "local.yaml"])
    for name in EXPERIMENT_FILES:
        validate(init.output / name, vars_file)
    latency = init.output / "registry-latency.yaml"
    # 2x the measured p95, the measurement stated beside it.
    # 2 x 0.21 is under the 0.5 s floor.
    assert steady_tolerance(latency, "pull-p95-within-budget") == [0, 0.5]
    text = latency.read_text()
    assert "p95 measured 0.210 s over 20 pulls" in text and "budget 2x" in text
    # 20.4 days left: a floor of 19 (it must pass today), with the warning to renew.
    certificate = init.output / "registry-certificate.yaml"
    assert steady_tolerance(certificate, "certificate-days-left") == [19, 100000]
    assert "RENEW IT" in certificate.read_text()


def test_no_written_file_holds_the_password(tmp_path: Path) -> None:
    init = request(tmp_path)
    write(init, BASELINE)
    files = [p for p in init.output.rglob("*") if p.is_file()]
    assert files and not [p for p in files if PASSWORD in p.read_text()]
    assert "$CHAOSREGISTRY_PASSWORD, read at run time" in (init.output / VARS_FILE).read_text()


def test_a_fault_proxy_gives_the_local_backend_its_hop_and_the_registry_its_listener() -> None:
    settings = parse_settings(
        {
            "registry_url": "https://registry.example:5000",
            "fault_proxy": {"listen": "127.0.0.1:26401", "api": "127.0.0.1:26400", "dir": "p"},
        }
    )
    assert settings.local.toxiproxy_url == "http://127.0.0.1:26400"
    assert dict(settings.local.hops or {}) == {FAULT_PROXY_HOP: FAULT_PROXY_HOP}
    target = settings.registry.resolve(None)
    assert target.url == "https://registry.example:5000"
    assert target.connect_to == ("127.0.0.1", 26401)
    # Another registry is reached directly.
    assert settings.registry.resolve(None, "https://elsewhere.example").connect_to is None


@pytest.mark.parametrize(
    ("declaration", "key"),
    [
        ({"listen": "nowhere", "api": "127.0.0.1:1", "dir": "p"}, "fault_proxy.listen"),
        ({"listen": "127.0.0.1:1", "api": "127.0.0.1:1", "dir": "p"}, "fault_proxy.api"),
        ({"listen": "127.0.0.1:1", "api": "127.0.0.1:2"}, "fault_proxy.dir"),
    ],
)
def test_a_bad_fault_proxy_declaration_names_its_key(declaration: dict[str, str], key: str) -> None:
    with pytest.raises(SettingError) as caught:
        parse_settings({"registry_url": "https://r.example", "fault_proxy": declaration})
    assert str(caught.value).startswith(f"configuration.{key}:")


def test_a_fault_proxy_needs_the_registry_it_fronts() -> None:
    with pytest.raises(SettingError, match=r"^configuration.fault_proxy: needs registry_url"):
        parse_settings({"fault_proxy": {"listen": "127.0.0.1:1", "api": "127.0.0.1:2", "dir": "p"}})


def test_on_a_terminal_init_prompts_for_what_the_flags_leave_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosregistry.onboarding import cli as init_cli

    monkeypatch.setattr(init_cli, "_interactive", lambda: True)
    url = f"https://127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(
        main,
        ["init", "--proxy-port", "26401", "--proxy-api-port", "26400"],
        input=f"{url}\nmine\n",
    )
    assert "Registry URL (https://host[:port]):" in result.output
    assert "Write the experiments to [chaos]:" in result.output
    # The answers were used: the URL given is the one found unreachable, nothing written.
    assert result.exit_code == 1
    assert f"Error: unreachable: {url} (refused)" in result.output
    assert not (tmp_path / "mine").exists()


def test_a_kubeconfig_is_recorded_in_the_vars_file_and_validates(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    init = request(tmp_path, kubeconfig=kubeconfig)
    write(init, BASELINE)
    vars_data = yaml.safe_load((init.output / VARS_FILE).read_text())
    assert vars_data["configuration"]["chaosregistry"]["kubeconfig"] == str(kubeconfig)
    validate(init.output / "registry-latency.yaml", init.output / VARS_FILE)


@pytest.mark.parametrize("given", ["--proxy-port", "--proxy-api-port"])
@pytest.mark.parametrize("offset", [0, 1, 2])
def test_init_picks_the_port_left_out_apart_from_the_one_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, offset: int
) -> None:
    import chaosregistry.onboarding.init as init_module
    import chaosregistry.sandbox as sandbox_module

    # The free range found may hold the port given, wherever in it: the other must differ.
    monkeypatch.setattr(sandbox_module, "find_free_base_port", lambda span: 26400 - offset)
    requests: list[Any] = []
    monkeypatch.setattr(
        init_module, "run_init", lambda request, **_: requests.append(request) or []
    )
    result = CliRunner().invoke(
        main,
        ["init", "--registry", "https://localhost:1", "--output", str(tmp_path), given, "26400"],
    )
    assert result.exit_code == 0, result.output
    (request,) = requests
    ports = {"--proxy-port": request.proxy_listen_port, "--proxy-api-port": request.proxy_api_port}
    assert ports[given] == 26400
    assert request.proxy_listen_port != request.proxy_api_port
    assert all(26400 - offset <= port < 26400 - offset + 3 for port in ports.values())
