"""Operating-system plumbing shared by the fault ledger, the load runner, the sandbox and the
test cluster, one module per purpose (docs/architecture.md, "The shape"):

- ``identity``: which process is which, from ``/proc`` (pid + kernel start time + boot id);
- ``locks``: ``flock`` locks, exclusive, tried once or with a timeout, re-entrant per thread;
- ``files``: atomic (and, where asked, durable) writes of text and JSON;
- ``cache``: the project's cache directory (``$CHAOSREGISTRY_CACHE``, else under ``~/.cache``);
- ``spawn``: detached processes in their own session, with a one-line handshake pipe.
- ``supervise``: the processes the sandbox, the test cluster and the load start: recorded by
  identity, checked, stopped (SIGTERM, then SIGKILL), retried once when one exits while starting.
- ``tls``: the system's trusted CAs, loaded once per process and shared by every client.

Layer: foundations (may import the package root; see docs/architecture.md).
"""
