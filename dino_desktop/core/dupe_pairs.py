"""Duplicate pair finding: which photos are within a threshold of each other, at scale.

The pairs that core/duplicates.py joins into groups: `hamming_pairs` for the
64-bit perceptual hashes (with `dihedral_hashes` for turned and mirrored
copies) and `dino_pairs` for the DINOv2 vectors. Nothing here reads the
library or chooses a keeper.

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
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import combinations
from typing import Any, Protocol

import numpy as np

from dino_desktop.core.progress import CancelToken, Progress

PHASH_BITS = 64
EXACT_LIMIT = 20_000
"""Up to this many vectors the dino pairs come from an exact range search."""
KNN = 10
"""Neighbours kept per photo by the approximate dino search."""
NPROBE = 12

PHASE = "duplicates"
"""The phase named in the `Progress` of a duplicate search."""
_PAIR_CHUNK = 4_000_000  # candidate pairs verified at once: bounds the join's memory
_QUERY_CHUNK = 4096  # vectors per FAISS call: the unit of progress and cancellation


class Photo(Protocol):
    """What pair finding reads of a candidate photo (core/duplicates.py's `_Cand`)."""

    @property
    def image_id(self) -> int: ...

    @property
    def path(self) -> str: ...

    @property
    def phash(self) -> int | None: ...


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
            yield Progress(PHASE, done, total_probes, None, "comparing")
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


def phash_links(
    cands: Sequence[Photo],
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


def dihedral_hashes(
    cands: Sequence[Photo], cancel: CancelToken
) -> Generator[Progress, None, dict[int, list[int]]]:
    """Variant hashes of every photo, decoded on a thread pool (Pillow releases the GIL)."""
    todo = [i for i, c in enumerate(cands) if c.phash is not None]
    out: dict[int, list[int]] = {}
    workers = max(1, min(8, os.cpu_count() or 2))
    window = 4 * workers  # a bounded queue: cancel stops within a few decodes
    yield Progress(PHASE, 0, len(todo), None, "hashing turned and mirrored copies")
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
                    PHASE, done, len(todo), cands[idx].path, "hashing turned and mirrored copies"
                )
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return out


# ---- dino -----------------------------------------------------------------------


def vectors_of(
    cands: Sequence[Photo], vectors: tuple[np.ndarray, np.ndarray]
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
            yield Progress(PHASE, done, len(starts), None, "comparing embeddings")
    else:
        yield Progress(PHASE, 0, len(starts), None, "building the approximate index")
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
            yield Progress(PHASE, done, len(starts), None, "comparing embeddings")
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
