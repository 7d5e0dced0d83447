"""Indexing workers of a shared library (core/queue.py, `dino-desktop worker`): scans
queue the photos, workers embed each exactly once, a killed worker's job is redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import imagegen
import pytest
import weightsgen
from sqlalchemy import create_engine, text

from dino_desktop import config
from dino_desktop.cli import main
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryError


def _sql(url: str, query: str) -> list[Any]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query)).all())
    finally:
        engine.dispose()


def _photos(root: Path, n: int, size: tuple[int, int] = (96, 72)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        imagegen.save_jpeg(root / f"IMG_{i:03}.jpg", seed=i, size=size)
    return root


def _generation(url: str) -> int:
    rows = _sql(url, "SELECT coalesce(sum(generation), 0) FROM embedding_generations")
    return int(rows[0][0])


def test_a_scan_without_weights_queues_every_readable_photo_once(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _photos(tmp_path / "nas", 10)
    (root / "broken.jpg").write_bytes(b"not a photo")
    with Library(pg_url) as lib:
        lib.workers.job_photos = 4
        result = drive(lib.scan([root]))
        assert result.queued == 10 and result.pending == 10
        again = drive(lib.scan())  # nothing new: nothing queued twice
        assert again.queued == 0
    jobs = _sql(pg_url, "SELECT args FROM procrastinate_jobs ORDER BY id")
    sizes = [len(args["ids"]) for (args,) in jobs]
    assert sizes == [4, 4, 2]
    assert main(["--library", pg_url, "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["queue"] == {"photos_left": 10, "jobs": 3, "workers": 0}
    assert main(["--library", pg_url, "status"]) == 0
    out = capsys.readouterr().out
    assert "10 photos left, 0 workers, 3 job(s) queued" in out
    assert "password" not in out.lower()


def test_a_worker_embeds_the_queue_and_a_second_run_writes_nothing(
    tmp_path: Path, pg_url: str, tiny_weights: Path
) -> None:
    root = _photos(tmp_path / "nas", 9)
    with Library(pg_url, model=weightsgen.TINY) as client:  # no weights on this desktop
        client.workers.job_photos = 4
        assert drive(client.scan([root])).queued == 9
    jobs: list[Any] = []
    with Library(pg_url, model=weightsgen.TINY, weights=tiny_weights, device="cpu") as worker:
        worker.workers.run(once=True, heartbeat=0.5, on_job=jobs.append)
        assert sorted(j.photos for j in jobs) == [1, 4, 4]
        assert sum(j.embedded for j in jobs) == 9
        assert worker.pending_count() == 0
        assert worker.workers.state().photos_left == 0
        worker.workers.run(once=True, heartbeat=0.5)  # nothing left: returns at once
        # A job handed out twice (a worker thought dead, alive after all): the
        # vectors already there are kept, not written again.
        from dino_desktop.core import vectors

        ids = [int(r[0]) for r in _sql(pg_url, "SELECT id FROM images")]
        assert vectors.embed_ids(worker.sessions, worker.model_id(), worker.embedder(), ids) == 0
    assert _generation(pg_url) == 9  # every photo's vector written exactly once
    assert _sql(pg_url, "SELECT count(*) FROM procrastinate_jobs")[0][0] == 0


def test_a_vector_written_meanwhile_is_kept_and_not_counted(library_at: str | Path) -> None:
    import numpy as np

    from dino_desktop.core import vectors
    from dino_desktop.core.db import ModelRow

    with Library(library_at) as lib:
        root = lib.paths.home / "photos"
        _photos(root, 2)
        drive(lib.scan([root], embed=False))
        with lib.sessions() as session, session.begin():
            model = ModelRow(name="m", weights_sha256="x" * 64, dim=4, image_size=224)
            session.add(model)
            session.flush()
            model_id = model.id
        ids = [r.id for r in lib.images()]
        first = np.ones(4, dtype=np.float32) / 2
        with lib.sessions() as session, session.begin():
            written = vectors.write_vectors(session, model_id, [(ids[0], first)])
        assert written == 1
        other = np.array([1, 0, 0, 0], dtype=np.float32)
        with lib.sessions() as session, session.begin():
            rows = [(ids[0], other), (ids[1], other)]
            written = vectors.write_vectors(session, model_id, rows, keep_existing=True)
        assert written == 1
        assert np.allclose(vectors.stored_vector(lib.sessions, model_id, ids[0]), first)


def test_a_worker_needs_a_shared_library_and_weights(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--library", str(tmp_path / "lib"), "worker", "--once"]) == 1
    assert "shared library" in capsys.readouterr().err
    with Library(tmp_path / "lib2") as lib, pytest.raises(LibraryError, match="shared"):
        lib.workers.enqueue_pending()
    assert main(["--library", pg_url, "worker", "--once"]) == 3  # no weights here
    assert "weights" in capsys.readouterr().err.lower()


def _wait_for(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_one_killed_half_way_embed_every_photo_exactly_once(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    n, per_job = 48, 4
    root = _photos(tmp_path / "nas", n, size=(320, 240))
    # The desktop has no weights: its scan queues the photos for the workers.
    with Library(pg_url) as desktop:
        desktop.workers.job_photos = per_job
        assert drive(desktop.scan([root])).queued == n
    # The real DINOv2 ViT-S/14 layout, random weights: slow enough on one thread
    # (half a second a job) to kill a worker in the middle of one.
    weights = weightsgen.write_meta_checkpoint(tmp_path / "vits14.pth")
    procs: dict[str, subprocess.Popen[str]] = {}

    def start(machine: str) -> None:
        data = tmp_path / machine
        monkeypatch.setenv("XDG_DATA_HOME", str(data))
        home = config.shared_home(pg_url)  # this machine's settings of the library
        home.mkdir(parents=True)
        (home / "settings.toml").write_text('precision = "fp32"\n')  # the same on every CPU
        env = {**os.environ, "XDG_DATA_HOME": str(data), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "dino_desktop", "--library", pg_url]
        cmd += ["--weights", str(weights), "--device", "cpu"]
        cmd += ["worker", "--once", "--heartbeat", "0.5", "--json"]
        procs[machine] = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def doing() -> dict[int, int]:
        rows = _sql(pg_url, "SELECT id, worker_id FROM procrastinate_jobs WHERE status = 'doing'")
        return {int(job): int(worker) for job, worker in rows if worker is not None}

    try:
        start("a")
        start("b")
        _wait_for("both workers in a job", lambda: len(set(doing().values())) == 2)
        with Library(pg_url) as desktop:  # any client sees both at work
            assert desktop.workers.state().workers == 2
        procs["a"].send_signal(signal.SIGKILL)  # half-way through a job
        out_a, _ = procs["a"].communicate(timeout=30)
        out_b, err_b = procs["b"].communicate(timeout=120)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    assert procs["b"].returncode == 0, err_b
    events_a = [json.loads(line) for line in out_a.splitlines()]
    events_b = [json.loads(line) for line in out_b.splitlines()]
    by_a = sum(e["embedded"] for e in events_a if e["event"] == "job")
    assert events_b[-1]["event"] == "stopped" and events_b[-1]["photos_left"] == 0
    by_b = events_b[-1]["embedded"]
    assert by_a + by_b == n  # the killed job's photos were embedded by b, once
    assert "given back to the queue" in err_b  # a's job, after its heartbeat lapsed
    assert _sql(pg_url, "SELECT count(*) FROM embeddings")[0][0] == n
    assert _generation(pg_url) == n  # no vector written twice
    assert _sql(pg_url, "SELECT count(*) FROM procrastinate_jobs")[0][0] == 0
