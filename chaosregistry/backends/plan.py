"""What a backend is and what it hands back: the :class:`FaultPlan` of one fault.

Its own module so that the backends can import it while ``chaosregistry.backends`` picks
among them (an import of the package from a backend would make a cycle).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# The backend names are part of the settings (configuration.backend is parsed there).
from chaosregistry.experiment.settings import BACKENDS

__all__ = [
    "AUTH_KINDS",
    "BACKENDS",
    "CERTIFICATE_KINDS",
    "CONFIRMED",
    "MIRROR_UPSTREAM_TARGET",
    "QUOTA_TARGET",
    "REDIRECT_TARGET",
    "REFERRERS_TARGET",
    "UNCONFIRMED",
    "Backend",
    "FaultPlan",
    "confirmed",
]

# What a certificate fault makes a TLS server serve: a certificate past its not_after, one whose
# SANs name another host, or one signed by a CA the clients do not trust.
CERTIFICATE_KINDS = ("expired", "wrong-host", "untrusted")
# The referrers fault's target: the registry's referrers API (one per backend).
REFERRERS_TARGET = "referrers:registry"
# The mirror-upstream fault's target: what the pull-through mirror's remote answers.
MIRROR_UPSTREAM_TARGET = "upstream:mirror"
# The quota fault's target: the registry's manifest requests, counted per client address.
QUOTA_TARGET = "quota:registry"
# The redirect fault's target: the registry's API, answered by a redirect to a new host.
REDIRECT_TARGET = "redirect:registry"
# Auth faults: the token server cut off or slow, the registry trusting another token key, the
# registry's credentials changed.
AUTH_KINDS = ("token-server", "token-key", "credentials")
# How the token-server fault cuts the token path: refused, or every token fetch delayed.
TOKEN_SERVER_MODES = ("down", "slow")

# An apply step's word on its own fault, stored under ``injected`` in the ledger entry's
# ``applied``: ``confirmed`` once it saw the fault in place (``confirmed_by`` says what it saw),
# ``unconfirmed`` when it could not tell (a Chaos Mesh controller that never reported). A dry
# run records ``dry_run: true`` and applies nothing. Only ``confirmed`` counts as a fault in
# place (``faults.evidence``).
CONFIRMED = "confirmed"
UNCONFIRMED = "unconfirmed"


def confirmed(how: str) -> dict[str, str]:
    """The keys an apply step adds to what it returns once it has seen its fault in place;
    ``how`` is one line naming what it saw (a toxic listed, a process gone, a fingerprint)."""
    return {"injected": CONFIRMED, "confirmed_by": how}


@dataclass(frozen=True)
class FaultPlan:
    kind: str  # e.g. "network.latency"
    target: str  # e.g. "hop:client-registry"
    parameters: dict[str, Any]
    # Applies the fault, checks it is in place and returns what it applied, with
    # ``confirmed(...)``'s keys once checked.
    apply: Callable[[], Mapping[str, Any]]
    undo: dict[str, Any]
    # Seconds after which the fault ends by itself when that is sooner than the duration (a
    # killed node restarting after N seconds); None means "at the duration".
    ends_after: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def hops(self) -> list[str]: ...

    def network_fault(self, kind: str, hop: str, parameters: dict[str, Any]) -> FaultPlan: ...

    def kill_node(self, node: str) -> FaultPlan: ...

    def nodes(self) -> list[str]: ...

    def certificate_fault(self, kind: str, target: str) -> FaultPlan: ...

    def auth_fault(self, kind: str, parameters: dict[str, Any]) -> FaultPlan: ...

    def signature_fault(self, kind: str, image: str, source: str = "") -> FaultPlan: ...

    def referrers_fault(self, status: int) -> FaultPlan: ...

    def upstream_fault(self, status: int, retry_after: int) -> FaultPlan: ...

    def quota_fault(self, requests: int, window: int) -> FaultPlan: ...

    def redirect_fault(self, status: int) -> FaultPlan: ...
