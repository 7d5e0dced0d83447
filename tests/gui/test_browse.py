"""The browse page: photo model, background thumbnails, the grid and its toolbar."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import imagegen
import pytest
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QContextMenuEvent, QImage, QPixmap
from PySide6.QtTest import QAbstractItemModelTester
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import PhotoRow
from dino_desktop.gui import thumbnails as gui_thumbnails
from dino_desktop.gui.grid import PhotoGrid
from dino_desktop.gui.models import PhotoListModel, PhotoRole, ScoreRole, plan_update
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.browse import REFRESH_GAP_S, PhotosView

NAMES = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
START = datetime(2020, 5, 1, 12, 0)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Six JPEGs whose dates run opposite to their names: sorting by either tells them apart."""
    folder = tmp_path / "photos"
    for i, name in enumerate(NAMES):
        imagegen.save_jpeg(
            folder / f"{name}.jpg",
            seed=i,
            size=(320, 240),
            taken_at=START - timedelta(days=i),
        )
    return folder


@pytest.fixture
def lib(tmp_path: Path, photo_dir: Path) -> Iterator[Library]:
    library = Library(tmp_path / "lib")
    drive(library.scan([photo_dir], embed=False))
    yield library
    library.close()


@pytest.fixture
def loader(lib: Library) -> Iterator[ThumbnailLoader]:
    thumbs = ThumbnailLoader(lib.paths.cache_dir)
    yield thumbs
    # No decode thread may outlive the test.
    assert thumbs.shutdown()
    assert thumbs._pool.activeThreadCount() == 0


@pytest.fixture
def view(qtbot: QtBot, lib: Library, loader: ThumbnailLoader) -> Iterator[PhotosView]:
    page = PhotosView(lib, loader)
    qtbot.addWidget(page)
    page.resize(900, 600)
    page.show()
    with qtbot.waitSignal(page.rows_loaded, timeout=10000):
        page.reload()
    yield page
    assert page.shutdown()


def fake_rows(n: int, start: int = 1) -> list[PhotoRow]:
    return [
        PhotoRow(i, f"/nowhere/{i:06}.jpg", 1, None, 64, 48, 1000, 1, None)
        for i in range(start, start + n)
    ]


def assert_no_tester_failures(qtlog: object) -> None:
    failures = [r.message for r in qtlog.records if "FAIL" in r.message]  # type: ignore[attr-defined]
    assert not failures


# ---- the model ----------------------------------------------------------------------


def test_model_passes_qt_model_tester(
    qtbot: QtBot, qtlog: object, lib: Library, loader: ThumbnailLoader
) -> None:
    model = PhotoListModel(loader)
    tester = QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Warning)
    photos = lib.photos(sort="name")
    model.set_rows(photos[:3])
    model.append_rows(photos[3:])
    assert model.rowCount() == 6
    # An in-place update: two removed, one added, in the middle and at the ends.
    new = [photos[0], *fake_rows(1, start=1000), *photos[2:5]]
    model.apply_update(plan_update(model.rows(), new, model.version))
    assert [p.id for p in model.rows()] == [p.id for p in new]
    model.set_rows(photos, scores=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    model.append_rows(fake_rows(2, start=2000), scores=[0.3, 0.2])
    model.set_thumbnail_size(120)
    model.set_rows([])
    del tester
    assert_no_tester_failures(qtlog)


def test_model_roles(qtbot: QtBot, lib: Library, loader: ThumbnailLoader) -> None:
    model = PhotoListModel(loader)
    photos = lib.photos(sort="name")
    model.set_rows(photos)
    index = model.index(1)
    assert index.data(Qt.ItemDataRole.DisplayRole) == "bravo.jpg"
    assert index.data(Qt.ItemDataRole.ToolTipRole) == photos[1].path
    assert index.data(PhotoRole) == photos[1]
    assert index.data(ScoreRole) is None
    assert model.row_of(photos[4].id) == 4 and model.row_of(-5) is None
    assert model.photo_at(index) == photos[1] and model.photo_at(99) is None
    model.set_rows(photos[:2], scores=[0.9341, 0.5])
    assert model.index(0).data(Qt.ItemDataRole.DisplayRole) == "alpha.jpg\n0.934"
    assert model.index(0).data(ScoreRole) == pytest.approx(0.9341)
    with pytest.raises(ValueError):
        model.set_rows(photos, scores=[1.0])
    with pytest.raises(ValueError):
        model.append_rows(photos[2:3])  # a list with scores needs scores


@pytest.mark.skipif(os.name == "nt", reason="file names are UTF-16 on Windows")
def test_a_name_that_is_not_utf8_is_shown_and_kept_exact(
    qtbot: QtBot, tmp_path: Path, loader: ThumbnailLoader
) -> None:
    """The grid and the details show U+FFFD for the bad bytes (Qt would drop them);
    the photo behind the row keeps the exact path, so actions reach the right file."""
    from dino_desktop.gui.details import DetailsPanel

    folder = tmp_path / "odd"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"caf\xe9 \xff.jpg")
    imagegen.save_jpeg(os.fsdecode(raw), seed=3, size=(64, 48))
    library = Library(tmp_path / "odd-lib")
    try:
        drive(library.scan([folder], embed=False))
        (photo,) = library.photos()
        assert os.fsencode(photo.path) == raw
        model = PhotoListModel(loader)
        model.set_rows([photo])
        index = model.index(0)
        assert index.data(Qt.ItemDataRole.DisplayRole) == "caf\ufffd \ufffd.jpg"
        assert "\ufffd" in index.data(Qt.ItemDataRole.ToolTipRole)
        assert os.fsencode(index.data(PhotoRole).path) == raw
        panel = DetailsPanel()
        qtbot.addWidget(panel)
        panel.show_photos([photo], None)
        assert panel.title.text() == "caf\ufffd \ufffd.jpg"
    finally:
        library.close()


