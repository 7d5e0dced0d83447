"""Compare features: several photos side by side, coloured by ONE joint PCA of their patches.

With a joint PCA the same colour means the same feature direction in every
photo, so matching parts (the wheels of two bikes, the faces in two portraits)
come out in matching colours. `CompareDialog` computes the patch features of
all its photos in one worker (reporting each photo), then `pca_maps` over all
of them on the GUI thread (milliseconds), and draws each photo with its map
stretched smoothly over it; the controls (mode, opacity, threshold, invert,
dim) only recompute the maps or repaint. "Save as PNG…" writes the strip of
`render`ed photos that `strip` puts side by side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from PySide6.QtCore import QRectF, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.images import open_image
from dino_desktop.core.progress import Progress
from dino_desktop.gui.overlay import (
    BACKGROUND,
    FOREGROUND,
    FeaturesResult,
    OverlayControls,
    OverlayImages,
    ask_png_name,
    draw_overlay,
    features_job,
    save_png_job,
)
from dino_desktop.gui.workers import JobWorker, describe, start

if TYPE_CHECKING:
    from dino_desktop.core.library import Library
    from dino_desktop.core.overlay import FeatureMap, PatchFeatures

MIN_PHOTOS = 2
MAX_PHOTOS = 8
PREVIEW_HEIGHT = 720  # decoded for the screen: sharp up to a tall window, light to keep
STRIP_HEIGHT = 1080  # a saved strip's height at most: 8 full-size photos would be 100 MP
STRIP_GAP = 8
MIN_TILE_HEIGHT = 160  # smaller tiles show too little: scroll instead
PLACEHOLDER_ASPECT = 4 / 3  # until a photo's real shape is known


class OverlayTile(QFrame):
    """One photo fitted into the tile, its feature map stretched smoothly over it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.photo: QImage | None = None
        self.overlay: OverlayImages | None = None
        self.opacity = 1.0
        self.dim = False
        self.message = "Computing\N{HORIZONTAL ELLIPSIS}"
        self.aspect = PLACEHOLDER_ASPECT
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def set_photo(self, photo: QImage) -> None:
        self.photo = photo
        self.message = ""
        if photo.height() > 0:
            self.aspect = photo.width() / photo.height()
        self.update()

    def set_message(self, text: str) -> None:
        self.message = text
        self.overlay = None
        self.update()

    def set_overlay(self, overlay: OverlayImages | None) -> None:
        self.overlay = overlay
        self.update()

    def set_look(self, opacity: float, dim: bool) -> None:
        self.opacity, self.dim = opacity, dim
        if self.overlay is not None:
            self.update()

    def photo_rect(self) -> QRectF:
        """Where the photo is drawn: fitted into the tile, centred, its shape kept."""
        area = QRectF(self.rect())
        if self.photo is None or area.isEmpty():
            return QRectF()
        scale = min(area.width() / self.photo.width(), area.height() / self.photo.height())
        rect = QRectF(0, 0, self.photo.width() * scale, self.photo.height() * scale)
        rect.moveCenter(area.center())
        return rect

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), BACKGROUND)
            if self.photo is None or self.message:
                painter.setPen(FOREGROUND)
                painter.drawText(
                    self.rect().adjusted(12, 12, -12, -12),
                    int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                    self.message,
                )
                return
            target = self.photo_rect()
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, self.photo)
            if self.overlay is not None:
                draw_overlay(painter, target, self.overlay, self.opacity, self.dim)
        finally:
            painter.end()


class _TileStrip(QScrollArea):
    """The tiles in a row that scrolls sideways; the tiles are as tall as the area allows."""

    def __init__(self, names: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setFrameShape(QFrame.Shape.NoFrame)
        content = QWidget(self)
        outer = QVBoxLayout(content)  # stretches above and below: centred vertically too
        outer.setContentsMargins(12, 12, 12, 6)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(12)
        outer.addLayout(row)
        outer.addStretch(1)
        row.addStretch(1)  # stretches on both sides: centred while the tiles fit
        self.tiles: list[OverlayTile] = []
        self.captions: list[QLabel] = []
        self._names = list(names)
        for name in self._names:
            column = QVBoxLayout()
            column.setSpacing(4)
            tile = OverlayTile(content)
            caption = QLabel(content)
            caption.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            caption.setToolTip(name)
            column.addWidget(tile)
            column.addWidget(caption)
            row.addLayout(column)
            self.tiles.append(tile)
            self.captions.append(caption)
        row.addStretch(1)
        self.setWidget(content)
        self._row = row
        self._content_margins = outer.contentsMargins()
        self.fit_tiles()

    def fit_tiles(self) -> None:
        """Size the tiles to fit the area side by side (scrolling only below a minimum height),
        each as wide as its photo's shape asks."""
        margins = self._content_margins
        caption_height = self.fontMetrics().height() + 4
        # The scroll bar's height is always set aside: otherwise its appearing
        # would shrink the tiles, which could make it disappear again, and so on.
        reserved = self.horizontalScrollBar().sizeHint().height() + 2 * self.frameWidth()
        tall = self.height() - reserved - margins.top() - margins.bottom() - caption_height
        spacing = self._row.spacing() * (len(self.tiles) - 1)
        room = self.width() - 2 * self.frameWidth() - margins.left() - margins.right() - spacing
        wide = room / sum(tile.aspect for tile in self.tiles)
        height = max(MIN_TILE_HEIGHT, int(min(tall, wide)))
        for tile, caption, path in zip(self.tiles, self.captions, self._names, strict=True):
            width = max(1, round(height * tile.aspect))
            tile.setFixedSize(width, height)
            name = Path(path).name
            caption.setText(
                caption.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, width)
            )
            caption.setFixedWidth(width)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.fit_tiles()


