"""Camera RAW, AVIF and JPEG XL through dino_desktop.core.images.

The RAWs are real DNGs written by `rawgen` (a Bayer mosaic LibRaw develops,
with or without an embedded preview JPEG): what a user notices is that a RAW
shows upright with the right size, date and camera, that the quick preview and
the full development show the same picture, and that a broken RAW is refused
with a readable reason instead of crashing the scan.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import imagegen
import numpy as np
import pytest
import rawgen
from PIL import Image

from dino_desktop.core import images, raw
from dino_desktop.core.images import (
    IMAGE_EXTENSIONS,
    RAW_EXTENSIONS,
    ImageError,
    is_raw_format,
    open_image,
    read_info,
    read_jpeg_bytes,
)

pytestmark = pytest.mark.skipif(not raw.RAW_SUPPORTED, reason="rawpy is not installed")

SENSOR = (600, 400)
PREVIEW = (320, 214)  # a camera's preview: the sensor's 3:2 frame, smaller
TAKEN = datetime(2024, 5, 6, 7, 8, 9, 123000)
CAMERA = ("Canon", "Canon EOS R5")

# The stored pixels for each orientation (the inverse of the display transform),
# as in imagegen.oriented_pair.
_STORE = imagegen._STORE_TRANSPOSE


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32)


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    if a.size != b.size:
        b = b.resize(a.size, Image.Resampling.BOX)
    return float(np.abs(pixels(a) - pixels(b)).mean())


def bits_apart(hash_a: str, hash_b: str) -> int:
    return (int(hash_a, 16) ^ int(hash_b, 16)).bit_count()


def dng(
    folder: Path,
    name: str,
    orientation: int = 1,
    *,
    preview: tuple[int, int] | None = PREVIEW,
    size: tuple[int, int] = SENSOR,
    seed: int = 3,
    **kwargs: object,
) -> Path:
    """A DNG whose *displayed* picture is imagegen.photo(*size, seed) under any orientation."""
    display = imagegen.photo(*size, seed=seed)
    transpose = _STORE.get(orientation)
    stored = display if transpose is None else display.transpose(transpose)
    if preview is not None and orientation >= 5:
        preview = (preview[1], preview[0])  # the preview is in sensor orientation too
    return rawgen.write_dng(
        folder / name,
        *stored.size,
        pattern=stored,
        orientation=orientation,
        preview=preview,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def upright(tmp_path_factory: pytest.TempPathFactory) -> Image.Image:
    """The reference: the full development of an upright DNG of the same scene."""
    path = dng(tmp_path_factory.mktemp("ref"), "upright.dng", preview=None)
    return open_image(path)


# --- the extensions --------------------------------------------------------------


def test_every_libraw_extension_is_a_raw_and_an_image() -> None:
    required = {
        *(".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".sr2", ".srf", ".raf"),
        *(".orf", ".rw2", ".pef", ".srw", ".3fr", ".iiq", ".erf", ".kdc", ".dcr", ".mrw"),
        *(".x3f", ".rwl", ".mos", ".mef", ".raw", ".fff", ".gpr", ".k25", ".cap"),
    }
    assert required <= RAW_EXTENSIONS
    assert RAW_EXTENSIONS <= IMAGE_EXTENSIONS
    assert {".avif", ".jxl"} <= IMAGE_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in RAW_EXTENSIONS)
    # Stored formats fit the catalogue's String(16) column.
    assert all(len(ext) - 1 <= 16 for ext in RAW_EXTENSIONS)


def test_is_raw_format_tells_raw_formats_from_pillow_ones() -> None:
    for fmt in ("DNG", "CR3", "NEF", "ARW", "RAF", "dng"):
        assert is_raw_format(fmt)
    for fmt in ("JPEG", "MPO", "PNG", "TIFF", "HEIF", "AVIF", "JXL", "WEBP", "", "unknown"):
        assert not is_raw_format(fmt)


# --- read_info -------------------------------------------------------------------


@pytest.mark.parametrize("preview", [PREVIEW, None], ids=["preview", "no-preview"])
def test_read_info_of_a_dng(tmp_path: Path, preview: tuple[int, int] | None) -> None:
    path = dng(tmp_path, "photo.dng", preview=preview, taken_at=TAKEN, camera=CAMERA)
    info = read_info(path)
    assert (info.width, info.height) == SENSOR
    assert info.orientation == 1
    assert info.format == "DNG" and is_raw_format(info.format)
    assert info.frames == 1
    assert info.taken_at == TAKEN  # DateTimeOriginal + SubsecTimeOriginal
    assert info.camera == "Canon EOS R5"  # the maker is not repeated
    assert len(info.phash) == 16


@pytest.mark.parametrize("preview", [PREVIEW, None], ids=["preview", "no-preview"])
def test_read_info_without_date_or_make(tmp_path: Path, preview: tuple[int, int] | None) -> None:
    info = read_info(dng(tmp_path, "plain.dng", preview=preview))
    # No date at all, not LibRaw's "no date" (the epoch) from the EXIF it writes
    # into a preview that has none.
    assert info.taken_at is None
    # Without Make/Model, LibRaw's own parse of the DNG's UniqueCameraModel.
    assert info.camera in (None, "DINO Test Sensor")


def test_the_format_is_the_extension(tmp_path: Path) -> None:
    # LibRaw reads a DNG whatever its name; the catalogue keeps what the file is called.
    path = dng(tmp_path, "renamed.NEF")
    assert read_info(path).format == "NEF"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_gives_the_display_size(tmp_path: Path, orientation: int) -> None:
    info = read_info(dng(tmp_path, f"o{orientation}.dng", orientation))
    assert info.orientation == orientation
    assert (info.width, info.height) == SENSOR  # the display size, not the sensor's


def test_preview_and_development_give_the_same_phash(tmp_path: Path) -> None:
    with_preview = read_info(dng(tmp_path, "a.dng", 6))
    tiny_preview = read_info(dng(tmp_path, "b.dng", 6, preview=(32, 22)))  # too small: developed
    no_preview = read_info(dng(tmp_path, "c.dng", 6, preview=None))
    upright = read_info(dng(tmp_path, "d.dng", 1, preview=None))
    assert bits_apart(with_preview.phash, no_preview.phash) <= 6
    assert tiny_preview.phash == no_preview.phash
    assert bits_apart(no_preview.phash, upright.phash) <= 4
    other = read_info(dng(tmp_path, "e.dng", 1, seed=11))
    assert bits_apart(other.phash, upright.phash) > 12


# --- open_image: orientation and the preview/development choice ----------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_both_paths_show_the_raw_upright(
    tmp_path: Path, orientation: int, upright: Image.Image
) -> None:
    path = dng(tmp_path, f"o{orientation}.dng", orientation)
    developed = open_image(path)  # LibRaw applies the orientation
    from_preview = open_image(path, min_side=200)  # the preview, turned here
    assert developed.mode == from_preview.mode == "RGB"
    assert developed.size == SENSOR
    assert from_preview.size == PREVIEW  # the preview, not a development
    # Demosaicing noise only (the turned scene meets the Bayer filter differently).
    assert mean_diff(developed, upright) < 7.0
    assert mean_diff(from_preview, upright) < 7.0  # plus JPEG and resampling
    assert mean_diff(from_preview, developed) < 7.0
    if orientation != 1:
        # Exactly once: turning once more gives another picture (or shape).
        twice = images._apply_orientation(developed, orientation)
        assert twice.size != SENSOR or mean_diff(twice, upright) > 20


def test_preview_and_development_have_the_same_colours(tmp_path: Path) -> None:
    path = dng(tmp_path, "colours.dng")
    developed = pixels(open_image(path)).mean(axis=(0, 1))
    previewed = pixels(open_image(path, min_side=100)).mean(axis=(0, 1))
    assert np.abs(developed - previewed).max() < 3.0


def test_min_side_picks_preview_half_size_or_full_development(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = dng(tmp_path, "big.dng", size=(1200, 800), preview=(480, 320))
    developed: list[bool] = []
    develop = raw.RawFile.develop

    def spy(self: raw.RawFile, *, half_size: bool) -> Image.Image:
        developed.append(half_size)
        return develop(self, half_size=half_size)

    monkeypatch.setattr(raw.RawFile, "develop", spy)
    # The preview (480x320) has the 300 pixels asked for: no development at all.
    assert open_image(path, min_side=300).size == (480, 320)
    assert developed == []
    # 320 < 350 <= 400: a half-size development (600x400) does.
    assert open_image(path, min_side=350).size == (600, 400)
    assert developed == [True]
    # Over 400: only the full development has it.
    assert open_image(path, min_side=500).size == (1200, 800)
    assert developed == [True, False]
    # The viewer at 100 %: always the full development.
    assert open_image(path).size == (1200, 800)
    assert developed == [True, False, False]


def test_reduced_decode_of_the_preview(tmp_path: Path) -> None:
    # The preview is decoded through JPEG DCT scaling like any JPEG: 480x320 at
    # min_side 100 is decoded at 1/2 (then reduced), shorter side still >= 100.
    path = dng(tmp_path, "big.dng", size=(1200, 800), preview=(480, 320))
    small = open_image(path, min_side=100)
    assert min(small.size) >= 100 and small.size[0] < 480


def test_tiny_broken_or_letterboxed_previews_fall_back_to_development(tmp_path: Path) -> None:
    tiny = dng(tmp_path, "tiny.dng", preview=(32, 22))
    broken = dng(tmp_path, "broken.dng", broken_preview=True)
    letterboxed = dng(tmp_path, "letterbox.dng", preview=(320, 240))  # 4:3 of a 3:2 frame
    for path in (tiny, broken, letterboxed):
        # A half-size development (300x200) reduced by 2; the preview would give 160x107.
        assert open_image(path, min_side=100).size == (150, 100)
        assert read_info(path).width == SENSOR[0]


def test_preview_turn() -> None:
    landscape = (6000, 4000)
    assert raw.preview_turn((1620, 1080), landscape, 6) == 6
    # A preview that the camera stored upright already is not turned again.
    assert raw.preview_turn((1080, 1620), landscape, 6) == 1
    assert raw.preview_turn((1080, 1620), landscape, 1) is None
    assert raw.preview_turn((160, 120), landscape, 1) is None  # letterboxed thumbnail
    assert raw.preview_turn((0, 120), landscape, 1) is None


# --- bad files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_dngs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("good")
    return dng(folder, "preview.dng"), dng(folder, "nopreview.dng", preview=None)


def test_truncated_raw_is_refused_with_a_reason(
    tmp_path: Path, good_dngs: tuple[Path, Path]
) -> None:
    with_preview, without = good_dngs
    cut = rawgen.truncated(without, tmp_path / "cut.dng", 0.5)
    for call in (lambda: read_info(cut), lambda: open_image(cut), lambda: open_image(cut, 64)):
        with pytest.raises(ImageError, match=r"damaged or unsupported RAW file .*truncated"):
            call()
    # With a preview, quick reads still work from the preview (the camera's
    # JPEG is intact), while developing the cut raw data fails cleanly.
    cut = rawgen.truncated(with_preview, tmp_path / "cut-preview.dng", 0.5)
    assert read_info(cut).width == SENSOR[0]
    with pytest.raises(ImageError, match="truncated"):
        open_image(cut)
    # Cut inside the header: LibRaw does not even recognise it.
    stub = rawgen.truncated(with_preview, tmp_path / "stub.dng", 0.0005)
    with pytest.raises(ImageError, match="damaged or unsupported RAW file"):
        read_info(stub)


def test_corrupt_raw_is_refused_with_a_reason(tmp_path: Path, good_dngs: tuple[Path, Path]) -> None:
    bad = rawgen.corrupt(good_dngs[0], tmp_path / "bad.dng")
    for call in (lambda: read_info(bad), lambda: open_image(bad), lambda: open_image(bad, 64)):
        with pytest.raises(ImageError, match=r"^damaged or unsupported RAW file \(LibRaw: "):
            call()


def test_other_files_named_as_raw(tmp_path: Path) -> None:
    jpeg = imagegen.save_jpeg(tmp_path / "photo.nef")
    with pytest.raises(ImageError, match=r"^not a camera RAW file: it holds a JPEG image$"):
        read_info(jpeg)
    with pytest.raises(ImageError, match="not a camera RAW file"):
        open_image(jpeg, min_side=64)
    assert read_jpeg_bytes(jpeg) is None  # never handed to the GPU's JPEG decoder
    text = tmp_path / "notes.cr2"
    text.write_text("not a picture at all, but long enough to look at\n" * 4)
    with pytest.raises(ImageError, match=r"^damaged or unsupported RAW file \(LibRaw: .+\)$"):
        read_info(text)
    empty = tmp_path / "empty.arw"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="file is empty"):
        read_info(empty)
    folder = tmp_path / "folder.dng"
    folder.mkdir()
    with pytest.raises(ImageError, match="folder"):
        open_image(folder)
    with pytest.raises(ImageError, match="cannot read file"):
        read_info(tmp_path / "missing.dng")


def test_error_reasons_are_one_line(tmp_path: Path, good_dngs: tuple[Path, Path]) -> None:
    bad = [
        rawgen.truncated(good_dngs[1], tmp_path / "a.dng", 0.3),
        rawgen.corrupt(good_dngs[0], tmp_path / "b.dng", seed=5),
        imagegen.save_as(tmp_path / "c.raf", "PNG"),
    ]
    for path in bad:
        with pytest.raises(ImageError) as caught:
            open_image(path)
        reason = str(caught.value)
        assert reason and "\n" not in reason and "b'" not in reason and len(reason) < 250


def test_raw_over_the_pixel_limit_is_refused_before_decoding(
    tmp_path: Path, good_dngs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 200_000)  # the DNG has 240,000
    monkeypatch.setattr(raw.RawFile, "develop", lambda *a, **k: pytest.fail("developed"))
    monkeypatch.setattr(raw.RawFile, "preview", lambda *a, **k: pytest.fail("previewed"))
    for path in good_dngs:
        with pytest.raises(ImageError, match="image too large: 600×400"):
            read_info(path)
        with pytest.raises(ImageError, match="image too large"):
            open_image(path, min_side=64)


def test_read_jpeg_bytes_is_none_for_a_raw(good_dngs: tuple[Path, Path]) -> None:
    assert read_jpeg_bytes(good_dngs[0]) is None


def test_raws_open_concurrently(tmp_path: Path) -> None:
    paths = [dng(tmp_path, f"p{i}.dng", (1, 6, 3, 8)[i % 4], seed=i) for i in range(8)]
    serial = [(read_info(p), pixels(open_image(p, 64)).mean()) for p in paths]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda p: (read_info(p), pixels(open_image(p, 64)).mean()), paths))
    assert parallel == serial


# --- metadata of other RAW layouts ---------------------------------------------


def test_metadata_of_olympus_style_tiff_magic(tmp_path: Path) -> None:
    # ORF and RW2 are TIFFs under their own magic numbers.
    path = dng(tmp_path, "x.dng", taken_at=TAKEN, camera=("OM Digital", "OM-1"))
    data = path.read_bytes()
    for magic in (b"IIRO", b"IIU\x00"):
        ifd0, exif_ifd = raw.read_metadata(io.BytesIO(magic + data[4:]))
        assert ifd0[0x0110] == "OM-1"
        assert exif_ifd[0x9003] == "2024:05:06 07:08:09"


def test_metadata_of_a_cr3(tmp_path: Path) -> None:
    # A CR3 is ISO BMFF: IFD0 and the Exif IFD are small TIFFs in boxes CMT1, CMT2.
    ifd0 = Image.Exif()
    ifd0[0x010F], ifd0[0x0110] = "Canon", "Canon EOS R6"
    exif = Image.Exif()
    exif[0x9003], exif[0x9291] = "2023:12:24 18:30:00", "45"

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    def tiff(tags: Image.Exif) -> bytes:
        return tags.tobytes()[6:]  # without the "Exif\0\0" of a JPEG's APP1

    uuid = box(
        b"uuid", b"\x85\xc0\xb6\x87" * 4 + box(b"CMT1", tiff(ifd0)) + box(b"CMT2", tiff(exif))
    )
    data = box(b"ftyp", b"crx \x00\x00\x00\x01crx isom") + box(b"moov", uuid)
    got_ifd0, got_exif = raw.read_metadata(io.BytesIO(data))
    assert images._camera(got_ifd0) == "Canon EOS R6"
    assert images._taken_at_in(got_ifd0, got_exif) == datetime(2023, 12, 24, 18, 30, 0, 450000)


def test_metadata_of_something_else_is_empty() -> None:
    assert raw.read_metadata(io.BytesIO(b"FUJIFILMCCD-RAW 0201")) == ({}, {})
    assert raw.read_metadata(io.BytesIO(b"II*\x00\xff\xff\xff\x7f")) == ({}, {})


# --- AVIF and JPEG XL --------------------------------------------------------------

MODERN = [
    pytest.param(
        "AVIF",
        marks=pytest.mark.skipif(not images.AVIF_SUPPORTED, reason="no AVIF in this Pillow"),
    ),
    pytest.param(
        "JXL",
        marks=pytest.mark.skipif(not images.JXL_SUPPORTED, reason="pillow-jxl-plugin missing"),
    ),
]
KIND = {"AVIF": "AVIF", "JXL": "JPEG XL"}


def save_modern(path: Path, fmt: str, img: Image.Image, exif: Image.Exif | None = None) -> Path:
    img.save(path, fmt, quality=90, **({"exif": exif.tobytes()} if exif is not None else {}))
    return path


@pytest.mark.parametrize("fmt", MODERN)
def test_modern_format_round_trip(tmp_path: Path, fmt: str) -> None:
    assert fmt in images.SUPPORTED_FORMATS
    display = imagegen.photo(320, 240, seed=5)
    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x0110] = 6, "Apple", "iPhone 15"
    exif.get_ifd(0x8769)[0x9003] = "2023:01:02 03:04:05"
    path = save_modern(tmp_path / f"photo.{fmt.lower()}", fmt, display.transpose(_STORE[6]), exif)
    info = read_info(path)
    assert info.format == fmt
    assert info.orientation == 6
    assert (info.width, info.height) == (320, 240)
    assert info.taken_at == datetime(2023, 1, 2, 3, 4, 5)
    assert info.camera == "Apple iPhone 15"
    assert info.frames == 1
    shown = open_image(path)
    assert shown.size == (320, 240) and shown.mode == "RGB"
    assert mean_diff(shown, display) < 6.0  # upright: lossy coding noise only
    small = open_image(path, min_side=100)
    assert min(small.size) >= 100 and small.size[0] <= 320
    plain = save_modern(tmp_path / f"plain.{fmt.lower()}", fmt, display)
    assert bits_apart(read_info(plain).phash, info.phash) <= 4
    assert read_jpeg_bytes(path) is None


@pytest.mark.parametrize("fmt", MODERN)
def test_damaged_modern_format_is_named(tmp_path: Path, fmt: str) -> None:
    good = save_modern(tmp_path / f"good.{fmt.lower()}", fmt, imagegen.photo(64, 48)).read_bytes()
    for name, data in {"cut": good[: len(good) // 2], "noise": good[:20] + b"\x55" * 300}.items():
        path = tmp_path / f"{name}.{fmt.lower()}"
        path.write_bytes(data)
        with pytest.raises(ImageError, match=f"^damaged {KIND[fmt]} file"):
            read_info(path)
        with pytest.raises(ImageError, match=f"^damaged {KIND[fmt]} file"):
            open_image(path, 32)


@pytest.mark.parametrize("fmt", MODERN)
def test_modern_format_over_the_pixel_limit(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_modern(tmp_path / f"big.{fmt.lower()}", fmt, imagegen.photo(320, 240))
    monkeypatch.setattr(images, "MAX_PIXELS", 50_000)
    with pytest.raises(ImageError, match="image too large: 320×240"):
        read_info(path)


def _jxl_codestream(width: int, height: int, orientation: int) -> bytes:
    """A JPEG XL codestream header (not decodable further): SizeHeader + ImageMetadata."""
    fields = [
        (0, 1),  # not "small"
        (2, 2),  # U32 selector 2: 18 bits follow
        (height - 1, 18),
        (0, 3),  # ratio 0: the width follows
        (2, 2),
        (width - 1, 18),
        (0, 1),  # not all_default
        (1, 1),  # extra_fields
        (orientation - 1, 3),
    ]
    value, pos = 0, 0
    for field, bits in fields:
        value |= field << pos
        pos += bits
    return b"\xff\x0a" + value.to_bytes((pos + 7) // 8 + 8, "little")


def test_jxl_header_parse() -> None:
    assert images._jxl_header(io.BytesIO(_jxl_codestream(30000, 20000, 6))) == (30000, 20000, 6)
    for size in ((1, 1), (12, 10), (513, 17), (4096, 2304)):
        buf = io.BytesIO()
        Image.new("RGB", size, (10, 20, 30)).save(buf, "JXL", quality=50)
        assert images._jxl_header(io.BytesIO(buf.getvalue())) == (*size, 1)
    assert images._jxl_header(io.BytesIO(b"\xff\x0a")) is None
    assert images._jxl_header(io.BytesIO(b"\xff\xd8\xff")) is None


@pytest.mark.skipif(not images.JXL_SUPPORTED, reason="pillow-jxl-plugin missing")
def test_jxl_bomb_is_refused_before_the_plugin_decodes_it(tmp_path: Path) -> None:
    # The plugin decodes inside Image.open: the header is checked first.
    path = tmp_path / "bomb.jxl"
    path.write_bytes(_jxl_codestream(30000, 20000, 1) + b"\x00" * 64)
    with pytest.raises(ImageError, match="image too large: 30000×20000"):
        read_info(path)


@pytest.mark.skipif(not images.JXL_SUPPORTED, reason="pillow-jxl-plugin missing")
def test_jxl_in_a_container_with_exif(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    path = save_modern(tmp_path / "c.jxl", "JXL", imagegen.photo(96, 64), exif)
    assert path.read_bytes().startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n")
    with path.open("rb") as fp:
        assert images._jxl_header(fp) == (96, 64, 1)
    assert read_info(path).orientation == 8


def test_avif_and_heif_brands_are_told_apart() -> None:
    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
        return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 16

    assert images._sniff(ftyp(b"avif", b"mif1")) == "AVIF"
    assert images._sniff(ftyp(b"mif1", b"mif1", b"avif")) == "AVIF"
    assert images._sniff(ftyp(b"mif1", b"mif1", b"heic")) == "HEIF"
    assert images._sniff(ftyp(b"heic", b"mif1")) == "HEIF"
    assert images._sniff(b"\xff\x0a\xfa\x47") == "JPEG XL"


@pytest.mark.skipif(os.name != "posix", reason="byte file names are a POSIX thing")
def test_raw_with_a_name_that_is_not_utf8(tmp_path: Path, good_dngs: tuple[Path, Path]) -> None:
    # rawpy passes names to LibRaw as strict UTF-8; Linux names are any bytes.
    name = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.dng"))
    try:
        shutil.copy(good_dngs[0], name)
    except (OSError, UnicodeError):  # pragma: no cover - a file system that refuses it
        pytest.skip("this file system does not take non-UTF-8 names")
    assert read_info(name).width == SENSOR[0]
    assert open_image(name).size == SENSOR
