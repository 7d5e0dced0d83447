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

Scale
-----
phash pairs come from multi-index hashing: the 64 bits are cut into m blocks;
two hashes within t bits differ by at most floor(t/m) bits in at least one
block (pigeonhole), so bucketing by each block, probed with every flip of at
most floor(t/m) bits, finds every pair without an all-pairs loop. m is chosen
by a small cost model (see `_block_plan`); 100,000 hashes take seconds.
dino pairs come from FAISS: an exact range search (``IndexFlatIP``) up to
`EXACT_LIMIT` vectors, above that an ``IndexIVFFlat`` (inner product,
nlist ≈ 4·sqrt(n), trained on a sample) searched for the k nearest neighbours
of every vector, keeping those above the threshold. The approximate search can
miss a pair (bench/duplicates.py measures planted-pair recall: 1.0 at 100k and 1M);
a photo whose k neighbours are all above the threshold is searched again with
a larger k so a big burst is not cut short.

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
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import Folder, ImageRow
from dino_desktop.core.progress import CancelToken, Job, Progress

METHODS = ("exact", "phash", "dino")
DEFAULT_THRESHOLD: dict[str, float] = {"phash": 8, "dino": 0.95}
RELATIONS = ("identical", "resized", "re-encoded", "rotated", "cropped", "edited", "similar shot")

PHASH_BITS = 64
MAX_PHASH_THRESHOLD = 20
"""Above ~20 bits unrelated photos start to match (distinct ones average 32)."""
EXACT_LIMIT = 20_000
"""Up to this many vectors the dino pairs come from an exact range search."""
KNN = 10
"""Neighbours kept per photo by the approximate dino search."""
NPROBE = 12
NEAR_BITS = 4
"""phash distance up to which two same-size images count as the same picture (re-encoded)."""
NEAR_COSINE = 0.98
"""dino similarity below which a match is a similar shot rather than a copy."""
SHOT_BITS = 10
"""phash distance above which a match (joined through others) is a similar shot."""
ASPECT_TOLERANCE = 0.01

_PHASE = "duplicates"
_PAIR_CHUNK = 4_000_000  # candidate pairs verified at once: bounds the join's memory
_QUERY_CHUNK = 4096  # vectors per FAISS call: the unit of progress and cancellation


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
    yield Progress(_PHASE, 0, None, None, "reading the library")
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
            variants = yield from _dihedral_hashes(cands, cancel)
        for a, b in (yield from _phash_links(cands, variants, bits, min_bits, cancel)):
            uf.union(a, b)
    else:
        assert vectors is not None
        unit, rows, index_of = _vectors_of(cands, vectors)
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
            yield Progress(_PHASE, done, len(components), None, "choosing keepers")
    groups.sort(key=lambda g: (-g.reclaimable, g.keeper.path))
    yield Progress(_PHASE, len(components), len(components), None, f"{len(groups)} groups")
    return groups


# ---- candidates -----------------------------------------------------------------


def _load_candidates(sessions: sessionmaker[Session]) -> list[_Cand]:
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


# ---- phash ----------------------------------------------------------------------

try:
    _bitwise_count: Callable[[np.ndarray], np.ndarray] | None = np.bitwise_count  # numpy >= 2
except AttributeError:  # pragma: no cover - numpy 1.x
    _bitwise_count = None
_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64, as int64."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if _bitwise_count is not None:
        counted: np.ndarray = _bitwise_count(x).astype(np.int64)
        return counted
    summed: np.ndarray = _BYTE_BITS[x.view(np.uint8).reshape(-1, 8)].sum(axis=1, dtype=np.int64)
    return summed


