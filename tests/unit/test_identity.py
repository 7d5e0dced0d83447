"""Stable identity: photos that moved or were renamed keep their rows (core/identity.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import imagegen
import numpy as np
import pytest
import weightsgen
from sqlalchemy import func, select

from dino_desktop.core import db
from dino_desktop.core import thumbnails as thumbs
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive


def _lib(tmp_path: Path, weights: Path | None = None) -> Library:
    lib: Library = weightsgen.tiny_library(tmp_path, weights)
    return lib


def _vectors(lib: Library) -> dict[int, bytes]:
    with lib.sessions() as session:
        return {e.image_id: e.vector for e in session.scalars(select(db.Embedding))}


def _ids_by_path(lib: Library) -> dict[str, int]:
    return {r.path: r.id for r in lib.images()}


def _row_count(lib: Library) -> int:
    with lib.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(db.ImageRow)) or 0)


def test_moves_and_renames_at_every_level_keep_rows_vectors_labels_and_folders(
    tmp_path: Path, tiny_weights: Path
) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    trip = a / "2024-07 Trip"
    for i in range(4):
        imagegen.save_jpeg(trip / f"t{i}.jpg", seed=i, size=(160, 120))
    for i in range(4, 7):
        imagegen.save_jpeg(a / f"p{i}.jpg", seed=i, size=(160, 120))
    imagegen.save_jpeg(b / "b0.jpg", seed=9, size=(160, 120))
    (a / "p4.xmp").write_text("<x:xmpmeta/>")
    lib = _lib(tmp_path, tiny_weights)
    first = drive(lib.scan([a, b]))
    assert (first.added, first.embedded) == (8, 8)
    before_ids = _ids_by_path(lib)
    before_vectors = _vectors(lib)
    run = drive(lib.cluster(2))
    label = lib.add_sort_label("beach")
    lib.label_photos(label.id, [before_ids[str(trip / "t0.jpg")], before_ids[str(a / "p5.jpg")]])

    t0 = os.stat(trip / "t0.jpg")
    old_thumb = thumbs.thumbnail_file(
        lib.paths.cache_dir, str(trip / "t0.jpg"), t0.st_mtime_ns, t0.st_size
    )

    # A folder renamed, a photo renamed with its sidecar, one moved to another
    # library folder, and a photo moved into a new sub-folder.
    lisbon = a / "2024-07 Lisbon"
    trip.rename(lisbon)
    (a / "p4.jpg").rename(a / "renamed.jpg")
    (a / "p4.xmp").rename(a / "renamed.xmp")
    shutil.move(a / "p5.jpg", b / "p5.jpg")
    (a / "deep" / "er").mkdir(parents=True)
    (a / "p6.jpg").rename(a / "deep" / "er" / "p6.jpg")

    result = drive(lib.scan())
    assert (result.moved, result.added, result.removed, result.embedded) == (7, 0, 0, 0)
    after_ids = _ids_by_path(lib)
    assert _row_count(lib) == 8
    renames = {
        str(trip / "t0.jpg"): str(lisbon / "t0.jpg"),
        str(a / "p4.jpg"): str(a / "renamed.jpg"),
        str(a / "p5.jpg"): str(b / "p5.jpg"),
        str(a / "p6.jpg"): str(a / "deep" / "er" / "p6.jpg"),
        str(b / "b0.jpg"): str(b / "b0.jpg"),
    }
    for old, new in renames.items():
        assert after_ids[new] == before_ids[old]
    assert _vectors(lib) == before_vectors  # nothing re-embedded, nothing lost
    # The saved auto-folders and the label's examples still hold every photo.
    latest = lib.clusters()
    assert latest is not None and latest.id == run.id
    assert [c.member_ids for c in latest.clusters] == [c.member_ids for c in run.clusters]
    assert lib.new_photos() == []  # no photo looks new to the auto-folders
    assert latest.paths[before_ids[str(a / "p5.jpg")]] == str(b / "p5.jpg")
    positives, _ = lib.label_examples(label.id)
    assert set(positives) == {before_ids[str(trip / "t0.jpg")], before_ids[str(a / "p5.jpg")]}
    # The grid finds the thumbnail it had (no decode), under the new path's key.
    new_thumb = thumbs.thumbnail_path(
        lib.paths.cache_dir, str(lisbon / "t0.jpg"), t0.st_mtime_ns, t0.st_size
    )
    assert new_thumb.is_file() and not old_thumb.exists()
    # The sidecar went with its photo.
    comps = lib.companions([after_ids[str(a / "renamed.jpg")]])
    assert [c.path for c in comps[after_ids[str(a / "renamed.jpg")]]] == [str(a / "renamed.xmp")]

    again = drive(lib.scan())
    assert (again.moved, again.added, again.removed, again.unchanged) == (0, 0, 0, 8)
    with lib.sessions() as session:  # the moved rows' columns read back as written
        moved_row = session.get(db.ImageRow, before_ids[str(a / "p5.jpg")])
        assert moved_row is not None and moved_row.scanned_at.year >= 2024


def test_identical_copies_moved_at_once_each_keep_their_own_row(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    imagegen.save_jpeg(src / "x.jpg", seed=1, size=(96, 64))
    shutil.copy2(src / "x.jpg", src / "y.jpg")
    shutil.copy2(src / "x.jpg", src / "z.jpg")
    dst.mkdir()
    lib = _lib(tmp_path, None)
    drive(lib.scan([src, dst]))
    ids = _ids_by_path(lib)
    for name in ("x.jpg", "y.jpg"):
        (src / name).rename(dst / name)
    result = drive(lib.scan())
    assert (result.moved, result.added, result.removed) == (2, 0, 0)
    after = _ids_by_path(lib)
    assert after[str(dst / "x.jpg")] == ids[str(src / "x.jpg")]
    assert after[str(dst / "y.jpg")] == ids[str(src / "y.jpg")]
    assert after[str(src / "z.jpg")] == ids[str(src / "z.jpg")]
    assert _row_count(lib) == 3


def test_a_swap_of_two_names_swaps_their_rows(tmp_path: Path, tiny_weights: Path) -> None:
    root = tmp_path / "p"
    imagegen.save_jpeg(root / "a.jpg", seed=1, size=(96, 64))
    imagegen.save_jpeg(root / "b.jpg", seed=2, size=(96, 64))
    lib = _lib(tmp_path, tiny_weights)
    drive(lib.scan([root]))
    ids, vectors = _ids_by_path(lib), _vectors(lib)
    (root / "a.jpg").rename(root / "tmp.jpg")
    (root / "b.jpg").rename(root / "a.jpg")
    (root / "tmp.jpg").rename(root / "b.jpg")
    result = drive(lib.scan())
    assert (result.moved, result.added, result.removed, result.embedded) == (2, 0, 0, 0)
    after = _ids_by_path(lib)
    assert after[str(root / "b.jpg")] == ids[str(root / "a.jpg")]
    assert after[str(root / "a.jpg")] == ids[str(root / "b.jpg")]
    assert _vectors(lib) == vectors


def test_a_touched_file_keeps_its_vector_and_an_edited_move_is_a_new_photo(
    tmp_path: Path, tiny_weights: Path
) -> None:
    root = tmp_path / "p"
    for i in range(3):
        imagegen.save_jpeg(root / f"p{i}.jpg", seed=i, size=(96, 64))
    lib = _lib(tmp_path, tiny_weights)
    drive(lib.scan([root]))
    ids, vectors = _ids_by_path(lib), _vectors(lib)
    os.utime(root / "p0.jpg", ns=(1, 1_000_000_000))
    # Moved and edited (other bytes): not the same photo.
    (root / "p1.jpg").rename(root / "q1.jpg")
    with open(root / "q1.jpg", "ab") as handle:
        handle.write(b"\0")
    # Copied, the original kept: a second photo.
    shutil.copy2(root / "p2.jpg", root / "copy.jpg")
    result = drive(lib.scan())
    assert (result.moved, result.added, result.removed, result.updated) == (0, 2, 1, 0)
    assert result.embedded == 2
    after = _ids_by_path(lib)
    assert after[str(root / "p0.jpg")] == ids[str(root / "p0.jpg")]
    assert _vectors(lib)[ids[str(root / "p0.jpg")]] == vectors[ids[str(root / "p0.jpg")]]
    assert after[str(root / "copy.jpg")] != ids[str(root / "p2.jpg")]
    assert np.frombuffer(_vectors(lib)[after[str(root / "copy.jpg")]], np.float32).shape


def test_only_files_whose_size_matches_a_vanished_row_are_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dino_desktop.core import identity

    root = tmp_path / "p"
    imagegen.save_jpeg(root / "old.jpg", seed=1, size=(96, 64))
    lib = _lib(tmp_path, None)
    drive(lib.scan([root]))
    hashed: list[str] = []
    real = identity._hash_or_none
    monkeypatch.setattr(identity, "_hash_or_none", lambda h, p: hashed.append(p) or real(h, p))
    # Copied and deleted, as a move between drives is: a new inode, so it is hashed.
    shutil.copy2(root / "old.jpg", root / "new.jpg")
    (root / "old.jpg").unlink()
    for i in range(5):
        imagegen.save_jpeg(root / f"other{i}.jpg", seed=10 + i, size=(200, 150))
    result = drive(lib.scan())
    assert (result.moved, result.added) == (1, 5)
    assert hashed == [str(root / "new.jpg")]
    # A rename keeps the inode: known to be the same file without reading it.
    hashed.clear()
    (root / "new.jpg").rename(root / "renamed.jpg")
    assert drive(lib.scan()).moved == 1 and hashed == []
