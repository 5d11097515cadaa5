"""The site's activity reference is generated from the activities, never kept by hand: it lists
every activity discovery lists, each argument as its signature declares it, and a new activity
module is documented with nothing else to edit."""

import inspect
import re
import sys
from pathlib import Path

import pytest

import chaosregistry
import chaosregistry.probes
from chaosregistry import discover
from chaosregistry.experiment.reference import (
    activity_doc,
    inline,
    page_path,
    reference_pages,
    render_activity,
)


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return reference_pages()


def sections(page: str) -> dict[str, list[str]]:
    """Module section -> the activities documented under it, in page order."""
    found: dict[str, list[str]] = {}
    module = ""
    for line in page.splitlines():
        if match := re.fullmatch(r"## `([\w.]+)`", line):
            module = match.group(1)
            found[module] = []
        elif match := re.match(r"### `(\w+)` \{#", line):
            found[module].append(match.group(1))
    return found


def documented(pages: dict[str, str]) -> set[tuple[str, str, str]]:
    """(page, module, activity) for every activity entry of the reference."""
    return {
        (path, module, name)
        for path, page in pages.items()
        for module, names in sections(page).items()
        for name in names
    }


def test_the_reference_lists_every_activity_discovery_lists(pages: dict[str, str]) -> None:
    discovered = {
        (page_path(activity["type"]), activity["mod"], activity["name"])
        for activity in discover()["activities"]
    }

    assert len(discovered) >= 50  # discovery did walk the package
    assert set(pages) == {"reference/probes.md", "reference/actions.md"}
    assert documented(pages) == discovered


def test_an_argument_shows_its_declared_type_default_domain_and_docstring_words(
    pages: dict[str, str],
) -> None:
    actions, probes = pages["reference/actions.md"], pages["reference/probes.md"]

    # add_latency(latency_ms: Annotated[int, Range(1, unit="ms")] = 300), docstring
    # "latency_ms: added delay in milliseconds (>= 1), ..."
    add_latency = actions.split("### `add_latency`", 1)[1].split("\n### ", 1)[0]
    [row] = [line for line in add_latency.splitlines() if line.startswith("| `latency_ms` |")]
    assert "| integer, default `300` |" in row
    assert "added delay in milliseconds" in row
    assert "*Accepts:* &gt;= 1 ms." in row
    # A Literal / OneOf domain in words, and an argument with no default.
    assert "*Accepts:* one of blackhole, refuse." in actions
    [image] = [
        line
        for line in probes.split("### `pull_image`", 1)[1].splitlines()
        if line.startswith("| `image` |")
    ][:1]
    assert "**required**" in image
    # "platform, blob_concurrency, ...: as for pull_image" gives each of them the words.
    latency = probes.split("### `pull_latency`", 1)[1].split("\n### ", 1)[0]
    assert re.search(
        r"\| `blob_concurrency` \| integer, default `3` \| as for `pull_image`", latency
    )
    # Chaos Toolkit passes these two: they are no argument an experiment gives.
    assert "| `configuration` |" not in actions + probes
    assert "| `secrets` |" not in actions + probes


def test_a_probe_shows_its_declared_result_keys_and_kind(pages: dict[str, str]) -> None:
    latency = pages["reference/probes.md"].split("### `pull_latency`", 1)[1].split("\n### ")[0]

    [keys] = [line for line in latency.splitlines() if line.startswith("**Result keys**")]
    assert "kind `pull-statistics`" in keys
    for key in ("p95", "success_ratio", "max_attempt", "http_version"):
        assert f"`{key}`" in keys


def test_what_a_module_declares_it_needs_is_shown(pages: dict[str, str]) -> None:
    node = pages["reference/actions.md"].split("## `chaosregistry.actions.node`", 1)[1]
    node = node.split("\n## ", 1)[0]
    assert "**Needs** on the local backend: the sandbox: kills and restarts" in node
    # A conditional need says its condition: the network faults need the sandbox only when the
    # configuration names no Toxiproxy of its own.
    network = pages["reference/actions.md"].split("## `chaosregistry.actions.network`", 1)[1]
    assert "(unless the configuration sets toxiproxy_url and hops)" in network.split("\n## ", 1)[0]
    # An activity that declares no need says nothing of the sandbox.
    rollout = pages["reference/probes.md"].split("### `rollout_health`", 1)[1]
    assert "**Needs**" not in rollout.split("### `", 1)[0]


