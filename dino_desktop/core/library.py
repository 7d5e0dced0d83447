"""`Library`: the facade the CLI and the GUI call; the work is done one module down.

Long jobs are generators of `Progress` that return their result (see
`progress.drive`); everything else returns the plain values of `core.records`,
never ORM rows, so callers need no session. Below: `catalog` (folders, photo
rows, which folder holds a path), `vectors` (stored embeddings), `scanner`,
`embedder`, `index` (FAISS search), `fileops` (journaled file changes),
`duplicates`, `clusters` (auto-folders), `sorting` + `sortstore` (sort by
example). A method here picks the current model's vectors, takes the write
lock for jobs that change the library, and turns the modules' ValueErrors
into LibraryErrors meant for the user.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dino_desktop.config import LibraryPaths, Settings, library_target, shared_home
from dino_desktop.core import (
    catalog,
    clusters,
    dedupe,
    dismissals,
    duplicates,
    live,
    queue,
    scanner,
    search,
    sorting,
    sortstore,
    vectors,
)
from dino_desktop.core import roots as roots_mod
from dino_desktop.core import thumbnails as thumbs
from dino_desktop.core import weights as emb
from dino_desktop.core.clusters import ClusterRun, NewPhoto
from dino_desktop.core.companions import DiskGroups
from dino_desktop.core.db import JournalRow, open_engine, session_factory, use_roots
from dino_desktop.core.dismissals import Dismissal
from dino_desktop.core.duplicates import Group
from dino_desktop.core.export_plan import plan_items
from dino_desktop.core.fileops import FileOps
from dino_desktop.core.identity import Move
from dino_desktop.core.images import crop_box, open_image
from dino_desktop.core.index import IndexCache, VectorIndex, search_hits
from dino_desktop.core.ingest import Ingest
from dino_desktop.core.keeper import (
    DEFAULT_FORMAT_ORDER,
    DEFAULT_RULES,
    KeeperRules,
    parse_rules,
)
from dino_desktop.core.lock import LibraryLock, write_job, write_op
from dino_desktop.core.model import ModelState
from dino_desktop.core.progress import CancelToken, Job
from dino_desktop.core.records import (
    EXPORT_MODES,
    Companion,
    FolderInfo,
    ImageRecord,
    LibraryError,
    OpResult,
    PhotoRow,
    ScanResult,
    SearchHit,
    SortLabelInfo,
    Status,
    WatchEvent,
)
from dino_desktop.core.relocate import Relocated, relocate_folder
from dino_desktop.core.roots import RootMap, map_hint
from dino_desktop.core.search import Scope
from dino_desktop.core.sharing import client_id, refuse_network_sqlite
from dino_desktop.core.sharing import test_shared as test_shared  # the GUI's, via the facade
from dino_desktop.core.sorting import SortResult
from dino_desktop.core.watcher import Batch, FolderWatcher

if TYPE_CHECKING:
    from dino_desktop.core.changes import Changes
    from dino_desktop.core.embedder import Embedder
    from dino_desktop.core.overlay import OverlayEngine

log = logging.getLogger(__name__)

EMBED_COMMIT_EVERY = 256  # embedding results written per transaction


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
        target = library_target(home)
        if isinstance(target, str):
            self.paths = LibraryPaths(shared_home(target), url=target)
        else:
            refuse_network_sqlite(target)
            self.paths = LibraryPaths(target)
        self.paths.ensure()
        self.settings = Settings.load(self.paths.settings)
        emb.get_spec(model or self.settings.model)  # fail early on an unknown model name
        self.engine = open_engine(self.paths.database)
        use_roots(self.engine, RootMap.of(self.settings.roots))
        self.sessions = session_factory(self.engine)
        self.fileops = FileOps(
            self.sessions, client_id(self.paths.home) if self.is_shared else None
        )
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
        self._index_cache: IndexCache | None = None
        # A shared library's job queue and its workers (core/queue.py).
        self.workers = queue.Workers(self)

    def close(self) -> None:
        if self._index_cache is not None:
            self._index_cache.close()
            self._index_cache = None
        self.engine.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _dim(self) -> int:
        return emb.get_spec(self.model_name).dim

    # ---- folders -------------------------------------------------------------

    def add_folder(self, path: str | os.PathLike[str], *, reference: bool = False) -> FolderInfo:
        """Register a folder (idempotent); `reference` marks it protected."""
        folder_id = catalog.add_folder(self.sessions, path, reference=reference)
        return next(f for f in self.folders() if f.id == folder_id)

    def remove_folder(self, folder_id: int) -> None:
        """Forget a folder and its photos' records (the files on disk are not touched)."""
        catalog.remove_folder(self.sessions, folder_id)

    def set_reference(self, folder_id: int, reference: bool) -> None:
        catalog.set_reference(self.sessions, folder_id, reference)

    def folders(self) -> list[FolderInfo]:
        """Every folder with its counts; `offline` says why one cannot be scanned now
        (in a shared library, with how to map it when this machine reaches it elsewhere)."""
        return self._hinted(catalog.folders(self.sessions))

    def _hinted(self, found: list[FolderInfo]) -> list[FolderInfo]:
        """In a shared library, an offline folder that no root mapping covers says
        how to map it (this computer may reach the share at another path)."""
        if not self.is_shared:
            return found
        roots = self.roots()
        return [
            replace(f, offline=f"{f.offline}; {map_hint(f.path)}")
            if f.offline and not os.path.isdir(f.path) and not roots.maps(f.path)
            else f
            for f in found
        ]

    def roots(self) -> RootMap:
        """This machine's root mappings (core/roots.py), from its settings."""
        return RootMap.of(self.settings.roots)

    def map_root(self, stored: str, local: str | os.PathLike[str]) -> RootMap:
        """Reach the library folders stored under `stored` (another computer's mount
        point of a share) at `local` on this machine; kept in this machine's settings.
        Nothing in the catalog changes: every client keeps its own mapping."""
        current = self.roots()
        known = [current.to_stored(f.path) for f in self.folders()]
        self.settings.roots = roots_mod.mapped(self.settings.roots, stored, local, known)
        return self._set_roots()

    def unmap_root(self, stored: str) -> RootMap:
        """Forget this machine's mapping of `stored`."""
        self.settings.roots = roots_mod.unmapped(self.settings.roots, stored)
        return self._set_roots()

    def _set_roots(self) -> RootMap:
        self.settings.save(self.paths.settings)
        use_roots(self.engine, self.roots())
        return self.roots()

    @write_op("relocate")
    def relocate(self, old: str | os.PathLike[str], new: str | os.PathLike[str]) -> Relocated:
        """Re-point a folder that moved on disk (or whose drive is mounted elsewhere now):
        every photo keeps its row, vectors, labels and auto-folders; nothing is rescanned."""
        with _user_errors():
            done = relocate_folder(self.sessions, os.fspath(old), os.fspath(new))
        thumbs.carry(self.paths.cache_dir, (((a, m, s), (b, m, s)) for a, b, m, s in done.files))
        return done

    # ---- scanning and embedding ---------------------------------------------

    @write_job("scan")
    def scan(
        self,
        paths: Iterable[str | os.PathLike[str]] = (),
        *,
        reference: bool = False,
        embed: bool = True,
        cancel: CancelToken | None = None,
        folder_ids: Iterable[int] | None = None,
        hold: scanner.Hold | None = None,
        record_changes: bool = False,
        one_pass: bool = True,
    ) -> Job[ScanResult]:
        """Add `paths` as folders (none: every registered folder, or `folder_ids`), scan
        them, embed what waits. `hold` and `record_changes`: see `scanner.scan` (the
        watcher uses them). `one_pass`: each new photo read and decoded once for its
        row, thumbnail and vector (core/ingest.py); False: the scan probes, then
        the embedding reads every photo again (the older path, kept to compare)."""
        cancel = cancel or CancelToken()
        # A file operation killed mid-way is settled first, so its moved files'
        # rows follow them instead of looking vanished and new to the walk.
        self.fileops.recover()
        added = [self.add_folder(p, reference=reference) for p in paths]
        if added:
            ids = [f.id for f in added]
        else:
            ids = list(folder_ids) if folder_ids is not None else catalog.folder_ids(self.sessions)
        ingest = None
        if one_pass:
            ingest = Ingest(
                self.paths.cache_dir,
                self.embedder if embed else None,
                self.model_id,
                self.settings.batch_size,
            )
        report = yield from scanner.scan(
            self.sessions,
            ids,
            cancel,
            on_moves=self._carry_thumbnails,
            record_changes=record_changes,
            hold=hold,
            ingest=ingest,
        )
        result = ScanResult(**{f.name: getattr(report, f.name) for f in fields(report)})
        if embed and not report.cancelled:
            try:
                embedded, failed = yield from self.embed_pending(cancel)
                result.embedded += embedded
                result.failed.extend(failed)
            except emb.WeightsUnavailable as exc:
                result.weights_missing = str(exc)
            result.cancelled = cancel.cancelled
        result.pending = self.pending_count()
        if self.is_shared and result.pending and not result.cancelled:
            result.queued = self.workers.enqueue_pending()
        counts = (result.added, result.updated, result.moved, result.removed, len(result.failed))
        log.info("scan: %d added, %d updated, %d moved, %d removed, %d unreadable", *counts)
        return result

    def folder_watcher(
        self, folder_ids: Iterable[int] | None = None, **options: Any
    ) -> FolderWatcher:
        """A watcher (not started) of the folders (default: all) for the GUI's live folders:
        take its batches and run `scan_batch` on each (core/watcher.py)."""
        wanted = set(folder_ids) if folder_ids is not None else None
        folders = [(f.id, f.path) for f in self.folders() if wanted is None or f.id in wanted]
        return FolderWatcher(folders, exclude=[str(self.paths.home)], **options)

    def scan_batch(
        self,
        batch: Batch,
        *,
        debounce: float,
        embed: bool = True,
        cancel: CancelToken | None = None,
    ) -> Job[ScanResult]:
        """Scan a watcher's batch: its folders, holding back files still being written,
        with every change recorded (`ScanResult.changes`; `live.events_of` words them)."""
        return (
            yield from self.scan(
                folder_ids=sorted(batch.folder_ids),
                hold=live.hold_for(batch, debounce),
                record_changes=True,
                embed=embed,
                cancel=cancel,
            )
        )

    def watch(
        self,
        folder_ids: Iterable[int] | None = None,
        *,
        on_event: Callable[[WatchEvent], None],
        cancel: CancelToken | None = None,
        **options: Any,
    ) -> Job[None]:
        """Keep folders (default: all) indexed as they change, until `cancel`: see
        core/live.py. `on_event` hears of every change; `options` tune the watcher."""
        ids = list(folder_ids) if folder_ids is not None else catalog.folder_ids(self.sessions)
        yield from live.watch(self, ids, on_event, cancel or CancelToken(), **options)

    def _carry_thumbnails(self, moves: list[Move]) -> None:
        """Photos recognised at a new path keep their cached thumbnails."""
        thumbs.carry(
            self.paths.cache_dir,
            (
                ((m.row[5], m.row[4], m.row[3]), (m.to.path, m.to.mtime_ns, m.to.size))
                for m in moves
            ),
        )

    @write_job("embedding")
    def embed_pending(
        self, cancel: CancelToken | None = None
    ) -> Job[tuple[int, list[tuple[str, str]]]]:
        """Embed every readable photo that has no vector for the current model.

        Returns (embedded, failed). Raises WeightsUnavailable before any work when
        there are no weights. A photo that fails to decode is marked failed.
        """
        return (
            yield from vectors.embed_pending(
                self.sessions, self.model_id(), self.embedder, cancel, EMBED_COMMIT_EVERY
            )
        )

    @property
    def is_shared(self) -> bool:
        """Whether the catalog is on a PostgreSQL server (several clients, workers)."""
        return self.paths.url is not None

    def listen(
        self, on_change: Callable[[frozenset[str]], None], *, settle: float = 0.3
    ) -> Changes | None:
        """Hear what other clients change in a shared library: a started thread that
        calls `on_change(table names)` (from itself) within about a second of their
        commits; `stop()` it. None on a SQLite library (one machine: nobody else)."""
        if self.paths.url is None:
            return None
        from dino_desktop.core.changes import Changes
        from dino_desktop.core.queue import conninfo

        changes = Changes(conninfo(self.paths.url), on_change, settle=settle)
        changes.start()
        return changes

    @property
    def where(self) -> str:
        """The library as shown to the user: its folder, or its server without the password."""
        if self.paths.url is None:
            return str(self.paths.home)
        from sqlalchemy.engine import make_url

        return make_url(self.paths.url).render_as_string(hide_password=True)

    def pending_count(self) -> int:
        """Readable photos still waiting for an embedding from the current model."""
        # No row for the model (no weights, never used): every readable photo waits.
        return vectors.pending_count(self.sessions, self.model_state.known_model_id())

    # ---- model ---------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model in use (a timm name); `use_model` switches it."""
        return self.model_state.name

    @property
    def device(self) -> str:
        """The device setting in use (auto, cpu, cuda, mps)."""
        return self.model_state.device

    def weights_path(self) -> Path:
        """The weights file in use; raises WeightsUnavailable with what to download."""
        return self.model_state.weights_path()

    def weights_source(self) -> str | None:
        return self.model_state.weights_source()

    def embedder(self) -> Embedder:
        return self.model_state.embedder()

    def model_id(self) -> int:
        """The row of (model, weights file): vectors of different weights never mix."""
        return self.model_state.model_id()

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
        """Photo counts, folders, model and weights file (the `status` command)."""
        weights = self.model_state.installed()
        found = catalog.status(self.sessions, self.pending_count(), self.model_name, weights)
        workers = None
        if self.is_shared:
            with self.sessions() as session:
                workers = queue.progress(session, found.pending).workers
        return replace(found, folders=self._hinted(found.folders), workers=workers)

    def images(self, *, failed_only: bool = False) -> Iterator[ImageRecord]:
        """Every indexed file (or only the unreadable ones), in folder and path order."""
        return catalog.images(self.sessions, failed_only=failed_only)

    def companions(self, ids: Iterable[int] | None = None) -> dict[int, list[Companion]]:
        """The companion files (RAW, Live Photo video, sidecars) of photos, by image id,
        as the last scan found them (None: of every photo)."""
        return catalog.companions(self.sessions, ids)

    def goes_with(self, paths: Iterable[str | os.PathLike[str]]) -> dict[str, list[str]]:
        """The files a file operation on each path would move along with it, as the
        disk has them now (its photo item's other files); paths with none left out.
        What review dialogs show before anything happens."""
        groups = DiskGroups()
        out: dict[str, list[str]] = {}
        for p in paths:
            path = os.path.abspath(os.fspath(p))
            others = [m for m, _ in groups.members(path) if m != path]
            if others:
                out[path] = others
        return out

    def loose_files(self, kind: str) -> list[str]:
        """Videos that are no photo's companion (`kind` "video", not indexed) or
        sidecars of no photo ("orphan"), as the last scans found them."""
        return catalog.loose_files(self.sessions, kind)

    def plan_with_companions(
        self, plan: list[tuple[str, str]]
    ) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """An export plan as it will be written: each photo's (source, destination)
        with its companions' (source, destination)."""
        out: list[tuple[str, str, list[tuple[str, str]]]] = []
        for it in plan_items(plan):
            if "group" in it and out:
                out[-1][2].append((it["src"], it["dest"]))
            else:
                out.append((it["src"], it["dest"], []))
        return out

    def photos_by_id(self, ids: Iterable[int]) -> dict[int, PhotoRow]:
        """PhotoRows for the given image ids (readable photos only)."""
        return catalog.photos_by_id(self.sessions, ids)

    def photos(
        self, *, folder_id: int | None = None, sort: str = "date", after_id: int = 0
    ) -> list[PhotoRow]:
        """Readable photos by date taken, name or folder; `after_id`: only rows added since."""
        return catalog.photos(self.sessions, folder_id=folder_id, sort=sort, after_id=after_id)

    def find_image(self, path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
        """(image id, size, mtime_ns) of the library's record for a file path, if any."""
        return catalog.find_image(self.sessions, path)

    def paths_of(self, ids: Iterable[int]) -> dict[int, str]:
        return catalog.paths_of(self.sessions, ids)

    def prune_thumbnails(self, cancel: CancelToken | None = None) -> Job[thumbs.PruneResult]:
        """Delete the cached thumbnails no photo asks for any more: an edited, moved,
        renamed or removed photo leaves its old one behind. Never touches photos."""
        # The same path, mtime and size the thumbnail loader asks with (PhotoRow).
        photos = catalog.file_signatures(self.sessions)
        return (yield from thumbs.prune_unwanted(self.paths.cache_dir, photos, cancel))

    # ---- search --------------------------------------------------------------

    def index(self) -> VectorIndex:
        """The FAISS index of the current model, kept in memory while valid (`IndexCache`)."""
        model_id = self.model_id()
        if self._index_cache is None:
            self._index_cache = IndexCache(
                self.sessions,
                None if self.paths.url else self.paths.db,
                self.paths.index_dir,
            )
        return self._index_cache.get(model_id, self._dim())

    def query_vector(self, image: str | os.PathLike[str]) -> np.ndarray:
        """The embedding of any image file: the stored one if it is an unchanged library photo."""
        return vectors.query_vector(self.sessions, self.model_id, os.fspath(image), self.embedder)

    def search(
        self, image: str | os.PathLike[str], top: int = 10, scope: Scope | None = None
    ) -> list[SearchHit]:
        """The `top` photos nearest to an image file (inside the library or not), best
        first; `scope`: only among a folder's photos or a label's examples."""
        return self.search_vector(self.query_vector(image), top, scope)

    def search_scope(
        self, folder: str | os.PathLike[str] | None = None, label: str | None = None
    ) -> Scope:
        """The scope of a search among the photos under `folder` (a library folder or
        one inside it) and/or the examples of the sort label named `label`."""
        where = search.folder_scope(self.folders(), folder) if folder is not None else None
        label_id = None
        if label is not None:
            names = {name: i for i, name in self.sort_label_names()}
            if label not in names:
                known = ", ".join(sorted(names)) or "none yet"
                raise LibraryError(f"no sort label named {label!r} (labels: {known})")
            label_id = names[label]
        return Scope(where, label_id)

    def search_region(
        self, image: str | os.PathLike[str], box: tuple[int, int, int, int], top: int = 10
    ) -> list[SearchHit]:
        """Search by a region of a photo: `box` = (left, top, right, bottom) in display pixels
        (after EXIF orientation); the crop is embedded as the query."""
        with _user_errors():  # too small a region
            crop = crop_box(open_image(os.fspath(image)), box)
        return self.search_vector(self.embedder().embed_images([crop])[0], top)

    def search_vector(
        self, vector: np.ndarray, top: int = 10, scope: Scope | None = None
    ) -> list[SearchHit]:
        """The `top` photos nearest to an embedding, best first (a shared library
        searches on its server: core/server_search.py)."""
        hits = search.nearest(
            self.sessions,
            self.model_id(),
            self._dim(),
            vector,
            top,
            scope or Scope(),
            shared=self.is_shared,
            index=self.index,
        )
        return search_hits(self.sessions, hits)

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

    def journal_entry(self, journal_id: int) -> dict[str, Any]:
        """The payload of a file operation's journal entry (what it did, item by item)."""
        with self.sessions() as session:
            row = session.get(JournalRow, journal_id)
            if row is None:
                raise LibraryError(f"no file operation #{journal_id}")
            payload: dict[str, Any] = json.loads(row.payload)
            return payload

    @write_op("undo")
    def undo(self, journal_id: int | None = None) -> OpResult:
        """Undo the latest (or the given) file operation."""
        return self.fileops.undo(journal_id)

    def keeper_rules(self, prefer: str | Iterable[str] | None = None) -> KeeperRules:
        """The keeper rules: `prefer` (a "pixels,format" list) else the settings' order.

        Raises LibraryError for an unknown rule word.
        """
        s = self.settings
        with _user_errors():
            order = parse_rules(
                prefer if isinstance(prefer, str) else list(prefer)
            ) if prefer is not None else (
                parse_rules(s.keeper_rules) if s.keeper_rules else DEFAULT_RULES
            )  # fmt: skip
            return KeeperRules(
                order=order,
                format_order=tuple(s.format_order) or DEFAULT_FORMAT_ORDER,
                preferred_folders=tuple(os.path.abspath(f) for f in s.preferred_folders),
            )

    def duplicates(
        self,
        method: str = "exact",
        threshold: float | None = None,
        *,
        upper: float | None = None,
        rotations: bool = False,
        rules: KeeperRules | None = None,
        include_dismissed: bool = False,
        measure: bool = True,
        cancel: CancelToken | None = None,
    ) -> Job[list[Group]]:
        """Duplicate groups by one method ("exact", "phash" or "dino"); yields Progress.

        `rules`: the keeper rules (default: `keeper_rules()`, from the settings).
        Groups and members the user dismissed are left out unless
        `include_dismissed` (then they carry ``dismissed=True``).
        """
        loaded = self._all_vectors() if method == "dino" else None
        with _user_errors():  # a bad threshold or option for this method
            return duplicates.find_duplicates(
                self.sessions,
                method,
                threshold,
                upper=upper,
                rotations=rotations,
                vectors=loaded,
                cancel=cancel,
                rules=rules or self.keeper_rules(),
                dismissed=dismissals.load_dismissed(self.sessions),
                include_dismissed=include_dismissed,
                measure=measure,
            )

    def dismiss(
        self, image_ids: Iterable[int], *, keep_all: bool = False, member: int | None = None
    ) -> int:
        """Remember "not duplicates" (or "keep all") for these photos; returns the answer's id.

        `member`: only that photo is not a duplicate of the others. The answer
        holds until one of the files changes; `undismiss` takes it back.
        """
        kind = "keep-all" if keep_all else "not-duplicates"
        return dismissals.dismiss(self.sessions, image_ids, kind=kind, subject=member)

    def undismiss(self, dismissal_id: int | None = None) -> int:
        """Take back an answer (the latest one when None); returns its id."""
        return dismissals.undismiss(self.sessions, dismissal_id)

    def dismissals(self, *, with_undone: bool = False) -> list[Dismissal]:
        """The remembered answers, oldest first."""
        return dismissals.list_dismissals(self.sessions, with_undone=with_undone)

    def plan_removal(
        self,
        groups: Iterable[Group],
        *,
        include_exposures: bool = False,
        include_similar: bool = False,
        only: dict[str, list[str]] | None = None,
        cancel: CancelToken | None = None,
    ) -> Job[dedupe.RemovalPlan]:
        """The bulk action's plan and dry-run summary (core/dedupe.py); changes nothing."""
        return dedupe.plan_removal(
            groups,
            include_exposures=include_exposures,
            include_similar=include_similar,
            only=only,
            cancel=cancel,
        )

    def metadata_merges(
        self, plan: dedupe.RemovalPlan, cancel: CancelToken | None = None
    ) -> Job[list[Any]]:
        """What removing the plan's copies would carry into the keepers' XMP sidecars."""
        return dedupe.merge_plans(plan, cancel)

    @write_job("trash")
    def remove_duplicates(
        self,
        plan: dedupe.RemovalPlan,
        *,
        carry_metadata: bool = True,
        cancel: CancelToken | None = None,
    ) -> Job[OpResult]:
        """Trash the plan's copies (with their companions) as one journaled, undoable
        operation; first carry what only the copies had to the keepers (core/dedupe.py).

        Raises LibraryError for an empty plan; ReferenceFolderError (nothing done)
        if a path lies in a reference folder.
        """
        if not plan.paths:
            raise LibraryError("nothing to remove: the plan has no copies")
        merges = (yield from dedupe.merge_plans(plan, cancel)) if carry_metadata else []
        result = yield from self.fileops.trash_job(
            list(plan.paths),
            cancel,
            extra={"kind": "duplicates", "groups": plan.groups},
            prepare=dedupe.prepare(self.sessions, plan, merges),
        )
        return result

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every vector of the current model, by image id."""
        return vectors.all_vectors(self.sessions, self.model_id(), self._dim())

    # ---- auto-folders ----------------------------------------------------------

    def cluster(self, k: int | None = None, cancel: CancelToken | None = None) -> Job[ClusterRun]:
        """K-means auto-folders over every embedded photo (k None: automatic); saved.

        Raises WeightsUnavailable (no model to say whose vectors to use) and
        LibraryError for k < 1. See `core.clusters` for naming and outliers.
        """
        if k is not None and k < 1:
            raise LibraryError("k must be at least 1")
        model_id = self.model_id()
        return (yield from clusters.cluster_model(self.sessions, model_id, self._dim(), k, cancel))

    def clusters(self, *, with_paths: bool = True) -> ClusterRun | None:
        """The latest saved auto-folder run of the current model, or None (see `load_latest`)."""
        return clusters.load_latest(self.sessions, self.model_id(), with_paths=with_paths)

    def cluster_keeping_names(
        self, k: int | None = None, cancel: CancelToken | None = None
    ) -> Job[ClusterRun]:
        """`cluster`, then the new folders that continue old named ones keep their names."""
        old = self.clusters()
        run = yield from self.cluster(k, cancel)
        return clusters.inherit_names(self.sessions, old, run)

    def _edit_vectors(
        self, cluster_ids: list[int], image_ids: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Only the vectors an edit recentres with (see `vectors.edit_vectors`)."""
        return vectors.edit_vectors(
            self.sessions, self.model_id(), self._dim(), cluster_ids, image_ids
        )

    def rename_cluster(self, cluster_id: int, name: str, was: str | None = None) -> str:
        """Rename a folder of the latest run; returns the name stored (stripped).
        `was`: the name shown to the user; another client's rename since then is
        a ConflictError (nothing written), never silently overwritten."""
        with _user_errors():
            return clusters.rename_cluster(self.sessions, cluster_id, name, was)

    def merge_clusters(self, keep_id: int, other_id: int) -> None:
        """Merge folder `other_id` into `keep_id` (the other one is deleted)."""
        ids, vecs = self._edit_vectors([keep_id, other_id], [])
        with _user_errors():
            clusters.merge_clusters(self.sessions, keep_id, other_id, ids, vecs)

    def move_to_cluster(self, image_ids: Iterable[int], cluster_id: int) -> None:
        """Put photos into a folder of the latest run (also accepts filed new photos)."""
        wanted = [int(i) for i in image_ids]
        ids, vecs = self._edit_vectors([cluster_id], wanted)
        with _user_errors():
            clusters.move_to_cluster(self.sessions, wanted, cluster_id, ids, vecs)

    def exclude_photos(self, image_ids: Iterable[int]) -> int:
        """Take photos out of the latest run's folders (not exported); returns how many."""
        wanted = [int(i) for i in image_ids]
        ids, vecs = self._edit_vectors([], wanted)
        return clusters.exclude_photos(self.sessions, self.model_id(), wanted, ids, vecs)

    def new_photos(self, run: ClusterRun | None = None) -> list[NewPhoto]:
        """Photos embedded since the latest run (or `run`), filed into its nearest cluster."""
        run = run if run is not None else self.clusters(with_paths=False)
        if run is None:
            return []
        return clusters.new_photos(self.sessions, self.model_id(), self._dim(), run)

    def export_plan(self, dest: str | os.PathLike[str]) -> list[tuple[str, str]]:
        """What `export_clusters_job` would write: (source, destination) for every member."""
        return clusters.export_plan(self.sessions, self.model_id(), dest)

    @write_job("export")
    def export_clusters_job(
        self, dest: str | os.PathLike[str], mode: str = "copy", cancel: CancelToken | None = None
    ) -> Job[OpResult]:
        """Write the latest run into `dest`, a folder per cluster; journaled, undoable. A move
        keeps the photos in the library: `dest` becomes a library folder (`export_job`)."""
        _check_mode(mode)
        plan = self.export_plan(dest)
        return (
            yield from self.fileops.export_job(plan, mode, cancel, library_folder=os.fspath(dest))
        )

    # ---- sort by example ----------------------------------------------------------

    def sort_labels(self) -> list[SortLabelInfo]:
        """The sort-by-example labels with their example counts, by name."""
        return sortstore.labels(self.sessions)

    def sort_label_names(self) -> list[tuple[int, str]]:
        """(id, name) of every label, by name: one small query (for menus)."""
        return sortstore.label_names(self.sessions)

    def add_sort_label(
        self, name: str, folder: str | os.PathLike[str] | None = None
    ) -> SortLabelInfo:
        """Create a label (or return the one of that name); `folder`: its example folder,
        whose photos are all examples of it (they must be scanned to count)."""
        label_id = sortstore.add_label(self.sessions, name, folder)
        return sortstore.labels_by_id(self.sessions, [label_id])[0]

    def labels_from_folders(self, dirs: Iterable[str | os.PathLike[str]]) -> list[SortLabelInfo]:
        """One label per example folder, named after the folder (`--labels DIR...`)."""
        label_ids = sortstore.labels_from_folders(self.sessions, dirs)
        return sortstore.labels_by_id(self.sessions, label_ids)

    def scan_example_folders(
        self, dirs: Iterable[str | os.PathLike[str]], cancel: CancelToken | None = None
    ) -> Job[ScanResult]:
        """Bring example folders up to date: rescan the library folder that holds
        each one, or add it as a folder of its own when none does."""
        targets = catalog.scan_targets(self.sessions, dirs)
        return (yield from self.scan(targets, cancel=cancel))

    def rename_sort_label(self, label_id: int, name: str, was: str | None = None) -> None:
        """Rename a label; `was` as for `rename_cluster` (a ConflictError when another
        client renamed it since)."""
        sortstore.rename_label(self.sessions, label_id, name, was)

    def remove_sort_label(self, label_id: int) -> None:
        """Forget a label and its examples (no file is touched)."""
        sortstore.remove_label(self.sessions, label_id)

    def label_photos(self, label_id: int, image_ids: Iterable[int], positive: bool = True) -> int:
        """Make photos examples of a label (or rejections from it); returns how many."""
        return sortstore.label_photos(self.sessions, label_id, image_ids, positive)

    def unlabel_photos(self, label_id: int, image_ids: Iterable[int]) -> None:
        """Forget that photos are (or are not) examples of a label."""
        sortstore.unlabel_photos(self.sessions, label_id, image_ids)

    def label_examples(self, label_id: int) -> tuple[list[int], list[int]]:
        """(positive, negative) example photo ids of a label, its folder's photos included."""
        return sortstore.label_examples(self.sessions, label_id)

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
        examples = sortstore.training_examples(self.sessions, label_ids)
        ids, vecs = self._all_vectors()
        with _user_errors(sorting.SortError):  # too few labels or examples
            return (
                yield from sorting.train(
                    ids,
                    vecs,
                    examples,
                    classifier=classifier,
                    threshold=sorting.DEFAULT_THRESHOLD if threshold is None else threshold,
                    cancel=cancel,
                )
            )

    def sorted_export_plan(
        self, result: SortResult, dest: str | os.PathLike[str]
    ) -> list[tuple[str, str]]:
        """What `export_sorted_job` writes: a folder per label (see `sortstore.export_groups`)."""
        return sortstore.export_plan(self.sessions, result, dest)

    @write_job("export")
    def export_sorted_job(
        self,
        result: SortResult,
        dest: str | os.PathLike[str],
        mode: str = "copy",
        cancel: CancelToken | None = None,
    ) -> Job[OpResult]:
        """Write the sorted photos into `dest`, a folder per label; journaled, undoable."""
        _check_mode(mode)
        plan = self.sorted_export_plan(result, dest)
        return (
            yield from self.fileops.export_job(plan, mode, cancel, library_folder=os.fspath(dest))
        )

    def save_settings(self) -> None:
        """Save the settings and let the next embedding use them (model, device, precision)."""
        self.settings.save(self.paths.settings)
        self.use_model(self.model_name)

    def use_model(self, name: str) -> None:
        """Switch model (or re-read device and precision): the next embedding builds it anew."""
        self.model_state.use(name)


def _check_mode(mode: str) -> None:
    if mode not in EXPORT_MODES:
        raise LibraryError(f"unknown export mode {mode!r}; use {', '.join(EXPORT_MODES)}")


@contextmanager
def _user_errors(kind: type[ValueError] = ValueError) -> Iterator[None]:
    """A ValueError from a module below (bad argument, unknown id) as a LibraryError:
    the message is meant for the user, the CLI prints it on one line."""
    try:
        yield
    except kind as exc:
        raise LibraryError(str(exc)) from exc
