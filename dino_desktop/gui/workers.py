"""Run core jobs (generators of Progress) on a thread pool, reporting through Qt signals.

Progress is throttled to about ten signals a second so a fast job cannot flood
the GUI thread; the last step and the result are always delivered.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any, ClassVar

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from dino_desktop.core.progress import CancelToken, Job, Progress

THROTTLE_S = 0.1


class WorkerSignals(QObject):
    progressed = Signal(object)  # Progress
    finished = Signal(object)  # the job's result
    failed = Signal(str)  # a message for the user


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

    def run(self) -> None:
        try:
            self._drive()
        finally:
            JobWorker.live.discard(self)

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
                    JobWorker.live.discard(self)  # its work is over once the result is out
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
            traceback.print_exc()
            JobWorker.live.discard(self)
            self.signals.failed.emit(str(exc) or type(exc).__name__)


def start(worker: JobWorker, pool: QThreadPool | None = None) -> JobWorker:
    JobWorker.live.add(worker)
    (pool or QThreadPool.globalInstance()).start(worker)
    return worker


def reader(read: Callable[[], Any]) -> JobWorker:
    """A worker for one read that has no progress to report (rows a view shows);
    its `finished` signal carries what `read` returned. Not started yet."""

    def job(_token: CancelToken) -> Job[Any]:
        yield Progress("read", 0, None)
        return read()

    return JobWorker(job)
