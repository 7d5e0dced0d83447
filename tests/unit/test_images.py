"""Tests for dino_desktop.core.images: what a user would notice when photos are read.

Photos show the right way up with the right size, colours come out as in a
viewer, dates and cameras are read from EXIF, and every kind of bad file is
refused with a readable reason instead of crashing the scan.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import imagegen
import imagehash
import numpy as np
import pytest
from PIL import Image, ImageFile

from dino_desktop.core import images
from dino_desktop.core.images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageError,
    ImageInfo,
    open_image,
    read_info,
    to_rgb,
)


def stored(path: Path) -> Image.Image:
    """The file's pixels as stored, without EXIF orientation, as RGB (or its own mode)."""
    with Image.open(path) as img:
        img.load()
        return img.convert("RGB") if img.mode in ("RGB", "L", "P") else img.copy()


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32)


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return float(np.abs(pixels(a) - pixels(b)).mean())


def bits_apart(hash_a: str, hash_b: str) -> int:
    return (int(hash_a, 16) ^ int(hash_b, 16)).bit_count()


# --- EXIF orientation ----------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_shows_the_photo_upright(tmp_path: Path, orientation: int) -> None:
    upright, oriented = imagegen.oriented_pair(tmp_path, orientation, seed=4)
    raw = stored(oriented)
    assert raw.size == ((240, 320) if orientation >= 5 else (320, 240))

    info = read_info(oriented)
    assert info.orientation == orientation
    # The display size, not the stored one.
    assert (info.width, info.height) == (320, 240)

    shown = open_image(oriented)
    reference = open_image(upright)
    assert shown.mode == "RGB"
    assert mean_diff(shown, reference) < 3.0  # JPEG noise only
    if orientation in (2, 3, 4):
        # The test is meaningful: the stored pixels really are turned/mirrored.
        assert mean_diff(raw, reference) > 20

    assert bits_apart(info.phash, read_info(upright).phash) <= 4


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_orientation_is_treated_as_upright(tmp_path: Path, orientation: int) -> None:
    upright, oriented = imagegen.oriented_pair(tmp_path, orientation)
    info = read_info(oriented)
    assert info.orientation == 1
    assert (info.width, info.height) == (320, 240)
    assert mean_diff(open_image(oriented), open_image(upright)) < 1.0


def test_orientation_applies_to_reduced_decodes(tmp_path: Path) -> None:
    path = tmp_path / "portrait.jpg"
    stored = imagegen.photo(1600, 1200, seed=2).transpose(Image.Transpose.ROTATE_90)
    imagegen.save_jpeg(path, stored, orientation=6)
    small = open_image(path, min_side=200)
    assert small.size == (400, 300)  # shown the way the camera was held, at 1/4 scale
    expected = imagegen.photo(1600, 1200, seed=2).resize(small.size, Image.Resampling.BOX)
    assert mean_diff(small, expected) < 4.0
    assert read_info(path).width == 1600


# --- colour modes --------------------------------------------------------------


def test_cmyk_jpeg_red_comes_out_red(tmp_path: Path) -> None:
    path = imagegen.cmyk_jpeg(tmp_path / "red.jpg", img=Image.new("RGB", (64, 64), (220, 20, 20)))
    assert stored(path).mode == "CMYK"
    r, g, b = open_image(path).getpixel((32, 32))  # type: ignore[misc]
    assert r > 200 and g < 40 and b < 40
    assert read_info(path).format == "JPEG"


def test_cmyk_jpeg_photo_colours_match_the_original(tmp_path: Path) -> None:
    path = imagegen.cmyk_jpeg(tmp_path / "cmyk.jpg", seed=3)
    assert mean_diff(open_image(path), imagegen.photo(320, 240, 3)) < 4.0


