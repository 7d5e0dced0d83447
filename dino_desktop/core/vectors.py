"""Stored embeddings: one bulk read path, batched writes, and what still waits.

**Reads.** Every read of many vectors (the whole model for search, duplicates,
k-means and sorting; the few a folder edit recentres with; the photos a run has
not filed yet) goes through `_read`: blobs fetched a batch at a time from the
bare sqlite3 cursor and copied per batch (`np.frombuffer` over the joined
bytes), not one array per row: ~10x faster than SQLAlchemy rows at 100,000
vectors. There is no ORDER BY in SQL: SQLite answers it with a primary-key
lookup per row (9.3 s instead of 1.9 s at 1,000,000 vectors); table order is
nearly always image-id order already, and the result is sorted in numpy when
it is not, so every caller gets (ids ascending, vectors) rows in step. A blob
of the wrong length (a damaged row) is skipped, never returned. A filtered
read's statement is written by SQLAlchemy from column expressions, with bound
parameters (no SQL text is built from values), and runs on the same cursor.

**Writes** (`store`, called by `embed_job` every few hundred photos): one
transaction per batch of embedding results, with Core bulk statements (an
upsert of the vectors, an UPDATE marking decode failures), no ORM object per
row, so a cancel or a crash loses at most one batch.

**Pending**: readable photos without a vector of a model; `nothing_pending`
answers the usual "none" from three index-only counts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import catalog
from dino_desktop.core.db import (
    ClusterExclusion,
    ClusterMember,
    ClusterRow,
    Embedding,
    Folder,
    ImageRow,
    Raw,
)
from dino_desktop.core.db import insert as db_insert
from dino_desktop.core.images import ImageError
from dino_desktop.core.progress import CancelToken, Job, Progress, drive
from dino_desktop.core.records import LibraryError

if TYPE_CHECKING:
    from dino_desktop.core.embedder import Embedder

log = logging.getLogger(__name__)

Sessions = sessionmaker[Session]
# One embedding result: (image id, unit vector or None, decode error or None).
Result = tuple[int, np.ndarray | None, str | None]


def _read(
    session: Session, model_id: int, dim: int, *conditions: Any, batch: int = 50_000
) -> tuple[np.ndarray, np.ndarray]:
    """(image ids ascending, vectors (n, dim) float32) of one model's embeddings that
    match the SQLAlchemy `conditions` on Embedding (none: all of them)."""
    width = dim * 4
    dbapi = Raw(session)
    if dbapi.postgresql:
        return _read_copy(session, model_id, dim, *conditions)
    if conditions:
        # SQLAlchemy writes the statement with bound parameters (IN lists expanded
        # to placeholders); it runs on the bare cursor like the full read.
        compiled: Any = (
            select(Embedding.image_id, Embedding.vector)
            .where(Embedding.model_id == model_id, *conditions)
            .compile(
                dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
            )
        )
        sql = compiled.string
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        expected = 0  # a handful of rows: grown below, not worth a second pass
    else:
        sql, params = "SELECT image_id, vector FROM embeddings WHERE model_id = ?", (model_id,)
        # The whole model: one array sized by a count, so the peak is the vectors
        # once plus a batch (concatenating parts held them twice: 3.7 GB at 1,000,000).
        (expected,) = dbapi.execute(
            "SELECT count(*) FROM embeddings WHERE model_id = ?", (model_id,)
        ).fetchone()
    out_ids = np.empty(expected, dtype=np.int64)
    vecs = np.empty((expected, dim), dtype=np.float32)
    filled = 0
    cursor = dbapi.execute(sql, params)
    while rows := cursor.fetchmany(batch):
        good = [r for r in rows if r[1] is not None and len(r[1]) == width]
        if len(good) < len(rows):
            log.warning("skipped %d damaged vector(s) of model %d", len(rows) - len(good), model_id)
        end = filled + len(good)
        if end > len(vecs):  # a filtered read, or rows added since the count: grow
            out_ids = np.concatenate([out_ids[:filled], np.empty(end - filled, np.int64)])
            vecs = np.concatenate([vecs[:filled], np.empty((end - filled, dim), np.float32)])
        out_ids[filled:end] = [r[0] for r in good]
        vecs[filled:end] = np.frombuffer(b"".join(r[1] for r in good), np.float32).reshape(-1, dim)
        filled = end
    out_ids, vecs = out_ids[:filled], vecs[:filled]
    if filled > 1 and not bool(np.all(out_ids[:-1] < out_ids[1:])):
        order = np.argsort(out_ids, kind="stable")
        out_ids, vecs = out_ids[order], vecs[order]
    return out_ids, vecs


_COPY_HEADER: Final = 19  # "PGCOPY\n\377\r\n\0", flags, header extension length (0)


def _read_copy(
    session: Session, model_id: int, dim: int, *conditions: Any
) -> tuple[np.ndarray, np.ndarray]:
    """`_read` on PostgreSQL: one binary COPY, parsed by numpy as it streams in.

    Every row has the same bytes (field count, the id's int4, the halfvec's
    dimension, a spare int16 and `dim` big-endian float16s), so whole chunks
    are read as a structured array: no Python object per row or per number.
    """
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i4"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("v", ">f2", (dim,)),
        ]
    )
    compiled: Any = (
        select(Embedding.image_id, Embedding.__table__.c.vector)
        .where(Embedding.model_id == model_id, *conditions)
        .order_by(Embedding.image_id)
        .compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    )
    conn: Any = session.connection().connection.driver_connection
    (expected,) = conn.execute(
        "SELECT count(*) FROM embeddings WHERE model_id = %s", (model_id,)
    ).fetchone()
    ids = np.empty(expected, dtype=np.int64)
    vecs = np.empty((expected, dim), dtype=np.float32)
    filled = damaged = 0
    pending = b""
    header = True

    def take(block: np.ndarray) -> None:
        nonlocal ids, vecs, filled, damaged
        ok = (block["fields"] == 2) & (block["vec_len"] == 4 + 2 * dim) & (block["dim"] == dim)
        good = block[ok]
        damaged += len(block) - len(good)
        end = filled + len(good)
        if end > len(vecs):  # rows added since the count
            ids = np.concatenate([ids[:filled], np.empty(end - len(ids), np.int64)])
            vecs = np.concatenate([vecs[:filled], np.empty((end - len(vecs), dim), np.float32)])
        ids[filled:end] = good["id"]
        vecs[filled:end] = good["v"]
        filled = end

    sql = f"COPY ({compiled.string}) TO STDOUT (FORMAT BINARY)"
    with conn.cursor() as cursor, cursor.copy(sql, compiled.params) as copy:
        for chunk in copy:
            pending += bytes(chunk)
            if header:
                if len(pending) < _COPY_HEADER:
                    continue
                pending, header = pending[_COPY_HEADER:], False
            # Whole rows only; what is left is part of the next row, or the trailer.
            whole = len(pending) // row.itemsize * row.itemsize
            if whole:
                take(np.frombuffer(pending[:whole], dtype=row))
                pending = pending[whole:]
    if pending not in (b"", b"\xff\xff"):
        raise ValueError(f"vectors of model {model_id}: unexpected COPY data of dimension != {dim}")
    if damaged:
        log.warning("skipped %d damaged vector(s) of model %d", damaged, model_id)
    return ids[:filled], vecs[:filled]


def read_where(
    session: Session, model_id: int, dim: int, *conditions: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(image ids ascending, vectors) of one model's embeddings matching `conditions`."""
    return _read(session, model_id, dim, *conditions)


