"""The catalog: registered folders, the photo rows below them, and which folder holds a path.

A photo's path is its folder's (real) path plus the `relpath` the scanner
walked, so "which registered folder holds this path" is one question asked
in several places (finding a file's row, example folders, export plans, file
operations that follow moved files): `owner_of` answers it, once. Folders may
nest; the scanner files a photo under the innermost registered folder, so the
innermost one is the owner.

Reads that cover the whole library (the GUI's photo list, paths of 100,000
ids, names for auto-folders) select plain columns and join paths in Python
with one prefix per folder, never an ORM object or an SQL join per row: they
run when the GUI opens. Small reads and writes (a folder, a count) use the ORM.
Functions take the library's `sessionmaker`, like `clusters` and `scanner`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import volumes
from dino_desktop.core.db import CompanionRow, Folder, ImageRow
from dino_desktop.core.images import is_raw_format
from dino_desktop.core.records import (
    Companion,
    FolderInfo,
    ImageRecord,
    LibraryError,
    PhotoRow,
    Status,
)

log = logging.getLogger(__name__)

Sessions = sessionmaker[Session]

SORTS = ("date", "name", "folder")
# Above this many ids, lookups read every row once instead of IN lists of 500
# (100,000 ids: 0.7 s instead of 1.5 s).
BULK_LOOKUP = 5_000
_IN_CHUNK = 500


# ---- paths -----------------------------------------------------------------------


class Owner(NamedTuple):
    """The registered folder that holds a path, and the path below it ("" for the folder)."""

    folder_id: int
    root: str
    relpath: str


def owner_of(path: str, folders: Iterable[tuple[int, str]]) -> Owner | None:
    """The innermost of `folders` ((id, path) pairs) that is `path` or holds it.

    Plain string prefixes, no file-system calls: `path` is compared as given
    (callers resolve it first where the folder may be reached through a link).
    """
    best: Owner | None = None
    for folder_id, root in folders:
        prefix = folder_prefix(root)
        inside = path == root or path.startswith(prefix)
        if inside and (best is None or len(root) > len(best.root)):
            best = Owner(folder_id, root, path[len(prefix) :] if path != root else "")
    return best


def folder_prefix(root: str) -> str:
    """A folder's path with one trailing separator: prefix + relpath is a photo's path."""
    return root if root.endswith(os.sep) else root + os.sep


def is_inside(path: str, folder: str) -> bool:
    """Whether `path` lies strictly below `folder` (plain string prefixes)."""
    return path.startswith(folder_prefix(folder.rstrip(os.sep) or os.sep))


def real_folder(path: str | os.PathLike[str]) -> str:
    """The resolved path of an existing folder (~ expanded), or LibraryError."""
    real = os.path.realpath(os.path.expanduser(os.fspath(path)))
    if not os.path.isdir(real):
        raise LibraryError(f"not a folder: {os.fspath(path)}")
    return real


def folder_paths(session: Session) -> list[tuple[int, str]]:
    """(id, path) of every registered folder: what `owner_of` chooses from."""
    return [(int(i), str(p)) for i, p in session.execute(select(Folder.id, Folder.path))]


def folder_prefixes(session: Session) -> dict[int, str]:
    """Each folder's `folder_prefix`, by id."""
    return {fid: folder_prefix(root) for fid, root in folder_paths(session)}


