"""The main window as a user drives it: scan, browse, find similar, drop, trash and undo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import pytest
import weightsgen
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.gui.dialogs import WeightsDialog
from dino_desktop.gui.main_window import MainWindow, format_eta
from dino_desktop.gui.workers import JobWorker


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("w") / "tiny.pth", weightsgen.TINY
    )


def _photos(folder: Path, n: int, size: tuple[int, int] = (160, 120)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        imagegen.save_jpeg(folder / f"{i:03}.jpg", seed=i, size=size)
    return folder


def _window(qtbot: QtBot, lib: Library, **kw: bool) -> MainWindow:
    kw.setdefault("prompt_for_weights", False)
    win = MainWindow(lib, **kw)
    qtbot.addWidget(win)
    win.show()
    _settled(qtbot, win)
    return win


@pytest.fixture
def empty(qtbot: QtBot, tmp_path: Path) -> Iterator[MainWindow]:
    win = _window(qtbot, Library(tmp_path / "lib"))
    yield win
    _all_delivered(qtbot)
    win.close()


@pytest.fixture
def scanned(qtbot: QtBot, tmp_path: Path, tiny_weights: Path) -> Iterator[MainWindow]:
    weightsgen.register_tiny_model()
    lib = Library(tmp_path / "lib", model=weightsgen.TINY, weights=tiny_weights, device="cpu")
    drive(lib.scan([str(_photos(tmp_path / "photos", 12))]))
    win = _window(qtbot, lib, scan_on_start=False)
    qtbot.waitUntil(lambda: len(win.photos_view.photos()) == 12, timeout=10000)
    yield win
    _all_delivered(qtbot)
    win.close()


def _wait_for(qtbot: QtBot, worker: JobWorker | None) -> None:
    """Until the worker's result has reached the window (it leaves `live` after the
    window's slots ran), so no signal can be missed however fast the work was."""
    assert worker is not None
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=60000)


def _all_delivered(qtbot: QtBot) -> None:
    """Before a window goes: no result may arrive at its deleted widgets later."""
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)


def _settled(qtbot: QtBot, win: MainWindow) -> None:
    """Until the counts read in a worker have reached the status bar and sidebar."""
    qtbot.waitUntil(lambda: win.status_worker is None, timeout=60000)


def test_opens_on_an_empty_library(empty: MainWindow) -> None:
    assert empty.worker is None  # nothing to rescan
    assert empty.photos_view.photos() == []
    assert "0 indexed" in empty.counts_label.text()
    assert not empty.failed_button.isVisibleTo(empty)
    assert empty.folder_list.count() == 1  # "All photos"


def test_a_scan_fills_the_grid_and_the_status_bar(
    qtbot: QtBot, empty: MainWindow, tmp_path: Path
) -> None:
    folder = _photos(tmp_path / "photos", 6)
    (folder / "broken.jpg").write_bytes(b"nope")
    worker = empty.start_scan([str(folder)])
    assert empty.cancel_button.isVisibleTo(empty)
    _wait_for(qtbot, worker)
    qtbot.waitUntil(lambda: len(empty.photos_view.photos()) == 6, timeout=10000)
    _settled(qtbot, empty)
    assert not empty.cancel_button.isVisibleTo(empty)
    text = empty.counts_label.text()
    assert "6 indexed" in text and "6 pending" in text and "1 failed" in text
    assert "weights not installed" in text
    assert empty.failed_button.text() == "1 file could not be read"
    assert empty.folder_list.count() == 2


