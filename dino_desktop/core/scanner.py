"""Walk the library's folders and bring the database in line with the disk.

Incremental: a file whose size and mtime_ns match its row costs one stat and is
not opened. New and changed files are hashed (sha256), probed for their display
size, date, camera and perceptual hash on a thread pool, and written in batches.
Files gone from disk leave the database, but only from folders that were walked
completely: an unplugged drive or an unreadable sub-folder never empties the
library. A file that cannot be read is recorded with its reason and the scan
goes on.

A file operation may run in this process while a scan does (the library's write
lock is re-entrant within a process: the GUI moves or exports while its scan
runs), and it moves image rows with their files (`FileOps._relocate_images`).
So every write here checks, in its own transaction, that the row is still what
the scan read: an update or a removal applies only to a row with the same
folder and relpath (and, for a removal, size and mtime) as read, a removal only
when the file is really absent and not just moved by a running file operation
whose row has yet to follow (`journal.in_flight`), and a new file whose path a
moved row took meanwhile is left to that row. What the scan skips this way the
next scan reconciles.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from time import monotonic
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import catalog, identity, volumes
from dino_desktop.core.companion_rows import sync_companions
from dino_desktop.core.companions import COMPANION_EXTENSIONS, group_names
from dino_desktop.core.db import Embedding, Folder, ImageRow, Raw, path_param, path_value
from dino_desktop.core.db import insert as db_insert
from dino_desktop.core.identity import Found
from dino_desktop.core.images import IMAGE_EXTENSIONS, RAW_EXTENSIONS, ImageError, read_info
from dino_desktop.core.ingest import Ingest, Key, sha256_file
from dino_desktop.core.journal import in_flight
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import ScanReport
from dino_desktop.core.vectors import write_vectors

log = logging.getLogger(__name__)

COMMIT_EVERY = 200
COMMIT_S = 1.0
"""The one-pass scan commits at least this often (at model-batch boundaries)."""


_Found = Found  # one file as the walk found it (core/identity.py)


# One file as the walk sees it: (relpath, path, size, mtime_ns, dev, inode, error).
# A plain tuple: on a rescan of an unchanged library nothing else is made per file.
_Entry = tuple[str, str, int, int, int, int, str | None]


@dataclass(slots=True)
class _Walk:
    files: list[_Found] = field(default_factory=list)
    # Relative dirs (with trailing separator) that could not be listed: rows under
    # them are kept, since we could not see whether their files still exist.
    unreadable: list[str] = field(default_factory=list)
    # Files that go with a photo item: (the photo's relpath, the file, kind); and
    # videos of no photo and orphan sidecars: (the file, kind). See core/companions.py.
    companions: list[tuple[str, _Entry, str]] = field(default_factory=list)
    loose: list[tuple[_Entry, str]] = field(default_factory=list)


def _is_image_name(name: str) -> bool:
    # os.path.splitext without its generality (hidden names are skipped before this):
    # this runs once per directory entry on every rescan.
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during a bulk read that makes only acyclic tuples.

    A rescan of 100,000 files builds ~200,000 tuples, and each few hundred
    allocations trigger a collection that walks the young objects (and now and then
    the whole heap): ~15 % of a rescan here, for nothing, since tuples of strings and
    ints never form cycles. Never held across a yield.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def walk_folder(
    folder: Folder, skip_roots: set[str], walk: _Walk, cancel: CancelToken | None = None
) -> Iterator[list[_Entry]]:
    """Yield the image files under a folder, one list per directory (maybe empty).

    Symlinked directories are followed, but each real directory is entered once,
    so a symlink loop ends the descent instead of looping. Hidden entries (".*")
    are skipped, and so are registered folders nested inside this one: they are
    scanned as folders of their own.
    """
    root = folder.path
    # Every path below comes from joining names onto root, so slicing off the
    # prefix is exact (and far cheaper than os.path.relpath per file).
    prefix = root if root.endswith(os.sep) else root + os.sep
    cut = len(prefix)
    visited: set[tuple[int, int]] = set()
    try:
        st = os.stat(root)
    except OSError as exc:
        raise FileNotFoundError(f"folder not available: {root} ({exc.strerror})") from exc
    visited.add((st.st_dev, st.st_ino))
    stack = [root]
    while stack:
        if cancel is not None and cancel.cancelled:
            return
        current = stack.pop()
        with _gc_paused():
            found = _list_dir(current, root, cut, skip_roots, visited, stack, walk)
        yield found


def _list_dir(
    current: str,
    root: str,
    cut: int,
    skip_roots: set[str],
    visited: set[tuple[int, int]],
    stack: list[str],
    walk: _Walk,
) -> list[_Entry]:
    """The image files directly in `current`; sub-directories not seen yet go on `stack`."""
    is_reg = stat.S_ISREG
    extensions = IMAGE_EXTENSIONS
    extras_ext = COMPANION_EXTENSIONS
    raws = RAW_EXTENSIONS
    extras: list[_Entry] = []  # videos and sidecars: grouped with the photos below
    has_raw = False
    try:
        with os.scandir(current) as entries:
            listing = list(entries)
    except OSError:
        walk.unreadable.append(current[cut:] + os.sep if current != root else "")
        return []
    found: list[_Entry] = []
    for entry in listing:
        name = entry.name
        if name[0] == ".":
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if entry.path in skip_roots:
                continue
            try:
                dst = entry.stat()
            except OSError:
                continue
            key = (dst.st_dev, dst.st_ino)
            if key not in visited:
                visited.add(key)
                stack.append(entry.path)
            continue
        dot = name.rfind(".")  # _is_image_name, inlined: this runs for every entry
        if dot <= 0:
            continue
        ext = name[dot:].lower()
        if ext not in extensions:
            if ext in extras_ext:
                with contextlib.suppress(OSError):
                    est = entry.stat()
                    if is_reg(est.st_mode):
                        path = entry.path
                        extras.append(
                            (path[cut:], path, est.st_size, est.st_mtime_ns, est.st_dev,
                             est.st_ino, None)
                        )  # fmt: skip
            continue
        if ext in raws:
            has_raw = True
        path = entry.path
        try:
            fst = entry.stat()
        except OSError as exc:
            reason = (
                "broken symbolic link (its target is missing or loops)"
                if entry.is_symlink()
                else f"cannot read file: {exc.strerror}"
            )
            found.append((path[cut:], path, 0, 0, 0, 0, reason))
            continue
        if is_reg(fst.st_mode):
            found.append(
                (path[cut:], path, fst.st_size, fst.st_mtime_ns, fst.st_dev, fst.st_ino, None)
            )
    if extras or has_raw:
        return _group(current, found, extras, walk)
    return found


def _group(directory: str, found: list[_Entry], extras: list[_Entry], walk: _Walk) -> list[_Entry]:
    """One directory's photo items (returned) and their companion files (kept on `walk`)."""
    cut = len(os.path.join(directory, ""))  # an entry's name is what follows this
    named = {e[1][cut:]: e for e in (*found, *extras)}
    groups = group_names(named)
    for primary, members in groups.photos.items():
        for name, kind in members:
            walk.companions.append((named[primary][0], named[name], kind))
    for name, kind in groups.loose:
        walk.loose.append((named[name], kind))
    owned = groups.owner
    return [e for e in found if e[1][cut:] not in owned]


