"""The Duplicates view's bulk action, its dry run, and the jobs behind the view's
answers and removals.

"Apply keeper rules to N filtered groups…" plans in a worker
(`Library.plan_removal`), then `BulkDialog` shows the dry run: files (with
their companions), bytes, the folders touched, and what stays (other exposures,
undecided look-alikes). "Also remove bursts and similar shots" plans again, in
a worker; "Carry metadata into the keepers' XMP sidecars" is on by default.
Confirmed, `removal_job` runs `Library.remove_duplicates` (one journaled,
undoable operation) and rebuilds the list's index without the removed copies,
in the same worker, so the GUI thread only swaps it in.

`answered` / `without` / `after_removal` make the groups as they are after an
answer or a removal (pure: workers run them at 100,000 groups). `FileFlows`
runs the view's file operations one at a time: trash or move the marked
photos, the bulk action, and Undo of either (`Library.undo` of that journal
entry, then a scan, since a trash forgets the photos' rows, then the search
again). `UndoBar` is the line under the groups that says what was just done
(an answer, a removal) with an Undo button.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMessageBox,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.duplicates import Group, Member
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Job, Progress
from dino_desktop.core.records import OpResult
from dino_desktop.gui.common import also_moves, companions_note, data_size, escape_html, plural
from dino_desktop.gui.views.duplicate_cards import live_members
from dino_desktop.gui.views.duplicate_groups import GroupIndex, Marks, keep_out_of_gc
from dino_desktop.gui.workers import JobWorker, describe, start

if TYPE_CHECKING:
    from dino_desktop.core.dedupe import RemovalPlan
    from dino_desktop.gui.views.duplicates import DuplicatesView

__all__ = [
    "BulkDialog",
    "FileFlows",
    "UndoBar",
    "after_removal",
    "answered",
    "file_job",
    "merge_preview_job",
    "polite",
    "removal_job",
    "removal_note",
    "run_busy",
    "without",
]

R = TypeVar("R")
FOLDERS_LISTED = 500  # the dry run lists this many folders, then "and N more"


# ---- groups after an answer or a removal (pure: safe in a worker) -------------------


def _reclaimable(others: Iterable[Member]) -> int:
    return sum(m.size for m in others if not m.is_reference and not m.dismissed)


def _order(others: Iterable[Member]) -> list[Member]:
    """Others as the search orders them: candidates first, the closest on top."""
    return sorted(others, key=lambda m: (m.dismissed, m.is_reference, -m.score, m.path))


def answered(group: Group, subject: str | None = None) -> Group:
    """The group after a "not duplicates" / "keep all" answer, as the next search
    with `include_dismissed` would show it (core/dismissals.py): a group answer
    takes every photo out; a member answer (`subject`, a path) takes that one out,
    and a group left with one photo goes with it."""
    live = {m.path for m in live_members(group)} if subject is not None else set()
    live.discard(subject or "")
    if len(live) < 2:
        live = set()
    members = [dataclasses.replace(m, dismissed=m.path not in live) for m in group.members]
    keeper, others = members[0], _order(members[1:])
    return dataclasses.replace(
        group,
        keeper=keeper,
        others=others,
        reclaimable=_reclaimable(others) if live else 0,
        dismissed=not live,
    )


def without(group: Group, gone: set[str]) -> Group | None:
    """The group less the members in `gone`; None when fewer than two are left."""
    left = [m for m in group.members if m.path not in gone]
    if len(left) < 2:
        return None
    keeper = group.keeper
    why, warning = group.why, group.warning
    if keeper.path in gone:
        # The user removed the keeper and kept others: promote a protected copy
        # if there is one (it can never go), else the first one left. The rules'
        # reasons no longer apply: a new search gives them again.
        live = [m for m in left if not m.dismissed] or left
        keeper = next((m for m in live if m.is_reference), live[0])
        keeper = dataclasses.replace(keeper, relation="keeper", why="", evidence="")
        why, warning = "", None
    others = _order(m for m in left if m.path != keeper.path)
    if warning and not _larger_outside(keeper, others):
        warning = None  # the larger copy it named is gone
    return dataclasses.replace(
        group,
        keeper=keeper,
        others=others,
        reclaimable=0 if group.dismissed else _reclaimable(others),
        why=why,
        warning=warning,
    )


def _larger_outside(keeper: Member, others: Iterable[Member]) -> bool:
    """Whether a copy outside reference folders has more pixels than a reference keeper
    (what `Group.warning` warns of)."""
    pixels = keeper.width * keeper.height
    return keeper.is_reference and any(
        not m.is_reference and m.width * m.height > pixels for m in others
    )


def after_removal(groups: Sequence[Group], paths: Iterable[str]) -> list[Group]:
    """The groups once `paths` left their place (lone survivors leave the list)."""
    gone = set(paths)
    gone |= {os.path.abspath(p) for p in gone}
    if not gone:
        return list(groups)
    out: list[Group] = []
    for g in groups:
        if any(m.path in gone for m in g.members):
            smaller = without(g, gone)
            if smaller is not None:
                out.append(smaller)
        else:
            out.append(g)
    return out


# ---- jobs (workers run them) -------------------------------------------------------

POLITE_S = 0.01  # a worker job lets the GUI thread have the GIL at least this often


def polite(job: Job[R]) -> Job[R]:
    """`job`, stepping aside for the GUI thread at its steps (at most every POLITE_S).

    A busy pure-Python worker does not always give the GIL up when the GUI thread
    asks for it: measured here, planning 100,000 groups right after the shown group
    changed kept the window from its 10 ms timer for the whole 0.4-0.7 s plan (the
    GIL's drop request is only made when no other thread took the GIL meanwhile,
    and Qt threads take it briefly). Sleeping releases it for certain."""
    last = time.monotonic()
    try:
        while True:
            try:
                step = next(job)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            yield step
            now = time.monotonic()
            if now - last >= POLITE_S:
                time.sleep(0.0005)
                last = time.monotonic()
    finally:
        job.close()


Rebuilt = tuple[OpResult, GroupIndex, Marks]
"""A file operation's result, the list's index without the files that went, the marks."""


def rebuilt(groups: Sequence[Group], result: OpResult, marked: Sequence[str]) -> Job[Rebuilt]:
    """The list's index once `result`'s files left their places, and the `marked`
    paths that are still there, marked in it."""
    yield Progress("groups", 0, None, None, "updating the groups")
    index = GroupIndex.build(after_removal(groups, result.done))
    keep_out_of_gc()
    marks = Marks(index)
    for path in marked:
        marks.add(path)
    return result, index, marks


def removal_job(
    library: Library,
    plan: RemovalPlan,
    carry_metadata: bool,
    groups: Sequence[Group],
    marked: Sequence[str],
    token: CancelToken,
) -> Job[Rebuilt]:
    """The bulk removal (one undoable operation), then the index without the copies."""
    result = yield from polite(
        library.remove_duplicates(plan, carry_metadata=carry_metadata, cancel=token)
    )
    return (yield from rebuilt(groups, result, marked))


def file_job(
    text: str, work: Callable[[], OpResult], groups: Sequence[Group], marked: Sequence[str]
) -> Job[Rebuilt]:
    """A trash or move of marked photos (short: one step), then the index without them."""
    yield Progress("files", 0, None, None, text)
    return (yield from rebuilt(groups, work(), marked))


def merge_preview_job(
    library: Library, group: Group, marks: Sequence[str], token: CancelToken
) -> Job[str]:
    """What removing the marked photos of `group` (none marked: its copies by the keeper
    rules) would carry into the keeper's XMP sidecar, as the group page's line."""
    only = {group.keeper.path: list(marks)} if marks else None
    plan = yield from library.plan_removal([group], only=only, cancel=token)
    if not plan.paths:
        return ""
    merges: list[Any] = yield from library.metadata_merges(plan, cancel=token)
    lines = [str(line) for merge in merges for line in merge.lines()]
    which = "the marked photos are" if marks else "its copies are"
    if not lines:
        return f"When {which} removed, nothing needs carrying: the keeper has what they have."
    sidecar = os.path.basename(str(merges[0].sidecar))
    return f"Carried into the keeper's sidecar ({sidecar}) when {which} removed: " + "; ".join(
        lines
    )


# ---- the dry run -------------------------------------------------------------------


class BulkDialog(QDialog):
    """The dry run of the bulk action: what would go, planned again on request; confirm.

    `plan` is the plan on screen (the one that runs when confirmed), `carry_metadata`
    the choice for the sidecars. Replanning runs in `worker`.
    """

    def __init__(
        self,
        library: Library,
        groups: Sequence[Group],
        plan: RemovalPlan,
        include_exposures: bool,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.library = library
        self.groups = list(groups)
        self.plan = plan
        self.worker: JobWorker | None = None
        self.setWindowTitle("Apply the keeper rules")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.folders_label = QLabel()
        self.folders = QListWidget()
        self.folders.setMaximumHeight(160)
        self.left_label = QLabel()
        self.left_label.setWordWrap(True)
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.exposures_check = QCheckBox("Also remove bursts and similar shots")
        self.exposures_check.setToolTip(
            "Other exposures of the same scene are not copies: they stay unless you tick this"
        )
        self.exposures_check.setChecked(include_exposures)
        self.exposures_check.toggled.connect(self.replan)
        self.carry_check = QCheckBox("Carry metadata into the keepers' XMP sidecars")
        self.carry_check.setToolTip(
            "What only a copy has (date taken, GPS, camera, keywords, rating) is written "
            "to its keeper's sidecar, never into the keeper's own file; undone with the rest"
        )
        self.carry_check.setChecked(True)
        self.status = QLabel()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.folders_label)
        layout.addWidget(self.folders)
        layout.addWidget(self.left_label)
        layout.addWidget(self.warning_label)
        layout.addWidget(self.exposures_check)
        layout.addWidget(self.carry_check)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.finished.connect(lambda _r: self.worker.cancel() if self.worker else None)
        self._show_plan()

    @property
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    @property
    def carry_metadata(self) -> bool:
        return self.carry_check.isChecked()

    def _show_plan(self) -> None:
        plan = self.plan
        self.summary.setText(
            f"<b>{plural(plan.files, 'file')}</b> ({data_size(plan.bytes)}) from "
            f"{plural(plan.groups, 'group')} go to the trash: each group keeps its keeper. "
            "One undo (Ctrl+Z) puts everything back."
            if plan.paths
            else "<b>Nothing to remove</b> in these groups by the keeper rules."
        )
        self.folders_label.setText(f"Folders touched: {len(plan.folders):,}")
        self.folders.clear()
        self.folders.addItems(list(plan.folders[:FOLDERS_LISTED]))
        if len(plan.folders) > FOLDERS_LISTED:
            self.folders.addItem(f"… and {len(plan.folders) - FOLDERS_LISTED:,} more")
        left = [
            f"{plural(plan.left_exposures, 'other exposure')} (bursts, similar shots) stay"
            if plan.left_exposures
            else "",
            f"{plural(plan.left_similar, 'look-alike')} the evidence did not decide stay"
            if plan.left_similar
            else "",
        ]
        self.left_label.setText(" · ".join(x for x in left if x) or "Nothing is left undecided.")
        warned = plan.warned
        self.warning_label.setText(
            f"⚠ In {plural(warned, 'group')} the keeper, in a reference folder, is smaller "
            "than a copy that would go: look at those groups first, or answer “Keep all”."
            if warned
            else ""
        )
        self.warning_label.setVisible(bool(warned))
        ok = self.ok_button
        ok.setText(f"Move {plural(plan.files, 'file')} to the trash" if plan.paths else "Remove")
        ok.setEnabled(bool(plan.paths) and self.worker is None)

    def replan(self, *_args: object) -> JobWorker:
        """Plan again with the exposures choice (in a worker); confirming waits for it."""
        if self.worker is not None:
            self.worker.cancel()
        include = self.exposures_check.isChecked()
        library, groups = self.library, self.groups

        def job(token: CancelToken) -> Job[RemovalPlan]:
            return polite(library.plan_removal(groups, include_exposures=include, cancel=token))

        worker = JobWorker(job)
        self.worker = worker

        def finished(plan: RemovalPlan) -> None:
            if self.worker is worker:
                self.worker = None
                self.plan = plan
                self.status.setText("")
                self._show_plan()

        def failed(exc: Exception) -> None:
            if self.worker is worker:
                self.worker = None
                self.status.setText(f"Could not plan: {describe(exc)}")
                self._show_plan()

        worker.signals.finished.connect(finished)
        worker.signals.failed.connect(failed)
        self.status.setText("Planning…")
        self.ok_button.setEnabled(False)
        return start(worker)


def removal_note(result: OpResult, freed: int) -> str:
    """ "Moved 12 copies (and 3 companion files, 40 MB) to the trash"; `freed`: 0 to
    leave the size out (a cancelled or partly failed run)."""
    n = len(result.done)
    parts = [f"and {plural(len(result.companions), 'companion file')}"] if result.companions else []
    if freed:
        parts.append(data_size(freed))
    note = f"Moved {n:,} {'copy' if n == 1 else 'copies'}"
    note += (f" ({', '.join(parts)})" if parts else "") + " to the trash"
    if result.cancelled:
        note = "Stopped: m" + note[1:]
    if result.failed:
        note += f" · {plural(len(result.failed), 'file')} not moved"
    return note


# ---- what was just done, with Undo ---------------------------------------------------


class UndoBar(QFrame):
    """One line: what was just done, and an Undo button for it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self._undo_clicked)
        self.close_button = QToolButton()
        self.close_button.setText("×")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Hide this line")
        self.close_button.clicked.connect(self.clear)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 6, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.undo_button)
        row.addWidget(self.close_button)
        self._undo: Callable[[], object] | None = None
        self.setVisible(False)

    def show_note(self, text: str, undo: Callable[[], object] | None = None) -> None:
        self.label.setText(escape_html(text))
        self._undo = undo
        self.undo_button.setVisible(undo is not None)
        self.undo_button.setEnabled(True)
        self.setVisible(True)

    def clear(self) -> None:
        self._undo = None
        self.setVisible(False)

    def _undo_clicked(self) -> None:
        undo, self._undo = self._undo, None
        self.undo_button.setEnabled(False)
        if undo is not None:
            undo()


