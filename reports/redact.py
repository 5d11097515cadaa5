"""Keep an experiment's secrets out of every report artifact.

What counts as secret, from the journal's experiment:

* every value under ``experiment.secrets`` (for an ``{type: env, key: NAME}`` declaration, the
  value of ``$NAME`` when it is set, and its ``default``);
* every value under a ``configuration`` key (at any depth) whose name contains ``password``,
  ``token``, ``secret``, ``key`` or ``credential`` (case-insensitive).

Those values are replaced by ``[redacted]`` where they sit, and any string elsewhere that equals
one of them (or contains one of at least :data:`MIN_SUBSTRING` characters) is redacted too.
:meth:`Redactor.scrub_text` is the last line of defence on each written artifact: it also
catches the HTML-, XML- and JSON-escaped forms.
"""

import html
import json
import os
import re
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape as xml_escape

REDACTED = "[redacted]"
SENSITIVE_KEY = re.compile(r"password|token|secret|key|credential", re.IGNORECASE)
# Shorter secrets are redacted only where a whole string equals them: replacing every "abc"
# inside other text would garble the report without protecting much.
MIN_SUBSTRING = 4
_DECLARATION_TYPES = ("env", "vault")


def _is_declaration(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in _DECLARATION_TYPES


class Redactor:
    """Redacts the secret values of one experiment from data and text."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if v and v != REDACTED}, key=len, reverse=True)
        self._long = [v for v in self.values if len(v) >= MIN_SUBSTRING]
        self._exact = set(self.values)

    @classmethod
    def for_experiment(cls, experiment: Any) -> "Redactor":
        """Collect the secret values of an experiment (see the module docstring)."""
        found: list[str] = []
        if isinstance(experiment, dict):
            _collect(experiment.get("secrets"), found)
            _collect_sensitive(experiment.get("configuration"), found)
        return cls(found)

    def text(self, value: str) -> str:
        """``value`` with every secret in it replaced."""
        if value in self._exact:
            return REDACTED
        for secret in self._long:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` with every secret string replaced (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def configuration(self, configuration: Any) -> Any:
        """The experiment's configuration with sensitive keys' values redacted."""
        if _is_declaration(configuration):
            return self.data(configuration)  # {type: env, key: NAME}: its "key" is a name
        if isinstance(configuration, dict):
            return {
                str(k): REDACTED if SENSITIVE_KEY.search(str(k)) else self.configuration(v)
                for k, v in configuration.items()
            }
        if isinstance(configuration, list):
            return [self.configuration(v) for v in configuration]
        return self.data(configuration)

    def scrub_text(self, text: str) -> str:
        """Replace secrets in a rendered artifact, raw and HTML/XML/JSON-escaped."""
        for secret in self._long:
            if secret.replace(".", "").isdigit():
                continue  # a number: the structured pass handled it; SVG coordinates stay intact
            for form in {
                secret,
                html.escape(secret),
                xml_escape(secret),
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
            }:
                if form in text:
                    text = text.replace(form, REDACTED)
        return text


def _collect(value: Any, found: list[str]) -> None:
    """Every leaf value under ``value``; env declarations contribute what they resolve to."""
    if _is_declaration(value):
        if value.get("type") == "env" and isinstance(value.get("key"), str):
            resolved = os.environ.get(value["key"])
            if resolved:
                found.append(resolved)
        for name, item in value.items():
            if name not in ("type", "key", "path"):
                _collect(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)
    elif isinstance(value, str):
        found.append(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        found.append(str(value))


def _collect_sensitive(configuration: Any, found: list[str]) -> None:
    if _is_declaration(configuration):
        return
    if isinstance(configuration, dict):
        for name, value in configuration.items():
            if SENSITIVE_KEY.search(str(name)):
                _collect(value, found)
            else:
                _collect_sensitive(value, found)
    elif isinstance(configuration, list):
        for value in configuration:
            _collect_sensitive(value, found)
