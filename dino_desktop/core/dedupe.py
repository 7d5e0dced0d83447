"""Removing duplicates in bulk: a plan with its dry-run summary, then one undoable job.

`plan_removal` turns found groups (core/duplicates.py) into what the bulk
action would do: per group the keeper and the copies to remove, and the
totals a person checks before anything moves (files including companions,
bytes, folders touched). It never takes a keeper, a reference-folder member or
a dismissed one, and leaves other exposures (``burst``, ``similar shot``)
unless asked, and undecided ``similar`` members unless asked: a bulk action
must only remove copies.

`Library.remove_duplicates` runs the plan as one journal entry (a "trash" with
these extras, through `FileOps.trash_job`), so one undo puts everything back:

* ``merges``: what only the copies had (date taken, GPS, camera, keywords,
  rating, label) carried into the keeper's XMP sidecar (core/xmp_merge.py),
  never into the keeper's own bytes. Each is journaled before it is written.
* ``transfers``: the copies' auto-folder memberships and sort-by-example
  labels given to the keeper where it had none in that run / for that label.

Both happen after the journal entry is committed and before any file is
trashed (`prepare`); undo (`undo_extras`) restores the sidecars that are
unchanged since. The keepers keep the memberships they were given: the copies'
own rows left the catalog with the files, so taking them off the keeper too
would lose them (a restored copy is indexed again as a new photo).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core.db import ClusterMember, ClusterRow, SortExample
from dino_desktop.core.duplicates import OTHER_EXPOSURES, Group, Member
from dino_desktop.core.progress import CancelToken, Job, Progress

log = logging.getLogger(__name__)

PHASE = "remove duplicates"


@dataclass(frozen=True)
class Removal:
    """One group's part of the plan: its keeper and the copies that go."""

    keeper: Member
    copies: tuple[Member, ...]


@dataclass(frozen=True)
class RemovalPlan:
    """What the bulk action would do, and the dry-run summary of it."""

    removals: tuple[Removal, ...]
    files: int
    """Files that would go to the trash: the copies and their companion files."""
    bytes: int
    """Their size on disk."""
    folders: tuple[str, ...]
    """Folders the files would leave, sorted."""
    left_exposures: int
    """Members left because they are another exposure (burst, similar shot)."""
    left_similar: int
    """Members left because the evidence did not decide ("similar")."""
    paths: tuple[str, ...] = field(default=())
    """The copies' paths (photos only: their companions go with them)."""
    warned: int = 0
    """Groups in the plan with a `Group.warning`: the keeper, in a reference folder,
    is smaller than a copy outside it (counted here, in the worker, so the dry-run
    dialog does not walk 100,000 groups on the GUI thread)."""

    @property
    def groups(self) -> int:
        return len(self.removals)

    def summary(self) -> str:
        """The dry run in one sentence."""
        return (
            f"{self.files} file(s), {self.bytes / 1e6:.1f} MB, from {len(self.folders)} "
            f"folder(s), in {self.groups} group(s) go to the trash"
            + (
                f"; {self.left_exposures} other exposure(s) (bursts, similar shots) stay"
                if self.left_exposures
                else ""
            )
            + (f"; {self.left_similar} undecided look-alike(s) stay" if self.left_similar else "")
        )


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def plan_removal(
    groups: Iterable[Group],
    *,
    include_exposures: bool = False,
    include_similar: bool = False,
    only: Mapping[str, Sequence[str]] | None = None,
    cancel: CancelToken | None = None,
) -> Job[RemovalPlan]:
    """The plan for removing the groups' copies by the keeper rules; yields Progress.

    `only` (keeper path -> member paths): the user's own marks for those
    groups, used instead of "every candidate" (still never a keeper, a
    reference or a dismissed member).
    """
    groups = list(groups)
    removals: list[Removal] = []
    files = size = left_exp = left_sim = warned = 0
    folders: set[str] = set()
    paths: list[str] = []
    yield Progress(PHASE, 0, len(groups), None, "planning")
    for n, g in enumerate(groups, 1):
        chosen: list[Member] = []
        marks = None if only is None else set(only.get(g.keeper.path, ()))
        for m in g.candidates:
            if marks is not None:
                if m.path in marks:
                    chosen.append(m)
                continue
            if m.relation in OTHER_EXPOSURES and not include_exposures:
                left_exp += 1
            elif m.relation == "similar" and not include_similar:
                left_sim += 1
            else:
                chosen.append(m)
        if chosen:
            removals.append(Removal(g.keeper, tuple(chosen)))
            warned += bool(g.warning)
            for m in chosen:
                paths.append(m.path)
                files += 1 + len(m.companions)
                size += m.size + sum(_size(c) for c in m.companions)
                folders.add(os.path.dirname(m.path))
        if n % 2000 == 0:
            if cancel is not None:
                cancel.check()
            yield Progress(PHASE, n, len(groups), None, "planning")
    yield Progress(PHASE, len(groups), len(groups), None, "planned")
    return RemovalPlan(
        tuple(removals),
        files,
        size,
        tuple(sorted(folders)),
        left_exp,
        left_sim,
        tuple(paths),
        warned,
    )


