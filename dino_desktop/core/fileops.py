"""Journaled, undoable changes to the user's files: trash, move and export.

Every change that DINO Desktop makes to a user's files goes through `FileOps`
(DESIGN.md §2). The rules it keeps:

* **Journal first.** An entry (`JournalRow`) listing every item with its source
  (and its identity) and planned destination is committed *before* any file is
  touched, then updated item by item (in batches) as the work proceeds.
* **Recovery from the disk.** A crash or a kill between two saves leaves items
  "pending" that were done. Every operation (and undo) first settles such
  entries (`FileOps.recover`): each pending item is looked for at its planned
  name and its collision names, recognised by content (a byte-equal copy, the
  source's inode, a symlink to the source), never confused with what was there
  before (journaled as `taken`); the entry then says "interrupted", each item
  "done", "skipped" or "unknown" (kept open for the user to check). Temporary
  copies are named after their entry (".dino-<entry>-<item>-*.partial") and
  removed then. Undo removes exactly what the operation created.
* **Never overwrite.** Destinations are created exclusively (a hard link, a
  symlink or an ``O_EXCL`` placeholder), trying "a.jpg", "a (1).jpg",
  "a (2).jpg", … A move is "link, then unlink the source", or for another
  device "copy to a hidden temporary name, fsync, link into place, unlink the
  source", so a crash leaves the file at its source, its destination or both,
  never nowhere.
* **Never touch a reference folder**: a path in (or a symlink into) a folder
  marked ``is_reference`` is refused before anything happens, and so is a move
  into one.
* **Deletion is the system trash** (Send2Trash), never unlink. A "trashed" item
  is checked: the source must be gone and the trashed file must be found.
* **Undoable.** `FileOps.undo` puts files back where they were (next to it,
  under a collision-safe name, when the old name is taken meanwhile).
* **Export** (auto-folders) writes a plan of (source, destination) by copy, hard
  link, symlink or move. Undo of a move moves the files back; undo of a copy or
  link removes what it created only if it is unchanged since (same inode, size
  and mtime; a symlink still pointing at its source): copies go to the system
  trash, links are unlinked (the original keeps the data). Folders the export
  created are removed again when empty.

Undoing a trash needs to know where the system trash put the file. On Linux and
other freedesktop.org systems the trash is a documented folder structure
(``<trash>/files`` and ``<trash>/info/*.trashinfo``) and the file is found and
restored. On macOS and Windows the trash still works, but its location is not
exposed, so undo of a trash there answers "restore it from the system trash".
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import Folder, ImageRow, JournalRow
from dino_desktop.core.progress import CancelToken, Job, Progress, drive
from dino_desktop.core.records import (
    EXPORT_MODES,
    FileOpError,
    OpResult,
    ReferenceFolderError,
)

log = logging.getLogger(__name__)

PAYLOAD_VERSION = 2
# How many names "a (1).jpg" … to try before giving up on a destination.
MAX_COLLISION_NAMES = 10_000


class _ItemError(Exception):
    """One item cannot be done; the others go on. `retry`: worth trying again later."""

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry


def _reason(exc: BaseException) -> str:
    """A short reason for the user, without Python's exception decoration."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


# ---- exclusive placement -------------------------------------------------------


def collision_names(name: str) -> Iterable[str]:
    """The names tried for a destination, in order: "a.jpg", "a (1).jpg", …"""
    yield name
    stem, ext = os.path.splitext(name)
    for n in range(1, MAX_COLLISION_NAMES):
        yield f"{stem} ({n}){ext}"


def _create_exclusive(dest_dir: str, name: str, make: Callable[[str], None]) -> str:
    """Call `make(candidate)` on free names until one succeeds; return the path used.

    `make` must fail with FileExistsError when the name is taken (link, symlink
    and O_EXCL all do), so checking and creating are one atomic step and a file
    appearing meanwhile is never overwritten.
    """
    for candidate in collision_names(name):
        path = os.path.join(dest_dir, candidate)
        try:
            make(path)
        except FileExistsError:
            continue
        return path
    raise _ItemError(f"no free name for {name} in {dest_dir}")


def _fsync_dir(path: str) -> None:
    # A new directory entry is durable only once the directory is synced (POSIX);
    # Windows cannot open directories, and its rename is durable enough there.
    if os.name != "posix":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _link_or_reserve(tmp: str, target: str) -> None:
    """Put our finished temporary file at `target`, failing if `target` exists."""
    try:
        os.link(tmp, target)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # no hard links here (FAT, some network shares): reserve the name instead
    # O_EXCL reserves the name atomically; replacing our own empty placeholder
    # then overwrites nothing that belongs to anyone else.
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        os.replace(tmp, target)
    except OSError:
        os.unlink(target)  # our own empty placeholder
        raise


