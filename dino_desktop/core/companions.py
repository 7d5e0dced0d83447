"""Companion files: which files in one folder form one photo item.

A camera or a phone writes one picture as several files that share a stem, and
they belong together: a RAW and the JPEG or HEIC the camera made of it, a Live
Photo's still and its short video, and sidecars that hold a photo's edits or
metadata (`name.xmp`, `name.ext.xmp`, Apple's `.aae`, Google Takeout's
`name.ext.json` with its `name.ext(1).json` and `.supplemental-metadata.json`
variants, `.thm`). Here they are grouped by name alone (`group_names`), so the
scanner (which stores the groups in the catalog) and the file operations
(which read the folder again right before acting, so that a sidecar written
since the last scan still goes along) always agree.

The rules, per stem (the name without its last extension):

* The photo item is the displayable image (HEIC, then JPEG, then the other
  formats); other displayable images of the same stem stay photos of their own.
  A RAW with such an image is its original (kind ``raw``) and a video its Live
  Photo motion (``live``). A RAW alone is the photo item itself (the first by
  `_RAW_ORDER`; a second RAW of the stem, e.g. a DNG conversion, is its ``raw``
  companion).
* A sidecar belongs to the file it names (`IMG_1.CR3.xmp`, `IMG_1.JPG.json`),
  else to the photo of its stem (`IMG_1.xmp`, `IMG_1.AAE`; iOS's `IMG_O1.AAE`
  too), and travels with that file's photo item. A sidecar of nothing is an
  orphan (``orphan``); stray `.json` files are not sidecars at all (albums and
  other tools keep JSON in photo folders) and are ignored.
* A video of no photo is not indexed (``video``), only counted and listed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from dino_desktop.core.images import IMAGE_EXTENSIONS, RAW_EXTENSIONS

__all__ = [
    "COMPANION_EXTENSIONS",
    "KINDS",
    "SIDECAR_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DirGroups",
    "DiskGroups",
    "group_names",
    "member_name",
]

VIDEO_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        ".mov", ".mp4", ".m4v", ".3gp", ".3g2", ".avi", ".mts", ".m2ts", ".mkv",
        ".webm", ".mpg", ".mpeg", ".wmv", ".insv", ".lrv",
    }
)  # fmt: skip
SIDECAR_EXTENSIONS: Final[frozenset[str]] = frozenset({".xmp", ".aae", ".thm", ".json"})
# Files the scanner keeps from a folder's listing besides the images themselves.
COMPANION_EXTENSIONS: Final[frozenset[str]] = VIDEO_EXTENSIONS | SIDECAR_EXTENSIONS

# What a stored companion row is: of a photo item (raw, live, sidecar) or loose.
KINDS: Final = ("raw", "live", "sidecar", "video", "orphan")

# Which displayable image of a stem is the photo item: the camera's own first.
_IMAGE_ORDER: Final = (".heic", ".heif", ".hif", ".jpg", ".jpeg", ".jpe", ".avif", ".jxl")
# A DNG beside another RAW of the same stem is usually a conversion of it.
_RAW_ORDER_LAST: Final = (".dng",)
_TAKEOUT = re.compile(r"^(?P<file>.+?\.[^.()]+)(?:\.(?P<extra>[A-Za-z-]*))?(?P<dup>\(\d+\))?$")
_SUPPLEMENTAL: Final = "supplemental-metadata"
_IOS_ORIGINAL = re.compile(r"^(IMG_)O(\d+)$")


def _split(name: str) -> tuple[str, str]:
    """(stem, lowercase extension) as os.path.splitext has them, for plain names (no
    separator, no leading dot): the scanner splits every name of a grouped folder."""
    dot = name.rfind(".")
    return (name, "") if dot <= 0 else (name[:dot], name[dot:].lower())


def _ext(name: str) -> str:
    return _split(name)[1]


def _stem(name: str) -> str:
    return _split(name)[0]


@dataclass(slots=True)
class DirGroups:
    """The groups of one folder's files, by name (no paths, no file-system calls)."""

    photos: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """Each photo item's name → its companions' (name, kind), in name order."""
    loose: list[tuple[str, str]] = field(default_factory=list)
    """(name, kind) of videos of no photo ("video") and sidecars of none ("orphan")."""
    owner: dict[str, str] = field(default_factory=dict)
    """Every companion's name → the name of its photo item."""

    def members(self, name: str) -> list[tuple[str, str]]:
        """The photo item that `name` belongs to, as (name, kind): the photo first
        (kind "photo"), then its companions; `name` alone if it is in no group."""
        primary = self.owner.get(name, name)
        if primary not in self.photos:
            return [(name, "photo")]
        return [(primary, "photo"), *self.photos[primary]]


