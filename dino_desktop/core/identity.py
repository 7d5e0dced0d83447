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

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import FsPath, ImageRow, Raw
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

    A file with the row's own (device, inode, size, mtime) was renamed or moved
    within its filesystem: the same file, known without reading it. The others
    are hashed, and only if their size equals a released row's.
    """
    sizes = {r[3] for r in released}
    todo = [f for f in candidates if f.error is None and f.size > 0 and f.size in sizes]
    if not todo:
        return []
    wanted = {f.size for f in todo}
    by_id = {r[0]: r for r in released if r[3] in wanted}
    known = _row_identities(sessions, list(by_id))
    by_inode: dict[tuple[int, int, int, int], Released] = {}
    by_sha: dict[str, list[Released]] = {}
    for row_id, (sha, dev, inode) in known.items():
        row = by_id[row_id]
        if dev and inode:
            by_inode[(dev, inode, row[3], row[4])] = row
        by_sha.setdefault(sha, []).append(row)
    moves: list[Move] = []
    taken: set[int] = set()
    rest: list[Found] = []
    for found in todo:
        same = by_inode.get((found.dev, found.inode, found.size, found.mtime_ns))
        if same is not None and same[0] not in taken:
            taken.add(same[0])
            moves.append(Move(same, found))
        else:
            rest.append(found)
    sized = {by_id[i][3] for i in known if i not in taken}
    rest = [f for f in rest if f.size in sized]
    if not rest:
        return moves
    digests: dict[int, str] = {}
    yield Progress("identify", 0, len(rest), None, "recognising moved photos")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan-identify") as pool:
        futures = [pool.submit(_hash_or_none, hasher, f.path) for f in rest]
        for n, future in enumerate(futures):
            digest = future.result()
            if digest is not None:
                digests[n] = digest
            if n % 50 == 49:
                yield Progress("identify", n + 1, len(rest), rest[n].path)
            if cancel.cancelled:
                for pending in futures[n + 1 :]:
                    pending.cancel()
                return []
    return moves + _match(rest, digests, by_sha, taken)


def _hash_or_none(hasher: Callable[[str], str], path: str) -> str | None:
    try:
        return hasher(path)
    except OSError:
        return None  # probed (and recorded as unreadable) with the new files


def _row_identities(
    sessions: sessionmaker[Session], ids: list[int]
) -> dict[int, tuple[str, int | None, int | None]]:
    """(sha256, dev, inode) of the readable rows among `ids`."""
    t = cast(Table, ImageRow.__table__)
    out: dict[int, tuple[str, int | None, int | None]] = {}
    with sessions() as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            out.update(
                (int(i), (str(sha), dev, inode))
                for i, sha, dev, inode in session.execute(
                    select(t.c.id, t.c.sha256, t.c.dev, t.c.inode).where(
                        t.c.id.in_(chunk), t.c.status == "ok", t.c.sha256.is_not(None)
                    )
                )
            )
    return out


def _match(
    files: list[Found],
    digests: dict[int, str],
    by_sha: dict[str, list[Released]],
    taken: set[int],
) -> list[Move]:
    """Pair files with rows of the same bytes (not `taken`): own path first, then same
    name, then any."""
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
    there (whose old content is gone) is replaced, unless it moved too. Reads and
    writes are in bulk: a renamed folder of 10,000 photos is 10,000 moves.
    """
    t = cast(Table, ImageRow.__table__)
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy stores it
    with sessions() as session, session.begin():
        current = _rows_now(session, t, [m.row[0] for m in moves])
        live = [
            m
            for m in moves
            if current.get(m.row[0]) == m.row[1:5]
            and not in_flight(m.row[5])
            and not in_flight(m.to.path)
        ]
        occupants_at = _occupants(session, t, [m for m in live if not m.touched])
        while True:
            moving = {m.row[0] for m in live}
            occupants: set[int] = set()
            bad: set[int] = set()
            for n, m in enumerate(live):
                here = None if m.touched else occupants_at.get((m.to.folder_id, m.to.relpath))
                if here is None or here[0] in moving:
                    continue
                expected = changed.get((m.to.folder_id, m.to.relpath))
                if expected is not None and here == expected[:3]:
                    occupants.add(here[0])
                else:
                    bad.add(n)  # a file operation put a row there meanwhile
            if not bad:
                break
            live = [m for n, m in enumerate(live) if n not in bad]
        replaced = sorted(occupants)
        for start in range(0, len(replaced), 500):
            session.execute(delete(t).where(t.c.id.in_(replaced[start : start + 500])))
        # A row goes to a placeholder relpath first only where its target is held by
        # another moving row (a swap or a cycle); a plain rename needs no second pass.
        blocked = {
            here[0]
            for m in live
            if (here := occupants_at.get((m.to.folder_id, m.to.relpath))) is not None
            and here[0] != m.row[0]
        } & {m.row[0] for m in live}
        by_id = t.c.id == bindparam("b_id")
        parked = [{"b_id": i, "b_rel": f"\0moving\0{i}"} for i in sorted(blocked)]
        if parked:
            session.execute(update(t).where(by_id).values(relpath=bindparam("b_rel")), parked)
        if live:
            # The raw cursor: SQLAlchemy's per-row parameter handling is most of the
            # cost of 10,000 updates. Relpaths that are not UTF-8 go through FsPath.
            dbapi = Raw(session)
            fs, dialect = FsPath(), session.get_bind().dialect
            dbapi.executemany(
                "UPDATE images SET folder_id = ?, relpath = ?, size = ?, mtime_ns = ?,"
                " dev = ?, inode = ?, scanned_at = ? WHERE id = ?",
                [
                    (
                        m.to.folder_id,
                        fs.process_bind_param(m.to.relpath, dialect),
                        m.to.size,
                        m.to.mtime_ns,
                        m.to.dev or None,
                        m.to.inode or None,
                        stamp,
                        m.row[0],
                    )
                    for m in live
                ],
            )
    skipped = len(moves) - len(live)
    if skipped:
        log.info("scan: %d move(s) left to the next scan (rows changed meanwhile)", skipped)
    return Applied(live, replaced)


def _rows_now(session: Session, t: Table, ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """(folder id, relpath, size, mtime_ns) of each row, as it is now."""
    out: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(ids), 500):
        for row_id, *rest in session.execute(
            select(t.c.id, t.c.folder_id, t.c.relpath, t.c.size, t.c.mtime_ns).where(
                t.c.id.in_(ids[start : start + 500])
            )
        ):
            out[int(row_id)] = tuple(rest)
    return out


def _occupants(
    session: Session, t: Table, moves: list[Move]
) -> dict[tuple[int, str], tuple[int, int, int]]:
    """The rows at the moves' target paths now: (id, size, mtime_ns) by (folder, relpath)."""
    by_folder: dict[int, list[str]] = {}
    for m in moves:
        by_folder.setdefault(m.to.folder_id, []).append(m.to.relpath)
    out: dict[tuple[int, str], tuple[int, int, int]] = {}
    for folder_id, rels in by_folder.items():
        for start in range(0, len(rels), 500):
            for row_id, rel, size, mtime in session.execute(
                select(t.c.id, t.c.relpath, t.c.size, t.c.mtime_ns).where(
                    t.c.folder_id == folder_id, t.c.relpath.in_(rels[start : start + 500])
                )
            ):
                out[(folder_id, rel)] = (int(row_id), size, mtime)
    return out
