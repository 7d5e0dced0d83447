"""Live folders: the library folders are watched while the app runs, and what
changes in them is indexed as soon as it has settled.

`LiveFolders` belongs to the main window. While `settings.watch_folders` is on it
keeps one `FolderWatcher` (core/watcher.py) of the library's folders. The watcher
is made by `Library.folder_watcher`, which reads the folders (SQL), so it is built
and started in a worker; a QTimer then takes its settled batches every `POLL_MS`
(`take()` runs no SQL and costs next to nothing). Each batch is scanned by
`Library.scan_batch` as an ordinary scan job, through the window's scan path: the
status bar shows its progress with Cancel, and only one scan runs at a time. A
batch that arrives while a scan, a file operation or a relocation runs waits,
merged with those after it, and runs once that is over. After each batch the
window refreshes as after any scan and the Auto-folders view re-reads its new
photos, so a photo copied into a library folder shows up by itself.

The watcher is built anew whenever the library's folders change (the window
hands over every folder list it reads: added, removed, relocated), stopped at
once when the setting is turned off, and stopped for good when the window
closes (`shutdown`: its threads end before the window is gone).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel

from dino_desktop.core.progress import CancelToken, Job
from dino_desktop.core.records import FolderInfo, LibraryBusy, ScanResult
from dino_desktop.core.watcher import DEBOUNCE_S, Batch, FolderWatcher
from dino_desktop.gui.common import plural
from dino_desktop.gui.workers import JobWorker, alive, call, describe

if TYPE_CHECKING:
    from dino_desktop.gui.main_window import MainWindow

log = logging.getLogger(__name__)

POLL_MS = 250
BUSY_RETRY_S = 2.0  # another program holds the library's write lock: try again after this
TIP = (
    "Live folders: photos added to, changed in or removed from the library folders are "
    "indexed as it happens. Turn it off in Settings."
)

Folders = frozenset[tuple[int, str]]


def merge(older: Batch | None, newer: Batch) -> Batch:
    """One batch for two taken one after the other: every folder and settled path of
    both; the files still held are the newer batch's (the older one's have settled
    into it since, or are gone)."""
    if older is None:
        return newer
    return Batch(
        older.folder_ids | newer.folder_ids,
        older.paths | newer.paths,
        newer.held,
        older.polled and newer.polled,
    )


def live_note(result: ScanResult) -> str:
    """The status line after a batch ("" when it changed nothing worth a word):
    "Live folders: 1 new (IMG_1.jpg) · 2 moved · 1 gone · 1 embedded"."""
    if result.cancelled:
        return "Live folders: stopped; the rest is indexed by the next scan (F5)"
    added = [p for what, p, _ in result.changes if what == "added"]
    parts = []
    if result.added:
        one = f" ({os.path.basename(added[0])})" if result.added == 1 and added else ""
        parts.append(f"{result.added:,} new{one}")
    for count, word in (
        (result.updated, "changed"),
        (result.moved, "moved"),
        (result.removed, "gone"),
        (result.embedded, "embedded"),
    ):
        if count:
            parts.append(f"{count:,} {word}")
    parts.extend(f"{os.path.basename(p) or p} is offline" for p in result.offline)
    # The scan's warnings, but not again why an offline folder was skipped.
    parts.extend(w for w in result.warnings if not any(p in w for p in result.offline))
    return "Live folders: " + " · ".join(parts) if parts else ""


class _Running:
    """The running watcher, shared with the worker that starts it. A plain object
    (not a QObject), so a worker may use it even after the window is gone."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0
        self.watcher: FolderWatcher | None = None

    def start(self, generation: int, watcher: FolderWatcher) -> bool:
        """Start `watcher` as the running one, unless it was called off meanwhile."""
        with self.lock:
            if generation != self.generation:
                return False
            watcher.start()
            self.watcher = watcher
            return True

    def end(self) -> FolderWatcher | None:
        """Forget the running watcher (the caller stops it); a start on its way is called off."""
        with self.lock:
            self.generation += 1
            watcher, self.watcher = self.watcher, None
            return watcher