def _has_rows(sessions: sessionmaker[Session], folder_id: int) -> bool:
    with sessions() as session:
        return (
            session.scalar(select(ImageRow.id).where(ImageRow.folder_id == folder_id).limit(1))
            is not None
        )


_Row = tuple[int, int, int, str, str | None]  # id, size, mtime_ns, status, error
_SIG_CHUNK = 100_000  # image ids per query: bounds the size of one concatenated string


@dataclass(slots=True)
class _Known:
    """What the database holds for one folder, as a rescan needs it.

    `sigs` maps relpath to "size:mtime_ns" for every row; `failed` maps the relpath
    of each unreadable row to its error. Full rows (ids) are read only for the few
    files that changed or vanished (`rows_for`).
    """

    sigs: dict[str, str]
    failed: dict[str, str | None]
    rows: dict[str, _Row]  # full rows read so far (names that are not UTF-8 always)


def _known_rows(sessions: sessionmaker[Session], folder_id: int) -> _Known:
    """The folder's rows in a few queries, for comparing with the walk.

    SQLite concatenates "relpath NUL size:mtime" for the whole folder into one
    string, which Python splits and pairs in C: ~2x faster than a row tuple per
    file through the cursor, and ~5x faster than the ORM, at 100,000 rows. NUL
    cannot occur in a file name. Names stored as bytes (not valid UTF-8, see
    db.FsPath) are read as full rows instead.
    """
    sigs: dict[str, str] = {}
    failed: dict[str, str | None] = {}
    rows: dict[str, _Row] = {}
    with sessions() as session, _gc_paused():
        dbapi = Raw(session)
        if dbapi.postgresql:
            # PostgreSQL text holds neither NUL nor undecodable names: row by row.
            for rel, size, mtime, status, error in dbapi.execute(
                "SELECT relpath, size, mtime_ns, status, error FROM images WHERE folder_id = ?",
                (folder_id,),
            ):
                rel = path_value(rel)  # a name not valid UTF-8 is stored marked (db.FsPath)
                sigs[rel] = f"{-1 if size is None else size}:{-1 if mtime is None else mtime}"
                if status != "ok":
                    failed[rel] = error
            return _Known(sigs, failed, rows)
        lo, hi = dbapi.execute(
            "SELECT min(id), max(id) FROM images WHERE folder_id = ?", (folder_id,)
        ).fetchone()
        for start in range(lo or 0, (hi or -1) + 1, _SIG_CHUNK):
            (joined,) = dbapi.execute(
                "SELECT group_concat(relpath || char(0) || coalesce(size, -1) || ':' ||"
                " coalesce(mtime_ns, -1), char(0)) FROM images WHERE folder_id = ?"
                " AND id >= ? AND id < ? AND typeof(relpath) = 'text'",
                (folder_id, start, start + _SIG_CHUNK),
            ).fetchone()
            if joined:
                parts = joined.split("\0")
                sigs.update(zip(parts[::2], parts[1::2], strict=True))
        for rel, error in dbapi.execute(
            "SELECT relpath, error FROM images WHERE folder_id = ? AND status != 'ok'"
            " AND typeof(relpath) = 'text'",
            (folder_id,),
        ):
            failed[rel] = error
        for raw, *row in dbapi.execute(
            "SELECT relpath, id, size, mtime_ns, status, error FROM images"
            " WHERE folder_id = ? AND typeof(relpath) != 'text'",
            (folder_id,),
        ):
            rel = os.fsdecode(bytes(raw))
            rows[rel] = tuple(row)
            sigs[rel] = f"{row[1]}:{row[2]}"
            if row[3] != "ok":
                failed[rel] = row[4]
    return _Known(sigs, failed, rows)


