"""Walk the library's folders and bring the database in line with the disk.

Incremental: a file whose size and mtime_ns match its row costs one stat and is
not opened. New and changed files are hashed (sha256), probed for their display
size, date, camera and perceptual hash on a thread pool, and written in batches.
Files gone from disk leave the database, but only from folders that were walked
completely: an unplugged drive or an unreadable sub-folder never empties the
library. A file that cannot be read is recorded with its reason and the scan
goes on.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import Embedding, Folder, ImageRow
from dino_desktop.core.images import IMAGE_EXTENSIONS, ImageError, read_info
from dino_desktop.core.progress import CancelToken, Job, Progress

COMMIT_EVERY = 200
_CHUNK = 1 << 20


@dataclass(slots=True)
class ScanReport:
    """What one scan changed; `failed` lists every unreadable file in the scanned folders."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class _Found:
    folder_id: int
    relpath: str
    path: str
    size: int
    mtime_ns: int
    dev: int
    inode: int
    error: str | None = None  # set when the entry itself is broken (dangling link)


@dataclass(slots=True)
class _Walk:
    files: list[_Found] = field(default_factory=list)
    # Relative dirs (with trailing separator) that could not be listed: rows under
    # them are kept, since we could not see whether their files still exist.
    unreadable: list[str] = field(default_factory=list)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def walk_folder(
    folder: Folder, skip_roots: set[str], walk: _Walk, cancel: CancelToken | None = None
) -> Iterator[_Found | None]:
    """Yield the image files under a folder (None now and then, so callers can report).

    Symlinked directories are followed, but each real directory is entered once,
    so a symlink loop ends the descent instead of looping. Hidden entries (".*")
    are skipped, and so are registered folders nested inside this one: they are
    scanned as folders of their own.
    """
    root = folder.path
    # Every path below comes from joining names onto root, so slicing off the
    # prefix is exact (and far cheaper than os.path.relpath per file).
    prefix = root if root.endswith(os.sep) else root + os.sep
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
        try:
            with os.scandir(current) as entries:
                listing = list(entries)
        except OSError:
            walk.unreadable.append(current[len(prefix) :] + os.sep if current != root else "")
            yield None
            continue
        for entry in listing:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if entry.path in skip_roots:
                    continue
                try:
                    dst = entry.stat(follow_symlinks=True)
                except OSError:
                    continue
                key = (dst.st_dev, dst.st_ino)
                if key not in visited:
                    visited.add(key)
                    stack.append(entry.path)
                continue
            if not _is_image_name(entry.name):
                continue
            relpath = entry.path[len(prefix) :]
            try:
                fst = entry.stat(follow_symlinks=True)
            except OSError as exc:
                reason = (
                    "broken symbolic link (its target is missing or loops)"
                    if entry.is_symlink()
                    else f"cannot read file: {exc.strerror}"
                )
                yield _Found(folder.id, relpath, entry.path, 0, 0, 0, 0, reason)
                continue
            if not stat.S_ISREG(fst.st_mode):
                continue
            yield _Found(
                folder.id, relpath, entry.path, fst.st_size, fst.st_mtime_ns, fst.st_dev, fst.st_ino
            )


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
) -> Job[ScanReport]:
    """Scan the given folders; yields Progress, returns a ScanReport."""
    report = ScanReport()
    cancel = cancel or CancelToken()
    with sessions() as session:
        all_folders = list(session.scalars(select(Folder)))
    by_id = {f.id: f for f in all_folders}
    todo: list[_Found] = []
    known: dict[tuple[int, str], tuple[int, int, int, str, str | None]] = {}
    seen_rel: dict[int, set[str]] = {}
    complete: list[int] = []

    for folder_id in folder_ids:
        folder = by_id[folder_id]
        skip = {f.path for f in all_folders if f.id != folder_id}
        with sessions() as session:
            for row_id, rel, size, mtime, status, error in session.execute(
                select(
                    ImageRow.id,
                    ImageRow.relpath,
                    ImageRow.size,
                    ImageRow.mtime_ns,
                    ImageRow.status,
                    ImageRow.error,
                ).where(ImageRow.folder_id == folder_id)
            ):
                known[(folder_id, rel)] = (row_id, size, mtime, status, error)
        seen = seen_rel.setdefault(folder_id, set())
        walk = _Walk()
        try:
            for found in walk_folder(folder, skip, walk, cancel):
                if found is None:
                    continue
                seen.add(found.relpath)
                old = known.get((folder_id, found.relpath))
                same_file = (
                    found.error is None
                    and old is not None
                    and old[1:3]
                    == (
                        found.size,
                        found.mtime_ns,
                    )
                )
                same_fault = found.error is not None and old is not None and old[4] == found.error
                if old is not None and (same_file or same_fault):
                    report.unchanged += 1
                    if old[3] == "failed":
                        report.failed.append((found.path, old[4] or "unreadable"))
                else:
                    todo.append(found)
                if (len(seen) % 500) == 0:
                    yield Progress("walk", len(seen), None, found.path, "looking for photos")
        except FileNotFoundError as exc:
            report.warnings.append(str(exc))
            continue
        if cancel.cancelled:
            report.cancelled = True
            return report
        for rel in walk.unreadable:
            report.warnings.append(f"could not list {os.path.join(folder.path, rel)}")
        if walk.unreadable:
            # Keep rows under folders we could not list: their files may still exist.
            for key in list(known):
                if key[0] == folder_id and any(key[1].startswith(u) for u in walk.unreadable):
                    seen.add(key[1])
        complete.append(folder_id)

    total = len(todo)
    yield Progress("index", 0, total, None, "reading new and changed photos")
    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2)
    try:
        pending: list[_Probe] = []
        done = 0
        window = max(8, 4 * (workers or os.cpu_count() or 2))
        futures: list[Future[_Probe]] = []
        it = iter(todo)
        for found in it:
            futures.append(pool.submit(_probe, found))
            if len(futures) >= window:
                break
        while futures:
            probe = futures.pop(0).result()
            nxt = next(it, None)
            if nxt is not None:
                futures.append(pool.submit(_probe, nxt))
            pending.append(probe)
            done += 1
            if len(pending) >= COMMIT_EVERY or not futures:
                _commit(sessions, pending, known, report)
                pending = []
            yield Progress("index", done, total, probe.found.path)
            if cancel.cancelled:
                for future in futures:
                    future.cancel()
                _commit(sessions, pending, known, report)
                report.cancelled = True
                return report
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    with sessions() as session, session.begin():
        for folder_id in complete:
            seen = seen_rel[folder_id]
            gone = [
                old[0] for key, old in known.items() if key[0] == folder_id and key[1] not in seen
            ]
            for start in range(0, len(gone), 500):
                session.execute(delete(ImageRow).where(ImageRow.id.in_(gone[start : start + 500])))
            report.removed += len(gone)
    return report


def _commit(
    sessions: sessionmaker[Session],
    probes: list[_Probe],
    known: dict[tuple[int, str], tuple[int, int, int, str, str | None]],
    report: ScanReport,
) -> None:
    """Write one batch in one transaction, with bulk statements (no ORM objects:
    a scan of a million files must not feed the garbage collector)."""
    if not probes:
        return
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
        if probe.error is not None:
            report.failed.append((found.path, probe.error))
    with sessions() as session, session.begin():
        if inserts:
            session.execute(insert(ImageRow), inserts)
        if updates:
            # The content changed: vectors of the old content must not survive.
            changed = [u["id"] for u in updates]
            session.execute(delete(Embedding).where(Embedding.image_id.in_(changed)))
            session.execute(update(ImageRow), updates)
    report.added += len(inserts)
    report.updated += len(updates)
