"""The busy strip of the sorting views: a progress bar, what is happening, Cancel.

Auto-folders and Sort by example run the same kinds of jobs (sort, export) and
show them the same way; this holds that once, with the status line an export
leaves behind (files written, and the companion files written with them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import OpResult
from dino_desktop.gui.common import companions_note, plural
from dino_desktop.gui.workers import JobWorker, describe


def export_message(result: OpResult) -> str:
    """The status line after an export: how many files (and companion files written
    with them), stopped or not, what failed."""
    with_them = companions_note(len(result.companions))
    note = f"Wrote {plural(len(result.moved), 'file')}{with_them} — Undo with Ctrl+Z"
    if result.cancelled:
        note = "Export stopped: " + note
    if result.failed:
        note += f" · {plural(len(result.failed), 'file')} not written"
    for line in result.notes:
        note += f" · {line}"
    return note


def export_worker(
    make_job: Callable[[CancelToken], Job[Any]],
    *,
    progressed: Callable[[Progress], None],
    ended: Callable[[], None],
    status: SignalInstance,
    files_changed: SignalInstance,
) -> JobWorker:
    """A worker for an export job, not started: progress goes to `progressed`; at the
    end `ended` runs, then the status line is sent and, if files were written,
    `files_changed`."""
    worker = JobWorker(make_job)

    def finished(result: OpResult) -> None:
        ended()
        status.emit(export_message(result))
        if result.moved:
            files_changed.emit()

    def failed(exc: Exception) -> None:
        ended()
        status.emit(f"Nothing was exported: {describe(exc)}")

    worker.signals.progressed.connect(progressed)
    worker.signals.finished.connect(finished)
    worker.signals.failed.connect(failed)
    return worker


class JobStrip(QWidget):
    """Hidden when idle; `busy` shows it, `show_step` follows a job's Progress."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setFixedWidth(240)
        self.label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        # Bar and Cancel stay put while the text (a file name, ten times a second)
        # changes: the text comes last on its row.
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.label, 1)
        self.setVisible(False)

    def busy(self, text: str, *, cancellable: bool = True) -> None:
        self.bar.setRange(0, 0)
        self.label.setText(text)
        self.cancel_button.setVisible(cancellable)
        self.setVisible(True)

    def idle(self) -> None:
        self.setVisible(False)
        self.bar.reset()

    def stopping(self) -> None:
        self.label.setText("Stopping…")

    def show_step(self, step: Progress) -> None:
        if step.total:
            self.bar.setRange(0, step.total)
            self.bar.setValue(step.done)
        else:
            self.bar.setRange(0, 0)
        if step.phase == "export" and step.total:
            name = os.path.basename(step.current) if step.current else ""
            if len(name) > 32:
                name = name[:20] + "…" + name[-11:]
            text = f"Exporting {step.done + 1:,} of {step.total:,}"
            self.label.setText(f"{text} — {name}" if name else text)
        elif step.message:
            self.label.setText(step.message)
