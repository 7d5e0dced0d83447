"""The Duplicates view as a user drives it: find, mark, refuse unsafe marks, trash, move,
undo; 100,000 groups filtered and sorted; what a group shows; answers and their undo."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from dino_desktop.core.dedupe import plan_removal
from dino_desktop.core.duplicates import OTHER_EXPOSURES, RELATIONS, Group, Member, select_groups
from dino_desktop.core.library import Library
from dino_desktop.core.progress import Progress, drive
from dino_desktop.gui.common import data_size
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.duplicate_bulk import polite, without
from dino_desktop.gui.views.duplicate_cards import CARD_EDGE, MemberCard, score_text
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
    return view.page.cards


def _text(view: DuplicatesView, row: int) -> str:
    model = view.pane.model
    return str(model.data(model.index(row, 0), Qt.ItemDataRole.DisplayRole))


def test_exact_groups_are_listed_with_their_counts(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    assert not view.threshold_spin.isEnabled()  # exact copies have no threshold
    _found(qtbot, view, "exact")
    groups = view.groups()
    assert sorted(len(g.members) for g in groups) == [2, 3]
    assert view.pane.model.rowCount() == 2
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
    assert view.pane.count_label.text().startswith("2 of 2 groups · ")
    assert view.pane.count_label.text().endswith(" reclaimable")
    texts = [_text(view, i) for i in range(2)]
    assert any("3 photos · " in t and "reclaimable" in t for t in texts)
    # The current group's cards, keeper first, with their thumbnails at card size.
    view.select_row(_group_with(view, photos.a))
    cards = _cards(view)
    assert [c.member.path for c in cards] == [m.path for m in a_group.members]
    assert cards[0].relation.text() == "Keeper"
    assert view.diff_table.columnCount() == 3
    assert view.diff_table.rowCount() == 6
    qtbot.waitUntil(lambda: all(c.image.pixmap().width() == CARD_EDGE for c in cards))
    # Each keeper's thumbnail becomes its group's icon (asked for as the rows are painted).
    qtbot.waitUntil(lambda: all(view.pane.model.has_icon(i) for i in range(2)))


def test_mark_all_but_the_keeper_spares_keepers_and_references(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    _found(qtbot, view, "exact")
    view.select_row(_group_with(view, photos.a))
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
    view.select_row(_group_with(view, photos.a))
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
    view.select_row(_group_with(view, photos.b))
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
    view.select_row(_group_with(view, photos.a))
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
    assert view.groups() == [] and view.pane.model.rowCount() == 0
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
    view.select_row(_group_with(view, photos.b))
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
    view.select_row(_group_with(view, photos.a))
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
    view.select_row(_group_with(view, photos.a))
    with qtbot.waitSignal(view.why_requested) as signal:
        view.why_button.click()
    assert set(signal.args[0]) == {str(photos.a), str(photos.a_backup), str(photos.a_ref)}


def test_compare_at_full_size_scrolls_together(
    qtbot: QtBot, view: DuplicatesView, photos: Photos
) -> None:
    view.find("phash")
    qtbot.waitUntil(lambda: bool(view.groups()), timeout=60000)
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    view.select_row(_group_with(view, photos.a))
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


# ---- 100,000 groups: the list, its filters and sorts ----------------------------------


class StandIn:
    """What the view asks of a Library, for groups made up by a test (no files, no SQL)."""

    def __init__(self, groups: list[Group]) -> None:
        self.groups = groups

    def duplicates(self, method: str, threshold: float | None = None, **_kw: Any) -> Any:
        yield Progress("duplicates", 0, None)
        return self.groups

    def photos_by_id(self, ids: Any) -> dict[int, Any]:
        return {}

    def plan_removal(self, groups: Any, **kw: Any) -> Any:
        return plan_removal(groups, **kw)

    def metadata_merges(self, plan: Any, cancel: Any = None) -> Any:
        yield Progress("duplicates", 0, None)
        return []


def _member(n: int, path: str, relation: str, **kw: Any) -> Member:
    values: dict[str, Any] = {
        "image_id": n,
        "path": path,
        "size": 1000 + 7 * n % 5000,
        "width": 4000,
        "height": 3000,
        "format": "JPEG",
        "taken_at": None,
        "camera": None,
        "is_reference": False,
        "score": 1.0,
        "relation": relation,
    }
    values.update(kw)
    return Member(**values)


def made_up_groups(n: int) -> list[Group]:
    """`n` groups of 2-4 photos in 50 folders, every relation, some answered, some
    reference photos; sizes vary so that the sorts have something to sort."""
    groups = []
    ids = iter(range(1, 10 * n))
    for i in range(n):
        folder = f"/lib/f{i % 50:02d}/sub{i % 7}"
        keeper = _member(next(ids), f"{folder}/k{i:06d}.jpg", "keeper")
        others = [
            _member(
                next(ids),
                f"/lib/f{(i + k) % 50:02d}/c{i:06d}-{k}.jpg",
                RELATIONS[(i + k) % len(RELATIONS)],
                is_reference=(i + k) % 31 == 0,
                dismissed=i % 89 == 0 and k == 1,
                size=(i * 7919 + k * 104729) % 9_000_000,
            )
            for k in range(1, 2 + i % 3)
        ]
        gone = i % 97 == 0
        reclaimable = (
            0 if gone else sum(m.size for m in others if not (m.is_reference or m.dismissed))
        )
        groups.append(Group("phash", keeper, others, reclaimable, dismissed=gone))
    return groups


def _visible(g: Group) -> bool:
    """Shown without "Show dismissed": as a search without the answered ones has it."""
    live = [] if g.dismissed else [m for m in g.members if not m.dismissed]
    return len(live) >= 2 and any(not m.is_reference for m in live)


def _by_bytes(groups: list[Group]) -> list[str]:
    return [g.keeper.path for g in sorted(groups, key=lambda g: (-g.reclaimable, g.keeper.path))]


def _shown(view: DuplicatesView) -> list[str]:
    return [g.keeper.path for g in view.groups()]


@pytest.fixture
def made_up(qtbot: QtBot, tmp_path: Path) -> Iterator[tuple[DuplicatesView, list[Group]]]:
    groups = made_up_groups(100_000)
    loader = ThumbnailLoader(tmp_path / "cache")
    widget = DuplicatesView(StandIn(groups), loader)  # type: ignore[arg-type]
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    _wait(qtbot, widget.find("exact"))
    yield widget, groups
    assert loader.shutdown()


def test_100000_groups_load_and_filter_and_sort_to_the_right_rows(
    made_up: tuple[DuplicatesView, list[Group]],
) -> None:
    view, groups = made_up
    pane = view.pane
    visible = [g for g in groups if _visible(g)]
    assert 90_000 < len(visible) < len(groups)  # some were answered: hidden
    assert pane.model.rowCount() == len(visible)
    assert _shown(view) == _by_bytes(visible)
    total = sum(g.reclaimable for g in visible)
    assert pane.count_label.text() == (
        f"{len(visible):,} of {len(visible):,} groups · {data_size(total)} reclaimable"
    )
    # With the answered ones, each filter gives what the core's reference filter gives.
    pane.dismissed_check.setChecked(True)
    assert pane.model.rowCount() == len(groups)
    pane.set_label("cropped")
    assert _shown(view) == _by_bytes(select_groups(groups, labels={"cropped"}))
    pane.set_label(None)
    pane.set_folder("/lib/f07")
    assert _shown(view) == _by_bytes(select_groups(groups, folder="/lib/f07"))
    pane.set_folder(None)
    pane.set_min_bytes(8 * 1024 * 1024)
    big = select_groups(groups, min_bytes=8 * 1024 * 1024)
    assert 0 < len(big) < len(groups) and _shown(view) == _by_bytes(big)
    pane.set_label("burst")
    assert _shown(view) == _by_bytes(select_groups(big, labels={"burst"}))
    # Sorts, on the filtered rows.
    pane.set_sort("members")
    assert _shown(view) == [
        g.keeper.path
        for g in sorted(
            select_groups(big, labels={"burst"}), key=lambda g: (-len(g.members), g.keeper.path)
        )
    ]
    pane.set_sort("path")
    assert _shown(view) == sorted(g.keeper.path for g in select_groups(big, labels={"burst"}))
    pane.clear_filters()
    assert pane.model.rowCount() == len(groups)
    # Without the answered ones, a label counts only the photos still in.
    pane.dismissed_check.setChecked(False)
    pane.set_label("resized")
    live = [
        g for g in visible if any(m.relation == "resized" and not m.dismissed for m in g.others)
    ]
    assert _shown(view) == _by_bytes(live)
    # The bulk button names what it would act on.
    assert view.bulk_button.text() == f"Apply keeper rules to {len(live):,} filtered groups…"


def test_mark_all_in_every_group_shown_spares_keepers_references_and_other_exposures(
    made_up: tuple[DuplicatesView, list[Group]],
) -> None:
    view, _groups = made_up
    view.pane.set_label("identical")
    shown = view.groups()
    view.mark_all_but_keeper(all_groups=True)
    expected = {m.path for g in shown for m in g.candidates if m.relation not in OTHER_EXPOSURES}
    assert set(view.marked_paths()) == expected
    assert len(view.marks) == len(expected)
    assert view.marks.bytes() == sum(
        m.size for g in shown for m in g.candidates if m.path in expected
    )
    assert not {g.keeper.path for g in shown} & expected
    assert "marked" in view.marked_label.text()


# ---- what a group shows: why, warning, relations, evidence, crops -----------------------


def _one_group_view(qtbot: QtBot, tmp_path: Path, group: Group) -> DuplicatesView:
    loader = ThumbnailLoader(tmp_path / "cache")
    widget = DuplicatesView(StandIn([group]), loader)  # type: ignore[arg-type]
    qtbot.addWidget(widget)
    widget.resize(1400, 800)
    widget.show()
    _wait(qtbot, widget.find("exact"))
    qtbot.waitUntil(lambda: not JobWorker.live)  # the merge preview
    return widget


def test_a_group_shows_why_its_warning_relations_evidence_and_crops(
    qtbot: QtBot, tmp_path: Path
) -> None:
    keeper = _member(
        1,
        "/ref/a.jpg",
        "keeper",
        is_reference=True,
        why="kept: in a reference folder",
        width=4000,
        height=3000,
    )
    crop = _member(
        2,
        "/lib/a-crop.jpg",
        "cropped",
        width=1000,
        height=750,
        evidence="crop of the keeper at (400, 300)–(2400, 1800) of 4000×3000",
        why="not kept: the keeper has in a reference folder",
        crop_box=(400, 300, 2400, 1800),
        crop_in="keeper",
    )
    wider = _member(
        3,
        "/lib/a-wide.jpg",
        "cropped",
        width=8000,
        height=6000,
        evidence="the keeper is a crop of this copy",
        crop_box=(0, 0, 4000, 3000),
        crop_in="copy",
    )
    burst = _member(4, "/lib/a-burst.jpg", "burst", evidence="taken 0.5 s apart")
    others = [
        crop,
        wider,
        burst,
        _member(5, "/lib/a-flip.jpg", "mirrored", evidence="mirrored left–right"),
        _member(6, "/lib/a-grey.jpg", "greyscale", evidence="no colour left"),
        _member(7, "/lib/a-warm.jpg", "colour edit", evidence="warmer"),
        _member(8, "/lib/a-like.jpg", "similar", evidence="no transform explains it"),
    ]
    warning = "the reference copy (4000×3000) is smaller than a-wide.jpg (8000×6000)"
    group = Group("dino", keeper, others, 9000, keeper.why, warning)
    view = _one_group_view(qtbot, tmp_path, group)
    page = view.page
    assert page.why_label.text() == "Kept: in a reference folder"
    assert page.warning_banner.isVisibleTo(view) and warning in page.warning_banner.text()
    cards = {c.member.path: c for c in page.cards}
    words = {p: c.relation.text() for p, c in cards.items()}
    assert words == {
        "/ref/a.jpg": "Keeper",
        "/lib/a-crop.jpg": "Cropped copy",
        "/lib/a-wide.jpg": "Uncropped (the keeper is a crop of it)",
        "/lib/a-burst.jpg": "Burst shot",
        "/lib/a-flip.jpg": "Mirrored copy",
        "/lib/a-grey.jpg": "Greyscale copy",
        "/lib/a-warm.jpg": "Colour-edited copy",
        "/lib/a-like.jpg": "Look-alike",
    }
    card = cards["/lib/a-crop.jpg"]
    assert card.evidence.text() == crop.evidence and card.evidence.toolTip() == crop.evidence
    assert "Not kept: the keeper has in a reference folder" in card.toolTip()
    # Bursts are another exposure, visibly, and "Mark all" leaves them.
    assert cards["/lib/a-burst.jpg"].exposure_badge.isVisibleTo(view)
    assert not cards["/lib/a-crop.jpg"].exposure_badge.isVisibleTo(view)
    view.mark_all_but_keeper()
    assert "/lib/a-burst.jpg" not in view.marked_paths()
    assert "/lib/a-crop.jpg" in view.marked_paths()
    # The crop box, in the larger picture's card: scaled from its display pixels.
    thumb = QPixmap(400, 300)
    thumb.fill()
    for c in page.cards:
        c.set_pixmap(thumb)
    shown = cards["/ref/a.jpg"].image.pixmap()
    assert (shown.width(), shown.height()) == (CARD_EDGE, 165)
    (rect,) = cards["/ref/a.jpg"].crop_rects
    scale = CARD_EDGE / 4000
    assert (rect.left(), rect.top()) == (round(400 * scale), round(300 * scale))
    assert (rect.right() + 1, rect.bottom() + 1) == (round(2400 * scale), round(1800 * scale))
    assert "a-crop.jpg" in cards["/ref/a.jpg"].image.toolTip()
    (whole,) = cards["/lib/a-wide.jpg"].crop_rects  # the keeper: a quarter of the wide copy
    assert (whole.width(), whole.height()) == (
        round(4000 * CARD_EDGE / 8000),
        round(3000 * 165 / 6000),
    )
    assert not cards["/lib/a-grey.jpg"].crop_rects
    # The keeper of a larger group is not answered alone.
    assert not cards["/ref/a.jpg"].answer_button.isEnabled()
    assert cards["/lib/a-grey.jpg"].answer_button.isEnabled()


# ---- answers: not duplicates, keep all, not a duplicate; undo ----------------------------


def test_not_duplicates_answers_in_a_worker_and_undo_brings_the_group_back(
    qtbot: QtBot, view: DuplicatesView, lib: Library, photos: Photos
) -> None:
    _found(qtbot, view, "exact")
    view.select_row(_group_with(view, photos.b))
    b_group = view.current_group()
    assert b_group is not None and view.not_duplicates_button.isEnabled()
    view.not_duplicates_button.click()
    _wait(qtbot, view._answer_worker)
    (answer,) = lib.dismissals()
    assert set(answer.paths) == {str(photos.b), str(photos.b_backup)}
    assert answer.kind == "not-duplicates" and answer.subject is None
    assert str(photos.b) not in {m.path for g in view.groups() for m in g.members}
    assert len(view.groups()) == 1 and view.undo_bar.isVisibleTo(view)
    assert "Not duplicates" in view.undo_bar.label.text()
    # Shown when asked, marked as answered; a new search keeps it hidden.
    view.pane.dismissed_check.setChecked(True)
    assert len(view.groups()) == 2
    row = next(i for i, g in enumerate(view.groups()) if g.dismissed)
    model = view.pane.model
    assert "answered" in model.data(model.index(row, 0), Qt.ItemDataRole.DisplayRole)
    view.pane.dismissed_check.setChecked(False)
    # Undo: the answer is taken back and the group is back at once.
    view.undo_bar.undo_button.click()
    _wait(qtbot, view._answer_worker)
    assert lib.dismissals() == []
    assert len(view.groups()) == 2
    current = view.current_group()
    assert current is not None and current.keeper.path == b_group.keeper.path
    # "Keep all" is an answer of its own kind; a search after it leaves the group out.
    view.keep_all_button.click()
    _wait(qtbot, view._answer_worker)
    assert [a.kind for a in lib.dismissals()] == ["keep-all"]
    _found(qtbot, view, "exact")
    assert len(view.groups()) == 1 and len(view.all_groups()) == 2


def test_not_a_duplicate_takes_one_photo_out_of_its_group(
    qtbot: QtBot, view: DuplicatesView, lib: Library, photos: Photos
) -> None:
    _found(qtbot, view, "exact")
    view.select_row(_group_with(view, photos.a))
    (card,) = [c for c in _cards(view) if c.member.path == str(photos.a_backup)]
    assert view.set_marked(str(photos.a_backup), True)
    card.answer_button.click()
    _wait(qtbot, view._answer_worker)
    (answer,) = lib.dismissals()
    assert answer.subject == str(photos.a_backup)
    group = view.current_group()
    assert group is not None and len(group.members) == 3
    assert [m.path for m in group.members if m.dismissed] == [str(photos.a_backup)]
    # Its card is gone (shown only with "Show dismissed"), and so is its mark.
    assert str(photos.a_backup) not in {c.member.path for c in _cards(view)}
    assert view.marked_paths() == []
    assert not view.set_marked(str(photos.a_backup), True)
    view.pane.dismissed_check.setChecked(True)
    (back,) = [c for c in _cards(view) if c.member.path == str(photos.a_backup)]
    assert back.dismissed_badge.isVisibleTo(view) and not back.check.isEnabled()
    view.undo_answer()
    _wait(qtbot, view._answer_worker)
    assert lib.dismissals() == []
    group = view.current_group()
    assert group is not None and not any(m.dismissed for m in group.members)


def test_the_dry_run_warns_of_a_small_reference_keeper_and_a_removal_clears_the_warning(
    qtbot: QtBot, tmp_path: Path
) -> None:
    keeper = _member(1, "/ref/a.jpg", "keeper", is_reference=True, width=800, height=600)
    big = _member(2, "/lib/a-big.jpg", "resized", width=1600, height=1200)
    small = _member(3, "/lib/a-small.jpg", "resized", width=400, height=300)
    warning = "the reference copy (800×600) is smaller than a-big.jpg (1600×1200)"
    group = Group("phash", keeper, [big, small], big.size + small.size, "", warning)
    view = _one_group_view(qtbot, tmp_path, group)
    assert view.apply_rules() is not None
    qtbot.waitUntil(lambda: view.bulk_dialog is not None and not JobWorker.live)
    dialog = view.bulk_dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    assert dialog.warning_label.isVisibleTo(dialog)
    assert dialog.warning_label.text().startswith("⚠ In 1 group the keeper")
    dialog.reject()
    # Once the larger copy is gone, the group no longer warns; while it stays, it does.
    left = without(group, {big.path})
    assert left is not None and left.warning is None
    kept = without(group, {small.path})
    assert kept is not None and kept.warning == warning


def test_polite_jobs_give_the_same_steps_and_result_and_close_what_they_wrap() -> None:
    closed: list[bool] = []

    def job() -> Any:
        try:
            for i in range(3):
                yield Progress("x", i, 3)
            return "done"
        finally:
            closed.append(True)

    steps = []
    wrapped = polite(job())
    with pytest.raises(StopIteration) as stop:
        while True:
            steps.append(next(wrapped).done)
    assert steps == [0, 1, 2] and stop.value.value == "done" and closed == [True]
    early = polite(job())
    next(early)
    early.close()  # a cancelled worker's job: the wrapped one is closed too
    assert closed == [True, True]


def test_a_turned_copys_hash_line_says_it_matched_once_turned_back() -> None:
    base = Member(1, "/p/a.jpg", 10, 8, 6, "JPEG", None, None, False, 1.0, "identical")
    mirrored = Member(
        2, "/p/b.jpg", 10, 8, 6, "JPEG", None, None, False, 1.0, "mirrored",
        transform="mirrored left–right",
    )  # fmt: skip
    assert score_text("exact", base) == "Same bytes"
    assert score_text("phash", mirrored) == "Same hash once turned back"
    near = Member(3, "/p/c.jpg", 10, 8, 6, "JPEG", None, None, False, 1 - 2 / 64, "resized")
    assert score_text("phash", near) == "2 hash bits apart"
