"""What an experiment file says, checked at the door and parsed once.

``settings`` turns the configuration and secrets into typed, frozen ``Settings`` (the one parser
of the configuration); ``contracts`` reads the domain each activity argument declares on its
signature (``kinds``: the kinds of result a probe declares); ``activity`` is the decorator
every probe and action wears (arguments checked against those contracts, our errors turned
into Chaos Toolkit's ``ActivityFailed``); ``needs`` reads what an activity declares it needs of
the sandbox (for the game day and discovery); ``validate`` checks an experiment and its vars file
before anything runs; ``reference`` writes the documentation site's activity reference from
what those declare. May import the foundations (``errors``, ``redaction``), ``oci`` (image
references), ``observability`` (PromQL, the series extension) and
the settings types of the backends, the ledger and the test beds whose keys it parses; never an
activity module.

Layer: services (may import the package root, protocols and foundations; see docs/architecture.md).
"""
