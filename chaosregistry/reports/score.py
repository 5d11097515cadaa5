"""The resilience score of a run: weighted hypothesis probes that held, minus a recovery penalty.

::

    score = max(0, 100 × H / W − P)

    W  the summed weight of every probe of the steady-state hypothesis (weight 1 unless the
       experiment sets one: extensions: [{name: chaosregistry-report, weights: {probe: 2}}])
    H  the summed weight of the probes that held: within tolerance before the method, after
       it, and in every check run during it (steady_states.during)
    P  the recovery penalty in points: min(20, max(0, T − 5)), T the time to recover in
       seconds (1 point per second beyond a 5 s grace, at most 20); 20 when the run did not
       recover, 0 when it injected no fault

The score is rounded to one decimal and is null for an experiment without hypothesis probes,
and for a run whose verdict says it did not test what it meant to (failed, interrupted, left a
fault behind, or errored): probes that held while the load never reached the registry, or the
fault never applied, prove nothing, so they earn no points.
"""

from dataclasses import dataclass

GRACE_SECONDS = 5.0
POINTS_PER_SECOND = 1.0
PENALTY_CAP = 20.0
FORMULA = (
    "score = max(0, 100 × H / W − P); W = summed weight of the hypothesis probes, "
    "H = summed weight of those that held (within tolerance before, after and in every check "
    "during the method), P = min(20, max(0, T − 5)) points for a time to recover of T seconds "
    "(20 when not recovered)"
)


@dataclass(frozen=True)
class Score:
    """A run's score with every term of the formula."""

    value: float | None
    held_weight: float
    total_weight: float
    penalty: float
    time_to_recover: float | None
    recovered: bool | None
    # Why the run is not scored at all (its verdict), or None.
    withheld: str | None = None

    @property
    def probe_score(self) -> float | None:
        """100 × H / W, before the penalty."""
        if self.total_weight <= 0:
            return None
        return 100.0 * self.held_weight / self.total_weight

    def worked(self) -> str:
        """The formula with this run's numbers in it."""
        if self.withheld is not None:
            return f"not scored: {self.withheld}"
        if self.value is None:
            return "no hypothesis probes: nothing to score"
        if self.recovered is False:
            recovery = "not recovered, P = 20"
        elif self.time_to_recover is None:
            recovery = "no fault, P = 0"
        else:
            recovery = f"P = min(20, max(0, {self.time_to_recover:.1f} − 5)) = {self.penalty:.1f}"
        return (
            f"max(0, 100 × {self.held_weight:g} / {self.total_weight:g} − {self.penalty:.1f})"
            f" = {self.value:.1f}   ({recovery})"
        )

    def as_dict(self) -> dict[str, object]:
        """The summary.json form."""
        return {
            "value": self.value,
            "probe_score": None if self.probe_score is None else round(self.probe_score, 1),
            "held_weight": self.held_weight,
            "total_weight": self.total_weight,
            "recovery_penalty": round(self.penalty, 2),
            "formula": FORMULA,
            "worked": self.worked(),
        }


def recovery_penalty(time_to_recover: float | None, recovered: bool | None) -> float:
    """P: points lost to a slow recovery (see the module docstring)."""
    if recovered is False:
        return PENALTY_CAP
    if time_to_recover is None:
        return 0.0
    return min(PENALTY_CAP, max(0.0, time_to_recover - GRACE_SECONDS) * POINTS_PER_SECOND)


def score(
    probes: list[tuple[float, bool]],
    time_to_recover: float | None,
    recovered: bool | None,
    *,
    withheld: str | None = None,
) -> Score:
    """The score of ``probes`` given as (weight, held) pairs and the run's recovery; null with
    ``withheld`` (why: the run's verdict) for a run that did not test what it meant to."""
    total = sum(weight for weight, _ in probes)
    held = sum(weight for weight, ok in probes if ok)
    penalty = recovery_penalty(time_to_recover, recovered)
    value = None if total <= 0 else round(max(0.0, 100.0 * held / total - penalty), 1)
    if withheld is not None:
        value = None
    return Score(value, held, total, penalty, time_to_recover, recovered, withheld)
