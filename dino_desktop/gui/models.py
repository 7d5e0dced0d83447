"""`PhotoListModel`: a flat list of photos (`PhotoRow`s) for the photo grids.

The model holds plain `PhotoRow`s from `Library.photos()` (or search hits with
their similarity scores) and asks the `ThumbnailLoader` for a thumbnail only
when a view asks for a row's decoration, i.e. for the rows Qt paints. That is
what keeps a grid of 100,000 photos as quick as one of 100.

The loader keeps 256-px thumbnails; the model keeps them scaled to the current
zoom (a second, smaller LRU), so zooming rescales in memory and never re-reads
the disk while 256 px suffice.

Refreshing a big list while a scan adds photos must not stall the GUI thread,
so the difference between the old and the new list is worked out by
`plan_update` (pure Python, safe on a worker thread) and applied by
`apply_update` as row removals and insertions: selection and scroll position
survive, and views re-lay out only once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    QSize,
    Qt,
    QUrl,
    Slot,
)
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap

from dino_desktop.core.records import PhotoRow
from dino_desktop.gui.thumbnails import ThumbnailLoader

__all__ = [
    "DEFAULT_THUMBNAIL_SIZE",
    "PhotoListModel",
    "PhotoRole",
    "RowsUpdate",
    "ScoreRole",
    "plan_update",
]

PhotoRole: Final = Qt.ItemDataRole.UserRole + 1
"""The row's `PhotoRow`."""
ScoreRole: Final = Qt.ItemDataRole.UserRole + 2
"""The row's similarity score (float), or None for a plain list."""

DEFAULT_THUMBNAIL_SIZE: Final = 160
PHOTO_IDS_MIME: Final = "application/x-dino-desktop-image-ids"


def display_path(path: str) -> str:
    """A path as text for the screen: bytes that are not UTF-8 (kept by Python as
    lone surrogates, PEP 383) become U+FFFD instead of silently vanishing in Qt.

    Only for showing: every action uses the exact path of the PhotoRow.
    """
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def dragged_photo_ids(mime: QMimeData) -> list[int]:
    """The image ids carried by a drag that started in one of our photo grids."""
    if not mime.hasFormat(PHOTO_IDS_MIME):
        return []
    raw = bytes(mime.data(PHOTO_IDS_MIME).data()).decode()
    return [int(part) for part in raw.split(",") if part.strip().isdigit()]


# Beyond this many separate insert/remove ranges a reset is cheaper than
# replaying them (each range moves the tail of a 100,000-item list).
_MAX_RANGES: Final = 200
_PLACEHOLDER_FILL: Final = QColor(128, 128, 128, 56)  # reads as neutral on light and dark
_PLACEHOLDER_MARK: Final = QColor(128, 128, 128, 160)

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True, slots=True)
class RowsUpdate:
    """How to turn the model's list (at `base_version`) into `rows`; see `plan_update`."""

    base_version: int
    rows: list[PhotoRow]
    index: dict[int, int]  # image id -> row in `rows`
    reset: bool  # True: replace everything (order changed, or too many ranges)
    removed: list[tuple[int, int]]  # (first, last) rows of the old list, last range first
    inserted: list[tuple[int, list[PhotoRow]]]  # (first row in `rows`, rows), in order
    changed: list[tuple[int, int]]  # (first, last) rows of `rows` whose PhotoRow changed


def plan_update(old: Sequence[PhotoRow], new: list[PhotoRow], base_version: int = 0) -> RowsUpdate:
    """Work out the row removals and insertions that turn `old` into `new`.

    Pure Python without Qt calls, so a worker thread can do the O(n) work for a
    100,000-photo list. Photos are matched by id; when the photos both lists
    share are not in the same order (another sort, a changed date), the update
    is a reset.
    """
    index = {photo.id: row for row, photo in enumerate(new)}
    old_by_id = {photo.id: photo for photo in old}
    kept_old = [photo.id for photo in old if photo.id in index]
    kept_new = [photo.id for photo in new if photo.id in old_by_id]

    def reset() -> RowsUpdate:
        return RowsUpdate(base_version, new, index, True, [], [], [])

    if kept_old != kept_new:
        return reset()
    removed = _ranges(row for row, photo in enumerate(old) if photo.id not in index)
    added = _ranges(row for row, photo in enumerate(new) if photo.id not in old_by_id)
    if len(removed) + len(added) > _MAX_RANGES:
        return reset()
    changed = _ranges(
        row
        for row, photo in enumerate(new)
        if (before := old_by_id.get(photo.id)) is not None and before != photo
    )
    inserted = [(first, new[first : last + 1]) for first, last in added]
    return RowsUpdate(base_version, new, index, False, removed[::-1], inserted, changed)


