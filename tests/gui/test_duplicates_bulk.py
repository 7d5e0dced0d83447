"""The Duplicates view's bulk action on a real library: the dry run's numbers, the run
(one operation, files in the trash, bursts left, metadata carried), and Undo, which
puts every byte back; and the metadata preview of one group."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import imagegen
import pytest
from PIL import Image, ImageEnhance, ImageOps
from pytestqt.qtbot import QtBot

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.gui.thumbnails import ThumbnailLoader
from dino_desktop.gui.views.duplicate_bulk import BulkDialog
from dino_desktop.gui.views.duplicates import DuplicatesView
from dino_desktop.gui.workers import JobWorker

SHOT = datetime(2022, 5, 1, 9, 15, 0)
COPIES = ("a exact.jpg", "a half.jpg", "a mono.jpg", "a low.jpg")


def _sha(root: Path) -> dict[str, str]:
    """Every file below `root` (sidecars included) by its sha256."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def shelf(tmp_path: Path) -> Iterator[tuple[Library, Path]]:
    """One picture and four copies of it in `copies/` (one carries a date and a camera
    the original lacks), and a photo with a burst shot a second later."""
    root = tmp_path / "shelf"
    picture = imagegen.photo(800, 600, 77)
    original = imagegen.save_jpeg(root / "a.jpg", picture)
    dated = {"taken_at": SHOT, "make": "Acme", "model": "A1"}
    made: dict[str, tuple[Image.Image, dict[str, Any]]] = {
        COPIES[1]: (picture.resize((400, 300)), dated),
        COPIES[2]: (ImageOps.grayscale(picture).convert("RGB"), {}),
        COPIES[3]: (picture, {"quality": 45}),
    }
    (root / "copies").mkdir()
    shutil.copyfile(original, root / "copies" / COPIES[0])
    for name, (img, tags) in made.items():
        imagegen.save_jpeg(root / "copies" / name, img, **tags)
    other = imagegen.photo(640, 480, 78)
    for name, gain, later in (("b.jpg", 1.0, 0), ("b again.jpg", 1.02, 1)):
        shot = ImageEnhance.Brightness(other).enhance(gain)
        imagegen.save_jpeg(root / name, shot, taken_at=SHOT + timedelta(seconds=later))
    library = Library(tmp_path / "lib")
    drive(library.scan([root], embed=False))
    yield library, root
    library.close()


@pytest.fixture
def view(qtbot: QtBot, shelf: tuple[Library, Path]) -> Iterator[DuplicatesView]:
    library, _root = shelf
    loader = ThumbnailLoader(library.paths.cache_dir)
    widget = DuplicatesView(library, loader)
    qtbot.addWidget(widget)
    widget.resize(1300, 800)
    widget.show()
    yield widget
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)
    assert loader.shutdown()


def _settle(qtbot: QtBot) -> None:
    """Until every worker (a search, a plan, a preview, a removal) has delivered."""
    qtbot.waitUntil(lambda: not JobWorker.live, timeout=60000)


def _search(qtbot: QtBot, view: DuplicatesView) -> None:
    view.find("phash")
    _settle(qtbot)
    assert len(view.groups()) == 2


def _dry_run(qtbot: QtBot, view: DuplicatesView) -> BulkDialog:
    assert view.apply_rules() is not None
    _settle(qtbot)
    dialog = view.bulk_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.addWidget(dialog)
    return dialog


def _trashed(tmp_path: Path) -> list[bytes]:
    trash = tmp_path / "xdg-data" / "Trash" / "files"  # conftest's XDG_DATA_HOME
    return sorted(p.read_bytes() for p in trash.iterdir()) if trash.exists() else []


