"""Read-only measurements of a registry. Probes never change state."""
