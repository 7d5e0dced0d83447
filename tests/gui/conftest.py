"""GUI test fixtures: no test may leave a background worker running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QThreadPool

from dino_desktop.gui.workers import JobWorker


@pytest.fixture(autouse=True)
def _no_worker_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    left = list(JobWorker.live)
    for worker in left:  # stop them so one failure doesn't cascade into the next tests
        worker.cancel()
    QThreadPool.globalInstance().waitForDone(30000)
    JobWorker.live.clear()
    if left:
        pytest.fail(f"{request.node.name} left {len(left)} worker(s) running", pytrace=False)
