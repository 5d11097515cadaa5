"""Running a game day and judging it.

``runner`` is ``chaosregistry gameday``: validate, start the sandbox the experiment needs, run
``chaos run`` with our control (``control`` writes the run's id into the journal), judge, report
and clean up. ``journal`` parses the journal ``chaos run`` wrote, once, into the typed model every
reader of it uses (the verdict, fault evidence, the runner, the reports). ``verdict`` is the one
verdict rule and its evidence checklist (``chaosregistry report`` applies it too);
``fault_evidence`` shows, from the ledger, the journal and the loads, that each fault applied,
was confirmed and met a measurement. May import the experiment's
settings and validation, the fault core and the backends' confirmation rule, the sandbox,
``observability`` (the Prometheus capture), the loads' records and the reports; only the command
line and the reports import it.

Layer: runners (may import services, protocols and foundations; see docs/architecture.md).
"""
