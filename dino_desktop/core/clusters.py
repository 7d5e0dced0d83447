"""Auto-folders: spherical k-means over the stored embeddings, named and saved.

* **Clustering.** Spherical k-means (cosine) with faiss, 20 iterations and a
  fixed seed, so the same library gives the same folders. Every photo is then
  assigned to the centroid with the highest cosine, so the clusters are a
  partition of the embedded photos; a centroid that ends up with no photos is
  dropped (the run reports the number of non-empty clusters as its `k`).
* **Automatic k** (`choose_k`): the mean silhouette (cosine) is computed on a
  random sample of at most 5,000 vectors, for k = 2 .. min(30, n // 5) fitted on
  that sample; the k with the highest silhouette wins (ties: the smaller k).
  Below 10 photos there is nothing to judge: k = 1.
* **Names.** The most common parent-folder name among the members, if it
  covers ≥ 60 % of them; else, if ≥ 60 % have a capture date, the month range of
  those dates ("2024-07" or "2024-07 – 2024-09"); else "Group N". A folder
  name that holds ≥ 60 % of the whole run says nothing about one folder (a
  dump sorted from one "Camera" folder would give "Camera", "Camera (2)", …),
  so it is passed over. Equal names get " (2)", " (3)", …
* **Representatives**: the ≤ 6 members nearest their centroid. **Outliers**:
  members whose cosine to their centroid is below mean - 2·std of all members'
  cosines in the run (a cut relative to the run, because absolute cosines vary
  a lot between models).
* **Saving.** A run is stored in `cluster_runs` / `clusters` / `cluster_members`;
  only the latest run per model is kept (older ones are deleted on save, which
  bounds the table at one row per embedded photo).
* **Filing new photos** (`file_new_photos`): photos embedded since the latest run
  (those with a vector but not a member of it) go to the nearest saved centroid,
  with that cosine as the confidence; they are listed, not saved into the run.
* **Edits** (`rename_cluster`, `merge_clusters`, `move_to_cluster`,
  `exclude_photos`): one transaction each on the saved run; touched clusters get
  their centroid recomputed from their members' vectors. **Re-running**
  (`inherit_names`): a new cluster whose centroid has cosine ≥ 0.9 with an old
  cluster's takes the old name, unless that name is a generic "Group N".
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import catalog
from dino_desktop.core.db import (
    ClusterExclusion,
    ClusterMember,
    ClusterRow,
    ClusterRunRow,
    ImageRow,
    Raw,
    rename_row,
)
from dino_desktop.core.export_plan import plan_export
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import LibraryError
from dino_desktop.core.vectors import all_vectors, vectors_outside_run

NITER = 20
SEED = 1234
AUTO_K_MIN = 2
AUTO_K_MAX = 30
AUTO_MIN_PHOTOS = 10
SILHOUETTE_SAMPLE = 5000
NAME_SHARE = 0.6
REPRESENTATIVES = 6
OUTLIER_STD = 2.0


@dataclass(frozen=True, slots=True)
class KMeansResult:
    """Normalised centroids (k, d), each vector's cluster index and its cosine to it."""

    centroids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])


@dataclass(frozen=True, slots=True)
class Cluster:
    """One auto-folder of a saved run; member ids are ordered nearest the centroid first."""

    id: int
    idx: int
    name: str
    member_ids: list[int]
    scores: list[float]
    outlier_ids: list[int]
    centroid: np.ndarray = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.member_ids)

    @property
    def representative_ids(self) -> list[int]:
        return self.member_ids[:REPRESENTATIVES]


@dataclass(frozen=True, slots=True)
class ClusterRun:
    id: int
    created_at: datetime
    model_id: int
    k: int
    clusters: list[Cluster]
    paths: dict[int, str]  # image id → absolute path, for every member


