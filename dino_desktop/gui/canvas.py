"""The viewer's drawing surface: one photo fitted or at 100 % with panning,
region selection by dragging (reported in the photo's display pixels), a note
over the photo, and the PCA overlay drawn on top of it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QPointF,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QFrame,
    QRubberBand,
    QSizePolicy,
    QWidget,
)

from dino_desktop.gui.overlay import (
    BACKGROUND,
    FOREGROUND,
    OverlayImages,
    draw_note,
    draw_overlay,
)

if TYPE_CHECKING:
    pass

Box = tuple[int, int, int, int]
"""(left, top, right, bottom) in the photo's display pixels; right/bottom exclusive."""

MIN_DRAG_PX = 4  # a shorter drag is a click that slipped, not a region
SMOOTH_DELAY_MS = 150  # after a resize settles, redraw the fitted photo smoothly


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