def _partial_prefix(tag: str) -> str:
    """The start of the hidden temporary names of one journal entry's item (see `_tag`)."""
    return f".dino-{tag}-"


def _tag(entry_id: int, item: int | str) -> str:
    """Names an item's temporary copies after its journal entry, so recovery knows whose
    they are ("12-3": entry 12, item 3; "12-u3": the undo of that item)."""
    return f"{entry_id}-{item}"


def _copy_exclusive(src: str, dest_dir: str, name: str, tag: str = "x") -> str:
    """Copy `src` into `dest_dir` under a free name, durably; return the new path.

    The temporary copy is named ".dino-<tag>-*.partial" (`_tag`): a crash leaves it
    to the recovery of that journal entry, which removes it.
    """
    fd, tmp = tempfile.mkstemp(prefix=_partial_prefix(tag), suffix=".partial", dir=dest_dir)
    os.close(fd)
    try:
        # Copy under a hidden temporary name first: a crash mid-copy then leaves
        # no half file under a real name.
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)  # a move keeps the modification time and mode
        with open(tmp, "rb+") as out:
            os.fsync(out.fileno())
        final = _create_exclusive(dest_dir, name, lambda cand: _link_or_reserve(tmp, cand))
    finally:
        # Our own temporary copy (linked into place by now, or incomplete).
        if os.path.lexists(tmp):
            os.unlink(tmp)
    _fsync_dir(dest_dir)
    return final


def _place(src: str, dest_dir: str, name: str, tag: str = "x") -> str:
    """Move the file `src` to `dest_dir`/`name` (or a collision-safe variant).

    Returns the path it now has. Never overwrites; on failure the file is still
    at `src` (raises OSError or `_ItemError`).
    """
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        raise _ItemError("is a folder (only files are handled)")
    if stat.S_ISLNK(st.st_mode):
        # Recreate the link itself (not its target); symlink() is exclusive.
        target = os.readlink(src)
        final = _create_exclusive(dest_dir, name, lambda cand: os.symlink(target, cand))
    else:
        try:
            final = _create_exclusive(dest_dir, name, lambda cand: os.link(src, cand))
        except (FileNotFoundError, _ItemError):
            raise
        except OSError:
            # Another device, or no hard links on this file system: copy.
            final = _copy_exclusive(src, dest_dir, name, tag)
    try:
        os.unlink(src)  # the data now lives at `final`: this ends the move, it deletes nothing
    except OSError:
        # Undo our half: `final` is a second name for (or a copy of) a file that is
        # still at `src`, so removing it loses nothing.
        os.unlink(final)
        raise
    return final


# ---- the freedesktop.org trash -------------------------------------------------


def _freedesktop() -> bool:
    """Whether the system trash follows the freedesktop.org spec (Linux, BSD)."""
    return os.name == "posix" and sys.platform != "darwin"


def _xdg_data_home() -> str:
    # The basedir spec: an unset, empty or relative XDG_DATA_HOME means the default.
    value = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(value):
        value = os.path.join(os.path.expanduser("~"), ".local", "share")
    return value


_trash_lock = threading.Lock()


def _send_to_trash(path: str) -> None:
    """Hand one file to Send2Trash (tests replace this to simulate failures)."""
    if not _freedesktop():
        from send2trash import send2trash

        send2trash(path)
        return
    # Send2Trash's freedesktop implementation, not its gio one (chosen when
    # PyGObject is installed): gio caches the data dir for the process and names
    # files its own way, while this one we can point at the current home trash.
    from send2trash import plat_other

    with _trash_lock:
        # plat_other reads XDG_DATA_HOME once, at import: re-read it now so the
        # file goes where `_trash_dirs` looks (and a test's tmp dir is honoured).
        home = _xdg_data_home()
        home_b = os.fsencode(home)
        plat_other.XDG_DATA_HOME = home_b
        plat_other.HOMETRASH_B = os.path.join(home_b, b"Trash")
        plat_other.HOMETRASH = os.path.join(home, "Trash")
        plat_other.send2trash(path)


@dataclass(frozen=True, slots=True)
class _TrashDir:
    root: str  # holds files/ and info/
    topdir: str  # the base of relative Path= values


