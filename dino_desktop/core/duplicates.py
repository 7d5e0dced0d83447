"""Duplicate groups: exact copies, perceptual (phash) near-copies and DINOv2 look-alikes.

`find_duplicates` is a job (a generator of `Progress`, see `progress.drive`)
that returns `Group`s, each with one keeper chosen by the user's ordered
`KeeperRules` (core/keeper.py; every member says why it was or was not kept)
and the other members labelled with their relation to it, measured from the
pixels (core/relations.py). Answers the user gave ("not duplicates", "keep
all": core/dismissals.py) leave their groups and members out. Nothing here changes a file:
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
from collections.abc import Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.catalog import companions as stored_companions
from dino_desktop.core.db import Folder, ImageRow
from dino_desktop.core.dismissals import Dismissed
from dino_desktop.core.dupe_pairs import (
    PHASE,
    PHASH_BITS,
    dihedral_hashes,
    dino_pairs,
    phash_links,
    vectors_of,
)
from dino_desktop.core.keeper import KeeperRules
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.relations import LABELS, Measurer, Relation, Side

METHODS = ("exact", "phash", "dino")
DEFAULT_THRESHOLD: dict[str, float] = {"phash": 8, "dino": 0.95}
RELATIONS = LABELS
"""Member relations to the keeper, measured by core/relations.py (see there)."""
OTHER_EXPOSURES = frozenset({"burst", "similar shot"})
"""Relations of another exposure, not a copy: the bulk action leaves them unless asked."""

MAX_PHASH_THRESHOLD = 20
"""Above ~20 bits unrelated photos start to match (distinct ones average 32)."""
_MEASURE_WORKERS = max(1, min(8, os.cpu_count() or 2))


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
    why: str = ""
    """The keeper: "kept: <rule> (<figures>)", against the runner-up; another member:
    "not kept; the keeper: <rule> (<figures>)" (core/keeper.py)."""
    evidence: str = ""
    """What the relation was measured from, in words (core/relations.py)."""
    transform: str | None = None
    """rotated / mirrored: the turn or mirror that maps this copy onto the keeper."""
    crop_box: tuple[int, int, int, int] | None = None
    """cropped: (x0, y0, x1, y1) of the smaller picture inside the larger one, in the
    larger one's display pixels; `crop_in` says which is the larger."""
    crop_in: str | None = None
    """cropped: "keeper" (this copy is a crop of the keeper) or "copy" (the reverse)."""
    dismissed: bool = False
    """The user answered "not duplicates" / "keep all" for it (shown only when asked)."""


