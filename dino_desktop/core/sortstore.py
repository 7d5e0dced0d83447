"""Sort by example, stored: labels, their examples, and what an export writes.

`core.sorting` is the classifier and knows nothing of the database; this module
keeps what it trains on (schema 5: `sort_labels`, `sort_examples`), the way
`core.clusters` keeps the auto-folder runs: functions over the library's
`sessionmaker`, one transaction per change.

A label's positives are the photos labelled in the app (one label at most per
photo) plus, when it has an example folder, every readable photo below that
folder, computed when asked so that new files count after a scan; minus the
photos rejected from it (its negatives).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import catalog
from dino_desktop.core.db import SortExample, SortLabel, rename_row
from dino_desktop.core.db import insert as db_insert
from dino_desktop.core.export_plan import plan_export
from dino_desktop.core.records import LibraryError, SortLabelInfo
from dino_desktop.core.sorting import LabelExamples, SortResult

log = logging.getLogger(__name__)

Sessions = sessionmaker[Session]


def _folder_examples(session: Session, labels: Iterable[SortLabel]) -> dict[int, set[int]]:
    """The readable photos inside each label's example folder, by label id."""
    return {lb.id: catalog.readable_ids_below(session, lb.folder) for lb in labels if lb.folder}


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise LibraryError("a label needs a name")
    return name


def labels(sessions: Sessions) -> list[SortLabelInfo]:
    """Every label with its example counts, by name."""
    with sessions() as session:
        counts: dict[tuple[int, bool], int] = {
            (int(label_id), bool(positive)): int(n)
            for label_id, positive, n in session.execute(
                select(SortExample.label_id, SortExample.positive, func.count()).group_by(
                    SortExample.label_id, SortExample.positive
                )
            )
        }
        rows = list(session.scalars(select(SortLabel).order_by(SortLabel.name)))
        in_folder = _folder_examples(session, rows)
        return [
            SortLabelInfo(
                lb.id,
                lb.name,
                lb.folder,
                counts.get((lb.id, True), 0) + len(in_folder.get(lb.id, ())),
                counts.get((lb.id, False), 0),
            )
            for lb in rows
        ]


def labels_by_id(sessions: Sessions, label_ids: Iterable[int]) -> list[SortLabelInfo]:
    """The labels of these ids, with their example counts, in that order."""
    by_id = {lb.id: lb for lb in labels(sessions)}
    return [by_id[i] for i in label_ids]


def label_names(sessions: Sessions) -> list[tuple[int, str]]:
    """(id, name) of every label, by name: one small query (for menus)."""
    with sessions() as session:
        return [
            (int(i), str(n))
            for i, n in session.execute(
                select(SortLabel.id, SortLabel.name).order_by(SortLabel.name)
            )
        ]


def add_label(sessions: Sessions, name: str, folder: str | os.PathLike[str] | None) -> int:
    """Create a label (or find the one of that name) and return its id; `folder`
    becomes its example folder (an existing folder is replaced, never cleared)."""
    name = _clean_name(name)
    real = None if folder is None else catalog.real_folder(folder)
    with sessions() as session, session.begin():
        label = session.scalar(select(SortLabel).where(SortLabel.name == name))
        if label is None:
            label = SortLabel(name=name, folder=real, created_at=datetime.now())
            session.add(label)
            log.info("sort label added: %s%s", name, f" (examples in {real})" if real else "")
        elif real is not None:
            label.folder = real
        session.flush()
        return int(label.id)


def labels_from_folders(sessions: Sessions, dirs: Iterable[str | os.PathLike[str]]) -> list[int]:
    """One label per example folder, named after the folder; their ids, in order."""
    out = []
    for d in dirs:
        real = os.path.realpath(os.path.expanduser(os.fspath(d)))
        out.append(add_label(sessions, os.path.basename(real.rstrip(os.sep)) or real, real))
    return out


def rename_label(sessions: Sessions, label_id: int, name: str, was: str | None = None) -> None:
    """Rename a label; `was`: the name the caller saw (another client's rename since
    then is a ConflictError, nothing written)."""
    name = _clean_name(name)
    with sessions() as session, session.begin():
        label = session.get(SortLabel, label_id)
        if label is None:
            raise LibraryError(f"no label #{label_id}")
        clash = session.scalar(select(SortLabel.id).where(SortLabel.name == name))
        if clash is not None and clash != label_id:
            raise LibraryError(f"there is already a label “{name}”")
        rename_row(session, label, name, was)