@dataclass(frozen=True, slots=True)
class _Identity:
    dev: int
    ino: int
    size: int


def _mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _trash_dirs(src: str) -> list[_TrashDir]:
    """The trash folders a file on `src`'s device can go to, most likely first.

    Send2Trash uses the home trash for files on the home directory's device, else
    the volume's ``.Trash/<uid>`` or ``.Trash-<uid>``, falling back to the home
    trash when it cannot rename there.
    """
    data_home = _xdg_data_home()
    home = _TrashDir(os.path.join(data_home, "Trash"), data_home)
    top = _mount_point(os.path.dirname(src))
    uid = str(os.getuid())
    volume = [
        _TrashDir(os.path.join(top, ".Trash", uid), top),
        _TrashDir(os.path.join(top, f".Trash-{uid}"), top),
    ]
    try:
        same = os.lstat(src).st_dev == os.stat(os.path.realpath(os.path.expanduser("~"))).st_dev
    except OSError:
        same = True
    return [home, *volume] if same else [*volume, home]


def _read_trashinfo(info_path: str, topdir: str) -> tuple[str, str] | None:
    """(original path, deletion date) from a .trashinfo file, None if unreadable."""
    try:
        with open(info_path, "rb") as f:
            text = f.read(1 << 16)
    except OSError:
        return None
    original: str | None = None
    deleted = ""
    for line in text.splitlines():
        if line.startswith(b"Path="):
            # Percent-encoded bytes: decode the way the OS names files (PEP 383).
            original = os.fsdecode(unquote_to_bytes(line[5:].strip()))
        elif line.startswith(b"DeletionDate="):
            deleted = line[13:].strip().decode("ascii", "replace")
    if original is None:
        return None
    if not os.path.isabs(original):
        original = os.path.join(topdir, original)
    return os.path.normpath(original), deleted


def _trash_candidates(src: str, dirs: list[_TrashDir]) -> Iterable[tuple[str, str, str]]:
    """(trashed file, its .trashinfo, topdir) for entries that may hold `src`."""
    # Trash names keep the start of the original name (Send2Trash: "a 1.jpg",
    # gio: "a.2.jpg"), so only those entries need their .trashinfo read.
    base = os.path.basename(src)
    prefix = base.split(".", 1)[0]
    for d in dirs:
        info_dir = os.path.join(d.root, "info")
        try:
            with os.scandir(info_dir) as entries:
                names = [
                    e.name
                    for e in entries
                    if e.name.endswith(".trashinfo") and e.name.startswith(prefix)
                ]
        except OSError:
            continue
        for name in names:
            trashed = os.path.join(d.root, "files", name[: -len(".trashinfo")])
            yield trashed, os.path.join(info_dir, name), d.topdir


def _find_in_trash(src: str, ident: _Identity, dirs: list[_TrashDir]) -> tuple[str, str] | None:
    """Where `src` went in the trash: (trashed file, .trashinfo), or None.

    The same inode on the same device is the file itself (a rename keeps it, and
    a live inode is never reused). Failing that (Send2Trash copied it across
    devices), the entry whose Path is `src`, with the right size, newest first.
    """
    best: tuple[tuple[str, int], str, str] | None = None
    for trashed, info, topdir in _trash_candidates(src, dirs):
        try:
            st = os.lstat(trashed)
        except OSError:
            continue
        if (st.st_dev, st.st_ino, st.st_size) == (ident.dev, ident.ino, ident.size):
            return trashed, info
        if st.st_size != ident.size:
            continue
        parsed = _read_trashinfo(info, topdir)
        if parsed is None or parsed[0] != src:
            continue
        try:
            info_mtime = os.stat(info).st_mtime_ns
        except OSError:
            info_mtime = 0
        key = (parsed[1], info_mtime)
        if best is None or key > best[0]:
            best = (key, trashed, info)
    return None if best is None else (best[1], best[2])


def _drop_orphan_info(src: str, dirs: list[_TrashDir]) -> None:
    """Remove a .trashinfo that Send2Trash wrote before its rename failed.

    It describes nothing (the file is still at `src`) and would show as a broken
    entry in the system trash.
    """
    for trashed, info, topdir in list(_trash_candidates(src, dirs)):
        if os.path.lexists(trashed):
            continue
        parsed = _read_trashinfo(info, topdir)
        if parsed is not None and parsed[0] == src:
            with contextlib.suppress(OSError):
                os.unlink(info)


