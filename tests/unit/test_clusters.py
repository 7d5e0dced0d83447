"""Auto-folders: k-means partition, automatic k, naming, saving, export and undo."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import imagegen
import numpy as np
import pytest
import weightsgen
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import clusters, db
from dino_desktop.core.export_plan import plan_export, sanitize_folder_name
from dino_desktop.core.fileops import FileOps
from dino_desktop.core.library import Library
from dino_desktop.core.migrations import legacy
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryError, ReferenceFolderError


def blobs(k: int, per: int, dim: int = 32, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """`k` well separated groups of unit vectors, `per` each, in group order."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    x = np.repeat(centres, per, axis=0) + noise * rng.standard_normal((k * per, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


# ---- clustering on vectors -------------------------------------------------------


@pytest.mark.parametrize("planted", [3, 5, 8])
def test_auto_k_picks_the_planted_number_of_groups(planted: int) -> None:
    x = blobs(planted, 40, seed=planted)
    assert drive(clusters.choose_k(x)) == planted


def test_kmeans_is_a_partition_that_recovers_separable_groups() -> None:
    x = blobs(4, 25)
    # Restarts as the library uses below 50,000 photos: faiss seeds with random points.
    result = clusters.kmeans(x, 4, nredo=3)
    assert result.k == 4 and len(result.labels) == 100
    # Each planted group lands in one cluster, and no two groups share one.
    groups = [set(result.labels[i * 25 : (i + 1) * 25].tolist()) for i in range(4)]
    assert all(len(g) == 1 for g in groups)
    assert len(set().union(*groups)) == 4
    assert np.allclose(np.linalg.norm(result.centroids, axis=1), 1, atol=1e-5)
    assert float(result.scores.min()) > 0.9
    # Deterministic: the same input gives the same folders.
    assert np.array_equal(clusters.kmeans(x, 4, nredo=3).labels, result.labels)


def test_k_larger_than_the_photos_and_tiny_inputs() -> None:
    x = blobs(2, 2)
    assert clusters.kmeans(x, 10).k <= 4
    assert clusters.kmeans(x, 1).k == 1
    assert drive(clusters.choose_k(x)) == 1  # too few photos to judge


# ---- names -----------------------------------------------------------------------


def test_name_is_the_common_folder_when_it_covers_60_percent() -> None:
    paths = ["/p/Beach/a.jpg", "/p/Beach/b.jpg", "/p/Beach/c.jpg", "/p/x/d.jpg", "/p/y/e.jpg"]
    assert clusters.cluster_name(paths, [None] * 5, 1) == "Beach"


def test_name_is_a_date_range_when_folders_disagree() -> None:
    paths = [f"/p/f{i}/a.jpg" for i in range(5)]
    one_month = [datetime(2024, 7, d) for d in (1, 5, 9)] + [None, None]
    assert clusters.cluster_name(paths, one_month, 1) == "2024-07"
    months = [datetime(2024, 7, 1), datetime(2024, 9, 30), datetime(2024, 8, 2), None, None]
    assert clusters.cluster_name(paths, months, 1) == "2024-07 – 2024-09"


def test_a_folder_name_shared_by_the_whole_run_is_passed_over() -> None:
    paths = [f"/p/Camera/{i}.jpg" for i in range(5)]
    assert clusters.cluster_name(paths, [None] * 5, 2, frozenset({"Camera"})) == "Group 2"
    july = [datetime(2024, 7, d) for d in range(1, 6)]
    assert clusters.cluster_name(paths, july, 2, frozenset({"Camera"})) == "2024-07"


def test_name_falls_back_to_group_n_and_names_are_made_distinct() -> None:
    paths = [f"/p/f{i}/a.jpg" for i in range(5)]
    assert clusters.cluster_name(paths, [datetime(2024, 1, 1), None, None, None, None], 3) == (
        "Group 3"
    )
    assert clusters.unique_names(["Beach", "beach", "Beach", "Group 1"]) == [
        "Beach",
        "beach (2)",
        "Beach (3)",
        "Group 1",
    ]


