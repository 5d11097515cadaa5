"""Your own registry in a few minutes: ``chaosregistry init``.

``init.py`` checks a registry the tool does not run (reachability, TLS, auth: one line for
each failure, nothing written), measures a baseline through the fault proxy it declares (pulls
of an image, ``/v2/`` round trips, the certificate's days left) and writes a directory: a vars
file for that registry (credentials by reference, never by value) and experiments whose
tolerances come from the baseline, each stated in a comment (``experiments.py``). ``cli.py`` is
the command (flags for CI, prompts on a terminal).

Layer: runners (may import services, protocols and foundations; see docs/architecture.md).
"""

# The defaults of ``init``'s flags and of ``InitRequest``, here so that the command reads them
# without importing what the baseline needs. 40 pulls, as the shipped experiments' p95 steady
# states take (of 20, the p95 is the second-slowest pull: one stall of a busy machine sets it).
DEFAULT_PULLS = 40
DEFAULT_LOAD_USERS = 4
