"""What an activity needs of the sandbox comes from its declarations (experiment/needs.py): the
shipped experiments need what they needed, and an activity that refuses to run without a
sandbox cannot leave the need undeclared."""

import ast
import importlib
import inspect
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pytest

from chaosregistry import activity_modules
from chaosregistry.experiment.contracts import Returns
from chaosregistry.experiment.needs import (
    SandboxNeed,
    SandboxUnlessGiven,
    SecondSiteWhen,
    declared_needs,
    needs_of,
)
from chaosregistry.experiment.settings import parse_settings
from chaosregistry.experiment.validate import validate
from chaosregistry.gameday.runner import sandbox_needs, second_site_needs
from chaosregistry.sandbox.layout import SECOND_SITE_HOPS

REPOSITORY = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPOSITORY / "experiments"
LOCAL_VARS = EXPERIMENTS / "vars" / "local.yaml"

PROMETHEUS = "asks the sandbox's Prometheus (no prometheus_url)"
HOP = "puts its fault on a sandbox hop (no toxiproxy_url and hops)"
KILL = "kills and restarts the sandbox's registry processes"
MIRROR_LOG = "reads the sandbox mirror's access log"
CERTIFICATE = "changes the certificate the sandbox's nginx serves"
SIGNATURE = "changes what the sandbox serves for a signed image"
AUTH = "changes the sandbox's token server, signing key or credentials"
UPSTREAM = "makes the sandbox's nginx answer for the mirror's upstream"
CHANGES = "changes the sandbox's registry (its tags, its configuration)"
REDIRECT = "makes the sandbox's nginx redirect the registry's API"
QUOTA = "makes the sandbox's nginx count manifest requests"


def no_url(name: str) -> str:
    return f"targets {name!r} and there is no {name}_url"


# What each shipped experiment needs with the local vars file as shipped (the README's command),
# and with every registry, Prometheus and Toxiproxy given by URL (what is left is what only the
# sandbox can give): the reasons' words after the activity's name, and the second site's.
SHIPPED: dict[str, tuple[set[str], set[str], set[str]]] = {
    "bad-tag-rollback": (set(), set(), set()),
    "head-of-line-pulls": ({HOP, no_url("registry")}, set(), set()),
    "mirror-cache-hit-ratio": ({PROMETHEUS, no_url("mirror"), no_url("registry")}, set(), set()),
    "mirror-down-fallback": ({KILL, no_url("registry")}, {KILL}, set()),
    "mirror-hanging-fallback": ({HOP, no_url("registry")}, set(), set()),
    "mirror-upstream-throttled": (
        {UPSTREAM, no_url("mirror"), no_url("registry")},
        {UPSTREAM},
        set(),
    ),
    "mirror-upstream-throttled-rollout": (
        {UPSTREAM, MIRROR_LOG, no_url("registry")},
        {UPSTREAM, MIRROR_LOG},
        set(),
    ),
    "mirror-upstream-outage": ({HOP, no_url("mirror"), no_url("registry")}, set(), set()),
    "pull-quota-rollout": ({QUOTA, no_url("registry")}, {QUOTA}, set()),
    "pull-storm": ({MIRROR_LOG, no_url("mirror"), no_url("registry")}, {MIRROR_LOG}, set()),
    "registry-cert-expiry": ({CERTIFICATE, no_url("registry")}, {CERTIFICATE}, set()),
    "registry-changes": ({CHANGES, no_url("registry")}, {CHANGES}, set()),
    "registry-latency-slo": ({PROMETHEUS, HOP, no_url("registry")}, set(), set()),
    "registry-latency": ({HOP, no_url("registry")}, set(), set()),
    "registry-node-kill": ({KILL, no_url("registry")}, {KILL}, set()),
    "registry-outage-recovery": ({HOP}, set(), set()),
    "blast-radius-verified": ({HOP}, set(), set()),
    "registry-partition": ({HOP, no_url("registry")}, set(), set()),
    "registry-redirects": ({REDIRECT, no_url("registry")}, {REDIRECT}, set()),
    "replication-partition": (
        {HOP, no_url("dr_registry"), no_url("replication_source")},
        {no_url("dr_registry"), no_url("replication_source")},
        {"faults the sync-dr hop", "reaches 'dr_registry'", "reaches 'replication_source'"},
    ),
    "rollout-under-registry-latency": ({HOP}, set(), set()),
    "signature-tamper": ({SIGNATURE, no_url("registry")}, {SIGNATURE}, set()),
    "token-server-outage": (
        {AUTH, no_url("token_registry")},
        {AUTH, no_url("token_registry")},
        set(),
    ),
}
EVERYTHING_BY_URL = {
    "registry_url": "https://registry.example.internal",
    "mirror_url": "https://mirror.example.internal",
    "prometheus_url": "http://prometheus.example.internal:9090",
    "toxiproxy_url": "http://toxiproxy.example.internal:8474",
    "hops": {"client-registry": "registry", "client-mirror": "mirror"},
}


