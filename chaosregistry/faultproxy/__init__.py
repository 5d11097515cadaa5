"""A fault proxy for a registry the tool does not run: a local Toxiproxy hop in front of it.

``proxy.py`` starts, checks and stops it (``chaosregistry proxy up`` / ``down``, and the game
day when the vars file declares ``fault_proxy``); ``cli.py`` is the command. The hop carries
TCP, so TLS goes through it untouched and the clients still check the registry's own name
(``RegistryTarget.connect_to``, see ``oci.transport``). Faults on the hop are the local
backend's Toxiproxy toxics, through the ledger like every hop's.

Layer: services (may import the package root, protocols and foundations; see docs/architecture.md).
"""
