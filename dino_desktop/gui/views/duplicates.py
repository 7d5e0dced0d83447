"""The Duplicates view: find groups of copies, review them, answer, remove safely.

The search runs `Library.duplicates` in a `JobWorker` (always with the answered
groups and members, so that an undone answer brings its group back at once)
and builds the list's `GroupIndex` there too; the view shows the groups on the
left (duplicate_groups.py: filters, sort, a virtual list that holds 100,000
groups) and the current group on the right (duplicate_cards.py: cards with the
measured relation and its evidence, why the keeper won, warnings, crops drawn)
above a table of the metadata that differs.

What the user does, each in a worker:

* marks photos and trashes or moves them (`Library.trash` / `Library.move`,
  journaled, undoable with Ctrl+Z). A member's companion files go with it, and
  the question before a trash or move names them;
* answers "Not duplicates" / "Keep all" for a group or "Not a duplicate" for
  one photo (`Library.dismiss`); Undo (`Library.undismiss`) brings it back;
* applies the keeper rules to every group the filters pass (duplicate_bulk.py:
  a dry run first, then one undoable `Library.remove_duplicates`).

For the current group, what a removal would carry into the keeper's XMP
sidecar is shown (planned in a worker). Safety is enforced here as well as in
the core: a photo in a reference folder can never be marked, nor one answered
"not a duplicate", and the last unmarked member of a group cannot be marked,
so every group always keeps at least one copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from PySide6.QtCore import QSignalBlocker, QSize, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.dupe_pairs import PHASH_BITS
from dino_desktop.core.duplicates import (
    DEFAULT_THRESHOLD,
    MAX_PHASH_THRESHOLD,
    Group,
)
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import PhotoRow
from dino_desktop.core.weights import WeightsUnavailable
from dino_desktop.gui.common import code_html, data_size, plural
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.duplicate_bulk import (
    BulkDialog,
    FileFlows,
    UndoBar,
    answered,
    merge_preview_job,
    run_busy,
)
from dino_desktop.gui.views.duplicate_cards import (
    REFERENCE_TIP,
    FullSizeDialog,
    GroupPage,
    MemberCard,
    live_members,
)
from dino_desktop.gui.views.duplicate_groups import GroupIndex, GroupsPane, Marks, keep_out_of_gc
from dino_desktop.gui.workers import JobWorker, describe, reader, start

__all__ = ["DuplicatesView", "FullSizeDialog"]

MAX_WHY = 8  # CompareDialog shows 2–8 photos with one joint PCA

METHOD_LABELS: dict[str, str] = {
    "exact": "Exact copies",
    "phash": "Look-alikes (perceptual)",
    "dino": "Similar (DINOv2)",
}
METHOD_TIPS: dict[str, str] = {
    "exact": "Files with identical bytes (SHA-256). Fast and certain.",
    "phash": "Same picture after resizing, re-encoding or light edits (perceptual hash).",
    "dino": "Photos that look alike to the DINOv2 model: near-identical shots, crops, edits. "
    "Needs the model weights and embedded photos.",
}
HINT = (
    "<h3>Find duplicate photos</h3>"
    "<p>Choose a method above and press <b>Find duplicates</b>.</p>"
    "<p><b>Exact copies</b> are byte-for-byte identical files.<br>"
    "<b>Look-alikes</b> are the same picture resized, re-encoded or lightly edited.<br>"
    "<b>Similar</b> uses the DINOv2 model to find near-identical shots.</p>"
    "<p>Photos in reference folders 🔒 are never marked for removal.</p>"
)
FILTERED = "<h3>No group passes the filters</h3><p>Loosen them on the left.</p>"
ANSWERS = {False: "Not duplicates", True: "Keep all"}


def _search_job(
    library: Library, method: str, threshold: float | None, rotations: bool, token: CancelToken
) -> Job[tuple[GroupIndex, dict[int, PhotoRow]]]:
    groups = yield from library.duplicates(
        method, threshold, rotations=rotations, include_dismissed=True, cancel=token
    )
    keep_out_of_gc()
    yield Progress("duplicates", 0, None, None, "preparing the list")
    # Rows for the thumbnail loader, read here so the GUI thread never waits on the DB.
    rows = library.photos_by_id(m.image_id for g in groups for m in g.members)
    return GroupIndex.build(groups), rows


class DuplicatesView(QWidget):
    """Top bar with the search, groups on the left, the current group on the right."""

    files_changed = Signal()  # files were trashed or moved: the main window refreshes
    why_requested = Signal(list)  # list[str]: paths to show with a joint PCA (CompareDialog)
    status_message = Signal(str)  # a line for the status bar

    def __init__(
        self, library: Library, loader: ThumbnailLoader, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.loader = loader
        self.marks = Marks(GroupIndex.empty())
        self._search_worker: JobWorker | None = None
        self._answer_worker: JobWorker | None = None
        self._answers: list[tuple[int, Group]] = []  # (answer id, the group before it)
        self._thresholds: dict[str, float] = {m: float(t) for m, t in DEFAULT_THRESHOLD.items()}
        self._method_shown = "exact"
        self.search_args: tuple[str, float | None, bool] = ("exact", None, False)
        self.full_size_dialog: FullSizeDialog | None = None
        self.bulk_dialog: BulkDialog | None = None
        self.files = FileFlows(self)  # trash, move, the bulk action, their undo
        self._build_top_bar()
        self.pane = GroupsPane(loader)
        self.pane.current_changed.connect(self._show_group)
        self.pane.filter_changed.connect(self._update_actions)
        self.page = GroupPage()
        self.page.mark_toggled.connect(self._card_toggled)
        self.page.not_duplicate.connect(self.answer_member)
        self._alias_page()
        self.placeholder = QLabel()
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.placeholder.setContentsMargins(24, 24, 24, 24)
        self._right = QStackedWidget()
        self._right.addWidget(self.placeholder)
        self._right.addWidget(self.page)
        self._left = QWidget()
        left = QVBoxLayout(self._left)
        left.setContentsMargins(8, 6, 0, 6)
        left.addWidget(self.pane)
        self._build_action_bar()
        self.undo_bar = UndoBar()
        splitter = QSplitter()
        splitter.addWidget(self._left)
        splitter.addWidget(self._right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 700])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._top)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.undo_bar)
        layout.addWidget(self._actions)
        loader.thumbnail_loaded.connect(self._thumbnail_arrived)
        loader.thumbnail_failed.connect(self._thumbnail_failed)
        self._method_changed()
        self._show_placeholder(HINT)
        self._update_actions()

    # ---- building --------------------------------------------------------------

    def _alias_page(self) -> None:
        """The group page's widgets, by the names the view always had."""
        page = self.page
        self.group_title = page.group_title
        self.diff_table = page.diff_table
        self.notice = page.notice
        self.mark_button = page.mark_button
        self.unmark_button = page.unmark_button
        self.compare_button = page.compare_button
        self.why_button = page.why_button
        self.not_duplicates_button = page.not_duplicates_button
        self.keep_all_button = page.keep_all_button
        self.mark_button.clicked.connect(lambda: self.mark_all_but_keeper(False))
        page.mark_menu.addAction("In this group", lambda: self.mark_all_but_keeper(False))
        self.mark_all_action = page.mark_menu.addAction(
            "In every group shown", lambda: self.mark_all_but_keeper(True)
        )
        self.unmark_button.clicked.connect(self.unmark_all)
        self.compare_button.clicked.connect(self.compare_full_size)
        self.why_button.clicked.connect(self.request_why)
        self.not_duplicates_button.clicked.connect(lambda: self.answer_group(keep_all=False))
        self.keep_all_button.clicked.connect(lambda: self.answer_group(keep_all=True))

    def _build_top_bar(self) -> None:
        self.method_combo = QComboBox()
        for key, label in METHOD_LABELS.items():
            self.method_combo.addItem(label, key)
            self.method_combo.setItemData(
                self.method_combo.count() - 1, METHOD_TIPS[key], Qt.ItemDataRole.ToolTipRole
            )
        self.method_combo.currentIndexChanged.connect(self._method_changed)
        self.threshold_label = QLabel("Threshold")
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.valueChanged.connect(self._threshold_edited)
        self.rotations_check = QCheckBox("Include rotations/mirrors")
        self.rotations_check.setToolTip("Also match copies that were rotated or flipped (slower)")
        self.find_button = QPushButton("Find duplicates")
        self.find_button.setDefault(True)
        self.find_button.clicked.connect(lambda: self.find())
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self._top = QWidget()
        row = QHBoxLayout(self._top)
        row.setContentsMargins(10, 8, 10, 8)
        row.addWidget(QLabel("Method"))
        row.addWidget(self.method_combo)
        row.addSpacing(8)
        row.addWidget(self.threshold_label)
        row.addWidget(self.threshold_spin)
        row.addSpacing(8)
        row.addWidget(self.rotations_check)
        row.addStretch(1)
        row.addWidget(self.progress_label)
        row.addWidget(self.progress)
        row.addWidget(self.cancel_button)
        row.addWidget(self.find_button)

    def _build_action_bar(self) -> None:
        self.marked_label = QLabel()
        self.bulk_button = QPushButton()
        self.bulk_button.setToolTip(
            "Remove the copies of every group the filters show, by the keeper rules: "
            "a dry run first; bursts and similar shots stay unless you ask"
        )
        self.bulk_button.clicked.connect(lambda: self.apply_rules())
        self.trash_button = QPushButton("Move marked to trash")
        self.trash_button.clicked.connect(lambda: self.trash_marked())
        self.move_button = QPushButton("Move marked to folder…")
        self.move_button.clicked.connect(lambda: self.move_marked())
        self._actions = QFrame()
        self._actions.setFrameShape(QFrame.Shape.StyledPanel)
        row = QHBoxLayout(self._actions)
        row.setContentsMargins(10, 6, 10, 6)
        row.addWidget(self.marked_label, 1)
        row.addWidget(self.bulk_button)
        row.addSpacing(12)
        row.addWidget(self.move_button)
        row.addWidget(self.trash_button)

    # ---- search ----------------------------------------------------------------

    def method(self) -> str:
        return str(self.method_combo.currentData())

    def threshold(self) -> float | None:
        """The threshold for the chosen method (None for exact copies)."""
        method = self.method()
        if method == "exact":
            return None
        value = self.threshold_spin.value()
        # phash thresholds are a number of differing hash bits.
        return float(int(value)) if method == "phash" else value

    def _method_changed(self, *_args: Any) -> None:
        method = self.method()
        self.method_combo.setToolTip(METHOD_TIPS[method])
        spin = self.threshold_spin
        with QSignalBlocker(spin):
            if method == "dino":
                spin.setDecimals(3)
                spin.setRange(0.5, 1.0)
                spin.setSingleStep(0.01)
                spin.setToolTip("Cosine similarity at least this high (higher: stricter)")
            else:
                spin.setDecimals(0)
                spin.setRange(0, MAX_PHASH_THRESHOLD)
                spin.setSingleStep(1)
                spin.setToolTip(
                    f"Hash bits that may differ, out of {PHASH_BITS} (lower: stricter; "
                    "about 12 also catches crops and stronger edits)"
                )
            spin.setValue(self._thresholds.get(method, 0.0))
        self.threshold_label.setEnabled(method != "exact")
        self._update_actions()

    def _threshold_edited(self, value: float) -> None:
        self._thresholds[self.method()] = value

    # Shadows the static QWidget.find(WId), which nothing here uses: `find` is this
    # view's public verb for "search", as the main window calls it.
    def find(self, method: str | None = None) -> JobWorker | None:  # type: ignore[override]
        """Start a search (by `method`, default the chosen one); None while files are changing."""
        if method is not None:
            index = self.method_combo.findData(method)
            if index < 0:
                raise ValueError(f"unknown duplicates method {method!r}")
            self.method_combo.setCurrentIndex(index)
        if self.files.worker is not None:
            return None
        if self._search_worker is not None:
            self._search_worker.cancel()  # its result is ignored below
        method = self.method()
        threshold = self.threshold()
        rotations = method == "phash" and self.rotations_check.isChecked()
        return self.search(method, threshold, rotations)

    def search(self, method: str, threshold: float | None, rotations: bool) -> JobWorker:
        library = self.library
        worker = JobWorker(lambda token: _search_job(library, method, threshold, rotations, token))
        self._search_worker = worker

        def finished(result: tuple[GroupIndex, dict[int, PhotoRow]]) -> None:
            if self._search_worker is worker:
                self._search_worker = None
                self.search_args = (method, threshold, rotations)
                self._search_finished(method, *result)

        def failed(exc: Exception) -> None:
            if self._search_worker is worker:
                self._search_worker = None
                self._search_failed(exc, cancelled=worker.token.cancelled)

        worker.signals.progressed.connect(
            lambda step: self.show_progress(step) if self._search_worker is worker else None
        )
        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        self.set_busy(f"Looking for {METHOD_LABELS[method].lower()}…")
        return start(worker)

    def cancel(self) -> None:
        """Ask the running search, or bulk removal, to stop (a removal stops between photos)."""
        for worker in (self._search_worker, self.files.worker):
            if worker is not None and self.cancel_button.isVisible():
                worker.cancel()
                self.progress_label.setText("Stopping…")

    def show_progress(self, step: Progress) -> None:
        if step.total:
            self.progress.setRange(0, step.total)
            self.progress.setValue(step.done)
            text = f"{step.message or step.phase} {step.done:,} of {step.total:,}"
        else:
            self.progress.setRange(0, 0)
            text = step.message or step.phase
        self.progress_label.setText(text)

    def _search_finished(self, method: str, index: GroupIndex, rows: dict[int, PhotoRow]) -> None:
        self._method_shown = method
        self.marks = Marks(index)
        self.set_idle()
        self.pane.set_index(index, rows)
        if len(index):
            self.status_message.emit(f"Found {self.pane.count_label.text()}")
        else:
            self._show_placeholder(
                f"<h3>No {METHOD_LABELS[method].lower()} found</h3>"
                "<p>Every photo in the library is unique by this method."
                + ("" if method == "exact" else " A looser threshold finds more.")
                + "</p>"
            )
            self.status_message.emit(f"No {METHOD_LABELS[method].lower()} found")

    def _search_failed(self, exc: Exception, *, cancelled: bool) -> None:
        self.set_idle()
        if cancelled:
            self.status_message.emit("Duplicate search stopped")
            if not len(self.pane.model.found):
                self._show_placeholder(HINT)
            return
        self.marks = Marks(GroupIndex.empty())
        self.pane.set_index(self.marks.index, {})
        message = describe(exc)
        if isinstance(exc, WeightsUnavailable):
            # The message says what to download and how to import it.
            text = (
                "<h3>The DINOv2 model weights are not installed</h3>"
                f"<p>{code_html(message)}</p>"
                "<p><b>Exact copies</b> and <b>Look-alikes</b> work without them.</p>"
            )
        else:
            text = f"<h3>Could not look for duplicates</h3><p>{code_html(message)}</p>"
        self._show_placeholder(text)
        self.status_message.emit(f"Could not look for duplicates: {message}")

    @property
    def _file_worker(self) -> JobWorker | None:
        """What writes the library or its files now (gui/live.py waits for it)."""
        return self.files.worker or self._answer_worker

    def busy(self) -> bool:
        return any(
            w is not None for w in (self._search_worker, self.files.worker, self._answer_worker)
        )

    def set_busy(self, text: str, *, cancellable: bool | None = None) -> None:
        self.progress.setRange(0, 0)
        self.progress_label.setText(text)
        for widget in (self.progress, self.progress_label):
            widget.setVisible(True)
        if cancellable is None:
            cancellable = self._search_worker is not None
        self.cancel_button.setVisible(cancellable)
        self._update_actions()

    def set_idle(self) -> None:
        for widget in (self.progress, self.progress_label, self.cancel_button):
            widget.setVisible(False)
        self.progress.reset()
        self.progress_label.clear()
        self._update_actions()

    # ---- groups ------------------------------------------------------------------

    def groups(self) -> list[Group]:
        """The groups shown (the filters passed), in order; removed members are gone."""
        found = self.pane.model.found
        return [found.groups[i] for i in self.pane.model.rows.tolist()]

    def all_groups(self) -> list[Group]:
        """Every group of the search (answered ones included), in the search's order."""
        return list(self.pane.model.found.groups)

    def current_group(self) -> Group | None:
        gi = self.pane.current_group_index()
        return self.pane.model.found.groups[gi] if gi >= 0 else None

    def select_row(self, row: int) -> None:
        """Make the list's `row` the current group."""
        self.pane.select_row(row)

    def _show_placeholder(self, html: str) -> None:
        self.page.clear()
        self.placeholder.setText(html)
        self._right.setCurrentWidget(self.placeholder)

    def _show_group(self, gi: int) -> None:
        self.page.preview_merge(None)
        found = self.pane.model.found
        if gi < 0:
            self._show_placeholder(FILTERED if len(found) else HINT)
            self._update_actions()
            return
        group = found.groups[gi]
        show_dismissed = self.pane.filter().show_dismissed
        count = len(group.members) if show_dismissed else len(live_members(group))
        self.page.show_group(
            group,
            f"Group {self.pane.current_row() + 1:,} of {self.pane.model.rowCount():,} · "
            f"{plural(count, 'photo')} · {data_size(group.reclaimable)} reclaimable",
            self._method_shown,
            show_dismissed,
        )
        for card in self.page.cards:
            card.set_marked(card.member.path in self.marks)
            self._load_thumbnail(card)
        self._right.setCurrentWidget(self.page)
        self._update_actions()
        self._preview_merge()

    def _load_thumbnail(self, card: MemberCard) -> None:
        photo = self.pane.model.photos.get(card.member.image_id)
        if photo is None:
            return
        pixmap = self.loader.pixmap(photo)
        if pixmap is not None:
            card.set_pixmap(pixmap)
        elif self.loader.has_failed(photo):
            card.set_failed()
        else:
            self.loader.request(photo)

    def _thumbnail_arrived(self, image_id: int, _image: QImage) -> None:
        photo = self.pane.model.photos.get(image_id)
        pixmap = self.loader.pixmap(photo) if photo is not None else None
        for card in self.page.cards:
            if card.member.image_id == image_id:
                card.set_pixmap(pixmap)
        self.pane.model.thumbnail_arrived(image_id)

    def _thumbnail_failed(self, image_id: int) -> None:
        for card in self.page.cards:
            if card.member.image_id == image_id:
                card.set_failed()

    def _preview_merge(self) -> None:
        """What removing this group's marked photos (or its copies, by the rules, when
        none is marked) would carry into the keeper's sidecar: planned in a worker."""
        group = self.current_group()
        if group is None or group.dismissed:
            self.page.preview_merge(None)
            return
        marks = self.marks.in_group(self.pane.current_group_index())
        library = self.library
        self.page.preview_merge(lambda token: merge_preview_job(library, group, marks, token))

    # ---- marks -------------------------------------------------------------------

    def marked_paths(self) -> list[str]:
        """Marked files, in the order of their groups."""
        return self.marks.paths()

    def set_marked(self, path: str, marked: bool) -> bool:
        """Mark or unmark one file; returns False (with a message) when that is refused.

        Refused: a photo in a reference folder, one answered "not a duplicate", and
        the last unmarked member of its group, since a group must always keep one copy.
        """
        if not marked:
            self.marks.discard(path)
            self._refresh_marks()
            return True
        found = self.pane.model.found
        gi = found.by_path.get(path, -1)
        if gi < 0:
            return False
        group = found.groups[gi]
        member = next(m for m in group.members if m.path == path)
        if member.is_reference:
            self.refuse(f"{os.path.basename(path)} is in a reference folder: {REFERENCE_TIP}")
            return False
        live = live_members(group)
        if member not in live:
            self.refuse(f"{os.path.basename(path)} was answered “not a duplicate”.")
            return False
        if not [m for m in live if m.path not in self.marks and m.path != path]:
            self.refuse(
                "At least one photo of each group stays: unmark another photo of "
                "this group first if you want to remove this one."
            )
            return False
        self.marks.add(path)
        self._refresh_marks()
        return True

    def _card_toggled(self, path: str, marked: bool) -> None:
        if not self.set_marked(path, marked):
            self._refresh_marks()  # put the refused box back

    def mark_all_but_keeper(self, all_groups: bool = False) -> int:
        """Mark the copies of the current group (or of every group shown): never the
        keeper (it is unmarked), a reference photo, an answered one or another
        exposure (bursts, similar shots). Returns how many are marked now."""
        gi = self.pane.current_group_index()
        rows = self.pane.model.rows if all_groups else np.asarray([gi] * (gi >= 0), np.int64)
        self.marks.mark_all(rows)
        self._refresh_marks()
        return len(self.marks)

    def unmark_all(self) -> None:
        self.marks.clear()
        self._refresh_marks()

    def refuse(self, message: str) -> None:
        self.notice.setText(f"⚠ {message}")
        self.notice.setVisible(True)
        self.status_message.emit(message)

    def _refresh_marks(self) -> None:
        for card in self.page.cards:
            card.set_marked(card.member.path in self.marks)
        self._update_actions()
        if self.current_group() is not None:
            self._preview_merge()

    # ---- answers -----------------------------------------------------------------

    def answer_group(self, keep_all: bool = False) -> JobWorker | None:
        """Answer "Not duplicates" (or "Keep all") for the current group, in a worker:
        the group leaves the list; Undo brings it back."""
        group = self.current_group()
        if group is None or self.busy():
            return None
        ids = [m.image_id for m in live_members(group)]
        if len(ids) < 2:
            return None
        library = self.library
        return self._answer(
            lambda: library.dismiss(ids, keep_all=keep_all),
            group,
            None,
            f"Answered “{ANSWERS[keep_all]}” for {plural(len(ids), 'photo')}",
        )

    def answer_member(self, path: str) -> JobWorker | None:
        """Answer "Not a duplicate" for one photo of the current group, in a worker."""
        group = self.current_group()
        if group is None or self.busy():
            return None
        live = live_members(group)
        member = next((m for m in live if m.path == path), None)
        if member is None:
            return None
        if member.path == group.keeper.path and len(live) > 2:
            self.refuse(
                "The keeper stays with its copies: answer for another photo, or "
                "“Not duplicates” for the whole group."
            )
            return None
        ids = [m.image_id for m in live]
        library = self.library
        return self._answer(
            lambda: library.dismiss(ids, member=member.image_id),
            group,
            path,
            f"Answered “Not a duplicate” for {os.path.basename(path)}",
        )

    def _answer(
        self, work: Callable[[], int], group: Group, subject: str | None, note: str
    ) -> JobWorker:
        def finished(answer_id: int) -> None:
            self._answers.append((int(answer_id), group))
            self._put(group, answered(group, subject))
            self.undo_bar.show_note(note, self.undo_answer)
            self.status_message.emit(note)

        return self._answer_call(work, "Remembering the answer…", finished, "Not answered")

    def _answer_call(
        self, work: Callable[[], int], text: str, finished: Callable[[int], None], failure: str
    ) -> JobWorker:
        """Store or take back an answer in a worker (busy meanwhile); then `finished`."""
        self._answer_worker = worker = reader(work)
        release = partial(setattr, self, "_answer_worker", None)
        return run_busy(self, worker, text, finished, failure, False, release)

    def _put(self, old: Group, new: Group) -> bool:
        """Replace the group holding `old`'s photos with `new` (same photos) in place."""
        found = self.pane.model.found
        gi = found.by_path.get(old.keeper.path, -1)
        if gi < 0:
            return False
        current = found.groups[gi]
        paths = {m.path for m in new.members}
        if {m.path for m in current.members} != paths or current.keeper.path != new.keeper.path:
            return False  # a removal changed the group since: a new search shows it
        marked = self.marks.in_group(gi)
        self.marks.mask[found.group_slice(gi)] = False
        found.replace(gi, new)  # its members may change places: mark them again by path
        live = {m.path for m in live_members(new)}
        for path in marked:
            if path in live:
                self.marks.add(path)
        showing = self.pane.current_group_index() == gi
        self.pane.refresh_group(gi)
        if showing and self.pane.current_group_index() == gi:
            self._show_group(gi)  # still passes: show its cards as they are now
        return True

    def undo_answer(self) -> JobWorker | None:
        """Take back the latest answer (`Library.undismiss`, in a worker)."""
        if not self._answers or self.busy():
            return None
        answer_id, before = self._answers.pop()
        library = self.library

        def finished(_id: int) -> None:
            back = self._put(before, before)
            found = self.pane.model.found
            if back:
                self.pane.select_row(self.pane.model.row_of(found.by_path[before.keeper.path]))
            note = "Answer taken back" + ("" if back else ": search again to see the group")
            self.undo_bar.show_note(note, self.undo_answer if self._answers else None)
            self.status_message.emit(note)

        return self._answer_call(
            lambda: library.undismiss(answer_id),
            "Taking the answer back…",
            finished,
            "Could not take the answer back",
        )

    # ---- actions ---------------------------------------------------------------

    def _update_actions(self) -> None:
        marked = self.marks
        busy = self.busy()
        group = self.current_group()
        self.find_button.setEnabled(self.files.worker is None)
        self.method_combo.setEnabled(not busy)
        method = self.method()
        self.threshold_spin.setEnabled(method != "exact" and not busy)
        self.rotations_check.setEnabled(method == "phash" and not busy)
        self.trash_button.setEnabled(bool(marked) and not busy)
        self.move_button.setEnabled(bool(marked) and not busy)
        live = live_members(group) if group is not None else []
        self.mark_button.setEnabled(bool(live) and not busy)
        shown = self.pane.model.rowCount()
        self.mark_all_action.setEnabled(shown > 0 and not busy)
        self.unmark_button.setEnabled(bool(marked) and not busy)
        self.not_duplicates_button.setEnabled(len(live) >= 2 and not busy)
        self.keep_all_button.setEnabled(len(live) >= 2 and not busy)
        keeper_alone = len(live) > 2
        for card in self.page.cards:
            mine = card.member in live and not (card.member is live[0] and keeper_alone)
            card.answer_button.setEnabled(mine and not busy)
        self.compare_button.setEnabled(group is not None)
        self.why_button.setEnabled(group is not None)
        self.bulk_button.setText(f"Apply keeper rules to {plural(shown, 'filtered group')}…")
        self.bulk_button.setEnabled(shown > 0 and not busy)
        if marked:
            size = marked.bytes()
            self.marked_label.setText(
                f"{plural(len(marked), 'photo')} marked · {data_size(size)} to free"
            )
        else:
            self.marked_label.setText(
                "Nothing marked. Tick photos to remove, or use “Mark all but the keeper”."
                if shown
                else ""
            )

    def request_why(self) -> list[str]:
        """Ask the main window to show the current group's features with one joint PCA."""
        group = self.current_group()
        if group is None:
            return []
        paths = [m.path for m in group.members][:MAX_WHY]
        self.why_requested.emit(paths)
        return paths

    def compare_full_size(self) -> FullSizeDialog | None:
        """The current group's members side by side at 100 %, decoded in a worker."""
        group = self.current_group()
        if group is None:
            return None
        if self.full_size_dialog is not None:
            self.full_size_dialog.close()
        dialog = FullSizeDialog([m.path for m in group.members], self)
        window = self.window()
        dialog.resize(window.size() * 0.9 if window is not self else QSize(1000, 700))
        dialog.show()
        self.full_size_dialog = dialog
        return dialog

    def trash_marked(self, confirm: bool = True) -> JobWorker | None:
        """Move the marked files to the system trash (journaled; Ctrl+Z restores them)."""
        return self.files.trash(confirm)

    def move_marked(self, dest: str | None = None, confirm: bool = True) -> JobWorker | None:
        """Move the marked files into `dest` (asked for when None); journaled, undoable.
        With `confirm`, a move that takes companion files along asks first, naming them."""
        return self.files.move(dest, confirm)

    def apply_rules(self) -> JobWorker | None:
        """The bulk action over the groups shown: plan, dry run (`bulk_dialog`), run."""
        return self.files.apply_rules()

    def undo_files(self, journal_id: int) -> JobWorker | None:
        """Undo this view's file operation `journal_id`, then search again."""
        return self.files.undo(journal_id)
