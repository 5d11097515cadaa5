"""The domain of every activity argument, declared once, on the activity's signature.

An activity annotates each argument with ``typing.Annotated``: the base type first (what Chaos
Toolkit's discovery reports), then its domain; a probe declares the keys of its result on the
return annotation, so a tolerance's ``target`` can be checked before anything runs::

    def partition(
        hop: Annotated[str, OneOf(NETWORK_HOPS)] = "client-registry",
        duration: Annotated[float, FAULT_DURATION] = 30,
        mode: Literal["blackhole", "refuse"] = "blackhole",
        configuration: Configuration = None,
        secrets: Secrets = None,
    ) -> Result:

    def pull_latency(...) -> Annotated[Result, Returns("p50", "p95", "success_ratio", ...)]:

One reader serves every use of that declaration: ``chaosregistry validate`` (before anything
runs, ``${key}`` references substituted from the configuration), the ``@activity`` decorator
(every call, so a value that only arrives at run time is checked too) and ``discover`` (the
base type's portable name and the domain in words). An argument's own default is always
accepted: it is the activity's "not set" (``""``, ``None``).

Standard library only: the contracts are read by every activity call and by ``validate``; a
validation library would cost more than the checks it replaces (pydantic with ``BaseModel``
took about 200 ms to import here, several times a bare interpreter's start; this module about
25 ms). Neither is imported by ``chaosregistry --help``.
"""

import inspect
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from chaosregistry.experiment.kinds import ResultKind
from chaosregistry.redaction import url_credentials

__all__ = [
    "AT_LEAST_ONE",
    "FAULT_DURATION",
    "IMAGE",
    "KUBE_NAME",
    "MAX_DURATION",
    "NON_NEGATIVE",
    "PLATFORM",
    "POSITIVE",
    "PROMQL",
    "REPOSITORY",
    "RULES_FILE",
    "TAG_PATTERN",
    "Contract",
    "Count",
    "Domain",
    "Each",
    "ExistingFile",
    "FaultSeconds",
    "Image",
    "NoneOf",
    "OneOf",
    "Parsed",
    "PlatformName",
    "Range",
    "RegistryTarget",
    "ResultKind",
    "Returns",
    "Seconds",
    "Target",
    "Url",
    "argument_problem",
    "contract_of",
    "declared_returns",
    "is_default",
    "result_keys",
    "result_kind",
    "type_name",
]


class Domain:
    """One constraint on a value whose base type is already right."""

    def problem(self, value: Any) -> str | None:  # pragma: no cover - every domain overrides
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - every domain overrides
        raise NotImplementedError


@dataclass(frozen=True)
class OneOf(Domain):
    """An enumerated word (fault kinds, modes, targets, hops...) or value (HTTP statuses)."""

    words: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        if value in self.words and not isinstance(value, bool):
            return None
        return f"must be one of {', '.join(map(str, self.words))}, got {value!r:.80}"

    def describe(self) -> str:
        return f"one of {', '.join(map(str, self.words))}"


@dataclass(frozen=True)
class NoneOf(Domain):
    """Words refused for a reason (a protected namespace)."""

    words: tuple[str, ...]
    why: str

    def problem(self, value: Any) -> str | None:
        return f"{value!r} is {self.why}" if value in self.words else None

    def describe(self) -> str:
        return f"not {', '.join(self.words)} ({self.why})"