@dataclass(frozen=True)
class Group:
    """Photos that duplicate each other; `keeper` is the one to keep."""

    method: str
    keeper: Member
    others: list[Member]
    """Every other member: removal candidates (not in a reference folder) first."""
    reclaimable: int
    """Bytes freed by removing every member in `others` that is not in a reference
    folder nor dismissed."""
    why: str = ""
    """Why the keeper won, against the runner-up (the keeper member's `why`)."""
    warning: str | None = None
    """Set when a reference-folder keeper is smaller than a copy outside reference folders."""
    dismissed: bool = False
    """Every pair of this group was answered "not duplicates" / "keep all"."""

    @property
    def members(self) -> list[Member]:
        """The keeper first, then the others."""
        return [self.keeper, *self.others]

    @property
    def candidates(self) -> list[Member]:
        """The members that may be removed: never the keeper, a reference or a dismissed one."""
        if self.dismissed:
            return []
        return [m for m in self.others if not m.is_reference and not m.dismissed]

    @property
    def labels(self) -> frozenset[str]:
        """The relations of the others to the keeper."""
        return frozenset(m.relation for m in self.others)


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
    rules: KeeperRules | None = None,
    dismissed: Dismissed | None = None,
    include_dismissed: bool = False,
    measure: bool = True,
) -> Job[list[Group]]:
    """Find duplicate groups among the library's readable photos; yields Progress.

    `method`: "exact", "phash" or "dino" (see the module docstring for
    `threshold` and `upper`). `rotations` (phash only) also matches turned and
    mirrored copies. `vectors` (dino only) = (image ids int64, unit float32
    vectors, one row each). `rules` choose the keeper (core/keeper.py).
    `dismissed`: the user's answers (core/dismissals.py); their groups and
    members are left out, or kept with ``dismissed=True`` with
    `include_dismissed`. `measure`: decode members to measure their relation
    (core/relations.py); without it, members that are not byte copies are
    labelled "similar". Returns groups sorted by reclaimable bytes, largest
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
        rules or KeeperRules(),
        _Answers(dismissed, include_dismissed),
        measure,
    )


@dataclass(frozen=True)
class _Answers:
    dismissed: Dismissed | None
    include: bool


def _find(
    sessions: sessionmaker[Session],
    method: str,
    limit: float,
    upper: float | None,
    rotations: bool,
    vectors: tuple[np.ndarray, np.ndarray] | None,
    cancel: CancelToken,
    rules: KeeperRules,
    answers: _Answers,
    measure: bool,
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
    plans: list[_Plan] = []
    for done, comp in enumerate(components, 1):
        plan = _plan_group(comp, cands, rules, answers)
        if plan is not None:
            plans.append(plan)
        if done % 1000 == 0:
            cancel.check()
            yield Progress(PHASE, done, len(components), None, "choosing keepers")
    relations = yield from _measure(plans, cands, measure, cancel)
    groups = [_make_group(method, p, cands, rules, variants, unit, rows, relations) for p in plans]
    groups.sort(key=lambda g: (g.dismissed, -g.reclaimable, g.keeper.path))
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


@dataclass(frozen=True)
class _Plan:
    """A group before its relations are measured: members ranked, keeper first."""

    ranked: list[int]
    dismissed: list[int]
    all_dismissed: bool


def _plan_group(
    comp: list[int], cands: list[_Cand], rules: KeeperRules, answers: _Answers
) -> _Plan | None:
    if all(cands[i].is_reference for i in comp):
        return None  # nothing may be removed: nothing to do
    gone: list[int] = []
    kept = comp
    if answers.dismissed:
        by_image = {cands[i].image_id: i for i in comp}
        kept_ids, gone_ids = answers.dismissed.filter([cands[i].image_id for i in comp])
        kept, gone = [by_image[x] for x in kept_ids], [by_image[x] for x in gone_ids]
        if gone and not answers.include:
            gone = []
            if len(kept) < 2 or all(cands[i].is_reference for i in kept):
                return None
    all_gone = not kept
    pool = comp if all_gone else kept
    ranked = [pool[k] for k in rules.rank([cands[i] for i in pool])]
    return _Plan(ranked, [] if all_gone else gone, all_gone)


def _measure(
    plans: list[_Plan], cands: list[_Cand], measure: bool, cancel: CancelToken
) -> Job[dict[tuple[int, int], Relation]]:
    """The relation of every member to its keeper, measured on a thread pool."""
    pairs: list[tuple[int, int]] = []
    for p in plans:
        keeper = p.ranked[0]
        for i in [*p.ranked[1:], *p.dismissed]:
            pairs.append((keeper, i))
    out: dict[tuple[int, int], Relation] = {}
    todo: list[tuple[int, int]] = []
    for k, i in pairs:
        a, b = cands[k], cands[i]
        if a.sha256 is not None and a.sha256 == b.sha256:
            out[(k, i)] = Relation("identical", "the same bytes (equal SHA-256)")
        elif not measure:
            out[(k, i)] = Relation("similar", "not measured")
        else:
            todo.append((k, i))
    if not todo:
        return out
    measurer = Measurer()
    message = "measuring how copies differ"
    yield Progress(PHASE, 0, len(todo), None, message)
    window = 4 * _MEASURE_WORKERS  # a bounded queue: cancel stops within a few pairs
    with ThreadPoolExecutor(_MEASURE_WORKERS, thread_name_prefix="dup-measure") as pool:
        pending: dict[Future[Relation], tuple[int, int]] = {}
        nxt = done = 0
        try:
            while nxt < len(todo) or pending:
                while nxt < len(todo) and len(pending) < window:
                    k, i = todo[nxt]
                    fut = pool.submit(measurer.relate, _side(cands[k]), _side(cands[i]))
                    pending[fut] = (k, i)
                    nxt += 1
                fut = next(iter(pending))
                pair = pending.pop(fut)
                out[pair] = fut.result()
                done += 1
                cancel.check()
                if done % 16 == 0 or done == len(todo):
                    yield Progress(PHASE, done, len(todo), cands[pair[1]].path, message)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return out


def _side(c: _Cand) -> Side:
    return Side(
        path=c.path,
        width=c.width,
        height=c.height,
        size=c.size,
        format=c.format,
        sha256=c.sha256,
        taken_at=c.taken_at,
        camera=c.camera,
    )


def _make_group(
    method: str,
    plan: _Plan,
    cands: list[_Cand],
    rules: KeeperRules,
    variants: dict[int, list[int]],
    unit: np.ndarray | None,
    rows: dict[int, int],
    relations: dict[tuple[int, int], Relation],
) -> Group:
    keeper = plan.ranked[0]
    pool = [cands[i] for i in plan.ranked]
    others: list[Member] = []
    for i in [*plan.ranked[1:], *plan.dismissed]:
        cosine = None
        if unit is not None and keeper in rows and i in rows:
            cosine = float(np.dot(unit[rows[keeper]], unit[rows[i]]))
        score = _score(method, cands[keeper], cands[i], variants, keeper, i, cosine)
        rel = relations[(keeper, i)]
        why = rules.why(cands[keeper], cands[i], pool)
        others.append(
            _member(
                cands[i],
                1.0 if rel.label == "identical" else score,
                rel,
                f"not kept; the keeper: {why}" if why else "",
                dismissed=plan.all_dismissed or i in plan.dismissed,
            )
        )
    # Removal candidates first, the closest copies (the safest to remove) on top.
    others.sort(key=lambda m: (m.dismissed, m.is_reference, -m.score, m.path))
    reclaimable = (
        0
        if plan.all_dismissed
        else sum(m.size for m in others if not m.is_reference and not m.dismissed)
    )
    runner_up = cands[plan.ranked[1]] if len(plan.ranked) > 1 else None
    why = "kept: " + rules.why(cands[keeper], runner_up, pool) if runner_up else ""
    warning = rules.warning(cands[keeper], [cands[i] for i in plan.ranked[1:]])
    keep = _member(cands[keeper], 1.0, None, why, dismissed=plan.all_dismissed)
    return Group(method, keep, others, reclaimable, why, warning, plan.all_dismissed)


def _bits(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _score(
    method: str,
    keeper: _Cand,
    other: _Cand,
    variants: dict[int, list[int]],
    ki: int,
    oi: int,
    cosine: float | None,
) -> float:
    """Similarity to the keeper on the method's scale (see `Member.score`)."""
    if method == "dino" and cosine is not None:
        return cosine
    if method == "phash" and keeper.phash is not None and other.phash is not None:
        best = _bits(keeper.phash, other.phash)
        for v in variants.get(oi, []):
            best = min(best, _bits(keeper.phash, v))
        for v in variants.get(ki, []):
            best = min(best, _bits(other.phash, v))
        return 1.0 - best / PHASH_BITS
    return 1.0


def _member(c: _Cand, score: float, rel: Relation | None, why: str, *, dismissed: bool) -> Member:
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
        relation="keeper" if rel is None else rel.label,
        companions=c.companions,
        why=why,
        evidence="" if rel is None else rel.evidence,
        transform=None if rel is None else rel.transform,
        crop_box=None if rel is None else rel.crop_box,
        crop_in=None if rel is None else rel.crop_in,
        dismissed=dismissed,
    )


def select_groups(
    groups: Sequence[Group],
    *,
    labels: Collection[str] | None = None,
    folder: str | None = None,
    min_bytes: int = 0,
) -> list[Group]:
    """The groups that pass a review filter, in their order.

    `labels`: a member (not the keeper) has one of these relations; `folder`: a
    member lies in that folder or below it; `min_bytes`: at least that much
    reclaimable.
    """
    wanted = None if labels is None else frozenset(labels)
    root = None if folder is None else os.path.abspath(folder).rstrip(os.sep) + os.sep
    out: list[Group] = []
    for g in groups:
        if g.reclaimable < min_bytes:
            continue
        if wanted is not None and not any(m.relation in wanted for m in g.others):
            continue
        if root is not None and not any(m.path.startswith(root) for m in g.members):
            continue
        out.append(g)
    return out
