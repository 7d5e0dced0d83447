"""Duplicate groups: exact copies, perceptual (phash) near-copies and DINOv2 look-alikes.

`find_duplicates` is a job (a generator of `Progress`, see `progress.drive`)
that returns `Group`s, each with one keeper chosen by a `KeeperPolicy` and the
other members labelled with their relation to it. Nothing here changes a file:
the caller trashes what the user confirms, through `Library.trash`.

Methods and thresholds
----------------------
``exact``
    Equal sha256. No threshold.
``phash``
    Hamming distance between the 64-bit perceptual hashes of the *display*
    images (EXIF orientation applied) is at most ``threshold`` bits; default
    ``DEFAULT_THRESHOLD["phash"] = 8``. Measured on the generated test photos:
    resized, recompressed (quality 60) and EXIF-rotated copies sit at 0–4 bits,
    mild edits (brightness, contrast, a small crop) at 0–10, while distinct
    photos average 32 bits (random halves of the DCT signs) and rarely come
    below 20. 8 keeps a wide margin on both sides; raise it to ~12 to also
    catch stronger crops and edits at the cost of more look-alike false matches.
    phash cannot see through a 90° turn of the pixels, so with
    ``rotations=True`` every photo is also decoded (small) and hashed in its 8
    dihedral variants (turns and mirrors): this costs a decode per photo, so it
    runs only when asked.
``dino``
    Cosine similarity of the L2-normalised DINOv2 class tokens is at least
    ``threshold``; default ``DEFAULT_THRESHOLD["dino"] = 0.95``. With DINOv2
    class tokens, copies, resizes and re-encodes of one photo typically land
    above ~0.98, shots of one scene seconds apart (bursts) around 0.93–0.98,
    and merely related photos (same place, same subject) lower, so 0.95 groups
    copies and near-identical bursts without merging a whole holiday. (These
    are typical figures for trained weights; the test suite's random weights
    say nothing about them, so tests use synthetic vectors.)

``upper`` is an optional upper bound on the *similarity* of a linked pair, on
the same 0..1 scale as `Member.score` (dino: cosine; phash: 1 - bits/64): pairs
more similar than ``upper`` are not linked. With ``threshold=0.90,
upper=0.98`` the dino method finds "similar shots" while leaving plain copies
out (those are what ``exact``/``phash`` are for). ``exact`` takes no ``upper``.

Scale: see core/dupe_pairs.py (multi-index hashing for phash, FAISS for dino).

Groups
------
The same file reached through several paths (hard links, a symlink, case
variants on a case-insensitive disk) has one (device, inode): such rows are
collapsed to one member first (a path in a reference folder, else the
shortest), so a file is never offered as a duplicate of itself. Pairs are then
joined transitively (union-find): if A~B and B~C, A, B and C form one group,
so members may be further from the keeper than the threshold.

Reference folders never give up a file: a reference member is the preferred
keeper, other reference members stay in the group with ``is_reference=True``
(front ends must not mark them) and are not counted in ``reclaimable``. A group
made only of reference members is dropped, as there is nothing to do.

Cancellation raises `Cancelled`: a partial answer could hold a group that is
missing its best member, and then a worse copy would look like the keeper.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.catalog import companions as stored_companions
from dino_desktop.core.db import Folder, ImageRow
from dino_desktop.core.dupe_pairs import (
    PHASE,
    PHASH_BITS,
    dihedral_hashes,
    dino_pairs,
    phash_links,
    vectors_of,
)
from dino_desktop.core.images import is_raw_format
from dino_desktop.core.progress import CancelToken, Job, Progress

METHODS = ("exact", "phash", "dino")
DEFAULT_THRESHOLD: dict[str, float] = {"phash": 8, "dino": 0.95}
RELATIONS = ("identical", "resized", "re-encoded", "rotated", "cropped", "edited", "similar shot")

MAX_PHASH_THRESHOLD = 20
"""Above ~20 bits unrelated photos start to match (distinct ones average 32)."""
NEAR_BITS = 4
"""phash distance up to which two same-size images count as the same picture (re-encoded)."""
NEAR_COSINE = 0.98
"""dino similarity below which a match is a similar shot rather than a copy."""
SHOT_BITS = 10
"""phash distance above which a match (joined through others) is a similar shot."""
ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class Member:
    """One photo of a group, as the front ends show it."""

    image_id: int
    path: str
    size: int
    width: int
    height: int
    format: str | None
    taken_at: datetime | None
    camera: str | None
    is_reference: bool
    score: float
    """Similarity to the keeper: 1.0 for the keeper and identical files;
    phash: 1 - bits/64 (best over turns/mirrors with rotations); dino: cosine."""
    relation: str
    """"keeper" for the keeper, else one of RELATIONS."""
    companions: tuple[str, ...] = ()
    """Its companion files (RAW, Live Photo video, sidecars): removed with it."""


@dataclass(frozen=True)
class Group:
    """Photos that duplicate each other; `keeper` is the one to keep."""

    method: str
    keeper: Member
    others: list[Member]
    """Every other member: removal candidates (not in a reference folder) first."""
    reclaimable: int
    """Bytes freed by removing every member in `others` that is not in a reference folder."""

    @property
    def members(self) -> list[Member]:
        """The keeper first, then the others."""
        return [self.keeper, *self.others]

    @property
    def candidates(self) -> list[Member]:
        """The members that may be removed (never the keeper, never a reference member)."""
        return [m for m in self.others if not m.is_reference]


# Original (often lossless or the camera's own HEIC) before conversions to lossy formats.
_FORMAT_TIERS: tuple[tuple[str, ...], ...] = (
    ("HEIF", "HEIC", "AVIF", "PNG", "TIFF", "DNG"),
    ("BMP",),
    ("JPEG", "MPO", "WEBP"),
    ("GIF",),
)


@dataclass(frozen=True)
class KeeperPolicy:
    """How the keeper of a group is chosen; each rule breaks the ties of the ones before.

    1. ``prefer_reference``: a member in a reference folder (it can never be removed).
    2. Most pixels; members within ``pixel_tolerance`` of the largest count as tied,
       so a PNG is not beaten by a JPEG a few pixels larger.
       Then the copy with more companion files (its RAW original, Live Photo
       video, XMP edits): removing it would take them along.
    3. Original over re-encode: the best ``format_tiers`` rank (HEIF/PNG/TIFF
       before JPEG/WEBP before GIF), then the larger file (a recompression shrinks).
    4. More metadata: date taken and camera present.
    5. The oldest file (mtime): a copy is made after its original.
    6. The shortest path, then the path itself, so the choice is deterministic.
    """

    prefer_reference: bool = True
    pixel_tolerance: float = 0.02
    format_tiers: tuple[tuple[str, ...], ...] = field(default=_FORMAT_TIERS)

    def format_rank(self, fmt: str | None) -> int:
        name = (fmt or "").upper()
        if is_raw_format(name):
            return 0  # a camera RAW is the original of everything made from it
        for rank, tier in enumerate(self.format_tiers):
            if name in tier:
                return rank
        return len(self.format_tiers)  # unknown formats last

    def sort_key(self, cands: Sequence[_Cand]) -> Callable[[_Cand], tuple[Any, ...]]:
        """A sort key over one group's members: sorted by it, the first is the keeper."""
        most = max(c.pixels for c in cands)
        tied = most * (1.0 - self.pixel_tolerance)

        def key(c: _Cand) -> tuple[Any, ...]:
            return (
                self.prefer_reference and not c.is_reference,
                c.pixels < tied,  # the tied largest first, then by pixels
                0 if c.pixels >= tied else -c.pixels,
                -len(c.companions),  # the copy with its RAW and sidecars
                self.format_rank(c.format),
                -c.size,
                -((c.taken_at is not None) + (c.camera is not None)),
                c.mtime_ns,
                len(c.path),
                c.path,
            )

        return key


