"""`PhotoGrid`: a thumbnail grid for 100,000s of photos, and its `PhotoDelegate`.

`PhotoGrid` is a QAbstractItemView that lays out equal cells arithmetically
(row -> line and column), instead of a QListView in IconMode. Measured with
100,000 rows: every row insertion or removal makes QListView throw its layout
away ("be smarter about inserted items" in qlistview.cpp) and lay out all rows
again, either in one go (0.13-0.5 s, a frozen window) or in batches (~0.4 s,
during which the scroll range shrinks to the first batch and the user is thrown
back near the top). A grid that fills while a scan runs inserts rows every
second, so neither was acceptable. Here a layout costs O(1), the row under the
top of the viewport stays put across insertions, removals, resets, resizes and
zooming, and painting touches only the visible rows.

The delegate marks photo items that are more than one file (`PhotoRow.badge`:
"RAW+JPEG", "Live", ...) with a small label on the thumbnail's bottom-left corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QMetaObject,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QRegion,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QRubberBand,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionRubberBand,
    QStyleOptionViewItem,
    QWidget,
)

from dino_desktop.core.records import PhotoRow
from dino_desktop.gui.models import (
    DEFAULT_THUMBNAIL_SIZE,
    PhotoListModel,
    PhotoRole,
)

__all__ = ["MAX_ZOOM", "MIN_ZOOM", "PhotoDelegate", "PhotoGrid"]

MIN_ZOOM: Final = 96
MAX_ZOOM: Final = 320

_PAD: Final = 8  # inside a cell, around the thumbnail
_TEXT_GAP: Final = 6  # between the thumbnail and its name
_SPACING: Final = 8  # the least space between cells; spare width is spread evenly
_RADIUS: Final = 8.0
# After scrolling stops, repaint once: rows whose thumbnail requests were dropped
# from the loader's queue while flying past get asked for again.
_SETTLE_MS: Final = 150
# The badge is white on a dark, mostly opaque label: that reads on light and dark
# thumbnails alike, where a palette colour would vanish on a photo of its colour.
_BADGE_FILL: Final = QColor(0, 0, 0, 176)
_BADGE_TEXT: Final = QColor(255, 255, 255)
_BADGE_INSET: Final = 4  # from the thumbnail's bottom-left corner
_BADGE_PAD: Final = 5  # between the text and the label's left and right edges
_BADGE_RADIUS: Final = 4.0
_BADGE_SCALE: Final = 0.8  # of the grid's font

Index = QModelIndex | QPersistentModelIndex


class PhotoDelegate(QStyledItemDelegate):
    """Paints one cell: a rounded highlight, the thumbnail centred in its square, its
    badge (RAW+JPEG, Live, ...), the name (elided in the middle, so the extension
    shows) and, for search results, the score."""

    def __init__(self, grid: PhotoGrid) -> None:
        super().__init__(grid)
        self._grid = grid
        # The badge font and text widths, made once per grid font: painting 100s of
        # cells a frame allocates no font or metrics of its own.
        self._font_of = QFont()
        self._badge_font = QFont()
        self._badge_metrics = QFontMetrics(self._badge_font)
        self._badge_widths: dict[str, int] = {}
        self._set_badge_font(grid.font())

    def _set_badge_font(self, font: QFont) -> None:
        self._font_of = QFont(font)
        small = QFont(font)
        small.setPointSizeF(max(6.0, font.pointSizeF() * _BADGE_SCALE))
        small.setWeight(QFont.Weight.DemiBold)
        self._badge_font = small
        self._badge_metrics = QFontMetrics(small)
        self._badge_widths.clear()

    def badge_rect(self, image: QRectF, text: str, font: QFont | None = None) -> QRectF:
        """Where `text` goes on a thumbnail drawn at `image`: its bottom-left corner,
        no wider than the thumbnail (the text is elided then)."""
        if font is not None and font != self._font_of:
            self._set_badge_font(font)
        width = self._badge_widths.get(text)
        if width is None:  # a handful of distinct texts in any library
            width = self._badge_widths[text] = self._badge_metrics.horizontalAdvance(text)
        height = self._badge_metrics.height() + 2
        room = max(0.0, image.width() - 2 * _BADGE_INSET)
        return QRectF(
            image.left() + _BADGE_INSET,
            image.bottom() - _BADGE_INSET - height,
            min(room, width + 2 * _BADGE_PAD),
            height,
        )

    def _paint_badge(self, painter: QPainter, image: QRectF, text: str, font: QFont) -> None:
        box = self.badge_rect(image, text, font)
        if box.width() <= 2 * _BADGE_PAD or box.height() > image.height():
            return  # a sliver of a thumbnail: no room for a label
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(_BADGE_FILL)
        painter.drawRoundedRect(box, _BADGE_RADIUS, _BADGE_RADIUS)
        painter.setFont(self._badge_font)
        painter.setPen(_BADGE_TEXT)
        inner = box.adjusted(_BADGE_PAD, 0, -_BADGE_PAD, 0)
        if self._badge_widths[text] > inner.width():  # rare: a narrow panorama, small zoom
            text = self._badge_metrics.elidedText(
                text, Qt.TextElideMode.ElideRight, int(inner.width())
            )
        painter.drawText(inner, Qt.AlignmentFlag.AlignCenter, text)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return self._grid.cell_size()

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        rect: QRect = option.rect
        state: QStyle.StateFlag = option.state
        palette: QPalette = option.palette
        group = (
            QPalette.ColorGroup.Active
            if state & QStyle.StateFlag.State_Active
            else QPalette.ColorGroup.Inactive
        )
        highlight = palette.color(group, QPalette.ColorRole.Highlight)
        text_color = palette.color(group, QPalette.ColorRole.Text)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        frame = QRectF(rect).adjusted(1.0, 1.0, -1.0, -1.0)
        selected = bool(state & QStyle.StateFlag.State_Selected)
        if selected or state & QStyle.StateFlag.State_MouseOver:
            fill = QColor(highlight if selected else text_color)
            fill.setAlpha(72 if selected else 18)
            painter.setPen(QPen(highlight, 1.5) if selected else Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawRoundedRect(frame, _RADIUS, _RADIUS)
        if state & QStyle.StateFlag.State_HasFocus and not selected:
            ring = QColor(highlight)
            ring.setAlpha(170)
            painter.setPen(QPen(ring, 1.0))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(frame, _RADIUS, _RADIUS)

        side = self._grid.thumbnail_size()
        square = QRectF(rect.x() + (rect.width() - side) / 2, rect.y() + _PAD, side, side)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        image = square
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            size = pixmap.deviceIndependentSize()
            corner = QPointF(
                square.x() + (side - size.width()) / 2, square.y() + (side - size.height()) / 2
            )
            painter.drawPixmap(corner, pixmap)
            image = QRectF(corner, size)
        photo = index.data(PhotoRole)
        if isinstance(photo, PhotoRow) and photo.badge:
            self._paint_badge(painter, image, photo.badge, option.font)

        name, _, score = str(index.data(Qt.ItemDataRole.DisplayRole) or "").partition("\n")
        metrics = option.fontMetrics
        line = QRect(
            rect.x() + _PAD // 2,
            round(square.bottom()) + _TEXT_GAP,
            rect.width() - _PAD,
            metrics.height(),
        )
        painter.setFont(option.font)
        painter.setPen(text_color)
        align = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter
        painter.drawText(
            line, align, metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, line.width())
        )
        if score:
            line.translate(0, metrics.height())
            painter.setPen(palette.color(group, QPalette.ColorRole.PlaceholderText))
            painter.drawText(line, align, score)
        painter.restore()


@dataclass(frozen=True, slots=True)
class _Anchor:
    """The first row of the topmost visible line and its line's offset from the viewport top."""

    row: int
    offset: int


