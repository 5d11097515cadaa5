"""The tier rule: every collected test carries exactly one tier marker (pyproject.toml's
markers), which the conftest.py of its directory (tests/unit, tests/sandbox, tests/cluster)
gives it. `make test-unit` runs tests/unit only, and a test outside the tier directories would
run in no tier's job; one with a second tier (a marker of its own) would run where its servers
are not wanted."""

from collections.abc import Sequence

import pytest

TIERS = ("unit", "sandbox", "cluster")


def check_one_tier(items: Sequence[pytest.Item]) -> None:
    """Refuse the collection (one line per test) when a test has no tier or more than one."""
    problems = []
    for item in items:
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) != 1:
            has = " and ".join(tiers) if tiers else "none"
            problems.append(
                f"{item.nodeid}: needs exactly one tier marker ({', '.join(TIERS)}; "
                f"from its directory, tests/<tier>/), has {has}"
            )
    if problems:
        raise pytest.UsageError("\n".join(problems))
