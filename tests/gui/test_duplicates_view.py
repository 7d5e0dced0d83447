"""The Duplicates view as a user drives it: find, mark, refuse unsafe marks, trash, move, undo."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import pytest
from PIL import Image
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.duplicate_cards import CARD_EDGE, MemberCard
from dino_desktop.gui.views.duplicates import DuplicatesView
from dino_desktop.gui.workers import JobWorker


class Photos:
    """The files of the test library, by role."""

    def __init__(self, root: Path) -> None:
        self.photos = root / "photos"
        self.backup = root / "backup"
        self.ref = root / "ref"
        self.a = imagegen.save_jpeg(self.photos / "a.jpg", seed=1, size=(640, 480))
        self.b = imagegen.save_jpeg(self.photos / "b.jpg", seed=2, size=(640, 480))
        self.c = imagegen.save_jpeg(self.photos / "c.jpg", seed=3, size=(640, 480))
        with Image.open(self.a) as img:
            # A resized copy: other bytes, same picture (a perceptual match, not an exact one).
            self.a_small = self.photos / "a-small.jpg"
            img.resize((320, 240), Image.Resampling.LANCZOS).save(self.a_small, quality=85)
        self.backup.mkdir()
        self.ref.mkdir()
        self.a_backup = Path(shutil.copy(self.a, self.backup / "a.jpg"))
        self.b_backup = Path(shutil.copy(self.b, self.backup / "b.jpg"))
        self.a_ref = Path(shutil.copy(self.a, self.ref / "a.jpg"))
        self.bytes = {p: p.read_bytes() for p in self.all()}

    def all(self) -> list[Path]:
        return [self.a, self.b, self.c, self.a_small, self.a_backup, self.b_backup, self.a_ref]


@pytest.fixture
def photos(tmp_path: Path) -> Photos:
    return Photos(tmp_path / "files")


@pytest.fixture
def lib(tmp_path: Path, photos: Photos) -> Iterator[Library]:
    library = Library(tmp_path / "lib")
    library.add_folder(photos.ref, reference=True)
    drive(library.scan([photos.photos, photos.backup, photos.ref], embed=False))
    yield library
    library.close()


@pytest.fixture
def loader(lib: Library) -> Iterator[ThumbnailLoader]:
    thumbs = ThumbnailLoader(lib.paths.cache_dir)
    yield thumbs
    assert thumbs.shutdown()  # no decode thread outlives the test


@pytest.fixture
def view(qtbot: QtBot, lib: Library, loader: ThumbnailLoader) -> DuplicatesView:
    widget = DuplicatesView(lib, loader)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    return widget


def _wait(qtbot: QtBot, worker: JobWorker | None) -> None:
    """Wait until the worker has delivered its result (or failure) and left the live set."""
    assert worker is not None
    # A worker leaves `live` once its result has reached the view's slots.
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=60000)


def _found(qtbot: QtBot, view: DuplicatesView, method: str) -> None:
    messages: list[str] = []
    view.status_message.connect(messages.append)
    worker = view.find(method)
    assert view.progress.isVisibleTo(view) and view.cancel_button.isVisibleTo(view)
    _wait(qtbot, worker)
    assert messages  # "Found …" or "No … found"
    assert not view.progress.isVisibleTo(view)


def _group_with(view: DuplicatesView, path: Path) -> int:
    return next(i for i, g in enumerate(view.groups()) if str(path) in {m.path for m in g.members})


def _cards(view: DuplicatesView) -> list[MemberCard]:
    return view._cards


def test_exact_groups_are_listed_with_their_counts(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    assert not view.threshold_spin.isEnabled()  # exact copies have no threshold
    _found(qtbot, view, "exact")
    groups = view.groups()
    assert sorted(len(g.members) for g in groups) == [2, 3]
    assert view.group_list.count() == 2
    a_group = groups[_group_with(view, photos.a)]
    assert {m.path for m in a_group.members} == {
        str(photos.a),
        str(photos.a_backup),
        str(photos.a_ref),
    }
    assert all(g.method == "exact" for g in groups)
    # Exact copies are the same size: all but one copy is reclaimable.
    size_a, size_b = photos.a.stat().st_size, photos.b.stat().st_size
    assert sorted(g.reclaimable for g in groups) == sorted([2 * size_a, size_b])
    assert view.summary_label.text().startswith("2 groups · ")
    assert view.summary_label.text().endswith(" reclaimable")
    texts = [view.group_list.item(i).text() for i in range(2)]
    assert any("3 photos · " in t and "reclaimable" in t for t in texts)
    # The current group's cards, keeper first, with their thumbnails at card size.
    view.group_list.setCurrentRow(_group_with(view, photos.a))
    cards = _cards(view)
    assert [c.member.path for c in cards] == [m.path for m in a_group.members]
    assert cards[0].relation.text() == "Keeper"
    assert view.diff_table.columnCount() == 3
    assert view.diff_table.rowCount() == 6
    qtbot.waitUntil(lambda: all(c.image.pixmap().width() == CARD_EDGE for c in cards))
    # Each keeper's thumbnail becomes its group's icon.
    qtbot.waitUntil(lambda: all(not view.group_list.item(i).icon().isNull() for i in range(2)))


def test_mark_all_but_the_keeper_spares_keepers_and_references(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    _found(qtbot, view, "exact")
    view.group_list.setCurrentRow(_group_with(view, photos.a))
    a_group = view.current_group()
    assert a_group is not None
    view.mark_all_but_keeper()
    expected_a = {m.path for m in a_group.others if not m.is_reference}
    assert set(view.marked_paths()) == expected_a
    assert expected_a and str(photos.a_ref) not in expected_a
    for card in _cards(view):
        assert card.check.isChecked() == (card.member.path in expected_a)
    view.mark_all_but_keeper(all_groups=True)
    expected = {m.path for g in view.groups() for m in g.others if not m.is_reference}
    assert set(view.marked_paths()) == expected
    assert all(g.keeper.path not in expected for g in view.groups())
    assert "marked" in view.marked_label.text()
    assert view.trash_button.isEnabled() and view.move_button.isEnabled()
    view.unmark_all()
    assert view.marked_paths() == []
    assert not view.trash_button.isEnabled()


def test_reference_members_can_never_be_marked(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    _found(qtbot, view, "exact")
    view.group_list.setCurrentRow(_group_with(view, photos.a))
    (card,) = [c for c in _cards(view) if c.member.path == str(photos.a_ref)]
    assert card.member.is_reference
    assert not card.check.isEnabled()
    assert "reference folder" in card.check.toolTip()
    assert card.badge.isVisibleTo(view)
    assert not view.set_marked(str(photos.a_ref), True)
    assert view.marked_paths() == []
    assert view.notice.isVisibleTo(view)


def test_marking_every_member_of_a_group_is_refused(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    _found(qtbot, view, "exact")
    view.group_list.setCurrentRow(_group_with(view, photos.b))
    group = view.current_group()
    assert group is not None and len(group.members) == 2
    keeper, (other,) = group.keeper, group.others
    assert view.set_marked(other.path, True)
    messages: list[str] = []
    view.status_message.connect(messages.append)
    # The keeper is the last unmarked photo: refused, with a message.
    assert not view.set_marked(keeper.path, True)
    assert view.marked_paths() == [other.path]
    assert messages and "stays" in messages[-1]
    # The same through the card's box: it springs back.
    (keeper_card,) = [c for c in _cards(view) if c.member.path == keeper.path]
    keeper_card.check.click()
    assert not keeper_card.check.isChecked()
    assert view.marked_paths() == [other.path]
    # Swapping is fine: unmark the copy, then the keeper may go.
    assert view.set_marked(other.path, False)
    assert view.set_marked(keeper.path, True)
    assert view.marked_paths() == [keeper.path]


def test_trash_marked_updates_the_groups_and_undo_restores_the_bytes(
    qtbot: QtBot, view: DuplicatesView, lib: Library, photos: Photos
) -> None:
    _found(qtbot, view, "exact")
    view.group_list.setCurrentRow(_group_with(view, photos.a))
    # Only one copy of "a" goes: its group stays, one member smaller.
    assert view.set_marked(str(photos.a_backup), True)
    messages: list[str] = []
    view.status_message.connect(messages.append)
    with qtbot.waitSignal(view.files_changed, timeout=30000):
        worker = view.trash_marked(confirm=False)
    _wait(qtbot, worker)
    assert not photos.a_backup.exists()
    trashed = list((Path.home() / ".." / "xdg-data" / "Trash" / "files").resolve().iterdir())
    assert [p.read_bytes() for p in trashed] == [photos.bytes[photos.a_backup]]
    assert messages[-1] == "Moved 1 photo to the trash — Undo with Ctrl+Z"
    a_group = view.groups()[_group_with(view, photos.a)]
    assert str(photos.a_backup) not in {m.path for m in a_group.members}
    assert len(a_group.members) == 2 and len(view.groups()) == 2
    assert view.marked_paths() == []
    # All but the keepers: groups left with one photo disappear.
    view.mark_all_but_keeper(all_groups=True)
    gone = [Path(p) for p in view.marked_paths()]
    with qtbot.waitSignal(view.files_changed, timeout=30000):
        worker = view.trash_marked(confirm=False)
    _wait(qtbot, worker)
    assert view.groups() == [] and view.group_list.count() == 0
    assert not any(p.exists() for p in gone)
    assert photos.a_ref.read_bytes() == photos.bytes[photos.a_ref]  # never touched
    lib.undo()
    lib.undo()
    for path in [photos.a_backup, *gone]:
        assert path.read_bytes() == photos.bytes[path]


def test_trash_asks_first_with_the_count_and_the_space(
    qtbot: QtBot,
    view: DuplicatesView,
    photos: Photos,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _found(qtbot, view, "exact")
    view.group_list.setCurrentRow(_group_with(view, photos.b))
    view.mark_all_but_keeper()
    asked: list[str] = []

    def answer(reply: QMessageBox.StandardButton) -> Any:
        def question(_parent: Any, _title: str, text: str, *_args: Any) -> Any:
            asked.append(text)
            return reply

        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Cancel))
    assert view.trash_marked() is None
    assert "1 photo" in asked[-1] and "kb" in asked[-1].lower()
    assert photos.b_backup.exists() and photos.b.exists()
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    with qtbot.waitSignal(view.files_changed, timeout=30000):
        worker = view.trash_marked()
    _wait(qtbot, worker)
    assert len(view.groups()) == 1


def test_move_marked_moves_the_files_to_a_folder(
    qtbot: QtBot, view: DuplicatesView, photos: Photos, tmp_path: Path
) -> None:
    _found(qtbot, view, "exact")
    view.mark_all_but_keeper(all_groups=True)
    marked = [Path(p) for p in view.marked_paths()]
    assert len(marked) == sum(1 for g in view.groups() for m in g.others if not m.is_reference)
    dest = tmp_path / "sorted-out"
    dest.mkdir()
    messages: list[str] = []
    view.status_message.connect(messages.append)
    with qtbot.waitSignal(view.files_changed, timeout=30000):
        worker = view.move_marked(str(dest))
    _wait(qtbot, worker)
    assert not any(p.exists() for p in marked)
    arrived = sorted(p.read_bytes() for p in dest.iterdir())
    assert arrived == sorted(photos.bytes[p] for p in marked)
    assert messages[-1].startswith(f"Moved {len(marked)} photos to {dest}")
    assert view.groups() == []


def test_perceptual_search_groups_a_resized_copy_with_its_original(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    view.method_combo.setCurrentIndex(view.method_combo.findData("phash"))
    assert view.threshold_spin.isEnabled() and view.rotations_check.isEnabled()
    assert view.threshold_spin.value() > 0  # the default threshold
    _found(qtbot, view, "phash")
    group = view.groups()[_group_with(view, photos.a)]
    paths = {m.path for m in group.members}
    assert {str(photos.a), str(photos.a_small)} <= paths
    assert str(photos.c) not in {m.path for g in view.groups() for m in g.members}
    view.group_list.setCurrentRow(_group_with(view, photos.a))
    small = next(m for m in group.members if m.path == str(photos.a_small))
    # The resized copy's dimensions differ from the keeper's: highlighted in the table.
    column = [m.path for m in group.members].index(small.path)
    assert column > 0
    cell = view.diff_table.item(2, column)
    assert cell.text() == "320 × 240" and cell.font().bold()


def test_similar_without_weights_says_what_to_do(qtbot: QtBot, view: DuplicatesView) -> None:
    messages: list[str] = []
    view.status_message.connect(messages.append)
    worker = view.find("dino")
    _wait(qtbot, worker)
    assert view.groups() == []
    assert "weights" in view.placeholder.text().lower()
    assert "Exact copies" in view.placeholder.text()
    assert view._right.currentWidget() is view.placeholder
    assert messages and "weights" in messages[-1].lower()
    assert view.find_button.isEnabled()


def test_why_they_match_asks_for_the_group(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    _found(qtbot, view, "exact")
    view.group_list.setCurrentRow(_group_with(view, photos.a))
    with qtbot.waitSignal(view.why_requested) as signal:
        view.why_button.click()
    assert set(signal.args[0]) == {str(photos.a), str(photos.a_backup), str(photos.a_ref)}


def test_compare_at_full_size_scrolls_together(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    view.find("phash")
    qtbot.waitUntil(lambda: bool(view.groups()), timeout=60000)
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    view.group_list.setCurrentRow(_group_with(view, photos.a))
    dialog = view.compare_full_size()
    assert dialog is not None
    qtbot.addWidget(dialog)
    _wait(qtbot, dialog.worker)
    sizes = {(lb.pixmap().width(), lb.pixmap().height()) for lb in dialog.labels}
    assert (640, 480) in sizes and (320, 240) in sizes  # 100 %: one photo pixel each
    dialog.resize(420, 220)  # smaller than the photos: they scroll
    qtbot.waitUntil(lambda: all(a.verticalScrollBar().maximum() > 0 for a in dialog.areas))
    first, *others = dialog.areas
    bar = first.verticalScrollBar()
    bar.setValue(bar.maximum())
    for area in others:
        assert area.verticalScrollBar().value() == area.verticalScrollBar().maximum()
    dialog.close()


def test_cancel_stops_the_search(qtbot: QtBot, view: DuplicatesView) -> None:
    worker = view.find("exact")
    view.cancel()
    _wait(qtbot, worker)
    assert not view.cancel_button.isVisibleTo(view)
    assert view.find_button.isEnabled()
