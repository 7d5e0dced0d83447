"""The Settings dialog's "Duplicates" page: which copy of a duplicate group is kept.

`KeeperSettings` edits the three settings the keeper rules read
(core/keeper.py): `keeper_rules`, the ordered rules in use; `format_order`,
the "format" rule's ranking; and `preferred_folders`, the "preferred" rule's
folders, earlier first. It only reads and writes a `Settings` object in
memory: the dialog saves it (a TOML file) in its own accept, as it does the
other settings.

The rules are a checkable list in the user's order. "Reference folders first"
is pinned: first, checked and disabled, because a rule list can never make a
protected file a removal candidate (`parse_rules` puts it first anyway).
"oldest" and "newest" exclude each other, as `parse_rules` demands. A list that
equals the default order is stored as [] (likewise the format order), so a
later release's better default reaches users who never changed it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QDropEvent, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from dino_desktop.config import Settings
from dino_desktop.core.keeper import (
    DEFAULT_FORMAT_ORDER,
    DEFAULT_RULES,
    PIXEL_TOLERANCE,
    RULES,
    format_name,
    parse_rules,
)

PINNED = "reference"  # always first, always on
EXCLUSIVE = {"oldest": "newest", "newest": "oldest"}
_TOLERANCE = f"{PIXEL_TOLERANCE * 100:g} %"

# Each rule's line in the list and its tooltip (core/keeper.py's docstring, in words).
RULE_TEXT: dict[str, tuple[str, str]] = {
    "reference": (
        "Reference folders first",
        "A copy in a reference folder is always kept: files there are never offered for "
        "removal, so this rule comes first and cannot be moved or turned off.",
    ),
    "preferred": (
        "In a preferred folder \N{EM DASH} earlier folders first",
        "A copy inside one of the preferred folders below wins; a folder higher in that "
        "list wins over a lower one.",
    ),
    "raw": (
        "RAW original \N{EM DASH} a camera RAW, or a photo with its RAW",
        "A camera RAW, or a photo that has its RAW original as a companion: the original "
        "of everything made from it.",
    ),
    "companions": (
        "More companion files \N{EM DASH} Live Photo video, sidecars",
        "More companion files (a Live Photo's video, sidecars with edits): removing that "
        "copy would take them along.",
    ),
    "pixels": (
        f"More pixels \N{EM DASH} within {_TOLERANCE} counts as tied",
        f"More pixels; copies within {_TOLERANCE} of the largest count as tied, "
        "so a PNG is not beaten by a JPEG a few pixels larger.",
    ),
    "format": (
        "Better format \N{EM DASH} by the format order below",
        "The better file format by the format order below; formats it does not name come last.",
    ),
    "file-size": (
        "Larger file \N{EM DASH} a recompression shrinks",
        "The larger file: re-encoding a photo loses detail and usually makes it smaller.",
    ),
    "metadata": (
        "More metadata \N{EM DASH} date taken, camera, GPS",
        "More of date taken, camera and GPS position: the camera's original carries them, "
        "while exports and edits often drop them.",
    ),
    "oldest": (
        "Oldest \N{EM DASH} a copy is made after its original",
        "The earliest date taken (undated photos last), then the oldest file: a copy is "
        "made after its original. Turns off \N{LEFT DOUBLE QUOTATION MARK}Newest"
        "\N{RIGHT DOUBLE QUOTATION MARK}.",
    ),
    "newest": (
        "Newest \N{EM DASH} keep my latest edit",
        "The latest date taken, then the newest file: for keeping your edit over the "
        "original. Turns off \N{LEFT DOUBLE QUOTATION MARK}Oldest"
        "\N{RIGHT DOUBLE QUOTATION MARK}.",
    ),
    "shorter-path": (
        "Shorter path \N{EM DASH} a copy often sits deeper",
        "The shorter path: a copy often sits deeper, as in backup/old/x.jpg.",
    ),
}

INTRO = (
    "Of each group of duplicates one copy is kept and the others are offered for removal. "
    "The rules below choose the copy to keep, top to bottom: the first rule that tells the "
    "copies apart decides. Unchecked rules are not used."
)
REASONING = (
    "Why the default order: what must not be separated or lost comes first (reference "
    "copies, your preferred folders, a RAW pair, a photo with its Live Photo video or "
    "edits); then picture quality (pixels, then format); then metadata, because the "
    "camera's original carries its date, camera and position while exports and edits "
    "often drop them (an edited copy can be the larger file: a brightened JPEG grows); "
    "then the larger file (a recompression shrinks); then age (the original is the older "
    "file); then the shorter path. When every rule ties, the first path by name is kept, "
    "so the choice is always the same."
)

FORMAT_HINT = (
    "Best first, separated by commas; formats not named come after them. A camera RAW "
    "always counts as the best format."
)
PAGE_WIDTH = 630  # the page's width in the dialog at its minimum width

_FORMAT_WORD = re.compile(r"^[A-Z0-9][A-Z0-9_+-]*$")


# --------------------------------------------------------------------------- values


def rule_label(rule: str) -> str:
    return RULE_TEXT.get(rule, (rule, ""))[0]


def rule_tooltip(rule: str) -> str:
    tip = RULE_TEXT.get(rule, ("", ""))[1]
    return f"{tip}\nCommand line: duplicates --prefer {rule}".lstrip()


def current_rules(settings: Settings) -> tuple[str, ...]:
    """The order the settings ask for ([] or an unreadable list: the default)."""
    if not settings.keeper_rules:
        return DEFAULT_RULES
    try:
        return parse_rules(settings.keeper_rules)
    except ValueError:
        return DEFAULT_RULES


def keeper_values(
    settings: Settings,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The rule order, format order and preferred folders `settings` mean, defaults filled
    in: two settings that choose keepers alike compare equal."""
    formats = tuple(format_name(f) for f in settings.format_order) or DEFAULT_FORMAT_ORDER
    return current_rules(settings), formats, tuple(settings.preferred_folders)


