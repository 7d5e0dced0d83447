"""The Sort-by-example view as a user drives it: example folders and labels, sort,
review (accept / reject and sort again), the Unsure threshold, export and undo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import imagegen
import pytest
import weightsgen
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QDropEvent
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import SortLabelInfo
from dino_desktop.core.sorting import UNSURE
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.sorting import ALL, UNSURE_ID, SortView
from dino_desktop.gui.workers import JobWorker, alive


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("weights") / "tiny.pth", weightsgen.TINY
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """sort/Cats (3), sort/Beach (3) and dump/ (6 photos to sort)."""
    for folder, seeds in (("sort/Cats", range(3)), ("sort/Beach", range(10, 13))):
        (tmp_path / folder).mkdir(parents=True)
        for s in seeds:
            imagegen.save_jpeg(tmp_path / folder / f"p{s}.jpg", seed=s, size=(160, 120))
    (tmp_path / "dump").mkdir()
    for s in range(20, 26):
        imagegen.save_jpeg(tmp_path / "dump" / f"p{s}.jpg", seed=s, size=(160, 120))
    return tmp_path


@pytest.fixture
def lib(tree: Path, tiny_weights: Path) -> Iterator[Library]:
    weightsgen.register_tiny_model()
    library = Library(tree / "lib", model=weightsgen.TINY, weights=tiny_weights, device="cpu")
    drive(library.scan([str(tree / "dump")]))
    yield library
    library.close()


@pytest.fixture
def loader(lib: Library) -> Iterator[ThumbnailLoader]:
    thumbs = ThumbnailLoader(lib.paths.cache_dir)
    yield thumbs
    assert thumbs.shutdown()


@pytest.fixture
def view(qtbot: QtBot, lib: Library, loader: ThumbnailLoader) -> Iterator[SortView]:
    widget = SortView(lib, loader)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    yield widget
    # No read may outlive the test (the suite fails stray workers).
    # pytest-qt may close and delete the view first: a deleted view ignores what
    # arrives (workers.alive), so it is "loading" no more.
    qtbot.waitUntil(
        lambda: not JobWorker.live and (not alive(widget) or not widget.loading()),
        timeout=60000,
    )


def _wait(qtbot: QtBot, worker: JobWorker | None, view: SortView | None = None) -> None:
    """Until the worker's result has reached the view (a worker leaves `live` after
    the view's slots ran), and, given `view`, until what it re-reads has arrived."""
    assert worker is not None
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=60000)
    if view is not None:
        qtbot.waitUntil(lambda: not view.loading() and not view._busy(), timeout=60000)


def _shown(qtbot: QtBot, view: SortView) -> list[int]:
    """The photo ids in the grid, once the open entry's rows have been read."""
    qtbot.waitUntil(lambda: not view.loading(), timeout=60000)
    return [p.id for p in view.shown_photos()]


def _with_folders(qtbot: QtBot, view: SortView, tree: Path) -> None:
    for name in ("Cats", "Beach"):
        _wait(qtbot, view.add_folder(str(tree / "sort" / name)), view)
    assert [(lb.name, lb.positives) for lb in view.labels()] == [("Beach", 3), ("Cats", 3)]


def test_empty_view_explains_and_cannot_export(view: SortView) -> None:
    assert "Sort by example" in view.open_label.text()
    assert not view.export_button.isEnabled() and not view.train_button.isEnabled()


def test_sort_shows_accuracy_and_every_other_photo_once(
    qtbot: QtBot, view: SortView, tree: Path
) -> None:
    _with_folders(qtbot, view, tree)
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        worker = view.train()
        assert view.progress.isVisibleTo(view) and view.cancel_button.isVisibleTo(view)
    _wait(qtbot, worker, view)
    assert str(blocker.args[0]).startswith("Sorted")
    result = view.result()
    assert result is not None and len(result.predictions) == 6
    assert "Accuracy" in view.accuracy_label.text()
    # The label rows count what was sorted into them; all rows together show each photo once.
    rows = {
        view.label_list.topLevelItem(i).text(0): view.label_list.topLevelItem(i).text(2)
        for i in range(view.label_list.topLevelItemCount())
    }
    assert sum(int(rows[n] or 0) for n in ("Cats", "Beach", UNSURE)) == 6
    shown: list[int] = []
    for lb in view.labels():
        view.open(lb.id)
        shown += _shown(qtbot, view)
        assert view.model.has_scores  # the confidence is on each thumbnail
    view.open(UNSURE_ID)
    shown += _shown(qtbot, view)
    assert sorted(shown) == sorted(p.image_id for p in result.predictions)
    # Lowering the threshold to 0 empties Unsure without sorting again.
    view.threshold_spin.setValue(0)
    view.open(UNSURE_ID)
    assert _shown(qtbot, view) == []


