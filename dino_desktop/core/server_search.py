"""Search by example inside a shared library's PostgreSQL: pgvector's HNSW index.

A shared library keeps its vectors on the server (``embeddings.vector``, a
``halfvec`` of any dimension), so a client searches there instead of loading
every vector to build a FAISS index of its own. Each model has its own HNSW
index (cosine), on the column cast to the model's dimension and limited to the
model's rows: a partial expression index, which is why every query here names
the model id as a literal and orders by exactly that expression.

* `ensure_index` makes a model's index when its row is first used (instant on
  an empty library; on a library filled by an older release it is built once,
  then kept current by every insert).
* `nearest` sets ``hnsw.ef_search`` for the one query (``SET LOCAL``), from the
  number of hits wanted: recall grows with it, and pgvector never returns more
  than ef_search rows from the index.
* Filtered searches (a folder, a sort label) stay exact: a filter that keeps
  few rows is searched by a plain scan of those rows (`EXACT_BELOW`); a larger
  one uses the index with pgvector's iterative scan in strict order, and falls
  back to the plain scan if that still finds fewer hits than there are rows.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dino_desktop.core.db import Raw

log = logging.getLogger(__name__)

EF_SEARCH_MIN: Final = 100
EF_SEARCH_MAX: Final = 1000  # pgvector's limit
EXACT_BELOW: Final = 20_000
"""A filter that keeps fewer rows than this is searched exactly (tens of ms)."""


def index_name(model_id: int) -> str:
    return f"ix_embeddings_hnsw_m{int(model_id)}"


def _cast(dim: int) -> str:
    return f"(vector::halfvec({int(dim)}))"


def ensure_index(engine: Engine, model_id: int, dim: int) -> None:
    """Make the model's HNSW index if it is not there (several clients at once: one
    makes it, the others find it)."""
    name = index_name(model_id)
    t0 = time.perf_counter()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if conn.exec_driver_sql("SELECT to_regclass(%s)", (name,)).scalar() is not None:
            return
        # Another client may make it meanwhile: the lock makes that one wait here.
        conn.exec_driver_sql("SELECT pg_advisory_lock(%s)", (0x484E5357,))
        try:
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {index_name(model_id)} ON embeddings USING hnsw"
                f" ({_cast(dim)} halfvec_cosine_ops) WHERE model_id = {int(model_id)}"
            )
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (0x484E5357,))
    log.info("HNSW index %s ready in %.1f s", name, time.perf_counter() - t0)


def ef_search(top: int) -> int:
    """The candidate list of one query: at least `EF_SEARCH_MIN`, twice the hits wanted."""
    return int(min(EF_SEARCH_MAX, max(EF_SEARCH_MIN, 2 * top)))


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{float(x):.6g}" for x in np.asarray(vector, np.float32)) + "]"


def nearest(
    session: Session,
    model_id: int,
    dim: int,
    vector: np.ndarray,
    top: int,
    *,
    within: tuple[str, tuple[object, ...]] | None = None,
    ef: int | None = None,
) -> list[tuple[int, float]]:
    """The `top` (image id, cosine) nearest to `vector`, best first. `within`: SQL
    selecting the image ids to search among, with its ``?`` parameters."""
    raw = Raw(session)
    query = _literal(vector)
    model = int(model_id)
    ef = ef or ef_search(top)
    if within is None:
        return _by_index(raw, model, dim, query, top, ef, "", ())
    sql, params = within
    (count,) = raw.execute(f"SELECT count(*) FROM ({sql}) AS f", params).fetchone()
    if int(count) == 0:
        return []
    wanted = min(top, int(count))
    if int(count) >= EXACT_BELOW:
        raw.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        hits = _by_index(raw, model, dim, query, top, ef, f" AND image_id IN ({sql})", params)
        if len(hits) >= wanted:
            return hits
        log.info("filtered index scan found %d of %d: exact scan", len(hits), wanted)
    return _exact(raw, model, query, top, f" AND image_id IN ({sql})", params)


def _by_index(
    raw: Raw,
    model: int,
    dim: int,
    query: str,
    top: int,
    ef: int,
    where: str,
    params: tuple[object, ...],
) -> list[tuple[int, float]]:
    raw.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
    rows = raw.execute(
        f"SELECT image_id, {_cast(dim)} <=> ?::halfvec({int(dim)}) AS d FROM embeddings"
        f" WHERE model_id = {int(model)}{where} ORDER BY d LIMIT {int(top)}",
        (query, *params),
    ).fetchall()
    return [(int(i), 1.0 - float(d)) for i, d in rows]


def _exact(
    raw: Raw, model: int, query: str, top: int, where: str, params: tuple[object, ...]
) -> list[tuple[int, float]]:
    # The bare column, not the index's expression: the planner cannot use the index.
    rows = raw.execute(
        f"SELECT image_id, vector <=> ?::halfvec AS d FROM embeddings"
        f" WHERE model_id = {int(model)}{where} ORDER BY d LIMIT {int(top)}",
        (query, *params),
    ).fetchall()
    return [(int(i), 1.0 - float(d)) for i, d in rows]


def uses_index(session: Session, model_id: int, dim: int, vector: np.ndarray, top: int) -> bool:
    """Whether the planner answers an unfiltered search from the HNSW index (EXPLAIN)."""
    raw = Raw(session)
    plan = raw.execute(
        f"EXPLAIN SELECT image_id FROM embeddings WHERE model_id = {int(model_id)}"
        f" ORDER BY {_cast(dim)} <=> ?::halfvec({int(dim)}) LIMIT {int(top)}",
        (_literal(vector),),
    ).fetchall()
    return any(index_name(model_id) in str(row[0]) for row in plan)