def _rows_for(
    sessions: sessionmaker[Session], folder_id: int, known: _Known, rels: list[str]
) -> dict[str, _Row]:
    """Full rows of the given relpaths (changed or vanished files), 500 per query."""
    out = {rel: known.rows[rel] for rel in rels if rel in known.rows}
    wanted = [rel for rel in rels if rel not in known.rows]
    with sessions() as session:
        dbapi = Raw(session)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            # Names not valid UTF-8 are only here on PostgreSQL (SQLite's are all in
            # known.rows), where they are bound as stored: marked (db.FsPath).
            bound = [path_param(rel, "postgresql") for rel in chunk] if dbapi.postgresql else chunk
            for rel, *row in dbapi.execute(
                "SELECT relpath, id, size, mtime_ns, status, error FROM images"
                f" WHERE folder_id = ? AND relpath IN ({marks})",
                (folder_id, *bound),
            ):
                out[path_value(rel)] = tuple(row)
    return out


def _diff(
    folder_id: int,
    entries: list[_Entry],
    known: _Known,
    changed: list[str],
    todo: list[_Found],
    report: ScanReport,
) -> None:
    """Sort walked files into unchanged (counted) and new or changed (`todo`); the
    relpaths of changed files that have a row go to `changed`."""
    pop = known.sigs.pop
    failed = known.failed
    unchanged = 0
    for entry in entries:
        rel = entry[0]
        sig = pop(rel, None)
        if sig is not None:
            error = entry[6]
            # Unchanged: the same (size, mtime), or still broken the same way.
            if (
                sig == f"{entry[2]}:{entry[3]}"
                if error is None
                else rel in failed and failed[rel] == error
            ):
                unchanged += 1
                if rel in failed:
                    report.failed.append((entry[1], failed[rel] or "unreadable"))
                continue
            changed.append(rel)
        todo.append(_Found(folder_id, *entry))
    report.unchanged += unchanged


