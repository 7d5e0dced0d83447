"""Indexing jobs of a shared library: a procrastinate queue in the library's PostgreSQL.

The queue is procrastinate's (jobs taken with ``FOR UPDATE SKIP LOCKED``,
workers with heartbeats), in the same database as the catalog; its tables are
made by the Alembic revision 0002. Who does what:

* a scan of a shared library, from any client with or without weights,
  enqueues the readable photos that still lack a vector and are in no waiting
  job, `BATCH` ids per job (`enqueue_pending`);
* ``dino-desktop worker`` (any machine: the one with the GPU) runs
  procrastinate's worker (`run_worker`). A job embeds those of its photos that
  still lack a vector of the worker's model, and writes them in one
  transaction (an upsert: writing twice would change nothing, and the skip makes
  it not happen);
* a worker killed mid-job leaves its job "doing" and its transaction rolled
  back. Every worker watches for such jobs (`retry_stalled`): once the dead
  worker's heartbeat is older than `stalled_after` seconds the job goes back to
  the queue, and whoever takes it embeds what is still missing;
* any client reads the state (`progress`): photos left, jobs waiting, workers
  alive.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.engine import make_url

from dino_desktop.core.db import Raw
from dino_desktop.core.records import LibraryError

if TYPE_CHECKING:
    import procrastinate
    from sqlalchemy.orm import Session, sessionmaker

    from dino_desktop.core.library import Library

log = logging.getLogger(__name__)

TASK: Final = "dino_desktop.embed"
QUEUE: Final = "embed"
BATCH: Final = 64
"""Photos per job: large enough that a job's overhead (a few queries) is small next
to its embedding, small enough that a killed worker loses little."""
HEARTBEAT_S: Final = 10.0


def conninfo(url: str) -> str:
    """The libpq connection string (a URI) of a library's SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sync_app(url: str) -> procrastinate.App:
    """An app for enqueueing and managing jobs from synchronous code (clients, scans)."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=conninfo(url)))
    app.task(name=TASK, queue=QUEUE)(_unbound)
    return app


def _unbound(ids: list[int]) -> None:  # pragma: no cover - only workers run jobs
    raise RuntimeError("embedding jobs run in `dino-desktop worker`")


# ---- enqueueing ----------------------------------------------------------------------


def _queued_ids(session: Session) -> set[int]:
    rows = Raw(session).execute(
        "SELECT DISTINCT (jsonb_array_elements_text(args->'ids'))::bigint"
        " FROM procrastinate_jobs WHERE task_name = ? AND status IN ('todo', 'doing')",
        (TASK,),
    )
    return {int(r[0]) for r in rows}


def pending_ids(session: Session, model: str) -> list[int]:
    """Readable photos without a vector of the model (a timm name, any weights), by id."""
    rows = Raw(session).execute(
        "SELECT i.id FROM images i WHERE i.status = 'ok' AND NOT EXISTS"
        " (SELECT 1 FROM embeddings e JOIN models m ON m.id = e.model_id"
        " WHERE e.image_id = i.id AND m.name = ?) ORDER BY i.id",
        (model,),
    )
    return [int(r[0]) for r in rows]


def enqueue_pending(
    sessions: sessionmaker[Session], url: str, model: str, job_photos: int = BATCH
) -> int:
    """Enqueue the photos pending for `model` that no waiting job holds, `job_photos`
    per job; how many."""
    with sessions() as session:
        queued = _queued_ids(session)
        todo = [i for i in pending_ids(session, model) if i not in queued]
    if not todo:
        return 0
    app = sync_app(url)
    with app.open():
        step = max(1, job_photos)
        jobs = [{"ids": todo[i : i + step]} for i in range(0, len(todo), step)]
        app.tasks[TASK].batch_defer(*jobs)  # type: ignore[arg-type]
    log.info("queued %d photo(s) for the workers in %d job(s)", len(todo), len(jobs))
    return len(todo)


# ---- what any client sees ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueState:
    """The indexing queue as any client sees it."""

    photos_left: int  # readable photos without a vector of the library's model
    jobs: int  # jobs waiting or running
    workers: int  # workers whose heartbeat is recent

    def describe(self) -> str:
        workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        return f"{self.photos_left:,} photos left, {workers}"


def progress(
    session: Session, photos_left: int, stalled_after: float = 3 * HEARTBEAT_S
) -> QueueState:
    raw = Raw(session)
    (jobs,) = raw.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = ?"
        " AND status IN ('todo', 'doing')",
        (TASK,),
    ).fetchone()
    (workers,) = raw.execute(
        "SELECT count(*) FROM procrastinate_workers"
        " WHERE last_heartbeat > now() - make_interval(secs => ?)",
        (stalled_after,),
    ).fetchone()
    return QueueState(photos_left, int(jobs), int(workers))


# ---- workers --------------------------------------------------------------------------------


def retry_stalled(url: str, stalled_after: float) -> list[int]:
    """Give back to the queue the running jobs of workers silent for `stalled_after` s."""
    from procrastinate import sql

    app = sync_app(url)
    with app.open():
        connector = app.connector.get_sync_connector()
        rows = connector.execute_query_all(
            query=sql.queries["select_stalled_jobs_by_heartbeat"],
            queue=QUEUE,
            task_name=TASK,
            seconds_since_heartbeat=stalled_after,
        )
        ids = [int(r["id"]) for r in rows]
        for job_id in ids:
            app.job_manager.retry_job_by_id(job_id, retry_at=datetime.now(UTC))
    if ids:
        log.warning("jobs %s of a silent worker given back to the queue", ids)
    return ids


class _Watch(threading.Thread):
    """Retries stalled jobs every heartbeat, beside the worker."""

    def __init__(self, url: str, every: float, stalled_after: float) -> None:
        super().__init__(name="stalled-jobs", daemon=True)
        self.url, self.every, self.stalled_after = url, every, stalled_after
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                retry_stalled(self.url, self.stalled_after)
            except Exception:  # the server away for a moment: try at the next beat
                log.exception("could not check for stalled jobs")


@dataclass(frozen=True, slots=True)
class JobDone:
    """One finished job, as a worker reports it."""

    photos: int  # photos in the job
    embedded: int  # vectors it wrote (the others: embedded meanwhile, removed, unreadable)
    seconds: float


def waiting(session: Session, stalled_after: float) -> tuple[int, int]:
    """(jobs waiting to start, running jobs whose worker is silent or gone)."""
    raw = Raw(session)
    (todo,) = raw.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = ? AND status = 'todo'",
        (TASK,),
    ).fetchone()
    (silent,) = raw.execute(
        "SELECT count(*) FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w"
        " ON w.id = j.worker_id WHERE j.task_name = ? AND j.status = 'doing' AND"
        " (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => ?))",
        (TASK, stalled_after),
    ).fetchone()
    return int(todo), int(silent)


def run_worker(
    url: str,
    embed: Callable[[list[int]], int],
    *,
    concurrency: int = 1,
    heartbeat: float = HEARTBEAT_S,
    wait: bool = True,
    on_job: Callable[[JobDone], None] | None = None,
) -> None:
    """Run jobs until stopped (SIGINT/SIGTERM), or with `wait` False until the queue
    is empty. `embed(ids)` embeds the photos of one job that still need it;
    `on_job` hears of each job done (from the job's thread)."""
    import procrastinate

    stalled_after = 3 * heartbeat
    retry_stalled(url, stalled_after)  # a worker that died before this one started
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(url)))

    def job(ids: list[int]) -> None:
        t0 = time.perf_counter()
        done = JobDone(len(ids), embed([int(i) for i in ids]), time.perf_counter() - t0)
        log.info(
            "job of %d photo(s): %d embedded in %.1f s", *(done.photos, done.embedded), done.seconds
        )
        if on_job is not None:
            on_job(done)

    app.task(name=TASK, queue=QUEUE)(job)
    watch = _Watch(url, heartbeat, stalled_after)
    watch.start()
    try:
        options: dict[str, Any] = {
            "queues": [QUEUE],
            "concurrency": concurrency,
            "wait": wait,
            "name": f"{socket.gethostname()}:{os.getpid()}",
            "update_heartbeat_interval": heartbeat,
            "stalled_worker_timeout": stalled_after,
            "fetch_job_polling_interval": min(5.0, heartbeat),
            "delete_jobs": "successful",
        }
        app.run_worker(**options)
    finally:
        watch.stop.set()