def test_plan_update_inserts_removes_or_resets() -> None:
    old = fake_rows(10)
    grown = [*fake_rows(2, start=100), *old[:5], *fake_rows(3, start=200), *old[5:]]
    plan = plan_update(old, grown)
    assert not plan.reset and plan.removed == []
    assert [(first, len(rows)) for first, rows in plan.inserted] == [(0, 2), (7, 3)]
    shrunk = old[:3] + old[6:]
    plan = plan_update(old, shrunk)
    assert not plan.reset and plan.removed == [(3, 5)] and plan.inserted == []
    changed = [*old[:4], PhotoRow(5, "/nowhere/x.jpg", 1, None, 1, 1, 2, 3, None), *old[5:]]
    plan = plan_update(old, changed)
    assert not plan.reset and plan.changed == [(4, 4)]
    assert plan_update(old, old[::-1]).reset  # another order


def test_thumbnails_load_off_the_gui_thread(
    qtbot: QtBot, lib: Library, loader: ThumbnailLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = gui_thumbnails.thumbnail_file

    def spy(*args: object, **kwargs: object) -> Path:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gui_thumbnails, "thumbnail_file", spy)
    model = PhotoListModel(loader, thumbnail_size=128)
    model.set_rows(lib.photos(sort="name"))
    photo = model.photo_at(2)
    assert photo is not None
    with (
        qtbot.waitSignal(loader.thumbnail_loaded, timeout=10000) as loaded,
        qtbot.waitSignal(model.dataChanged, timeout=10000) as changed,
    ):
        # Only asked for now that a view would paint the row: the placeholder first.
        first = model.index(2).data(Qt.ItemDataRole.DecorationRole)
        assert first.cacheKey() == model.placeholder().cacheKey()
    image_id, image = loaded.args
    assert image_id == photo.id and isinstance(image, QImage) and image.width() == 256
    assert changed.args[0].row() == 2 and changed.args[1].row() == 2
    assert threads and threading.get_ident() not in threads
    shown = model.index(2).data(Qt.ItemDataRole.DecorationRole)
    assert isinstance(shown, QPixmap)
    assert shown.cacheKey() != model.placeholder().cacheKey()
    assert (shown.width(), shown.height()) == (128, 96)
    pixmap = loader.pixmap(photo)
    assert pixmap is not None and pixmap.width() == 256


