"""The configuration parsed once into typed settings (chaosregistry.experiment.settings).

Each bad value is one line naming its key; a configuration is parsed once per distinct content
(and environment); a sandbox's endpoints.json is read once and again only when it changes; the
vars file ``cluster up`` writes is all a game day needs to reach that cluster and its sandbox.
"""

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaosregistry.backends import backend_for
from chaosregistry.cluster.layout import Layout
from chaosregistry.cluster.varsfile import write_vars_file
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import (
    SettingError,
    parse_settings,
    resolve_target,
    sandbox_endpoints,
    settings_for,
)
from chaosregistry.experiment.validate import validate

ROOT = Path(__file__).resolve().parents[2]
LATENCY = ROOT / "experiments/registry-latency.yaml"
LOCAL_VARS = ROOT / "experiments/vars/local.yaml"


@pytest.fixture(autouse=True)
def no_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No sandbox from the environment or ./runs/sandbox leaks into these settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHAOSREGISTRY_SANDBOX_DIR", raising=False)
    monkeypatch.delenv("CHAOSREGISTRY_URL", raising=False)
    monkeypatch.delenv("CHAOSREGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("CHAOSREGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "ledger"))


# -- one line naming the key ------------------------------------------------------------------
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("backend", "mainframe", "backend"),
    ("registry_url", "ftp://registry.example", "registry_url"),
    ("mirror_url", "file:///var/lib/registry", "mirror_url"),
    ("registry_verify_tls", "yes", "registry_verify_tls"),
    ("registry_timeout", 0, "registry_timeout"),
    ("registry_timeout", "10", "registry_timeout"),
    ("hops", ["client-registry"], "hops"),
    ("allowed_hops", "client-registry", "allowed_hops"),
    ("allowed_certificate_targets", [1], "allowed_certificate_targets"),
    ("max_pods", 0, "max_pods"),
    ("dry_run", "no", "dry_run"),
    ("kube_timeout", -1, "kube_timeout"),
    ("network_provider", "tc", "network_provider"),
    ("node_kill_provider", "litmus", "node_kill_provider"),
    ("hop_selectors", ["app=registry"], "hop_selectors"),
    ("hop_selectors", {"client-registry": "app=registry"}, "hop_selectors.client-registry"),
    ("hop_external_targets", ["10.0.0.9"], "hop_external_targets"),
    (
        "hop_external_targets",
        {"client-registry": "10.0.0.9"},
        "hop_external_targets.client-registry",
    ),
    ("registry_nodes", ["registry-1"], "registry_nodes"),
    ("registry_nodes", {"registry-1": {"mode": "one"}}, "registry_nodes.registry-1"),
    (
        "registry_nodes",
        {"registry-1": {"selector": {"app": "registry"}, "value": "2"}},
        "registry_nodes.registry-1.value",
    ),
    ("chaos_mesh_confirm_timeout", -1, "chaos_mesh_confirm_timeout"),
]


@pytest.mark.parametrize(("key", "value", "field"), BAD_VALUES)
@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "chaosregistry"])
def test_each_bad_value_is_one_line_naming_its_key(
    key: str, value: Any, field: str, nested: bool
) -> None:
    configuration = {"chaosregistry": {key: value}} if nested else {key: value}
    with pytest.raises(SettingError) as caught:
        parse_settings(configuration)
    message = str(caught.value)
    assert message.startswith(f"configuration.{field}"), message
    assert caught.value.key == field
    assert "\n" not in message


def test_defaults() -> None:
    settings = parse_settings(None)
    assert settings.backend == "local"
    assert settings.registry.urls == {} and settings.registry.sandbox_dir is None
    assert settings.registry.timeout == 30.0 and settings.registry.verify_tls is None
    assert settings.load_origin == "registry"
    assert settings.load_dir == Path("runs/load").absolute()
    assert settings.local.hops is None and settings.local.allowed_hops is None
    kubernetes = settings.kubernetes
    assert kubernetes.max_pods == 10 and kubernetes.dry_run is False
    assert kubernetes.network_provider == "toxiproxy" and kubernetes.node_kill_provider == "api"
    assert kubernetes.chaos_mesh_confirm_timeout == 5.0 and kubernetes.registry_nodes == {}


