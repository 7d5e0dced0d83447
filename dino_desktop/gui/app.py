"""Start the desktop app: a QApplication, the library, the main window.

`main` is the `dino-desktop-gui` entry point (a gui-script: no console window
on Windows) and the PyInstaller bundle's; `dino-desktop` without a command
comes to `run_gui` through the CLI.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from importlib.resources import files
from types import TracebackType
from typing import Any

from PySide6.QtCore import QEventLoop, QObject, QSettings, QSize, QTimer, Signal
from PySide6.QtGui import QIcon, QImageReader
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from dino_desktop.config import HOME_ENV
from dino_desktop.core.library import Library
from dino_desktop.core.records import LibraryError, SchemaTooNew
from dino_desktop.gui import theme
from dino_desktop.gui.main_window import MainWindow
from dino_desktop.gui.shared import SETTING as SHARED_SETTING
from dino_desktop.gui.workers import reader, start
from dino_desktop.logs import log_file, setup_logging

APP_NAME = "DINO Desktop"
APP_ID = "io.github.dino_desktop.DinoDesktop"  # the .desktop file's and AppStream's id
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)  # the PNG renders in resources/icons

log = logging.getLogger(__name__)


def app_icon() -> QIcon:
    """The application icon, from the installed package's data.

    The SVG when Qt's SVG plugins are there (a wheel install always has them),
    else the PNG renders of it (a bundle that left the plugins out).
    """
    resources = files("dino_desktop.resources")
    if b"svg" in [bytes(fmt.data()) for fmt in QImageReader.supportedImageFormats()]:
        return QIcon(str(resources / "dino-desktop.svg"))
    icon = QIcon()
    for size in ICON_SIZES:
        icon.addFile(str(resources / "icons" / f"dino-desktop-{size}.png"), QSize(size, size))
    return icon


def configure_app(app: QApplication) -> None:
    """Name, icon and style: what the window title, the About box, the task bar
    and the desktop's launcher show."""
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationDomain("dino-desktop.org")
    # Wayland's app id and the X11 startup notification: matches the .desktop file.
    app.setDesktopFileName(APP_ID)
    if sys.platform == "win32":
        # Else the task bar groups the window under python(w).exe, with its icon.
        import ctypes

        ctypes.windll.shell32.SetCurrentProcessExplicitAppUserModelID(APP_ID)
    app.setWindowIcon(app_icon())
    theme.follow_system(app)


def tune_gc() -> None:
    """Keep cyclic garbage collections (which hold the GIL) out of the GUI's way.

    Everything made at start-up lives as long as the app: freezing it keeps it
    out of every later collection. Higher thresholds make collections rarer: the
    app allocates in bursts (a 100,000-row refresh, a scan batch) and a full
    collection in a worker stalls the event loop for its whole length.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class CrashReporter(QObject):
    """`sys.excepthook` and `threading.excepthook` for the app.

    An exception nobody caught (in a slot, a timer, a worker thread) is written
    to the log with its traceback and shown in a dialog that says what happened
    and where the log file is: the gui-script has no console, so without this
    the traceback would be lost. The dialog is shown on the GUI thread (a
    queued signal from other threads); while one is open, later exceptions are
    only logged, so a fault that repeats on every repaint cannot stack dialogs
    or recurse. `uninstall` puts the previous hooks back.
    """

    # Queued to the GUI thread when emitted from another one.
    exception_raised = Signal(str, str)

    def __init__(self, parent_window: Callable[[], QWidget | None] = lambda: None) -> None:
        super().__init__()
        self._parent_window = parent_window
        self._dialog_open = False
        self._previous: tuple[Any, Any] | None = None
        self.exception_raised.connect(self._show)

    def install(self) -> None:
        self._previous = (sys.excepthook, threading.excepthook)
        sys.excepthook = self.excepthook
        threading.excepthook = self.thread_excepthook

    def uninstall(self) -> None:
        if self._previous is not None:
            sys.excepthook, threading.excepthook = self._previous
            self._previous = None

    def excepthook(
        self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        self.report((kind, exc, tb), where=threading.current_thread().name)

    def thread_excepthook(self, hook_args: threading.ExceptHookArgs) -> None:
        if hook_args.exc_value is None:
            return
        where = hook_args.thread.name if hook_args.thread else "a thread"
        self.report((hook_args.exc_type, hook_args.exc_value, hook_args.exc_traceback), where)

    def report(self, info: ExcInfo, where: str) -> None:
        kind, exc, tb = info
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)  # Ctrl+C in the terminal: not a crash
            return
        try:
            log.critical("Unhandled exception in %s", where, exc_info=info)
            summary = "".join(traceback.format_exception_only(kind, exc)).strip()
            details = "".join(traceback.format_exception(kind, exc, tb))
            self.exception_raised.emit(summary, details)
        except Exception:  # a failing hook must not raise into Qt: the plain hook
            sys.__excepthook__(kind, exc, tb)

    def _show(self, summary: str, details: str) -> None:
        if self._dialog_open:  # logged already; one dialog at a time
            return
        self._dialog_open = True
        try:
            self._dialog(summary, details)
        except Exception:
            # Not re-raised: the hook would report it with a dialog that fails again.
            log.exception("The error dialog could not be shown")
        finally:
            self._dialog_open = False

    def _dialog(self, summary: str, details: str) -> None:
        path = log_file()
        box = QMessageBox(self._parent_window())
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle(APP_NAME)
        box.setText("Something went wrong inside DINO Desktop.")
        box.setInformativeText(
            f"{summary}\n\nIf the app misbehaves from now on, restart it.\n\n"
            f"The details are in the log file:\n{path}"
        )
        box.setDetailedText(details)
        box.exec()


def show_settings_problem(library: Library, parent: QWidget | None) -> bool:
    """Tell the user, once, that settings.toml was damaged and defaults are used.

    Returns whether there was something to show. `Settings.load` already kept
    the bad file aside and rewrote it, so the next start is quiet.
    """
    problem = library.settings.problem
    if not problem:
        return False
    log.warning("%s", problem)
    QMessageBox.warning(parent, f"{APP_NAME}: settings", problem)
    library.settings.problem = None  # shown: not again in this session
    return True


def remembered_library(args: argparse.Namespace) -> str | None:
    """The shared library connected to last time (File > Connect to a shared library…),
    when neither --library nor the environment names one."""
    if args.library is not None or os.environ.get(HOME_ENV):
        return None
    return str(QSettings().value(SHARED_SETTING, "") or "") or None


def open_library(args: argparse.Namespace, target: str | None = None) -> Library:
    """Open the library in a worker: opening runs its migrations, which can take
    a while on a large catalog, and no SQL runs on the GUI thread. The GUI
    thread keeps processing events meanwhile; the worker's exception is re-raised."""
    loop = QEventLoop()
    outcome: list[Any] = []
    target = target or args.library
    worker = reader(
        lambda: Library(target, model=args.model, weights=args.weights, device=args.device)
    )

    def arrived(value: object) -> None:
        outcome.append(value)
        loop.quit()

    worker.signals.finished.connect(arrived)
    worker.signals.failed.connect(arrived)
    start(worker)
    loop.exec()  # the worker's signals are queued to this thread: they arrive in here
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    library: Library = outcome[0]
    return library


