"""Duplicate proposals the user answered: "not duplicates" and "keep all", remembered.

An answer is stored with each photo's file state (size, mtime, sha256). It
holds while those are unchanged: a file that changes (edited, replaced) makes
its pairs proposable again. Renames and moves keep the answer, since a moved
photo keeps its row (core/identity.py). Rows are never deleted by undo: it
sets ``undone_at`` (so an undo can itself be looked at later).

What an answer covers is a set of *pairs*:

* a group answer (``subject`` None) covers every pair of its photos;
* a member answer ("this one is not a duplicate of the others") covers the
  pairs of the subject with each other photo.

`Dismissed.filter` takes a proposed group (image ids) and returns the members
it keeps: a member goes when every pair it forms with the others is covered,
repeated until nothing changes. A group whose pairs are all covered keeps at
most one member, so it is gone. A new photo that joins a dismissed group forms
pairs nobody answered: the group comes back, with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import DupeDismissal, DupeDismissalMember, Folder, ImageRow
from dino_desktop.core.journal import now
from dino_desktop.core.records import LibraryError

KINDS = ("not-duplicates", "keep-all")
_IN_CHUNK = 500


@dataclass(frozen=True)
class Dismissal:
    """One stored answer, as `list_dismissals` reports it."""

    id: int
    kind: str
    paths: tuple[str, ...]
    """Its photos' current paths (photos deleted since are left out)."""
    subject: str | None
    """The one photo taken out of a group (a member answer), else None."""
    valid: bool
    """False when one of its files changed since: then it no longer hides anything."""
    undone: bool


class Dismissed:
    """The answers in force, for filtering groups (load once per duplicate search)."""

    def __init__(self, sets: dict[int, set[int]], subject: dict[int, int]) -> None:
        # dismissal id -> its photos whose file is unchanged
        self._sets = sets
        self._subject = subject  # member answers: dismissal id -> subject image id
        self._of: dict[int, list[int]] = {}
        for did, ids in sets.items():
            for image_id in ids:
                self._of.setdefault(image_id, []).append(did)

    def __bool__(self) -> bool:
        return bool(self._of)

    def covers(self, a: int, b: int) -> bool:
        """Whether the pair (a, b) was answered "not duplicates" (or "keep all")."""
        for did in self._of.get(a, ()):
            ids = self._sets[did]
            if b not in ids:
                continue
            subject = self._subject.get(did)
            if subject is None or subject in (a, b):
                return True
        return False

    def filter(self, members: Sequence[int]) -> tuple[list[int], list[int]]:
        """(kept, dismissed) image ids of a proposed group (see the module docstring)."""
        kept = list(members)
        if not self._of or not any(m in self._of for m in kept):
            return kept, []
        gone: list[int] = []
        changed = True
        while changed and len(kept) > 1:
            changed = False
            for m in list(kept):
                rest = [x for x in kept if x != m]
                if rest and all(self.covers(m, x) for x in rest):
                    kept.remove(m)
                    gone.append(m)
                    changed = True
        if len(kept) == 1:  # a lone photo is no group: it is dismissed with the rest
            gone.extend(kept)
            kept = []
        return kept, gone


