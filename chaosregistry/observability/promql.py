"""PromQL and rules files checked with ``promtool`` (Debian's prometheus package), offline.

``check_expression`` puts one expression into a throw-away rules file as a recording rule and
asks ``promtool check rules``: promtool parses PromQL exactly as the Prometheus it ships with
does, so an experiment's query is refused at validation, before anything starts, with
promtool's own words. Without promtool on the machine nothing is checked; ``make setup``
installs it.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

PROMTOOL = "/usr/bin/promtool"
TIMEOUT = 30.0


def promtool() -> str | None:
    """promtool's path, or None when it is not installed."""
    if os.access(PROMTOOL, os.X_OK):
        return PROMTOOL
    return shutil.which("promtool")


def check_rules_file(path: Path) -> str | None:
    """None when ``promtool check rules`` accepts ``path``, else its first error line."""
    binary = promtool()
    if binary is None:
        return None
    done = subprocess.run(
        [binary, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()]
    errors = [line for line in lines if line and not line.startswith(("Checking", "FAILED"))]
    return errors[0] if errors else f"promtool check rules exited {done.returncode}"


def check_expression(expression: str) -> str | None:
    """None when ``expression`` is valid PromQL, else why not (promtool's parse error)."""
    if not isinstance(expression, str) or not expression.strip():
        return "must be a PromQL expression"
    if promtool() is None:
        return None
    rules = {"groups": [{"name": "check", "rules": [{"record": "check", "expr": expression}]}]}
    with tempfile.TemporaryDirectory(prefix="chaosregistry-promql-") as directory:
        path = Path(directory) / "expression.rules.yml"
        path.write_text(yaml.safe_dump(rules), encoding="utf-8")
        problem = check_rules_file(path)
    if problem is None:
        return None
    # "<file>: 5:11: group "check", rule 1, "check": could not parse expression: 1:18: ..."
    _, found, detail = problem.partition("could not parse expression: ")
    return f"invalid PromQL: {detail}" if found else f"invalid PromQL: {problem}"


def alert_names(path: Path) -> list[str]:
    """The alerts a rules file defines, in its order; ConfigError (naming the file) when it
    cannot be read, is not a rules file, or promtool refuses it."""
    from chaosregistry.errors import ConfigError

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the rules file: {exc}") from None
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list):
        raise ConfigError(f"{path}: not a Prometheus rules file (no 'groups' list)")
    problem = check_rules_file(path)
    if problem is not None:
        raise ConfigError(f"{path}: promtool check rules: {problem}")
    names = [
        str(rule["alert"])
        for group in groups
        if isinstance(group, dict)
        for rule in group.get("rules") or []
        if isinstance(rule, dict) and "alert" in rule
    ]
    if not names:
        raise ConfigError(f"{path}: the rules file defines no alert")
    return names
