"""Registry authentication: HTTP basic and the distribution token (bearer challenge) flow.

A registry answers an unauthenticated request with ``401`` and a ``WWW-Authenticate`` challenge.
For ``Basic`` we send the credentials; for ``Bearer`` we ask the named realm for a token scoped to
the repository and reuse that token until shortly before it expires, as container runtimes do.
"""

import re
import threading
import time
from dataclasses import dataclass, field

# Tokens are refreshed this long before they expire, so a token never dies mid-pull.
EXPIRY_MARGIN_SECONDS = 5.0
# The token spec says a missing expires_in means 60 seconds.
DEFAULT_TOKEN_LIFETIME = 60.0

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


@dataclass(frozen=True)
class Credentials:
    """A username and password. ``repr`` never shows the password."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str  # "basic" or "bearer" (lower case)
    params: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> "Challenge | None":
        header = header.strip()
        if not header:
            return None
        scheme, _, rest = header.partition(" ")
        params = {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(rest)}
        return cls(scheme.lower(), params)


@dataclass
class _Token:
    value: str
    expires_at: float


class TokenCache:
    """Bearer tokens keyed by (realm, service, scope); thread-safe, shared by concurrent pulls."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._lock = threading.Lock()
        self.fetched = 0  # how many tokens were issued to us: tests and benchmarks read it

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires_at - EXPIRY_MARGIN_SECONDS <= time.monotonic():
                return None
            return token.value

    def drop(self, key: tuple[str, str, str]) -> None:
        """Forget a token the registry refused."""
        with self._lock:
            self._tokens.pop(key, None)

    def put(self, key: tuple[str, str, str], value: str, lifetime: float) -> None:
        with self._lock:
            self._tokens[key] = _Token(value, time.monotonic() + lifetime)
            self.fetched += 1
