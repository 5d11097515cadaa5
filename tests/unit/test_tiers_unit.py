"""The tier rule (tests/support/tiers.py, run by tests/conftest.py): every collected test has
exactly one tier marker, given by the conftest.py of its tier's directory."""

from dataclasses import dataclass
from pathlib import Path

import pytest
from support.tiers import TIERS, check_one_tier


@dataclass
class FakeItem:
    """What the hook reads of a collected test: its node id and its markers."""

    nodeid: str
    marks: tuple[str, ...]

    def iter_markers(self) -> list[pytest.Mark]:
        return [getattr(pytest.mark, name).mark for name in self.marks]


def check(*items: FakeItem) -> None:
    check_one_tier(list(items))  # type: ignore[arg-type]


def test_one_tier_passes_whatever_else_is_marked() -> None:
    check(
        FakeItem("t.py::a", ("unit",)),
        FakeItem("t.py::b", ("sandbox", "parametrize")),
        FakeItem("t.py::c", ("cluster", "cluster")),  # the same tier on module and test
    )


@pytest.mark.parametrize(
    ("marks", "has"),
    [((), "has none"), (("parametrize",), "has none"), (("unit", "sandbox"), "sandbox and unit")],
)
def test_no_tier_or_two_fail_collection_with_one_line_naming_the_test(
    marks: tuple[str, ...], has: str
) -> None:
    with pytest.raises(pytest.UsageError) as raised:
        check(FakeItem("t.py::ok", ("unit",)), FakeItem("t.py::bad", marks))
    message = str(raised.value)
    assert message.splitlines() == [message]
    assert message.startswith("t.py::bad: needs exactly one tier marker") and message.endswith(has)


def test_a_test_under_tests_unit_has_the_unit_tier_from_its_directory(
    request: pytest.FixtureRequest,
) -> None:
    assert not hasattr(request.module, "pytestmark")
    assert [mark.name for mark in request.node.iter_markers() if mark.name in TIERS] == ["unit"]


def test_tests_pick_ports_only_through_support_ports() -> None:
    # A port found free outside the worker's own range could be found free by another
    # pytest-xdist worker at the same moment, and the second server to bind it fails.
    tests = Path(__file__).resolve().parents[1]
    callers = sorted(
        str(path.relative_to(tests))
        for path in tests.rglob("*.py")
        if "find_free_base_port(" in path.read_text()
        and path not in (tests / "support/ports.py", Path(__file__).resolve())
    )
    assert callers == []