def test_16bit_png_mid_grey_is_not_clipped(tmp_path: Path) -> None:
    path = imagegen.png16(tmp_path / "grey16.png", value=32768)
    assert stored(path).mode == "I;16"
    img = open_image(path)
    assert img.mode == "RGB"
    assert all(abs(channel - 128) <= 1 for channel in img.getpixel((5, 5)))  # type: ignore[union-attr]


def test_16bit_png_photo_keeps_its_tones(tmp_path: Path) -> None:
    path = imagegen.png16(tmp_path / "photo16.png", seed=1)
    shown = open_image(path).convert("L")
    expected = imagegen.photo(320, 240, 1).convert("L")
    # Clipping would turn nearly everything white; scaling keeps the 8-bit tones.
    assert mean_diff(shown, expected) < 1.5


def test_transparent_png_is_shown_over_white(tmp_path: Path) -> None:
    path = imagegen.rgba_png(tmp_path / "logo.png", seed=0)
    shown = pixels(open_image(path))
    source = pixels(imagegen.photo(320, 240, 0))
    assert np.all(shown[:, :100] == 255)  # fully transparent third: white
    assert np.abs(shown[:, 220:] - source[:, 220:]).max() <= 1  # opaque third: unchanged
    half = (source[:, 110:210] * 128 + 255 * 127) / 255  # alpha 128 over white
    assert np.abs(shown[:, 110:210] - half).max() <= 2


@pytest.mark.parametrize(
    ("img", "expected"),
    [
        pytest.param(Image.new("L", (4, 4), 77), (77, 77, 77), id="L"),
        pytest.param(Image.new("1", (4, 4), 1), (255, 255, 255), id="1"),
        pytest.param(Image.new("LA", (4, 4), (0, 0)), (255, 255, 255), id="LA-transparent"),
        pytest.param(Image.new("LA", (4, 4), (40, 255)), (40, 40, 40), id="LA-opaque"),
        pytest.param(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255), id="RGBA-clear"),
        pytest.param(Image.new("RGBA", (4, 4), (0, 0, 255, 255)), (0, 0, 255), id="RGBA-opaque"),
        pytest.param(Image.new("RGBX", (4, 4), (1, 2, 3, 0)), (1, 2, 3), id="RGBX"),
        pytest.param(Image.new("YCbCr", (4, 4), (81, 90, 240)), (238, 14, 13), id="YCbCr-red"),
        pytest.param(Image.new("HSV", (4, 4), (0, 255, 255)), (255, 0, 0), id="HSV-red"),
        pytest.param(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0), id="CMYK-red"),
        pytest.param(Image.new("I;16", (4, 4), 65535), (255, 255, 255), id="I;16-white"),
        pytest.param(
            Image.frombytes("I;16B", (2, 2), b"\x80\x00" * 4), (128, 128, 128), id="I;16B-mid"
        ),
        pytest.param(Image.new("I", (4, 4), 32768), (128, 128, 128), id="I-mid"),
        pytest.param(Image.new("I", (4, 4), 70000), (255, 255, 255), id="I-over-range"),
        pytest.param(Image.new("F", (4, 4), 0.5), (128, 128, 128), id="F-unit-range"),
        pytest.param(Image.new("F", (4, 4), 100.0), (100, 100, 100), id="F-8bit-range"),
        pytest.param(Image.new("LAB", (4, 4), (138, 209, 198)), (251, 5, 4), id="LAB-red"),
    ],
)
def test_to_rgb_converts_every_mode(img: Image.Image, expected: tuple[int, int, int]) -> None:
    out = to_rgb(img)
    assert out.mode == "RGB"
    assert out.size == img.size
    got = out.getpixel((1, 1))
    assert isinstance(got, tuple)
    assert all(abs(a - b) <= 2 for a, b in zip(got, expected, strict=True)), got


def test_to_rgb_palette_transparency_is_white() -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    assert to_rgb(img).getpixel((0, 0)) == (200, 10, 10)
    img.info["transparency"] = 1
    assert to_rgb(img).getpixel((0, 0)) == (255, 255, 255)


