"""The Duplicates view's list of groups, built for 100,000 of them.

`GroupIndex` holds the found groups with flat numpy arrays beside them (bytes,
member counts, a bit mask of relations, each member's folder), built in the
search's worker; filtering and sorting are then a few array operations on the
GUI thread, never a Python loop per group. `GroupListModel` is a
QAbstractListModel over the rows that pass (indices into the index): the
QListView asks for the rows it paints, and only those request their keeper's
thumbnail. `GroupsPane` is the left side of the view: the filters, the count
line and the list.

The groups themselves are immutable (`core.duplicates.Group`); an answer or a
removal makes new ones (duplicate_bulk.py): an answer replaces its group in
place (`GroupIndex.replace`: same members), a removal rebuilds the index in a
worker. `Marks` are the photos marked for removal, a mask over the index.
"""

from __future__ import annotations

import gc
import heapq
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSignalBlocker,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QPalette, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.core.duplicates import OTHER_EXPOSURES, RELATIONS, Group, Member
from dino_desktop.core.records import PhotoRow
from dino_desktop.gui.common import data_size, plural
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.duplicate_cards import live_members, relation_label

__all__ = [
    "SORTS",
    "GroupFilter",
    "GroupIndex",
    "GroupListModel",
    "GroupsPane",
    "Marks",
    "keep_out_of_gc",
]

LIST_ICON = 56
ICONS_KEPT = 512  # list-sized keeper icons kept (a few screenfuls)
LABEL_BIT: dict[str, int] = {rel: 1 << i for i, rel in enumerate(RELATIONS)}
SORTS: dict[str, str] = {
    "reclaimable": "Most space to free",
    "members": "Most photos",
    "path": "Keeper path",
}
GROUP_ROLE = int(Qt.ItemDataRole.UserRole) + 1  # the row's index into GroupIndex.groups


# ---- the index --------------------------------------------------------------------


@dataclass(frozen=True)
class GroupFilter:
    """What the list shows: every field narrows it, `sort` orders it."""

    label: str | None = None
    """A member (not the keeper) has this relation."""
    folder: str | None = None
    """A member lies in this folder or below it."""
    min_bytes: int = 0
    sort: str = "reclaimable"
    show_dismissed: bool = False


def keep_out_of_gc() -> None:
    """Move what exists now (the groups a search just returned) out of the cyclic
    garbage collector's way, as `gui.app.tune_gc` does at start-up. 100,000 groups
    are ~1.5 million tracked objects: a full collection then walks them for ~0.4 s
    with the GIL held, in whichever thread allocates (planning a removal in a worker
    froze the window that long). Groups, members and the index hold no reference
    cycles, so reference counting still frees them when the next search replaces
    them."""
    gc.freeze()


SLICE = 20_000  # items per C-level step in a worker (each holds the GIL while it runs)