@dataclass(slots=True)
class _Cand:
    """A readable photo as the grouping needs it (one per file on disk)."""

    image_id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    phash: int | None
    width: int
    height: int
    orientation: int
    taken_at: datetime | None
    camera: str | None
    format: str | None
    is_reference: bool
    dev: int | None
    inode: int | None
    companions: tuple[str, ...] = ()

    @property
    def pixels(self) -> int:
        return self.width * self.height


class _UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def components(self) -> list[list[int]]:
        """The sets of two or more elements, each sorted, in order of their smallest element."""
        groups: dict[int, list[int]] = {}
        for x in range(len(self.parent)):
            if self.size[self.find(x)] > 1:
                groups.setdefault(self.find(x), []).append(x)
        return list(groups.values())


# ---- the job ------------------------------------------------------------------


def find_duplicates(
    sessions: sessionmaker[Session],
    method: str = "exact",
    threshold: float | None = None,
    *,
    upper: float | None = None,
    rotations: bool = False,
    vectors: tuple[np.ndarray, np.ndarray] | None = None,
    cancel: CancelToken | None = None,
    policy: KeeperPolicy | None = None,
) -> Job[list[Group]]:
    """Find duplicate groups among the library's readable photos; yields Progress.

    `method`: "exact", "phash" or "dino" (see the module docstring for
    `threshold` and `upper`). `rotations` (phash only) also matches turned and
    mirrored copies. `vectors` (dino only) = (image ids int64, unit float32
    vectors, one row each). Returns groups sorted by reclaimable bytes, largest
    first. Raises ValueError at once for a bad argument, and `Cancelled` from
    the job when `cancel` is set.
    """
    if method not in METHODS:
        raise ValueError(f"unknown duplicate method {method!r}; choose from {', '.join(METHODS)}")
    if method == "exact":
        if threshold is not None or upper is not None:
            raise ValueError("the exact method takes no threshold")
        limit = 0.0
    else:
        limit = float(DEFAULT_THRESHOLD[method] if threshold is None else threshold)
    if method == "phash" and not (0 <= limit <= MAX_PHASH_THRESHOLD):
        raise ValueError(f"phash threshold must be 0..{MAX_PHASH_THRESHOLD} bits, got {limit:g}")
    if method == "dino":
        if not (0.0 < limit <= 1.0):
            raise ValueError(f"dino threshold must be a cosine in (0, 1], got {limit:g}")
        if vectors is None:
            raise ValueError("the dino method needs the photos' embeddings (vectors)")
    if upper is not None and not (0.0 < upper <= 1.0):
        raise ValueError(f"upper must be a similarity in (0, 1], got {upper:g}")
    if rotations and method != "phash":
        raise ValueError("rotations applies to the phash method only")
    return _find(
        sessions,
        method,
        limit,
        upper,
        rotations,
        vectors,
        cancel or CancelToken(),
        policy or KeeperPolicy(),
    )


