"""What the tiers share: the one sandbox factory (``support.sandbox``), the one poller
(``support.polling.eventually``) and the helpers of the game-day, cluster, fault, report,
signature and TLS tests. Imported as ``support.<module>`` (pyproject.toml puts tests/ on the
path); fixtures that several modules load come in with ``pytest_plugins = ["support.<module>"]``.
"""
