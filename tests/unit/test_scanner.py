"""Scanner: finds photos, records bad files, stays incremental, never loses rows wrongly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import imagegen
import pytest
from sqlalchemy import select

from dino_desktop.core import db, scanner
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Progress, drive


def _lib(tmp_path: Path) -> Library:
    return Library(tmp_path / "lib")


def _scan(lib: Library, *paths: Path, **kw: object) -> object:
    return drive(lib.scan([str(p) for p in paths], embed=False, **kw))  # type: ignore[arg-type]


def _rows(lib: Library) -> dict[str, db.ImageRow]:
    with lib.sessions() as session:
        return {r.relpath: r for r in session.scalars(select(db.ImageRow))}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "Fotos 2024"
    (root / "été ☀").mkdir(parents=True)
    imagegen.save_jpeg(root / "a.jpg", seed=1, make="Canon", model="Canon EOS 5D")
    imagegen.save_jpeg(root / "été ☀" / "IMG 2.JPG", seed=2, orientation=6, size=(400, 300))
    imagegen.save_as(root / "b.png", "PNG", seed=3)
    imagegen.save_as(root / "c.webp", "WEBP", seed=4)
    (root / "notes.txt").write_text("not a photo")
    (root / ".hidden").mkdir()
    imagegen.save_jpeg(root / ".hidden" / "skip.jpg", seed=5)
    return root


def test_first_scan_indexes_every_photo_with_metadata(tmp_path: Path, photos: Path) -> None:
    lib = _lib(tmp_path)
    result = _scan(lib, photos)
    assert (result.added, result.updated, result.removed, result.failed) == (4, 0, 0, [])
    rows = _rows(lib)
    assert set(rows) == {"a.jpg", os.path.join("été ☀", "IMG 2.JPG"), "b.png", "c.webp"}
    rotated = rows[os.path.join("été ☀", "IMG 2.JPG")]
    assert (rotated.width, rotated.height, rotated.orientation) == (300, 400, 6)
    a = rows["a.jpg"]
    assert a.camera == "Canon EOS 5D"
    assert a.sha256 and len(a.sha256) == 64 and a.phash and len(a.phash) == 16
    assert a.inode == (photos / "a.jpg").stat().st_ino


def test_rescan_reads_nothing_when_nothing_changed(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = _lib(tmp_path)
    _scan(lib, photos)

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("an unchanged file was read")

    monkeypatch.setattr(scanner, "read_info", forbidden)
    monkeypatch.setattr(scanner, "sha256_file", forbidden)
    result = _scan(lib, photos)
    assert (result.added, result.updated, result.removed, result.unchanged) == (0, 0, 0, 4)


def test_changed_added_and_deleted_files_are_picked_up(tmp_path: Path, photos: Path) -> None:
    lib = _lib(tmp_path)
    _scan(lib, photos)
    old_sha = _rows(lib)["a.jpg"].sha256
    imagegen.save_jpeg(photos / "a.jpg", seed=9)
    os.utime(photos / "a.jpg", ns=(1, 1_000_000_000))
    (photos / "b.png").unlink()
    imagegen.save_as(photos / "new.gif", "GIF", seed=6)
    result = _scan(lib, photos)
    assert (result.added, result.updated, result.removed, result.unchanged) == (1, 1, 1, 2)
    rows = _rows(lib)
    assert "b.png" not in rows and "new.gif" in rows
    assert rows["a.jpg"].sha256 != old_sha


@pytest.mark.parametrize("rows_first", [True, False], ids=["rows-first", "walk-first"])
def test_rescan_diff_is_the_same_whichever_finishes_first_rows_or_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows_first: bool
) -> None:
    """The folder's rows are read on a second thread while the walk runs; directories
    walked before they arrive are diffed afterwards, the rest as they come."""
    import threading

    root = tmp_path / "many"
    for d in range(4):
        for i in range(3):
            imagegen.save_jpeg(root / f"d{d}" / f"p{i}.jpg", seed=10 * d + i, size=(64, 48))
    lib = _lib(tmp_path)
    _scan(lib, root)
    imagegen.save_jpeg(root / "d0" / "p0.jpg", seed=99, size=(64, 48))
    os.utime(root / "d0" / "p0.jpg", ns=(1, 1_000_000_000))  # changed, first dir
    (root / "d3" / "p2.jpg").unlink()  # gone, last dir
    imagegen.save_jpeg(root / "d2" / "new.jpg", seed=77, size=(64, 48))  # added

    rows_read = threading.Event()
    real_rows, real_walk = scanner._known_rows, scanner.walk_folder

    def rows(*args: object) -> object:
        if not rows_first:  # held back until the whole tree has been walked
            assert walk_done.wait(10)
        out = real_rows(*args)  # type: ignore[arg-type]
        rows_read.set()
        return out

    walk_done = threading.Event()

    def walk(*args: object) -> object:
        for n, batch in enumerate(real_walk(*args)):  # type: ignore[arg-type]
            if rows_first and n == 1:  # the rows arrive after the first directory
                assert rows_read.wait(10)
            yield batch
        walk_done.set()

    monkeypatch.setattr(scanner, "_known_rows", rows)
    monkeypatch.setattr(scanner, "walk_folder", walk)
    result = _scan(lib)
    assert (result.added, result.updated, result.removed, result.unchanged) == (1, 1, 1, 10)
    assert os.path.join("d3", "p2.jpg") not in _rows(lib)


def test_bad_files_are_recorded_with_reasons_and_the_scan_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    imagegen.save_jpeg(root / "good.jpg", seed=1)
    bad = imagegen.bad_files(root)
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    (root / "loop").symlink_to(root)  # a directory symlink back to the root
    (root / "self.jpg").symlink_to(root / "self.jpg")
    (root / "folder.jpg").mkdir()
    imagegen.save_jpeg(root / "folder.jpg" / "inside.jpg", seed=2)
    lib = _lib(tmp_path)
    result = _scan(lib, root)
    failed = dict(result.failed)
    for name in bad:
        assert str(root / name) in failed, name
    assert "empty" in failed[str(root / "empty.jpg")]
    assert "large" in failed[str(root / "bomb.png")] or "bomb" in failed[str(root / "bomb.png")]
    assert "symbolic link" in failed[str(root / "dangling.jpg")]
    assert "symbolic link" in failed[str(root / "self.jpg")]
    ok = {r for r, row in _rows(lib).items() if row.status == "ok"}
    assert ok == {"good.jpg", os.path.join("folder.jpg", "inside.jpg")}
    # The loop is entered at most once: no photo appears under loop/.
    assert not any(r.startswith("loop") for r in _rows(lib))
    again = _scan(lib, root)
    assert (again.added, again.updated) == (0, 0)
    assert dict(again.failed) == failed


def test_a_missing_folder_never_empties_the_library(tmp_path: Path, photos: Path) -> None:
    lib = _lib(tmp_path)
    _scan(lib, photos)
    moved = tmp_path / "elsewhere"
    shutil.move(photos, moved)  # like an unplugged drive
    result = drive(lib.scan(embed=False))
    assert result.removed == 0
    assert any("not available" in w for w in result.warnings)
    assert len(_rows(lib)) == 4


def test_unreadable_subfolder_keeps_its_rows(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = _lib(tmp_path)
    _scan(lib, photos)
    real_scandir = os.scandir

    def failing_scandir(path: str) -> object:
        if str(path).endswith("été ☀"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(scanner.os, "scandir", failing_scandir)
    result = _scan(lib, photos)
    assert result.removed == 0
    assert any("could not list" in w for w in result.warnings)


def test_nested_registered_folders_do_not_index_a_file_twice(tmp_path: Path, photos: Path) -> None:
    lib = _lib(tmp_path)
    _scan(lib, photos / "été ☀")
    _scan(lib, photos)
    with lib.sessions() as session:
        assert len(session.scalars(select(db.ImageRow)).all()) == 4


def test_cancel_keeps_what_was_done_and_a_rescan_finishes(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(30):
        imagegen.save_jpeg(root / f"{i:02}.jpg", seed=i, size=(64, 48))
    lib = _lib(tmp_path)
    cancel = CancelToken()
    job = lib.scan([str(root)], embed=False, cancel=cancel)
    steps: list[Progress] = []

    def stop_after_some(step: Progress) -> None:
        steps.append(step)
        if step.phase == "index" and step.done == 5:
            cancel.cancel()

    result = drive(job, stop_after_some)
    assert result.cancelled and result.removed == 0
    assert 5 <= result.added < 30
    again = _scan(lib, root)
    assert again.added + result.added == 30 and not again.cancelled
    assert any(s.total == 30 for s in steps if s.phase == "index")


@pytest.mark.skipif(os.name != "posix", reason="file names that are not UTF-8 need POSIX")
def test_rescan_of_names_that_are_not_utf8_finds_them_unchanged(tmp_path: Path) -> None:
    """A rescan reads the folder's rows in one raw query; names stored as bytes
    (not valid UTF-8) must match the walk's names again, not look new and gone."""
    root = tmp_path / "bytes"
    root.mkdir()
    try:
        name = os.fsdecode(b"caf\xe9 \xff.jpg")
        imagegen.save_jpeg(root / name, seed=1)
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    imagegen.save_jpeg(root / "plain.jpg", seed=2)
    lib = _lib(tmp_path)
    assert _scan(lib, root).added == 2
    again = _scan(lib)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 2)
    assert name in _rows(lib)
