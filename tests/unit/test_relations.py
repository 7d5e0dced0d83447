"""Measured relations (core/relations.py) on generated photo pairs, one for every label.

Every copy is made from `imagegen.photo` (textured, no symmetry, so a flip is not the
identity) and saved as JPEG at quality 90 unless the case is about the format, so the
measurements see real codec noise. The keeper is 640×480.
"""

from __future__ import annotations

import hashlib
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import imagegen
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from dino_desktop.core.relations import (
    BURST_WINDOW_S,
    LABELS,
    TRANSFORMS,
    Measurer,
    Relation,
    Side,
)

SEEDS = (3, 11, 26)
W, H = 640, 480
T0 = datetime(2024, 6, 1, 10, 30, 0)
CROP = (120, 80, 520, 380)
RETOUCH = (400, 50, 602, 202)  # 202×152: 10 % of 640×480


def side(path: Path, *, taken_at: datetime | None = None, camera: str | None = None) -> Side:
    """The catalog's view of a file: display size, bytes, format, sha256."""
    data = path.read_bytes()
    with Image.open(path) as img:
        fmt = img.format
        width, height = ImageOps.exif_transpose(img).size
    return Side(
        path=str(path),
        width=width,
        height=height,
        size=len(data),
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        taken_at=taken_at,
        camera=camera,
    )


def jpeg(folder: Path, name: str, img: Image.Image, quality: int = 90) -> Path:
    path = folder / name
    img.save(path, "JPEG", quality=quality)
    return path


