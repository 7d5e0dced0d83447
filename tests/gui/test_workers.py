"""workers.py: failures arrive as exceptions, a worker counts as live until its result
has reached the GUI thread, and the GUI tests catch SQL run on the GUI thread."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from qtsync import MainThreadDb

from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Job, Progress, drive
from dino_desktop.core.records import LibraryBusy, LibraryError
from dino_desktop.gui.workers import JobWorker, call, describe, reader, start


def test_a_failure_arrives_as_the_exception_object(qtbot: QtBot) -> None:
    error = LibraryError("no folder with id 7")

    def fail() -> None:
        raise error

    failures: list[Exception] = []
    worker = call(fail, failed=failures.append)
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=10000)
    assert failures == [error]  # the object itself: views decide by isinstance
    assert describe(LibraryBusy()) == "LibraryBusy"  # a message even without text


def test_an_unexpected_exception_is_logged_with_its_traceback(
    qtbot: QtBot, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise KeyError("bug")

    worker = call(broken)
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=10000)
    (record,) = [r for r in caplog.records if r.name == "dino_desktop.gui.workers"]
    assert record.levelname == "ERROR" and record.exc_info is not None


def test_a_worker_is_live_until_its_result_reached_the_slots(qtbot: QtBot) -> None:
    seen: list[tuple[int, bool]] = []
    worker = reader(lambda: 42)
    # Connected before start(): runs before the worker leaves `live`.
    worker.signals.finished.connect(lambda value: seen.append((value, worker in JobWorker.live)))
    start(worker)
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=10000)
    assert seen == [(42, True)]


def test_progress_is_throttled_but_the_last_step_and_result_arrive(qtbot: QtBot) -> None:
    def job(_token: CancelToken) -> Job[str]:
        for i in range(1000):
            yield Progress("count", i + 1, 1000)
        return "done"

    steps: list[Progress] = []
    results: list[str] = []
    worker = JobWorker(job)
    worker.signals.progressed.connect(steps.append)
    worker.signals.finished.connect(results.append)
    start(worker)
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=10000)
    assert results == ["done"] and steps[-1].done == 1000 and len(steps) < 1000


def test_the_guard_catches_sql_from_gui_code_on_the_gui_thread(
    tmp_path: Path, sql_guard: MainThreadDb
) -> None:
    lib = Library(tmp_path / "lib")  # test code on the GUI thread: allowed
    lib.folders()
    assert sql_guard.found == []
    # A GUI helper running a Library read on the GUI thread is caught.
    drive(reader(lib.folders)._make_job(CancelToken()))
    assert sql_guard.found and "workers.py" in sql_guard.found[0]
    sql_guard.found.clear()  # caught as it should be: this test passes
    lib.close()
