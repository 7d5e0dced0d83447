"""`ThumbnailLoader`: thumbnails decoded off the GUI thread, newest requests first.

Views ask for the thumbnails of the rows that Qt paints (`request`); a few
threads of the loader's own QThreadPool make or read the cached JPEG
(`core.thumbnails.thumbnail_file`) and decode it into a QImage, which is fine
off the GUI thread. Back on the GUI thread the image becomes a QPixmap in a
bounded in-memory LRU cache (`pixmap`), and `thumbnail_loaded` tells the views.

Scrolling fast through 100,000 photos requests thousands of thumbnails that
are off screen a moment later. So the queue is a stack: the newest request (what
is on screen now) is decoded first, and when the stack grows past
`queue_limit` its oldest requests are dropped. A view that shows a dropped row
again simply asks again, since Qt asks a model for the rows it paints. A
request for a thumbnail that is already queued moves it to the top; one that is
being decoded, or that failed before, is ignored.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QPixmap

from dino_desktop.core.records import PhotoRow
from dino_desktop.core.thumbnails import DEFAULT_EDGE, thumbnail_file

__all__ = ["ThumbnailLoader"]


class _Stamp(NamedTuple):
    """What identifies one version of a photo's file: a cached pixmap of another is stale."""

    path: str
    mtime_ns: int
    size: int


def _stamp(photo: PhotoRow) -> _Stamp:
    return _Stamp(photo.path, photo.mtime_ns, photo.size)


class _Relay(QObject):
    """Carries results from pool threads to the GUI thread.

    It lives in the GUI thread, so Qt queues signals emitted on it from a pool
    thread and runs the connected slots in the GUI thread's event loop.
    """

    decoded = Signal(int, object, QImage)  # image id, _Stamp, image
    failed = Signal(int, object)  # image id, _Stamp


class _Queue:
    """The shared stack of requests, guarded by one lock (GUI thread pushes, pool threads pop)."""

    def __init__(self, limit: int) -> None:
        self.lock = threading.Lock()
        self.limit = limit
        self.stack: OrderedDict[int, _Stamp] = OrderedDict()  # newest last
        self.in_flight: set[int] = set()
        self.running = 0  # drain tasks started and not yet returned
        self.closed = False

    def pop(self) -> tuple[int, _Stamp] | None:
        """The newest request, or None (and one drain task fewer) when there is none."""
        with self.lock:
            if self.closed or not self.stack:
                self.running -= 1
                return None
            image_id, stamp = self.stack.popitem(last=True)
            self.in_flight.add(image_id)
            return image_id, stamp


class _Drain(QRunnable):
    """Decodes requests until the stack is empty; one per pool thread at most.

    Not a `workers.JobWorker`: it emits one result per thumbnail, unthrottled,
    while a JobWorker delivers one result and throttles its progress.
    """

    def __init__(self, queue: _Queue, relay: _Relay, cache_dir: Path, edge: int) -> None:
        super().__init__()
        self._queue = queue
        self._relay = relay
        self._cache_dir = cache_dir
        self._edge = edge

    def run(self) -> None:
        while (item := self._queue.pop()) is not None:
            image_id, stamp = item
            image = self._load(stamp)
            if image is None:
                self._relay.failed.emit(image_id, stamp)
            else:
                self._relay.decoded.emit(image_id, stamp, image)

    def _load(self, stamp: _Stamp) -> QImage | None:
        for attempt in range(2):
            try:
                file = thumbnail_file(self._cache_dir, *stamp, edge=self._edge)
            except Exception:
                # ImageError (unreadable photo) or OSError (cache not writable):
                # either way this photo shows the "broken" placeholder.
                return None
            image = QImage(str(file))
            if not image.isNull():
                return image
            if attempt == 0:
                # A cached file that Qt cannot read (damaged on disk): make it again once.
                file.unlink(missing_ok=True)
        return None


class ThumbnailLoader(QObject):
    """Loads thumbnails of `PhotoRow`s on a small thread pool and keeps recent ones as pixmaps.

    Use it from the GUI thread only (its results arrive there). Call `shutdown()`
    before the application quits, or before a test ends: it waits for the pool.
    """

    thumbnail_loaded = Signal(int, QImage)  # image id, the thumbnail (longest side `edge`)
    thumbnail_failed = Signal(int)  # image id: the photo could not be read

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        edge: int = DEFAULT_EDGE,
        threads: int | None = None,
        cache_size: int = 1000,
        queue_limit: int = 300,
        parent: QObject | None = None,
    ) -> None:
        """`cache_dir`: the library's cache folder (`Library.paths.cache_dir`).

        `cache_size` bounds the pixmaps kept in memory (a 256-px thumbnail takes
        ~200 KB, so 1,000 take ~200 MB at most; most photos are smaller than
        square). `queue_limit` bounds the waiting requests; keep it above the
        number of thumbnails a screen shows at the smallest zoom.
        """
        super().__init__(parent)
        self.cache_dir = Path(cache_dir)
        self.edge = edge
        self.cache_size = max(1, cache_size)
        self._pixmaps: OrderedDict[int, tuple[_Stamp, QPixmap]] = OrderedDict()
        self._failed: dict[int, _Stamp] = {}
        self._queue = _Queue(max(1, queue_limit))
        # A few threads: decoding a thumbnail releases the GIL, but more threads
        # than cores would only slow down a scan running at the same time.
        self._threads = threads or max(2, min(4, (os.cpu_count() or 2) // 2))
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(self._threads)
        self._relay = _Relay(self)
        self._relay.decoded.connect(self._on_decoded)
        self._relay.failed.connect(self._on_failed)

    # ---- lookups (GUI thread) ------------------------------------------------

    def pixmap(self, photo: PhotoRow) -> QPixmap | None:
        """The thumbnail of this version of the photo if it is in memory (and mark it recent)."""
        hit = self._pixmaps.get(photo.id)
        if hit is None or hit[0] != _stamp(photo):
            return None
        self._pixmaps.move_to_end(photo.id)
        return hit[1]

    def has_failed(self, photo: PhotoRow) -> bool:
        """Whether this version of the photo could not be read (it is not retried)."""
        return self._failed.get(photo.id) == _stamp(photo)

    def pending_count(self) -> int:
        """Requests waiting or being decoded."""
        with self._queue.lock:
            return len(self._queue.stack) + len(self._queue.in_flight)

    # ---- requests ------------------------------------------------------------

    def request(self, photo: PhotoRow) -> None:
        """Load a photo's thumbnail in the background unless it is cached, failed or in progress.

        `thumbnail_loaded` or `thumbnail_failed` follows, from the event loop.
        """
        stamp = _stamp(photo)
        if self.pixmap(photo) is not None or self._failed.get(photo.id) == stamp:
            return
        queue = self._queue
        with queue.lock:
            if queue.closed or photo.id in queue.in_flight:
                return
            queue.stack[photo.id] = stamp
            queue.stack.move_to_end(photo.id)  # asked again: it is on screen now
            while len(queue.stack) > queue.limit:
                queue.stack.popitem(last=False)  # the oldest request scrolled away long ago
            start = queue.running < self._threads
            if start:
                queue.running += 1
        if start:
            self._pool.start(_Drain(queue, self._relay, self.cache_dir, self.edge))

    def reserve(self, visible: int) -> None:
        """Make room for `visible` thumbnails on screen at once (raises the bounds, never lowers).

        The memory cache must hold a screenful, or painting would evict what it
        just loaded, and the queue must too, or a first paint would drop the
        requests of its own first rows.
        """
        self.cache_size = max(self.cache_size, 2 * visible)
        with self._queue.lock:
            self._queue.limit = max(self._queue.limit, 2 * visible)

    def cancel_pending(self) -> None:
        """Forget every waiting request (those being decoded still finish)."""
        with self._queue.lock:
            self._queue.stack.clear()

    def clear_cache(self) -> None:
        """Drop the in-memory pixmaps and remembered failures (the disk cache stays)."""
        self._pixmaps.clear()
        self._failed.clear()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Stop taking requests, drop the waiting ones and wait for the pool's threads.

        Returns False when a decode was still running after `timeout_ms`.
        """
        with self._queue.lock:
            self._queue.closed = True
            self._queue.stack.clear()
        return self._pool.waitForDone(timeout_ms)

    # ---- results (GUI thread) ------------------------------------------------

    @Slot(int, object, QImage)
    def _on_decoded(self, image_id: int, stamp: _Stamp, image: QImage) -> None:
        with self._queue.lock:
            self._queue.in_flight.discard(image_id)
        # QPixmap only here, on the GUI thread.
        self._pixmaps[image_id] = (stamp, QPixmap.fromImage(image))
        self._pixmaps.move_to_end(image_id)
        while len(self._pixmaps) > self.cache_size:
            self._pixmaps.popitem(last=False)
        self._failed.pop(image_id, None)
        self.thumbnail_loaded.emit(image_id, image)

    @Slot(int, object)
    def _on_failed(self, image_id: int, stamp: _Stamp) -> None:
        with self._queue.lock:
            self._queue.in_flight.discard(image_id)
        self._failed[image_id] = stamp
        self.thumbnail_failed.emit(image_id)
