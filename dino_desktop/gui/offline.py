"""Offline library folders in the sidebar, and re-pointing a folder that moved.

A folder whose drive is not mounted (or that was renamed away) is `offline`
(`FolderInfo.offline` says why): scans skip it and keep its photos, which stay
browsable, with thumbnails from the cache. The sidebar shows it greyed, with its
photo count and the reason as a tooltip (`folder_item`).

`Relocation` holds the actions that tell the library where such a folder is now:
"Relocate…" (pick the folder) and, when the same drive is mounted somewhere else
(`FolderInfo.same_drive_at`), the one-click "This is the same drive (now at …)".
Both run `Library.relocate` in a worker; a refusal (LibraryError: the new place
holds none of the folder's photos, is a library folder already, ...) is shown as
a message box. In a shared library, where a folder is offline on this computer
because it mounts the share at another path, "On this computer at…" maps the
folder's stored root to the chosen path for this computer alone
(`Library.map_root`, core/roots.py); Relocate… re-points it for every client.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFileDialog, QListWidgetItem, QMenu, QMessageBox, QPushButton

from dino_desktop.core.records import FolderInfo
from dino_desktop.gui.common import plural
from dino_desktop.gui.models import display_path
from dino_desktop.gui.workers import JobWorker, call, describe

if TYPE_CHECKING:
    from dino_desktop.core.relocate import Relocated
    from dino_desktop.gui.main_window import MainWindow

T = TypeVar("T")
FOLDER_ROLE = Qt.ItemDataRole.UserRole
OFFLINE_ROLE = Qt.ItemDataRole.UserRole + 1  # the offline reason, or None


def folder_name(path: str) -> str:
    return display_path(Path(path).name or path)


def short_path(path: str, parts: int = 2) -> str:
    """ "…/DISK1/Photos": the last `parts` components of a path, for a narrow button."""
    pieces = [p for p in path.split(os.sep) if p]
    if len(pieces) <= parts:
        return display_path(path)
    return display_path("…" + os.sep + os.sep.join(pieces[-parts:]))


def folder_item(folder: FolderInfo, palette: QPalette) -> QListWidgetItem:
    """The sidebar's item for a folder: its name, a lock for a reference folder, its
    photo count; an offline one greyed and in italics, with why as its tooltip."""
    mark = " 🔒" if folder.is_reference else ""
    count = f"{folder.images:,} photos"
    tip = [display_path(folder.path)]
    if mark:
        tip.append("Reference folder: protected")
    if folder.offline:
        count += " · offline"
        tip.append(f"Offline: {folder.offline}")
        tip.append("Its photos stay in the library and can be browsed (thumbnails from the cache).")
        if folder.same_drive_at:
            tip.append(
                f"Its drive is mounted at another place now: {display_path(folder.same_drive_at)}"
                " (right-click → This is the same drive)."
            )
        else:
            tip.append("Moved or renamed? Right-click → Relocate… to say where it is now.")
    item = QListWidgetItem(f"{folder_name(folder.path)}{mark}\n{count}")
    item.setToolTip("\n".join(tip))
    item.setData(FOLDER_ROLE, folder.id)
    item.setData(OFFLINE_ROLE, folder.offline)
    if folder.offline:
        # Greyed (the palette's secondary text: dimmer than the other folders, still
        # legible), but enabled: it can be chosen to browse its photos.
        item.setForeground(palette.color(QPalette.ColorRole.PlaceholderText))
        font = item.font()
        font.setItalic(True)
        item.setFont(font)
    return item


def same_drive_text(folder: FolderInfo) -> str:
    return f"This is the same drive (now at {display_path(folder.same_drive_at or '')})"


class Relocation(QObject):
    """Relocate… and the same-drive action, as sidebar buttons and menu entries."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.worker: JobWorker | None = None  # the relocation running
        self.relocate_button = QPushButton("Relocate…")
        self.relocate_button.setToolTip(
            "The folder moved or was renamed: say where it is now. Its photos keep "
            "everything (similar-photo data, labels, auto-folders); nothing is rescanned."
        )
        self.relocate_button.clicked.connect(lambda _checked=False: self._choose_current())
        self.same_drive_button = QPushButton()
        self.same_drive_button.clicked.connect(lambda _checked=False: self._same_drive_current())
        self.map_button = QPushButton("On this computer at…")
        self.map_button.setToolTip(
            "This computer reaches the share at another path: say where. Kept in this "
            "computer's settings; the other computers keep their own paths."
        )
        self.map_button.clicked.connect(lambda _checked=False: self._map_current())
        self.update(None, busy=False)

    def buttons(self) -> list[QPushButton]:
        return [self.same_drive_button, self.map_button, self.relocate_button]

    def update(self, folder: FolderInfo | None, *, busy: bool) -> None:
        """Show the actions that fit the chosen folder (an offline one), enabled when idle."""
        offline = folder is not None and folder.offline is not None
        self.relocate_button.setVisible(offline)
        self.relocate_button.setEnabled(not busy and self.worker is None)
        self.map_button.setVisible(offline and self.window.library.is_shared)
        self.map_button.setEnabled(not busy and self.worker is None)
        same = folder is not None and offline and folder.same_drive_at is not None
        self.same_drive_button.setVisible(same)
        self.same_drive_button.setEnabled(not busy and self.worker is None)
        if folder is not None and same:
            self.same_drive_button.setText(
                f"Same drive, now at {short_path(folder.same_drive_at or '')}"
            )
            self.same_drive_button.setToolTip(
                same_drive_text(folder) + ": re-point the folder there in one step."
            )

    def add_to_menu(self, menu: QMenu, folder: FolderInfo | None) -> None:
        """The folder menu's entries for an offline folder (none for an online one)."""
        if folder is None or folder.offline is None:
            return
        menu.addSeparator()
        if folder.same_drive_at:
            menu.addAction(same_drive_text(folder), lambda: self.same_drive(folder))
        if self.window.library.is_shared:
            menu.addAction("On this computer at…", lambda: self.choose_local(folder))
        menu.addAction("Relocate…", lambda: self.choose(folder))

    def folder_chosen(self, folder: FolderInfo | None) -> None:
        """A folder was chosen in the sidebar: an offline one says why in the status bar."""
        if folder is not None and folder.offline:
            what = (
                "On this computer at… if this computer reaches it elsewhere"
                if self.window.library.is_shared
                else "Relocate… if it moved"
            )
            self.window.statusBar().showMessage(
                f"{folder_name(folder.path)} is offline — {folder.offline}. Its photos "
                f"stay browsable; {what}.",
                15000,
            )

    def _choose_current(self) -> None:
        folder = self.window.current_folder()
        if folder is not None:
            self.choose(folder)

    def _map_current(self) -> None:
        folder = self.window.current_folder()
        if folder is not None:
            self.choose_local(folder)

    def _same_drive_current(self) -> None:
        folder = self.window.current_folder()
        if folder is not None:
            self.same_drive(folder)

    def choose(self, folder: FolderInfo) -> JobWorker | None:
        """Ask where the folder is now, then relocate it there."""
        parent = os.path.dirname(folder.path)
        start = parent if os.path.isdir(parent) else str(Path.home())
        new = QFileDialog.getExistingDirectory(
            self.window, f"Where is {folder_name(folder.path)} now?", start
        )
        return self.relocate(folder, new) if new else None

    def choose_local(self, folder: FolderInfo) -> JobWorker | None:
        """Ask where this computer reaches the folder, then map its root there."""
        local = QFileDialog.getExistingDirectory(
            self.window, f"Where does this computer reach {folder_name(folder.path)}?"
        )
        return self.map_root(folder, local) if local else None

    def map_root(self, folder: FolderInfo, local: str) -> JobWorker | None:
        """`Library.map_root(folder, local)` in a worker (it reads the folders)."""
        library = self.window.library
        stored = library.roots().to_stored(folder.path)  # settings only: no SQL
        return self._start(
            folder,
            lambda: library.map_root(stored, local),
            lambda _roots: f"{folder_name(stored)} is at {display_path(local)} on this computer",
            "Cannot use that folder",
        )

    def same_drive(self, folder: FolderInfo) -> JobWorker | None:
        """Re-point the folder to where its drive is mounted now."""
        return self.relocate(folder, folder.same_drive_at) if folder.same_drive_at else None

    def relocate(self, folder: FolderInfo, new: str) -> JobWorker | None:
        """`Library.relocate(folder, new)` in a worker; None while a scan or another
        relocation runs."""
        library, old = self.window.library, folder.path

        def said(result: Relocated) -> str:
            moved = plural(result.photos, "photo")
            return f"{folder_name(old)} is now at {display_path(new)}: {moved} followed it"

        return self._start(
            folder, lambda: library.relocate(old, new), said, "Cannot relocate the folder"
        )

    def _start(
        self,
        folder: FolderInfo,
        work: Callable[[], T],
        said: Callable[[T], str],
        refused: str,
    ) -> JobWorker | None:
        """Run `work` (it re-points the folder) in a worker; on success say `said` in the
        status bar and re-read the window; a refusal in a box titled `refused`."""
        window = self.window
        if self.worker is not None or window.worker is not None:
            window.statusBar().showMessage("Wait for the running scan to finish.", 5000)
            return None

        def done(result: T) -> None:
            self.worker = None
            window.statusBar().showMessage(said(result), 15000)
            window._files_changed()  # the counts, the sidebar and the photos' paths
            window.live.rescan([folder.id])  # it may have changed while out of sight

        def failed(exc: Exception) -> None:
            self.worker = None
            window._update_actions()
            QMessageBox.warning(window, refused, describe(exc))

        self.worker = call(work, done, failed)
        window._update_actions()
        return self.worker
