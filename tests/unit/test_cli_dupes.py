"""The duplicate commands as a new user tries them: measured labels, --prefer with reasons,
answers remembered, and the bulk removal with a dry run, then undo restoring every byte."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import imagegen
import pytest
from PIL import Image, ImageEnhance, ImageOps

from dino_desktop.cli import main

T0 = datetime(2022, 8, 20, 18, 0, 0)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, json.loads(out) if "--json" in args and out.strip() else out, err


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


EXPECTED = {
    "byte copy.jpg": "identical",
    "resized.jpg": "resized",
    "squashed.jpg": "resized",
    "recompressed.jpg": "re-encoded",
    "flipped.jpg": "mirrored",
    "turned.jpg": "rotated",
    "cropped.jpg": "cropped",
    "grey.jpg": "greyscale",
    "brighter.jpg": "colour edit",
}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "Photos"
    orig = imagegen.photo(800, 600, 500)
    imagegen.save_jpeg(root / "original.jpg", orig, taken_at=T0, make="Cam", model="One")
    c = root / "copies"
    c.mkdir()
    shutil.copyfile(root / "original.jpg", c / "byte copy.jpg")
    imagegen.save_jpeg(c / "resized.jpg", orig.resize((400, 300), Image.Resampling.LANCZOS))
    imagegen.save_jpeg(c / "squashed.jpg", orig.resize((300, 300), Image.Resampling.LANCZOS))
    imagegen.save_jpeg(c / "recompressed.jpg", orig, quality=45)
    imagegen.save_jpeg(c / "flipped.jpg", orig.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    imagegen.save_jpeg(c / "turned.jpg", orig.transpose(Image.Transpose.ROTATE_90))
    imagegen.save_jpeg(c / "cropped.jpg", orig.crop((40, 30, 760, 570)))
    imagegen.save_jpeg(c / "grey.jpg", ImageOps.grayscale(orig).convert("RGB"))
    imagegen.save_jpeg(c / "brighter.jpg", ImageEnhance.Brightness(orig).enhance(1.25))
    burst = imagegen.photo(640, 480, 501)
    # Two exposures in the same second, told apart by the sub-second time cameras write.
    shot = T0 + timedelta(hours=2)
    imagegen.save_jpeg(root / "burst 1.jpg", burst, taken_at=shot, exif_ifd={0x9291: "10"})
    imagegen.save_jpeg(
        root / "burst 2.jpg",
        burst.rotate(0, translate=(3, 1)),
        taken_at=shot,
        exif_ifd={0x9291: "70"},
    )
    return root


def _groups(capsys: pytest.CaptureFixture[str], lib: list[str], *extra: str) -> list[Any]:
    code, groups, err = run(
        capsys, *lib, "duplicates", "--method", "phash", "--rotations", "--threshold", "12",
        "--json", *extra,
    )  # fmt: skip
    assert code == 0, err
    return groups  # type: ignore[no-any-return]


def test_labels_keepers_answers_and_bulk_removal_as_a_new_user_would(
    capsys: pytest.CaptureFixture[str], photos: Path, tmp_path: Path
) -> None:
    lib = ["--library", str(tmp_path / "lib")]
    code, _, err = run(capsys, *lib, "scan", str(photos), "--no-embed")
    assert code == 0, err
    before = _digests(photos)

    groups = _groups(capsys, lib)
    main_group = next(g for g in groups if os.path.basename(g["keep"]) == "original.jpg")
    labels = {
        os.path.basename(m["path"]): m["relation"]
        for m in main_group["members"]
        if m["path"] != main_group["keep"]
    }
    assert labels == EXPECTED
    members = {os.path.basename(m["path"]): m for m in main_group["members"]}
    assert members["original.jpg"]["why"].startswith("kept: ")
    assert members["flipped.jpg"]["transform"] and members["turned.jpg"]["transform"]
    box = members["cropped.jpg"]["crop_box"]
    assert members["cropped.jpg"]["crop_in"] == "keeper"
    assert all(abs(a - b) <= 24 for a, b in zip(box, [40, 30, 760, 570], strict=True)), box
    assert all(m["evidence"] for m in main_group["members"][1:])
    (burst,) = [g for g in groups if os.path.basename(g["keep"]).startswith("burst")]
    assert [m["relation"] for m in burst["members"][1:]] == ["burst"]

    # --prefer changes the keeper as the rules say, and says why.
    groups = _groups(capsys, lib, "--prefer", "format,file-size")
    group = next(
        g for g in groups if "original.jpg" in {os.path.basename(m["path"]) for m in g["members"]}
    )
    # All are JPEGs: the largest file keeps (here the brightened copy: the rules
    # say so, and the default order, with metadata before size, would not).
    largest = max(group["members"], key=lambda m: os.path.getsize(m["path"]))
    assert group["keep"] == largest["path"] != main_group["keep"]
    keeper = next(m for m in group["members"] if m["path"] == group["keep"])
    assert keeper["why"].startswith("kept: larger file")
    groups = _groups(capsys, lib, "--prefer", "shorter-path")
    group = next(
        g for g in groups if "original.jpg" in {os.path.basename(m["path"]) for m in g["members"]}
    )
    assert os.path.basename(group["keep"]) == "original.jpg"  # the only one at the top
    keeper = next(m for m in group["members"] if m["path"] == group["keep"])
    assert keeper["why"].startswith("kept: shorter path")
    code, _, err = run(capsys, *lib, "duplicates", "--prefer", "biggest")
    assert code == 2 and "unknown keeper rule" in err

    # A dismissed group does not come back on the next run.
    burst_paths = [m["path"] for m in burst["members"]]
    code, answer, err = run(capsys, *lib, "dismiss", *burst_paths, "--json")
    assert code == 0 and answer["kind"] == "not-duplicates", err
    drive_scan = run(capsys, *lib, "scan", str(photos), "--no-embed")
    assert drive_scan[0] == 0
    assert not any(g["keep"] in burst_paths for g in _groups(capsys, lib))
    shown = _groups(capsys, lib, "--include-dismissed")
    assert any(g["dismissed"] for g in shown)

    # The bulk action: a dry run first changes nothing and says what would go.
    code, dry, err = run(
        capsys, *lib, "duplicates", "--method", "phash", "--rotations", "--threshold", "12",
        "--remove", "--dry-run", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert dry["dry_run"] and dry["files"] == len(EXPECTED) and dry["groups"] == 1
    assert dry["folders"] == [str(photos / "copies")]
    assert _digests(photos) == before
    code, done, err = run(
        capsys, *lib, "duplicates", "--method", "phash", "--rotations", "--threshold", "12",
        "--remove", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert len(done["trashed"]) == len(EXPECTED) and not done["failed"]
    assert not list((photos / "copies").iterdir())
    assert (photos / "burst 2.jpg").exists()
    code, _, err = run(capsys, *lib, "undo", str(done["journal"]), "--json")
    assert code == 0, err
    assert _digests(photos) == before  # every byte back, no sidecar left behind


def test_dismiss_usage_errors(
    capsys: pytest.CaptureFixture[str], photos: Path, tmp_path: Path
) -> None:
    lib = ["--library", str(tmp_path / "lib")]
    run(capsys, *lib, "scan", str(photos), "--no-embed")
    code, _, err = run(capsys, *lib, "dismiss", str(photos / "original.jpg"))
    assert code == 2 and "at least two" in err
    code, _, err = run(capsys, *lib, "dismiss", str(photos / "original.jpg"), "/nowhere/x.jpg")
    assert code == 1 and "not in the library" in err
    code, _, err = run(capsys, *lib, "duplicates", "--dry-run")
    assert code == 2 and "--remove" in err
    code, _, err = run(capsys, *lib, "duplicates", "--label", "blurry")
    assert code == 2 and "unknown label" in err
    code, _, err = run(capsys, *lib, "undismiss")
    assert code == 1 and "no duplicate answer" in err
