"""PCA overlays in the GUI: the viewer's Overlay toggle and the Compare features dialog.

A tiny random DINOv2 (written by the test in Meta's format) computes real patch
features on the CPU; nothing here judges what the colours mean, only that the
work happens in workers, the controls act at once, and the files come out right.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import imagegen
import numpy as np
import pytest
import weightsgen
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt, QThreadPool
from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot
from qtsync import deliver_posted_events

from dino_desktop.core.library import Library
from dino_desktop.core.overlay import PatchFeatures, pca_maps
from dino_desktop.core.progress import Progress
from dino_desktop.gui import compare as compare_module
from dino_desktop.gui import overlay as overlay_module
from dino_desktop.gui import viewer as viewer_module
from dino_desktop.gui.compare import STRIP_GAP, CompareDialog
from dino_desktop.gui.viewer import ImageViewer
from dino_desktop.gui.workers import JobWorker

SIZE = (640, 480)
TIMEOUT = 60000  # the first features build the model


# ---- fixtures ----------------------------------------------------------------------


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Library]:
    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "t.pth", weightsgen.TINY)
    lib = Library(tmp_path / "lib", model=weightsgen.TINY, weights=weights, device="cpu")
    yield lib
    lib.close()


@pytest.fixture
def no_weights_library(tmp_path: Path) -> Iterator[Library]:
    weightsgen.register_tiny_model()
    lib = Library(tmp_path / "lib-no-weights", model=weightsgen.TINY, device="cpu")
    yield lib
    lib.close()


@pytest.fixture
def photos(tmp_path: Path) -> list[str]:
    return [
        str(imagegen.save_jpeg(tmp_path / "photos" / f"{name}.jpg", seed=i, size=SIZE))
        for i, name in enumerate(("a", "b", "c"))
    ]


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[JobWorker]:
    """Every overlay worker the viewer and the dialog start, in order (not the
    viewer's photo decodes, on its pool named "decode")."""
    started: list[JobWorker] = []

    def spy(worker: JobWorker, pool: QThreadPool | None = None) -> JobWorker:
        if pool is None or pool.objectName() != "decode":
            started.append(worker)
        return real(worker, pool)

    real = viewer_module.start
    monkeypatch.setattr(viewer_module, "start", spy)
    monkeypatch.setattr(compare_module, "start", spy)
    return started


@pytest.fixture
def windows(qtbot: QtBot) -> Iterator[list[ImageViewer | CompareDialog]]:
    """Viewers and dialogs opened by a test; closed, and their workers waited for, afterwards."""
    opened: list[ImageViewer | CompareDialog] = []
    yield opened
    for window in opened:
        window.close()
        if isinstance(window, ImageViewer):
            assert window.wait_for_overlay_work(60000)
            assert window.pool.waitForDone(30000)
        else:
            assert window.wait_for_work(60000)
    deliver_posted_events()  # the last queued results, while the windows still exist


def open_viewer(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    paths: list[str],
    library: Library | None,
) -> ImageViewer:
    """A viewer with its first photo on screen."""
    viewer = ImageViewer(paths, 0, library=library)
    qtbot.addWidget(viewer)
    windows.append(viewer)
    viewer.resize(700, 560)
    viewer.show()
    qtbot.waitExposed(viewer)
    qtbot.waitUntil(lambda: not viewer.is_loading, timeout=20000)
    return viewer


def overlay_on(qtbot: QtBot, viewer: ImageViewer) -> None:
    with qtbot.waitSignal(viewer.overlay_shown, timeout=TIMEOUT):
        viewer.overlay_action.trigger()


def centre_pixel(viewer: ImageViewer, dx: float = 0, dy: float = 0) -> QColor:
    """The colour on screen at the photo's centre (plus an offset in view pixels)."""
    rect = viewer.canvas.image_rect()
    image = viewer.canvas.viewport().grab().toImage()
    ratio = image.devicePixelRatio()
    x, y = rect.center().x() + dx, rect.center().y() + dy
    return image.pixelColor(round(x * ratio), round(y * ratio))


def rgb(color: QColor) -> tuple[int, int, int]:
    return color.red(), color.green(), color.blue()


def emitted(signal: object) -> Callable[[], list[tuple[object, ...]]]:
    """Record a signal's emissions: returns a function that gives them so far."""
    calls: list[tuple[object, ...]] = []
    signal.connect(lambda *args: calls.append(args))  # type: ignore[attr-defined]
    return lambda: calls


# ---- the viewer --------------------------------------------------------------------


def test_overlay_is_computed_in_a_worker_then_painted(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    photos: list[str],
    library: Library,
    starts: list[JobWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = library.overlay_engine()
    threads: list[threading.Thread] = []
    real_features = engine.features

    def spy(path: str) -> PatchFeatures:
        threads.append(threading.current_thread())
        return real_features(path)

    monkeypatch.setattr(engine, "features", spy)
    viewer = open_viewer(qtbot, windows, photos, library)
    assert viewer.overlay_action.isVisible() and not viewer.overlay_bar.isVisible()
    before = rgb(centre_pixel(viewer))
    with qtbot.waitSignal(viewer.overlay_shown, timeout=TIMEOUT) as blocker:
        qtbot.keyClick(viewer.canvas, Qt.Key.Key_O)  # the O key toggles it, as the button does
        # Until the worker reports, the viewer says what it is doing.
        assert viewer.overlay_action.isChecked() and viewer.overlay_bar.isVisible()
        assert viewer.is_computing_overlay
        assert viewer.overlay_message == "Computing overlay\N{HORIZONTAL ELLIPSIS}"
        assert viewer.canvas.overlay is None
    assert blocker.args == [photos[0]]
    assert len(starts) == 1 and threads and threading.main_thread() not in threads
    assert viewer.overlay_message == "" and not viewer.is_computing_overlay
    fmap = viewer.overlay_map
    assert fmap is not None and fmap.foreground is None  # colours mode by default
    features = engine.features(photos[0])
    assert fmap.rgba.shape == (*features.tokens.shape[:2], 4)
    # The small map is painted over the photo, not a full-size copy of it.
    assert viewer.canvas.overlay is not None
    assert viewer.canvas.overlay.colours.width() == features.grid[0]
    assert rgb(centre_pixel(viewer)) != before
    assert viewer.save_overlay_action.isEnabled()


def test_sliders_repaint_at_once_without_a_worker(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    photos: list[str],
    library: Library,
    starts: list[JobWorker],
) -> None:
    viewer = open_viewer(qtbot, windows, photos, library)
    plain = rgb(centre_pixel(viewer))
    overlay_on(qtbot, viewer)
    controls = viewer.overlay_controls
    workers = len(starts)
    shown = emitted(viewer.overlay_shown)

    # Opacity: only the drawing changes, at once.
    controls.opacity_slider.setValue(0)
    assert viewer.canvas.overlay_opacity == 0.0 and controls.opacity_value.text() == "0 %"
    assert rgb(centre_pixel(viewer)) == plain
    controls.opacity_slider.setValue(100)
    full = rgb(centre_pixel(viewer))
    assert full != plain
    controls.opacity_slider.setValue(50)
    half = rgb(centre_pixel(viewer))
    assert half not in (plain, full)
    for got, a, b in zip(half, plain, full, strict=True):
        assert abs(got - (a + b) / 2) <= 3  # an even blend of photo and map

    # Foreground mode: a new map (pca_maps on the GUI thread) with an automatic threshold.
    assert not controls.threshold_slider.isEnabled() and not controls.auto_button.isEnabled()
    controls.set_mode("foreground")
    fmap = viewer.overlay_map
    assert fmap is not None and fmap.foreground is not None and fmap.threshold is not None
    assert controls.threshold_slider.isEnabled() and controls.invert_check.isEnabled()
    assert controls.threshold_is_auto and controls.auto_button.isChecked()
    # The slider follows the automatic value without making it manual.
    assert controls.threshold_slider.value() == round(fmap.threshold * 100)
    assert controls.threshold_value.text() == f"{controls.threshold_slider.value() / 100:.2f}"
    # Background patches are transparent: the photo shows through there.
    assert (fmap.rgba[..., 3][~fmap.foreground] == 0).all()
    assert (fmap.rgba[..., 3][fmap.foreground] == 255).all()

    # The threshold slider: manual at once, "Auto" goes back.
    auto = fmap.threshold
    controls.threshold_slider.setValue(30 if auto > 0.45 else 60)
    manual = viewer.overlay_map
    assert manual is not None and manual.threshold == controls.threshold_slider.value() / 100
    assert controls.threshold_value.text() == f"{manual.threshold:.2f}"
    assert not controls.threshold_is_auto and not controls.auto_button.isChecked()
    assert manual.foreground is not None
    assert not np.array_equal(manual.foreground, fmap.foreground)
    controls.invert_check.setChecked(True)
    inverted = viewer.overlay_map
    assert inverted is not None and inverted.foreground is not None
    assert np.array_equal(inverted.foreground, ~manual.foreground)
    controls.auto_button.click()
    again = viewer.overlay_map
    assert again is not None and again.threshold == auto
    assert controls.threshold_is_auto and controls.auto_button.isChecked()

    # None of that ran the model again, and only the mode change was announced.
    assert len(starts) == workers
    assert shown() == [(photos[0],)]


def test_dim_background_darkens_outside_the_foreground(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    photos: list[str],
    library: Library,
) -> None:
    viewer = open_viewer(qtbot, windows, photos, library)
    overlay_on(qtbot, viewer)
    controls = viewer.overlay_controls
    controls.set_mode("foreground")
    fmap = viewer.overlay_map
    assert fmap is not None and fmap.foreground is not None
    # A background patch well inside the background (all its neighbours too).
    rows, cols = fmap.foreground.shape
    pad = np.pad(fmap.foreground, 1, constant_values=True)
    inner = ~(pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:] | pad[1:-1, 1:-1])
    assert inner.any()
    row, col = (int(v) for v in np.argwhere(inner)[0])
    rect = viewer.canvas.image_rect()
    dx = (col + 0.5) / cols * rect.width() - rect.width() / 2
    dy = (row + 0.5) / rows * rect.height() - rect.height() / 2
    clear = centre_pixel(viewer, dx, dy)
    controls.dim_check.setChecked(True)
    assert controls.background == "dim" and viewer.canvas.overlay_dim
    dimmed = centre_pixel(viewer, dx, dy)
    assert dimmed.lightness() < clear.lightness() * 0.5


def test_turning_it_on_again_and_stepping_back_are_instant(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    photos: list[str],
    library: Library,
    starts: list[JobWorker],
) -> None:
    viewer = open_viewer(qtbot, windows, photos, library)
    overlay_on(qtbot, viewer)
    first = viewer.overlay_map
    assert len(starts) == 1
    qtbot.keyClick(viewer, Qt.Key.Key_O)
    assert not viewer.overlay_visible and viewer.canvas.overlay is None
    assert not viewer.overlay_bar.isVisible() and not viewer.save_overlay_action.isEnabled()
    shown = emitted(viewer.overlay_shown)
    qtbot.keyClick(viewer, Qt.Key.Key_O)
    # Painted from the viewer's cache before the key press returned: no worker.
    assert shown() == [(photos[0],)] and len(starts) == 1
    assert viewer.overlay_map is first

    # The next photo, with the overlay on: its features are computed, then painted.
    with qtbot.waitSignal(viewer.overlay_shown, timeout=TIMEOUT) as blocker:
        qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert blocker.args == [photos[1]] and len(starts) == 2
    assert viewer.overlay_map is not None and viewer.overlay_map is not first
    # Back to the first one: instant again.
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: not viewer.is_loading, timeout=20000)
    assert shown()[-1] == (photos[0],) and len(starts) == 2
    assert viewer.overlay_map is first


def test_region_selection_still_works_with_the_overlay_on(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    photos: list[str],
    library: Library,
) -> None:
    viewer = open_viewer(qtbot, windows, photos, library)
    overlay_on(qtbot, viewer)
    viewer.actual_size()
    canvas = viewer.canvas
    rect = canvas.image_rect()
    origin = QPoint(max(0, int(rect.x())), max(0, int(rect.y())))
    offset = canvas.map_to_image(QPointF(origin))  # image pixels under the origin
    viewport = canvas.viewport()
    a, b = origin + QPoint(10, 20), origin + QPoint(110, 90)
    with qtbot.waitSignal(viewer.region_selected, timeout=1000) as blocker:
        qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, a)
        qtbot.mouseMove(viewport, QPoint(60, 60))
        qtbot.mouseMove(viewport, b)
        qtbot.mouseRelease(
            viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, b
        )
    x, y = round(offset.x()), round(offset.y())
    assert blocker.args == [photos[0], (x + 10, y + 20, x + 110, y + 90)]
    assert canvas.overlay is not None