# ---- sanitising and the plan --------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc", "..", "con", "CON.txt", "com1", "a/b", "a\\b", ""])
def test_sanitised_names_stay_inside_dest(tmp_path: Path, name: str) -> None:
    clean = sanitize_folder_name(name)
    assert clean and "/" not in clean and "\\" not in clean and ".." not in clean
    assert not clean.startswith(".") and clean == clean.rstrip(" .")
    assert clean.split(".")[0].lower() not in {"con", "prn", "aux", "nul", "com1"}
    made = tmp_path / "dest" / clean
    made.mkdir(parents=True)
    assert made.resolve().parent == (tmp_path / "dest").resolve()


def test_sanitise_edge_cases() -> None:
    assert sanitize_folder_name("") == "Unnamed"
    assert sanitize_folder_name(" . ") == "Unnamed"
    assert sanitize_folder_name("con") == "_con"
    assert sanitize_folder_name("a\x00b\x1f\nc") == "abc"
    assert sanitize_folder_name("Beach. ") == "Beach"
    assert sanitize_folder_name("2024-07 – 2024-09") == "2024-07 – 2024-09"
    assert len(sanitize_folder_name("x" * 300)) == 100


def test_plan_is_collision_safe_within_the_plan_and_on_disk(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "Beach").mkdir(parents=True)
    (dest / "Beach" / "a.jpg").write_bytes(b"already here")
    plan = plan_export(
        [
            ("Beach", ["/x/a.jpg", "/y/a.jpg", "/z/A.jpg"]),
            ("beach", ["/x/b.jpg"]),
            ("../../etc", ["/x/c.jpg"]),
        ],
        str(dest),
    )
    targets = [d for _, d in plan]
    assert targets == [
        str(dest / "Beach" / "a (1).jpg"),
        str(dest / "Beach" / "a (2).jpg"),
        str(dest / "Beach" / "A (3).jpg"),
        str(dest / "beach (2)" / "b.jpg"),
        str(dest / "_._etc" / "c.jpg"),
    ]
    assert all(os.path.dirname(os.path.dirname(t)) == str(dest) for t in targets)


# ---- export and undo -------------------------------------------------------------


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = db.open_engine(tmp_path / "lib.sqlite3")
    yield db.session_factory(engine)
    engine.dispose()


@pytest.fixture
def ops(sessions: sessionmaker[Session]) -> FileOps:
    return FileOps(sessions)


def _sources(tmp_path: Path, n: int = 4) -> dict[str, bytes]:
    src = tmp_path / "photos"
    src.mkdir()
    out: dict[str, bytes] = {}
    for i in range(n):
        data = bytes((i * 37 + j) % 256 for j in range(2000 + i))
        (src / f"p{i}.jpg").write_bytes(data)
        out[str(src / f"p{i}.jpg")] = data
    return out


