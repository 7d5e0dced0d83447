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
    tune_gc()
    try:
        return int(app.exec())
    finally:
        library.close()
