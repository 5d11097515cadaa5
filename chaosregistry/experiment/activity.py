"""What every activity shares: its arguments checked against their declared domains
(:mod:`chaosregistry.experiment.contracts`), and our errors turned into Chaos Toolkit's
``ActivityFailed``."""

import functools
import inspect
from collections.abc import Callable
from typing import Any, Dict, ParamSpec, TypeVar  # noqa: UP035

from chaoslib.exceptions import ActivityFailed

from chaosregistry.errors import ChaosRegistryError, ConfigError
from chaosregistry.experiment.contracts import argument_problem

P = ParamSpec("P")
R = TypeVar("R")


# Experiments declare one mapping, ``chaosregistry``, for every backend-specific setting, so a
# vars file for a new backend can set keys the experiment never heard of (Chaos Toolkit only lets
# vars override configuration keys an experiment declares).
SETTINGS_KEY = "chaosregistry"


def flatten_configuration(configuration: Any) -> Any:
    """Lift the ``chaosregistry`` mapping's keys to the top level; explicit top-level keys win."""
    if not isinstance(configuration, dict):
        return configuration
    nested = configuration.get(SETTINGS_KEY)
    if nested is None:
        return configuration
    if not isinstance(nested, dict):
        raise ConfigError(f"configuration.{SETTINGS_KEY} must be a mapping of settings")
    merged = {**nested, **configuration}
    del merged[SETTINGS_KEY]
    return merged


# Not arguments an experiment gives: Chaos Toolkit passes them.
PASSED_BY_CHAOS_TOOLKIT = ("configuration", "secrets")


def activity(func: Callable[P, R]) -> Callable[P, R]:
    """Raise ``ActivityFailed`` with one line for our errors; keep the signature for discovery.

    Every argument given is checked against the domain its annotation declares (the same
    declaration ``validate`` reads), so a value that only arrives at run time (``${key}`` from
    the environment) is refused before the activity does anything. Also flattens
    ``configuration`` (see ``flatten_configuration``) before the activity sees it.
    """
    signature = inspect.signature(func)

    def check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            given = signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            return  # the call itself fails below, with Python's own words
        for name, value in given.items():
            if name in PASSED_BY_CHAOS_TOOLKIT:
                continue
            problem = argument_problem(signature.parameters[name], value)
            if problem is not None:
                raise ActivityFailed(f"{func.__name__}: {name} {problem}")

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        check_arguments(args, kwargs)
        try:
            if "configuration" in kwargs:
                kwargs["configuration"] = flatten_configuration(kwargs["configuration"])
            return func(*args, **kwargs)
        except ChaosRegistryError as exc:
            raise ActivityFailed(f"{func.__name__}: {exc}") from None

    return wrapper


def require_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def require_positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# The types activities annotate with. typing.Dict on purpose: Chaos Toolkit's discovery
# reports it as "mapping", where it would call dict[str, Any] an "object".
Configuration = Dict[str, Any]  # noqa: UP006
Secrets = Dict[str, Any]  # noqa: UP006
Result = Dict[str, Any]  # noqa: UP006
