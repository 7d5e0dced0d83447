"""A scan and a file operation in one process: a photo moved mid-scan keeps its row.

The library's write lock is re-entrant within a process, so the GUI may move or
export photos while its own scan runs. The file operation moves each photo's row
with its file (same id, so its vector, auto-folder membership and sort label
stay); the scan, which read the rows before walking, must neither delete that
row as "vanished" nor trip over it when it finds the file at its new path. Each
test interleaves the two deterministically: a hook between the scan's reading of
the rows and its walk, or stepping the jobs' generators.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagegen
import numpy as np
import pytest
import weightsgen

from dino_desktop.core import scanner
from dino_desktop.core.library import Library
from dino_desktop.core.progress import Progress, drive


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("weights") / "tiny.pth", weightsgen.TINY
    )


@pytest.fixture
def lib(tmp_path: Path, tiny_weights: Path) -> Iterator[Library]:
    """Six scanned, embedded photos in two auto-folders, one of them labelled."""
    photos = tmp_path / "photos"
    for i in range(6):
        imagegen.save_jpeg(photos / f"IMG_{i}.jpg", seed=i, size=(96, 72))
    (photos / "sub").mkdir()
    weightsgen.register_tiny_model()
    library = Library(tmp_path / "lib", model=weightsgen.TINY, weights=tiny_weights, device="cpu")
    drive(library.scan([str(photos)]))
    drive(library.cluster(k=2))
    label = library.add_sort_label("Keep")
    library.label_photos(label.id, [_id(library, photos / "IMG_0.jpg")])
    yield library
    library.close()


def _id(lib: Library, path: Path) -> int:
    found = lib.find_image(path)
    assert found is not None, path
    return found[0]


def _state(lib: Library, image_id: int) -> tuple[bytes, list[int], list[int]]:
    """What a user would lose with the row: its vector, its auto-folder, its label."""
    ids, vectors = lib._all_vectors()
    [at] = np.flatnonzero(ids == image_id)
    run = lib.clusters()
    assert run is not None
    [members] = [c.member_ids for c in run.clusters if image_id in c.member_ids]
    [label] = lib.sort_labels()
    return vectors[at].tobytes(), sorted(members), lib.label_examples(label.id)[0]


def _paths(lib: Library) -> dict[int, str]:
    return {rec.id: rec.path for rec in lib.images()}


def _pause_after_rows_read(monkeypatch: pytest.MonkeyPatch, then: Any) -> None:
    """Run `then()` once the scan has read the rows and before its walk begins."""
    rows_read = threading.Event()
    real_rows, real_walk = scanner._known_rows, scanner.walk_folder

    def known_rows(*args: Any) -> Any:
        out = real_rows(*args)
        rows_read.set()
        return out

    def walk_folder(*args: Any) -> Any:
        assert rows_read.wait(60)
        then()
        return real_walk(*args)

    monkeypatch.setattr(scanner, "_known_rows", known_rows)
    monkeypatch.setattr(scanner, "walk_folder", walk_folder)


def test_a_photo_moved_while_a_scan_walks_keeps_its_row_vector_folder_and_label(
    lib: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = tmp_path / "photos" / "IMG_0.jpg"
    data = photo.read_bytes()
    image_id = _id(lib, photo)
    before = _state(lib, image_id)
    # The scan read the rows (the photo at its old path), then the GUI moves it
    # into a sub-folder, then the walk finds it there and not at its old path.
    _pause_after_rows_read(
        monkeypatch, lambda: lib.move([str(photo)], str(tmp_path / "photos" / "sub"))
    )
    report = drive(lib.scan())
    moved = tmp_path / "photos" / "sub" / "IMG_0.jpg"
    assert moved.read_bytes() == data and not photo.exists()
    assert report.removed == 0 and not report.failed
    assert _paths(lib)[image_id] == str(moved.resolve())
    assert len(_paths(lib)) == 6  # no second row for the moved photo
    assert _state(lib, image_id) == before
    assert lib.status().pending == 0


def test_a_photo_moved_by_an_export_before_its_row_follows_keeps_it_through_a_scan(
    lib: Library, tmp_path: Path
) -> None:
    """The export journals (and moves rows) in batches: a scan run between a file's
    move and its batch's save must not forget the row that is about to follow."""
    run = lib.clusters()
    assert run is not None
    dest = tmp_path / "sorted"
    job = lib.export_clusters_job(dest, "move")
    assert next(job).done == 0
    assert next(job).done == 1  # one photo moved; its row not yet
    [(image_id, path)] = [(i, p) for i, p in run.paths.items() if not os.path.exists(p)]
    before = _state(lib, image_id)
    drive(lib.scan())  # every folder, the new DEST included
    result = drive(job)
    assert not result.failed
    [written] = [d for s, d in result.moved if s == path]
    assert _paths(lib)[image_id] == os.path.realpath(written)
    assert len(_paths(lib)) == 6
    assert _state(lib, image_id) == before


def test_a_photo_moved_away_and_back_during_a_scan_keeps_its_row(
    lib: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moved before the walk (so the scan found it gone) and back (undo) before the
    scan removes vanished rows: the row is as read and the file is there again."""
    photo = tmp_path / "photos" / "IMG_0.jpg"
    image_id = _id(lib, photo)
    before = _state(lib, image_id)
    _pause_after_rows_read(
        monkeypatch, lambda: lib.move([str(photo)], str(tmp_path / "photos" / "sub"))
    )
    job = lib.scan()
    undone = False
    try:
        while True:
            step: Progress = next(job)
            if step.phase == "index" and step.total and step.done == step.total and not undone:
                lib.undo()  # after the scan's last write, before it removes what vanished
                undone = True
    except StopIteration as stop:
        report = stop.value
    assert undone and photo.exists()
    assert report.removed == 0
    assert _paths(lib)[image_id] == str(photo.resolve())
    assert _state(lib, image_id) == before
