"""The list of files that could not be read, with the reason for each."""

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


class FailedFilesDialog(QDialog):
    def __init__(self, records: list[ImageRecord], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Files that could not be read")
        self.resize(820, 420)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["File", "Why it could not be read"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.addTopLevelItems([QTreeWidgetItem([r.path, r.error or ""]) for r in records])
        note = QLabel(
            f"{len(records)} files were skipped. They stay where they are; fix or replace "
            "them and rescan (F5) to index them."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)
