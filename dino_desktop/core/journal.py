"""The journal of file operations: its payloads, what runs now, and its saves.

An entry (`JournalRow`) listing every item with its source (and its identity,
`source_identity`) and planned destination (and what already occupies it,
`occupants`) is committed *before* any file is touched, then updated item by
item (in batches) as the work proceeds (`JournalStore._save`), together with
the image rows of the files that moved. `RUNNING` names the entries whose
operation runs in this process (recovery leaves those alone), and `in_flight`
the paths whose rows are about to follow their files (the scanner keeps those).
"""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import CompanionRow, Folder, ImageRow, JournalRow
from dino_desktop.core.placing import collision_names

# The layout of a journal entry's payload (JSON).
PAYLOAD_VERSION = 2


def now() -> datetime:
    """The local time journal entries are stamped with."""
    return datetime.now()


def source_identity(path: str) -> list[Any] | None:
    """[dev, inode, size, mtime_ns, symlink target or None] of a path, None if missing."""
    try:
        st = os.lstat(path)
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, link]


def occupants(planned: str) -> list[list[int]]:
    """[dev, inode, ctime_ns] of what occupies `planned` and its collision names, up to
    the first free one: journaled, so recovery never takes those files for ours."""
    folder, base = os.path.split(planned)
    out: list[list[int]] = []
    for name in collision_names(base):
        try:
            st = os.lstat(os.path.join(folder, name))
        except OSError:
            break
        out.append([st.st_dev, st.st_ino, st.st_ctime_ns])
    return out


# ---- what runs in this process ---------------------------------------------------

REGISTRY_LOCK = threading.Lock()
# (database, journal id) of the entries whose operation or undo runs in this process:
# recovery leaves them alone (the library's write lock keeps other processes out).
RUNNING: set[tuple[str, int]] = set()
# Paths whose file a running operation moved (or is moving) before the entry's next
# save records where its image row went; the scanner must not forget those rows.
_IN_FLIGHT: dict[str, int] = {}


def in_flight(path: str) -> bool:
    """Whether a file operation in this process moved the file at `path` and has not
    yet moved its image row: the row is not stale, it is about to follow its file."""
    with REGISTRY_LOCK:
        return path in _IN_FLIGHT


class Flight:
    """The paths one running operation holds in `_IN_FLIGHT` until its next save."""

    def __init__(self) -> None:
        self._paths: list[str] = []
        self._real_dirs: dict[str, str] = {}

    def add(self, path: str | None) -> None:
        if not path:
            return
        head, tail = os.path.split(path)
        real = self._real_dirs.get(head)
        if real is None:
            real = self._real_dirs[head] = os.path.realpath(head)
        # As given and through its folder's real path: the scanner knows the latter.
        forms = {path, os.path.join(real, tail)}
        with REGISTRY_LOCK:
            for form in forms:
                _IN_FLIGHT[form] = _IN_FLIGHT.get(form, 0) + 1
        self._paths.extend(forms)

    def clear(self) -> None:
        with REGISTRY_LOCK:
            for form in self._paths:
                n = _IN_FLIGHT.get(form, 0) - 1
                if n > 0:
                    _IN_FLIGHT[form] = n
                else:
                    _IN_FLIGHT.pop(form, None)
        self._paths = []


def dump_payload(payload: dict[str, Any]) -> str:
    """The payload as JSON, with "client", "status" and "undo" first so that
    `Recovery._interrupted` finds unfinished entries, and whose they are, from the
    first few characters of each."""
    head = {k: payload[k] for k in ("client", "version", "status", "undo") if k in payload}
    return json.dumps({**head, **payload})