def test_to_rgb_returns_rgb_images_unchanged() -> None:
    img = Image.new("RGB", (4, 4), (1, 2, 3))
    assert to_rgb(img) is img


# --- formats and shapes --------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "GIF", "BMP", "JPEG"])
def test_common_formats_read_alike(tmp_path: Path, fmt: str) -> None:
    path = imagegen.save_as(tmp_path / f"photo.{fmt.lower()}", fmt, seed=7)
    info = read_info(path)
    assert (info.width, info.height, info.format, info.frames) == (320, 240, fmt, 1)
    reference = read_info(imagegen.save_as(tmp_path / "ref.png", "PNG", seed=7))
    assert bits_apart(info.phash, reference.phash) <= 4
    assert open_image(path).size == (320, 240)


def test_animated_gif_counts_frames_and_shows_the_first(tmp_path: Path) -> None:
    path = imagegen.animated_gif(tmp_path / "anim.gif", frames=5, seed=10)
    info = read_info(path)
    assert (info.frames, info.width, info.height, info.format) == (5, 160, 120, "GIF")
    with Image.open(path) as gif:
        first = gif.convert("RGB")
        gif.seek(1)
        second = gif.convert("RGB")
    shown = open_image(path)
    assert mean_diff(shown, first) == 0
    assert mean_diff(shown, second) > 10
    assert (
        bits_apart(info.phash, read_info(imagegen.save_as(tmp_path / "f.png", "PNG", first)).phash)
        <= 2
    )


def test_multipage_tiff_counts_pages_and_shows_the_first(tmp_path: Path) -> None:
    path = imagegen.multipage_tiff(tmp_path / "scan.tiff", pages=3, seed=20)
    info = read_info(path)
    assert (info.frames, info.width, info.height, info.format) == (3, 320, 240, "TIFF")
    assert mean_diff(open_image(path), imagegen.photo(320, 240, 20)) == 0


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_one_pixel_image(tmp_path: Path, fmt: str) -> None:
    path = imagegen.save_as(tmp_path / f"dot.{fmt.lower()}", fmt, size=(1, 1))
    info = read_info(path)
    assert (info.width, info.height, info.frames) == (1, 1, 1)
    assert len(info.phash) == 16
    assert open_image(path).size == (1, 1)
    assert open_image(path, min_side=224).size == (1, 1)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_panorama(tmp_path: Path, fmt: str) -> None:
    path = imagegen.save_as(tmp_path / f"pano.{fmt.lower()}", fmt, size=(6000, 300))
    info = read_info(path)
    assert (info.width, info.height) == (6000, 300)
    assert open_image(path).size == (6000, 300)
    small = open_image(path, min_side=100)
    assert 100 <= small.height < 300
    assert small.width / small.height == pytest.approx(20, rel=0.01)


def test_non_ascii_and_spaces_in_path(tmp_path: Path) -> None:
    path = imagegen.save_jpeg(
        tmp_path / "Fotos 2024" / "été ☀" / "IMG 1.jpg", taken_at=datetime(2024, 7, 14, 9, 30)
    )
    info = read_info(path)
    assert info.taken_at == datetime(2024, 7, 14, 9, 30)
    assert open_image(str(path)).size == (640, 480)


