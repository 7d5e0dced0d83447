"""A full-window photo viewer: one photo at a time, decoded off the GUI thread.

`ImageViewer` shows the photos of a list one by one (Left/Right), fitted to the
window or at 100% with panning, and lets the user search by a region of a
photo: drag a rectangle in "Search region" mode, or with Shift held. Photos are
decoded by `open_image` (so they appear EXIF-oriented, as everywhere else in
the app) on the viewer's own small thread pool; the GUI thread only ever draws.
The last few decoded photos are kept, and the neighbours of the current one are
decoded ahead, so stepping back and forth is instant.

Region boxes are reported in the photo's display pixels: those of the full-size,
EXIF-oriented image, whatever the zoom, scroll position or screen scale, which
is what `Library.search_region` expects.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from PySide6.QtCore import (
    QObject,
    QPointF,
    QRect,
    QRectF,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QColor,
    QIcon,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QRubberBand,
    QSizePolicy,
    QSlider,
    QStyle,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core import embedder as emb
from dino_desktop.core.images import ImageError, open_image
from dino_desktop.core.library import LibraryError
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.gui.common import rgb_qimage
from dino_desktop.gui.workers import JobWorker, describe, start

if TYPE_CHECKING:
    # Only for annotations: the overlay module (numeric code) is imported when an
    # overlay is first wanted, not whenever the app opens a viewer.
    from dino_desktop.core.library import Library
    from dino_desktop.core.overlay import FeatureMap, PatchFeatures

Box = tuple[int, int, int, int]
"""(left, top, right, bottom) in the photo's display pixels; right/bottom exclusive."""

CACHE_SIZE = 5  # decoded photos kept: the current one, its neighbours and a little history
CACHE_BYTES = 640 << 20  # ... but fewer of them when they are huge (a 12 MP photo is 48 MB)
PARALLEL_DECODES = 2  # the current photo and one neighbour at a time
MIN_DRAG_PX = 4  # a shorter drag is a click that slipped, not a region
SMOOTH_DELAY_MS = 150  # after a resize settles, redraw the fitted photo smoothly
BACKGROUND = QColor(0x1E, 0x1E, 0x1E)  # neutral dark, as photo viewers use: no colour cast
FOREGROUND = QColor(0xC8, 0xC8, 0xC8)
NOTE_BACKGROUND = QColor(0, 0, 0, 180)
NOTE_TEXT = QColor(0xF0, 0xF0, 0xF0)

DEFAULT_OPACITY = 70  # percent: the photo stays recognisable under the colours
FEATURES_CACHE = 16  # photos whose patch features the viewer keeps (~2 MB each for ViT-S)
MAPS_CACHE = 64  # computed maps (a few KB each): per photo, mode and threshold
OVERLAY_THREADS = 2  # one features job at a time, plus a save that may run beside it
PNG_FILTER = "PNG images (*.png)"
MODE_CHOICES = (
    ("Colours", "rgb", "The three main feature directions as red, green and blue"),
    (
        "Foreground parts",
        "foreground",
        "Parts of the main subject in colour, the background left clear",
    ),
)


def decode_qimage(path: str) -> QImage:
    """Decode a photo, EXIF orientation applied, into a QImage that owns its pixels.

    Safe to call on any thread (QImage, unlike QPixmap, is not tied to the GUI
    thread). Raises `ImageError` for anything wrong with the file.
    """
    return rgb_qimage(open_image(path))  # always 8-bit RGB


class _DecodeSignals(QObject):
    decoded = Signal(str, QImage)
    failed = Signal(str, str)


class _DecodeTask(QRunnable):
    """Decode one photo on a pool thread and report through `signals`.

    The signals object is created on the GUI thread, and the viewer keeps a
    reference to it until the result has been delivered: a queued signal whose
    sender is already gone would be dropped.
    """

    def __init__(self, path: str, signals: _DecodeSignals) -> None:
        super().__init__()
        self.path = path
        self.signals = signals

    def run(self) -> None:
        try:
            image = decode_qimage(self.path)
        except ImageError as exc:
            self.signals.failed.emit(self.path, str(exc) or "cannot read image")
        except Exception as exc:  # one odd file must never end the pool thread silently
            self.signals.failed.emit(self.path, f"{type(exc).__name__}: {exc}")
        else:
            self.signals.decoded.emit(self.path, image)


# ---- overlays: shared by the viewer and the compare dialog -----------------------


def map_qimage(fmap: FeatureMap) -> QImage:
    """The feature map as a small QImage (one pixel per patch) that owns its pixels."""
    rgba = np.ascontiguousarray(fmap.rgba, dtype=np.uint8)
    rows, cols = rgba.shape[:2]
    data = rgba.tobytes()
    wrapped = QImage(data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888)
    # Premultiplied alpha, so smooth upsampling does not bleed the colour of
    # transparent (background) patches into their neighbours; the conversion also
    # copies the pixels out of `data`.
    return wrapped.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


def veil_qimage(fmap: FeatureMap) -> QImage:
    """Black over the map's background patches, at the strength of `render`'s "dim".

    Drawn over the photo it darkens the background as a PNG saved with
    background="dim" shows it, without building a full-size image.
    """
    from dino_desktop.core.overlay import DIM_FACTOR

    alpha = 255 - np.asarray(fmap.rgba[..., 3], dtype=np.float32)
    rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)
    rgba[..., 3] = np.round(alpha * (1.0 - DIM_FACTOR)).astype(np.uint8)
    rows, cols = alpha.shape
    data = rgba.tobytes()
    wrapped = QImage(data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888)
    return wrapped.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


@dataclass(frozen=True, slots=True)
class OverlayImages:
    """A feature map ready to draw: its colours and, in foreground mode, the dimming veil."""

    fmap: FeatureMap
    colours: QImage
    veil: QImage | None

    @classmethod
    def of(cls, fmap: FeatureMap) -> OverlayImages:
        veil = veil_qimage(fmap) if fmap.foreground is not None else None
        return cls(fmap, map_qimage(fmap), veil)


def draw_overlay(
    painter: QPainter, target: QRectF, images: OverlayImages, opacity: float, dim: bool
) -> None:
    """Stretch the patch-sized map over `target`, smoothly, at `opacity`; `dim`: veil too.

    Bilinear upsampling happens while drawing, clipped to what is visible, so a
    slider move costs one repaint and never builds a full-size overlay.
    """
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    if dim and images.veil is not None:
        painter.drawImage(target, images.veil)
    if opacity > 0:
        painter.setOpacity(opacity)
        painter.drawImage(target, images.colours)
    painter.restore()


