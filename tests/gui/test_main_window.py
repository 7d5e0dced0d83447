"""The main window: adding a folder scans it in the background and the overview updates."""

from __future__ import annotations

from pathlib import Path

import imagegen
import pytest
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.gui.main_window import MainWindow, format_eta


@pytest.fixture
def window(qtbot: QtBot, tmp_path: Path) -> MainWindow:
    lib = Library(tmp_path / "lib")
    win = MainWindow(lib)
    qtbot.addWidget(win)
    win.show()
    return win


def test_adding_a_folder_scans_in_the_background(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        imagegen.save_jpeg(photos / f"{i}.jpg", seed=i, size=(200, 150))
    (photos / "broken.jpg").write_bytes(b"nope")
    worker = window.start_scan([str(photos)])
    assert worker is not None
    assert window.cancel_button.isVisibleTo(window)
    with qtbot.waitSignal(worker.signals.finished, timeout=60000):
        pass
    assert window.worker is None and not window.cancel_button.isVisibleTo(window)
    assert window.folder_list.count() == 1
    assert "5 photos" in window.folder_list.item(0).text()
    assert "5 indexed" in window.counts_label.text() and "1 failed" in window.counts_label.text()
    # Without weights, embedding waits and the window says how to get them.
    assert "5 pending" in window.counts_label.text()
    assert "model import" in window.model_label.text()
    assert window.failed_tree.topLevelItemCount() == 1
    assert window.failed_tree.topLevelItem(0).text(0) == str(photos / "broken.jpg")


def test_reference_toggle(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    photos = tmp_path / "p"
    photos.mkdir()
    window.library.add_folder(photos)
    window.refresh()
    window.folder_list.setCurrentRow(0)
    window.toggle_reference()
    assert window.library.folders()[0].is_reference
    assert "reference" in window.folder_list.item(0).text()


def test_eta_reads_naturally() -> None:
    assert format_eta(42) == "42 s"
    assert format_eta(125) == "2 min 05 s"
    assert format_eta(3 * 3600 + 60) == "3 h 01 min"


def test_cancel_stops_the_scan_and_keeps_what_was_done(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    photos = tmp_path / "many"
    photos.mkdir()
    for i in range(60):
        imagegen.save_jpeg(photos / f"{i:02}.jpg", seed=i, size=(96, 64))
    worker = window.start_scan([str(photos)])
    assert worker is not None
    assert window.start_scan([str(photos)]) is None  # one job at a time
    results = []
    worker.signals.finished.connect(results.append)
    window.cancel_job()
    with qtbot.waitSignal(worker.signals.finished, timeout=60000):
        pass
    (result,) = results
    assert result.cancelled
    assert window.library.status().images == result.added < 60