def test_save_overlay_writes_a_png_of_the_display_size(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    library: Library,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stored 240 wide and 320 high, displayed 320 x 240 after EXIF orientation 6.
    _upright, rotated = imagegen.oriented_pair(tmp_path / "photos", 6, size=(320, 240))
    with Image.open(rotated) as stored:
        assert stored.size == (240, 320)
    viewer = open_viewer(qtbot, windows, [str(rotated)], library)
    assert not viewer.save_overlay_action.isEnabled()
    overlay_on(qtbot, viewer)
    asked: list[str] = []

    def ask(_parent: object, _title: str, suggested: str, _filter: str) -> tuple[str, str]:
        asked.append(suggested)
        return str(tmp_path / "out" / "saved"), _filter

    (tmp_path / "out").mkdir()
    monkeypatch.setattr(overlay_module.QFileDialog, "getSaveFileName", ask)
    with qtbot.waitSignal(viewer.overlay_saved, timeout=TIMEOUT) as blocker:
        viewer.save_overlay_action.trigger()
    assert asked == [str(tmp_path / "photos" / "oriented-6-0-overlay.png")]
    written = tmp_path / "out" / "saved.png"  # the extension is added
    assert blocker.args == [str(written)]
    with Image.open(written) as png:
        assert png.format == "PNG" and png.size == (320, 240)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["saved.png"]  # no temp left

    # Foreground with a dimmed background: the photo shows, dark, where the map is clear.
    viewer.overlay_controls.set_mode("foreground")
    viewer.overlay_controls.dim_check.setChecked(True)
    dim = tmp_path / "out" / "dim.png"
    with qtbot.waitSignal(viewer.overlay_saved, timeout=TIMEOUT):
        viewer.save_overlay(str(dim))
    with Image.open(dim) as png:
        assert png.size == (320, 240) and png.mode == "RGB"


def test_a_failed_save_says_why(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    photos: list[str],
    library: Library,
    tmp_path: Path,
) -> None:
    viewer = open_viewer(qtbot, windows, photos, library)
    overlay_on(qtbot, viewer)
    with qtbot.waitSignal(viewer.overlay_save_failed, timeout=TIMEOUT) as blocker:
        viewer.save_overlay(str(tmp_path / "no-such-folder" / "x.png"))
    assert blocker.args[0].startswith("The overlay could not be saved")
    assert viewer.overlay_message == blocker.args[0]


def test_missing_weights_give_a_readable_message(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    photos: list[str],
    no_weights_library: Library,
) -> None:
    viewer = open_viewer(qtbot, windows, photos, no_weights_library)
    with qtbot.waitSignal(viewer.overlay_failed, timeout=TIMEOUT) as blocker:
        viewer.overlay_action.trigger()
    path, message = blocker.args
    assert path == photos[0]
    assert message.startswith("The overlay needs the DINOv2 model weights.")
    assert "Traceback" not in message
    assert viewer.overlay_message == message and viewer.canvas.overlay is None
    assert not viewer.save_overlay_action.isEnabled()
    # A slider move does not try again (and flicker); the viewer carries on.
    viewer.overlay_controls.set_mode("foreground")
    assert not viewer.is_computing_overlay
    with qtbot.waitSignal(viewer.image_shown, timeout=20000):
        qtbot.keyClick(viewer, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: not viewer.is_computing_overlay, timeout=TIMEOUT)
    assert viewer.overlay_message.startswith("The overlay needs")


def test_a_viewer_without_a_library_has_no_overlay(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    photos: list[str],
    starts: list[JobWorker],
) -> None:
    viewer = open_viewer(qtbot, windows, photos, None)
    assert not viewer.overlay_action.isVisible()
    qtbot.keyClick(viewer, Qt.Key.Key_O)
    assert not viewer.overlay_visible and starts == []


def test_closing_the_viewer_while_computing_is_safe(
    qtbot: QtBot, photos: list[str], library: Library
) -> None:
    viewer = ImageViewer(photos, 0, library=library)
    viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    viewer.show()
    viewer.overlay_action.trigger()
    assert viewer.is_computing_overlay
    with qtbot.waitSignal(viewer.destroyed, timeout=TIMEOUT):
        viewer.close()  # the pools, children of the viewer, wait for their jobs
    deliver_posted_events()  # any queued results arrive at nothing, harmlessly
    assert not JobWorker.live


# ---- compare -----------------------------------------------------------------------


def open_compare(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    library: Library,
    paths: list[str],
) -> CompareDialog:
    dialog = CompareDialog(library, paths)
    qtbot.addWidget(dialog)
    windows.append(dialog)
    dialog.show()
    return dialog


def test_compare_shows_one_joint_overlay_and_saves_a_strip(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    library: Library,
    tmp_path: Path,
    starts: list[JobWorker],
) -> None:
    sizes = ((640, 480), (480, 480), (320, 480))  # one height: the strip keeps their widths
    paths = [
        str(imagegen.save_jpeg(tmp_path / "photos" / f"p{i}.jpg", seed=10 + i, size=size))
        for i, size in enumerate(sizes)
    ]
    dialog = open_compare(qtbot, windows, library, paths)
    assert dialog.is_computing and dialog.progress.isVisible()
    with qtbot.waitSignal(dialog.overlays_shown, timeout=TIMEOUT):
        pass
    assert len(starts) == 1  # all three photos in one worker
    assert not dialog.is_computing and not dialog.progress.isVisible()
    assert [t.overlay is not None for t in dialog.tiles] == [True, True, True]
    assert [c.toolTip() for c in dialog.strip.captions] == paths
    assert [c.text() for c in dialog.strip.captions] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    # Each tile keeps its photo's shape.
    for tile, (w, h) in zip(dialog.tiles, sizes, strict=True):
        assert tile.width() / tile.height() == pytest.approx(w / h, abs=0.02)

    # One PCA over the three photos' patches, not one per photo.
    engine = library.overlay_engine()
    features = [engine.features(p) for p in paths]
    joint = pca_maps(features, "rgb")
    shown = dialog.maps
    for path, fmap in zip(paths, joint, strict=True):
        assert np.array_equal(shown[path].rgba, fmap.rgba)
    alone = pca_maps(features[:1], "rgb")[0]
    assert not np.array_equal(shown[paths[0]].rgba, alone.rgba)

    # Controls act on all of them at once, without a worker.
    dialog.controls.opacity_slider.setValue(40)
    assert all(t.opacity == 0.4 for t in dialog.tiles)
    with qtbot.waitSignal(dialog.overlays_shown, timeout=1000):
        dialog.controls.set_mode("foreground")
    assert all(m.foreground is not None for m in dialog.maps.values())
    assert len({m.threshold for m in dialog.maps.values()}) == 1  # one joint threshold
    assert len(starts) == 1

    out = tmp_path / "strip.png"
    with qtbot.waitSignal(dialog.saved, timeout=TIMEOUT) as blocker:
        dialog.save_png(str(out))
    assert blocker.args == [str(out)]
    with Image.open(out) as png:
        assert png.size == (640 + 480 + 320 + 2 * STRIP_GAP, 480)


def test_compare_reports_each_photo_and_carries_on_past_an_unreadable_one(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    library: Library,
    photos: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    steps: list[Progress] = []
    real = CompareDialog._on_progress

    def spy(self: CompareDialog, step: Progress) -> None:
        steps.append(step)
        real(self, step)

    monkeypatch.setattr(CompareDialog, "_on_progress", spy)
    dialog = open_compare(qtbot, windows, library, [photos[0], str(broken), photos[1]])
    with qtbot.waitSignal(dialog.overlays_shown, timeout=TIMEOUT):
        pass
    # Progress counts photos (throttled, but the last step always arrives).
    assert steps and all(s.total == 3 for s in steps)
    assert (steps[-1].done, steps[-1].total) == (3, 3)
    assert {s.current for s in steps} <= {None, photos[0], str(broken), photos[1]}
    assert [t.overlay is not None for t in dialog.tiles] == [True, False, True]
    assert dialog.tiles[1].message.startswith("Cannot read this photo")
    assert "1 of 3 photos could not be read" in dialog.message_label.text()
    assert sorted(dialog.maps) == sorted([photos[0], photos[1]])


def test_compare_without_weights_fails_readably(
    qtbot: QtBot,
    windows: list[ImageViewer | CompareDialog],
    no_weights_library: Library,
    photos: list[str],
) -> None:
    dialog = open_compare(qtbot, windows, no_weights_library, photos[:2])
    with qtbot.waitSignal(dialog.failed, timeout=TIMEOUT) as blocker:
        pass
    assert blocker.args[0].startswith("The overlay needs the DINOv2 model weights.")
    assert dialog.message_label.text() == blocker.args[0] and dialog.message_label.isVisible()
    assert not dialog.save_button.isEnabled()


@pytest.mark.parametrize("count", [0, 1, 9])
def test_compare_needs_two_to_eight_photos(
    library: Library, photos: list[str], count: int, starts: list[JobWorker]
) -> None:
    paths = (photos * 3)[:count]
    with pytest.raises(ValueError, match="2 to 8 photos"):
        CompareDialog(library, paths)
    assert starts == []
