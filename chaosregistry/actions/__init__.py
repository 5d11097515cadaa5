"""Faults and their undo partners. Every fault goes through the fault ledger."""
