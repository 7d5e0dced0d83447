"""`Library`: the one facade over storage, scanning, embedding and search.

The CLI and the GUI call only this class. Long jobs are generators of
`Progress` that return their result (see `progress.drive`); everything else
returns plain data classes, never ORM rows, so callers need no session.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from dino_desktop.config import LibraryPaths, Settings, library_home
from dino_desktop.core import scanner
from dino_desktop.core import thumbnails as thumbs
from dino_desktop.core import weights as emb  # the module's old alias: fewer changed lines
from dino_desktop.core.db import (
    Embedding,
    Folder,
    ImageRow,
    open_engine,
    session_factory,
)
from dino_desktop.core.fileops import FileOps, OpResult
from dino_desktop.core.images import ImageError, open_image
from dino_desktop.core.index import IndexCache, VectorIndex
from dino_desktop.core.lock import LibraryLock, write_job, write_op
from dino_desktop.core.model import ModelState
from dino_desktop.core.progress import CancelToken, Job, Progress, drive

if TYPE_CHECKING:
    from dino_desktop.core.clusters import ClusterRun, NewPhoto
    from dino_desktop.core.duplicates import Group
    from dino_desktop.core.embedder import Embedder
    from dino_desktop.core.overlay import OverlayEngine
    from dino_desktop.core.sorting import SortResult

EMBED_COMMIT_EVERY = 256
# Above this many ids, lookups read every row once instead of IN lists of 500.
BULK_LOOKUP = 5_000


@dataclass(frozen=True, slots=True)
class SortLabelInfo:
    """A sort-by-example label: its example folder (if any) and example counts."""

    id: int
    name: str
    folder: str | None
    positives: int
    negatives: int


class LibraryError(Exception):
    """An expected failure with a message meant for the user (bad path, bad argument)."""


def _real_folder(path: str | os.PathLike[str]) -> str:
    """The resolved path of an existing folder (~ expanded), or LibraryError."""
    real = os.path.realpath(os.path.expanduser(os.fspath(path)))
    if not os.path.isdir(real):
        raise LibraryError(f"not a folder: {os.fspath(path)}")
    return real


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
        emb.get_spec(model or self.settings.model)  # fail early on an unknown model name
        self.engine = open_engine(self.paths.db)
        self.sessions = session_factory(self.engine)
        self.fileops = FileOps(self.sessions)
        # Write jobs (scan, embed, file operations) of one process at a time (core/lock.py).
        self.lock = LibraryLock(self.paths.home)
        # Model, weights, embedder, overlay engine and models row (core/model.py).
        self.model_state = ModelState(
            self.sessions,
            self.paths.models_dir,
            self.settings,
            name=model or self.settings.model,
            weights=Path(weights).expanduser().resolve() if weights else None,
            device=device,
        )
        self._index: VectorIndex | None = None
        self._index_cache: IndexCache | None = None

    def close(self) -> None:
        if self._index_cache is not None:
            self._index_cache.close()
            self._index_cache = None
        self.engine.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- folders -------------------------------------------------------------

    def add_folder(self, path: str | os.PathLike[str], *, reference: bool = False) -> FolderInfo:
        """Register a folder (idempotent); `reference` marks it protected."""
        real = _real_folder(path)
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

    @write_job("scan")
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
        if not added:
            # Ids only: `folders()` also counts every folder's photos (~0.1 s at 100,000).
            with self.sessions() as session:
                folder_ids = [
                    int(i) for i in session.scalars(select(Folder.id).order_by(Folder.path))
                ]
        else:
            folder_ids = [f.id for f in added]
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

    @write_job("embedding")
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

    @staticmethod
    def _nothing_pending(session: Session, model_id: int) -> bool:
        """Three index-only counts (~20 ms at 100,000 photos) that say whether any
        readable photo lacks a vector, without the NOT EXISTS probe per photo
        (~60 ms). Every vector belongs to exactly one image row."""
        conn = session.connection()
        ok = conn.exec_driver_sql("SELECT count(*) FROM images WHERE status = 'ok'").scalar()
        vectors = conn.exec_driver_sql(
            "SELECT count(*) FROM embeddings WHERE +model_id = ?", (model_id,)
        ).scalar()
        on_not_ok = conn.exec_driver_sql(
            "SELECT count(*) FROM images i WHERE i.status != 'ok' AND EXISTS"
            " (SELECT 1 FROM embeddings e WHERE e.image_id = i.id AND e.model_id = ?)",
            (model_id,),
        ).scalar()
        return int(ok or 0) == int(vectors or 0) - int(on_not_ok or 0)

    def _pending_rows(self, model_id: int) -> list[tuple[int, str]]:
        with self.sessions() as session:
            if self._nothing_pending(session, model_id):
                return []
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
        """Write one batch of results in one transaction, with bulk statements (no ORM
        object per row): vectors for rows that still exist, `failed` for decode errors."""
        if not batch:
            return 0
        from sqlalchemy import update
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        with self.sessions() as session, session.begin():
            wanted = [image_id for image_id, _, _ in batch]
            alive = set(session.scalars(select(ImageRow.id).where(ImageRow.id.in_(wanted))))
            vectors = [
                {
                    "image_id": image_id,
                    "model_id": model_id,
                    "vector": np.asarray(vector, dtype=np.float32).tobytes(),
                }
                for image_id, vector, _ in batch
                if vector is not None and image_id in alive  # else removed meanwhile
            ]
            failures = [
                {"id": image_id, "status": "failed", "error": error}
                for image_id, vector, error in batch
                if vector is None and image_id in alive
            ]
            if vectors:
                stmt = sqlite_insert(Embedding)
                session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[Embedding.image_id, Embedding.model_id],
                        set_={"vector": stmt.excluded.vector},
                    ),
                    vectors,
                )
            if failures:
                session.execute(update(ImageRow), failures)
        return len(vectors)

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
                if self._nothing_pending(session, model_id):
                    return 0
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

    @property
    def model_name(self) -> str:
        """The model in use (a timm name); `use_model` switches it."""
        return self.model_state.name

    @property
    def device(self) -> str:
        """The device setting in use (auto, cpu, cuda, mps)."""
        return self.model_state.device

    @property
    def _model_id(self) -> int | None:
        # The row id once model_id() ran (pending_count avoids hashing weights twice).
        return self.model_state.cached_model_id

    def weights_path(self) -> Path:
        """The weights file in use; raises WeightsUnavailable with what to download."""
        return self.model_state.weights_path()

    def weights_source(self) -> str | None:
        return self.model_state.weights_source()

    def embedder(self) -> Embedder:
        return self.model_state.embedder()

    def _get_embedder(self) -> Embedder:
        return self.model_state.embedder()

    def model_id(self) -> int:
        """The row of (model, weights file): vectors of different weights never mix."""
        return self.model_state.model_id()

    def _lookup_model_id(self, *, create: bool) -> int | None:
        return self.model_state.lookup_model_id(create=create)

    def overlay_engine(self) -> OverlayEngine:
        """Patch features for PCA overlays (a 518-px model of its own, built on first use)."""
        return self.model_state.overlay_engine()

    def import_weights(self, source: str | os.PathLike[str]) -> Path:
        return self.model_state.import_weights(source)

    def weights_job(
        self,
        cancel: CancelToken | None = None,
        *,
        model: str | None = None,
        import_file: str | os.PathLike[str] | None = None,
        download: str | None = None,
        url: str | None = None,
    ) -> Job[Path]:
        """Find, import or download weights (see `ModelState.weights_job`); returns the path."""
        return self.model_state.weights_job(
            cancel, model=model, import_file=import_file, download=download, url=url
        )

    def model_status(self) -> dict[str, Any]:
        return {**self.model_state.status(), "pending": self.pending_count()}

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
        if len(wanted) > BULK_LOOKUP:
            # Many ids: one pass over every readable photo beats hundreds of IN
            # queries (100,000 ids: 0.7 s instead of 1.5 s).
            keep = set(wanted)
            return {r.id: r for r in self._photo_rows() if r.id in keep}
        out: dict[int, PhotoRow] = {}
        for start in range(0, len(wanted), 500):
            out.update(
                (r.id, r) for r in self._photo_rows(ImageRow.id.in_(wanted[start : start + 500]))
            )
        return out

    @staticmethod
    def _folder_prefixes(session: Session) -> dict[int, str]:
        """Each folder's path with a trailing separator: prefix + relpath is a photo's path."""
        return {
            fid: root if root.endswith(os.sep) else root + os.sep
            for fid, root in session.execute(select(Folder.id, Folder.path))
        }

    def _photo_rows(self, *conditions: Any) -> list[PhotoRow]:
        # Core rows and one path prefix per folder: this runs over the whole
        # library when the GUI opens, so no ORM objects and no per-row join.
        with self.sessions() as session:
            prefixes = self._folder_prefixes(session)
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

    def prune_thumbnails(self, cancel: CancelToken | None = None) -> Job[thumbs.PruneResult]:
        """Delete the cached thumbnails no photo asks for any more: an edited, moved,
        renamed or removed photo leaves its old one behind. Never touches photos."""
        yield Progress("prune", 0, None, None, "cleaning up the thumbnail cache")
        with self.sessions() as session:
            prefixes = self._folder_prefixes(session)
            rows = session.execute(
                select(ImageRow.folder_id, ImageRow.relpath, ImageRow.mtime_ns, ImageRow.size)
            )
            # The same path, mtime and size the thumbnail loader asks with (PhotoRow).
            wanted = thumbs.wanted_names(
                (prefixes[fid] + rel, mtime, size) for fid, rel, mtime, size in rows
            )
        return (yield from thumbs.prune(self.paths.cache_dir, wanted, cancel))

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
        if len(wanted) > BULK_LOOKUP:
            keep = set(wanted)
            with self.sessions() as session:
                prefixes = {
                    fid: root for fid, root in session.execute(select(Folder.id, Folder.path))
                }
                for i, fid, rel in session.execute(
                    select(ImageRow.id, ImageRow.folder_id, ImageRow.relpath)
                ):
                    if i in keep:
                        out[i] = os.path.join(prefixes[fid], rel)
            return out
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
        """The FAISS index of the current model, rebuilt when the database moved on.

        The index stays in memory until some connection commits to the database
        and its stamp no longer matches (`IndexCache`); the model is not loaded."""
        model_id = self.model_id()
        if self._index_cache is None:
            self._index_cache = IndexCache(self.sessions, self.paths.db, self.paths.index_dir)
        self._index = self._index_cache.get(model_id, emb.get_spec(self.model_name).dim)
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

    @write_op("trash")
    def trash(self, paths: Iterable[str | os.PathLike[str]]) -> OpResult:
        """Move files to the system trash (never from a reference folder); journaled."""
        return self.fileops.trash([os.path.abspath(os.fspath(p)) for p in paths])

    @write_op("move")
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
        """image id → (path, date taken if readable) for naming; one pass over the
        rows, no PhotoRow per photo (those cost ~400 MB at 1,000,000)."""
        wanted = {int(i) for i in ids}
        with self.sessions() as session:
            prefixes = self._folder_prefixes(session)
            rows = session.execute(
                select(
                    ImageRow.id,
                    ImageRow.folder_id,
                    ImageRow.relpath,
                    ImageRow.taken_at,
                    ImageRow.status,
                )
            )
            return {
                i: (prefixes[fid] + rel, taken if status == "ok" else None)
                for i, fid, rel, taken, status in rows
                if i in wanted
            }

    def clusters(self, *, with_paths: bool = True) -> ClusterRun | None:
        """The latest saved auto-folder run of the current model, or None.

        `with_paths=False` leaves `paths` empty (the GUI asks for rows as it shows them).
        """
        from dataclasses import replace

        from dino_desktop.core import clusters

        run = clusters.load_latest(self.sessions, self.model_id())
        if run is None or not with_paths:
            return run
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

        ids, vecs = self._edit_vectors([keep_id, other_id], [])
        try:
            clusters.merge_clusters(self.sessions, keep_id, other_id, ids, vecs)
        except ValueError as exc:
            raise LibraryError(str(exc)) from exc

    def move_to_cluster(self, image_ids: Iterable[int], cluster_id: int) -> None:
        """Put photos into a folder of the latest run (also accepts filed new photos)."""
        from dino_desktop.core import clusters

        wanted = [int(i) for i in image_ids]
        ids, vecs = self._edit_vectors([cluster_id], wanted)
        try:
            clusters.move_to_cluster(self.sessions, wanted, cluster_id, ids, vecs)
        except ValueError as exc:
            raise LibraryError(str(exc)) from exc

    def exclude_photos(self, image_ids: Iterable[int]) -> int:
        """Take photos out of the latest run's folders (not exported); returns how many."""
        from dino_desktop.core import clusters

        wanted = [int(i) for i in image_ids]
        ids, vecs = self._edit_vectors([], wanted)
        return clusters.exclude_photos(self.sessions, self.model_id(), wanted, ids, vecs)

    def new_photos(self, run: ClusterRun | None = None) -> list[NewPhoto]:
        """Photos embedded since the latest run (or `run`), filed into its nearest cluster."""
        from dino_desktop.core import clusters

        run = run if run is not None else self.clusters(with_paths=False)
        if run is None:
            return []
        ids, vecs = self._vectors_outside(run.id)
        excluded = clusters.excluded_ids(self.sessions, run.id)
        paths = self.paths_of(int(i) for i in ids)
        return clusters.file_new_photos(run, ids, vecs, paths, excluded)

    def _vectors_outside(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of photos in no folder of the run and not excluded from it:
        usually a handful, so the 100,000 others are never read."""
        from dino_desktop.core.db import ClusterExclusion, ClusterMember, ClusterRow

        dim = emb.get_spec(self.model_name).dim
        in_run = select(ClusterMember.image_id).where(
            ClusterMember.cluster_id.in_(select(ClusterRow.id).where(ClusterRow.run_id == run_id))
        )
        excluded = select(ClusterExclusion.image_id).where(ClusterExclusion.run_id == run_id)
        return self._vectors_where(
            dim,
            Embedding.model_id == self.model_id(),
            Embedding.image_id.not_in(in_run),
            Embedding.image_id.not_in(excluded),
        )

    def _vectors_where(self, dim: int, *conditions: Any) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, vectors) of the embeddings matching `conditions`, by image id."""
        with self.sessions() as session:
            rows = session.execute(
                select(Embedding.image_id, Embedding.vector)
                .where(*conditions)
                .order_by(Embedding.image_id)
            ).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.empty((len(rows), dim), dtype=np.float32)
        for n, (_, blob) in enumerate(rows):
            vecs[n] = np.frombuffer(blob, dtype=np.float32)
        return ids, vecs

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
        return drive(self.export_clusters_job(dest, mode))

    @write_job("export")
    def export_clusters_job(
        self, dest: str | os.PathLike[str], mode: str = "copy", cancel: CancelToken | None = None
    ) -> Job[OpResult]:
        """`export_clusters` yielding Progress per file; a cancel keeps what was written.

        A move keeps the photos in the library: `dest` becomes a library folder
        (unless it is inside one already) and each photo's row follows its file,
        so nothing is embedded again and the folders stay as they were sorted.
        """
        from dino_desktop.core.fileops import EXPORT_MODES

        if mode not in EXPORT_MODES:
            raise LibraryError(f"unknown export mode {mode!r}; use {', '.join(EXPORT_MODES)}")
        plan = self.export_plan(dest)
        result = yield from self.fileops.export_job(
            plan, mode, cancel, library_folder=os.fspath(dest)
        )
        return result

    # ---- sort by example ----------------------------------------------------------

    def sort_labels(self) -> list[SortLabelInfo]:
        """The sort-by-example labels with their example counts, by name."""
        from dino_desktop.core.db import SortExample, SortLabel

        with self.sessions() as session:
            counts: dict[tuple[int, bool], int] = {
                (int(label_id), bool(positive)): int(n)
                for label_id, positive, n in session.execute(
                    select(SortExample.label_id, SortExample.positive, func.count()).group_by(
                        SortExample.label_id, SortExample.positive
                    )
                )
            }
            labels = list(session.scalars(select(SortLabel).order_by(SortLabel.name)))
        in_folder = self._folder_examples(labels)
        return [
            SortLabelInfo(
                lb.id,
                lb.name,
                lb.folder,
                counts.get((lb.id, True), 0) + len(in_folder.get(lb.id, ())),
                counts.get((lb.id, False), 0),
            )
            for lb in labels
        ]

    def sort_label_names(self) -> list[tuple[int, str]]:
        """(id, name) of every label, by name: one small query (for menus)."""
        from dino_desktop.core.db import SortLabel

        with self.sessions() as session:
            return [
                (int(i), str(n))
                for i, n in session.execute(
                    select(SortLabel.id, SortLabel.name).order_by(SortLabel.name)
                )
            ]

    def add_sort_label(
        self, name: str, folder: str | os.PathLike[str] | None = None
    ) -> SortLabelInfo:
        """Create a label (or return the one of that name); `folder`: its example folder,
        whose photos are all examples of it (they must be scanned to count)."""
        from dino_desktop.core.db import SortLabel

        name = name.strip()
        if not name:
            raise LibraryError("a label needs a name")
        real = None if folder is None else _real_folder(folder)
        with self.sessions() as session, session.begin():
            label = session.scalar(select(SortLabel).where(SortLabel.name == name))
            if label is None:
                label = SortLabel(name=name, folder=real, created_at=datetime.now())
                session.add(label)
            elif real is not None:
                label.folder = real
            session.flush()
            label_id = label.id
        return next(lb for lb in self.sort_labels() if lb.id == label_id)

    def labels_from_folders(self, dirs: Iterable[str | os.PathLike[str]]) -> list[SortLabelInfo]:
        """One label per example folder, named after the folder (`--labels DIR...`)."""
        out = []
        for d in dirs:
            real = os.path.realpath(os.path.expanduser(os.fspath(d)))
            out.append(self.add_sort_label(os.path.basename(real.rstrip(os.sep)) or real, real))
        return out

    def scan_example_folders(
        self, dirs: Iterable[str | os.PathLike[str]], cancel: CancelToken | None = None
    ) -> Job[ScanResult]:
        """Bring example folders up to date: rescan the library folder that holds
        each one, or add it as a folder of its own when none does."""
        targets: list[str] = []
        roots = [f.path for f in self.folders()]
        for d in dirs:
            real = os.path.realpath(os.path.expanduser(os.fspath(d)))
            holder = [r for r in roots if real == r or real.startswith(r.rstrip(os.sep) + os.sep)]
            targets.append(max(holder, key=len) if holder else real)
        result = yield from self.scan(list(dict.fromkeys(targets)), cancel=cancel)
        return result

    def rename_sort_label(self, label_id: int, name: str) -> None:
        from dino_desktop.core.db import SortLabel

        name = name.strip()
        if not name:
            raise LibraryError("a label needs a name")
        with self.sessions() as session, session.begin():
            label = session.get(SortLabel, label_id)
            if label is None:
                raise LibraryError(f"no label #{label_id}")
            clash = session.scalar(select(SortLabel.id).where(SortLabel.name == name))
            if clash is not None and clash != label_id:
                raise LibraryError(f"there is already a label “{name}”")
            label.name = name

    def remove_sort_label(self, label_id: int) -> None:
        """Forget a label and its examples (no file is touched)."""
        from sqlalchemy import delete

        from dino_desktop.core.db import SortLabel

        with self.sessions() as session, session.begin():
            session.execute(delete(SortLabel).where(SortLabel.id == label_id))

    def label_photos(self, label_id: int, image_ids: Iterable[int], positive: bool = True) -> int:
        """Make photos examples of a label (`positive`), or of what it is not (a rejection).

        A photo is a positive example of one label at most: labelling it here
        takes it from any other label. Returns how many photos were recorded.
        """
        from sqlalchemy import delete
        from sqlalchemy.dialects.sqlite import insert

        from dino_desktop.core.db import SortExample, SortLabel

        wanted = sorted({int(i) for i in image_ids})
        with self.sessions() as session, session.begin():
            if session.get(SortLabel, label_id) is None:
                raise LibraryError(f"no label #{label_id}")
            wanted = [
                int(i) for i in session.scalars(select(ImageRow.id).where(ImageRow.id.in_(wanted)))
            ]
            if not wanted:
                return 0
            if positive:
                session.execute(
                    delete(SortExample).where(
                        SortExample.image_id.in_(wanted), SortExample.positive.is_(True)
                    )
                )
            stmt = insert(SortExample).values(
                [{"label_id": label_id, "image_id": i, "positive": positive} for i in wanted]
            )
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["label_id", "image_id"], set_={"positive": positive}
                )
            )
        return len(wanted)

    def unlabel_photos(self, label_id: int, image_ids: Iterable[int]) -> None:
        """Forget that photos are (or are not) examples of a label."""
        from sqlalchemy import delete

        from dino_desktop.core.db import SortExample

        wanted = [int(i) for i in image_ids]
        with self.sessions() as session, session.begin():
            session.execute(
                delete(SortExample).where(
                    SortExample.label_id == label_id, SortExample.image_id.in_(wanted)
                )
            )

    def label_examples(self, label_id: int) -> tuple[list[int], list[int]]:
        """(positive, negative) example photo ids of a label, its folder's photos included."""
        from dino_desktop.core.db import SortExample, SortLabel

        with self.sessions() as session:
            label = session.get(SortLabel, label_id)
            if label is None:
                raise LibraryError(f"no label #{label_id}")
            rows = session.execute(
                select(SortExample.image_id, SortExample.positive).where(
                    SortExample.label_id == label_id
                )
            ).all()
        negatives = {int(i) for i, p in rows if not p}
        positives = {int(i) for i, p in rows if p}
        positives |= self._folder_examples([label]).get(label.id, set()) - negatives
        return sorted(positives), sorted(negatives)

    def _folder_examples(self, labels: Iterable[Any]) -> dict[int, set[int]]:
        """The readable photos inside each label's example folder."""
        with_folder = [lb for lb in labels if lb.folder]
        if not with_folder:
            return {}
        with self.sessions() as session:
            folders = [
                (f.id, f.path.rstrip(os.sep) + os.sep) for f in session.scalars(select(Folder))
            ]
            out: dict[int, set[int]] = {}
            for label in with_folder:
                target = label.folder.rstrip(os.sep) + os.sep
                found: set[int] = set()
                for folder_id, root in folders:
                    if not (target.startswith(root) or root.startswith(target)):
                        continue
                    # Below the example folder: all of a registered folder inside
                    # it, or the part of one that holds it.
                    prefix = target[len(root) :] if target.startswith(root) else ""
                    found.update(
                        int(i)
                        for i, rel in session.execute(
                            select(ImageRow.id, ImageRow.relpath).where(
                                ImageRow.folder_id == folder_id, ImageRow.status == "ok"
                            )
                        )
                        if rel.startswith(prefix)
                    )
                out[label.id] = found
            return out

    def sort_by_example(
        self,
        classifier: str = "logreg",
        threshold: float | None = None,
        cancel: CancelToken | None = None,
        *,
        label_ids: Iterable[int] | None = None,
    ) -> Job[SortResult]:
        """Train on the labels' examples and predict every other embedded photo.

        `label_ids`: only these labels (default: all). Raises LibraryError when
        the labels have too few examples (the message says what to add) and
        WeightsUnavailable when no model is set up.
        """
        from dino_desktop.core import sorting

        labels = self.sort_labels()
        if label_ids is not None:
            chosen = set(label_ids)
            labels = [lb for lb in labels if lb.id in chosen]
        if not labels:
            raise LibraryError(
                "no labels yet: give example folders (--labels DIR...) or make labels"
            )
        examples = [sorting.LabelExamples(lb.name, *self.label_examples(lb.id)) for lb in labels]
        ids, vecs = self._all_vectors()
        try:
            result = yield from sorting.train(
                ids,
                vecs,
                examples,
                classifier=classifier,
                threshold=sorting.DEFAULT_THRESHOLD if threshold is None else threshold,
                cancel=cancel,
            )
        except sorting.SortError as exc:
            raise LibraryError(str(exc)) from exc
        return result

    def sorted_export_plan(
        self, result: SortResult, dest: str | os.PathLike[str]
    ) -> list[tuple[str, str]]:
        """What `export_sorted_job` writes: one folder per label with its confident
        predictions and the photos labelled in the app; photos already in the
        label's example folder, and unsure ones, stay where they are."""
        from dino_desktop.core.fileops import plan_export

        labels = {lb.name: lb for lb in self.sort_labels()}
        members: dict[str, list[int]] = {name: [] for name in result.labels}
        for p in result.predictions:
            if not p.unsure and p.label in members:
                members[p.label].append(p.image_id)
        for name in result.labels:
            if name in labels:
                members[name].extend(self.label_examples(labels[name].id)[0])
        paths = self.paths_of(i for ids in members.values() for i in ids)
        groups = []
        for name, ids in members.items():
            folder = labels[name].folder if name in labels else None
            inside = (folder.rstrip(os.sep) + os.sep) if folder else None
            chosen = [
                paths[i]
                for i in dict.fromkeys(ids)
                if i in paths and not (inside and paths[i].startswith(inside))
            ]
            if chosen:
                groups.append((name, chosen))
        if not groups:
            raise LibraryError("nothing to export: no photo was sorted with enough confidence")
        return plan_export(groups, os.path.abspath(os.fspath(dest)))

    @write_job("export")
    def export_sorted_job(
        self,
        result: SortResult,
        dest: str | os.PathLike[str],
        mode: str = "copy",
        cancel: CancelToken | None = None,
    ) -> Job[OpResult]:
        """Write the sorted photos into `dest`, a folder per label; journaled, undoable."""
        from dino_desktop.core.fileops import EXPORT_MODES

        if mode not in EXPORT_MODES:
            raise LibraryError(f"unknown export mode {mode!r}; use {', '.join(EXPORT_MODES)}")
        plan = self.sorted_export_plan(result, dest)
        out = yield from self.fileops.export_job(plan, mode, cancel, library_folder=os.fspath(dest))
        return out

    def _edit_vectors(
        self, cluster_ids: list[int], image_ids: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The vectors a folder edit recentres with: the members of the given folders
        and of every folder holding one of `image_ids`, and those photos themselves.

        Only what the edit touches, not the whole library (100,000 vectors are
        150 MB to read for a one-photo move).
        """
        from sqlalchemy import or_

        from dino_desktop.core.db import ClusterMember, Embedding

        model_id = self.model_id()
        dim = emb.get_spec(self.model_name).dim
        holding = select(ClusterMember.cluster_id).where(ClusterMember.image_id.in_(image_ids))
        members = select(ClusterMember.image_id).where(
            or_(ClusterMember.cluster_id.in_(cluster_ids), ClusterMember.cluster_id.in_(holding))
        )
        return self._vectors_where(
            dim,
            Embedding.model_id == model_id,
            or_(Embedding.image_id.in_(members), Embedding.image_id.in_(image_ids)),
        )

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        from dino_desktop.core.index import load_vectors

        model_id = self.model_id()
        with self.sessions() as session:
            return load_vectors(session, model_id, emb.get_spec(self.model_name).dim)

    @write_op("undo")
    def undo(self, journal_id: int | None = None) -> OpResult:
        """Undo the latest (or the given) file operation."""
        return self.fileops.undo(journal_id)

    def save_settings(self) -> None:
        """Save the settings and let the next embedding use them (model, device, precision)."""
        self.settings.save(self.paths.settings)
        self.use_model(self.model_name)

    def use_model(self, name: str) -> None:
        """Switch model (or re-read device and precision): the next embedding builds it anew."""
        self.model_state.use(name)
        self._index = None