def _block_plan(n: int, t: int) -> list[tuple[int, int, int]]:
    """Blocks (shift, width, radius) for multi-index hashing of n hashes within t bits.

    With m blocks, a pair within t bits is within r = t // m bits in some block.
    Each block costs one probe per flip pattern of up to r of its bits (C(w, 0..r)
    patterns), each probe a binary search per hash plus the verification of the
    hashes that share the probed key (n / 2^w each, if keys were uniform). Few
    blocks mean many flip patterns; many blocks mean crowded buckets; the plan
    with the least estimated work wins.
    """
    log_n = math.log2(max(n, 2))
    best: tuple[float, int] = (math.inf, 1)
    for m in range(1, min(t + 1, 16) + 1):
        radius = t // m
        cost = 0.0
        for width in _widths(m):
            probes = sum(math.comb(width, k) for k in range(radius + 1))
            cost += probes * (log_n + n / 2.0**width)
        best = min(best, (cost, m))
    m = best[1]
    plan: list[tuple[int, int, int]] = []
    shift = 0
    for width in _widths(m):
        plan.append((shift, width, t // m))
        shift += width
    return plan


def _widths(m: int) -> list[int]:
    base, extra = divmod(PHASH_BITS, m)
    return [base + (1 if k < extra else 0) for k in range(m)]


def hamming_pairs(
    hashes: np.ndarray, max_bits: int, min_bits: int = 0, cancel: CancelToken | None = None
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray]]:
    """Every pair i < j of `hashes` (uint64) with min_bits <= Hamming distance <= max_bits.

    Multi-index hashing (see `_block_plan`); yields Progress per probe. Returns
    two int64 arrays (i, j), each pair once.
    """
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    plan = _block_plan(n, max_bits)
    probes = [(shift, width, _flip_masks(width, radius)) for shift, width, radius in plan]
    total_probes = sum(len(masks) for _, _, masks in probes)
    arange = np.arange(n, dtype=np.int64)
    done = 0
    for shift, width, masks in probes:
        keys = ((h >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        for mask in masks:
            if cancel is not None:
                cancel.check()
            query = keys ^ mask
            lo = np.searchsorted(sorted_keys, query, "left")
            hi = np.searchsorted(sorted_keys, query, "right")
            counts = hi - lo
            # Only queries that hit something, in slices that bound the expansion.
            hit = np.flatnonzero(counts)
            cum = np.cumsum(counts[hit])
            start = 0
            while start < len(hit):
                stop = int(np.searchsorted(cum, (cum[start - 1] if start else 0) + _PAIR_CHUNK))
                stop = max(stop, start + 1)
                qi = hit[start:stop]
                cnt = counts[qi]
                total = int(cnt.sum())
                i = np.repeat(arange[qi], cnt)
                offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
                j = order[np.repeat(lo[qi], cnt) + offsets]
                keep = i < j  # each unordered pair once, never a hash with itself
                i, j = i[keep], j[keep]
                dist = popcount64(h[i] ^ h[j])
                ok = (dist <= max_bits) & (dist >= min_bits)
                found_i.append(i[ok])
                found_j.append(j[ok])
                start = stop
            done += 1
            yield Progress(_PHASE, done, total_probes, None, "comparing")
    if not found_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # The same pair is found through several blocks: keep it once.
    pair = np.unique(np.concatenate(found_i) * n + np.concatenate(found_j))
    return pair // n, pair % n


def _flip_masks(width: int, radius: int) -> list[int]:
    """Every pattern of up to `radius` set bits out of `width` (0 first)."""
    masks = [0]
    for k in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(width), k))
    return masks


def _phash_links(
    cands: list[_Cand],
    variants: dict[int, list[int]],
    max_bits: int,
    min_bits: int,
    cancel: CancelToken,
) -> Generator[Progress, None, list[tuple[int, int]]]:
    """Links (candidate index pairs) between photos whose hashes are within the band.

    Without variants, each photo has one hash and a link is a close pair. With
    variants, a photo's own hash is compared with every turn/mirror of the
    others. The join runs over distinct hash values (equal hashes are common:
    copies), and a close pair of values links every photo behind them.
    """
    owner: list[int] = []
    value: list[int] = []
    is_own: list[bool] = []
    for idx, c in enumerate(cands):
        if c.phash is None:
            continue
        owner.append(idx)
        value.append(c.phash)
        is_own.append(True)
        for v in variants.get(idx, ()):
            owner.append(idx)
            value.append(v)
            is_own.append(False)
    if len(owner) < 2:
        return []
    uniq, inverse = np.unique(np.array(value, dtype=np.uint64), return_inverse=True)
    own: dict[int, list[int]] = {}  # value index -> photos whose own hash it is
    anyv: dict[int, list[int]] = {}  # value index -> photos with it as own hash or variant
    for o, u, mine in zip(owner, inverse.tolist(), is_own, strict=True):
        if mine:
            own.setdefault(u, []).append(o)
        lst = anyv.setdefault(u, [])
        if not lst or lst[-1] != o:
            lst.append(o)
    links: list[tuple[int, int]] = []

    def link(u1: int, u2: int) -> None:
        # A photo whose own hash is u1 matches every photo that shows u2 (as its
        # own hash or a variant); all of them join the first photo of u1.
        first = own.get(u1)
        if not first:
            return
        root = first[0]
        links.extend((root, o) for o in first[1:])
        links.extend((root, o) for o in anyv[u2] if o != root)

    if min_bits == 0:
        for u in own:
            link(u, u)
    i_idx, j_idx = yield from hamming_pairs(uniq, max_bits, min_bits, cancel)
    for a, b in zip(i_idx.tolist(), j_idx.tolist(), strict=True):
        link(a, b)
        link(b, a)
    return links


def _transposes() -> tuple[Any, ...]:
    from PIL import Image

    t = Image.Transpose
    return (
        t.FLIP_LEFT_RIGHT,
        t.FLIP_TOP_BOTTOM,
        t.ROTATE_90,
        t.ROTATE_180,
        t.ROTATE_270,
        t.TRANSPOSE,
        t.TRANSVERSE,
    )


def _variant_hashes(path: str) -> list[int] | None:
    """phash of the 7 turns/mirrors of a photo's display image (None if unreadable)."""
    import imagehash

    from dino_desktop.core.images import ImageError, open_image

    try:
        img = open_image(path, min_side=64)  # the same decode scale as the stored phash
    except (ImageError, OSError):
        return None
    return [int(str(imagehash.phash(img.transpose(t))), 16) for t in _transposes()]


def _dihedral_hashes(
    cands: list[_Cand], cancel: CancelToken
) -> Generator[Progress, None, dict[int, list[int]]]:
    """Variant hashes of every photo, decoded on a thread pool (Pillow releases the GIL)."""
    todo = [i for i, c in enumerate(cands) if c.phash is not None]
    out: dict[int, list[int]] = {}
    workers = max(1, min(8, os.cpu_count() or 2))
    window = 4 * workers  # a bounded queue: cancel stops within a few decodes
    yield Progress(_PHASE, 0, len(todo), None, "hashing turned and mirrored copies")
    with ThreadPoolExecutor(workers, thread_name_prefix="dup-variants") as pool:
        pending: dict[Future[list[int] | None], int] = {}
        next_item = 0
        done = 0
        try:
            while next_item < len(todo) or pending:
                while next_item < len(todo) and len(pending) < window:
                    idx = todo[next_item]
                    pending[pool.submit(_variant_hashes, cands[idx].path)] = idx
                    next_item += 1
                future = next(iter(pending))
                idx = pending.pop(future)
                result = future.result()
                if result is not None:
                    out[idx] = result
                done += 1
                cancel.check()
                yield Progress(
                    _PHASE, done, len(todo), cands[idx].path, "hashing turned and mirrored copies"
                )
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return out


# ---- dino -----------------------------------------------------------------------


def _vectors_of(
    cands: list[_Cand], vectors: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, dict[int, int], np.ndarray]:
    """The vectors of the candidates (aliases and unreadable photos dropped).

    Returns (unit vectors, candidate index -> row, row -> candidate index).
    """
    ids, vecs = vectors
    ids = np.asarray(ids, dtype=np.int64)
    vecs = np.asarray(vecs, dtype=np.float32)
    if vecs.ndim != 2 or len(vecs) != len(ids):
        raise ValueError("vectors must be (ids of shape (n,), vectors of shape (n, dim))")
    pos = {int(image_id): k for k, image_id in enumerate(ids.tolist())}
    take: list[int] = []
    index_of: list[int] = []
    for idx, c in enumerate(cands):
        k = pos.get(c.image_id)
        if k is not None:
            take.append(k)
            index_of.append(idx)
    sel = np.asarray(take, dtype=np.int64)
    unit = vecs if len(sel) == len(vecs) and np.all(sel == np.arange(len(vecs))) else vecs[sel]
    rows = {idx: r for r, idx in enumerate(index_of)}
    return np.ascontiguousarray(unit), rows, np.asarray(index_of, dtype=np.int64)


def dino_pairs(
    unit: np.ndarray,
    threshold: float,
    upper: float | None = None,
    cancel: CancelToken | None = None,
    *,
    exact_limit: int = EXACT_LIMIT,
    k: int = KNN,
    nprobe: int = NPROBE,
    nlist: int | None = None,
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray]]:
    """Row pairs i < j of unit vectors with threshold <= cosine (<= upper); yields Progress.

    Exact (range search) up to `exact_limit` rows, else IVF kNN (approximate).
    """
    import faiss

    x = np.ascontiguousarray(unit, dtype=np.float32)
    n = len(x)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    dim = x.shape[1]
    hi = np.inf if upper is None else upper
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    starts = range(0, n, _QUERY_CHUNK)
    if n <= exact_limit:
        index = faiss.IndexFlatIP(dim)
        index.add(x)
        for done, s in enumerate(starts, 1):
            if cancel is not None:
                cancel.check()
            # range_search keeps scores strictly above the radius: go a hair lower.
            lims, dist, ids = index.range_search(x[s : s + _QUERY_CHUNK], threshold - 1e-6)
            per_query: np.ndarray = np.diff(np.asarray(lims, dtype=np.int64))
            qi = s + np.repeat(np.arange(len(per_query), dtype=np.int64), per_query)
            ids = ids.astype(np.int64)
            keep = (ids > qi) & (dist >= threshold) & (dist <= hi)
            found_i.append(qi[keep])
            found_j.append(ids[keep])
            yield Progress(_PHASE, done, len(starts), None, "comparing embeddings")
    else:
        yield Progress(_PHASE, 0, len(starts), None, "building the approximate index")
        index = _ivf_index(x, nlist or int(4 * math.sqrt(n)))
        index.nprobe = nprobe
        if cancel is not None:
            cancel.check()
        saturated: list[np.ndarray] = []
        for done, s in enumerate(starts, 1):
            if cancel is not None:
                cancel.check()
            dist, ids = index.search(x[s : s + _QUERY_CHUNK], k + 1)  # +1: itself
            qi, nj, full = _knn_keep(s, dist, ids, threshold, hi)
            found_i.append(qi)
            found_j.append(nj)
            saturated.append(full)
            yield Progress(_PHASE, done, len(starts), None, "comparing embeddings")
        # Photos whose k neighbours all passed may have more: ask again, wider.
        again = np.concatenate(saturated)
        for s in range(0, len(again), _QUERY_CHUNK):
            rows = again[s : s + _QUERY_CHUNK]
            dist, ids = index.search(x[rows], 8 * (k + 1))
            qi, nj, _ = _knn_keep(0, dist, ids, threshold, hi, rows=rows)
            found_i.append(qi)
            found_j.append(nj)
    i = np.concatenate(found_i)
    j = np.concatenate(found_j)
    lo_, hi_ = np.minimum(i, j), np.maximum(i, j)
    pair = np.unique(lo_ * n + hi_)
    return pair // n, pair % n