def test_typed_fields_of_a_full_configuration(tmp_path: Path) -> None:
    ca_bundle = tmp_path / "ca.pem"
    ca_bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = parse_settings(
        {
            "backend": "kubernetes",
            "chaosregistry": {
                "registry_url": "https://registry.example:5000/",
                "mirror_url": "http://127.0.0.1:15001",
                "registry_ca_bundle": str(ca_bundle),
                "registry_timeout": 7,
                "ledger_dir": str(tmp_path / "l"),
                "hops": {"client-registry": "proxy-a"},
                "allowed_hops": ["client-registry"],
                "kubeconfig": str(tmp_path / "kc"),
                "hop_selectors": {"client-registry": {"app": "registry"}},
                "hop_external_targets": {"client-registry": ["10.0.0.9"]},
                "registry_nodes": {
                    "r1": {"selector": {"app": "registry"}, "mode": "fixed", "value": 2}
                },
                "chaos_mesh_confirm_timeout": 1,
            },
        }
    )
    assert settings.backend == "kubernetes"
    assert settings.registry.urls == {
        "registry": "https://registry.example:5000",
        "mirror": "http://127.0.0.1:15001",
    }
    assert settings.registry.ca_bundle == str(ca_bundle) and settings.registry.timeout == 7.0
    assert settings.ledger_dir == tmp_path / "l"
    assert settings.local.hops == {"client-registry": "proxy-a"}
    assert settings.local.allowed_hops == ("client-registry",)
    kubernetes = settings.kubernetes
    assert kubernetes.kubeconfig == tmp_path / "kc"
    assert kubernetes.hop_selectors == {"client-registry": {"app": "registry"}}
    assert kubernetes.hop_external_targets == {"client-registry": ("10.0.0.9",)}
    (node,) = kubernetes.registry_nodes.values()
    assert (node.selector, node.mode, node.value) == ({"app": "registry"}, "fixed", 2)
    assert resolve_target(
        {"registry_url": "https://registry.example:5000", "registry_ca_bundle": str(ca_bundle)},
        None,
    ).verify == str(ca_bundle)


# -- once per configuration -------------------------------------------------------------------
def test_a_configuration_is_parsed_once_per_content_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = settings_for({"chaosregistry": {"registry_timeout": 3, "max_pods": 2}})
    # Another mapping with the same content, keys in another order: the same settings.
    assert settings_for({"chaosregistry": {"max_pods": 2, "registry_timeout": 3}}) is first
    assert settings_for({"chaosregistry": {"max_pods": 3, "registry_timeout": 3}}) is not first
    # The environment the parse reads is part of the key.
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "elsewhere"))
    moved = settings_for({"chaosregistry": {"registry_timeout": 3, "max_pods": 2}})
    assert moved is not first and moved.ledger_dir == tmp_path / "elsewhere"


def write_endpoints(run_dir: Path, registry: str) -> Path:
    path = run_dir / "endpoints.json"
    path.write_text(
        json.dumps(
            {
                "registry": registry,
                "toxiproxy": "http://127.0.0.1:15474",
                "hops": {"client-registry": {"proxy": "client-registry", "upstream": "x:1"}},
                "replicas": [{"name": "registry-1", "url": "http://127.0.0.1:15010"}],
            }
        )
    )
    return path


def test_the_endpoints_file_is_read_once_and_again_only_when_it_changes(tmp_path: Path) -> None:
    run_dir = tmp_path / "sandbox"
    run_dir.mkdir()
    path = write_endpoints(run_dir, "http://127.0.0.1:15001")
    configuration = {"sandbox_dir": str(run_dir)}
    before = path.stat()
    for _ in range(50):
        assert resolve_target(configuration, None).url == "http://127.0.0.1:15001"
    first = sandbox_endpoints(run_dir)
    # Rewritten in place with as many bytes and the old mtime: a reader that opened the file
    # on every call would see the new port; the cached endpoints are still served.
    write_endpoints(run_dir, "http://127.0.0.1:15002")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    for _ in range(50):
        assert resolve_target(configuration, None).url == "http://127.0.0.1:15001"
    assert sandbox_endpoints(run_dir) is first
    # A changed mtime (sandbox up rewrote it) is read again, once.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert resolve_target(configuration, None).url == "http://127.0.0.1:15002"
    again = sandbox_endpoints(run_dir)
    assert again is not first and sandbox_endpoints(run_dir) is again


def test_the_cached_endpoints_are_read_only(tmp_path: Path) -> None:
    write_endpoints(tmp_path, "http://127.0.0.1:15001")
    endpoints = sandbox_endpoints(tmp_path)
    with pytest.raises(TypeError):
        endpoints["registry"] = "http://elsewhere:1"  # type: ignore[index]
    assert endpoints["hops"]["client-registry"]["proxy"] == "client-registry"


# -- validate returns the settings ------------------------------------------------------------
def test_validate_returns_the_settings_and_the_flattened_configuration() -> None:
    checked = validate(LATENCY, LOCAL_VARS)
    assert checked.settings.backend == "local" and checked.settings.registry.timeout == 10.0
    assert checked.configuration["registry_timeout"] == 10
    assert "chaosregistry" not in checked.configuration
    assert checked.experiment["title"]
    node_kill = validate(ROOT / "experiments/registry-node-kill.yaml", LOCAL_VARS)
    assert node_kill.runtime_options[:2] == ["--hypothesis-strategy", "continuously"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("max_pods: 0", "configuration.chaosregistry.max_pods must be a whole number >= 1"),
        (
            "registry_nodes: {registry-1: {mode: one}}",
            "configuration.chaosregistry.registry_nodes.registry-1: needs a selector",
        ),
        ("network_provider: tc", "configuration.chaosregistry.network_provider must be one of"),
    ],
)
def test_validate_names_the_vars_file_and_mapping_of_a_bad_setting(
    tmp_path: Path, text: str, fragment: str
) -> None:
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text(f"configuration:\n  chaosregistry:\n    {text}\n")
    with pytest.raises(ConfigError) as caught:
        validate(LATENCY, vars_file)
    assert str(caught.value).startswith(f"{vars_file}: {fragment}"), str(caught.value)


