"""The main window's menu bar (File, Edit, Photo, View, Help), wired to its slots."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

if TYPE_CHECKING:
    from dino_desktop.gui.main_window import MainWindow


def build_menus(window: MainWindow) -> tuple[QAction, QAction]:
    """Fill the window's menu bar; returns the (rescan, undo) actions, which the
    window enables and disables as jobs run."""

    def add(menu: QMenu, text: str, slot: Callable[[], Any], shortcut: Any = None) -> QAction:
        action = QAction(text, window)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    add(file_menu, "&Add folder…", window.choose_folder, QKeySequence.StandardKey.Open)
    rescan = add(file_menu, "&Rescan all folders", lambda: window.start_scan([]), "F5")
    add(file_menu, "Files that could not be read…", window.show_failed_files)
    add(file_menu, "Clean up the thumbnail cache", window.prune_thumbnails)
    add(file_menu, "Connect to a shared library…", window.connect_shared)
    file_menu.addSeparator()
    add(file_menu, "&Settings…", window.open_settings, "Ctrl+,")
    file_menu.addSeparator()
    add(file_menu, "&Quit", window.close, QKeySequence.StandardKey.Quit)
    edit = bar.addMenu("&Edit")
    undo = add(edit, "&Undo", window.undo, QKeySequence.StandardKey.Undo)
    add(edit, "&Paste image to search", window.paste, QKeySequence.StandardKey.Paste)
    photo = bar.addMenu("&Photo")
    add(photo, "&Open", window._open_selected, "Return")
    add(photo, "Find &similar", window.find_similar_selected, "Ctrl+F")
    add(photo, "&Compare features (2–8 photos)", window.compare_selected, "Ctrl+K")
    add(photo, "Show in &folder", lambda: window._show_in_folder(window._selected()))
    add(photo, "Open with system &viewer", lambda: window._open_external(window._selected()))
    photo.addSeparator()
    add(photo, "Move to &trash", lambda: window.trash(window._selected()), "Delete")
    view = bar.addMenu("&View")
    add(view, "&Photos", lambda: window.show_view(0), "Ctrl+1")
    add(view, "&Similar", lambda: window.show_view(1), "Ctrl+2")
    add(view, "&Duplicates", lambda: window.show_view(2), "Ctrl+3")
    add(view, "&Auto-folders", lambda: window.show_view(3), "Ctrl+4")
    add(view, "Sort by &example", lambda: window.show_view(4), "Ctrl+5")
    help_menu = bar.addMenu("&Help")
    add(help_menu, "&About DINO Desktop", window.about)
    return rescan, undo
