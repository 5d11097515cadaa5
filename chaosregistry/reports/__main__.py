"""``python -m chaosregistry.reports report|trend ...``."""

from chaosregistry.reports.cli import main

main()
