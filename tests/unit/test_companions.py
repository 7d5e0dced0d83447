"""companions: which files of a folder form one photo item, by name alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from dino_desktop.core.companions import DiskGroups, group_names, member_name


def test_raw_and_jpeg_are_one_photo_the_jpeg_shown() -> None:
    g = group_names(["IMG_0001.JPG", "IMG_0001.CR3", "IMG_0002.JPG"])
    assert g.photos == {"IMG_0001.JPG": [("IMG_0001.CR3", "raw")], "IMG_0002.JPG": []}
    assert g.owner == {"IMG_0001.CR3": "IMG_0001.JPG"}
    assert g.members("IMG_0001.CR3") == [("IMG_0001.JPG", "photo"), ("IMG_0001.CR3", "raw")]


def test_heic_is_preferred_over_jpeg_and_other_images_stay_photos() -> None:
    g = group_names(["A.png", "A.jpg", "A.HEIC", "A.MOV"])
    assert set(g.photos) == {"A.png", "A.jpg", "A.HEIC"}
    assert g.photos["A.HEIC"] == [("A.MOV", "live")]
    assert g.photos["A.png"] == [] and g.photos["A.jpg"] == []


def test_live_photo_pairs_and_lone_videos() -> None:
    g = group_names(["IMG_1.HEIC", "IMG_1.MOV", "clip.mp4", "clip.THM"])
    assert g.photos == {"IMG_1.HEIC": [("IMG_1.MOV", "live")]}
    # A video of no photo is counted, not indexed; its own .THM is no orphan.
    assert g.loose == [("clip.mp4", "video")]


def test_raw_alone_is_the_photo_and_a_dng_beside_it_its_companion() -> None:
    g = group_names(["DSC_1.NEF", "DSC_1.dng", "DSC_1.xmp"])
    assert g.photos == {"DSC_1.NEF": [("DSC_1.dng", "raw"), ("DSC_1.xmp", "sidecar")]}


@pytest.mark.parametrize(
    "sidecar",
    [
        "IMG_1.xmp",
        "IMG_1.XMP",
        "IMG_1.JPG.xmp",
        "IMG_1.AAE",
        "IMG_O1.AAE",
        "IMG_1.JPG.json",
        "IMG_1.JPG.supplemental-metadata.json",
        "IMG_1.JPG.supplemental-met.json",
        "IMG_1.thm",
    ],
)
def test_every_sidecar_naming_style(sidecar: str) -> None:
    g = group_names(["IMG_1.JPG", sidecar])
    assert g.photos == {"IMG_1.JPG": [(sidecar, "sidecar")]}
    assert not g.loose


def test_a_sidecar_of_the_raw_goes_with_the_jpeg() -> None:
    g = group_names(["IMG_1.JPG", "IMG_1.CR2", "IMG_1.CR2.xmp"])
    assert g.photos["IMG_1.JPG"] == [("IMG_1.CR2", "raw"), ("IMG_1.CR2.xmp", "sidecar")]


def test_takeout_duplicate_numbering() -> None:
    g = group_names(["IMG.jpg", "IMG(1).jpg", "IMG.jpg.json", "IMG.jpg(1).json"])
    assert g.photos["IMG.jpg"] == [("IMG.jpg.json", "sidecar")]
    assert g.photos["IMG(1).jpg"] == [("IMG.jpg(1).json", "sidecar")]


def test_orphans_and_stray_json() -> None:
    g = group_names(["a.jpg", "lost.xmp", "lost.AAE", "metadata.json", "a.other.json"])
    assert g.photos == {"a.jpg": []}
    assert g.loose == [("lost.AAE", "orphan"), ("lost.xmp", "orphan")]


def test_a_sidecar_naming_one_of_two_images_goes_with_that_one() -> None:
    g = group_names(["A.jpg", "A.png", "A.png.xmp"])
    assert g.photos["A.png"] == [("A.png.xmp", "sidecar")]
    assert g.photos["A.jpg"] == []


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("IMG_1.CR3", "IMG_1 (2).CR3"),
        ("IMG_1.JPG.json", "IMG_1 (2).JPG.json"),
        ("IMG_1.CR3.xmp", "IMG_1 (2).CR3.xmp"),
    ],
)
def test_member_names_keep_the_photo_stem(member: str, expected: str) -> None:
    assert member_name("IMG_1.JPG", "IMG_1 (2).JPG", member) == expected
    assert member_name("IMG_1.JPG", "IMG_1.JPG", member) == member


def test_disk_groups_read_the_folder(tmp_path: Path) -> None:
    for name in ("IMG_1.JPG", "IMG_1.CR3", "IMG_1.xmp", ".hidden.xmp", "IMG_2.JPG"):
        (tmp_path / name).write_bytes(b"x")
    groups = DiskGroups()
    members = groups.members(str(tmp_path / "IMG_1.xmp"))
    assert members == [
        (str(tmp_path / "IMG_1.JPG"), "photo"),
        (str(tmp_path / "IMG_1.CR3"), "raw"),
        (str(tmp_path / "IMG_1.xmp"), "sidecar"),
    ]
    assert groups.members(str(tmp_path / "IMG_2.JPG")) == [(str(tmp_path / "IMG_2.JPG"), "photo")]
    assert groups.members(str(tmp_path / "gone.jpg")) == [(str(tmp_path / "gone.jpg"), "photo")]