def test_reject_learns_and_sorts_again_accept_makes_examples(
    qtbot: QtBot, view: SortView, tree: Path, lib: Library
) -> None:
    _with_folders(qtbot, view, tree)
    view.threshold_spin.setValue(0)
    _wait(qtbot, view.train(), view)
    cats = next(lb for lb in view.labels() if lb.name == "Cats")
    beach = next(lb for lb in view.labels() if lb.name == "Beach")
    busiest = max((cats, beach), key=lambda lb: len(view.result().by_label()[lb.name]))  # type: ignore[union-attr]
    view.open(busiest.id)
    _shown(qtbot, view)
    first = view.shown_photos()[0]
    worker = view.reject([first.id])
    assert worker is not None
    _wait(qtbot, worker, view)  # the rejection is saved, then it sorts again
    result = view.result()
    assert result is not None
    after = next(p for p in result.predictions if p.image_id == first.id)
    assert after.label != busiest.name  # never that label again
    assert lib.label_examples(busiest.id)[1] == [first.id]

    view.open(ALL)
    _shown(qtbot, view)
    some = view.shown_photos()[0]
    other = next(lb for lb in view.labels() if lb.id != busiest.id)
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        view.label_as([some.id], other.id)
    assert blocker.args == [f"1 photo now an example of “{other.name}”"]
    assert some.id in lib.label_examples(other.id)[0]
    assert all(p.image_id != some.id for p in view.result().predictions)  # type: ignore[union-attr]


def test_drop_photos_on_a_label_and_new_label(qtbot: QtBot, view: SortView) -> None:
    made: list[SortLabelInfo] = []
    _wait(qtbot, view.new_label("Receipts", made.append), view)
    (label,) = made
    view.open(ALL)
    _shown(qtbot, view)
    index = view.model.index(0, 0)
    photo = view.model.photo_at(index)
    assert photo is not None
    item = next(
        view.label_list.topLevelItem(i)
        for i in range(view.label_list.topLevelItemCount())
        if view.label_list.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole) == label.id
    )
    mime = view.model.mimeData([index])  # kept: the event does not own it
    drop = QDropEvent(
        QPointF(view.label_list.visualItemRect(item).center()),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(view.status_message, timeout=60000):
        assert view.eventFilter(view.label_list.viewport(), drop)
    qtbot.waitUntil(lambda: not view.loading(), timeout=60000)
    assert next(lb for lb in view.labels() if lb.id == label.id).positives == 1
    # One label is not enough to sort: the message says so.
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        worker = view.train()
    _wait(qtbot, worker, view)
    assert "at least two" in str(blocker.args[0])


def test_export_copy_then_undo(qtbot: QtBot, view: SortView, tree: Path, lib: Library) -> None:
    _with_folders(qtbot, view, tree)
    view.threshold_spin.setValue(0)
    _wait(qtbot, view.train(), view)
    dest = tree / "out"
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        worker = view.export(str(dest), "copy")
    _wait(qtbot, worker, view)
    assert blocker.args == ["Wrote 6 files — Undo with Ctrl+Z"]
    written = sorted(dest.rglob("*.jpg"))
    assert len(written) == 6 and {p.parent.name for p in written} <= {"Cats", "Beach"}
    for path in written:
        assert path.read_bytes() == (tree / "dump" / path.name).read_bytes()
    lib.undo()
    assert not list(dest.rglob("*.jpg"))
