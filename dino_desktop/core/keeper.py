"""Keeper rules: which member of a duplicate group is kept, in an order the user sets.

A group's members are ranked by an ordered list of rules; each rule only breaks
the ties the rules before it left (a staged sort, so a rule that must read a
file, like the GPS part of ``metadata``, runs only for the members still tied).
The first member is the keeper. Every member also gets a ``why``: the first
rule on which the keeper beat it, with the evidence in numbers.

Rules (names are the CLI's ``--prefer`` words and the settings' ``keeper_rules``)
--------------------------------------------------------------------------------
``reference``     a member in a reference folder (it can never be removed). Always
                  first, whatever the order given: a rule list cannot make a
                  protected file a removal candidate.
``preferred``     a member inside one of the preferred folders (settings
                  ``preferred_folders``; an earlier folder wins over a later one).
``raw``           a camera RAW, or a photo with its RAW original as a companion:
                  the original of everything made from it.
``companions``    more companion files (Live Photo video, sidecars with edits):
                  removing that copy would take them along.
``pixels``        more pixels; members within 2 % of the largest count as tied, so
                  a PNG is not beaten by a JPEG a few pixels larger.
``format``        the better format by ``format_order`` (default HEIF > AVIF > JXL
                  > PNG > TIFF > JPEG > WEBP > GIF; editable; unknown formats last).
``file-size``     the larger file (a recompression shrinks).
``metadata``      more of date taken, camera and GPS position.
``oldest``        the earliest date taken (undated last), then the oldest file: a
                  copy is made after its original.
``newest``        the latest date taken, then the newest file (for "keep my edit").
``shorter-path``  the shorter path (a copy often sits deeper: "backup/old/x.jpg").

The default order, `DEFAULT_RULES`, and why: files that must not be separated
or lost come first (reference, the folders the user prefers, a RAW pair, a
photo with its Live Photo video or edits); then picture quality (pixels, then
format); then metadata, because the camera's original carries its date, camera
and position while exports and edits often drop them (an edited copy can be
the larger file: a brightened JPEG grows); then the larger file (a
recompression shrinks); then age (the original is the older file); then the
shorter path. The final tie-break is the path itself, so the choice is
deterministic.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dino_desktop.core.raw import is_raw_format, is_raw_path

RULES: tuple[str, ...] = (
    "reference",
    "preferred",
    "raw",
    "companions",
    "pixels",
    "format",
    "file-size",
    "metadata",
    "oldest",
    "newest",
    "shorter-path",
)
DEFAULT_RULES: tuple[str, ...] = (
    "reference",
    "preferred",
    "raw",
    "companions",
    "pixels",
    "format",
    "metadata",
    "file-size",
    "oldest",
    "shorter-path",
)
DEFAULT_FORMAT_ORDER: tuple[str, ...] = (
    "HEIF",
    "AVIF",
    "JXL",
    "PNG",
    "TIFF",
    "BMP",
    "JPEG",
    "MPO",
    "WEBP",
    "GIF",
)
_FORMAT_ALIASES = {"HEIC": "HEIF", "JPG": "JPEG", "TIF": "TIFF", "JPEGXL": "JXL"}
PIXEL_TOLERANCE = 0.02


class Candidate(Protocol):
    """What the rules read of a group member (core/duplicates.py's `_Cand`)."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def format(self) -> str | None: ...
    @property
    def taken_at(self) -> datetime | None: ...
    @property
    def camera(self) -> str | None: ...
    @property
    def is_reference(self) -> bool: ...
    @property
    def companions(self) -> tuple[str, ...]: ...


def format_name(name: str) -> str:
    """A format word as the catalog stores it (HEIC -> HEIF, JPG -> JPEG)."""
    up = name.strip().upper()
    return _FORMAT_ALIASES.get(up, up)


def parse_rules(text: str | Sequence[str]) -> tuple[str, ...]:
    """Rules from "pixels,format" (or a list): checked, deduplicated, ``reference`` first.

    Rules not named keep no place: the list given is the whole order (after
    reference). Raises ValueError naming the unknown words.
    """
    words = [w.strip().lower() for w in (text.split(",") if isinstance(text, str) else text)]
    words = [w for w in words if w]
    unknown = [w for w in words if w not in RULES]
    if unknown:
        raise ValueError(
            f"unknown keeper rule(s) {', '.join(unknown)}; choose from {', '.join(RULES)}"
        )
    if "oldest" in words and "newest" in words:
        raise ValueError("choose one of oldest and newest")
    out: list[str] = ["reference"]
    for w in words:
        if w not in out:
            out.append(w)
    return tuple(out)


def _has_gps(path: str) -> bool:
    """Whether the file's EXIF holds a GPS position (read only for members still tied)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            gps = img.getexif().get_ifd(0x8825)
    except Exception:  # unreadable metadata is simply absent
        return False
    return bool(gps.get(2) and gps.get(4))  # GPSLatitude and GPSLongitude


def _size(c: Candidate) -> str:
    return f"{c.width}×{c.height}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def _date(d: datetime | None) -> str:
    return d.isoformat(sep=" ", timespec="seconds") if d else "no date"


@dataclass(frozen=True)
class KeeperRules:
    """An ordered rule list (see the module docstring) and what the rules read."""

    order: tuple[str, ...] = DEFAULT_RULES
    format_order: tuple[str, ...] = DEFAULT_FORMAT_ORDER
    preferred_folders: tuple[str, ...] = ()
    pixel_tolerance: float = PIXEL_TOLERANCE
    gps_of: Callable[[str], bool] = field(default=_has_gps, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Reference first always, whatever the caller built.
        object.__setattr__(self, "order", parse_rules(self.order))
        object.__setattr__(self, "format_order", tuple(format_name(f) for f in self.format_order))

    # ---- rule keys (lower is better) ------------------------------------------

    def format_rank(self, fmt: str | None) -> int:
        name = format_name(fmt or "")
        if name and is_raw_format(name):
            return -1  # a camera RAW is the original of everything made from it
        try:
            return self.format_order.index(name)
        except ValueError:
            return len(self.format_order)

    def _preferred_rank(self, path: str) -> int:
        for rank, folder in enumerate(self.preferred_folders):
            root = os.path.normcase(os.path.abspath(folder)).rstrip(os.sep) + os.sep
            if os.path.normcase(path).startswith(root):
                return rank
        return len(self.preferred_folders)

    @staticmethod
    def _is_raw(c: Candidate) -> bool:
        return is_raw_format(c.format or "") or any(is_raw_path(p) for p in c.companions)

    def _metadata(self, c: Candidate) -> int:
        return (c.taken_at is not None) + (c.camera is not None) + bool(self.gps_of(c.path))

    def _key(self, rule: str, c: Candidate, most: int) -> Any:
        if rule == "reference":
            return not c.is_reference
        if rule == "preferred":
            return self._preferred_rank(c.path)
        if rule == "raw":
            return not self._is_raw(c)
        if rule == "companions":
            return -len(c.companions)
        if rule == "pixels":
            pixels = c.width * c.height
            tied = pixels >= most * (1.0 - self.pixel_tolerance)
            return (False, 0) if tied else (True, -pixels)
        if rule == "format":
            return self.format_rank(c.format)
        if rule == "file-size":
            return -c.size
        if rule == "metadata":
            return -self._metadata(c)
        if rule == "oldest":
            return (c.taken_at is None, c.taken_at or datetime.min, c.mtime_ns)
        if rule == "newest":
            stamp = c.taken_at.timestamp() if c.taken_at else float("inf")
            return (c.taken_at is None, -stamp, -c.mtime_ns)
        if rule == "shorter-path":
            return len(c.path)
        raise AssertionError(rule)

    # ---- ranking ---------------------------------------------------------------

    def rank(self, cands: Sequence[Candidate]) -> list[int]:
        """Indexes of `cands`, best first: the first is the keeper."""
        most = max((c.width * c.height for c in cands), default=0)
        keys: dict[tuple[str, int], Any] = {}

        def key(rule: str, i: int) -> Any:
            k = (rule, i)
            if k not in keys:
                keys[k] = self._key(rule, cands[i], most)
            return keys[k]

        def order(idx: list[int], depth: int) -> list[int]:
            if len(idx) < 2:
                return idx
            if depth == len(self.order):
                return sorted(idx, key=lambda i: cands[i].path)
            rule = self.order[depth]
            out: list[int] = []
            groups: dict[Any, list[int]] = {}
            for i in idx:
                groups.setdefault(key(rule, i), []).append(i)
            for k in sorted(groups):
                out.extend(order(groups[k], depth + 1))
            return out

        return order(list(range(len(cands))), 0)

    def why(self, keeper: Candidate, other: Candidate, cands: Sequence[Candidate]) -> str:
        """The first rule on which `keeper` beat `other`, with the figures, as
        "more pixels (4032×3024 vs 2016×1512)"; "" when nothing but the path decided."""
        most = max((c.width * c.height for c in cands), default=0)
        for rule in self.order:
            a, b = self._key(rule, keeper, most), self._key(rule, other, most)
            if a != b:
                return self._say(rule, keeper, other)
        return "same on every rule; the first by path"

    def _say(self, rule: str, k: Candidate, o: Candidate) -> str:
        if rule == "reference":
            return "in a reference folder"
        if rule == "preferred":
            rank = self._preferred_rank(k.path)
            if rank >= len(self.preferred_folders):
                return "not in a preferred folder"
            return f"in a preferred folder ({self.preferred_folders[rank]})"
        if rule == "raw":
            return "RAW original" if is_raw_format(k.format or "") else "has its RAW original"
        if rule == "companions":
            return f"more companion files ({len(k.companions)} vs {len(o.companions)})"
        if rule == "pixels":
            return f"more pixels ({_size(k)} vs {_size(o)})"
        if rule == "format":
            return f"better format ({k.format or '?'} over {o.format or '?'})"
        if rule == "file-size":
            return f"larger file ({_mb(k.size)} vs {_mb(o.size)})"
        if rule == "metadata":
            return (
                f"more metadata ({self._metadata(k)} vs {self._metadata(o)} of date, camera, GPS)"
            )
        if rule == "oldest":
            if k.taken_at != o.taken_at:
                return f"taken earlier ({_date(k.taken_at)} vs {_date(o.taken_at)})"
            return "older file"
        if rule == "newest":
            if k.taken_at != o.taken_at:
                return f"taken later ({_date(k.taken_at)} vs {_date(o.taken_at)})"
            return "newer file"
        if rule == "shorter-path":
            return f"shorter path ({len(k.path)} vs {len(o.path)} characters)"
        raise AssertionError(rule)

    def warning(self, keeper: Candidate, others: Sequence[Candidate]) -> str | None:
        """When a reference-folder keeper is smaller than a copy outside reference folders.

        Smaller: fewer pixels (beyond the tolerance), or as many pixels and a file
        under 90 % of the copy's bytes (a recompressed reference copy).
        """
        if not keeper.is_reference:
            return None
        kp = keeper.width * keeper.height
        for o in others:
            if o.is_reference:
                continue
            op = o.width * o.height
            if kp < op * (1.0 - self.pixel_tolerance):
                return (
                    f"the reference copy ({_size(keeper)}) is smaller than "
                    f"{os.path.basename(o.path)} ({_size(o)}) outside reference folders"
                )
            if kp <= op * (1.0 + self.pixel_tolerance) and keeper.size < 0.9 * o.size:
                return (
                    f"the reference copy ({_mb(keeper.size)}) is a smaller file than "
                    f"{os.path.basename(o.path)} ({_mb(o.size)}) outside reference folders"
                )
        return None
