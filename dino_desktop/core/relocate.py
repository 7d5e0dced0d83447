"""Re-pointing a library folder that moved on disk, without rescanning it.

A registered folder renamed or moved as a whole ("Photos" → "Photos (old)", a
drive now mounted at /media/me/DISK1 instead of /media/me/DISK) goes offline:
the scan cannot see it and keeps its rows (core/volumes.py). `relocate_folder` tells
the library where it went: the folder row's path changes and every photo row,
stored relative to it, follows, with its vectors, labels and auto-folders.
Folders registered inside the moved one follow too. Nothing is read but a
sample of files, to check that the new place really holds the old folder's
photos (re-pointing a folder at the wrong place would make every photo look
gone to the next scan).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import catalog, volumes
from dino_desktop.core.db import Folder, ImageRow
from dino_desktop.core.records import LibraryError

log = logging.getLogger(__name__)

SAMPLE = 20  # photos checked at the new place


@dataclass(frozen=True, slots=True)
class Relocated:
    """What `relocate_folder` did: folders re-pointed (old, new) and the photos that followed."""

    folders: list[tuple[str, str]]
    photos: int
    files: list[tuple[str, str, int, int]]  # (old path, new path, mtime_ns, size) per photo


def _find(session: Session, old: str) -> Folder:
    wanted = {os.path.abspath(os.path.expanduser(old)).rstrip(os.sep) or os.sep}
    if os.path.exists(old):
        wanted.add(os.path.realpath(old))
    for folder in session.scalars(select(Folder)):
        if folder.path in wanted:
            return folder
    known = ", ".join(sorted(f for f in session.scalars(select(Folder.path)))) or "none"
    raise LibraryError(f"not a library folder: {old} (library folders: {known})")


def relocate_folder(sessions: sessionmaker[Session], old: str, new: str) -> Relocated:
    """Re-point the library folder `old` (and folders inside it) to `new`; see above."""
    target = catalog.real_folder(new)
    with sessions() as session, session.begin():
        folder = _find(session, old)
        source = folder.path
        if target == source:
            raise LibraryError(f"{source} is already where the library looks for it")
        taken = session.scalar(select(Folder).where(Folder.path == target))
        if taken is not None:
            raise LibraryError(
                f"{target} is already a library folder; remove it from the library first "
                f"(its photos would otherwise be listed twice), then relocate {source}"
            )
        outer = catalog.owner_of(target, catalog.folder_paths(session))
        if outer is not None and _has_rows_below(session, outer.folder_id, outer.relpath):
            raise LibraryError(
                f"{target} is inside the library folder {outer.root}, which already lists "
                f"its photos; scan {outer.root} instead (moved photos keep their data)"
            )
        _check_sample(session, folder, target)
        moved = [f for f in session.scalars(select(Folder)) if volumes.is_below(f.path, source)]
        pairs = []
        for f in moved:
            new_path = target + f.path[len(source) :]
            pairs.append((f.path, new_path))
            f.path = new_path
            if os.path.isdir(new_path):
                catalog.set_volume(f, volumes.volume_of(new_path))
        roots = {f.id: pair for f, pair in zip(moved, pairs, strict=True)}
        files = [
            (os.path.join(roots[fid][0], rel), os.path.join(roots[fid][1], rel), mt, size)
            for fid, rel, mt, size in session.execute(
                select(
                    ImageRow.folder_id, ImageRow.relpath, ImageRow.mtime_ns, ImageRow.size
                ).where(ImageRow.folder_id.in_(list(roots)))
            )
        ]
    for a, b in pairs:
        log.info("folder relocated: %s -> %s (%d photos)", a, b, len(files))
    return Relocated(pairs, len(files), files)


def _has_rows_below(session: Session, folder_id: int, relpath: str) -> bool:
    prefix = relpath + os.sep if relpath else ""
    return (
        session.scalar(
            select(func.count())
            .select_from(ImageRow)
            .where(
                ImageRow.folder_id == folder_id,
                ImageRow.relpath.startswith(prefix, autoescape=True),
            )
        )
        or 0
    ) > 0


def _check_sample(session: Session, folder: Folder, target: str) -> None:
    """Refuse a new place that holds none of a sample of the folder's photos."""
    sample = list(
        session.scalars(
            select(ImageRow.relpath).where(ImageRow.folder_id == folder.id).limit(SAMPLE)
        )
    )
    if sample and not any(os.path.lexists(os.path.join(target, rel)) for rel in sample):
        raise LibraryError(
            f"{target} does not look like {folder.path}: none of {len(sample)} of its "
            "photos checked is there"
        )
