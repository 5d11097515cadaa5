"""chaosregistry.reports."""
