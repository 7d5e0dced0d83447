"""Trash and undo for the main window: one file operation at a time, in workers.

A trash moves each photo's companion files (its RAW original, Live Photo video,
sidecars) along with it. What would go is listed first, in a worker
(`Library.goes_with` lists folders: file-system work stays off the GUI thread),
and a trash that takes companions along asks before going on, naming them. A
trash of plain photos goes at once, as before: it is journaled, and Ctrl+Z
brings it back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMessageBox

from dino_desktop.core.progress import Job, Progress
from dino_desktop.core.records import OpResult, PhotoRow
from dino_desktop.gui.common import also_moves, companions_note, plural
from dino_desktop.gui.workers import JobWorker, call, describe, start

if TYPE_CHECKING:
    from dino_desktop.gui.main_window import MainWindow


def _one(step: str, work: Callable[[], OpResult]) -> Job[OpResult]:
    yield Progress(step, 0, None, None, step)
    return work()


def trash_question(n: int, companions: list[str]) -> str:
    """The question before a trash that takes `companions` along with `n` photos."""
    return (
        f"Move {plural(n, 'photo')} and {plural(len(companions), 'companion file')} "
        f"to the trash?\n\n{also_moves(companions)}: they go with their photos "
        "(RAW originals, Live Photo videos, sidecars). You can undo this with Ctrl+Z."
    )


class FileActions:
    """The window's trash and undo; `worker` is the one running (its review included)."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.worker: JobWorker | None = None

    def trash(self, photos: list[PhotoRow]) -> JobWorker | None:
        """Move photos (and what goes with them) to the system trash; journaled.

        Returns the worker that lists the companions: the trash itself starts when
        that arrives (at once, or after the question) and is then `worker`."""
        if not photos or self.worker is not None:
            return None
        paths = [p.path for p in photos]
        library = self.window.library

        def listed(goes_with: dict[str, list[str]]) -> None:
            if self.worker is not reviewing:
                return
            self.worker = None
            others = [p for group in goes_with.values() for p in group]
            if others and not self.confirm(trash_question(len(paths), others)):
                self.window.statusBar().showMessage("Nothing was moved to the trash.", 5000)
                return
            self._run("Moving to trash…", lambda: library.trash(paths), "Moved {n} to the trash")

        def failed(exc: Exception) -> None:
            if self.worker is reviewing:
                self.worker = None
                QMessageBox.warning(self.window, "DINO Desktop", describe(exc))

        # It holds `worker`, so no second trash or undo starts while it lists.
        reviewing = self.worker = call(lambda: library.goes_with(paths), listed, failed)
        return reviewing

    def confirm(self, question: str) -> bool:
        answer = QMessageBox.question(
            self.window,
            "Move to trash",
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Yes,
        )
        return answer == QMessageBox.StandardButton.Yes

    def undo(self) -> JobWorker | None:
        if self.worker is not None:
            return None
        return self._run("Undoing…", self.window.library.undo, "Restored {n}", undo=True)

    def _run(
        self, text: str, work: Callable[[], OpResult], done: str, *, undo: bool = False
    ) -> JobWorker:
        window = self.window
        worker = JobWorker(lambda _token: _one(text, work))
        self.worker = worker
        window.statusBar().showMessage(text)

        def finished(result: OpResult) -> None:
            self.worker = None
            n = plural(len(result.done), "photo") + companions_note(len(result.companions))
            note = done.format(n=n)
            if not undo:
                note += " — Undo with Ctrl+Z"
            for path, reason in result.failed:
                note += f" · not done: {os.path.basename(path)}: {reason}"
            window.statusBar().showMessage(note, 15000)
            window.refresh()
            window.photos_view.refresh()
            if result.done and undo:
                window.start_scan([])  # restored files: index them again (incremental)
            if result.failed:
                QMessageBox.warning(
                    window,
                    "Some files were not changed",
                    "\n".join(f"{path}: {reason}" for path, reason in result.failed[:20]),
                )

        def failed(exc: Exception) -> None:
            self.worker = None
            window.refresh()  # e.g. LibraryBusy, or a reference folder refused: nothing changed
            QMessageBox.warning(window, "DINO Desktop", describe(exc))

        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        return start(worker)