def draw_note(painter: QPainter, area: QRect, text: str) -> None:
    """A short text in a dark rounded box at the bottom of `area`, readable over any photo."""
    margin, pad_x, pad_y = 16, 14, 8
    width = min(560, area.width() - 2 * (margin + pad_x))
    if width <= 0:
        return
    flags = int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap)
    painter.save()
    bounds = painter.boundingRect(QRectF(0, 0, width, area.height()), flags, text)
    box = QRectF(0, 0, bounds.width() + 2 * pad_x, bounds.height() + 2 * pad_y)
    box.moveCenter(QPointF(area.center().x() + 0.5, 0))
    box.moveBottom(area.bottom() - margin)
    box.moveTop(max(box.top(), area.top() + margin))
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(NOTE_BACKGROUND)
    painter.drawRoundedRect(box, 8, 8)
    painter.setPen(NOTE_TEXT)
    painter.drawText(box.adjusted(pad_x, pad_y, -pad_x, -pad_y), flags, text)
    painter.restore()


@dataclass(slots=True)
class FeaturesResult:
    """What a features job computed: per-photo patch features, or why there are none."""

    model: str
    features: dict[str, PatchFeatures] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # path -> why this photo has none
    previews: dict[str, QImage] = field(default_factory=dict)  # path -> photo, for display
    unavailable: str | None = None  # why nothing could be computed (no weights, bad device)
    cancelled: bool = False


def weights_message(exc: Exception) -> str:
    return f"The overlay needs the DINOv2 model weights.\n{exc}"


def features_job(
    library: Library,
    paths: Sequence[str],
    cancel: CancelToken,
    *,
    preview_height: int | None = None,
) -> Job[FeaturesResult]:
    """Patch features of `paths` (and, with `preview_height`, a small decoded copy of each).

    Expected failures come back in the result, worded for the user, rather than
    as exceptions: one unreadable photo must not cost the others their overlay.
    """
    result = FeaturesResult(model=library.model_name)
    total = len(paths)
    yield Progress("overlay", 0, total, None, "Loading the model")
    try:
        engine = library.overlay_engine()
    except (emb.WeightsUnavailable, emb.WeightsError) as exc:
        result.unavailable = weights_message(exc)
        return result
    except LibraryError as exc:
        result.unavailable = f"The overlay cannot be computed: {exc}"
        return result
    result.model = engine.model_name
    for done, path in enumerate(paths):
        if cancel.cancelled:
            result.cancelled = True
            return result
        yield Progress("overlay", done, total, path, "Computing features")
        try:
            result.features[path] = engine.features(path)
            if preview_height is not None:
                result.previews[path] = decode_preview(path, preview_height)
        except (emb.WeightsUnavailable, emb.WeightsError) as exc:
            # The model itself failed to load: every other photo would fail alike.
            result.unavailable = weights_message(exc)
            return result
        except ValueError as exc:
            if not engine.loaded:  # e.g. a CUDA device on a machine without one
                result.unavailable = f"The overlay cannot be computed: {exc}"
                return result
            result.errors[path] = str(exc)
        except ImageError as exc:
            result.errors[path] = str(exc) or "cannot read image"
        except Exception as exc:  # one odd file must not lose the others their overlays
            result.errors[path] = f"{type(exc).__name__}: {exc}"
    yield Progress("overlay", total, total, None, "Computing features")
    return result


def decode_preview(path: str, height: int) -> QImage:
    """The photo, EXIF-oriented, scaled to at most `height` pixels high, as a QImage."""
    img = open_image(path, min_side=height)
    if img.height > height:
        img = img.resize(
            (max(1, round(img.width * height / img.height)), height), Image.Resampling.LANCZOS
        )
    return rgb_qimage(img)


