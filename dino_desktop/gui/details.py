"""The details panel: what a photo is, where it lives, when and with what it was taken,
and the files that go with it (its RAW original, Live Photo video, sidecars).

The companion files come from the catalog (`Library.companions`, SQL), so they are
read in a worker; a newer selection replaces an older read, and a result that
arrives after the panel is gone is dropped.
"""

from __future__ import annotations

import os
from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette, QPixmap
from PySide6.QtWidgets import QFormLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from dino_desktop.core.library import Library
from dino_desktop.core.records import Companion, PhotoRow
from dino_desktop.gui.common import COMPANION_KINDS, data_size, escape_html
from dino_desktop.gui.models import display_path
from dino_desktop.gui.workers import JobWorker, alive, call, describe

FIELDS = ("Folder", "File size", "Dimensions", "Taken", "Camera", "Goes with it")


def _when(taken: datetime | None) -> str:
    return taken.strftime("%d %B %Y, %H:%M") if taken else "unknown"


def companions_html(companions: list[Companion], muted: str) -> str:
    """Each companion file's name, and under it (in the `muted` colour) what it is in
    words and its size: two short lines fit the narrow panel better than one long one."""
    return "".join(
        f"<div style='margin-bottom: 4px'>{escape_html(display_path(os.path.basename(c.path)))}"
        f"<br><span style='color: {muted}'>{COMPANION_KINDS.get(c.kind, c.kind)} · "
        f"{data_size(c.size)}</span></div>"
        for c in companions
    )


def _opaque(palette: QPalette, role: QPalette.ColorRole) -> QColor:
    """A palette colour blended onto the window colour: Qt's default placeholder text
    is the text colour at half alpha, and rich text would drop the alpha."""
    color, under = palette.color(role), palette.color(QPalette.ColorRole.Window)
    a = color.alphaF()
    return QColor.fromRgbF(
        color.redF() * a + under.redF() * (1 - a),
        color.greenF() * a + under.greenF() * (1 - a),
        color.blueF() * a + under.blueF() * (1 - a),
    )


class DetailsPanel(QWidget):
    """Shows the selected photo's preview and metadata; several selected → a count."""

    def __init__(self, library: Library | None = None) -> None:
        super().__init__()
        self.library = library
        self.companions_worker: JobWorker | None = None  # the companions read in flight
        self._photo: PhotoRow | None = None  # the one photo shown, if one
        self.companions: list[Companion] = []  # the shown photo's, once read
        self.setMinimumWidth(240)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(180)
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.title.setFont(font)
        self.fields: dict[str, QLabel] = {}
        self.form = QFormLayout()
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        for key in FIELDS:
            label = QLabel()
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = label
            self.form.addRow(f"{key}:", label)
        self.fields["Goes with it"].setToolTip(
            "Trash, move and export take these files along with the photo."
        )
        layout = QVBoxLayout(self)
        layout.addWidget(self.preview)
        layout.addWidget(self.title)
        layout.addLayout(self.form)
        layout.addStretch(1)
        self.show_photos([])

    def show_photos(self, photos: list[PhotoRow], preview: QPixmap | None = None) -> None:
        if len(photos) != 1:
            self._photo = None
            self.companions_worker = None  # a read in flight is for a photo no longer shown
            self._show_companions(None)
            self.preview.clear()
            self.title.setText(f"{len(photos)} photos selected" if photos else "No photo selected")
            for label in self.fields.values():
                label.clear()
            if len(photos) > 1:
                self.fields["File size"].setText(data_size(sum(p.size for p in photos)))
            return
        photo = photos[0]
        self.title.setText(display_path(os.path.basename(photo.path)))
        self.title.setToolTip(display_path(photo.path))
        self.fields["Folder"].setText(display_path(os.path.dirname(photo.path)))
        self.fields["File size"].setText(data_size(photo.size))
        self.fields["Dimensions"].setText(
            f"{photo.width} × {photo.height} ({photo.width * photo.height / 1e6:.1f} MP)"
        )
        self.fields["Taken"].setText(_when(photo.taken_at))
        self.fields["Camera"].setText(photo.camera or "unknown")
        self.set_preview(preview)
        # The same row again (another view in front, a refresh) keeps what was read;
        # a changed row (a rescan found a new RAW or sidecar) reads again.
        if photo != self._photo:
            self._photo = photo
            self._show_companions(None)
            self.read_companions(photo)

    def read_companions(self, photo: PhotoRow) -> JobWorker | None:
        """Read the photo's companion files in a worker (None without a library)."""
        library = self.library
        if library is None:
            return None

        def read() -> list[Companion]:
            return library.companions([photo.id]).get(photo.id, [])

        def arrived(companions: list[Companion]) -> None:
            if alive(self) and self.companions_worker is worker:
                self.companions_worker = None
                self._show_companions(companions)

        def failed(exc: Exception) -> None:
            if alive(self) and self.companions_worker is worker:
                self.companions_worker = None
                self.fields["Goes with it"].setText(f"could not be read: {describe(exc)}")
                self.form.setRowVisible(self.fields["Goes with it"], True)

        # The slots run on this thread, so only after this assignment: they compare with it.
        worker = self.companions_worker = call(read, arrived, failed)
        return worker

    def _show_companions(self, companions: list[Companion] | None) -> None:
        self.companions = companions or []
        label = self.fields["Goes with it"]
        muted = _opaque(self.palette(), QPalette.ColorRole.PlaceholderText).name()
        label.setText(companions_html(self.companions, muted))
        # Most photos are one file: the row shows only when there is something to list.
        self.form.setRowVisible(label, bool(self.companions))

    def set_preview(self, pixmap: QPixmap | None) -> None:
        if pixmap is None or pixmap.isNull():
            self.preview.clear()
            return
        width = max(120, self.preview.width() - 8)
        self.preview.setPixmap(
            pixmap.scaled(
                width,
                self.preview.minimumHeight(),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )
