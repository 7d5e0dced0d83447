"""The one way the GUI runs background work: core jobs (generators of Progress)
and plain calls on a thread pool, reporting through Qt signals.

- `JobWorker` drives a job to its end. Progress is throttled to about ten
  signals a second so a fast job cannot flood the GUI thread; the last step and
  the result are always delivered. `cancel()` sets the job's `CancelToken`.
- `reader(read)` / `call(work, ...)` wrap one call with no progress (a database
  read, a short write) into a JobWorker: the GUI thread never runs SQL (DESIGN.md
  §2, reads included), so every Library call goes through one of these.
- Failures arrive as the exception object (`failed`), so views decide by
  `isinstance` (WeightsUnavailable, LibraryBusy, FileOpError, ...). Exceptions
  that are not one of the expected kinds are logged with their traceback.

Photo decodes are readers too, on a view's own small pool (`start(worker, pool)`:
the viewer's "decode" pool, PhotosView's one-thread read pool), so a scan on the
global pool cannot hold them up. The one exception is the thumbnail loader's
`_Drain` (gui/thumbnails.py): it pops a newest-first stack and emits one result
per thumbnail, which neither a single `finished` nor throttled progress can carry.

Every worker started with `start()` is in `JobWorker.live` until its result or
failure has been *delivered* on the GUI thread (the view's slots connected before
`start()` have run): the GUI tests wait on that, and fail any test that leaves one.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from dino_desktop.core.images import ImageError
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import FileOpError, LibraryBusy, LibraryError
from dino_desktop.core.weights import WeightsError, WeightsUnavailable

THROTTLE_S = 0.1
log = logging.getLogger(__name__)

# Failures the user is told about in words: not bugs, so no traceback in the log.
EXPECTED: tuple[type[Exception], ...] = (
    LibraryError,
    LibraryBusy,
    FileOpError,
    WeightsUnavailable,
    WeightsError,
    ImageError,
    OSError,
)


def describe(exc: BaseException) -> str:
    """The one-line message for a failure (its text, or its type when it has none)."""
    return str(exc) or type(exc).__name__


class WorkerSignals(QObject):
    progressed = Signal(object)  # Progress
    finished = Signal(object)  # the job's result
    failed = Signal(object)  # the exception (an Exception instance)


class JobWorker(QRunnable):
    """Drives one job to its end on a pool thread; `cancel()` asks it to stop."""

    # Workers started and not yet ended: the GUI tests fail any test that leaves one.
    live: ClassVar[set[JobWorker]] = set()

    def __init__(self, make_job: Callable[[CancelToken], Job[Any]]) -> None:
        super().__init__()
        self.signals = WorkerSignals()
        self.token = CancelToken()
        self._make_job = make_job
        # Auto-delete stays on: PySide keeps a runnable that is not auto-deleted
        # alive for good, with its job and result. We only keep the Python side
        # (token, signals), which outlives the C++ object safely.

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def run(self) -> None:
        try:
            self._drive()
        finally:
            # Drop the job's closure (e.g. a 100,000-row list a read diffed
            # against) now: a view may keep this Python object a while longer.
            self._make_job = _spent

    def _drive(self) -> None:
        last = 0.0
        pending: Progress | None = None
        try:
            job = self._make_job(self.token)
            while True:
                try:
                    step = next(job)
                except StopIteration as stop:
                    if pending is not None:
                        self.signals.progressed.emit(pending)
                    self.signals.finished.emit(stop.value)
                    return
                now = time.monotonic()
                if now - last >= THROTTLE_S:
                    self.signals.progressed.emit(step)
                    last = now
                    pending = None
                else:
                    pending = step
        except Exception as exc:  # reported in the GUI, never a silent dead thread
            if isinstance(exc, EXPECTED):
                log.info("background work failed: %s", describe(exc))
            else:
                log.exception("background work failed")
            self.signals.failed.emit(exc)


def alive(owner: QObject) -> bool:
    """Whether `owner` (a view) still exists on the C++ side.

    A closure connected to a worker's signal has no receiver object, so Qt does
    not disconnect it when the view that made it goes; such a closure checks
    this first, so a result arriving after that never touches deleted widgets.
    """
    return bool(shiboken6.isValid(owner))


def _spent(_token: CancelToken) -> Job[Any]:
    raise RuntimeError("this worker has run already")


def start(worker: JobWorker, pool: QThreadPool | None = None) -> JobWorker:
    """Run `worker` on `pool` (default: the global pool), tracked in `JobWorker.live`."""
    JobWorker.live.add(worker)
    # Connected last, so it runs after the slots connected before: a worker leaves
    # `live` once its result has reached them. A weak reference: the connection
    # must not keep the worker (and its signals) alive.
    ref = weakref.ref(worker)

    def delivered(*_args: object) -> None:
        alive = ref()
        if alive is not None:
            JobWorker.live.discard(alive)

    worker.signals.finished.connect(delivered)
    worker.signals.failed.connect(delivered)
    (pool or QThreadPool.globalInstance()).start(worker)
    return worker


def reader(read: Callable[[], Any]) -> JobWorker:
    """A worker for one call that has no progress to report (rows a view shows, a
    short write); its `finished` signal carries what `read` returned. Not started yet."""

    def job(_token: CancelToken) -> Job[Any]:
        yield Progress("read", 0, None)
        return read()

    return JobWorker(job)


def call(
    work: Callable[[], Any],
    finished: Callable[[Any], object] | None = None,
    failed: Callable[[Exception], object] | None = None,
    pool: QThreadPool | None = None,
) -> JobWorker:
    """Run one call in a worker now; `finished(result)` / `failed(exc)` on the GUI thread."""
    worker = reader(work)
    if finished is not None:
        worker.signals.finished.connect(finished)
    if failed is not None:
        worker.signals.failed.connect(failed)
    return start(worker, pool)