@dataclass(frozen=True)
class Range(Domain):
    """A number between bounds; ``above``/``below`` make them exclusive (``> 0``, ``< 1``)."""

    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    unit: str = ""
    below: bool = False

    def _bounds(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.above else '>='} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"{'<' if self.below else '<='} {self.maximum:g}")
        unit = f" {self.unit}" if self.unit else ""
        return " and ".join(parts) + unit

    def problem(self, value: Any, what: str = "a number") -> str | None:
        """Why ``value`` is out of range; ``what`` names the base type for a value that is
        not a number at all ("a whole number")."""
        unit = f" {self.unit}" if self.unit else ""
        number = not isinstance(value, bool) and isinstance(value, int | float)
        got = f"{value!r:.80}" if number else f"{type(value).__name__} {value!r:.80}"
        if number and value != value:  # NaN is in no range
            return f"must be {what} {self._bounds()}, got {got}"
        low = self.minimum is not None and (
            not number or value < self.minimum or (self.above and value == self.minimum)
        )
        if low and self.minimum == 0 and self.above:
            of = f" of {self.unit}" if self.unit else ""
            return f"must be a positive number{of}, got {got}"
        if low:
            kind = "" if number else f"{what} "
            return f"must be {kind}{'>' if self.above else '>='} {self.minimum:g}{unit}, got {got}"
        if not number:
            return f"must be {what}, got {got}"
        if self.maximum is not None and (
            value > self.maximum or (self.below and value == self.maximum)
        ):
            limit = "below" if self.below else "at most"
            return f"must be {limit} {self.maximum:g}{unit} (the limit), got {got}"
        return None

    def describe(self) -> str:
        return self._bounds()


@dataclass(frozen=True)
class ExistingFile(Domain):
    """The path of a file that must exist (a key, a CA bundle, a rules file)."""

    what: str

    def problem(self, value: Any) -> str | None:
        if Path(str(value)).expanduser().is_file():
            return None
        return f"cannot read the {self.what} file {value}: no such file"

    def describe(self) -> str:
        return f"the path of an existing {self.what} file"


@dataclass(frozen=True)
class Url(Domain):
    """A URL with one of ``schemes``, a host, and no credentials in it."""

    schemes: tuple[str, ...] = ("http", "https")

    def problem(self, value: Any) -> str | None:
        # First, so no message below repeats a URL that carries a password.
        if url_credentials(str(value)):
            return "must not carry credentials (user:password@): give them as secrets"
        try:
            parts = urlsplit(str(value))
            host = parts.hostname
        except ValueError as exc:
            return f"is not a URL ({exc}): {value!r}"
        if parts.scheme not in self.schemes or not host:
            return f"must be a {' or '.join(self.schemes)} URL with a host, got {value!r}"
        return None

    def describe(self) -> str:
        return f"a {' or '.join(self.schemes)} URL without credentials"


_REGISTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True)
class RegistryTarget(Domain):
    """A configured registry's name (``registry``, ``mirror``, ``<name>`` of ``<name>_url``),
    or an http(s) URL."""

    def problem(self, value: Any) -> str | None:
        if "://" in str(value):
            return Url().problem(value)
        if _REGISTRY_NAME.match(str(value)):
            return None
        return f"must name a registry (registry, mirror, ...) or be a URL, got {value!r}"

    def describe(self) -> str:
        return "a configured registry's name (registry, mirror, ...) or an http(s) URL"


@dataclass(frozen=True)
class Parsed(Domain):
    """Whatever ``check`` accepts: it returns None, or why not (a parser raising ConfigError
    is wrapped by :meth:`raising`)."""

    check: Callable[[Any], str | None]
    what: str

    @classmethod
    def raising(cls, parse: Callable[[Any], object], what: str) -> "Parsed":
        def check(value: Any) -> str | None:
            from chaosregistry.errors import ConfigError

            try:
                parse(value)
            except ConfigError as exc:
                return str(exc).strip()
            return None

        return cls(check, what)

    def problem(self, value: Any) -> str | None:
        return self.check(value)

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Each(Domain):
    """Every item of a list is in ``domain``."""

    domain: Domain

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, list | tuple):
            return None
        for index, item in enumerate(value):
            problem = self.domain.problem(item)
            if problem is not None:
                return f"[{index}] {problem}"
        return None

    def describe(self) -> str:
        return f"each {self.domain.describe()}"


@dataclass(frozen=True)
class Returns:
    """The top-level keys of a probe's result (on its return annotation), for tolerances'
    ``target``: ``Returns("ok seconds error", kind=ResultKind.PULL)``, names apart by spaces;
    ``kind`` says which shape of result it is (:class:`ResultKind`)."""

    keys: tuple[str, ...]
    kind: ResultKind

    def __init__(self, *names: str, kind: ResultKind = ResultKind.OTHER) -> None:
        object.__setattr__(self, "keys", tuple(key for name in names for key in name.split()))
        object.__setattr__(self, "kind", kind)