@dataclass(frozen=True, slots=True)
class NewPhoto:
    """A photo embedded after the latest run, filed into its nearest saved cluster."""

    image_id: int
    path: str
    cluster_id: int
    cluster_name: str
    confidence: float  # cosine to that cluster's centroid


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; `x` itself (not a copy) when they already are.

    Stored embeddings are unit vectors: not copying them saves 1.5 GB at
    1,000,000 photos. Callers never write into the result. (The norms come from
    einsum: np.linalg.norm would square the whole array into a temporary.)
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    if norms.size and bool(np.all(np.abs(norms - 1.0) <= 1e-5)):
        return x
    out: np.ndarray = x / np.maximum(norms, 1e-12)
    return out


def kmeans(
    vectors: np.ndarray, k: int, *, niter: int = NITER, seed: int = SEED, nredo: int = 1
) -> KMeansResult:
    """Spherical k-means of L2-normalised rows; empty clusters are dropped."""
    import faiss

    x = _normalise(vectors)
    n, d = x.shape
    k = max(1, min(k, n))
    if k == 1:
        centroid = _normalise(x.mean(axis=0, keepdims=True))
        scores = x @ centroid[0]
        return KMeansResult(centroid, np.zeros(n, dtype=np.int64), scores.astype(np.float32))
    km = faiss.Kmeans(
        d,
        k,
        niter=niter,
        spherical=True,
        seed=seed,
        nredo=nredo,
        verbose=False,
        # Small libraries are the common case: don't warn about < 39 points a centroid,
        # and don't subsample large ones (the result must cover every photo anyway).
        min_points_per_centroid=1,
        max_points_per_centroid=max(256, n // k + 1),
    )
    km.train(x)
    assert km.centroids is not None
    centroids = _normalise(km.centroids)
    index = faiss.IndexFlatIP(d)
    index.add(centroids)
    sims, labels = index.search(x, 1)
    labels, sims = labels[:, 0].astype(np.int64), sims[:, 0]
    used = np.unique(labels)
    if len(used) < k:  # renumber so that cluster indices stay 0..k'-1
        remap = np.full(k, -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        centroids, labels = centroids[used], remap[labels]
    return KMeansResult(centroids, labels, sims.astype(np.float32))


def auto_k_range(n: int) -> range:
    """The k values `choose_k` tries for n photos (empty below AUTO_MIN_PHOTOS)."""
    if n < AUTO_MIN_PHOTOS:
        return range(0)
    return range(AUTO_K_MIN, max(AUTO_K_MIN, min(AUTO_K_MAX, n // 5)) + 1)


def choose_k(
    vectors: np.ndarray, *, seed: int = SEED, cancel: CancelToken | None = None
) -> Job[int]:
    """The k with the best cosine silhouette on a ≤ 5,000 sample (see the module doc)."""
    from sklearn.metrics import silhouette_score

    cancel = cancel or CancelToken()
    n = len(vectors)
    ks = auto_k_range(n)
    if not ks:
        return 1
    rng = np.random.default_rng(seed)
    if n > SILHOUETTE_SAMPLE:  # sample first: only the sample needs normalising
        vectors = vectors[np.sort(rng.choice(n, SILHOUETTE_SAMPLE, replace=False))]
    sample = _normalise(vectors)
    best_k, best_score = ks[0], -2.0
    for done, k in enumerate(ks):
        cancel.check()
        yield Progress("choose-k", done, len(ks), None, f"trying k = {k}")
        # Several restarts: faiss seeds with random points, and one unlucky start
        # (two seeds in one true group) would make the right k look bad.
        labels = kmeans(sample, k, seed=seed, nredo=3).labels
        if len(np.unique(labels)) < 2:
            continue
        score = float(silhouette_score(sample, labels, metric="cosine"))
        if score > best_score + 1e-9:
            best_k, best_score = k, score
    yield Progress("choose-k", len(ks), len(ks), None, f"k = {best_k}")
    return best_k


def _parent(path: str) -> str:
    return os.path.basename(os.path.dirname(path))


def cluster_name(
    paths: Sequence[str],
    dates: Sequence[datetime | None],
    number: int,
    common: frozenset[str] = frozenset(),
) -> str:
    """A folder name for one cluster (see the module docstring); `number` is 1-based.

    `common`: folder names too widespread in the run to tell its folders apart.
    """
    total = len(paths)
    if total:
        parents = Counter(_parent(p) for p in paths)
        parent, count = parents.most_common(1)[0]
        if parent and parent not in common and count / total >= NAME_SHARE:
            return parent
        dated = sorted(d for d in dates if d is not None)
        if dated and len(dated) / total >= NAME_SHARE:
            first, last = dated[0].strftime("%Y-%m"), dated[-1].strftime("%Y-%m")
            return first if first == last else f"{first} – {last}"
    return f"Group {number}"


def unique_names(names: Sequence[str]) -> list[str]:
    """The names with repeats made distinct: "Beach", "Beach (2)", … (case-insensitive)."""
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate.casefold() in seen:
            n += 1
            candidate = f"{name} ({n})"
        seen.add(candidate.casefold())
        out.append(candidate)
    return out


def outlier_cut(scores: np.ndarray) -> float:
    """Members below this cosine to their centroid are outliers: mean - 2·std of the run."""
    if len(scores) == 0:
        return -1.0
    return float(scores.mean() - OUTLIER_STD * scores.std())


def cluster_model(
    sessions: sessionmaker[Session],
    model_id: int,
    dim: int,
    k: int | None,
    cancel: CancelToken | None = None,
) -> Job[ClusterRun]:
    """`run_clustering` over every stored vector of a model, named from the photos'
    folders and dates (k None: automatic)."""
    ids, vecs = all_vectors(sessions, model_id, dim)
    photos = catalog.names_and_dates(sessions, ids)
    return (yield from run_clustering(sessions, model_id, ids, vecs, k, photos, cancel=cancel))


def run_clustering(
    sessions: sessionmaker[Session],
    model_id: int,
    ids: np.ndarray,
    vectors: np.ndarray,
    k: int | None,
    photos: Mapping[int, tuple[str, datetime | None]],
    *,
    seed: int = SEED,
    cancel: CancelToken | None = None,
) -> Job[ClusterRun]:
    """Cluster, name and save one run; `photos` maps image id → (path, taken_at)."""
    cancel = cancel or CancelToken()
    if k is not None and k < 1:
        raise ValueError("k must be at least 1")
    n = len(ids)
    if k is None:
        k = (yield from choose_k(vectors, seed=seed, cancel=cancel)) if n else 1
    cancel.check()
    yield Progress("cluster", 0, 1, None, f"k-means with k = {k}")
    if n:
        result = kmeans(vectors, k, seed=seed, nredo=3 if n <= 50_000 else 1)
    else:
        result = KMeansResult(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0))
    yield Progress("cluster", 1, 1, None, "naming")
    cut = outlier_cut(result.scores)
    members: list[np.ndarray] = []
    names: list[str] = []
    everywhere = Counter(_parent(p) for p, _ in photos.values())
    common = frozenset(
        name
        for name, count in everywhere.items()
        if result.k > 1 and photos and count / len(photos) >= NAME_SHARE
    )
    for idx in range(result.k):
        rows = np.flatnonzero(result.labels == idx)
        rows = rows[np.argsort(-result.scores[rows], kind="stable")]
        members.append(rows)
        info = [photos.get(int(ids[r]), ("", None)) for r in rows]
        names.append(cluster_name([p for p, _ in info], [d for _, d in info], idx + 1, common))
    names = unique_names(names)
    cancel.check()
    run = _save(sessions, model_id, ids, result, members, names, cut)
    paths = {int(i): photos[int(i)][0] for i in ids if int(i) in photos}
    return ClusterRun(run[0], run[1], model_id, result.k, run[2], paths)


def _save(
    sessions: sessionmaker[Session],
    model_id: int,
    ids: np.ndarray,
    result: KMeansResult,
    members: list[np.ndarray],
    names: list[str],
    cut: float,
) -> tuple[int, datetime, list[Cluster]]:
    created = datetime.now()
    clusters: list[Cluster] = []
    with sessions() as session, session.begin():
        # Only the latest run per model is kept (cascades remove its rows).
        session.execute(delete(ClusterRunRow).where(ClusterRunRow.model_id == model_id))
        run = ClusterRunRow(created_at=created, model_id=model_id, k=result.k)
        session.add(run)
        session.flush()
        for idx, (rows, name) in enumerate(zip(members, names, strict=True)):
            centroid = result.centroids[idx].astype(np.float32)
            row = ClusterRow(run_id=run.id, idx=idx, name=name, centroid=centroid.tobytes())
            session.add(row)
            session.flush()
            member_ids = [int(ids[r]) for r in rows]
            scores = [float(result.scores[r]) for r in rows]
            outliers = [i for i, s in zip(member_ids, scores, strict=True) if s < cut]
            out_set = set(outliers)
            if member_ids:
                # One executemany per cluster: 100,000s of members are not ORM objects.
                session.execute(
                    insert(ClusterMember),
                    [
                        {
                            "cluster_id": row.id,
                            "image_id": i,
                            "score": s,
                            "is_outlier": i in out_set,
                        }
                        for i, s in zip(member_ids, scores, strict=True)
                    ],
                )
            clusters.append(Cluster(row.id, idx, name, member_ids, scores, outliers, centroid))
        run_id = run.id
    return run_id, created, clusters


def load_latest(
    sessions: sessionmaker[Session], model_id: int, *, with_paths: bool = False
) -> ClusterRun | None:
    """The latest saved run of a model; `paths` is filled for every member with
    `with_paths`, else left empty (the GUI asks for rows as it shows them)."""
    with sessions() as session:
        run = session.scalar(
            select(ClusterRunRow)
            .where(ClusterRunRow.model_id == model_id)
            .order_by(ClusterRunRow.id.desc())
            .limit(1)
        )
        if run is None:
            return None
        clusters: list[Cluster] = []
        rows = session.scalars(
            select(ClusterRow).where(ClusterRow.run_id == run.id).order_by(ClusterRow.idx)
        ).all()
        # Every member of the run in one query, straight from the DB-API cursor:
        # 100,000 members through the ORM, a query per folder, took 0.6 s.
        by_cluster: dict[int, list[tuple[int, float, int]]] = {row.id: [] for row in rows}
        dbapi = Raw(session)
        for cluster_id, image_id, score, outlier in dbapi.execute(
            "SELECT m.cluster_id, m.image_id, m.score, m.is_outlier FROM cluster_members m"
            " JOIN clusters c ON c.id = m.cluster_id WHERE c.run_id = ?"
            " ORDER BY m.cluster_id, m.score DESC, m.image_id",
            (run.id,),
        ):
            by_cluster[cluster_id].append((image_id, score, outlier))
        for row in rows:
            found = by_cluster[row.id]
            clusters.append(
                Cluster(
                    row.id,
                    row.idx,
                    row.name,
                    [int(i) for i, _, _ in found],
                    [float(s) for _, s, _ in found],
                    [int(i) for i, _, o in found if o],
                    np.frombuffer(row.centroid, dtype=np.float32),
                )
            )
        latest = (run.id, run.created_at, run.model_id, run.k)
    members = (i for c in clusters for i in c.member_ids)
    return ClusterRun(*latest, clusters, catalog.paths_of(sessions, members) if with_paths else {})


def export_plan(
    sessions: sessionmaker[Session], model_id: int, dest: str | os.PathLike[str]
) -> list[tuple[str, str]]:
    """(source, destination) of every member of the latest run: one folder per cluster
    in `dest` (see `fileops.plan_export`). LibraryError when there is no run yet."""
    run = load_latest(sessions, model_id, with_paths=True)
    if run is None or not run.clusters:
        raise LibraryError("no auto-folders yet: run 'dino-desktop cluster' first")
    groups = [
        (c.name, [run.paths[i] for i in c.member_ids if i in run.paths]) for c in run.clusters
    ]
    return plan_export(groups, os.path.abspath(os.fspath(dest)))


def new_photos(
    sessions: sessionmaker[Session], model_id: int, dim: int, run: ClusterRun
) -> list[NewPhoto]:
    """Photos embedded since `run` (neither members nor excluded), each filed into
    its nearest cluster (see `file_new_photos`)."""
    ids, vecs = vectors_outside_run(sessions, model_id, dim, run.id)
    paths = catalog.paths_of(sessions, (int(i) for i in ids))
    return file_new_photos(run, ids, vecs, paths, excluded_ids(sessions, run.id))


def file_new_photos(
    run: ClusterRun,
    ids: np.ndarray,
    vectors: np.ndarray,
    paths: Mapping[int, str],
    excluded: Collection[int] = (),
) -> list[NewPhoto]:
    """Photos with a vector that are not in `run`, each filed to its nearest centroid.

    The embeddings table keeps no timestamps: "embedded after the run" is read as
    "has a vector but is not a member", which is the same set (every vector that
    existed at the run became a member). Sorted by confidence, highest first.
    """
    if not run.clusters or len(ids) == 0:
        return []
    members = {i for c in run.clusters for i in c.member_ids} | set(excluded)
    rows = np.array([r for r, i in enumerate(ids) if int(i) not in members], dtype=np.int64)
    if len(rows) == 0:
        return []
    centroids = np.stack([c.centroid for c in run.clusters])
    sims = _normalise(vectors[rows]) @ centroids.T
    best = sims.argmax(axis=1)
    out = [
        NewPhoto(
            int(ids[r]),
            paths.get(int(ids[r]), ""),
            run.clusters[b].id,
            run.clusters[b].name,
            float(sims[j, b]),
        )
        for j, (r, b) in enumerate(zip(rows, best, strict=True))
    ]
    out.sort(key=lambda p: (-p.confidence, p.path))
    return out


# ---- editing the latest run -------------------------------------------------------
#
# The user corrects the machine's folders: rename, merge, move photos, exclude
# photos. Each edit is one transaction on the saved run. Touched clusters get
# their centroid recomputed as the normalised mean of their members' vectors
# and their members' scores (cosine to it) refreshed, so "nearest the centroid
# first", representatives and the filing of new photos stay true after edits.
# A cluster left with no members is deleted (an empty folder exports nothing).

KEEP_NAME_COSINE = 0.9  # a new centroid this close to an old named one takes its name
_GENERIC_NAME = re.compile(r"Group \d+")


def _vector_lookup(ids: np.ndarray) -> dict[int, int]:
    return {int(i): r for r, i in enumerate(ids)}


def _cluster_row(session: Session, cluster_id: int) -> ClusterRow:
    row = session.get(ClusterRow, cluster_id)
    if row is None:
        raise ValueError(f"no auto-folder with id {cluster_id}")
    return row


def _recentre(
    session: Session,
    cluster_ids: Sequence[int],
    ids: np.ndarray,
    vectors: np.ndarray,
    run_id: int,
) -> None:
    """Recompute centroids, scores and outlier marks of the touched clusters; drop empties."""
    where = _vector_lookup(ids)
    for cluster_id in dict.fromkeys(cluster_ids):
        row = session.get(ClusterRow, cluster_id)
        if row is None:
            continue
        members = [
            int(i)
            for i in session.scalars(
                select(ClusterMember.image_id).where(ClusterMember.cluster_id == cluster_id)
            )
        ]
        if not members:
            session.delete(row)
            continue
        rows = [where[i] for i in members if i in where]
        if not rows:  # no vectors (another model's run?): keep the old centroid
            continue
        x = _normalise(vectors[rows])
        centroid = _normalise(x.mean(axis=0, keepdims=True))[0]
        row.centroid = centroid.astype(np.float32).tobytes()
        scores = x @ centroid
        # One executemany by primary key, not a statement per member.
        session.execute(
            update(ClusterMember),
            [
                {"cluster_id": cluster_id, "image_id": i, "score": float(s)}
                for i, s in zip((i for i in members if i in where), scores, strict=True)
            ],
        )
    session.flush()
    # The outlier cut is relative to the whole run, so it is recomputed over all of it.
    all_ids = select(ClusterRow.id).where(ClusterRow.run_id == run_id).scalar_subquery()
    found = session.execute(
        select(ClusterMember.cluster_id, ClusterMember.image_id, ClusterMember.score).where(
            ClusterMember.cluster_id.in_(all_ids)
        )
    ).all()
    cut = outlier_cut(np.array([s for _, _, s in found], dtype=np.float32))
    session.execute(
        update(ClusterMember)
        .where(ClusterMember.cluster_id.in_(all_ids))
        .values(is_outlier=ClusterMember.score < cut)
    )
    run = session.get(ClusterRunRow, run_id)
    if run is not None:
        run.k = len(session.scalars(select(ClusterRow.id).where(ClusterRow.run_id == run_id)).all())


def rename_cluster(
    sessions: sessionmaker[Session], cluster_id: int, name: str, was: str | None = None
) -> str:
    """Give a saved cluster a new name (stripped, non-empty); returns the name stored.
    `was`: the name the caller saw; when another client renamed it since, nothing is
    written (ConflictError) rather than its name silently overwritten."""
    name = name.strip()
    if not name:
        raise ValueError("a folder name cannot be empty")
    with sessions() as session, session.begin():
        rename_row(session, _cluster_row(session, cluster_id), name, was)
    return name


def merge_clusters(
    sessions: sessionmaker[Session],
    keep_id: int,
    other_id: int,
    ids: np.ndarray,
    vectors: np.ndarray,
) -> None:
    """Move every member of `other_id` into `keep_id` and delete `other_id`.

    The kept centroid becomes the normalised mean of all the members' vectors.
    """
    if keep_id == other_id:
        raise ValueError("cannot merge a folder with itself")
    with sessions() as session, session.begin():
        keep, other = _cluster_row(session, keep_id), _cluster_row(session, other_id)
        if keep.run_id != other.run_id:
            raise ValueError("the two folders belong to different runs")
        session.execute(
            update(ClusterMember)
            .where(ClusterMember.cluster_id == other_id)
            .values(cluster_id=keep_id)
        )
        session.flush()
        _recentre(session, [keep_id, other_id], ids, vectors, keep.run_id)


def move_to_cluster(
    sessions: sessionmaker[Session],
    image_ids: Sequence[int],
    cluster_id: int,
    ids: np.ndarray,
    vectors: np.ndarray,
) -> None:
    """Make the photos members of `cluster_id` (leaving their old cluster of the same run).

    Photos that were in no cluster of the run (new or excluded ones) join as well:
    this is how filed new photos are accepted.
    """
    wanted = sorted({int(i) for i in image_ids})
    with sessions() as session, session.begin():
        target = _cluster_row(session, cluster_id)
        run_ids = select(ClusterRow.id).where(ClusterRow.run_id == target.run_id)
        sources = [
            int(c)
            for c in session.scalars(
                select(ClusterMember.cluster_id)
                .where(
                    ClusterMember.cluster_id.in_(run_ids.scalar_subquery()),
                    ClusterMember.image_id.in_(wanted),
                )
                .distinct()
            )
        ]
        session.execute(
            delete(ClusterMember).where(
                ClusterMember.cluster_id.in_(run_ids.scalar_subquery()),
                ClusterMember.image_id.in_(wanted),
            )
        )
        if wanted:
            session.execute(
                insert(ClusterMember),
                [
                    {"cluster_id": cluster_id, "image_id": i, "score": 0.0, "is_outlier": False}
                    for i in wanted
                ],
            )
            # Put into a folder on purpose: no longer excluded.
            session.execute(
                delete(ClusterExclusion).where(
                    ClusterExclusion.run_id == target.run_id,
                    ClusterExclusion.image_id.in_(wanted),
                )
            )
        session.flush()
        _recentre(session, [cluster_id, *sources], ids, vectors, target.run_id)


def exclude_photos(
    sessions: sessionmaker[Session],
    model_id: int,
    image_ids: Sequence[int],
    ids: np.ndarray,
    vectors: np.ndarray,
) -> int:
    """Take the photos out of the latest run (they are not exported); returns how many left."""
    wanted = sorted({int(i) for i in image_ids})
    with sessions() as session, session.begin():
        run_id = session.scalar(
            select(ClusterRunRow.id)
            .where(ClusterRunRow.model_id == model_id)
            .order_by(ClusterRunRow.id.desc())
            .limit(1)
        )
        if run_id is None or not wanted:
            return 0
        in_run = select(ClusterRow.id).where(ClusterRow.run_id == run_id).scalar_subquery()
        found = session.execute(
            select(ClusterMember.cluster_id, ClusterMember.image_id).where(
                ClusterMember.cluster_id.in_(in_run), ClusterMember.image_id.in_(wanted)
            )
        ).all()
        session.execute(
            delete(ClusterMember).where(
                ClusterMember.cluster_id.in_(in_run), ClusterMember.image_id.in_(wanted)
            )
        )
        # Remembered, so an excluded photo is not offered again as a "new photo".
        session.execute(
            delete(ClusterExclusion).where(
                ClusterExclusion.run_id == run_id, ClusterExclusion.image_id.in_(wanted)
            )
        )
        existing = session.scalars(select(ImageRow.id).where(ImageRow.id.in_(wanted))).all()
        if existing:
            session.execute(
                insert(ClusterExclusion), [{"run_id": run_id, "image_id": i} for i in existing]
            )
        session.flush()
        _recentre(session, [int(c) for c, _ in found], ids, vectors, run_id)
        return len(found)


def excluded_ids(sessions: sessionmaker[Session], run_id: int) -> set[int]:
    """The photos the user excluded from a run."""
    with sessions() as session:
        return set(
            session.scalars(
                select(ClusterExclusion.image_id).where(ClusterExclusion.run_id == run_id)
            )
        )


def is_generic_name(name: str) -> bool:
    """True for the fallback names "Group N", which are not worth carrying to a new run."""
    return _GENERIC_NAME.fullmatch(name) is not None


def inherit_names(
    sessions: sessionmaker[Session], old: ClusterRun | None, new: ClusterRun
) -> ClusterRun:
    """Give the clusters of a new run the names of the old run's clusters they continue.

    A new cluster whose centroid has cosine ≥ KEEP_NAME_COSINE (0.9) with an old
    cluster's centroid takes that old name, unless the old name is a generic
    "Group N". Pairs are matched one to one, closest first, so one old folder
    names at most one new folder. Names stay distinct (inherited names win).
    Saved in one transaction; returns the run with its names updated.
    """
    if old is None or not old.clusters or not new.clusters:
        return new
    named = [c for c in old.clusters if not is_generic_name(c.name)]
    if not named:
        return new
    sims = np.stack([c.centroid for c in new.clusters]) @ np.stack([c.centroid for c in named]).T
    pairs = sorted(
        ((float(sims[a, b]), a, b) for a in range(sims.shape[0]) for b in range(sims.shape[1])),
        reverse=True,
    )
    taken: dict[int, str] = {}
    used: set[int] = set()
    for score, a, b in pairs:
        if score < KEEP_NAME_COSINE:
            break
        if a in taken or b in used:
            continue
        taken[a] = named[b].name
        used.add(b)
    if not taken:
        return new
    order = sorted(range(len(new.clusters)), key=lambda a: a not in taken)
    distinct = unique_names([taken.get(a, new.clusters[a].name) for a in order])
    names = dict(zip(order, distinct, strict=True))
    renamed: list[Cluster] = []
    with sessions() as session, session.begin():
        for a, c in enumerate(new.clusters):
            if names[a] != c.name:
                _cluster_row(session, c.id).name = names[a]
            renamed.append(dataclasses.replace(c, name=names[a]))
    return dataclasses.replace(new, clusters=renamed)
