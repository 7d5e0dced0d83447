"""GUI test fixtures: no test may leave a background worker running, and GUI code
never touches the database on the Qt main thread (DESIGN.md §2, reads included)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import QThreadPool
from qtsync import MainThreadDb, deliver_posted_events
from sqlalchemy import event
from sqlalchemy.pool import Pool

from dino_desktop.core import index as core_index
from dino_desktop.gui.workers import JobWorker


@pytest.fixture(autouse=True)
def sql_guard(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MainThreadDb]:
    """Autouse: fails a test whose GUI code touched the database on the GUI thread.
    A test may ask for it by name to look at (and clear) what it recorded."""
    guard = MainThreadDb()

    # Every SQLAlchemy connection (sessions, engine.connect, raw_connection) is a
    # pool checkout; listening on the Pool class covers every engine.
    def checkout(*_args: Any) -> None:
        guard.check("database connection")

    event.listen(Pool, "checkout", checkout)
    # The core's bare sqlite3 connections: IndexCache's data_version connection
    # (core/index.py) and any sqlite3.connect made elsewhere.
    connect: Callable[..., sqlite3.Connection] = sqlite3.connect

    def checked_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        guard.check("sqlite3.connect")
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", checked_connect)
    data_version = core_index.IndexCache._data_version

    def checked_version(self: core_index.IndexCache) -> int:
        guard.check("sqlite3 PRAGMA data_version")
        return data_version(self)

    monkeypatch.setattr(core_index.IndexCache, "_data_version", checked_version)
    try:
        yield guard
    finally:
        event.remove(Pool, "checkout", checkout)
    if guard.found:
        unique = sorted(set(guard.found))
        pytest.fail(
            f"{request.node.name}: database access on the GUI thread:\n  " + "\n  ".join(unique),
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _no_worker_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    before = set(_watcher_threads())
    yield
    left = list(JobWorker.live)
    for worker in left:  # stop them so one failure doesn't cascade into the next tests
        worker.cancel()
    QThreadPool.globalInstance().waitForDone(30000)
    if left:  # let results already on their way arrive: only undelivered work counts
        deliver_posted_events()
        left = [w for w in left if w in JobWorker.live]
    JobWorker.live.clear()
    if left:
        pytest.fail(f"{request.node.name} left {len(left)} worker(s) running", pytrace=False)
    # A live-folders watcher is stopped when its window closes (or in a worker waited
    # for above): none may outlive the test.
    if set(_watcher_threads()) - before:
        pytest.fail(f"{request.node.name} left a folder watcher running", pytrace=False)


def _watcher_threads() -> list[threading.Thread]:
    """The settling threads of running FolderWatchers (core/watcher.py names them)."""
    return [t for t in threading.enumerate() if t.name == "watch-settle" and t.is_alive()]
