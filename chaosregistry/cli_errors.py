"""How every ``chaosregistry`` command reports a user's mistake: one ``Error: ...`` line on
stderr and exit 1, never a traceback.

click prints a :class:`click.ClickException` that way; our errors (and, where a command says
so, the operating system's) are turned into one here, for the main command, its groups and the
commands that also run on their own (``python -m chaosregistry.reports``).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from chaosregistry.errors import ChaosRegistryError


@contextmanager
def one_line_errors(*also: type[Exception]) -> Iterator[None]:
    """A :class:`ChaosRegistryError` (or one of ``also``, e.g. ``OSError``) raised inside
    becomes click's one ``Error:`` line and exit 1."""
    caught: tuple[type[Exception], ...] = (ChaosRegistryError, *also)
    try:
        yield
    except caught as exc:
        raise click.ClickException(str(exc)) from None


class OneLineErrorsGroup(click.Group):
    """A click group whose commands end a :class:`ChaosRegistryError` as one ``Error:`` line."""

    def invoke(self, ctx: click.Context) -> Any:
        with one_line_errors():
            return super().invoke(ctx)
