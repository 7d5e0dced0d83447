"""The files the library does not index: those that could not be read, with the
reason for each (`FailedFilesDialog`), and the videos and sidecars that go with no
photo (`LooseFilesDialog`)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.records import ImageRecord
from dino_desktop.gui.common import plural
from dino_desktop.gui.models import display_path


class _FileListDialog(QDialog):
    """A note above a two-column list of files, and Close."""

    def __init__(
        self,
        title: str,
        headers: list[str],
        rows: list[list[str]],
        note_text: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(820, 420)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(headers)
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.addTopLevelItems([QTreeWidgetItem(row) for row in rows])
        note = QLabel(note_text)
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)


class FailedFilesDialog(_FileListDialog):
    def __init__(self, records: list[ImageRecord], parent: QWidget | None = None) -> None:
        super().__init__(
            "Files that could not be read",
            ["File", "Why it could not be read"],
            [[r.path, r.error or ""] for r in records],
            f"{len(records)} files were skipped. They stay where they are; fix or replace "
            "them and rescan (F5) to index them.",
            parent,
        )


class LooseFilesDialog(_FileListDialog):
    """Videos that are no photo's companion and sidecars of no photo, as the last scans
    found them (`Library.loose_files`, read in a worker by the main window)."""

    def __init__(
        self, videos: list[str], orphans: list[str], parent: QWidget | None = None
    ) -> None:
        super().__init__(
            "Files that are not indexed",
            ["File", "What it is"],
            [[display_path(p), "video of no photo"] for p in videos]
            + [[display_path(p), "sidecar of no photo"] for p in orphans],
            f"{plural(len(videos), 'video')} and {plural(len(orphans), 'sidecar')} belong to "
            "no photo, so they are not indexed. They stay where they are. A video next to a "
            "photo of the same name (a Live Photo) goes with that photo instead.",
            parent,
        )
