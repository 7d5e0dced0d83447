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

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from PySide6.QtCore import (
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QIcon,
    QImage,
    QKeyEvent,
)
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QSizePolicy,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.images import ImageError, open_image
from dino_desktop.gui.canvas import Box, PhotoCanvas
from dino_desktop.gui.common import rgb_qimage
from dino_desktop.gui.overlay import (
    FeaturesResult,
    OverlayControls,
    OverlayImages,
    ask_png_name,
    features_job,
    save_png_job,
)
from dino_desktop.gui.workers import JobWorker, describe, reader, start

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    # Only for annotations: the overlay module (numeric code) is imported when an
    # overlay is first wanted, not whenever the app opens a viewer.
    from dino_desktop.core.library import Library
    from dino_desktop.core.overlay import FeatureMap, PatchFeatures


CACHE_SIZE = 5  # decoded photos kept: the current one, its neighbours and a little history
CACHE_BYTES = 640 << 20  # ... but fewer of them when they are huge (a 12 MP photo is 48 MB)
PARALLEL_DECODES = 2  # the current photo and one neighbour at a time

FEATURES_CACHE = 16  # photos whose patch features the viewer keeps (~2 MB each for ViT-S)
MAPS_CACHE = 64  # computed maps (a few KB each): per photo, mode and threshold
OVERLAY_THREADS = 2  # one features job at a time, plus a save that may run beside it


def decode_qimage(path: str) -> QImage:
    """Decode a photo, EXIF orientation applied, into a QImage that owns its pixels.

    Safe to call on any thread (QImage, unlike QPixmap, is not tied to the GUI
    thread). Raises `ImageError` for anything wrong with the file.
    """
    return rgb_qimage(open_image(path))  # always 8-bit RGB


def _unreadable(exc: Exception) -> str:
    """What the viewer shows instead of a photo that could not be decoded."""
    if isinstance(exc, ImageError):
        return str(exc) or "cannot read image"
    log.exception("decoding failed")  # not an expected image error: worth a traceback
    return f"{type(exc).__name__}: {exc}"


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
        self._loading: dict[str, JobWorker] = {}  # decodes running, by path
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(PARALLEL_DECODES)
        self.pool.setObjectName("decode")  # photos only; overlays have their own pool
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
            self._start_decode(path)

    def _start_decode(self, path: str) -> None:
        # A reader on the viewer's own pool (PARALLEL_DECODES threads), so a scan
        # on the global pool cannot hold the photo up. Failures come back as the
        # text to show; a bound slot, so nothing arrives once the viewer is gone.
        def decode() -> tuple[str, QImage | str]:
            try:
                return path, decode_qimage(path)
            except Exception as exc:  # one odd file must not end the decoding
                return path, _unreadable(exc)

        worker = reader(decode)
        worker.signals.finished.connect(self._on_decoded)
        self._loading[path] = worker
        start(worker, self.pool)

    def _on_decoded(self, decoded: tuple[str, QImage | str]) -> None:
        self._finish_decode(*decoded)

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
