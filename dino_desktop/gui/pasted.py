"""Images pasted from the clipboard to search by: written to `<cache>/pasted/` as
PNG (the search and the viewer need a file), and removed again when no longer
needed, so they do not pile up in the cache.

Only the current search's image is kept: a new paste removes the previous one,
closing the window removes the current one, and at start-up files an earlier
session left behind (it crashed) are removed once they are over a day old
(younger ones may belong to another window open on the same library).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from PySide6.QtGui import QImage

MAX_AGE_S = 24 * 3600
PREFIX = "pasted-"


class PastedImages:
    """The pasted-image files of one window."""

    def __init__(self, cache_dir: Path) -> None:
        self.folder = cache_dir / "pasted"
        self.current: Path | None = None  # the image the current search uses

    def save(self, image: QImage) -> Path:
        """Write `image` as the current pasted file (the previous one is removed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=".png", prefix=PREFIX, dir=self.folder)
        os.close(fd)
        image.save(name)  # PNG, from the suffix
        self.forget()
        self.current = Path(name)
        return self.current

    def forget(self) -> None:
        """Remove the current pasted file, if any."""
        if self.current is not None:
            self.current.unlink(missing_ok=True)
            self.current = None

    def remove_old(self, now: float | None = None) -> int:
        """Remove pasted files over a day old; returns how many went."""
        cutoff = (time.time() if now is None else now) - MAX_AGE_S
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return 0  # no folder yet
        removed = 0
        for entry in entries:
            try:
                if entry.name.startswith(PREFIX) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass  # gone meanwhile, or not ours to remove: harmless
        return removed
