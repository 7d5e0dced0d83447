"""The Auto-folders view as a user drives it: sort, rename, merge, exclude, accept, export, undo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import imagegen
import pytest
import weightsgen
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.folders import ExportPreviewDialog, FoldersView
from dino_desktop.gui.workers import JobWorker, alive

PHOTOS = 8


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("weights") / "tiny.pth", weightsgen.TINY
    )


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(PHOTOS):
        imagegen.save_jpeg(root / f"p{i}.jpg", seed=i, size=(200, 150))
    return root


@pytest.fixture
def lib(tmp_path: Path, photos: Path, tiny_weights: Path) -> Iterator[Library]:
    weightsgen.register_tiny_model()
    library = Library(tmp_path / "lib", model=weightsgen.TINY, weights=tiny_weights, device="cpu")
    drive(library.scan([str(photos)]))
    yield library
    library.close()


@pytest.fixture
def loader(lib: Library) -> Iterator[ThumbnailLoader]:
    thumbs = ThumbnailLoader(lib.paths.cache_dir)
    yield thumbs
    assert thumbs.shutdown()  # no decode thread outlives the test


@pytest.fixture
def view(qtbot: QtBot, lib: Library, loader: ThumbnailLoader) -> Iterator[FoldersView]:
    widget = FoldersView(lib, loader)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()  # the first read starts when the view is shown
    qtbot.waitUntil(lambda: not widget.loading(), timeout=30000)
    yield widget
    # No result may arrive at the view once it is deleted.
    # pytest-qt may close and delete the view first: a deleted view ignores what
    # arrives (workers.alive), so it is "loading" no more.
    qtbot.waitUntil(
        lambda: not JobWorker.live and (not alive(widget) or not widget.loading()),
        timeout=60000,
    )


def _wait(qtbot: QtBot, view: FoldersView, worker: JobWorker | None) -> None:
    """Wait until the worker has delivered its result (or failure) and the view has
    read what it shows again (the run, then the open folder's rows)."""
    assert worker is not None
    qtbot.waitUntil(lambda: worker not in JobWorker.live, timeout=60000)
    qtbot.waitUntil(lambda: not view._busy() and not view.loading(), timeout=60000)


def _sorted(qtbot: QtBot, view: FoldersView, k: int | None = 2) -> None:
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        worker = view.run(k)
        assert view.progress.isVisibleTo(view) and view.cancel_button.isVisibleTo(view)
    _wait(qtbot, view, worker)
    assert str(blocker.args[0]).startswith("Sorted")
    assert not view.progress.isVisibleTo(view)


def test_an_empty_view_says_what_to_do(view: FoldersView) -> None:
    assert view.clusters() == [] and view.cluster_list.topLevelItemCount() == 0
    assert not view.export_button.isEnabled()
    assert "Sort into folders" in view.open_label.text()


def test_sorting_fills_one_row_per_folder_covering_every_photo(
    qtbot: QtBot, view: FoldersView
) -> None:
    _sorted(qtbot, view, 2)
    found = view.clusters()
    assert 1 <= len(found) <= 2
    assert view.cluster_list.topLevelItemCount() == len(found)
    assert sum(c.size for c in found) == PHOTOS
    sizes = [int(view.cluster_list.topLevelItem(r).text(1)) for r in range(len(found))]
    assert sum(sizes) == PHOTOS
    assert view.cluster_list.topLevelItem(0).font(0).bold()
    view.open_cluster(found[0].id)
    qtbot.waitUntil(lambda: not view.loading(), timeout=30000)
    assert [p.id for p in view.shown_photos()] == found[0].member_ids


def test_what_the_view_shows_is_read_off_the_gui_thread(
    qtbot: QtBot, view: FoldersView, lib: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    _sorted(qtbot, view, 2)
    readers: list[threading.Thread] = []
    for name in ("clusters", "new_photos", "photos_by_id"):
        real = getattr(lib, name)

        def spy(*args: object, _real: object = real, **kwargs: object) -> object:
            readers.append(threading.current_thread())
            return _real(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(lib, name, spy)
    first = view.clusters()[0]
    view.open_cluster(first.id)
    view.reload()
    assert view.loading()
    qtbot.waitUntil(lambda: not view.loading(), timeout=30000)
    assert readers and threading.main_thread() not in readers
    # The open folder stays open and is read again with the list.
    assert view.open_cluster_id() == first.id
    assert [p.id for p in view.shown_photos()] == first.member_ids
    assert view.cluster_list.topLevelItemCount() == len(view.clusters())


def test_automatic_k_and_cancel(qtbot: QtBot, view: FoldersView) -> None:
    _sorted(qtbot, view, None)
    assert view.auto_check.isChecked() and not view.k_spin.isEnabled()
    assert sum(c.size for c in view.clusters()) == PHOTOS
    worker = view.run(2)
    view.cancel()
    _wait(qtbot, view, worker)
    assert view.sort_button.isEnabled()


def test_rename_is_shown_and_saved(qtbot: QtBot, view: FoldersView, lib: Library) -> None:
    _sorted(qtbot, view)
    first = view.clusters()[0]
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        view.rename(first.id, "Holidays")
    assert blocker.args == ["Renamed the folder to “Holidays”"]
    assert view.cluster_list.topLevelItem(0).text(0) == "Holidays"
    saved = lib.clusters()
    assert saved is not None and saved.clusters[0].name == "Holidays"
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        view.rename(first.id, "  ")  # refused, and the name stays
    assert str(blocker.args[0]).startswith("Could not rename")
    qtbot.waitUntil(lambda: not view.loading(), timeout=60000)
    assert view.clusters()[0].name == "Holidays"
    # Sorting again with the same photos keeps the user's name.
    _sorted(qtbot, view, len(view.clusters()))
    assert "Holidays" in [c.name for c in view.clusters()]


def test_a_rename_another_client_made_first_is_not_overwritten(
    qtbot: QtBot, view: FoldersView, lib: Library, tmp_path: Path, tiny_weights: Path
) -> None:
    _sorted(qtbot, view)
    first = view.clusters()[0]
    # Another client of the library renames it while this view still shows the old name.
    with Library(tmp_path / "lib", model=weightsgen.TINY, weights=tiny_weights) as other:
        other.rename_cluster(first.id, "Beach", was=first.name)
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        view.rename(first.id, "Hike")
    assert str(blocker.args[0]).startswith(
        f"Could not rename: another client renamed the auto-folder “{first.name}” to “Beach”"
    )
    qtbot.waitUntil(lambda: view.cluster_list.topLevelItem(0).text(0) == "Beach", timeout=60000)
    saved = lib.clusters()
    assert saved is not None and saved.clusters[0].name == "Beach"


def test_merge_leaves_one_folder_fewer(qtbot: QtBot, view: FoldersView, lib: Library) -> None:
    _sorted(qtbot, view, 3)
    before = view.clusters()
    if len(before) < 2:
        pytest.skip("k-means found one folder only")
    _wait(qtbot, view, view.merge(before[0].id, before[1].id))
    after = view.clusters()
    assert len(after) == len(before) - 1 == view.cluster_list.topLevelItemCount()
    assert sum(c.size for c in after) == PHOTOS
    saved = lib.clusters()
    assert saved is not None and len(saved.clusters) == len(after)


def test_exclude_and_move_photos(qtbot: QtBot, view: FoldersView) -> None:
    _sorted(qtbot, view, 2)
    first = view.clusters()[0]
    view.open_cluster(first.id)
    gone = first.member_ids[0]
    _wait(qtbot, view, view.exclude([gone]))
    assert gone not in {i for c in view.clusters() for i in c.member_ids}
    assert sum(c.size for c in view.clusters()) == PHOTOS - 1
    # Excluded stays excluded: it is not offered back as a new photo...
    assert view.new_photos() == []
    # ...until the user puts it into a folder on purpose.
    _wait(qtbot, view, view.move_photos([gone], first.id))
    assert sum(c.size for c in view.clusters()) == PHOTOS and view.new_photos() == []
    if len(view.clusters()) == 2:
        a, b = view.clusters()
        moved = a.member_ids[:1]
        _wait(qtbot, view, view.move_photos(moved, b.id))
        assert set(moved) <= set(next(c for c in view.clusters() if c.id == b.id).member_ids)


def test_export_copy_writes_identical_files_and_undo_removes_them(
    qtbot: QtBot,
    view: FoldersView,
    lib: Library,
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _sorted(qtbot, view, 2)
    first = view.clusters()[0]
    with qtbot.waitSignal(view.status_message, timeout=60000):
        view.rename(first.id, "Holidays")
    dest = tmp_path / "dest"
    shown: list[ExportPreviewDialog] = []

    def accept(dialog: ExportPreviewDialog) -> int:
        shown.append(dialog)
        return int(QDialog.DialogCode.Accepted.value)

    monkeypatch.setattr(ExportPreviewDialog, "exec", accept)
    # Per-file progress, and it can be stopped: seen as the export starts.
    strip_shown: list[bool] = []
    set_busy = FoldersView._set_busy

    def spy(self: FoldersView, text: str, *, cancellable: bool) -> None:
        set_busy(self, text, cancellable=cancellable)
        strip_shown.append(self.progress.isVisibleTo(self) and self.cancel_button.isVisibleTo(self))

    monkeypatch.setattr(FoldersView, "_set_busy", spy)
    changed: list[bool] = []
    view.files_changed.connect(lambda: changed.append(True))
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        view.export(str(dest), "copy", confirm=True)  # reads the plan, previews, exports
    qtbot.waitUntil(lambda: not view._busy() and not view.loading(), timeout=60000)
    assert strip_shown == [True]
    assert blocker.args == [f"Wrote {PHOTOS} files — Undo with Ctrl+Z"] and changed
    # The preview listed exactly what was written.
    (dialog,) = shown
    assert dialog.table.rowCount() == PHOTOS
    planned = {dialog.table.item(r, 1).text() for r in range(PHOTOS)}
    written = {str(p) for p in dest.rglob("*.jpg")}
    assert planned == written
    holidays = dest / "Holidays"
    assert sorted(p.name for p in holidays.iterdir()) == sorted(
        Path(lib.paths_of([i])[i]).name for i in first.member_ids
    )
    for path in dest.rglob("*.jpg"):
        assert path.read_bytes() == (photos / path.name).read_bytes()

    undone = lib.undo()
    assert not undone.failed
    assert not list(dest.rglob("*.jpg"))
    assert len(list(photos.iterdir())) == PHOTOS  # the originals stay


def test_the_export_preview_and_the_export_take_companion_files_along(
    qtbot: QtBot,
    view: FoldersView,
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _sorted(qtbot, view, 2)
    # A sidecar written since the scan (by darktable, say) still goes with its photo:
    # the plan is read from the disk, in the preview's worker.
    (photos / "p0.xmp").write_text("<x:xmpmeta/>")
    shown: list[ExportPreviewDialog] = []

    def accept(dialog: ExportPreviewDialog) -> int:
        shown.append(dialog)
        return int(QDialog.DialogCode.Accepted.value)

    monkeypatch.setattr(ExportPreviewDialog, "exec", accept)
    dest = tmp_path / "dest"
    with qtbot.waitSignal(view.status_message, timeout=60000) as blocker:
        view.export(str(dest), "copy", confirm=True)
    qtbot.waitUntil(lambda: not view._busy() and not view.loading(), timeout=60000)
    (dialog,) = shown
    assert "and 1 companion file with them" in dialog.summary.text()
    assert "Also copies p0.xmp" in dialog.summary.text()
    assert dialog.table.rowCount() == PHOTOS  # one row a photo, its companions beside it
    assert blocker.args == [f"Wrote {PHOTOS} files (and 1 companion file) — Undo with Ctrl+Z"]
    (copied,) = dest.rglob("*.xmp")
    assert copied.read_text() == "<x:xmpmeta/>"
    assert (copied.parent / "p0.jpg").is_file()


def test_a_cancelled_preview_writes_nothing(
    view: FoldersView, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sorted(qtbot, view, 2)
    shown: list[bool] = []
    monkeypatch.setattr(
        ExportPreviewDialog,
        "exec",
        lambda _self: shown.append(True) or int(QDialog.DialogCode.Rejected.value),
    )
    plan = view.export(str(tmp_path / "dest"), "copy", confirm=True)
    assert plan is not None
    qtbot.waitUntil(lambda: plan not in JobWorker.live and bool(shown), timeout=60000)
    assert view._export_worker is None and not view._busy()
    assert not (tmp_path / "dest").exists()


def test_drag_photos_onto_a_folder_moves_them(qtbot: QtBot, view: FoldersView) -> None:
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QDropEvent

    _sorted(qtbot, view, 2)
    if len(view.clusters()) < 2:
        pytest.skip("the random test model put every photo in one folder")
    source, target = view.clusters()[0], view.clusters()[1]
    view.open_cluster(source.id)
    qtbot.waitUntil(lambda: view.model.rowCount() == source.size, timeout=5000)
    index = view.model.index(0, 0)
    moved = view.model.photo_at(index)
    assert moved is not None
    mime = view.model.mimeData([index])
    assert mime.urls()[0].toLocalFile() == moved.path  # also drags out as a file
    item = next(
        view.cluster_list.topLevelItem(i)
        for i in range(view.cluster_list.topLevelItemCount())
        if view.cluster_list.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole) == target.id
    )
    pos = view.cluster_list.visualItemRect(item).center()
    drop = QDropEvent(
        QPointF(pos),
        Qt.DropAction.MoveAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    # Offscreen Qt delivers no drop without a real drag session: hand the event to
    # the view's drop handler as Qt would.
    assert view.eventFilter(view.cluster_list.viewport(), drop)
    # The move runs in a worker (it recentres the folders): the list follows when done.
    assert view.progress.isVisibleTo(view)
    qtbot.waitUntil(
        lambda: moved.id in next(c for c in view.clusters() if c.id == target.id).member_ids,
        timeout=30000,
    )
    qtbot.waitUntil(lambda: not view.progress.isVisibleTo(view), timeout=30000)
    assert sum(c.size for c in view.clusters()) == PHOTOS