def run_gui(args: argparse.Namespace) -> int:
    log_path = setup_logging(console=True)
    existing = QApplication.instance()
    # argv[0] names the X11 WM_CLASS instance: the same for every launcher
    # (console script, gui-script, python -m, bundle), as StartupWMClass expects.
    app = existing if isinstance(existing, QApplication) else QApplication(["dino-desktop"])
    configure_app(app)
    window: MainWindow | None = None
    reporter = CrashReporter(lambda: window)
    reporter.install()
    log.info("DINO Desktop starting; log file %s", log_path)
    try:
        try:
            remembered = remembered_library(args)
            try:
                library = open_library(args, remembered)
            except (LibraryError, SchemaTooNew) as exc:
                if remembered is None:
                    raise
                # The server away: the local library opens, the shared one stays remembered.
                log.error("Cannot open the shared library: %s", exc)
                QMessageBox.warning(
                    None,
                    APP_NAME,
                    f"Cannot open the shared library: {exc}\n\nThe library on this "
                    "computer opens instead; File > Connect to a shared library… tries again.",
                )
                library = open_library(args)
        except (LibraryError, SchemaTooNew, ValueError, OSError) as exc:
            log.error("Cannot open the library: %s", exc)
            QMessageBox.critical(None, APP_NAME, f"Cannot open the library: {exc}")
            return 1
        libraries = [library]  # every one opened, closed at the end

        def show(library: Library) -> MainWindow:
            nonlocal window
            old = window
            window = MainWindow(library)
            window.library_chosen.connect(switch)
            window.show()
            if old is not None:
                old.close()  # its jobs are stopped; its library is closed at exit
            return window

        def switch(library: Library) -> None:
            libraries.append(library)
            log.info("library switched to %s", library.where)
            show(library)

        show(library)
        # After the window is up, so the warning sits on top of it.
        QTimer.singleShot(0, lambda: show_settings_problem(library, window))
        tune_gc()
        try:
            return int(app.exec())
        finally:
            for opened in libraries:
                opened.close()
    finally:
        reporter.uninstall()


def main() -> None:
    """The `dino-desktop-gui` gui-script and the bundle's entry: the same
    arguments as `dino-desktop`, without a console.

    Under pythonw (Windows gui-scripts) or a console-less bundle there is no
    stdout/stderr (they are None): point them at the null device so that
    `--help`, argument errors and stray prints don't crash the app.
    """
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
    from dino_desktop.cli import main as cli_main

    sys.exit(cli_main())
