"""Snapshot tests run on a small real ledger built by real syncs (`tests/ledger/synced.py`)."""

from tests.ledger.synced import ledger

__all__ = ["ledger"]
