"""`PhotosView`, the browse page: a toolbar (sort, zoom, count) over a `PhotoGrid`.

It reads photos through `Library.photos()` on a worker thread, because building
100,000 `PhotoRow`s takes ~0.5 s that the GUI thread must not wait for, and
applies changes as row insertions/removals (`models.plan_update`), so a refresh
while a scan adds photos keeps the selection and the scroll position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import (
    QPoint,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QSizePolicy,
    QSlider,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.library import Library
from dino_desktop.core.records import PhotoRow
from dino_desktop.gui.grid import MAX_ZOOM, MIN_ZOOM, PhotoDelegate, PhotoGrid
from dino_desktop.gui.models import (
    PhotoListModel,
    RowsUpdate,
    plan_update,
)
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.workers import describe, reader
from dino_desktop.gui.workers import start as start_worker

__all__ = [
    "MAX_ZOOM",
    "MIN_ZOOM",
    "REFRESH_GAP_S",
    "SORT_CHOICES",
    "PhotoDelegate",
    "PhotoGrid",
    "PhotosView",
]

SORT_CHOICES: Final = (("Date taken", "date"), ("Name", "name"), ("Folder", "folder"))
REFRESH_GAP_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A worker's answer: the photos for (folder, sort) and how to apply them."""

    generation: int
    update: RowsUpdate


