"""Secrets by value: learn every secret a run can see, and scrub it from whatever we write.

One redactor serves the game day (the journal, ``chaostoolkit.log``, gameday.json, the loads'
files and the lines it prints), the reports, and any artifact written later from a journal.

What counts as secret (:meth:`Redactor.for_experiment`):

* every value under ``secrets``, the experiment's and the vars file's, except values that name
  an identity (a key ``username``, ``user``, ``login``, ``email``, ``account``): a user name is
  no more secret than a host name, and replacing ``chaos`` in every text would garble the
  report's module names. An ``{type: env, key: NAME}`` declaration contributes ``$NAME`` and
  its ``default``;
* every text under a configuration key (any depth, experiment or vars file) that names a
  credential (:func:`is_secret_key`: password, passwd, pass, pwd, passphrase, secret, token,
  key, apikey, credential(s), creds, auth, authorization, bearer, cookie, dsn, private), unless
  its last word says where a secret lives rather than what it is (``..._url``, ``_file``,
  ``_path``, ``_dir``, ``_name``) or it is public (``signing_public_key``); a configuration
  value read from an environment variable whose *name* names a credential counts too;
* the environment: every variable whose name names a credential (``CHAOSREGISTRY_PASSWORD``,
  ``REGISTRY_TOKEN``...), when its value has at least :data:`MIN_ENVIRONMENT` characters and
  is not a path (``SSH_AUTH_SOCK``);
* every text under a credential key of an activity (an http provider's ``Authorization``
  header, an argument named ``password``; a ``${name}`` reference is learned where it is set);
* in any text of the configuration, the secrets or an activity: a URL's userinfo
  (``user:password`` and the password; ``chaosregistry validate`` refuses such URLs, this is
  the net under it) and an ``Authorization`` value (``Basic``/``Bearer``: the whole value and
  its credential, and for ``Basic`` the decoded ``user:password`` and the password);
* what the caller adds (:meth:`Redactor.adding`): the sandbox's password a game day used.

Scrubbed by pattern, because their values are never known in advance: tokens the run is issued
(JSON Web Tokens, ``Bearer <token>``), ``Basic <base64 of user:password>`` and a URL's password.

Each value is replaced by ``[redacted]`` where it sits; a value of at least
:data:`MIN_SUBSTRING` characters is replaced inside longer texts too, raw and HTML-, XML- and
JSON-escaped (:meth:`Redactor.scrub_text`).
"""

import base64
import binascii
import html
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from chaosregistry.errors import ConfigError
from chaosregistry.osutil.files import write_text_atomic

REDACTED = "[redacted]"
# Shorter secrets are redacted only where a whole string equals them: replacing every "abc"
# inside other text would garble the report without protecting much.
MIN_SUBSTRING = 4
# An environment variable named like a credential but holding "1" or "true" is a switch.
MIN_ENVIRONMENT = 8
_DECLARATION_TYPES = ("env", "vault")

# A key's words (snake_case, kebab-case, camelCase, UPPER_CASE) that make it a credential.
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "pass", "pwd", "passphrase", "secret", "secrets", "token",
        "tokens", "key", "apikey", "credential", "credentials", "creds", "auth",
        "authorization", "bearer", "cookie", "dsn", "private",
    }
)  # fmt: skip
# The same, glued to other words ("registrypassword", "xapitoken"): only the unambiguous ones.
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "bearer",
    "authorization",
)
# A last word saying where the secret lives or what it is called, not the secret itself.
_WHERE_WORDS = frozenset({"url", "uri", "file", "path", "dir", "directory", "name", "endpoint"})
# A last word naming who authenticates, never how.
_IDENTITY_WORDS = frozenset({"username", "user", "login", "email", "account"})
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# "${registry_password}": a reference Chaos Toolkit substitutes, whose value is learned where
# it is defined.
_REFERENCE = re.compile(r"^\$\{[^}]+\}$")

# scheme://user:password@ (userinfo ends at the first / ? # or space)
_URL_PASSWORD = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#\s:@]*):([^/?#\s@]*)@")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"\b(Bearer)(\s+)([A-Za-z0-9._~+/-]{16,}=*)", re.IGNORECASE)
_BASIC = re.compile(r"\b(Basic)(\s+)([A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])", re.IGNORECASE)


# Where a registry's credentials go instead of a URL (whose text reaches command lines, logs,
# the ledger and reports).
URL_CREDENTIALS = (
    "carries credentials (user:password@), which would reach logs and reports: give them as "
    "secrets registry_username and registry_password, or in the environment as "
    "CHAOSREGISTRY_USERNAME and CHAOSREGISTRY_PASSWORD"
)
# The parts of an experiment whose texts are handed to activities; `secrets` is where
# credentials belong, titles and descriptions are prose.
_ACTIVITY_SECTIONS = ("configuration", "steady-state-hypothesis", "method", "rollbacks", "controls")
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def url_credentials(url: str) -> bool:
    """Whether ``url`` carries credentials: ``user:password@`` in any scheme, or any userinfo
    in an ``http(s)`` URL (a token given as the user name)."""
    # As urlsplit finds the authority, without its ValueError on a malformed host ("[::1").
    scheme, separator, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if not separator or "@" not in authority:
        return False
    userinfo = authority.rsplit("@", 1)[0]
    return ":" in userinfo or scheme.strip().lower() in ("http", "https")