def test_the_dry_run_then_the_run_then_undo_restores_every_byte(
    qtbot: QtBot, view: DuplicatesView, shelf: tuple[Library, Path], tmp_path: Path
) -> None:
    _library, root = shelf
    before = _sha(root)
    copies = [root / "copies" / name for name in COPIES]
    contents = sorted(p.read_bytes() for p in copies)
    _search(qtbot, view)
    assert view.bulk_button.text() == "Apply keeper rules to 2 filtered groups…"
    dialog = _dry_run(qtbot, view)
    # The dry run: the four copies from one folder; the burst stays.
    plan = dialog.plan
    assert sorted(plan.paths) == sorted(map(str, copies))
    assert (plan.files, plan.groups, plan.left_exposures) == (4, 1, 1)
    assert plan.bytes == sum(p.stat().st_size for p in copies)
    assert "4 files" in dialog.summary.text() and "1 group" in dialog.summary.text()
    assert [dialog.folders.item(i).text() for i in range(dialog.folders.count())] == [
        str(root / "copies")
    ]
    assert dialog.folders_label.text() == "Folders touched: 1"
    assert "1 other exposure (bursts, similar shots) stay" in dialog.left_label.text()
    assert dialog.carry_check.isChecked()
    assert dialog.ok_button.text() == "Move 4 files to the trash"
    # Bursts too, when asked: planned again in a worker; and back.
    dialog.exposures_check.setChecked(True)
    assert not dialog.ok_button.isEnabled()  # until the new plan is in
    _settle(qtbot)
    assert dialog.plan.files == 5 and dialog.plan.left_exposures == 0
    assert "Nothing is left undecided" in dialog.left_label.text()
    dialog.exposures_check.setChecked(False)
    _settle(qtbot)
    assert dialog.plan.files == 4
    assert _sha(root) == before  # planning touched nothing
    # Run it.
    with qtbot.waitSignal(view.files_changed, timeout=60000):
        dialog.ok_button.click()
    _settle(qtbot)
    assert not any(p.exists() for p in copies)
    assert _trashed(tmp_path) == contents
    assert (root / "b again.jpg").exists() and (root / "b.jpg").exists()
    assert _sha(root)["a.jpg"] == before["a.jpg"]  # the keeper's own bytes: never written
    sidecars = sorted(p.name for p in root.glob("a*.xmp"))
    assert sidecars == ["a.jpg.xmp"]  # the copy's date and camera, carried
    # The group of copies is gone (its keeper is alone); the burst's group stays.
    (left,) = view.groups()
    assert left.keeper.path in {str(root / "b.jpg"), str(root / "b again.jpg")}
    assert view.undo_bar.isVisibleTo(view)
    assert view.undo_bar.label.text().startswith("Moved 4 copies (")
    assert "Undo with Ctrl+Z" in view.undo_bar.label.text()
    # Undo (one operation): every byte back, the sidecar gone, the groups found again.
    view.undo_bar.undo_button.click()
    _settle(qtbot)
    assert _sha(root) == before
    assert len(view.groups()) == 2
    assert view.undo_bar.label.text().startswith("Restored 4 photos")


def test_the_bulk_action_takes_only_the_groups_the_filters_show(
    qtbot: QtBot, view: DuplicatesView, shelf: tuple[Library, Path], tmp_path: Path
) -> None:
    _library, root = shelf
    _search(qtbot, view)
    view.pane.set_label("burst")
    assert len(view.groups()) == 1
    dialog = _dry_run(qtbot, view)
    assert dialog.plan.paths == () and not dialog.ok_button.isEnabled()
    assert "Nothing to remove" in dialog.summary.text()
    dialog.exposures_check.setChecked(True)
    _settle(qtbot)
    assert dialog.plan.files == 1
    dialog.carry_check.setChecked(False)
    dialog.ok_button.click()
    _settle(qtbot)
    assert len(_trashed(tmp_path)) == 1
    assert all((root / "copies" / name).exists() for name in COPIES)  # not shown: untouched
    assert not list(root.glob("*.xmp"))  # carrying was switched off
    view.pane.set_label(None)
    assert len(view.groups()) == 1  # the group of copies


def test_the_group_page_says_what_a_removal_would_carry_into_the_keepers_sidecar(
    qtbot: QtBot, view: DuplicatesView, shelf: tuple[Library, Path]
) -> None:
    _library, root = shelf
    _search(qtbot, view)
    row = next(i for i, g in enumerate(view.groups()) if g.keeper.path == str(root / "a.jpg"))
    view.select_row(row)
    _settle(qtbot)
    text = view.page.merge_label.text()
    assert text.startswith("Carried into the keeper's sidecar (a.jpg.xmp) when its copies")
    assert "2022" in text and "Acme" in text and COPIES[1] in text
    # Only the marked photos count: the grey copy has nothing to give.
    assert view.set_marked(str(root / "copies" / COPIES[2]), True)
    _settle(qtbot)
    assert "nothing needs carrying" in view.page.merge_label.text()
    assert view.set_marked(str(root / "copies" / COPIES[1]), True)
    _settle(qtbot)
    assert "when the marked photos are removed" in view.page.merge_label.text()
    assert "Acme" in view.page.merge_label.text()