@dataclass(frozen=True, slots=True)
class Hold:
    """Files a scan leaves as they are, neither indexed nor dropped: the watcher's files
    still being written (`paths`), and any file modified after `newer_than_ns`."""

    paths: frozenset[str] = frozenset()
    newer_than_ns: int | None = None
    sizes: frozenset[int] = frozenset()
    """Sizes of the held files now: a vanished row of such a size is kept for a later scan,
    as the held file may be that photo moved (it then keeps its row, core/identity.py)."""

    def holds(self, path: str, mtime_ns: int) -> bool:
        return path in self.paths or (
            self.newer_than_ns is not None and mtime_ns > self.newer_than_ns
        )


def _diff_batches(
    folder_id: int,
    batches: list[list[_Entry]],
    known: _Known,
    changed: list[str],
    todo: list[_Found],
    report: ScanReport,
    hold: Hold | None = None,
) -> None:
    """`_diff` each walked batch, then empty the list."""
    with _gc_paused():
        for batch in batches:
            if hold is not None:
                batch = _drop_held(batch, known, hold, report)
            _diff(folder_id, batch, known, changed, todo, report)
    batches.clear()


def _drop_held(batch: list[_Entry], known: _Known, hold: Hold, report: ScanReport) -> list[_Entry]:
    """The entries not held; a held file's row (if any) is kept as it is."""
    keep = []
    for entry in batch:
        if hold.holds(entry[1], entry[3]):
            known.sigs.pop(entry[0], None)  # seen: not vanished
            report.held += 1
        else:
            keep.append(entry)
    return keep


@dataclass(frozen=True, slots=True)
class _Probe:
    found: _Found
    sha256: str | None
    info: Any  # ImageInfo | None
    error: str | None


def _probe(found: _Found) -> _Probe:
    if found.error is not None:
        return _Probe(found, None, None, found.error)
    if found.size == 0:
        return _Probe(found, None, None, "file is empty")
    try:
        info = read_info(found.path)
        digest = sha256_file(found.path)
    except ImageError as exc:
        return _Probe(found, None, None, str(exc))
    except OSError as exc:
        return _Probe(found, None, None, f"cannot read file: {exc.strerror or exc}")
    return _Probe(found, digest, info, None)


def _probe_for(found: _Found, ingest: Ingest | None) -> tuple[_Probe, Any]:
    """The scan's probe of one file, or the one-pass read (probe and model input)."""
    if ingest is None:
        return _probe(found), None
    read = ingest.read(found)
    return _Probe(found, read.sha256, read.info, read.error), read.input


