"""Drives that come and go, and folders re-pointed after a move (core/volumes.py,
core/relocate.py): an offline folder keeps every row; relocate keeps every row."""

from __future__ import annotations

import json
import os
from pathlib import Path

import imagegen
import pytest
import weightsgen
from sqlalchemy import select

from dino_desktop import cli
from dino_desktop.core import db, volumes
from dino_desktop.core import thumbnails as thumbs
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryError


def _lib(tmp_path: Path, weights: Path | None = None) -> Library:
    lib: Library = weightsgen.tiny_library(tmp_path, weights)
    return lib


def _photos(root: Path, n: int = 3) -> Path:
    for i in range(n):
        imagegen.save_jpeg(root / "sub" / f"p{i}.jpg", seed=i, size=(64, 48))
    return root


def _vectors(lib: Library) -> dict[int, bytes]:
    with lib.sessions() as session:
        return {e.image_id: e.vector for e in session.scalars(select(db.Embedding))}


def test_a_missing_folder_is_offline_and_keeps_every_row_searchable(
    tmp_path: Path, tiny_weights: Path
) -> None:
    root = _photos(tmp_path / "usb" / "Photos")
    lib = _lib(tmp_path, tiny_weights)
    drive(lib.scan([root]))
    (tmp_path / "usb").rename(tmp_path / "elsewhere")
    result = drive(lib.scan())
    assert result.offline == [str(root)] and result.removed == 0
    info = lib.folders()[0]
    assert info.offline and "not available" in info.offline and info.images == 3
    hits = lib.search(tmp_path / "elsewhere" / "Photos" / "sub" / "p1.jpg", top=3)
    assert hits[0].path == str(root / "sub" / "p1.jpg") and all(h.offline for h in hits)
    (tmp_path / "elsewhere").rename(tmp_path / "usb")
    back = drive(lib.scan())
    assert (back.offline, back.unchanged, back.added, back.embedded) == ([], 3, 0, 0)
    assert lib.folders()[0].offline is None
    assert not lib.search(root / "sub" / "p1.jpg", top=1)[0].offline


def test_an_empty_mount_point_is_offline_not_emptied(tmp_path: Path) -> None:
    root = _photos(tmp_path / "nas")
    lib = _lib(tmp_path)
    drive(lib.scan([root]))
    for p in (root / "sub").iterdir():
        p.unlink()
    (root / "sub").rmdir()  # what an unmounted share's mount point looks like
    result = drive(lib.scan())
    assert result.offline == [str(root)] and result.removed == 0
    assert "empty" in (lib.folders()[0].offline or "")
    assert lib.status().images == 3


def test_a_drive_no_longer_mounted_at_its_mount_point_is_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _photos(tmp_path / "media" / "DISK")
    lib = _lib(tmp_path)
    drive(lib.scan([root]))
    mount = str(tmp_path / "media")
    with lib.sessions() as session, session.begin():
        session.scalars(select(db.Folder)).one().mount = mount  # as if it were a mount
    # A folder under a mount point that is not a mount any more (the drive was
    # unplugged and something else is in the folder now) is not scanned.
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: False if p == mount else real_ismount(p))
    result = drive(lib.scan())
    assert result.offline == [str(root)]
    assert "not mounted" in (lib.folders()[0].offline or "")
    monkeypatch.setattr(os.path, "ismount", lambda p: True if p == mount else real_ismount(p))
    assert drive(lib.scan()).unchanged == 3


