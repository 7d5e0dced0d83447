"""The main window: folders in a sidebar, the library overview, scanning in the background."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dino_desktop import __version__
from dino_desktop.core import embedder as emb
from dino_desktop.core.library import Library, ScanResult
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.gui.workers import JobWorker, start

REFRESH_S = 2.0
_PHASES = {"walk": "Looking for photos", "index": "Reading", "embed": "Embedding"}


def _import_job(lib: Library, path: str) -> Job[Path]:
    yield Progress("import", 0, 1, path, "checking the weights file")
    return lib.import_weights(path)


def format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class MainWindow(QMainWindow):
    """Folders on the left; the overview with model state and unreadable files in the middle."""

    def __init__(self, library: Library) -> None:
        super().__init__()
        self.library = library
        self.worker: JobWorker | None = None
        self._phase_started: tuple[str | None, float, int] = (None, 0.0, 0)
        self._last_refresh = 0.0
        self.setWindowTitle("DINO Desktop")
        self.resize(1100, 700)

        self.folder_list = QListWidget()
        self.folder_list.currentItemChanged.connect(lambda *_: self._update_buttons())
        add = QPushButton("Add folder…")
        add.clicked.connect(self.choose_folder)
        self.reference_button = QPushButton("Mark as reference")
        self.reference_button.setToolTip(
            "Reference folders are protected: their photos are never offered for removal."
        )
        self.reference_button.clicked.connect(self.toggle_reference)
        self.remove_button = QPushButton("Remove from library")
        self.remove_button.setToolTip("Forget this folder. Files on disk are not touched.")
        self.remove_button.clicked.connect(self.remove_folder)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(QLabel("<b>Folders</b>"))
        side_layout.addWidget(self.folder_list)
        for button in (add, self.reference_button, self.remove_button):
            side_layout.addWidget(button)

        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.import_button = QPushButton("Import model weights…")
        self.import_button.clicked.connect(self.choose_weights)
        self.rescan_button = QPushButton("Rescan all folders")
        self.rescan_button.clicked.connect(lambda: self.start_scan([]))
        self.failed_tree = QTreeWidget()
        self.failed_tree.setHeaderLabels(["File", "Why it could not be read"])
        self.failed_tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.failed_tree.setRootIsDecorated(False)
        center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.addWidget(self.summary)
        row = QHBoxLayout()
        row.addWidget(self.rescan_button)
        row.addWidget(self.import_button)
        row.addStretch(1)
        center_layout.addLayout(row)
        center_layout.addWidget(self.model_label)
        self.failed_heading = QLabel()
        center_layout.addWidget(self.failed_heading)
        center_layout.addWidget(self.failed_tree, 1)
        # Takes the spare height while there is no list of failures to show.
        self.filler = QWidget()
        center_layout.addWidget(self.filler, 1)

        splitter = QSplitter()
        splitter.addWidget(side)
        splitter.addWidget(center)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 800])
        self.setCentralWidget(splitter)

        bar = self.statusBar()
        self.counts_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_job)
        bar.addWidget(self.counts_label)
        bar.addPermanentWidget(self.progress_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self._show_busy(False)
        self.refresh()

    # ---- state ---------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the library (quick reads; writes happen only in workers)."""
        status = self.library.status()
        current = self._current_folder_id()
        self.folder_list.clear()
        for folder in status.folders:
            mark = "  🔒 reference" if folder.is_reference else ""
            item = QListWidgetItem(
                f"{Path(folder.path).name or folder.path}{mark}\n{folder.images} photos"
            )
            item.setToolTip(folder.path)
            item.setData(Qt.ItemDataRole.UserRole, folder.id)
            self.folder_list.addItem(item)
            if folder.id == current:
                self.folder_list.setCurrentItem(item)
        folders = f"{len(status.folders)} folder{'' if len(status.folders) == 1 else 's'}"
        self.summary.setText(
            f"<h2>Your library</h2><p><b>{status.images:,}</b> photos in {folders} · "
            f"<b>{status.embedded:,}</b> understood by the model · {status.pending:,} waiting · "
            f"{status.failed:,} could not be read</p>"
        )
        if status.weights:
            self.model_label.setText(f"Model: {status.model}\nWeights: {status.weights}")
        else:
            spec = emb.get_spec(status.model)
            self.model_label.setText(
                f"Model: {status.model}: weights not installed, so search waits.\n"
                f"Download {spec.meta_url or spec.hf_repo} and import it here "
                "(or run 'dino-desktop model import FILE')."
            )
        self.import_button.setVisible(status.weights is None)
        self.counts_label.setText(
            f"{status.images:,} indexed · {status.pending:,} pending · {status.failed:,} failed"
        )
        failed = list(self.library.images(failed_only=True))
        self.failed_heading.setText(
            f"<b>{len(failed)} files could not be read</b>" if failed else ""
        )
        self.failed_tree.clear()
        self.failed_tree.addTopLevelItems(
            [QTreeWidgetItem([r.path, r.error or ""]) for r in failed]
        )
        self.failed_tree.setVisible(bool(failed))
        self.filler.setVisible(not failed)
        self._update_buttons()

    def _current_folder_id(self) -> int | None:
        item = self.folder_list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def _update_buttons(self) -> None:
        folder_id = self._current_folder_id()
        busy = self.worker is not None
        self.remove_button.setEnabled(folder_id is not None and not busy)
        self.reference_button.setEnabled(folder_id is not None)
        reference = any(f.is_reference for f in self.library.folders() if f.id == folder_id)
        self.reference_button.setText("Unmark reference" if reference else "Mark as reference")
        self.rescan_button.setEnabled(not busy)

    # ---- folders -------------------------------------------------------------

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if path:
            self.start_scan([path])

    def toggle_reference(self) -> None:
        folder_id = self._current_folder_id()
        if folder_id is None:
            return
        reference = any(f.is_reference for f in self.library.folders() if f.id == folder_id)
        self.library.set_reference(folder_id, not reference)
        self.refresh()

    def remove_folder(self) -> None:
        folder_id = self._current_folder_id()
        if folder_id is None:
            return
        answer = QMessageBox.question(
            self,
            "Remove folder",
            "Forget this folder and its photos' index? The files on disk are not touched.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.library.remove_folder(folder_id)
            self.refresh()

    # ---- background work -----------------------------------------------------

    def start_scan(self, paths: list[str]) -> JobWorker | None:
        if self.worker is not None:
            return None
        if paths:
            try:
                for path in paths:
                    self.library.add_folder(path)
            except Exception as exc:
                QMessageBox.warning(self, "Cannot add folder", str(exc))
                return None
            self.refresh()

        def make(token: CancelToken) -> Job[ScanResult]:
            return self.library.scan(paths, cancel=token)

        return self._run(make, self._scan_finished)

    def choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import DINOv2 weights", "", "Weights (*.pth *.pt *.safetensors)"
        )
        if path:
            self._run(lambda _token: _import_job(self.library, path), self._import_finished)

    def _run(self, make: Any, on_finished: Any) -> JobWorker:
        worker = JobWorker(make)
        worker.signals.progressed.connect(self._on_progress)
        worker.signals.finished.connect(on_finished)
        worker.signals.failed.connect(self._on_failed)
        self.worker = worker
        self._phase_started = (None, time.monotonic(), 0)
        self._last_refresh = time.monotonic()
        self._show_busy(True)
        return start(worker)

    def cancel_job(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.progress_label.setText("Stopping…")

    def _on_progress(self, step: Progress) -> None:
        phase, started, first = self._phase_started
        now = time.monotonic()
        if now - self._last_refresh > REFRESH_S:
            # Let the counts grow while a long scan runs (reads only; cheap).
            self._last_refresh = now
            self.refresh()
        if step.phase != phase:
            self._phase_started = (step.phase, now, step.done)
            started, first = now, step.done
        if step.total:
            self.progress.setRange(0, step.total)
            self.progress.setValue(step.done)
        else:
            self.progress.setRange(0, 0)
        text = f"{_PHASES.get(step.phase, step.message or step.phase)} {step.done:,}"
        if step.total:
            text += f" of {step.total:,}"
            rate = (step.done - first) / max(now - started, 1e-6)
            if step.done > first and now - started > 1:
                text += f" · about {format_eta((step.total - step.done) / rate)} left"
        if step.current:
            text += f" · {Path(step.current).name}"
        self.progress_label.setText(text)

    def _finish(self) -> None:
        self.worker = None
        self._show_busy(False)
        self.refresh()

    def _scan_finished(self, result: ScanResult) -> None:
        self._finish()
        note = (
            f"Scan {'stopped' if result.cancelled else 'finished'}: {result.added} new, "
            f"{result.updated} changed, {result.removed} gone, {result.embedded} embedded"
        )
        if result.warnings:
            note += " · " + "; ".join(result.warnings)
        self.statusBar().showMessage(note, 15000)

    def _import_finished(self, path: Path) -> None:
        self._finish()
        self.statusBar().showMessage(f"Weights installed: {path}", 15000)
        if self.library.pending_count():
            self.start_scan([])

    def _on_failed(self, message: str) -> None:
        self._finish()
        QMessageBox.warning(self, "DINO Desktop", message)

    def _show_busy(self, busy: bool) -> None:
        for widget in (self.progress, self.progress_label, self.cancel_button):
            widget.setVisible(busy)
        if not busy:
            self.progress.reset()
            self.progress_label.clear()
        self._update_buttons() if hasattr(self, "rescan_button") else None

    def closeEvent(self, event: QCloseEvent) -> None:
        # Stop a running scan cleanly: what it indexed so far is committed.
        if self.worker is not None:
            self.worker.cancel()
            QThreadPool.globalInstance().waitForDone(30000)
        super().closeEvent(event)

    def about(self) -> None:
        QMessageBox.about(self, "About DINO Desktop", f"DINO Desktop {__version__}")