def test_zoom_rescales_from_memory(
    qtbot: QtBot, lib: Library, loader: ThumbnailLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = PhotoListModel(loader, thumbnail_size=160)
    model.set_rows(lib.photos(sort="name"))
    with qtbot.waitSignal(loader.thumbnail_loaded, timeout=10000):
        model.index(0).data(Qt.ItemDataRole.DecorationRole)

    def no_disk(*args: object, **kwargs: object) -> Path:
        raise AssertionError("zooming must not read thumbnails again")

    monkeypatch.setattr(gui_thumbnails, "thumbnail_file", no_disk)
    with qtbot.waitSignal(model.dataChanged, timeout=1000):
        model.set_thumbnail_size(96)
    small = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert (small.width(), small.height()) == (96, 72)
    assert loader.pending_count() == 0


def test_requests_are_deduplicated_and_newest_first(
    qtbot: QtBot, tmp_path: Path, lib: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    started = threading.Event()
    order: list[str] = []
    real = gui_thumbnails.thumbnail_file

    def slow(cache_dir: Path, path: str, *args: object, **kwargs: object) -> Path:
        order.append(Path(path).stem)
        started.set()
        gate.wait(10)
        return real(cache_dir, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gui_thumbnails, "thumbnail_file", slow)
    loader = ThumbnailLoader(lib.paths.cache_dir, threads=1, queue_limit=3)
    try:
        photos = lib.photos(sort="name")
        loader.request(photos[0])
        assert started.wait(10)  # the only thread is busy with alpha
        for photo in photos[1:]:
            loader.request(photo)
        loader.request(photos[0])  # in flight: not queued again
        loader.request(photos[4])  # queued: moves to the top
        # Cap 3: bravo and charlie scrolled away long ago and were dropped.
        assert loader.pending_count() == 4
        loaded: list[int] = []
        loader.thumbnail_loaded.connect(lambda image_id, _img: loaded.append(image_id))
        gate.set()
        qtbot.waitUntil(lambda: len(loaded) == 4, timeout=10000)
        assert order == ["alpha", "echo", "foxtrot", "delta"]
        loader.request(photos[4])  # cached now: nothing to do
        assert loader.pending_count() == 0 and order[-1] == "delta"
    finally:
        gate.set()
        assert loader.shutdown()


def test_unreadable_photo_fails_once_and_shows_a_broken_tile(
    qtbot: QtBot, tmp_path: Path, loader: ThumbnailLoader
) -> None:
    bad = imagegen.bad_files(tmp_path / "bad")["truncated.jpg"]
    st = bad.stat()
    photo = PhotoRow(77, str(bad), 1, None, 320, 240, st.st_size, st.st_mtime_ns, None)
    model = PhotoListModel(loader)
    model.set_rows([photo])
    with qtbot.waitSignal(loader.thumbnail_failed, timeout=10000) as failed:
        model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert failed.args == [77]
    assert loader.has_failed(photo)
    tile = model.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert tile.cacheKey() != model.placeholder().cacheKey()
    assert loader.pending_count() == 0  # not retried at every paint


def right_click(grid: PhotoGrid, pos: QPoint) -> QContextMenuEvent:
    reason = QContextMenuEvent.Reason.Mouse
    return QContextMenuEvent(reason, pos, grid.viewport().mapToGlobal(pos))


# ---- the view -----------------------------------------------------------------------


def names(view: PhotosView) -> list[str]:
    return [Path(p.path).stem for p in view.photos()]


def test_view_shows_the_library_with_thumbnails(
    qtbot: QtBot, view: PhotosView, loader: ThumbnailLoader
) -> None:
    assert view.model.rowCount() == 6
    assert view.count_label.text() == "6 photos"
    grid = view.grid
    assert list(grid.visible_rows()) == list(range(6))

    def all_loaded() -> bool:
        return all(loader.pixmap(p) is not None for p in view.photos())

    qtbot.waitUntil(all_loaded, timeout=10000)


def test_sort_changes_the_order(qtbot: QtBot, view: PhotosView) -> None:
    # Dates run opposite to names: oldest first is foxtrot.
    assert view.sort() == "date"
    assert names(view) == NAMES[::-1]
    with qtbot.waitSignal(view.rows_loaded, timeout=10000):
        view.set_sort("name")
    assert names(view) == NAMES
    with qtbot.waitSignal(view.rows_loaded, timeout=10000):
        view.sort_combo.setCurrentIndex(0)  # the user picks "Date taken"
    assert names(view) == NAMES[::-1]


def test_zoom_changes_the_grid(view: PhotosView) -> None:
    grid = view.grid
    before = grid.grid_size()
    view.set_zoom(240)
    assert view.zoom_slider.value() == 240 and grid.thumbnail_size() == 240
    assert view.model.thumbnail_size == 240
    after = grid.grid_size()
    assert after.width() == before.width() + 80 and after.height() == before.height() + 80
    view.zoom_slider.setValue(96)
    assert grid.grid_size().width() == before.width() - 64
    assert grid.columns() > 1


def test_selection_is_reported_and_kept_across_a_sort(qtbot: QtBot, view: PhotosView) -> None:
    with qtbot.waitSignal(view.selection_changed, timeout=2000) as changed:
        view.grid.select_rows([0, 2, 3])
    chosen = changed.args[0]
    assert [Path(p.path).stem for p in chosen] == ["foxtrot", "delta", "charlie"]
    assert view.count_label.text() == "6 photos · 3 selected"
    with qtbot.waitSignal(view.rows_loaded, timeout=10000):
        view.set_sort("name")
    assert sorted(p.id for p in view.selected_photos()) == sorted(p.id for p in chosen)


def test_activation_and_context_menu(qtbot: QtBot, view: PhotosView) -> None:
    grid = view.grid
    center = grid.visualRect(view.model.index(1)).center()
    with qtbot.waitSignal(view.photo_activated, timeout=2000) as activated:
        # A real double-click starts with a click; QTest's sends the second half only.
        qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=center)
        qtbot.mouseDClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=center)
    assert activated.args[0] == view.photos()[1]
    grid.setFocus()
    grid.setCurrentIndex(view.model.index(4))
    with qtbot.waitSignal(view.photo_activated, timeout=2000) as activated:
        qtbot.keyClick(grid, Qt.Key.Key_Return)
    assert activated.args[0] == view.photos()[4]

    seen: list[tuple[list[PhotoRow], QPoint]] = []
    view.context_menu_requested.connect(lambda photos, pos: seen.append((photos, pos)))
    grid.select_rows([0, 1])
    target = grid.visualRect(view.model.index(1)).center()
    # Right-click on a selected photo: the menu is for the whole selection.
    grid.contextMenuEvent(right_click(grid, target))
    assert [p.id for p in seen[-1][0]] == [p.id for p in view.photos()[:2]]
    # On an unselected photo: that photo alone.
    target = grid.visualRect(view.model.index(5)).center()
    grid.contextMenuEvent(right_click(grid, target))
    assert seen[-1][0] == [view.photos()[5]]


