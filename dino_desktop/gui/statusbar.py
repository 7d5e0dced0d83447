"""The main window's permanent status-bar widgets: the library's counts (indexed,
pending, failed), the files it leaves out (videos that are no photo's companion,
sidecars of no photo), the running scan's progress with Cancel, and the line a
finished scan leaves (`scan_summary`).

The counts come from `Library.status`, which the main window reads in a worker;
these widgets only show what arrives.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

from dino_desktop.core.records import ScanResult, Status
from dino_desktop.gui.common import plural

LOOSE_TIP = (
    "Videos that belong to no photo, and sidecar files (.xmp, .aae, .thm) next to no "
    "photo, are not indexed: they stay where they are. Click to list them."
)


def counts_text(status: Status) -> str:
    """ "1,234 indexed · 5 pending · 0 failed", with why the pending wait when it is known."""
    text = f"{status.images:,} indexed · {status.pending:,} pending · {status.failed:,} failed"
    if status.pending and status.workers:  # a shared library: the workers embed them
        text += f" ({plural(status.workers, 'indexing worker')} at work)"
    elif status.pending and status.workers == 0 and status.weights is None:
        text += " (no indexing worker is running: start dino-desktop worker)"
    elif status.pending and status.weights is None:
        text += " (model weights not installed)"
    return text


def loose_text(status: Status) -> str:
    """ "3 videos not indexed · 1 sidecar without a photo" ("" when there are none)."""
    parts = []
    if status.videos:
        parts.append(f"{plural(status.videos, 'video')} not indexed")
    if status.orphan_sidecars:
        parts.append(f"{plural(status.orphan_sidecars, 'sidecar')} without a photo")
    return " · ".join(parts)


def scan_summary(result: ScanResult) -> str:
    """The status line after a scan: what changed (and the scan's warnings)."""
    changed = result.added or result.updated or result.removed or result.embedded
    if not changed and not result.cancelled:
        note = f"Library up to date: {result.unchanged:,} files checked, nothing changed"
    else:
        note = (
            f"Scan {'stopped' if result.cancelled else 'finished'}: {result.added:,} new, "
            f"{result.updated:,} changed, {result.removed:,} gone, "
            f"{result.embedded:,} embedded"
        )
    if result.warnings:
        note += " · " + "; ".join(result.warnings)
    return note


def _link_button(clicked: Callable[[], object]) -> QPushButton:
    button = QPushButton()
    button.setFlat(True)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    button.clicked.connect(lambda _checked=False: clicked())
    return button


class StatusWidgets:
    """Adds the permanent widgets to `bar`; the window keeps them as its attributes."""

    def __init__(
        self,
        bar: QStatusBar,
        *,
        show_failed: Callable[[], object],
        show_loose: Callable[[], object],
        cancel: Callable[[], object],
    ) -> None:
        self.counts_label = QLabel()
        self.failed_button = _link_button(show_failed)
        self.loose_button = _link_button(show_loose)
        self.loose_button.setToolTip(LOOSE_TIP)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda _checked=False: cancel())
        # Permanent widgets: temporary messages ("Moved to the trash — Undo…")
        # show on the left without hiding or overlapping the counts.
        for widget in (
            self.counts_label,
            self.failed_button,
            self.loose_button,
            self.progress_label,
            self.progress,
            self.cancel_button,
        ):
            bar.addPermanentWidget(widget)
        self.loose_button.setVisible(False)

    def show_counts(self, status: Status) -> None:
        self.counts_label.setText(counts_text(status))
        self.failed_button.setText(
            f"{plural(status.failed, 'file')} could not be read" if status.failed else ""
        )
        self.failed_button.setVisible(bool(status.failed))
        loose = loose_text(status)
        self.loose_button.setText(loose)
        self.loose_button.setVisible(bool(loose))

    def show_busy(self, busy: bool) -> None:
        for widget in (self.progress, self.progress_label, self.cancel_button):
            widget.setVisible(busy)
        if not busy:
            self.progress.reset()
            self.progress_label.clear()
