"""Library folder roots mapped per client (core/roots.py): a share mounted at different
paths on different machines is one library folder, each machine reading its own paths."""

from __future__ import annotations

import json
import ntpath
import os
import shutil
from pathlib import Path

import imagegen
import pytest
from sqlalchemy import create_engine, text

from dino_desktop.cli import main
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryError
from dino_desktop.core.roots import RootMap


def test_a_stored_root_maps_to_this_machine_and_back() -> None:
    roots = RootMap.of({"/mnt/nas": "/Volumes/nas", "/mnt/nas/studio": "/srv/studio"})
    assert roots.to_local("/mnt/nas/photos/2024") == os.path.join("/Volumes/nas", "photos", "2024")
    assert roots.to_local("/mnt/nas/studio/x") == os.path.join("/srv/studio", "x")  # longest
    assert roots.to_local("/mnt/nas") == "/Volumes/nas"
    assert roots.to_local("/mnt/nas2/photos") == "/mnt/nas2/photos"  # not below /mnt/nas
    assert roots.to_stored(os.path.join("/Volumes/nas", "photos")) == "/mnt/nas/photos"
    assert roots.to_stored("/elsewhere/photos") == "/elsewhere/photos"
    assert roots.maps("/mnt/nas/photos") and not roots.maps("/mnt/nas2")


def test_a_windows_root_keeps_its_backslashes_when_stored() -> None:
    """A folder a Windows desktop added (P:\\photos) read on Linux, and what Linux adds
    below its mount stored the Windows way, so the Windows desktop finds it."""
    roots = RootMap.of({"P:\\photos": "/mnt/photos"})
    assert roots.to_local("P:\\photos\\2024\\June") == os.path.join("/mnt/photos", "2024", "June")
    assert roots.to_stored(os.path.join("/mnt/photos", "2025")) == ntpath.join("P:\\photos", "2025")


def _stored_folders(url: str) -> list[str]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        paths = conn.execute(text("SELECT path FROM folders ORDER BY path")).scalars().all()
    engine.dispose()
    return list(paths)


def test_two_machines_reach_one_share_at_different_paths(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine A adds the share as it mounts it; machine B mounts the same photos
    elsewhere, maps A's root to its own path, and browses, rescans and adds photos
    there: one folder row, no duplicate or lost photo, each machine its own paths."""
    share_a = tmp_path / "a-mnt" / "photos"
    (share_a / "2024").mkdir(parents=True)
    for i in range(5):
        imagegen.save_jpeg(share_a / "2024" / f"IMG_{i}.jpg", seed=i, size=(64, 48))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "machine-a"))
    with Library(pg_url) as a:
        drive(a.scan([share_a], embed=False))
        a_paths = sorted(p.path for p in a.photos())
    stored = os.path.realpath(share_a)
    assert _stored_folders(pg_url) == [stored]

    # Machine B: the same files at another mount point (a copy, mtimes kept), and
    # A's mount point not there at all.
    share_b = tmp_path / "b-mnt" / "photos"
    shutil.copytree(share_a, share_b)
    shutil.rmtree(tmp_path / "a-mnt")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "machine-b"))
    with Library(pg_url) as b:
        (folder,) = b.folders()
        assert folder.offline and "roots map" in folder.offline and stored in folder.offline
        with pytest.raises(LibraryError, match="no library folder is stored under"):
            b.map_root("/mnt/somewhere-else", share_b)
        with pytest.raises(LibraryError, match="not a folder"):
            b.map_root(stored, tmp_path / "missing")
        b.map_root(stored, share_b)
        (folder,) = b.folders()
        assert folder.path == os.path.realpath(share_b) and folder.offline is None
        b_paths = sorted(p.path for p in b.photos())
        assert b_paths == [p.replace(stored, os.path.realpath(share_b)) for p in a_paths]
        assert all(os.path.isfile(p) for p in b_paths)
        again = drive(b.scan([share_b], embed=False))
        assert (again.added, again.removed) == (0, 0)
        imagegen.save_jpeg(share_b / "2024" / "IMG_new.jpg", seed=9, size=(64, 48))
        assert drive(b.scan([share_b], embed=False)).added == 1
        assert len(b.folders()) == 1
    assert _stored_folders(pg_url) == [stored]

    # The mapping is B's alone: A (its own settings) still reads its own paths.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "machine-a"))
    with Library(pg_url) as a:
        assert a.roots().pairs == ()
        paths = sorted(p.path for p in a.photos())
        assert paths == sorted([*a_paths, os.path.join(stored, "2024", "IMG_new.jpg")])
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "machine-b"))
    with Library(pg_url) as b:  # kept in B's settings for its next start
        assert b.roots().pairs == ((stored, os.path.realpath(share_b)),)
        b.unmap_root(stored)
        assert b.folders()[0].path == stored


def test_the_roots_command_maps_and_lists(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    share = tmp_path / "share"
    imagegen.save_jpeg(share / "a.jpg", seed=1, size=(64, 48))
    base = ["--library", pg_url]
    assert main([*base, "scan", str(share), "--no-embed", "--json"]) == 0
    here = tmp_path / "here"
    shutil.copytree(share, here)
    capsys.readouterr()
    stored = os.path.realpath(share)
    assert main([*base, "roots", "map", stored, str(here), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["roots"] == [{"stored": stored, "local": os.path.realpath(here)}]
    assert out["folders"] == [{"stored": stored, "path": os.path.realpath(here), "offline": None}]
    assert main([*base, "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [it["path"] for it in listed] == [os.path.join(os.path.realpath(here), "a.jpg")]
    assert main([*base, "roots", "unmap", "/not/mapped"]) == 1
    assert "is not mapped on this computer" in capsys.readouterr().err
    assert main([*base, "roots", "unmap", stored]) == 0
    assert f"{stored}\n" in capsys.readouterr().out
