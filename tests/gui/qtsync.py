"""Helpers for the GUI tests: deterministic synchronisation (no sleeps) and the
guard that records database access from GUI code on the GUI thread."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import FrameType

from PySide6.QtCore import QCoreApplication

import dino_desktop.gui

_GUI_DIR = str(Path(dino_desktop.gui.__file__).resolve().parent)


def deliver_posted_events() -> None:
    """Deliver every event already posted to the GUI thread (e.g. the queued
    signals of workers whose pool has been waited for), and what those post in
    turn, a few rounds deep."""
    for _ in range(3):
        QCoreApplication.sendPostedEvents()
        QCoreApplication.processEvents()


def _gui_frame(frame: FrameType | None) -> str | None:
    """The innermost frame of GUI code on the stack, as "file:line (function)"."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_GUI_DIR):
            return f"{filename[len(_GUI_DIR) + 1 :]}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return None


class MainThreadDb:
    """Records every database access made on the main thread with GUI code on the
    stack. Test code that builds a library on the main thread is not GUI code."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, what: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        where = _gui_frame(sys._getframe(2))
        if where is not None:
            self.found.append(f"{what} from {where}")