def stored_rules(order: Sequence[str]) -> list[str]:
    """What `keeper_rules` holds for `order`: [] when it is the default order."""
    rules = parse_rules(order)
    return [] if rules == DEFAULT_RULES else list(rules)


def parse_format_order(text: str) -> tuple[str, ...]:
    """Format names from "HEIF, PNG, jpg" (as the catalog names them); blank: the default.

    Raises ValueError with a sentence for the user: an empty name, a name that is
    not one word, a name given twice.
    """
    if not text.strip():
        return DEFAULT_FORMAT_ORDER
    out: list[str] = []
    for part in text.split(","):
        name = format_name(part)
        if not name:
            raise ValueError("A format name is empty: remove the extra comma.")
        if not _FORMAT_WORD.match(name):
            raise ValueError(
                f"\N{LEFT DOUBLE QUOTATION MARK}{part.strip()}\N{RIGHT DOUBLE QUOTATION MARK}"
                " is not a format name: use letters and digits, and commas between names."
            )
        if name in out:
            raise ValueError(f"{name} is named twice.")
        out.append(name)
    return tuple(out)


def stored_format_order(order: Sequence[str]) -> list[str]:
    """What `format_order` holds: [] when it is the default order."""
    return [] if tuple(order) == DEFAULT_FORMAT_ORDER else list(order)


# --------------------------------------------------------------------------- widgets


