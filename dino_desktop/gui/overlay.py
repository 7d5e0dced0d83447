"""PCA overlays of patch features in the GUI, shared by the viewer and the compare
dialog: the feature map as QImages (colours, and the veil that dims the
background), drawing them over a photo, the features job (patch features of
several photos in a worker, with readable reasons instead of exceptions), PNG
saving, and the overlay controls (mode, opacity, threshold, invert, background).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from PySide6.QtCore import (
    QPointF,
    QRect,
    QRectF,
    Qt,
)
from PySide6.QtGui import (
    QColor,
    QImage,
    QPainter,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QSlider,
    QToolButton,
    QWidget,
)

from dino_desktop.core.images import ImageError, open_image
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import LibraryError
from dino_desktop.core.weights import WeightsError, WeightsUnavailable
from dino_desktop.gui.common import rgb_qimage

if TYPE_CHECKING:
    # Only for annotations: the overlay module (numeric code) is imported when an
    # overlay is first wanted, not whenever the app opens a viewer.
    from dino_desktop.core.library import Library
    from dino_desktop.core.overlay import FeatureMap, PatchFeatures

BACKGROUND = QColor(0x1E, 0x1E, 0x1E)  # neutral dark, as photo viewers use: no colour cast
FOREGROUND = QColor(0xC8, 0xC8, 0xC8)
NOTE_BACKGROUND = QColor(0, 0, 0, 180)
NOTE_TEXT = QColor(0xF0, 0xF0, 0xF0)
DEFAULT_OPACITY = 70  # percent: the photo stays recognisable under the colours
PNG_FILTER = "PNG images (*.png)"
MODE_CHOICES = (
    ("Colours", "rgb", "The three main feature directions as red, green and blue"),
    (
        "Foreground parts",
        "foreground",
        "Parts of the main subject in colour, the background left clear",
    ),
)


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
    except (WeightsUnavailable, WeightsError) as exc:
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
        except (WeightsUnavailable, WeightsError) as exc:
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
