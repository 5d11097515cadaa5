"""Concurrent image-pull load with Locust, on the same timeline as the faults.

``locustfile``  the Locust user (runs only inside Locust processes)
``runner``      starts, supervises and stops loads as subprocesses; never imports Locust
``records``     exact per-pull records and the figures and time series computed from them
``mix``         the weighted image mix; ``fresh`` never-seen images for cold mode
``processes``   process-group identity and the ``process.terminate`` undo handler
``failures``    geventhttpclient errors -> ErrorClass (the twin of chaosregistry.oci.failures)

Activities: ``chaosregistry.actions.load`` and ``chaosregistry.probes.load``.
"""
