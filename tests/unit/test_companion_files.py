"""Companion files end to end: scanned as one photo item, moved as one by every file
operation (trash, move, export in every mode, undo), never split, never lost.

The folder is what a camera and a phone owner really have: RAW+JPEG pairs with
XMP sidecars, a RAW alone, Live Photos with their .AAE edits, a Google Takeout
dump with .json beside every photo, orphan sidecars and videos. Every test
works in tmp_path and checks the bytes after.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import imagegen
import pytest
import rawgen

from dino_desktop.cli import main
from dino_desktop.core import trash
from dino_desktop.core.library import Library

pytestmark = pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="exercises the freedesktop.org trash"
)


def _blob(path: Path, seed: int, size: int = 2048) -> None:
    path.write_bytes(bytes((seed * 131 + i * 7) % 256 for i in range(size)))


def _digests(root: Path) -> dict[str, str]:
    """relpath → sha256 of every file below root (symlinks as their target path)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(root))] = "-> " + os.readlink(path)
        elif path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def shoot(tmp_path: Path) -> Path:
    root = tmp_path / "Photos"
    root.mkdir()
    imagegen.save_jpeg(root / "IMG_0001.JPG", seed=1, size=(320, 240))
    _blob(root / "IMG_0001.CR3", 1)  # a companion RAW is never decoded
    (root / "IMG_0001.CR3.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    imagegen.save_jpeg(root / "IMG_0002.JPG", seed=2, size=(320, 240))
    _blob(root / "IMG_0002.MOV", 2)
    (root / "IMG_0002.AAE").write_text("<plist/>")
    imagegen.save_jpeg(root / "IMG_0003.jpg", seed=3, size=(320, 240))
    (root / "IMG_0003.jpg.json").write_text('{"title": "IMG_0003.jpg"}')
    imagegen.save_jpeg(root / "IMG_0003(1).jpg", seed=4, size=(320, 240))
    (root / "IMG_0003.jpg(1).json").write_text('{"title": "IMG_0003(1).jpg"}')
    rawgen.write_dng(root / "OLD_0001.DNG", 320, 240, preview=(160, 120))
    (root / "OLD_0001.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'>not closed")
    (root / "lost.xmp").write_text("<x:xmpmeta/>")
    _blob(root / "clip.mp4", 5)
    return root


@pytest.fixture
def lib(tmp_path: Path) -> Any:
    with Library(tmp_path / "lib") as library:
        yield library


def _scan(lib: Library, *paths: Path) -> Any:
    from dino_desktop.core.progress import drive

    return drive(lib.scan(list(paths), embed=False))


def test_scan_indexes_each_photo_item_once(lib: Library, shoot: Path) -> None:
    result = _scan(lib, shoot)
    assert result.failed == []
    records = {Path(r.path).name: r for r in lib.images()}
    assert sorted(records) == [
        "IMG_0001.JPG",
        "IMG_0002.JPG",
        "IMG_0003(1).jpg",
        "IMG_0003.jpg",
        "OLD_0001.DNG",
    ]
    names = {n: sorted(Path(c).name for c in r.companions) for n, r in records.items()}
    assert names["IMG_0001.JPG"] == ["IMG_0001.CR3", "IMG_0001.CR3.xmp"]
    assert names["IMG_0002.JPG"] == ["IMG_0002.AAE", "IMG_0002.MOV"]
    assert names["IMG_0003.jpg"] == ["IMG_0003.jpg.json"]
    assert names["IMG_0003(1).jpg"] == ["IMG_0003.jpg(1).json"]
    assert names["OLD_0001.DNG"] == ["OLD_0001.xmp"]  # an XMP that is not XML is still a file
    assert result.companions == 7
    assert result.videos == [str(shoot / "clip.mp4")]
    assert result.orphan_sidecars == [str(shoot / "lost.xmp")]
    status = lib.status()
    assert (status.images, status.companions, status.videos, status.orphan_sidecars) == (5, 7, 1, 1)
    badges = {Path(p.path).name: p.badge for p in lib.photos()}
    assert badges["IMG_0001.JPG"] == "RAW+JPEG"
    assert badges["IMG_0002.JPG"] == "Live"
    assert badges["OLD_0001.DNG"] == "RAW"
    assert badges["IMG_0003.jpg"] == ""

    again = _scan(lib)
    assert (again.added, again.updated, again.removed, again.companions) == (0, 0, 0, 7)
    assert lib.status().companions == 7


def test_a_raw_that_gets_its_jpeg_becomes_its_companion_and_back(
    lib: Library, tmp_path: Path
) -> None:
    root = tmp_path / "cam"
    root.mkdir()
    rawgen.write_dng(root / "DSC_1.DNG", 320, 240, preview=(160, 120))
    _scan(lib, root)
    assert [Path(r.path).name for r in lib.images()] == ["DSC_1.DNG"]
    imagegen.save_jpeg(root / "DSC_1.JPG", seed=9, size=(320, 240))
    result = _scan(lib)
    assert [Path(r.path).name for r in lib.images()] == ["DSC_1.JPG"]
    assert result.removed == 1
    assert [Path(c).name for c in next(lib.images()).companions] == ["DSC_1.DNG"]
    (root / "DSC_1.JPG").unlink()
    _scan(lib)
    records = list(lib.images())
    assert [(Path(r.path).name, r.companions) for r in records] == [("DSC_1.DNG", ())]


def test_trash_takes_the_whole_group_and_undo_brings_every_byte_back(
    lib: Library, shoot: Path
) -> None:
    _scan(lib, shoot)
    before = _digests(shoot)
    result = lib.trash([shoot / "IMG_0001.JPG", shoot / "IMG_0002.MOV"])
    assert result.failed == []
    assert sorted(Path(p).name for p in result.done) == ["IMG_0001.JPG", "IMG_0002.JPG"]
    assert sorted(Path(p).name for p in result.companions) == [
        "IMG_0001.CR3",
        "IMG_0001.CR3.xmp",
        "IMG_0002.AAE",
        "IMG_0002.MOV",
    ]
    left = sorted(os.listdir(shoot))
    assert not [n for n in left if n.startswith(("IMG_0001", "IMG_0002"))]
    assert lib.status().companions == 3
    undone = lib.undo(result.journal_id)
    assert undone.failed == []
    assert len(undone.done) == 2 and len(undone.companions) == 4
    assert _digests(shoot) == before


def test_move_gives_the_group_one_collision_safe_stem(lib: Library, shoot: Path) -> None:
    _scan(lib, shoot)
    dest = shoot.parent / "Sorted"
    dest.mkdir()
    _blob(dest / "IMG_0001.CR3", 77)  # only a companion's name is taken there
    before = _digests(shoot)
    result = lib.move([shoot / "IMG_0001.JPG"], dest)
    assert result.failed == []
    assert sorted(os.listdir(dest)) == [
        "IMG_0001 (1).CR3",
        "IMG_0001 (1).CR3.xmp",
        "IMG_0001 (1).JPG",
        "IMG_0001.CR3",
    ]
    assert (dest / "IMG_0001.CR3").read_bytes() == bytes(
        (77 * 131 + i * 7) % 256 for i in range(2048)
    )
    # The row and its companions followed into... nowhere: Sorted is no library folder.
    assert "IMG_0001.JPG" not in {Path(r.path).name for r in lib.images()}
    lib.undo(result.journal_id)
    assert _digests(shoot) == before
    assert sorted(os.listdir(dest)) == ["IMG_0001.CR3"]


@pytest.mark.parametrize("mode", ["copy", "hardlink", "symlink", "move"])
def test_export_writes_whole_groups_in_every_mode_and_undo_restores(
    lib: Library, shoot: Path, mode: str
) -> None:
    _scan(lib, shoot)
    dest = shoot.parent / "Export" / "Beach"
    dest.mkdir(parents=True)
    (dest / "IMG_0002.JPG").write_bytes(b"someone else's")
    before = _digests(shoot)
    plan = [
        (str(shoot / "IMG_0001.JPG"), str(dest / "IMG_0001.JPG")),
        (str(shoot / "IMG_0002.JPG"), str(dest / "IMG_0002.JPG")),  # taken: the group renames
        (str(shoot / "OLD_0001.DNG"), str(dest / "OLD_0001.DNG")),
    ]
    result = lib.fileops.export(plan, mode)
    assert result.failed == []
    written = sorted(os.listdir(dest))
    assert written == sorted(
        [
            "IMG_0001.JPG",
            "IMG_0001.CR3",
            "IMG_0001.CR3.xmp",
            "IMG_0002.JPG",
            "IMG_0002 (1).JPG",
            "IMG_0002 (1).MOV",
            "IMG_0002 (1).AAE",
            "OLD_0001.DNG",
            "OLD_0001.xmp",
        ]
    )
    assert len(result.companions_moved) == 5
    for src, dst in result.companions_moved:
        digest = hashlib.sha256(Path(dst).read_bytes()).hexdigest()
        assert digest == before[str(Path(src).relative_to(shoot))]
    lib.undo(result.journal_id)
    assert _digests(shoot) == before
    assert sorted(os.listdir(dest)) == ["IMG_0002.JPG"]
    assert (dest / "IMG_0002.JPG").read_bytes() == b"someone else's"


def test_dry_run_plan_lists_the_companions(lib: Library, shoot: Path) -> None:
    _scan(lib, shoot)
    plan = [(str(shoot / "IMG_0001.JPG"), str(shoot.parent / "E" / "IMG_0001.JPG"))]
    ((photo, dest, comps),) = lib.plan_with_companions(plan)
    assert (photo, dest) == plan[0]
    assert sorted(Path(d).name for _, d in comps) == ["IMG_0001.CR3", "IMG_0001.CR3.xmp"]


def _refuse_trash(monkeypatch: pytest.MonkeyPatch, ending: str) -> None:
    """The system trash refuses files whose path ends with `ending` (permission denied)."""
    real = trash.send_to_trash

    def refuse(path: str) -> None:
        if path.endswith(ending):
            raise PermissionError(13, "Permission denied", path)
        real(path)

    monkeypatch.setattr(trash, "send_to_trash", refuse)


def test_a_companion_that_cannot_be_trashed_puts_its_group_back(
    lib: Library, shoot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scan(lib, shoot)
    before = _digests(shoot)
    _refuse_trash(monkeypatch, ".xmp")
    result = lib.trash([shoot / "IMG_0001.JPG", shoot / "IMG_0003.jpg"])
    assert [Path(p).name for p in result.done] == ["IMG_0003.jpg"]
    failed = {Path(p).name: why for p, why in result.failed}
    assert set(failed) == {"IMG_0001.JPG", "IMG_0001.CR3", "IMG_0001.CR3.xmp"}
    assert "put back" in failed["IMG_0001.JPG"]
    after = _digests(shoot)
    for name in ("IMG_0001.JPG", "IMG_0001.CR3", "IMG_0001.CR3.xmp"):
        assert after[name] == before[name]  # the group is whole, where it was
    assert "IMG_0001.JPG" in {Path(r.path).name for r in lib.images()}


def test_a_photo_that_cannot_go_keeps_its_companions(
    lib: Library, shoot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scan(lib, shoot)
    _refuse_trash(monkeypatch, "IMG_0002.JPG")
    result = lib.trash([shoot / "IMG_0002.JPG"])
    assert result.done == [] and result.companions == []
    assert (shoot / "IMG_0002.MOV").exists() and (shoot / "IMG_0002.AAE").exists()


def test_a_companion_gone_since_the_scan_is_skipped_with_a_note(lib: Library, shoot: Path) -> None:
    _scan(lib, shoot)
    (shoot / "IMG_0001.CR3.xmp").unlink()
    result = lib.trash([shoot / "IMG_0001.JPG"])
    assert result.failed == []
    assert [Path(p).name for p in result.companions] == ["IMG_0001.CR3"]
    # A sidecar written after the scan goes along all the same (the folder is read again).
    (shoot / "IMG_0002.JPG.xmp").write_text("<x/>")
    result = lib.trash([shoot / "IMG_0002.JPG"])
    assert "IMG_0002.JPG.xmp" in {Path(p).name for p in result.companions}


def test_duplicates_never_pair_a_raw_with_its_jpeg_and_keep_the_copy_with_companions(
    lib: Library, shoot: Path
) -> None:
    from dino_desktop.core.progress import drive

    copies = shoot.parent / "Copies"
    copies.mkdir()
    (copies / "IMG_0001.JPG").write_bytes((shoot / "IMG_0001.JPG").read_bytes())
    os.utime(copies / "IMG_0001.JPG", ns=(1, 1))  # older: the rule before would keep it
    _scan(lib, copies, shoot)
    for method in ("exact", "phash"):
        groups = drive(lib.duplicates(method))
        for g in groups:
            names = {Path(m.path).name for m in g.members}
            assert not any(n.endswith((".CR3", ".MOV")) for n in names)
        (group,) = [g for g in groups if Path(g.keeper.path).name == "IMG_0001.JPG"]
        assert Path(group.keeper.path).parent == shoot
        assert [Path(c).name for c in group.keeper.companions] == [
            "IMG_0001.CR3",
            "IMG_0001.CR3.xmp",
        ]


def test_cli_reports_companions_and_videos(
    shoot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lib = str(tmp_path / "cli-lib")

    def run(*args: str) -> tuple[int, Any]:
        code = main(["--library", lib, *args])
        out = capsys.readouterr().out
        return code, json.loads(out) if "--json" in args else out

    code, scan = run("scan", str(shoot), "--no-embed", "--json")
    assert code == 0
    assert scan["added"] == 5 and scan["failed"] == []
    assert scan["companions"] == 7
    assert scan["videos"] == [str(shoot / "clip.mp4")]
    assert scan["orphan_sidecars"] == [str(shoot / "lost.xmp")]
    _, status = run("status", "--json")
    assert (status["companions"], status["videos_not_indexed"], status["orphan_sidecars"]) == (
        7,
        1,
        1,
    )
    _, listed = run("list", "--json")
    by_name = {Path(r["path"]).name: r for r in listed}
    assert by_name["IMG_0002.JPG"]["companions"] == [
        str(shoot / "IMG_0002.AAE"),
        str(shoot / "IMG_0002.MOV"),
    ]
    code, trashed = run("trash", str(shoot / "IMG_0002.JPG"), "--json")
    assert code == 0
    assert trashed["trashed"] == [str(shoot / "IMG_0002.JPG")]
    assert sorted(trashed["companions"]) == [
        str(shoot / "IMG_0002.AAE"),
        str(shoot / "IMG_0002.MOV"),
    ]
    code, undone = run("undo", "--json")
    assert code == 0 and len(undone["companions"]) == 2
    assert (shoot / "IMG_0002.MOV").exists()
    code, text = run("scan")
    assert "1 video(s) not indexed" in text
