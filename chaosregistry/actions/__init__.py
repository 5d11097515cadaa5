"""Faults and their undo partners. Every fault goes through the fault ledger.

Layer: activities (may import services, protocols and foundations; see docs/architecture.md).
"""