def load_vectors(
    session: Session, model_id: int, dim: int, batch: int = 50_000
) -> tuple[np.ndarray, np.ndarray]:
    """All (image ids, vectors) of one model, in image id order."""
    return _read(session, model_id, dim, batch=batch)


def all_vectors(sessions: Sessions, model_id: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """`load_vectors` in a session of its own."""
    with sessions() as session:
        return load_vectors(session, model_id, dim)


def edit_vectors(
    sessions: Sessions,
    model_id: int,
    dim: int,
    cluster_ids: Iterable[int],
    image_ids: Iterable[int],
) -> tuple[np.ndarray, np.ndarray]:
    """The vectors an auto-folder edit recentres with: the members of the given
    clusters and of every cluster holding one of `image_ids`, and those photos.

    Only what the edit touches, not the whole library (100,000 vectors are
    150 MB to read for a one-photo move).
    """
    photos = [int(i) for i in image_ids]
    holding = select(ClusterMember.cluster_id).where(ClusterMember.image_id.in_(photos))
    members = select(ClusterMember.image_id).where(
        or_(ClusterMember.cluster_id.in_(list(cluster_ids)), ClusterMember.cluster_id.in_(holding))
    )
    with sessions() as session:
        return _read(
            session,
            model_id,
            dim,
            or_(Embedding.image_id.in_(members), Embedding.image_id.in_(photos)),
        )


def vectors_outside_run(
    sessions: Sessions, model_id: int, dim: int, run_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of photos in no cluster of the run and not excluded from it:
    usually a handful, so the 100,000 others are never copied out."""
    in_run = select(ClusterMember.image_id).where(
        ClusterMember.cluster_id.in_(select(ClusterRow.id).where(ClusterRow.run_id == run_id))
    )
    excluded = select(ClusterExclusion.image_id).where(ClusterExclusion.run_id == run_id)
    with sessions() as session:
        return _read(
            session,
            model_id,
            dim,
            Embedding.image_id.not_in(in_run),
            Embedding.image_id.not_in(excluded),
        )


def stored_vector(sessions: Sessions, model_id: int, image_id: int) -> np.ndarray | None:
    """One photo's vector, if it has one."""
    with sessions() as session:
        blob = session.scalar(
            select(Embedding.vector).where(
                (Embedding.image_id == image_id) & (Embedding.model_id == model_id)
            )
        )
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)


def stored_vector_of_file(
    sessions: Sessions, model_id: int, path: str | os.PathLike[str]
) -> np.ndarray | None:
    """The stored vector of a file that is a library photo unchanged since its scan
    (same size and mtime), else None: the caller embeds it."""
    known = catalog.find_image(sessions, path)
    if known is None:
        return None
    st = os.stat(path)
    if (known[1], known[2]) != (st.st_size, st.st_mtime_ns):
        return None
    return stored_vector(sessions, model_id, known[0])


def query_vector(
    sessions: Sessions, model_id: Callable[[], int], path: str, embedder: Callable[[], Embedder]
) -> np.ndarray:
    """The vector of an image file to search by: the stored one when it is an unchanged
    library photo, else computed (the embedder is built only then). LibraryError for
    a missing file (checked before `model_id` is asked), ImageError for an unreadable one."""
    if not os.path.isfile(path):
        raise LibraryError(f"no such image file: {path}")
    stored = stored_vector_of_file(sessions, model_id(), path)
    if stored is not None:
        return stored
    _, vector, error = next(embedder().embed_files([path]))
    if vector is None:
        raise ImageError(f"cannot read {path}: {error}")
    return vector


def embed_pending(
    sessions: Sessions,
    model_id: int,
    embedder: Callable[[], Embedder],
    cancel: CancelToken | None = None,
    commit_every: int = 256,
) -> Job[tuple[int, list[tuple[str, str]]]]:
    """`embed_job` over every photo still pending for the model; the embedder is
    built only when some photo waits (loading a model is not free)."""
    todo = pending_rows(sessions, model_id)
    if not todo:
        return 0, []
    return (yield from embed_job(sessions, model_id, embedder(), todo, cancel, commit_every))


def embed_job(
    sessions: Sessions,
    model_id: int,
    embedder: Embedder,
    todo: Sequence[tuple[int, str]],
    cancel: CancelToken | None = None,
    commit_every: int = 256,
    *,
    keep_existing: bool = False,
) -> Job[tuple[int, list[tuple[str, str]]]]:
    """Embed the (image id, path) photos and store the results every `commit_every`
    photos, so a cancel or a crash loses at most one batch. Returns (vectors
    written, [(path, error)] of the photos that failed to decode).
    `keep_existing`: see `store`."""
    total = len(todo)
    yield Progress("embed", 0, total, None, "computing embeddings")
    embedded = 0
    failed: list[tuple[str, str]] = []
    batch: list[Result] = []
    paths = [p for _, p in todo]
    for done, (index, vector, error) in enumerate(embedder.embed_files(paths, cancel), 1):
        batch.append((todo[index][0], vector, error))
        if error is not None:
            failed.append((paths[index], error))
        if len(batch) >= commit_every:
            embedded += store(sessions, model_id, batch, keep_existing=keep_existing)
            batch = []
        yield Progress("embed", done, total, paths[index])
    embedded += store(sessions, model_id, batch, keep_existing=keep_existing)
    log.info("embedded %d photo(s), %d unreadable", embedded, len(failed))
    return embedded, failed


def store(
    sessions: Sessions, model_id: int, batch: Sequence[Result], *, keep_existing: bool = False
) -> int:
    """Write one batch of embedding results in one transaction: vectors for rows
    that still exist, status `failed` for decode errors. Returns vectors written.
    `keep_existing`: a vector already stored (another worker's) stays and is not
    counted, so work done twice is never written twice."""
    if not batch:
        return 0
    with sessions() as session, session.begin():
        wanted = [image_id for image_id, _, _ in batch]
        alive = set(session.scalars(select(ImageRow.id).where(ImageRow.id.in_(wanted))))
        vectors = [
            (image_id, vector)
            for image_id, vector, _ in batch
            if vector is not None and image_id in alive  # else removed meanwhile
        ]
        failures = [
            {"id": image_id, "status": "failed", "error": error}
            for image_id, vector, error in batch
            if vector is None and image_id in alive
        ]
        written = write_vectors(session, model_id, vectors, keep_existing=keep_existing)
        if failures:
            session.execute(update(ImageRow), failures)
    return written


def write_vectors(
    session: Session,
    model_id: int,
    rows: Sequence[tuple[int, Any]],
    *,
    keep_existing: bool = False,
) -> int:
    """Upsert (image id, vector) rows of one model in the caller's transaction (`store`,
    and the one-pass scan, which writes them with their image rows); with
    `keep_existing` rows already there are left alone. Returns rows written."""
    if not rows:
        return 0
    stmt = db_insert(session, Embedding)
    index = [Embedding.image_id, Embedding.model_id]
    values = [
        {
            "image_id": image_id,
            "model_id": model_id,
            "vector": np.asarray(vector, dtype=np.float32).tobytes(),
        }
        for image_id, vector in rows
    ]
    if keep_existing:
        # RETURNING names the rows really inserted: a skipped row returns nothing
        # (and fires no generation trigger).
        done = stmt.on_conflict_do_nothing(index_elements=index).returning(Embedding.image_id)
        return len(session.scalars(done, values).all())
    session.execute(
        stmt.on_conflict_do_update(index_elements=index, set_={"vector": stmt.excluded.vector}),
        values,
    )
    return len(rows)


# ---- what waits for a vector ----------------------------------------------------------


def nothing_pending(session: Session, model_id: int) -> bool:
    """Whether every readable photo has a vector of the model: three index-only
    counts (~20 ms at 100,000 photos) instead of a NOT EXISTS probe per photo
    (~60 ms). Every vector belongs to exactly one image row."""
    raw = Raw(session)
    (ok,) = raw.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()
    # "+model_id": SQLite then counts the primary key, not the model index (faster).
    (vectors,) = raw.execute(
        "SELECT count(*) FROM embeddings WHERE +model_id = ?", (model_id,)
    ).fetchone()
    (on_not_ok,) = raw.execute(
        "SELECT count(*) FROM images i WHERE i.status != 'ok' AND EXISTS"
        " (SELECT 1 FROM embeddings e WHERE e.image_id = i.id AND e.model_id = ?)",
        (model_id,),
    ).fetchone()
    return int(ok or 0) == int(vectors or 0) - int(on_not_ok or 0)


def _lacking(model_ids: list[int]) -> Any:
    return ~exists().where((Embedding.image_id == ImageRow.id) & Embedding.model_id.in_(model_ids))


def pending_rows(sessions: Sessions, model_id: int) -> list[tuple[int, str]]:
    """(image id, path) of the readable photos without a vector of the model, by id."""
    with sessions() as session:
        if nothing_pending(session, model_id):
            return []
        rows = session.execute(
            select(ImageRow.id, Folder.path, ImageRow.relpath)
            .join(Folder)
            .where(ImageRow.status == "ok")
            .where(_lacking([model_id]))
            .order_by(ImageRow.id)
        )
        return [(image_id, os.path.join(root, rel)) for image_id, root, rel in rows]


def rows_lacking(sessions: Sessions, model_id: int, ids: Iterable[int]) -> list[tuple[int, str]]:
    """(image id, path) of those of `ids` that are readable and lack a vector of the model."""
    wanted = sorted({int(i) for i in ids})
    with sessions() as session:
        rows = session.execute(
            select(ImageRow.id, Folder.path, ImageRow.relpath)
            .join(Folder)
            .where(ImageRow.id.in_(wanted), ImageRow.status == "ok")
            .where(_lacking([model_id]))
            .order_by(ImageRow.id)
        )
        return [(image_id, os.path.join(root, rel)) for image_id, root, rel in rows]


def embed_ids(sessions: Sessions, model_id: int, embedder: Embedder, ids: Iterable[int]) -> int:
    """Embed those of `ids` still without a vector of the model, written in one
    transaction (a shared library's job: core/queue.py); returns how many."""
    todo = rows_lacking(sessions, model_id, ids)
    if not todo:
        return 0
    job = embed_job(sessions, model_id, embedder, todo, None, len(todo) + 1, keep_existing=True)
    embedded, _failed = drive(job)
    return embedded


def pending_count(sessions: Sessions, model_id: int | None) -> int:
    """Readable photos without a vector of the model (None: no model yet, all wait)."""
    with sessions() as session:
        if model_id is not None and nothing_pending(session, model_id):
            return 0
        model_ids = [] if model_id is None else [model_id]
        return int(
            session.scalar(
                select(func.count())
                .select_from(ImageRow)
                .where(ImageRow.status == "ok")
                .where(_lacking(model_ids))
            )
            or 0
        )
