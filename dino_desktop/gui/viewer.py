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

import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

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
    QDialog,
    QFrame,
    QLabel,
    QRubberBand,
    QSizePolicy,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.images import ImageError, open_image

Box = tuple[int, int, int, int]
"""(left, top, right, bottom) in the photo's display pixels; right/bottom exclusive."""

CACHE_SIZE = 5  # decoded photos kept: the current one, its neighbours and a little history
CACHE_BYTES = 640 << 20  # ... but fewer of them when they are huge (a 12 MP photo is 48 MB)
PARALLEL_DECODES = 2  # the current photo and one neighbour at a time
MIN_DRAG_PX = 4  # a shorter drag is a click that slipped, not a region
SMOOTH_DELAY_MS = 150  # after a resize settles, redraw the fitted photo smoothly
BACKGROUND = QColor(0x1E, 0x1E, 0x1E)  # neutral dark, as photo viewers use: no colour cast
FOREGROUND = QColor(0xC8, 0xC8, 0xC8)


def decode_qimage(path: str) -> QImage:
    """Decode a photo, EXIF orientation applied, into a QImage that owns its pixels.

    Safe to call on any thread (QImage, unlike QPixmap, is not tied to the GUI
    thread). Raises `ImageError` for anything wrong with the file.
    """
    img = open_image(path)  # always 8-bit RGB
    data = img.tobytes()
    wrapped = QImage(data, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888)
    # The conversion copies the pixels out of `data` (still alive here) and gives
    # RGB32, the format QPainter draws without converting on every paint.
    return wrapped.convertToFormat(QImage.Format.Format_RGB32)


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
    def region_mode(self) -> bool:
        return self._region_mode

    def set_image(self, image: QImage) -> None:
        self._image = image
        self._message = ""
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
        self._scaled = None
        self._scaled_key = None
        self._cancel_drag()
        self._update_scrollbars()
        self._update_cursor()
        self.viewport().update()
        self.zoom_changed.emit()

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
            self._draw_photo(painter)
        finally:
            painter.end()

    def _draw_photo(self, painter: QPainter) -> None:
        assert self._image is not None
        target = self.image_rect()
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
    """

    region_selected = Signal(str, object)  # path, Box in display pixels
    find_similar_requested = Signal(str)  # path
    index_changed = Signal(int)
    image_shown = Signal(str)  # the current photo is on screen
    image_failed = Signal(str, str)  # path, why it cannot be shown

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        index: int = 0,
        parent: QWidget | None = None,
        *,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
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
        spacer = QWidget(self.toolbar)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        self.zoom_label = QLabel(self.toolbar)
        self.zoom_label.setContentsMargins(8, 0, 8, 0)
        self.toolbar.addWidget(self.zoom_label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
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
        cached = self._cache.get(path)
        if cached is None:
            self.canvas.show_message("Loading\N{HORIZONTAL ELLIPSIS}")
            self.region_action.setEnabled(False)
        else:
            self._cache.move_to_end(path)
            self._display(path, cached)
        self._decode_wanted()

    def _display(self, path: str, value: QImage | str) -> None:
        if isinstance(value, QImage):
            self.canvas.set_image(value)
            self.region_action.setEnabled(True)
            self.image_shown.emit(path)
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
        handler = handlers.get(event.keyCombination().key())
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if handler is not None and modifiers == Qt.KeyboardModifier.NoModifier:
            handler()
            event.accept()
            return
        super().keyPressEvent(event)  # Esc closes the viewer