def _find(
    sessions: sessionmaker[Session],
    method: str,
    limit: float,
    upper: float | None,
    rotations: bool,
    vectors: tuple[np.ndarray, np.ndarray] | None,
    cancel: CancelToken,
    policy: KeeperPolicy,
) -> Job[list[Group]]:
    yield Progress(PHASE, 0, None, None, "reading the library")
    cands = _collapse_same_files(_load_candidates(sessions))
    cancel.check()
    uf = _UnionFind(len(cands))
    variants: dict[int, list[int]] = {}
    unit: np.ndarray | None = None
    rows: dict[int, int] = {}

    if method == "exact":
        by_sha: dict[str, int] = {}
        for i, c in enumerate(cands):
            if c.sha256:
                uf.union(by_sha.setdefault(c.sha256, i), i)
    elif method == "phash":
        bits = int(limit)
        # A pair's similarity 1 - d/64 must stay <= upper: d >= 64 (1 - upper).
        min_bits = 0 if upper is None else math.ceil(PHASH_BITS * (1.0 - upper) - 1e-9)
        if rotations:
            variants = yield from dihedral_hashes(cands, cancel)
        for a, b in (yield from phash_links(cands, variants, bits, min_bits, cancel)):
            uf.union(a, b)
    else:
        assert vectors is not None
        unit, rows, index_of = vectors_of(cands, vectors)
        i_idx, j_idx = yield from dino_pairs(unit, limit, upper, cancel)
        for a, b in zip(index_of[i_idx].tolist(), index_of[j_idx].tolist(), strict=True):
            uf.union(a, b)

    cancel.check()
    components = uf.components()
    groups: list[Group] = []
    for done, comp in enumerate(components, 1):
        group = _make_group(method, comp, cands, policy, variants, unit, rows)
        if group is not None:
            groups.append(group)
        if done % 1000 == 0:
            cancel.check()
            yield Progress(PHASE, done, len(components), None, "choosing keepers")
    groups.sort(key=lambda g: (-g.reclaimable, g.keeper.path))
    yield Progress(PHASE, len(components), len(components), None, f"{len(groups)} groups")
    return groups