def _note(text: str) -> QLabel:
    """A wrapped explanatory line in the platform's secondary-text colour."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def warning_icon() -> QLabel:
    """The small warning sign shown beside a message."""
    icon = QLabel()
    icon.setPixmap(icon.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(16))
    icon.setAlignment(Qt.AlignmentFlag.AlignTop)
    return icon


def _button(text: str, tip: str, icon: QStyle.StandardPixmap | None = None) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    if icon is not None:
        button.setIcon(button.style().standardIcon(icon))
    return button


class OrderedList(QListWidget):
    """A list the user reorders by dragging or by `move_current(±1)`; `pinned` rows stay on top.

    `reordered` is emitted after every change of order.
    """

    reordered = Signal()

    def __init__(self, pinned: int = 0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pinned = pinned
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)

    def show_rows(self, rows: int, row_height: int) -> None:
        """Ask for (at least) `rows` rows' height: the list grows with the page from there."""
        self.setMinimumHeight(rows * row_height + 2 * self.frameWidth())

    def sizeHint(self) -> QSize:
        # The default (192 px) would take the page's spare height from the other boxes.
        return QSize(super().sizeHint().width(), self.minimumHeight())

    def can_move(self, step: int) -> bool:
        row = self.currentRow()
        return row >= self.pinned and self.pinned <= row + step < self.count()

    def move_current(self, step: int) -> None:
        """Move the current row up (-1) or down (+1), keeping it current."""
        if not self.can_move(step):
            return
        row = self.currentRow()
        item = self.takeItem(row)
        self.insertItem(row + step, item)
        self.setCurrentItem(item)
        self.reordered.emit()

    def dropEvent(self, event: QDropEvent) -> None:
        super().dropEvent(event)
        self.keep_pinned()
        self.reordered.emit()

    def keep_pinned(self) -> None:
        """Put the pinned items (those not enabled) back on top, in their order, after a drop."""
        pinned = [self.item(i) for i in range(self.count()) if not self._movable(self.item(i))]
        for row, item in enumerate(pinned):
            at = self.row(item)
            if at != row:
                self.insertItem(row, self.takeItem(at))

    @staticmethod
    def _movable(item: QListWidgetItem) -> bool:
        return bool(item.flags() & Qt.ItemFlag.ItemIsEnabled)


