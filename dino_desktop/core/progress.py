"""Progress reports and cancellation shared by every long-running core job.

Long work is a generator that yields `Progress` and returns its result; the CLI
drives it under tqdm and the GUI in a worker thread, so there is one
implementation and two front ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of a long job: `done` of `total` items (total None while unknown)."""

    phase: str
    done: int
    total: int | None = None
    current: str | None = None
    message: str = ""


class Cancelled(Exception):
    """Raised by a job that was asked to stop; what it committed so far is kept."""


class CancelToken:
    """A thread-safe flag that a job checks between items."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled


Job = Generator[Progress, None, R]


def drive(job: Job[R], on_progress: Callable[[Progress], None] | None = None) -> R:
    """Run a job to the end, passing each progress report on, and return its result."""
    while True:
        try:
            step = next(job)
        except StopIteration as stop:
            result: R = stop.value
            return result
        if on_progress is not None:
            on_progress(step)