def run_busy(
    view: DuplicatesView,
    worker: JobWorker,
    text: str,
    finished: Callable[[Any], None],
    failure: str,
    cancellable: bool,
    release: Callable[[], object],
) -> JobWorker:
    """Start `worker` with the view busy (Cancel shown when `cancellable`) until it
    ends: then `release()` (the caller lets go of it) and `finished(result)`, or the
    line "`failure`: why" unless it was cancelled."""

    def done(result: Any) -> None:
        release()
        view.set_idle()
        finished(result)

    token = worker.token  # not the worker: no cycle keeps it (and what `finished` holds)

    def failed(exc: Exception) -> None:
        release()
        view.set_idle()
        if not token.cancelled:
            view.refuse(f"{failure}: {describe(exc)}")

    worker.signals.progressed.connect(view.show_progress)
    worker.signals.finished.connect(done)
    worker.signals.failed.connect(failed)
    view.set_busy(text, cancellable=cancellable)
    return start(worker)


# ---- the view's file operations ------------------------------------------------------


class FileFlows:
    """The Duplicates view's file operations, one at a time (`worker`): trash or move
    the marked photos, the bulk action, and Undo of either. Each runs in a worker
    that also rebuilds the list's index without the files that went."""

    def __init__(self, view: DuplicatesView) -> None:
        self.view = view
        self.worker: JobWorker | None = None
        self.include_exposures = False  # the dry run's last choice

    def trash(self, confirm: bool = True) -> JobWorker | None:
        view = self.view
        marked = view.marks.members()
        if not marked or view.busy():
            return None
        freed = data_size(view.marks.bytes())
        if confirm:
            others = [c for m in marked for c in m.companions]
            along = f"{also_moves(others)}: they go with their photos.\n\n" if others else ""
            question = (
                f"Move {plural(len(marked), 'photo')} ({freed}) to the trash?\n\n{along}"
                "Every group keeps its unmarked photos. You can undo this with Ctrl+Z."
            )
            if not self._ask("Move to trash", question, QMessageBox.StandardButton.Cancel):
                return None
        paths = [m.path for m in marked]
        library = view.library
        return self._marked_job(
            "Moving to the trash…",
            lambda: library.trash(paths),
            lambda what: f"Moved {what} to the trash — Undo with Ctrl+Z",
        )

    def move(self, dest: str | None = None, confirm: bool = True) -> JobWorker | None:
        view = self.view
        if not view.marks or view.busy():
            return None
        if dest is None:
            dest = QFileDialog.getExistingDirectory(view, "Move marked photos to")
            if not dest:
                return None
        others = [c for m in view.marks.members() for c in m.companions]
        if confirm and others:
            question = (
                f"Move {plural(len(view.marks), 'photo')} to {dest}?\n\n"
                f"{also_moves(others)}: they go with their photos. You can undo this with Ctrl+Z."
            )
            if not self._ask("Move to folder", question, QMessageBox.StandardButton.Yes):
                return None
        paths = view.marked_paths()
        library = view.library
        target = dest
        return self._marked_job(
            "Moving…",
            lambda: library.move(paths, target),
            lambda what: f"Moved {what} to {target} — Undo with Ctrl+Z",
        )

    def _ask(self, title: str, question: str, default: QMessageBox.StandardButton) -> bool:
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel
        answer = QMessageBox.question(self.view, title, question, buttons, default)
        return bool(answer == QMessageBox.StandardButton.Yes)

    def _marked_job(
        self, text: str, work: Callable[[], OpResult], done: Callable[[str], str]
    ) -> JobWorker:
        """A trash or move; `done("2 photos (and 3 companion files)")` is its line."""
        groups, marked = self.view.all_groups(), self.view.marks.paths()

        def note(result: OpResult) -> str:
            line = done(plural(len(result.done), "photo") + companions_note(len(result.companions)))
            if result.failed:
                line += f" · {plural(len(result.failed), 'file')} not moved"
            return line

        return self._run(
            lambda _token: file_job(text, work, groups, marked), text, note, cancellable=False
        )

    def _start(
        self, job: Callable[[CancelToken], Job[Any]], text: str, then: Callable[[Any], None],
        failure: str, cancellable: bool
    ) -> JobWorker:  # fmt: skip
        """Run `job` as the one file operation (`worker`): see `run_busy`."""
        self.worker = JobWorker(job)
        release = partial(setattr, self, "worker", None)
        return run_busy(self.view, self.worker, text, then, failure, cancellable, release)

    def _run(
        self,
        job: Callable[[CancelToken], Job[Rebuilt]],
        text: str,
        describe_result: Callable[[OpResult], str],
        *,
        cancellable: bool,
    ) -> JobWorker:
        """Run a job that returns `Rebuilt`; then show the groups without the files
        that went, and the line with Undo."""
        view = self.view
        before = view.pane.model.found

        def finished(result: Rebuilt) -> None:
            op, index, view.marks = result
            keep = view.pane.current_group_index()
            current = before.groups[keep].keeper.path if keep >= 0 else ""
            view.pane.set_index(index, None, index.by_path.get(current, -1))
            note = describe_result(op)
            if op.failed:
                details = "\n".join(
                    f"{os.path.basename(p)}: {reason}" for p, reason in op.failed[:10]
                )
                view.notice.setText(f"⚠ Not moved:\n{details}")
                view.notice.setVisible(True)
            for line in op.notes:
                note += f" · {line}"
            view.status_message.emit(note)
            journal = op.journal_id
            view.undo_bar.show_note(note, (lambda: self.undo(journal)) if op.done else None)
            if op.done:
                view.files_changed.emit()

        return self._start(job, text, finished, "Nothing was moved", cancellable)

    def undo(self, journal_id: int) -> JobWorker | None:
        """Undo the file operation `journal_id` (as Ctrl+Z undoes the latest one): the
        files come back, a scan indexes them again, and the search runs again."""
        view = self.view
        if view.busy():
            view.undo_bar.show_note(
                "Busy: press Undo again in a moment", lambda: self.undo(journal_id)
            )
            return None
        library = view.library
        method, threshold, rotations = view.search_args

        def job(token: CancelToken) -> Job[OpResult]:
            yield Progress("undo", 0, None, None, "Putting the files back…")
            result = library.undo(journal_id)
            yield Progress("scan", 0, None, None, "Indexing them again…")
            # The trash forgot their rows: a scan gives them rows again (and vectors
            # again for the DINOv2 method, whose groups need them).
            yield from library.scan(embed=method == "dino", cancel=token)
            return result

        def finished(result: OpResult) -> None:
            note = f"Restored {plural(len(result.done), 'photo')}" + companions_note(
                len(result.companions)
            )
            for path, reason in result.failed:
                note += f" · not restored: {os.path.basename(path)}: {reason}"
            view.undo_bar.show_note(note)
            view.status_message.emit(note)
            view.files_changed.emit()
            view.search(method, threshold, rotations)

        return self._start(job, "Undoing…", finished, "Could not undo", False)

    # ---- the bulk action ---------------------------------------------------------

    def apply_rules(self) -> JobWorker | None:
        """Plan removing the copies of every group shown, by the keeper rules (in a
        worker), then open the dry run (`dialog`); confirming it runs the plan."""
        view = self.view
        groups = view.groups()
        if not groups or view.busy():
            return None
        library = view.library
        include = self.include_exposures

        def job(token: CancelToken) -> Job[RemovalPlan]:
            return polite(library.plan_removal(groups, include_exposures=include, cancel=token))

        def finished(plan: RemovalPlan) -> None:
            if view.bulk_dialog is not None:
                view.bulk_dialog.close()
            dialog = BulkDialog(library, groups, plan, include, view)
            dialog.accepted.connect(lambda: self._confirmed(dialog))
            dialog.resize(560, 420)
            dialog.open()
            view.bulk_dialog = dialog

        failure = "Could not plan the removal"
        return self._start(job, "Planning…", finished, failure, True)

    def _confirmed(self, dialog: BulkDialog) -> JobWorker | None:
        self.include_exposures = dialog.exposures_check.isChecked()
        return self.remove_planned(dialog.plan, carry_metadata=dialog.carry_metadata)

    def remove_planned(self, plan: RemovalPlan, *, carry_metadata: bool = True) -> JobWorker | None:
        """Run a confirmed plan: one undoable operation, with progress and Cancel."""
        view = self.view
        if not plan.paths or view.busy():
            return None
        library = view.library
        groups, marked = view.all_groups(), view.marks.paths()

        def note(op: OpResult) -> str:
            complete = not op.cancelled and not op.failed
            return removal_note(op, plan.bytes if complete else 0) + " — Undo with Ctrl+Z"

        return self._run(
            lambda token: removal_job(library, plan, carry_metadata, groups, marked, token),
            "Moving the copies to the trash…",
            note,
            cancellable=True,
        )
