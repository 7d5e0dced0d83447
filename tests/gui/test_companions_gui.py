"""Companion files in the GUI: the grid's badges, the details panel's list, the
questions that name what moves together, the status bar's count of loose files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import pytest
from PySide6.QtCore import QRect, QRectF
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QMessageBox, QStyleOptionViewItem
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import OpResult, PhotoRow
from dino_desktop.gui.common import also_moves, companions_note, file_names
from dino_desktop.gui.grid import PhotoDelegate, PhotoGrid
from dino_desktop.gui.main_window import MainWindow
from dino_desktop.gui.models import PhotoListModel
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.duplicates import DuplicatesView
from dino_desktop.gui.views.export_preview import ExportPreviewDialog
from dino_desktop.gui.views.jobstrip import export_message
from dino_desktop.gui.workers import JobWorker, alive


class Files:
    """A folder with a RAW+JPEG pair (and the RAW's sidecar), a plain photo, a video
    of no photo and a sidecar of no photo."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True)
        self.root = root
        self.jpeg = imagegen.save_jpeg(root / "IMG_0001.JPG", seed=1, size=(160, 120))
        # A companion RAW is never decoded: random bytes do.
        self.raw = root / "IMG_0001.CR3"
        self.raw.write_bytes(os.urandom(6000))
        self.xmp = root / "IMG_0001.CR3.xmp"
        self.xmp.write_text("<x:xmpmeta/>")
        self.plain = imagegen.save_jpeg(root / "IMG_0002.JPG", seed=2, size=(160, 120))
        self.video = root / "clip.MOV"
        self.video.write_bytes(os.urandom(3000))
        self.orphan = root / "lonely.xmp"
        self.orphan.write_text("<x:xmpmeta/>")


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path / "photos")


@pytest.fixture
def lib(tmp_path: Path, files: Files) -> Iterator[Library]:
    library = Library(tmp_path / "lib")
    drive(library.scan([files.root], embed=False))
    yield library
    library.close()


@pytest.fixture
def window(qtbot: QtBot, lib: Library) -> Iterator[MainWindow]:
    win = MainWindow(lib, scan_on_start=False, prompt_for_weights=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.status_worker is None, timeout=60000)
    qtbot.waitUntil(lambda: len(win.photos_view.photos()) == 2, timeout=10000)
    yield win
    # pytest-qt may have closed and deleted the window already (it closes widgets
    # before fixtures end): a deleted window has nothing left to close.
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    if alive(win):
        win.close()


def _delivered(qtbot: QtBot, worker: JobWorker | None) -> None:
    assert worker is not None
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=60000)


def _row_of(win: MainWindow, path: Path) -> int:
    return next(i for i, p in enumerate(win.photos_view.photos()) if p.path == str(path))


def _answer(asked: list[str], reply: QMessageBox.StandardButton) -> Any:
    def question(_parent: Any, _title: str, text: str, *_args: Any) -> Any:
        asked.append(text)
        return reply

    return question


# ---- wording -----------------------------------------------------------------


def test_the_wording_names_files_and_caps_long_lists() -> None:
    assert also_moves([]) == ""
    assert also_moves(["/p/IMG_0001.MOV", "/p/IMG_0001.CR3.xmp"]) == (
        "Also moves IMG_0001.MOV, IMG_0001.CR3.xmp"
    )
    many = [f"/p/IMG_{i}.xmp" for i in range(10)]
    assert file_names(many) == "IMG_0.xmp, IMG_1.xmp, IMG_2.xmp, IMG_3.xmp and 6 more"
    assert companions_note(0) == ""
    assert companions_note(3) == " (and 3 companion files)"
    result = OpResult(1, ["/d/a.jpg"], [], [("/p/a.jpg", "/d/a.jpg")], companions=["/p/a.CR3"])
    assert export_message(result) == "Wrote 1 file (and 1 companion file) — Undo with Ctrl+Z"


# ---- the grid's badge ------------------------------------------------------------