# ---- paths and folders ---------------------------------------------------------


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.normcase(path), os.path.normcase(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _real_forms(path: str) -> set[str]:
    """The path as given, through its folder's real path, and fully resolved."""
    head, tail = os.path.split(path)
    return {path, os.path.join(os.path.realpath(head), tail), os.path.realpath(path)}


def _now() -> datetime:
    return datetime.now()


# ---- export ------------------------------------------------------------------

MAX_FOLDER_NAME = 100
# Names Windows reserves for devices, with or without an extension ("con.txt").
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}
# Separators, plus the characters Windows forbids in names (a library may be shared).
_FORBIDDEN = set('/\\:*?"<>|')


def sanitize_folder_name(name: str) -> str:
    """A folder name that is valid on Linux, macOS and Windows and stays where it is put.

    No separators or forbidden characters (→ "_"), no control characters, no ".."
    and no leading dot (a hidden or parent folder), no trailing dots or spaces
    (Windows drops them), reserved device names ("con", "com1") prefixed with
    "_", at most 100 characters; empty → "Unnamed".
    """
    out = "".join(
        "_" if ch in _FORBIDDEN else ch
        for ch in name
        if ord(ch) >= 32 and ord(ch) != 127 and not 0x80 <= ord(ch) < 0xA0
    )
    while ".." in out:
        out = out.replace("..", ".")
    out = out.strip(" .")
    out = out[:MAX_FOLDER_NAME].rstrip(" .")
    if out.split(".", 1)[0].rstrip(" ").casefold() in _RESERVED:
        out = "_" + out[: MAX_FOLDER_NAME - 1]
    return out or "Unnamed"


def plan_export(clusters: Iterable[tuple[str, Sequence[str]]], dest: str) -> list[tuple[str, str]]:
    """(source, destination) for every photo: one sanitised folder per cluster in `dest`.

    Folder names are made distinct (case-insensitively, for macOS and Windows);
    file names are made distinct within each folder and from what is already on
    disk, with " (1)" suffixes, so the plan is exactly what `FileOps.export`
    writes unless something else creates files there meanwhile.
    """
    dest = os.path.abspath(os.fspath(dest))
    plan: list[tuple[str, str]] = []
    folders: set[str] = set()
    for name, paths in clusters:
        folder = sanitize_folder_name(name)
        base, n = folder, 1
        while folder.casefold() in folders:
            n += 1
            folder = f"{base} ({n})"
        folders.add(folder.casefold())
        target = os.path.join(dest, folder)
        taken: set[str] = set()
        for src in paths:
            for candidate in collision_names(os.path.basename(src)):
                path = os.path.join(target, candidate)
                if os.path.lexists(path):
                    # Case-insensitively too: "A.jpg" is the same file as "a.jpg" on
                    # macOS and Windows, and the preview must hold there as well.
                    taken.add(candidate.casefold())
                elif candidate.casefold() not in taken:
                    break
            taken.add(candidate.casefold())
            plan.append((os.path.abspath(src), path))
    return plan


def _source_identity(path: str) -> list[Any] | None:
    """[dev, inode, size, mtime_ns, symlink target or None] of a path, None if missing."""
    try:
        st = os.lstat(path)
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, link]


def _taken(planned: str) -> list[list[int]]:
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


def _is_taken(st: os.stat_result, taken: list[list[int]], src_ino: int | None) -> bool:
    for dev, ino, ctime_ns in taken:
        if (st.st_dev, st.st_ino) == (dev, ino):
            # A changed ctime means a reused inode number (a new file), except for a
            # second name of the source: linking it again changes that inode's ctime.
            return st.st_ctime_ns == ctime_ns or st.st_ino == src_ino
    return False


def _partials(folder: str, prefix: str) -> list[str]:
    """Our hidden temporary copies in `folder` whose names start with `prefix`."""
    try:
        with os.scandir(folder) as entries:
            return [
                e.path for e in entries if e.name.startswith(prefix) and e.name.endswith(".partial")
            ]
    except OSError:
        return []


# ---- what runs in this process ---------------------------------------------------

_registry_lock = threading.Lock()
# (database, journal id) of the entries whose operation or undo runs in this process:
# recovery leaves them alone (the library's write lock keeps other processes out).
_RUNNING: set[tuple[str, int]] = set()
# Paths whose file a running operation moved (or is moving) before the entry's next
# save records where its image row went; the scanner must not forget those rows.
_IN_FLIGHT: dict[str, int] = {}


