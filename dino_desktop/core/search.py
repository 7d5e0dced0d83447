"""Search by example, optionally among a folder's photos or a sort label's examples.

Which engine answers depends on the library, not on the caller:

* a SQLite library: its FAISS index (core/index.py) for the whole library; a
  filtered search is exact (the filter's vectors, read in bulk, one matrix
  product), so a filter never loses a hit the index would have ranked;
* a shared library: the server's HNSW index (core/server_search.py), with the
  same filters and the same exactness.

`Scope` names the filter; `nearest` gives (image id, cosine) best first, and
`index.search_hits` turns them into paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import server_search
from dino_desktop.core.db import Embedding, Raw
from dino_desktop.core.index import VectorIndex
from dino_desktop.core.records import FolderInfo, LibraryError
from dino_desktop.core.vectors import read_where
from dino_desktop.core.volumes import is_below

_CHUNK = 20_000  # ids per IN list (SQLite allows 32,766 parameters)
_TIE_DIGITS = 4  # scores equal to this many places are a tie (ordered by catalog id)
_TIE_SLACK = 8  # hits fetched beyond `top` to settle a tie at the cut


@dataclass(frozen=True, slots=True)
class Scope:
    """Which photos a search looks among: all (both None), those under a folder
    (a library folder, or a folder inside one), those that are examples of a sort label."""

    folder: tuple[int, str] | None = None  # (library folder id, relpath prefix or "")
    label_id: int | None = None

    def sql(self) -> tuple[str, tuple[object, ...]] | None:
        """The ids in scope as SQL with ``?`` parameters (both backends); None: all."""
        if self.folder is None and self.label_id is None:
            return None
        sql = "SELECT i.id FROM images i WHERE i.status = 'ok'"
        params: list[object] = []
        if self.folder is not None:
            folder_id, prefix = self.folder
            sql += " AND i.folder_id = ?"
            params.append(folder_id)
            if prefix:
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                sql += " AND i.relpath LIKE ? ESCAPE '\\'"
                params.append(escaped.rstrip("/") + "/%")
        if self.label_id is not None:
            sql += (
                " AND EXISTS (SELECT 1 FROM sort_examples s WHERE s.image_id = i.id"
                " AND s.label_id = ? AND s.positive = ?)"
            )
            params += [self.label_id, True]
        return sql, tuple(params)


def folder_scope(folders: list[FolderInfo], path: str | os.PathLike[str]) -> tuple[int, str]:
    """(library folder id, relpath prefix) of a folder that is, or is inside, a
    library folder (the innermost); LibraryError for any other folder."""
    wanted = os.path.abspath(os.fspath(path))
    inside = [f for f in folders if is_below(wanted, f.path)]
    if not inside:
        raise LibraryError(f"{wanted} is not in a library folder; add it first (scan)")
    best = max(inside, key=lambda f: len(f.path))
    rel = os.path.relpath(wanted, best.path)
    return best.id, "" if rel == "." else rel.replace(os.sep, "/")


def nearest(
    sessions: sessionmaker[Session],
    model_id: int,
    dim: int,
    vector: np.ndarray,
    top: int,
    scope: Scope,
    *,
    shared: bool,
    index: Callable[[], VectorIndex],
) -> list[tuple[int, float]]:
    """The `top` (image id, cosine) in `scope` nearest to `vector`, best first."""
    # A few more than asked for: a tie across the cut (a photo and its copy) is then
    # decided by catalog order too, not by which of them the backend met first.
    hits = _nearest(sessions, model_id, dim, vector, top + _TIE_SLACK, scope, shared, index)
    return _ranked(hits)[:top]


def _ranked(hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Hits best first, equal scores (a photo and its byte copy) in catalog order, so
    both backends and every run list them alike: FAISS, HNSW and a sort leave ties in
    any order, and a score is only good to ~1e-3 once stored as halfvec."""
    return sorted(hits, key=lambda hit: (-round(hit[1], _TIE_DIGITS), hit[0]))


def _nearest(
    sessions: sessionmaker[Session],
    model_id: int,
    dim: int,
    vector: np.ndarray,
    top: int,
    scope: Scope,
    shared: bool,
    index: Callable[[], VectorIndex],
) -> list[tuple[int, float]]:
    within = scope.sql()
    if shared:
        with sessions() as session:
            return server_search.nearest(session, model_id, dim, vector, top, within=within)
    if within is None:
        return index().search(vector, top)
    sql, params = within
    with sessions() as session:
        ids = [int(r[0]) for r in Raw(session).execute(sql, params)]
        parts = [
            read_where(session, model_id, dim, Embedding.image_id.in_(ids[i : i + _CHUNK]))
            for i in range(0, len(ids), _CHUNK)
        ]
    if not parts:
        return []
    found = np.concatenate([p[0] for p in parts])
    vecs = np.concatenate([p[1] for p in parts])
    scores = vecs @ np.asarray(vector, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")[:top]
    return [(int(found[i]), float(scores[i])) for i in order]
