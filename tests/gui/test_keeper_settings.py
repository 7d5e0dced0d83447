"""The Settings dialog's Duplicates page: keeper rules, format order, preferred folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtWidgets import QDialog, QFileDialog
from pytestqt.qtbot import QtBot

from dino_desktop.config import Settings
from dino_desktop.core.keeper import DEFAULT_FORMAT_ORDER, DEFAULT_RULES, RULES
from dino_desktop.core.library import Library
from dino_desktop.gui.dialogs import SettingsDialog
from dino_desktop.gui.keeper_settings import (
    REASONING,
    RULE_TEXT,
    KeeperSettings,
    parse_format_order,
    rule_label,
)

UNUSED = tuple(r for r in RULES if r not in DEFAULT_RULES)  # ("newest",)


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Library]:
    lib = Library(tmp_path / "lib")
    yield lib
    lib.close()


def open_dialog(qtbot: QtBot, library: Library) -> SettingsDialog:
    dialog = SettingsDialog(library)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.tabs.setCurrentWidget(dialog.keeper)
    return dialog


def shown(page: KeeperSettings) -> list[tuple[str, bool]]:
    """The rule list as on screen: (rule, checked), top to bottom."""
    lst = page.rule_list
    return [
        (
            str(lst.item(i).data(Qt.ItemDataRole.UserRole)),
            lst.item(i).checkState() == Qt.CheckState.Checked,
        )
        for i in range(lst.count())
    ]


def select(page: KeeperSettings, rule: str) -> None:
    page.rule_list.setCurrentItem(page.rule_item(rule))


def saved(library: Library) -> Settings:
    return Settings.load(library.paths.settings)


def accept(dialog: SettingsDialog) -> None:
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted


# ---- what is shown -------------------------------------------------------------------


def test_default_order_is_shown_checked_with_the_unused_rules_after(
    qtbot: QtBot, library: Library
) -> None:
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    assert dialog_tab_titles(page) == ["General", "Duplicates"]
    assert shown(page) == [(r, True) for r in DEFAULT_RULES] + [(r, False) for r in UNUSED]
    assert page.rules() == DEFAULT_RULES
    lst = page.rule_list
    assert [lst.item(i).text() for i in range(lst.count())] == [
        rule_label(r) for r in (*DEFAULT_RULES, *UNUSED)
    ]
    assert lst.item(0).text() == "Reference folders first"
    assert page.rule_item("pixels").text() == "More pixels \N{EM DASH} within 2 % counts as tied"
    assert "PNG is not beaten by a JPEG" in page.rule_item("pixels").toolTip()
    assert "--prefer shorter-path" in page.rule_item("shorter-path").toolTip()
    assert page.format_edit.text() == ", ".join(DEFAULT_FORMAT_ORDER)
    assert page.preferred_folders() == []


def dialog_tab_titles(page: KeeperSettings) -> list[str]:
    dialog = page.window()
    assert isinstance(dialog, SettingsDialog)
    return [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]


def test_every_rule_has_words_and_the_reasoning_follows_the_default_order() -> None:
    assert set(RULE_TEXT) == set(RULES)
    for rule in RULES:
        label, tip = RULE_TEXT[rule]
        assert label and tip and "\n" not in label
    # The paragraph explains the default order: it names the rules in that order.
    words = {
        "reference": "reference copies",
        "preferred": "preferred folders",
        "raw": "RAW pair",
        "companions": "Live Photo",
        "pixels": "pixels",
        "format": "then format",
        "metadata": "then metadata",
        "file-size": "then the larger file",
        "oldest": "then age",
        "shorter-path": "shorter path",
    }
    assert set(words) == set(DEFAULT_RULES)
    at = [REASONING.index(words[r]) for r in DEFAULT_RULES]
    assert at == sorted(at)


def test_the_dialog_shows_the_order_from_the_settings(qtbot: QtBot, library: Library) -> None:
    library.settings.keeper_rules = ["pixels", "newest", "raw"]
    library.settings.format_order = ["png", "heic"]
    library.settings.preferred_folders = ["/photos/originals", "/photos/phone"]
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    assert shown(page)[:4] == [
        ("reference", True),
        ("pixels", True),
        ("newest", True),
        ("raw", True),
    ]
    rest = [r for r in RULES if r not in ("reference", "pixels", "newest", "raw")]
    assert shown(page)[4:] == [(r, False) for r in rest]
    assert page.rules() == ("reference", "pixels", "newest", "raw")
    assert page.format_edit.text() == "PNG, HEIF"
    assert page.preferred_folders() == ["/photos/originals", "/photos/phone"]


# ---- editing the rules ----------------------------------------------------------------


def test_moving_a_rule_up_changes_the_saved_order(qtbot: QtBot, library: Library) -> None:
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    select(page, "metadata")
    assert page.rule_up.isEnabled()
    page.rule_up.click()
    page.rule_up.click()
    assert page.rule_list.currentItem() is page.rule_item("metadata")  # stays selected
    accept(dialog)
    expected = [
        "reference",
        "preferred",
        "raw",
        "companions",
        "metadata",
        "pixels",
        "format",
        "file-size",
        "oldest",
        "shorter-path",
    ]
    assert saved(library).keeper_rules == expected
    assert library.settings.keeper_rules == expected
    assert library.keeper_rules().order == tuple(expected)
    assert dialog.keeper_changed and not dialog.runtime_changed


def test_moving_down_then_the_last_row_cannot_go_further(qtbot: QtBot, library: Library) -> None:
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    select(page, "oldest")
    page.rule_down.click()
    page.rule_down.click()
    assert [r for r, _ in shown(page)][-3:] == ["shorter-path", "newest", "oldest"]
    assert not page.rule_down.isEnabled() and page.rule_up.isEnabled()
    assert page.rules()[-2:] == ("shorter-path", "oldest")


def test_unchecking_a_rule_drops_it(qtbot: QtBot, library: Library) -> None:
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    select(page, "file-size")
    qtbot.keyClick(page.rule_list, Qt.Key.Key_Space)  # the user's way to toggle a row
    assert page.rule_item("file-size").checkState() == Qt.CheckState.Unchecked
    accept(dialog)
    assert saved(library).keeper_rules == [r for r in DEFAULT_RULES if r != "file-size"]
    again_dialog = open_dialog(qtbot, library)
    again = again_dialog.keeper
    assert ("file-size", False) in shown(again)
    assert "file-size" not in again.rules()


def test_reference_cannot_be_moved_or_unchecked(qtbot: QtBot, library: Library) -> None:
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    lst = page.rule_list
    ref = lst.item(0)
    assert ref.data(Qt.ItemDataRole.UserRole) == "reference"
    assert ref.checkState() == Qt.CheckState.Checked
    for flag in (
        Qt.ItemFlag.ItemIsEnabled,
        Qt.ItemFlag.ItemIsUserCheckable,
        Qt.ItemFlag.ItemIsSelectable,
        Qt.ItemFlag.ItemIsDragEnabled,
    ):
        assert not ref.flags() & flag
    # Clicking it neither selects nor unchecks it.
    rect = lst.visualItemRect(ref)
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    checkbox = QPoint(rect.left() + rect.height() // 2, rect.center().y())
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=checkbox)
    assert ref.checkState() == Qt.CheckState.Checked and lst.currentRow() != 0
    lst.setCurrentRow(0)  # made current by code: still no move
    assert not page.rule_up.isEnabled() and not page.rule_down.isEnabled()
    lst.move_current(1)
    assert shown(page)[0] == ("reference", True)
    # Nothing moves above it.
    select(page, "preferred")
    assert not page.rule_up.isEnabled()
    lst.move_current(-1)
    assert shown(page)[0] == ("reference", True)
    # A drag that dropped a rule above it: the drop puts reference back on top.
    lst.model().moveRow(QModelIndex(), 5, QModelIndex(), 0)
    assert shown(page)[0] == ("format", True)
    lst.keep_pinned()
    assert shown(page)[:2] == [("reference", True), ("format", True)]
    assert page.rules()[:2] == ("reference", "format")


def test_oldest_and_newest_exclude_each_other(qtbot: QtBot, library: Library) -> None:
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    oldest, newest = page.rule_item("oldest"), page.rule_item("newest")
    assert oldest.checkState() == Qt.CheckState.Checked
    select(page, "newest")
    qtbot.keyClick(page.rule_list, Qt.Key.Key_Space)
    assert newest.checkState() == Qt.CheckState.Checked
    assert oldest.checkState() == Qt.CheckState.Unchecked
    assert "newest" in page.rules() and "oldest" not in page.rules()
    oldest.setCheckState(Qt.CheckState.Checked)
    assert newest.checkState() == Qt.CheckState.Unchecked
    newest.setCheckState(Qt.CheckState.Checked)
    accept(dialog)
    rules = saved(library).keeper_rules
    assert "newest" in rules and "oldest" not in rules
    # Both may be off.
    second = open_dialog(qtbot, library)
    page = second.keeper
    page.rule_item("newest").setCheckState(Qt.CheckState.Unchecked)
    assert not {"oldest", "newest"} & set(page.rules())


def test_restore_default_order(qtbot: QtBot, library: Library) -> None:
    library.settings.keeper_rules = ["newest", "pixels"]
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    select(page, "pixels")
    page.rule_up.click()
    page.rule_item("format").setCheckState(Qt.CheckState.Checked)
    page.restore_button.click()
    assert shown(page) == [(r, True) for r in DEFAULT_RULES] + [(r, False) for r in UNUSED]
    accept(dialog)
    # The default order is stored as "the default", so a later default applies.
    assert library.settings.keeper_rules == []
    assert saved(library).keeper_rules == []
    assert dialog.keeper_changed


def test_the_default_order_put_back_by_hand_is_stored_as_the_default(
    qtbot: QtBot, library: Library
) -> None:
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    select(page, "raw")
    page.rule_down.click()
    page.rule_up.click()
    accept(dialog)
    assert saved(library).keeper_rules == []
    assert not dialog.keeper_changed


# ---- formats and folders -------------------------------------------------------------


def test_format_order_round_trips(qtbot: QtBot, library: Library) -> None:
    dialog = open_dialog(qtbot, library)
    dialog.keeper.format_edit.setText(" png, heic ,JPG, webp")
    accept(dialog)
    assert saved(library).format_order == ["PNG", "HEIF", "JPEG", "WEBP"]
    assert library.keeper_rules().format_order == ("PNG", "HEIF", "JPEG", "WEBP")
    assert dialog.keeper_changed
    again = open_dialog(qtbot, library)
    assert again.keeper.format_edit.text() == "PNG, HEIF, JPEG, WEBP"
    again.keeper.format_default.click()
    assert again.keeper.format_edit.text() == ", ".join(DEFAULT_FORMAT_ORDER)
    accept(again)
    assert saved(library).format_order == []  # the default, stored as such
    third = open_dialog(qtbot, library)
    third.keeper.format_edit.clear()  # blank: the default too
    accept(third)
    assert saved(library).format_order == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PNG,,JPEG", "A format name is empty"),
        ("PNG, JPEG,", "A format name is empty"),
        ("PNG JPEG, GIF", "\N{LEFT DOUBLE QUOTATION MARK}PNG JPEG\N{RIGHT DOUBLE QUOTATION MARK}"),
        ("PNG; JPEG", "is not a format name"),
        ("jpg, JPEG", "JPEG is named twice"),
    ],
)
def test_bad_format_text_is_refused_with_a_visible_message(
    qtbot: QtBot, library: Library, text: str, message: str
) -> None:
    library.settings.format_order = ["PNG", "JPEG"]
    library.save_settings()
    before = library.paths.settings.read_text(encoding="utf-8")
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    assert not page.format_icon.isVisibleTo(page)
    dialog.tabs.setCurrentIndex(0)  # OK pressed on the other page
    page.format_edit.setText(text)
    page.rule_item("metadata").setCheckState(Qt.CheckState.Unchecked)
    dialog.accept()
    assert dialog.isVisible() and dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.tabs.currentWidget() is page  # brought into view
    assert message in page.format_message.text()
    assert page.format_message.isVisible() and page.format_icon.isVisible()
    # Nothing was saved, nor changed in memory.
    assert library.paths.settings.read_text(encoding="utf-8") == before
    assert library.settings.format_order == ["PNG", "JPEG"]
    assert library.settings.keeper_rules == []
    # Corrected, it saves.
    page.format_edit.setText("PNG, GIF")
    assert not page.format_icon.isVisible()
    accept(dialog)
    assert saved(library).format_order == ["PNG", "GIF"]


def test_parse_format_order() -> None:
    assert parse_format_order("heic, jpg, TIF, jpegxl") == ("HEIF", "JPEG", "TIFF", "JXL")
    assert parse_format_order("   ") == DEFAULT_FORMAT_ORDER
    assert parse_format_order("JPEG2000") == ("JPEG2000",)
    with pytest.raises(ValueError, match="named twice"):
        parse_format_order("HEIC, HEIF")


def test_preferred_folders_round_trip(
    qtbot: QtBot, library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = [str(tmp_path / name) for name in ("originals", "phone", "scans")]
    answers = [*folders, folders[0], ""]  # the last: the user cancels the picker
    asked: list[str] = []

    def pick(*args: object) -> str:
        asked.append(str(args[1]))
        return answers.pop(0)

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(pick))
    dialog = open_dialog(qtbot, library)
    page = dialog.keeper
    assert not page.remove_folder_button.isEnabled()
    for _ in range(5):
        page.add_folder_button.click()
    assert asked == ["Add a preferred folder"] * 5
    assert page.preferred_folders() == folders  # no second copy, nothing for Cancel
    page.folder_list.setCurrentRow(2)  # "scans" first
    page.folder_up.click()
    page.folder_up.click()
    assert not page.folder_up.isEnabled()
    page.folder_list.setCurrentRow(2)  # remove "phone"
    page.remove_folder_button.click()
    assert page.preferred_folders() == [folders[2], folders[0]]
    accept(dialog)
    assert saved(library).preferred_folders == [folders[2], folders[0]]
    assert library.keeper_rules().preferred_folders == (folders[2], folders[0])
    again_dialog = open_dialog(qtbot, library)
    again = again_dialog.keeper
    assert again.preferred_folders() == [folders[2], folders[0]]
    again.folder_list.setCurrentRow(0)
    again.folder_down.click()
    assert again.preferred_folders() == [folders[0], folders[2]]


def test_cancel_keeps_the_settings(qtbot: QtBot, library: Library) -> None:
    dialog = open_dialog(qtbot, library)
    dialog.keeper.restore_button.click()
    dialog.keeper.rule_item("pixels").setCheckState(Qt.CheckState.Unchecked)
    dialog.keeper.format_edit.setText("GIF")
    dialog.reject()
    assert library.settings.keeper_rules == [] and library.settings.format_order == []
    assert not library.paths.settings.exists()
    assert not dialog.keeper_changed


def test_nothing_changed_is_no_keeper_change(qtbot: QtBot, library: Library) -> None:
    library.settings.keeper_rules = ["pixels", "raw"]
    library.settings.preferred_folders = ["/a"]
    dialog = open_dialog(qtbot, library)
    accept(dialog)
    assert not dialog.keeper_changed
    assert saved(library).keeper_rules == ["reference", "pixels", "raw"]
    assert saved(library).preferred_folders == ["/a"]