def scan_targets(sessions: Sessions, dirs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """What to scan to bring `dirs` up to date: the registered folder holding each
    one, or the folder itself when none does (it is then added); no repeats."""
    with sessions() as session:
        known = folder_paths(session)
    targets: list[str] = []
    for d in dirs:
        real = os.path.realpath(os.path.expanduser(os.fspath(d)))
        owner = owner_of(real, known)
        targets.append(owner.root if owner is not None else real)
    return list(dict.fromkeys(targets))


# ---- folders ---------------------------------------------------------------------


def add_folder(sessions: Sessions, path: str | os.PathLike[str], *, reference: bool) -> int:
    """Register a folder (idempotent) and return its id; `reference` marks it protected
    (an existing folder is never unmarked here)."""
    real = real_folder(path)
    for attempt in range(2):
        try:
            return _add_folder(sessions, real, reference)
        except IntegrityError:
            # Another client of a shared library added it at the same moment: use its row.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _add_folder(sessions: Sessions, real: str, reference: bool) -> int:
    with sessions() as session, session.begin():
        folder = session.scalar(select(Folder).where(Folder.path == real))
        if folder is None:
            folder = Folder(path=real, is_reference=reference, added_at=datetime.now())
            if os.path.isdir(real):
                set_volume(folder, volumes.volume_of(real))
            session.add(folder)
            log.info("folder added: %s%s", real, " (reference)" if reference else "")
        elif reference and not folder.is_reference:
            folder.is_reference = True
        session.flush()
        return int(folder.id)


def remove_folder(sessions: Sessions, folder_id: int) -> None:
    """Forget a folder and its photos' rows (ON DELETE CASCADE); files are not touched."""
    with sessions() as session, session.begin():
        folder = session.get(Folder, folder_id)
        if folder is not None:
            log.info("folder removed: %s", folder.path)
            session.delete(folder)


def set_reference(sessions: Sessions, folder_id: int, reference: bool) -> None:
    with sessions() as session, session.begin():
        folder = session.get(Folder, folder_id)
        if folder is None:
            raise LibraryError(f"no folder with id {folder_id}")
        folder.is_reference = reference


def set_volume(folder: Folder, volume: volumes.Volume) -> None:
    """Store the drive `folder` was last seen on (core/volumes.py)."""
    folder.volume, folder.volume_path, folder.mount = volume.id, volume.relpath, volume.mount


def record_volume(sessions: Sessions, folder_id: int) -> None:
    """Note the drive a folder (just scanned, so online) is on, if that changed."""
    with sessions() as session, session.begin():
        folder = session.get(Folder, folder_id)
        if folder is None or not os.path.isdir(folder.path):
            return
        volume = volumes.volume_of(folder.path)
        if (folder.volume, folder.volume_path, folder.mount) != (
            volume.id,
            volume.relpath,
            volume.mount,
        ):
            set_volume(folder, volume)


def offline_reason(folder: Folder, has_photos: bool) -> str | None:
    """Why `folder` cannot be scanned now (core/volumes.py), or None."""
    return volumes.unavailable(folder.path, folder.mount, has_photos)


def same_drive_at(folder: Folder) -> str | None:
    """The folder's path on its drive's new mount point, when that drive is mounted
    elsewhere now (same filesystem identity) and the folder is there."""
    if not folder.volume or folder.volume_path is None:
        return None
    for point in volumes.find_volume(folder.volume):
        candidate = os.path.join(point, folder.volume_path) if folder.volume_path else point
        if candidate != folder.path and os.path.isdir(candidate):
            return candidate
    return None


def offline_roots(sessions: Sessions) -> list[str]:
    """The paths of the folders that cannot be scanned now (drive not mounted)."""
    with sessions() as session:
        return [f.path for f in session.scalars(select(Folder)) if offline_reason(f, True)]


def folders(sessions: Sessions) -> list[FolderInfo]:
    """Every registered folder with its photo counts and whether it is online, by path."""
    with sessions() as session:
        counts: dict[int, int] = {}
        failed: dict[int, int] = {}
        for folder_id, status, n in session.execute(
            select(ImageRow.folder_id, ImageRow.status, func.count()).group_by(
                ImageRow.folder_id, ImageRow.status
            )
        ):
            (counts if status == "ok" else failed)[folder_id] = n
        out = []
        for f in session.scalars(select(Folder).order_by(Folder.path)):
            n, bad = counts.get(f.id, 0), failed.get(f.id, 0)
            reason = offline_reason(f, n + bad > 0)
            out.append(
                FolderInfo(
                    f.id, f.path, f.is_reference, n, bad, reason,
                    same_drive_at(f) if reason else None,
                )
            )  # fmt: skip
        return out


def folder_ids(sessions: Sessions) -> list[int]:
    """Every folder's id, by path: no photo counts (`folders` costs ~0.1 s at 100,000)."""
    with sessions() as session:
        return [int(i) for i in session.scalars(select(Folder.id).order_by(Folder.path))]


def failed_count(sessions: Sessions) -> int:
    """How many indexed files could not be read."""
    with sessions() as session:
        n = session.scalar(
            select(func.count()).select_from(ImageRow).where(ImageRow.status == "failed")
        )
    return int(n or 0)


# ---- photos ----------------------------------------------------------------------


def status(
    sessions: Sessions, pending: int, model: str, weights: str | os.PathLike[str] | None
) -> Status:
    """The library's counts and folders, with the model's `pending` count and weights file."""
    found = folders(sessions)
    images = sum(f.images for f in found)
    with sessions() as session:
        kinds: dict[str, int] = {
            str(kind): int(n)
            for kind, n in session.execute(
                select(CompanionRow.kind, func.count()).group_by(CompanionRow.kind)
            )
        }
    return Status(
        images=images,
        embedded=images - pending,
        pending=pending,
        failed=failed_count(sessions),
        folders=found,
        model=model,
        weights=None if weights is None else os.fspath(weights),
        companions=sum(n for k, n in kinds.items() if k in ("raw", "live", "sidecar")),
        videos=kinds.get("video", 0),
        orphan_sidecars=kinds.get("orphan", 0),
    )


# ---- companion files -------------------------------------------------------------


def companions(sessions: Sessions, ids: Iterable[int] | None = None) -> dict[int, list[Companion]]:
    """The companion files (RAW, Live Photo video, sidecars) of the given photos (None:
    of every photo), by image id, in path order; photos without any are left out."""
    query = select(
        CompanionRow.image_id,
        CompanionRow.folder_id,
        CompanionRow.relpath,
        CompanionRow.kind,
        CompanionRow.size,
    ).where(CompanionRow.image_id.is_not(None))
    out: dict[int, list[Companion]] = {}
    with sessions() as session:
        roots = dict(folder_paths(session))
        wanted = None if ids is None else sorted({int(i) for i in ids})
        chunks = [query] if wanted is None else [
            query.where(CompanionRow.image_id.in_(wanted[i : i + _IN_CHUNK]))
            for i in range(0, len(wanted), _IN_CHUNK)
        ]  # fmt: skip
        for q in chunks:
            for image_id, fid, rel, kind, size in session.execute(q):
                out.setdefault(int(image_id or 0), []).append(
                    Companion(os.path.join(roots[fid], rel), kind, int(size))
                )
    for found in out.values():
        found.sort(key=lambda c: c.path)
    return out


def loose_files(sessions: Sessions, kind: str) -> list[str]:
    """Paths of the videos of no photo (`kind` "video") or orphan sidecars ("orphan")."""
    with sessions() as session:
        roots = dict(folder_paths(session))
        rows = session.execute(
            select(CompanionRow.folder_id, CompanionRow.relpath).where(CompanionRow.kind == kind)
        )
        return sorted(os.path.join(roots[fid], rel) for fid, rel in rows)


def badge(fmt: str | None, kinds: Iterable[str]) -> str:
    """What the grid marks a photo with: "RAW+JPEG" (a RAW original beside it), "Live"
    (a Live Photo video), "RAW" (the photo is a RAW), joined by " · "."""
    found = set(kinds)
    marks = []
    if fmt is not None and is_raw_format(fmt):
        marks.append("RAW")
    elif "raw" in found:
        marks.append(f"RAW+{'HEIC' if (fmt or '').upper() == 'HEIF' else (fmt or 'JPEG')}")
    if "live" in found:
        marks.append("Live")
    return " \N{MIDDLE DOT} ".join(marks)


def images(sessions: Sessions, *, failed_only: bool = False) -> Iterator[ImageRecord]:
    """Every indexed file (or only the unreadable ones), in folder and path order."""
    query = select(ImageRow, Folder.path).join(Folder)
    if failed_only:
        query = query.where(ImageRow.status == "failed")
    paths = {i: tuple(c.path for c in found) for i, found in companions(sessions).items()}
    with sessions() as session:
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
                companions=paths.get(row.id, ()),
            )


