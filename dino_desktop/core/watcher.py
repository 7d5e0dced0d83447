"""Live folders: hear of changes under the library folders and say when they settled.

`FolderWatcher` turns file-system events (watchdog: inotify, FSEvents,
ReadDirectoryChangesW) into `Batch`es of library folders to rescan. It does no
SQL and runs no scan itself: the caller (the headless `watch` loop in
`Library.watch`, or the GUI's live-folders controller) takes a batch and runs an
incremental scan of those folders, holding back the files in `Batch.held`.
That scan is cheap for an unchanged file (one stat) and recognises moves by
content (core/identity.py), so a burst of events costs one scan, not one per
event, and a rename never re-embeds.

A file is settled when no event came for it for `debounce` seconds and two
stats that far apart agree on its size and mtime. Where the platform reports
closes (inotify), a file opened for writing is also not settled before it is
closed (or quiet for `open_timeout`), so a slow copy is indexed once, complete.
A file that is not settled is held: the scan neither indexes it nor drops its
row, and its own later events bring it in.

Folders on network filesystems (NFS, SMB, sshfs: other machines' changes send
no events here) and folders whose watch could not be set up are polled: a batch
every `poll_interval` seconds, the scan being the poll. A library folder that
vanishes while watched (a drive unplugged) yields a batch (the scan then marks
it offline and keeps every row) and is watched again when it comes back.
Hidden files, the library's own folder and excluded paths are ignored;
registered folders nested inside another are watched as their own folders.
A lost-events notice (the kernel's queue overflowed in a flood) rescans the
folder as a whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dino_desktop.core.companions import COMPANION_EXTENSIONS
from dino_desktop.core.images import IMAGE_EXTENSIONS
from dino_desktop.core.volumes import is_below, volume_of

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.5
OPEN_TIMEOUT_S = 30.0  # a file open for writing this long with no event is taken as it is
POLL_INTERVAL_S = 300.0  # network folders: a rescan every 5 minutes
_TICK_S = 0.1
_WANTED = IMAGE_EXTENSIONS | COMPANION_EXTENSIONS


@dataclass(frozen=True, slots=True)
class Batch:
    """Library folders to rescan now, and the paths the scan must leave alone."""

    folder_ids: frozenset[int]
    paths: frozenset[str]  # the settled paths that caused it (may be empty: a poll)
    held: frozenset[str]  # files still being written: not indexed, rows kept
    polled: bool = False


@dataclass(slots=True)
class _Pending:
    last_event: float
    stat: tuple[int, int] | bool | None = False  # False: not looked at yet
    writing: bool = False
    folder_id: int = 0


@dataclass(slots=True)
class _Root:
    folder_id: int
    path: str
    watch: Any = None  # the watchdog ObservedWatch, when events come
    polled: bool = False
    next_poll: float = 0.0
    present: bool = True


@dataclass(slots=True)
class _State:
    pending: dict[str, _Pending] = field(default_factory=dict)
    ready: dict[str, int] = field(default_factory=dict)  # settled path -> folder id
    rescan: set[int] = field(default_factory=set)  # folders to rescan whole
    later: list[tuple[float, frozenset[int]]] = field(default_factory=list)  # (when, folders)


class FolderWatcher:
    """Watches library folders; `wait` / `take` return settled `Batch`es. Thread-safe."""

    def __init__(
        self,
        folders: Iterable[tuple[int, str]],
        *,
        exclude: Iterable[str] = (),
        debounce: float = DEBOUNCE_S,
        poll_interval: float = POLL_INTERVAL_S,
        open_timeout: float = OPEN_TIMEOUT_S,
        force_polling: bool = False,
    ) -> None:
        self.roots = [_Root(fid, path) for fid, path in folders]
        self.exclude = [os.path.abspath(p) for p in exclude]
        self.debounce = debounce
        self.poll_interval = poll_interval
        self.open_timeout = open_timeout
        self.force_polling = force_polling
        self._state = _State()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._observer: Any = None
        self._ticker: threading.Thread | None = None
        self._stopped = threading.Event()
        self._closes = False  # whether the platform reports closes (inotify)

    # ---- life cycle ------------------------------------------------------------

    def start(self) -> None:
        from watchdog.observers import Observer

        self._observer = Observer()
        self._observer.daemon = True
        self._closes = "inotify" in type(self._observer).__name__.lower()
        for root in self.roots:
            self._attach(root)
        self._observer.start()
        self._ticker = threading.Thread(target=self._run, name="watch-settle", daemon=True)
        self._ticker.start()
        for root in self.roots:
            how = "polled" if root.polled else "watched"
            log.info("watch: %s %s", how, root.path)

    def stop(self) -> None:
        self._stopped.set()
        with self._wake:
            self._wake.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _attach(self, root: _Root) -> None:
        root.present = os.path.isdir(root.path)
        if not root.present:
            return
        network = False
        with contextlib.suppress(OSError):
            network = volume_of(root.path).network
        if network or self.force_polling:
            root.polled = True
            root.next_poll = time.monotonic() + self.poll_interval
            return
        try:
            root.watch = self._observer.schedule(_Handler(self), root.path, recursive=True)
            root.polled = False
        except OSError as exc:  # e.g. out of inotify watches: poll instead
            log.warning("watch: cannot watch %s (%s); polling it instead", root.path, exc)
            root.polled = True
            root.next_poll = time.monotonic() + self.poll_interval

    # ---- events (watchdog's thread) -------------------------------------------

    def owner(self, path: str) -> int | None:
        """The innermost watched folder holding `path`, if the path matters to the library."""
        best: _Root | None = None
        for root in self.roots:
            if is_below(path, root.path) and (best is None or len(root.path) > len(best.path)):
                best = root
        if best is None or any(is_below(path, ex) for ex in self.exclude):
            return None
        rel = path[len(best.path) :].lstrip(os.sep)
        if any(part.startswith(".") for part in rel.split(os.sep) if part):
            return None
        return best.folder_id

    def note(self, path: str, *, is_dir: bool, kind: str) -> None:
        """Record an event on `path` (kind: created, modified, closed, deleted, moved)."""
        if not is_dir:
            dot = path.rfind(".")
            if dot < 0 or path[dot:].lower() not in _WANTED:
                return
        folder_id = self.owner(path)
        if folder_id is None:
            return
        with self._wake:
            state = self._state
            state.ready.pop(path, None)
            entry = state.pending.get(path)
            if entry is None:
                entry = state.pending[path] = _Pending(time.monotonic(), folder_id=folder_id)
            entry.last_event = time.monotonic()
            entry.stat = False
            if kind == "modified" and not is_dir and self._closes:
                # Written to: open for writing until its close event. (A bare "created"
                # may be a complete file moved in, for which no close comes; a copy's
                # writes follow at once, and an empty file is not taken as settled.)
                entry.writing = True
            elif kind in ("closed", "deleted", "moved"):
                entry.writing = False

    def rescan_later(self, folder_ids: Iterable[int], delay: float) -> None:
        """Ask for a batch of these folders in `delay` seconds (a scan held back files
        that were too new to be known complete: their events may never come)."""
        with self._wake:
            self._state.later.append((time.monotonic() + delay, frozenset(folder_ids)))

    def lost_events(self, path: str | None) -> None:
        """The kernel dropped events (queue overflow): rescan the folders concerned whole."""
        with self._wake:
            ids = [self.owner(path)] if path else [r.folder_id for r in self.roots]
            self._state.rescan.update(i for i in ids if i is not None)
            self._wake.notify_all()
        log.warning("watch: events were lost under %s; rescanning", path or "every folder")

    # ---- settling (the ticker thread) -------------------------------------------

    def _run(self) -> None:
        while not self._stopped.wait(_TICK_S):
            try:
                self._tick()
            except Exception:  # the watcher must outlive one bad tick
                log.exception("watch: settling failed")

    def _tick(self) -> None:
        now = time.monotonic()
        with self._wake:
            due = [
                (path, entry, entry.last_event)
                for path, entry in self._state.pending.items()
                if now - entry.last_event >= self.debounce
            ]
        settled: list[tuple[str, _Pending, float]] = []
        for path, entry, seen in due:
            if entry.writing and now - seen < self.open_timeout:
                continue  # open for writing: wait for its close event
            stat = _stat(path)
            if stat is not None and stat[0] == 0 and now - seen < self.open_timeout:
                continue  # created, not written yet
            if entry.stat is not False and stat == entry.stat:
                settled.append((path, entry, seen))
                continue
            with self._wake:
                if self._state.pending.get(path) is entry and entry.last_event == seen:
                    # Changed since the last look (or first look): one more quiet period.
                    entry.stat = stat
                    entry.last_event = now
        rescan: set[int] = set()
        for root in self.roots:
            present = os.path.isdir(root.path)
            if present != root.present:
                # A drive unplugged or plugged back: rescan (offline or back), re-watch.
                rescan.add(root.folder_id)
                if root.watch is not None:
                    with contextlib.suppress(KeyError, OSError):
                        self._observer.unschedule(root.watch)
                    root.watch = None
                self._attach(root)
                log.info("watch: %s is %s", root.path, "back" if present else "gone")
            elif root.polled and present and now >= root.next_poll:
                root.next_poll = now + self.poll_interval
                rescan.add(root.folder_id)
        with self._wake:
            due_later = [ids for when, ids in self._state.later if when <= now]
            self._state.later = [(w, ids) for w, ids in self._state.later if w > now]
            for ids in due_later:
                rescan |= ids
            for path, entry, seen in settled:
                # Only if no event came meanwhile (else it waits for the next quiet period).
                if self._state.pending.get(path) is entry and entry.last_event == seen:
                    del self._state.pending[path]
                    self._state.ready[path] = entry.folder_id
            self._state.rescan |= rescan
            if self._state.ready or self._state.rescan:
                self._wake.notify_all()

    # ---- taking batches ---------------------------------------------------------

    def take(self) -> Batch | None:
        """The settled changes so far as one batch, or None when nothing settled."""
        with self._wake:
            return self._take_locked()

    def wait(self, timeout: float) -> Batch | None:
        """As `take`, waiting up to `timeout` seconds for something to settle."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while not self._stopped.is_set():
                batch = self._take_locked()
                if batch is not None:
                    return batch
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._wake.wait(left)
        return None

    def _take_locked(self) -> Batch | None:
        state = self._state
        if not state.ready and not state.rescan:
            return None
        polled = bool(state.rescan) and not state.ready
        batch = Batch(
            frozenset(state.ready.values()) | frozenset(state.rescan),
            frozenset(state.ready),
            frozenset(state.pending),
            polled,
        )
        state.ready.clear()
        state.rescan.clear()
        return batch

    def busy(self) -> bool:
        """Whether changes are still settling (the GUI shows it)."""
        with self._wake:
            return bool(self._state.pending)


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


class _Handler:
    """watchdog's event handler: forwards the events that matter to the watcher."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: Any) -> None:
        kind = event.event_type
        if kind == "overflow" or type(event).__name__ == "EventsLostEvent":
            self.watcher.lost_events(None)
            return
        if kind in ("opened", "closed_no_write") or (event.is_directory and kind == "modified"):
            return  # a directory's own mtime changes with every child: no news
        names = {"closed": "closed", "created": "created", "modified": "modified"}
        name = names.get(kind, "moved" if kind == "moved" else "deleted")
        if getattr(event, "is_synthetic", False):
            # Made up by watchdog for the contents of a folder that appeared (moved in):
            # those files are complete, no close event will come for them.
            name = "closed"
        self.watcher.note(os.fsdecode(event.src_path), is_dir=event.is_directory, kind=name)
        dest = getattr(event, "dest_path", "")
        if dest:
            self.watcher.note(os.fsdecode(dest), is_dir=event.is_directory, kind="closed")