def _values(probe: _Probe, now: datetime) -> dict[str, Any]:
    """The image row's columns for one probed file (readable or not)."""
    found, info = probe.found, probe.info
    values: dict[str, Any] = {
        "folder_id": found.folder_id,
        "relpath": found.relpath,
        "size": found.size,
        "mtime_ns": found.mtime_ns,
        "dev": found.dev or None,
        "inode": found.inode or None,
        "scanned_at": now,
        "status": "failed",
        "error": probe.error,
        "sha256": None,
        "phash": None,
        "width": None,
        "height": None,
        "orientation": None,
        "taken_at": None,
        "camera": None,
        "format": None,
    }
    if probe.error is None and info is not None:
        values.update(
            status="ok",
            error=None,
            sha256=probe.sha256,
            phash=info.phash,
            width=info.width,
            height=info.height,
            orientation=info.orientation,
            taken_at=info.taken_at,
            camera=info.camera,
            format=info.format,
        )
    return values


def scan(
    sessions: sessionmaker[Session],
    folder_ids: list[int],
    cancel: CancelToken | None = None,
    workers: int | None = None,
    *,
    on_moves: Callable[[list[identity.Move]], None] | None = None,
    record_changes: bool = False,
    hold: Hold | None = None,
    ingest: Ingest | None = None,
) -> Job[ScanReport]:
    """Scan the given folders; yields Progress, returns a ScanReport.

    `on_moves` is told of the photos recognised at a new path (core/identity.py),
    after their rows moved. `record_changes` fills `report.changes` with every
    added, updated, moved and removed path (the watcher prints them). `hold`: files
    to leave for a later scan (see `Hold`). `ingest`: the one-pass index (core/
    ingest.py): each new or changed file read and decoded once for its row, its
    thumbnail and its vector, written with the row.
    """
    report = ScanReport()
    changes = report.changes if record_changes else None
    cancel = cancel or CancelToken()
    with sessions() as session:
        all_folders = list(session.scalars(select(Folder)))
    by_id = {f.id: f for f in all_folders}
    todo: list[_Found] = []
    # Rows of files that changed, by (folder id, relpath): _commit updates them.
    known: dict[tuple[int, str], tuple[int, int, int, str, str | None]] = {}
    # Rows of vanished files as read: (id, folder id, relpath, size, mtime_ns, path).
    gone_rows: dict[int, list[tuple[int, int, str, int, int, str]]] = {}
    complete: list[int] = []
    walks: dict[int, _Walk] = {}
    walked = 0

    # One thread reads each folder's rows while the walk runs (see below).
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-rows")
    try:
        for folder_id in folder_ids:
            folder = by_id[folder_id]
            reason = volumes.unavailable(folder.path, folder.mount, _has_rows(sessions, folder_id))
            if reason is not None:
                # An unmounted drive is never emptied: its rows wait for it (core/volumes.py).
                report.offline.append(folder.path)
                report.warnings.append(reason)
                continue
            skip = {f.path for f in all_folders if f.id != folder_id}
            walk = _Walk()
            next_report = walked + 500
            # What the database holds for this folder, by relpath, read on a second
            # thread while the walk starts: SQLite builds it without holding the GIL,
            # so it overlaps the walk's stat calls. Each file the walk finds is popped
            # from it; what is left at the end is gone from disk.
            reading = reader.submit(_known_rows, sessions, folder_id)
            known_rows: _Known | None = None
            backlog: list[list[_Entry]] = []
            changed: list[str] = []
            try:
                for batch in walk_folder(folder, skip, walk, cancel):
                    backlog.append(batch)  # diffed as soon as the rows are in
                    if known_rows is None and reading.done():
                        known_rows = reading.result()
                    if known_rows is not None:
                        _diff_batches(folder_id, backlog, known_rows, changed, todo, report, hold)
                    if ingest is not None and todo:
                        ingest.start_loading()  # the model loads while the walk goes on
                    walked += len(batch)
                    if walked >= next_report and batch:
                        next_report = walked + 500
                        yield Progress("walk", walked, None, batch[-1][1], "looking for photos")
            except FileNotFoundError as exc:
                reading.result()
                report.offline.append(folder.path)
                report.warnings.append(str(exc))
                continue
            if known_rows is None:
                known_rows = reading.result()
            _diff_batches(folder_id, backlog, known_rows, changed, todo, report, hold)
            if cancel.cancelled:
                report.cancelled = True
                return report
            for rel in walk.unreadable:
                report.warnings.append(f"could not list {os.path.join(folder.path, rel)}")
            # Rows under folders we could not list are kept: their files may still exist.
            unreadable = tuple(walk.unreadable)
            vanished = [
                rel for rel in known_rows.sigs if not (unreadable and rel.startswith(unreadable))
            ]
            full = _rows_for(sessions, folder_id, known_rows, changed + vanished)
            for rel in changed:
                if rel in full:
                    known[(folder_id, rel)] = full[rel]
            gone_rows[folder_id] = [
                (full[rel][0], folder_id, rel, full[rel][1], full[rel][2], folder.path)
                for rel in vanished
                if rel in full
            ]
            complete.append(folder_id)
            walks[folder_id] = walk
            catalog.record_volume(sessions, folder_id)

    finally:
        reader.shutdown(wait=True)

    nworkers = workers or os.cpu_count() or 2
    released = [
        (row_id, fid, rel, size, mtime, os.path.join(root, rel))
        for fid in complete
        for row_id, fid, rel, size, mtime, root in gone_rows[fid]
    ] + [
        (row[0], fid, rel, row[1], row[2], os.path.join(by_id[fid].path, rel))
        for (fid, rel), row in known.items()
        if row[3] == "ok"
    ]
    moves = yield from identity.find_moves(sessions, todo, released, sha256_file, cancel, nworkers)
    if cancel.cancelled:
        report.cancelled = True
        return report
    if moves:
        applied = identity.apply_moves(sessions, moves, known)
        todo = _after_moves(applied, todo, known, gone_rows, report, changes)
        if on_moves is not None and applied.moves:
            on_moves([m for m in applied.moves if not m.touched])

    total = len(todo)
    yield Progress("index", 0, total, None, "reading new and changed photos")
    pool = ThreadPoolExecutor(max_workers=nworkers, thread_name_prefix="scan-read")
    try:
        pending: list[_Probe] = []
        done = 0
        commit_every = COMMIT_EVERY
        window = max(8, 4 * nworkers)
        if ingest is not None and todo:
            # Whole model batches per commit, and decoding two batches ahead of
            # the model (measured: bench/ingest.py).
            per_run = ingest.batch_size
            commit_every = per_run * max(1, round(COMMIT_EVERY / per_run))
            window = max(window, 2 * per_run)
        last = monotonic()
        futures: deque[Future[tuple[_Probe, Any]]] = deque()
        it = iter(todo)
        for found in it:
            futures.append(pool.submit(_probe_for, found, ingest))
            if len(futures) >= window:
                break
        while futures:
            probe, arr = futures.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                futures.append(pool.submit(_probe_for, nxt, ingest))
            pending.append(probe)
            if arr is not None and ingest is not None:
                ingest.add((probe.found.folder_id, probe.found.relpath), arr)
            done += 1
            # With the one-pass ingest a batch also lands once COMMIT_S passed and
            # the model has just run (the grid shows rows as they land, with their
            # thumbnails: at ~8 photos/s, 200 photos would be 25 s apart).
            landed = ingest is not None and not ingest.queued and monotonic() - last >= COMMIT_S
            if len(pending) >= commit_every or not futures or landed:
                _commit(sessions, pending, known, report, changes, ingest)
                pending = []
                last = monotonic()
            yield Progress("index", done, total, probe.found.path)
            if cancel.cancelled:
                for future in futures:
                    future.cancel()
                if ingest is not None:
                    ingest.drop_queued()  # their rows land now; vectors come later
                _commit(sessions, pending, known, report, changes, ingest)
                report.cancelled = True
                return report
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    gone_all = [row for folder_id in complete for row in gone_rows[folder_id]]
    if hold is not None and hold.sizes:
        gone_all = [row for row in gone_all if row[3] not in hold.sizes]
    if gone_all:
        # A photo's file that is now another's companion (a RAW that got its JPEG)
        # still exists, but its row goes: the photo item is the JPEG's now.
        demoted = {c[1][1] for folder_id in complete for c in walks[folder_id].companions}
        report.removed += _remove_vanished(sessions, gone_all, demoted, changes)
    for folder_id in complete:
        sync_companions(sessions, folder_id, walks[folder_id], report)
    return report