class CompareDialog(QDialog):
    """`paths` (2 to 8 photos) side by side, each with its part of one joint PCA overlay.

    Signals: `overlays_shown` once the overlays are painted (again after a
    change of mode; slider moves repaint silently), `failed(message)` when no
    overlay can be shown at all (no weights, no readable photo), `saved(file)`
    and `save_failed(message)` for "Save as PNG…".
    """

    overlays_shown = Signal()
    failed = Signal(str)
    saved = Signal(str)
    save_failed = Signal(str)

    def __init__(
        self,
        library: Library,
        paths: Sequence[str | os.PathLike[str]],
        parent: QWidget | None = None,
    ) -> None:
        if not MIN_PHOTOS <= len(paths) <= MAX_PHOTOS:
            raise ValueError(
                f"CompareDialog compares {MIN_PHOTOS} to {MAX_PHOTOS} photos, got {len(paths)}"
            )
        super().__init__(parent)
        self.library = library
        self._paths = [os.fspath(p) for p in paths]
        self._features: dict[str, PatchFeatures] = {}
        self._maps: dict[str, FeatureMap] = {}
        self._shown_mode: str | None = None
        self._worker: JobWorker | None = None
        # Workers stay referenced after they report: their run() may still be returning.
        self._retired: list[JobWorker] = []
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)  # the features job, and a save beside it
        self.setWindowTitle(f"Compare features \N{EM DASH} {len(self._paths)} photos")
        self.setSizeGripEnabled(True)

        self.controls = OverlayControls(
            self,
            on_map_settings_changed=self._refresh_maps,
            on_look_changed=self._apply_look,
        )
        self.save_button = QPushButton("Save as PNG\N{HORIZONTAL ELLIPSIS}", self)
        self.save_button.setToolTip("Save the photos with their overlays side by side as a PNG")
        self.save_button.setEnabled(False)
        self.save_button.setAutoDefault(False)  # Enter should not open a file dialog
        self.save_button.clicked.connect(self._on_save_clicked)
        top = QHBoxLayout()
        top.addWidget(self.controls)
        top.addStretch(1)
        top.addWidget(self.save_button)

        self.progress_label = QLabel(self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, len(self._paths))
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(240)
        self.message_icon = QLabel(self)
        self.message_icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(20)
        )
        self.message_icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.message_icon.hide()
        self.message_label = QLabel(self)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.hide()
        status = QHBoxLayout()
        status.addWidget(self.progress_label)
        status.addWidget(self.progress)
        status.addWidget(self.message_icon)
        status.addWidget(self.message_label, 1)
        status.addStretch(0)

        self.strip = _TileStrip(self._paths, self)
        self.tiles = self.strip.tiles

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(status)
        layout.addWidget(self.strip, 1)
        layout.addWidget(buttons)
        self.resize(QSize(1100, 600))
        self._apply_look()
        self._start()

    # ---- state -----------------------------------------------------------------

    @property
    def paths(self) -> list[str]:
        return list(self._paths)

    @property
    def maps(self) -> dict[str, FeatureMap]:
        """The feature map shown for each photo that has one (path -> map)."""
        return dict(self._maps)

    @property
    def is_computing(self) -> bool:
        return self._worker is not None

    def wait_for_work(self, msecs: int = 30000) -> bool:
        """Wait for the features job and any save to end (tests, and closing for good)."""
        return self.pool.waitForDone(msecs)

    # ---- computing -------------------------------------------------------------

    def _start(self) -> None:
        library, paths = self.library, list(self._paths)
        worker = JobWorker(
            lambda token: features_job(library, paths, token, preview_height=PREVIEW_HEIGHT)
        )
        worker.signals.progressed.connect(self._on_progress)
        worker.signals.finished.connect(self._on_computed)
        worker.signals.failed.connect(self._on_crashed)
        self._worker = worker
        self.progress_label.setText("Loading the model\N{HORIZONTAL ELLIPSIS}")
        start(worker, self.pool)

    def _on_progress(self, step: Progress) -> None:
        self.progress.setValue(step.done)
        if step.current is not None and step.total:
            self.progress_label.setText(
                f"Computing features of {Path(step.current).name} "
                f"({step.done + 1} of {step.total})\N{HORIZONTAL ELLIPSIS}"
            )

    def _retire_worker(self) -> None:
        if self._worker is not None:
            self._retired.append(self._worker)
        self._worker = None
        self.progress_label.hide()
        self.progress.hide()

    def _on_computed(self, result: FeaturesResult) -> None:
        self._retire_worker()
        if result.cancelled:
            return
        for path, tile in zip(self._paths, self.tiles, strict=True):
            preview = result.previews.get(path)
            if preview is not None:
                tile.set_photo(preview)
            if result.unavailable is not None:
                tile.set_message("No overlay")
            elif path in result.errors:
                tile.set_message(f"Cannot read this photo:\n{result.errors[path]}")
        self.strip.fit_tiles()  # the real shapes are known now
        self._features = {p: f for p, f in result.features.items() if p in result.previews}
        if result.unavailable is not None:
            self._fail(result.unavailable)
        elif not self._features:
            self._fail("None of these photos could be read.")
        else:
            if result.errors:
                self._show_message(
                    f"{len(result.errors)} of {len(self._paths)} photos could not be read; "
                    "the others are compared among themselves."
                )
            self._refresh_maps()

    def _on_crashed(self, exc: Exception) -> None:
        self._retire_worker()
        for tile in self.tiles:
            tile.set_message("No overlay")
        self._fail(f"The features could not be computed: {describe(exc)}")

    def _fail(self, message: str) -> None:
        self._show_message(message)
        self.failed.emit(message)

    def _show_message(self, text: str) -> None:
        self.message_label.setText(text)
        self.message_label.show()
        self.message_icon.show()

    def _refresh_maps(self) -> None:
        """One joint PCA over every photo with features, then repaint (milliseconds)."""
        from dino_desktop.core.overlay import pca_maps

        paths = [p for p in self._paths if p in self._features]
        if not paths:
            return
        mode, threshold, invert = self.controls.map_args()
        maps = pca_maps(
            [self._features[p] for p in paths], mode, threshold=threshold, invert=invert
        )
        self._maps = dict(zip(paths, maps, strict=True))
        self.controls.show_auto_threshold(maps[0].threshold)  # joint: the same for all
        self._apply_look()
        for path, tile in zip(self._paths, self.tiles, strict=True):
            fmap = self._maps.get(path)
            if fmap is not None:
                tile.set_overlay(OverlayImages.of(fmap))
        self.save_button.setEnabled(True)
        if mode != self._shown_mode:
            self._shown_mode = mode
            self.overlays_shown.emit()

    def _apply_look(self) -> None:
        opacity, dim = self.controls.opacity, self.controls.dims_background
        for tile in self.tiles:
            tile.set_look(opacity, dim)

    # ---- saving ----------------------------------------------------------------

    def _on_save_clicked(self, _checked: bool) -> None:
        self.save_png()

    def save_png(self, filename: str | None = None) -> None:
        """Write the photos with their overlays side by side (at most `STRIP_HEIGHT` high).

        Without `filename`, asks for one. The photos are decoded and rendered in a
        worker; `saved` or `save_failed` tells how it went.
        """
        paths = [p for p in self._paths if p in self._maps]
        if not paths:
            return
        if filename is None:
            first = self._paths[0]
            suggested = os.path.join(os.path.dirname(first), f"{Path(first).stem}-compare.png")
            filename = ask_png_name(self, "Save comparison as PNG", suggested)
            if filename is None:
                return
        maps = [self._maps[p] for p in paths]
        height = min(STRIP_HEIGHT, *(self._features[p].display_size[1] for p in paths))
        opacity, background = self.controls.opacity, self.controls.background

        def make() -> Image.Image:
            from dino_desktop.core.overlay import render, strip

            parts = []
            for path, fmap in zip(paths, maps, strict=True):
                # Decoded at reduced scale where the format allows, then scaled to
                # the strip's height: `strip` then pastes every part as it is.
                photo = open_image(path, min_side=height)
                width = max(1, round(photo.width * height / photo.height))
                if photo.size != (width, height):
                    photo = photo.resize((width, height), Image.Resampling.LANCZOS)
                parts.append(render(photo, fmap, opacity=opacity, background=background))
            return strip(parts, height=height, gap=STRIP_GAP)

        target = filename
        worker = JobWorker(lambda _token: save_png_job(make, target))
        worker.signals.finished.connect(self._on_saved)
        worker.signals.failed.connect(self._on_save_failed)
        self._retired.append(worker)
        start(worker, self.pool)

    def _on_saved(self, filename: str) -> None:
        self.saved.emit(filename)

    def _on_save_failed(self, exc: Exception) -> None:
        text = f"The comparison could not be saved: {describe(exc)}"
        self._show_message(text)
        self.save_failed.emit(text)

    # ---- closing ---------------------------------------------------------------

    def done(self, result: int) -> None:
        # The photo being computed finishes (the model cannot be interrupted),
        # but no further one starts.
        if self._worker is not None:
            self._worker.cancel()
        super().done(result)
