"""The bulk removal: dry run, one undoable operation, bursts left, metadata carried, at scale."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageOps

from dino_desktop.core.dedupe import plan_removal
from dino_desktop.core.duplicates import Group, Member
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryError
from tests import imagegen

T0 = datetime(2023, 7, 14, 10, 30, 0)


def _jpeg_with_gps(path: Path, img: Image.Image, taken_at: datetime) -> Path:
    exif = Image.Exif()
    exif[0x010F] = "Pixelcam"
    exif[0x0110] = "P7"
    exif.get_ifd(0x8769)[0x9003] = taken_at.strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.52)
    gps[3], gps[4] = "E", (2.0, 17.0, 40.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=90, exif=exif)
    return path


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def library(tmp_path: Path) -> tuple[Library, Path]:
    photos = tmp_path / "photos"
    a = imagegen.photo(800, 600, 400)
    imagegen.save_jpeg(photos / "a.jpg", a)  # the keeper: most pixels, no metadata
    (photos / "copies").mkdir()
    shutil.copyfile(photos / "a.jpg", photos / "copies" / "a byte copy.jpg")
    _jpeg_with_gps(photos / "copies" / "a small.jpg", a.resize((400, 300)), T0)
    imagegen.save_jpeg(photos / "copies" / "a grey.jpg", ImageOps.grayscale(a).convert("RGB"))
    imagegen.save_jpeg(photos / "copies" / "a q50.jpg", a, quality=50)
    b = imagegen.photo(640, 480, 401)
    imagegen.save_jpeg(photos / "b.jpg", b, taken_at=T0)
    imagegen.save_jpeg(
        photos / "b burst.jpg",
        ImageEnhance.Brightness(b).enhance(1.02),
        taken_at=T0 + timedelta(seconds=1),
    )
    lib = Library(tmp_path / "lib")
    drive(lib.scan([str(photos)], embed=False))
    return lib, photos


def test_dry_run_then_removal_then_undo_restores_every_byte(
    library: tuple[Library, Path],
) -> None:
    lib, photos = library
    before = _digests(photos)
    groups = drive(lib.duplicates("phash"))
    plan = drive(lib.plan_removal(groups))
    copies = photos / "copies"
    assert sorted(os.path.relpath(p, photos) for p in plan.paths) == sorted(
        f"copies/{n}" for n in ("a byte copy.jpg", "a small.jpg", "a grey.jpg", "a q50.jpg")
    )
    # The dry run says what would go, and the burst stays.
    assert plan.files == 4 and plan.groups == 1 and plan.folders == (str(copies),)
    assert plan.bytes == sum((copies / n).stat().st_size for n in os.listdir(copies))
    assert plan.left_exposures == 1
    assert "4 file(s)" in plan.summary() and "1 other exposure" in plan.summary()
    assert _digests(photos) == before  # planning touched nothing

    merges = drive(lib.metadata_merges(plan))
    (merge,) = merges
    assert merge.keeper == str(photos / "a.jpg")
    text = " ".join(merge.lines())
    assert "48.8" in text and "2023" in text  # GPS and date taken, only the copy had them

    result = drive(lib.remove_duplicates(plan))
    assert sorted(result.done) == sorted(plan.paths) and not result.failed
    assert not any(copies.iterdir())
    assert (photos / "b burst.jpg").exists()  # another exposure: never removed in bulk
    sidecar = Path(merge.sidecar)
    assert sidecar.exists() and (photos / "a.jpg").read_bytes() == (photos / "a.jpg").read_bytes()
    assert hashlib.sha256((photos / "a.jpg").read_bytes()).hexdigest() == before["a.jpg"]
    # One journal entry holds all of it: one undo puts everything back.
    entry = lib.journal_entry(result.journal_id)
    assert entry["kind"] == "duplicates" and [r["status"] for r in entry["merges"]] == ["done"]
    lib.undo(result.journal_id)
    assert _digests(photos) == before
    assert not sidecar.exists()


def test_bursts_go_only_when_asked(library: tuple[Library, Path]) -> None:
    lib, _ = library
    groups = drive(lib.duplicates("phash"))
    (burst_group,) = [g for g in groups if "burst" in g.labels]
    plan = drive(lib.plan_removal([burst_group]))
    assert plan.paths == () and plan.left_exposures == 1
    with pytest.raises(LibraryError, match="nothing to remove"):
        drive(lib.remove_duplicates(plan))
    plan = drive(lib.plan_removal([burst_group], include_exposures=True))
    assert len(plan.paths) == 1


def test_labels_and_auto_folders_pass_to_the_keeper_and_back(
    library: tuple[Library, Path],
) -> None:
    lib, photos = library
    copy = lib.find_image(photos / "copies" / "a small.jpg")
    keeper = lib.find_image(photos / "a.jpg")
    assert copy and keeper
    label = lib.add_sort_label("Paris")
    lib.label_photos(label.id, [copy[0]])
    groups = drive(lib.duplicates("phash"))
    plan = drive(lib.plan_removal(groups))
    result = drive(lib.remove_duplicates(plan, carry_metadata=False))
    positives, _ = lib.label_examples(label.id)
    assert positives == [keeper[0]]
    assert (
        "merges" not in lib.journal_entry(result.journal_id)
        or not (lib.journal_entry(result.journal_id)["merges"])
    )
    # Undo brings the copy back as a new photo; the keeper keeps the label (the
    # copy's own row left with its file: taking it off the keeper would lose it).
    lib.undo(result.journal_id)
    drive(lib.scan(embed=False))
    positives, _ = lib.label_examples(label.id)
    assert positives == [keeper[0]]
    assert (photos / "copies" / "a small.jpg").exists()


def _member(i: int, relation: str, *, size: int = 1000, ref: bool = False) -> Member:
    return Member(
        image_id=i,
        path=f"/lib/{i // 1000}/{i}.jpg",
        size=size,
        width=100,
        height=100,
        format="JPEG",
        taken_at=None,
        camera=None,
        is_reference=ref,
        score=1.0,
        relation=relation,
    )


def test_plan_of_100000_groups_never_takes_keepers_references_dismissed_or_bursts() -> None:
    relations = ["identical", "resized", "burst", "similar", "similar shot"]
    groups = []
    for g in range(100_000):
        base = g * 4
        keeper = _member(base, "keeper")
        rel = relations[g % len(relations)]
        others = [
            _member(base + 1, rel),
            _member(base + 2, "re-encoded", ref=True),
            dataclasses.replace(_member(base + 3, "identical"), dismissed=True),
        ]
        groups.append(Group("phash", keeper, others, 1000))
    plan = drive(plan_removal(groups))
    # Per 5 groups: identical and resized go; burst, similar shot and similar stay.
    assert len(plan.paths) == 40_000 and plan.groups == 40_000
    assert plan.left_exposures == 40_000 and plan.left_similar == 20_000
    removed = {int(os.path.basename(p)[:-4]) % 4 for p in plan.paths}
    assert removed == {1}  # never the keeper (0), the reference (2) or the dismissed (3)
    assert plan.bytes == 40_000 * 1000
    everything = drive(plan_removal(groups, include_exposures=True, include_similar=True))
    assert len(everything.paths) == 100_000


def test_a_removed_copy_takes_its_companions_and_undo_brings_them_back(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    img = imagegen.photo(640, 480, 410)
    imagegen.save_jpeg(photos / "keep.jpg", img)
    imagegen.save_jpeg(photos / "copy" / "IMG_1.jpg", img.resize((320, 240)))
    sidecar = photos / "copy" / "IMG_1.jpg.xmp"
    sidecar.write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>", encoding="utf-8")
    video = photos / "copy" / "IMG_1.MOV"
    video.write_bytes(b"live photo video")
    lib = Library(tmp_path / "lib")
    drive(lib.scan([str(photos)], embed=False))
    before = _digests(photos)
    # By default the copy with companions keeps; "pixels" first makes it the one to go.
    groups = drive(lib.duplicates("phash", rules=lib.keeper_rules("pixels")))
    plan = drive(lib.plan_removal(groups))
    assert plan.paths == (str(photos / "copy" / "IMG_1.jpg"),)
    assert plan.files == 3  # the copy with its sidecar and its Live Photo video
    result = drive(lib.remove_duplicates(plan, carry_metadata=False))
    assert sorted(result.companions) == sorted([str(sidecar), str(video)])
    assert not (photos / "copy").exists() or not any((photos / "copy").iterdir())
    lib.undo(result.journal_id)
    assert _digests(photos) == before
