"""Concurrent image-pull load with Locust, on the same timeline as the faults.

``locustfile``  the Locust user (runs only inside Locust processes)
``parameters``  a load's validated arguments and time allowances
``launch``      checks the images, starts the supervisor through the fault ledger, says "go"
``supervisor``  the supervisor process (``python -m``): runs Locust, ends it if it overstays
``command``     Locust's command line and environment; ``credentials`` its private file
``store``       where a load's files live and what they say; finding a load
``stop``        stopping loads and settling their files; ``stats`` exact figures, time series
(none of these imports Locust: it runs as a subprocess)
``records``     exact per-pull records and the figures and time series computed from them
``mix``         the weighted image mix; ``fresh`` never-seen images for cold mode
``processes``   process-group identity and the ``process.terminate`` undo handler
``failures``    geventhttpclient errors -> ErrorClass (the twin of chaosregistry.oci.failures)

Activities: ``chaosregistry.actions.load`` and ``chaosregistry.probes.load``.

Layer: services (may import the package root, protocols and foundations; see docs/architecture.md).
"""