def in_flight(path: str) -> bool:
    """Whether a file operation in this process moved the file at `path` and has not
    yet moved its image row: the row is not stale, it is about to follow its file."""
    with _registry_lock:
        return path in _IN_FLIGHT


class _Flight:
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
        with _registry_lock:
            for form in forms:
                _IN_FLIGHT[form] = _IN_FLIGHT.get(form, 0) + 1
        self._paths.extend(forms)

    def clear(self) -> None:
        with _registry_lock:
            for form in self._paths:
                n = _IN_FLIGHT.get(form, 0) - 1
                if n > 0:
                    _IN_FLIGHT[form] = n
                else:
                    _IN_FLIGHT.pop(form, None)
        self._paths = []


# The start of a payload as `_dump` writes it: the entry's status, then its undo's.
_HEAD = re.compile(r'\{"version": \d+, "status": "(\w+)"(?:, "undo": \{"status": "(\w+)")?')


def _dump(payload: dict[str, Any]) -> str:
    """The payload as JSON, with "status" and "undo" first so that `_interrupted` finds
    unfinished entries from the first few characters of each."""
    head = {k: payload[k] for k in ("version", "status", "undo") if k in payload}
    return json.dumps({**head, **payload})


def _remove_empty_dirs(dirs: Iterable[str]) -> None:
    """Remove folders an export created, deepest first, where they are empty again."""
    for d in sorted(dirs, key=len, reverse=True):
        with contextlib.suppress(OSError):  # not empty (or gone): it stays
            os.rmdir(d)