def remove_label(sessions: Sessions, label_id: int) -> None:
    """Forget a label and its examples (ON DELETE CASCADE); no file is touched."""
    with sessions() as session, session.begin():
        session.execute(delete(SortLabel).where(SortLabel.id == label_id))
    log.info("sort label #%d removed", label_id)


def label_photos(
    sessions: Sessions, label_id: int, image_ids: Iterable[int], positive: bool
) -> int:
    """Record photos as examples of a label (`positive`) or rejections from it.

    A photo is a positive example of one label at most: a positive here takes
    it from any other label. Returns how many photos (still in the library)
    were recorded.
    """
    with sessions() as session, session.begin():
        if session.get(SortLabel, label_id) is None:
            raise LibraryError(f"no label #{label_id}")
        wanted = catalog.existing_ids(session, image_ids)
        if not wanted:
            return 0
        if positive:
            session.execute(
                delete(SortExample).where(
                    SortExample.image_id.in_(wanted), SortExample.positive.is_(True)
                )
            )
        # Core upsert: a rejection of a former example (or the reverse) flips it.
        stmt = db_insert(session, SortExample).values(
            [{"label_id": label_id, "image_id": i, "positive": positive} for i in wanted]
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["label_id", "image_id"], set_={"positive": positive}
            )
        )
    return len(wanted)


def unlabel_photos(sessions: Sessions, label_id: int, image_ids: Iterable[int]) -> None:
    """Forget that photos are (or are not) examples of a label."""
    wanted = [int(i) for i in image_ids]
    with sessions() as session, session.begin():
        session.execute(
            delete(SortExample).where(
                SortExample.label_id == label_id, SortExample.image_id.in_(wanted)
            )
        )


def label_examples(sessions: Sessions, label_id: int) -> tuple[list[int], list[int]]:
    """(positive, negative) example photo ids of a label, its folder's photos included."""
    with sessions() as session:
        label = session.get(SortLabel, label_id)
        if label is None:
            raise LibraryError(f"no label #{label_id}")
        rows = session.execute(
            select(SortExample.image_id, SortExample.positive).where(
                SortExample.label_id == label_id
            )
        ).all()
        in_folder = _folder_examples(session, [label]).get(label.id, set())
    negatives = {int(i) for i, p in rows if not p}
    positives = {int(i) for i, p in rows if p} | (in_folder - negatives)
    return sorted(positives), sorted(negatives)


def training_examples(
    sessions: Sessions, label_ids: Iterable[int] | None = None
) -> list[LabelExamples]:
    """The examples of the given labels (None: all) as the classifier takes them."""
    chosen = labels(sessions)
    if label_ids is not None:
        wanted = set(label_ids)
        chosen = [lb for lb in chosen if lb.id in wanted]
    if not chosen:
        raise LibraryError("no labels yet: give example folders (--labels DIR...) or make labels")
    return [LabelExamples(lb.name, *label_examples(sessions, lb.id)) for lb in chosen]


def export_groups(sessions: Sessions, result: SortResult) -> list[tuple[str, list[str]]]:
    """(label name, photo paths) for an export of a sort: each label's confident
    predictions and app-labelled photos, leaving out those already inside its
    example folder (exporting into the folders' parent completes them)."""
    known = {lb.name: lb for lb in labels(sessions)}
    members: dict[str, list[int]] = {name: [] for name in result.labels}
    for p in result.predictions:
        if not p.unsure and p.label in members:
            members[p.label].append(p.image_id)
    for name in result.labels:
        if name in known:
            members[name].extend(label_examples(sessions, known[name].id)[0])
    paths = catalog.paths_of(sessions, (i for ids in members.values() for i in ids))
    groups = []
    for name, ids in members.items():
        folder = known[name].folder if name in known else None
        chosen = [
            paths[i]
            for i in dict.fromkeys(ids)
            if i in paths and not (folder and catalog.is_inside(paths[i], folder))
        ]
        if chosen:
            groups.append((name, chosen))
    return groups


def export_plan(
    sessions: Sessions, result: SortResult, dest: str | os.PathLike[str]
) -> list[tuple[str, str]]:
    """(source, destination) of every photo of `export_groups`: one folder per label
    in `dest` (see `fileops.plan_export`). LibraryError when no photo qualifies."""
    groups = export_groups(sessions, result)
    if not groups:
        raise LibraryError("nothing to export: no photo was sorted with enough confidence")
    return plan_export(groups, os.path.abspath(os.fspath(dest)))