PLANTED = '''"""A probe module no list names: it must be documented all the same."""

from typing import Annotated, Literal

from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import AT_LEAST_ONE, Returns
from chaosregistry.experiment.needs import SandboxNeed

SANDBOX_NEED = SandboxNeed("reads the planted piece's log")

__all__ = ["planted_probe"]


@activity
def planted_probe(
    depth: Annotated[int, AT_LEAST_ONE],
    mode: Literal["fast", "slow"] = "fast",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[Result, Returns("planted seconds")]:
    """Measure a planted thing.

    Arguments:
      depth: how deep to look (>= 1).
      mode: ``fast`` or ``slow``.

    Returns a mapping: ``planted``, ``seconds``.
    """
    return {"planted": depth, "seconds": 0.0}
'''


def test_a_new_activity_module_is_documented_with_nothing_else_to_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new file in probes/ (here: in a folder added to the package's path, so the real
    # package is not touched): discovery walks the package and finds it.
    (tmp_path / "planted.py").write_text(PLANTED)
    monkeypatch.setattr(
        chaosregistry.probes, "__path__", [*chaosregistry.probes.__path__, str(tmp_path)]
    )
    monkeypatch.delitem(sys.modules, "chaosregistry.probes.planted", raising=False)
    try:
        page = reference_pages()["reference/probes.md"]
    finally:
        sys.modules.pop("chaosregistry.probes.planted", None)

    assert sections(page)["chaosregistry.probes.planted"] == ["planted_probe"]
    entry = page.split("## `chaosregistry.probes.planted`", 1)[1].split("\n## ", 1)[0]
    assert "reads the planted piece's log" in entry
    assert "Measure a planted thing." in entry
    assert (
        "| `depth` | integer, **required** | how deep to look (&gt;= 1). *Accepts:* &gt;= 1. |"
        in entry
    )
    assert (
        '| `mode` | string, default `"fast"` | `fast` or `slow`. *Accepts:* one of fast, slow. |'
        in entry
    )
    assert "**Result keys** (a tolerance's `target`; kind `other`): `planted`, `seconds`." in entry
    assert "Returns a mapping: `planted`, `seconds`." in entry
    assert "[`planted_probe`](#chaosregistry-probes-planted-planted-probe)" in page


def test_docstring_markup_becomes_markdown_that_shows_it_as_written() -> None:
    assert inline("``a_b`` and :meth:`~pkg.Client.list_tags` or :data:`LIMIT`") == (
        "`a_b` and `list_tags` or `LIMIT`"
    )
    # Angle brackets, brackets and pipes are text, not HTML, links or table cells; bold stays.
    assert inline("sha256-<hex>.sig [{digest, size}] a | b **This writes**") == (
        "sha256-&lt;hex&gt;.sig \\[{digest, size}\\] a \\| b **This writes**"
    )
    # Inside code nothing is escaped.
    assert inline("``hop:<name>``") == "`hop:<name>`"


def test_every_line_of_an_arguments_block_is_shown_somewhere() -> None:
    def probe(count: int = 1, configuration: dict[str, object] | None = None) -> None:
        """Count things.

        Arguments:
          count: how many, at least one;
            a second line of it.
          renamed: an argument the signature no longer has.
        """

    described = {
        "type": "probe",
        "mod": "somewhere",
        "name": "probe",
        "doc": inspect.getdoc(probe),
        "arguments": [{"name": "count", "default": 1, "type": "integer"}],
    }
    doc = activity_doc(described, probe)

    assert [(a.name, a.text) for a in doc.arguments] == [
        ("count", "how many, at least one; a second line of it.")
    ]
    assert doc.unmatched == (("renamed", "an argument the signature no longer has."),)
    assert "`renamed` (no such argument): an argument the signature no longer has." in (
        "\n".join(render_activity(doc))
    )
