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
  those dates ("2024-07" or "2024-07 – 2024-09"); else "Group N". Equal names
  get " (2)", " (3)", …
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
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import ClusterMember, ClusterRow, ClusterRunRow
from dino_desktop.core.progress import CancelToken, Job, Progress

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
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
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
    from sklearn.metrics import silhouette_score  # type: ignore[import-untyped]

    cancel = cancel or CancelToken()
    n = len(vectors)
    ks = auto_k_range(n)
    if not ks:
        return 1
    rng = np.random.default_rng(seed)
    sample = _normalise(vectors)
    if n > SILHOUETTE_SAMPLE:
        sample = sample[np.sort(rng.choice(n, SILHOUETTE_SAMPLE, replace=False))]
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


def cluster_name(paths: Sequence[str], dates: Sequence[datetime | None], number: int) -> str:
    """A folder name for one cluster (see the module docstring); `number` is 1-based."""
    total = len(paths)
    if total:
        parents = Counter(os.path.basename(os.path.dirname(p)) for p in paths)
        parent, count = parents.most_common(1)[0]
        if parent and count / total >= NAME_SHARE:
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
    for idx in range(result.k):
        rows = np.flatnonzero(result.labels == idx)
        rows = rows[np.argsort(-result.scores[rows], kind="stable")]
        members.append(rows)
        info = [photos.get(int(ids[r]), ("", None)) for r in rows]
        names.append(cluster_name([p for p, _ in info], [d for _, d in info], idx + 1))
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


def load_latest(sessions: sessionmaker[Session], model_id: int) -> ClusterRun | None:
    """The latest saved run of a model (paths left empty: the caller fills them)."""
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
        for row in rows:
            found = session.execute(
                select(ClusterMember.image_id, ClusterMember.score, ClusterMember.is_outlier)
                .where(ClusterMember.cluster_id == row.id)
                .order_by(ClusterMember.score.desc(), ClusterMember.image_id)
            ).all()
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
        return ClusterRun(run.id, run.created_at, run.model_id, run.k, clusters, {})


def file_new_photos(
    run: ClusterRun, ids: np.ndarray, vectors: np.ndarray, paths: Mapping[int, str]
) -> list[NewPhoto]:
    """Photos with a vector that are not in `run`, each filed to its nearest centroid.

    The embeddings table keeps no timestamps: "embedded after the run" is read as
    "has a vector but is not a member", which is the same set (every vector that
    existed at the run became a member). Sorted by confidence, highest first.
    """
    if not run.clusters or len(ids) == 0:
        return []
    members = {i for c in run.clusters for i in c.member_ids}
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
