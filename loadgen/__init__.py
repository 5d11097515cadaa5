"""chaosregistry.loadgen."""