def words(reasons: list[str]) -> set[str]:
    """The reasons without the activity's place and name (``method[0] (name) ``)."""
    return {reason.split(") ", 1)[1] for reason in reasons}


def test_every_shipped_experiment_is_listed() -> None:
    assert sorted(SHIPPED) == sorted(path.stem for path in EXPERIMENTS.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_experiment_needs_the_sandbox_for_what_its_activities_declare(
    name: str,
) -> None:
    checked = validate(EXPERIMENTS / f"{name}.yaml", LOCAL_VARS)
    shipped, by_url, second_site = SHIPPED[name]
    configuration = checked.configuration
    assert words(sandbox_needs(checked.experiment, configuration)) == shipped
    assert words(second_site_needs(checked.experiment, configuration)) == second_site
    external = {**configuration, **EVERYTHING_BY_URL}
    assert words(sandbox_needs(checked.experiment, external)) == by_url


def test_a_fault_proxy_gives_the_network_faults_their_hop_without_the_sandbox() -> None:
    # What `chaosregistry init` writes: registry_url and fault_proxy, no toxiproxy_url or hops.
    checked = validate(EXPERIMENTS / "registry-partition.yaml", LOCAL_VARS)
    own = {
        **checked.configuration,
        "registry_url": "https://registry.example.internal",
        "fault_proxy": {"listen": "127.0.0.1:26369", "api": "127.0.0.1:26368", "dir": "proxy"},
    }
    assert HOP in words(sandbox_needs(checked.experiment, checked.configuration))
    assert sandbox_needs(checked.experiment, own) == []


def test_a_hop_only_the_second_site_has_is_declared_from_the_sandbox_layout() -> None:
    # The network actions' hop argument names the second site's hops from sandbox/layout.py.
    network = importlib.import_module("chaosregistry.actions.network")
    settings = parse_settings({})
    for hop in SECOND_SITE_HOPS:
        needs = needs_of(network.__name__, "partition", {"hop": hop}, settings)
        assert needs.second_site == (f"faults the {hop} hop",)
    assert needs_of(network.__name__, "partition", {}, settings).second_site == ()
    assert "the sandbox's second site when hop is sync-dr" in declared_needs(
        network, network.partition
    )


def test_a_need_on_the_activity_itself_and_on_an_argument_not_given() -> None:
    settings = parse_settings({"registry_url": "https://registry.example.internal"})
    events = needs_of("chaosregistry.probes.replication", "push_events", {}, settings)
    assert events.sandbox == ("reads the sandbox's event receiver",)
    metrics = needs_of("chaosregistry.probes.registry", "registry_metrics", {}, settings)
    assert metrics.sandbox == ("reads a sandbox replica's metrics (no metrics_url)",)
    given = {"metrics_url": "http://127.0.0.1:5001/metrics"}
    assert (
        needs_of("chaosregistry.probes.registry", "registry_metrics", given, settings).sandbox == ()
    )


def test_a_module_declaration_that_is_not_a_sandbox_need_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chaosregistry.probes import hygiene

    monkeypatch.setattr(hygiene, "SANDBOX_NEED", "reads the sandbox's storage", raising=False)
    with pytest.raises(TypeError, match="SANDBOX_NEED must be a SandboxNeed"):
        needs_of(hygiene.__name__, "layer_reuse", {}, parse_settings({}))


# -- an activity that refuses to run without a sandbox declares it --------------------------------
def _refuses_without_a_sandbox(node: ast.AST) -> bool:
    """``<x>.sandbox_dir is None``, or an error text asking for configuration 'sandbox_dir'."""
    for found in ast.walk(node):
        if (
            isinstance(found, ast.Compare)
            and isinstance(found.left, ast.Attribute)
            and found.left.attr == "sandbox_dir"
            and any(isinstance(c, ast.Constant) and c.value is None for c in found.comparators)
        ):
            return True
        if (
            isinstance(found, ast.Constant)
            and isinstance(found.value, str)
            and "'sandbox_dir'" in found.value
        ):
            return True
    return False


def activities_that_refuse_without_a_sandbox(
    source: str, activities: list[str], refusing: frozenset[str] = frozenset()
) -> list[str]:
    """The activities of a module's ``source`` whose code, or a function of the module it calls
    (however deep), refuses to run without a sandbox, or calls one of ``refusing``."""
    functions = {
        node.name: node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }

    def reaches(name: str) -> bool:
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current in seen or current not in functions:
                continue
            seen.add(current)
            if _refuses_without_a_sandbox(functions[current]):
                return True
            called = [
                call.func.id
                for call in ast.walk(functions[current])
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            ]
            if refusing.intersection(called):
                return True
            todo += called
        return False

    return [name for name in activities if reaches(name)]


def declares_a_sandbox_need(module: ModuleType, name: str) -> bool:
    """With nothing configured and no argument given, the game day knows it needs a sandbox."""
    return bool(needs_of(module.__name__, name, {}, parse_settings({})).sandbox)


def test_the_finder_sees_an_undeclared_sandbox_read_in_a_helper() -> None:
    source = textwrap.dedent(
        """
        def read_it(configuration=None):
            return _endpoints(configuration)

        def _endpoints(configuration):
            settings = settings_for(configuration).registry
            if settings.sandbox_dir is None:
                raise ConfigError("read_it reads the sandbox: set 'sandbox_dir'")

        def measure(configuration=None):
            return 1
        """
    )
    assert activities_that_refuse_without_a_sandbox(source, ["read_it", "measure"]) == ["read_it"]


def backend_refusing_calls() -> frozenset[str]:
    """The calls that refuse without a sandbox outside the activity modules: ``backend_for``,
    as long as the local backend it builds needs one (or a Toxiproxy and its hops)."""
    from chaosregistry.backends.local import LocalBackend

    source = textwrap.dedent(inspect.getsource(LocalBackend.from_settings))
    return (
        frozenset({"backend_for"})
        if _refuses_without_a_sandbox(ast.parse(source))
        else (frozenset())
    )


def test_every_activity_that_refuses_to_run_without_a_sandbox_declares_the_need() -> None:
    refusing, undeclared = [], []
    calls = backend_refusing_calls()
    assert calls == {"backend_for"}, "the local backend no longer needs a sandbox: revisit this"
    for module_name in activity_modules():
        module = importlib.import_module(module_name)
        for name in activities_that_refuse_without_a_sandbox(
            inspect.getsource(module), list(module.__all__), calls
        ):
            refusing.append(f"{module_name}.{name}")
            if not declares_a_sandbox_need(module, name):
                undeclared.append(f"{module_name}.{name}")
    # The finder sees the ones we know of (so an empty result below means something).
    assert {
        "chaosregistry.probes.mirror.upstream_fetches",
        "chaosregistry.probes.registry.registry_metrics",
        "chaosregistry.probes.replication.push_events",
        "chaosregistry.probes.prometheus.prometheus_query",
        "chaosregistry.actions.network.add_latency",
        "chaosregistry.actions.certificate.serve_bad_certificate",
    } <= set(refusing)
    assert undeclared == [], (
        "these refuse to run without a sandbox: declare it (experiment/needs.py: SANDBOX_NEED, "
        "a SandboxNeed on the return annotation, or SandboxUnlessGiven on an argument)"
    )


def test_an_undeclared_activity_is_caught_and_a_declared_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A module that refuses without a sandbox is seen as undeclared until it declares.
    from chaosregistry.probes import mirror

    monkeypatch.delattr(mirror, "SANDBOX_NEED")
    assert not declares_a_sandbox_need(mirror, "upstream_fetches")
    monkeypatch.setattr(mirror, "SANDBOX_NEED", SandboxNeed("reads it"), raising=False)
    assert declares_a_sandbox_need(mirror, "upstream_fetches")


def test_declarations_on_the_signature_are_read_where_they_are_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def probe(
        url: Annotated[str, SandboxUnlessGiven("reads the sandbox's thing")] = "",
        hop: Annotated[str, SecondSiteWhen(("far",), "cuts {value}")] = "near",
        configuration: Any = None,
    ) -> Annotated[dict, Returns("ok"), SandboxNeed("pokes the sandbox")]:  # type: ignore[type-arg]
        return {}

    module = ModuleType("fake_activities")
    module.probe = probe  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_activities", module)
    needs = needs_of("fake_activities", "probe", {"hop": "far"}, parse_settings({}))
    assert needs.sandbox == (
        "pokes the sandbox",
        "reads the sandbox's thing (no url)",
    )
    assert needs.second_site == ("cuts far",)