def photo_rows(sessions: Sessions, *conditions: Any) -> list[PhotoRow]:
    """Readable photos matching SQLAlchemy `conditions` on ImageRow, in table order."""
    # Core rows and one path prefix per folder: this runs over the whole
    # library when the GUI opens, so no ORM objects and no per-row join.
    with sessions() as session:
        prefixes = folder_prefixes(session)
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
                ImageRow.format,
            ).where(ImageRow.status == "ok", *conditions)
        )
        kinds: dict[int, list[str]] = {}
        for image_id, kind in session.execute(
            select(CompanionRow.image_id, CompanionRow.kind).where(
                CompanionRow.kind.in_(("raw", "live")),
                CompanionRow.image_id.in_(
                    select(ImageRow.id).where(ImageRow.status == "ok", *conditions)
                ),
            )
        ):
            if image_id is not None:
                kinds.setdefault(image_id, []).append(kind)
        return [
            PhotoRow(
                i, prefixes[fid] + rel, fid, taken, w or 0, h or 0, size, mt, cam,
                badge(fmt, kinds.get(i, ())) if i in kinds or (fmt and is_raw_format(fmt))
                else "",
            )
            for i, fid, rel, taken, w, h, size, mt, cam, fmt in result
        ]  # fmt: skip


def photos(
    sessions: Sessions, *, folder_id: int | None = None, sort: str = "date", after_id: int = 0
) -> list[PhotoRow]:
    """Readable photos, optionally of one folder, sorted by date taken, name or folder.

    Photos without a date sort after dated ones; `after_id` keeps only rows added
    since (ids grow).
    """
    if sort not in SORTS:
        raise LibraryError(f"unknown sort {sort!r}; choose from {', '.join(SORTS)}")
    conditions = [ImageRow.id > after_id]
    if folder_id is not None:
        conditions.append(ImageRow.folder_id == folder_id)
    rows = photo_rows(sessions, *conditions)
    if sort == "date":
        rows.sort(key=lambda r: (r.taken_at is None, r.taken_at or datetime.min, r.path))
    elif sort == "name":
        rows.sort(key=lambda r: (os.path.basename(r.path).casefold(), r.path))
    else:
        rows.sort(key=lambda r: r.path)
    return rows


