"""Deterministic synchronisation for GUI tests (no sleeps)."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication


def deliver_posted_events() -> None:
    """Deliver every event already posted to the GUI thread (e.g. the queued
    signals of workers whose pool has been waited for), and what those post in
    turn, a few rounds deep."""
    for _ in range(3):
        QCoreApplication.sendPostedEvents()
        QCoreApplication.processEvents()
