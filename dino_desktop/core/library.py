"""`Library`: the one facade over storage, scanning, embedding and search.

The CLI and the GUI call only this class. Long jobs are generators of
`Progress` that return their result (see `progress.drive`); everything else
returns plain data classes, never ORM rows, so callers need no session.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import exists, func, select

from dino_desktop.config import WEIGHTS_ENV, LibraryPaths, Settings, library_home
from dino_desktop.core import embedder as emb
from dino_desktop.core import scanner
from dino_desktop.core.db import (
    Embedding,
    Folder,
    ImageRow,
    ModelRow,
    open_engine,
    session_factory,
)
from dino_desktop.core.fileops import FileOps, OpResult
from dino_desktop.core.images import ImageError, open_image
from dino_desktop.core.index import VectorIndex, open_index
from dino_desktop.core.progress import CancelToken, Job, Progress

if TYPE_CHECKING:
    from dino_desktop.core.clusters import ClusterRun, NewPhoto
    from dino_desktop.core.duplicates import Group
    from dino_desktop.core.embedder import Embedder
    from dino_desktop.core.overlay import OverlayEngine

EMBED_COMMIT_EVERY = 256


class LibraryError(Exception):
    """An expected failure with a message meant for the user (bad path, bad argument)."""


@dataclass(frozen=True, slots=True)
class FolderInfo:
    id: int
    path: str
    is_reference: bool
    images: int
    failed: int


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: int
    path: str
    status: str
    width: int | None
    height: int | None
    taken_at: datetime | None
    camera: str | None
    size: int
    error: str | None


class PhotoRow(NamedTuple):
    """A readable photo, as light as possible: the GUI holds 100,000s of these.

    A NamedTuple of atoms, so the garbage collector does not track the rows and
    full collections stay short while the GUI holds a large library.
    """

    id: int
    path: str
    folder_id: int
    taken_at: datetime | None
    width: int
    height: int
    size: int
    mtime_ns: int
    camera: str | None


SORTS = ("date", "name", "folder")


@dataclass(frozen=True, slots=True)
class Status:
    images: int
    embedded: int
    pending: int
    failed: int
    folders: list[FolderInfo]
    model: str
    weights: str | None


@dataclass(slots=True)
class ScanResult(scanner.ScanReport):
    """A scan's report plus what the embedding step did."""

    embedded: int = 0
    pending: int = 0
    weights_missing: str | None = None  # the WeightsUnavailable message, when embedding waited


@dataclass(frozen=True, slots=True)
class SearchHit:
    path: str
    score: float
    image_id: int