def _after_moves(
    applied: identity.Applied,
    todo: list[_Found],
    known: dict[tuple[int, str], tuple[int, int, int, str, str | None]],
    gone_rows: dict[int, list[tuple[int, int, str, int, int, str]]],
    report: ScanReport,
    changes: list[tuple[str, str, str | None]] | None,
) -> list[_Found]:
    """The scan's bookkeeping after rows moved: what is left to probe, update or remove."""
    targets = {(m.to.folder_id, m.to.relpath) for m in applied.moves}
    moved_ids = {m.row[0] for m in applied.moves}
    for fid, rows in gone_rows.items():
        gone_rows[fid] = [r for r in rows if r[0] not in moved_ids]
    for m in applied.moves:
        known.pop((m.to.folder_id, m.to.relpath), None)
        if m.touched:
            report.unchanged += 1
            continue
        source = (m.row[1], m.row[2])
        if source in known and known[source][0] == m.row[0]:
            # The row left a path that now holds other bytes: those are a new photo.
            del known[source]
        report.moved += 1
        if changes is not None:
            changes.append(("moved", m.to.path, m.row[5]))
    report.removed += len(applied.replaced)
    return [f for f in todo if (f.folder_id, f.relpath) not in targets]


def _remove_vanished(
    sessions: sessionmaker[Session],
    rows: list[tuple[int, int, str, int, int, str]],
    demoted: set[str] | frozenset[str] = frozenset(),
    changes: list[tuple[str, str, str | None]] | None = None,
) -> int:
    """Delete the rows of files gone from disk; return how many were deleted.

    Each row was read before the walk; a file operation in this process may have
    moved it since (see the module docstring). So a row goes only if it is still
    as read (same folder, relpath, size and mtime) and its file is really absent
    and not in flight; the checks and the deletes share one transaction.
    """
    t = cast(Table, ImageRow.__table__)
    stmt = delete(t).where(
        t.c.id == bindparam("b_id"),
        t.c.folder_id == bindparam("b_folder"),
        t.c.relpath == bindparam("b_rel"),
        t.c.size.is_not_distinct_from(bindparam("b_size")),
        t.c.mtime_ns.is_not_distinct_from(bindparam("b_mtime")),
    )
    removed = kept = 0
    with sessions() as session, session.begin():
        for start in range(0, len(rows), 500):
            params = []
            for row_id, folder_id, rel, size, mtime_ns, root in rows[start : start + 500]:
                path = os.path.join(root, rel)
                if in_flight(path) or (os.path.lexists(path) and path not in demoted):
                    kept += 1  # moved by a file operation now, or back again
                    continue
                params.append(
                    {
                        "b_id": row_id,
                        "b_folder": folder_id,
                        "b_rel": rel,
                        "b_size": size,
                        "b_mtime": mtime_ns,
                    }
                )
                if changes is not None:
                    changes.append(("removed", path, None))
            if params:
                result: Any = session.execute(stmt, params)
                removed += max(result.rowcount, 0)
    if kept or removed < len(rows) - kept:
        log.info(
            "scan: %d vanished row(s) removed, %d kept (their files were moved meanwhile)",
            removed,
            len(rows) - removed,
        )
    return removed