# ---- candidates -----------------------------------------------------------------


def _load_candidates(sessions: sessionmaker[Session]) -> list[_Cand]:
    paths = {i: tuple(c.path for c in f) for i, f in stored_companions(sessions).items()}
    with sessions() as session:
        result = session.execute(
            select(
                ImageRow.id,
                Folder.path,
                ImageRow.relpath,
                ImageRow.size,
                ImageRow.mtime_ns,
                ImageRow.sha256,
                ImageRow.phash,
                ImageRow.width,
                ImageRow.height,
                ImageRow.orientation,
                ImageRow.taken_at,
                ImageRow.camera,
                ImageRow.format,
                Folder.is_reference,
                ImageRow.dev,
                ImageRow.inode,
            )
            .join(Folder)
            .where(ImageRow.status == "ok")
            .order_by(ImageRow.id)
        )
        return [
            _Cand(
                image_id=image_id,
                path=os.path.join(root, rel),
                size=size,
                mtime_ns=mtime_ns,
                sha256=sha,
                phash=int(ph, 16) if ph else None,
                width=width or 0,
                height=height or 0,
                orientation=orientation or 1,
                taken_at=taken_at,
                camera=camera,
                format=fmt,
                is_reference=bool(is_ref),
                dev=dev,
                inode=inode,
                companions=paths.get(image_id, ()),
            )
            for (
                image_id,
                root,
                rel,
                size,
                mtime_ns,
                sha,
                ph,
                width,
                height,
                orientation,
                taken_at,
                camera,
                fmt,
                is_ref,
                dev,
                inode,
            ) in result
        ]


def _collapse_same_files(cands: list[_Cand]) -> list[_Cand]:
    """One candidate per file on disk: rows with equal (dev, inode) are one file's paths.

    The path kept is one in a reference folder if any (so the file stays
    protected), else the shortest.
    """
    best: dict[tuple[int, int], _Cand] = {}
    out: list[_Cand] = []
    for c in cands:
        if c.dev is None or c.inode is None:  # identity unknown: a file of its own
            out.append(c)
            continue
        key = (c.dev, c.inode)
        seen = best.get(key)
        if seen is None or (not c.is_reference, len(c.path), c.path) < (
            not seen.is_reference,
            len(seen.path),
            seen.path,
        ):
            best[key] = c
    out.extend(best.values())
    out.sort(key=lambda c: c.image_id)
    return out


# ---- groups ---------------------------------------------------------------------


