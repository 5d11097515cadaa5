"""The load's connections to a registry behind a fault proxy: opened at the proxy's listener,
speaking to the registry by its own name.

``--connect-to host:port`` (the registry target's ``connect_to``, the same address the probes
connect to: ``experiment.settings.RegistryTarget``) sends every connection to the ``--host``
registry's origin to that address, while the Host header, the TLS server name (SNI) and the
certificate's host-name check stay the registry's, as curl's ``--connect-to`` and the probes'
transports do (``oci.transport``). A redirect to another origin (blob storage) connects
directly. Imported by the locustfile only: geventhttpclient belongs to the Locust process.
"""

from typing import Any

from geventhttpclient.client import HTTPClient, HTTPClientPool
from geventhttpclient.url import URL

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str | URL) -> tuple[str, int]:
    """``(host, port)`` of ``url``, the host lower-cased and the port filled in."""
    parsed = url if isinstance(url, URL) else URL(url)
    return parsed.host.lower(), int(parsed.port or DEFAULT_PORTS.get(parsed.scheme, 80))


def _host_header(host: str, port: int, scheme: str) -> str:
    name = f"[{host}]" if ":" in host else host  # an IPv6 address
    return name if port == DEFAULT_PORTS.get(scheme) else f"{name}:{port}"


class ConnectToClientPool(HTTPClientPool):
    """geventhttpclient's clients, one per origin, whose client for ``origin`` opens its
    connections at ``address``; ``client_args`` are the replaced pool's (timeouts, TLS
    context factory, connections per client)."""

    def __init__(
        self, origin: tuple[str, int], address: tuple[str, int], **client_args: Any
    ) -> None:
        super().__init__(**client_args)
        self.origin = origin
        self.address = address

    def get_client(self, url: str | URL) -> HTTPClient:
        parsed = url if isinstance(url, URL) else URL(url)
        if origin_of(parsed) != self.origin:
            return super().get_client(parsed)
        key = (parsed.host, parsed.port)
        client = self.clients.get(key)
        if client is None:
            host, port = self.origin
            https = parsed.scheme == "https"
            # The client's own host is the listener (where its sockets go); the Host header it
            # would derive from it is given instead, and so is the name TLS sends and checks.
            client = HTTPClient(
                self.address[0],
                port=self.address[1],
                ssl=https,
                ssl_options={"server_hostname": host} if https else None,
                headers={"Host": _host_header(host, port, parsed.scheme)},
                **self.client_args,
            )
            self.clients[key] = client
        return client
