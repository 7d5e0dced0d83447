"""A shared library in the GUI: another desktop's trash shows here within seconds, and
File > Connect to a shared library… tests a URL and says what is wrong in one line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import pytest
from PySide6.QtCore import QSettings
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.gui.main_window import MainWindow
from dino_desktop.gui.shared import SETTING, ConnectDialog
from dino_desktop.gui.workers import JobWorker

WAIT_MS = 30000


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "nas"
    root.mkdir()
    for i in range(4):
        imagegen.save_jpeg(root / f"IMG_{i}.jpg", seed=i, size=(160, 120))
    return root


@pytest.fixture
def window(qtbot: QtBot, pg_url: str, photos: Path) -> Iterator[MainWindow]:
    library = Library(pg_url)
    # Not watching the folders: what this window learns, it learns from the server.
    library.settings.watch_folders = False
    drive(library.scan([photos]))
    win = MainWindow(library, scan_on_start=False, prompt_for_weights=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: len(win.photos_view.photos()) == 4, timeout=WAIT_MS)
    yield win
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    win.close()
    library.close()


def _names(win: MainWindow) -> set[str]:
    return {os.path.basename(p.path) for p in win.photos_view.photos()}


def test_a_photo_trashed_on_another_desktop_leaves_this_grid_by_itself(
    qtbot: QtBot, window: MainWindow, pg_url: str, photos: Path
) -> None:
    assert window.others._changes is not None
    qtbot.waitUntil(window.others._changes.listening.is_set, timeout=WAIT_MS)
    with Library(pg_url) as other_desk:
        other_desk.trash([photos / "IMG_1.jpg"])
    qtbot.waitUntil(lambda: "IMG_1.jpg" not in _names(window), timeout=10000)
    assert _names(window) == {"IMG_0.jpg", "IMG_2.jpg", "IMG_3.jpg"}
    assert window.others.heard >= 1
    qtbot.waitUntil(lambda: "3 indexed" in window.counts_label.text(), timeout=WAIT_MS)


def test_another_desktops_sort_label_rename_shows_here(
    qtbot: QtBot, window: MainWindow, pg_url: str
) -> None:
    assert window.others._changes is not None
    qtbot.waitUntil(window.others._changes.listening.is_set, timeout=WAIT_MS)
    with Library(pg_url) as other_desk:
        label = other_desk.add_sort_label("Cats")
    view = window.sorting_view
    qtbot.waitUntil(lambda: [lb.name for lb in view.labels()] == ["Cats"], timeout=10000)
    with Library(pg_url) as other_desk:
        other_desk.rename_sort_label(label.id, "Kittens", was="Cats")
    qtbot.waitUntil(lambda: [lb.name for lb in view.labels()] == ["Kittens"], timeout=10000)


def test_the_status_bar_says_who_embeds_the_pending_photos(
    qtbot: QtBot, window: MainWindow, pg_url: str
) -> None:
    """No weights here: the scan queued the photos for the workers; the status bar says
    whether one is running (its heartbeat, from any computer)."""
    label = window.counts_label
    qtbot.waitUntil(lambda: "no indexing worker is running" in label.text(), timeout=WAIT_MS)
    assert label.text().startswith("4 indexed · 4 pending")
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # a worker's heartbeat, as procrastinate keeps it
        conn.execute(text("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now())"))
    engine.dispose()
    window.refresh()
    qtbot.waitUntil(lambda: "(1 indexing worker at work)" in label.text(), timeout=WAIT_MS)


def _answer(qtbot: QtBot, dialog: ConnectDialog, url: str) -> str:
    dialog.url.setText(url)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=WAIT_MS)
    return dialog.answer.text()


def test_connect_tests_the_url_and_says_what_is_wrong(
    qtbot: QtBot, pg_url: str, tmp_path: Path
) -> None:
    dialog = ConnectDialog()
    qtbot.addWidget(dialog)
    assert "looks like postgresql://" in _answer(qtbot, dialog, "/not/a/url")
    down = _answer(qtbot, dialog, "postgresql://someone@127.0.0.1:1/photos")
    assert down.startswith("Cannot connect: cannot reach the PostgreSQL server at 127.0.0.1:1")
    missing = pg_url.replace("/t", "/nosuchdb_t", 1)
    assert "no such database" in _answer(qtbot, dialog, missing)
    found = _answer(qtbot, dialog, pg_url)
    assert found.startswith("Connected: PostgreSQL 18") and "pgvector 0.8" in found
    assert "a shared library of this release" in found

    opened: list[Any] = []
    dialog.connected.connect(opened.append)
    dialog.buttons.accepted.emit()  # Connect
    qtbot.waitUntil(lambda: bool(opened), timeout=WAIT_MS)
    try:
        assert opened[0].paths.url == pg_url and opened[0].is_shared
        assert QSettings().value(SETTING) == pg_url  # the next start opens it again
    finally:
        opened[0].close()
        QSettings().remove(SETTING)


def test_an_offline_shared_folder_is_found_on_this_computer_by_mapping_it(
    qtbot: QtBot, window: MainWindow, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The share is mounted elsewhere on this desktop: "On this computer at…" maps the
    folder here (this computer's settings), the catalog keeps the stored path."""
    from PySide6.QtWidgets import QFileDialog

    here = tmp_path / "mounted-here"
    photos.rename(here)
    window.refresh()
    qtbot.waitUntil(lambda: window.folder_list.count() == 2, timeout=WAIT_MS)
    item = window.folder_list.item(1)
    qtbot.waitUntil(lambda: "offline" in window.folder_list.item(1).text(), timeout=WAIT_MS)
    assert item is not None
    window.folder_list.setCurrentItem(window.folder_list.item(1))
    relocation = window.relocation
    qtbot.waitUntil(lambda: relocation.map_button.isVisibleTo(window), timeout=WAIT_MS)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_a, **_k: str(here))
    relocation.map_button.click()
    qtbot.waitUntil(lambda: relocation.worker is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "offline" not in window.folder_list.item(1).text(), timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: (
            all(p.path.startswith(str(here)) for p in window.photos_view.photos())
            and len(window.photos_view.photos()) == 4
        ),
        timeout=WAIT_MS,
    )
    assert window.library.settings.roots == {str(photos): str(here)}
    assert "on this computer" in window.statusBar().currentMessage()