def group_names(names: Iterable[str]) -> DirGroups:
    """Group the files of one folder (plain names; hidden ones already left out)."""
    images: dict[str, list[str]] = {}
    raws: dict[str, list[str]] = {}
    videos: dict[str, list[str]] = {}
    sidecars: list[str] = []
    present: set[str] = set()
    for name in names:
        stem, ext = _split(name)
        if ext in RAW_EXTENSIONS:
            raws.setdefault(stem, []).append(name)
        elif ext in IMAGE_EXTENSIONS:
            images.setdefault(stem, []).append(name)
        elif ext in VIDEO_EXTENSIONS:
            videos.setdefault(stem, []).append(name)
        elif ext in SIDECAR_EXTENSIONS:
            sidecars.append(name)
            continue
        else:
            continue
        present.add(name)

    out = DirGroups()
    by_stem: dict[str, str] = {}  # stem → its photo item
    item_of: dict[str, str] = {}  # every image, RAW or Live video → its photo item

    def attach(primary: str, name: str, kind: str) -> None:
        out.photos[primary].append((name, kind))
        out.owner[name] = primary
        item_of[name] = primary

    for stem, found in images.items():
        found.sort(key=_image_rank)
        primary = found[0]
        by_stem[stem] = primary
        for name in found:  # each displayable image is a photo item
            out.photos[name] = []
            item_of[name] = name
        for raw in sorted(raws.pop(stem, [])):
            attach(primary, raw, "raw")
        for video in sorted(videos.pop(stem, [])):
            attach(primary, video, "live")
    for stem, found in raws.items():
        found.sort(key=lambda n: (_ext(n) in _RAW_ORDER_LAST, n))
        primary = found[0]
        by_stem[stem] = primary
        out.photos[primary] = []
        item_of[primary] = primary
        for raw in found[1:]:
            attach(primary, raw, "raw")
    loose_videos: set[str] = set()
    video_stems: dict[str, str] = {}
    for stem, found in videos.items():
        for video in sorted(found):
            out.loose.append((video, "video"))
            loose_videos.add(video)
            video_stems.setdefault(stem, video)

    for name in sorted(sidecars):
        target = _sidecar_target(name, present, by_stem, video_stems)
        if target is None:
            # A .json of nothing is some other tool's file, not a lost sidecar.
            if _ext(name) != ".json":
                out.loose.append((name, "orphan"))
            continue
        if target in loose_videos:
            continue  # a video's own sidecar (a .THM): it is not indexed either
        primary = item_of.get(target, target)
        if primary in out.photos:
            attach(primary, name, "sidecar")
    out.loose.sort()
    return out


def _image_rank(name: str) -> tuple[int, str]:
    ext = _ext(name)
    rank = _IMAGE_ORDER.index(ext) if ext in _IMAGE_ORDER else len(_IMAGE_ORDER)
    return rank, name


def _sidecar_target(
    name: str, present: set[str], by_stem: dict[str, str], video_stems: dict[str, str]
) -> str | None:
    """The file a sidecar belongs to (a name in `present`), or None."""
    ext = _ext(name)
    base = name[: -len(ext)]
    if ext == ".json":
        return _takeout_target(base, present)
    if base in present:  # name.ext.xmp
        return base
    if base in by_stem:  # name.xmp, name.aae
        return by_stem[base]
    if base in video_stems:  # a lone video's name.THM
        return video_stems[base]
    ios = _IOS_ORIGINAL.match(base)  # iOS keeps an edit's original adjustments as IMG_O1.AAE
    if ios is not None and (found := by_stem.get(ios.group(1) + ios.group(2))):
        return found
    return None


def _takeout_target(base: str, present: set[str]) -> str | None:
    """The photo a Google Takeout JSON describes: `name.ext.json`, `name.ext(1).json`
    (for `name(1).ext`), `name.ext.supplemental-metadata.json` and its truncations."""
    if base in present:
        return base
    match = _TAKEOUT.match(base)
    if match is None:
        return None
    extra, dup = match.group("extra"), match.group("dup")
    if extra is not None and not (extra and _SUPPLEMENTAL.startswith(extra.lower())):
        return None
    file = match.group("file")
    if dup:
        stem, ext = os.path.splitext(file)
        renamed = f"{stem}{dup}{ext}"
        if renamed in present:
            return renamed
    return file if file in present else None


def member_name(primary: str, new_primary: str, member: str) -> str:
    """The name a companion gets when its photo `primary` is written as `new_primary`.

    The stem changes and what follows it stays: with IMG_1.JPG written as
    IMG_1 (2).JPG, IMG_1.CR3 becomes IMG_1 (2).CR3 and IMG_1.JPG.json IMG_1 (2).JPG.json,
    so the group keeps one stem. A name that does not start with the stem
    (Takeout's `IMG.JPG(1).json` of `IMG(1).JPG`) becomes the new name + ".json".
    """
    old_stem, new_stem = _stem(primary), _stem(new_primary)
    if old_stem == new_stem:
        return member
    if member.startswith(old_stem + "."):
        return new_stem + member[len(old_stem) :]
    if _ext(member) == ".json":
        return new_primary + ".json"
    return new_stem + "." + member.split(".", 1)[-1]


class DiskGroups:
    """Photo items as the disk has them now, for the file operations: each folder is
    listed once per operation."""

    def __init__(self) -> None:
        self._dirs: dict[str, DirGroups] = {}

    def folder(self, folder: str) -> DirGroups:
        groups = self._dirs.get(folder)
        if groups is None:
            try:
                with os.scandir(folder) as entries:
                    names = [e.name for e in entries if not e.name.startswith(".")]
            except OSError:
                names = []
            groups = self._dirs[folder] = group_names(names)
        return groups

    def members(self, path: str) -> list[tuple[str, str]]:
        """(path, kind) of the photo item that the file `path` belongs to, the photo
        first ("photo"); `path` alone when it belongs to none."""
        folder, name = os.path.split(path)
        return [(os.path.join(folder, n), k) for n, k in self.folder(folder).members(name)]
