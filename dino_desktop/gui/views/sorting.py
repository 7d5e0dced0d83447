"""The Sort-by-example view: labels with examples, train, review predictions, export.

Labels come from example folders (the folder's name is the label) or are made
here; photos dragged onto a label (or "Label as") become its examples. *Sort*
trains the classifier in a worker (`Library.sort_by_example`) and shows each
label's predictions, most confident first, with the cross-validated accuracy.
Accept makes the selected predictions examples; Reject records that they are
not that label, and the model retrains (active learning). Photos below the
confidence threshold sit under "Unsure". Export writes a folder per label
like Auto-folders (preview, copy / link / move, journaled, Ctrl+Z undoes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import LibraryError, PhotoRow, SortLabelInfo
from dino_desktop.core.sorting import DEFAULT_THRESHOLD, UNSURE, SortResult, rethreshold
from dino_desktop.gui.common import plural
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

log = logging.getLogger(__name__)

ID_ROLE = Qt.ItemDataRole.UserRole
ALL = 0  # the "All photos" row: browse the library to pick examples
UNSURE_ID = -1  # the "Unsure" row
CLASSIFIER_LABELS = {"logreg": "Logistic regression", "mlp": "Small neural net (MLP)"}
HINT = (
    "<h3>Sort by example</h3>"
    "<p>Give a few examples of each kind of photo, and the rest are sorted for you.</p>"
    "<p><b>Add example folder…</b>: a folder of examples (its name is the label), or "
    "<b>New label…</b>, then open <i>All photos</i> and drag photos onto a label.<br>"
    "With two labels or more, press <b>Sort</b>.</p>"
)


class SortView(QWidget):
    """Top bar (add, classifier, threshold, sort, export), labels left, photos right."""

    files_changed = Signal()  # an export wrote files: the main window refreshes
    status_message = Signal(str)

    def __init__(
        self, library: Library, loader: ThumbnailLoader, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.loader = loader
        self._labels: list[SortLabelInfo] = []
        self._result: SortResult | None = None
        self._open: int | None = None  # a label id, ALL or UNSURE_ID
        self._train_worker: JobWorker | None = None
        self._export_worker: JobWorker | None = None
        self._scan_worker: JobWorker | None = None
        self._rows_worker: JobWorker | None = None
        self._labels_worker: JobWorker | None = None
        self.preview_dialog: QDialog | None = None  # the export preview on screen
        self._build_top_bar()
        self._build_label_pane()
        self._build_photo_pane()
        splitter = QSplitter()
        splitter.addWidget(self._left)
        splitter.addWidget(self._right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([340, 800])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._top)
        layout.addWidget(splitter, 1)
        self._update_actions()  # no labels until the read below arrives
        self.reload()

    # ---- building ----------------------------------------------------------------

    def _build_top_bar(self) -> None:
        self._top = QWidget()
        rows = QVBoxLayout(self._top)
        bar = QHBoxLayout()
        rows.addLayout(bar)
        self.add_folder_button = QPushButton("Add example folder…")
        self.add_folder_button.setToolTip("A folder of examples: its name becomes the label")
        self.add_folder_button.clicked.connect(self.add_folder_interactively)
        self.new_label_button = QPushButton("New label…")
        self.new_label_button.clicked.connect(self.new_label_interactively)
        self.classifier_combo = QComboBox()
        for key, text in CLASSIFIER_LABELS.items():
            self.classifier_combo.addItem(text, key)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0, 100)
        self.threshold_spin.setDecimals(0)
        self.threshold_spin.setSuffix(" %")
        self.threshold_spin.setPrefix("Unsure below ")
        self.threshold_spin.setValue(DEFAULT_THRESHOLD * 100)
        self.threshold_spin.setToolTip("Photos sorted with less confidence go to Unsure")
        self.threshold_spin.valueChanged.connect(self._threshold_changed)
        self.train_button = QPushButton("Sort")
        self.train_button.setToolTip("Learn from the examples and sort every other photo")
        self.train_button.clicked.connect(lambda: self.train())
        self.job_strip = JobStrip()
        self.progress = self.job_strip.bar
        self.progress_label = self.job_strip.label
        self.cancel_button = self.job_strip.cancel_button
        self.cancel_button.clicked.connect(self.cancel)
        self.mode_combo = export_mode_combo()
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self.export_interactively)
        for widget in (
            self.add_folder_button,
            self.new_label_button,
            self.classifier_combo,
            self.threshold_spin,
            self.train_button,
        ):
            bar.addWidget(widget)
        bar.addStretch(1)
        bar.addWidget(QLabel("Export as"))
        bar.addWidget(self.mode_combo)
        bar.addWidget(self.export_button)
        rows.addWidget(self.job_strip)  # a row of its own, shown only while busy

    def _build_label_pane(self) -> None:
        self._left = QWidget()
        layout = QVBoxLayout(self._left)
        self.accuracy_label = QLabel()
        self.accuracy_label.setWordWrap(True)
        self.label_list = QTreeWidget()
        self.label_list.setColumnCount(3)
        self.label_list.setHeaderLabels(["Label", "Examples", "Sorted"])
        self.label_list.setRootIsDecorated(False)
        self.label_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.label_list.itemSelectionChanged.connect(self._selection_changed)
        self.label_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.label_list.customContextMenuRequested.connect(self._label_menu)
        self.label_list.viewport().setAcceptDrops(True)
        self.label_list.viewport().installEventFilter(self)
        header = self.label_list.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QHBoxLayout()
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(self._rename_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Forget the label and its examples (no file is touched)")
        self.remove_button.clicked.connect(self._remove_selected)
        buttons.addWidget(self.rename_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout.addWidget(self.accuracy_label)
        layout.addWidget(self.label_list, 1)
        layout.addLayout(buttons)

    def _build_photo_pane(self) -> None:
        self._right = QWidget()
        layout = QVBoxLayout(self._right)
        head = QHBoxLayout()
        self.open_label = QLabel(HINT)
        self.open_label.setWordWrap(True)
        self.show_combo = QComboBox()
        self.show_combo.addItem("Sorted here, most confident first", "sorted")
        self.show_combo.addItem("Examples", "examples")
        self.show_combo.currentIndexChanged.connect(lambda _i: self._show_open())
        head.addWidget(self.open_label, 1)
        head.addWidget(self.show_combo)
        self.model = PhotoListModel(self.loader, parent=self)
        self.grid = PhotoGrid()
        self.grid.setModel(self.model)
        self.grid.setDragEnabled(True)
        self.grid.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.grid.set_empty_text("Open a label to see its photos")
        self.grid.context_menu_requested.connect(self._photo_menu)
        actions = QHBoxLayout()
        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("The selected photos are right: keep them as examples")
        self.accept_button.clicked.connect(lambda: self.accept(self._selected_ids()))
        self.reject_button = QPushButton("Reject")
        self.reject_button.setToolTip(
            "The selected photos are not this label: learn from it and sort again"
        )
        self.reject_button.clicked.connect(lambda: self.reject(self._selected_ids()))
        self.label_as_button = QPushButton("Label as…")
        self.label_as_button.clicked.connect(self._label_as_interactively)
        self.unlabel_button = QPushButton("Not an example")
        self.unlabel_button.setToolTip("Forget that the selected photos are examples of this label")
        self.unlabel_button.clicked.connect(self._unlabel_selected)
        for button in (
            self.accept_button,
            self.reject_button,
            self.label_as_button,
            self.unlabel_button,
        ):
            actions.addWidget(button)
        actions.addStretch(1)
        layout.addLayout(head)
        layout.addWidget(self.grid, 1)
        layout.addLayout(actions)
        self.grid.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())

    # ---- state -------------------------------------------------------------------

    def labels(self) -> list[SortLabelInfo]:
        return list(self._labels)

    def result(self) -> SortResult | None:
        """The latest sort, with the threshold set in the view."""
        return self._result

    def shown_photos(self) -> list[PhotoRow]:
        return self.model.rows()

    def _label(self, label_id: int | None) -> SortLabelInfo | None:
        return next((lb for lb in self._labels if lb.id == label_id), None)

    def _busy(self) -> bool:
        return any(
            w is not None for w in (self._train_worker, self._export_worker, self._scan_worker)
        )

    def reload(self) -> JobWorker:
        """Re-read the labels in a worker; keep the open one; the last sort stays
        until the next. A newer read replaces an older one still running."""
        library = self.library
        worker = reader(library.sort_labels)
        self._labels_worker = worker

        def arrived(labels: list[SortLabelInfo]) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if self._labels_worker is worker:
                self._labels_worker = None
                self._labels = labels
                self._labels_shown()

        def failed(exc: Exception) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if self._labels_worker is worker:  # the view still opens, with the reason
                self._labels_worker = None
                self._labels = []
                self._labels_shown()
                self.open_label.setText(f"Could not read the labels: {describe(exc)}")

        worker.signals.finished.connect(arrived)
        worker.signals.failed.connect(failed)
        return start(worker)

    def _labels_shown(self) -> None:
        self._fill_labels()
        self._show_open()
        self._update_actions()

    def label_names(self) -> list[tuple[int, str]]:
        """(id, name) of the labels as last read (for the main window's menus)."""
        return [(lb.id, lb.name) for lb in self._labels]

    def _run(self, what: str, work: Callable[[], Any], done: Callable[[Any], object]) -> JobWorker:
        """A short write (label, rename, remove) in a worker; `done` on success,
        the reason in the status bar on failure. The labels are read again either way."""

        def failed(exc: Exception) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if not isinstance(exc, LibraryError):
                log.error("%s failed: %s", what, describe(exc))
            self.status_message.emit(f"Could not {what}: {describe(exc)}")
            self.reload()

        def delivered(value: Any) -> None:
            if alive(self):
                done(value)

        return call(work, delivered, failed)

    def _fill_labels(self) -> None:
        opened = self._open
        self.label_list.blockSignals(True)
        self.label_list.clear()
        sorted_counts = self._result.by_label() if self._result is not None else {}
        italic = QFont(self.label_list.font())
        italic.setItalic(True)
        bold = QFont(self.label_list.font())
        bold.setBold(True)
        everything = QTreeWidgetItem(["All photos", "", ""])
        everything.setToolTip(0, "Browse the library and drag photos onto a label as examples")
        everything.setData(0, ID_ROLE, ALL)
        everything.setFont(0, italic)
        self.label_list.addTopLevelItem(everything)
        rows = [everything]
        for lb in self._labels:
            shown = sorted_counts.get(lb.name)
            item = QTreeWidgetItem(
                [lb.name, f"{lb.positives:,}", "" if shown is None else f"{len(shown):,}"]
            )
            item.setData(0, ID_ROLE, lb.id)
            item.setFont(0, bold)
            tip = f"Examples from {lb.folder}" if lb.folder else "Examples chosen in the app"
            if lb.negatives:
                tip += f"\n{plural(lb.negatives, 'photo')} rejected"
            item.setToolTip(0, tip)
            for column in (1, 2):
                item.setTextAlignment(
                    column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                )
            self.label_list.addTopLevelItem(item)
            rows.append(item)
        if self._result is not None:
            unsure = QTreeWidgetItem([UNSURE, "", f"{len(sorted_counts.get(UNSURE, [])):,}"])
            unsure.setData(0, ID_ROLE, UNSURE_ID)
            unsure.setFont(0, italic)
            unsure.setTextAlignment(2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.label_list.addTopLevelItem(unsure)
            rows.append(unsure)
        for item in rows:
            if item.data(0, ID_ROLE) == opened:
                item.setSelected(True)
                self.label_list.setCurrentItem(item)
        self.label_list.blockSignals(False)
        self._show_accuracy()

    def _show_accuracy(self) -> None:
        result = self._result
        if result is None:
            self.accuracy_label.setText(
                f"{plural(len(self._labels), 'label')}. Sort to see how well they are learnt."
            )
            return
        sorted_n = sum(not p.unsure for p in result.predictions)
        if result.cv_accuracy is None:
            accuracy = f"Accuracy not measured: {result.cv_note}."
        else:
            accuracy = (
                f"<b>Accuracy {result.cv_accuracy:.0%}</b> on the examples ({result.cv_note})."
            )
        self.accuracy_label.setText(
            f"{accuracy}<br>{plural(sorted_n, 'photo')} sorted, "
            f"{plural(len(result.predictions) - sorted_n, 'photo')} unsure."
        )

    def open(self, entry: int) -> None:
        """Show a label's photos (a label id), ALL photos, or the UNSURE ones."""
        self._open = entry
        for row in range(self.label_list.topLevelItemCount()):
            item = self.label_list.topLevelItem(row)
            if item is not None and item.data(0, ID_ROLE) == entry:
                self.label_list.blockSignals(True)
                self.label_list.setCurrentItem(item)
                self.label_list.blockSignals(False)
        self._show_open()

    def _selection_changed(self) -> None:
        items = self.label_list.selectedItems()
        if items:
            self._open = int(items[0].data(0, ID_ROLE))
            self._show_open()
        self._update_actions()

    def _show_open(self) -> None:
        """Show the open entry's photos: the rows are read in a worker (100,000 of
        them take most of a second), and the grid and its caption follow."""
        entry, result = self._open, self._result
        label = self._label(entry)
        self.show_combo.setVisible(label is not None)
        if entry is None or (label is None and entry not in (ALL, UNSURE_ID)):
            self._open = None
            self._rows_worker = None
            self.model.set_rows([])
            self.open_label.setText(HINT)
            self._update_actions()
            return
        library = self.library
        examples = label is not None and self.show_combo.currentData() == "examples"
        threshold = self.threshold_spin.value()

        def read() -> tuple[list[PhotoRow], list[float] | None, str]:
            if entry == ALL:
                rows = library.photos()
                return (
                    rows,
                    None,
                    (
                        f"All {plural(len(rows), 'photo')}: select some and drag them onto a "
                        "label (or Label as…) to make them its examples"
                    ),
                )
            if label is not None and examples:
                positives, _ = library.label_examples(label.id)
                found = library.photos_by_id(positives)
                where = f" (from {label.folder})" if label.folder else ""
                rows = [found[i] for i in positives if i in found]
                return rows, None, f"{label.name}: {plural(len(rows), 'example')}{where}"
            name = UNSURE if entry == UNSURE_ID else label.name if label is not None else ""
            items = result.by_label().get(name, []) if result is not None else []
            found = library.photos_by_id(p.image_id for p in items)
            shown = [p for p in items if p.image_id in found]
            rows, scores = [found[p.image_id] for p in shown], [p.confidence for p in shown]
            if entry == UNSURE_ID:
                text = (
                    f"Unsure: {plural(len(shown), 'photo')} below {threshold:.0f} % (best "
                    "guess's confidence shown); Label as… to teach the right one"
                )
            elif result is None:
                text = f"{name}: press Sort to find more like the examples"
            else:
                text = (
                    f"{name}: {plural(len(shown), 'photo')} sorted here, most confident "
                    "first. Accept the right ones, Reject the wrong ones (it learns, sorts again)"
                )
            return rows, scores, text

        worker = reader(read)
        self._rows_worker = worker

        def arrived(out: tuple[list[PhotoRow], list[float] | None, str]) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if self._rows_worker is worker:  # else a newer choice replaced it
                self._rows_worker = None
                self.model.set_rows(out[0], out[1])
                self.open_label.setText(out[2])
                self._update_actions()

        def failed(exc: Exception) -> None:
            if not alive(self):  # the view is gone: nothing to show it in
                return
            if self._rows_worker is worker:
                self._rows_worker = None
                self.open_label.setText(f"Could not read the photos: {describe(exc)}")

        worker.signals.finished.connect(arrived)
        worker.signals.failed.connect(failed)
        self.open_label.setText("Reading…")
        start(worker)
        self._update_actions()

    def loading(self) -> bool:
        """True while the labels or the open entry's photos are still being read."""
        return self._labels_worker is not None or self._rows_worker is not None

    def _update_actions(self) -> None:
        busy = self._busy()
        selected = bool(self.grid.selectedIndexes())
        label = self._label(self._open)
        reviewing = label is not None and self.show_combo.currentData() == "sorted"
        self.train_button.setEnabled(not busy and len(self._labels) >= 1)
        self.export_button.setEnabled(not busy and self._result is not None)
        self.add_folder_button.setEnabled(not busy)
        self.accept_button.setEnabled(reviewing and selected and not busy)
        self.reject_button.setEnabled(reviewing and selected and not busy)
        self.label_as_button.setEnabled(selected and bool(self._labels))
        self.unlabel_button.setEnabled(
            label is not None and self.show_combo.currentData() == "examples" and selected
        )
        self.rename_button.setEnabled(label is not None)
        self.remove_button.setEnabled(label is not None and not busy)

    def _selected_ids(self) -> list[int]:
        return [p.id for p in self.grid.selected_photos()]

    # ---- labels and examples ---------------------------------------------------------

    def add_folder(self, folder: str) -> JobWorker | None:
        """Make `folder` a label of its own name; its photos (scanned first) are examples."""
        if self._busy():
            return None
        library = self.library
        name = os.path.basename(os.path.realpath(folder).rstrip(os.sep))
        added: list[SortLabelInfo] = []

        def job(token: CancelToken) -> Job[list[SortLabelInfo]]:
            added.append(library.add_sort_label(name, folder))
            yield from library.scan_example_folders([folder], token)
            return library.sort_labels()

        worker = JobWorker(job)
        self._scan_worker = worker

        def done(labels: list[SortLabelInfo]) -> None:
            self._scan_worker = None
            self._set_idle()
            (label,) = added
            self._open = label.id
            self._labels = labels
            self._labels_shown()
            count = self._label(label.id)
            n = count.positives if count is not None else 0
            self.status_message.emit(f"Label “{label.name}”: {plural(n, 'example')}")
            self.files_changed.emit()  # the folder may be new to the library

        def failed(exc: Exception) -> None:
            self._scan_worker = None
            self._set_idle()
            self.reload()
            what = "read the example folder" if added else "add the example folder"
            self.status_message.emit(f"Could not {what}: {describe(exc)}")

        worker.signals.progressed.connect(self._progressed)
        worker.signals.finished.connect(done)
        worker.signals.failed.connect(failed)
        self._set_busy("Reading the examples…")
        return start(worker)

    def add_folder_interactively(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of examples")
        if folder:
            self.add_folder(folder)

    def new_label(
        self, name: str, then: Callable[[SortLabelInfo], object] | None = None
    ) -> JobWorker:
        """Make a label in a worker; `then(label)` once it exists."""
        library = self.library

        def made(label: SortLabelInfo) -> None:
            self.reload()
            if then is not None:
                then(label)

        return self._run("make the label", lambda: library.add_sort_label(name), made)

    def new_label_interactively(self) -> None:
        name, ok = QInputDialog.getText(self, "New label", "Label name:")
        if ok and name.strip():

            def made(_label: SortLabelInfo) -> None:
                if self._open is None:
                    self.open(ALL)

            self.new_label(name, made)

    def label_as(self, image_ids: Iterable[int], label_id: int) -> JobWorker:
        """Make photos examples of a label, in a worker (`finished` carries how many)."""
        ids = list(image_ids)
        label = self._label(label_id)
        library = self.library

        def done(n: int) -> None:
            self._drop_predictions(ids)
            self.reload()
            name = label.name if label is not None else "the label"
            self.status_message.emit(f"{plural(n, 'photo')} now an example of “{name}”")

        return self._run("label the photos", lambda: library.label_photos(label_id, ids), done)

    def accept(self, image_ids: Iterable[int]) -> JobWorker | None:
        """The open label's selected predictions are right: they become its examples."""
        label = self._label(self._open)
        ids = list(image_ids)
        if label is None or not ids:
            return None
        return self.label_as(ids, label.id)

    def reject(self, image_ids: Iterable[int]) -> JobWorker | None:
        """The photos are not the open label: record it and sort again."""
        label = self._label(self._open)
        ids = list(image_ids)
        if label is None or not ids:
            return None
        library = self.library

        def job() -> list[SortLabelInfo]:
            library.label_photos(label.id, ids, positive=False)
            return library.sort_labels()

        def done(labels: list[SortLabelInfo]) -> None:
            self.status_message.emit(
                f"{plural(len(ids), 'photo')} marked as not “{label.name}”: sorting again"
            )
            self._labels = labels
            self.train()

        return self._run("reject the photos", job, done)

    def _drop_predictions(self, ids: list[int]) -> None:
        """Photos that became examples are no longer predictions."""
        if self._result is None:
            return
        from dataclasses import replace

        gone = set(ids)
        self._result = replace(
            self._result,
            predictions=[p for p in self._result.predictions if p.image_id not in gone],
        )

    def _unlabel_selected(self) -> None:
        label = self._label(self._open)
        ids = self._selected_ids()
        if label is None or not ids:
            return
        library = self.library
        self._run(
            "remove the examples",
            lambda: library.unlabel_photos(label.id, ids),
            lambda _none: self.reload(),
        )

    def _label_as_interactively(self) -> None:
        ids = self._selected_ids()
        if not ids or not self._labels:
            return
        names = [lb.name for lb in self._labels]
        name, ok = QInputDialog.getItem(self, "Label as", "Label:", names, 0, False)
        if ok and name in names:
            self.label_as(ids, self._labels[names.index(name)].id)

    def rename(self, label_id: int, name: str) -> JobWorker:
        """Rename a label in a worker; the last sort's predictions follow the name."""
        library = self.library
        shown = self._label(label_id)
        was = shown.name if shown is not None else None  # another client may rename it
        return self._run(
            "rename",
            lambda: library.rename_sort_label(label_id, name, was),
            lambda _none: self._renamed(label_id, name),
        )

    def _renamed(self, label_id: int, name: str) -> None:
        old = self._label(label_id)
        if self._result is not None and old is not None:
            # The last sort's predictions follow the new name.
            from dataclasses import replace

            new = name.strip()
            self._result = replace(
                self._result,
                labels=[new if n == old.name else n for n in self._result.labels],
                examples={new if k == old.name else k: v for k, v in self._result.examples.items()},
                predictions=[
                    replace(p, label=new) if p.label == old.name else p
                    for p in self._result.predictions
                ],
            )
        self.reload()

    def _rename_selected(self) -> None:
        label = self._label(self._open)
        if label is None:
            return
        name, ok = QInputDialog.getText(self, "Rename label", "Label name:", text=label.name)
        if ok:
            self.rename(label.id, name)

    def remove(self, label_id: int) -> JobWorker:
        library = self.library

        def removed(_none: None) -> None:
            if self._open == label_id:
                self._open = None
            self._result = None  # its predictions named a label that is gone
            self.reload()

        return self._run("remove the label", lambda: library.remove_sort_label(label_id), removed)

    def _remove_selected(self) -> None:
        label = self._label(self._open)
        if label is None:
            return
        answer = QMessageBox.question(
            self,
            "Remove label",
            f"Forget the label “{label.name}” and its examples? No file is touched.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.remove(label.id)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Photos dropped on a label become its examples."""
        if watched is self.label_list.viewport() and isinstance(
            event, (QDragEnterEvent, QDragMoveEvent, QDropEvent)
        ):
            ids = dragged_photo_ids(event.mimeData())
            item = self.label_list.itemAt(event.position().toPoint())
            target = None if item is None else int(item.data(0, ID_ROLE))
            is_label = target is not None and target > 0
            if not ids or (not is_label and not isinstance(event, QDragEnterEvent)):
                event.ignore()
                return True
            event.acceptProposedAction()
            if (
                isinstance(event, QDropEvent)
                and not isinstance(event, QDragMoveEvent)
                and target is not None
                and is_label
            ):
                self.label_as(ids, target)
            return True
        return super().eventFilter(watched, event)

    def _photo_menu(self, photos: list[PhotoRow], position: QPoint) -> None:
        if not photos:
            return
        ids = [p.id for p in photos]
        menu = QMenu(self)
        label = self._label(self._open)
        if label is not None and self.show_combo.currentData() == "sorted":
            menu.addAction(f"Accept as “{label.name}”").triggered.connect(lambda: self.accept(ids))
            menu.addAction(f"Reject: not “{label.name}”").triggered.connect(
                lambda: self.reject(ids)
            )
        label_menu = menu.addMenu("Label as")
        for lb in self._labels:
            action = label_menu.addAction(lb.name)
            action.triggered.connect(lambda _checked=False, lid=lb.id: self.label_as(ids, lid))
        menu.exec(position)

    def _label_menu(self, position: QPoint) -> None:
        label = self._label(self._open)
        if label is None:
            return
        menu = QMenu(self)
        menu.addAction("Rename…").triggered.connect(self._rename_selected)
        menu.addAction("Remove").triggered.connect(self._remove_selected)
        menu.exec(self.label_list.viewport().mapToGlobal(position))

    # ---- training ----------------------------------------------------------------------

    def train(self) -> JobWorker | None:
        """Learn from the examples and sort every other photo, in a worker."""
        if self._train_worker is not None:
            self._train_worker.cancel()  # its result is ignored below
            self._train_worker = None
        if self._export_worker is not None or self._scan_worker is not None:
            return None
        library = self.library
        classifier = str(self.classifier_combo.currentData())
        threshold = self.threshold_spin.value() / 100
        worker = JobWorker(lambda token: library.sort_by_example(classifier, threshold, token))
        self._train_worker = worker

        def finished(result: SortResult) -> None:
            if self._train_worker is not worker:
                return
            self._train_worker = None
            self._set_idle()
            self._result = result
            self.reload()
            sorted_n = sum(not p.unsure for p in result.predictions)
            accuracy = (
                f" · accuracy {result.cv_accuracy:.0%}" if result.cv_accuracy is not None else ""
            )
            self.status_message.emit(
                f"Sorted {plural(sorted_n, 'photo')} into {plural(len(result.labels), 'label')}"
                f"{accuracy}"
            )

        def failed(exc: Exception) -> None:
            if self._train_worker is not worker:
                return
            self._train_worker = None
            self._set_idle()
            if worker.token.cancelled:
                self.status_message.emit("Sorting stopped")
            else:
                self.status_message.emit(f"Could not sort: {describe(exc)}")
                self.accuracy_label.setText(f"Could not sort: {describe(exc)}")

        worker.signals.progressed.connect(
            lambda step: self._progressed(step) if self._train_worker is worker else None
        )
        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        self._set_busy("Learning…")
        return start(worker)

    def _threshold_changed(self, value: float) -> None:
        if self._result is not None:
            self._result = rethreshold(self._result, value / 100)
            self._fill_labels()
            self._show_open()

    def cancel(self) -> None:
        for worker in (self._train_worker, self._export_worker, self._scan_worker):
            if worker is not None:
                worker.cancel()
                self.job_strip.stopping()

    def _progressed(self, step: Progress) -> None:
        self.job_strip.show_step(step)

    def _set_busy(self, text: str) -> None:
        self.job_strip.busy(text)
        self._update_actions()

    def _set_idle(self) -> None:
        self.job_strip.idle()
        self._update_actions()

    # ---- export --------------------------------------------------------------------------

    def export_interactively(self) -> JobWorker | None:
        dest = QFileDialog.getExistingDirectory(self, "Export the sorted photos into")
        if not dest:
            return None
        return self.export(dest, str(self.mode_combo.currentData()), confirm=True)

    def export(self, dest: str, mode: str, confirm: bool = False) -> JobWorker | None:
        """Write a folder per label into `dest` in a worker; with `confirm`, preview first."""
        result = self._result
        if result is None or self._busy():
            return None
        library = self.library
        if confirm:  # the exact plan is read in a worker, then previewed

            def preview(plan: PreviewPlan) -> None:
                dialog = ExportPreviewDialog(plan, mode, self)
                dialog.setWindowTitle("Export the sorted photos")
                self.preview_dialog = dialog
                if dialog.exec() == QDialog.DialogCode.Accepted and not self._busy():
                    self.export(dest, mode)

            def failed(exc: Exception) -> None:
                QMessageBox.warning(self, "Export", describe(exc))

            return call(
                lambda: library.plan_with_companions(library.sorted_export_plan(result, dest)),
                preview,
                failed,
            )
        self._export_worker = export_worker(
            lambda token: library.export_sorted_job(result, dest, mode, token),
            progressed=self._progressed,
            ended=self._export_ended,
            status=self.status_message,
            files_changed=self.files_changed,
        )
        self._set_busy("Exporting…")
        return start(self._export_worker)

    def _export_ended(self) -> None:
        self._export_worker = None
        self._set_idle()