def test_cancel_stops_the_scan_and_a_later_scan_resumes(
    qtbot: QtBot, empty: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    folder = _photos(tmp_path / "many", 60, size=(96, 64))
    # The scan waits at a gate until Cancel was pressed: no race with a fast scan.
    gate = threading.Event()
    scan = Library.scan

    def gated(self: Library, *args: Any, **kwargs: Any) -> Any:
        assert gate.wait(30)
        return (yield from scan(self, *args, **kwargs))

    monkeypatch.setattr(Library, "scan", gated)
    results: list[Any] = []
    finished = MainWindow._scan_finished

    def record(self: MainWindow, result: Any) -> None:
        results.append(result)
        finished(self, result)

    monkeypatch.setattr(MainWindow, "_scan_finished", record)
    worker = empty.start_scan([str(folder)])
    assert empty.start_scan([str(folder)]) is None  # one scan at a time
    empty.cancel_job()
    gate.set()
    _wait_for(qtbot, worker)
    (first,) = results
    assert first.cancelled and first.added < 60
    _wait_for(qtbot, empty.start_scan([]))
    assert results[1].added == 60 - first.added and not results[1].cancelled
    assert empty.library.status().images == 60


def test_find_similar_shows_the_photo_first(qtbot: QtBot, scanned: MainWindow) -> None:
    photo = scanned.photos_view.photos()[3]
    _wait_for(qtbot, scanned.find_similar(photo))
    results = scanned.similar_view.results()
    assert results[0].id == photo.id
    assert scanned.stack.currentWidget() is scanned.similar_view
    assert scanned.similar_view.model.score_at(0) == pytest.approx(1.0, abs=1e-3)


def test_dropping_an_outside_file_runs_a_search(
    qtbot: QtBot, scanned: MainWindow, tmp_path: Path
) -> None:
    outside = imagegen.save_jpeg(tmp_path / "outside" / "q.jpg", seed=5, size=(160, 120))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(outside))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    scanned.dropEvent(event)  # the window takes drops anywhere, the Similar view included
    assert scanned.search_worker is not None
    _wait_for(qtbot, scanned.search_worker)
    results = scanned.similar_view.results()
    assert len(results) == 12
    assert Path(results[0].path).name == "005.jpg"
    assert "q.jpg" in scanned.similar_view.query_text.text()


def test_weights_dialog_appears_when_search_needs_them(qtbot: QtBot, tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib")
    drive(lib.scan([str(_photos(tmp_path / "p", 2))], embed=False))
    win = _window(qtbot, lib, scan_on_start=False)
    qtbot.waitUntil(lambda: len(win.photos_view.photos()) == 2, timeout=10000)
    assert win.find_similar(win.photos_view.photos()[0]) is None
    dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, WeightsDialog)]
    assert dialogs and dialogs[0].isVisible()
    dialogs[0].reject()
    win.close()


def test_trash_and_undo_from_the_window(qtbot: QtBot, scanned: MainWindow, tmp_path: Path) -> None:
    photo = scanned.photos_view.photos()[0]
    data = Path(photo.path).read_bytes()
    # The trash starts once what goes with the photo was listed (nothing: no question).
    _wait_for(qtbot, scanned.trash([photo]))
    qtbot.waitUntil(lambda: scanned.file_worker is None, timeout=60000)
    assert not Path(photo.path).exists()
    qtbot.waitUntil(lambda: len(scanned.photos_view.photos()) == 11, timeout=10000)
    assert "Undo" in scanned.statusBar().currentMessage()
    _wait_for(qtbot, scanned.undo())
    assert Path(photo.path).read_bytes() == data
    # The restored photo is indexed again and comes back to the grid.
    _wait_for(qtbot, scanned.worker)
    qtbot.waitUntil(lambda: len(scanned.photos_view.photos()) == 12, timeout=10000)


def test_viewer_region_search(qtbot: QtBot, scanned: MainWindow) -> None:
    photo = scanned.photos_view.photos()[2]
    viewer = scanned.open_viewer(photo)
    assert viewer.current_path == photo.path
    worker = scanned.search_region(photo.path, (10, 10, 150, 110))
    _wait_for(qtbot, worker)
    assert scanned.similar_view.results()[0].id == photo.id
    assert "region" in scanned.similar_view.query_text.text()
    viewer.close()


