"""Live folders in the main window: photos written into a library folder appear by
themselves, the Settings switch stops and starts the watching, batches wait for
a running scan, and the watcher follows added folders."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import pytest
import weightsgen
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from dino_desktop.config import Settings
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryBusy, ScanResult
from dino_desktop.core.watcher import Batch
from dino_desktop.gui.dialogs import SettingsDialog
from dino_desktop.gui.live import live_note, merge
from dino_desktop.gui.main_window import MainWindow
from dino_desktop.gui.workers import JobWorker

WAIT_MS = 30000  # a change settles in ~1 s (debounce, two stats); generous for slow CI


def _photos(folder: Path, n: int, first: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + n):
        imagegen.save_jpeg(folder / f"{i:03}.jpg", seed=i, size=(160, 120))
    return folder


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return _photos(tmp_path / "photos", 3)


@pytest.fixture
def lib(tmp_path: Path, photos: Path) -> Iterator[Library]:
    library = Library(tmp_path / "lib")  # no weights: scans index, embedding waits
    drive(library.scan([str(photos)]))
    yield library
    library.close()


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[threading.Thread]]:
    """The threads the new Library calls ran on (none may be the GUI thread)."""
    seen: dict[str, list[threading.Thread]] = {}

    def recorded(name: str) -> None:
        original = getattr(Library, name)

        def wrapper(self: Library, *args: Any, **kwargs: Any) -> Any:
            seen.setdefault(name, []).append(threading.current_thread())
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Library, name, wrapper)

    for name in ("folder_watcher", "scan_batch", "relocate"):
        recorded(name)
    return seen


def _window(qtbot: QtBot, lib: Library, **kw: bool) -> MainWindow:
    kw.setdefault("prompt_for_weights", False)
    kw.setdefault("scan_on_start", False)
    win = MainWindow(lib, **kw)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.status_worker is None, timeout=WAIT_MS)
    return win


@pytest.fixture
def window(qtbot: QtBot, lib: Library) -> Iterator[MainWindow]:
    win = _window(qtbot, lib)
    _watching(qtbot, win, 1)
    yield win
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    win.close()


def _watching(qtbot: QtBot, win: MainWindow, folders: int) -> None:
    qtbot.waitUntil(lambda: len(win.live.watched_folders()) == folders, timeout=WAIT_MS)


def _names(win: MainWindow) -> set[str]:
    return {os.path.basename(p.path) for p in win.photos_view.photos()}


def _set_watching(monkeypatch: pytest.MonkeyPatch, win: MainWindow, on: bool) -> None:
    """Settings… → tick or untick "Watch library folders for changes" → OK."""

    def exec_(dialog: SettingsDialog) -> int:
        dialog.watch_check.setChecked(on)
        dialog.accept()
        return 1

    monkeypatch.setattr(SettingsDialog, "exec", exec_)
    win.open_settings()


def test_a_photo_written_into_a_watched_folder_appears_and_goes(
    qtbot: QtBot,
    threads: dict[str, list[threading.Thread]],  # recording before the window is made
    window: MainWindow,
    photos: Path,
) -> None:
    results: list[ScanResult] = []
    window.live.batch_done.connect(results.append)
    qtbot.waitUntil(lambda: window.live.label.text() == "Watching 1 folder", timeout=WAIT_MS)
    assert window.live.label.isVisibleTo(window)
    qtbot.waitUntil(lambda: len(window.photos_view.photos()) == 3, timeout=WAIT_MS)
    imagegen.save_jpeg(photos / "new.jpg", seed=42, size=(160, 120))
    qtbot.waitUntil(lambda: "new.jpg" in _names(window), timeout=WAIT_MS)
    new = next(p for p in window.photos_view.photos() if p.path.endswith("new.jpg"))
    assert window.photos_view.model.row_of(new.id) is not None  # in the grid's model
    assert any(r.added == 1 for r in results)
    assert live_note(next(r for r in results if r.added)).startswith(
        "Live folders: 1 new (new.jpg)"
    )
    qtbot.waitUntil(lambda: window.worker is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "4 indexed" in window.counts_label.text(), timeout=WAIT_MS)

    os.remove(photos / "new.jpg")
    qtbot.waitUntil(lambda: "new.jpg" not in _names(window), timeout=WAIT_MS)
    assert len(window.photos_view.photos()) == 3
    # The watcher was made and the batches scanned in workers, never on the GUI thread.
    main = threading.main_thread()
    assert threads["folder_watcher"] and main not in threads["folder_watcher"]
    assert threads["scan_batch"] and main not in threads["scan_batch"]


def test_turning_watching_off_stops_it_at_once_and_on_again_catches_up(
    qtbot: QtBot,
    window: MainWindow,
    lib: Library,
    photos: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watcher_threads = [t for t in threading.enumerate() if t.name == "watch-settle"]
    assert watcher_threads
    _set_watching(monkeypatch, window, False)
    assert not window.live.watching()  # at once
    assert not window.live.label.isVisibleTo(window)
    assert Settings.load(lib.paths.settings).watch_folders is False
    qtbot.waitUntil(lambda: not any(t.is_alive() for t in watcher_threads), timeout=WAIT_MS)

    imagegen.save_jpeg(photos / "while-off.jpg", seed=43, size=(160, 120))
    qtbot.wait(2500)  # several debounce periods: nothing may pick it up
    assert window.worker is None and not window.live.watching()
    assert all(not p.path.endswith("while-off.jpg") for p in lib.photos())

    _set_watching(monkeypatch, window, True)
    assert Settings.load(lib.paths.settings).watch_folders is True
    _watching(qtbot, window, 1)
    # Turned on again, it first looks at what changed while it was off.
    qtbot.waitUntil(lambda: "while-off.jpg" in _names(window), timeout=WAIT_MS)
    imagegen.save_jpeg(photos / "after.jpg", seed=44, size=(160, 120))
    qtbot.waitUntil(lambda: "after.jpg" in _names(window), timeout=WAIT_MS)


def test_a_library_with_watching_off_starts_no_watcher(
    qtbot: QtBot, lib: Library, photos: Path
) -> None:
    lib.settings.watch_folders = False
    win = _window(qtbot, lib)
    qtbot.wait(500)
    assert not win.live.watching() and not win.live.watched_folders()
    imagegen.save_jpeg(photos / "unseen.jpg", seed=45, size=(160, 120))
    qtbot.wait(2000)
    assert win.worker is None and "unseen.jpg" not in _names(win)
    win.close()


def test_batches_wait_for_a_running_scan_never_two_at_once(
    qtbot: QtBot, window: MainWindow, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    running: list[int] = [0]
    most: list[int] = [0]
    scan = Library.scan

    def gated(self: Library, *args: Any, **kwargs: Any) -> Any:
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            assert gate.wait(60)
            return (yield from scan(self, *args, **kwargs))
        finally:
            running[0] -= 1

    monkeypatch.setattr(Library, "scan", gated)
    manual = window.start_scan([])  # held at the gate
    assert manual is not None
    imagegen.save_jpeg(photos / "during.jpg", seed=46, size=(160, 120))
    qtbot.waitUntil(window.live.waiting, timeout=WAIT_MS)  # settled, waiting for the scan
    qtbot.wait(600)  # a few more ticks: it must go on waiting
    assert window.worker is manual and window.live.job is None
    gate.set()
    qtbot.waitUntil(lambda: "during.jpg" in _names(window), timeout=WAIT_MS)
    assert most[0] == 1


def test_a_batch_refused_by_another_writer_is_retried(
    qtbot: QtBot, window: MainWindow, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: warnings.append(str(a)))
    scan_batch = Library.scan_batch
    refused: list[int] = []

    def busy_once(self: Library, *args: Any, **kwargs: Any) -> Any:
        if not refused:
            refused.append(1)
            raise LibraryBusy("another program is writing this library (dino-desktop scan)")
        return (yield from scan_batch(self, *args, **kwargs))

    monkeypatch.setattr(Library, "scan_batch", busy_once)
    imagegen.save_jpeg(photos / "busy.jpg", seed=48, size=(160, 120))
    qtbot.waitUntil(lambda: bool(refused), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.worker is None, timeout=WAIT_MS)
    assert window.statusBar().currentMessage().startswith("Live folders wait: another program")
    assert window.live.waiting()  # kept for another try
    qtbot.waitUntil(lambda: "busy.jpg" in _names(window), timeout=WAIT_MS)
    assert warnings == []  # no message box for it


def test_an_added_folder_is_watched_too(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    second = _photos(tmp_path / "second", 2, first=10)
    worker = window.start_scan([str(second)])
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=WAIT_MS)
    _watching(qtbot, window, 2)
    # The label follows at the watcher's next tick (gui/live.py `_show_state`).
    qtbot.waitUntil(lambda: window.live.label.text() == "Watching 2 folders", timeout=WAIT_MS)
    imagegen.save_jpeg(second / "later.jpg", seed=47, size=(160, 120))
    qtbot.waitUntil(lambda: "later.jpg" in _names(window), timeout=WAIT_MS)


def test_closing_the_window_stops_the_watcher(qtbot: QtBot, lib: Library) -> None:
    win = _window(qtbot, lib)
    _watching(qtbot, win, 1)
    watcher_threads = [t for t in threading.enumerate() if t.name == "watch-settle"]
    win.close()
    assert not win.live.watching()
    assert not any(t.is_alive() for t in watcher_threads)


def test_a_new_photo_is_filed_into_the_auto_folders_view(
    qtbot: QtBot, tmp_path: Path, photos: Path
) -> None:
    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "tiny.pth", weightsgen.TINY)
    lib = Library(tmp_path / "lib2", model=weightsgen.TINY, weights=weights, device="cpu")
    _photos(photos, 5, first=3)  # 8 photos in all
    drive(lib.scan([str(photos)]))
    drive(lib.cluster(k=2))
    win = _window(qtbot, lib)
    _watching(qtbot, win, 1)
    win.show_view(3)  # Auto-folders: read when first shown
    view = win.folders_view
    qtbot.waitUntil(lambda: view.loaded() and not view.loading(), timeout=WAIT_MS)
    assert view.new_photos() == []
    imagegen.save_jpeg(photos / "filed.jpg", seed=3, size=(160, 120))
    qtbot.waitUntil(
        lambda: [os.path.basename(p.path) for p in view.new_photos()] == ["filed.jpg"],
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    win.close()
    lib.close()


def test_merged_batches_and_notes() -> None:
    a = Batch(frozenset({1}), frozenset({"/a/x.jpg"}), frozenset({"/a/y.jpg"}))
    b = Batch(frozenset({2}), frozenset({"/a/y.jpg"}), frozenset())
    both = merge(a, b)
    assert both.folder_ids == {1, 2} and both.paths == {"/a/x.jpg", "/a/y.jpg"}
    assert both.held == frozenset() and not both.polled  # y settled into the newer one
    assert merge(None, a) is a
    assert live_note(ScanResult()) == ""
    offline = ScanResult(
        added=2,
        removed=1,
        moved=1,
        offline=["/media/d/Photos"],
        warnings=["folder not available: /media/d/Photos (is its drive connected?)", "other"],
    )
    assert (
        live_note(offline) == "Live folders: 2 new · 1 moved · 1 gone · Photos is offline · other"
    )
    assert "stopped" in live_note(ScanResult(cancelled=True))
