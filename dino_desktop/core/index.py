"""FAISS inner-product index over one model's stored vectors.

The index is derived data: it is persisted next to the database with a stamp of
(model, row count, max id, id sum) and rebuilt from the database whenever the
stamp no longer matches, so it can never serve vectors the database no longer has.
Vectors are L2-normalised, so inner product is cosine similarity.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import Embedding


@dataclass(frozen=True, slots=True)
class Stamp:
    model_id: int
    count: int
    max_id: int
    id_sum: int


def current_stamp(session: Session, model_id: int) -> Stamp:
    count, max_id, id_sum = session.execute(
        select(
            func.count(Embedding.image_id),
            func.coalesce(func.max(Embedding.image_id), 0),
            func.coalesce(func.sum(Embedding.image_id), 0),
        ).where(Embedding.model_id == model_id)
    ).one()
    return Stamp(model_id, int(count), int(max_id), int(id_sum))


def load_vectors(
    session: Session, model_id: int, dim: int, batch: int = 20000
) -> tuple[np.ndarray, np.ndarray]:
    """All (image ids, vectors) of one model, read in batches to bound peak memory."""
    total = session.scalar(
        select(func.count(Embedding.image_id)).where(Embedding.model_id == model_id)
    )
    ids = np.empty(int(total or 0), dtype=np.int64)
    vecs = np.empty((len(ids), dim), dtype=np.float32)
    rows = session.execute(
        select(Embedding.image_id, Embedding.vector)
        .where(Embedding.model_id == model_id)
        .order_by(Embedding.image_id)
        .execution_options(yield_per=batch)
    )
    n = 0
    for image_id, blob in rows:
        if n >= len(ids):
            break
        ids[n] = image_id
        vecs[n] = np.frombuffer(blob, dtype=np.float32)
        n += 1
    return ids[:n], vecs[:n]


class VectorIndex:
    """Cosine search over one model's vectors, keyed by image id."""

    def __init__(self, index: Any, stamp: Stamp) -> None:
        self._index = index
        self.stamp = stamp

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, stamp: Stamp) -> VectorIndex:
        import faiss

        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        return cls(index, stamp)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest image ids to one query vector, best first, with cosine scores."""
        if self.size == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, ids = self._index.search(q, min(k, self.size))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def save(self, path: Path) -> None:
        import faiss

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        faiss.write_index(self._index, str(tmp))
        stamp_tmp = path.with_suffix(".stamp.tmp")
        stamp_tmp.write_text(json.dumps(asdict(self.stamp)), encoding="utf-8")
        # Index first, stamp last: a crash in between leaves a stale stamp, which
        # only costs a rebuild.
        os.replace(tmp, path)
        os.replace(stamp_tmp, path.with_suffix(".stamp"))

    @classmethod
    def load(cls, path: Path, expected: Stamp) -> VectorIndex | None:
        """The saved index if its stamp matches `expected`, else None."""
        import faiss

        try:
            stamp = Stamp(**json.loads(path.with_suffix(".stamp").read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        if stamp != expected:
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            return None
        if int(index.ntotal) != expected.count:
            return None
        return cls(index, stamp)


def open_index(
    sessions: sessionmaker[Session], model_id: int, dim: int, folder: Path
) -> VectorIndex:
    """Load the persisted index for a model, rebuilding and saving it when stale."""
    path = folder / f"model-{model_id}.faiss"
    with sessions() as session:
        stamp = current_stamp(session, model_id)
        loaded = VectorIndex.load(path, stamp)
        if loaded is not None:
            return loaded
        ids, vectors = load_vectors(session, model_id, dim)
    index = VectorIndex.build(ids, vectors.reshape(-1, dim), stamp)
    index.save(path)
    return index
