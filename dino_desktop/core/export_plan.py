"""Export planning: where each photo of a set of auto-folders goes, before anything is written.

`plan_export` turns clusters into (source, destination) pairs under one
destination folder, with folder names valid on every system
(`sanitize_folder_name`) and file names made distinct, so that the preview shows
exactly what `FileOps.export` (core/fileops.py) then writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from dino_desktop.core.placing import collision_names

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