def _ranges(rows: Any) -> list[tuple[int, int]]:
    """Ascending row numbers as (first, last) runs of consecutive rows."""
    out: list[tuple[int, int]] = []
    for row in rows:
        if out and out[-1][1] == row - 1:
            out[-1] = (out[-1][0], row)
        else:
            out.append((row, row))
    return out


class PhotoListModel(QAbstractListModel):
    """Photos as a one-column list: name (and score), thumbnail, path as tooltip, the PhotoRow."""

    def __init__(
        self,
        loader: ThumbnailLoader,
        *,
        thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE,
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self._loader = loader
        self._rows: list[PhotoRow] = []
        self._scores: list[float] | None = None
        self._index: dict[int, int] = {}
        # Bumped on every change of the list, so an update planned off-thread
        # from an older list is recognised as stale.
        self._version = 0
        self._size = thumbnail_size
        self._dpr = 1.0
        self._scaled: OrderedDict[int, tuple[PhotoRow, QPixmap]] = OrderedDict()
        self._placeholder = QPixmap()
        self._broken = QPixmap()
        self._make_placeholders()
        loader.thumbnail_loaded.connect(self._on_loaded)
        loader.thumbnail_failed.connect(self._on_failed)

    # ---- Qt model interface ----------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return (
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemNeverHasChildren
            | Qt.ItemFlag.ItemIsDragEnabled
        )

    def mimeTypes(self) -> list[str]:
        return [PHOTO_IDS_MIME, "text/uri-list"]

    def mimeData(self, indexes: Sequence[Index]) -> QMimeData:
        """Dragged photos: their ids (for drops inside the app) and file URLs (for others)."""
        photos = [p for p in (self.photo_at(i) for i in indexes) if p is not None]
        mime = QMimeData()
        mime.setData(PHOTO_IDS_MIME, QByteArray(",".join(str(p.id) for p in photos).encode()))
        mime.setUrls([QUrl.fromLocalFile(p.path) for p in photos])
        return mime

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.parent().isValid():
            return None
        row = index.row()
        if not 0 <= row < len(self._rows):
            return None
        photo = self._rows[row]
        if role == Qt.ItemDataRole.DisplayRole:
            name = display_path(os.path.basename(photo.path))
            if self._scores is None:
                return name
            return f"{name}\n{self._scores[row]:.3f}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._decoration(photo)
        if role == Qt.ItemDataRole.ToolTipRole:
            return display_path(photo.path)
        if role == PhotoRole:
            return photo
        if role == ScoreRole:
            return None if self._scores is None else self._scores[row]
        return None

    # ---- the list ----------------------------------------------------------

    @property
    def has_scores(self) -> bool:
        return self._scores is not None

    @property
    def version(self) -> int:
        """Changes whenever the list does."""
        return self._version

    def rows(self) -> list[PhotoRow]:
        """A copy of the list (a shallow copy: cheap even for 100,000 photos)."""
        return list(self._rows)

    def set_rows(self, rows: Sequence[PhotoRow], scores: Sequence[float] | None = None) -> None:
        """Replace the whole list; `scores` (search results) parallel to `rows`."""
        if scores is not None and len(scores) != len(rows):
            raise ValueError(f"{len(scores)} scores for {len(rows)} photos")
        new = list(rows)
        self._reset(new, {p.id: i for i, p in enumerate(new)}, scores)

    def append_rows(self, rows: Sequence[PhotoRow], scores: Sequence[float] | None = None) -> None:
        """Add photos at the end (e.g. while a scan finds them); scores iff the list has them."""
        if (scores is None) != (self._scores is None):
            raise ValueError("scores must be given exactly when the list has scores")
        if scores is not None and len(scores) != len(rows):
            raise ValueError(f"{len(scores)} scores for {len(rows)} photos")
        if not rows:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        self._rows.extend(rows)
        if self._scores is not None and scores is not None:
            self._scores.extend(scores)
        for row, photo in enumerate(rows, first):
            self._index[photo.id] = row
        self._version += 1
        self.endInsertRows()

    def apply_update(self, update: RowsUpdate) -> None:
        """Apply a `plan_update` result: in place when it was planned from this very list."""
        if update.reset or update.base_version != self._version or self._scores is not None:
            self._reset(update.rows, update.index, None)
            return
        root = QModelIndex()
        for first, last in update.removed:  # last range first: earlier rows keep their numbers
            self.beginRemoveRows(root, first, last)
            del self._rows[first : last + 1]
            self._version += 1
            self.endRemoveRows()
        for first, chunk in update.inserted:
            self.beginInsertRows(root, first, first + len(chunk) - 1)
            self._rows[first:first] = chunk
            self._version += 1
            self.endInsertRows()
        self._rows = update.rows  # equal by now; this also takes the changed PhotoRows
        self._index = update.index
        self._version += 1
        for first, last in update.changed:
            for row in range(first, last + 1):
                self._scaled.pop(self._rows[row].id, None)
            self.dataChanged.emit(self.index(first), self.index(last))

    def row_of(self, image_id: int) -> int | None:
        """The row showing this photo, if any."""
        return self._index.get(image_id)

    def photo_at(self, index: Index | int) -> PhotoRow | None:
        """The photo of a row (an index or a row number); None when out of range."""
        row = index if isinstance(index, int) else index.row() if index.isValid() else -1
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def score_at(self, row: int) -> float | None:
        if self._scores is None or not 0 <= row < len(self._scores):
            return None
        return self._scores[row]

    def _reset(
        self, rows: list[PhotoRow], index: dict[int, int], scores: Sequence[float] | None
    ) -> None:
        self.beginResetModel()
        self._rows = rows
        self._index = index
        self._scores = None if scores is None else [float(s) for s in scores]
        self._version += 1
        self.endResetModel()

    # ---- thumbnails ----------------------------------------------------------

    @property
    def thumbnail_size(self) -> int:
        return self._size

    def set_thumbnail_size(self, size: int, device_pixel_ratio: float = 1.0) -> None:
        """Show thumbnails fitting a `size`-pixel square (logical pixels); repaints from memory."""
        size = max(16, int(size))
        if (size, device_pixel_ratio) == (self._size, self._dpr):
            return
        self._size = size
        self._dpr = device_pixel_ratio
        self._scaled.clear()
        self._make_placeholders()
        if self._rows:
            self.dataChanged.emit(
                self.index(0), self.index(len(self._rows) - 1), [Qt.ItemDataRole.DecorationRole]
            )

    def reserve_thumbnails(self, visible: int) -> None:
        """A view shows up to `visible` rows at once: keep that many thumbnails at hand."""
        self._loader.reserve(visible)

    def placeholder(self) -> QPixmap:
        """What a row shows while its thumbnail loads."""
        return self._placeholder

    def _decoration(self, photo: PhotoRow) -> QPixmap:
        hit = self._scaled.get(photo.id)
        if hit is not None and hit[0] == photo:
            self._scaled.move_to_end(photo.id)
            return hit[1]
        source = self._loader.pixmap(photo)
        if source is None:
            if self._loader.has_failed(photo):
                return self._broken
            # Asked only for rows that a view paints: this is the lazy loading.
            self._loader.request(photo)
            return self._placeholder
        scaled = self._fit(source)
        self._scaled[photo.id] = (photo, scaled)
        # The same bound as the loader's: a screenful or more at any zoom.
        while len(self._scaled) > self._loader.cache_size:
            self._scaled.popitem(last=False)
        return scaled

    def _fit(self, source: QPixmap) -> QPixmap:
        side = round(self._size * self._dpr)
        if max(source.width(), source.height()) == side:
            scaled = QPixmap(source)
        else:
            scaled = source.scaled(
                side,
                side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        scaled.setDevicePixelRatio(self._dpr)
        return scaled

    def _make_placeholders(self) -> None:
        side = round(self._size * self._dpr)
        self._placeholder = _tile(side, self._dpr, broken=False)
        self._broken = _tile(side, self._dpr, broken=True)

    @Slot(int, QImage)
    def _on_loaded(self, image_id: int, _image: QImage) -> None:
        self._repaint(image_id)

    @Slot(int)
    def _on_failed(self, image_id: int) -> None:
        self._repaint(image_id)

    def _repaint(self, image_id: int) -> None:
        row = self._index.get(image_id)
        if row is not None:
            self._scaled.pop(image_id, None)
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


def _tile(side: int, dpr: float, *, broken: bool) -> QPixmap:
    """A rounded neutral square (with a small crossed frame for a photo that cannot be read)."""
    pixmap = QPixmap(QSize(side, side))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(_PLACEHOLDER_FILL)
    radius = max(4.0, side / 24)
    painter.drawRoundedRect(QRectF(0.5, 0.5, side - 1, side - 1), radius, radius)
    if broken:
        pen = QPen(_PLACEHOLDER_MARK, max(1.5, side / 64))
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        mark = QRectF(side * 0.38, side * 0.38, side * 0.24, side * 0.24)
        painter.drawRect(mark)
        painter.drawLine(mark.topLeft(), mark.bottomRight())
        painter.drawLine(mark.topRight(), mark.bottomLeft())
    painter.end()
    pixmap.setDevicePixelRatio(dpr)
    return pixmap
