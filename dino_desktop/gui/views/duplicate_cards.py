"""The Duplicates view's pieces for one group: a `MemberCard` per photo
(thumbnail, relation to the keeper, mark box, facts that differ), the words for
relations and scores, and `FullSizeDialog`, the members at 100 % side by side
with linked scrolling (decoded in a worker)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPalette, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QScrollBar,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.dupe_pairs import PHASH_BITS
from dino_desktop.core.duplicates import Member
from dino_desktop.core.images import open_image
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.gui.common import data_size, plural, rgb_qimage
from dino_desktop.gui.workers import JobWorker, describe, start

__all__ = ["FullSizeDialog", "MemberCard", "member_facts", "relation_label", "score_text"]

RELATION_LABELS: dict[str, str] = {
    "keeper": "Keeper",
    "identical": "Identical copy",
    "resized": "Resized copy",
    "re-encoded": "Re-encoded",
    "rotated": "Rotated",
    "cropped": "Cropped",
    "edited": "Edited",
    "similar shot": "Similar shot",
}
CARD_EDGE = 220
FACT_ROWS = ("Folder", "File size", "Dimensions", "Format", "Taken", "Camera")
REFERENCE_TIP = "In a reference folder: protected, never moved or trashed."
# Differing cells: a translucent amber, so it tints the light or dark base
# colour underneath instead of replacing it and reads well on both.
DIFF_TINT = QColor(255, 176, 0, 56)


def relation_label(relation: str) -> str:
    """The user-facing words for a member's relation to its group's keeper."""
    return RELATION_LABELS.get(relation, relation.replace("-", " ").capitalize())


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
        return "Same hash" if bits == 0 else f"{plural(bits, 'hash bit')} apart"
    return f"Similarity {member.score:.3f}"


class MemberCard(QFrame):
    """One member of a group: thumbnail, name, relation, score, a reference badge, a mark box."""

    mark_toggled = Signal(str, bool)  # path, wanted state (the view may refuse it)

    def __init__(self, member: Member, method: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.member = member
        self.setObjectName("card")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        # A marked card gets a border in the palette's highlight colour.
        self.setStyleSheet(
            "QFrame#card { border: 1px solid palette(mid); border-radius: 6px; }"
            'QFrame#card[marked="true"] { border: 2px solid palette(highlight); }'
        )
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
        self.relation = QLabel(relation_label(member.relation))
        bold = QFont(self.relation.font())
        bold.setBold(True)
        self.relation.setFont(bold)
        self.score = QLabel(score_text(method, member))
        # Secondary information: the palette's muted text colour, light or dark.
        self.score.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.badge = QLabel("🔒 Reference")
        self.badge.setToolTip(REFERENCE_TIP)
        self.check = QCheckBox("Mark for removal")
        if member.is_reference:
            self.check.setEnabled(False)
            self.check.setToolTip(REFERENCE_TIP)
        else:
            self.check.setToolTip(
                "Marked photos go to the trash or a folder with the buttons below"
            )
        self.check.toggled.connect(lambda on: self.mark_toggled.emit(member.path, on))
        info = QHBoxLayout()
        info.addWidget(self.relation)
        info.addStretch(1)
        info.addWidget(self.badge)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(4)
        layout.addWidget(self.image)
        layout.addWidget(self.name)
        layout.addLayout(info)
        layout.addWidget(self.score)
        layout.addWidget(self.check)
        # Only now, inside the card: a parentless label shown would open its own window.
        self.badge.setVisible(member.is_reference)

    def set_pixmap(self, pixmap: QPixmap | None) -> None:
        if pixmap is None or pixmap.isNull():
            return
        self.image.setPixmap(
            pixmap.scaled(
                CARD_EDGE,
                CARD_EDGE,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )

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


# ---- the view ------------------------------------------------------------------------
