"""The Duplicates view's pieces for one group: a `MemberCard` per photo
(thumbnail, relation to the keeper with what it was measured from, the keeper
rule's reason, a crop drawn where one was found, a mark box, the "not a
duplicate" answer), the words for relations and scores, and `FullSizeDialog`,
the members at 100 % side by side with linked scrolling (decoded in a worker)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import shiboken6
from PySide6.QtCore import QRect, QSignalBlocker, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QContextMenuEvent,
    QFont,
    QImage,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QScrollBar,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.dupe_pairs import PHASH_BITS
from dino_desktop.core.duplicates import OTHER_EXPOSURES, Group, Member
from dino_desktop.core.images import open_image
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.gui.common import data_size, plural, rgb_qimage
from dino_desktop.gui.workers import JobWorker, describe, start

__all__ = [
    "EXPOSURE_TIP",
    "FullSizeDialog",
    "GroupPage",
    "MemberCard",
    "live_members",
    "member_facts",
    "relation_label",
    "score_text",
    "sentence",
]

RELATION_LABELS: dict[str, str] = {
    "keeper": "Keeper",
    "identical": "Identical copy",
    "resized": "Resized copy",
    "re-encoded": "Re-encoded copy",
    "rotated": "Rotated copy",
    "mirrored": "Mirrored copy",
    "cropped": "Cropped copy",
    "greyscale": "Greyscale copy",
    "colour edit": "Colour-edited copy",
    "edited": "Edited copy",
    "burst": "Burst shot",
    "similar shot": "Similar shot",
    "similar": "Look-alike",
}
CARD_EDGE = 220
FACT_ROWS = ("Folder", "File size", "Dimensions", "Format", "Taken", "Camera")
REFERENCE_TIP = "In a reference folder: protected, never moved or trashed."
EXPOSURE_TIP = (
    "Another exposure of the same scene, not a copy: it is not marked for you, "
    "and the bulk action leaves it unless asked."
)
DISMISSED_TIP = "You answered that this photo is not a duplicate of the others."
EVIDENCE_LINES = 3
# Differing cells: a translucent amber, so it tints the light or dark base
# colour underneath instead of replacing it and reads well on both.
DIFF_TINT = QColor(255, 176, 0, 56)
CROP_PEN = QColor(255, 64, 160)  # magenta: stands out on photos, light or dark


def relation_label(relation: str) -> str:
    """The user-facing words for a member's relation to its group's keeper."""
    return RELATION_LABELS.get(relation, relation.replace("-", " ").capitalize())


def sentence(text: str) -> str:
    """ "kept: more pixels" → "Kept: more pixels"."""
    return text[:1].upper() + text[1:]


def member_facts(member: Member) -> list[tuple[str, object]]:
    """(shown text, value compared with the keeper's) for each row of the diff table."""
    taken = member.taken_at.strftime("%d %b %Y, %H:%M:%S") if member.taken_at else "unknown"
    return [
        (os.path.dirname(member.path), os.path.dirname(member.path)),
        (data_size(member.size), member.size),
        (f"{member.width} × {member.height}", (member.width, member.height)),
        (member.format or "unknown", member.format),
        (taken, member.taken_at),
        (member.camera or "unknown", member.camera),
    ]


def score_text(method: str, member: Member) -> str:
    if member.relation == "keeper":
        return ""
    if method == "exact" or member.relation == "identical":
        return "Same bytes"
    if method == "phash":
        # score = 1 - bits/64: show the distance the threshold is set in.
        bits = round((1.0 - member.score) * PHASH_BITS)
        text = "Same hash" if bits == 0 else f"{plural(bits, 'hash bit')} apart"
        # A turned or mirrored copy is matched on its hash turned back: say so, or
        # "Same hash" reads as if the pixels were the same.
        return f"{text} once turned back" if member.transform else text
    return f"Similarity {member.score:.3f}"


def card_relation(member: Member) -> str:
    """The card's headline: the relation, and which way a crop goes."""
    if member.relation == "cropped" and member.crop_in == "copy":
        return "Uncropped (the keeper is a crop of it)"
    return relation_label(member.relation)


class MemberCard(QFrame):
    """One member of a group: thumbnail, name, relation and its evidence, score, badges
    (reference, another exposure), a mark box and the "not a duplicate" answer."""

    mark_toggled = Signal(str, bool)  # path, wanted state (the view may refuse it)
    not_duplicate = Signal(str)  # path: the user says it is not a duplicate of the others

    def __init__(self, member: Member, method: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.member = member
        self.exposure = member.relation in OTHER_EXPOSURES
        self.crop_boxes: list[tuple[tuple[int, int, int, int], tuple[int, int]]] = []
        self.crop_rects: list[QRect] = []  # the boxes as drawn, in thumbnail pixels
        self._pixmap: QPixmap | None = None
        self.setObjectName("card")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        # Marked: a border in the palette's highlight colour; another exposure: dashed.
        self.setStyleSheet(
            "QFrame#card { border: 1px solid palette(mid); border-radius: 6px; }"
            'QFrame#card[exposure="true"] { border: 1px dashed palette(mid); }'
            'QFrame#card[marked="true"] { border: 2px solid palette(highlight); }'
        )
        self.setProperty("exposure", self.exposure)
        self.image = QLabel()
        self.image.setFixedSize(CARD_EDGE, CARD_EDGE)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setText("…")
        name = os.path.basename(member.path)
        self.name = QLabel()
        self.name.setText(
            self.name.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, CARD_EDGE)
        )
        self.name.setToolTip(member.path)
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.relation = QLabel(card_relation(member))
        bold = QFont(self.relation.font())
        bold.setBold(True)
        self.relation.setFont(bold)
        self.evidence = QLabel(member.evidence)
        self.evidence.setWordWrap(True)
        self.evidence.setFixedWidth(CARD_EDGE)
        small = QFont(self.evidence.font())
        small.setPointSizeF(small.pointSizeF() * 0.85)
        self.evidence.setFont(small)
        self.evidence.setFixedHeight(self.evidence.fontMetrics().lineSpacing() * EVIDENCE_LINES)
        self.evidence.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.evidence.setToolTip(member.evidence)
        self.score = QLabel(score_text(method, member))
        for label in (self.score, self.evidence):
            # Secondary information: the palette's muted text colour, light or dark.
            label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.badge = QLabel("🔒 Reference")
        self.badge.setToolTip(REFERENCE_TIP)
        self.exposure_badge = QLabel("Another exposure")
        self.exposure_badge.setToolTip(EXPOSURE_TIP)
        self.dismissed_badge = QLabel("Not a duplicate")
        self.dismissed_badge.setToolTip(DISMISSED_TIP)
        self.check = QCheckBox("Mark for removal")
        if member.is_reference:
            self.check.setEnabled(False)
            self.check.setToolTip(REFERENCE_TIP)
        elif member.dismissed:
            self.check.setEnabled(False)
            self.check.setToolTip(DISMISSED_TIP)
        else:
            self.check.setToolTip(
                "Marked photos go to the trash or a folder with the buttons below"
            )
        self.check.toggled.connect(lambda on: self.mark_toggled.emit(member.path, on))
        self.answer_button = QToolButton()
        self.answer_button.setText("Not a duplicate")
        self.answer_button.setToolTip(
            "This photo is not a duplicate of the others: it leaves the group "
            "(remembered; Undo takes it back)"
        )
        self.answer_button.setAutoRaise(True)
        self.answer_button.clicked.connect(lambda: self.not_duplicate.emit(member.path))
        self.answer_button.setEnabled(not member.dismissed)
        tip = "\n".join(line for line in (sentence(member.why), member.evidence) if line)
        self.setToolTip(tip)
        self.relation.setToolTip(tip)
        info = QHBoxLayout()
        info.addWidget(self.relation)
        info.addStretch(1)
        info.addWidget(self.badge)
        badges = QHBoxLayout()
        badges.addWidget(self.exposure_badge)
        badges.addWidget(self.dismissed_badge)
        badges.addStretch(1)
        actions = QHBoxLayout()
        actions.addWidget(self.check)
        actions.addStretch(1)
        actions.addWidget(self.answer_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(4)
        layout.addWidget(self.image)
        layout.addWidget(self.name)
        layout.addLayout(info)
        layout.addLayout(badges)
        layout.addWidget(self.evidence)
        layout.addWidget(self.score)
        layout.addLayout(actions)
        # Only now, inside the card: a parentless label shown would open its own window.
        self.badge.setVisible(member.is_reference)
        self.exposure_badge.setVisible(self.exposure)
        self.dismissed_badge.setVisible(member.dismissed)
        if member.dismissed:
            self.image.setEnabled(False)
            self.relation.setEnabled(False)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        menu = QMenu(self)
        action = menu.addAction(
            "Not a duplicate of the others", lambda: self.not_duplicate.emit(self.member.path)
        )
        action.setEnabled(self.answer_button.isEnabled())
        menu.exec(event.globalPos())

    def add_crop_box(
        self, box: tuple[int, int, int, int], size: tuple[int, int], what: str
    ) -> None:
        """Draw `box` (x0, y0, x1, y1 in the pixels of a picture `size` = (w, h): this
        photo's display size) on the thumbnail: where the smaller picture `what` lies."""
        self.crop_boxes.append((box, size))
        x0, y0, x1, y1 = box
        tip = f"Outlined: {what}, ({x0}, {y0})–({x1}, {y1}) of {size[0]}×{size[1]}"
        self.image.setToolTip("\n".join(t for t in (self.image.toolTip(), tip) if t))
        self._draw()

    def set_pixmap(self, pixmap: QPixmap | None) -> None:
        if pixmap is None or pixmap.isNull():
            return
        self._pixmap = pixmap
        self._draw()

    def _draw(self) -> None:
        if self._pixmap is None:
            return
        shown = self._pixmap.scaled(
            CARD_EDGE,
            CARD_EDGE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.crop_rects = []
        if self.crop_boxes:
            painter = QPainter(shown)
            pen = QPen(CROP_PEN)
            pen.setWidth(2)
            painter.setPen(pen)
            for (x0, y0, x1, y1), (w, h) in self.crop_boxes:
                if w <= 0 or h <= 0:
                    continue
                sx, sy = shown.width() / w, shown.height() / h
                rect = QRect(round(x0 * sx), round(y0 * sy), 0, 0)
                rect.setRight(round(x1 * sx) - 1)
                rect.setBottom(round(y1 * sy) - 1)
                painter.drawRect(rect)
                self.crop_rects.append(rect)
            painter.end()
        self.image.setPixmap(shown)

    def set_failed(self) -> None:
        self.image.setText("Cannot be read")

    def set_marked(self, marked: bool) -> None:
        """Show the state without emitting `mark_toggled` (the view owns the marks)."""
        with QSignalBlocker(self.check):
            self.check.setChecked(marked)
        self.setProperty("marked", marked)
        # Re-polish: a dynamic property only restyles when the style is re-applied.
        self.style().unpolish(self)
        self.style().polish(self)


# ---- the group page --------------------------------------------------------------------


def live_members(group: Group) -> list[Member]:
    """The members no answer took out (none when the whole group was answered)."""
    if group.dismissed:
        return []
    return [m for m in group.members if not m.dismissed]


def shown_members(group: Group, show_dismissed: bool) -> list[Member]:
    """The members a group's page shows: those answered "not a duplicate" only when asked."""
    if show_dismissed or group.dismissed:
        return group.members
    return [m for m in group.members if not m.dismissed]


class GroupPage(QWidget):
    """The current group: title, why the keeper won, a warning, the member cards, the
    buttons that act on it, what a removal would carry to the keeper, and a table of
    the facts that differ."""

    mark_toggled = Signal(str, bool)
    not_duplicate = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cards: list[MemberCard] = []
        self.preview_worker: JobWorker | None = None
        self.group_title = QLabel()
        title_font = QFont(self.group_title.font())
        title_font.setBold(True)
        title_font.setPointSizeF(title_font.pointSizeF() * 1.1)
        self.group_title.setFont(title_font)
        self.why_label = QLabel()
        self.why_label.setWordWrap(True)
        self.why_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning_banner = QLabel()
        self.warning_banner.setWordWrap(True)
        self.warning_banner.setObjectName("warning")
        # Amber, translucent: readable over the light and the dark palette.
        self.warning_banner.setStyleSheet(
            "QLabel#warning { background: rgba(255, 176, 0, 70); border: 1px solid "
            "rgba(255, 150, 0, 160); border-radius: 4px; padding: 6px; }"
        )
        self._cards_box = QWidget()
        self._cards_layout = QHBoxLayout(self._cards_box)
        self._cards_layout.setContentsMargins(0, 0, 0, 0)
        self._cards_layout.setSpacing(10)
        self._cards_layout.addStretch(1)
        self.cards_area = QScrollArea()
        self.cards_area.setWidget(self._cards_box)
        self.cards_area.setWidgetResizable(True)
        self.cards_area.setFrameShape(QFrame.Shape.NoFrame)
        self.cards_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.cards_area.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

        self.diff_table = QTableWidget(len(FACT_ROWS), 0)
        self.diff_table.setVerticalHeaderLabels(list(FACT_ROWS))
        self.diff_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.diff_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.diff_table.setWordWrap(False)
        self.diff_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.diff_table.horizontalHeader().setDefaultSectionSize(CARD_EDGE + 18)
        self.diff_table.setToolTip("Highlighted: differs from the keeper")

        self.mark_button = QToolButton()
        self.mark_button.setText("Mark all but the keeper")
        self.mark_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.mark_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.mark_button.setToolTip(
            "Mark every copy in this group except the keeper, reference photos and "
            "other exposures (bursts, similar shots)"
        )
        self.mark_menu = QMenu(self.mark_button)
        self.mark_button.setMenu(self.mark_menu)
        self.unmark_button = QPushButton("Unmark all")
        self.unmark_button.setToolTip("Clear the marks in every group")
        self.not_duplicates_button = QPushButton("Not duplicates")
        self.not_duplicates_button.setToolTip(
            "These photos are not duplicates of each other: the group leaves the list "
            "and is not proposed again while the files stay unchanged"
        )
        self.keep_all_button = QPushButton("Keep all")
        self.keep_all_button.setToolTip(
            "Duplicates, but you want every copy: the group leaves the list and is not "
            "proposed again while the files stay unchanged"
        )
        self.compare_button = QPushButton("Compare at full size")
        self.compare_button.setToolTip("This group's photos side by side at 100 %")
        self.why_button = QPushButton("Why they match")
        self.why_button.setToolTip(
            "Show the photos' DINOv2 features in the same colours (needs the model weights)"
        )
        buttons = QHBoxLayout()
        # Marks, then the answers, then (on the right) the looks at the photos.
        for part in (
            [self.mark_button, self.unmark_button],
            [self.not_duplicates_button, self.keep_all_button],
            [self.compare_button, self.why_button],
        ):
            if part[0] is self.compare_button:
                buttons.addStretch(1)
            elif part[0] is self.not_duplicates_button:
                buttons.addSpacing(12)
            for button in part:
                buttons.addWidget(button)

        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.merge_label = QLabel()
        self.merge_label.setWordWrap(True)
        self.merge_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.merge_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        parts: list[QWidget] = [self.group_title, self.why_label, self.warning_banner]
        for widget in [*parts, self.cards_area]:
            layout.addWidget(widget)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        layout.addWidget(self.merge_label)
        layout.addWidget(self.diff_table, 1)
        for label in (self.notice, self.warning_banner, self.why_label, self.merge_label):
            label.setVisible(False)

    def show_group(self, group: Group, title: str, method: str, show_dismissed: bool) -> None:
        """Cards (keeper first) and the table for `group`; thumbnails come with `set_pixmap`."""
        self.clear()
        self.group_title.setText(title)
        self.why_label.setText(sentence(group.why))
        self.why_label.setVisible(bool(group.why))
        self.warning_banner.setText(f"⚠ {group.warning}" if group.warning else "")
        self.warning_banner.setVisible(bool(group.warning))
        members = shown_members(group, show_dismissed)
        by_path: dict[str, MemberCard] = {}
        for member in members:
            card = MemberCard(member, method, self._cards_box)
            card.mark_toggled.connect(self.mark_toggled)
            card.not_duplicate.connect(self.not_duplicate)
            self._cards_layout.insertWidget(self._cards_layout.count() - 1, card)
            card.show()  # a child added to a visible widget stays hidden until shown
            self.cards.append(card)
            by_path[member.path] = card
        keeper = by_path.get(group.keeper.path)
        for m in members[1:]:
            if m.relation != "cropped" or m.crop_box is None:
                continue
            # The box lies in the larger picture: the keeper's, or this copy's.
            larger, target = (
                (group.keeper, keeper) if m.crop_in == "keeper" else (m, by_path[m.path])
            )
            if target is not None:
                what = (
                    f"where {os.path.basename(m.path)} was cropped from"
                    if m.crop_in == "keeper"
                    else "the part the keeper shows"
                )
                target.add_crop_box(m.crop_box, (larger.width, larger.height), what)
        self.cards_area.setFixedHeight(
            self._cards_box.sizeHint().height()
            + self.cards_area.horizontalScrollBar().sizeHint().height()
        )
        self._fill_table(group.keeper, members)

    def clear(self) -> None:
        for card in self.cards:
            self._cards_layout.removeWidget(card)
            # Deleted now, not with deleteLater(): a deferred delete runs later in the
            # event loop, where destroying each child's Python wrapper must take the
            # GIL back from a busy worker (up to a 5 ms switch interval each: measured
            # 0.3-0.5 s frozen while a removal was being planned). No card signal is
            # on the stack here: the cards' own actions change them through workers.
            shiboken6.delete(card)
        self.cards = []
        self.notice.setVisible(False)
        self.merge_label.setVisible(False)

    def show_merge(self, text: str) -> None:
        self.merge_label.setText(text)
        self.merge_label.setVisible(bool(text))

    def preview_merge(self, job: Callable[[CancelToken], Job[str]] | None) -> None:
        """Run `job` (the line saying what a removal would carry into the keeper's
        sidecar) in a worker, in place of the one running; None: show nothing."""
        if self.preview_worker is not None:
            self.preview_worker.cancel()
            self.preview_worker = None
        if job is None:
            self.show_merge("")
            return
        worker = JobWorker(job)
        self.preview_worker = worker

        def finished(text: str) -> None:
            if self.preview_worker is worker:
                self.preview_worker = None
                self.show_merge(text)

        def failed(exc: Exception) -> None:
            if self.preview_worker is worker:
                self.preview_worker = None
                if not worker.cancelled:
                    self.show_merge(f"Could not read the copies' metadata: {describe(exc)}")

        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        start(worker)

    def _fill_table(self, keeper_member: Member, members: list[Member]) -> None:
        table = self.diff_table
        table.setColumnCount(len(members))
        table.setHorizontalHeaderLabels(
            [("★ " if m.relation == "keeper" else "") + os.path.basename(m.path) for m in members]
        )
        keeper = member_facts(keeper_member)
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


# ---- compare at full size --------------------------------------------------------------


def _decode_job(paths: Sequence[str], token: CancelToken) -> Job[list[QImage | str]]:
    """Decode each photo at full size into a QImage (fine off the GUI thread), or an error."""
    out: list[QImage | str] = []
    for done, path in enumerate(paths):
        token.check()
        yield Progress("decode", done, len(paths), path, "Decoding")
        try:
            img = open_image(path)
        except Exception as exc:  # one unreadable photo must not hide the others
            out.append(str(exc) or type(exc).__name__)
            continue
        out.append(rgb_qimage(img))
    return out


class FullSizeDialog(QDialog):
    """Members side by side at 100 % in scroll areas that scroll together."""

    def __init__(self, paths: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.paths = list(paths)
        self.setWindowTitle(f"Compare {len(self.paths)} photos at full size")
        self.areas: list[QScrollArea] = []
        self.labels: list[QLabel] = []
        self._syncing = False
        grid = QGridLayout()
        for column, path in enumerate(self.paths):
            title = QLabel(os.path.basename(path))
            title.setToolTip(path)
            title.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label = QLabel("Decoding…")
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            area = QScrollArea()
            area.setWidget(label)
            area.setWidgetResizable(False)
            area.setAlignment(Qt.AlignmentFlag.AlignCenter)
            for bar in (area.horizontalScrollBar(), area.verticalScrollBar()):
                bar.valueChanged.connect(lambda _v, b=bar: self._sync(b))
            grid.addWidget(title, 0, column)
            grid.addWidget(area, 1, column)
            grid.setColumnStretch(column, 1)
            self.areas.append(area)
            self.labels.append(label)
        grid.setRowStretch(1, 1)
        self.status = QLabel("Decoding at full size…")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        footer = QHBoxLayout()
        footer.addWidget(self.status, 1)
        footer.addWidget(buttons)
        layout = QVBoxLayout(self)
        layout.addLayout(grid, 1)
        layout.addLayout(footer)
        self.worker = JobWorker(lambda token: _decode_job(self.paths, token))
        self.worker.signals.finished.connect(self._decoded)
        self.worker.signals.failed.connect(self._failed)
        self.finished.connect(lambda _result: self.worker.cancel())
        start(self.worker)

    def _decoded(self, images: list[QImage | str]) -> None:
        ratio = self.devicePixelRatioF()
        for label, image in zip(self.labels, images, strict=True):
            if isinstance(image, str):
                label.setText(f"Cannot be read:\n{image}")
                label.setWordWrap(True)
                continue
            pixmap = QPixmap.fromImage(image)
            # 100 % means one photo pixel per screen pixel, also on a HiDPI screen.
            pixmap.setDevicePixelRatio(ratio)
            label.setPixmap(pixmap)
            label.adjustSize()
        self.status.setText("100 % — scrolling one photo scrolls the others to the same place")

    def _failed(self, exc: Exception) -> None:
        self.status.setText(
            "Stopped" if self.worker.token.cancelled else f"Could not decode: {describe(exc)}"
        )

    def _sync(self, source: QScrollBar) -> None:
        """Scroll the others to the same relative place (resized copies are smaller)."""
        if self._syncing:
            return
        self._syncing = True
        try:
            fraction = source.value() / source.maximum() if source.maximum() else 0.0
            horizontal = source.orientation() == Qt.Orientation.Horizontal
            for area in self.areas:
                bar = area.horizontalScrollBar() if horizontal else area.verticalScrollBar()
                if bar is not source:
                    bar.setValue(round(fraction * bar.maximum()))
        finally:
            self._syncing = False
