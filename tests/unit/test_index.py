"""The FAISS index: exact below the threshold, IVF above; bulk vector loads; the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import index as vindex
from dino_desktop.core import vectors
from dino_desktop.core.db import (
    ClusterExclusion,
    ClusterMember,
    ClusterRow,
    ClusterRunRow,
    Embedding,
    Folder,
    ImageRow,
    ModelRow,
    open_engine,
    session_factory,
)
from dino_desktop.core.index import IndexCache, Stamp, VectorIndex

DIM = 32
Fixture = tuple[sessionmaker[Session], int, np.ndarray, list[int]]


def separable(n: int, groups: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in well-separated groups; returns (vectors, group of each)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((groups, DIM)).astype(np.float32) * 4
    label = rng.integers(0, groups, n)
    x = centres[label] + rng.standard_normal((n, DIM)).astype(np.float32) * 0.3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, label


def test_exact_below_the_threshold_ivf_above() -> None:
    assert vindex.index_kind(vindex.APPROX_THRESHOLD) == "flat"
    assert vindex.index_kind(vindex.APPROX_THRESHOLD + 1) == "ivf"
    x, _ = separable(3000, 20)
    ids = np.arange(100, 3100, dtype=np.int64)
    stamp = Stamp(1, len(ids), int(ids.max()), int(ids.sum()), 0)
    assert VectorIndex.build(ids, x, stamp).kind == "flat"
    ivf = VectorIndex.build(ids, x, stamp, threshold=1000)
    assert ivf.kind == "ivf" and ivf.size == 3000 and ivf.nprobe is not None


def test_ivf_returns_the_right_neighbours_on_separable_data() -> None:
    x, label = separable(4000, 16)
    ids = np.arange(1, 4001, dtype=np.int64) * 7  # image ids, not row numbers
    stamp = Stamp(1, len(ids), int(ids.max()), int(ids.sum()), 0)
    ivf = VectorIndex.build(ids, x, stamp, threshold=100)
    exact = VectorIndex.build(ids, x, stamp)
    assert ivf.kind == "ivf" and exact.kind == "flat"
    by_id = dict(zip(ids.tolist(), label.tolist(), strict=True))
    recall = []
    for row in range(0, 4000, 97):
        hits = ivf.search(x[row], 10)
        assert hits[0][0] == int(ids[row]) and hits[0][1] > 0.9999  # itself first
        assert all(by_id[i] == label[row] for i, _ in hits)  # all from its own group
        truth = {i for i, _ in exact.search(x[row], 10)}
        recall.append(len(truth & {i for i, _ in hits}) / 10)
    assert np.mean(recall) >= 0.95


def test_saved_index_loads_back_only_with_its_stamp(tmp_path: Path) -> None:
    x, _ = separable(500, 5)
    ids = np.arange(500, dtype=np.int64)
    stamp = Stamp(3, 500, 499, int(ids.sum()), 0)
    for threshold in (None, 100):  # flat (memory-mapped on POSIX) and IVF
        path = tmp_path / f"m-{threshold}.faiss"
        built = VectorIndex.build(ids, x, stamp, threshold=threshold)
        built.save(path)
        loaded = VectorIndex.load(path, stamp)
        assert loaded is not None and loaded.kind == built.kind
        assert loaded.search(x[7], 3) == built.search(x[7], 3)
        assert VectorIndex.load(path, Stamp(3, 501, 500, 0, 0)) is None
        assert VectorIndex.load(path, stamp, mmap=False) is not None


@pytest.fixture
def db_with_vectors(tmp_path: Path) -> Fixture:
    from datetime import datetime

    engine = open_engine(tmp_path / "lib.sqlite3")
    sessions = session_factory(engine)
    x, _ = separable(300, 6)
    with sessions() as s, s.begin():
        s.add(Folder(path=str(tmp_path), is_reference=False, added_at=datetime.now()))
        s.add(ModelRow(name="m", weights_sha256="0" * 64, dim=DIM, image_size=224))
    with sessions() as s, s.begin():
        folder_id = s.scalar(select(Folder.id))
        model_id = s.scalar(select(ModelRow.id))
        rows = [
            {
                "folder_id": folder_id,
                "relpath": f"p{i}.jpg",
                "size": 1,
                "mtime_ns": 1,
                "status": "ok",
                "scanned_at": datetime.now(),
            }
            for i in range(300)
        ]
        s.execute(insert(ImageRow), rows)
        ids = list(s.scalars(select(ImageRow.id).order_by(ImageRow.id)))
        s.execute(
            insert(Embedding),
            [
                {"image_id": i, "model_id": model_id, "vector": x[k].tobytes()}
                for k, i in enumerate(ids)
            ],
        )
    return sessions, int(model_id or 0), x, ids


def test_load_vectors_in_bulk(db_with_vectors: Fixture) -> None:
    sessions, model_id, x, ids = db_with_vectors
    with sessions() as s, s.begin():
        # A damaged blob (wrong length) is skipped, not a crash.
        s.execute(update(Embedding).where(Embedding.image_id == ids[5]).values(vector=b"\0" * 10))
    with sessions() as s:
        got_ids, got = vectors.load_vectors(s, model_id, DIM, batch=64)
    keep = [k for k in range(300) if k != 5]
    assert got_ids.tolist() == [ids[k] for k in keep]
    assert np.array_equal(got, x[keep]) and got.flags.writeable


def test_load_vectors_are_in_image_id_order_whatever_the_table_order(
    db_with_vectors: Fixture,
) -> None:
    """Re-embedded photos sit at the end of the table; the result is still by image id."""
    sessions, model_id, x, ids = db_with_vectors
    moved = [ids[3], ids[0], ids[150]]
    with sessions() as s, s.begin():
        for i in moved:  # delete and insert again: new rows at the table's end
            blob = s.scalar(select(Embedding.vector).where(Embedding.image_id == i))
            s.execute(delete(Embedding).where(Embedding.image_id == i))
            s.execute(insert(Embedding).values(image_id=i, model_id=model_id, vector=blob))
    with sessions() as s:
        got_ids, got = vectors.load_vectors(s, model_id, DIM, batch=64)
    assert got_ids.tolist() == sorted(ids)
    assert np.array_equal(got, x[np.argsort(ids, kind="stable")])


def test_filtered_reads_take_the_bulk_path_in_image_id_order(db_with_vectors: Fixture) -> None:
    """A folder edit's vectors and a run's unfiled photos: only those rows, by image id,
    a damaged blob skipped, whatever the table order."""
    from datetime import datetime

    sessions, model_id, x, ids = db_with_vectors
    pos = {i: k for k, i in enumerate(ids)}
    with sessions() as s, s.begin():
        run_id = s.scalar(
            insert(ClusterRunRow)
            .values(created_at=datetime.now(), model_id=model_id, k=2)
            .returning(ClusterRunRow.id)
        )
        c1, c2 = (
            s.scalar(
                insert(ClusterRow)
                .values(run_id=run_id, idx=n, name=f"c{n}", centroid=x[n].tobytes())
                .returning(ClusterRow.id)
            )
            for n in range(2)
        )
        members = [(c1, i) for i in ids[:10]] + [(c2, i) for i in ids[10:20]]
        s.execute(
            insert(ClusterMember),
            [{"cluster_id": c, "image_id": i, "score": 1.0} for c, i in members],
        )
        s.execute(insert(ClusterExclusion).values(run_id=run_id, image_id=ids[20]))
        s.execute(update(Embedding).where(Embedding.image_id == ids[15]).values(vector=b"1"))
        blob = s.scalar(select(Embedding.vector).where(Embedding.image_id == ids[3]))
        s.execute(delete(Embedding).where(Embedding.image_id == ids[3]))  # to the table's end
        s.execute(insert(Embedding).values(image_id=ids[3], model_id=model_id, vector=blob))

    # Cluster c1, plus the cluster holding ids[12] (c2) and ids[250] itself.
    got_ids, got = vectors.edit_vectors(sessions, model_id, DIM, [c1], [ids[12], ids[250]])
    want = [i for i in ids[:20] if i != ids[15]] + [ids[250]]
    assert got_ids.tolist() == want
    assert np.array_equal(got, x[[pos[i] for i in want]])
    empty_ids, empty = vectors.edit_vectors(sessions, model_id, DIM, [], [])
    assert len(empty_ids) == 0 and empty.shape == (0, DIM)

    out_ids, out = vectors.vectors_outside_run(sessions, model_id, DIM, int(run_id or 0))
    assert out_ids.tolist() == ids[21:]
    assert np.array_equal(out, x[21:])


def test_index_cache_reuses_until_the_database_changes(
    tmp_path: Path, db_with_vectors: Fixture
) -> None:
    sessions, model_id, x, ids = db_with_vectors
    cache = IndexCache(sessions, tmp_path / "lib.sqlite3", tmp_path / "index")
    first = cache.get(model_id, DIM)
    assert first.size == 300 and cache.get(model_id, DIM) is first
    with sessions() as s, s.begin():
        s.execute(delete(Embedding).where(Embedding.image_id == ids[0]))
    second = cache.get(model_id, DIM)
    assert second is not first and second.size == 299
    assert all(i != ids[0] for i, _ in second.search(x[0], 5))
    # A commit that leaves the vectors alone keeps the same index.
    with sessions() as s, s.begin():
        s.execute(update(ImageRow).where(ImageRow.id == ids[1]).values(size=2))
    assert cache.get(model_id, DIM) is second
    cache.close()


def test_a_photo_re_embedded_under_the_same_id_is_not_served_stale(
    tmp_path: Path, db_with_vectors: Fixture
) -> None:
    """A changed file keeps its image id; ids, count and sums are all unchanged, but
    its new vector must replace the old one in memory and in the saved index."""
    sessions, model_id, x, ids = db_with_vectors
    folder = tmp_path / "index"
    cache = IndexCache(sessions, tmp_path / "lib.sqlite3", folder)
    assert cache.get(model_id, DIM).search(x[0], 1)[0][0] == ids[0]
    # The file changed: its vector is now that of photo 150 (re-embedded in place).
    with sessions() as s, s.begin():
        s.execute(
            update(Embedding).where(Embedding.image_id == ids[0]).values(vector=x[150].tobytes())
        )
    hits = dict(cache.get(model_id, DIM).search(x[150], 2))
    assert hits.get(ids[0], 0) > 0.999  # the new vector, from the rebuilt index
    cache.close()
    # A fresh process (a new cache) does not trust the index saved before the change.
    with sessions() as s:
        stamp = vindex.current_stamp(s, model_id)
    saved = VectorIndex.load(folder / f"model-{model_id}.faiss", stamp)
    assert saved is not None
    assert dict(saved.search(x[150], 2)).get(ids[0], 0) > 0.999
    # Leftover temporary files of the saves: none.
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) == []