# ---- metadata carried to the keepers --------------------------------------------


def merge_plans(plan: RemovalPlan, cancel: CancelToken | None = None) -> Job[list[Any]]:
    """The XMP merges the plan would make (core/xmp_merge.py), one per keeper that
    gains something; yields Progress (each reads the members' metadata)."""
    from dino_desktop.core import xmp_merge

    out: list[Any] = []
    for n, r in enumerate(plan.removals, 1):
        if cancel is not None:
            cancel.check()
        merge = xmp_merge.plan_merge(
            r.keeper.path,
            [c for c in r.keeper.companions if c.lower().endswith(".xmp")],
            [(m.path, [c for c in m.companions if c.lower().endswith(".xmp")]) for m in r.copies],
        )
        if merge is not None:
            out.append(merge)
        yield Progress(PHASE, n, len(plan.removals), r.keeper.path, "reading metadata")
    return out


def prepare(sessions: sessionmaker[Session], plan: RemovalPlan, merges: Sequence[Any]) -> Any:
    """The `FileOps.trash_job` hook: carry metadata and memberships to the keepers,
    each step recorded in the (already committed) journal payload first."""
    from dino_desktop.core import xmp_merge

    def run(entry_id: int, payload: dict[str, Any]) -> None:
        save = _saver(sessions, entry_id)
        payload["transfers"] = _transfer(sessions, plan)
        records: list[dict[str, Any]] = []
        payload["merges"] = records
        for merge in merges:
            # Journal first, with what recovery needs to tell from the disk whether the
            # write happened (see `settle_merges`): the old bytes, or that it is new.
            record: dict[str, Any] = {
                "sidecar": merge.sidecar,
                "keeper": merge.keeper,
                "status": "pending",
                "created": not merge.exists,
                "before": _b64(merge.sidecar) if merge.exists else None,
            }
            records.append(record)
            save(payload)
            try:
                record.update(xmp_merge.apply_merge(merge))
            except (OSError, xmp_merge.MergeError) as exc:
                record["status"], record["reason"] = "failed", str(exc)
                log.warning("metadata for %s not carried: %s", merge.keeper, exc)
            else:
                record["status"] = "done"
        save(payload)

    return run


def _b64(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode("ascii")
    except OSError:
        return None


def settle_merges(payload: dict[str, Any]) -> int:
    """After a kill: make the payload's pending merges say what the disk shows, and remove
    the merge's hidden temporary files (``.dino-xmp-*.partial``); returns how many were removed.

    A new sidecar that exists was written by us (its name was free when the merge was
    journaled, and it is created exclusively); a rewritten one is done when its bytes
    are no longer the journaled old ones (the swap is an atomic rename).
    """
    removed = 0
    folders: set[str] = set()
    for record in payload.get("merges", []):
        sidecar = str(record.get("sidecar", ""))
        folders.add(os.path.dirname(sidecar))
        if record.get("status") != "pending":
            continue
        try:
            with open(sidecar, "rb") as f:
                current: bytes | None = f.read()
        except OSError:
            current = None
        before = record.get("before")
        old = base64.b64decode(before) if isinstance(before, str) else None
        written = current is not None and (record.get("created") or current != old)
        if written and current is not None:
            record["status"] = "done"
            record["after_sha256"] = hashlib.sha256(current).hexdigest()
            record["recovered"] = True
        else:
            record["status"] = "skipped"
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(".dino-xmp-") and name.endswith(".partial"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))  # our own unfinished write
                    removed += 1
    return removed


def _saver(sessions: sessionmaker[Session], entry_id: int) -> Any:
    from dino_desktop.core.journal import JournalStore

    store = JournalStore(sessions)
    return lambda payload: store._save(entry_id, payload, [])


