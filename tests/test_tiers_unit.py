"""The tier rule of tests/conftest.py: every collected test has exactly one tier marker."""

from dataclasses import dataclass

import pytest
from conftest import pytest_collection_modifyitems

pytestmark = pytest.mark.unit


@dataclass
class FakeItem:
    """What the hook reads of a collected test: its node id and its markers."""

    nodeid: str
    marks: tuple[str, ...]

    def iter_markers(self) -> list[pytest.Mark]:
        return [getattr(pytest.mark, name).mark for name in self.marks]


def check(*items: FakeItem) -> None:
    pytest_collection_modifyitems(list(items))  # type: ignore[arg-type]


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
