"""Start the desktop app: a QApplication, the library, the main window."""

from __future__ import annotations

import argparse
import gc
import sys
from importlib.resources import files

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from dino_desktop.core.db import SchemaTooNew
from dino_desktop.core.library import Library, LibraryError
from dino_desktop.gui import theme
from dino_desktop.gui.main_window import MainWindow


def app_icon() -> QIcon:
    """The application icon, from the installed package's data."""
    return QIcon(str(files("dino_desktop.resources") / "dino-desktop.svg"))


def run_gui(args: argparse.Namespace) -> int:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("DINO Desktop")
    app.setOrganizationDomain("dino-desktop.org")
    app.setDesktopFileName("io.github.dino_desktop.DinoDesktop")
    app.setWindowIcon(app_icon())
    theme.follow_system(app)
    try:
        library = Library(args.library, model=args.model, weights=args.weights, device=args.device)
    except (LibraryError, SchemaTooNew, ValueError, OSError) as exc:
        QMessageBox.critical(None, "DINO Desktop", f"Cannot open the library: {exc}")
        return 1
    window = MainWindow(library)
    window.show()
    # Everything made at start-up lives as long as the app: move it out of the
    # collector's sight, so full collections (which hold the GIL) stay short.
    gc.collect()
    gc.freeze()
    try:
        return int(app.exec())
    finally:
        library.close()
