"""The Auto-folders view: sort the library into folders by content, correct them, export them.

"Sort into folders" runs `Library.cluster_keeping_names` (k-means over the stored
embeddings; folders that continue named ones keep their names) in a
`JobWorker`. The folders are listed one a row (name, size, up to six
representative thumbnails); opening one shows its photos in a `PhotoGrid`.
The user corrects the machine: rename (F2 or double-click the name), merge two
folders, move photos to another folder (context menu or "Move to folder…"),
exclude photos, and accept the new photos filed since the run. Those edits
read and recentre vectors, so they run in workers; a rename writes one row and
shows at once.

What the view shows is read in workers too: the saved run, the new photos and
the strip rows when the view is first shown and after every change (~0.5 s at
100,000 photos), and an opened folder's rows. A newer read replaces an older
one still running; `loading()` says whether one is.

"Export…" previews exactly what `Library.export_plan` will write (source →
destination, with each photo's companion files: `plan_with_companions`, in the
same worker; the dialog is in export_preview.py) and then runs
`Library.export_clusters` in a worker; the export is journaled, so Ctrl+Z in the
main window undoes it.

Moving photos is offered through a context menu and a button, not by drag and
drop: `PhotoListModel` has no drag support yet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QIcon,
    QImage,
    QKeySequence,
    QPainter,
    QPixmap,
    QShortcut,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.clusters import REPRESENTATIVES, Cluster, ClusterRun, NewPhoto
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import PhotoRow
from dino_desktop.gui.common import escape_html, plural
from dino_desktop.gui.grid import PhotoGrid
from dino_desktop.gui.models import PhotoListModel, dragged_photo_ids
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.export_preview import (
    ExportPreviewDialog,
    PreviewPlan,
    export_mode_combo,
)
from dino_desktop.gui.views.jobstrip import JobStrip, export_worker
from dino_desktop.gui.workers import JobWorker, alive, call, describe, reader, start

__all__ = ["ExportPreviewDialog", "FoldersView", "export_mode_combo"]

# What a reload reads: the latest run, the new photos, the strip thumbnails' rows.
_Loaded = tuple[ClusterRun | None, list[NewPhoto], dict[int, PhotoRow]]

STRIP_THUMB = 56  # edge of one representative thumbnail in a folder row
STRIP_GAP = 4
DEFAULT_K = 8
MAX_K = 200
ID_ROLE = Qt.ItemDataRole.UserRole
HINT = (
    "No auto-folders yet. Choose how many folders (or Automatic) and press "
    "<b>Sort into folders</b>."
)


class FoldersView(QWidget):
    """Top bar (k, sort, export), the folders on the left, the open folder and new photos right."""

    files_changed = Signal()  # an export wrote files: the main window refreshes
    status_message = Signal(str)  # a line for the status bar

    def __init__(
        self, library: Library, loader: ThumbnailLoader, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.loader = loader
        self._run: ClusterRun | None = None
        self._new: list[NewPhoto] = []
        self._photos: dict[int, PhotoRow] = {}
        self._open_id: int | None = None
        self._strip_of: dict[int, list[int]] = {}  # image id → clusters showing it in a strip
        self._cluster_worker: JobWorker | None = None
        self._export_worker: JobWorker | None = None
        self._edit_worker: JobWorker | None = None
        self.preview_dialog: QDialog | None = None  # the export preview on screen
        self._read_worker: JobWorker | None = None  # the run, new photos, strip rows
        self._open_worker: JobWorker | None = None  # the open folder's rows
        self._loaded_once = False
        self._build_top_bar()
        self._build_folder_pane()
        self._build_photo_pane()
        splitter = QSplitter()
        splitter.addWidget(self._left)
        splitter.addWidget(self._right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([520, 600])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._top)
        layout.addWidget(splitter, 1)
        loader.thumbnail_loaded.connect(self._thumbnail_arrived)
        rename = QShortcut(QKeySequence(Qt.Key.Key_F2), self.cluster_list)
        rename.activated.connect(self.rename_selected)
        self.open_label.setText("Reading the auto-folders…")

    def showEvent(self, event: QShowEvent) -> None:
        # The first read waits until the view is shown: a start-up that never
        # opens Auto-folders doesn't pay for it.
        super().showEvent(event)
        if not self._loaded_once:
            self._loaded_once = True
            self.reload()

    # ---- building ----------------------------------------------------------------

    def _build_top_bar(self) -> None:
        self._top = QWidget()
        rows = QVBoxLayout(self._top)
        bar = QHBoxLayout()
        rows.addLayout(bar)
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, MAX_K)
        self.k_spin.setValue(DEFAULT_K)
        self.k_spin.setPrefix("Folders: ")
        self.auto_check = QCheckBox("Automatic")
        self.auto_check.setToolTip("Choose the number of folders from the photos (silhouette)")
        self.auto_check.toggled.connect(lambda on: self.k_spin.setEnabled(not on))
        self.sort_button = QPushButton("Sort into folders")
        self.sort_button.clicked.connect(lambda: self.run(self._chosen_k()))
        self.job_strip = JobStrip()
        self.progress = self.job_strip.bar
        self.progress_label = self.job_strip.label
        self.cancel_button = self.job_strip.cancel_button
        self.cancel_button.clicked.connect(self.cancel)
        self.mode_combo = export_mode_combo()
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self.export_interactively)
        for widget in (self.k_spin, self.auto_check, self.sort_button):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(QLabel("Export as"))
        bar.addWidget(self.mode_combo)
        bar.addWidget(self.export_button)
        rows.addWidget(self.job_strip)  # a row of its own, shown only while busy

    def _build_folder_pane(self) -> None:
        self._left = QWidget()
        layout = QVBoxLayout(self._left)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.cluster_list = QTreeWidget()
        self.cluster_list.setColumnCount(3)
        self.cluster_list.setHeaderLabels(["Folder", "Photos", "Most typical"])
        self.cluster_list.setRootIsDecorated(False)
        self.cluster_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.cluster_list.setIconSize(self._strip_size())
        self.cluster_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.cluster_list.customContextMenuRequested.connect(self._folder_menu)
        self.cluster_list.itemDoubleClicked.connect(self._double_clicked)
        self.cluster_list.setAcceptDrops(True)
        self.cluster_list.viewport().setAcceptDrops(True)
        self.cluster_list.viewport().installEventFilter(self)
        self.cluster_list.itemSelectionChanged.connect(self._update_actions)
        header = self.cluster_list.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self._open_selected)
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(self.rename_selected)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setToolTip("Merge the two selected folders into the first")
        self.merge_button.clicked.connect(self._merge_selected)
        for button in (self.open_button, self.rename_button, self.merge_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.cluster_list, 1)
        layout.addLayout(buttons)

    def _build_photo_pane(self) -> None:
        self._right = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        layout = QVBoxLayout(top)
        self.open_label = QLabel(HINT)
        self.open_label.setWordWrap(True)
        self.model = PhotoListModel(self.loader, parent=self)
        self.grid = PhotoGrid()
        self.grid.setModel(self.model)
        # Drag photos onto a folder in the list to move them there.
        self.grid.setDragEnabled(True)
        self.grid.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.grid.set_empty_text("Open a folder to see its photos")
        self.grid.context_menu_requested.connect(self._photo_menu)
        actions = QHBoxLayout()
        self.move_button = QPushButton("Move to folder…")
        self.move_button.clicked.connect(self._move_selected)
        self.exclude_button = QPushButton("Exclude")
        self.exclude_button.setToolTip("Take the selected photos out of the folders (not exported)")
        self.exclude_button.clicked.connect(self._exclude_selected)
        actions.addWidget(self.move_button)
        actions.addWidget(self.exclude_button)
        actions.addStretch(1)
        layout.addWidget(self.open_label)
        layout.addWidget(self.grid, 1)
        layout.addLayout(actions)
        bottom = QWidget()
        new_layout = QVBoxLayout(bottom)
        self.new_label = QLabel()
        self.new_list = QTreeWidget()
        self.new_list.setColumnCount(3)
        self.new_list.setHeaderLabels(["New photo", "Filed into", "Confidence"])
        self.new_list.setRootIsDecorated(False)
        self.new_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip(
            "Put the selected new photos (all if none) into their folders"
        )
        self.accept_button.clicked.connect(lambda: self.accept_new())
        new_layout.addWidget(self.new_label)
        new_layout.addWidget(self.new_list, 1)
        new_layout.addWidget(self.accept_button, 0, Qt.AlignmentFlag.AlignLeft)
        self._right.addWidget(top)
        self._right.addWidget(bottom)
        self._right.setStretchFactor(0, 3)
        self._right.setStretchFactor(1, 1)

    @staticmethod
    def _strip_size() -> QSize:
        return QSize(REPRESENTATIVES * (STRIP_THUMB + STRIP_GAP), STRIP_THUMB)

    # ---- state -------------------------------------------------------------------

    def clusters(self) -> list[Cluster]:
        """The folders shown, in run order."""
        return list(self._run.clusters) if self._run is not None else []

    def new_photos(self) -> list[NewPhoto]:
        """The new photos listed (filed into their nearest folder, not yet accepted)."""
        return list(self._new)

    def open_cluster_id(self) -> int | None:
        return self._open_id

    def shown_photos(self) -> list[PhotoRow]:
        """The photos of the open folder, as the grid shows them."""
        return self.model.rows()

    def _cluster(self, cluster_id: int) -> Cluster | None:
        return next((c for c in self.clusters() if c.id == cluster_id), None)

    def reload(self) -> None:
        """Re-read the latest run, the new photos and the strip rows in a worker; the
        list (and the open folder, re-read in turn) follow when they arrive."""
        self._loaded_once = True
        library = self.library

        def read() -> _Loaded:
            run = library.clusters(with_paths=False)
            new = library.new_photos(run) if run is not None else []
            # Rows for the strips only; an opened folder reads its own.
            wanted = {i for c in (run.clusters if run else []) for i in c.representative_ids}
            return run, new, library.photos_by_id(wanted) if wanted else {}

        worker = reader(read)
        self._read_worker = worker

        def arrived(out: _Loaded) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if self._read_worker is worker:  # else a newer read replaced it
                self._read_worker = None
                self._show(*out)

        def failed(exc: Exception) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            # e.g. no weights: the view still opens, with the reason
            if self._read_worker is worker:
                self._read_worker = None
                self._show(None, [], {})
                self.open_label.setText(f"Could not read the auto-folders: {describe(exc)}")

        worker.signals.finished.connect(arrived)
        worker.signals.failed.connect(failed)
        start(worker)

    def loaded(self) -> bool:
        """Whether the view has read what it shows (it reads first when first shown)."""
        return self._loaded_once

    def loading(self) -> bool:
        """True while what the view shows is still being read."""
        return self._read_worker is not None or self._open_worker is not None

    def _show(
        self, run: ClusterRun | None, new: list[NewPhoto], photos: dict[int, PhotoRow]
    ) -> None:
        self._run, self._new, self._photos = run, new, photos
        self._fill_clusters()
        self._fill_new()
        opened = self._open_id
        self._open_id = None
        if opened is not None and self._cluster(opened) is not None:
            self.open_cluster(opened)
        else:
            self._open_worker = None
            self.model.set_rows([])
            if self._run is not None:
                self.open_label.setText("Double-click a folder (or Open) to see its photos")
            else:
                self.open_label.setText(HINT)
        self._update_actions()

    def _fill_clusters(self) -> None:
        selected = set(self.selected_cluster_ids())
        self.cluster_list.clear()
        self._strip_of.clear()
        bold = QFont(self.cluster_list.font())
        bold.setBold(True)
        for cluster in self.clusters():
            item = QTreeWidgetItem([cluster.name, f"{cluster.size:,}", ""])
            item.setData(0, ID_ROLE, cluster.id)
            item.setFont(0, bold)
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.setIcon(2, QIcon(self._strip(cluster)))
            self.cluster_list.addTopLevelItem(item)
            item.setSelected(cluster.id in selected)
            for image_id in cluster.representative_ids:
                self._strip_of.setdefault(image_id, []).append(cluster.id)
        run = self._run
        if run is None:
            self.summary_label.setText("")
        else:
            total = sum(c.size for c in run.clusters)
            self.summary_label.setText(
                f"{plural(total, 'photo')} in {plural(len(run.clusters), 'folder')} · "
                f"sorted {run.created_at:%Y-%m-%d %H:%M}"
            )

    def _strip(self, cluster: Cluster) -> QPixmap:
        """Up to six thumbnails side by side; missing ones are asked for and grey for now."""
        size = self._strip_size()
        strip = QPixmap(size)
        strip.fill(Qt.GlobalColor.transparent)
        painter = QPainter(strip)
        for n, image_id in enumerate(cluster.representative_ids):
            x = n * (STRIP_THUMB + STRIP_GAP)
            photo = self._photos.get(image_id)
            pixmap = self.loader.pixmap(photo) if photo is not None else None
            if pixmap is None:
                painter.fillRect(x, 0, STRIP_THUMB, STRIP_THUMB, QColor(128, 128, 128, 60))
                if photo is not None:
                    self.loader.request(photo)
                continue
            scaled = pixmap.scaled(
                STRIP_THUMB,
                STRIP_THUMB,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            painter.drawPixmap(
                x + (STRIP_THUMB - scaled.width()) // 2,
                (STRIP_THUMB - scaled.height()) // 2,
                scaled,
            )
        painter.end()
        return strip

    def _thumbnail_arrived(self, image_id: int, _image: QImage) -> None:
        for cluster_id in self._strip_of.get(image_id, []):
            cluster = self._cluster(cluster_id)
            item = self._item(cluster_id)
            if cluster is not None and item is not None:
                item.setIcon(2, QIcon(self._strip(cluster)))

    def _item(self, cluster_id: int) -> QTreeWidgetItem | None:
        for row in range(self.cluster_list.topLevelItemCount()):
            item = self.cluster_list.topLevelItem(row)
            if item is not None and item.data(0, ID_ROLE) == cluster_id:
                return item
        return None

    def _fill_new(self) -> None:
        self.new_list.clear()
        for photo in self._new:
            item = QTreeWidgetItem(
                [os.path.basename(photo.path), photo.cluster_name, f"{photo.confidence:.2f}"]
            )
            item.setToolTip(0, photo.path)
            item.setData(0, ID_ROLE, photo.image_id)
            self.new_list.addTopLevelItem(item)
        self.new_label.setText(
            f"New photos since the last sort: {len(self._new):,}"
            if self._new
            else "No new photos since the last sort"
        )

    def selected_cluster_ids(self) -> list[int]:
        return [int(item.data(0, ID_ROLE)) for item in self.cluster_list.selectedItems()]

    def _update_actions(self) -> None:
        busy = self._busy()
        have = bool(self.clusters())
        chosen = len(self.selected_cluster_ids())
        self.sort_button.setEnabled(not busy)
        self.export_button.setEnabled(have and not busy)
        self.open_button.setEnabled(chosen == 1 and not busy)
        self.rename_button.setEnabled(chosen == 1 and not busy)
        self.merge_button.setEnabled(chosen == 2 and not busy)
        open_and_idle = self._open_id is not None and not busy
        self.move_button.setEnabled(open_and_idle and len(self.clusters()) > 1)
        self.exclude_button.setEnabled(open_and_idle)
        self.accept_button.setEnabled(bool(self._new) and not busy)

    def _busy(self) -> bool:
        return any(
            w is not None for w in (self._cluster_worker, self._export_worker, self._edit_worker)
        )

    # ---- sorting -----------------------------------------------------------------

    def _chosen_k(self) -> int | None:
        return None if self.auto_check.isChecked() else self.k_spin.value()

    def run(self, k: int | None) -> JobWorker:
        """Sort the library into `k` folders (None: automatic) in a worker; the list follows."""
        if self._cluster_worker is not None:
            self._cluster_worker.cancel()  # its result is ignored below
        self.auto_check.setChecked(k is None)
        if k is not None:
            self.k_spin.setValue(k)
        library = self.library
        worker = JobWorker(lambda token: library.cluster_keeping_names(k, token))
        self._cluster_worker = worker

        def finished(run: ClusterRun) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if self._cluster_worker is worker:
                self._cluster_worker = None
                self._set_idle()
                self.reload()
                total = sum(c.size for c in run.clusters)
                self.status_message.emit(
                    f"Sorted {plural(total, 'photo')} into {plural(len(run.clusters), 'folder')}"
                )

        def failed(exc: Exception) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if self._cluster_worker is worker:
                self._cluster_worker = None
                self._set_idle()
                if worker.token.cancelled:
                    self.status_message.emit("Sorting into folders stopped")
                else:
                    message = describe(exc)
                    self.open_label.setText(f"Could not sort into folders: {message}")
                    self.status_message.emit(f"Could not sort into folders: {message}")

        worker.signals.progressed.connect(
            lambda step: self._progressed(step) if self._cluster_worker is worker else None
        )
        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        self._set_busy("Sorting into folders…", cancellable=True)
        return start(worker)

    def cancel(self) -> None:
        """Ask the running sort or export to stop (what an export wrote stays undoable)."""
        for worker in (self._cluster_worker, self._export_worker):
            if worker is not None:
                worker.cancel()
                self.job_strip.stopping()

    def _progressed(self, step: Progress) -> None:
        self.job_strip.show_step(step)

    def _set_busy(self, text: str, *, cancellable: bool) -> None:
        self.job_strip.busy(text, cancellable=cancellable)
        self._update_actions()

    def _set_idle(self) -> None:
        self.job_strip.idle()
        self._update_actions()

    # ---- opening and editing -----------------------------------------------------

    def open_cluster(self, cluster_id: int) -> None:
        """Show the folder's photos in the grid (nearest the centroid first)."""
        cluster = self._cluster(cluster_id)
        if cluster is None:
            raise ValueError(f"no folder with id {cluster_id}")
        self._open_id = cluster_id
        members = cluster.member_ids
        caption = f"<b>{escape_html(cluster.name)}</b> · {plural(cluster.size, 'photo')}"
        library = self.library

        worker = reader(lambda: library.photos_by_id(members))
        self._open_worker = worker

        def arrived(rows: dict[int, PhotoRow]) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if self._open_worker is worker:  # else another folder was opened meanwhile
                self._open_worker = None
                self.model.set_rows([rows[i] for i in members if i in rows])
                self.open_label.setText(caption)
                self._update_actions()

        def failed(exc: Exception) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if self._open_worker is worker:
                self._open_worker = None
                self.open_label.setText(f"Could not read the folder's photos: {describe(exc)}")

        worker.signals.finished.connect(arrived)
        worker.signals.failed.connect(failed)
        self.open_label.setText(f"{caption} · reading…")
        start(worker)
        self._update_actions()

    def _open_selected(self) -> None:
        chosen = self.selected_cluster_ids()
        if len(chosen) == 1:
            self.open_cluster(chosen[0])

    def _double_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        cluster_id = int(item.data(0, ID_ROLE))
        if column == 0:
            self.rename_interactively(cluster_id)
        else:
            self.open_cluster(cluster_id)

    def _edit(self, what: str, work: Callable[[], Any], done: str) -> JobWorker | None:
        """Run a folder edit in a worker (it reads and recentres vectors); the view
        re-reads when it is done, and a refusal becomes a message. None when busy."""
        if self._busy():
            self.status_message.emit(f"Could not {what}: wait for the running task to end")
            return None

        def job(_token: CancelToken) -> Job[object]:
            yield Progress(what, 0, None, None, f"{what[0].upper()}{what[1:]}…")
            return work()

        worker = JobWorker(job)
        self._edit_worker = worker

        def finished(_result: object) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            self._edit_worker = None
            self._set_idle()
            self.reload()
            self.status_message.emit(done)

        def failed(exc: Exception) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            self._edit_worker = None
            self._set_idle()
            self.reload()
            self.status_message.emit(f"Could not {what}: {describe(exc)}")

        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        self._set_busy(f"{what[0].upper()}{what[1:]}…", cancellable=False)
        return start(worker)

    def rename(self, cluster_id: int, name: str) -> JobWorker:
        """Rename a folder in a worker (one row; no vectors read, so not a busy
        edit); a refusal (e.g. an empty name) becomes a message."""
        library = self.library
        shown = self._cluster(cluster_id)
        was = shown.name if shown is not None else None  # another client may rename it

        def failed(exc: Exception) -> None:
            self.reload()  # a conflict: show the name the other client gave it
            self.status_message.emit(f"Could not rename: {describe(exc)}")

        return call(
            lambda: library.rename_cluster(cluster_id, name, was),
            lambda stored: self._renamed(cluster_id, stored),
            failed,
        )

    def _renamed(self, cluster_id: int, stored: str) -> None:
        run = self._run
        if run is not None:  # shown at once; the re-read below brings the rest
            self._run = replace(
                run,
                clusters=[
                    replace(c, name=stored) if c.id == cluster_id else c for c in run.clusters
                ],
            )
            item = self._item(cluster_id)
            if item is not None:
                item.setText(0, stored)
        self.reload()
        self.status_message.emit(f"Renamed the folder to “{stored}”")

    def rename_interactively(self, cluster_id: int) -> None:
        cluster = self._cluster(cluster_id)
        if cluster is None:
            return
        name, ok = QInputDialog.getText(self, "Rename folder", "Folder name:", text=cluster.name)
        if ok:
            self.rename(cluster_id, name)

    def rename_selected(self) -> None:
        chosen = self.selected_cluster_ids()
        if len(chosen) == 1:
            self.rename_interactively(chosen[0])

    def merge(self, a: int, b: int) -> JobWorker | None:
        """Merge folder `b` into `a` (which keeps its name) in a worker; None when busy."""
        first, second = self._cluster(a), self._cluster(b)
        names = (second.name, first.name) if first and second else ("the folder", "the other")
        return self._edit(
            "merge",
            lambda: self.library.merge_clusters(a, b),
            f"Merged “{names[0]}” into “{names[1]}”",
        )

    def _merge_selected(self) -> None:
        chosen = self.selected_cluster_ids()
        if len(chosen) == 2:
            self.merge(chosen[0], chosen[1])

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Photos dropped on a folder row move into that folder."""
        if watched is self.cluster_list.viewport() and isinstance(
            event, (QDragEnterEvent, QDragMoveEvent, QDropEvent)
        ):
            ids = dragged_photo_ids(event.mimeData())
            item = self.cluster_list.itemAt(event.position().toPoint())
            target = None if item is None else item.data(0, ID_ROLE)
            if not ids or (target is None and not isinstance(event, QDragEnterEvent)):
                event.ignore()
                return True
            event.acceptProposedAction()
            if (
                isinstance(event, QDropEvent)
                and not isinstance(event, QDragMoveEvent)
                and target is not None
            ):
                self.move_photos(ids, int(target))
            return True
        return super().eventFilter(watched, event)

    def move_photos(self, image_ids: Iterable[int], cluster_id: int) -> JobWorker | None:
        """Move photos into another folder of the run in a worker; None when nothing to do."""
        ids = list(image_ids)
        target = self._cluster(cluster_id)
        if not ids:
            return None
        name = target.name if target is not None else "the folder"
        return self._edit(
            "move",
            lambda: self.library.move_to_cluster(ids, cluster_id),
            f"Moved {plural(len(ids), 'photo')} to “{name}”",
        )

    def exclude(self, image_ids: Iterable[int]) -> JobWorker | None:
        """Take photos out of the folders (they are not exported), in a worker."""
        ids = list(image_ids)
        if not ids:
            return None
        return self._edit(
            "exclude",
            lambda: self.library.exclude_photos(ids),
            f"Excluded {plural(len(ids), 'photo')} from the folders",
        )

    def accept_new(self, image_ids: Iterable[int] | None = None) -> JobWorker | None:
        """Put new photos in their filed folders: the given ones, else the selected, else all."""
        if image_ids is None:
            picked = [int(i.data(0, ID_ROLE)) for i in self.new_list.selectedItems()]
            wanted = set(picked) if picked else {p.image_id for p in self._new}
        else:
            wanted = set(image_ids)
        by_cluster: dict[int, list[int]] = {}
        for photo in self._new:
            if photo.image_id in wanted:
                by_cluster.setdefault(photo.cluster_id, []).append(photo.image_id)

        def work() -> None:
            for cluster_id, ids in by_cluster.items():
                self.library.move_to_cluster(ids, cluster_id)

        if not by_cluster:
            return None
        count = sum(len(ids) for ids in by_cluster.values())
        return self._edit(
            "accept the new photos",
            work,
            f"Accepted {plural(count, 'new photo')} into their folders",
        )

    def _selected_photo_ids(self) -> list[int]:
        return [p.id for p in self.grid.selected_photos()]

    def _exclude_selected(self) -> None:
        ids = self._selected_photo_ids()
        if ids:
            self.exclude(ids)

    def _move_selected(self) -> None:
        ids = self._selected_photo_ids()
        others = [c for c in self.clusters() if c.id != self._open_id]
        if not ids or not others:
            return
        names = [c.name for c in others]
        name, ok = QInputDialog.getItem(self, "Move to folder", "Folder:", names, 0, False)
        if ok and name in names:
            self.move_photos(ids, others[names.index(name)].id)

    def _photo_menu(self, photos: list[PhotoRow], position: QPoint) -> None:
        if not photos:
            return
        ids = [p.id for p in photos]
        menu = QMenu(self)
        move_menu = menu.addMenu("Move to folder")
        for cluster in self.clusters():
            if cluster.id != self._open_id:
                action = move_menu.addAction(cluster.name)
                action.triggered.connect(
                    lambda _checked=False, cid=cluster.id: self.move_photos(ids, cid)
                )
        menu.addAction("Exclude from the folders").triggered.connect(lambda: self.exclude(ids))
        menu.exec(position)

    def _folder_menu(self, position: QPoint) -> None:
        chosen = self.selected_cluster_ids()
        if not chosen:
            return
        menu = QMenu(self)
        if len(chosen) == 1:
            menu.addAction("Open").triggered.connect(lambda: self.open_cluster(chosen[0]))
            menu.addAction("Rename…").triggered.connect(
                lambda: self.rename_interactively(chosen[0])
            )
        if len(chosen) == 2:
            menu.addAction("Merge").triggered.connect(lambda: self.merge(chosen[0], chosen[1]))
        menu.exec(self.cluster_list.viewport().mapToGlobal(position))

    # ---- export ------------------------------------------------------------------

    def export_interactively(self) -> JobWorker | None:
        dest = QFileDialog.getExistingDirectory(self, "Export the folders into")
        if not dest:
            return None
        return self.export(dest, str(self.mode_combo.currentData()), confirm=True)

    def export(self, dest: str, mode: str, confirm: bool = False) -> JobWorker | None:
        """Write one folder per cluster into `dest` in a worker; with `confirm`, preview first.

        None when busy, when there is nothing to export, or when the preview is cancelled.
        """
        if self._busy():
            return None
        library = self.library
        if confirm:  # the exact plan is read in a worker, then previewed

            def preview(plan: PreviewPlan) -> None:
                dialog = ExportPreviewDialog(plan, mode, self)
                self.preview_dialog = dialog
                if dialog.exec() == QDialog.DialogCode.Accepted and not self._busy():
                    self.export(dest, mode)

            def failed(exc: Exception) -> None:
                QMessageBox.warning(self, "Export", describe(exc))

            return call(
                lambda: library.plan_with_companions(library.export_plan(dest)), preview, failed
            )
        self._export_worker = export_worker(
            lambda token: library.export_clusters_job(dest, mode, token),
            progressed=self._progressed,
            ended=self._export_ended,
            status=self.status_message,
            files_changed=self.files_changed,
        )
        self._set_busy("Exporting…", cancellable=True)
        return start(self._export_worker)

    def _export_ended(self) -> None:
        self._export_worker = None
        self._set_idle()
