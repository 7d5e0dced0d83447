"""Journaled, undoable changes to the user's files: trash, move and export.

Every change that DINO Desktop makes to a user's files goes through `FileOps`
(DESIGN.md §2). The rules it keeps:

* **Journal first** (core/journal.py). An entry listing every item with its
  source (and its identity) and planned destination is committed *before* any
  file is touched, then updated item by item (in batches) as the work proceeds.
* **Recovery from the disk** (core/recovery.py). Every operation (and undo)
  first settles the entries a crash or a kill left unfinished. Undo removes
  exactly what the operation created.
* **Never overwrite** (core/placing.py): destinations are created exclusively,
  under a collision-safe name ("a (1).jpg"); a move across devices copies to a
  hidden temporary name first, so a crash never leaves the file nowhere.
* **Never touch a reference folder**: a path in (or a symlink into) a folder
  marked ``is_reference`` is refused before anything happens, and so is a move
  into one.
* **Deletion is the system trash** (core/trash.py), never unlink. A "trashed"
  item is checked: the source must be gone and the trashed file must be found.
* **Undoable.** `FileOps.undo` puts files back where they were (next to it,
  under a collision-safe name, when the old name is taken meanwhile); a trash
  is undone where the system trash's location is known (freedesktop.org).
* **Export** (auto-folders, planned by core/export_plan.py) writes a plan of
  (source, destination) by copy, hard link, symlink or move. Undo of a move
  moves the files back; undo of a copy or link removes what it created only if
  it is unchanged since (same inode, size and mtime; a symlink still pointing
  at its source): copies go to the system trash, links are unlinked (the
  original keeps the data). Folders the export created are removed again when
  empty.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

# `placing.place` and `trash.send_to_trash` are called through their modules, so
# that a test replacing them there (to simulate failures) reaches every caller.
from dino_desktop.core import placing, trash
from dino_desktop.core.db import Folder, JournalRow
from dino_desktop.core.export_plan import group_items, plan_items
from dino_desktop.core.journal import (
    PAYLOAD_VERSION,
    REGISTRY_LOCK,
    RUNNING,
    Flight,
    dump_payload,
    now,
    occupants,
    source_identity,
)
from dino_desktop.core.placing import (
    ItemError,
    copy_exclusive,
    create_exclusive,
    item_tag,
    short_reason,
)
from dino_desktop.core.progress import CancelToken, Job, Progress, drive
from dino_desktop.core.records import (
    EXPORT_MODES,
    FileOpError,
    OpResult,
    ReferenceFolderError,
)
from dino_desktop.core.recovery import Recovery
from dino_desktop.core.trash import (
    Identity,
    drop_orphan_info,
    find_in_trash,
    freedesktop,
    trash_dirs,
)

log = logging.getLogger(__name__)


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.normcase(path), os.path.normcase(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _real_forms(path: str) -> set[str]:
    """The path as given, through its folder's real path, and fully resolved."""
    head, tail = os.path.split(path)
    return {path, os.path.join(os.path.realpath(head), tail), os.path.realpath(path)}


def _remove_empty_dirs(dirs: Iterable[str]) -> None:
    """Remove folders an export created, deepest first, where they are empty again."""
    for d in sorted(dirs, key=len, reverse=True):
        with contextlib.suppress(OSError):  # not empty (or gone): it stays
            os.rmdir(d)