def test_heic(tmp_path: Path) -> None:
    if not imagegen.heif_can_write():
        pytest.skip("pillow-heif cannot encode HEIF here, so no HEIC test file can be made")
    path = imagegen.save_as(tmp_path / "IMG_0001.HEIC", "HEIF", seed=5)
    info = read_info(path)
    assert (info.width, info.height, info.format, info.frames) == (320, 240, "HEIF", 1)
    assert mean_diff(open_image(path), imagegen.photo(320, 240, 5)) < 6.0
    reference = read_info(imagegen.save_as(tmp_path / "ref.png", "PNG", seed=5))
    assert bits_apart(info.phash, reference.phash) <= 4

    # pillow-heif stores an EXIF orientation as a HEIF transform that the decoder
    # applies itself: the photo is shown upright and nothing is left to apply.
    display = imagegen.photo(320, 240, 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = tmp_path / "rotated.heic"
    display.transpose(Image.Transpose.ROTATE_90).save(rotated, "HEIF", exif=exif.tobytes())
    info = read_info(rotated)
    assert (info.width, info.height, info.orientation) == (320, 240, 1)
    assert mean_diff(open_image(rotated), display) < 6.0

    broken = tmp_path / "broken.heic"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for read in (read_info, open_image):
        with pytest.raises(ImageError) as caught:
            read(broken)
        assert "damaged" in str(caught.value)
        assert "\n" not in str(caught.value)


# --- metadata ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "model", "camera"),
    [
        ("Canon", "Canon EOS 5D", "Canon EOS 5D"),
        ("NIKON CORPORATION", "NIKON D750", "NIKON D750"),
        ("Apple", "iPhone 12", "Apple iPhone 12"),
        ("  FUJIFILM\x00", "X-T3 \x00\x00", "FUJIFILM X-T3"),
        ("Canon", None, "Canon"),
        (None, "EOS R5", "EOS R5"),
        (None, None, None),
        ("\x00\x00", " ", None),
    ],
)
def test_camera_from_exif(
    tmp_path: Path, make: str | None, model: str | None, camera: str | None
) -> None:
    path = imagegen.save_jpeg(tmp_path / "cam.jpg", size=(64, 48), make=make, model=model)
    assert read_info(path).camera == camera


DATE_ORIGINAL, DATE_DIGITIZED, DATE_TIME = 0x9003, 0x9004, 0x0132


@pytest.mark.parametrize(
    ("ifd0", "exif_ifd", "taken_at"),
    [
        ({}, {DATE_ORIGINAL: "2023:05:06 07:08:09"}, datetime(2023, 5, 6, 7, 8, 9)),
        (
            {DATE_TIME: "2001:01:01 00:00:00"},
            {DATE_ORIGINAL: "2023:05:06 07:08:09", DATE_DIGITIZED: "2022:01:01 00:00:00"},
            datetime(2023, 5, 6, 7, 8, 9),
        ),
        (
            {DATE_TIME: "2001:01:01 00:00:00"},
            {DATE_DIGITIZED: "2022:02:03 04:05:06"},
            datetime(2022, 2, 3, 4, 5, 6),
        ),
        ({DATE_TIME: "2019:12:31 23:59:59\x00"}, {}, datetime(2019, 12, 31, 23, 59, 59)),
        (
            {},
            {DATE_ORIGINAL: "2020:01:02 03:04:05", 0x9291: "25"},
            datetime(2020, 1, 2, 3, 4, 5, 250000),
        ),
        ({}, {DATE_ORIGINAL: "0000:00:00 00:00:00"}, None),
        ({}, {DATE_ORIGINAL: "    :  :     :  :  "}, None),
        ({}, {DATE_ORIGINAL: "2023:13:45 25:61:00"}, None),
        (
            {DATE_TIME: "2018:03:04 05:06:07"},
            {DATE_ORIGINAL: "0000:00:00 00:00:00"},
            datetime(2018, 3, 4, 5, 6, 7),
        ),
        ({}, {}, None),
    ],
    ids=[
        "original",
        "original-wins",
        "digitized",
        "datetime-with-nul",
        "subseconds",
        "zeros",
        "blank",
        "impossible",
        "zeros-then-datetime",
        "none",
    ],
)
def test_date_taken_from_exif(
    tmp_path: Path, ifd0: dict[int, str], exif_ifd: dict[int, str], taken_at: datetime | None
) -> None:
    path = imagegen.save_jpeg(tmp_path / "d.jpg", size=(64, 48), exif=ifd0, exif_ifd=exif_ifd)
    assert read_info(path).taken_at == taken_at


