"""Export planning: where each photo of a set of auto-folders goes, before anything is written.

`plan_export` turns clusters into (source, destination) pairs under one
destination folder, with folder names valid on every system
(`sanitize_folder_name`) and file names made distinct, so that the preview shows
exactly what `FileOps.export` (core/fileops.py) then writes.

A photo's companion files (its RAW, Live Photo video, sidecars: core/companions.py)
go with it and keep its stem (`group_plan`): a name is free only when every member's
name is, so "IMG_1 (1).JPG" comes with "IMG_1 (1).CR3", never with "IMG_1.CR3".
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from dino_desktop.core.companions import DiskGroups, member_name
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
    groups = DiskGroups()
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
            src = os.path.abspath(src)
            members = [os.path.basename(m) for m, _ in groups.members(src) if m != src]
            name = free_name(target, os.path.basename(src), members, taken)
            plan.append((src, os.path.join(target, name)))
    return plan


def free_name(folder: str, name: str, companions: Sequence[str], taken: set[str]) -> str:
    """The first of `name`'s collision names ("a.jpg", "a (1).jpg", …) that is free in
    `folder` for the photo and every companion (`member_name`), on disk and in
    `taken` (casefolded names already planned, which the chosen ones join)."""
    for candidate in collision_names(name):
        names = [candidate, *(member_name(name, candidate, c) for c in companions)]
        # Case-insensitively too: "A.jpg" is the same file as "a.jpg" on macOS and
        # Windows, and the preview must hold there as well.
        if any(n.casefold() in taken for n in names):
            continue
        present = [n for n in names if os.path.lexists(os.path.join(folder, n))]
        if present:
            taken.update(n.casefold() for n in present)
            continue
        taken.update(n.casefold() for n in names)
        return candidate
    raise ValueError(f"no free name for {name} in {folder}")


def group_plan(
    groups: DiskGroups, src: str, dest: str | None, done: set[str] | None = None
) -> list[tuple[str, str | None, str]]:
    """(source, destination, kind) of every file of the photo item `src` belongs to:
    the photo first ("photo"), then its companions (`src` may be one of them); each
    member's destination keeps `dest`'s stem (`member_name`). Members already in
    `done` (planned with an earlier item) are left out, and the new ones join it."""
    seen = done if done is not None else set()
    if src in seen:
        return []
    name = os.path.basename(src)
    out: list[tuple[str, str | None, str]] = []
    for path, kind in groups.members(src):  # the photo first, `src` among them
        if path in seen:
            continue
        seen.add(path)
        member_dest = dest
        if dest is not None and path != src:
            member_dest = os.path.join(
                os.path.dirname(dest),
                member_name(name, os.path.basename(dest), os.path.basename(path)),
            )
        out.append((path, member_dest, kind))
    return out


def _append_group(
    items: list[dict[str, Any]], members: Iterable[tuple[str, str | None, str]]
) -> None:
    """Append one photo item's journal items: the photo's as a lone photo's always
    was, each companion's marked with its group (the photo's index) and kind."""
    first = len(items)
    for path, dest, kind in members:
        marks = {} if len(items) == first else {"group": first, "kind": kind}
        items.append({"src": path, "dest": dest, "status": "pending", "reason": None, **marks})


def group_items(sources: list[str], dest_dir: str | None = None) -> list[dict[str, Any]]:
    """Journal items for `sources` with their companions, each photo item's files
    in a row (the photo first); with `dest_dir`, each gets a name there that is
    free for the whole group, with one stem (`export_plan.free_name`)."""
    groups = DiskGroups()
    seen: set[str] = set()
    taken: set[str] = set()
    items: list[dict[str, Any]] = []
    for src in sources:
        members = group_plan(groups, src, None, seen)
        if not members:
            continue
        if dest_dir is not None:
            primary = os.path.basename(members[0][0])
            others = [os.path.basename(m) for m, _, _ in members[1:]]
            name = free_name(dest_dir, primary, others, taken)
            members = [
                (m, os.path.join(dest_dir, member_name(primary, name, os.path.basename(m))), k)
                for m, _, k in members
            ]
        _append_group(items, members)
    return items


def plan_items(plan: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Journal items for an export plan: each planned photo with its companions,
    which keep the photo's planned stem (`export_plan.group_plan`). A group whose
    companions' names are taken at the destination is given the next name free
    for all of them, so a group is never split by its names."""
    groups = DiskGroups()
    seen: set[str] = set()
    taken: dict[str, set[str]] = {}
    items: list[dict[str, Any]] = []
    for src, dest in plan:
        if src in seen:
            continue
        members = [m for m in group_plan(groups, src, dest) if m[0] not in seen]
        folder = os.path.dirname(dest)
        used = taken.setdefault(folder, set())
        if len(members) > 1 and any(
            os.path.lexists(d) or os.path.basename(d).casefold() in used
            for _, d, _ in members
            if d is not None
        ):
            others = [os.path.basename(d) for m, d, _ in members if d and m != src]
            name = free_name(folder, os.path.basename(dest), others, used)
            replanned = group_plan(groups, src, os.path.join(folder, name))
            members = [m for m in replanned if m[0] not in seen]
        used.update(os.path.basename(d).casefold() for _, d, _ in members if d)
        seen.update(m for m, _, _ in members)
        _append_group(items, members)
    return items
