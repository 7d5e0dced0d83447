"""Stable photo identity: a photo that moved or was renamed keeps its row.

A scan sees a move as a file gone from one path and a new file at another. The
row of the gone file holds what the user built on the photo: its vectors for
every model, its auto-folder membership, its sort-by-example labels and
examples, its companions. So before the new files are probed, each one whose
size equals that of a released row (a vanished file, or a changed file whose old
content left its path) is hashed, and a new file whose sha256 equals a released
row's takes over that row: the row's folder and relpath change, nothing else,
and nothing is re-embedded. Only those candidates are hashed (a size match is
rare unless the file moved), so a scan of new photos pays nothing extra here.

Matching prefers the row's own path (a touched file: same bytes, new mtime),
then a row with the same file name (two identical copies moved at once go each
to its own name), then any row with the same bytes. Each row is taken once, so
two copies with identical bytes never share a row and none is lost.

All moves of one scan are applied in one transaction, each only if its row is
still as the scan read it (a file operation may move rows meanwhile, see
core/scanner.py). Rows first go to a placeholder relpath, so a swap (a↔b) never
trips the (folder, relpath) uniqueness.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import ImageRow
from dino_desktop.core.journal import in_flight
from dino_desktop.core.progress import CancelToken, Job, Progress

log = logging.getLogger(__name__)


class Found(NamedTuple):
    """One file as a scan's walk found it (a NamedTuple: one is made per file)."""

    folder_id: int
    relpath: str
    path: str
    size: int
    mtime_ns: int
    dev: int
    inode: int
    error: str | None = None  # set when the entry itself is broken (dangling link)


# A row whose file left its path: (id, folder id, relpath, size, mtime_ns, path).
Released = tuple[int, int, str, int, int, str]


@dataclass(frozen=True, slots=True)
class Move:
    """Row `row` (read at `old`) now describes the file `to`."""

    row: Released
    to: Found

    @property
    def touched(self) -> bool:
        """The same path: only the mtime (or inode) changed, the bytes did not."""
        return self.row[1] == self.to.folder_id and self.row[2] == self.to.relpath


def find_moves(
    sessions: sessionmaker[Session],
    candidates: list[Found],
    released: list[Released],
    hasher: Callable[[str], str],
    cancel: CancelToken,
    workers: int,
) -> Job[list[Move]]:
    """Which new or changed files are released rows' photos at a new path (or touched).

    Only files whose size equals a released row's are hashed.
    """
    sizes = {r[3] for r in released}
    todo = [f for f in candidates if f.error is None and f.size > 0 and f.size in sizes]
    if not todo:
        return []
    wanted = {f.size for f in todo}
    by_id = {r[0]: r for r in released if r[3] in wanted}
    shas = _row_shas(sessions, list(by_id))
    by_sha: dict[str, list[Released]] = {}
    for row_id, sha in shas.items():
        by_sha.setdefault(sha, []).append(by_id[row_id])
    sized = {by_id[i][3] for i in shas}
    todo = [f for f in todo if f.size in sized]
    if not todo:
        return []
    digests: dict[int, str] = {}
    yield Progress("identify", 0, len(todo), None, "recognising moved photos")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan-identify") as pool:
        futures = [pool.submit(_hash_or_none, hasher, f.path) for f in todo]
        for n, future in enumerate(futures):
            digest = future.result()
            if digest is not None:
                digests[n] = digest
            if n % 50 == 49:
                yield Progress("identify", n + 1, len(todo), todo[n].path)
            if cancel.cancelled:
                for rest in futures[n + 1 :]:
                    rest.cancel()
                return []
    return _match(todo, digests, by_sha)


def _hash_or_none(hasher: Callable[[str], str], path: str) -> str | None:
    try:
        return hasher(path)
    except OSError:
        return None  # probed (and recorded as unreadable) with the new files


def _row_shas(sessions: sessionmaker[Session], ids: list[int]) -> dict[int, str]:
    t = cast(Table, ImageRow.__table__)
    out: dict[int, str] = {}
    with sessions() as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            out.update(
                (int(i), str(sha))
                for i, sha in session.execute(
                    select(t.c.id, t.c.sha256).where(
                        t.c.id.in_(chunk), t.c.status == "ok", t.c.sha256.is_not(None)
                    )
                )
            )
    return out


