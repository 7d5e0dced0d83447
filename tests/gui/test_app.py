"""The app's start-up: crash reports (log + dialog) and the damaged-settings warning."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from dino_desktop import logs
from dino_desktop.core.library import Library
from dino_desktop.gui import app as gui_app


@pytest.fixture
def log_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(tmp_path / "logs"))
    path = logs.setup_logging(console=False)
    assert path is not None
    yield path
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, logs._OURS, False)]:
        root.removeHandler(handler)
        handler.close()


@pytest.fixture
def dialogs(monkeypatch: pytest.MonkeyPatch) -> list[QMessageBox]:
    """Every crash dialog that would have been shown (exec is not run: no blocking)."""
    shown: list[QMessageBox] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: shown.append(box) or 0)
    return shown


@pytest.fixture
def reporter(qtbot: QtBot) -> Iterator[gui_app.CrashReporter]:
    before = (sys.excepthook, threading.excepthook)
    hooks = gui_app.CrashReporter()
    hooks.install()
    yield hooks
    hooks.uninstall()
    assert (sys.excepthook, threading.excepthook) == before


def _read(path: Path) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.read_text(encoding="utf-8")


def _boom() -> None:
    raise RuntimeError("the slot broke")


def test_an_exception_in_a_slot_is_logged_and_shown(
    qtbot: QtBot, log_path: Path, dialogs: list[QMessageBox], reporter: gui_app.CrashReporter
) -> None:
    QTimer.singleShot(0, _boom)  # Qt hands a slot's exception to sys.excepthook
    qtbot.waitUntil(lambda: len(dialogs) == 1, timeout=5000)
    (box,) = dialogs
    assert "RuntimeError: the slot broke" in box.informativeText()
    assert str(log_path) in box.informativeText()  # where to find the details
    assert "Traceback" in box.detailedText() and "_boom" in box.detailedText()
    text = _read(log_path)
    assert "Unhandled exception" in text and "RuntimeError: the slot broke" in text
    assert "in _boom" in text  # the whole traceback is in the file


def test_an_exception_in_a_thread_reaches_the_gui_thread(
    qtbot: QtBot, log_path: Path, dialogs: list[QMessageBox], reporter: gui_app.CrashReporter
) -> None:
    def work() -> None:
        raise ValueError("worker failed")

    thread = threading.Thread(target=work, name="indexer")
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(dialogs) == 1, timeout=5000)
    assert "ValueError: worker failed" in dialogs[0].informativeText()
    assert "Unhandled exception in indexer" in _read(log_path)


def test_exceptions_while_the_dialog_is_open_are_logged_not_stacked(
    qtbot: QtBot,
    log_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reporter: gui_app.CrashReporter,
) -> None:
    shown: list[str] = []

    def exec_(box: QMessageBox) -> int:
        shown.append(box.informativeText())
        # The fault repeats (a paint event, say) while the user reads the dialog.
        try:
            raise KeyError("again")
        except KeyError:
            sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
        QApplication.processEvents()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    try:
        raise RuntimeError("first")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    qtbot.waitUntil(lambda: len(shown) == 1, timeout=5000)
    QApplication.processEvents()
    assert len(shown) == 1 and "first" in shown[0]
    assert "KeyError: 'again'" in _read(log_path)  # not lost, just not a second dialog


def test_a_dialog_that_fails_does_not_loop(
    qtbot: QtBot,
    log_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reporter: gui_app.CrashReporter,
) -> None:
    attempts: list[int] = []

    def broken_exec(box: QMessageBox) -> int:
        attempts.append(1)
        raise RuntimeError("no display for dialogs")

    monkeypatch.setattr(QMessageBox, "exec", broken_exec)
    QTimer.singleShot(0, _boom)
    qtbot.waitUntil(lambda: bool(attempts), timeout=5000)
    for _ in range(20):  # a loop would keep re-reporting the dialog's own failure
        QApplication.processEvents()
    assert len(attempts) == 1
    text = _read(log_path)
    assert "the slot broke" in text and "The error dialog could not be shown" in text


def test_keyboard_interrupt_is_not_reported_as_a_crash(
    qtbot: QtBot,
    log_path: Path,
    dialogs: list[QMessageBox],
    reporter: gui_app.CrashReporter,
) -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    QApplication.processEvents()
    assert dialogs == []
    assert "Unhandled" not in _read(log_path)


def test_a_damaged_settings_file_is_shown_once(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_path: Path
) -> None:
    home = tmp_path / "lib"
    home.mkdir()
    (home / "settings.toml").write_text("model = = broken", encoding="utf-8")
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: warnings.append(text))
    library = Library(home)
    try:
        assert gui_app.show_settings_problem(library, None)
        assert not gui_app.show_settings_problem(library, None)  # once a session
    finally:
        library.close()
    (text,) = warnings
    assert "settings.toml.bad-" in text and "default settings" in text
    assert "settings.toml.bad-" in _read(log_path)
    reopened = Library(home)
    try:  # the file was kept aside, so the next start is quiet
        assert reopened.settings.problem is None
    finally:
        reopened.close()


def test_run_gui_sets_up_the_log_hooks_and_settings_warning(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(logs.LOG_DIR_ENV, str(tmp_path / "logs"))
    home = tmp_path / "lib"
    home.mkdir()
    (home / "settings.toml").write_text("batch_size = -1\n", encoding="utf-8")
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: warnings.append(text))
    monkeypatch.setattr(gui_app, "tune_gc", lambda: None)  # no gc.freeze in the test run
    monkeypatch.setattr(gui_app.theme, "follow_system", lambda app: None)
    hooks_during_run: list[object] = []
    windows: list[QWidget] = []

    def fake_exec(app: QApplication) -> int:
        hooks_during_run.append(sys.excepthook)
        qtbot.waitUntil(lambda: bool(warnings), timeout=5000)
        windows.extend(w for w in QApplication.topLevelWidgets() if w.isVisible())
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    before = sys.excepthook
    args = argparse.Namespace(library=str(home), model=None, weights=None, device=None)
    try:
        assert gui_app.run_gui(args) == 0
    finally:
        for window in windows:
            window.close()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, logs._OURS, False)]:
            root.removeHandler(handler)
            handler.close()
    (hook,) = hooks_during_run
    assert getattr(hook, "__self__", None).__class__ is gui_app.CrashReporter
    assert sys.excepthook is before  # put back when the app ends
    assert "batch_size" in warnings[0]
    assert "DINO Desktop starting" in (tmp_path / "logs" / "dino-desktop.log").read_text("utf-8")
