"""The system trash: sending a file there, and finding it there again.

Deletion is the system trash (Send2Trash), never unlink. Undoing a trash needs
to know where the system trash put the file. On Linux and other freedesktop.org
systems the trash is a documented folder structure (``<trash>/files`` and
``<trash>/info/*.trashinfo``) and the file is found (`find_in_trash`) and
restored. On macOS and Windows the trash still works, but its location is not
exposed, so undo of a trash there answers "restore it from the system trash".
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from dino_desktop.core.volumes import mount_point


def freedesktop() -> bool:
    """Whether the system trash follows the freedesktop.org spec (Linux, BSD)."""
    return os.name == "posix" and sys.platform != "darwin"


def _xdg_data_home() -> str:
    # The basedir spec: an unset, empty or relative XDG_DATA_HOME means the default.
    value = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(value):
        value = os.path.join(os.path.expanduser("~"), ".local", "share")
    return value


_trash_lock = threading.Lock()


def send_to_trash(path: str) -> None:
    """Hand one file to Send2Trash (tests replace this to simulate failures)."""
    if not freedesktop():
        from send2trash import send2trash

        send2trash(path)
        return
    # Send2Trash's freedesktop implementation, not its gio one (chosen when
    # PyGObject is installed): gio caches the data dir for the process and names
    # files its own way, while this one we can point at the current home trash.
    from send2trash import plat_other

    with _trash_lock:
        # plat_other reads XDG_DATA_HOME once, at import: re-read it now so the
        # file goes where `trash_dirs` looks (and a test's tmp dir is honoured).
        home = _xdg_data_home()
        home_b = os.fsencode(home)
        plat_other.XDG_DATA_HOME = home_b
        plat_other.HOMETRASH_B = os.path.join(home_b, b"Trash")
        plat_other.HOMETRASH = os.path.join(home, "Trash")
        plat_other.send2trash(path)


@dataclass(frozen=True, slots=True)
class TrashDir:
    root: str  # holds files/ and info/
    topdir: str  # the base of relative Path= values


@dataclass(frozen=True, slots=True)
class Identity:
    dev: int
    ino: int
    size: int


def _mount_point(path: str) -> str:
    return mount_point(os.path.realpath(path))


def trash_dirs(src: str) -> list[TrashDir]:
    """The trash folders a file on `src`'s device can go to, most likely first.

    Send2Trash uses the home trash for files on the home directory's device, else
    the volume's ``.Trash/<uid>`` or ``.Trash-<uid>``, falling back to the home
    trash when it cannot rename there.
    """
    data_home = _xdg_data_home()
    home = TrashDir(os.path.join(data_home, "Trash"), data_home)
    top = _mount_point(os.path.dirname(src))
    uid = str(os.getuid())
    volume = [
        TrashDir(os.path.join(top, ".Trash", uid), top),
        TrashDir(os.path.join(top, f".Trash-{uid}"), top),
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


def _trash_candidates(src: str, dirs: list[TrashDir]) -> Iterable[tuple[str, str, str]]:
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


def _send2trash_names(src: str, dirs: list[TrashDir]) -> Iterable[tuple[str, str]]:
    """(trashed file, its .trashinfo) under the names Send2Trash would have given
    `src`: "a.jpg", then "a 1.jpg", "a 2.jpg", … up to the first free name.

    Probing these costs a few stats per same-named file in the trash, where
    listing the info folder costs one entry per file in the whole trash: a
    removal of thousands of files into a big trash would grow with the square.
    """
    base = os.path.basename(src)
    stem, ext = os.path.splitext(base)
    for d in dirs:
        files_dir = os.path.join(d.root, "files")
        info_dir = os.path.join(d.root, "info")
        counter = 0
        name = base
        while True:
            trashed = os.path.join(files_dir, name)
            info = os.path.join(info_dir, name + ".trashinfo")
            if not (os.path.lexists(trashed) or os.path.lexists(info)):
                break
            yield trashed, info
            counter += 1
            name = f"{stem} {counter}{ext}"


def _is(trashed: str, ident: Identity) -> bool:
    """Whether `trashed` is the file `ident` describes (same device, inode, size)."""
    try:
        st = os.lstat(trashed)
    except OSError:
        return False
    return (st.st_dev, st.st_ino, st.st_size) == (ident.dev, ident.ino, ident.size)


def find_in_trash(src: str, ident: Identity, dirs: list[TrashDir]) -> tuple[str, str] | None:
    """Where `src` went in the trash: (trashed file, .trashinfo), or None.

    The same inode on the same device is the file itself (a rename keeps it, and
    a live inode is never reused), looked for first under the names Send2Trash
    gives. Failing that (another tool's naming, or Send2Trash copied it across
    devices), the entry whose Path is `src`, with the right size, newest first.
    """
    for trashed, info in _send2trash_names(src, dirs):
        if _is(trashed, ident):
            return trashed, info
    best: tuple[tuple[str, int], str, str] | None = None
    for trashed, info, topdir in _trash_candidates(src, dirs):
        if _is(trashed, ident):
            return trashed, info
        try:
            size = os.lstat(trashed).st_size
        except OSError:
            continue
        if size != ident.size:
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


def drop_orphan_info(src: str, dirs: list[TrashDir]) -> None:
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
