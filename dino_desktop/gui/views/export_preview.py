"""The export preview of both export views (Auto-folders, Sort by example), and
their "Export as" choice.

The plan is read in the view's worker through `Library.plan_with_companions`, so
it is exactly what the export will write: each photo's source and destination,
and the companion files (RAW original, Live Photo video, sidecars) written with
it under the same new name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.records import EXPORT_MODES
from dino_desktop.gui.common import also_moves, plural
from dino_desktop.gui.models import display_path

__all__ = ["MODE_LABELS", "ExportPreviewDialog", "PreviewPlan", "export_mode_combo"]

MODE_LABELS: dict[str, str] = {
    "copy": "Copy",
    "hardlink": "Hard link",
    "symlink": "Symbolic link",
    "move": "Move",
}
# "Also copies IMG_1.CR3, ...": what each mode does to the companions.
MODE_VERBS: dict[str, str] = {
    "copy": "copies",
    "hardlink": "links",
    "symlink": "links",
    "move": "moves",
}

PreviewPlan = Sequence[tuple[str, str, Sequence[tuple[str, str]]]]
"""(source, destination, [(companion source, companion destination)]) per photo."""


def export_mode_combo() -> QComboBox:
    """The "Export as" choice of both export views: copy, hard link, symbolic link, move."""
    combo = QComboBox()
    for mode in EXPORT_MODES:
        combo.addItem(MODE_LABELS.get(mode, mode), mode)
    return combo


class ExportPreviewDialog(QDialog):
    """Lists every photo the export will write (source → destination) with the files
    that go with it; OK starts it."""

    def __init__(self, plan: PreviewPlan, mode: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export auto-folders")
        verb = MODE_LABELS.get(mode, mode).lower()
        companions = [src for _, _, group in plan for src, _ in group]
        text = f"{plural(len(plan), 'file')} will be written ({verb})"
        if companions:
            text += (
                f", and {plural(len(companions), 'companion file')} with them. "
                f"{also_moves(companions, MODE_VERBS.get(mode, 'writes'))}"
            )
        self.summary = QLabel(f"{text}. Nothing is overwritten; you can undo with Ctrl+Z.")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(len(plan), 3)
        self.table.setHorizontalHeaderLabels(["Source", "Destination", "Goes with it"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        for row, (src, dst, group) in enumerate(plan):
            self.table.setItem(row, 0, QTableWidgetItem(src))
            self.table.setItem(row, 1, QTableWidgetItem(dst))
            if group:
                # Names as written (a companion takes its photo's new name).
                names = ", ".join(display_path(os.path.basename(d)) for _, d in group)
                item = QTableWidgetItem(names)
                item.setToolTip("\n".join(f"{s} → {d}" for s, d in group))
                self.table.setItem(row, 2, item)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(900, 500)