def _commit(
    sessions: sessionmaker[Session],
    probes: list[_Probe],
    known: dict[tuple[int, str], tuple[int, int, int, str, str | None]],
    report: ScanReport,
    changes: list[tuple[str, str, str | None]] | None = None,
    ingest: Ingest | None = None,
) -> None:
    """Write one batch in one transaction, with bulk statements (no ORM objects:
    a scan of a million files must not feed the garbage collector); with the
    one-pass `ingest`, the batch's vectors in the same transaction."""
    if not probes:
        return
    model_id, vectors = ingest.take_vectors() if ingest is not None else (None, {})
    now = datetime.now()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for probe in probes:
        found = probe.found
        old = known.get((found.folder_id, found.relpath))
        values = _values(probe, now)
        if old is None:
            inserts.append(values)
        else:
            updates.append({"id": old[0], **values})
        if changes is not None:
            changes.append(("added" if old is None else "updated", found.path, None))
        if probe.error is not None:
            report.failed.append((found.path, probe.error))
    t = cast(Table, ImageRow.__table__)
    with sessions() as session, session.begin():
        if inserts:
            # A row that a file operation moved to this path meanwhile keeps it
            # (with its vector): the file it describes is the one found here.
            stmt = db_insert(session, t).on_conflict_do_nothing()
            result: Any = session.execute(stmt, inserts)
            report.added += len(inserts) if result.rowcount < 0 else result.rowcount
        if updates:
            # Only rows still where the scan read them: one that a file operation
            # moved meanwhile now describes another path, and keeps its vector.
            same = (
                t.c.id == bindparam("b_id"),
                t.c.folder_id == bindparam("b_folder"),
                t.c.relpath == bindparam("b_rel"),
            )
            keys = [
                {"b_id": u["id"], "b_folder": u["folder_id"], "b_rel": u["relpath"]}
                for u in updates
            ]
            # The content changed: vectors of the old content must not survive.
            e = cast(Table, Embedding.__table__)
            session.execute(
                delete(e).where(
                    e.c.image_id == bindparam("b_id"), exists(select(t.c.id).where(*same))
                ),
                keys,
            )
            columns = [c for c in updates[0] if c != "id"]
            result = session.execute(
                update(t).where(*same).values({c: bindparam(c) for c in columns}),
                [{**k, **{c: u[c] for c in columns}} for k, u in zip(keys, updates, strict=True)],
            )
            report.updated += len(updates) if result.rowcount < 0 else result.rowcount
        if vectors and model_id is not None:
            report.embedded += _write_vectors(session, t, model_id, vectors, probes)


def _write_vectors(
    session: Session,
    t: Table,
    model_id: int,
    vectors: dict[Key, Any],
    probes: list[_Probe],
) -> int:
    """The one-pass vectors of the rows this batch just wrote, found by folder and
    relpath, and only where the row still has the size and mtime that was read (a
    file operation that moved another photo's row here meanwhile keeps its own)."""
    stamps = {(f.folder_id, f.relpath): (f.size, f.mtime_ns) for f in (p.found for p in probes)}
    by_folder: dict[int, list[str]] = {}
    for folder_id, rel in vectors:
        by_folder.setdefault(folder_id, []).append(rel)
    rows: list[tuple[int, Any]] = []
    for folder_id, rels in by_folder.items():
        for start in range(0, len(rels), 500):
            found = session.execute(
                select(t.c.id, t.c.relpath, t.c.size, t.c.mtime_ns).where(
                    t.c.folder_id == folder_id, t.c.relpath.in_(rels[start : start + 500])
                )
            )
            for image_id, rel, size, mtime_ns in found:
                key = (folder_id, rel)
                if stamps.get(key) == (size, mtime_ns):
                    rows.append((image_id, vectors[key]))
    write_vectors(session, model_id, rows)
    return len(rows)