def _urls_with_credentials(value: Any, field: str) -> Iterator[str]:
    """The field path of every text under ``value`` holding a URL with credentials."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _urls_with_credentials(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            label = f"{field}[{index}]"
            provider = item.get("provider") if isinstance(item, dict) else None
            if isinstance(provider, dict):
                # An activity: named as validate names its arguments, "probes[0] (name)
                # .arguments.x", so every refusal of one argument points at the same field.
                label += f" ({item.get('name', '?')})"
                yield from _urls_with_credentials(provider.get("arguments"), f"{label}.arguments")
                others = {k: v for k, v in provider.items() if k != "arguments"}
                yield from _urls_with_credentials(others, f"{label}.provider")
                item = {k: v for k, v in item.items() if k != "provider"}
            yield from _urls_with_credentials(item, label)
    elif isinstance(value, str) and any(map(url_credentials, _URL_IN_TEXT.findall(value))):
        yield field


def refuse_url_credentials(
    experiment: Mapping[str, Any],
    vars_data: Mapping[str, Any],
    configuration: Mapping[str, Any],
    experiment_path: Path,
    vars_path: Path | None,
) -> None:
    """ConfigError naming the file and field of the first URL that carries credentials, in the
    experiment, the vars file, or a configuration value read from the environment (the URL is
    never repeated)."""
    sources: list[tuple[Path, str, Any]] = [
        (experiment_path, section, experiment.get(section)) for section in _ACTIVITY_SECTIONS
    ]
    if vars_path is not None:
        sources.append((vars_path, "configuration", vars_data.get("configuration")))
    for path, section, value in sources:
        for field in _urls_with_credentials(value, section):
            raise ConfigError(f"{path}: {field}: a URL {URL_CREDENTIALS}")
    for field in _urls_with_credentials(dict(configuration), "configuration"):
        raise ConfigError(
            f"{experiment_path}: {field}: a URL from the environment {URL_CREDENTIALS}"
        )


def key_words(name: str) -> list[str]:
    """``"registryPassword"`` -> ``["registry", "password"]``; ``"X-API-Key"`` -> x, api, key."""
    return [word.lower() for word in _WORD.findall(name)]


def is_secret_key(name: object) -> bool:
    """Whether a configuration key (or an environment variable's name) names a credential."""
    words = key_words(str(name))
    if not words or words[-1] in _WHERE_WORDS or "public" in words:
        return False
    return any(
        word in _SECRET_WORDS or any(part in word for part in _SECRET_PARTS) for word in words
    )


def _is_identity_key(name: object) -> bool:
    words = key_words(str(name))
    return bool(words) and words[-1] in _IDENTITY_WORDS


def _is_declaration(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in _DECLARATION_TYPES


def _decoded_basic(credential: str) -> str | None:
    """``user:password`` from a Basic credential, or None when it is not one."""
    try:
        text = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if ":" in text and text.isprintable() else None


def _bearer_replacement(match: re.Match[str]) -> str:
    scheme, space, credential = match.groups()
    # "Bearer authentication" is prose; a token has a digit somewhere.
    if not any(c.isdigit() for c in credential):
        return match.group(0)
    return f"{scheme}{space}{REDACTED}"


def _basic_replacement(match: re.Match[str]) -> str:
    scheme, space, credential = match.groups()
    if _decoded_basic(credential) is None:
        return match.group(0)  # "Basic authentication": not base64 of user:password
    return f"{scheme}{space}{REDACTED}"


def scrub_patterns(text: str) -> str:
    """``text`` without the secrets recognisable by their shape: a URL's password, a JSON Web
    Token, a ``Bearer`` token, a ``Basic`` credential."""
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(_bearer_replacement, text)
    if "basic" in lowered:
        text = _BASIC.sub(_basic_replacement, text)
    return text


def values_in_text(text: str) -> list[str]:
    """The secrets a text carries by its shape: a URL's userinfo and an Authorization value."""
    found: list[str] = []
    for match in _URL_PASSWORD.finditer(text):
        user = match.group(1).split("://", 1)[1]
        password = match.group(2)
        if password:
            found += [password, f"{user}:{password}"]
    for pattern in (_BEARER, _BASIC):
        for match in pattern.finditer(text):
            scheme, _, credential = match.groups()
            decoded = _decoded_basic(credential) if pattern is _BASIC else None
            if pattern is _BASIC and decoded is None:
                continue
            found += [credential, f"{scheme} {credential}"]
            if decoded is not None:
                found += [decoded, decoded.split(":", 1)[1]]
    found += _JWT.findall(text)
    return found


class Redactor:
    """Redacts a set of secret values (and the secrets recognisable by shape) from data and text."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if v and v != REDACTED}, key=len, reverse=True)
        self._long = [v for v in self.values if len(v) >= MIN_SUBSTRING]
        self._exact = set(self.values)

    @classmethod
    def for_experiment(
        cls,
        experiment: Any,
        vars_data: Any = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> "Redactor":
        """Every secret an experiment run with ``vars_data`` (a parsed vars file) can see, in
        ``environ`` (default: this process's environment); see the module docstring."""
        environ = os.environ if environ is None else environ
        found: list[str] = []
        for document in (experiment, vars_data):
            if isinstance(document, dict):
                _collect_secrets(document.get("secrets"), found, environ)
                _collect_configuration(document.get("configuration"), found, environ)
        if isinstance(experiment, dict):  # e.g. an http provider's Authorization header
            for section in _ACTIVITY_SECTIONS[1:]:
                _collect_configuration(experiment.get(section), found, environ)
        for name, value in environ.items():
            if is_secret_key(name) and len(value) >= MIN_ENVIRONMENT and not _is_path(value):
                found.append(value)
        return cls(found)

    def adding(self, values: Iterable[str]) -> "Redactor":
        """This redactor, knowing ``values`` too."""
        return Redactor([*self.values, *values])

    def text(self, value: str) -> str:
        """``value`` with every secret in it replaced."""
        if value in self._exact:
            return REDACTED
        for secret in self._long:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return scrub_patterns(value)

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
        """An experiment's configuration with the values of credential keys redacted."""
        if _is_declaration(configuration):
            return self.data(configuration)  # {type: env, key: NAME}: its "key" is a name
        if isinstance(configuration, dict):
            return {
                str(k): REDACTED if is_secret_key(k) else self.configuration(v)
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
        return scrub_patterns(text)

    def lines(self, say: Callable[[str], None]) -> Callable[[str], None]:
        """``say`` with every line it is given scrubbed first."""
        return lambda line: say(self.scrub_text(line))

    def scrub_file(self, path: Path) -> bool:
        """Rewrite a text file without its secrets (atomically, same mode); True when it held
        one. A file that is not UTF-8 text is left alone."""
        try:
            raw = path.read_bytes()
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            return False
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
        scrubbed = self.scrub_text(text)
        if scrubbed == text:
            return False
        write_text_atomic(path, scrubbed, mode=mode)
        return True

    def scrub_tree(self, directory: Path) -> list[Path]:
        """:meth:`scrub_file` on every regular file under ``directory``; the files changed."""
        if not directory.is_dir():
            return []
        return [path for path in _files(directory) if self.scrub_file(path)]


def _files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def _is_path(value: str) -> bool:
    return value.startswith(("/", "~", "./", "../"))


def _resolved(declaration: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """What an ``{type: env, key: NAME}`` declaration can resolve to: ``$NAME``, its default."""
    values = []
    if declaration.get("type") == "env" and isinstance(declaration.get("key"), str):
        resolved = environ.get(declaration["key"])
        if resolved:
            values.append(resolved)
    for name, item in declaration.items():
        if name not in ("type", "key", "path") and isinstance(item, str | int | float):
            values.append(str(item))
    return values


def _collect_secrets(value: Any, found: list[str], environ: Mapping[str, str]) -> None:
    """Every leaf under a ``secrets`` section but identities; declarations resolved."""
    if _is_declaration(value):
        found.extend(_resolved(value, environ))
    elif isinstance(value, dict):
        for name, item in value.items():
            if not _is_identity_key(name):
                _collect_secrets(item, found, environ)
    elif isinstance(value, list):
        for item in value:
            _collect_secrets(item, found, environ)
    elif isinstance(value, str) and not _REFERENCE.match(value):
        found.append(value)
        found.extend(values_in_text(value))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        found.append(str(value))


def _collect_configuration(value: Any, found: list[str], environ: Mapping[str, str]) -> None:
    """Under credential keys, every text but identities; elsewhere, what texts carry by their
    shape and what comes from an environment variable named like a credential."""
    if _is_declaration(value):
        if value.get("type") == "env" and is_secret_key(value.get("key", "")):
            found.extend(_resolved(value, environ))
        else:
            resolved = environ.get(str(value.get("key", "")))
            if resolved:
                found.extend(values_in_text(resolved))
    elif isinstance(value, dict):
        for name, item in value.items():
            if name == "secrets" and isinstance(item, list):
                continue  # an activity's secret scopes: names, not secrets
            if is_secret_key(name):
                _collect_texts(item, found, environ)
            else:
                _collect_configuration(item, found, environ)
    elif isinstance(value, list):
        for item in value:
            _collect_configuration(item, found, environ)
    elif isinstance(value, str):
        found.extend(values_in_text(value))


def _collect_texts(value: Any, found: list[str], environ: Mapping[str, str]) -> None:
    """Every text under a credential key (numbers and switches are not credentials)."""
    if _is_declaration(value):
        found.extend(_resolved(value, environ))
    elif isinstance(value, dict):
        for name, item in value.items():
            if not _is_identity_key(name):
                _collect_texts(item, found, environ)
    elif isinstance(value, list):
        for item in value:
            _collect_texts(item, found, environ)
    elif isinstance(value, str) and not _REFERENCE.match(value):
        found.append(value)
        found.extend(values_in_text(value))