def _make_group(
    method: str,
    comp: list[int],
    cands: list[_Cand],
    policy: KeeperPolicy,
    variants: dict[int, list[int]],
    unit: np.ndarray | None,
    rows: dict[int, int],
) -> Group | None:
    if all(cands[i].is_reference for i in comp):
        return None  # nothing may be removed: nothing to do
    key = policy.sort_key([cands[i] for i in comp])
    ordered = sorted(comp, key=lambda i: key(cands[i]))
    keeper = ordered[0]
    others: list[Member] = []
    for i in ordered[1:]:
        cosine = None
        if unit is not None and keeper in rows and i in rows:
            cosine = float(np.dot(unit[rows[keeper]], unit[rows[i]]))
        score, relation = _relate(
            method, cands[keeper], cands[i], variants.get(keeper, []), variants.get(i, []), cosine
        )
        others.append(_member(cands[i], score, relation))
    # Removal candidates first, the closest copies (the safest to remove) on top.
    others.sort(key=lambda m: (m.is_reference, -m.score, m.path))
    reclaimable = sum(m.size for m in others if not m.is_reference)
    return Group(method, _member(cands[keeper], 1.0, "keeper"), others, reclaimable)


def _bits(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _relate(
    method: str,
    keeper: _Cand,
    other: _Cand,
    keeper_variants: list[int],
    other_variants: list[int],
    cosine: float | None,
) -> tuple[float, str]:
    """(score, relation) of a member to its group's keeper.

    The first rule that applies wins:
    identical (same bytes) → similar shot (both dated, at different times: another
    exposure, e.g. a burst) → rotated (display size turned, another EXIF
    orientation, or matched only through a turn/mirror) → similar shot (dino
    cosine below NEAR_COSINE, or phash further than SHOT_BITS) → resized (same
    aspect within 1 %, other size) / cropped (other aspect) → re-encoded (same
    size, phash within NEAR_BITS) / edited (same size, phash further).
    """
    direct: int | None = None
    turned: int | None = None
    if keeper.phash is not None and other.phash is not None:
        direct = _bits(keeper.phash, other.phash)
        variant_bits = [_bits(keeper.phash, v) for v in other_variants]
        variant_bits += [_bits(other.phash, v) for v in keeper_variants]
        turned = min(variant_bits, default=None)
    best = direct if turned is None or direct is None else min(direct, turned)
    if method == "dino" and cosine is not None:
        score = cosine
    elif method == "phash" and best is not None:
        score = 1.0 - best / PHASH_BITS
    else:
        score = 1.0
    if keeper.sha256 is not None and keeper.sha256 == other.sha256:
        return 1.0, "identical"
    if None not in (keeper.taken_at, other.taken_at) and keeper.taken_at != other.taken_at:
        return score, "similar shot"
    via_turn = direct is not None and turned is not None and direct > NEAR_BITS and turned < direct
    if via_turn or _turned_size(keeper, other) or keeper.orientation != other.orientation:
        return score, "rotated"
    if method == "dino" and cosine is not None and cosine < NEAR_COSINE:
        return score, "similar shot"
    if method == "phash" and best is not None and best > SHOT_BITS:
        return score, "similar shot"
    if (other.width, other.height) != (keeper.width, keeper.height):
        return score, "resized" if _same_aspect(keeper, other) else "cropped"
    if direct is None or direct <= NEAR_BITS:
        return score, "re-encoded"
    return score, "edited"


def _aspect(c: _Cand) -> float:
    return c.width / c.height if c.height else 0.0


def _same_aspect(a: _Cand, b: _Cand) -> bool:
    ra, rb = _aspect(a), _aspect(b)
    return ra > 0 and abs(ra - rb) <= ASPECT_TOLERANCE * ra


def _turned_size(a: _Cand, b: _Cand) -> bool:
    """b's display is a's turned a quarter (aspect inverted; a square says nothing)."""
    ra, rb = _aspect(a), _aspect(b)
    if ra <= 0 or rb <= 0 or abs(ra - 1.0) <= ASPECT_TOLERANCE:
        return False
    return abs(ra * rb - 1.0) <= ASPECT_TOLERANCE


def _member(c: _Cand, score: float, relation: str) -> Member:
    return Member(
        image_id=c.image_id,
        path=c.path,
        size=c.size,
        width=c.width,
        height=c.height,
        format=c.format,
        taken_at=c.taken_at,
        camera=c.camera,
        is_reference=c.is_reference,
        score=score,
        relation=relation,
        companions=c.companions,
    )
