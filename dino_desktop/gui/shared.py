"""The GUI's side of a shared library: other clients' changes, and connecting to one.

`OtherClients` belongs to the main window of a shared library: it hears the
other desktops' and workers' commits (`Library.listen`, core/changes.py) on a
thread of its own and hands them to the GUI thread through a queued signal;
the window then re-reads its counts and the photo grid, as after its own
scans, so a photo trashed or added on another desktop disappears or appears
here within a second or two. Nothing reads SQL on the GUI thread: the re-reads
are the window's usual workers.

`ConnectDialog` is File > "Connect to a shared library…": a URL, a connection
test (run in a worker, so a server that does not answer cannot freeze the
window) that says what it found or, in one line, what is wrong (server down,
wrong password, no pgvector, a newer release's library), and Connect, which
opens the library in a worker and hands it to the app (`connected`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.library import Library
from dino_desktop.gui.workers import JobWorker, call, describe

if TYPE_CHECKING:
    from dino_desktop.core.changes import Changes
    from dino_desktop.gui.main_window import MainWindow

log = logging.getLogger(__name__)

SETTING = "library/shared_url"
"""Where the app remembers the shared library it was last connected to (QSettings)."""
GRID_TABLES = frozenset({"images", "folders", "companions", "embeddings"})
CLUSTER_TABLES = frozenset({"cluster_runs", "clusters", "cluster_members", "cluster_exclusions"})
SORT_TABLES = frozenset({"sort_labels", "sort_examples"})
PLACEHOLDER = "postgresql://user:password@server/database"


class OtherClients(QObject):
    """Refreshes a shared library's window when another client commits a change."""

    changed = Signal(object)  # frozenset[str]: the tables changed, from the listener

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.heard = 0  # changes applied: what a test waits for
        self.changed.connect(self._apply)  # queued: emitted on the listener's thread
        self._changes: Changes | None = window.library.listen(self.changed.emit)

    def _apply(self, tables: frozenset[str]) -> None:
        self.heard += 1
        log.debug("another client changed %s", ", ".join(sorted(tables)))
        window = self._window
        window.refresh()
        if tables & GRID_TABLES:
            window.photos_view.refresh()
        # Another client's auto-folder run, rename or merge; its sort labels.
        if tables & CLUSTER_TABLES and window.folders_view.loaded():
            window.folders_view.reload()
        if tables & SORT_TABLES:
            window.sorting_view.reload()

    def shutdown(self) -> None:
        if self._changes is not None:
            self._changes.stop()
            self._changes = None


class ConnectDialog(QDialog):
    """Test and open a shared library by its URL; `connected` carries the Library."""

    connected = Signal(object)

    def __init__(self, parent: QWidget | None = None, url: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to a shared library")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "A shared library lives on a PostgreSQL server (16 or newer, with pgvector), "
            "so several computers can browse one photo archive and another machine can "
            "index it (<code>dino-desktop worker</code>). A password can also go in "
            "<code>~/.pgpass</code> instead of the URL."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.url = QLineEdit(url or str(QSettings().value(SETTING, "") or ""))
        self.url.setPlaceholderText(PLACEHOLDER)
        layout.addWidget(self.url)
        self.test_button = QPushButton("Test connection")
        layout.addWidget(self.test_button)
        self.answer = QLabel("")
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.answer)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Connect")
        layout.addWidget(self.buttons)
        self.test_button.clicked.connect(self.test)
        self.buttons.accepted.connect(self.connect_library)
        self.buttons.rejected.connect(self.reject)
        self.worker: JobWorker | None = None

    def _busy(self, text: str) -> bool:
        url = self.url.text().strip()
        if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            self.answer.setText(f"A shared library's address looks like {PLACEHOLDER}")
            return False
        self.answer.setText(text)
        self.test_button.setEnabled(False)
        self.buttons.setEnabled(False)
        return True

    def _idle(self) -> None:
        self.worker = None
        self.test_button.setEnabled(True)
        self.buttons.setEnabled(True)

    def test(self) -> None:
        if not self._busy("Testing…"):
            return
        from dino_desktop.core.library import test_shared

        url = self.url.text().strip()
        self.worker = call(lambda: test_shared(url), self._tested, self._failed)

    def _tested(self, found: str) -> None:
        self._idle()
        self.answer.setText(f"Connected: {found}.")

    def _failed(self, exc: Exception) -> None:
        self._idle()
        log.warning("shared library connection failed: %s", exc)
        self.answer.setText(f"Cannot connect: {describe(exc)}")

    def connect_library(self) -> None:
        if not self._busy("Opening the library…"):
            return
        url = self.url.text().strip()
        self.worker = call(lambda: Library(url), self._opened, self._failed)

    def _opened(self, library: Library) -> None:
        self._idle()
        QSettings().setValue(SETTING, library.paths.url)
        self.connected.emit(library)
        self.accept()