def _match(
    files: list[Found], digests: dict[int, str], by_sha: dict[str, list[Released]]
) -> list[Move]:
    """Pair files with rows of the same bytes: own path first, then same name, then any."""
    taken: set[int] = set()
    placed: set[int] = set()
    moves: list[Move] = []
    tests: tuple[Callable[[Found, Released], bool], ...] = (
        lambda f, r: r[1] == f.folder_id and r[2] == f.relpath,
        lambda f, r: os.path.basename(r[2]) == os.path.basename(f.relpath),
        lambda f, r: True,
    )
    for test in tests:
        for n, found in enumerate(files):
            if n in placed or n not in digests:
                continue
            for row in by_sha.get(digests[n], ()):
                if row[0] not in taken and test(found, row):
                    taken.add(row[0])
                    placed.add(n)
                    moves.append(Move(row, found))
                    break
    return moves


@dataclass(slots=True)
class Applied:
    """What `apply_moves` did: the moves made and the rows replaced at their targets."""

    moves: list[Move]
    replaced: list[int]  # ids of rows deleted because a moved row took their path


def apply_moves(
    sessions: sessionmaker[Session],
    moves: list[Move],
    changed: dict[tuple[int, str], tuple[int, int, int, str, str | None]],
) -> Applied:
    """Re-point the moved rows in one transaction; see the module docstring.

    `changed` holds the rows of files that changed in place, by (folder, relpath),
    as the scan read them: a moved row may take such a path, and then the row
    there (whose old content is gone) is replaced, unless it moved too.
    """
    t = cast(Table, ImageRow.__table__)
    now = datetime.now()
    with sessions() as session, session.begin():
        live = [m for m in moves if _still_as_read(session, t, m)]
        while True:
            moving = {m.row[0] for m in live}
            occupants: dict[int, int] = {}  # move index -> row id to replace
            bad: set[int] = set()
            for n, m in enumerate(live):
                if m.touched:
                    continue
                here = session.execute(
                    select(t.c.id, t.c.size, t.c.mtime_ns).where(
                        t.c.folder_id == m.to.folder_id, t.c.relpath == m.to.relpath
                    )
                ).first()
                if here is None or here[0] in moving:
                    continue
                expected = changed.get((m.to.folder_id, m.to.relpath))
                if expected is not None and tuple(here) == expected[:3]:
                    occupants[n] = int(here[0])
                else:
                    bad.add(n)  # a file operation put a row there meanwhile
            if not bad:
                break
            live = [m for n, m in enumerate(live) if n not in bad]
        replaced = sorted(set(occupants.values()))
        for start in range(0, len(replaced), 500):
            session.execute(delete(t).where(t.c.id.in_(replaced[start : start + 500])))
        for m in live:
            if not m.touched:
                session.execute(
                    update(t).where(t.c.id == m.row[0]).values(relpath=f"\0moving\0{m.row[0]}")
                )
        for m in live:
            session.execute(
                update(t)
                .where(t.c.id == m.row[0])
                .values(
                    folder_id=m.to.folder_id,
                    relpath=m.to.relpath,
                    size=m.to.size,
                    mtime_ns=m.to.mtime_ns,
                    dev=m.to.dev or None,
                    inode=m.to.inode or None,
                    scanned_at=now,
                )
            )
    skipped = len(moves) - len(live)
    if skipped:
        log.info("scan: %d move(s) left to the next scan (rows changed meanwhile)", skipped)
    return Applied(live, replaced)


def _still_as_read(session: Session, t: Table, m: Move) -> bool:
    if in_flight(m.row[5]) or in_flight(m.to.path):
        return False
    row: Any = session.execute(
        select(t.c.folder_id, t.c.relpath, t.c.size, t.c.mtime_ns).where(t.c.id == m.row[0])
    ).first()
    return row is not None and tuple(row) == m.row[1:5]
