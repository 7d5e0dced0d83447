"""The main window: sidebar (views, folders), the views, the details panel, the status bar.

Every Library call runs in a `JobWorker` (scans, searches, trash and undo, and
the small reads too: counts, folder lists, what a trash would take along); the
GUI thread only paints what the workers deliver (DESIGN.md §2).

Trash and undo live in gui/file_actions.py (a trash names the companion files
that go along), the status bar's widgets in gui/statusbar.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QPoint, QSettings, Qt, QThreadPool, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QPixmap,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import (
    FolderInfo,
    LibraryError,
    PhotoRow,
    ScanResult,
    SearchHit,
    Status,
)
from dino_desktop.core.thumbnails import PruneResult
from dino_desktop.core.weights import WeightsUnavailable
from dino_desktop.gui.about import about_html
from dino_desktop.gui.common import format_eta, progress_text
from dino_desktop.gui.compare import CompareDialog
from dino_desktop.gui.details import DetailsPanel
from dino_desktop.gui.dialogs import SettingsDialog, WeightsDialog
from dino_desktop.gui.failed_dialog import FailedFilesDialog, LooseFilesDialog
from dino_desktop.gui.file_actions import FileActions
from dino_desktop.gui.live import LiveFolders
from dino_desktop.gui.menus import build_menus
from dino_desktop.gui.offline import FOLDER_ROLE, Relocation, folder_item
from dino_desktop.gui.pasted import PastedImages
from dino_desktop.gui.shared import ConnectDialog, OtherClients
from dino_desktop.gui.statusbar import StatusWidgets, scan_summary
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.viewer import ImageViewer
from dino_desktop.gui.views.browse import PhotosView
from dino_desktop.gui.views.duplicates import DuplicatesView
from dino_desktop.gui.views.folders import FoldersView
from dino_desktop.gui.views.search import SimilarView, image_paths_of
from dino_desktop.gui.views.sorting import SortView
from dino_desktop.gui.workers import JobWorker, call, describe, start

__all__ = ["MainWindow", "format_eta"]

REFRESH_S = 2.0
_PHASES = {"walk": "Looking for photos", "index": "Reading", "embed": "Embedding"}


def _one(step: str, work: Callable[[], Any]) -> Job[Any]:
    """A job of one step, for short work that must still stay off the GUI thread."""
    yield Progress(step, 0, None, None, step)
    return work()


class MainWindow(QMainWindow):
    """Folders and views on the left, photos in the middle, details on the right."""

    # Another library opened from this window (File > Connect to a shared library…):
    # the app shows it in a new window and closes this one.
    library_chosen = Signal(object)

    def __init__(
        self, library: Library, *, scan_on_start: bool = True, prompt_for_weights: bool = True
    ) -> None:
        super().__init__()
        self.library = library
        self.prompt_for_weights = prompt_for_weights
        self.worker: JobWorker | None = None  # the scan (one at a time)
        self.search_worker: JobWorker | None = None
        self.file_actions = FileActions(self)  # trash / undo, one at a time
        self.prune_worker: JobWorker | None = None  # thumbnail cache clean-up
        self._pruned = False  # once a session, after the first scan
        self.viewer: ImageViewer | None = None
        self._weights_prompted = False
        self._phase_started: tuple[str | None, float, int] = (None, 0.0, 0)
        self._last_refresh = 0.0
        self._folders: list[FolderInfo] = []
        self._status: Status | None = None  # the last counts read, for the buttons and About
        self.status_worker: JobWorker | None = None  # the counts read in flight
        self._refresh_again = False  # a refresh asked for while one was reading
        self._scan_on_start = scan_on_start
        self._adding = False  # the running scan adds folders (its failure says so)
        self.failed_dialog: FailedFilesDialog | None = None
        self.loose_dialog: LooseFilesDialog | None = None
        self.pasted = PastedImages(library.paths.cache_dir)
        self.setWindowTitle("DINO Desktop")
        self.setAcceptDrops(True)
        self.resize(1280, 800)

        self.loader = ThumbnailLoader(library.paths.cache_dir, parent=self)
        self.photos_view = PhotosView(library, self.loader)
        self.similar_view = SimilarView(self.loader)
        self.duplicates_view = DuplicatesView(library, self.loader)
        self.duplicates_view.files_changed.connect(self._files_changed)
        self.duplicates_view.why_requested.connect(self._why_they_match)
        self.duplicates_view.status_message.connect(
            lambda text: self.statusBar().showMessage(text, 15000)
        )
        self.details = DetailsPanel(library)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.photos_view)
        self.stack.addWidget(self.similar_view)
        self.stack.addWidget(self.duplicates_view)
        self.folders_view = FoldersView(library, self.loader)
        self.folders_view.files_changed.connect(self._files_changed)
        self.folders_view.status_message.connect(
            lambda text: self.statusBar().showMessage(text, 15000)
        )
        self.stack.addWidget(self.folders_view)
        self.sorting_view = SortView(library, self.loader)
        self.sorting_view.files_changed.connect(self._files_changed)
        self.sorting_view.status_message.connect(
            lambda text: self.statusBar().showMessage(text, 15000)
        )
        self.stack.addWidget(self.sorting_view)
        for view in (self.photos_view, self.similar_view):
            view.selection_changed.connect(self._show_details)
            view.photo_activated.connect(self.open_viewer)
            view.context_menu_requested.connect(self._context_menu)
        self.similar_view.search_requested.connect(self.search_file)
        self.loader.thumbnail_loaded.connect(self._thumbnail_arrived)

        self._build_sidebar()
        splitter = QSplitter()
        splitter.addWidget(self.sidebar)
        splitter.addWidget(self.stack)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 760, 280])
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self._build_status_bar()
        self.live = LiveFolders(self)  # watches the folders while settings.watch_folders
        self.others = OtherClients(self)  # a shared library: other clients' changes show
        self.rescan_action, self.undo_action = build_menus(self)
        self._restore_geometry()
        self.refresh()
        self.photos_view.reload(None)
        QTimer.singleShot(0, self.pasted.remove_old)

    # ---- building --------------------------------------------------------------

    def _build_sidebar(self) -> None:
        self.view_list = QListWidget()
        from dino_desktop.gui.theme import add_view_items  # (local: a packaging-only edit)

        add_view_items(
            self.view_list, ["Photos", "Similar", "Duplicates", "Auto-folders", "Sort by example"]
        )
        self.view_list.setMaximumHeight(128)
        self.view_list.currentRowChanged.connect(self._view_changed)
        self.folder_list = QListWidget()
        self.folder_list.setSpacing(2)  # two-line items: keep each folder apart
        self.folder_list.currentItemChanged.connect(self._folder_chosen)
        self.folder_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.folder_list.customContextMenuRequested.connect(self._folder_menu)
        add = QPushButton("Add folder…")
        add.clicked.connect(self.choose_folder)
        self.reference_button = QPushButton("Reference folder")
        self.reference_button.setCheckable(True)
        self.reference_button.setToolTip(
            "Reference folders are protected: their photos are never moved or trashed."
        )
        self.reference_button.clicked.connect(self.toggle_reference)
        self.remove_button = QPushButton("Remove from library")
        self.remove_button.setToolTip("Forget this folder. Files on disk are not touched.")
        self.remove_button.clicked.connect(self.remove_folder)
        buttons = QWidget()
        row = QVBoxLayout(buttons)
        row.setContentsMargins(0, 0, 0, 0)
        self.relocation = Relocation(self)  # offline folders: Relocate…, the same drive
        for button in (add, *self.relocation.buttons(), self.reference_button, self.remove_button):
            row.addWidget(button)
        self.sidebar = QWidget()
        layout = QVBoxLayout(self.sidebar)
        layout.setContentsMargins(6, 6, 0, 6)
        layout.addWidget(QLabel("<b>Library</b>"))
        layout.addWidget(self.view_list)
        layout.addWidget(QLabel("<b>Folders</b>"))
        layout.addWidget(self.folder_list, 1)
        layout.addWidget(buttons)
        self.view_list.setCurrentRow(0)

    def _build_status_bar(self) -> None:
        parts = StatusWidgets(
            self.statusBar(),
            show_failed=self.show_failed_files,
            show_loose=self.show_loose_files,
            cancel=self.cancel_job,
        )
        self.status_widgets = parts
        self.counts_label, self.failed_button = parts.counts_label, parts.failed_button
        self.loose_button = parts.loose_button
        self.progress, self.progress_label = parts.progress, parts.progress_label
        self.cancel_button = parts.cancel_button
        self._show_busy(False)

    # ---- state -----------------------------------------------------------------

    def refresh(self) -> JobWorker | None:
        """Re-read counts and folders in a worker (~0.1 s at 100,000 photos); the
        sidebar and status bar follow when they arrive. A refresh asked for while
        one is reading runs once that one is done. Returns the read started, if any."""
        if self.status_worker is not None:
            self._refresh_again = True
            return None
        self._refresh_again = False
        library = self.library
        worker = call(library.status, self._status_read, self._status_failed)
        self.status_worker = worker
        return worker

    def _status_failed(self, exc: Exception) -> None:
        self.status_worker = None
        self.counts_label.setText(f"Could not read the library: {describe(exc)}")
        if self._refresh_again:
            self.refresh()

    def _status_read(self, status: Status) -> None:
        self.status_worker = None
        first = self._status is None
        self._status = status
        if self._refresh_again:
            self.refresh()
        self._show_status(status)
        self.live.folders_known(status.folders)  # watched anew when they changed
        if first and self._scan_on_start and status.folders:
            # Start-up rescan: incremental, so unchanged libraries cost one stat per file.
            self.start_scan([])

    def _show_status(self, status: Status) -> None:
        # Kept for the buttons (reference state) between reads.
        self._folders = status.folders
        current = self._current_folder_id()
        self.folder_list.blockSignals(True)
        self.folder_list.clear()
        everything = QListWidgetItem(f"All photos\n{status.images:,} photos")
        everything.setData(FOLDER_ROLE, None)
        self.folder_list.addItem(everything)
        self.folder_list.setCurrentItem(everything)
        for folder in status.folders:  # an offline one greyed, with why (gui/offline.py)
            item = folder_item(folder, self.folder_list.palette())
            self.folder_list.addItem(item)
            if folder.id == current:
                self.folder_list.setCurrentItem(item)
        self.folder_list.blockSignals(False)
        self.status_widgets.show_counts(status)
        self._update_actions()

    def _current_folder_id(self) -> int | None:
        item = self.folder_list.currentItem()
        if item is None:
            return None
        value = item.data(FOLDER_ROLE)
        return None if value is None else int(value)

    def current_folder(self) -> FolderInfo | None:
        """The folder chosen in the sidebar (as last read), None for "All photos"."""
        folder_id = self._current_folder_id()
        return next((f for f in self._folders if f.id == folder_id), None)

    def _update_actions(self) -> None:
        folder_id = self._current_folder_id()
        busy = self.worker is not None
        self.relocation.update(self.current_folder(), busy=busy)
        self.remove_button.setEnabled(folder_id is not None and not busy)
        self.reference_button.setEnabled(folder_id is not None)
        reference = any(f.is_reference for f in self._folders if f.id == folder_id)
        self.reference_button.setChecked(reference)
        self.rescan_action.setEnabled(not busy)

    def _view_changed(self, index: int) -> None:
        self.stack.setCurrentIndex(index)
        if self.stack.currentWidget() is self.sorting_view:
            self.sorting_view.reload()  # example counts follow scans made meanwhile
        # The details panel follows the selection of the view in front.
        selected = self._selected()
        self._show_details(selected)

    def show_view(self, index: int) -> None:
        self.view_list.setCurrentRow(index)

    def _active_view(self) -> PhotosView | SimilarView:
        return (
            self.similar_view
            if self.stack.currentWidget() is self.similar_view
            else self.photos_view
        )

    def _selected(self) -> list[PhotoRow]:
        # The Duplicates view has its own marks and actions: photo actions (Delete,
        # Ctrl+F) must never reach a selection the user cannot see.
        if self.stack.currentWidget() in (
            self.duplicates_view,
            self.folders_view,
            self.sorting_view,
        ):
            return []
        return self._active_view().selected_photos()

    def _show_details(self, photos: list[PhotoRow]) -> None:
        preview = self.loader.pixmap(photos[0]) if len(photos) == 1 else None
        self.details.show_photos(photos, preview)

    def _thumbnail_arrived(self, image_id: int, _image: Any) -> None:
        selected = self._selected()
        if len(selected) == 1 and selected[0].id == image_id:
            self.details.set_preview(self.loader.pixmap(selected[0]))

    # ---- folders -----------------------------------------------------------------

    def _folder_chosen(self, *_args: Any) -> None:
        self.photos_view.reload(self._current_folder_id())
        self.show_view(0)
        self._update_actions()
        self.relocation.folder_chosen(self.current_folder())  # offline: says so

    def _folder_menu(self, pos: QPoint) -> None:
        if self._current_folder_id() is None:
            return
        menu = QMenu(self)
        menu.addAction("Rescan", lambda: self.start_scan([]))
        menu.addAction("Toggle reference", self.toggle_reference)
        menu.addAction("Remove from library", self.remove_folder)
        self.relocation.add_to_menu(menu, self.current_folder())
        menu.exec(self.folder_list.mapToGlobal(pos))

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder of photos")
        if path:
            self.start_scan([path])

    def toggle_reference(self) -> None:
        folder_id = self._current_folder_id()
        if folder_id is None:
            return
        reference = any(f.is_reference for f in self._folders if f.id == folder_id)
        library = self.library
        call(
            lambda: library.set_reference(folder_id, not reference),
            lambda _none: self.refresh(),
            self._show_failure,
        )

    def _show_failure(self, exc: Exception) -> None:
        QMessageBox.warning(self, "DINO Desktop", describe(exc))

    def remove_folder(self) -> None:
        folder_id = self._current_folder_id()
        if folder_id is None or self.worker is not None:
            return
        answer = QMessageBox.question(
            self,
            "Remove folder",
            "Forget this folder and its photos' index? The files on disk are not touched.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.forget_folder(folder_id)

    def forget_folder(self, folder_id: int) -> JobWorker:
        """Remove a folder from the library (no question asked), in a worker."""
        library = self.library

        def removed(_none: None) -> None:
            self.refresh()
            self.photos_view.reload(None)

        return call(lambda: library.remove_folder(folder_id), removed, self._show_failure)

    def show_failed_files(self) -> JobWorker:
        """The unreadable files with their reasons (read in a worker, then shown)."""
        library = self.library

        def show(records: list[Any]) -> None:
            dialog = FailedFilesDialog(records, self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.open()
            self.failed_dialog = dialog

        return call(lambda: list(library.images(failed_only=True)), show, self._show_failure)

    def show_loose_files(self) -> JobWorker:
        """The videos and sidecars that go with no photo (read in a worker, then shown)."""
        library = self.library

        def show(loose: tuple[list[str], list[str]]) -> None:
            dialog = LooseFilesDialog(*loose, parent=self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.open()
            self.loose_dialog = dialog

        return call(
            lambda: (library.loose_files("video"), library.loose_files("orphan")),
            show,
            self._show_failure,
        )

    # ---- scanning ----------------------------------------------------------------

    def start_scan(self, paths: list[str]) -> JobWorker | None:
        """Add `paths` (none: rescan all) and scan in the background; one scan at a time."""
        if self.worker is not None:
            return None
        library = self.library

        def make(token: CancelToken) -> Job[ScanResult]:
            return library.scan(paths, cancel=token)  # adds `paths` first, in the worker

        self._adding = bool(paths)
        # New folders show in the sidebar with the first progress (they are added
        # in the worker); a rescan refreshes every REFRESH_S as before.
        return self.run_scan_job(make, self._scan_finished, self._scan_failed, soon=bool(paths))

    def run_scan_job(
        self,
        make: Callable[[CancelToken], Job[ScanResult]],
        finished: Callable[[ScanResult], object],
        failed: Callable[[Exception], object],
        *,
        soon: bool = False,
    ) -> JobWorker:
        """Run a scan (a rescan, added folders, a live batch: gui/live.py) the one way:
        progress and Cancel in the status bar, `self.worker` while it runs; the views
        refresh as it goes (the first time at once when `soon`)."""
        worker = JobWorker(make)
        worker.signals.progressed.connect(self._on_progress)
        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        self.worker = worker
        self._phase_started = (None, time.monotonic(), 0)
        self._last_refresh = 0.0 if soon else time.monotonic()
        self._show_busy(True)
        return start(worker)

    def cancel_job(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.progress_label.setText("Stopping…")

    def _on_progress(self, step: Progress) -> None:
        phase, started, first = self._phase_started
        now = time.monotonic()
        embedding_starts = step.phase == "embed" and phase != "embed"
        if now - self._last_refresh > REFRESH_S or embedding_starts:
            # The grid and the counts grow while a long scan runs (reads, throttled),
            # and show what the walk found as soon as embedding starts (live batches).
            self._last_refresh = now
            self.refresh()
            self.photos_view.refresh()
        if step.phase != phase:
            self._phase_started = (step.phase, now, step.done)
            started, first = now, step.done
        if step.total:
            self.progress.setRange(0, step.total)
            self.progress.setValue(step.done)
        else:
            self.progress.setRange(0, 0)
        phase_name = _PHASES.get(step.phase, step.message or step.phase)
        self.progress_label.setText(progress_text(phase_name, step, now - started, first))

    def scan_ended(self) -> None:
        """A scan job is over (finished or failed): the strip goes, the counts follow."""
        self.worker = None
        self._show_busy(False)
        self.refresh()

    def _scan_finished(self, result: ScanResult, note: str | None = None) -> None:
        """After a scan: the views refresh, the summary (or `note`; "" for none) shows."""
        self.scan_ended()
        self.photos_view.refresh()
        note = scan_summary(result) if note is None else note
        if note:
            self.statusBar().showMessage(note, 15000)
        if self.stack.currentWidget() is self.duplicates_view and self.duplicates_view.groups():
            self.duplicates_view.find()  # files came back or changed (e.g. after undo)
        if result.weights_missing and result.pending and self.prompt_for_weights:
            self.ask_for_weights()
        if not result.cancelled and (result.updated or result.removed or not self._pruned):
            # Changed and removed photos (and those trashed or moved meanwhile) leave
            # thumbnails behind: clear them out, quietly, in the background.
            self.prune_thumbnails(quiet=True)

    def prune_thumbnails(self, quiet: bool = False) -> JobWorker | None:
        """Delete cached thumbnails no photo asks for any more, in a worker (never
        photos). None when one is running already."""
        if self.prune_worker is not None:
            return None
        self._pruned = True
        worker = JobWorker(lambda token: self.library.prune_thumbnails(token))
        self.prune_worker = worker

        def finished(result: PruneResult) -> None:
            self.prune_worker = None
            if not quiet:  # the automatic one leaves the scan's summary in view
                self.statusBar().showMessage(
                    f"Thumbnail cache: removed {result.removed:,} stale thumbnail"
                    f"{'' if result.removed == 1 else 's'} "
                    f"({result.freed_bytes / 1e6:,.1f} MB), kept {result.kept:,}",
                    15000,
                )

        def failed(exc: Exception) -> None:
            self.prune_worker = None
            if not quiet:
                self.statusBar().showMessage(
                    f"Could not clean up the thumbnail cache: {describe(exc)}", 15000
                )

        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        if not quiet:
            self.statusBar().showMessage("Cleaning up the thumbnail cache…")
        return start(worker)

    def _scan_failed(self, exc: Exception) -> None:
        self.scan_ended()
        if isinstance(exc, OSError | LibraryError) and self._adding:
            QMessageBox.warning(self, "Cannot add folder", describe(exc))
        else:
            QMessageBox.warning(self, "Scan stopped", describe(exc))

    def _show_busy(self, busy: bool) -> None:
        self.status_widgets.show_busy(busy)
        if hasattr(self, "rescan_action"):
            self._update_actions()

    # ---- the model ---------------------------------------------------------------

    def weights_installed(self) -> bool:
        try:
            self.library.weights_path()
        except WeightsUnavailable:
            return False
        return True

    def ask_for_weights(self) -> WeightsDialog | None:
        """Offer to download or import the weights (once per session unless asked again)."""
        if self._weights_prompted:
            return None
        self._weights_prompted = True
        dialog = WeightsDialog(self.library, self)
        dialog.weights_installed.connect(lambda _path: self._weights_arrived())
        dialog.open()
        return dialog

    def _weights_arrived(self) -> None:
        self.statusBar().showMessage("Model weights installed: computing embeddings…", 10000)
        self.library.save_settings()  # forget any model built before
        self.refresh()
        if self.worker is None:
            self.start_scan([])

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.library, self)
        if dialog.exec():
            self.live.setting_changed()  # watching folders turned on or off
            if dialog.runtime_changed:
                self._weights_arrived()
            if dialog.keeper_changed and self.duplicates_view.groups():
                # Groups already found keep the keepers of the old rules until searched again.
                self.statusBar().showMessage(
                    "Keeper rules changed: press Find duplicates to apply them", 15000
                )

    # ---- similarity search ---------------------------------------------------------

    def find_similar_selected(self) -> None:
        photos = self._selected()
        if photos:
            self.find_similar(photos[0])

    def find_similar(self, photo: PhotoRow) -> JobWorker | None:
        return self._search(
            lambda: self.library.search(photo.path, top=self.similar_view.top()),
            f"Photos like <b>{os.path.basename(photo.path)}</b>",
            self.loader.pixmap(photo),
        )

    def search_file(self, path: str) -> JobWorker | None:
        return self._search(
            lambda: self.library.search(path, top=self.similar_view.top()),
            f"Photos like <b>{os.path.basename(path)}</b> ({os.path.dirname(path)})",
            QPixmap(path),
        )

    def search_region(self, path: str, box: tuple[int, int, int, int]) -> JobWorker | None:
        left, top, right, bottom = box
        return self._search(
            lambda: self.library.search_region(path, box, top=self.similar_view.top()),
            f"Photos like a region of <b>{os.path.basename(path)}</b> "
            f"({right - left} × {bottom - top} px)",
            None,
        )

    def _search(
        self, run: Callable[[], list[SearchHit]], title: str, query: QPixmap | None
    ) -> JobWorker | None:
        if not self.weights_installed():
            self._weights_prompted = False  # asked for by the user: always offer
            self.ask_for_weights()
            return None
        if self.search_worker is not None:
            self.search_worker.cancel()  # its result is ignored below
        library = self.library

        def job() -> list[tuple[PhotoRow, float, bool]]:
            hits = run()
            rows = library.photos_by_id(h.image_id for h in hits)
            return [(rows[h.image_id], h.score, h.offline) for h in hits if h.image_id in rows]

        worker = JobWorker(lambda _token: _one("Searching…", job))
        self.search_worker = worker
        self.show_view(1)
        self.similar_view.show_busy(f"{title}: searching…", query)

        def finished(results: list[tuple[PhotoRow, float, bool]]) -> None:
            if self.search_worker is not worker:
                return  # a newer search replaced this one
            self.search_worker = None
            self.similar_view.show_results(
                f"{title}: {len(results)} most similar",
                [r for r, _, _ in results],
                [s for _, s, _ in results],
                query,
                offline={r.id for r, _, offline in results if offline},
            )

        def failed(exc: Exception) -> None:
            if self.search_worker is worker:
                self.search_worker = None
                self.similar_view.show_message(f"{title}: {describe(exc)}")

        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        return start(worker)

    def paste(self) -> None:
        """Search by an image on the clipboard: a copied file, or image data."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime.hasUrls():
            for url in mime.urls():
                if url.isLocalFile():
                    self.search_file(url.toLocalFile())
                    return
        if mime.hasImage():
            image = QGuiApplication.clipboard().image()
            if not image.isNull():
                # Only the current search's image is kept (the viewer may open it).
                self.search_file(str(self.pasted.save(image)))
                return
        self.statusBar().showMessage("The clipboard holds no image to search by.", 5000)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if image_paths_of(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = image_paths_of(event)
        if paths:
            event.acceptProposedAction()
            self.search_file(paths[0])

    # ---- photos: open, show, trash, undo ---------------------------------------------

    def _open_selected(self) -> None:
        photos = self._selected()
        if photos:
            self.open_viewer(photos[0])

    def open_viewer(self, photo: PhotoRow) -> ImageViewer:
        rows = (
            self.similar_view.results()
            if self.stack.currentWidget() is self.similar_view
            else self.photos_view.photos()
        )
        paths = [r.path for r in rows] or [photo.path]
        index = next((i for i, r in enumerate(rows) if r.id == photo.id), 0)
        if self.viewer is not None:
            self.viewer.close()
        viewer = ImageViewer(paths, index, self, library=self.library)
        viewer.region_selected.connect(lambda path, box: self.search_region(path, tuple(box)))
        viewer.find_similar_requested.connect(self._find_similar_path)
        viewer.resize(self.size() * 0.9)
        viewer.show()
        self.viewer = viewer
        return viewer

    def compare_selected(self) -> None:
        photos = self._selected()
        if not 2 <= len(photos) <= 8:
            self.statusBar().showMessage("Select 2 to 8 photos to compare their features.", 5000)
            return
        self.compare(photos)

    def compare(self, photos: list[PhotoRow]) -> CompareDialog | None:
        """Side by side with one joint PCA of their patch features: same parts, same colours."""
        if not self.weights_installed():
            self._weights_prompted = False
            self.ask_for_weights()
            return None
        dialog = CompareDialog(self.library, [p.path for p in photos], self)
        dialog.resize(self.size() * 0.9)
        dialog.show()
        return dialog

    def _files_changed(self) -> None:
        self.refresh()
        self.photos_view.refresh()

    def _why_they_match(self, paths: list[str]) -> None:
        if not self.weights_installed():
            self._weights_prompted = False
            self.ask_for_weights()
            return
        dialog = CompareDialog(self.library, paths[:8], self)
        dialog.setWindowTitle("Why they match: their features side by side")
        dialog.resize(self.size() * 0.9)
        dialog.show()

    def _find_similar_path(self, path: str) -> None:
        self.search_file(path)

    def _context_menu(self, photos: list[PhotoRow], pos: QPoint) -> None:
        if not photos:
            return
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.open_viewer(photos[0]))
        similar = (
            "More like this" if self.stack.currentWidget() is self.similar_view else "Find similar"
        )
        menu.addAction(similar, lambda: self.find_similar(photos[0]))
        if 2 <= len(photos) <= 8:
            menu.addAction("Compare features", lambda: self.compare(photos))
        self._add_label_menu(menu, photos)
        menu.addSeparator()
        menu.addAction("Show in folder", lambda: self._show_in_folder(photos))
        menu.addAction("Open with system viewer", lambda: self._open_external(photos))
        menu.addSeparator()
        label = "Move to trash" if len(photos) == 1 else f"Move {len(photos)} photos to trash"
        menu.addAction(label, lambda: self.trash(photos))
        menu.exec(pos)

    def _add_label_menu(self, menu: QMenu, photos: list[PhotoRow]) -> None:
        """ "Example of" ▸ the sort-by-example labels, and a new one: label while browsing."""
        sub = menu.addMenu("Example of (sort by example)")
        # The labels the Sort by example view last read (it reads them in a worker).
        for label_id, name in self.sorting_view.label_names():
            action = sub.addAction(name)
            action.triggered.connect(
                lambda _checked=False, lid=label_id: self.label_as(photos, lid)
            )
        sub.addSeparator()
        sub.addAction("New label…", lambda: self._label_as_new(photos))

    def label_as(self, photos: list[PhotoRow], label_id: int) -> JobWorker:
        """Make photos examples of a sort-by-example label (in a worker)."""
        return self.sorting_view.label_as([p.id for p in photos], label_id)

    def _label_as_new(self, photos: list[PhotoRow]) -> None:
        from PySide6.QtWidgets import QInputDialog

        name, ok = QInputDialog.getText(self, "New label", "Label name:")
        if ok and name.strip():
            self.sorting_view.new_label(name, lambda label: self.label_as(photos, label.id))

    def _show_in_folder(self, photos: list[PhotoRow]) -> None:
        if photos:
            QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(photos[0].path)))

    def _open_external(self, photos: list[PhotoRow]) -> None:
        for photo in photos[:10]:
            QDesktopServices.openUrl(QUrl.fromLocalFile(photo.path))

    @property
    def file_worker(self) -> JobWorker | None:
        """The trash or undo running (or a trash's listing of its companions)."""
        return self.file_actions.worker

    def trash(self, photos: list[PhotoRow]) -> JobWorker | None:
        """Move photos and their companion files to the system trash (see FileActions)."""
        return self.file_actions.trash(photos)

    def undo(self) -> JobWorker | None:
        return self.file_actions.undo()

    # ---- window --------------------------------------------------------------------

    def _settings(self) -> QSettings:
        return QSettings("DINO Desktop", "DINO Desktop")

    def _restore_geometry(self) -> None:
        settings = self._settings()
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = settings.value("window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def closeEvent(self, event: QCloseEvent) -> None:
        settings = self._settings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/splitter", self.splitter.saveState())
        self.live.shutdown()  # no more batches; the watcher's threads end now
        self.others.shutdown()
        # Stop a running scan cleanly: what it indexed so far is committed.
        for worker in (self.worker, self.search_worker, self.file_worker, self.prune_worker):
            if worker is not None:
                worker.cancel()
        if self.viewer is not None:
            self.viewer.close()
        QThreadPool.globalInstance().waitForDone(30000)
        self.pasted.forget()
        self.photos_view.shutdown()
        self.loader.shutdown()
        super().closeEvent(event)

    def connect_shared(self) -> ConnectDialog:
        dialog = ConnectDialog(self, self.library.paths.url or "")
        dialog.connected.connect(self.library_chosen.emit)
        dialog.open()
        return dialog

    def about(self) -> None:
        # The model from the library, the weights from the last counts read (no SQL here).
        weights = self._status.weights if self._status is not None else None
        QMessageBox.about(  # shows the application icon (set by gui.app)
            self,
            "About DINO Desktop",
            about_html(self.library.model_name, weights, self.library.paths),
        )