def _knn_keep(
    start: int,
    dist: np.ndarray,
    ids: np.ndarray,
    threshold: float,
    upper: float,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query rows, neighbour rows) above the threshold, and the rows whose list was full."""
    q = rows.astype(np.int64) if rows is not None else start + np.arange(len(ids), dtype=np.int64)
    qi = np.repeat(q, ids.shape[1])
    nj = ids.reshape(-1).astype(np.int64)
    d = dist.reshape(-1)
    keep = (nj >= 0) & (nj != qi) & (d >= threshold) & (d <= upper)
    full = q[dist[:, -1] >= threshold]
    return qi[keep], nj[keep], full


def _ivf_index(x: np.ndarray, nlist: int) -> Any:
    """An inner-product IVF index over x, trained on a sample of it."""
    import faiss

    n, dim = x.shape
    nlist = max(1, min(nlist, n // 39))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    # 40 points per list is what k-means needs; more only costs time, and 10
    # iterations place the centroids well enough for coarse cells.
    sample = min(n, 40 * nlist)
    rng = np.random.default_rng(0)
    train = x[np.sort(rng.choice(n, sample, replace=False))] if sample < n else x
    index.cp.niter = 10
    index.cp.max_points_per_centroid = 40
    index.train(train)
    index.add(x)
    return index


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
    )