class FileOps(Recovery):
    """Trash, move and undo over one library's database (journal, folders, images).

    Safe to share between threads: each call opens its own sessions. Every
    operation first settles the entries that an earlier one left unfinished (a
    crash, a kill): see `_settle`. Callers hold the library's write lock
    (core/lock.py), so an unfinished entry not running in this process is
    one that was interrupted. That lock is per machine: in a shared library the
    entries are marked with their computer (`client`), and only this one's are
    settled or undone here.
    """

    # ---- public API ----------------------------------------------------------

    def trash(self, paths: Sequence[str]) -> OpResult:
        """Send files to the system trash, journaled; see the module docstring.

        Raises ReferenceFolderError (nothing done) if any path is in a reference
        folder. Files that cannot be trashed (missing, permission denied, a
        folder) are listed in `failed`; the others are trashed.
        """
        items = group_items(self._sources(paths))
        self._refuse_reference([it["src"] for it in items], "trash")
        self.recover()
        return self._run("trash", {}, items, self._trash_one)

    def trash_job(
        self,
        paths: Sequence[str],
        cancel: CancelToken | None = None,
        *,
        extra: dict[str, Any] | None = None,
        prepare: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> Job[OpResult]:
        """`trash` as a job: Progress per file, stops between photo items on `cancel`.

        `extra` goes into the journal entry's payload; `prepare(entry_id,
        payload)` runs once the entry is committed and before any file is
        trashed (core/dedupe.py carries metadata to the keepers there, recorded
        in the payload, so the one entry undoes all of it: see `_undo_extras`).
        """
        items = group_items(self._sources(paths))
        self._refuse_reference([it["src"] for it in items], "trash")
        self.recover()
        return (
            yield from self._run_job(
                "trash", dict(extra or {}), items, self._trash_one, cancel=cancel, prepare=prepare
            )
        )

    def move(self, paths: Sequence[str], dest_dir: str) -> OpResult:
        """Move files into `dest_dir`, journaled, never overwriting.

        A name already taken in `dest_dir` gets a suffix: "a.jpg" → "a (1).jpg".
        Raises FileOpError if `dest_dir` is not a folder and ReferenceFolderError
        if a source or `dest_dir` is in a reference folder (nothing done then).
        """
        dest = os.path.abspath(os.fspath(dest_dir))
        if not os.path.isdir(dest):
            raise FileOpError(f"not a folder: {dest}")
        try:
            items = group_items(self._sources(paths), dest)
        except ValueError as exc:
            raise FileOpError(str(exc)) from exc
        self._refuse_reference([it["src"] for it in items], "move")
        self._refuse_reference([dest], "move files into", containing=False)
        self.recover()
        return self._run("move", {"dest_dir": dest}, items, self._move_one)

    def export(self, plan: Sequence[tuple[str, str]], mode: str) -> OpResult:
        """Write files to planned destinations by copy, hard link, symlink or move; journaled.

        `export_job` with progress and cancel; see there.
        """
        return drive(self.export_job(plan, mode))

    def export_job(
        self,
        plan: Sequence[tuple[str, str]],
        mode: str,
        cancel: CancelToken | None = None,
        *,
        library_folder: str | None = None,
    ) -> Job[OpResult]:
        """Write files to planned destinations; yields Progress per file, stops on `cancel`.

        `plan` pairs each source with its destination path (see `plan_export`).
        Never overwrites: a destination taken meanwhile gets a " (1)" suffix.
        Missing destination folders are created (and recorded, so that undo
        removes them again when empty). Raises ReferenceFolderError (nothing
        done) for a destination in a reference folder, or for a move out of
        one; FileOpError for an unknown mode or an empty plan. `moved` pairs
        each source with the path written. A cancelled export returns what it
        did (`cancelled` set); it is journaled and undoable like a whole one.

        `library_folder` (with a move): the destination folder is registered as
        a library folder unless it lies in one, so the moved photos' rows follow
        them; the undo unregisters it again once no photo is left in it.
        """
        if mode not in EXPORT_MODES:
            raise FileOpError(f"unknown export mode {mode!r}; use {', '.join(EXPORT_MODES)}")
        if isinstance(plan, str) or not plan:
            raise FileOpError("nothing to export")
        pairs = [(os.path.abspath(os.fspath(s)), os.path.abspath(os.fspath(d))) for s, d in plan]
        try:
            items = plan_items(pairs)
        except ValueError as exc:
            raise FileOpError(str(exc)) from exc
        dirs = sorted({os.path.dirname(it["dest"]) for it in items})
        self._refuse_reference(dirs, "export into", containing=False)
        if mode == "move":
            self._refuse_reference([it["src"] for it in items], "move")
        self.recover()
        # Journal first: the folders this export will create, so undo can remove them.
        new_dirs: set[str] = set()
        for d in dirs:
            while d and not os.path.lexists(d) and d not in new_dirs:
                new_dirs.add(d)
                d = os.path.dirname(d)
        extra: dict[str, Any] = {"mode": mode}
        if mode == "move" and library_folder is not None:
            root = os.path.abspath(os.fspath(library_folder))
            d = root  # before it is created below: undo removes it again when empty
            while d and not os.path.lexists(d) and d not in new_dirs:
                new_dirs.add(d)
                d = os.path.dirname(d)
            if self._register_folder(root):
                extra["registered_folder"] = os.path.realpath(root)
        extra["new_dirs"] = sorted(new_dirs, key=len, reverse=True)
        result = yield from self._run_job(
            "export",
            extra,
            items,
            lambda it, tag: self._export_one(it, mode, tag),
            forget=mode == "move",
            cancel=cancel,
        )
        return result

    def undo(self, journal_id: int | None = None) -> OpResult:
        """Undo a trash, move or export: the given entry, or the latest one not undone yet.

        An export by copy or link is undone by `_undo_created` (see the module doc).

        Files go back to their old paths; where that path is taken meanwhile, the
        file is restored next to it under a collision-safe name (see `notes`).
        An entry undone once is refused ("already undone"). An entry whose undo
        failed for a passing reason (e.g. permission denied), or that still
        has items whose state could not be read from the disk, stays open, and
        a second call retries only what is left.

        Raises FileOpError for a trash whose files' place in the trash is unknown
        (macOS, Windows): restore them from the system trash there.
        """
        self.recover()  # an interrupted entry is first settled from the disk
        with self._sessions() as session:
            if journal_id is None:
                # This computer's latest (in a shared library the others have theirs).
                candidates = session.scalars(
                    select(JournalRow)
                    .where(JournalRow.undone_at.is_(None))
                    .order_by(JournalRow.id.desc())
                    .execution_options(yield_per=100)
                )
                row = next(
                    (r for r in candidates if self.mine(self.client_of(r.payload[:200]))), None
                )
                if row is None:
                    raise FileOpError("nothing to undo")
            else:
                row = session.get(JournalRow, journal_id)
                if row is None:
                    raise FileOpError(f"no file operation #{journal_id}")
                other = self.client_of(row.payload[:200])
                if not self.mine(other):
                    raise FileOpError(
                        f"file operation #{row.id} was made on another computer "
                        f"({(other or '').split('/')[0]}); undo it there, where its paths are"
                    )
            if row.undone_at is not None:
                raise FileOpError(f"file operation #{row.id} was already undone")
            entry_id, action = row.id, row.action
            payload: dict[str, Any] = json.loads(row.payload)
        key = (self._db, entry_id)
        with REGISTRY_LOCK:
            if key in RUNNING:
                raise FileOpError(f"file operation #{entry_id} is still running")
            RUNNING.add(key)
        try:
            if action == "export" and payload.get("mode") != "move":
                return self._undo_created(entry_id, payload)
            if action == "export":
                action = "move"  # an export by move is undone exactly like a move
            if action not in ("trash", "move"):
                raise FileOpError(f"file operation #{entry_id} ({action}) cannot be undone")
            return self._undo_moved(entry_id, action, payload)
        finally:
            with REGISTRY_LOCK:
                RUNNING.discard(key)

    def _undo_moved(self, entry_id: int, action: str, payload: dict[str, Any]) -> OpResult:
        items: list[dict[str, Any]] = payload.get("items", [])
        todo = [
            it
            for it in items
            if it.get("status") == "done" and (it.get("undo") or {}).get("status") != "done"
        ]
        # Items whose state the disk did not tell (see `_settle`): reported, and
        # the entry stays open so that a later undo tries them again.
        unsettled = [it for it in items if it.get("status") in ("pending", "unknown")]
        if action == "trash":
            unknown = [it["src"] for it in todo if not it.get("dest")]
            if todo and len(unknown) == len(todo) and not unsettled:
                raise FileOpError(
                    "restore it from the system trash: "
                    + ", ".join(unknown)
                    + " (where this system keeps trashed files is not known)"
                )
        self._refuse_reference([it["src"] for it in todo], "restore files into")
        if action == "move":
            self._refuse_reference([it["dest"] for it in todo], "move files out of")

        payload["undo"] = {"status": "pending", "started_at": now().isoformat()}
        self._save(entry_id, payload, [])  # journal first, as for any change
        done: list[str] = []
        moved: list[tuple[str, str]] = []
        companions: list[str] = []
        companions_moved: list[tuple[str, str]] = []
        notes: list[str] = []
        failed = [(it["src"], str(it.get("reason") or "interrupted")) for it in unsettled]
        retry = bool(unsettled)
        gone: list[tuple[str, str | None]] = []
        flight = Flight()
        pending_batch = 0
        index = {id(it): n for n, it in enumerate(items)}
        finished = False
        try:
            notes.extend(self._undo_extras(entry_id, payload))
            for it in todo:
                flight.add(it.get("dest"))  # its row follows at the next save
                try:
                    current, restored = self._undo_one(
                        action, it, item_tag(entry_id, f"u{index[id(it)]}")
                    )
                except ItemError as exc:
                    it["undo"] = {"status": "failed", "reason": str(exc), "retry": exc.retry}
                    failed.append((it["src"], str(exc)))
                    retry = retry or exc.retry
                else:
                    it["undo"] = {"status": "done", "path": restored}
                    if "group" in it:
                        companions.append(restored)
                        companions_moved.append((current, restored))
                    else:
                        done.append(restored)
                        moved.append((current, restored))
                    gone.append((current, restored))
                    if restored != it["src"]:
                        notes.append(
                            f"{it['src']} was taken; restored as {os.path.basename(restored)}"
                        )
                pending_batch += 1
                if pending_batch >= self._batch_size(len(todo)):
                    self._save(entry_id, payload, gone)
                    flight.clear()
                    gone, pending_batch = [], 0
            finished = True
        finally:
            # Interrupted or with failures worth retrying, the entry stays open:
            # the next undo does only the items not marked restored.
            closed = finished and not retry
            payload["undo"]["status"] = "done" if closed else "partial"
            try:
                self._save(entry_id, payload, gone, undone=closed)
            finally:
                flight.clear()
        if closed and payload.get("registered_folder"):
            self._unregister_if_empty(payload["registered_folder"])
        _remove_empty_dirs(payload.get("new_dirs", []))
        return OpResult(
            entry_id, done, failed, moved, notes, companions=companions,
            companions_moved=companions_moved,
        )  # fmt: skip

    def _undo_extras(self, entry_id: int, payload: dict[str, Any]) -> list[str]:
        """Undo what a duplicate removal did besides trashing (metadata carried to
        the keepers: core/dedupe.py); notes for what was left as it is."""
        if not payload.get("merges"):
            return []
        from dino_desktop.core.dedupe import undo_extras

        notes = undo_extras(self._sessions, payload)
        self._save(entry_id, payload, [])
        return notes

    # ---- the journaled loop --------------------------------------------------

    @staticmethod
    def _batch_size(n: int) -> int:
        # The payload is rewritten whole on each save: save every ~5% of a large
        # operation (at least every 50 items), not after every file. A kill between
        # saves loses no knowledge: `_settle` reads the unsaved items from the disk.
        return max(50, n // 20)

    def _run(
        self,
        action: str,
        extra: dict[str, Any],
        items: list[dict[str, Any]],
        act: Callable[[dict[str, Any], str], str | None],
    ) -> OpResult:
        return drive(self._run_job(action, extra, items, act))

    def _run_job(
        self,
        action: str,
        extra: dict[str, Any],
        items: list[dict[str, Any]],
        act: Callable[[dict[str, Any], str], str | None],
        *,
        forget: bool = True,
        cancel: CancelToken | None = None,
        prepare: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> Job[OpResult]:
        """Journal, then act on each item, yielding Progress; `forget`: sources left
        their paths (trash, move). A cancel stops between photo items: those not
        reached are marked "skipped" (nothing happened to them) and the entry is saved.
        `act(item, tag)`: `tag` names the item's temporary files (`item_tag`).

        A photo item's files (`_group_items`) are never split: when the photo
        fails, its companions are skipped; when a companion fails, what was done
        to the group's other files is undone (`_rollback_member`), and the
        whole group is reported as failed. A companion gone since it was listed
        is skipped with a note. The journal is saved between groups only.
        """
        for it in items:
            # The source as it is before we act, journaled: after a crash recovery
            # finds the file by it (`_settle`), wherever it got to.
            it.setdefault("src_ident", source_identity(it["src"]))
            if it.get("dest"):
                # What already occupies the planned name (and its collision names):
                # never taken for something this operation created.
                taken = occupants(it["dest"])
                if taken:
                    it["taken"] = taken
        payload: dict[str, Any] = {
            "version": PAYLOAD_VERSION,
            "status": "pending",
            **extra,
            "items": items,
        }
        if self.client is not None:
            payload["client"] = self.client
        try:
            with self._sessions() as session, session.begin():
                row = JournalRow(
                    created_at=now(), action=action, payload=dump_payload(payload), undone_at=None
                )
                session.add(row)
                session.flush()
                entry_id = row.id
        except SQLAlchemyError as exc:
            raise FileOpError(f"cannot write the journal, nothing was done: {exc}") from exc
        key = (self._db, entry_id)
        with REGISTRY_LOCK:
            RUNNING.add(key)
        log.info("%s #%d started: %d item(s)", action, entry_id, len(items))

        done: list[str] = []
        companions: list[str] = []
        failed: list[tuple[str, str]] = []
        moved: list[tuple[str, str]] = []
        companions_moved: list[tuple[str, str]] = []
        notes: list[str] = []
        gone: list[tuple[str, str | None]] = []
        flight = Flight()
        pending_batch = 0
        cancelled = False

        def undo_group(first: int, n: int, why: str) -> None:
            """Put back what was done to items[first:n] (one group): `items[n]` failed."""
            for k in range(n - 1, first - 1, -1):
                member = items[k]
                if member["status"] != "done":
                    continue
                try:
                    self._rollback_member(
                        action, str(extra.get("mode", action)), member, item_tag(entry_id, f"r{k}")
                    )
                except (ItemError, OSError) as exc:
                    log.error(
                        "%s #%d: %s could not be put back (%s); its group is split",
                        action,
                        entry_id,
                        member["src"],
                        short_reason(exc),
                    )
                    notes.append(
                        f"{member['src']} could not be put back ({short_reason(exc)}): "
                        f"it is apart from {os.path.basename(items[n]['src'])}"
                    )
                    continue
                member["status"], member["reason"] = "failed", why
                member.pop("info", None)
                for bucket in (done, companions):
                    if member["src"] in bucket:
                        bucket.remove(member["src"])
                for pairs in (moved, companions_moved):
                    pairs[:] = [p for p in pairs if p[0] != member["src"]]
                gone[:] = [g for g in gone if g[0] != member["src"]]
                failed.append((member["src"], why))

        try:
            if prepare is not None:
                prepare(entry_id, payload)
            for n, it in enumerate(items):
                yield Progress(action, n, len(items), it["src"])
                first = it.get("group", n)
                if first == n and cancel is not None and cancel.cancelled:
                    cancelled = True
                    for rest in items[n:]:
                        rest["status"], rest["reason"] = "skipped", "cancelled"
                    break
                photo = items[first]
                if first != n and photo["status"] != "done":
                    # Never split a group: the photo did not go, so its companions stay.
                    it["status"] = "skipped"
                    it["reason"] = f"stays with {os.path.basename(photo['src'])}"
                elif first != n and not os.path.lexists(it["src"]):
                    it["status"], it["reason"] = "skipped", "no longer there"
                    notes.append(f"{it['src']} was gone; {photo['src']} went without it")
                else:
                    if forget:
                        flight.add(it["src"])  # before the file moves: see `in_flight`
                    try:
                        note = act(it, item_tag(entry_id, n))
                    except (ItemError, OSError) as exc:
                        reason = str(exc) if isinstance(exc, ItemError) else short_reason(exc)
                        it["status"], it["reason"] = "failed", reason
                        failed.append((it["src"], reason))
                        if first != n:
                            undo_group(
                                first,
                                n,
                                f"put back: {os.path.basename(it['src'])}, which goes with "
                                f"it, could not be done ({reason})",
                            )
                    else:
                        it["status"] = "done"
                        (companions if first != n else done).append(it["src"])
                        if forget:
                            gone.append((it["src"], it.get("dest")))
                        if it.get("dest"):
                            (companions_moved if first != n else moved).append(
                                (it["src"], it["dest"])
                            )
                        if note:
                            notes.append(note)
                if it["status"] == "failed":
                    log.warning("%s #%d: %s: %s", action, entry_id, it["src"], it["reason"])
                pending_batch += 1
                group_ends = n + 1 == len(items) or items[n + 1].get("group") != first
                if group_ends and pending_batch >= self._batch_size(len(items)):
                    self._save(entry_id, payload, gone)
                    flight.clear()
                    gone, pending_batch = [], 0
            payload["status"] = "cancelled" if cancelled else "done"
        finally:
            # Also on an unexpected error: record what did happen before it. The
            # entry then stays "pending", and the next operation settles it.
            try:
                self._save(entry_id, payload, gone)
            finally:
                flight.clear()
                with REGISTRY_LOCK:
                    RUNNING.discard(key)
        log.info(
            "%s #%d %s: %d done, %d failed",
            action,
            entry_id,
            payload["status"],
            len(done),
            len(failed),
        )
        reached = sum(1 for it in items if it.get("reason") != "cancelled")
        yield Progress(action, reached, len(items))
        return OpResult(
            entry_id, done, failed, moved, notes, cancelled, companions, companions_moved
        )

    def _rollback_member(self, action: str, mode: str, it: dict[str, Any], tag: str) -> None:
        """Undo one done item of a group that could not go whole (see `_run_job`)."""
        if action == "trash":
            self._undo_one("trash", it, tag)
        elif action == "move" or mode == "move":
            self._undo_one("move", it, tag)
        else:
            self._remove_created(it, mode)

    def _trash_one(self, it: dict[str, Any], tag: str) -> str | None:
        src: str = it["src"]
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            raise ItemError("no such file") from None
        if stat.S_ISDIR(st.st_mode):
            raise ItemError("is a folder (only files are handled)")
        ident = Identity(st.st_dev, st.st_ino, st.st_size)
        dirs = trash_dirs(src) if freedesktop() else []
        try:
            trash.send_to_trash(src)
        except OSError:
            if dirs and os.path.lexists(src):
                drop_orphan_info(src, dirs)
            raise
        if os.path.lexists(src):
            # Some trash implementations "succeed" without moving anything.
            raise ItemError("the system trash reported success, but the file is still there")
        if not dirs:
            return None  # macOS / Windows: trashed, location not exposed
        found = find_in_trash(src, ident, dirs)
        if found is None:
            # Gone from its folder and handed to the trash, but not where the
            # freedesktop spec says: it cannot be restored from here.
            return f"{src}: trashed, but not found in the trash folder; undo is not possible"
        it["dest"], it["info"] = found
        return None

    def _move_one(self, it: dict[str, Any], tag: str) -> str | None:
        src: str = it["src"]
        dest_dir = os.path.dirname(it["dest"])
        if not os.path.lexists(src):
            raise ItemError("no such file")
        if os.path.samefile(os.path.dirname(src), dest_dir):
            raise ItemError("already in that folder")
        final = placing.place(src, dest_dir, os.path.basename(it["dest"]), tag)
        st = os.lstat(final)
        # What undo checks before moving it back: the same file, unchanged.
        it["dest"], it["ident"] = final, [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        if os.path.basename(final) != os.path.basename(src):
            return f"{os.path.basename(src)} was taken in {dest_dir}; moved as {final}"
        return None

    def _undo_one(self, action: str, it: dict[str, Any], tag: str) -> tuple[str, str]:
        """Put one item back; return (where it was, where it is now)."""
        back = self._put_back(action, it, tag)
        if action == "trash" and it.get("info"):
            # Trash metadata, not a user file; a leftover only shows as a broken entry
            # (also after an undo killed between putting the file back and this).
            with contextlib.suppress(OSError):
                os.unlink(it["info"])
        return back

    def _put_back(self, action: str, it: dict[str, Any], tag: str) -> tuple[str, str]:
        src: str = it["src"]
        current: str | None = it.get("dest")
        if not current:
            raise ItemError("restore it from the system trash (its place there is not known)")
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            # A trashed file keeps its source identity (a rename), and so does one
            # put back (a link): the identity recorded before the operation tells.
            back = it.get("ident") or (it.get("src_ident") or [])[:4]
            with contextlib.suppress(OSError):
                now = os.lstat(src)
                if back and [now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns] == back:
                    return current, src  # put back by an undo that was interrupted
            where = "the trash (emptied?)" if action == "trash" else current
            raise ItemError(f"no longer in {where}") from None
        except OSError as exc:
            raise ItemError(short_reason(exc), retry=True) from exc
        ident = it.get("ident")
        # The inode alone is not enough: a file deleted and another created under
        # the same name often gets the freed inode number.
        if ident is not None and [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns] != ident:
            raise ItemError(f"{current} was replaced or changed since the move; left where it is")
        parent = os.path.dirname(src)
        with contextlib.suppress(OSError):
            if os.path.samestat(os.lstat(src), st):
                # An earlier undo was interrupted after linking the file back and
                # before removing the other name: finish it (drop that second name).
                os.unlink(current)
                return current, src
        try:
            os.makedirs(parent, exist_ok=True)  # its folder may be gone since
            restored = placing.place(current, parent, os.path.basename(src), tag)
        except ItemError:
            raise
        except OSError as exc:
            raise ItemError(short_reason(exc), retry=True) from exc
        return current, restored

    # ---- export --------------------------------------------------------------

    def _export_one(self, it: dict[str, Any], mode: str, tag: str) -> str | None:
        src: str = it["src"]
        dest_dir, name = os.path.split(it["dest"])
        try:
            st = os.stat(src)
        except FileNotFoundError:
            raise ItemError("no such file") from None
        if stat.S_ISDIR(st.st_mode):
            raise ItemError("is a folder (only files are handled)")
        os.makedirs(dest_dir, exist_ok=True)
        if mode == "move":
            final = placing.place(src, dest_dir, name, tag)
        elif mode == "copy":
            final = copy_exclusive(src, dest_dir, name, tag)
        elif mode == "hardlink":
            final = create_exclusive(dest_dir, name, lambda cand: os.link(src, cand))
        else:
            # An absolute target: the link keeps working wherever DEST is viewed from.
            it["target"] = src
            final = create_exclusive(dest_dir, name, lambda cand: os.symlink(src, cand))
        st = os.lstat(final)
        # What undo checks before removing (or moving back) the entry: unchanged since.
        it["dest"], it["ident"] = final, [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        if os.path.basename(final) != name:
            return f"{name} was taken in {dest_dir}; written as {os.path.basename(final)}"
        return None

    def _undo_created(self, entry_id: int, payload: dict[str, Any]) -> OpResult:
        """Undo an export by copy, hard link or symlink: remove what it created, if unchanged.

        A copy goes to the system trash (it is a user-visible file with its own
        data); a link is unlinked, as the original keeps the data, unless the
        original is gone meanwhile, which makes the link the last name of the
        data: then it goes to the trash too. Anything changed since is left.
        Items whose state the disk did not tell (`_settle`) are reported and
        keep the entry open.
        """
        mode = str(payload.get("mode"))
        items: list[dict[str, Any]] = payload.get("items", [])
        # A resumed undo: a kill inside Send2Trash may have left its .trashinfo alone.
        resumed = "undo" in payload
        payload["undo"] = {"status": "pending", "started_at": now().isoformat()}
        self._save(entry_id, payload, [])
        done: list[str] = []
        companions: list[str] = []
        failed: list[tuple[str, str]] = []
        notes: list[str] = []
        retry = False
        finished = False
        try:
            for it in items:
                if it.get("status") in ("pending", "unknown"):
                    failed.append((it["src"], str(it.get("reason") or "interrupted")))
                    retry = True
                    continue
                if it.get("status") != "done" or (it.get("undo") or {}).get("status") == "done":
                    continue
                try:
                    note = self._remove_created(it, mode, resumed=resumed)
                except ItemError as exc:
                    it["undo"] = {"status": "failed", "reason": str(exc), "retry": exc.retry}
                    failed.append((it["dest"], str(exc)))
                    retry = retry or exc.retry
                except OSError as exc:
                    it["undo"] = {"status": "failed", "reason": short_reason(exc), "retry": True}
                    failed.append((it["dest"], short_reason(exc)))
                    retry = True
                else:
                    it["undo"] = {"status": "done"}
                    (companions if "group" in it else done).append(it["dest"])
                    if note:
                        notes.append(note)
            finished = True
        finally:
            closed = finished and not retry
            payload["undo"]["status"] = "done" if closed else "partial"
            self._save(entry_id, payload, [], undone=closed)
        _remove_empty_dirs(payload.get("new_dirs", []))
        return OpResult(entry_id, done, failed, [], notes, companions=companions)

    @staticmethod
    def _remove_created(it: dict[str, Any], mode: str, *, resumed: bool = False) -> str | None:
        dest: str = it["dest"]
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            return f"{dest} was already gone"
        if mode == "symlink":
            if not stat.S_ISLNK(st.st_mode) or os.readlink(dest) != it.get("target"):
                raise ItemError(f"{dest} was changed since the export; left where it is")
            os.unlink(dest)  # a link only: the photo stays at its source
            return None
        ident = it.get("ident")
        if [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns] != ident:
            raise ItemError(f"{dest} was replaced or changed since the export; left where it is")
        if mode == "hardlink":
            try:
                # A hard link of a symlinked source is one of the link (Linux) or
                # of its target (where link() follows symlinks).
                src = it["src"]
                same = os.path.samestat(os.lstat(src), st) or os.path.samestat(os.stat(src), st)
            except OSError:
                same = False
            if same:
                os.unlink(dest)  # another name of a file that stays at its source
                return None
        if resumed and freedesktop():
            drop_orphan_info(dest, trash_dirs(dest))
        trash.send_to_trash(dest)
        if os.path.lexists(dest):
            raise ItemError("the system trash reported success, but the file is still there")
        return None

    # ---- checks --------------------------------------------------------------

    @staticmethod
    def _sources(paths: Sequence[str]) -> list[str]:
        if isinstance(paths, str):
            raise TypeError("paths must be a sequence of paths, not one string")
        out: list[str] = []
        seen: set[str] = set()
        for p in paths:
            path = os.path.abspath(os.fspath(p))
            if path not in seen:
                seen.add(path)
                out.append(path)
        if not out:
            raise FileOpError("no files given")
        return out

    def _refuse_reference(
        self, paths: Iterable[str], verb: str, *, containing: bool = True
    ) -> None:
        """Raise ReferenceFolderError if a path is in (or a symlink into) a reference folder.

        `containing`: also refuse a path that contains one (a source could be a
        folder); off for a destination folder, which may well hold one.
        """
        with self._sessions() as session:
            refs = [
                f.path for f in session.scalars(select(Folder).where(Folder.is_reference.is_(True)))
            ]
        if not refs:
            return
        for path in paths:
            for form in _real_forms(path):
                for ref in refs:
                    if _inside(form, ref) or (containing and _inside(ref, form)):
                        raise ReferenceFolderError(
                            f"cannot {verb} {path}: {ref} is a reference folder, "
                            "which DINO Desktop never changes"
                        )