def photos_by_id(sessions: Sessions, ids: Iterable[int]) -> dict[int, PhotoRow]:
    """PhotoRows for the given image ids (readable photos only)."""
    wanted = list(ids)
    if len(wanted) > BULK_LOOKUP:
        # Many ids: one pass over every readable photo beats hundreds of IN queries.
        keep = set(wanted)
        return {r.id: r for r in photo_rows(sessions) if r.id in keep}
    out: dict[int, PhotoRow] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        out.update((r.id, r) for r in photo_rows(sessions, ImageRow.id.in_(chunk)))
    return out


def paths_of(sessions: Sessions, ids: Iterable[int]) -> dict[int, str]:
    """image id → path, for the ids that still have a row (readable or not)."""
    wanted = list(ids)
    out: dict[int, str] = {}
    with sessions() as session:
        roots = dict(folder_paths(session))
        if len(wanted) > BULK_LOOKUP:
            keep = set(wanted)
            for i, fid, rel in session.execute(
                select(ImageRow.id, ImageRow.folder_id, ImageRow.relpath)
            ):
                if i in keep:
                    out[i] = os.path.join(roots[fid], rel)
            return out
        for start in range(0, len(wanted), _IN_CHUNK):
            rows = session.execute(
                select(ImageRow.id, ImageRow.folder_id, ImageRow.relpath).where(
                    ImageRow.id.in_(wanted[start : start + _IN_CHUNK])
                )
            )
            out.update({i: os.path.join(roots[fid], rel) for i, fid, rel in rows})
    return out


def names_and_dates(
    sessions: Sessions, ids: Iterable[int]
) -> dict[int, tuple[str, datetime | None]]:
    """image id → (path, date taken if readable), for naming auto-folders; one pass
    over the rows, no PhotoRow per photo (those cost ~400 MB at 1,000,000)."""
    wanted = {int(i) for i in ids}
    with sessions() as session:
        prefixes = folder_prefixes(session)
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


def file_signatures(sessions: Sessions) -> Iterator[tuple[str, int, int]]:
    """(path, mtime_ns, size) of every row, streamed (no list of 1,000,000 tuples):
    what the thumbnail loader keys a thumbnail by."""
    with sessions() as session:
        prefixes = folder_prefixes(session)
        rows = session.execute(
            select(ImageRow.folder_id, ImageRow.relpath, ImageRow.mtime_ns, ImageRow.size)
        )
        for fid, rel, mtime, size in rows:
            yield prefixes[fid] + rel, mtime, size


def find_image(sessions: Sessions, path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """(image id, size, mtime_ns) of the row for a file path, if the library has one."""
    real = os.path.realpath(os.fspath(path))
    with sessions() as session:
        owner = owner_of(real, folder_paths(session))
        if owner is None or not owner.relpath:
            return None
        row = session.execute(
            select(ImageRow.id, ImageRow.size, ImageRow.mtime_ns).where(
                ImageRow.folder_id == owner.folder_id, ImageRow.relpath == owner.relpath
            )
        ).first()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


def readable_ids_below(session: Session, path: str) -> set[int]:
    """The readable photos at or below `path` (a folder), whichever registered
    folders hold them: all of a registered folder inside it, and the part below
    `path` of the one that holds it."""
    target = folder_prefix(path.rstrip(os.sep) or os.sep)
    found: set[int] = set()
    for folder_id, root in folder_paths(session):
        prefix = folder_prefix(root)
        if not (target.startswith(prefix) or prefix.startswith(target)):
            continue
        below = target[len(prefix) :] if target.startswith(prefix) else ""
        found.update(
            int(i)
            for i, rel in session.execute(
                select(ImageRow.id, ImageRow.relpath).where(
                    ImageRow.folder_id == folder_id, ImageRow.status == "ok"
                )
            )
            if rel.startswith(below)
        )
    return found


def existing_ids(session: Session, ids: Iterable[int]) -> list[int]:
    """Those of `ids` that still have a row (any status), in id order."""
    wanted = sorted({int(i) for i in ids})
    out: list[int] = []
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        out.extend(
            int(i) for i in session.scalars(select(ImageRow.id).where(ImageRow.id.in_(chunk)))
        )
    return sorted(out)