def test_keyboard_moves_by_lines_and_shift_selects_a_range(qtbot: QtBot, view: PhotosView) -> None:
    grid = view.grid
    view.resize(420, 600)  # two or three columns
    qtbot.waitUntil(lambda: grid.columns() < 6)
    columns = grid.columns()
    grid.setFocus()
    grid.setCurrentIndex(view.model.index(0))
    qtbot.keyClick(grid, Qt.Key.Key_Down)
    assert grid.currentIndex().row() == columns
    qtbot.keyClick(grid, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    # Shift selects in reading order, from the anchor to the new current photo.
    assert [p.id for p in grid.selected_photos()] == [
        p.id for p in view.photos()[columns : columns + 2]
    ]
    qtbot.keyClick(grid, Qt.Key.Key_End)
    assert grid.currentIndex().row() == 5


def test_refresh_during_a_scan_inserts_in_place(
    qtbot: QtBot, view: PhotosView, lib: Library, photo_dir: Path
) -> None:
    resets: list[int] = []
    inserted: list[tuple[int, int]] = []
    view.model.modelReset.connect(lambda: resets.append(1))
    view.model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
    view.grid.select_rows([1])
    selected = view.selected_photos()
    for i in range(3):  # new photos without a date: they sort after the dated ones
        imagegen.save_jpeg(photo_dir / f"new{i}.jpg", seed=10 + i, size=(160, 120))
    drive(lib.scan(embed=False))
    with qtbot.waitSignal(view.rows_loaded, timeout=10000):
        view.refresh()
    assert view.model.rowCount() == 9 and not resets and inserted == [(6, 8)]
    assert view.selected_photos() == selected
    assert view.count_label.text().startswith("9 photos")


def test_grid_keeps_the_top_photo_in_view_when_rows_arrive(
    qtbot: QtBot, loader: ThumbnailLoader
) -> None:
    model = PhotoListModel(loader, thumbnail_size=96)
    rows = fake_rows(3000, start=10_000)
    model.set_rows(rows)
    grid = PhotoGrid()
    qtbot.addWidget(grid)
    grid.setModel(model)
    grid.resize(700, 500)
    grid.show()
    qtbot.waitExposed(grid)
    grid.scrollTo(model.index(1500), PhotoGrid.ScrollHint.PositionAtTop)
    top = grid.visible_rows().start
    top_id = rows[top].id
    y = grid.visualRect(model.index(top)).top()
    # 25 photos arrive before it, 80 after it, and 10 before it disappear.
    new = [*fake_rows(25, start=1), *rows[10:], *fake_rows(40, start=50_000)]
    new = new[: top + 16] + fake_rows(40, start=60_000) + new[top + 16 :]
    model.apply_update(plan_update(model.rows(), new, model.version))
    row = model.row_of(top_id)
    assert row is not None and row == top + 15
    assert grid.visualRect(model.index(row)).top() == y
    assert grid.visible_rows().start == row
    # A zoom keeps it too.
    grid.set_thumbnail_size(200)
    assert row in grid.visible_rows()
    assert grid.visualRect(model.index(row)).top() <= grid.grid_size().height()
    loader.cancel_pending()


def test_paint_requests_only_visible_rows(qtbot: QtBot, loader: ThumbnailLoader) -> None:
    model = PhotoListModel(loader, thumbnail_size=96)
    model.set_rows(fake_rows(100_000))
    asked: list[int] = []
    real = loader.request

    def spy(photo: PhotoRow) -> None:
        asked.append(photo.id)
        real(photo)

    loader.request = spy  # type: ignore[method-assign]
    grid = PhotoGrid()
    qtbot.addWidget(grid)
    grid.setModel(model)
    grid.resize(800, 600)
    grid.show()
    qtbot.waitExposed(grid)
    qtbot.waitUntil(lambda: bool(asked), timeout=2000)
    visible = set(grid.visible_rows())
    assert 0 < len(set(asked)) <= len(visible) < 200
    assert {model.row_of(i) for i in asked} <= visible
    loader.cancel_pending()
    assert model.index(QModelIndex().row()).isValid() is False


def test_refreshes_are_merged_and_paced(
    qtbot: QtBot, view: PhotosView, lib: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[float] = []
    real = lib.photos

    def counting(**kwargs: object) -> list[PhotoRow]:
        reads.append(time.monotonic())
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lib, "photos", counting)
    loaded: list[int] = []
    view.rows_loaded.connect(loaded.append)
    for _ in range(20):  # e.g. one per scan progress signal
        view.refresh()
    # Settled: no read running and none waiting on the throttle timer, so no
    # further read can start.
    qtbot.waitUntil(lambda: not view.is_loading() and len(loaded) >= 1, timeout=10000)
    assert 1 <= len(reads) <= 2
    if len(reads) == 2:
        assert reads[1] - reads[0] >= REFRESH_GAP_S * 0.9
    # A new sort is the user's doing: read at once.
    with qtbot.waitSignal(view.rows_loaded, timeout=10000):
        view.set_sort("name")


def test_refreshes_do_not_keep_old_lists_alive(qtbot: QtBot, view: PhotosView) -> None:
    # Counted against a baseline: rows that earlier tests left behind are not ours.
    gc.collect()
    before = sum(isinstance(o, PhotoRow) for o in gc.get_objects())
    for _ in range(4):
        with qtbot.waitSignal(view.rows_loaded, timeout=10000):
            view.reload()
    gc.collect()
    alive = sum(isinstance(o, PhotoRow) for o in gc.get_objects()) - before
    # The grid's own rows, and nothing of the four earlier reads.
    assert alive <= 2 * view.model.rowCount()


def test_rubber_band_selects_the_cells_it_touches(qtbot: QtBot, view: PhotosView) -> None:
    grid = view.grid
    columns = grid.columns()
    assert columns >= 3
    first = grid.visualRect(view.model.index(0))
    second = grid.visualRect(view.model.index(1))
    start = QPoint(first.left() - 4, first.top() - 4)  # on empty space
    end = second.center()
    qtbot.mousePress(grid.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(grid.viewport(), pos=QPoint(start.x() + 20, start.y() + 20))
    qtbot.mouseMove(grid.viewport(), pos=end)
    qtbot.mouseRelease(grid.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert [p.id for p in grid.selected_photos()] == [p.id for p in view.photos()[:2]]


def test_small_zoom_on_a_big_screen_keeps_a_screenful(
    qtbot: QtBot, loader: ThumbnailLoader
) -> None:
    model = PhotoListModel(loader)
    model.set_rows(fake_rows(5000))
    grid = PhotoGrid()
    qtbot.addWidget(grid)
    grid.setModel(model)
    grid.set_thumbnail_size(96)
    grid.resize(3800, 2100)
    grid.show()
    qtbot.waitExposed(grid)
    visible = len(grid.visible_rows())
    assert visible > 300
    # Else the first paint would drop its own first requests, and evict what it loaded.
    assert loader.cache_size >= visible and loader._queue.limit >= visible
    loader.cancel_pending()


def test_empty_library_says_what_to_do(qtbot: QtBot, tmp_path: Path) -> None:
    empty = Library(tmp_path / "empty")
    thumbs = ThumbnailLoader(empty.paths.cache_dir)
    page = PhotosView(empty, thumbs)
    qtbot.addWidget(page)
    page.show()
    try:
        with qtbot.waitSignal(page.rows_loaded, timeout=10000) as loaded:
            page.reload()
        assert loaded.args == [0] and page.count_label.text() == "0 photos"
        assert "Add a folder" in page.grid._empty_text
    finally:
        page.shutdown()
        thumbs.shutdown()
        empty.close()
