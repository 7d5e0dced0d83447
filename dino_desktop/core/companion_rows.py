"""The scan's companion rows: bring a folder's `companions` table in line with its walk.

The walk (core/scanner.py) groups each directory's files into photo items
(core/companions.py); this writes what it found: companion files with their
photo's row id, and the loose videos and orphan sidecars (image_id NULL).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import CompanionRow, ImageRow
from dino_desktop.core.records import ScanReport


def sync_companions(
    sessions: sessionmaker[Session], folder_id: int, walk: Any, report: ScanReport
) -> None:
    """Bring the folder's companion rows in line with what the walk grouped.

    Rows under sub-folders that could not be listed are kept, as image rows are.
    A companion whose photo has no row (a file operation moved it meanwhile) is
    left to the next scan.
    """
    report.companions += len(walk.companions)
    for entry, kind in walk.loose:
        (report.videos if kind == "video" else report.orphan_sidecars).append(entry[1])
    desired: dict[str, tuple[str | None, str, int, int]] = {
        entry[0]: (owner, kind, entry[2], entry[3]) for owner, entry, kind in walk.companions
    }
    desired.update({entry[0]: (None, kind, entry[2], entry[3]) for entry, kind in walk.loose})
    t = cast(Table, CompanionRow.__table__)
    i = cast(Table, ImageRow.__table__)
    unreadable = tuple(walk.unreadable)
    with sessions() as session, session.begin():
        # Each row with its photo's relpath, so an unchanged row compares as the walk
        # has it and the photo ids are looked up only for rows that are new or changed.
        existing = {
            rel: (row_id, (owner, kind, size, mtime))
            for row_id, rel, owner, kind, size, mtime in session.execute(
                select(t.c.id, t.c.relpath, i.c.relpath, t.c.kind, t.c.size, t.c.mtime_ns)
                .select_from(t.outerjoin(i, t.c.image_id == i.c.id))
                .where(t.c.folder_id == folder_id)
            )
        }
        stale = [
            row_id
            for rel, (row_id, _) in existing.items()
            if rel not in desired and not (unreadable and rel.startswith(unreadable))
        ]
        todo: dict[str, tuple[str | None, str, int, int]] = {}
        for rel, want in desired.items():
            old = existing.get(rel)
            if old is not None and old[1] == want:
                continue
            if old is not None:
                stale.append(old[0])
            todo[rel] = want
        owners = sorted({want[0] for want in todo.values() if want[0] is not None})
        ids: dict[str, int] = {}
        for chunk_start in range(0, len(owners), 500):
            chunk = owners[chunk_start : chunk_start + 500]
            ids.update(
                (rel, int(image_id))
                for rel, image_id in session.execute(
                    select(i.c.relpath, i.c.id).where(
                        i.c.folder_id == folder_id, i.c.relpath.in_(chunk)
                    )
                )
            )
        inserts = [
            {
                "folder_id": folder_id,
                "image_id": ids.get(owner) if owner is not None else None,
                "relpath": rel,
                "kind": kind,
                "size": size,
                "mtime_ns": mtime,
            }
            for rel, (owner, kind, size, mtime) in todo.items()
            # A photo with no row (a file operation moved it meanwhile): the next scan.
            if owner is None or owner in ids
        ]
        for chunk_start in range(0, len(stale), 500):
            session.execute(delete(t).where(t.c.id.in_(stale[chunk_start : chunk_start + 500])))
        if inserts:
            session.execute(t.insert(), inserts)