class FileOps:
    """Trash, move and undo over one library's database (journal, folders, images).

    Safe to share between threads: each call opens its own sessions. Every
    operation first settles the entries that an earlier one left unfinished (a
    crash, a kill): see `_settle`. Callers hold the library's write lock
    (core/lock.py), so an unfinished entry not running in this process is
    one that was interrupted.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        self._db = str(getattr(bind, "url", id(sessions)))

    # ---- public API ----------------------------------------------------------

    def trash(self, paths: Sequence[str]) -> OpResult:
        """Send files to the system trash, journaled; see the module docstring.

        Raises ReferenceFolderError (nothing done) if any path is in a reference
        folder. Files that cannot be trashed (missing, permission denied, a
        folder) are listed in `failed`; the others are trashed.
        """
        sources = self._sources(paths)
        self._refuse_reference(sources, "trash")
        self.recover()
        items = [{"src": s, "dest": None, "status": "pending", "reason": None} for s in sources]
        return self._run("trash", {}, items, self._trash_one)

    def move(self, paths: Sequence[str], dest_dir: str) -> OpResult:
        """Move files into `dest_dir`, journaled, never overwriting.

        A name already taken in `dest_dir` gets a suffix: "a.jpg" → "a (1).jpg".
        Raises FileOpError if `dest_dir` is not a folder and ReferenceFolderError
        if a source or `dest_dir` is in a reference folder (nothing done then).
        """
        dest = os.path.abspath(os.fspath(dest_dir))
        if not os.path.isdir(dest):
            raise FileOpError(f"not a folder: {dest}")
        sources = self._sources(paths)
        self._refuse_reference(sources, "move")
        self._refuse_reference([dest], "move files into", containing=False)
        self.recover()
        items = [
            {
                "src": s,
                "dest": os.path.join(dest, os.path.basename(s)),  # planned; may get a suffix
                "status": "pending",
                "reason": None,
            }
            for s in sources
        ]
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
        dirs = sorted({os.path.dirname(d) for _, d in pairs})
        self._refuse_reference(dirs, "export into", containing=False)
        if mode == "move":
            self._refuse_reference([s for s, _ in pairs], "move")
        self.recover()
        # Journal first: the folders this export will create, so undo can remove them.
        new_dirs: set[str] = set()
        for d in dirs:
            while d and not os.path.lexists(d) and d not in new_dirs:
                new_dirs.add(d)
                d = os.path.dirname(d)
        items = [{"src": s, "dest": d, "status": "pending", "reason": None} for s, d in pairs]
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
                row = session.scalar(
                    select(JournalRow)
                    .where(JournalRow.undone_at.is_(None))
                    .order_by(JournalRow.id.desc())
                    .limit(1)
                )
                if row is None:
                    raise FileOpError("nothing to undo")
            else:
                row = session.get(JournalRow, journal_id)
                if row is None:
                    raise FileOpError(f"no file operation #{journal_id}")
            if row.undone_at is not None:
                raise FileOpError(f"file operation #{row.id} was already undone")
            entry_id, action = row.id, row.action
            payload: dict[str, Any] = json.loads(row.payload)
        key = (self._db, entry_id)
        with _registry_lock:
            if key in _RUNNING:
                raise FileOpError(f"file operation #{entry_id} is still running")
            _RUNNING.add(key)
        try:
            if action == "export" and payload.get("mode") != "move":
                return self._undo_created(entry_id, payload)
            if action == "export":
                action = "move"  # an export by move is undone exactly like a move
            if action not in ("trash", "move"):
                raise FileOpError(f"file operation #{entry_id} ({action}) cannot be undone")
            return self._undo_moved(entry_id, action, payload)
        finally:
            with _registry_lock:
                _RUNNING.discard(key)

    def recover(self) -> None:
        """Settle every entry that a crash or a kill left unfinished (`_settle`).

        Run by each operation before it starts (under the library's write lock);
        cheap when nothing was interrupted: one query over the open entries'
        first characters.
        """
        for entry_id in self._interrupted():
            self._settle(entry_id)

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

        payload["undo"] = {"status": "pending", "started_at": _now().isoformat()}
        self._save(entry_id, payload, [])  # journal first, as for any change
        done: list[str] = []
        moved: list[tuple[str, str]] = []
        notes: list[str] = []
        failed = [(it["src"], str(it.get("reason") or "interrupted")) for it in unsettled]
        retry = bool(unsettled)
        gone: list[tuple[str, str | None]] = []
        flight = _Flight()
        pending_batch = 0
        index = {id(it): n for n, it in enumerate(items)}
        finished = False
        try:
            for it in todo:
                flight.add(it.get("dest"))  # its row follows at the next save
                try:
                    current, restored = self._undo_one(
                        action, it, _tag(entry_id, f"u{index[id(it)]}")
                    )
                except _ItemError as exc:
                    it["undo"] = {"status": "failed", "reason": str(exc), "retry": exc.retry}
                    failed.append((it["src"], str(exc)))
                    retry = retry or exc.retry
                else:
                    it["undo"] = {"status": "done", "path": restored}
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
        return OpResult(entry_id, done, failed, moved, notes)

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
            session.add(Folder(path=real, is_reference=False, added_at=_now()))
        return True

    def _unregister_if_empty(self, path: str) -> None:
        with self._sessions() as session, session.begin():
            folder = session.scalar(select(Folder).where(Folder.path == path))
            if folder is not None and not session.scalar(
                select(ImageRow.id).where(ImageRow.folder_id == folder.id).limit(1)
            ):
                session.delete(folder)

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
    ) -> Job[OpResult]:
        """Journal, then act on each item, yielding Progress; `forget`: sources left
        their paths (trash, move). A cancel stops between items: those not reached
        are marked "skipped" (nothing happened to them) and the entry is saved.
        `act(item, tag)`: `tag` names the item's temporary files (`_tag`).
        """
        for it in items:
            # The source as it is before we act, journaled: after a crash recovery
            # finds the file by it (`_settle`), wherever it got to.
            it.setdefault("src_ident", _source_identity(it["src"]))
            if it.get("dest"):
                # What already occupies the planned name (and its collision names):
                # never taken for something this operation created.
                taken = _taken(it["dest"])
                if taken:
                    it["taken"] = taken
        payload: dict[str, Any] = {
            "version": PAYLOAD_VERSION,
            "status": "pending",
            **extra,
            "items": items,
        }
        try:
            with self._sessions() as session, session.begin():
                row = JournalRow(
                    created_at=_now(), action=action, payload=_dump(payload), undone_at=None
                )
                session.add(row)
                session.flush()
                entry_id = row.id
        except SQLAlchemyError as exc:
            raise FileOpError(f"cannot write the journal, nothing was done: {exc}") from exc
        key = (self._db, entry_id)
        with _registry_lock:
            _RUNNING.add(key)
        log.info("%s #%d started: %d item(s)", action, entry_id, len(items))

        done: list[str] = []
        failed: list[tuple[str, str]] = []
        moved: list[tuple[str, str]] = []
        notes: list[str] = []
        gone: list[tuple[str, str | None]] = []
        flight = _Flight()
        pending_batch = 0
        cancelled = False
        try:
            for n, it in enumerate(items):
                yield Progress(action, n, len(items), it["src"])
                if cancel is not None and cancel.cancelled:
                    cancelled = True
                    for rest in items[n:]:
                        rest["status"], rest["reason"] = "skipped", "cancelled"
                    break
                if forget:
                    flight.add(it["src"])  # before the file moves: see `in_flight`
                try:
                    note = act(it, _tag(entry_id, n))
                except _ItemError as exc:
                    it["status"], it["reason"] = "failed", str(exc)
                    failed.append((it["src"], str(exc)))
                except OSError as exc:
                    it["status"], it["reason"] = "failed", _reason(exc)
                    failed.append((it["src"], _reason(exc)))
                else:
                    it["status"] = "done"
                    done.append(it["src"])
                    if forget:
                        gone.append((it["src"], it.get("dest")))
                    if it.get("dest"):
                        moved.append((it["src"], it["dest"]))
                    if note:
                        notes.append(note)
                if it["status"] == "failed":
                    log.warning("%s #%d: %s: %s", action, entry_id, it["src"], it["reason"])
                pending_batch += 1
                if pending_batch >= self._batch_size(len(items)):
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
                with _registry_lock:
                    _RUNNING.discard(key)
        log.info(
            "%s #%d %s: %d done, %d failed",
            action,
            entry_id,
            payload["status"],
            len(done),
            len(failed),
        )
        yield Progress(action, len(done) + len(failed), len(items))
        return OpResult(entry_id, done, failed, moved, notes, cancelled)

    def _trash_one(self, it: dict[str, Any], tag: str) -> str | None:
        src: str = it["src"]
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            raise _ItemError("no such file") from None
        if stat.S_ISDIR(st.st_mode):
            raise _ItemError("is a folder (only files are handled)")
        ident = _Identity(st.st_dev, st.st_ino, st.st_size)
        dirs = _trash_dirs(src) if _freedesktop() else []
        try:
            _send_to_trash(src)
        except OSError:
            if dirs and os.path.lexists(src):
                _drop_orphan_info(src, dirs)
            raise
        if os.path.lexists(src):
            # Some trash implementations "succeed" without moving anything.
            raise _ItemError("the system trash reported success, but the file is still there")
        if not dirs:
            return None  # macOS / Windows: trashed, location not exposed
        found = _find_in_trash(src, ident, dirs)
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
            raise _ItemError("no such file")
        if os.path.samefile(os.path.dirname(src), dest_dir):
            raise _ItemError("already in that folder")
        final = _place(src, dest_dir, os.path.basename(src), tag)
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
            raise _ItemError("restore it from the system trash (its place there is not known)")
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
            raise _ItemError(f"no longer in {where}") from None
        except OSError as exc:
            raise _ItemError(_reason(exc), retry=True) from exc
        ident = it.get("ident")
        # The inode alone is not enough: a file deleted and another created under
        # the same name often gets the freed inode number.
        if ident is not None and [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns] != ident:
            raise _ItemError(f"{current} was replaced or changed since the move; left where it is")
        parent = os.path.dirname(src)
        with contextlib.suppress(OSError):
            if os.path.samestat(os.lstat(src), st):
                # An earlier undo was interrupted after linking the file back and
                # before removing the other name: finish it (drop that second name).
                os.unlink(current)
                return current, src
        try:
            os.makedirs(parent, exist_ok=True)  # its folder may be gone since
            restored = _place(current, parent, os.path.basename(src), tag)
        except _ItemError:
            raise
        except OSError as exc:
            raise _ItemError(_reason(exc), retry=True) from exc
        return current, restored

    # ---- recovery ------------------------------------------------------------

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
            if m is None or "pending" not in (m.group(1), m.group(2)):
                continue
            with _registry_lock:
                if (self._db, entry_id) in _RUNNING:
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
        partials = {f: _partials(f, prefix) for f in sorted(folders)}
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
                    if os.path.basename(p).startswith(_partial_prefix(_tag(entry_id, n)))
                ]
                try:
                    if action == "trash":
                        self._settle_trash(it, gone)
                    elif mode == "move":
                        self._settle_move(it, claimed, tmps, gone)
                    else:
                        self._settle_created(it, mode, claimed, tmps)
                except (OSError, _ItemError) as exc:
                    # Stays pending: the next operation tries again.
                    it["reason"] = f"interrupted; {_reason(exc)}"
                counts[it["status"]] = counts.get(it["status"], 0) + 1
            payload["status"] = "interrupted"
        if (payload.get("undo") or {}).get("status") == "pending":
            payload["undo"]["status"] = "interrupted"
            for n, it in enumerate(items):
                # An undo copying a file back across devices, killed between its
                # placeholder and the rename, left the placeholder at the source.
                utag = _partial_prefix(_tag(entry_id, f"u{n}"))
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
        self._save(entry_id, payload, gone)
        log.warning(
            "recovered interrupted %s #%d: %s; %d temporary file(s) removed",
            action,
            entry_id,
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "its undo",
            sum(len(p) for p in partials.values()),
        )

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
        dirs = _trash_dirs(src) if _freedesktop() else []
        if os.path.lexists(src):
            if dirs:
                _drop_orphan_info(src, dirs)  # Send2Trash writes it before its rename
            it["status"], it["reason"] = "skipped", "interrupted before it"
            return
        if not ident:
            it["status"], it["reason"] = "failed", "no such file"
            return
        found = _find_in_trash(src, _Identity(ident[0], ident[1], ident[2]), dirs) if dirs else None
        if found is None:
            it["status"] = "unknown"
            it["reason"] = f"interrupted; {src} is not in its folder: see the system trash"
            return
        it["dest"], it["info"] = found
        it["status"], it["recovered"] = "done", True
        gone.append((src, None))

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
                _send_to_trash(path)
            claimed.discard(path)
            it["status"], it["reason"] = "skipped", "interrupted before it was moved"
            return
        it["dest"], it["ident"] = path, [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        it["status"], it["recovered"] = "done", True
        gone.append((src, path))

    # ---- export --------------------------------------------------------------

    def _export_one(self, it: dict[str, Any], mode: str, tag: str) -> str | None:
        src: str = it["src"]
        dest_dir, name = os.path.split(it["dest"])
        try:
            st = os.stat(src)
        except FileNotFoundError:
            raise _ItemError("no such file") from None
        if stat.S_ISDIR(st.st_mode):
            raise _ItemError("is a folder (only files are handled)")
        os.makedirs(dest_dir, exist_ok=True)
        if mode == "move":
            final = _place(src, dest_dir, name, tag)
        elif mode == "copy":
            final = _copy_exclusive(src, dest_dir, name, tag)
        elif mode == "hardlink":
            final = _create_exclusive(dest_dir, name, lambda cand: os.link(src, cand))
        else:
            # An absolute target: the link keeps working wherever DEST is viewed from.
            it["target"] = src
            final = _create_exclusive(dest_dir, name, lambda cand: os.symlink(src, cand))
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
        payload["undo"] = {"status": "pending", "started_at": _now().isoformat()}
        self._save(entry_id, payload, [])
        done: list[str] = []
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
                except _ItemError as exc:
                    it["undo"] = {"status": "failed", "reason": str(exc), "retry": exc.retry}
                    failed.append((it["dest"], str(exc)))
                    retry = retry or exc.retry
                except OSError as exc:
                    it["undo"] = {"status": "failed", "reason": _reason(exc), "retry": True}
                    failed.append((it["dest"], _reason(exc)))
                    retry = True
                else:
                    it["undo"] = {"status": "done"}
                    done.append(it["dest"])
                    if note:
                        notes.append(note)
            finished = True
        finally:
            closed = finished and not retry
            payload["undo"]["status"] = "done" if closed else "partial"
            self._save(entry_id, payload, [], undone=closed)
        _remove_empty_dirs(payload.get("new_dirs", []))
        return OpResult(entry_id, done, failed, [], notes)

    @staticmethod
    def _remove_created(it: dict[str, Any], mode: str, *, resumed: bool = False) -> str | None:
        dest: str = it["dest"]
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            return f"{dest} was already gone"
        if mode == "symlink":
            if not stat.S_ISLNK(st.st_mode) or os.readlink(dest) != it.get("target"):
                raise _ItemError(f"{dest} was changed since the export; left where it is")
            os.unlink(dest)  # a link only: the photo stays at its source
            return None
        ident = it.get("ident")
        if [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns] != ident:
            raise _ItemError(f"{dest} was replaced or changed since the export; left where it is")
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
        if resumed and _freedesktop():
            _drop_orphan_info(dest, _trash_dirs(dest))
        _send_to_trash(dest)
        if os.path.lexists(dest):
            raise _ItemError("the system trash reported success, but the file is still there")
        return None

    # ---- database ------------------------------------------------------------

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
            row.payload = _dump(payload)
            if undone:
                row.undone_at = _now()
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
