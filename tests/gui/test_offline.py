"""Offline folders in the main window: shown greyed with their count and why, still
browsable; Relocate… and "This is the same drive" re-point them; offline search
results are marked."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette, QPixmap
from PySide6.QtWidgets import QFileDialog, QListWidgetItem, QMessageBox
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import SearchHit, Status
from dino_desktop.gui.main_window import MainWindow
from dino_desktop.gui.models import PhotoRole
from dino_desktop.gui.offline import short_path
from dino_desktop.gui.views.search import OFFLINE_BADGE, faded
from dino_desktop.gui.workers import JobWorker

WAIT_MS = 30000


@pytest.fixture
def old(tmp_path: Path) -> Path:
    folder = tmp_path / "Photos"
    folder.mkdir()
    for i in range(3):
        imagegen.save_jpeg(folder / f"{i:03}.jpg", seed=i, size=(160, 120))
    return folder


@pytest.fixture
def moved(tmp_path: Path) -> Path:
    return tmp_path / "Photos (moved)"


@pytest.fixture
def lib(tmp_path: Path, old: Path, moved: Path) -> Iterator[Library]:
    """A library whose one folder was renamed away after its scan: offline now."""
    library = Library(tmp_path / "lib")
    drive(library.scan([str(old)]))
    old.rename(moved)
    yield library
    library.close()


def _window(qtbot: QtBot, lib: Library) -> MainWindow:
    win = MainWindow(lib, prompt_for_weights=False)  # the start-up scan keeps the folder
    qtbot.addWidget(win)
    win.show()
    _settled(qtbot, win)
    return win


def _settled(qtbot: QtBot, win: MainWindow) -> None:
    qtbot.waitUntil(
        lambda: not JobWorker.live and win.worker is None and win.status_worker is None,
        timeout=WAIT_MS,
    )


@pytest.fixture
def window(qtbot: QtBot, lib: Library) -> Iterator[MainWindow]:
    win = _window(qtbot, lib)
    yield win
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    win.close()


def _folder_item(win: MainWindow) -> QListWidgetItem:
    assert win.folder_list.count() == 2  # "All photos" and the folder
    item = win.folder_list.item(1)
    assert item is not None
    return item


def _choose_folder(qtbot: QtBot, win: MainWindow) -> None:
    win.folder_list.setCurrentItem(_folder_item(win))
    qtbot.waitUntil(lambda: not win.photos_view.is_loading(), timeout=WAIT_MS)


def test_an_offline_folder_is_greyed_with_its_count_and_why(
    qtbot: QtBot, window: MainWindow, old: Path
) -> None:
    item = _folder_item(window)
    assert item.text() == "Photos\n3 photos · offline"
    assert f"Offline: folder not available: {old}" in item.toolTip()
    assert "Relocate…" in item.toolTip()
    grey = window.folder_list.palette().color(QPalette.ColorRole.PlaceholderText)
    assert item.foreground().color() == grey
    assert item.foreground().color() != window.folder_list.palette().color(QPalette.ColorRole.Text)
    assert item.font().italic()
    assert item.flags() & Qt.ItemFlag.ItemIsEnabled and item.flags() & Qt.ItemFlag.ItemIsSelectable
    # Its photos stay browsable.
    _choose_folder(qtbot, window)
    qtbot.waitUntil(lambda: len(window.photos_view.photos()) == 3, timeout=WAIT_MS)
    assert window.statusBar().currentMessage().startswith("Photos is offline — folder not")
    assert window.relocation.relocate_button.isVisibleTo(window)
    assert not window.relocation.same_drive_button.isVisibleTo(window)
    # The thumbnails the scan cached still show while the drive is away; no
    # dialog comes up.
    model = window.photos_view.model
    for row in range(3):
        model.data(model.index(row), Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(
        lambda: all(window.loader.pixmap(p) is not None for p in window.photos_view.photos()),
        timeout=WAIT_MS,
    )
    assert not any(window.loader.has_failed(p) for p in window.photos_view.photos())
    assert not [w for w in window.findChildren(QMessageBox) if w.isVisible()]


def test_relocate_re_points_the_folder(
    qtbot: QtBot,
    window: MainWindow,
    lib: Library,
    moved: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []
    relocate = Library.relocate

    def recorded(self: Library, *args: Any) -> Any:
        threads.append(threading.current_thread())
        return relocate(self, *args)

    monkeypatch.setattr(Library, "relocate", recorded)
    asked: list[str] = []

    def choose(_parent: Any, caption: str, _start: str = "") -> str:
        asked.append(caption)
        return str(moved)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", choose)
    _choose_folder(qtbot, window)
    window.relocation.relocate_button.click()
    assert asked == ["Where is Photos now?"]
    _settled(qtbot, window)
    assert threads and threading.main_thread() not in threads
    (folder,) = lib.folders()
    assert folder.path == str(moved) and folder.offline is None and folder.images == 3
    item = _folder_item(window)
    assert item.text() == "Photos (moved)\n3 photos"
    assert "Offline" not in item.toolTip() and not item.font().italic()
    assert not window.relocation.relocate_button.isVisibleTo(window)
    qtbot.waitUntil(
        lambda: (
            all(p.path.startswith(str(moved)) for p in window.photos_view.photos())
            and len(window.photos_view.photos()) == 3
        ),
        timeout=WAIT_MS,
    )
    assert window.statusBar().currentMessage() == (
        f"Photos is now at {moved}: 3 photos followed it"
    )


def test_a_refused_relocation_is_explained(
    qtbot: QtBot,
    window: MainWindow,
    lib: Library,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "unrelated"
    elsewhere.mkdir()
    imagegen.save_jpeg(elsewhere / "other.jpg", seed=9, size=(64, 48))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_a: str(elsewhere))
    warnings: list[tuple[str, str]] = []
    monkeypatch.setattr(
        QMessageBox, "warning", lambda _parent, title, text, *_a: warnings.append((title, text))
    )
    _choose_folder(qtbot, window)
    folder = window.current_folder()
    assert folder is not None
    worker = window.relocation.choose(folder)
    assert worker is not None
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=WAIT_MS)
    ((title, text),) = warnings
    assert title == "Cannot relocate the folder" and "does not look like" in text
    assert lib.folders()[0].offline is not None  # nothing changed
    assert window.relocation.relocate_button.isEnabled()


def test_the_same_drive_at_another_place_is_one_click(
    qtbot: QtBot, lib: Library, old: Path, moved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The drive's identity is the core's business: here the library simply says that
    # the folder's drive is mounted elsewhere now.
    status = Library.status

    def same_drive(self: Library) -> Status:
        found = status(self)
        folders = [
            dataclasses.replace(f, same_drive_at=str(moved)) if f.path == str(old) else f
            for f in found.folders
        ]
        return dataclasses.replace(found, folders=folders)

    monkeypatch.setattr(Library, "status", same_drive)
    win = _window(qtbot, lib)
    item = _folder_item(win)
    assert f"mounted at another place now: {moved}" in item.toolTip()
    _choose_folder(qtbot, win)
    button = win.relocation.same_drive_button
    assert button.isVisibleTo(win)
    assert button.text() == f"Same drive, now at {short_path(str(moved))}"
    assert str(moved) in button.toolTip()
    button.click()
    _settled(qtbot, win)
    (folder,) = lib.folders()
    assert folder.path == str(moved) and folder.offline is None
    assert not button.isVisibleTo(win)
    assert _folder_item(win).text() == "Photos (moved)\n3 photos"
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    win.close()


def test_offline_search_results_are_marked(
    qtbot: QtBot, window: MainWindow, lib: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = lib.photos()
    offline = rows[0].id

    def search(self: Library, image: Any, top: int = 10) -> list[SearchHit]:
        return [
            SearchHit(r.path, 0.9 - i / 10, r.id, offline=r.id == offline)
            for i, r in enumerate(rows)
        ]

    monkeypatch.setattr(Library, "search", search)
    monkeypatch.setattr(MainWindow, "weights_installed", lambda _self: True)
    worker = window.search_file(rows[1].path)
    assert worker is not None
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=WAIT_MS)
    view = window.similar_view
    model = view.model
    assert [r.id for r in view.results()] == [r.id for r in rows]
    first, second = model.index(0), model.index(1)
    assert model.is_offline(offline) and not model.is_offline(rows[1].id)
    assert OFFLINE_BADGE in model.data(first, PhotoRole).badge
    assert OFFLINE_BADGE not in model.data(second, PhotoRole).badge
    assert "Offline" in model.data(first, Qt.ItemDataRole.ToolTipRole)
    assert "Offline" not in model.data(second, Qt.ItemDataRole.ToolTipRole)


def test_faded_keeps_size_and_lowers_opacity(qtbot: QtBot) -> None:
    source = QPixmap(20, 10)
    source.fill(QColor(200, 30, 30))
    out = faded(source, 0.4)
    assert out.size() == source.size()
    pixel = out.toImage().pixelColor(5, 5)
    assert 90 <= pixel.alpha() <= 115
