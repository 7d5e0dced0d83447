"""Start the desktop app: a QApplication, the library, the main window.

`main` is the `dino-desktop-gui` entry point (a gui-script: no console window
on Windows) and the PyInstaller bundle's; `dino-desktop` without a command
comes to `run_gui` through the CLI.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from importlib.resources import files

from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon, QImageReader
from PySide6.QtWidgets import QApplication, QMessageBox

from dino_desktop.core.db import SchemaTooNew
from dino_desktop.core.library import Library
from dino_desktop.core.records import LibraryError
from dino_desktop.gui import theme
from dino_desktop.gui.main_window import MainWindow

APP_NAME = "DINO Desktop"
APP_ID = "io.github.dino_desktop.DinoDesktop"  # the .desktop file's and AppStream's id
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)  # the PNG renders in resources/icons


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


def run_gui(args: argparse.Namespace) -> int:
    existing = QApplication.instance()
    # argv[0] names the X11 WM_CLASS instance: the same for every launcher
    # (console script, gui-script, python -m, bundle), as StartupWMClass expects.
    app = existing if isinstance(existing, QApplication) else QApplication(["dino-desktop"])
    configure_app(app)
    try:
        library = Library(args.library, model=args.model, weights=args.weights, device=args.device)
    except (LibraryError, SchemaTooNew, ValueError, OSError) as exc:
        QMessageBox.critical(None, APP_NAME, f"Cannot open the library: {exc}")
        return 1
    window = MainWindow(library)
    window.show()
    tune_gc()
    try:
        return int(app.exec())
    finally:
        library.close()


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