class PhotoGrid(QAbstractItemView):
    """A grid of equal cells (thumbnail + name) with extended selection and a rubber band.

    Use it with a `PhotoListModel`. Double-click or Enter activates a photo;
    right-click (or the menu key) asks for a context menu for the selection,
    selecting the photo under the pointer first when it was not selected.
    """

    photo_activated = Signal(object)  # PhotoRow
    context_menu_requested = Signal(list, QPoint)  # list[PhotoRow], global position

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._thumb = DEFAULT_THUMBNAIL_SIZE
        self._cell = QSize(1, 1)
        self._columns = 1
        self._gap = float(_SPACING)
        self._hover = -1
        self._press: QPoint | None = None  # rubber band origin, in content coordinates
        self._band = QRect()  # in content coordinates
        self._pending: _Anchor | None = None  # across a row removal
        # The anchor last restored, with the scroll value and columns it was restored at.
        self._kept: tuple[_Anchor, int, int] | None = None
        self._before_reset: tuple[int | None, int, list[int], int | None] | None = None
        self._connections: list[QMetaObject.Connection] = []
        self._empty_text = ""
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)
        self.setItemDelegate(PhotoDelegate(self))
        self.activated.connect(self._on_activated)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(_SETTLE_MS)
        self._settle.timeout.connect(self.viewport().update)
        # Not connected to start() directly: valueChanged(int) would pick start(int msec).
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self._update_cell()

    @Slot()
    def _on_scrolled(self) -> None:
        self._settle.start()

    # ---- public API ----------------------------------------------------------

    def photo_model(self) -> PhotoListModel | None:
        model = self.model()
        return model if isinstance(model, PhotoListModel) else None

    def thumbnail_size(self) -> int:
        return self._thumb

    def set_thumbnail_size(self, size: int) -> None:
        """Zoom: thumbnails fit a `size`-pixel square; the top visible photo stays in place."""
        size = max(16, int(size))
        if size == self._thumb:
            return
        anchor = self._anchor()
        self._thumb = size
        self._update_cell()
        self._relayout(anchor)

    def cell_size(self) -> QSize:
        """One item: the thumbnail square, padding and the text lines."""
        return QSize(self._cell)

    def grid_size(self) -> QSize:
        """The layout pitch: a cell plus the least spacing (spare width is spread on top)."""
        return QSize(self._cell.width() + _SPACING, self._cell.height() + _SPACING)

    def set_empty_text(self, text: str) -> None:
        """What the grid says while it has no photos (e.g. how to add some)."""
        self._empty_text = text
        self.viewport().update()

    def columns(self) -> int:
        return self._columns

    def visible_rows(self) -> range:
        """Rows at least partly inside the viewport."""
        return self._rows_between(self.verticalOffset(), self.verticalOffset() + self._view_h())

    def selected_photos(self) -> list[PhotoRow]:
        """The selected photos, in grid order (cheap even when 100,000 are selected)."""
        model = self.photo_model()
        selection_model = self.selectionModel()
        if model is None or selection_model is None:
            return []
        selection = selection_model.selection()
        spans = [(r.top(), r.bottom()) for r in map(selection.at, range(selection.count()))]
        if not spans:
            return []
        rows = model.rows()
        if len(spans) == 1:
            first, last = spans[0]
            return rows[first : last + 1]
        wanted: set[int] = set()
        for first, last in spans:  # ranges may overlap after ctrl-clicks
            wanted.update(range(first, last + 1))
        return [rows[row] for row in sorted(wanted) if row < len(rows)]

    # ---- model ---------------------------------------------------------------

    def setModel(self, model: QAbstractItemModel | None) -> None:
        for connection in self._connections:
            QObject.disconnect(connection)
        self._connections = []
        super().setModel(model)
        if model is not None:
            self._connections = [
                model.rowsRemoved.connect(self._on_rows_removed),
                model.modelAboutToBeReset.connect(self._on_about_to_reset),
                model.modelReset.connect(self._on_model_reset),
                model.layoutChanged.connect(self._on_layout_changed),
            ]
        self._update_cell()
        self.updateGeometries()

    def rowsInserted(self, parent: Index, start: int, end: int) -> None:
        anchor = self._anchor()
        if anchor is not None and start <= anchor.row:
            # Photos arrived above the one at the top: keep showing that one.
            anchor = _Anchor(anchor.row + end - start + 1, anchor.offset)
        super().rowsInserted(parent, start, end)
        self._hover = -1
        self._relayout(anchor)

    def rowsAboutToBeRemoved(self, parent: Index, start: int, end: int) -> None:
        anchor = self._anchor()
        if anchor is not None:
            if end < anchor.row:
                anchor = _Anchor(anchor.row - (end - start + 1), anchor.offset)
            elif start <= anchor.row:
                anchor = _Anchor(start, anchor.offset)
        self._pending = anchor
        super().rowsAboutToBeRemoved(parent, start, end)

    @Slot()
    def _on_rows_removed(self) -> None:
        anchor, self._pending = self._pending, None
        self._hover = -1
        self._relayout(anchor)

    @Slot()
    def _on_about_to_reset(self) -> None:
        # A reset (new sort, a big refresh) keeps the top photo, the selection
        # and the current photo when they are still in the list.
        model = self.photo_model()
        if model is None:
            return
        anchor = self._anchor()
        top = None if anchor is None else model.photo_at(anchor.row)
        current = model.photo_at(self.currentIndex())
        self._before_reset = (
            None if top is None else top.id,
            0 if anchor is None else anchor.offset,
            [photo.id for photo in self.selected_photos()],
            None if current is None else current.id,
        )

    def reset(self) -> None:
        super().reset()
        self._hover = -1

    @Slot()
    def _on_model_reset(self) -> None:
        # Connected after the selection model's own reset slot (which clears
        # the selection), so what is restored here stays.
        self._update_cell()  # a list with scores has a second text line
        model = self.photo_model()
        state, self._before_reset = self._before_reset, None
        if model is None or state is None:
            self._relayout(None)
            return
        top_id, offset, selected_ids, current_id = state
        top_row = None if top_id is None else model.row_of(top_id)
        self._relayout(None if top_row is None else _Anchor(top_row, offset))
        rows = sorted(r for i in selected_ids if (r := model.row_of(i)) is not None)
        if rows:
            self.select_rows(rows)
        current_row = None if current_id is None else model.row_of(current_id)
        selection_model = self.selectionModel()
        if current_row is not None and selection_model is not None:
            selection_model.setCurrentIndex(
                model.index(current_row), QItemSelectionModel.SelectionFlag.NoUpdate
            )

    @Slot()
    def _on_layout_changed(self) -> None:
        self._relayout(None)

    def select_rows(self, rows: list[int]) -> None:
        """Select exactly these rows (ascending), as few ranges as possible."""
        model = self.model()
        selection_model = self.selectionModel()
        if model is None or selection_model is None:
            return
        selection = QItemSelection()
        for first, last in _runs(rows):
            selection.select(model.index(first, 0), model.index(last, 0))
        selection_model.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    # ---- geometry ------------------------------------------------------------

    def _update_cell(self) -> None:
        model = self.photo_model()
        lines = 2 if model is not None and model.has_scores else 1
        height = _PAD + self._thumb + _TEXT_GAP + lines * self.fontMetrics().height() + _PAD
        self._cell = QSize(self._thumb + 2 * _PAD, height)
        if model is not None:
            model.set_thumbnail_size(self._thumb, self.devicePixelRatioF())

    def _count(self) -> int:
        model = self.model()
        return 0 if model is None else model.rowCount(self.rootIndex())

    def _view_h(self) -> int:
        return self.viewport().height()

    def _pitch(self) -> int:
        return self._cell.height() + _SPACING

    def _line_top(self, line: int) -> int:
        return _SPACING + line * self._pitch()

    def _column_x(self, column: int) -> int:
        return round(self._gap + column * (self._cell.width() + self._gap))

    def _content_height(self) -> int:
        lines = math.ceil(self._count() / self._columns)
        return _SPACING + lines * self._pitch()

    def _cell_rect(self, row: int) -> QRect:
        """A row's cell in content coordinates (y from the top of the whole grid)."""
        line, column = divmod(row, self._columns)
        return QRect(
            self._column_x(column), self._line_top(line), self._cell.width(), self._cell.height()
        )

    def _rows_between(self, top: int, bottom: int) -> range:
        """Rows on the lines that overlap content y in [top, bottom)."""
        count = self._count()
        if count == 0 or bottom <= top:
            return range(0)
        first_line = self._first_line_at(top)
        last_line = (bottom - 1 - _SPACING) // self._pitch()  # -1 when only spacing is inside
        if last_line < first_line:
            return range(0)
        return range(first_line * self._columns, min(count, (last_line + 1) * self._columns))

    def _first_line_at(self, y: int) -> int:
        """The first line whose cells reach below content y (the spacing under a line is not it)."""
        line = max(0, (y - _SPACING) // self._pitch())
        return line + 1 if self._line_top(line) + self._cell.height() <= y else line

    def _anchor(self) -> _Anchor | None:
        """What must stay in view across a relayout; None at the very top (stay at the top)."""
        value = self.verticalScrollBar().value()
        if value <= 0 or self._count() == 0:
            return None
        kept = self._kept
        if kept is not None and kept[1:] == (value, self._columns):
            # Nothing moved since the last relayout: keep that exact photo, not
            # the start of its line, or a run of changes (an update's ranges)
            # would drift by up to a line each.
            return kept[0]
        line = self._first_line_at(value)
        return _Anchor(min(line * self._columns, self._count() - 1), self._line_top(line) - value)

    def _relayout(self, anchor: _Anchor | None) -> None:
        self.updateGeometries()
        count = self._count()
        self._kept = None
        if anchor is not None and count:
            anchor = _Anchor(min(anchor.row, count - 1), anchor.offset)
            bar = self.verticalScrollBar()
            bar.setValue(self._line_top(anchor.row // self._columns) - anchor.offset)
            self._kept = (anchor, bar.value(), self._columns)
        self.viewport().update()

    def updateGeometries(self) -> None:
        width = self.viewport().width()
        cell_w = self._cell.width()
        self._columns = max(1, (width - _SPACING) // (cell_w + _SPACING))
        # Spread the spare width evenly: the grid looks centred at any width.
        self._gap = max(float(_SPACING), (width - self._columns * cell_w) / (self._columns + 1))
        bar = self.verticalScrollBar()
        bar.setRange(0, max(0, self._content_height() - self._view_h()))
        bar.setPageStep(max(1, self._view_h()))
        bar.setSingleStep(max(16, self._pitch() // 3))
        model = self.photo_model()
        if model is not None:
            model.reserve_thumbnails(self._columns * (self._view_h() // self._pitch() + 2))
        super().updateGeometries()

    def resizeEvent(self, event: QResizeEvent) -> None:
        anchor = self._anchor()
        super().resizeEvent(event)  # calls updateGeometries with the new width
        self._relayout(anchor)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            anchor = self._anchor()
            self._update_cell()
            self._relayout(anchor)

    # ---- QAbstractItemView's geometry interface -------------------------------

    def visualRect(self, index: Index) -> QRect:
        if not index.isValid() or index.parent() != self.rootIndex():
            return QRect()
        if index.row() >= self._count():
            return QRect()
        return self._cell_rect(index.row()).translated(0, -self.verticalOffset())

    def indexAt(self, point: QPoint) -> QModelIndex:
        model = self.model()
        row = self._row_at(point.x(), point.y() + self.verticalOffset())
        if model is None or row is None:
            return QModelIndex()
        return model.index(row, 0, self.rootIndex())

    def _row_at(self, x: int, y: int) -> int | None:
        """The row whose cell holds content point (x, y); None in the gaps."""
        if y < _SPACING:
            return None
        line, inside = divmod(y - _SPACING, self._pitch())
        if inside >= self._cell.height():
            return None
        column = math.floor((x - self._gap) / (self._cell.width() + self._gap))
        if not 0 <= column < self._columns:
            return None
        left = self._column_x(column)
        if not left <= x < left + self._cell.width():
            return None
        row = line * self._columns + column
        return row if row < self._count() else None

    def scrollTo(
        self,
        index: Index,
        hint: QAbstractItemView.ScrollHint = QAbstractItemView.ScrollHint.EnsureVisible,
    ) -> None:
        if not index.isValid() or index.row() >= self._count():
            return
        cell = self._cell_rect(index.row())
        bar = self.verticalScrollBar()
        height = self._view_h()
        top, bottom = cell.top() - _SPACING, cell.bottom() + 1 + _SPACING
        hints = QAbstractItemView.ScrollHint
        if hint == hints.PositionAtTop:
            value = top
        elif hint == hints.PositionAtBottom:
            value = bottom - height
        elif hint == hints.PositionAtCenter:
            value = cell.center().y() - height // 2
        elif top < bar.value():
            value = top
        elif bottom > bar.value() + height:
            value = bottom - height
        else:
            return
        bar.setValue(value)

    def moveCursor(
        self, cursorAction: QAbstractItemView.CursorAction, modifiers: Qt.KeyboardModifier
    ) -> QModelIndex:
        model = self.model()
        count = self._count()
        if model is None or count == 0:
            return QModelIndex()
        current = self.currentIndex()
        if not current.isValid():
            return model.index(0, 0, self.rootIndex())
        row, columns = current.row(), self._columns
        page = columns * max(1, self._view_h() // self._pitch())
        last_line = (count - 1) // columns
        actions = QAbstractItemView.CursorAction
        if cursorAction in (actions.MoveLeft, actions.MovePrevious):
            row -= 1
        elif cursorAction in (actions.MoveRight, actions.MoveNext):
            row += 1
        elif cursorAction == actions.MoveUp:
            row = row - columns if row >= columns else row
        elif cursorAction == actions.MoveDown:
            # From the line above a short last line, Down goes to the last photo.
            row = row + columns if row // columns < last_line else row
        elif cursorAction == actions.MovePageUp:
            row = row - page if row >= page else row % columns
        elif cursorAction == actions.MovePageDown:
            row = row + page
        elif cursorAction == actions.MoveHome:
            row = 0
        elif cursorAction == actions.MoveEnd:
            row = count - 1
        return model.index(max(0, min(row, count - 1)), 0, self.rootIndex())

    def horizontalOffset(self) -> int:
        return 0

    def verticalOffset(self) -> int:
        return self.verticalScrollBar().value()

    def isIndexHidden(self, index: Index) -> bool:
        return False

    def setSelection(self, rect: QRect, command: QItemSelectionModel.SelectionFlag) -> None:
        model = self.model()
        selection_model = self.selectionModel()
        if model is None or selection_model is None:
            return
        offset = self.verticalOffset()
        if self.state() == QAbstractItemView.State.DragSelectingState:
            # The rubber band: every cell it touches.
            spans = self._spans_in(rect.normalized().translated(0, offset))
        else:
            # A shift-click or shift-arrow: Qt passes a rect from the range's
            # start to the new current photo; a grid selects the photos in
            # between in reading order, as file managers do, not a rectangle.
            ends = [
                row
                for point in (rect.topLeft(), rect.bottomRight())
                if (row := self._row_at(point.x(), point.y() + offset)) is not None
            ]
            spans = [(min(ends), max(ends))] if ends else []
        selection = QItemSelection()
        for first, last in spans:
            selection.select(
                model.index(first, 0, self.rootIndex()), model.index(last, 0, self.rootIndex())
            )
        selection_model.select(selection, command)

    def _spans_in(self, rect: QRect) -> list[tuple[int, int]]:
        """(first, last) row runs of the cells that a content rectangle touches."""
        count = self._count()
        hit = [
            c
            for c in range(self._columns)
            if self._column_x(c) <= rect.right()
            and self._column_x(c) + self._cell.width() > rect.left()
        ]
        if count == 0 or not hit:
            return []
        rows: list[int] = []
        for start in self._rows_between(rect.top(), rect.bottom() + 1)[:: self._columns]:
            top = self._line_top(start // self._columns)
            if top > rect.bottom() or top + self._cell.height() <= rect.top():
                continue  # only the gap under a line is inside the band
            rows.extend(r for r in range(start + hit[0], start + hit[-1] + 1) if r < count)
        return _runs(rows)

    def visualRegionForSelection(self, selection: QItemSelection) -> QRegion:
        visible = self.visible_rows()
        region = QRegion()
        if not visible:
            return region
        offset = self.verticalOffset()
        for span in map(selection.at, range(selection.count())):
            first = max(span.top(), visible.start)
            last = min(span.bottom(), visible.stop - 1)
            row = first
            while row <= last:  # one rectangle per line of the span
                line_end = min(last, (row // self._columns + 1) * self._columns - 1)
                cells = self._cell_rect(row).united(self._cell_rect(line_end))
                region = region.united(cells.translated(0, -offset))
                row = line_end + 1
        return region

    # ---- painting --------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        model = self.model()
        if model is None:
            return
        painter = QPainter(self.viewport())
        if self._count() == 0 and self._empty_text:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(
                self.viewport().rect().adjusted(24, 24, -24, -24),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self._empty_text,
            )
        option = QStyleOptionViewItem()
        self.initViewItemOption(option)
        exposed = event.rect()
        offset = self.verticalOffset()
        selection_model = self.selectionModel()
        current = self.currentIndex()
        delegate = self.itemDelegate()
        flags = QStyle.StateFlag
        base = option.state & ~(flags.State_Selected | flags.State_MouseOver | flags.State_HasFocus)
        base |= flags.State_Enabled
        if self.isActiveWindow():
            base |= flags.State_Active
        else:
            base &= ~flags.State_Active
        focus = self.hasFocus()
        for row in self._rows_between(exposed.top() + offset, exposed.bottom() + 1 + offset):
            rect = self._cell_rect(row).translated(0, -offset)
            if not rect.intersects(exposed):
                continue
            index = model.index(row, 0, self.rootIndex())
            state = base
            if selection_model is not None and selection_model.isSelected(index):
                state |= flags.State_Selected
            if row == self._hover:
                state |= flags.State_MouseOver
            if focus and index == current:
                state |= flags.State_HasFocus
            option.rect = rect
            option.state = state
            delegate.paint(painter, option, index)
        if not self._band.isNull():
            band = QStyleOptionRubberBand()
            band.initFrom(self)
            band.shape = QRubberBand.Shape.Rectangle
            band.opaque = False
            band.rect = self._band.translated(0, -offset)
            self.style().drawControl(QStyle.ControlElement.CE_RubberBand, band, painter, self)
        painter.end()

    # ---- mouse and keyboard ------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = event.position().toPoint()
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = QPoint(pos.x(), pos.y() + self.verticalOffset())
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        pos = event.position().toPoint()
        offset = self.verticalOffset()
        hover = self._row_at(pos.x(), pos.y() + offset)
        hover = -1 if hover is None else hover
        if hover != self._hover:
            for row in (self._hover, hover):
                if row >= 0:
                    self.viewport().update(self._cell_rect(row).translated(0, -offset))
            self._hover = hover
        if self._press is not None and self.state() == QAbstractItemView.State.DragSelectingState:
            band = QRect(self._press, QPoint(pos.x(), pos.y() + offset)).normalized()
            dirty = band.united(self._band).adjusted(-2, -2, 2, 2).translated(0, -offset)
            self._band = band
            self.viewport().update(dirty)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        super().mouseReleaseEvent(event)
        self._press = None
        if not self._band.isNull():
            dirty = self._band.adjusted(-2, -2, 2, 2).translated(0, -self.verticalOffset())
            self._band = QRect()
            self.viewport().update(dirty)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave and self._hover >= 0:
            rect = self._cell_rect(self._hover).translated(0, -self.verticalOffset())
            self._hover = -1
            self.viewport().update(rect)
        return super().viewportEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Handled here rather than through `activated`, whose Enter key depends
        # on the platform style (macOS opens with Cmd+O, not Enter).
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            photo = self._photo(self.currentIndex())
            if photo is not None:
                self.photo_activated.emit(photo)
                event.accept()
                return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        selection_model = self.selectionModel()
        if event.reason() == QContextMenuEvent.Reason.Keyboard:
            index = self.currentIndex()
            pos = self.visualRect(index).center() if index.isValid() else QPoint(0, 0)
        else:
            pos = event.pos()
            index = self.indexAt(pos)
            if not index.isValid():
                self.clearSelection()  # as file managers do for a click on empty space
        if (
            index.isValid()
            and selection_model is not None
            and not selection_model.isSelected(index)
        ):
            selection_model.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.context_menu_requested.emit(self.selected_photos(), self.viewport().mapToGlobal(pos))
        event.accept()

    def _photo(self, index: Index) -> PhotoRow | None:
        model = self.photo_model()
        return None if model is None or not index.isValid() else model.photo_at(index)

    @Slot(QModelIndex)
    def _on_activated(self, index: QModelIndex) -> None:
        photo = self._photo(index)
        if photo is not None:
            self.photo_activated.emit(photo)


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Ascending rows as (first, last) runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        elif not runs or runs[-1][1] < row:
            runs.append((row, row))
    return runs