class Photos:
    """One keeper and its copies, written once per seed."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder = folder
        self.seed = seed
        self.image = imagegen.photo(W, H, seed)
        self.keeper = jpeg(folder, "keeper.jpg", self.image)
        self.png = folder / "keeper.png"
        self.image.save(self.png, "PNG")

    def copy(self, name: str, img: Image.Image, quality: int = 90) -> Path:
        return jpeg(self.folder, name, img, quality)


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def photos(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Photos:
    seed: int = request.param
    return Photos(tmp_path_factory.mktemp(f"relations{seed}"), seed)


@pytest.fixture(scope="module")
def measurer() -> Measurer:
    return Measurer()


def relate(measurer: Measurer, keeper: Path, copy: Path) -> Relation:
    rel = measurer.relate(side(keeper), side(copy))
    assert rel.label in LABELS
    assert rel.evidence and "\n" not in rel.evidence
    return rel


# ---- the interface --------------------------------------------------------------------


def test_labels_and_transforms_are_the_agreed_names() -> None:
    assert LABELS == (
        "identical",
        "resized",
        "re-encoded",
        "rotated",
        "mirrored",
        "cropped",
        "greyscale",
        "colour edit",
        "edited",
        "burst",
        "similar shot",
        "similar",
    )
    assert set(TRANSFORMS) == {
        "rotated 90° clockwise",
        "rotated 180°",
        "rotated 90° counter-clockwise",
        "mirrored left–right",
        "mirrored top–bottom",
        "transposed",
        "transversed",
    }
    # The 7 are distinct and none is the identity.
    probe = imagegen.photo(48, 32, 0)
    outputs = {probe.transpose(t).tobytes() for t in TRANSFORMS.values()}
    assert len(outputs) == 7 and probe.tobytes() not in outputs
    assert 5 <= BURST_WINDOW_S <= 30


def test_measurer_rejects_a_tiny_working_size() -> None:
    with pytest.raises(ValueError):
        Measurer(size=8)


# ---- 1. identical ---------------------------------------------------------------------


def test_byte_copy_is_identical_without_decoding(photos: Photos, measurer: Measurer) -> None:
    copy = photos.folder / "copy.jpg"
    shutil.copyfile(photos.keeper, copy)
    rel = relate(measurer, photos.keeper, copy)
    assert rel.label == "identical"
    assert rel.difference == 0.0
    # Equal sha256 decides alone: not even a missing file is opened.
    ghost = Side(str(photos.folder / "gone.jpg"), W, H, 1, "JPEG", side(copy).sha256, None, None)
    assert measurer.relate(side(photos.keeper), ghost).label == "identical"


# ---- 4. pixels match: resized / re-encoded ------------------------------------------------


def test_resized_keeping_the_aspect(photos: Photos, measurer: Measurer) -> None:
    copy = photos.copy("half.jpg", photos.image.resize((320, 240), Image.Resampling.LANCZOS))
    rel = relate(measurer, photos.keeper, copy)
    assert rel.label == "resized", rel.evidence
    assert "640×480 → 320×240" in rel.evidence
    assert "aspect" not in rel.evidence
    assert rel.difference is not None and rel.difference < 0.02


def test_a_small_thumbnail_is_resized(photos: Photos, measurer: Measurer) -> None:
    copy = photos.copy("thumb.jpg", photos.image.resize((80, 60), Image.Resampling.LANCZOS))
    assert relate(measurer, photos.keeper, copy).label == "resized"


def test_squashed_is_resized_not_cropped(photos: Photos, measurer: Measurer) -> None:
    copy = photos.copy("square.jpg", photos.image.resize((300, 300), Image.Resampling.LANCZOS))
    rel = relate(measurer, photos.keeper, copy)
    assert rel.label == "resized", rel.evidence
    assert rel.crop_box is None
    assert "squashed" in rel.evidence and "640×480 → 300×300" in rel.evidence
    assert "aspect changed" in rel.evidence


def test_recompressed_at_the_same_size_is_re_encoded(photos: Photos, measurer: Measurer) -> None:
    copy = photos.copy("q60.jpg", photos.image, quality=60)
    rel = relate(measurer, photos.keeper, copy)
    assert rel.label == "re-encoded", rel.evidence
    assert "JPEG" in rel.evidence and "KB" in rel.evidence


def test_png_to_jpeg_is_re_encoded(photos: Photos, measurer: Measurer) -> None:
    copy = photos.copy("from-png.jpg", photos.image)
    rel = relate(measurer, photos.png, copy)
    assert rel.label == "re-encoded", rel.evidence
    assert "PNG" in rel.evidence and "JPEG" in rel.evidence


def test_exif_orientation_alone_changes_nothing_displayed(
    tmp_path: Path, measurer: Measurer
) -> None:
    """Relations are measured in display orientation: a copy stored turned, with the
    EXIF tag that turns it back, shows the same picture."""
    upright, oriented = imagegen.oriented_pair(tmp_path, 6, seed=4, size=(320, 240))
    rel = relate(measurer, upright, oriented)
    assert rel.label == "re-encoded", rel.evidence


# ---- 3. rotated / mirrored ---------------------------------------------------------------

TURNS = [
    # (how the copy is made from the keeper, the transform that maps it back, label)
    (Image.Transpose.FLIP_LEFT_RIGHT, "mirrored left–right", "mirrored"),
    (Image.Transpose.FLIP_TOP_BOTTOM, "mirrored top–bottom", "mirrored"),
    (Image.Transpose.ROTATE_90, "rotated 90° clockwise", "rotated"),  # made counter-clockwise
    (Image.Transpose.ROTATE_270, "rotated 90° counter-clockwise", "rotated"),
    (Image.Transpose.ROTATE_180, "rotated 180°", "rotated"),
    (Image.Transpose.TRANSPOSE, "transposed", "mirrored"),
    (Image.Transpose.TRANSVERSE, "transversed", "mirrored"),
]


@pytest.mark.parametrize(("made", "back", "label"), TURNS, ids=[t[1] for t in TURNS])
def test_turned_and_mirrored_copies(
    photos: Photos, measurer: Measurer, made: Image.Transpose, back: str, label: str
) -> None:
    copy_img = photos.image.transpose(made)
    copy = photos.copy(f"t{made.value}.jpg", copy_img)
    rel = relate(measurer, photos.keeper, copy)
    assert (rel.label, rel.transform) == (label, back), rel.evidence
    # The transform named maps the copy onto the keeper.
    restored = np.asarray(copy_img.transpose(TRANSFORMS[back]), dtype=np.int16)
    assert np.array_equal(restored, np.asarray(photos.image, dtype=np.int16))
    assert rel.difference is not None and rel.difference < 0.02


def test_turned_and_resized_says_both(photos: Photos, measurer: Measurer) -> None:
    turned = photos.image.transpose(Image.Transpose.ROTATE_270).resize((240, 320))
    rel = relate(measurer, photos.keeper, photos.copy("turned-small.jpg", turned))
    assert (rel.label, rel.transform) == ("rotated", "rotated 90° counter-clockwise")
    assert "640×480 → 240×320" in rel.evidence


# ---- 5. cropped -----------------------------------------------------------------------------


def assert_box_near(found: tuple[int, int, int, int] | None, true: tuple[int, ...]) -> None:
    assert found is not None
    worst = max(abs(a - b) for a, b in zip(found, true, strict=True))
    assert worst <= 0.02 * W, f"found {found}, true {true}"


def test_crop_of_the_keeper_finds_the_box(photos: Photos, measurer: Measurer) -> None:
    copy = photos.copy("crop.jpg", photos.image.crop(CROP))
    rel = relate(measurer, photos.keeper, copy)
    assert rel.label == "cropped", rel.evidence
    assert rel.crop_in == "keeper"
    assert_box_near(rel.crop_box, CROP)
    assert "of 640×480" in rel.evidence


def test_crop_then_resized_finds_the_box_in_keeper_pixels(
    photos: Photos, measurer: Measurer
) -> None:
    box = (100, 60, 500, 360)
    small = photos.image.crop(box).resize((200, 150), Image.Resampling.LANCZOS)
    rel = relate(measurer, photos.keeper, photos.copy("crop-small.jpg", small))
    assert rel.label == "cropped", rel.evidence
    assert rel.crop_in == "keeper"
    assert_box_near(rel.crop_box, box)
    assert "200×150" in rel.evidence


def test_crop_to_another_aspect(photos: Photos, measurer: Measurer) -> None:
    box = (80, 0, 560, 480)  # a full-height square
    rel = relate(measurer, photos.keeper, photos.copy("square-crop.jpg", photos.image.crop(box)))
    assert rel.label == "cropped", rel.evidence
    assert_box_near(rel.crop_box, box)


def test_a_slight_crop_is_not_an_edit(photos: Photos, measurer: Measurer) -> None:
    box = (10, 8, 630, 473)  # 97 % of each side
    rel = relate(measurer, photos.keeper, photos.copy("trim.jpg", photos.image.crop(box)))
    assert rel.label == "cropped", rel.evidence
    assert_box_near(rel.crop_box, box)


def test_keeper_that_is_a_crop_of_the_copy(photos: Photos, measurer: Measurer) -> None:
    keeper = photos.copy("keeper-crop.jpg", photos.image.crop(CROP))
    rel = relate(measurer, keeper, photos.keeper)
    assert rel.label == "cropped", rel.evidence
    assert rel.crop_in == "copy"
    assert_box_near(rel.crop_box, CROP)  # in the copy's (the larger one's) pixels
    assert "keeper is a crop" in rel.evidence


# ---- 4. pixel edits -------------------------------------------------------------------------


def test_greyscale_is_not_re_encoded(photos: Photos, measurer: Measurer) -> None:
    rel = relate(measurer, photos.keeper, photos.copy("grey.jpg", photos.image.convert("L")))
    assert rel.label == "greyscale", rel.evidence
    # Saved as RGB too (no colour left, three channels).
    grey_rgb = photos.image.convert("L").convert("RGB")
    assert relate(measurer, photos.keeper, photos.copy("grey3.jpg", grey_rgb)).label == "greyscale"


def test_brightened_is_a_colour_edit(photos: Photos, measurer: Measurer) -> None:
    bright = ImageEnhance.Brightness(photos.image).enhance(1.25)
    rel = relate(measurer, photos.keeper, photos.copy("bright.jpg", bright))
    assert rel.label == "colour edit", rel.evidence
    assert rel.evidence.startswith("brightness +"), rel.evidence
    measured = int(rel.evidence.removeprefix("brightness +").split(" %")[0])
    assert 15 <= measured <= 26  # +25 % as made; what clipped at white pulls it down


def test_more_contrast_is_a_colour_edit(photos: Photos, measurer: Measurer) -> None:
    contrast = ImageEnhance.Contrast(photos.image).enhance(1.3)
    rel = relate(measurer, photos.keeper, photos.copy("contrast.jpg", contrast))
    assert rel.label == "colour edit", rel.evidence
    assert rel.evidence.startswith("contrast ×1.2") or rel.evidence.startswith("contrast ×1.3")


def test_colour_balance_shift_is_a_colour_edit(photos: Photos, measurer: Measurer) -> None:
    r, g, b = photos.image.split()
    warmer = Image.merge(
        "RGB", (r.point(lambda v: min(255, round(v * 1.12))), g, b.point(lambda v: v * 0.88))
    )
    rel = relate(measurer, photos.keeper, photos.copy("warm.jpg", warmer))
    assert rel.label == "colour edit", rel.evidence
    assert "colour balance shifted" in rel.evidence


def test_colour_edit_and_resize_names_both(photos: Photos, measurer: Measurer) -> None:
    dark = ImageEnhance.Brightness(photos.image).enhance(0.8).resize((320, 240))
    rel = relate(measurer, photos.keeper, photos.copy("dark-small.jpg", dark))
    assert rel.label == "colour edit", rel.evidence
    assert "brightness -20 %" in rel.evidence and "640×480 → 320×240" in rel.evidence


def test_local_retouch_is_edited(photos: Photos, measurer: Measurer) -> None:
    retouched = photos.image.copy()
    ImageDraw.Draw(retouched).rectangle(RETOUCH, fill=(250, 20, 200))
    rel = relate(measurer, photos.keeper, photos.copy("retouched.jpg", retouched))
    assert rel.label == "edited", rel.evidence
    share = float(rel.evidence.split(" %")[0])
    assert 8.0 <= share <= 14.0, rel.evidence  # the rectangle is 10 % of the picture
    assert "the rest matches" in rel.evidence


# ---- 2. by time -------------------------------------------------------------------------------


def test_burst_and_similar_shot_by_time(photos: Photos, measurer: Measurer) -> None:
    other = photos.copy("next.jpg", photos.image, quality=80)
    keeper = side(photos.keeper, taken_at=T0, camera="Pixel 8")
    burst = measurer.relate(keeper, side(other, taken_at=T0 + timedelta(seconds=0.8)))
    assert burst.label == "burst", burst.evidence
    assert "0.8 s apart" in burst.evidence
    later = measurer.relate(keeper, side(other, taken_at=T0 + timedelta(minutes=5)))
    assert later.label == "similar shot", later.evidence
    assert "5 min" in later.evidence
    # Equal times, or one date missing: the pixels decide.
    same_time = measurer.relate(keeper, side(other, taken_at=T0))
    undated = measurer.relate(keeper, side(other))
    assert same_time.label == undated.label == "re-encoded"


def test_within_the_window_from_another_camera_is_not_a_burst(
    photos: Photos, measurer: Measurer
) -> None:
    other = photos.copy("friend.jpg", photos.image, quality=80)
    keeper = side(photos.keeper, taken_at=T0, camera="Pixel 8")
    rel = measurer.relate(keeper, side(other, taken_at=T0 + timedelta(seconds=2), camera="X100"))
    assert rel.label == "similar shot", rel.evidence


# ---- 6. nothing decides ---------------------------------------------------------------------


def test_unrelated_photos_are_only_similar(photos: Photos, measurer: Measurer) -> None:
    seed = 1000 + photos.seed
    stranger = photos.copy("stranger.jpg", imagegen.photo(W, H, seed))
    rel = relate(measurer, photos.keeper, stranger)
    assert rel.label == "similar", rel.evidence
    assert "no transform, crop or edit explains the difference" in rel.evidence
    square = photos.copy("stranger-square.jpg", imagegen.photo(400, 400, seed + 1))
    assert relate(measurer, photos.keeper, square).label == "similar"


def test_unreadable_files_are_similar_with_a_reason(tmp_path: Path, measurer: Measurer) -> None:
    bad = imagegen.bad_files(tmp_path / "bad")
    good = imagegen.save_jpeg(tmp_path / "good.jpg", size=(320, 240), seed=5)
    for name, path in bad.items():
        rel = measurer.relate(side(good), Side(str(path), 320, 240, 100, "JPEG", None, None, None))
        assert rel.label == "similar", name
        assert rel.evidence.startswith("could not be compared: the copy"), rel.evidence
        assert name in rel.evidence
    missing = Side(str(tmp_path / "nowhere.jpg"), 320, 240, 100, "JPEG", None, None, None)
    rel = measurer.relate(missing, side(good))
    assert rel.label == "similar"
    assert rel.evidence.startswith("could not be compared: the keeper nowhere.jpg")


# ---- the measurer -------------------------------------------------------------------------------


def test_relate_from_many_threads_gives_the_same_answers(photos: Photos) -> None:
    copies = {
        "resized": photos.copy("mt-half.jpg", photos.image.resize((320, 240))),
        "mirrored": photos.copy(
            "mt-flip.jpg", photos.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        ),
        "cropped": photos.copy("mt-crop.jpg", photos.image.crop(CROP)),
        "greyscale": photos.copy("mt-grey.jpg", photos.image.convert("L")),
        "re-encoded": photos.copy("mt-q60.jpg", photos.image, quality=60),
    }
    measurer = Measurer()
    keeper = side(photos.keeper)
    jobs = [(label, side(path)) for label, path in copies.items()] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(lambda job: measurer.relate(keeper, job[1]).label, jobs))
    assert found == [label for label, _ in jobs]


def test_the_picture_cache_is_bounded(tmp_path: Path) -> None:
    measurer = Measurer(size=64)
    keeper = imagegen.save_jpeg(tmp_path / "k.jpg", size=(96, 72), seed=1)
    for i in range(80):
        copy = imagegen.save_jpeg(
            tmp_path / f"c{i}.jpg", size=(96, 72), seed=1, quality=70 + i % 20
        )
        measurer.relate(side(keeper), side(copy))
    assert len(measurer._cache) <= 64