class JournalStore:
    """One library's journal: writes an entry's payload, and keeps the image rows and
    library folders in step with the files an operation moved; the base of `Recovery`
    and `FileOps`."""

    def __init__(self, sessions: sessionmaker[Session], client: str | None = None) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        self._db = str(getattr(bind, "url", id(sessions)))
        # A shared library's computer (Library.client_id): its entries are marked, and
        # only its own are recovered or undone here; another computer's running
        # operation is not interrupted, and its paths are that computer's.
        self.client = client

    def _save(
        self,
        entry_id: int,
        payload: dict[str, Any],
        gone: list[tuple[str, str | None]],
        *,
        undone: bool = False,
    ) -> None:
        """Write the payload, and update the images that left their paths, in one commit."""
        with self._sessions() as session, session.begin():
            row = session.get(JournalRow, entry_id)
            if row is None:  # deleted under us: nothing sensible left to record
                return
            row.payload = dump_payload(payload)
            if undone:
                row.undone_at = now()
            if gone:
                self._relocate_images(session, gone)

    @staticmethod
    def _relocate_images(session: Session, pairs: list[tuple[str, str | None]]) -> None:
        """Follow files that moved: a row moves with its file into a registered folder.

        A photo moved within the library (a move, an export by move into a library
        folder, an undo of one) keeps its row, and so its embedding, date and
        auto-folder membership: nothing is decoded or embedded again. One that left
        every registered folder (the trash, an outside folder) is forgotten, and
        its embedding goes with its row (ON DELETE CASCADE).
        """
        folders = [(f.id, f.path.rstrip(os.sep) + os.sep) for f in session.scalars(select(Folder))]

        def locate(path: str) -> list[tuple[int, str]]:
            # Rows are keyed by the registered folder's real path plus the path
            # below it as the scanner walked it: try the path as given and with
            # its folder resolved; the innermost registered folder owns a file.
            head, tail = os.path.split(path)
            found: list[tuple[int, str]] = []
            for form in dict.fromkeys((path, os.path.join(os.path.realpath(head), tail))):
                owners = [(fid, root) for fid, root in folders if form.startswith(root)]
                if owners:
                    fid, root = max(owners, key=lambda o: len(o[1]))
                    found.append((fid, form[len(root) :]))
            return found

        for src, dest in pairs:
            found = locate(dest) if dest else []
            target = found[-1] if found else None
            # A companion file's row (its photo's RAW, Live Photo video, sidecar) follows
            # it too, and stays its photo's: the photo's row keeps its id.
            for folder_id, rel in locate(src):
                where_c = (CompanionRow.folder_id == folder_id, CompanionRow.relpath == rel)
                if target is None:
                    session.execute(delete(CompanionRow).where(*where_c))
                else:
                    session.execute(
                        delete(CompanionRow).where(
                            CompanionRow.folder_id == target[0], CompanionRow.relpath == target[1]
                        )
                    )
                    session.execute(
                        update(CompanionRow)
                        .where(*where_c)
                        .values(folder_id=target[0], relpath=target[1])
                        .execution_options(synchronize_session=False)
                    )
            if target is not None:
                # A stale row for the destination (a file deleted there outside the
                # app) would collide with the one moving in.
                session.execute(
                    delete(ImageRow).where(
                        ImageRow.folder_id == target[0], ImageRow.relpath == target[1]
                    )
                )
            for folder_id, rel in locate(src):
                where = (ImageRow.folder_id == folder_id, ImageRow.relpath == rel)
                if target is None:
                    session.execute(delete(ImageRow).where(*where))
                else:
                    session.execute(
                        update(ImageRow)
                        .where(*where)
                        .values(folder_id=target[0], relpath=target[1])
                        .execution_options(synchronize_session=False)
                    )
                    break

    def _register_folder(self, path: str) -> bool:
        """Make `path` a library folder unless one holds it; True if it was added.

        The folder is created here (it is in the export's `new_dirs`, journaled
        before, so undo removes it again when empty).
        """
        real = os.path.realpath(path)
        with self._sessions() as session, session.begin():
            for f in session.scalars(select(Folder)):
                if real == f.path or real.startswith(f.path.rstrip(os.sep) + os.sep):
                    return False
            os.makedirs(real, exist_ok=True)
            session.add(Folder(path=real, is_reference=False, added_at=now()))
        return True

    def _unregister_if_empty(self, path: str) -> None:
        with self._sessions() as session, session.begin():
            folder = session.scalar(select(Folder).where(Folder.path == path))
            if folder is not None and not session.scalar(
                select(ImageRow.id).where(ImageRow.folder_id == folder.id).limit(1)
            ):
                session.delete(folder)
