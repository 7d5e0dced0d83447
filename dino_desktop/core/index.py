"""FAISS inner-product index over one model's stored vectors.

The index is derived data: it is persisted next to the database with a stamp of
(model, row count, max id, id sum) and rebuilt from the database whenever the
stamp no longer matches, so it can never serve vectors the database no longer has.
Vectors are L2-normalised, so inner product is cosine similarity.

Up to `APPROX_THRESHOLD` vectors the index is exact (a flat scan: ~5–15 ms a
query at 100,000 on a busy 2-core CPU). Above it, flat search grows past ~20 ms a
query, so an IVF index is built instead (`IndexIVFFlat`: √n coarse cells trained
on a sample, `nprobe` cells searched); `bench/scale.py` measures its recall@10
against exact search at 1,000,000 vectors.

A saved index is memory-mapped where the platform allows it (POSIX), so opening
a library does not copy hundreds of MB: pages come from the OS cache on first use.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import catalog
from dino_desktop.core.db import Raw
from dino_desktop.core.lock import waiting_lock
from dino_desktop.core.records import SearchHit
from dino_desktop.core.vectors import load_vectors
from dino_desktop.core.volumes import is_below

__all__ = [
    "APPROX_THRESHOLD",
    "IndexCache",
    "Stamp",
    "VectorIndex",
    "current_stamp",
    "index_kind",
    "open_index",
]

APPROX_THRESHOLD = 200_000  # vectors; above this an IVF index replaces exact search
IVF_NPROBE = 128  # cells searched per query: recall@10 0.968 at 1M (BENCHMARKS.md)
IVF_TRAIN_PER_LIST = 40  # k-means sample: 40 points per cell is enough for coarse cells
_MMAP = os.name == "posix"  # Windows cannot replace a file that is mapped


@dataclass(frozen=True, slots=True)
class Stamp:
    model_id: int
    count: int
    max_id: int
    id_sum: int
    generation: int  # bumped on every embedding change (db._v6): catches re-embedded ids


def current_stamp(session: Session, model_id: int) -> Stamp:
    # "+model_id" keeps SQLite off the model_id index, whose every hit costs a table
    # lookup (the vectors' pages): the primary key index (image_id, model_id) covers
    # the query instead, ~8x faster (11 ms at 100,000 vectors here).
    raw = Raw(session)
    count, max_id, id_sum = raw.execute(
        "SELECT count(image_id), coalesce(max(image_id), 0), coalesce(sum(image_id), 0)"
        " FROM embeddings WHERE +model_id = ?",
        (model_id,),
    ).fetchone()
    row = raw.execute(
        "SELECT generation FROM embedding_generations WHERE model_id = ?", (model_id,)
    ).fetchone()
    generation = row[0] if row else 0
    return Stamp(model_id, int(count), int(max_id), int(id_sum), int(generation or 0))


def index_kind(n: int, threshold: int | None = None) -> str:
    """The index type for n vectors: flat (exact) up to the threshold, ivf (approximate) above."""
    return "ivf" if n > (APPROX_THRESHOLD if threshold is None else threshold) else "flat"


def _build_ivf(ids: np.ndarray, x: np.ndarray, nprobe: int) -> Any:
    import faiss

    n, dim = x.shape
    nlist = max(1, min(int(math.sqrt(n)), n // IVF_TRAIN_PER_LIST))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = min(n, IVF_TRAIN_PER_LIST * nlist)
    rng = np.random.default_rng(0)
    train = x[np.sort(rng.choice(n, sample, replace=False))] if sample < n else x
    index.cp.niter = 10
    index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
    index.train(train)
    index.add_with_ids(x, ids)
    index.nprobe = min(nprobe, nlist)
    return index


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run faiss single-threaded in this thread (OpenMP's thread count is per thread).

    A single query is too little work to split: with two OpenMP threads on a busy
    2-core machine a 100,000-vector flat search took ~70 ms, against ~11 ms on one.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorIndex:
    """Cosine search over one model's vectors, keyed by image id."""

    def __init__(self, index: Any, stamp: Stamp) -> None:
        self._index = index
        self.stamp = stamp

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """flat for exact search, ivf for the approximate index."""
        import faiss

        return "ivf" if isinstance(faiss.downcast_index(self._index), faiss.IndexIVF) else "flat"

    @property
    def nprobe(self) -> int | None:
        import faiss

        inner = faiss.downcast_index(self._index)
        return int(inner.nprobe) if isinstance(inner, faiss.IndexIVF) else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        import faiss

        inner = faiss.downcast_index(self._index)
        if isinstance(inner, faiss.IndexIVF):
            inner.nprobe = max(1, min(int(value), int(inner.nlist)))

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        stamp: Stamp,
        *,
        threshold: int | None = None,
        nprobe: int = IVF_NPROBE,
    ) -> VectorIndex:
        """Exact (flat) index up to `threshold` vectors (default `APPROX_THRESHOLD`), IVF above."""
        import faiss

        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
        x = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dim)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if index_kind(len(ids), threshold) == "ivf":
            return cls(_build_ivf(ids, x, nprobe), stamp)
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if len(ids):
            index.add_with_ids(x, ids)
        return cls(index, stamp)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest image ids to one query vector, best first, with cosine scores."""
        if self.size == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        with _one_thread():
            scores, ids = self._index.search(q, min(k, self.size))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def search_many(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n, k), for a batch of queries; id -1 where fewer were found."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(queries), -1)
        if self.size == 0 or k <= 0:
            empty = np.empty((len(q), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        scores, ids = self._index.search(q, min(k, self.size))
        return scores, ids

    def save(self, path: Path) -> None:
        import faiss

        path.parent.mkdir(parents=True, exist_ok=True)
        # Temporary names of our own: two processes may rebuild the same index at
        # once, and neither may trip over (or publish) the other's half-written file.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        fd, stamp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".stamp", dir=path.parent)
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp_name)
            Path(stamp_name).write_text(json.dumps(asdict(self.stamp)), encoding="utf-8")
            # Index first, stamp last: a crash in between leaves a stale stamp, which
            # only costs a rebuild. (A mapped old file stays valid: replace swaps inodes.)
            # One saver at a time, so that an index is never published with the
            # stamp of another process's save.
            with waiting_lock(path.with_suffix(".save-lock")):
                os.replace(tmp_name, path)
                os.replace(stamp_name, path.with_suffix(".stamp"))
        finally:
            for leftover in (tmp_name, stamp_name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)

    @classmethod
    def load(cls, path: Path, expected: Stamp, *, mmap: bool = _MMAP) -> VectorIndex | None:
        """The saved index if its stamp matches `expected`, else None (memory-mapped on POSIX)."""
        import faiss

        try:
            stamp = Stamp(**json.loads(path.with_suffix(".stamp").read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        if stamp != expected:
            return None
        index = None
        if mmap:
            try:
                index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
            except RuntimeError:
                index = None  # e.g. an index type faiss cannot map: read it instead
        if index is None:
            try:
                index = faiss.read_index(str(path))
            except RuntimeError:
                return None
        if int(index.ntotal) != expected.count:
            return None
        return cls(index, stamp)


def search_hits(sessions: sessionmaker[Session], hits: list[tuple[int, float]]) -> list[SearchHit]:
    """(image id, score) hits with their paths, in the same order (a hit whose photo
    is no longer in the library is left out)."""
    paths = catalog.paths_of(sessions, (i for i, _ in hits))
    # Photos on a drive that is not mounted still answer, marked (core/volumes.py).
    offline = catalog.offline_roots(sessions)
    return [
        SearchHit(paths[i], s, i, any(is_below(paths[i], root) for root in offline))
        for i, s in hits
        if i in paths
    ]


def open_index(
    sessions: sessionmaker[Session],
    model_id: int,
    dim: int,
    folder: Path,
    current: VectorIndex | None = None,
) -> VectorIndex:
    """The index for a model: `current` while its stamp still matches the database,
    else the persisted one if current, else rebuilt from the stored vectors and saved."""
    path = folder / f"model-{model_id}.faiss"
    with sessions() as session:
        stamp = current_stamp(session, model_id)
        if current is not None and current.stamp == stamp:
            return current
        loaded = VectorIndex.load(path, stamp)
        if loaded is not None:
            return loaded
        ids, vectors = load_vectors(session, model_id, dim)
    index = VectorIndex.build(ids, vectors.reshape(-1, dim), stamp)
    index.save(path)
    return index


class IndexCache:
    """The index of the current model, kept in memory between searches.

    Checking the stamp costs a scan of the primary key index (~11 ms at 100,000
    vectors), too much for every search. SQLite's ``PRAGMA data_version`` on a
    private connection that never writes changes whenever *any* other connection
    (this process's pool, or another process such as the CLI) commits; only then
    is the stamp checked again, and the index reloaded or rebuilt if it moved on.
    On a shared library (`db` None) the change counter is the sum of the
    per-model generations that PostgreSQL's trigger bumps on every vector change.
    """

    def __init__(self, sessions: sessionmaker[Session], db: Path | None, folder: Path) -> None:
        self._sessions = sessions
        self._folder = folder
        self._conn = (
            None
            if db is None
            else sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        )
        self._lock = threading.Lock()
        self._index: VectorIndex | None = None
        self._version: int | None = None

    def _data_version(self) -> int:
        if self._conn is None:
            with self._sessions() as session:
                (total,) = (
                    Raw(session)
                    .execute("SELECT coalesce(sum(generation), 0) FROM embedding_generations")
                    .fetchone()
                )
                return int(total)
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def get(self, model_id: int, dim: int) -> VectorIndex:
        with self._lock:
            version = self._data_version()  # read first: a commit after it forces a recheck
            current = self._index
            if current is not None and current.stamp.model_id != model_id:
                current = None
            if current is not None and version == self._version:
                return current
            self._index = open_index(self._sessions, model_id, dim, self._folder, current)
            self._version = version
            return self._index

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
