"""What an activity needs of the embedded sandbox, declared once, on the activity or its module.

On the local backend ``chaosregistry gameday`` starts the sandbox only for an experiment that
needs it, and its second site only for one that reaches it. What decides it is stated where the
activity is written, and read here (by the game day and by ``discover``):

* ``SANDBOX_NEED = SandboxNeed(why, unless_configured=(key, ...))`` in an activity module: its
  activities act on the sandbox itself (``why``, words that follow the activity's name), unless
  the configuration gives every key of ``unless_configured`` (a Toxiproxy of its own and its
  hops; a Prometheus). A ``SandboxNeed`` on an activity's return annotation says the same of
  that activity alone.
* ``SandboxUnlessGiven(why)`` on an argument: left at its default (not given), the activity
  reads the sandbox instead (``registry_metrics`` without ``metrics_url``).
* ``SecondSiteWhen(values, why)`` on an argument: given one of ``values`` (a hop only the
  second site has), the activity needs the sandbox's second site.
* ``RegistryTarget`` (:mod:`chaosregistry.experiment.contracts`) on an argument: a registry
  reached by name, which is the sandbox's unless the configuration gives ``<name>_url``.
* ``TargetWhen(value, setting)`` on an argument: given ``value``, the activity also reaches
  the registry the setting names (a cold load pushes to ``load_origin``).

Nothing else keeps a list of which activity needs what: ``tests/unit/test_needs_unit.py`` fails
on an activity that refuses to run without a sandbox and declares no need.
"""

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from chaosregistry.experiment.contracts import RegistryTarget, contract_of
from chaosregistry.experiment.settings import Settings

__all__ = [
    "ActivityNeeds",
    "SandboxNeed",
    "SandboxUnlessGiven",
    "SecondSiteWhen",
    "TargetWhen",
    "declared_needs",
    "needs_of",
]

# The name of an activity module's declaration.
MODULE_NEED = "SANDBOX_NEED"


@dataclass(frozen=True)
class SandboxNeed:
    """Acts on the embedded sandbox itself (``why``), unless the configuration gives every key
    of ``unless_configured``."""

    why: str
    unless_configured: tuple[str, ...] = ()

    def reason(self, settings: Settings) -> str | None:
        """Why the sandbox is needed under ``settings``; None when the configuration gives
        what points the activity elsewhere."""
        if not self.unless_configured:
            return self.why
        if settings.configures(*self.unless_configured):
            return None
        return f"{self.why} (no {' and '.join(self.unless_configured)})"

    def describe(self) -> str:
        if not self.unless_configured:
            return f"the sandbox: {self.why}"
        unless = " and ".join(self.unless_configured)
        return f"the sandbox: {self.why} (unless the configuration sets {unless})"


@dataclass(frozen=True)
class SandboxUnlessGiven:
    """On an argument: not given, the activity reads the sandbox instead (``why``)."""

    why: str


@dataclass(frozen=True)
class SecondSiteWhen:
    """On an argument: any of ``values`` needs the sandbox's second site; ``why`` may name the
    value as ``{value}``."""

    values: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class TargetWhen:
    """On an argument: given ``value``, the activity also reaches the registry named by the
    setting ``setting`` (an attribute of ``Settings`` holding a registry's name)."""

    value: str
    setting: str


@dataclass(frozen=True)
class ActivityNeeds:
    """What one call of an activity needs: why it needs the sandbox (empty: it does not by
    itself), the registries it reaches by name, and why it needs the second site."""

    sandbox: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    second_site: tuple[str, ...] = ()


def _module_need(module: Any) -> SandboxNeed | None:
    need = getattr(module, MODULE_NEED, None)
    if need is not None and not isinstance(need, SandboxNeed):
        raise TypeError(f"{module.__name__}.{MODULE_NEED} must be a SandboxNeed, not {need!r}")
    return need


def _own_need(function: Callable[..., Any]) -> SandboxNeed | None:
    annotation = inspect.signature(function).return_annotation
    if get_origin(annotation) is Annotated:
        for extra in get_args(annotation)[1:]:
            if isinstance(extra, SandboxNeed):
                return extra
    return None


def _arguments(function: Callable[..., Any]) -> Iterator[tuple[inspect.Parameter, list[Any]]]:
    """Each parameter with the marks and domains its annotation states."""
    for parameter in inspect.signature(function).parameters.values():
        contract = contract_of(parameter.annotation)
        yield parameter, [*contract.domains, *contract.marks]


def declared_needs(module: Any, function: Callable[..., Any]) -> list[str]:
    """What ``function`` (an activity of ``module``) declares it may need, in words (for
    ``discover``)."""
    found = []
    need = _own_need(function) or _module_need(module)
    if need is not None:
        found.append(need.describe())
    for parameter, facts in _arguments(function):
        for fact in facts:
            if isinstance(fact, SandboxUnlessGiven):
                found.append(f"the sandbox without {parameter.name}: {fact.why}")
            elif isinstance(fact, SecondSiteWhen):
                values = " or ".join(fact.values)
                found.append(f"the sandbox's second site when {parameter.name} is {values}")
            elif isinstance(fact, TargetWhen):
                found.append(
                    f"the registry configuration {fact.setting} names when {parameter.name} is "
                    f"{fact.value}"
                )
            elif isinstance(fact, RegistryTarget):
                found.append(
                    f"the sandbox when {parameter.name} names a registry the configuration"
                    " gives no <name>_url for"
                )
    return found


def needs_of(
    module_name: str, func_name: str, arguments: Mapping[str, Any], settings: Settings
) -> ActivityNeeds:
    """What a call of ``module_name.func_name`` with ``arguments`` (``${...}`` already filled)
    needs of the sandbox under ``settings``, read from its declarations. An activity that
    cannot be found (validation has refused it) reaches the default registry, by name."""
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, func_name)
        facts = list(_arguments(function))
    except (ImportError, AttributeError, TypeError, ValueError):
        return ActivityNeeds(targets=("registry",))
    sandbox: list[str] = []
    need = _own_need(function) or _module_need(module)
    why = need.reason(settings) if need is not None else None
    if why is not None:
        sandbox.append(why)
    targets: list[Any] = []
    also: list[Any] = []  # reached because of another argument's value, after the targets
    second_site: list[str] = []
    for parameter, marks in facts:
        value = arguments.get(parameter.name, parameter.default)
        for mark in marks:
            if isinstance(mark, SandboxUnlessGiven) and not arguments.get(parameter.name):
                sandbox.append(f"{mark.why} (no {parameter.name})")
            elif isinstance(mark, SecondSiteWhen) and value in mark.values:
                second_site.append(mark.why.format(value=value))
            elif isinstance(mark, TargetWhen) and value == mark.value:
                also.append(getattr(settings, mark.setting))
            elif isinstance(mark, RegistryTarget):
                targets.append(value)
    named = tuple(str(t) for t in [*targets, *also] if isinstance(t, str) and t and "://" not in t)
    return ActivityNeeds(tuple(sandbox), named, tuple(second_site))