class KeeperSettings(QWidget):
    """The keeper rules, the format order and the preferred folders of `settings`.

    `check()` says whether the page's values can be saved (showing why not);
    `apply(settings)` writes them.
    """

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._exclusive_busy = False

        # ---- rules
        self.rule_list = OrderedList(pinned=1)
        self.rule_list.setObjectName("keeperRules")
        self.rule_list.itemChanged.connect(self._on_rule_changed)
        self.rule_list.currentRowChanged.connect(self._update_rule_buttons)
        self.rule_list.reordered.connect(self._update_rule_buttons)
        self.rule_up = _button("Move up", "Try this rule earlier", QStyle.StandardPixmap.SP_ArrowUp)
        self.rule_down = _button(
            "Move down", "Try this rule later", QStyle.StandardPixmap.SP_ArrowDown
        )
        self.rule_up.clicked.connect(lambda: self.rule_list.move_current(-1))
        self.rule_down.clicked.connect(lambda: self.rule_list.move_current(1))
        self.restore_button = _button(
            "Restore default order", "Use the documented default rules, in their order"
        )
        self.restore_button.clicked.connect(self.restore_default)
        rule_buttons = QVBoxLayout()
        rule_buttons.addWidget(self.rule_up)
        rule_buttons.addWidget(self.rule_down)
        rule_buttons.addStretch(1)
        rule_buttons.addWidget(self.restore_button)
        rule_row = QHBoxLayout()
        rule_row.addWidget(self.rule_list, 1)
        rule_row.addLayout(rule_buttons)
        rules_box = QGroupBox("Which copy is kept")
        rules_layout = QVBoxLayout(rules_box)
        rules_layout.addWidget(_note(INTRO))
        rules_layout.addLayout(rule_row)
        self.reasoning = _note(REASONING)
        rules_layout.addWidget(self.reasoning)
        self.set_rules(current_rules(settings))

        # ---- formats
        self.format_edit = QLineEdit(", ".join(keeper_values(settings)[1]))
        self.format_edit.setPlaceholderText(", ".join(DEFAULT_FORMAT_ORDER))
        self.format_edit.setToolTip("Best first, separated by commas")
        self.format_edit.textChanged.connect(self._show_format_problem)
        self.format_default = _button("Default", "Use the default format order")
        self.format_default.clicked.connect(
            lambda: self.format_edit.setText(", ".join(DEFAULT_FORMAT_ORDER))
        )
        self.format_icon = warning_icon()
        # One line under the field: the hint, or (with the icon) why the text is refused.
        self.format_message = QLabel()
        self.format_message.setWordWrap(True)
        self.format_message.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        message_row = QHBoxLayout()
        message_row.addWidget(self.format_icon)
        message_row.addWidget(self.format_message, 1)
        format_box = QGroupBox("Formats")
        # A grid rather than a form: QFormLayout overestimates a wrapped field's height.
        format_grid = QGridLayout(format_box)
        format_label = QLabel("&Format order:")
        format_label.setBuddy(self.format_edit)
        format_grid.addWidget(format_label, 0, 0)
        format_grid.addWidget(self.format_edit, 0, 1)
        format_grid.addWidget(self.format_default, 0, 2)
        format_grid.addLayout(message_row, 1, 1, 1, 2)
        format_grid.setColumnStretch(1, 1)
        self._show_format_problem()

        # ---- preferred folders
        self.folder_list = OrderedList()
        self.folder_list.setObjectName("preferredFolders")
        self.folder_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.folder_list.currentRowChanged.connect(self._update_folder_buttons)
        self.folder_list.reordered.connect(self._update_folder_buttons)
        for folder in settings.preferred_folders:
            self._add_folder_item(folder)
        self.add_folder_button = _button(
            "Add\N{HORIZONTAL ELLIPSIS}", "Choose a folder whose copies are kept first"
        )
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.remove_folder_button = _button("Remove", "Forget the selected folder")
        self.remove_folder_button.clicked.connect(self.remove_folder)
        self.folder_up = _button(
            "Move up", "Prefer this folder earlier", QStyle.StandardPixmap.SP_ArrowUp
        )
        self.folder_down = _button(
            "Move down", "Prefer this folder later", QStyle.StandardPixmap.SP_ArrowDown
        )
        self.folder_up.clicked.connect(lambda: self.folder_list.move_current(-1))
        self.folder_down.clicked.connect(lambda: self.folder_list.move_current(1))
        folder_buttons = QVBoxLayout()
        for button in (
            self.add_folder_button,
            self.remove_folder_button,
            self.folder_up,
            self.folder_down,
        ):
            folder_buttons.addWidget(button)
        folder_buttons.addStretch(1)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_list, 1)
        folder_row.addLayout(folder_buttons)
        folders_box = QGroupBox("Preferred folders")
        folders_layout = QVBoxLayout(folders_box)
        folders_layout.addWidget(
            _note(
                "Copies inside these folders are kept by the \N{LEFT DOUBLE QUOTATION MARK}"
                "In a preferred folder\N{RIGHT DOUBLE QUOTATION MARK} rule; a folder higher "
                "in the list wins over a lower one."
            )
        )
        folders_layout.addLayout(folder_row)

        layout = QVBoxLayout(self)
        layout.addWidget(rules_box)
        layout.addWidget(format_box)
        layout.addWidget(folders_box, 1)
        self._fit_rule_list()
        self.folder_list.show_rows(4, self.rule_list.sizeHintForRow(0))
        self._update_folder_buttons()
        self._reserve_height(PAGE_WIDTH)

    # ---- rules -------------------------------------------------------------------

    def set_rules(self, order: Sequence[str]) -> None:
        """Show `order` checked (reference first), then the unused rules unchecked."""
        order = parse_rules(order)
        self.rule_list.blockSignals(True)
        self.rule_list.clear()
        for rule in (*order, *(r for r in RULES if r not in order)):
            item = QListWidgetItem(rule_label(rule))
            item.setData(Qt.ItemDataRole.UserRole, rule)
            item.setToolTip(rule_tooltip(rule))
            if rule == PINNED:
                # Shown checked and greyed: not selectable, checkable or draggable.
                item.setFlags(Qt.ItemFlag.ItemNeverHasChildren)
            else:
                item.setFlags(
                    Qt.ItemFlag.ItemIsEnabled
                    | Qt.ItemFlag.ItemIsSelectable
                    | Qt.ItemFlag.ItemIsUserCheckable
                    | Qt.ItemFlag.ItemIsDragEnabled
                    | Qt.ItemFlag.ItemNeverHasChildren
                )
            item.setCheckState(Qt.CheckState.Checked if rule in order else Qt.CheckState.Unchecked)
            self.rule_list.addItem(item)
        self.rule_list.blockSignals(False)
        self.rule_list.setCurrentRow(-1)
        self._update_rule_buttons()

    def rules(self) -> tuple[str, ...]:
        """The checked rules, top to bottom (reference first)."""
        checked = [
            str(item.data(Qt.ItemDataRole.UserRole))
            for item in self._rule_items()
            if item.checkState() == Qt.CheckState.Checked
        ]
        return parse_rules(checked)

    def rule_item(self, rule: str) -> QListWidgetItem:
        return next(i for i in self._rule_items() if i.data(Qt.ItemDataRole.UserRole) == rule)

    def restore_default(self) -> None:
        self.set_rules(DEFAULT_RULES)

    def _rule_items(self) -> list[QListWidgetItem]:
        return [self.rule_list.item(i) for i in range(self.rule_list.count())]

    def _on_rule_changed(self, item: QListWidgetItem) -> None:
        rule = str(item.data(Qt.ItemDataRole.UserRole))
        other = EXCLUSIVE.get(rule)
        if other is None or item.checkState() != Qt.CheckState.Checked or self._exclusive_busy:
            return
        self._exclusive_busy = True
        try:
            self.rule_item(other).setCheckState(Qt.CheckState.Unchecked)
        finally:
            self._exclusive_busy = False

    def _fit_rule_list(self) -> None:
        """Tall enough for every rule without a scroll bar."""
        lst = self.rule_list
        rows = sum(lst.sizeHintForRow(i) for i in range(lst.count()))
        lst.setFixedHeight(rows + 2 * lst.frameWidth() + 2)

    # ---- formats -----------------------------------------------------------------

    def format_problem(self) -> str | None:
        try:
            parse_format_order(self.format_edit.text())
        except ValueError as exc:
            return str(exc)
        return None

    def format_order(self) -> tuple[str, ...]:
        """The format order typed; raises ValueError (a sentence) when it cannot be used."""
        return parse_format_order(self.format_edit.text())

    def _show_format_problem(self) -> None:
        problem = self.format_problem()
        self.format_message.setText(problem or FORMAT_HINT)
        self.format_message.setForegroundRole(
            QPalette.ColorRole.WindowText if problem else QPalette.ColorRole.PlaceholderText
        )
        self.format_icon.setVisible(problem is not None)

    # ---- preferred folders -------------------------------------------------------

    def preferred_folders(self) -> list[str]:
        return [
            str(self.folder_list.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(self.folder_list.count())
        ]

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a preferred folder")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        """Add `folder` at the end (or select it when it is listed already)."""
        for i in range(self.folder_list.count()):
            if self.folder_list.item(i).data(Qt.ItemDataRole.UserRole) == folder:
                self.folder_list.setCurrentRow(i)
                return
        self.folder_list.setCurrentItem(self._add_folder_item(folder))

    def remove_folder(self) -> None:
        row = self.folder_list.currentRow()
        if row >= 0:
            self.folder_list.takeItem(row)
            self._update_folder_buttons()

    def _add_folder_item(self, folder: str) -> QListWidgetItem:
        item = QListWidgetItem(folder)
        item.setData(Qt.ItemDataRole.UserRole, folder)
        item.setToolTip(folder)
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsDropEnabled)
        self.folder_list.addItem(item)
        return item

    # ---- the page ----------------------------------------------------------------

    def _update_rule_buttons(self) -> None:
        self.rule_up.setEnabled(self.rule_list.can_move(-1))
        self.rule_down.setEnabled(self.rule_list.can_move(1))

    def _update_folder_buttons(self) -> None:
        self.remove_folder_button.setEnabled(self.folder_list.currentRow() >= 0)
        self.folder_up.setEnabled(self.folder_list.can_move(-1))
        self.folder_down.setEnabled(self.folder_list.can_move(1))

    def _reserve_height(self, width: int) -> None:
        """Wrapped notes need more height the narrower the page, and the dialog's size
        does not follow a tab page's height for its width: reserve it as a minimum."""
        self.setMinimumHeight(self.heightForWidth(width))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._reserve_height(event.size().width())

    def check(self) -> bool:
        """Whether the page can be saved; if not, the reason is shown and the field focused."""
        self._show_format_problem()
        if self.format_problem() is None:
            return True
        self.format_edit.setFocus()
        self.format_edit.selectAll()
        return False

    def apply(self, settings: Settings) -> None:
        """Write the page into `settings` (call `check()` first)."""
        settings.keeper_rules = stored_rules(self.rules())
        settings.format_order = stored_format_order(self.format_order())
        settings.preferred_folders = self.preferred_folders()