def save_png_job(make: Callable[[], Image.Image], filename: str) -> Job[str]:
    """Build an image (decoding, rendering: seconds for a big photo) and write it as PNG.

    Written to a temporary file first and then moved into place, so a failed
    save never leaves a truncated PNG where the user asked for one.
    """
    yield Progress("save", 0, 1, filename, "Saving")
    image = make()
    folder = os.path.dirname(os.path.abspath(filename))
    fd, temp = tempfile.mkstemp(suffix=".png", prefix=".dino-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            image.save(out, format="PNG")
        os.replace(temp, filename)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    yield Progress("save", 1, 1, filename, "Saved")
    return filename


def ask_png_name(parent: QWidget, title: str, suggested: str) -> str | None:
    """A PNG file name from the native save dialog (which confirms overwriting), or None."""
    filename, _ = QFileDialog.getSaveFileName(parent, title, suggested, PNG_FILTER)
    if not filename:
        return None
    if not filename.lower().endswith(".png"):
        filename += ".png"
    return filename


class OverlayControls(QWidget):
    """The overlay's settings in one row: mode, opacity, threshold, invert, dim background.

    The threshold is automatic (Otsu's, chosen by `pca_maps` for each map: the
    "Auto" button is down, the slider follows the value chosen) until the user
    moves the slider; pressing "Auto" makes it automatic again, releasing it
    keeps the value shown for every photo.

    Changes are reported through two plain callbacks rather than Qt signals:
    a slider drag reports dozens of times a second, and on PySide6 6.12.0 every
    `Signal.emit()` made from Python leaks a reference to `True`, which ends the
    process after a few thousand emits. The sliders' own (C++) signals are safe.
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        on_map_settings_changed: Callable[[], None] | None = None,
        on_look_changed: Callable[[], None] | None = None,
        opacity: int = DEFAULT_OPACITY,
    ) -> None:
        super().__init__(parent)
        self._manual_threshold = False
        # Called when the mode, threshold or invert changed: the maps need recomputing.
        self.on_map_settings_changed = on_map_settings_changed
        # Called when the opacity or the dimming changed: only the drawing changes.
        self.on_look_changed = on_look_changed

        self.mode_combo = QComboBox(self)
        for label, mode, tip in MODE_CHOICES:
            self.mode_combo.addItem(label, mode)
            self.mode_combo.setItemData(
                self.mode_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.mode_combo.setToolTip("What the overlay shows")
        self.mode_combo.currentIndexChanged.connect(self._on_mode_changed)

        self.opacity_slider = self._slider("How strongly the overlay covers the photo")
        self.opacity_slider.setValue(opacity)
        self.opacity_value = self._value_label("100 %")
        self.opacity_slider.valueChanged.connect(self._on_opacity_moved)

        self.threshold_label = QLabel("Threshold", self)
        self.threshold_slider = self._slider(
            "Which patches count as foreground: higher keeps fewer of them"
        )
        self.threshold_value = self._value_label("0.00")
        self.threshold_slider.valueChanged.connect(self._on_threshold_moved)
        self.auto_button = QToolButton(self)
        self.auto_button.setText("Auto")
        self.auto_button.setCheckable(True)
        self.auto_button.setChecked(True)
        self.auto_button.setToolTip("Choose the threshold for each photo automatically")
        self.auto_button.setAutoRaise(True)
        self.auto_button.toggled.connect(self._on_auto_toggled)
        self.invert_check = QCheckBox("Invert", self)
        self.invert_check.setToolTip("Swap foreground and background")
        self.invert_check.toggled.connect(self._on_invert_toggled)
        self.dim_check = QCheckBox("Dim background", self)
        self.dim_check.setToolTip(
            "Darken the photo outside the foreground, on screen and in saved PNGs "
            "(which otherwise leave the background transparent)"
        )
        self.dim_check.toggled.connect(self._on_dim_toggled)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.setSpacing(6)
        layout.addWidget(QLabel("Show", self))
        layout.addWidget(self.mode_combo)
        layout.addSpacing(12)
        layout.addWidget(QLabel("Opacity", self))
        layout.addWidget(self.opacity_slider)
        layout.addWidget(self.opacity_value)
        layout.addSpacing(12)
        layout.addWidget(self.threshold_label)
        layout.addWidget(self.threshold_slider)
        layout.addWidget(self.threshold_value)
        layout.addWidget(self.auto_button)
        layout.addSpacing(6)
        layout.addWidget(self.invert_check)
        layout.addWidget(self.dim_check)
        self.opacity_value.setText(f"{opacity} %")
        self._show_threshold_state()
        self._enable_foreground_controls()

    def _slider(self, tip: str) -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal, self)
        slider.setRange(0, 100)
        slider.setPageStep(10)
        slider.setFixedWidth(110)
        slider.setToolTip(tip)
        return slider

    def _value_label(self, widest: str) -> QLabel:
        label = QLabel(self)
        # A fixed width, so the row does not jiggle as the value changes.
        label.setMinimumWidth(label.fontMetrics().horizontalAdvance(widest) + 4)
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return label

    # ---- state -----------------------------------------------------------------

    @property
    def mode(self) -> str:
        return str(self.mode_combo.currentData())

    @property
    def opacity(self) -> float:
        return self.opacity_slider.value() / 100

    @property
    def threshold(self) -> float | None:
        """The foreground threshold the user chose; None while it is automatic."""
        return self.threshold_slider.value() / 100 if self._manual_threshold else None

    @property
    def invert(self) -> bool:
        return self.invert_check.isChecked()

    @property
    def background(self) -> str:
        """`render`'s background: what shows outside the foreground in a saved PNG."""
        return "dim" if self.dim_check.isChecked() else "transparent"

    @property
    def dims_background(self) -> bool:
        """Whether the background is drawn darkened now (foreground mode, box ticked)."""
        return self.mode == "foreground" and self.dim_check.isChecked()

    def map_args(self) -> tuple[str, float | None, bool]:
        """(mode, threshold, invert) for `pca_maps`; the last two only matter for foreground."""
        if self.mode != "foreground":
            return self.mode, None, False
        return self.mode, self.threshold, self.invert

    def set_mode(self, mode: str) -> None:
        index = self.mode_combo.findData(mode)
        if index < 0:
            raise ValueError(f"unknown overlay mode {mode!r}")
        self.mode_combo.setCurrentIndex(index)

    @property
    def threshold_is_auto(self) -> bool:
        return not self._manual_threshold

    def reset_threshold(self) -> None:
        """Make the threshold automatic again."""
        self._set_manual(False)

    def show_auto_threshold(self, value: float | None) -> None:
        """Put the slider where the automatic threshold is, without making it manual."""
        if self._manual_threshold or value is None:
            return
        blocked = self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(round(value * 100))
        self.threshold_slider.blockSignals(blocked)
        self._show_threshold_state()

    # ---- reactions -------------------------------------------------------------

    def _map_settings_changed(self) -> None:
        if self.on_map_settings_changed is not None:
            self.on_map_settings_changed()

    def _enable_foreground_controls(self) -> None:
        foreground = self.mode == "foreground"
        for widget in (  # they only mean something for the foreground
            self.threshold_label,
            self.threshold_slider,
            self.threshold_value,
            self.auto_button,
            self.invert_check,
            self.dim_check,
        ):
            widget.setEnabled(foreground)
        self._show_threshold_state()

    def _on_mode_changed(self, _index: int) -> None:
        self._enable_foreground_controls()
        self._map_settings_changed()

    def _look_changed(self) -> None:
        if self.on_look_changed is not None:
            self.on_look_changed()

    def _on_opacity_moved(self, value: int) -> None:
        self.opacity_value.setText(f"{value} %")
        self._look_changed()

    def _on_threshold_moved(self, _value: int) -> None:
        if self._manual_threshold:
            self._show_threshold_state()
            self._map_settings_changed()
        else:
            self._set_manual(True)

    def _on_auto_toggled(self, auto: bool) -> None:
        self._set_manual(not auto)

    def _set_manual(self, manual: bool) -> None:
        if manual == self._manual_threshold:
            return
        self._manual_threshold = manual
        blocked = self.auto_button.blockSignals(True)
        self.auto_button.setChecked(not manual)
        self.auto_button.blockSignals(blocked)
        self._show_threshold_state()
        self._map_settings_changed()

    def _on_invert_toggled(self, _on: bool) -> None:
        self._map_settings_changed()

    def _on_dim_toggled(self, _on: bool) -> None:
        self._look_changed()

    def _show_threshold_state(self) -> None:
        if self.mode != "foreground":
            self.threshold_value.setText("\N{EN DASH}")  # no threshold in colours mode
            return
        value = self.threshold_slider.value() / 100
        self.threshold_value.setText(f"{value:.2f}")
        how = "chosen automatically" if not self._manual_threshold else "fixed"
        self.threshold_slider.setToolTip(
            f"Which patches count as foreground: higher keeps fewer of them ({how})"
        )


class PhotoCanvas(QAbstractScrollArea):
    """Draws one QImage fitted or at 100%, pans it, and lets the user drag a region on it.

    Geometry: the photo is drawn at `scale()` logical pixels per image pixel
    inside `image_rect()` (viewport coordinates); `map_to_image` inverts that.
    """

    region_drawn = Signal(object)  # Box, in image pixels
    zoom_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._message = ""
        self._fit = True
        self._region_mode = False
        self._scaled: QImage | None = None
        self._scaled_key: tuple[int, int, int] | None = None
        self._overlay: OverlayImages | None = None
        self._overlay_opacity = 1.0
        self._overlay_dim = False
        self._note = ""
        self._band = QRubberBand(QRubberBand.Shape.Rectangle, self.viewport())
        self._band_origin: QPointF | None = None
        self._pan_origin: tuple[QPointF, int, int] | None = None
        self._smooth_timer = QTimer(self)
        self._smooth_timer.setSingleShot(True)
        self._smooth_timer.setInterval(SMOOTH_DELAY_MS)
        self._smooth_timer.timeout.connect(self.viewport().update)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(False)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(QSize(160, 120))

    # ---- state -----------------------------------------------------------------

    @property
    def image(self) -> QImage | None:
        return self._image

    @property
    def message(self) -> str:
        """The text shown instead of a photo ("Loading…", an error), empty with a photo."""
        return self._message

    @property
    def fit(self) -> bool:
        return self._fit

    @property
    def overlay(self) -> OverlayImages | None:
        """The feature map drawn over the photo (one pixel per patch), if any."""
        return self._overlay

    @property
    def overlay_opacity(self) -> float:
        return self._overlay_opacity

    @property
    def overlay_dim(self) -> bool:
        return self._overlay_dim

    @property
    def note(self) -> str:
        """A short text shown over the photo ("Computing overlay…", why there is none)."""
        return self._note

    @property
    def region_mode(self) -> bool:
        return self._region_mode

    def set_image(self, image: QImage) -> None:
        self._image = image
        self._message = ""
        self._overlay = None  # another photo's map must never show over this one
        self._scaled = None
        self._scaled_key = None
        self._cancel_drag()
        self._update_scrollbars()
        self._center()
        self._update_cursor()
        self.viewport().update()
        self.zoom_changed.emit()

    def show_message(self, text: str) -> None:
        """Show `text` instead of a photo (while loading, or when it cannot be read)."""
        self._image = None
        self._message = text
        self._overlay = None
        self._scaled = None
        self._scaled_key = None
        self._cancel_drag()
        self._update_scrollbars()
        self._update_cursor()
        self.viewport().update()
        self.zoom_changed.emit()

    def set_overlay(self, overlay: OverlayImages | None) -> None:
        """Draw `overlay` (stretched over the whole photo, whatever its size) above the photo."""
        self._overlay = overlay
        self.viewport().update()

    def set_overlay_look(self, opacity: float, dim: bool) -> None:
        """The overlay's opacity in [0, 1], and whether its background patches are darkened."""
        self._overlay_opacity = min(max(opacity, 0.0), 1.0)
        self._overlay_dim = dim
        if self._overlay is not None:
            self.viewport().update()

    def set_note(self, text: str) -> None:
        if text != self._note:
            self._note = text
            self.viewport().update()

    def set_region_mode(self, on: bool) -> None:
        self._region_mode = on
        if not on:
            self._cancel_drag()
        self._update_cursor()

    def set_fit(self, fit: bool, anchor: QPointF | None = None) -> None:
        """Fit the photo to the window, or show it at 100% keeping the point under `anchor`
        (viewport coordinates; default: the centre) where it is."""
        if fit == self._fit:
            return
        if self._image is None:
            self._fit = fit
            self.zoom_changed.emit()
            return
        if anchor is None:
            anchor = QPointF(self.viewport().width() / 2, self.viewport().height() / 2)
        target = self.map_to_image(anchor)
        target.setX(min(max(target.x(), 0.0), float(self._image.width())))
        target.setY(min(max(target.y(), 0.0), float(self._image.height())))
        self._fit = fit
        self._update_scrollbars()
        scale = self.scale()
        self.horizontalScrollBar().setValue(round(target.x() * scale - anchor.x()))
        self.verticalScrollBar().setValue(round(target.y() * scale - anchor.y()))
        self._update_cursor()
        self.viewport().update()
        self.zoom_changed.emit()

    # ---- geometry --------------------------------------------------------------

    def actual_scale(self) -> float:
        """Logical pixels per image pixel at 100%: one image pixel per device pixel."""
        return 1.0 / self.devicePixelRatioF()

    def scale(self) -> float:
        """Logical pixels per image pixel as drawn now."""
        actual = self.actual_scale()
        if self._image is None or not self._fit:
            return actual
        width, height = self._image.width(), self._image.height()
        view = self.viewport()
        if width <= 0 or height <= 0 or view.width() <= 0 or view.height() <= 0:
            return actual
        # Fit shrinks big photos but never blows small ones up past 100%: enlarged
        # pixels only look blurry.
        return min(view.width() / width, view.height() / height, actual)

    def image_rect(self) -> QRectF:
        """Where the photo is drawn, in viewport coordinates (it may extend beyond the view)."""
        if self._image is None:
            return QRectF()
        scale = self.scale()
        width, height = self._image.width() * scale, self._image.height() * scale
        view = self.viewport()
        # Whole-pixel origins keep a 100% photo crisp (no resampling at half pixels).
        if width <= view.width():
            x = float(math.floor((view.width() - width) / 2))  # centred
        else:
            x = -float(self.horizontalScrollBar().value())
        if height <= view.height():
            y = float(math.floor((view.height() - height) / 2))
        else:
            y = -float(self.verticalScrollBar().value())
        return QRectF(x, y, width, height)

    def map_to_image(self, point: QPointF) -> QPointF:
        """A viewport point in the photo's pixel coordinates (not clamped to the photo)."""
        rect = self.image_rect()
        scale = self.scale()
        return QPointF((point.x() - rect.x()) / scale, (point.y() - rect.y()) / scale)

    def map_from_image(self, point: QPointF) -> QPointF:
        rect = self.image_rect()
        scale = self.scale()
        return QPointF(rect.x() + point.x() * scale, rect.y() + point.y() * scale)

    def box_between(self, a: QPointF, b: QPointF) -> Box | None:
        """The image box spanned by two viewport points, clamped to the photo.

        None for a drag too short to mean a region, or one entirely off the photo.
        """
        if self._image is None:
            return None
        if abs(b.x() - a.x()) < MIN_DRAG_PX or abs(b.y() - a.y()) < MIN_DRAG_PX:
            return None
        p, q = self.map_to_image(a), self.map_to_image(b)
        width, height = self._image.width(), self._image.height()

        def clamp(value: float, high: int) -> int:
            return min(max(round(value), 0), high)

        left, right = clamp(min(p.x(), q.x()), width), clamp(max(p.x(), q.x()), width)
        top, bottom = clamp(min(p.y(), q.y()), height), clamp(max(p.y(), q.y()), height)
        if right <= left or bottom <= top:
            return None
        return (left, top, right, bottom)

    def _scrollable(self) -> bool:
        return self.horizontalScrollBar().maximum() > 0 or self.verticalScrollBar().maximum() > 0

    def _update_scrollbars(self) -> None:
        view = self.viewport().size()
        width = height = 0
        if self._image is not None:
            scale = self.scale()
            width = math.ceil(self._image.width() * scale - 1e-6)
            height = math.ceil(self._image.height() * scale - 1e-6)
        for bar, content, page in (
            (self.horizontalScrollBar(), width, view.width()),
            (self.verticalScrollBar(), height, view.height()),
        ):
            bar.setRange(0, max(0, content - page))
            bar.setPageStep(max(1, page))
            bar.setSingleStep(max(1, page // 20))

    def _center(self) -> None:
        for bar in (self.horizontalScrollBar(), self.verticalScrollBar()):
            bar.setValue((bar.minimum() + bar.maximum()) // 2)

    # ---- painting --------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self.viewport())
        try:
            painter.fillRect(self.viewport().rect(), BACKGROUND)
            if self._image is None:
                painter.setPen(FOREGROUND)
                painter.drawText(
                    self.viewport().rect().adjusted(24, 24, -24, -24),
                    int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap),
                    self._message,
                )
                return
            target = self.image_rect()
            self._draw_photo(painter, target)
            if self._overlay is not None:
                draw_overlay(
                    painter, target, self._overlay, self._overlay_opacity, self._overlay_dim
                )
            if self._note:
                draw_note(painter, self.viewport().rect(), self._note)
        finally:
            painter.end()

    def _draw_photo(self, painter: QPainter, target: QRectF) -> None:
        assert self._image is not None
        ratio = self.devicePixelRatioF()
        if self.scale() * ratio >= 0.999:
            # One image pixel per device pixel: a plain (clipped) copy, no resampling.
            painter.drawImage(target, self._image)
            return
        key = (
            self._image.cacheKey(),
            round(target.width() * ratio),
            round(target.height() * ratio),
        )
        if key != self._scaled_key and not self._smooth_timer.isActive():
            # Smooth downscaling of a 12 MP photo takes tens of milliseconds: done
            # once per photo and size, not on every paint.
            self._scaled = self._image.scaled(
                key[1],
                key[2],
                Qt.AspectRatioMode.IgnoreAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            self._scaled_key = key
        if key == self._scaled_key and self._scaled is not None:
            painter.drawImage(target, self._scaled)
        else:
            # While the window is being resized: a coarse draw now, the smooth one
            # when the size settles (the timer repaints).
            painter.drawImage(target, self._image)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._image is not None and self._fit:
            self._smooth_timer.start()
        self._update_scrollbars()
        self.zoom_changed.emit()

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        self.viewport().update()

    # ---- mouse and keys --------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._image is None:
            super().mousePressEvent(event)
            return
        pos = event.position()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if self._region_mode or shift:
            self._band_origin = pos
            self._band.setGeometry(self._band_rect(pos, pos))
            self._band.show()
        elif self._scrollable():
            self._pan_origin = (
                pos,
                self.horizontalScrollBar().value(),
                self.verticalScrollBar().value(),
            )
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._band_origin is not None:
            self._band.setGeometry(self._band_rect(self._band_origin, pos))
        elif self._pan_origin is not None:
            origin, x, y = self._pan_origin
            self.horizontalScrollBar().setValue(x - round(pos.x() - origin.x()))
            self.verticalScrollBar().setValue(y - round(pos.y() - origin.y()))
        else:
            super().mouseMoveEvent(event)
            return
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            super().mouseReleaseEvent(event)
            return
        if self._band_origin is not None:
            origin = self._band_origin
            self._cancel_drag()
            box = self.box_between(origin, event.position())
            if box is not None:
                self.region_drawn.emit(box)
        self._pan_origin = None
        self._update_cursor()
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        # Double-click toggles fit / 100% around the clicked point, as most viewers do.
        if event.button() == Qt.MouseButton.LeftButton and self._image is not None:
            self.set_fit(not self._fit, event.position())
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.keyCombination().key()
        if key == Qt.Key.Key_Escape and self._band_origin is not None:
            self._cancel_drag()  # Esc during a drag drops the drag, not the viewer
            event.accept()
            return
        if key == Qt.Key.Key_Shift:
            self._update_cursor(shift=True)
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
            super().keyPressEvent(event)
            return
        # Left/Right, zoom keys, Esc...: the viewer's, so let them reach it.
        event.ignore()

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.keyCombination().key() == Qt.Key.Key_Shift:
            self._update_cursor(shift=False)
        event.ignore()

    def _band_rect(self, a: QPointF, b: QPointF) -> QRect:
        rect = QRectF(a, b).normalized().intersected(self.image_rect())
        return rect.toAlignedRect()

    def _cancel_drag(self) -> None:
        self._band_origin = None
        self._band.hide()

    def _update_cursor(self, shift: bool = False) -> None:
        if self._image is None:
            self.viewport().unsetCursor()
        elif self._region_mode or shift:
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        elif self._scrollable():
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.viewport().unsetCursor()


class ImageViewer(QDialog):
    """Shows `paths[index]` and lets the user step through `paths`, zoom, and search.

    A top-level window (it can be maximised); show it with `show()` or
    `showMaximized()`. Keys: Left/Right previous/next (stopping at the ends),
    Home/End first/last, F toggles fit/100%, 1 = 100%, 0 = fit, Esc closes.

    With a `library`, the toolbar also has "Overlay" (key O): DINOv2 patch
    features as a PCA colour map over the photo. The features are computed by
    `Library.overlay_engine()` in a worker (about a second per photo, the first
    time); the map itself (`pca_maps`, milliseconds) is computed here whenever a
    setting changes, and painted as a small image stretched smoothly over the
    photo, so the sliders respond at once.
    """

    region_selected = Signal(str, object)  # path, Box in display pixels
    find_similar_requested = Signal(str)  # path
    index_changed = Signal(int)
    image_shown = Signal(str)  # the current photo is on screen
    image_failed = Signal(str, str)  # path, why it cannot be shown
    overlay_shown = Signal(str)  # path: its overlay appeared (turned on, new photo or mode)
    overlay_failed = Signal(str, str)  # path, why there is no overlay (readable, one line or two)
    overlay_saved = Signal(str)  # the PNG file written
    overlay_save_failed = Signal(str)  # why the PNG could not be written

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        index: int = 0,
        parent: QWidget | None = None,
        *,
        cache_size: int = CACHE_SIZE,
        library: Library | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.library = library
        if not paths:
            raise ValueError("ImageViewer needs at least one photo")
        self._paths = [os.fspath(p) for p in paths]
        self._index = min(max(index, 0), len(self._paths) - 1)
        # At least the current photo and both neighbours, or prefetching would
        # evict what it just decoded.
        self._cache_size = max(3, cache_size)
        self._cache: OrderedDict[str, QImage | str] = OrderedDict()
        self._loading: dict[str, _DecodeSignals] = {}
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(PARALLEL_DECODES)
        # Overlay work has its own pool: a second-long model run must not hold
        # up the decoding of the next photo.
        self.overlay_pool = QThreadPool(self)
        self.overlay_pool.setMaxThreadCount(OVERLAY_THREADS)
        self._overlay_on = False
        self._features: OrderedDict[tuple[str, str], PatchFeatures] = OrderedDict()
        self._maps: OrderedDict[tuple[str, str, str, float | None, bool], OverlayImages] = (
            OrderedDict()
        )
        self._overlay_map: FeatureMap | None = None  # the map painted now
        # (path, mode) of the overlay last announced by `overlay_shown`: a slider
        # move repaints without announcing again.
        self._shown_key: tuple[str, str] | None = None
        self._overlay_error: tuple[str, str] | None = None  # (path, message) shown now
        self._features_worker: JobWorker | None = None
        self._features_path: str | None = None
        self._retired_worker: JobWorker | None = None
        # Workers stay referenced until they report: a queued signal whose sender
        # is gone would be dropped.
        self._save_workers: set[JobWorker] = set()

        self.canvas = PhotoCanvas(self)
        self.canvas.region_drawn.connect(self._on_region_drawn)
        self.canvas.zoom_changed.connect(self._update_zoom_label)
        self.setFocusProxy(self.canvas)

        self.toolbar = QToolBar(self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toolbar.setMovable(False)
        style = self.style()
        self.previous_action = self._action(
            "Previous",
            "Previous photo (Left)",
            self.show_previous,
            style.standardIcon(QStyle.StandardPixmap.SP_ArrowBack),
        )
        self.next_action = self._action(
            "Next",
            "Next photo (Right)",
            self.show_next,
            style.standardIcon(QStyle.StandardPixmap.SP_ArrowForward),
        )
        self.toolbar.addSeparator()
        self.fit_action = self._action("Fit", "Fit the photo to the window (0 or F)", self.fit)
        self.actual_size_action = self._action(
            "100%", "Show the photo's actual pixels (1 or F)", self.actual_size
        )
        zoom_group = QActionGroup(self)
        for action in (self.fit_action, self.actual_size_action):
            action.setCheckable(True)
            zoom_group.addAction(action)
        self.fit_action.setChecked(True)
        self.toolbar.addSeparator()
        self.region_action = self._action(
            "Search region",
            "Drag a rectangle over the photo to find photos showing something similar "
            "(or drag with Shift held)",
            None,
        )
        self.region_action.setCheckable(True)
        self.region_action.toggled.connect(self.canvas.set_region_mode)
        self.find_similar_action = self._action(
            "Find similar", "Find photos similar to this one", self._request_find_similar
        )
        self.toolbar.addSeparator()
        self.overlay_action = self._action(
            "Overlay",
            "Show what the model sees: its patch features as colours over the photo (O)",
            None,
        )
        self.overlay_action.setCheckable(True)
        self.overlay_action.toggled.connect(self.set_overlay_visible)
        self.overlay_action.setVisible(library is not None)
        spacer = QWidget(self.toolbar)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        self.zoom_label = QLabel(self.toolbar)
        self.zoom_label.setContentsMargins(8, 0, 8, 0)
        self.toolbar.addWidget(self.zoom_label)

        # The overlay's settings live in a second row that shows while the overlay
        # is on, so the main toolbar stays as short as it was.
        self.overlay_bar = QToolBar(self)
        self.overlay_bar.setMovable(False)
        self.overlay_bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.overlay_controls = OverlayControls(
            self.overlay_bar,
            on_map_settings_changed=self._refresh_overlay,
            on_look_changed=self._apply_overlay_look,
        )
        for child in (self.overlay_controls, *self.overlay_controls.findChildren(QWidget)):
            # Left/Right and the other keys keep stepping through photos, whatever
            # control was clicked last.
            child.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._apply_overlay_look()
        self.overlay_bar.addWidget(self.overlay_controls)
        bar_spacer = QWidget(self.overlay_bar)
        bar_spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.overlay_bar.addWidget(bar_spacer)
        self.save_overlay_action = QAction("Save overlay as PNG\N{HORIZONTAL ELLIPSIS}", self)
        self.save_overlay_action.setToolTip(
            "Save the photo with its overlay, at the photo's full size, as a PNG file"
        )
        self.save_overlay_action.setEnabled(False)
        self.save_overlay_action.triggered.connect(self._ask_and_save_overlay)
        self.overlay_bar.addAction(self.save_overlay_action)
        self.overlay_bar.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        if library is not None:
            layout.addWidget(self.overlay_bar)
        else:
            self.overlay_bar.hide()
        layout.addWidget(self.canvas, 1)

        self.resize(1024, 768)
        self._show_current()
        self.canvas.setFocus()

    def _action(
        self,
        text: str,
        tip: str,
        slot: Callable[[], None] | None,
        icon: QIcon | None = None,
    ) -> QAction:
        action = QAction(text, self)
        if icon is not None:
            action.setIcon(icon)
        action.setToolTip(tip)
        if slot is not None:
            action.triggered.connect(slot)
        self.toolbar.addAction(action)
        return action

    # ---- state -----------------------------------------------------------------

    @property
    def paths(self) -> list[str]:
        return list(self._paths)

    @property
    def index(self) -> int:
        return self._index

    @property
    def current_path(self) -> str:
        return self._paths[self._index]

    @property
    def is_loading(self) -> bool:
        """Whether the current photo is still being decoded."""
        return self.current_path not in self._cache

    def set_index(self, index: int) -> None:
        index = min(max(index, 0), len(self._paths) - 1)
        if index == self._index:
            return
        self._index = index
        self._show_current()
        self.index_changed.emit(index)

    def show_previous(self) -> None:
        self.set_index(self._index - 1)

    def show_next(self) -> None:
        self.set_index(self._index + 1)

    def fit(self) -> None:
        self._set_fit(True)

    def actual_size(self) -> None:
        self._set_fit(False)

    def toggle_fit(self) -> None:
        self._set_fit(not self.canvas.fit)

    def _set_fit(self, fit: bool) -> None:
        self.canvas.set_fit(fit)
        self.fit_action.setChecked(fit)
        self.actual_size_action.setChecked(not fit)

    # ---- showing and decoding ----------------------------------------------------

    def _show_current(self) -> None:
        path = self.current_path
        self.setWindowTitle(
            f"{Path(path).name} \N{EM DASH} {self._index + 1} of {len(self._paths)}"
        )
        self.previous_action.setEnabled(self._index > 0)
        self.next_action.setEnabled(self._index < len(self._paths) - 1)
        self._overlay_error = None
        self._clear_overlay()
        self.canvas.set_note("")
        cached = self._cache.get(path)
        if cached is None:
            self.canvas.show_message("Loading\N{HORIZONTAL ELLIPSIS}")
            self.region_action.setEnabled(False)
            # Start on the features while the photo decodes: both take a while.
            self._refresh_overlay()
        else:
            self._cache.move_to_end(path)
            self._display(path, cached)
        self._decode_wanted()

    def _display(self, path: str, value: QImage | str) -> None:
        if isinstance(value, QImage):
            self.canvas.set_image(value)
            self.region_action.setEnabled(True)
            self.image_shown.emit(path)
            self._refresh_overlay()
        else:
            self.canvas.show_message(f"Cannot show {Path(path).name}:\n{value}")
            self.region_action.setEnabled(False)
            self.image_failed.emit(path, value)

    def _neighbourhood(self) -> list[str]:
        """The current photo first, then the ones a step away: what to decode and keep."""
        i = self._index
        return [self._paths[j] for j in (i, i + 1, i - 1) if 0 <= j < len(self._paths)]

    def _decode_wanted(self) -> None:
        for path in self._neighbourhood():
            if len(self._loading) >= PARALLEL_DECODES:
                break  # the next result starts the next decode
            if path in self._cache or path in self._loading:
                continue
            signals = _DecodeSignals()
            signals.decoded.connect(self._on_decoded)
            signals.failed.connect(self._on_decode_failed)
            self._loading[path] = signals
            self.pool.start(_DecodeTask(path, signals))

    def _on_decoded(self, path: str, image: QImage) -> None:
        self._finish_decode(path, image)

    def _on_decode_failed(self, path: str, message: str) -> None:
        self._finish_decode(path, message)

    def _finish_decode(self, path: str, value: QImage | str) -> None:
        self._loading.pop(path, None)
        self._cache[path] = value
        self._cache.move_to_end(path)
        keep = set(self._neighbourhood())
        for old in list(self._cache):  # oldest first
            if len(self._cache) <= self._cache_size and self._cache_bytes() <= CACHE_BYTES:
                break
            if old not in keep:
                del self._cache[old]
        if path == self.current_path:
            self._display(path, value)
        self._decode_wanted()

    def _cache_bytes(self) -> int:
        return sum(v.sizeInBytes() for v in self._cache.values() if isinstance(v, QImage))

    # ---- overlay -----------------------------------------------------------------

    @property
    def overlay_visible(self) -> bool:
        return self._overlay_on

    @property
    def overlay_map(self) -> FeatureMap | None:
        """The feature map painted over the current photo now, if any."""
        return self._overlay_map

    @property
    def overlay_message(self) -> str:
        """What the viewer says about the overlay ("Computing overlay…", why there is none)."""
        return self.canvas.note

    @property
    def is_computing_overlay(self) -> bool:
        return self._features_worker is not None

    def set_overlay_visible(self, on: bool) -> None:
        """Show or hide the overlay (the same as the Overlay button or the O key)."""
        if self.library is None or on == self._overlay_on:
            return
        self._overlay_on = on
        if self.overlay_action.isChecked() != on:
            self.overlay_action.setChecked(on)  # reenters, and returns above
        self.overlay_bar.setVisible(on)
        self._overlay_error = None
        if on:
            self._refresh_overlay()
        else:
            self._clear_overlay()
            self.canvas.set_note("")

    def _clear_overlay(self) -> None:
        self._overlay_map = None
        self._shown_key = None
        self.canvas.set_overlay(None)
        self.save_overlay_action.setEnabled(False)

    def _apply_overlay_look(self) -> None:
        controls = self.overlay_controls
        self.canvas.set_overlay_look(controls.opacity, controls.dims_background)

    def _refresh_overlay(self) -> None:
        """Paint the current photo's overlay with the current settings, or start on its features.

        Called whenever something it depends on changes: the overlay was turned
        on, a photo appeared, a setting moved, a features job ended.
        """
        if not self._overlay_on or self.library is None:
            return
        path = self.current_path
        if self._overlay_error is not None and self._overlay_error[0] == path:
            return  # already said why; trying again on every slider move would only flicker
        features = self._cached_features(path)
        if features is None:
            if isinstance(self._cache.get(path), str):
                return  # the photo itself cannot be read: the canvas says so already
            self._compute_features(path)
            return
        if not isinstance(self._cache.get(path), QImage):
            return  # still decoding: `_display` calls back
        images = self._map_for(path, features)
        self._overlay_map = images.fmap
        self.overlay_controls.show_auto_threshold(images.fmap.threshold)
        self._apply_overlay_look()  # the dimming depends on the mode
        self.canvas.set_overlay(images)
        self.canvas.set_note("")
        self.save_overlay_action.setEnabled(True)
        key = (path, self.overlay_controls.mode)
        if key != self._shown_key:
            self._shown_key = key
            self.overlay_shown.emit(path)

    def _cached_features(self, path: str) -> PatchFeatures | None:
        assert self.library is not None
        key = (path, self.library.model_name)
        features = self._features.get(key)
        if features is not None:
            self._features.move_to_end(key)
        return features

    def _map_for(self, path: str, features: PatchFeatures) -> OverlayImages:
        from dino_desktop.core.overlay import pca_maps

        assert self.library is not None
        mode, threshold, invert = self.overlay_controls.map_args()
        key = (path, self.library.model_name, mode, threshold, invert)
        cached = self._maps.get(key)
        if cached is not None:
            self._maps.move_to_end(key)
            return cached
        entry = OverlayImages.of(pca_maps([features], mode, threshold=threshold, invert=invert)[0])
        self._maps[key] = entry
        while len(self._maps) > MAPS_CACHE:
            self._maps.popitem(last=False)
        return entry

    def _compute_features(self, path: str) -> None:
        assert self.library is not None
        self.canvas.set_note("Computing overlay\N{HORIZONTAL ELLIPSIS}")
        if self._features_worker is not None:
            # One model run at a time. The running one cannot be interrupted, but
            # its result is kept, and when it ends the current photo's starts.
            if self._features_path != path:
                self._features_worker.cancel()
            return
        library = self.library
        worker = JobWorker(lambda token: features_job(library, [path], token))
        worker.signals.finished.connect(self._on_features_computed)
        worker.signals.failed.connect(self._on_features_failed)
        self._features_worker = worker
        self._features_path = path
        start(worker, self.overlay_pool)

    def _on_features_computed(self, result: FeaturesResult) -> None:
        self._retired_worker = self._features_worker  # its run() may still be returning
        self._features_worker = None
        self._features_path = None
        for path, features in result.features.items():
            self._features[(path, result.model)] = features
            self._features.move_to_end((path, result.model))
        while len(self._features) > FEATURES_CACHE:
            self._features.popitem(last=False)
        if not self._overlay_on:
            return
        path = self.current_path
        if result.unavailable is not None:
            self._show_overlay_error(path, result.unavailable)
        elif path in result.errors:
            self._show_overlay_error(
                path, f"No overlay for {Path(path).name}: {result.errors[path]}"
            )
        else:
            self._refresh_overlay()  # the current photo's map, or its features' turn

    def _on_features_failed(self, exc: Exception) -> None:
        message = describe(exc)
        path = self._features_path or self.current_path
        self._retired_worker = self._features_worker
        self._features_worker = None
        self._features_path = None
        if self._overlay_on and path == self.current_path:
            self._show_overlay_error(path, f"The overlay could not be computed: {message}")
        else:
            self._refresh_overlay()

    def _show_overlay_error(self, path: str, message: str) -> None:
        self._overlay_error = (path, message)
        self._clear_overlay()
        self.canvas.set_note(message)
        self.overlay_failed.emit(path, message)

    def _ask_and_save_overlay(self) -> None:
        self.save_overlay()

    def save_overlay(self, filename: str | None = None) -> None:
        """Write the current photo with its overlay, at the photo's display size, as PNG.

        Without `filename`, asks for one. Decoding the full photo and rendering
        take seconds for a big one, so both happen in a worker; `overlay_saved`
        or `overlay_save_failed` tells how it went.
        """
        fmap = self._overlay_map
        if fmap is None:
            return
        path = self.current_path
        if filename is None:
            suggested = os.path.join(os.path.dirname(path), f"{Path(path).stem}-overlay.png")
            filename = ask_png_name(self, "Save overlay as PNG", suggested)
            if filename is None:
                return
        opacity = self.overlay_controls.opacity
        background = self.overlay_controls.background

        def make() -> Image.Image:
            from dino_desktop.core.overlay import render

            return render(open_image(path), fmap, opacity=opacity, background=background)

        target = filename
        worker = JobWorker(lambda _token: save_png_job(make, target))
        worker.signals.finished.connect(self._on_overlay_saved)
        worker.signals.failed.connect(self._on_overlay_save_failed)
        self._save_workers.add(worker)
        start(worker, self.overlay_pool)

    def _forget_save_worker(self) -> None:
        signals = self.sender()
        self._save_workers = {w for w in self._save_workers if w.signals is not signals}

    def _on_overlay_saved(self, filename: str) -> None:
        self._forget_save_worker()
        self.overlay_saved.emit(filename)

    def _on_overlay_save_failed(self, exc: Exception) -> None:
        self._forget_save_worker()
        text = f"The overlay could not be saved: {describe(exc)}"
        if self._overlay_on:
            self.canvas.set_note(text)
        self.overlay_save_failed.emit(text)

    def wait_for_overlay_work(self, msecs: int = 30000) -> bool:
        """Wait for features and save jobs to end (tests, and closing for good)."""
        return self.overlay_pool.waitForDone(msecs)

    def done(self, result: int) -> None:
        # Closing: a features job that has not started yet need not start. One
        # that runs finishes (the model cannot be interrupted) into the caches.
        if self._features_worker is not None:
            self._features_worker.cancel()
        super().done(result)

    # ---- user actions ------------------------------------------------------------

    def _on_region_drawn(self, box: Box) -> None:
        self.region_selected.emit(self.current_path, box)

    def _request_find_similar(self) -> None:
        self.find_similar_requested.emit(self.current_path)

    def _update_zoom_label(self) -> None:
        image = self.canvas.image
        if image is None:
            self.zoom_label.clear()
            return
        percent = round(100 * self.canvas.scale() / self.canvas.actual_scale())
        self.zoom_label.setText(
            f"{image.width()} \N{MULTIPLICATION SIGN} {image.height()}  \N{MIDDLE DOT}  {percent}%"
        )

    def keyPressEvent(self, event: QKeyEvent) -> None:
        handlers: dict[Qt.Key, Callable[[], None]] = {
            Qt.Key.Key_Left: self.show_previous,
            Qt.Key.Key_Right: self.show_next,
            Qt.Key.Key_Home: lambda: self.set_index(0),
            Qt.Key.Key_End: lambda: self.set_index(len(self._paths) - 1),
            Qt.Key.Key_F: self.toggle_fit,
            Qt.Key.Key_1: self.actual_size,
            Qt.Key.Key_0: self.fit,
        }
        if self.library is not None:
            handlers[Qt.Key.Key_O] = self.overlay_action.toggle
        handler = handlers.get(event.keyCombination().key())
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if handler is not None and modifiers == Qt.KeyboardModifier.NoModifier:
            handler()
            event.accept()
            return
        super().keyPressEvent(event)  # Esc closes the viewer