def test_same_drive_at_a_new_mount_point_is_offered_and_relocate_keeps_everything(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_mount, new_mount = tmp_path / "media" / "DISK", tmp_path / "media" / "DISK1"
    root = _photos(old_mount / "Photos")
    lib = _lib(tmp_path, tiny_weights)
    drive(lib.scan([root]))
    with lib.sessions() as session, session.begin():
        folder = session.scalars(select(db.Folder)).one()
        folder.volume, folder.volume_path, folder.mount = "uuid:ABCD-1234", "Photos", None
    ids = {r.path: r.id for r in lib.images()}
    vectors = _vectors(lib)
    run = drive(lib.cluster(2))
    label = lib.add_sort_label("cats")
    lib.label_photos(label.id, [ids[str(root / "sub" / "p0.jpg")]])
    st = os.stat(root / "sub" / "p0.jpg")
    thumbs.thumbnail_file(lib.paths.cache_dir, str(root / "sub" / "p0.jpg"), st.st_mtime_ns,
                          st.st_size)  # fmt: skip

    old_mount.rename(new_mount)
    monkeypatch.setattr(
        volumes, "find_volume", lambda vid: [str(new_mount)] if vid == "uuid:ABCD-1234" else []
    )
    info = lib.folders()[0]
    assert info.offline and info.same_drive_at == str(new_mount / "Photos")

    done = lib.relocate(root, info.same_drive_at)
    new_root = new_mount / "Photos"
    assert done.folders == [(str(root), str(new_root))] and done.photos == 3
    after = {r.path: r.id for r in lib.images()}
    assert after == {p.replace(str(root), str(new_root)): i for p, i in ids.items()}
    assert _vectors(lib) == vectors
    latest = lib.clusters()
    assert latest is not None and latest.id == run.id
    assert set(latest.paths.values()) == set(after)
    assert lib.label_examples(label.id)[0] == [ids[str(root / "sub" / "p0.jpg")]]
    assert thumbs.thumbnail_path(
        lib.paths.cache_dir, str(new_root / "sub" / "p0.jpg"), st.st_mtime_ns, st.st_size
    ).is_file()
    again = drive(lib.scan())
    assert (again.unchanged, again.added, again.removed, again.embedded) == (3, 0, 0, 0)
    assert lib.folders()[0].offline is None


def test_relocate_refuses_what_would_lose_or_double_photos(tmp_path: Path) -> None:
    root = _photos(tmp_path / "Photos")
    other = _photos(tmp_path / "Other", 1)
    lib = _lib(tmp_path)
    drive(lib.scan([root, other]))
    wrong = tmp_path / "Unrelated"
    wrong.mkdir()
    with pytest.raises(LibraryError, match="does not look like"):
        lib.relocate(root, wrong)
    with pytest.raises(LibraryError, match="already a library folder"):
        lib.relocate(root, other)
    with pytest.raises(LibraryError, match="not a library folder"):
        lib.relocate(tmp_path / "nope", wrong)
    with pytest.raises(LibraryError, match="not a folder"):
        lib.relocate(root, tmp_path / "missing")
    assert {f.path for f in lib.folders()} == {str(root), str(other)}


def test_relocate_moves_nested_folders_and_the_cli_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _photos(tmp_path / "Trip")
    nested = _photos(root / "Raw", 1)
    home = tmp_path / "lib"
    assert cli.main(["--library", str(home), "scan", str(root), str(nested), "--no-embed"]) == 0
    (tmp_path / "Trip").rename(tmp_path / "Lisbon")
    capsys.readouterr()
    assert cli.main(["--library", str(home), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert all(f["offline"] for f in status["folders"])
    code = cli.main(
        ["--library", str(home), "relocate", str(root), str(tmp_path / "Lisbon"), "--json"]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    lisbon = tmp_path / "Lisbon"
    assert out["photos"] == 4
    assert sorted((f["from"], f["to"]) for f in out["folders"]) == [
        (str(root), str(lisbon)),
        (str(nested), str(lisbon / "Raw")),
    ]
    assert cli.main(["--library", str(home), "scan", "--json", "--no-embed"]) == 0
    scan = json.loads(capsys.readouterr().out)
    assert (scan["unchanged"], scan["added"], scan["removed"], scan["offline"]) == (4, 0, 0, [])
    assert cli.main(["--library", str(home), "relocate", str(root), str(lisbon)]) == 1
    assert "not a library folder" in capsys.readouterr().err
