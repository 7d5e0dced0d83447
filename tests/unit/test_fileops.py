"""fileops: journaled trash / move with undo; never overwrites, never loses a file.

Every test works in tmp_path and checks the bytes after. The system trash used is
the one under tmp_path: tests/conftest.py points XDG_DATA_HOME and HOME there,
so Send2Trash sees the files on the "home" device and never reaches a real
trash folder.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dino_desktop.core import db, placing, trash
from dino_desktop.core.fileops import FileOps
from dino_desktop.core.records import FileOpError, ReferenceFolderError

pytestmark = pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="exercises the freedesktop.org trash"
)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = db.open_engine(tmp_path / "lib.sqlite3")
    yield db.session_factory(engine)
    engine.dispose()


@pytest.fixture
def ops(sessions: sessionmaker[Session]) -> FileOps:
    return FileOps(sessions)


@pytest.fixture
def trash_dir(tmp_path: Path) -> Path:
    return tmp_path / "xdg-data" / "Trash"


def _write(path: Path, seed: int, size: int = 3000) -> bytes:
    data = bytes((seed * 31 + i * 7 + (i >> 8)) % 256 for i in range(size))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def _add_folder(sessions: sessionmaker[Session], path: Path, *, reference: bool = False) -> int:
    with sessions() as session, session.begin():
        folder = db.Folder(
            path=os.path.realpath(path), is_reference=reference, added_at=datetime.now()
        )
        session.add(folder)
        session.flush()
        return folder.id


def _add_image(sessions: sessionmaker[Session], folder_id: int, relpath: str) -> int:
    with sessions() as session, session.begin():
        row = db.ImageRow(
            folder_id=folder_id,
            relpath=relpath,
            size=1,
            mtime_ns=1,
            status="ok",
            scanned_at=datetime.now(),
        )
        session.add(row)
        session.flush()
        return row.id


def _payload(sessions: sessionmaker[Session], journal_id: int) -> dict[str, Any]:
    with sessions() as session:
        row = session.get(db.JournalRow, journal_id)
        assert row is not None
        return json.loads(row.payload)  # type: ignore[no-any-return]


def _undone(sessions: sessionmaker[Session], journal_id: int) -> bool:
    with sessions() as session:
        row = session.get(db.JournalRow, journal_id)
        assert row is not None
        return row.undone_at is not None


def _journal_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(db.JournalRow)) or 0


# ---- trash ---------------------------------------------------------------------


def test_trash_then_undo_restores_identical_bytes(
    ops: FileOps, tmp_path: Path, trash_dir: Path
) -> None:
    photo = tmp_path / "photos" / "a.jpg"
    data = _write(photo, 1)
    result = ops.trash([str(photo)])
    assert result.done == [str(photo)] and result.failed == []
    assert not photo.exists()

    undone = ops.undo()
    assert undone.journal_id == result.journal_id
    assert undone.done == [str(photo)] and undone.failed == [] and undone.notes == []
    assert photo.read_bytes() == data
    assert list((trash_dir / "files").iterdir()) == []
    assert list((trash_dir / "info").iterdir()) == []


def test_trash_reports_where_the_file_went(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path, trash_dir: Path
) -> None:
    photo = tmp_path / "photos" / "été 1.jpg"
    data = _write(photo, 2)
    result = ops.trash([str(photo)])
    assert not os.path.lexists(photo)
    [(src, trashed)] = result.moved
    assert src == str(photo) and Path(trashed) == trash_dir / "files" / "été 1.jpg"
    assert Path(trashed).read_bytes() == data

    item = _payload(sessions, result.journal_id)["items"][0]
    assert item["status"] == "done" and item["dest"] == trashed
    info = Path(item["info"]).read_text()
    assert "Path=" in info and "DeletionDate=" in info


def test_trash_of_a_missing_file_fails_alone(ops: FileOps, tmp_path: Path) -> None:
    a, b = tmp_path / "p" / "a.jpg", tmp_path / "p" / "b.jpg"
    _write(a, 1)
    result = ops.trash([str(tmp_path / "p" / "gone.jpg"), str(a)])
    assert result.done == [str(a)]
    assert result.failed == [(str(tmp_path / "p" / "gone.jpg"), "no such file")]
    assert not a.exists() and not b.exists()


def test_trash_of_a_folder_is_refused_per_item(ops: FileOps, tmp_path: Path) -> None:
    folder = tmp_path / "p" / "sub"
    data = _write(folder / "x.jpg", 3)
    result = ops.trash([str(folder)])
    assert result.done == [] and result.failed[0][1].startswith("is a folder")
    assert (folder / "x.jpg").read_bytes() == data


def test_trash_that_reports_success_but_moves_nothing_is_a_failure(
    ops: FileOps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = tmp_path / "a.jpg"
    data = _write(photo, 4)
    monkeypatch.setattr(trash, "send_to_trash", lambda path: None)
    result = ops.trash([str(photo)])
    assert result.done == []
    assert "still there" in result.failed[0][1]
    assert photo.read_bytes() == data


def test_trash_uses_the_current_xdg_data_home_not_the_one_seen_at_import(
    ops: FileOps, tmp_path: Path, trash_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Send2Trash computes its home trash once, at import; simulate an import
    # made under another environment.
    from send2trash import plat_other

    stale = tmp_path / "stale"
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(stale))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(stale / "Trash"))
    monkeypatch.setattr(plat_other, "HOMETRASH", str(stale / "Trash"))
    photo = tmp_path / "a.jpg"
    _write(photo, 5)
    result = ops.trash([str(photo)])
    assert result.done == [str(photo)]
    assert (trash_dir / "files" / "a.jpg").exists()
    assert not stale.exists()


def test_same_name_trashed_twice_undoes_in_either_order(
    ops: FileOps, tmp_path: Path, trash_dir: Path
) -> None:
    photo = tmp_path / "p" / "a.jpg"
    first = _write(photo, 6)
    r1 = ops.trash([str(photo)])
    second = _write(photo, 7, size=2000)
    r2 = ops.trash([str(photo)])
    assert len(list((trash_dir / "files").iterdir())) == 2
    assert r1.moved[0][1] != r2.moved[0][1]

    ops.undo(r1.journal_id)
    assert photo.read_bytes() == first
    # The path is taken now: the second file comes back next to it.
    back = ops.undo(r2.journal_id)
    alongside = tmp_path / "p" / "a (1).jpg"
    assert back.done == [str(alongside)] and "a (1).jpg" in back.notes[0]
    assert photo.read_bytes() == first and alongside.read_bytes() == second


def test_a_trashed_file_is_found_without_listing_a_big_trash(
    ops: FileOps, tmp_path: Path, trash_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A trash with many entries (other files, and two with the same name): the
    # file is found by the names Send2Trash gives, not by reading every entry,
    # so a removal of thousands of files does not grow with the trash's size.
    for i in range(50):
        _write(tmp_path / "other" / f"x{i}.jpg", i)
    ops.trash([str(tmp_path / "other" / f"x{i}.jpg") for i in range(50)])
    photo = tmp_path / "p" / "a.jpg"
    for seed in (1, 2):
        _write(photo, seed)
        ops.trash([str(photo)])
    data = _write(photo, 3, size=3000)
    st = photo.stat()
    ident = trash.Identity(st.st_dev, st.st_ino, st.st_size)
    trash.send_to_trash(str(photo))

    def no_listing(path: object) -> None:
        raise AssertionError(f"listed {path}")

    monkeypatch.setattr(trash.os, "scandir", no_listing)
    found = trash.find_in_trash(str(photo), ident, trash.trash_dirs(str(tmp_path / "p")))
    assert found is not None
    assert found[0] == str(trash_dir / "files" / "a 2.jpg")
    assert Path(found[0]).read_bytes() == data


def test_trash_and_undo_a_name_that_is_not_utf8(ops: FileOps, tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    path = os.path.join(os.fsdecode(folder), os.fsdecode(b"caf\xe9 %41.jpg"))
    with open(path, "wb") as f:
        f.write(b"latin-1 name")
    result = ops.trash([path])
    assert result.done == [path] and not os.path.lexists(path)
    assert ops.undo().done == [path]
    with open(path, "rb") as f:
        assert f.read() == b"latin-1 name"


def test_journal_entry_is_committed_before_the_trash_is_touched(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = tmp_path / "a.jpg"
    data = _write(photo, 8)
    seen: list[dict[str, Any]] = []

    def failing_trash(path: str) -> None:
        # Another session sees the entry: it is committed, not just flushed.
        with sessions() as session:
            row = session.scalars(select(db.JournalRow)).one()
            assert row.action == "trash"
            seen.append(json.loads(row.payload))
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(trash, "send_to_trash", failing_trash)
    result = ops.trash([str(photo)])
    assert seen[0]["status"] == "pending"
    st = photo.lstat()
    assert seen[0]["items"] == [
        {
            "src": str(photo),
            "dest": None,
            "status": "pending",
            "reason": None,
            # What undo finds the file by after a crash (test_crash_safety.py).
            "src_ident": [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, None],
        }
    ]
    assert result.failed == [(str(photo), "permission denied")]
    assert photo.read_bytes() == data
    item = _payload(sessions, result.journal_id)["items"][0]
    assert (item["status"], item["reason"]) == ("failed", "permission denied")


def test_an_interruption_leaves_a_journal_that_says_what_happened(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    data_a, data_b = _write(a, 9), _write(b, 10)
    real = trash.send_to_trash

    def crash_on_b(path: str) -> None:
        if path == str(b):
            raise KeyboardInterrupt
        real(path)

    monkeypatch.setattr(trash, "send_to_trash", crash_on_b)
    with pytest.raises(KeyboardInterrupt):
        ops.trash([str(a), str(b)])
    assert _journal_count(sessions) == 1
    payload = _payload(sessions, 1)
    assert payload["status"] == "pending"
    assert [it["status"] for it in payload["items"]] == ["done", "pending"]
    assert b.read_bytes() == data_b

    result = ops.undo()
    assert result.done == [str(a)] and a.read_bytes() == data_a
    # b was never trashed: undo sees it at its place and leaves it (no failure).
    assert result.failed == [] and b.read_bytes() == data_b
    payload = _payload(sessions, 1)
    # Settled from the disk before the undo: told apart from an entry that finished.
    assert payload["status"] == "interrupted"
    assert payload["items"][1]["status"] == "skipped"


def test_trash_forgets_the_image_rows_and_their_embeddings(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    _write(root / "sub" / "a.jpg", 11)
    _write(root / "b.jpg", 12)
    folder_id = _add_folder(sessions, root)
    a_id = _add_image(sessions, folder_id, os.path.join("sub", "a.jpg"))
    b_id = _add_image(sessions, folder_id, "b.jpg")
    with sessions() as session, session.begin():
        model = db.ModelRow(name="m", weights_sha256="0" * 64, dim=2, image_size=224)
        session.add(model)
        session.flush()
        session.add_all(
            [db.Embedding(image_id=i, model_id=model.id, vector=b"\0" * 8) for i in (a_id, b_id)]
        )

    ops.trash([str(root / "sub" / "a.jpg")])
    with sessions() as session:
        assert list(session.scalars(select(db.ImageRow.id))) == [b_id]
        assert list(session.scalars(select(db.Embedding.image_id))) == [b_id]


def test_a_move_inside_the_library_keeps_the_row_and_undo_brings_it_back(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """A photo moved between library folders keeps its row and embedding (no re-embed);
    moved out of the library it is forgotten; undo follows it back."""
    root, other, outside = tmp_path / "photos", tmp_path / "sorted", tmp_path / "outside"
    _write(root / "a.jpg", 21)
    _write(root / "b.jpg", 22)
    other.mkdir()
    outside.mkdir()
    folder_id = _add_folder(sessions, root)
    other_id = _add_folder(sessions, other)
    a_id = _add_image(sessions, folder_id, "a.jpg")
    b_id = _add_image(sessions, folder_id, "b.jpg")

    def where(image_id: int) -> tuple[int, str] | None:
        with sessions() as session:
            row = session.get(db.ImageRow, image_id)
            return None if row is None else (row.folder_id, row.relpath)

    ops.move([str(root / "a.jpg")], str(other))
    assert where(a_id) == (other_id, "a.jpg")
    ops.move([str(root / "b.jpg")], str(outside))
    assert where(b_id) is None  # left the library
    ops.undo()  # b comes back: a rescan finds it again
    ops.undo()
    assert where(a_id) == (folder_id, "a.jpg")
    assert (root / "a.jpg").exists() and (root / "b.jpg").exists()


# ---- reference folders -----------------------------------------------------------


def test_reference_folder_paths_are_refused_and_untouched(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ref = tmp_path / "archive"
    data = _write(ref / "a.jpg", 13)
    other = tmp_path / "loose.jpg"
    other_data = _write(other, 14)
    _add_folder(sessions, ref, reference=True)
    link = tmp_path / "link.jpg"
    link.symlink_to(ref / "a.jpg")
    dest = tmp_path / "dest"
    dest.mkdir()

    with pytest.raises(ReferenceFolderError, match="reference folder"):
        ops.trash([str(other), str(ref / "a.jpg")])
    with pytest.raises(ReferenceFolderError):
        ops.trash([str(link)])  # a symlink into a reference folder counts
    with pytest.raises(ReferenceFolderError):
        ops.move([str(ref / "a.jpg")], str(dest))
    with pytest.raises(ReferenceFolderError):
        ops.move([str(other)], str(ref))  # nor may anything be moved into one
    with pytest.raises(ReferenceFolderError):
        ops.trash([str(tmp_path)])  # a folder that holds one

    assert (ref / "a.jpg").read_bytes() == data and other.read_bytes() == other_data
    assert link.is_symlink() and os.listdir(ref) == ["a.jpg"] and os.listdir(dest) == []
    assert _journal_count(sessions) == 0  # refused before anything, journal included


def test_reference_folder_reached_through_a_symlinked_folder_is_refused(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ref = tmp_path / "archive"
    data = _write(ref / "a.jpg", 15)
    _add_folder(sessions, ref, reference=True)
    alias = tmp_path / "alias"
    alias.symlink_to(ref, target_is_directory=True)
    with pytest.raises(ReferenceFolderError):
        ops.trash([str(alias / "a.jpg")])
    assert (ref / "a.jpg").read_bytes() == data


def test_undo_into_a_folder_marked_reference_since_is_refused(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    _write(root / "a.jpg", 16)
    folder_id = _add_folder(sessions, root)
    result = ops.trash([str(root / "a.jpg")])
    with sessions() as session, session.begin():
        folder = session.get(db.Folder, folder_id)
        assert folder is not None
        folder.is_reference = True
    with pytest.raises(ReferenceFolderError):
        ops.undo()
    assert os.listdir(root) == [] and Path(result.moved[0][1]).exists()


# ---- move ----------------------------------------------------------------------


def test_move_with_name_collisions_never_overwrites(ops: FileOps, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    there = _write(dest / "a.jpg", 20)
    one = _write(tmp_path / "one" / "a.jpg", 21)
    two = _write(tmp_path / "two" / "a.jpg", 22)
    result = ops.move([str(tmp_path / "one" / "a.jpg"), str(tmp_path / "two" / "a.jpg")], str(dest))
    assert result.failed == []
    assert (dest / "a.jpg").read_bytes() == there
    assert (dest / "a (1).jpg").read_bytes() == one
    assert (dest / "a (2).jpg").read_bytes() == two
    assert result.moved == [
        (str(tmp_path / "one" / "a.jpg"), str(dest / "a (1).jpg")),
        (str(tmp_path / "two" / "a.jpg"), str(dest / "a (2).jpg")),
    ]
    assert len(result.notes) == 2
    assert not (tmp_path / "one" / "a.jpg").exists() and not (tmp_path / "two" / "a.jpg").exists()


def test_move_then_undo_restores_every_path(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    sources = [tmp_path / "src" / f"p{i}.jpg" for i in range(5)]
    data = [_write(p, 30 + i) for i, p in enumerate(sources)]
    dest = tmp_path / "dest"
    dest.mkdir()
    root_id = _add_folder(sessions, tmp_path / "src")
    _add_image(sessions, root_id, "p0.jpg")

    result = ops.move([str(p) for p in sources], str(dest))
    assert result.done == [str(p) for p in sources]
    assert sorted(os.listdir(dest)) == [p.name for p in sources]
    assert not any(p.exists() for p in sources)
    with sessions() as session:  # moved files' rows go; the next scan finds them
        assert session.scalar(select(func.count()).select_from(db.ImageRow)) == 0

    back = ops.undo()
    assert sorted(back.done) == sorted(str(p) for p in sources) and back.failed == []
    assert [p.read_bytes() for p in sources] == data
    assert os.listdir(dest) == []


def test_move_across_devices_copies_durably_and_never_overwrites(
    ops: FileOps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str, **kw: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    dest = tmp_path / "dest"
    there = _write(dest / "a.jpg", 40)
    src = tmp_path / "src" / "a.jpg"
    data = _write(src, 41)
    os.utime(src, ns=(1_000_000_000, 1_500_000_000))
    result = ops.move([str(src)], str(dest))
    assert result.moved == [(str(src), str(dest / "a (1).jpg"))]
    assert (dest / "a.jpg").read_bytes() == there
    assert (dest / "a (1).jpg").read_bytes() == data
    assert (dest / "a (1).jpg").stat().st_mtime_ns == 1_500_000_000
    assert not src.exists()
    assert sorted(os.listdir(dest)) == ["a (1).jpg", "a.jpg"]  # no temporary left over

    ops.undo()
    assert src.read_bytes() == data and os.listdir(dest) == ["a.jpg"]


def test_move_keeps_the_source_when_it_cannot_be_removed(
    ops: FileOps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src" / "a.jpg"
    data = _write(src, 42)
    dest = tmp_path / "dest"
    dest.mkdir()
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, **kw: Any) -> None:
        if os.fspath(path) == str(src):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, *args, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    result = ops.move([str(src)], str(dest))
    assert result.done == [] and result.failed == [(str(src), "permission denied")]
    assert src.read_bytes() == data and os.listdir(dest) == []


def test_move_of_a_symlink_moves_the_link(ops: FileOps, tmp_path: Path) -> None:
    target = tmp_path / "t.jpg"
    data = _write(target, 43)
    link = tmp_path / "src" / "l.jpg"
    link.parent.mkdir()
    link.symlink_to(target)
    dest = tmp_path / "dest"
    dest.mkdir()
    ops.move([str(link)], str(dest))
    assert (dest / "l.jpg").is_symlink() and (dest / "l.jpg").read_bytes() == data
    assert not os.path.lexists(link) and target.read_bytes() == data


def test_move_refusals(ops: FileOps, tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    data = _write(src, 44)
    with pytest.raises(FileOpError, match="not a folder"):
        ops.move([str(src)], str(tmp_path / "nowhere"))
    with pytest.raises(FileOpError, match="no files"):
        ops.move([], str(tmp_path))
    result = ops.move([str(src), str(tmp_path / "missing.jpg")], str(tmp_path))
    assert result.failed == [
        (str(src), "already in that folder"),
        (str(tmp_path / "missing.jpg"), "no such file"),
    ]
    assert src.read_bytes() == data


# ---- undo ----------------------------------------------------------------------


def test_undo_twice_is_refused(ops: FileOps, tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    data = _write(photo, 50)
    result = ops.trash([str(photo)])
    ops.undo(result.journal_id)
    with pytest.raises(FileOpError, match="already undone"):
        ops.undo(result.journal_id)
    with pytest.raises(FileOpError, match="nothing to undo"):
        ops.undo()
    with pytest.raises(FileOpError, match="no file operation #99"):
        ops.undo(99)
    assert photo.read_bytes() == data


def test_undo_with_the_original_path_occupied_restores_alongside(
    ops: FileOps, tmp_path: Path
) -> None:
    photo = tmp_path / "p" / "a.jpg"
    old = _write(photo, 51)
    ops.trash([str(photo)])
    new = _write(photo, 52)
    result = ops.undo()
    alongside = tmp_path / "p" / "a (1).jpg"
    assert result.done == [str(alongside)]
    assert result.notes == [f"{photo} was taken; restored as a (1).jpg"]
    assert photo.read_bytes() == new and alongside.read_bytes() == old


def test_undo_picks_the_latest_entry_not_undone(ops: FileOps, tmp_path: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    _write(a, 53)
    _write(b, 54)
    r1 = ops.trash([str(a)])
    r2 = ops.trash([str(b)])
    assert ops.undo().journal_id == r2.journal_id and b.exists() and not a.exists()
    assert ops.undo().journal_id == r1.journal_id and a.exists()


def test_undo_recreates_a_vanished_folder(ops: FileOps, tmp_path: Path) -> None:
    photo = tmp_path / "gone" / "a.jpg"
    data = _write(photo, 55)
    ops.trash([str(photo)])
    os.rmdir(tmp_path / "gone")
    ops.undo()
    assert photo.read_bytes() == data


def test_undo_of_a_move_leaves_a_replaced_file_alone(ops: FileOps, tmp_path: Path) -> None:
    src = tmp_path / "src" / "a.jpg"
    _write(src, 56)
    dest = tmp_path / "dest"
    dest.mkdir()
    ops.move([str(src)], str(dest))
    (dest / "a.jpg").unlink()
    other = _write(dest / "a.jpg", 57)  # a different file under the same name
    result = ops.undo()
    assert result.done == [] and "replaced or changed" in result.failed[0][1]
    assert (dest / "a.jpg").read_bytes() == other and not src.exists()


def test_undo_of_a_file_emptied_from_the_trash_says_so(
    ops: FileOps, tmp_path: Path, trash_dir: Path
) -> None:
    photo = tmp_path / "a.jpg"
    _write(photo, 58)
    result = ops.trash([str(photo)])
    Path(result.moved[0][1]).unlink()  # the user emptied the trash
    undone = ops.undo()
    assert undone.done == [] and "no longer in the trash" in undone.failed[0][1]
    with pytest.raises(FileOpError, match="already undone"):
        ops.undo(result.journal_id)


def test_undo_of_a_trash_whose_place_is_unknown_says_where_to_look(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    # What a macOS / Windows entry looks like: trashed, location not exposed.
    payload = {
        "version": 1,
        "status": "done",
        "items": [{"src": str(tmp_path / "a.jpg"), "dest": None, "status": "done"}],
    }
    with sessions() as session, session.begin():
        session.add(
            db.JournalRow(created_at=datetime.now(), action="trash", payload=json.dumps(payload))
        )
    with pytest.raises(FileOpError, match="restore it from the system trash"):
        ops.undo()


def test_a_failed_trash_leaves_no_broken_trash_entry(
    ops: FileOps, tmp_path: Path, trash_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Send2Trash writes the .trashinfo first, then renames; make the rename fail.
    photo = tmp_path / "a.jpg"
    data = _write(photo, 62)
    real_rename = os.rename

    def rename(src: Any, dst: Any, *args: Any, **kw: Any) -> None:
        if os.fsdecode(src) == str(photo):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(src))
        real_rename(src, dst, *args, **kw)

    monkeypatch.setattr(os, "rename", rename)
    result = ops.trash([str(photo)])
    assert result.failed == [(str(photo), "permission denied")]
    assert photo.read_bytes() == data
    assert list((trash_dir / "info").iterdir()) == []


def test_an_undo_that_fails_for_a_passing_reason_can_be_retried(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "p" / "a.jpg", tmp_path / "p" / "b.jpg"
    data_a, data_b = _write(a, 63), _write(b, 64)
    result = ops.trash([str(a), str(b)])
    real_place = placing.place

    def place(src: str, dest_dir: str, name: str, tag: str = "x") -> str:
        if name == "b.jpg":
            raise PermissionError(errno.EACCES, "Permission denied", dest_dir)
        return real_place(src, dest_dir, name, tag)

    monkeypatch.setattr(placing, "place", place)
    first = ops.undo()
    assert first.done == [str(a)] and first.failed == [(str(b), "permission denied")]
    assert not _undone(sessions, result.journal_id)

    monkeypatch.setattr(placing, "place", real_place)
    second = ops.undo(result.journal_id)
    assert second.done == [str(b)] and second.failed == []
    assert a.read_bytes() == data_a and b.read_bytes() == data_b
    assert _undone(sessions, result.journal_id)


def test_undo_of_an_export_killed_between_journal_saves_removes_exactly_what_it_wrote(
    ops: FileOps, sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after a SIGKILL: the journal never heard of the file written. Undo finds it by
    content past a byte-identical copy that was there before (journaled as taken),
    leaves that one, and leaves a look-alike past the first free name of the item
    that was never begun. The entry then says "interrupted", and is undone."""
    a, b = tmp_path / "src" / "a.jpg", tmp_path / "src" / "b.jpg"
    data_a, data_b = _write(a, 70), _write(b, 71)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.jpg").write_bytes(data_a)  # an earlier export's copy, planned over
    (dest / "b (1).jpg").write_bytes(data_b)  # a copy beyond b's first free name
    real_export_one = FileOps._export_one

    def killed_at_b(self: FileOps, it: dict[str, Any], mode: str, *tag: str) -> str | None:
        if it["src"] == str(b):
            raise KeyboardInterrupt  # the kill, before b is begun
        return real_export_one(self, it, mode, *tag)

    monkeypatch.setattr(FileOps, "_export_one", killed_at_b)
    monkeypatch.setattr(FileOps, "_save", lambda *_a, **_k: None)  # no batch reached the DB
    with pytest.raises(KeyboardInterrupt):
        ops.export([(str(a), str(dest / "a.jpg")), (str(b), str(dest / "b.jpg"))], "copy")
    monkeypatch.undo()
    assert (dest / "a (1).jpg").read_bytes() == data_a  # written, but not journaled
    assert [it["status"] for it in _payload(sessions, 1)["items"]] == ["pending", "pending"]

    result = ops.undo()
    assert result.done == [str(dest / "a (1).jpg")] and result.failed == []
    assert sorted(p.name for p in dest.iterdir()) == ["a.jpg", "b (1).jpg"]
    assert (dest / "a.jpg").read_bytes() == data_a and (dest / "b (1).jpg").read_bytes() == data_b
    assert a.read_bytes() == data_a and b.read_bytes() == data_b
    payload = _payload(sessions, 1)
    assert payload["status"] == "interrupted"
    assert [it["status"] for it in payload["items"]] == ["done", "skipped"]
    assert _undone(sessions, 1)
    with pytest.raises(FileOpError, match="nothing to undo"):
        ops.undo()