def _paint_cell(grid: PhotoGrid, row: int) -> QImage:
    cell = grid.cell_size()
    image = QImage(cell, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    option = QStyleOptionViewItem()
    grid.initViewItemOption(option)
    option.rect = QRect(0, 0, cell.width(), cell.height())
    painter = QPainter(image)
    model = grid.model()
    grid.itemDelegate().paint(painter, option, model.index(row, 0))
    painter.end()
    return image


def test_the_grid_paints_a_badge_on_photos_with_companions(qtbot: QtBot, tmp_path: Path) -> None:
    loader = ThumbnailLoader(tmp_path / "cache")
    try:
        model = PhotoListModel(loader)
        # The same name in two folders: the cells differ by the badge alone.
        rows = [
            PhotoRow(1, "/nowhere/a/IMG.jpg", 1, None, 64, 48, 1000, 1, None, "RAW+JPEG"),
            PhotoRow(2, "/nowhere/b/IMG.jpg", 1, None, 64, 48, 1000, 1, None, ""),
        ]
        model.set_rows(rows)
        grid = PhotoGrid()
        qtbot.addWidget(grid)
        grid.setModel(model)
        with_badge, without = _paint_cell(grid, 0), _paint_cell(grid, 1)
        differ = [
            (x, y)
            for y in range(with_badge.height())
            for x in range(with_badge.width())
            if with_badge.pixel(x, y) != without.pixel(x, y)
        ]
        assert differ, "no badge was painted"
        # Everything that differs is the badge, on the thumbnail's bottom-left corner.
        side = grid.thumbnail_size()
        left = (grid.cell_size().width() - side) / 2
        square = QRectF(left, 8, side, side)
        delegate = grid.itemDelegate()
        assert isinstance(delegate, PhotoDelegate)
        badge = delegate.badge_rect(square, "RAW+JPEG", grid.font())
        assert badge.left() <= square.left() + 8 and badge.bottom() <= square.bottom()
        assert badge.width() > badge.height() > 0
        xs = [x for x, _ in differ]
        ys = [y for _, y in differ]
        assert min(xs) < square.center().x() and min(ys) > square.center().y()
        assert max(ys) <= square.bottom()
        # White text on a dark label: light and dark pixels both, on any thumbnail.
        shades = {QColor(with_badge.pixel(x, y)).lightness() for x, y in differ}
        assert min(shades) < 80 and max(shades) > 180
    finally:
        assert loader.shutdown()


# ---- the details panel -----------------------------------------------------------


def test_the_details_panel_lists_the_companions_of_a_raw_jpeg_pair(
    qtbot: QtBot, window: MainWindow, files: Files
) -> None:
    photos = window.photos_view.photos()
    pair = photos[_row_of(window, files.jpeg)]
    assert pair.badge == "RAW+JPEG"
    assert photos[_row_of(window, files.plain)].badge == ""
    details = window.details
    # Selected in the grid (the view coalesces selection changes, then the panel reads).
    window.photos_view.grid.select_rows([_row_of(window, files.jpeg)])
    qtbot.waitUntil(lambda: len(details.companions) == 2, timeout=60000)
    assert sorted(c.kind for c in details.companions) == ["raw", "sidecar"]
    text = details.fields["Goes with it"].text()
    assert "IMG_0001.CR3" in text and "RAW original" in text
    assert "IMG_0001.CR3.xmp" in text and "sidecar" in text
    assert details.form.isRowVisible(details.fields["Goes with it"])
    # A photo that is one file: no row at all.
    plain = photos[_row_of(window, files.plain)]
    details.show_photos([plain])
    _delivered(qtbot, details.companions_worker)
    assert details.companions == []
    assert not details.form.isRowVisible(details.fields["Goes with it"])


def test_a_newer_selection_replaces_an_older_read(
    qtbot: QtBot, window: MainWindow, files: Files
) -> None:
    photos = window.photos_view.photos()
    pair, plain = photos[_row_of(window, files.jpeg)], photos[_row_of(window, files.plain)]
    details = window.details
    details.show_photos([pair])
    older = details.companions_worker
    details.show_photos([plain])  # before the pair's read arrived: it is dropped
    assert older is not None and details.companions_worker is not older
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    assert details.companions == [] and details.companions_worker is None
    assert "IMG_0001" not in details.fields["Goes with it"].text()
    assert details.title.text() == "IMG_0002.JPG"


# ---- trash -------------------------------------------------------------------------


def test_the_trash_question_names_the_companions_and_they_go_too(
    qtbot: QtBot, window: MainWindow, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = window.photos_view.photos()[_row_of(window, files.jpeg)]
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", _answer(asked, QMessageBox.StandardButton.Cancel))
    _delivered(qtbot, window.trash([pair]))
    (text,) = asked
    assert "Move 1 photo and 2 companion files to the trash?" in text
    assert "Also moves IMG_0001.CR3, IMG_0001.CR3.xmp" in text
    assert str(files.root) not in text  # names, not paths
    assert window.file_worker is None
    assert files.jpeg.exists() and files.raw.exists() and files.xmp.exists()

    monkeypatch.setattr(QMessageBox, "question", _answer(asked, QMessageBox.StandardButton.Yes))
    _delivered(qtbot, window.trash([pair]))
    qtbot.waitUntil(lambda: window.file_worker is None, timeout=60000)
    assert not files.jpeg.exists() and not files.raw.exists() and not files.xmp.exists()
    message = window.statusBar().currentMessage()
    assert message.startswith("Moved 1 photo (and 2 companion files) to the trash")
    _delivered(qtbot, window.undo())
    assert files.jpeg.exists() and files.raw.exists() and files.xmp.exists()
    assert window.statusBar().currentMessage().startswith("Restored 1 photo (and 2 companion")
    _delivered(qtbot, window.worker)  # the restored files are indexed again
    qtbot.waitUntil(lambda: len(window.photos_view.photos()) == 2, timeout=10000)


def test_a_plain_photo_goes_to_the_trash_without_a_question(
    qtbot: QtBot, window: MainWindow, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", _answer(asked, QMessageBox.StandardButton.No))
    plain = window.photos_view.photos()[_row_of(window, files.plain)]
    _delivered(qtbot, window.trash([plain]))
    qtbot.waitUntil(lambda: window.file_worker is None, timeout=60000)
    assert asked == [] and not files.plain.exists()
    assert window.statusBar().currentMessage().startswith("Moved 1 photo to the trash")


# ---- status bar ------------------------------------------------------------------------


def test_the_status_bar_counts_the_loose_videos_and_sidecars(
    qtbot: QtBot, window: MainWindow, files: Files
) -> None:
    button = window.loose_button
    assert button.isVisibleTo(window)
    assert button.text() == "1 video not indexed · 1 sidecar without a photo"
    assert "2 indexed" in window.counts_label.text()
    _delivered(qtbot, window.show_loose_files())
    dialog = window.loose_dialog
    assert dialog is not None and dialog.isVisible()
    items = [dialog.tree.topLevelItem(i) for i in range(dialog.tree.topLevelItemCount())]
    listed = {item.text(0) for item in items if item is not None}
    assert listed == {str(files.video), str(files.orphan)}
    dialog.close()


def test_no_loose_files_no_button(qtbot: QtBot, tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    imagegen.save_jpeg(folder / "a.jpg", seed=1, size=(64, 48))
    library = Library(tmp_path / "lib")
    drive(library.scan([folder], embed=False))
    win = MainWindow(library, scan_on_start=False, prompt_for_weights=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.status_worker is None, timeout=60000)
    assert not win.loose_button.isVisibleTo(win)
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    win.close()
    library.close()


# ---- duplicates and export previews ------------------------------------------------------


def test_the_duplicates_question_names_the_marked_members_companions(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    first = imagegen.save_jpeg(one / "IMG_0001.JPG", seed=1, size=(160, 120))
    two.mkdir()
    shutil.copy(first, two / "IMG_0001.JPG")
    # Both copies have a RAW, so the keeper rule "more companions" picks neither.
    for folder in (one, two):
        (folder / "IMG_0001.CR3").write_bytes(os.urandom(4000))
    library = Library(tmp_path / "lib")
    drive(library.scan([one, two], embed=False))
    loader = ThumbnailLoader(library.paths.cache_dir)
    view = DuplicatesView(library, loader)
    qtbot.addWidget(view)
    view.show()
    try:
        _delivered(qtbot, view.find("exact"))
        assert view.mark_all_but_keeper() == 1
        (marked,) = view.marked_paths()
        asked: list[str] = []
        monkeypatch.setattr(
            QMessageBox, "question", _answer(asked, QMessageBox.StandardButton.Cancel)
        )
        assert view.trash_marked() is None
        assert "Also moves IMG_0001.CR3" in asked[-1]
        assert view.move_marked(str(tmp_path / "elsewhere")) is None
        assert "Also moves IMG_0001.CR3" in asked[-1] and len(asked) == 2
        monkeypatch.setattr(QMessageBox, "question", _answer(asked, QMessageBox.StandardButton.Yes))
        messages: list[str] = []
        view.status_message.connect(messages.append)
        with qtbot.waitSignal(view.files_changed, timeout=30000):
            worker = view.trash_marked()
        _delivered(qtbot, worker)
        assert messages[-1].startswith("Moved 1 photo (and 1 companion file) to the trash")
        assert not Path(marked).exists()
        assert not Path(marked).with_suffix(".CR3").exists()
    finally:
        qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
        assert loader.shutdown()
        library.close()


def test_the_export_preview_lists_the_companions_written(
    qtbot: QtBot, lib: Library, files: Files, tmp_path: Path
) -> None:
    dest = tmp_path / "out" / "Holidays"
    plan = lib.plan_with_companions(
        [(str(files.jpeg), str(dest / "IMG_0001.JPG")), (str(files.plain), str(dest / "b.JPG"))]
    )
    dialog = ExportPreviewDialog(plan, "copy")
    qtbot.addWidget(dialog)
    summary = dialog.summary.text()
    assert summary.startswith("2 files will be written (copy), and 2 companion files with them")
    assert "Also copies IMG_0001.CR3, IMG_0001.CR3.xmp" in summary
    assert dialog.table.rowCount() == 2
    names = dialog.table.item(0, 2)
    assert names is not None and names.text() == "IMG_0001.CR3, IMG_0001.CR3.xmp"
    assert dialog.table.item(1, 2) is None