def _plan(files: dict[str, bytes], dest: Path) -> list[tuple[str, str]]:
    paths = sorted(files)
    return plan_export([("Beach", paths[:2]), ("con", paths[2:])], str(dest))


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("mode", ["copy", "hardlink", "symlink"])
def test_export_creates_entries_of_the_mode_and_undo_removes_them(
    ops: FileOps, tmp_path: Path, mode: str
) -> None:
    files = _sources(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    plan = _plan(files, dest)
    result = ops.export(plan, mode)
    assert not result.failed and len(result.moved) == 4
    for src, written in result.moved:
        path = Path(written)
        assert path.parent.parent == dest
        assert path.read_bytes() == files[src]
        if mode == "copy":
            assert not path.is_symlink() and not os.path.samefile(src, written)
        elif mode == "hardlink":
            assert not path.is_symlink() and os.path.samefile(src, written)
        else:
            assert path.is_symlink() and os.readlink(written) == src
    assert sorted(p.name for p in dest.iterdir()) == ["Beach", "_con"]

    undone = ops.undo()
    assert not undone.failed and len(undone.done) == 4
    assert _tree(dest) == []  # entries and the created cluster folders are gone
    assert {p: Path(p).read_bytes() for p in files} == files  # the originals stay
    if mode == "copy":  # a copy goes to the trash, not unlinked
        assert len(list((tmp_path / "xdg-data" / "Trash" / "files").iterdir())) == 4


def test_undo_of_a_copy_leaves_a_copy_changed_since(ops: FileOps, tmp_path: Path) -> None:
    files = _sources(tmp_path)
    dest = tmp_path / "dest"
    result = ops.export(_plan(files, dest), "copy")
    changed = Path(result.moved[0][1])
    changed.write_bytes(b"edited by the user")
    undone = ops.undo()
    assert [p for p, _ in undone.failed] == [str(changed)]
    assert changed.read_bytes() == b"edited by the user"
    assert _tree(dest) == [changed.parent.name, f"{changed.parent.name}/{changed.name}"]


def test_move_then_undo_restores_every_path_byte_for_byte(ops: FileOps, tmp_path: Path) -> None:
    files = _sources(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    result = ops.export(_plan(files, dest), "move")
    assert not result.failed
    assert not any(os.path.exists(p) for p in files)
    assert len(_tree(dest)) == 2 + 4
    ops.undo()
    assert {p: Path(p).read_bytes() for p in files} == files
    assert _tree(dest) == []


def test_export_never_writes_into_a_reference_folder(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    files = _sources(tmp_path)
    ref = tmp_path / "ref"
    ref.mkdir()
    with sessions() as session, session.begin():
        session.add(db.Folder(path=str(ref), is_reference=True, added_at=datetime.now()))
    for mode in ("copy", "hardlink", "symlink", "move"):
        with pytest.raises(ReferenceFolderError):
            ops.export(_plan(files, ref / "out"), mode)
    assert _tree(ref) == []
    # Nor moves a photo out of one.
    (ref / "keep.jpg").write_bytes(b"reference photo")
    with pytest.raises(ReferenceFolderError):
        ops.export(plan_export([("A", [str(ref / "keep.jpg")])], str(tmp_path / "d")), "move")
    assert (ref / "keep.jpg").read_bytes() == b"reference photo"
    assert not (tmp_path / "d").exists()
    assert {p: Path(p).read_bytes() for p in files} == files


# ---- the library: saved runs, new photos -------------------------------------------


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("weights") / "tiny.pth", weightsgen.TINY
    )


def test_library_run_is_a_saved_partition_and_new_photos_are_filed(
    tmp_path: Path, tiny_weights: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(8):
        imagegen.save_jpeg(photos / f"p{i}.jpg", seed=i, size=(200, 150))
    weightsgen.register_tiny_model()
    lib = Library(tmp_path / "lib", model=weightsgen.TINY, weights=tiny_weights, device="cpu")
    drive(lib.scan([str(photos)]))
    assert lib.clusters() is None and lib.new_photos() == []

    run = drive(lib.cluster(3))
    members = [i for c in run.clusters for i in c.member_ids]
    assert 1 <= run.k == len(run.clusters) <= 3
    assert sum(c.size for c in run.clusters) == len(members) == 8 == len(set(members))
    assert sorted(run.paths[i] for i in members) == sorted(str(p) for p in photos.iterdir())
    for c in run.clusters:
        assert c.scores == sorted(c.scores, reverse=True)
        assert c.representative_ids == c.member_ids[:6]
        assert set(c.outlier_ids) <= set(c.member_ids)

    saved = lib.clusters()
    assert saved is not None and saved.id == run.id
    assert [(c.name, c.member_ids) for c in saved.clusters] == [
        (c.name, c.member_ids) for c in run.clusters
    ]

    more = tmp_path / "more"
    more.mkdir()
    for i in range(2):
        imagegen.save_jpeg(more / f"n{i}.jpg", seed=50 + i, size=(200, 150))
    drive(lib.scan([str(more)]))
    filed = lib.new_photos()
    assert sorted(p.path for p in filed) == sorted(str(p) for p in more.iterdir())
    ids = {c.id: c.name for c in run.clusters}
    assert all(ids[p.cluster_id] == p.cluster_name and -1 <= p.confidence <= 1.0001 for p in filed)

    # A new run replaces the old one (only the latest run is kept) and includes them.
    second = drive(lib.cluster(2))
    assert sum(c.size for c in second.clusters) == 10 and lib.new_photos() == []
    with lib.sessions() as session:
        assert len(session.scalars(select(db.ClusterRunRow)).all()) == 1
    lib.close()


def test_file_new_photos_goes_to_the_nearest_centroid() -> None:
    x = blobs(3, 10)
    result = clusters.kmeans(x, 3, nredo=3)
    run = clusters.ClusterRun(
        1,
        datetime.now(),
        1,
        3,
        [
            clusters.Cluster(idx + 1, idx, f"C{idx}", [], [], [], result.centroids[idx])
            for idx in range(3)
        ],
        {},
    )
    ids = np.arange(30, dtype=np.int64)
    filed = clusters.file_new_photos(run, ids, x, {int(i): f"/p/{i}.jpg" for i in ids})
    assert len(filed) == 30
    by_id = {p.image_id: p.cluster_id - 1 for p in filed}
    assert all(by_id[i] == result.labels[i] for i in range(30))
    assert all(p.confidence > 0.9 for p in filed)


# ---- schema -------------------------------------------------------------------


def test_upgrade_from_schema_2_adds_cluster_tables_with_cascades(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = db.open_engine(path, upgrade=False)
    legacy.migrate(old, target=2)
    with old.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO folders (id, path, is_reference, added_at) "
            "VALUES (1, '/photos', 0, '2024-01-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO images (id, folder_id, relpath, size, mtime_ns, status, scanned_at) "
            "VALUES (7, 1, 'a.jpg', 10, 5, 'ok', '2024-01-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO models (id, name, weights_sha256, dim, image_size) "
            "VALUES (1, 'm', 'w', 2, 224)"
        )
    old.dispose()

    engine = db.open_engine(path)
    sessions = db.session_factory(engine)
    with sessions() as session, session.begin():
        assert session.get(db.ImageRow, 7) is not None  # data kept
        run = db.ClusterRunRow(created_at=datetime.now(), model_id=1, k=1)
        session.add(run)
        session.flush()
        cluster = db.ClusterRow(run_id=run.id, idx=0, name="A", centroid=b"\0" * 8)
        session.add(cluster)
        session.flush()
        session.add(db.ClusterMember(cluster_id=cluster.id, image_id=7, score=1.0))
    with sessions() as session, session.begin():
        session.delete(session.get(db.ImageRow, 7))
    with sessions() as session, session.begin():
        assert session.scalars(select(db.ClusterMember)).all() == []
        session.delete(session.scalars(select(db.ModelRow)).one())
    with sessions() as session:
        assert session.scalars(select(db.ClusterRunRow)).all() == []
        assert session.scalars(select(db.ClusterRow)).all() == []
    engine.dispose()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == legacy.SCHEMA_VERSION >= 3
    con.close()


# ---- editing the latest run ----------------------------------------------------------


@pytest.fixture
def clustered(tmp_path: Path, tiny_weights: Path) -> Iterator[Library]:
    """A library of 8 embedded photos with a saved run of k = 3."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(8):
        imagegen.save_jpeg(photos / f"p{i}.jpg", seed=i, size=(200, 150))
    weightsgen.register_tiny_model()
    lib = Library(tmp_path / "lib", model=weightsgen.TINY, weights=tiny_weights, device="cpu")
    drive(lib.scan([str(photos)]))
    drive(lib.cluster(3))
    yield lib
    lib.close()


def _latest(lib: Library) -> clusters.ClusterRun:
    run = lib.clusters()
    assert run is not None
    return run


def _centroid_of(lib: Library, members: list[int]) -> np.ndarray:
    ids, vecs = lib._all_vectors()
    rows = [int(np.flatnonzero(ids == i)[0]) for i in members]
    x = vecs[rows] / np.linalg.norm(vecs[rows], axis=1, keepdims=True)
    mean = x.mean(axis=0)
    out: np.ndarray = mean / np.linalg.norm(mean)
    return out


def test_rename_is_saved_and_empty_names_are_refused(clustered: Library) -> None:
    first = _latest(clustered).clusters[0]
    assert clustered.rename_cluster(first.id, "  Holidays ") == "Holidays"
    assert _latest(clustered).clusters[0].name == "Holidays"
    with pytest.raises(LibraryError):
        clustered.rename_cluster(first.id, "   ")
    with pytest.raises(LibraryError):
        clustered.rename_cluster(99999, "X")


def test_merge_moves_members_and_recentres(clustered: Library) -> None:
    run = _latest(clustered)
    if run.k < 2:
        pytest.skip("k-means found one cluster only")
    keep, other = run.clusters[0], run.clusters[1]
    clustered.merge_clusters(keep.id, other.id)
    after = _latest(clustered)
    assert len(after.clusters) == run.k - 1 == after.k
    merged = next(c for c in after.clusters if c.id == keep.id)
    assert sorted(merged.member_ids) == sorted(keep.member_ids + other.member_ids)
    assert all(c.id != other.id for c in after.clusters)
    assert np.allclose(merged.centroid, _centroid_of(clustered, merged.member_ids), atol=1e-5)
    assert merged.scores == sorted(merged.scores, reverse=True)
    with pytest.raises(LibraryError):
        clustered.merge_clusters(keep.id, keep.id)


def test_move_to_cluster_and_an_emptied_cluster_goes(clustered: Library) -> None:
    run = _latest(clustered)
    if run.k < 2:
        pytest.skip("k-means found one cluster only")
    source, target = run.clusters[-1], run.clusters[0]
    moved = source.member_ids[:1]
    clustered.move_to_cluster(moved, target.id)
    after = {c.id: c for c in _latest(clustered).clusters}
    assert set(moved) <= set(after[target.id].member_ids)
    members = [i for c in after.values() for i in c.member_ids]
    assert len(members) == len(set(members)) == 8  # still a partition
    if source.size == 1:
        assert source.id not in after
    else:
        assert moved[0] not in after[source.id].member_ids
    assert np.allclose(
        after[target.id].centroid, _centroid_of(clustered, after[target.id].member_ids), atol=1e-5
    )


def test_exclude_removes_photos_from_the_run_and_the_export(
    clustered: Library, tmp_path: Path
) -> None:
    run = _latest(clustered)
    gone = run.clusters[0].member_ids[0]
    assert clustered.exclude_photos([gone, 123456]) == 1
    after = _latest(clustered)
    assert gone not in {i for c in after.clusters for i in c.member_ids}
    assert sum(c.size for c in after.clusters) == 7
    plan = clustered.export_plan(tmp_path / "dest")
    assert run.paths[gone] not in {src for src, _ in plan} and len(plan) == 7
    assert clustered.exclude_photos([]) == 0
    # Excluded stays excluded: it is not offered back as a "new photo".
    assert gone not in {p.image_id for p in clustered.new_photos()}


def test_accepting_a_new_photo_moves_it_into_its_filed_cluster(
    clustered: Library, tmp_path: Path
) -> None:
    more = tmp_path / "more"
    more.mkdir()
    imagegen.save_jpeg(more / "n.jpg", seed=77, size=(200, 150))
    drive(clustered.scan([str(more)]))
    (filed,) = clustered.new_photos()
    clustered.move_to_cluster([filed.image_id], filed.cluster_id)
    assert clustered.new_photos() == []
    target = next(c for c in _latest(clustered).clusters if c.id == filed.cluster_id)
    assert filed.image_id in target.member_ids


def test_rerun_keeps_names_of_clusters_that_persist(clustered: Library) -> None:
    run = _latest(clustered)
    for c in run.clusters:
        clustered.rename_cluster(c.id, f"Named {c.idx}")
    again = drive(clustered.cluster_keeping_names(run.k))
    # Same photos, same seed: the same centroids, so every folder keeps its name.
    assert sorted(c.name for c in again.clusters) == sorted(f"Named {c.idx}" for c in run.clusters)
    assert [c.name for c in _latest(clustered).clusters] == [c.name for c in again.clusters]


def test_inherit_names_skips_generic_and_distant_clusters(
    sessions: sessionmaker[Session],
) -> None:
    x = blobs(3, 1, dim=8)
    old = clusters.ClusterRun(
        1,
        datetime.now(),
        1,
        3,
        [
            clusters.Cluster(1, 0, "Beach", [], [], [], x[0]),
            clusters.Cluster(2, 1, "Group 2", [], [], [], x[1]),
        ],
        {},
    )
    new = clusters.ClusterRun(
        2,
        datetime.now(),
        1,
        3,
        [
            clusters.Cluster(3, 0, "Group 1", [], [], [], x[1]),  # matches a generic name
            clusters.Cluster(4, 1, "Beach", [], [], [], x[2]),  # far from every old one
        ],
        {},
    )
    assert clusters.is_generic_name("Group 12") and not clusters.is_generic_name("Group x")
    # Nothing matches a named old cluster: nothing is written (so no rows are needed).
    assert clusters.inherit_names(sessions, old, new) is new
    assert clusters.inherit_names(sessions, None, new) is new


def test_export_by_move_keeps_the_photos_sorted_and_embedded(
    clustered: Library, tmp_path: Path
) -> None:
    """The moved photos stay in the library at their new paths, with their vectors and
    folders (nothing to embed again); undo puts the rows back with the files."""
    run = _latest(clustered)
    before = {i: (p, Path(p).read_bytes()) for i, p in run.paths.items()}
    ids_before, vecs_before = clustered._all_vectors()
    dest = tmp_path / "sorted"
    result = drive(clustered.export_clusters_job(dest, "move"))
    assert len(result.moved) == 8 and not result.failed
    assert str(dest.resolve()) in [f.path for f in clustered.folders()]
    after = _latest(clustered)
    assert [c.member_ids for c in after.clusters] == [c.member_ids for c in run.clusters]
    for i, (old, data) in before.items():
        new = after.paths[i]
        assert new.startswith(str(dest.resolve()) + os.sep) and not os.path.exists(old)
        assert Path(new).read_bytes() == data
    assert clustered.status().pending == 0
    assert (
        clustered.search(after.paths[run.clusters[0].member_ids[0]], top=1)[0].image_id
        == (run.clusters[0].member_ids[0])
    )
    # A rescan finds everything where it is: nothing new, nothing gone.
    drive(clustered.scan())
    assert _latest(clustered).paths == after.paths
    ids_after, vecs_after = clustered._all_vectors()
    assert np.array_equal(ids_after, ids_before) and np.array_equal(vecs_after, vecs_before)

    clustered.undo()
    back = _latest(clustered)
    assert back.paths == {i: p for i, (p, _) in before.items()}
    assert all(Path(p).read_bytes() == data for p, data in before.values())
    assert clustered.status().pending == 0
    # DEST was made by the export: gone again, and no longer a library folder.
    assert not dest.exists()
    assert str(dest.resolve()) not in [f.path for f in clustered.folders()]


def test_a_cancelled_export_keeps_what_it_wrote_and_undo_removes_it(
    clustered: Library, tmp_path: Path
) -> None:
    from dino_desktop.core.progress import CancelToken

    dest = tmp_path / "out"
    token = CancelToken()
    job = clustered.export_clusters_job(dest, "copy", token)
    seen = []
    while True:
        try:
            step = next(job)
        except StopIteration as stop:
            result = stop.value
            break
        seen.append(step)
        if step.done == 3:
            token.cancel()
    assert result.cancelled and len(result.moved) == 3 and not result.failed
    assert [s.done for s in seen[:4]] == [0, 1, 2, 3] and seen[0].total == 8
    written = sorted(p for p in dest.rglob("*") if p.is_file())
    assert sorted(Path(d) for _, d in result.moved) == written
    for src, dst in result.moved:
        assert Path(src).read_bytes() == Path(dst).read_bytes()
    clustered.undo()
    assert not dest.exists() or not any(p.is_file() for p in dest.rglob("*"))