def _sorted_order(keys: list[str]) -> list[int]:
    """The positions of `keys` in sorted order. Sorted in slices, merged in Python: one
    `sorted()` of 100,000 paths is a single C call that holds the GIL for ~0.15 s,
    which would freeze the GUI thread while a worker builds an index."""
    get = keys.__getitem__
    runs = [
        sorted(range(lo, min(lo + SLICE // 4, len(keys))), key=get)
        for lo in range(0, len(keys), SLICE // 4)
    ]
    return list(heapq.merge(*runs, key=get))


_EXPOSURE_BITS = sum(LABEL_BIT[r] for r in OTHER_EXPOSURES)


def _derived(
    groups: Sequence[Group], members: Sequence[Member], start: np.ndarray
) -> dict[str, Any]:
    """The arrays that follow from the members' relations and answers, vectorised
    (a Python loop per member would cost ~1 s at 100,000 groups)."""
    n = len(groups)
    if not members:
        empty = np.zeros(0, np.bool_)
        return {
            "member_live": empty,
            "member_pick": empty,
            "labels_all": np.zeros(0, np.int64),
            "labels_live": np.zeros(0, np.int64),
            "count_live": np.zeros(0, np.int32),
            "hidden": empty,
        }
    sizes = np.diff(start)
    firsts = start[:-1]
    codes = np.fromiter((LABEL_BIT.get(m.relation, 0) for m in members), np.int64, len(members))
    out = np.fromiter((m.dismissed for m in members), np.bool_, len(members))
    out |= np.repeat(np.fromiter((g.dismissed for g in groups), np.bool_, n), sizes)
    ref = np.fromiter((m.is_reference for m in members), np.bool_, len(members))
    live = ~out
    keeper = np.zeros(len(members), np.bool_)
    keeper[firsts] = True
    count_live = np.add.reduceat(live.astype(np.int32), firsts)
    free = np.add.reduceat((live & ~ref).astype(np.int32), firsts)
    return {
        "member_live": live,
        "member_pick": live & ~ref & ~keeper & ((codes & _EXPOSURE_BITS) == 0),
        "labels_all": np.bitwise_or.reduceat(codes, firsts),
        "labels_live": np.bitwise_or.reduceat(np.where(live, codes, 0), firsts),
        "count_live": count_live.astype(np.int32),
        "hidden": (count_live < 2) | (free == 0),
    }


@dataclass(eq=False)
class GroupIndex:
    """The found groups and flat arrays over them for filtering and sorting.

    Group arrays are by group (position in `groups`), member arrays by member
    (the groups' `members` one after the other, `start[g]:start[g + 1]`).
    """

    groups: list[Group]
    reclaimable: np.ndarray  # int64
    count_all: np.ndarray  # int32: members
    count_live: np.ndarray  # int32: members no answer took out
    labels_all: np.ndarray  # int64 bit masks (LABEL_BIT) of the others' relations
    labels_live: np.ndarray
    hidden: np.ndarray  # bool: only shown with "Show dismissed" (< 2 photos left, or no
    # photo that may go: a search without the answered ones would leave it out)
    path_rank: np.ndarray  # int64: the keeper path's place in sorted order
    start: np.ndarray  # int64, len(groups) + 1
    members: list[Member]
    paths: list[str]  # the members' paths
    member_size: np.ndarray  # int64
    member_group: np.ndarray  # int32
    member_dir: np.ndarray  # int32: into `dirs`
    member_live: np.ndarray  # bool: no answer took it out
    member_pick: np.ndarray  # bool: what "Mark all but the keeper" marks
    dirs: list[str]
    by_path: dict[str, int]
    """Member path → its group (each file is in one group of a search)."""
    by_keeper: dict[int, list[int]]
    """Keeper image id → its groups (for thumbnails arriving)."""
    _folder_cache: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, groups: Sequence[Group]) -> GroupIndex:
        """Index `groups` (plain Python and numpy, no Qt: run it in a worker)."""
        groups = list(groups)
        n = len(groups)
        members: list[Member] = []
        by_keeper: dict[int, list[int]] = {}
        for gi, g in enumerate(groups):
            by_keeper.setdefault(g.keeper.image_id, []).append(gi)
            members.append(g.keeper)
            members.extend(g.others)
        sizes = np.fromiter((1 + len(g.others) for g in groups), np.int32, n)
        start = np.zeros(n + 1, np.int64)
        np.cumsum(sizes, out=start[1:])
        member_group = np.repeat(np.arange(n, dtype=np.int32), sizes)
        paths = [m.path for m in members]
        dir_ids: dict[str, int] = {}
        sep = os.sep
        dirs = [dir_ids.setdefault(p.rpartition(sep)[0], len(dir_ids)) for p in paths]
        path_rank = np.empty(n, np.int64)
        path_rank[_sorted_order([g.keeper.path for g in groups])] = np.arange(n, dtype=np.int64)
        by_path: dict[str, int] = {}
        group_of = member_group.tolist()
        for lo in range(0, len(paths), SLICE):  # no long C call holds the GIL
            by_path.update(zip(paths[lo : lo + SLICE], group_of[lo : lo + SLICE], strict=True))
        return cls(
            groups=groups,
            reclaimable=np.fromiter((g.reclaimable for g in groups), np.int64, n),
            count_all=sizes,
            path_rank=path_rank,
            start=start,
            members=members,
            paths=paths,
            member_size=np.fromiter((m.size for m in members), np.int64, len(members)),
            member_group=member_group,
            member_dir=np.asarray(dirs, np.int32),
            dirs=list(dir_ids),
            by_path=by_path,
            by_keeper=by_keeper,
            **_derived(groups, members, start),
        )

    @classmethod
    def empty(cls) -> GroupIndex:
        return cls.build([])

    def __len__(self) -> int:
        return len(self.groups)

    def replace(self, gi: int, group: Group) -> None:
        """Put `group` (the same photos, e.g. after an answer) in place of group `gi`."""
        old = self.groups[gi]
        if {m.path for m in old.members} != {m.path for m in group.members}:
            raise ValueError("replace() keeps a group's photos; rebuild the index instead")
        if old.keeper.path != group.keeper.path:
            raise ValueError("replace() keeps a group's keeper; rebuild the index instead")
        lo, hi = int(self.start[gi]), int(self.start[gi + 1])
        # The same photos in the same folders, perhaps in another order.
        folder_of = {m.path: int(self.member_dir[j]) for j, m in enumerate(old.members, lo)}
        one = _derived([group], group.members, np.array([0, hi - lo], np.int64))
        self.groups[gi] = group
        self.members[lo:hi] = group.members
        self.paths[lo:hi] = [m.path for m in group.members]
        self.member_dir[lo:hi] = [folder_of[m.path] for m in group.members]
        self.member_live[lo:hi] = one["member_live"]
        self.member_pick[lo:hi] = one["member_pick"]
        self.reclaimable[gi] = group.reclaimable
        for name in ("labels_all", "labels_live", "count_live", "hidden"):
            getattr(self, name)[gi] = one[name][0]

    def position(self, path: str) -> int:
        """The member position of `path` (-1: not in any group)."""
        gi = self.by_path.get(path, -1)
        if gi < 0:
            return -1
        lo, hi = int(self.start[gi]), int(self.start[gi + 1])
        return lo + self.paths[lo:hi].index(path)

    def group_slice(self, gi: int) -> slice:
        return slice(int(self.start[gi]), int(self.start[gi + 1]))

    def _in_folder(self, folder: str, live_only: bool) -> np.ndarray:
        """Per group: a member (a live one, with `live_only`) lies in `folder` or below."""
        root = os.path.abspath(folder).rstrip(os.sep) + os.sep
        dirs = self._folder_cache.get(root)
        if dirs is None:
            dirs = np.fromiter(
                ((d + os.sep).startswith(root) for d in self.dirs), np.bool_, len(self.dirs)
            )
            self._folder_cache = {root: dirs}
        hit = dirs[self.member_dir]
        if live_only:
            hit &= self.member_live
        out = np.zeros(len(self.groups), np.bool_)
        out[self.member_group[hit]] = True
        return out

    def mask(self, f: GroupFilter) -> np.ndarray:
        """Which groups pass `f` (its sort aside)."""
        n = len(self.groups)
        keep = np.ones(n, np.bool_) if f.show_dismissed else ~self.hidden
        if f.label is not None:
            labels = self.labels_all if f.show_dismissed else self.labels_live
            keep &= (labels & LABEL_BIT.get(f.label, 0)) != 0
        if f.min_bytes > 0:
            keep &= self.reclaimable >= f.min_bytes
        if f.folder:
            keep &= self._in_folder(f.folder, not f.show_dismissed)
        return keep

    def rows(self, f: GroupFilter) -> np.ndarray:
        """The indices of the groups that pass `f`, in its order (int64)."""
        rows = np.flatnonzero(self.mask(f)).astype(np.int64)
        rank = self.path_rank[rows]
        if f.sort == "path":
            return rows[np.argsort(rank, kind="stable")]
        if f.sort == "members":
            counts = (self.count_all if f.show_dismissed else self.count_live)[rows]
            return rows[np.lexsort((rank, -counts.astype(np.int64)))]
        return rows[np.lexsort((rank, -self.reclaimable[rows]))]

    def label_counts(self, show_dismissed: bool) -> dict[str, int]:
        """Groups (of those not hidden) with each relation."""
        keep = np.ones(len(self.groups), np.bool_) if show_dismissed else ~self.hidden
        labels = (self.labels_all if show_dismissed else self.labels_live)[keep]
        return {rel: int(np.count_nonzero(labels & bit)) for rel, bit in LABEL_BIT.items()}

    def shown_total(self, show_dismissed: bool) -> int:
        return len(self.groups) if show_dismissed else int(np.count_nonzero(~self.hidden))


class Marks:
    """The photos marked for removal: a mask over a `GroupIndex`'s members, so that
    marking 100,000s (“Mark all but the keeper” in every group) and counting them
    are array operations. Membership is by path."""

    def __init__(self, index: GroupIndex) -> None:
        self.index = index
        self.mask = np.zeros(len(index.members), np.bool_)

    def __len__(self) -> int:
        return int(np.count_nonzero(self.mask))

    def __bool__(self) -> bool:
        return bool(self.mask.any())

    def __contains__(self, path: object) -> bool:
        j = self.index.position(path) if isinstance(path, str) else -1
        return j >= 0 and bool(self.mask[j])

    def add(self, path: str) -> None:
        j = self.index.position(path)
        if j >= 0:
            self.mask[j] = True

    def discard(self, path: str) -> None:
        j = self.index.position(path)
        if j >= 0:
            self.mask[j] = False

    def clear(self) -> None:
        self.mask[:] = False

    def mark_all(self, rows: np.ndarray) -> None:
        """Mark what "Mark all but the keeper" marks in the groups `rows` (and unmark
        their keepers)."""
        index = self.index
        chosen = np.zeros(len(index.groups), np.bool_)
        chosen[rows] = True
        in_rows = chosen[index.member_group]
        self.mask[index.start[:-1][chosen]] = False
        self.mask |= index.member_pick & in_rows

    def members(self) -> list[Member]:
        """The marked photos, in group order."""
        members = self.index.members
        return [members[j] for j in np.flatnonzero(self.mask).tolist()]

    def paths(self) -> list[str]:
        paths = self.index.paths
        return [paths[j] for j in np.flatnonzero(self.mask).tolist()]

    def in_group(self, gi: int) -> list[str]:
        where = self.index.group_slice(gi)
        return [p for p, on in zip(self.index.paths[where], self.mask[where], strict=True) if on]

    def bytes(self) -> int:
        return int(self.index.member_size[self.mask].sum())


# ---- the model --------------------------------------------------------------------


def group_text(group: Group, show_dismissed: bool) -> str:
    """The list row's two lines."""
    name = os.path.basename(group.keeper.path)
    if group.dismissed:
        return f"{name}\n{plural(len(group.members), 'photo')} · answered: not duplicates"
    count = len(group.members) if show_dismissed else len(live_members(group))
    return f"{name}\n{plural(count, 'photo')} · {data_size(group.reclaimable)} reclaimable"


class GroupListModel(QAbstractListModel):
    """The rows of a `GroupIndex` that pass the filter, in order; thumbnails on demand."""

    def __init__(self, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self.found = GroupIndex.empty()
        self.photos: dict[int, PhotoRow] = {}
        self.show_dismissed = False
        self._rows = np.zeros(0, np.int64)
        self._pos = np.zeros(0, np.int64)  # group → its row, or -1
        self._icons: OrderedDict[int, QPixmap] = OrderedDict()
        self._blank = QPixmap(LIST_ICON, LIST_ICON)
        self._blank.fill(QColor(0, 0, 0, 0))

    def reset(
        self,
        index: GroupIndex,
        rows: np.ndarray,
        photos: dict[int, PhotoRow] | None = None,
        show_dismissed: bool = False,
    ) -> None:
        """Show `rows` of `index` (and new `photos` for the thumbnails, when given)."""
        self.beginResetModel()
        if index is not self.found or photos is not None:
            self._icons.clear()
        self.found = index
        if photos is not None:
            self.photos = photos
        self.show_dismissed = show_dismissed
        self._rows = rows
        pos = np.full(len(index), -1, np.int64)
        pos[rows] = np.arange(len(rows), dtype=np.int64)
        self._pos = pos
        self.endResetModel()

    @property
    def rows(self) -> np.ndarray:
        return self._rows

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex | None = None) -> int:
        if parent is not None and parent.isValid():
            return 0
        return len(self._rows)

    def group_of(self, row: int) -> int:
        """The group index shown at `row` (-1 outside the rows)."""
        return int(self._rows[row]) if 0 <= row < len(self._rows) else -1

    def row_of(self, gi: int) -> int:
        """The row showing group `gi` (-1 when it is filtered out)."""
        return int(self._pos[gi]) if 0 <= gi < len(self._pos) else -1

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        gi = self.group_of(index.row()) if index.isValid() else -1
        if gi < 0:
            return None
        group = self.found.groups[gi]
        if role == Qt.ItemDataRole.DisplayRole:
            return group_text(group, self.show_dismissed)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(group.keeper.image_id)
        if role == Qt.ItemDataRole.ToolTipRole:
            why = group.why[:1].upper() + group.why[1:] if group.why else ""
            lines = [group.keeper.path, why, f"⚠ {group.warning}" if group.warning else ""]
            return "\n".join(line for line in lines if line)
        if role == Qt.ItemDataRole.ForegroundRole and group.dismissed:
            return QPalette().brush(QPalette.ColorRole.PlaceholderText)
        if role == GROUP_ROLE:
            return gi
        return None

    def _icon(self, image_id: int) -> QPixmap:
        """The keeper's icon if its thumbnail is in memory; else ask for it (this row is
        being painted) and show a blank of the same size meanwhile."""
        icon = self._icons.get(image_id)
        if icon is not None:
            self._icons.move_to_end(image_id)
            return icon
        photo = self.photos.get(image_id)
        if photo is None:
            return self._blank
        pixmap = self.loader.pixmap(photo)
        if pixmap is None:
            self.loader.request(photo)
            return self._blank
        icon = pixmap.scaled(
            LIST_ICON,
            LIST_ICON,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self._icons[image_id] = icon
        while len(self._icons) > ICONS_KEPT:
            self._icons.popitem(last=False)
        return icon

    def has_icon(self, row: int) -> bool:
        gi = self.group_of(row)
        return gi >= 0 and self.found.groups[gi].keeper.image_id in self._icons

    def thumbnail_arrived(self, image_id: int) -> None:
        for gi in self.found.by_keeper.get(image_id, ()):
            self.group_changed(gi)

    def group_changed(self, gi: int) -> None:
        row = self.row_of(gi)
        if row >= 0:
            where = self.index_of(row)
            self.dataChanged.emit(where, where)

    def index_of(self, row: int) -> QModelIndex:
        return self.createIndex(row, 0)


# ---- the pane ---------------------------------------------------------------------


class GroupsPane(QWidget):
    """Filters, the count line and the virtual list of groups."""

    current_changed = Signal(int)  # group index (-1: none)
    filter_changed = Signal()  # the rows shown changed (not their content)

    def __init__(self, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = GroupListModel(loader, self)
        self._folder: str | None = None
        self._selecting = False
        self.label_combo = QComboBox()
        self.label_combo.setToolTip("Only groups with a copy of this kind")
        self.sort_combo = QComboBox()
        for key, text in SORTS.items():
            self.sort_combo.addItem(text, key)
        self.sort_combo.setToolTip("Order of the groups")
        self.folder_button = QToolButton()
        self.folder_button.setText("Any folder")
        self.folder_button.setToolTip("Only groups with a photo in a folder (or below it)")
        self.folder_button.clicked.connect(self._choose_folder)
        self.folder_clear = QToolButton()
        self.folder_clear.setText("×")
        self.folder_clear.setToolTip("Any folder")
        self.folder_clear.clicked.connect(lambda: self.set_folder(None))
        self.min_spin = QDoubleSpinBox()
        self.min_spin.setRange(0, 100_000)
        self.min_spin.setDecimals(1)
        self.min_spin.setSuffix(" MB")
        self.min_spin.setSpecialValueText("any size")
        self.min_spin.setToolTip("Only groups that free at least this much")
        self.min_spin.setKeyboardTracking(False)
        self.clear_button = QToolButton()
        self.clear_button.setText("Clear filters")
        self.clear_button.setAutoRaise(True)
        self.clear_button.clicked.connect(self.clear_filters)
        self.dismissed_check = QCheckBox("Show dismissed")
        self.dismissed_check.setToolTip(
            "Also show the groups and photos answered “Not duplicates” or “Keep all”"
        )
        self.count_label = QLabel()
        self.count_label.setWordWrap(True)
        # A one-column table, not a QListView: QListView lays out every row on each
        # reset (asking the Python model for each: ~170 ms at 100,000 groups, per
        # filter change), while a table's fixed-height rows are arithmetic (~10 ms).
        self.list = QTableView()
        self.list.setModel(self.model)
        self.list.setShowGrid(False)
        self.list.setWordWrap(False)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.horizontalHeader().hide()
        self.list.horizontalHeader().setStretchLastSection(True)
        rows = self.list.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        line = self.list.fontMetrics().lineSpacing()
        rows.setDefaultSectionSize(max(LIST_ICON, 2 * line) + 8)
        self.list.setIconSize(QSize(LIST_ICON, LIST_ICON))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list.selectionModel().currentRowChanged.connect(self._row_changed)
        self._fill_labels()

        folder_row = QHBoxLayout()
        folder_row.setSpacing(2)
        folder_row.addWidget(self.folder_button, 1)
        folder_row.addWidget(self.folder_clear)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("Kind"), 0, 0)
        grid.addWidget(self.label_combo, 0, 1)
        grid.addWidget(QLabel("Folder"), 1, 0)
        grid.addLayout(folder_row, 1, 1)
        grid.addWidget(QLabel("At least"), 2, 0)
        grid.addWidget(self.min_spin, 2, 1)
        grid.addWidget(QLabel("Sort"), 3, 0)
        grid.addWidget(self.sort_combo, 3, 1)
        grid.addWidget(self.dismissed_check, 4, 0, 1, 2)
        grid.addWidget(self.clear_button, 4, 1, Qt.AlignmentFlag.AlignRight)
        grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(self.count_label)
        layout.addWidget(self.list, 1)
        for signal in (
            self.label_combo.currentIndexChanged,
            self.sort_combo.currentIndexChanged,
            self.min_spin.valueChanged,
            self.dismissed_check.toggled,
        ):
            signal.connect(self.apply)
        self.folder_clear.setVisible(False)

    # ---- filters ---------------------------------------------------------------

    def filter(self) -> GroupFilter:
        label = self.label_combo.currentData()
        return GroupFilter(
            label=str(label) if label else None,
            folder=self._folder,
            min_bytes=round(self.min_spin.value() * 1024 * 1024),
            sort=str(self.sort_combo.currentData()),
            show_dismissed=self.dismissed_check.isChecked(),
        )

    def clear_filters(self) -> None:
        """Every group again (dismissed ones stay as the checkbox says), in the default order."""
        widgets = (self.label_combo, self.min_spin, self.sort_combo)
        blockers = [QSignalBlocker(w) for w in widgets]
        self.label_combo.setCurrentIndex(0)
        self.min_spin.setValue(0)
        self.sort_combo.setCurrentIndex(0)
        del blockers
        self.set_folder(None)  # applies

    def set_label(self, label: str | None) -> None:
        self.label_combo.setCurrentIndex(max(0, self.label_combo.findData(label or "")))

    def set_sort(self, sort: str) -> None:
        self.sort_combo.setCurrentIndex(self.sort_combo.findData(sort))

    def set_min_bytes(self, n: int) -> None:
        self.min_spin.setValue(n / (1024 * 1024))

    def set_folder(self, folder: str | None) -> None:
        self._folder = os.path.abspath(folder) if folder else None
        name = os.path.basename(self._folder.rstrip(os.sep)) if self._folder else ""
        self.folder_button.setText(name or (self._folder or "Any folder"))
        self.folder_button.setToolTip(self._folder or "Only groups with a photo in a folder")
        self.folder_clear.setVisible(self._folder is not None)
        self.apply()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Groups with a photo in", self._folder or ""
        )
        if folder:
            self.set_folder(folder)

    def _fill_labels(self) -> None:
        counts = self.model.found.label_counts(self.dismissed_check.isChecked())
        current = self.label_combo.currentData()
        with QSignalBlocker(self.label_combo):
            self.label_combo.clear()
            self.label_combo.addItem("Any kind", "")
            for rel in RELATIONS:
                self.label_combo.addItem(f"{relation_label(rel)} ({counts[rel]:,})", rel)
            self.label_combo.setCurrentIndex(max(0, self.label_combo.findData(current or "")))

    # ---- rows --------------------------------------------------------------------

    def set_index(
        self, index: GroupIndex, photos: dict[int, PhotoRow] | None, current: int = -1
    ) -> None:
        """Show a new index (a search's, or one rebuilt after a removal); `current`:
        the group (an index into it) to keep current, else the first row."""
        self._show(index, photos, current)

    def apply(self, *_args: object) -> None:
        """Filter and sort again, keeping the current group when it still passes."""
        self._show(self.model.found, None, self.current_group_index())
        self.filter_changed.emit()

    def _show(self, index: GroupIndex, photos: dict[int, PhotoRow] | None, keep: int) -> None:
        f = self.filter()
        rows = index.rows(f)
        old_row = max(0, self.list.currentIndex().row())
        self.model.reset(index, rows, photos, f.show_dismissed)
        self._fill_labels()
        self._show_counts()
        shown = self.model.rowCount()
        row = self.model.row_of(keep) if keep >= 0 else -1
        if row < 0 and shown:
            row = min(old_row, shown - 1)
        self.select_row(row)

    def refresh_group(self, gi: int) -> None:
        """Group `gi` changed in place: drop it when it no longer passes, else repaint it."""
        row = self.model.row_of(gi)
        passes = bool(self.model.found.mask(self.filter())[gi])
        if (row >= 0) != passes:
            current = self.current_group_index()
            self._show(self.model.found, None, current)
        else:
            self.model.group_changed(gi)
            self._fill_labels()
            self._show_counts()

    def _show_counts(self) -> None:
        f = self.filter()
        rows = self.model.rows
        total = self.model.found.shown_total(f.show_dismissed)
        freed = int(self.model.found.reclaimable[rows].sum()) if len(rows) else 0
        self.count_label.setText(
            f"{len(rows):,} of {plural(total, 'group')} · {data_size(freed)} reclaimable"
            if total
            else ""
        )

    def select_row(self, row: int) -> None:
        """Make `row` current (-1: none) and say so, even when it was current already."""
        selection = self.list.selectionModel()
        # Not QSignalBlocker: the view repaints the rows it unselects from these signals.
        self._selecting = True
        try:
            if 0 <= row < self.model.rowCount():
                where = self.model.index_of(row)
                flags = selection.SelectionFlag.ClearAndSelect | selection.SelectionFlag.Rows
                selection.setCurrentIndex(where, flags)
                self.list.scrollTo(where)
            else:
                selection.clear()
        finally:
            self._selecting = False
        self.current_changed.emit(self.model.group_of(row))

    def current_row(self) -> int:
        return int(self.list.currentIndex().row())

    def current_group_index(self) -> int:
        return self.model.group_of(self.current_row())

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not self._selecting:
            self.current_changed.emit(self.model.group_of(current.row()))