def test_reference_toggle(qtbot: QtBot, empty: MainWindow, tmp_path: Path) -> None:
    photos = tmp_path / "p"
    photos.mkdir()
    empty.library.add_folder(photos)
    _wait_for(qtbot, empty.refresh())
    empty.folder_list.setCurrentRow(1)
    empty.toggle_reference()
    qtbot.waitUntil(lambda: "🔒" in empty.folder_list.item(1).text(), timeout=60000)
    assert empty.library.folders()[0].is_reference


def test_remove_folder_forgets_it_and_keeps_the_files(
    qtbot: QtBot, empty: MainWindow, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "p", 2)
    folder = empty.library.add_folder(photos)
    _wait_for(qtbot, empty.refresh())
    assert empty.folder_list.count() == 2
    _wait_for(qtbot, empty.forget_folder(folder.id))
    _settled(qtbot, empty)
    assert empty.folder_list.count() == 1 and empty.library.folders() == []
    assert len(list(photos.iterdir())) == 2  # files on disk are not touched


def test_failed_files_are_listed(qtbot: QtBot, empty: MainWindow, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"nope")
    _wait_for(qtbot, empty.start_scan([str(folder)]))
    _wait_for(qtbot, empty.show_failed_files())
    dialog = empty.failed_dialog
    assert dialog is not None and dialog.isVisible()
    assert "broken.jpg" in dialog.tree.topLevelItem(0).text(0)
    dialog.close()


def test_pasted_images_are_kept_only_while_searched_by(
    qtbot: QtBot, scanned: MainWindow, tmp_path: Path
) -> None:
    import os
    import time

    from PySide6.QtGui import QImage

    folder = scanned.library.paths.cache_dir / "pasted"
    folder.mkdir(parents=True, exist_ok=True)
    old = folder / "pasted-old.png"  # left by a session that crashed two days ago
    old.write_bytes(b"x")
    recent = folder / "pasted-recent.png"  # maybe another window's: younger than a day
    recent.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    image = QImage(str(scanned.photos_view.photos()[0].path))
    QApplication.clipboard().setImage(image)
    scanned.paste()
    _wait_for(qtbot, scanned.search_worker)
    first = scanned.pasted.current
    assert first is not None and first.is_file()
    scanned.paste()  # a new paste replaces the previous image
    _wait_for(qtbot, scanned.search_worker)
    second = scanned.pasted.current
    assert second is not None and second.is_file() and not first.exists()
    # A new window clears what is over a day old; closing removes the current one.
    again = _window(qtbot, scanned.library, scan_on_start=False)
    qtbot.waitUntil(lambda: not old.exists(), timeout=10000)
    assert recent.exists()
    again.close()
    scanned.close()
    assert not second.exists()


def test_eta_reads_naturally() -> None:
    assert format_eta(42) == "42 s"
    assert format_eta(125) == "2 min 05 s"
    assert format_eta(3 * 3600 + 60) == "3 h 01 min"


def test_compare_features_of_three_photos(qtbot: QtBot, scanned: MainWindow) -> None:
    photos = scanned.photos_view.photos()[:3]
    dialog = scanned.compare(photos)
    assert dialog is not None
    with qtbot.waitSignal(dialog.overlays_shown, timeout=60000):
        pass
    assert len(dialog.maps) == 3
    dialog.wait_for_work()
    dialog.close()


def test_duplicates_view_keeps_photo_actions_away(
    qtbot: QtBot, scanned: MainWindow, tmp_path: Path
) -> None:
    scanned.photos_view.grid.select_rows([0])
    assert len(scanned._selected()) == 1
    scanned.show_view(2)
    assert scanned.stack.currentWidget() is scanned.duplicates_view
    # Delete / Ctrl+F act on what the user sees: nothing is selected here.
    assert scanned._selected() == []
    assert scanned.trash(scanned._selected()) is None
    worker = scanned.duplicates_view.find("exact")
    _wait_for(qtbot, worker)
    assert scanned.duplicates_view.groups() == []  # twelve distinct photos


