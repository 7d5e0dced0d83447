"""The Duplicates view: find groups of copies, choose what goes, trash or move it safely.

The search runs `Library.duplicates` in a `JobWorker`; the view shows the groups
on the left and the current group on the right as cards (thumbnail, relation to
the keeper, a mark box) above a table of the metadata that differs. Marked
files go to the trash or to a folder through `Library.trash` / `Library.move`
(journaled, undoable with Ctrl+Z), also in a worker. A member's companion files
(its RAW, Live Photo video, sidecars: `Member.companions`) go with it, and the
question before a trash or move names them.

Safety is enforced here as well as in `fileops`: a photo in a reference folder
can never be marked, and the last unmarked member of a group cannot be marked,
so every group always keeps at least one copy.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QSignalBlocker, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QFont, QIcon, QImage
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.dupe_pairs import PHASH_BITS
from dino_desktop.core.duplicates import (
    DEFAULT_THRESHOLD,
    MAX_PHASH_THRESHOLD,
    Group,
    Member,
)
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import OpResult, PhotoRow
from dino_desktop.core.weights import WeightsUnavailable
from dino_desktop.gui.common import also_moves, code_html, companions_note, data_size, plural
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.duplicate_cards import (
    CARD_EDGE,
    DIFF_TINT,
    FACT_ROWS,
    REFERENCE_TIP,
    FullSizeDialog,
    MemberCard,
    member_facts,
)
from dino_desktop.gui.workers import JobWorker, describe, start

__all__ = ["DuplicatesView", "FullSizeDialog"]

LIST_ICON = 56
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


def _search_job(
    library: Library, method: str, threshold: float | None, rotations: bool, token: CancelToken
) -> Job[tuple[list[Group], dict[int, PhotoRow]]]:
    groups = yield from library.duplicates(method, threshold, rotations=rotations, cancel=token)
    # Rows for the thumbnail loader, read here so the GUI thread never waits on the DB.
    rows = library.photos_by_id(m.image_id for g in groups for m in g.members)
    return groups, rows


def _one(text: str, work: Callable[[], OpResult]) -> Job[OpResult]:
    """A job of one step: short file work that must still stay off the GUI thread."""
    yield Progress("files", 0, None, None, text)
    return work()


def _without(group: Group, gone: set[str]) -> Group | None:
    """The group less the members in `gone`; None when fewer than two are left."""
    left = [m for m in group.members if m.path not in gone]
    if len(left) < 2:
        return None
    keeper = group.keeper
    if keeper.path in gone:
        # The user removed the keeper and kept others: promote a protected copy
        # if there is one (it can never go), else the first one left.
        keeper = next((m for m in left if m.is_reference), left[0])
        keeper = dataclasses.replace(keeper, relation="keeper")
    # Removal candidates first, as `find_duplicates` orders them (sorted() is stable).
    others = sorted((m for m in left if m.path != keeper.path), key=lambda m: m.is_reference)
    # Reference members can never be removed: they free nothing.
    reclaimable = sum(m.size for m in others if not m.is_reference)
    return dataclasses.replace(group, keeper=keeper, others=others, reclaimable=reclaimable)


# ---- the member cards --------------------------------------------------------------


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
        self._groups: list[Group] = []
        self._rows: dict[int, PhotoRow] = {}
        self._marked: set[str] = set()
        self._cards: list[MemberCard] = []
        self._keeper_rows: dict[int, list[int]] = {}  # keeper image id → list rows
        self._search_worker: JobWorker | None = None
        self._file_worker: JobWorker | None = None
        self._thresholds: dict[str, float] = {m: float(t) for m, t in DEFAULT_THRESHOLD.items()}
        self._method_shown = "exact"
        self.full_size_dialog: FullSizeDialog | None = None
        self._build_top_bar()
        self._build_groups_pane()
        self._build_group_pane()
        self._build_action_bar()
        splitter = QSplitter()
        splitter.addWidget(self._left)
        splitter.addWidget(self._right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([280, 720])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._top)
        layout.addWidget(splitter, 1)
        layout.addWidget(self._actions)
        loader.thumbnail_loaded.connect(self._thumbnail_arrived)
        loader.thumbnail_failed.connect(self._thumbnail_failed)
        self._method_changed()
        self._show_placeholder(HINT)
        self._update_actions()

    # ---- building --------------------------------------------------------------

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

    def _build_groups_pane(self) -> None:
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        bold = QFont(self.summary_label.font())
        bold.setBold(True)
        self.summary_label.setFont(bold)
        self.group_list = QListWidget()
        self.group_list.setIconSize(QSize(LIST_ICON, LIST_ICON))
        self.group_list.setUniformItemSizes(True)
        self.group_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.group_list.currentRowChanged.connect(self._show_group)
        # Scrolling, and resizing (the range changes), bring other rows into view.
        self.group_list.verticalScrollBar().valueChanged.connect(self._request_icons)
        self.group_list.verticalScrollBar().rangeChanged.connect(self._request_icons)
        self._left = QWidget()
        layout = QVBoxLayout(self._left)
        layout.setContentsMargins(8, 6, 0, 6)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.group_list, 1)

    def _build_group_pane(self) -> None:
        self.placeholder = QLabel()
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.placeholder.setContentsMargins(24, 24, 24, 24)

        self.group_title = QLabel()
        title_font = QFont(self.group_title.font())
        title_font.setBold(True)
        title_font.setPointSizeF(title_font.pointSizeF() * 1.1)
        self.group_title.setFont(title_font)
        self._cards_box = QWidget()
        self._cards_layout = QHBoxLayout(self._cards_box)
        self._cards_layout.setContentsMargins(0, 0, 0, 0)
        self._cards_layout.setSpacing(10)
        self._cards_layout.addStretch(1)
        cards_area = QScrollArea()
        cards_area.setWidget(self._cards_box)
        cards_area.setWidgetResizable(True)
        cards_area.setFrameShape(QFrame.Shape.NoFrame)
        cards_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        cards_area.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._cards_area = cards_area

        self.diff_table = QTableWidget(len(FACT_ROWS), 0)
        self.diff_table.setVerticalHeaderLabels(list(FACT_ROWS))
        self.diff_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.diff_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.diff_table.setWordWrap(False)
        self.diff_table.setAlternatingRowColors(False)
        self.diff_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.diff_table.horizontalHeader().setDefaultSectionSize(CARD_EDGE + 18)
        self.diff_table.setToolTip("Highlighted: differs from the keeper")

        self.mark_button = QToolButton()
        self.mark_button.setText("Mark all but the keeper")
        self.mark_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.mark_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.mark_button.setToolTip(
            "Mark every copy in this group except the keeper and reference photos"
        )
        self.mark_button.clicked.connect(lambda: self.mark_all_but_keeper(False))
        mark_menu = QMenu(self.mark_button)
        mark_menu.addAction("In this group", lambda: self.mark_all_but_keeper(False))
        self.mark_all_action = mark_menu.addAction(
            "In every group", lambda: self.mark_all_but_keeper(True)
        )
        self.mark_button.setMenu(mark_menu)
        self.unmark_button = QPushButton("Unmark all")
        self.unmark_button.setToolTip("Clear the marks in every group")
        self.unmark_button.clicked.connect(self.unmark_all)
        self.compare_button = QPushButton("Compare at full size")
        self.compare_button.setToolTip("This group's photos side by side at 100 %")
        self.compare_button.clicked.connect(self.compare_full_size)
        self.why_button = QPushButton("Why they match")
        self.why_button.setToolTip(
            "Show the photos' DINOv2 features in the same colours (needs the model weights)"
        )
        self.why_button.clicked.connect(self.request_why)
        buttons = QHBoxLayout()
        buttons.addWidget(self.mark_button)
        buttons.addWidget(self.unmark_button)
        buttons.addStretch(1)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.why_button)

        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.setVisible(False)

        group_page = QWidget()
        layout = QVBoxLayout(group_page)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.group_title)
        layout.addWidget(cards_area)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        layout.addWidget(self.diff_table, 1)

        self._right = QStackedWidget()
        self._right.addWidget(self.placeholder)
        self._right.addWidget(group_page)
        self._group_page = group_page

    def _build_action_bar(self) -> None:
        self.marked_label = QLabel()
        self.trash_button = QPushButton("Move marked to trash")
        self.trash_button.clicked.connect(lambda: self.trash_marked())
        self.move_button = QPushButton("Move marked to folder…")
        self.move_button.clicked.connect(lambda: self.move_marked())
        self._actions = QFrame()
        self._actions.setFrameShape(QFrame.Shape.StyledPanel)
        row = QHBoxLayout(self._actions)
        row.setContentsMargins(10, 6, 10, 6)
        row.addWidget(self.marked_label, 1)
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
        enabled = method != "exact" and not self._busy()
        spin.setEnabled(enabled)
        self.threshold_label.setEnabled(method != "exact")
        self.rotations_check.setEnabled(method == "phash" and not self._busy())

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
        if self._file_worker is not None:
            return None
        if self._search_worker is not None:
            self._search_worker.cancel()  # its result is ignored below
        method = self.method()
        threshold = self.threshold()
        rotations = method == "phash" and self.rotations_check.isChecked()
        library = self.library
        worker = JobWorker(lambda token: _search_job(library, method, threshold, rotations, token))
        self._search_worker = worker

        def finished(result: tuple[list[Group], dict[int, PhotoRow]]) -> None:
            if self._search_worker is worker:
                self._search_worker = None
                self._search_finished(method, *result)

        def failed(exc: Exception) -> None:
            if self._search_worker is worker:
                self._search_worker = None
                self._search_failed(exc, cancelled=worker.token.cancelled)

        worker.signals.progressed.connect(
            lambda step: self._progressed(step) if self._search_worker is worker else None
        )
        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        self._set_busy(f"Looking for {METHOD_LABELS[method].lower()}…")
        return start(worker)

    def cancel(self) -> None:
        """Ask the running search to stop (file operations run to their end: they are short)."""
        if self._search_worker is not None:
            self._search_worker.cancel()
            self.progress_label.setText("Stopping…")

    def _progressed(self, step: Progress) -> None:
        if step.total:
            self.progress.setRange(0, step.total)
            self.progress.setValue(step.done)
            text = f"{step.message or step.phase} {step.done:,} of {step.total:,}"
        else:
            self.progress.setRange(0, 0)
            text = step.message or step.phase
        self.progress_label.setText(text)

    def _search_finished(self, method: str, groups: list[Group], rows: dict[int, PhotoRow]) -> None:
        self._method_shown = method
        self._rows = rows
        self._marked.clear()
        self._set_groups(groups)
        self._set_idle()
        if groups:
            self.status_message.emit(f"Found {self.summary_label.text()}")
        else:
            self._show_placeholder(
                f"<h3>No {METHOD_LABELS[method].lower()} found</h3>"
                "<p>Every photo in the library is unique by this method."
                + ("" if method == "exact" else " A looser threshold finds more.")
                + "</p>"
            )
            self.status_message.emit(f"No {METHOD_LABELS[method].lower()} found")

    def _search_failed(self, exc: Exception, *, cancelled: bool) -> None:
        self._set_idle()
        if cancelled:
            self.status_message.emit("Duplicate search stopped")
            if not self._groups:
                self._show_placeholder(HINT)
            return
        self._groups = []
        self._marked.clear()
        self._set_groups([])
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

    def _busy(self) -> bool:
        return self._search_worker is not None or self._file_worker is not None

    def _set_busy(self, text: str) -> None:
        self.progress.setRange(0, 0)
        self.progress_label.setText(text)
        for widget in (self.progress, self.progress_label):
            widget.setVisible(True)
        self.cancel_button.setVisible(self._search_worker is not None)
        self._update_actions()

    def _set_idle(self) -> None:
        for widget in (self.progress, self.progress_label, self.cancel_button):
            widget.setVisible(False)
        self.progress.reset()
        self.progress_label.clear()
        self._update_actions()

    # ---- groups ------------------------------------------------------------------

    def groups(self) -> list[Group]:
        """The groups shown, in order (members removed by trash or move are gone)."""
        return list(self._groups)

    def current_group(self) -> Group | None:
        row = self.group_list.currentRow()
        return self._groups[row] if 0 <= row < len(self._groups) else None

    def _set_groups(self, groups: list[Group], current: int = 0) -> None:
        self._groups = list(groups)
        members = {m.path for g in groups for m in g.members}
        self._marked &= members  # marks of files that are gone are meaningless
        self.group_list.blockSignals(True)
        self.group_list.clear()
        self._keeper_rows = {}
        for index, group in enumerate(groups):
            item = QListWidgetItem(self._group_text(group))
            item.setToolTip(group.keeper.path)
            self._keeper_rows.setdefault(group.keeper.image_id, []).append(index)
            self.group_list.addItem(item)
        self.group_list.blockSignals(False)
        total = sum(g.reclaimable for g in groups)
        self.summary_label.setText(
            f"{plural(len(groups), 'group')} · {data_size(total)} reclaimable" if groups else ""
        )
        if groups:
            with QSignalBlocker(self.group_list):
                self.group_list.setCurrentRow(min(max(current, 0), len(groups) - 1))
            self._show_group(self.group_list.currentRow())
            self._request_icons()
        else:
            self._clear_cards()
            self._show_placeholder(HINT)
        self._update_actions()

    def _request_icons(self, *_args: Any) -> None:
        """Ask for the keeper thumbnails of the rows on screen only.

        The loader drops old requests when its queue overflows, so asking for
        thousands of groups at once would lose most of them; a QListWidget does
        not ask again by itself, so each scroll asks for what came into view.
        """
        view = self.group_list
        if not self._groups:
            return
        first = view.indexAt(view.viewport().rect().topLeft()).row()
        last = view.indexAt(view.viewport().rect().bottomLeft()).row()
        first = max(first, 0)
        if last < 0:  # below the last row, or not laid out yet: a screenful at most
            last = first + 40
        for index in range(first, min(last + 2, len(self._groups))):
            item = view.item(index)
            photo = self._rows.get(self._groups[index].keeper.image_id)
            if photo is None or item is None or not item.icon().isNull():
                continue
            pixmap = self.loader.pixmap(photo)
            if pixmap is not None:
                item.setIcon(QIcon(pixmap))
            else:
                self.loader.request(photo)

    @staticmethod
    def _group_text(group: Group) -> str:
        return (
            f"{os.path.basename(group.keeper.path)}\n"
            f"{len(group.members)} photos · {data_size(group.reclaimable)} reclaimable"
        )

    def _show_placeholder(self, html: str) -> None:
        self.placeholder.setText(html)
        self._right.setCurrentWidget(self.placeholder)

    def _clear_cards(self) -> None:
        for card in self._cards:
            self._cards_layout.removeWidget(card)
            card.deleteLater()
        self._cards = []

    def _show_group(self, row: int) -> None:
        self._clear_cards()
        self.notice.setVisible(False)
        if not 0 <= row < len(self._groups):
            return
        group = self._groups[row]
        self.group_title.setText(
            f"Group {row + 1} of {len(self._groups)} · {len(group.members)} photos · "
            f"{data_size(group.reclaimable)} reclaimable"
        )
        for member in group.members:
            card = MemberCard(member, self._method_shown, self._cards_box)
            card.set_marked(member.path in self._marked)
            card.mark_toggled.connect(self._card_toggled)
            photo = self._rows.get(member.image_id)
            if photo is not None:
                pixmap = self.loader.pixmap(photo)
                if pixmap is not None:
                    card.set_pixmap(pixmap)
                elif self.loader.has_failed(photo):
                    card.set_failed()
                else:
                    self.loader.request(photo)
            self._cards_layout.insertWidget(self._cards_layout.count() - 1, card)
            card.show()  # a child added to a visible widget stays hidden until shown
            self._cards.append(card)
        self._cards_area.setFixedHeight(
            self._cards_box.sizeHint().height()
            + self._cards_area.horizontalScrollBar().sizeHint().height()
        )
        self._fill_table(group)
        self._right.setCurrentWidget(self._group_page)
        self._update_actions()

    def _fill_table(self, group: Group) -> None:
        members = group.members
        table = self.diff_table
        table.setColumnCount(len(members))
        table.setHorizontalHeaderLabels(
            [("★ " if m.relation == "keeper" else "") + os.path.basename(m.path) for m in members]
        )
        keeper = member_facts(group.keeper)
        tint = QBrush(DIFF_TINT)
        for column, member in enumerate(members):
            for row, (text, value) in enumerate(member_facts(member)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if column > 0 and value != keeper[row][1]:
                    item.setBackground(tint)
                    font = item.font()
                    font.setBold(True)  # not by colour alone
                    item.setFont(font)
                    item.setToolTip(f"{text}\nKeeper: {keeper[row][0]}")
                table.setItem(row, column, item)

    def _thumbnail_arrived(self, image_id: int, _image: QImage) -> None:
        for card in self._cards:
            if card.member.image_id == image_id:
                photo = self._rows.get(image_id)
                card.set_pixmap(self.loader.pixmap(photo) if photo is not None else None)
        photo = self._rows.get(image_id)
        pixmap = self.loader.pixmap(photo) if photo is not None else None
        if pixmap is None:
            return
        for row in self._keeper_rows.get(image_id, []):
            item = self.group_list.item(row)
            if item is not None:
                item.setIcon(QIcon(pixmap))

    def _thumbnail_failed(self, image_id: int) -> None:
        for card in self._cards:
            if card.member.image_id == image_id:
                card.set_failed()

    # ---- marks -------------------------------------------------------------------

    def marked_paths(self) -> list[str]:
        """Marked files, in group order."""
        seen: list[str] = []
        for group in self._groups:
            seen.extend(m.path for m in group.members if m.path in self._marked)
        return list(dict.fromkeys(seen))

    def _marked_members(self) -> list[Member]:
        found: dict[str, Member] = {}
        for group in self._groups:
            for m in group.members:
                if m.path in self._marked:
                    found.setdefault(m.path, m)
        return list(found.values())

    def set_marked(self, path: str, marked: bool) -> bool:
        """Mark or unmark one file; returns False (with a message) when that is refused.

        Refused: a photo in a reference folder, and the last unmarked member of
        any group it belongs to, since a group must always keep one copy.
        """
        if not marked:
            self._marked.discard(path)
            self._refresh_marks()
            return True
        holding = [g for g in self._groups if any(m.path == path for m in g.members)]
        if not holding:
            return False
        if any(m.is_reference for g in holding for m in g.members if m.path == path):
            self._refuse(f"{os.path.basename(path)} is in a reference folder: {REFERENCE_TIP}")
            return False
        for group in holding:
            left = [m for m in group.members if m.path not in self._marked and m.path != path]
            if not left:
                self._refuse(
                    "At least one photo of each group stays: unmark another photo of "
                    "this group first if you want to remove this one."
                )
                return False
        self._marked.add(path)
        self._refresh_marks()
        return True

    def _card_toggled(self, path: str, marked: bool) -> None:
        if not self.set_marked(path, marked):
            self._refresh_marks()  # put the refused box back

    def mark_all_but_keeper(self, all_groups: bool = False) -> int:
        """Mark every non-keeper, non-reference member of the current group (or of all).

        The keeper is unmarked, so each group keeps its keeper. Returns how many are marked now.
        """
        group = self.current_group()
        targets = self._groups if all_groups else ([group] if group is not None else [])
        for g in targets:
            self._marked.discard(g.keeper.path)
            self._marked.update(m.path for m in g.others if not m.is_reference)
        self._refresh_marks()
        return len(self._marked)

    def unmark_all(self) -> None:
        self._marked.clear()
        self._refresh_marks()

    def _refuse(self, message: str) -> None:
        self.notice.setText(f"⚠ {message}")
        self.notice.setVisible(True)
        self.status_message.emit(message)

    def _refresh_marks(self) -> None:
        for card in self._cards:
            card.set_marked(card.member.path in self._marked)
        self._update_actions()

    # ---- actions ---------------------------------------------------------------

    def _update_actions(self) -> None:
        marked = self._marked_members()
        busy = self._busy()
        group = self.current_group()
        self.find_button.setEnabled(self._file_worker is None)
        self.method_combo.setEnabled(not busy)
        method = self.method()
        self.threshold_spin.setEnabled(method != "exact" and not busy)
        self.rotations_check.setEnabled(method == "phash" and not busy)
        self.trash_button.setEnabled(bool(marked) and not busy)
        self.move_button.setEnabled(bool(marked) and not busy)
        self.mark_button.setEnabled(group is not None and not busy)
        self.mark_all_action.setEnabled(bool(self._groups) and not busy)
        self.unmark_button.setEnabled(bool(self._marked) and not busy)
        self.compare_button.setEnabled(group is not None)
        self.why_button.setEnabled(group is not None)
        if marked:
            self.marked_label.setText(
                f"{plural(len(marked), 'photo')} marked · "
                f"{data_size(sum(m.size for m in marked))} to free"
            )
        else:
            self.marked_label.setText(
                "Nothing marked. Tick photos to remove, or use “Mark all but the keeper”."
                if self._groups
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
        marked = self._marked_members()
        if not marked or self._busy():
            return None
        freed = data_size(sum(m.size for m in marked))
        if confirm:
            others = [c for m in marked for c in m.companions]
            along = f"{also_moves(others)}: they go with their photos.\n\n" if others else ""
            answer = QMessageBox.question(
                self,
                "Move to trash",
                f"Move {plural(len(marked), 'photo')} ({freed}) to the trash?\n\n{along}"
                "Every group keeps its unmarked photos. You can undo this with Ctrl+Z.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return None
        paths = [m.path for m in marked]
        library = self.library
        return self._file_job(
            "Moving to the trash…",
            lambda: library.trash(paths),
            lambda what: f"Moved {what} to the trash — Undo with Ctrl+Z",
        )

    def move_marked(self, dest: str | None = None, confirm: bool = True) -> JobWorker | None:
        """Move the marked files into `dest` (asked for when None); journaled, undoable.
        With `confirm`, a move that takes companion files along asks first, naming them."""
        if not self._marked or self._busy():
            return None
        if dest is None:
            dest = QFileDialog.getExistingDirectory(self, "Move marked photos to")
            if not dest:
                return None
        others = [c for m in self._marked_members() for c in m.companions]
        if confirm and others:
            answer = QMessageBox.question(
                self,
                "Move to folder",
                f"Move {plural(len(self._marked), 'photo')} to {dest}?\n\n"
                f"{also_moves(others)}: they go with their photos. "
                "You can undo this with Ctrl+Z.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Yes,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return None
        paths = self.marked_paths()
        library = self.library
        target = dest
        return self._file_job(
            "Moving…",
            lambda: library.move(paths, target),
            lambda what: f"Moved {what} to {target} — Undo with Ctrl+Z",
        )

    def _file_job(
        self, text: str, work: Callable[[], OpResult], done: Callable[[str], str]
    ) -> JobWorker:
        """Run a trash or move; `done("2 photos (and 3 companion files)")` is its line."""
        worker = JobWorker(lambda _token: _one(text, work))
        self._file_worker = worker

        def finished(result: OpResult) -> None:
            self._file_worker = None
            self._set_idle()
            self._files_removed(result.done)
            note = done(plural(len(result.done), "photo") + companions_note(len(result.companions)))
            if result.failed:
                note += f" · {plural(len(result.failed), 'file')} not moved"
                details = "\n".join(
                    f"{os.path.basename(p)}: {reason}" for p, reason in result.failed[:10]
                )
                self.notice.setText(f"⚠ Not moved:\n{details}")
                self.notice.setVisible(True)
            for line in result.notes:
                note += f" · {line}"
            self.status_message.emit(note)
            if result.done:
                self.files_changed.emit()

        def failed(exc: Exception) -> None:
            self._file_worker = None
            self._set_idle()
            self._refuse(f"Nothing was moved: {describe(exc)}")

        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        self._set_busy(text)
        return start(worker)

    def _files_removed(self, paths: Iterable[str]) -> None:
        """Drop files that left their place from the groups; lone survivors leave the list."""
        gone = {os.path.abspath(p) for p in paths} | set(paths)
        if not gone:
            return
        row = self.group_list.currentRow()
        kept: list[Group] = []
        for index, group in enumerate(self._groups):
            smaller = _without(group, gone)
            if smaller is not None:
                kept.append(smaller)
            elif index < row:
                row -= 1  # stay on the same group (or the next one) when one above goes
        self._marked -= gone
        self._set_groups(kept, row)