_IN_CHUNK = 500  # ids per IN (...) list: under SQLite's bound-parameter limit


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield list(ids[start : start + _IN_CHUNK])


def _transfer(sessions: sessionmaker[Session], plan: RemovalPlan) -> dict[str, list[list[int]]]:
    """Give each keeper its copies' auto-folder memberships and sort-by-example labels
    where it has none in that run / for that label; returns the rows added.

    A few bulk reads for the whole plan, not a query per group: this runs in the
    GUI's worker, and thousands of small ORM queries hold the GIL long enough to
    stall the window.
    """
    keeper_of = {m.image_id: r.keeper.image_id for r in plan.removals for m in r.copies}
    order = {image_id: n for n, image_id in enumerate(keeper_of)}  # plan order: first copy wins
    keepers = sorted({r.keeper.image_id for r in plan.removals})
    copies = sorted(keeper_of)
    runs: dict[int, set[int]] = {}
    labels: dict[int, set[int]] = {}
    member_rows: list[tuple[int, int, int, float, bool]] = []
    example_rows: list[tuple[int, int, bool]] = []
    membership = select(
        ClusterMember.image_id,
        ClusterMember.cluster_id,
        ClusterRow.run_id,
        ClusterMember.score,
        ClusterMember.is_outlier,
    ).join(ClusterRow, ClusterRow.id == ClusterMember.cluster_id)
    examples = select(SortExample.image_id, SortExample.label_id, SortExample.positive)
    with sessions() as session, session.begin():
        for chunk in _chunks(keepers):
            for image_id, _cid, run_id, _s, _o in session.execute(
                membership.where(ClusterMember.image_id.in_(chunk))
            ):
                runs.setdefault(image_id, set()).add(run_id)
            for image_id, label_id, _p in session.execute(
                examples.where(SortExample.image_id.in_(chunk))
            ):
                labels.setdefault(image_id, set()).add(label_id)
        for chunk in _chunks(copies):
            member_rows.extend(
                (int(image_id), int(cid), int(run_id), float(score), bool(outlier))
                for image_id, cid, run_id, score, outlier in session.execute(
                    membership.where(ClusterMember.image_id.in_(chunk))
                )
            )
            example_rows.extend(
                (int(image_id), int(label_id), bool(positive))
                for image_id, label_id, positive in session.execute(
                    examples.where(SortExample.image_id.in_(chunk))
                )
            )
        member_rows.sort(key=lambda row: order[row[0]])
        example_rows.sort(key=lambda row: order[row[0]])
        new_members: list[dict[str, Any]] = []
        for copy, cid, run_id, score, outlier in member_rows:
            keeper = keeper_of[copy]
            have = runs.setdefault(keeper, set())
            if run_id not in have:
                have.add(run_id)
                new_members.append(
                    {"cluster_id": cid, "image_id": keeper, "score": score, "is_outlier": outlier}
                )
        new_examples: list[dict[str, Any]] = []
        for copy, label_id, positive in example_rows:
            keeper = keeper_of[copy]
            have = labels.setdefault(keeper, set())
            if label_id not in have:
                have.add(label_id)
                new_examples.append(
                    {"label_id": label_id, "image_id": keeper, "positive": positive}
                )
        if new_members:
            session.execute(insert(ClusterMember), new_members)
        if new_examples:
            session.execute(insert(SortExample), new_examples)
    return {
        "clusters": [[int(r["cluster_id"]), int(r["image_id"])] for r in new_members],
        "examples": [[int(r["label_id"]), int(r["image_id"])] for r in new_examples],
    }


def undo_extras(sessions: sessionmaker[Session], payload: dict[str, Any]) -> list[str]:
    """Undo the payload's merges (each once); notes for what stays.

    The transfers stay: the copies' rows left the catalog with their files (as
    for any trash), so a restored copy comes back as a new photo; taking the
    labels off the keeper as well would lose them altogether.
    """
    from dino_desktop.core import xmp_merge

    notes: list[str] = []
    for record in payload.get("merges", []):
        if record.get("status") != "done" or record.get("undo") == "done":
            continue
        reason = xmp_merge.undo_merge(record)
        if reason is None:
            record["undo"] = "done"
        else:
            record["undo"] = "left"
            notes.append(f"{record['sidecar']} was left as it is: {reason}")
    return notes