def test_icon_name_and_about_box(
    qtbot: QtBot, empty: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from dino_desktop import __version__
    from dino_desktop.gui import app as gui_app
    from dino_desktop.gui import theme

    qapp = QApplication.instance()
    assert isinstance(qapp, QApplication)
    saved = (qapp.windowIcon(), qapp.applicationName(), qapp.applicationDisplayName())
    monkeypatch.setattr(theme, "follow_system", lambda app: None)  # keep the test palette
    try:
        gui_app.configure_app(qapp)
        assert not empty.windowIcon().isNull()  # the app's SVG icon, inherited
        assert empty.windowIcon().pixmap(256, 256).width() == 256  # scalable
        assert "DINO Desktop" in empty.windowTitle()
        assert qapp.desktopFileName() == "io.github.dino_desktop.DinoDesktop"
    finally:
        qapp.setWindowIcon(saved[0])
        qapp.setApplicationName(saved[1])
        qapp.setApplicationDisplayName(saved[2])
    names = [empty.view_list.item(i).text() for i in range(empty.view_list.count())]
    assert names == ["Photos", "Similar", "Duplicates", "Auto-folders", "Sort by example"]
    assert all(not empty.view_list.item(i).icon().isNull() for i in range(len(names)))

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda parent, title, text: shown.append(text))
    empty.about()
    (text,) = shown
    assert __version__ in text
    assert empty.library.status().model in text
    assert str(empty.library.paths.home) in text
    assert "Apache License 2.0" in text and "LGPL" in text


def test_label_photos_from_the_photos_view(qtbot: QtBot, scanned: MainWindow) -> None:
    """Browsing, a right-click makes photos examples of a sort-by-example label."""
    from PySide6.QtWidgets import QMenu

    label = scanned.library.add_sort_label("Receipts")
    _wait_for(qtbot, scanned.sorting_view.reload())
    photos = scanned.photos_view.photos()[:2]
    menu = QMenu()
    scanned._add_label_menu(menu, photos)
    (sub,) = [a.menu() for a in menu.actions() if a.menu() is not None]
    names = [a.text() for a in sub.actions() if a.text()]
    assert names == ["Receipts", "New label…"]
    with qtbot.waitSignal(scanned.sorting_view.status_message, timeout=60000):
        next(a for a in sub.actions() if a.text() == "Receipts").trigger()
    qtbot.waitUntil(lambda: not scanned.sorting_view.loading(), timeout=60000)
    assert scanned.library.label_examples(label.id)[0] == sorted(p.id for p in photos)
    counts = {lb.name: lb.positives for lb in scanned.sorting_view.labels()}
    assert counts == {"Receipts": 2}


def test_stale_thumbnails_are_cleaned_up_after_a_scan_and_from_the_menu(
    qtbot: QtBot, scanned: MainWindow, tmp_path: Path
) -> None:
    from dino_desktop.core.thumbnails import thumbnail_file

    cache = scanned.library.paths.cache_dir
    rows = scanned.photos_view.photos()
    made = {p.path: thumbnail_file(cache, p.path, p.mtime_ns, p.size) for p in rows}
    gone = rows[0].path
    Path(gone).unlink()
    worker = scanned.start_scan([])
    _wait_for(qtbot, worker)
    # The scan removed a photo: its thumbnail goes in the background, the rest stay.
    qtbot.waitUntil(lambda: not made[gone].exists(), timeout=30000)
    qtbot.waitUntil(lambda: scanned.prune_worker is None, timeout=30000)
    assert all(f.is_file() for p, f in made.items() if p != gone)
    # By hand (File menu): one left behind by a photo that is no longer in the library.
    stray = made[rows[1].path].with_name("0" * 32 + "-256.jpg")
    stray.write_bytes(b"old")
    action = next(
        a for a in scanned.menuBar().actions()[0].menu().actions() if "thumbnail" in a.text()
    )
    action.trigger()
    assert scanned.prune_worker is not None
    qtbot.waitUntil(lambda: scanned.prune_worker is None, timeout=30000)
    assert (
        not stray.exists() and "removed 1 stale thumbnail" in scanned.statusBar().currentMessage()
    )