class Workers:
    """A library's side of the queue (`Library.workers`): what its scans, its
    `dino-desktop worker` and its status use. On a SQLite library every call
    raises LibraryError: one machine indexes it itself (`Library.is_shared`)."""

    def __init__(self, library: Library) -> None:
        self._lib = library
        self.job_photos = BATCH  # photos per job this client enqueues

    def _url(self) -> str:
        url = self._lib.paths.url
        if url is None:
            raise LibraryError(
                "indexing workers serve a shared library: open one with "
                "--library postgresql://user@host/database"
            )
        return url

    def enqueue_pending(self) -> int:
        """Hand the photos waiting for a vector of this model (any weights) and in no
        job yet to the workers; returns how many were queued."""
        return enqueue_pending(
            self._lib.sessions, self._url(), self._lib.model_name, self.job_photos
        )

    def state(self) -> QueueState:
        """Photos left for the model, jobs waiting, workers alive (any client)."""
        self._url()
        with self._lib.sessions() as session:
            return progress(session, self._lib.pending_count())

    def run(
        self,
        *,
        concurrency: int = 1,
        heartbeat: float = HEARTBEAT_S,
        once: bool = False,
        on_job: Callable[[JobDone], None] | None = None,
    ) -> None:
        """Embed queued photos with this machine's model until stopped (SIGINT/SIGTERM),
        or with `once` until no job is left for it: none waiting, and none held by
        a worker that went silent (those are waited for, then taken over). Raises
        WeightsUnavailable before any work when there are no weights."""
        from dino_desktop.core import vectors

        url = self._url()
        lib = self._lib
        embedder = lib.embedder()  # no weights: say so now, not in every job
        model_id = lib.model_id()
        stalled_after = 3 * heartbeat

        def embed(ids: list[int]) -> int:
            return vectors.embed_ids(lib.sessions, model_id, embedder, ids)

        while True:
            self.enqueue_pending()  # photos no scan queued (an older client, a lost job)
            run_worker(
                url,
                embed,
                concurrency=concurrency,
                heartbeat=heartbeat,
                wait=not once,
                on_job=on_job,
            )
            if not once:
                return
            with lib.sessions() as session:
                todo, silent = waiting(session, stalled_after)
            if not todo and not silent:
                return
            # A dead worker's jobs: given back once its heartbeat has lapsed.
            time.sleep(heartbeat)
            retry_stalled(url, stalled_after)