class PhotosView(QWidget):
    """The browse page: sort, zoom and count above a `PhotoGrid` of the library's photos.

    `reload(folder_id)` shows a folder (None: all photos) and `refresh()` re-reads
    the current one (call it while a scan runs: the grid fills in place). Both
    read on a worker thread; `rows_loaded` says when the grid shows the result.
    Call `shutdown()` before closing: it waits for a running read.
    """

    selection_changed = Signal(list)  # list[PhotoRow]
    photo_activated = Signal(object)  # PhotoRow
    context_menu_requested = Signal(list, QPoint)  # list[PhotoRow], global position
    rows_loaded = Signal(int)  # the number of photos now shown
    load_failed = Signal(str)  # a message for the user

    def __init__(
        self, library: Library, loader: ThumbnailLoader, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.loader = loader
        self._folder_id: int | None = None
        self._generation = 0  # bumped when folder or sort change: older answers are dropped
        self._reading = False
        self._again = False  # a refresh was asked for while reading
        self._shown_generation = -1  # the generation the grid shows
        self._read_started = 0.0
        self._next_read_at = 0.0  # refreshes wait until then
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.timeout.connect(self._start_read)
        self._scroll_top = False
        # One thread: reads are serialised, and a scan on the global pool
        # cannot hold them up.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)

        self.model = PhotoListModel(loader, parent=self)
        self.grid = PhotoGrid()
        self.grid.setModel(self.model)
        self.grid.setFrameShape(PhotoGrid.Shape.NoFrame)

        self.sort_combo = QComboBox()
        for label, key in SORT_CHOICES:
            self.sort_combo.addItem(label, key)
        self.sort_combo.setToolTip("Order of the photos")
        self.sort_combo.currentIndexChanged.connect(self._on_sort_changed)
        self.zoom_slider = QSlider(Qt.Orientation.Horizontal)
        self.zoom_slider.setRange(MIN_ZOOM, MAX_ZOOM)
        self.zoom_slider.setSingleStep(16)
        self.zoom_slider.setPageStep(32)
        self.zoom_slider.setValue(self.grid.thumbnail_size())
        self.zoom_slider.setFixedWidth(160)
        self.zoom_slider.setToolTip("Thumbnail size")
        self.zoom_slider.valueChanged.connect(self.grid.set_thumbnail_size)
        self.count_label = QLabel()
        self.count_label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)

        toolbar = QToolBar()
        toolbar.setMovable(False)
        toolbar.addWidget(QLabel("Sort by "))
        toolbar.addWidget(self.sort_combo)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        toolbar.addWidget(self.count_label)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel("Size "))
        toolbar.addWidget(self.zoom_slider)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(toolbar)
        layout.addWidget(self.grid, 1)

        # Coalesce: a rubber band changes the selection at every mouse move,
        # the details panel needs to hear about it once per event-loop turn.
        self._selection_timer = QTimer(self)
        self._selection_timer.setSingleShot(True)
        self._selection_timer.setInterval(0)
        self._selection_timer.timeout.connect(self._emit_selection)
        self.grid.photo_activated.connect(self.photo_activated)
        self.grid.context_menu_requested.connect(self.context_menu_requested)
        # The selection model comes with setModel (above) and lives as long as the model.
        selection_model = self.grid.selectionModel()
        assert selection_model is not None
        selection_model.selectionChanged.connect(self._on_selection_changed)
        self._update_count()

    # ---- public API ----------------------------------------------------------

    @property
    def folder_id(self) -> int | None:
        return self._folder_id

    def sort(self) -> str:
        return str(self.sort_combo.currentData())

    def set_sort(self, key: str) -> None:
        """Sort by "date", "name" or "folder" (reloads)."""
        for i, (_, choice) in enumerate(SORT_CHOICES):
            if choice == key:
                self.sort_combo.setCurrentIndex(i)
                return
        raise ValueError(f"unknown sort {key!r}")

    def zoom(self) -> int:
        return self.grid.thumbnail_size()

    def set_zoom(self, size: int) -> None:
        self.zoom_slider.setValue(size)

    def reload(self, folder_id: int | None = None) -> None:
        """Show the photos of one folder (None: the whole library), from the top."""
        self._folder_id = folder_id
        self._generation += 1
        self._scroll_top = True
        self._request()

    def refresh(self) -> None:
        """Re-read the current folder; new and gone photos are inserted/removed in place.

        Cheap to call often (e.g. on every scan progress signal): calls while a
        read runs are merged into one, and reads of the same folder start at
        most every `REFRESH_GAP_S` or twice the last read's time, whichever is
        longer, so that re-reading 100,000 photos never takes over the CPU.
        """
        self._request()

    def is_loading(self) -> bool:
        """Whether a read is running or waiting to start."""
        return self._reading or self._throttle.isActive()

    def photos(self) -> list[PhotoRow]:
        return self.model.rows()

    def selected_photos(self) -> list[PhotoRow]:
        return self.grid.selected_photos()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Wait for a running read (call before the library closes)."""
        self._again = False
        self._throttle.stop()
        return self._pool.waitForDone(timeout_ms)

    # ---- loading ---------------------------------------------------------------

    def _request(self) -> None:
        if self._reading:
            self._again = True  # read once more when this one is done
            return
        if self._generation == self._shown_generation:  # a refresh: mind the pace
            wait = self._next_read_at - time.monotonic()
            if wait > 0:
                if not self._throttle.isActive():
                    self._throttle.start(max(1, round(wait * 1000)))
                return
        self._start_read()

    @Slot()
    def _start_read(self) -> None:
        self._throttle.stop()
        self._again = False
        generation, folder_id, sort = self._generation, self._folder_id, self.sort()
        # A shallow copy: the worker diffs against it while the GUI goes on.
        base_version, base = self.model.version, self.model.rows()
        library = self.library

        def read() -> _Loaded:
            rows = library.photos(folder_id=folder_id, sort=sort)
            return _Loaded(generation, plan_update(base, rows, base_version))

        self._reading = True
        self._read_started = time.monotonic()
        if not self.model.rowCount():
            self.count_label.setText("Loading…")
        # A JobWorker drops its job once run, so no old list outlives its read.
        worker = reader(read)
        worker.signals.finished.connect(self._on_loaded)
        worker.signals.failed.connect(self._on_load_failed)
        start_worker(worker, self._pool)

    @Slot(object)
    def _on_loaded(self, loaded: _Loaded) -> None:
        self._read_done()
        if loaded.generation == self._generation:
            self._shown_generation = loaded.generation
            self.model.apply_update(loaded.update)
            if self._scroll_top:
                self._scroll_top = False
                self.grid.scrollToTop()
            self.grid.set_empty_text(
                "No photos here yet.\nAdd a folder of photos to see them here."
                if self._folder_id is None
                else "No photos in this folder."
            )
            self._update_count()
            self._selection_timer.start()
            self.rows_loaded.emit(self.model.rowCount())
        if self._again or loaded.generation != self._generation:
            self._request()

    def _read_done(self) -> None:
        self._reading = False
        now = time.monotonic()
        self._next_read_at = now + max(REFRESH_GAP_S, 2 * (now - self._read_started))

    @Slot(object)
    def _on_load_failed(self, exc: Exception) -> None:
        self._read_done()
        self.count_label.setText("Could not read the library")
        self.load_failed.emit(describe(exc))
        if self._again:
            self._request()

    @Slot(int)
    def _on_sort_changed(self, _index: int) -> None:
        self._generation += 1
        self._request()

    # ---- selection -------------------------------------------------------------

    @Slot()
    def _on_selection_changed(self) -> None:
        self._selection_timer.start()

    @Slot()
    def _emit_selection(self) -> None:
        selected = self.selected_photos()
        self._update_count(len(selected))
        self.selection_changed.emit(selected)

    def _update_count(self, selected: int = 0) -> None:
        total = self.model.rowCount()
        text = f"{total:,} photo{'' if total == 1 else 's'}"
        if selected:
            text += f" · {selected:,} selected"
        self.count_label.setText(text)