class Library:
    """One photo library: a folder with the database, index, caches and settings."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        model: str | None = None,
        weights: str | os.PathLike[str] | None = None,
        device: str | None = None,
    ) -> None:
        self.paths = LibraryPaths(library_home(home))
        self.paths.ensure()
        self.settings = Settings.load(self.paths.settings)
        self.model_name = model or self.settings.model
        emb.get_spec(self.model_name)  # fail early on an unknown model name
        self._weights_arg = Path(weights).expanduser().resolve() if weights else None
        self.device = device or self.settings.device
        self.engine = open_engine(self.paths.db)
        self.sessions = session_factory(self.engine)
        self.fileops = FileOps(self.sessions)
        self._embedder: Embedder | None = None
        # The GUI may search while a scan embeds: build the model once.
        self._embedder_lock = threading.Lock()
        self._model_id: int | None = None
        self._overlay: OverlayEngine | None = None
        self._index: VectorIndex | None = None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- folders -------------------------------------------------------------

    def add_folder(self, path: str | os.PathLike[str], *, reference: bool = False) -> FolderInfo:
        """Register a folder (idempotent); `reference` marks it protected."""
        real = os.path.realpath(os.path.expanduser(os.fspath(path)))
        if not os.path.isdir(real):
            raise LibraryError(f"not a folder: {os.fspath(path)}")
        with self.sessions() as session, session.begin():
            folder = session.scalar(select(Folder).where(Folder.path == real))
            if folder is None:
                folder = Folder(path=real, is_reference=reference, added_at=datetime.now())
                session.add(folder)
            elif reference and not folder.is_reference:
                folder.is_reference = True
            session.flush()
            folder_id = folder.id
        return next(f for f in self.folders() if f.id == folder_id)

    def remove_folder(self, folder_id: int) -> None:
        """Forget a folder and its photos' records (the files on disk are not touched)."""
        with self.sessions() as session, session.begin():
            folder = session.get(Folder, folder_id)
            if folder is not None:
                session.delete(folder)

    def set_reference(self, folder_id: int, reference: bool) -> None:
        with self.sessions() as session, session.begin():
            folder = session.get(Folder, folder_id)
            if folder is None:
                raise LibraryError(f"no folder with id {folder_id}")
            folder.is_reference = reference

    def folders(self) -> list[FolderInfo]:
        with self.sessions() as session:
            counts: dict[int, int] = {}
            failed: dict[int, int] = {}
            for folder_id, status, n in session.execute(
                select(ImageRow.folder_id, ImageRow.status, func.count()).group_by(
                    ImageRow.folder_id, ImageRow.status
                )
            ):
                (counts if status == "ok" else failed)[folder_id] = n
            return [
                FolderInfo(f.id, f.path, f.is_reference, counts.get(f.id, 0), failed.get(f.id, 0))
                for f in session.scalars(select(Folder).order_by(Folder.path))
            ]

    # ---- scanning and embedding ---------------------------------------------

    def scan(
        self,
        paths: Iterable[str | os.PathLike[str]] = (),
        *,
        reference: bool = False,
        embed: bool = True,
        cancel: CancelToken | None = None,
    ) -> Job[ScanResult]:
        """Add `paths` as folders (none: every registered folder), scan them, embed what waits."""
        cancel = cancel or CancelToken()
        added = [self.add_folder(p, reference=reference) for p in paths]
        folder_ids = [f.id for f in added] or [f.id for f in self.folders()]
        report = yield from scanner.scan(self.sessions, folder_ids, cancel)
        result = ScanResult(**{f.name: getattr(report, f.name) for f in fields(report)})
        if embed and not report.cancelled:
            try:
                result.embedded, failed = yield from self.embed_pending(cancel)
                result.failed.extend(failed)
            except emb.WeightsUnavailable as exc:
                result.weights_missing = str(exc)
            result.cancelled = cancel.cancelled
        result.pending = self.pending_count()
        return result

    def embed_pending(
        self, cancel: CancelToken | None = None
    ) -> Job[tuple[int, list[tuple[str, str]]]]:
        """Embed every readable photo that has no vector for the current model.

        Returns (embedded, failed). Raises WeightsUnavailable before any work when
        there are no weights. A photo that fails to decode is marked failed.
        """
        cancel = cancel or CancelToken()
        model_id = self.model_id()
        todo = self._pending_rows(model_id)
        if not todo:
            return 0, []  # nothing waits: don't pay for loading the model
        embedder = self.embedder()
        total = len(todo)
        yield Progress("embed", 0, total, None, "computing embeddings")
        embedded = 0
        failed: list[tuple[str, str]] = []
        batch: list[tuple[int, np.ndarray | None, str | None]] = []
        paths = [p for _, p in todo]
        for done, (index, vector, error) in enumerate(embedder.embed_files(paths, cancel), 1):
            batch.append((todo[index][0], vector, error))
            if error is not None:
                failed.append((paths[index], error))
            if len(batch) >= EMBED_COMMIT_EVERY:
                embedded += self._store_vectors(model_id, batch)
                batch = []
            yield Progress("embed", done, total, paths[index])
        embedded += self._store_vectors(model_id, batch)
        return embedded, failed

    def _pending_rows(self, model_id: int) -> list[tuple[int, str]]:
        with self.sessions() as session:
            rows = session.execute(
                select(ImageRow.id, Folder.path, ImageRow.relpath)
                .join(Folder)
                .where(ImageRow.status == "ok")
                .where(
                    ~exists().where(
                        (Embedding.image_id == ImageRow.id) & (Embedding.model_id == model_id)
                    )
                )
                .order_by(ImageRow.id)
            )
            return [(image_id, os.path.join(root, rel)) for image_id, root, rel in rows]

    def _store_vectors(
        self, model_id: int, batch: list[tuple[int, np.ndarray | None, str | None]]
    ) -> int:
        stored = 0
        with self.sessions() as session, session.begin():
            for image_id, vector, error in batch:
                row = session.get(ImageRow, image_id)
                if row is None:  # removed meanwhile
                    continue
                if vector is None:
                    row.status = "failed"
                    row.error = error
                    continue
                session.merge(
                    Embedding(
                        image_id=image_id,
                        model_id=model_id,
                        vector=np.asarray(vector, dtype=np.float32).tobytes(),
                    )
                )
                stored += 1
        return stored

    def pending_count(self) -> int:
        """Readable photos still waiting for an embedding from the current model."""
        model_id = self._model_id
        if model_id is None:
            try:
                model_id = self._lookup_model_id(create=False)
            except emb.WeightsUnavailable:
                model_id = None
        with self.sessions() as session:
            if model_id is None:
                # No weights (or weights never used): every readable photo waits.
                model_ids: list[int] = []
            else:
                model_ids = [model_id]
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(ImageRow)
                    .where(ImageRow.status == "ok")
                    .where(
                        ~exists().where(
                            (Embedding.image_id == ImageRow.id)
                            & (Embedding.model_id.in_(model_ids))
                        )
                    )
                )
                or 0
            )

    # ---- model ---------------------------------------------------------------

    def weights_path(self) -> Path:
        """The weights file in use; raises WeightsUnavailable with what to download."""
        return emb.resolve_weights(self.model_name, self._weights_arg, self.paths.models_dir)

    def weights_source(self) -> str | None:
        if self._weights_arg is not None:
            return "option"
        if os.environ.get(WEIGHTS_ENV):
            return "environment"
        try:
            self.weights_path()
        except emb.WeightsUnavailable:
            return None
        return "cache"

    def embedder(self) -> Embedder:
        with self._embedder_lock:
            return self._get_embedder()

    def _get_embedder(self) -> Embedder:
        if self._embedder is None:
            weights = self.weights_path()
            try:
                self._embedder = emb.Embedder(
                    self.model_name,
                    weights,
                    device=self.device,
                    batch_size=self.settings.batch_size,
                    precision=self.settings.precision,
                )
            except ValueError as exc:  # e.g. --device cuda on a machine without CUDA
                raise LibraryError(str(exc)) from exc
        return self._embedder

    def model_id(self) -> int:
        """The row of (model, weights file): vectors of different weights never mix."""
        if self._model_id is None:
            self._model_id = self._lookup_model_id(create=True)
        assert self._model_id is not None
        return self._model_id

    def _lookup_model_id(self, *, create: bool) -> int | None:
        spec = emb.get_spec(self.model_name)
        sha = emb.file_sha256(self.weights_path(), self.paths.models_dir)
        with self.sessions() as session, session.begin():
            row_id: int | None = session.scalar(
                select(ModelRow.id).where(
                    (ModelRow.name == self.model_name) & (ModelRow.weights_sha256 == sha)
                )
            )
            if row_id is None and create:
                row = ModelRow(
                    name=self.model_name,
                    weights_sha256=sha,
                    dim=spec.dim,
                    image_size=emb.IMAGE_SIZE,
                )
                session.add(row)
                session.flush()
                row_id = row.id
            return row_id

    def overlay_engine(self) -> OverlayEngine:
        """Patch features for PCA overlays (a 518-px model of its own, built on first use)."""
        with self._embedder_lock:
            if self._overlay is None or self._overlay.model_name != self.model_name:
                from dino_desktop.core.overlay import OverlayEngine

                try:
                    self._overlay = OverlayEngine(
                        self.model_name, self.weights_path(), device=self.device
                    )
                except ValueError as exc:
                    raise LibraryError(str(exc)) from exc
            return self._overlay

    def import_weights(self, source: str | os.PathLike[str]) -> Path:
        return emb.import_weights(self.model_name, Path(source), self.paths.models_dir)

    def model_status(self) -> dict[str, Any]:
        spec = emb.get_spec(self.model_name)
        try:
            weights: str | None = str(self.weights_path())
        except emb.WeightsUnavailable:
            weights = None
        return {
            "model": self.model_name,
            "dim": spec.dim,
            "weights": weights,
            "source": self.weights_source(),
            "cache": str(self.paths.models_dir),
            "download": spec.hf_repo and f"https://huggingface.co/{spec.hf_repo}",
            "meta_url": spec.meta_url,
            "pending": self.pending_count(),
        }

    # ---- reading -------------------------------------------------------------

    def status(self) -> Status:
        folders = self.folders()
        with self.sessions() as session:
            failed = session.scalar(
                select(func.count()).select_from(ImageRow).where(ImageRow.status == "failed")
            )
        images = sum(f.images for f in folders)
        pending = self.pending_count()
        try:
            weights: str | None = str(self.weights_path())
        except emb.WeightsUnavailable:
            weights = None
        return Status(
            images=images,
            embedded=images - pending,
            pending=pending,
            failed=int(failed or 0),
            folders=folders,
            model=self.model_name,
            weights=weights,
        )

    def images(self, *, failed_only: bool = False) -> Iterator[ImageRecord]:
        """Every indexed file (or only the unreadable ones), in folder and path order."""
        query = select(ImageRow, Folder.path).join(Folder)
        if failed_only:
            query = query.where(ImageRow.status == "failed")
        with self.sessions() as session:
            rows = session.execute(
                query.order_by(Folder.path, ImageRow.relpath).execution_options(yield_per=2000)
            )
            for row, root in rows:
                yield ImageRecord(
                    id=row.id,
                    path=os.path.join(root, row.relpath),
                    status=row.status,
                    width=row.width,
                    height=row.height,
                    taken_at=row.taken_at,
                    camera=row.camera,
                    size=row.size,
                    error=row.error,
                )

    def photos_by_id(self, ids: Iterable[int]) -> dict[int, PhotoRow]:
        """PhotoRows for the given image ids (readable photos only)."""
        wanted = list(ids)
        out: dict[int, PhotoRow] = {}
        for start in range(0, len(wanted), 500):
            out.update(
                (r.id, r) for r in self._photo_rows(ImageRow.id.in_(wanted[start : start + 500]))
            )
        return out

    def _photo_rows(self, *conditions: Any) -> list[PhotoRow]:
        # Core rows and one path prefix per folder: this runs over the whole
        # library when the GUI opens, so no ORM objects and no per-row join.
        with self.sessions() as session:
            prefixes = {
                fid: root if root.endswith(os.sep) else root + os.sep
                for fid, root in session.execute(select(Folder.id, Folder.path))
            }
            result = session.execute(
                select(
                    ImageRow.id,
                    ImageRow.folder_id,
                    ImageRow.relpath,
                    ImageRow.taken_at,
                    ImageRow.width,
                    ImageRow.height,
                    ImageRow.size,
                    ImageRow.mtime_ns,
                    ImageRow.camera,
                ).where(ImageRow.status == "ok", *conditions)
            )
            return [
                PhotoRow(i, prefixes[fid] + rel, fid, taken, w or 0, h or 0, size, mt, cam)
                for i, fid, rel, taken, w, h, size, mt, cam in result
            ]

    def photos(
        self, *, folder_id: int | None = None, sort: str = "date", after_id: int = 0
    ) -> list[PhotoRow]:
        """Readable photos, optionally of one folder, sorted by date taken, name or folder.

        Photos without a date sort after dated ones. `after_id` returns only rows
        added since (ids grow), which lets a view append while a scan runs.
        """
        if sort not in SORTS:
            raise LibraryError(f"unknown sort {sort!r}; choose from {', '.join(SORTS)}")
        conditions = [ImageRow.id > after_id]
        if folder_id is not None:
            conditions.append(ImageRow.folder_id == folder_id)
        rows = self._photo_rows(*conditions)
        if sort == "date":
            rows.sort(key=lambda r: (r.taken_at is None, r.taken_at or datetime.min, r.path))
        elif sort == "name":
            rows.sort(key=lambda r: (os.path.basename(r.path).casefold(), r.path))
        else:
            rows.sort(key=lambda r: r.path)
        return rows

    def find_image(self, path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
        """(image id, size, mtime_ns) of the library's record for a file path, if any."""
        real = os.path.realpath(os.fspath(path))
        with self.sessions() as session:
            for folder in session.scalars(select(Folder)):
                root = folder.path.rstrip(os.sep) + os.sep
                if real.startswith(root):
                    row = session.scalar(
                        select(ImageRow).where(
                            (ImageRow.folder_id == folder.id)
                            & (ImageRow.relpath == real[len(root) :])
                        )
                    )
                    if row is not None:
                        return row.id, row.size, row.mtime_ns
        return None

    def paths_of(self, ids: Iterable[int]) -> dict[int, str]:
        wanted = list(ids)
        out: dict[int, str] = {}
        with self.sessions() as session:
            for start in range(0, len(wanted), 500):
                rows = session.execute(
                    select(ImageRow.id, Folder.path, ImageRow.relpath)
                    .join(Folder)
                    .where(ImageRow.id.in_(wanted[start : start + 500]))
                )
                out.update({i: os.path.join(root, rel) for i, root, rel in rows})
        return out

    # ---- search --------------------------------------------------------------

    def index(self) -> VectorIndex:
        """The FAISS index of the current model, rebuilt when the database moved on."""
        model_id = self.model_id()
        self._index = open_index(self.sessions, model_id, self.embedder().dim, self.paths.index_dir)
        return self._index

    def query_vector(self, image: str | os.PathLike[str]) -> np.ndarray:
        """The embedding of any image file: the stored one if it is an unchanged library photo."""
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise LibraryError(f"no such image file: {path}")
        model_id = self.model_id()
        known = self.find_image(path)
        if known is not None:
            st = os.stat(path)
            if (known[1], known[2]) == (st.st_size, st.st_mtime_ns):
                with self.sessions() as session:
                    blob = session.scalar(
                        select(Embedding.vector).where(
                            (Embedding.image_id == known[0]) & (Embedding.model_id == model_id)
                        )
                    )
                if blob is not None:
                    return np.frombuffer(blob, dtype=np.float32)
        _, vector, error = next(self.embedder().embed_files([path]))
        if vector is None:
            raise ImageError(f"cannot read {path}: {error}")
        return vector

    def search(self, image: str | os.PathLike[str], top: int = 10) -> list[SearchHit]:
        """The `top` photos nearest to an image file (inside the library or not), best first."""
        return self.search_vector(self.query_vector(image), top)

    def search_region(
        self, image: str | os.PathLike[str], box: tuple[int, int, int, int], top: int = 10
    ) -> list[SearchHit]:
        """Search by a region of a photo: `box` = (left, top, right, bottom) in display pixels
        (after EXIF orientation); the crop is embedded as the query."""
        img = open_image(os.fspath(image))
        left, upper, right, lower = box
        left, right = sorted((max(0, left), min(img.width, right)))
        upper, lower = sorted((max(0, upper), min(img.height, lower)))
        if right - left < 8 or lower - upper < 8:
            raise LibraryError("the selected region is too small to search by")
        crop = img.crop((left, upper, right, lower))
        return self.search_vector(self.embedder().embed_images([crop])[0], top)

    def search_vector(self, vector: np.ndarray, top: int = 10) -> list[SearchHit]:
        hits = self.index().search(vector, top)
        paths = self.paths_of(i for i, _ in hits)
        return [SearchHit(paths[i], s, i) for i, s in hits if i in paths]

    # ---- changing files (journaled, undoable) --------------------------------

    def trash(self, paths: Iterable[str | os.PathLike[str]]) -> OpResult:
        """Move files to the system trash (never from a reference folder); journaled."""
        return self.fileops.trash([os.path.abspath(os.fspath(p)) for p in paths])

    def move(
        self, paths: Iterable[str | os.PathLike[str]], dest: str | os.PathLike[str]
    ) -> OpResult:
        """Move files into a folder (collision-safe names, never overwrites); journaled."""
        return self.fileops.move([os.path.abspath(os.fspath(p)) for p in paths], os.fspath(dest))

    def duplicates(
        self,
        method: str = "exact",
        threshold: float | None = None,
        *,
        upper: float | None = None,
        rotations: bool = False,
        cancel: CancelToken | None = None,
    ) -> Job[list[Group]]:
        """Duplicate groups by one method ("exact", "phash" or "dino"); yields Progress."""
        from dino_desktop.core import duplicates

        vectors = None
        if method == "dino":
            ids, vecs = self._all_vectors()
            vectors = (ids, vecs)
        try:
            return duplicates.find_duplicates(
                self.sessions,
                method,
                threshold,
                upper=upper,
                rotations=rotations,
                vectors=vectors,
                cancel=cancel,
            )
        except ValueError as exc:  # a bad threshold or option for this method
            raise LibraryError(str(exc)) from exc

    # ---- auto-folders ----------------------------------------------------------

    def cluster(self, k: int | None = None, cancel: CancelToken | None = None) -> Job[ClusterRun]:
        """K-means auto-folders over every embedded photo (k None: automatic); saved.

        Raises WeightsUnavailable (no model to say whose vectors to use) and
        LibraryError for k < 1. See `core.clusters` for naming and outliers.
        """
        from dino_desktop.core import clusters

        if k is not None and k < 1:
            raise LibraryError("k must be at least 1")
        model_id = self.model_id()
        ids, vecs = self._all_vectors()
        photos = self._cluster_photos(ids)
        run = yield from clusters.run_clustering(
            self.sessions, model_id, ids, vecs, k, photos, cancel=cancel
        )
        return run

    def _cluster_photos(self, ids: Iterable[int]) -> dict[int, tuple[str, datetime | None]]:
        wanted = [int(i) for i in ids]
        dated = self.photos_by_id(wanted)
        return {
            i: (p, dated[i].taken_at if i in dated else None)
            for i, p in self.paths_of(wanted).items()
        }

    def clusters(self) -> ClusterRun | None:
        """The latest saved auto-folder run of the current model, or None."""
        from dataclasses import replace

        from dino_desktop.core import clusters

        run = clusters.load_latest(self.sessions, self.model_id())
        if run is None:
            return None
        return replace(run, paths=self.paths_of(i for c in run.clusters for i in c.member_ids))

    def cluster_keeping_names(
        self, k: int | None = None, cancel: CancelToken | None = None
    ) -> Job[ClusterRun]:
        """`cluster`, then the new folders that continue old named ones keep their names."""
        from dino_desktop.core import clusters

        old = self.clusters()
        run = yield from self.cluster(k, cancel)
        return clusters.inherit_names(self.sessions, old, run)

    def rename_cluster(self, cluster_id: int, name: str) -> str:
        """Rename a folder of the latest run; returns the name stored (stripped)."""
        from dino_desktop.core import clusters

        try:
            return clusters.rename_cluster(self.sessions, cluster_id, name)
        except ValueError as exc:
            raise LibraryError(str(exc)) from exc

    def merge_clusters(self, keep_id: int, other_id: int) -> None:
        """Merge folder `other_id` into `keep_id` (the other one is deleted)."""
        from dino_desktop.core import clusters

        ids, vecs = self._all_vectors()
        try:
            clusters.merge_clusters(self.sessions, keep_id, other_id, ids, vecs)
        except ValueError as exc:
            raise LibraryError(str(exc)) from exc

    def move_to_cluster(self, image_ids: Iterable[int], cluster_id: int) -> None:
        """Put photos into a folder of the latest run (also accepts filed new photos)."""
        from dino_desktop.core import clusters

        ids, vecs = self._all_vectors()
        try:
            clusters.move_to_cluster(self.sessions, list(image_ids), cluster_id, ids, vecs)
        except ValueError as exc:
            raise LibraryError(str(exc)) from exc

    def exclude_photos(self, image_ids: Iterable[int]) -> int:
        """Take photos out of the latest run's folders (not exported); returns how many."""
        from dino_desktop.core import clusters

        ids, vecs = self._all_vectors()
        return clusters.exclude_photos(self.sessions, self.model_id(), list(image_ids), ids, vecs)

    def new_photos(self) -> list[NewPhoto]:
        """Photos embedded since the latest run, filed into its nearest saved cluster."""
        from dino_desktop.core import clusters

        run = self.clusters()
        if run is None:
            return []
        ids, vecs = self._all_vectors()
        excluded = clusters.excluded_ids(self.sessions, run.id)
        members = {i for c in run.clusters for i in c.member_ids} | excluded
        paths = self.paths_of(int(i) for i in ids if int(i) not in members)
        return clusters.file_new_photos(run, ids, vecs, paths, excluded)

    def export_plan(self, dest: str | os.PathLike[str]) -> list[tuple[str, str]]:
        """What `export_clusters` would write: (source, destination) for every member."""
        from dino_desktop.core.fileops import plan_export

        run = self.clusters()
        if run is None or not run.clusters:
            raise LibraryError("no auto-folders yet: run 'dino-desktop cluster' first")
        groups = [
            (c.name, [run.paths[i] for i in c.member_ids if i in run.paths]) for c in run.clusters
        ]
        return plan_export(groups, os.path.abspath(os.fspath(dest)))

    def export_clusters(self, dest: str | os.PathLike[str], mode: str = "copy") -> OpResult:
        """Write the latest run as one folder per cluster in `dest`; journaled, undoable."""
        from dino_desktop.core.fileops import EXPORT_MODES

        if mode not in EXPORT_MODES:
            raise LibraryError(f"unknown export mode {mode!r}; use {', '.join(EXPORT_MODES)}")
        return self.fileops.export(self.export_plan(dest), mode)

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        from dino_desktop.core.index import load_vectors

        model_id = self.model_id()
        with self.sessions() as session:
            return load_vectors(session, model_id, emb.get_spec(self.model_name).dim)

    def undo(self, journal_id: int | None = None) -> OpResult:
        """Undo the latest (or the given) file operation."""
        return self.fileops.undo(journal_id)

    def save_settings(self) -> None:
        """Save the settings and let the next embedding use them (model, device, precision)."""
        self.settings.save(self.paths.settings)
        self.use_model(self.model_name)

    def use_model(self, name: str) -> None:
        """Switch model (or re-read device and precision): the next embedding builds it anew."""
        emb.get_spec(name)
        with self._embedder_lock:
            self.model_name = name
            self.device = self.settings.device
            self._embedder = None
            self._overlay = None
            self._model_id = None
            self._index = None