# -- the vars file of the test cluster --------------------------------------------------------
def test_the_cluster_vars_file_carries_the_kubeconfig_and_the_sandbox(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path / "cluster")
    layout.state_dir.mkdir()
    sandbox_dir = tmp_path / "cluster-sandbox"
    sandbox_dir.mkdir()
    write_endpoints(sandbox_dir, "https://127.0.0.1:26001")
    path = write_vars_file(
        layout,
        {
            "kubeconfig": str(layout.kubeconfig),
            "sandbox_dir": str(sandbox_dir),
            "cluster_registry": "http://127.0.0.1:20007",
        },
    )
    assert path == layout.vars_file
    assert "# registry_url: http://127.0.0.1:20007" in path.read_text()
    data = yaml.safe_load(path.read_text())
    assert set(data) == {"configuration"}
    # cluster up's default: the node pulls from the origin, and the vars file says so.
    assert data["configuration"]["chaosregistry"]["node_pulls"] == "origin"
    # No cluster.json anywhere: what the backend needs is in the vars file.
    assert not layout.settings_file.exists()
    for experiment in sorted((ROOT / "experiments").glob("*.yaml")):
        checked = validate(experiment, path)
        settings = checked.settings
        assert settings.backend == "kubernetes", experiment
        assert settings.kubernetes.kubeconfig == layout.kubeconfig
        assert settings.registry.sandbox_dir == sandbox_dir
        assert settings.kubernetes.registry_nodes["registry-1"].namespace == "registry"
    backend = backend_for(settings)
    assert backend.hops() == ["client-registry"]
    assert backend.nodes() == ["registry-1"]


def test_the_sandboxs_mirror_is_a_node_to_kill_on_both_backends(tmp_path: Path) -> None:
    sandbox_dir = tmp_path / "sandbox"
    sandbox_dir.mkdir()
    path = write_endpoints(sandbox_dir, "https://127.0.0.1:26001")
    endpoints = json.loads(path.read_text())
    path.write_text(json.dumps({**endpoints, "mirror_direct": "https://127.0.0.1:26020"}))
    local = backend_for(settings_for({"chaosregistry": {"sandbox_dir": str(sandbox_dir)}}))
    assert local.nodes() == ["registry-1", "mirror"]
    kubernetes = backend_for(
        settings_for(
            {
                "backend": "kubernetes",
                "chaosregistry": {
                    "sandbox_dir": str(sandbox_dir),
                    "kubeconfig": str(tmp_path / "kubeconfig"),
                },
            }
        )
    )
    for backend in (local, kubernetes):
        plan = backend.kill_node("mirror")
        assert (plan.kind, plan.target) == ("node.kill", "node:mirror"), backend.name
        # The same undo as a replica's: the watchdog restarts it and checks it answers.
        assert plan.undo == {
            "kind": "sandbox.restart-process",
            "params": {"run_dir": str(sandbox_dir), "name": "mirror"},
        }
    # A cluster whose node pulls from the origin only (cluster up's default) refuses it: the
    # kill would hurt no pull, and the fallback game day would pass having tested nothing.
    origin_only = backend_for(
        settings_for(
            {
                "backend": "kubernetes",
                "chaosregistry": {
                    "sandbox_dir": str(sandbox_dir),
                    "kubeconfig": str(tmp_path / "kubeconfig"),
                    "node_pulls": "origin",
                },
            }
        )
    )
    with pytest.raises(ConfigError) as refused:
        origin_only.kill_node("mirror")
    assert str(refused.value).startswith("configuration.node_pulls is 'origin'")
    assert "--node-pulls mirror-first" in str(refused.value)
    with pytest.raises(ConfigError, match=r"node_pulls must be one of origin, mirror-first"):
        settings_for({"backend": "kubernetes", "chaosregistry": {"node_pulls": "sideways"}})
    # Without a sandbox there is no mirror to kill: one line, nothing recorded.
    bare = backend_for(
        settings_for(
            {"backend": "kubernetes", "chaosregistry": {"kubeconfig": str(tmp_path / "k")}}
        )
    )
    with pytest.raises(ConfigError) as caught:
        bare.kill_node("mirror")
    assert str(caught.value).startswith("unknown registry node 'mirror': configuration.")