def _states(session: Session, ids: Sequence[int]) -> dict[int, tuple[int, int, str | None]]:
    out: dict[int, tuple[int, int, str | None]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        for image_id, size, mtime_ns, sha in session.execute(
            select(ImageRow.id, ImageRow.size, ImageRow.mtime_ns, ImageRow.sha256).where(
                ImageRow.id.in_(chunk)
            )
        ):
            out[int(image_id)] = (int(size), int(mtime_ns), sha)
    return out


def _unchanged(stored: tuple[int, int, str | None], now_: tuple[int, int, str | None]) -> bool:
    size, mtime, sha = stored
    size2, mtime2, sha2 = now_
    if sha and sha2:  # content known on both sides: a touched file is the same photo
        return sha == sha2
    return (size, mtime) == (size2, mtime2)


def dismiss(
    sessions: sessionmaker[Session],
    image_ids: Iterable[int],
    *,
    kind: str = "not-duplicates",
    subject: int | None = None,
) -> int:
    """Store an answer over these photos; returns its id.

    `subject`: a member answer (that photo, one of `image_ids`, is not a
    duplicate of the others). Raises LibraryError for fewer than two photos, an
    unknown kind, a subject not among them, or a photo not in the library.
    """
    ids = sorted({int(i) for i in image_ids})
    if kind not in KINDS:
        raise LibraryError(f"unknown answer {kind!r}; use {' or '.join(KINDS)}")
    if len(ids) < 2:
        raise LibraryError("an answer needs at least two photos")
    if subject is not None and subject not in ids:
        raise LibraryError("the photo taken out must be one of the group's photos")
    with sessions() as session, session.begin():
        states = _states(session, ids)
        missing = [i for i in ids if i not in states]
        if missing:
            raise LibraryError(f"not in the library: photo id(s) {missing}")
        row = DupeDismissal(created_at=now(), kind=kind, subject_id=subject, undone_at=None)
        session.add(row)
        session.flush()
        session.add_all(
            DupeDismissalMember(
                dismissal_id=row.id,
                image_id=i,
                size=states[i][0],
                mtime_ns=states[i][1],
                sha256=states[i][2],
            )
            for i in ids
        )
        return row.id


def undismiss(sessions: sessionmaker[Session], dismissal_id: int | None = None) -> int:
    """Undo an answer (the given one, or the latest in force); returns its id.

    Raises LibraryError when there is none, or it was undone already.
    """
    with sessions() as session, session.begin():
        if dismissal_id is None:
            found = session.scalar(
                select(DupeDismissal.id)
                .where(DupeDismissal.undone_at.is_(None))
                .order_by(DupeDismissal.id.desc())
                .limit(1)
            )
            if found is None:
                raise LibraryError("no duplicate answer to undo")
            dismissal_id = int(found)
        row = session.get(DupeDismissal, dismissal_id)
        if row is None:
            raise LibraryError(f"no duplicate answer #{dismissal_id}")
        if row.undone_at is not None:
            raise LibraryError(f"duplicate answer #{dismissal_id} was already undone")
        session.execute(
            update(DupeDismissal).where(DupeDismissal.id == dismissal_id).values(undone_at=now())
        )
        return dismissal_id


def _load(session: Session, *, with_undone: bool) -> list[tuple[DupeDismissal, dict[int, bool]]]:
    """Answers with, per photo, whether its file is unchanged since."""
    query = select(DupeDismissal).order_by(DupeDismissal.id)
    if not with_undone:
        query = query.where(DupeDismissal.undone_at.is_(None))
    rows = list(session.scalars(query))
    if not rows:
        return []
    members: dict[int, list[DupeDismissalMember]] = {}
    wanted = [r.id for r in rows]
    for start in range(0, len(wanted), _IN_CHUNK):
        for m in session.scalars(
            select(DupeDismissalMember).where(
                DupeDismissalMember.dismissal_id.in_(wanted[start : start + _IN_CHUNK])
            )
        ):
            members.setdefault(m.dismissal_id, []).append(m)
    ids = sorted({m.image_id for ms in members.values() for m in ms})
    states = _states(session, ids)
    out = []
    for row in rows:
        fresh = {
            m.image_id: m.image_id in states
            and _unchanged((m.size, m.mtime_ns, m.sha256), states[m.image_id])
            for m in members.get(row.id, [])
        }
        out.append((row, fresh))
    return out


def load_dismissed(sessions: sessionmaker[Session]) -> Dismissed:
    """The answers in force (not undone), each over its photos still unchanged.

    A group answer with a changed photo still covers the pairs of the others;
    a member answer whose subject changed covers nothing.
    """
    sets: dict[int, set[int]] = {}
    subject: dict[int, int] = {}
    with sessions() as session:
        for row, fresh in _load(session, with_undone=False):
            ok = {i for i, unchanged in fresh.items() if unchanged}
            if row.subject_id is not None:
                if row.subject_id not in ok:
                    continue
                subject[row.id] = row.subject_id
            if len(ok) >= 2:
                sets[row.id] = ok
    return Dismissed(sets, subject)


def list_dismissals(
    sessions: sessionmaker[Session], *, with_undone: bool = False
) -> list[Dismissal]:
    """The stored answers, oldest first (with the undone ones when asked)."""
    with sessions() as session:
        loaded = _load(session, with_undone=with_undone)
        ids = sorted({i for _, fresh in loaded for i in fresh})
        paths: dict[int, str] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            for image_id, root, rel in session.execute(
                select(ImageRow.id, Folder.path, ImageRow.relpath)
                .join(Folder)
                .where(ImageRow.id.in_(chunk))
            ):
                paths[int(image_id)] = os.path.join(root, rel)
        out = []
        for row, fresh in loaded:
            out.append(
                Dismissal(
                    id=row.id,
                    kind=row.kind,
                    paths=tuple(sorted(paths[i] for i in fresh if i in paths)),
                    subject=paths.get(row.subject_id) if row.subject_id is not None else None,
                    valid=all(fresh.values()) and len(fresh) >= 2,
                    undone=row.undone_at is not None,
                )
            )
        return out