POSITIVE = Range(0, above=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
# A guard against typos such as 6000 meaning 60: an hour is longer than any game-day fault.
MAX_DURATION = 3600.0
# How long a fault (or a load) lasts: every one has a duration, at most MAX_DURATION.
FAULT_DURATION = Range(0, MAX_DURATION, above=True, unit="seconds")


# Parsers of the OCI and PromQL modules, imported when a value is checked: this module is
# imported by every activity and by ``validate``, and ``chaosregistry.oci`` brings httpx.
def _image(value: Any) -> str | None:
    from chaosregistry.oci.reference import ImageReference

    return Parsed.raising(ImageReference.parse, "").check(value)


def _platform(value: Any) -> str | None:
    from chaosregistry.oci.reference import Platform

    return Parsed.raising(Platform.parse, "").check(value)


def _repository(value: Any) -> str | None:
    from chaosregistry.oci.reference import repository_name

    return Parsed.raising(lambda text: repository_name(text, ""), "").check(value)


def _tag_pattern(value: Any) -> str | None:
    from chaosregistry.oci.reference import tag_pattern

    return Parsed.raising(lambda text: tag_pattern(text, ""), "").check(value)


def _promql(value: Any) -> str | None:
    from chaosregistry.observability.promql import check_expression

    return check_expression(value)


def _rules_file(value: Any) -> str | None:
    from chaosregistry.observability.promql import alert_names

    return Parsed.raising(lambda text: alert_names(Path(text)), "").check(value)


_KUBE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z")


def _kube_name(value: Any) -> str | None:
    if _KUBE_NAME.match(str(value)):
        return None
    return f"must be a Kubernetes object name (lower-case letters, digits, - and .), got {value!r}"


KUBE_NAME = Parsed(_kube_name, "a Kubernetes object name")
IMAGE = Parsed(_image, "an image reference, repository:tag or repository@sha256:...")
PLATFORM = Parsed(_platform, "a platform, os/arch[/variant]")
REPOSITORY = Parsed(_repository, "a repository name")
TAG_PATTERN = Parsed(_tag_pattern, "a regular expression")
PROMQL = Parsed(_promql, "a PromQL expression (checked with promtool)")
RULES_FILE = Parsed(_rules_file, "a Prometheus rules file (checked with promtool)")

# The declarations most activities share.
FaultSeconds = Annotated[float, FAULT_DURATION]
Seconds = Annotated[float, POSITIVE]
Count = Annotated[int, AT_LEAST_ONE]
Target = Annotated[str, RegistryTarget()]
Image = Annotated[str, IMAGE]
PlatformName = Annotated[str, PLATFORM]


# -- reading a declaration ----------------------------------------------------------------------
@dataclass(frozen=True)
class Contract:
    """One argument's declaration: its base type, whether None is allowed, its domains, and
    the other facts its annotation states (``marks``: what the argument makes the activity
    need, :mod:`chaosregistry.experiment.needs`)."""

    base: Any
    optional: bool
    domains: tuple[Domain, ...]
    marks: tuple[Any, ...] = ()

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is outside the declaration (None when it is inside)."""
        if value is None and self.optional:
            return None
        problem = _type_problem(value, self.base)
        if problem is not None:
            # A declared range or enumeration says what was wanted better than the type alone
            # ("a positive number of seconds"), unless the value is a word YAML took for a
            # boolean.
            if isinstance(value, bool) and self.base is str:
                return problem
            for domain in self.domains:
                if isinstance(domain, Range):
                    words = _TYPE_WORDS.get(self.base, "a number")
                    return domain.problem(value, words) or problem  # 2.5: in range, not whole
                if isinstance(domain, OneOf):
                    return domain.problem(value) or problem
            return problem
        for domain in self.domains:
            problem = domain.problem(value)
            if problem is not None:
                return problem
        return None

    def describe(self) -> str:
        return "; ".join(domain.describe() for domain in self.domains)


def contract_of(annotation: Any) -> Contract:
    """The declaration an annotation makes (``Annotated``, ``Literal``, ``X | None``)."""
    domains: list[Domain] = []
    marks: list[Any] = []
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extras = get_args(annotation)
            domains += [extra for extra in extras if isinstance(extra, Domain)]
            marks += [extra for extra in extras if not isinstance(extra, Domain)]
        elif origin is Literal:
            words = get_args(annotation)
            domains.append(OneOf(tuple(str(word) for word in words)))
            annotation = type(words[0])
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            optional = optional or len(members) < len(get_args(annotation))
            if len(members) != 1:
                return Contract(Any, optional, tuple(domains), tuple(marks))
            annotation = members[0]
        else:
            return Contract(annotation, optional, tuple(domains), tuple(marks))


def declared_returns(function: Callable[..., Any]) -> Returns | None:
    """An activity's ``Returns`` (on its return annotation), or None."""
    annotation = inspect.signature(function).return_annotation
    if get_origin(annotation) is Annotated:
        for extra in get_args(annotation)[1:]:
            if isinstance(extra, Returns):
                return extra
    return None


def result_keys(function: Callable[..., Any]) -> tuple[str, ...] | None:
    """The result keys an activity declares (``Returns`` on its return annotation), or None."""
    declared = declared_returns(function)
    return None if declared is None else declared.keys


def result_kind(function: Callable[..., Any]) -> ResultKind:
    """The kind of result an activity declares (``Returns(..., kind=...)``); OTHER when none."""
    declared = declared_returns(function)
    return ResultKind.OTHER if declared is None else declared.kind


_PORTABLE = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "list",
    tuple: "list",
    dict: "mapping",
}