def test_corrupt_exif_does_not_make_the_photo_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "badexif.jpg"
    # An orientation entry pointing at an Exif IFD beyond the end of the segment.
    exif = (
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x02"
        b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
        b"\x87\x69\x00\x04\x00\x00\x00\x01\x00\x00\xff\xff"
    )
    imagegen.photo(64, 48).save(path, "JPEG", exif=exif)
    info = read_info(path)
    assert (info.orientation, info.width, info.height, info.taken_at) == (6, 48, 64, None)


def test_image_info_is_immutable_and_well_formed(tmp_path: Path) -> None:
    info = read_info(imagegen.save_jpeg(tmp_path / "a.jpg"))
    assert isinstance(info, ImageInfo)
    assert len(info.phash) == 16 and info.phash == info.phash.lower()
    int(info.phash, 16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.width = 1  # type: ignore[misc]


def test_different_photos_have_distant_phashes(tmp_path: Path) -> None:
    hashes = [read_info(imagegen.save_jpeg(tmp_path / f"{s}.jpg", seed=s)).phash for s in range(6)]
    distances = [bits_apart(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) > 10


def test_reduced_decode_phash_matches_full_decode(tmp_path: Path) -> None:
    path = imagegen.save_jpeg(tmp_path / "big.jpg", size=(2400, 1800), seed=8)
    full = str(imagehash.phash(stored(path)))
    assert bits_apart(read_info(path).phash, full) <= 4


# --- reduced decoding ----------------------------------------------------------


@pytest.fixture(scope="module")
def large_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return imagegen.save_jpeg(
        tmp_path_factory.mktemp("large") / "large.jpg", size=(2400, 1800), seed=9
    )


@pytest.mark.parametrize("min_side", [100, 224, 256, 450, 451, 900, 1800, 5000])
def test_open_image_min_side_decodes_smaller_but_not_too_small(
    large_jpeg: Path, min_side: int
) -> None:
    img = open_image(large_jpeg, min_side=min_side)
    assert img.mode == "RGB"
    assert img.width / img.height == pytest.approx(4 / 3, rel=0.01)
    assert min(img.size) >= min(min_side, 1800)
    # Not needlessly large: either the whole photo or less than twice what was asked.
    assert img.size == (2400, 1800) or min(img.size) < 2 * min_side


def test_open_image_min_side_content_matches_full_decode(large_jpeg: Path) -> None:
    small = open_image(large_jpeg, min_side=224)
    assert small.size == (300, 225)
    full = open_image(large_jpeg).resize(small.size, Image.Resampling.BOX)
    assert mean_diff(small, full) < 3.0


def test_open_image_min_side_reduces_other_formats(tmp_path: Path) -> None:
    path = imagegen.save_as(tmp_path / "big.png", "PNG", size=(1280, 960))
    img = open_image(path, min_side=224)
    assert img.size == (320, 240)
    assert open_image(path, min_side=500).size == (1280, 960)  # a factor of 2 would go below


def test_open_image_rejects_a_bad_min_side(large_jpeg: Path) -> None:
    with pytest.raises(ValueError, match="min_side"):
        open_image(large_jpeg, min_side=0)


# --- bad files -----------------------------------------------------------------

BAD_FILE_WORDS = {
    "empty.jpg": ["empty"],
    "truncated.jpg": ["truncated"],
    "text.jpg": ["not an image"],
    "garbage.png": ["damaged", "PNG"],
    "bomb.png": ["too large", "30000", "900 megapixels", "bomb"],
    "badcrc.png": ["damaged", "PNG"],
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return imagegen.bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("name", sorted(BAD_FILE_WORDS))
@pytest.mark.parametrize("read", [read_info, open_image], ids=["read_info", "open_image"])
def test_bad_files_are_refused_with_a_reason(bad: dict[str, Path], name: str, read: object) -> None:
    assert callable(read)
    with pytest.raises(ImageError) as caught:
        read(bad[name])
    message = str(caught.value)
    assert "\n" not in message
    for word in BAD_FILE_WORDS[name]:
        assert word in message


def test_bad_files_covers_every_generated_file(bad: dict[str, Path]) -> None:
    assert set(bad) == set(BAD_FILE_WORDS)


def test_bomb_between_one_and_two_limits_is_refused_without_a_warning(tmp_path: Path) -> None:
    # Pillow only *warns* between 1x and 2x its limit; that must still be an error.
    path = imagegen.huge_png(tmp_path / "big.png", 10000, 10000)
    assert MAX_PIXELS < 10000 * 10000 < 2 * MAX_PIXELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for read in (read_info, open_image):
            with pytest.raises(
                ImageError, match="too large: 10000\N{MULTIPLICATION SIGN}10000 = 100 megapixels"
            ):
                read(path)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_max_pixels_is_pillows_default() -> None:
    assert MAX_PIXELS == 89_478_485  # Pillow: 1024 * 1024 * 1024 // 4 // 3
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bombs_are_refused_from_many_threads(tmp_path: Path) -> None:
    paths = [
        imagegen.huge_png(tmp_path / "a.png", 10000, 10000),
        imagegen.huge_png(tmp_path / "b.png", 30000, 30000),
    ] * 8

    def outcome(path: Path) -> str:
        try:
            open_image(path, min_side=224)
        except ImageError as e:
            return str(e)
        return "opened"

    with warnings.catch_warnings(record=True) as caught, ThreadPoolExecutor(4) as pool:
        results = list(pool.map(outcome, paths))
    assert all("too large" in r for r in results)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_missing_file_folder_and_broken_links(tmp_path: Path) -> None:
    links = imagegen.bad_links(tmp_path / "links")
    cases = {
        tmp_path / "gone.jpg": "no such file",
        tmp_path: "folder",
        links["dangling.jpg"]: "no such file",
        links["loop.jpg"]: "symbolic links",
    }
    for path, words in cases.items():
        for read in (read_info, open_image):
            with pytest.raises(ImageError, match=words):
                read(path)


def test_os_errors_keep_the_os_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = imagegen.save_jpeg(tmp_path / "locked.jpg", size=(64, 48))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    # Works as root too, unlike a chmod; the module opens files with builtin open.
    monkeypatch.setattr(images, "open", denied, raising=False)
    with pytest.raises(ImageError, match="cannot read file: permission denied"):
        read_info(path)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root (or a non-POSIX system) reads files whatever their permissions",
)
def test_permission_denied(tmp_path: Path) -> None:
    path = imagegen.save_jpeg(tmp_path / "private.jpg", size=(64, 48))
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="permission denied"):
            read_info(path)
    finally:
        path.chmod(0o644)


def test_unsupported_format_is_not_parsed(tmp_path: Path) -> None:
    # Pillow could open an ICO, but the library does not treat it as a photo.
    buffer = io.BytesIO()
    imagegen.photo(32, 32).save(buffer, "ICO")
    path = tmp_path / "icon.jpg"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ImageError, match="not an image file"):
        read_info(path)


def test_image_extensions() -> None:
    assert {".jpg", ".jpeg", ".png", ".heic", ".tif", ".webp", ".gif", ".bmp"} <= IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)


def test_crop_box_clamps_to_the_image_and_accepts_corners_in_either_order() -> None:
    img = Image.new("RGB", (100, 60))
    assert images.crop_box(img, (-10, -5, 40, 30)).size == (40, 30)
    assert images.crop_box(img, (90, 50, 20, 10)).size == (70, 40)
    assert images.crop_box(img, (50, 20, 500, 500)).size == (50, 40)
    with pytest.raises(ValueError, match="too small"):
        images.crop_box(img, (10, 10, 17, 50))
    with pytest.raises(ValueError, match="too small"):
        images.crop_box(img, (95, 0, 200, 60))  # 5 px left once clamped
