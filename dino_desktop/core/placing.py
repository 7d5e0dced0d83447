"""Placing one file, exclusively: never overwriting, never leaving half a file.

Destinations are created exclusively (a hard link, a symlink or an ``O_EXCL``
placeholder), trying "a.jpg", "a (1).jpg", "a (2).jpg", … (`collision_names`).
A move is "link, then unlink the source", or for another device "copy to a
hidden temporary name, fsync, link into place, unlink the source", so a crash
leaves the file at its source, its destination or both, never nowhere.
Temporary copies are named after their journal entry and item
(".dino-<entry>-<item>-*.partial", `item_tag`), so that recovery
(core/recovery.py) knows whose they are and removes them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable

# How many names "a (1).jpg" … to try before giving up on a destination.
MAX_COLLISION_NAMES = 10_000


class ItemError(Exception):
    """One item cannot be done; the others go on. `retry`: worth trying again later."""

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.retry = retry


def short_reason(exc: BaseException) -> str:
    """A short reason for the user, without Python's exception decoration."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def collision_names(name: str) -> Iterable[str]:
    """The names tried for a destination, in order: "a.jpg", "a (1).jpg", …"""
    yield name
    stem, ext = os.path.splitext(name)
    for n in range(1, MAX_COLLISION_NAMES):
        yield f"{stem} ({n}){ext}"


def create_exclusive(dest_dir: str, name: str, make: Callable[[str], None]) -> str:
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
    raise ItemError(f"no free name for {name} in {dest_dir}")


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


def partial_prefix(tag: str) -> str:
    """The start of the hidden temporary names of one journal entry's item (see `item_tag`)."""
    return f".dino-{tag}-"


def item_tag(entry_id: int, item: int | str) -> str:
    """Names an item's temporary copies after its journal entry, so recovery knows whose
    they are ("12-3": entry 12, item 3; "12-u3": the undo of that item)."""
    return f"{entry_id}-{item}"


def copy_exclusive(src: str, dest_dir: str, name: str, tag: str = "x") -> str:
    """Copy `src` into `dest_dir` under a free name, durably; return the new path.

    The temporary copy is named ".dino-<tag>-*.partial" (`item_tag`): a crash leaves it
    to the recovery of that journal entry, which removes it.
    """
    fd, tmp = tempfile.mkstemp(prefix=partial_prefix(tag), suffix=".partial", dir=dest_dir)
    os.close(fd)
    try:
        # Copy under a hidden temporary name first: a crash mid-copy then leaves
        # no half file under a real name.
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)  # a move keeps the modification time and mode
        with open(tmp, "rb+") as out:
            os.fsync(out.fileno())
        final = create_exclusive(dest_dir, name, lambda cand: _link_or_reserve(tmp, cand))
    finally:
        # Our own temporary copy (linked into place by now, or incomplete).
        if os.path.lexists(tmp):
            os.unlink(tmp)
    _fsync_dir(dest_dir)
    return final


def place(src: str, dest_dir: str, name: str, tag: str = "x") -> str:
    """Move the file `src` to `dest_dir`/`name` (or a collision-safe variant).

    Returns the path it now has. Never overwrites; on failure the file is still
    at `src` (raises OSError or `ItemError`).
    """
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        raise ItemError("is a folder (only files are handled)")
    if stat.S_ISLNK(st.st_mode):
        # Recreate the link itself (not its target); symlink() is exclusive.
        target = os.readlink(src)
        final = create_exclusive(dest_dir, name, lambda cand: os.symlink(target, cand))
    else:
        try:
            final = create_exclusive(dest_dir, name, lambda cand: os.link(src, cand))
        except (FileNotFoundError, ItemError):
            raise
        except OSError:
            # Another device, or no hard links on this file system: copy.
            final = copy_exclusive(src, dest_dir, name, tag)
    try:
        os.unlink(src)  # the data now lives at `final`: this ends the move, it deletes nothing
    except OSError:
        # Undo our half: `final` is a second name for (or a copy of) a file that is
        # still at `src`, so removing it loses nothing.
        os.unlink(final)
        raise
    return final


def find_partials(folder: str, prefix: str) -> list[str]:
    """Our hidden temporary copies in `folder` whose names start with `prefix`."""
    try:
        with os.scandir(folder) as entries:
            return [
                e.path for e in entries if e.name.startswith(prefix) and e.name.endswith(".partial")
            ]
    except OSError:
        return []