def type_name(annotation: Any) -> str:
    """Chaos Toolkit's portable name of the declared base type (``string``, ``integer``...):
    its discovery calls ``Annotated``/``Literal``/``X | None`` "object"."""
    base = contract_of(annotation).base
    return _PORTABLE.get(get_origin(base) or base, "object")


def _type_problem(value: Any, base: Any) -> str | None:
    origin = get_origin(base) or base
    expected: tuple[type, ...]
    if origin is bool:
        expected = (bool,)
    elif origin is int:
        expected = (int,)
    elif origin is float:
        expected = (int, float)
    elif origin is str:
        expected = (str,)
    elif origin is list:
        expected = (list,)
    elif origin is dict:
        expected = (dict,)
    else:
        return None
    if isinstance(value, bool) and origin is str:
        # YAML 1.1 reads unquoted on/off/yes/no/true/false as booleans.
        return (
            f"must be text, got the boolean {value!r} (YAML reads unquoted on/off/yes/no as "
            "booleans: quote the word)"
        )
    what = _TYPE_WORDS[origin]
    if origin is list and get_args(base) == (str,):
        what = "a list of names"
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            return f"must be {what}, got {value!r:.80}"
    if isinstance(value, bool) and origin is not bool:
        return f"must be {what}, got the boolean {value!r}"
    if not isinstance(value, expected):
        return f"must be {what}, got {type(value).__name__} {value!r:.80}"
    return None


_TYPE_WORDS = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "a mapping",
}


def is_default(parameter: inspect.Parameter, value: Any) -> bool:
    """``value`` is the parameter's own default (an activity's "not set"): equal, and of the
    same kind (``0.0`` for ``0``, never ``False`` for ``0``)."""
    default = parameter.default
    if default is inspect.Parameter.empty:
        return False
    if default is None or isinstance(default, bool) or isinstance(value, bool):
        return value is default
    if isinstance(default, int | float):
        return isinstance(value, int | float) and value == default
    return type(value) is type(default) and value == default


def argument_problem(parameter: inspect.Parameter, value: Any) -> str | None:
    """Why ``value`` is refused for ``parameter`` (None when accepted)."""
    if is_default(parameter, value):
        return None
    return contract_of(parameter.annotation).problem(value)