class LiveFolders(QObject):
    """Watches the library's folders while the setting is on; see the module docstring."""

    batch_done = Signal(object)  # the ScanResult of a live batch, after the window refreshed

    def __init__(
        self, window: MainWindow, *, debounce: float = DEBOUNCE_S, poll_ms: int = POLL_MS
    ) -> None:
        super().__init__(window)
        self.window = window
        self.library = window.library
        self.debounce = debounce
        self._running = _Running()
        self._watching: Folders | None = None  # what the running (or starting) watcher covers
        self._known: Folders | None = None  # the library's folders as last read
        self._starting: JobWorker | None = None
        self._queued: Batch | None = None
        self.job: JobWorker | None = None  # the live batch scanning now
        self._retry_at = 0.0
        self._closed = False
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self._tick)
        self.label = QLabel()
        self.label.setToolTip(TIP)
        self.label.setVisible(False)
        window.statusBar().insertPermanentWidget(0, self.label)

    # ---- what the window calls ---------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether folders are to be watched (the setting, until the window closes)."""
        return bool(self.library.settings.watch_folders) and not self._closed

    def watching(self) -> bool:
        """Whether a watcher runs now."""
        return self._running.watcher is not None

    def watched_folders(self) -> Folders:
        """The (folder id, path) pairs the running watcher covers (none when it is off)."""
        watcher = self._running.watcher
        if watcher is None:
            return frozenset()
        return frozenset((root.folder_id, root.path) for root in watcher.roots)

    def waiting(self) -> bool:
        """Whether a batch waits for its scan (e.g. while another scan runs)."""
        return self._queued is not None

    def folders_known(self, folders: Iterable[FolderInfo]) -> None:
        """The library's folders as the window last read them: the watcher is built
        anew when they are not the ones it watches (added, removed, relocated)."""
        self._known = frozenset((f.id, f.path) for f in folders)
        if self.enabled and self._known != self._watching:
            self._restart()

    def setting_changed(self) -> None:
        """`settings.watch_folders` was changed (and saved): watch, or stop at once."""
        if not self.enabled:
            self._stop()
            self._queued = None
        elif self._watching is None and self._known is not None:
            self._restart()
            self.rescan(fid for fid, _ in self._known)  # what changed while it was off

    def rescan(self, folder_ids: Iterable[int]) -> None:
        """Scan these folders as a live batch (e.g. one relocated: it may have changed
        while the library could not see it). Nothing when folders are not watched."""
        if self.enabled:
            ids = frozenset(folder_ids)
            self._queued = merge(self._queued, Batch(ids, frozenset(), frozenset(), True))

    def shutdown(self) -> None:
        """Stop watching for good (the window closes): the watcher's threads end here."""
        self._closed = True
        self.timer.stop()
        self._queued = None
        watcher = self._running.end()
        if watcher is not None:
            watcher.stop()

    # ---- the watcher ---------------------------------------------------------------

    def _restart(self) -> None:
        self._stop()
        wanted = self._known or frozenset()
        self._watching = wanted
        if not wanted:
            return  # nothing to watch until a folder is added
        running, library, debounce = self._running, self.library, self.debounce
        generation = running.generation

        def build() -> FolderWatcher | None:
            watcher = library.folder_watcher(debounce=debounce)  # reads the folders: here
            return watcher if running.start(generation, watcher) else None

        self._starting = call(build, self._started, self._start_failed)

    def _started(self, watcher: FolderWatcher | None) -> None:
        if not alive(self):  # the window is gone (it stops the watcher when it closes)
            return
        self._starting = None
        if watcher is None or watcher is not self._running.watcher:
            return  # called off (stopped, or built anew) while it was starting
        self._watching = self.watched_folders()
        queued = self._queued
        if queued is not None:  # only folders still in the library
            ids = queued.folder_ids & {fid for fid, _ in self._watching}
            self._queued = Batch(ids, queued.paths, queued.held, queued.polled) if ids else None
        self.timer.start()
        self._show_state(watcher)

    def _start_failed(self, exc: Exception) -> None:
        if not alive(self):
            return
        self._starting = None
        self.window.statusBar().showMessage(
            f"Live folders: the library folders cannot be watched: {describe(exc)}", 15000
        )

    def _stop(self) -> None:
        self.timer.stop()
        self._watching = None
        self.label.setVisible(False)
        watcher = self._running.end()
        if watcher is not None:
            call(watcher.stop)  # its threads end in a worker: the window stays responsive

    # ---- batches -----------------------------------------------------------------

    def _tick(self) -> None:
        watcher = self._running.watcher
        if watcher is None:
            return
        batch = watcher.take()
        if batch is not None:
            self._queued = merge(self._queued, batch)
        self._show_state(watcher)
        if (
            self._queued is not None
            and self.job is None
            and time.monotonic() >= self._retry_at
            and not _writing(self.window)
        ):
            self._scan(self._queued)

    def _scan(self, batch: Batch) -> None:
        self._queued = None
        library, debounce = self.library, self.debounce

        def make(token: CancelToken) -> Job[ScanResult]:
            return library.scan_batch(batch, debounce=debounce, cancel=token)

        self.job = self.window.run_scan_job(
            make,
            lambda result: self._scanned(batch, result),
            lambda exc: self._failed(batch, exc),
        )

    def _scanned(self, batch: Batch, result: ScanResult) -> None:
        if not alive(self):  # a result arriving after the window went
            return
        self.job = None
        window = self.window
        window._scan_finished(result, note=live_note(result))
        watcher = self._running.watcher
        if result.held and watcher is not None and not result.cancelled:
            # Files too new to be known complete: their own events may never come.
            watcher.rescan_later(batch.folder_ids, 2 * self.debounce + 0.1)
        folders = window.folders_view
        if (result.embedded or result.removed or result.moved) and folders.loaded():
            folders.reload()  # newly filed photos show in the Auto-folders view
        self.batch_done.emit(result)

    def _failed(self, batch: Batch, exc: Exception) -> None:
        if not alive(self):
            return
        self.job = None
        self.window.scan_ended()
        if isinstance(exc, LibraryBusy):  # another program writes the library: wait, retry
            self._queued = merge(batch, self._queued) if self._queued else batch
            self._retry_at = time.monotonic() + BUSY_RETRY_S
            message = f"Live folders wait: {describe(exc)}"
        else:
            message = f"Live folders: the changes could not be indexed: {describe(exc)}"
        self.window.statusBar().showMessage(message, 15000)

    def _show_state(self, watcher: FolderWatcher) -> None:
        if watcher.busy() or self._queued is not None:
            text = "Changes arriving…"
        else:
            text = f"Watching {plural(len(watcher.roots), 'folder')}"
        if text != self.label.text():
            self.label.setText(text)
        self.label.setVisible(True)


def _writing(window: MainWindow) -> bool:
    """Whether a scan or something else that writes the library or its files runs
    (a live batch waits for it)."""
    return (
        window.worker is not None
        or window.file_worker is not None
        or window.relocation.worker is not None
        or window.folders_view._busy()
        or window.sorting_view._busy()
        or window.duplicates_view._file_worker is not None
    )
