"""The system's trusted CAs as one SSL context per process.

Loading the system CA store costs about 20 ms of CPU each time (``ssl.create_default_context``,
and ``httpx.Client()`` with its default ``verify=True``). Probes, fault proxies and readiness
checks make clients often, most of them never for a public CA (a loopback API over plain HTTP,
the sandbox's own CA), so every client that trusts the system store shares this one context.
An ``SSLContext`` may serve many connections and threads at once; nobody may change it, so
code that needs other settings makes its own.
"""

import functools
import ssl


@functools.cache
def system_trust() -> ssl.SSLContext:
    """The system's CAs, hostnames checked: the context for public registries and for clients
    of plain-HTTP endpoints (which never use it, but httpx builds one per client otherwise)."""
    return ssl.create_default_context()
