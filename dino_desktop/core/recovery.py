"""Recovery from the disk: settling the journal entries a crash or a kill left open.

Items are journaled in batches, so a crash or a kill between two saves leaves
items "pending" that were done. Every operation (and undo) first settles such
entries (`Recovery.recover`): each pending item is looked for at its planned
name and its collision names, recognised by content (a byte-equal copy, the
source's inode, a symlink to the source), never confused with what was there
before (journaled as `taken`); the entry then says "interrupted", each item
"done", "skipped" or "unknown" (kept open for the user to check). Temporary
copies named after the entry (".dino-<entry>-<item>-*.partial") are removed.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import logging
import os
import re
import stat
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from dino_desktop.core import trash
from dino_desktop.core.db import JournalRow
from dino_desktop.core.journal import REGISTRY_LOCK, RUNNING, JournalStore
from dino_desktop.core.placing import (
    ItemError,
    collision_names,
    find_partials,
    item_tag,
    partial_prefix,
    short_reason,
)
from dino_desktop.core.trash import (
    Identity,
    drop_orphan_info,
    find_in_trash,
    freedesktop,
    trash_dirs,
)

log = logging.getLogger(__name__)

# The start of a payload as `journal.dump_payload` writes it: the computer that made
# it (a shared library's), the entry's status, then its undo's.
_HEAD = re.compile(
    r'\{(?:"client": "([^"]*)", )?"version": \d+, "status": "(\w+)"'
    r'(?:, "undo": \{"status": "(\w+)")?'
)


def _is_taken(st: os.stat_result, taken: list[list[int]], src_ino: int | None) -> bool:
    for dev, ino, ctime_ns in taken:
        if (st.st_dev, st.st_ino) == (dev, ino):
            # A changed ctime means a reused inode number (a new file), except for a
            # second name of the source: linking it again changes that inode's ctime.
            return st.st_ctime_ns == ctime_ns or st.st_ino == src_ino
    return False


class Recovery(JournalStore):
    """Settles interrupted journal entries from the disk; the base of `FileOps`.

    Callers hold the library's write lock (core/lock.py), so an unfinished entry
    not running in this process is one that was interrupted.
    """

    def recover(self) -> None:
        """Settle every entry that a crash or a kill left unfinished (`_settle`).

        Run by each operation before it starts (under the library's write lock);
        cheap when nothing was interrupted: one query over the open entries'
        first characters.
        """
        for entry_id in self._interrupted():
            self._settle(entry_id)

    def mine(self, client: str | None) -> bool:
        """Whether an entry marked `client` is this computer's to recover or undo
        (unmarked entries: a SQLite library's, or made before entries were marked)."""
        return client is None or self.client is None or client == self.client

    @staticmethod
    def client_of(head: str) -> str | None:
        """The computer a payload (its first characters) marks, if any."""
        m = _HEAD.match(head)
        return m.group(1) if m else None

    def _interrupted(self) -> list[int]:
        """Entries whose operation or undo was left "pending" and does not run here."""
        with self._sessions() as session:
            heads = session.execute(
                select(JournalRow.id, func.substr(JournalRow.payload, 1, 120)).where(
                    JournalRow.undone_at.is_(None)
                )
            ).all()
        out: list[int] = []
        for entry_id, head in heads:
            m = _HEAD.match(head or "")
            if m is None or "pending" not in (m.group(2), m.group(3)):
                continue
            if not self.mine(m.group(1)):
                continue  # another computer's: it may be running there now
            with REGISTRY_LOCK:
                if (self._db, entry_id) in RUNNING:
                    continue
            out.append(entry_id)
        return out

    def _settle(self, entry_id: int) -> None:
        """Make an interrupted entry's journal say what happened, from the disk.

        Items are journaled in batches (`_batch_size`), so a kill leaves up to a
        batch of items done but still "pending". Each is looked for where it
        could have gone: the planned destination and its collision names, in
        order, up to the first free name (creation is exclusive, so what we
        created is at the first name that was free), skipping what occupied
        those names before the operation (`taken`) and what another item
        claimed. A file is ours by content: a copy equal byte for byte to its
        source, a hard link with the source's inode, a symlink to the source, a
        moved file with the source's identity; a trashed file is found in the
        trash by its inode. Found: the item is "done" (with `recovered`), and a
        moved photo's row follows it. Not begun: "skipped". Half done (the
        source still there and a second name or a copy of it at the
        destination): that extra is removed (a link unlinked, a copy trashed
        after a byte comparison) and the item is "skipped". Anything else is
        "unknown", with what to check, and keeps the entry open for undo. Our
        temporary copies (".dino-<entry>-*.partial") are removed. The entry's
        status becomes "interrupted" (an interrupted undo's: "interrupted" too;
        the next undo goes on where it stopped).
        """
        with self._sessions() as session:
            row = session.get(JournalRow, entry_id)
            if row is None:
                return
            action = row.action
            try:
                payload: dict[str, Any] = json.loads(row.payload)
            except ValueError:
                return
        items: list[dict[str, Any]] = payload.get("items", [])
        mode = "move" if action == "move" else str(payload.get("mode", action))
        folders = {os.path.dirname(it["dest"]) for it in items if it.get("dest")}
        folders |= {os.path.dirname(it["src"]) for it in items}  # an undo copies back there
        prefix = f".dino-{entry_id}-"
        partials = {f: find_partials(f, prefix) for f in sorted(folders)}
        gone: list[tuple[str, str | None]] = []
        counts: dict[str, int] = {}
        if payload.get("status") == "pending":
            claimed = {it["dest"] for it in items if it.get("status") == "done" and it.get("dest")}
            for n, it in enumerate(items):
                if it.get("status") != "pending":
                    continue
                tmps = [
                    p
                    for p in partials.get(os.path.dirname(it.get("dest") or ""), [])
                    if os.path.basename(p).startswith(partial_prefix(item_tag(entry_id, n)))
                ]
                try:
                    if action == "trash":
                        self._settle_trash(it, gone)
                    elif mode == "move":
                        self._settle_move(it, claimed, tmps, gone)
                    else:
                        self._settle_created(it, mode, claimed, tmps)
                except (OSError, ItemError) as exc:
                    # Stays pending: the next operation tries again.
                    it["reason"] = f"interrupted; {short_reason(exc)}"
                counts[it["status"]] = counts.get(it["status"], 0) + 1
            payload["status"] = "interrupted"
        if (payload.get("undo") or {}).get("status") == "pending":
            payload["undo"]["status"] = "interrupted"
            for n, it in enumerate(items):
                # An undo copying a file back across devices, killed between its
                # placeholder and the rename, left the placeholder at the source.
                utag = partial_prefix(item_tag(entry_id, f"u{n}"))
                tmps = [
                    p
                    for p in partials.get(os.path.dirname(it["src"]), [])
                    if os.path.basename(p).startswith(utag)
                ]
                if tmps:
                    with contextlib.suppress(OSError):
                        self._drop_placeholder(it["src"], tmps)
        for paths in partials.values():
            for p in paths:
                with contextlib.suppress(OSError):
                    os.unlink(p)  # our own unfinished temporary copy
        if payload.get("merges"):  # a duplicate removal's sidecar merges (core/dedupe.py)
            from dino_desktop.core.dedupe import settle_merges

            settle_merges(payload)
        self._rejoin_groups(entry_id, action, mode, items, gone)
        self._save(entry_id, payload, gone)
        log.warning(
            "recovered interrupted %s #%d: %s; %d temporary file(s) removed",
            action,
            entry_id,
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "its undo",
            sum(len(p) for p in partials.values()),
        )

    def _rejoin_groups(
        self,
        entry_id: int,
        action: str,
        mode: str,
        items: list[dict[str, Any]],
        gone: list[tuple[str, str | None]],
    ) -> None:
        """Put back the done files of each photo item that the interruption split
        (some files done, others not begun), so a group is never left apart."""
        groups: dict[int, list[int]] = {}
        for n, it in enumerate(items):
            groups.setdefault(it.get("group", n), []).append(n)
        for members in groups.values():
            states = [items[k] for k in members]
            split = any(it["status"] == "done" for it in states) and any(
                it["status"] == "skipped" and str(it.get("reason", "")).startswith("interrupted")
                for it in states
            )
            if not split:
                continue
            for k in members:
                it = items[k]
                if it["status"] != "done":
                    continue
                current = it.get("dest")
                try:
                    self._rollback_member(action, mode, it, item_tag(entry_id, f"r{k}"))
                except (ItemError, OSError) as exc:
                    log.error(
                        "recovery of #%d: %s could not be put back with its group (%s)",
                        entry_id,
                        it["src"],
                        short_reason(exc),
                    )
                    continue
                it["status"], it["reason"] = "skipped", "interrupted; put back with its group"
                it.pop("recovered", None)
                if any(g[0] == it["src"] for g in gone):
                    gone[:] = [g for g in gone if g[0] != it["src"]]
                elif current and (action == "move" or mode == "move"):
                    gone.append((current, it["src"]))  # its row followed it: it comes back

    def _rollback_member(self, action: str, mode: str, it: dict[str, Any], tag: str) -> None:
        """Undo one done item (FileOps implements it)."""
        raise NotImplementedError

    @staticmethod
    def _not_begun(it: dict[str, Any], unexplained: list[str]) -> None:
        if unexplained:
            it["status"] = "unknown"
            it["reason"] = (
                f"interrupted; {', '.join(unexplained)} may have been written for "
                f"{it['src']}: check it"
            )
        else:
            it["status"], it["reason"] = "skipped", "interrupted before it"

    @staticmethod
    def _settle_trash(it: dict[str, Any], gone: list[tuple[str, str | None]]) -> None:
        src: str = it["src"]
        ident = it.get("src_ident")
        dirs = trash_dirs(src) if freedesktop() else []
        if os.path.lexists(src):
            if dirs:
                if ident:
                    Recovery._drop_second_name(src, Identity(ident[0], ident[1], ident[2]), dirs)
                drop_orphan_info(src, dirs)  # Send2Trash writes it before its rename
            it["status"], it["reason"] = "skipped", "interrupted before it"
            return
        if not ident:
            it["status"], it["reason"] = "failed", "no such file"
            return
        found = find_in_trash(src, Identity(ident[0], ident[1], ident[2]), dirs) if dirs else None
        if found is None:
            it["status"] = "unknown"
            it["reason"] = f"interrupted; {src} is not in its folder: see the system trash"
            return
        it["dest"], it["info"] = found
        it["status"], it["recovered"] = "done", True
        gone.append((src, None))

    @staticmethod
    def _drop_second_name(src: str, ident: Identity, dirs: list[trash.TrashDir]) -> None:
        """Remove the trash's name of a file that is back at `src` as well: a putting
        back (an undo, or `_rejoin_groups`) killed between linking the file back and
        removing it from the trash. Send2Trash renames, so only that leaves one inode
        under both names; the file's data stays at `src`."""
        found = find_in_trash(src, ident, dirs)
        if found is None:
            return
        with contextlib.suppress(OSError):
            if os.path.samestat(os.lstat(src), os.lstat(found[0])):
                os.unlink(found[0])  # a second name of the file at src: no data lost
                os.unlink(found[1])  # its .trashinfo

    @staticmethod
    def _find_created(
        it: dict[str, Any], claimed: set[str], ours: Callable[[str, os.stat_result], bool]
    ) -> tuple[tuple[str, os.stat_result] | None, list[str]]:
        """Where the item's file was created: (path, its lstat), or None; and the names
        in the way that are neither ours nor there before (`_settle`)."""
        folder, base = os.path.split(it["dest"])
        ident = it.get("src_ident")
        src_ino = ident[1] if ident else None
        taken: list[list[int]] = it.get("taken", [])
        unexplained: list[str] = []
        for name in collision_names(base):
            cand = os.path.join(folder, name)
            try:
                st = os.lstat(cand)
            except (FileNotFoundError, NotADirectoryError):
                break  # the first free name: nothing was created past it
            if cand in claimed or _is_taken(st, taken, src_ino):
                continue
            if ours(cand, st):
                claimed.add(cand)
                return (cand, st), unexplained
            unexplained.append(cand)
        return None, unexplained

    @staticmethod
    def _drop_placeholder(path: str, tmps: list[str]) -> None:
        """Remove the empty O_EXCL placeholder of `_link_or_reserve`, if a kill left it.

        It exists only while our temporary copy does (the rename replaces it), at
        the first name of `path`'s collision names that was free, and it is newer
        than that copy: an empty file older than it, or holding its data, is not it.
        """
        stamps = []
        linked = set()
        for p in tmps:
            with contextlib.suppress(OSError):
                tst = os.lstat(p)
                stamps.append(tst.st_ctime_ns)
                linked.add((tst.st_dev, tst.st_ino))
        if not stamps:
            return
        folder, base = os.path.split(path)
        for name in collision_names(base):
            cand = os.path.join(folder, name)
            try:
                st = os.lstat(cand)
            except OSError:
                return
            if (
                stat.S_ISREG(st.st_mode)
                and st.st_size == 0
                and st.st_ctime_ns >= min(stamps)
                and (st.st_dev, st.st_ino) not in linked
            ):
                os.unlink(cand)  # our own empty placeholder: no data
                return

    def _settle_created(
        self, it: dict[str, Any], mode: str, claimed: set[str], tmps: list[str]
    ) -> None:
        src: str = it["src"]
        ident = it.get("src_ident")
        if not ident:
            it["status"], it["reason"] = "failed", "no such file"
            return
        dev, ino = ident[0], ident[1]
        # A hard link of a symlinked source is one of the link itself (Linux link()) or
        # of its target (where link() follows symlinks).
        inodes = {(dev, ino)}
        with contextlib.suppress(OSError):
            tst = os.stat(src)
            inodes.add((tst.st_dev, tst.st_ino))
        tmp_inodes = set()
        for p in tmps:
            with contextlib.suppress(OSError):
                tst = os.lstat(p)
                tmp_inodes.add((tst.st_dev, tst.st_ino))

        def ours(cand: str, st: os.stat_result) -> bool:
            if mode == "symlink":
                return stat.S_ISLNK(st.st_mode) and os.readlink(cand) == src
            if mode == "hardlink":
                return (st.st_dev, st.st_ino) in inodes
            if not stat.S_ISREG(st.st_mode):
                return False
            if (st.st_dev, st.st_ino) in tmp_inodes:
                return True  # linked into place from our temporary copy
            if (st.st_dev, st.st_ino) == (dev, ino):
                return False  # the source itself (or a link to it) is no copy
            try:
                return st.st_size == os.stat(src).st_size and filecmp.cmp(src, cand, shallow=False)
            except OSError:
                return False

        if mode == "copy":
            self._drop_placeholder(it["dest"], tmps)
        hit, unexplained = self._find_created(it, claimed, ours)
        if hit is None:
            self._not_begun(it, unexplained)
            return
        path, st = hit
        it["dest"], it["ident"] = path, [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        if mode == "symlink":
            it["target"] = src
        it["status"], it["recovered"] = "done", True

    def _settle_move(
        self,
        it: dict[str, Any],
        claimed: set[str],
        tmps: list[str],
        gone: list[tuple[str, str | None]],
    ) -> None:
        src: str = it["src"]
        ident = it.get("src_ident")
        at_src = os.path.lexists(src)
        if not ident:
            if at_src:
                it["status"], it["reason"] = "skipped", "interrupted before it"
            else:
                it["status"], it["reason"] = "failed", "no such file"
            return
        dev, ino, size, mtime_ns, link = ident

        def ours(cand: str, st: os.stat_result) -> bool:
            if link is not None:
                return stat.S_ISLNK(st.st_mode) and os.readlink(cand) == link
            if not stat.S_ISREG(st.st_mode):
                return False
            if (st.st_dev, st.st_ino) == (dev, ino):
                return True  # linked: the very file
            # Copied across devices (the copy keeps size and mtime); while the source
            # is still there, only a byte-identical copy is ours.
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return False
            return not at_src or filecmp.cmp(src, cand, shallow=False)

        self._drop_placeholder(it["dest"], tmps)
        hit, unexplained = self._find_created(it, claimed, ours)
        if hit is None:
            if at_src:
                self._not_begun(it, unexplained)
            else:
                folder = os.path.dirname(it["dest"])
                it["status"] = "unknown"
                it["reason"] = f"interrupted; {src} is not in its folder nor in {folder}"
            return
        path, st = hit
        if at_src:
            # Half done: the file is still at its source, and this is a second name of
            # it (or our finished copy). Removing the extra loses nothing.
            if link is not None or os.path.samestat(os.lstat(src), st):
                os.unlink(path)
            else:
                trash.send_to_trash(path)
            claimed.discard(path)
            it["status"], it["reason"] = "skipped", "interrupted before it was moved"
            return
        it["dest"], it["ident"] = path, [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        it["status"], it["recovered"] = "done", True
        gone.append((src, path))
