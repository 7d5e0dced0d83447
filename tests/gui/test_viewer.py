"""The photo viewer: off-thread decoding, navigation, zoom, and region selection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import imagegen
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot
from qtsync import deliver_posted_events

from dino_desktop.core.images import open_image
from dino_desktop.gui import viewer as viewer_module
from dino_desktop.gui.viewer import ImageViewer

SIZE = (640, 480)


@pytest.fixture
def photos(tmp_path: Path) -> list[str]:
    return [
        str(imagegen.save_jpeg(tmp_path / f"{name}.jpg", seed=i, size=SIZE))
        for i, name in enumerate(("a", "b", "c"))
    ]


@pytest.fixture
def open_viewer(qtbot: QtBot) -> Iterator[list[ImageViewer]]:
    """Viewers opened by a test; closed, and their decode threads waited for, afterwards."""
    viewers: list[ImageViewer] = []
    yield viewers
    for viewer in viewers:
        viewer.close()
        assert viewer.pool.waitForDone(30000)
        assert viewer.pool.activeThreadCount() == 0


def show(qtbot: QtBot, viewers: list[ImageViewer], paths: list[str], index: int = 0) -> ImageViewer:
    viewer = ImageViewer(paths, index)
    qtbot.addWidget(viewer)
    viewers.append(viewer)
    viewer.resize(500, 400)  # smaller than the photos, so fit and 100% differ
    viewer.show()
    qtbot.waitExposed(viewer)
    return viewer


def shown(qtbot: QtBot, viewers: list[ImageViewer], paths: list[str]) -> ImageViewer:
    """A viewer with its first photo on screen."""
    viewer = show(qtbot, viewers, paths)
    qtbot.waitUntil(lambda: not viewer.is_loading, timeout=20000)
    assert viewer.canvas.image is not None
    return viewer


def drag(qtbot: QtBot, widget: object, a: QPoint, b: QPoint, shift: bool = False) -> None:
    mods = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, mods, a)
    qtbot.mouseMove(widget, QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2))
    qtbot.mouseMove(widget, b)
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, mods, b)


def test_photo_decodes_off_the_gui_thread(
    qtbot: QtBot,
    open_viewer: list[ImageViewer],
    photos: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []

    def spy(path: str) -> object:
        threads.append(threading.current_thread())
        return open_image(path)

    monkeypatch.setattr(viewer_module, "open_image", spy)
    viewer = ImageViewer(photos, 1)
    qtbot.addWidget(viewer)
    open_viewer.append(viewer)
    # Until the event loop delivers the decoded photo, the viewer says it is loading.
    assert viewer.is_loading
    assert viewer.canvas.message == "Loading\N{HORIZONTAL ELLIPSIS}"
    assert viewer.windowTitle() == "b.jpg \N{EM DASH} 2 of 3"
    with qtbot.waitSignal(viewer.image_shown, timeout=20000) as blocker:
        viewer.show()
    assert blocker.args == [photos[1]]
    assert not viewer.is_loading and viewer.canvas.message == ""
    image = viewer.canvas.image
    assert image is not None and (image.width(), image.height()) == SIZE
    assert threads and all(t is not threading.main_thread() for t in threads)


def test_arrow_keys_step_through_and_stop_at_the_ends(
    qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str]
) -> None:
    viewer = shown(qtbot, open_viewer, photos)
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Left)  # the canvas has focus; keys reach the viewer
    assert viewer.index == 0
    with qtbot.waitSignal(viewer.image_shown, timeout=20000):
        qtbot.keyClick(viewer.canvas, Qt.Key.Key_Right)
    assert viewer.index == 1 and viewer.windowTitle() == "b.jpg \N{EM DASH} 2 of 3"
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.index == 2 and viewer.windowTitle() == "c.jpg \N{EM DASH} 3 of 3"
    assert not viewer.next_action.isEnabled() and viewer.previous_action.isEnabled()
    qtbot.keyClick(viewer, Qt.Key.Key_Left)
    assert viewer.index == 1


def test_stepping_back_uses_the_cache(
    qtbot: QtBot,
    open_viewer: list[ImageViewer],
    photos: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[str] = []
    lock = threading.Lock()

    def spy(path: str) -> object:
        with lock:
            decoded.append(path)
        return open_image(path)

    monkeypatch.setattr(viewer_module, "open_image", spy)
    viewer = shown(qtbot, open_viewer, photos)
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: not viewer.is_loading, timeout=20000)
    viewer.pool.waitForDone(20000)  # let the look-ahead finish too
    deliver_posted_events()  # and its results reach the viewer's cache
    before = sorted(decoded)
    # Back to the first photo: shown at once, from memory.
    with qtbot.waitSignal(viewer.image_shown, timeout=1000) as blocker:
        qtbot.keyClick(viewer, Qt.Key.Key_Left)
    assert blocker.args == [photos[0]] and not viewer.is_loading
    assert sorted(decoded) == before
    assert sorted(set(decoded)) == sorted(decoded) == sorted(photos)  # each decoded once


def test_escape_closes(qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str]) -> None:
    viewer = shown(qtbot, open_viewer, photos)
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Escape)
    assert not viewer.isVisible()
    assert viewer.result() == QDialog.DialogCode.Rejected


def test_fit_and_actual_size(
    qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str]
) -> None:
    viewer = shown(qtbot, open_viewer, photos)
    canvas = viewer.canvas
    view = canvas.viewport().size()
    assert canvas.fit and canvas.scale() == pytest.approx(
        min(view.width() / SIZE[0], view.height() / SIZE[1])
    )
    assert canvas.scale() < 1
    assert "640 \N{MULTIPLICATION SIGN} 480" in viewer.zoom_label.text()
    qtbot.keyClick(viewer, Qt.Key.Key_1)
    assert not canvas.fit and canvas.scale() == 1.0
    assert viewer.actual_size_action.isChecked() and viewer.zoom_label.text().endswith("100%")
    assert canvas.horizontalScrollBar().maximum() > 0  # the photo is larger than the view
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert canvas.fit and viewer.fit_action.isChecked()
    qtbot.keyClick(viewer, Qt.Key.Key_F)
    assert not canvas.fit
    qtbot.keyClick(viewer, Qt.Key.Key_0)
    assert canvas.fit
    viewer.actual_size_action.trigger()  # the toolbar buttons do the same
    assert not canvas.fit
    viewer.fit_action.trigger()
    assert canvas.fit


def test_panning_at_actual_size(
    qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str]
) -> None:
    viewer = shown(qtbot, open_viewer, photos)
    viewer.actual_size()
    bar = viewer.canvas.horizontalScrollBar()
    bar.setValue(60)
    drag(qtbot, viewer.canvas.viewport(), QPoint(200, 100), QPoint(170, 100))
    assert bar.value() == 90
    assert viewer.canvas.image_rect().x() == -90


def test_region_at_actual_size_is_in_image_pixels(
    qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str]
) -> None:
    viewer = shown(qtbot, open_viewer, photos)
    viewer.actual_size()
    canvas = viewer.canvas
    canvas.horizontalScrollBar().setValue(0)
    canvas.verticalScrollBar().setValue(0)
    # 100% at offset 0: viewport coordinates are image coordinates.
    with qtbot.waitSignal(viewer.region_selected, timeout=1000) as blocker:
        drag(qtbot, canvas.viewport(), QPoint(10, 20), QPoint(110, 90), shift=True)
    assert blocker.args == [photos[0], (10, 20, 110, 90)]
    # Scrolled: the same drag lands elsewhere in the photo.
    canvas.horizontalScrollBar().setValue(50)
    canvas.verticalScrollBar().setValue(30)
    with qtbot.waitSignal(viewer.region_selected, timeout=1000) as blocker:
        drag(qtbot, canvas.viewport(), QPoint(110, 90), QPoint(10, 20), shift=True)
    assert blocker.args == [photos[0], (60, 50, 160, 120)]


def test_region_mode_button_and_plain_drags(
    qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str]
) -> None:
    viewer = shown(qtbot, open_viewer, photos)
    boxes: list[object] = []
    viewer.region_selected.connect(lambda _path, box: boxes.append(box))
    viewport = viewer.canvas.viewport()
    rect = viewer.canvas.image_rect()
    inside_a = QPoint(int(rect.x()) + 20, int(rect.y()) + 20)
    inside_b = QPoint(int(rect.x()) + 120, int(rect.y()) + 100)
    drag(qtbot, viewport, inside_a, inside_b)  # no Shift, no region mode: nothing
    assert boxes == []
    viewer.region_action.trigger()
    assert viewer.canvas.region_mode
    drag(qtbot, viewport, inside_a, inside_b)
    assert len(boxes) == 1
    drag(qtbot, viewport, inside_a, inside_a + QPoint(2, 2))  # a slipped click is no region
    assert len(boxes) == 1


def test_region_in_fit_mode_scales_to_image_pixels(
    qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str]
) -> None:
    viewer = shown(qtbot, open_viewer, photos)
    canvas = viewer.canvas
    scale = canvas.scale()
    assert scale < 0.9
    rect = canvas.image_rect()

    def at(x: float, y: float) -> QPoint:
        """The viewport point showing image pixel (x, y)."""
        return QPoint(round(rect.x() + x * scale), round(rect.y() + y * scale))

    with qtbot.waitSignal(viewer.region_selected, timeout=1000) as blocker:
        drag(qtbot, canvas.viewport(), at(160, 120), at(480, 360), shift=True)
    path, box = blocker.args
    assert path == photos[0]
    # One viewport pixel is 1/scale image pixels: that is the precision to expect.
    tolerance = 1 / scale + 0.5
    for got, want in zip(box, (160, 120, 480, 360), strict=True):
        assert abs(got - want) <= tolerance
    # A drag past the photo's edges is clamped to the photo.
    with qtbot.waitSignal(viewer.region_selected, timeout=1000) as blocker:
        drag(qtbot, canvas.viewport(), at(-50, -50), at(700, 500), shift=True)
    assert blocker.args[1] == (0, 0, *SIZE)


def test_region_on_an_exif_rotated_photo_is_in_display_pixels(
    qtbot: QtBot, open_viewer: list[ImageViewer], tmp_path: Path
) -> None:
    # Stored 240 wide and 320 high, displayed 320 x 240 after orientation 6.
    upright, rotated = imagegen.oriented_pair(tmp_path, 6, size=(320, 240))
    viewer = shown(qtbot, open_viewer, [str(rotated)])
    image = viewer.canvas.image
    assert image is not None and (image.width(), image.height()) == (320, 240)
    # The displayed pixels are the upright photo's.
    reference = QImage(str(upright)).convertToFormat(QImage.Format.Format_RGB32)
    for x, y in ((10, 10), (300, 30), (160, 220)):
        got, want = image.pixelColor(x, y), reference.pixelColor(x, y)
        assert abs(got.red() - want.red()) < 40 and abs(got.blue() - want.blue()) < 40
    viewer.actual_size()  # fits in the view: centred, 1:1
    canvas = viewer.canvas
    rect = canvas.image_rect()
    origin = QPoint(int(rect.x()), int(rect.y()))
    with qtbot.waitSignal(viewer.region_selected, timeout=1000) as blocker:
        drag(qtbot, canvas.viewport(), origin + QPoint(200, 10), origin + QPoint(400, 400), True)
    # x runs to 320 and y to 240: the displayed width and height, not the stored ones.
    assert blocker.args == [str(rotated), (200, 10, 320, 240)]


def test_find_similar_button(
    qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str]
) -> None:
    viewer = shown(qtbot, open_viewer, photos)
    qtbot.keyClick(viewer, Qt.Key.Key_End)
    assert viewer.index == 2
    with qtbot.waitSignal(viewer.find_similar_requested, timeout=1000) as blocker:
        viewer.find_similar_action.trigger()
    assert blocker.args == [photos[2]]


def test_unreadable_photo_says_why(
    qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    viewer = show(qtbot, open_viewer, [str(broken), *photos])
    with qtbot.waitSignal(viewer.image_failed, timeout=20000) as blocker:
        pass
    assert blocker.args[0] == str(broken)
    assert "Cannot show broken.jpg" in viewer.canvas.message
    assert viewer.canvas.image is None and not viewer.region_action.isEnabled()
    with qtbot.waitSignal(viewer.image_shown, timeout=20000):
        qtbot.keyClick(viewer, Qt.Key.Key_Right)  # the viewer carries on


def test_map_to_image_round_trips(
    qtbot: QtBot, open_viewer: list[ImageViewer], photos: list[str]
) -> None:
    viewer = shown(qtbot, open_viewer, photos)
    canvas = viewer.canvas
    for fit in (True, False):
        canvas.set_fit(fit)
        point = QPointF(123.0, 77.0)
        back = canvas.map_from_image(canvas.map_to_image(point))
        assert (back.x(), back.y()) == pytest.approx((point.x(), point.y()))


def test_deleting_the_viewer_while_decoding_is_safe(qtbot: QtBot, photos: list[str]) -> None:
    viewer = ImageViewer(photos, 1)
    viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    viewer.show()
    assert viewer.is_loading
    with qtbot.waitSignal(viewer.destroyed, timeout=20000):
        viewer.close()  # the pool, a child of the viewer, waits for its decodes
    deliver_posted_events()  # any queued results arrive at nothing, harmlessly
