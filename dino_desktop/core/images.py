"""Safe opening and decoding of user photos.

Every part of the app that reads pixels or photo metadata from a user's file goes
through this module, so that:

* anything wrong with a file (empty, truncated, not an image, damaged, a
  decompression bomb, unreadable, vanished) surfaces as one `ImageError` whose
  text is a readable one-line reason, never as a traceback or a printed warning;
* sizes, perceptual hashes and decoded images describe the photo as the user sees
  it, i.e. after its EXIF orientation;
* JPEGs are decoded at reduced scale (`Image.draft`: libjpeg's DCT scaling) when
  only a small image is needed, which is most of the embedding pipeline's decode
  cost saved (a 12 MP JPEG: ~155 ms full decode vs ~32 ms drafted);
* every colour mode becomes 8-bit RGB the same way (`to_rgb`);
* HEIC/HEIF is read through pillow-heif, AVIF through Pillow's own plugin and
  JPEG XL through pillow-jxl-plugin, each when it is available;
* camera RAW files (`RAW_EXTENSIONS`: DNG, CR2, CR3, NEF, ARW, RAF...) are read
  through LibRaw (rawpy, module `raw`), with the same limits and error
  reasons. Sizes, hashes and reduced decodes use the camera's embedded preview
  JPEG when it is large enough (a few ms instead of a development's second);
  `open_image` without `min_side` develops the raw data.

Only the formats in `SUPPORTED_FORMATS` are ever parsed: Pillow can open dozens
of exotic formats (EPS even runs Ghostscript), which a photo library has no use
for and which would widen the attack surface of opening untrusted files.

The functions here are thread-safe: the embedder calls `open_image` from a
thread pool. No Qt here; the GUI turns these images into QImages itself.
"""

from __future__ import annotations

import functools
import io
import os
import re
import stat
import struct
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Final

import imagehash
import numpy as np
from PIL import (
    BmpImagePlugin,
    ExifTags,
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from dino_desktop.core import raw as _raw
from dino_desktop.core.raw import RAW_EXTENSIONS, is_raw_format

try:
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - pillow-heif is a dependency, but optional at run time
    HEIF_SUPPORTED = False
else:
    try:
        register_heif_opener()
        HEIF_SUPPORTED = True
    except Exception:  # pragma: no cover - e.g. libheif failing to load
        HEIF_SUPPORTED = False

try:
    from PIL import AvifImagePlugin
except ImportError:  # pragma: no cover - Pillow < 11.2
    AVIF_SUPPORTED = False
else:
    # False when this Pillow was built without libavif: the plugin is there
    # but refuses every file.
    AVIF_SUPPORTED = bool(AvifImagePlugin.SUPPORTED)

try:
    from pillow_jxl import JpegXLImagePlugin
except ImportError:  # pragma: no cover - pillow-jxl-plugin is a dependency, but optional
    JXL_SUPPORTED = False
else:
    JXL_SUPPORTED = JpegXLImagePlugin.JXLImageFile.format in Image.OPEN

if TYPE_CHECKING:
    from PIL import ImageCms

__all__ = [
    "AVIF_SUPPORTED",
    "HEIF_SUPPORTED",
    "IMAGE_EXTENSIONS",
    "JXL_SUPPORTED",
    "MAX_PIXELS",
    "RAW_EXTENSIONS",
    "SUPPORTED_FORMATS",
    "ImageError",
    "ImageInfo",
    "JpegBytes",
    "is_raw_format",
    "open_image",
    "read_info",
    "read_jpeg_bytes",
    "to_rgb",
]

IMAGE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".webp",
        ".tif",
        ".tiff",
        ".gif",
        ".bmp",
        ".heic",
        ".heif",
        ".hif",
        ".avif",
        ".jxl",
    }
    | RAW_EXTENSIONS
)

# Pillow's own default (~89.5 MP). Read once at import so that a later change of
# Image.MAX_IMAGE_PIXELS elsewhere (or None, which disables Pillow's check)
# cannot silently switch our protection off.
MAX_PIXELS: Final[int] = Image.MAX_IMAGE_PIXELS or 89_478_485

# Pillow format ids that we let Image.open try, in this order. Importing a plugin
# registers its format: importing exactly these here also means Image.open never
# imports plugins lazily, from worker threads. MPO (multi-picture JPEGs from
# phones) is opened by the JPEG plugin, so it needs no entry of its own. AVIF
# comes before HEIF: both accept the generic "mif1" brand, and libheif here has
# no AV1 decoder, while Pillow's AVIF plugin passes a HEIC on to the next one.
# Camera RAWs are not Pillow formats: they go through LibRaw (`_raw`).
SUPPORTED_FORMATS: Final[tuple[str, ...]] = tuple(
    fmt
    for fmt in (
        JpegImagePlugin.JpegImageFile.format,
        PngImagePlugin.PngImageFile.format,
        WebPImagePlugin.WebPImageFile.format,
        TiffImagePlugin.TiffImageFile.format,
        GifImagePlugin.GifImageFile.format,
        BmpImagePlugin.BmpImageFile.format,
        *(["AVIF"] if AVIF_SUPPORTED else []),
        "HEIF",  # registered by pillow-heif
        "JXL",  # registered by pillow-jxl-plugin
    )
    if fmt in Image.OPEN
)

# phash needs only 32x32 pixels; reducing to a short side of 64 keeps enough
# detail for a stable Lanczos downsampling.
_PHASH_DECODE_SIDE: Final = 64

INGEST_SIDE: Final = 256
"""Shorter side of the one reduced decode a new photo gets (`decode_bytes`, and
`read_info`'s own): the model's resize (weights.RESIZE_SIZE) and the thumbnail
edge (thumbnails.DEFAULT_EDGE). The phash is taken from it reduced to 64, so
the one-pass ingest (core/ingest.py) and `read_info` store the same hash. For
a 12 MP JPEG it is the same 1/8 DCT scale a 64-px decode gets."""

_WHITE: Final = (255, 255, 255)

# Display transform for each EXIF orientation value (same table as
# ImageOps.exif_transpose).
_TRANSPOSE: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Modes that Image.reduce accepts and that average correctly (RGBA/LA are
# averaged premultiplied by Pillow). Other modes ("P", "1", "I;16"...) are
# converted to RGB first.
_REDUCIBLE_MODES: Final = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F"})

_EXIF_IFD: Final = int(ExifTags.IFD.Exif)
_ORIENTATION: Final = int(ExifTags.Base.Orientation)
_MAKE: Final = int(ExifTags.Base.Make)
_MODEL: Final = int(ExifTags.Base.Model)
# (date tag, sub-second tag, IFD it lives in): the moment the shutter fired first,
# then when it was digitised (scans), then the file's last-change stamp.
_DATE_TAGS: Final = (
    (int(ExifTags.Base.DateTimeOriginal), int(ExifTags.Base.SubsecTimeOriginal), True),
    (int(ExifTags.Base.DateTimeDigitized), int(ExifTags.Base.SubsecTimeDigitized), True),
    (int(ExifTags.Base.DateTime), int(ExifTags.Base.SubsecTime), False),
)
_DATE_RE: Final = re.compile(
    r"(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?"
)

# Leading bytes of the supported formats, to tell a damaged image file from a
# file that is not an image at all.
_SIGNATURES: Final = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\xff\x0a", "JPEG XL"),  # a bare codestream
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),  # the ISO BMFF container
)
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
)
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
# Leading bytes read to tell formats apart (an ftyp box's compatible brands
# follow its major brand).
_SNIFF_BYTES: Final = 64


class ImageError(Exception):
    """A file could not be read as an image; `str(error)` is a one-line reason for the user."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the library stores about a photo, as the user sees it (after EXIF orientation)."""

    width: int
    height: int
    orientation: int
    """EXIF orientation 1..8 of the stored pixels (applied by this module's decodes); 1 when
    absent or invalid, and for HEIF and for a JPEG XL whose codestream has an orientation,
    whose decoders already apply it. For a RAW, LibRaw's (the camera's) orientation."""
    taken_at: datetime | None
    camera: str | None
    format: str
    """Pillow's format name ("JPEG", "PNG", "HEIF", "AVIF", "JXL"...); for a camera RAW its
    extension in capitals ("DNG", "CR3", "NEF": see `is_raw_format`)."""
    phash: str
    """16 lowercase hex digits: the 64-bit imagehash.phash of the display-oriented image."""
    frames: int


def read_info(path: str | os.PathLike[str]) -> ImageInfo:
    """Read size, orientation, date taken, camera, format, frame count and phash of a photo.

    Only the header and a reduced decode of the first frame are read, so this is
    cheap even for large photos (for a RAW: its metadata and embedded preview, or
    a half-size development when it has no usable preview). Raises `ImageError`
    for anything wrong with the file.
    """
    if _raw.is_raw_path(path):
        return _raw.read_info(path)
    with _errors(), _open_file(path) as fp:
        return _info_and_image(_identify(fp), INGEST_SIDE)[0]


def decode_bytes(data: bytes, min_side: int = INGEST_SIDE) -> tuple[ImageInfo, Image.Image]:
    """`read_info` and `open_image(min_side=...)` of a (non-RAW) file's bytes, from one
    decode: the one-pass ingest reads a file once and derives everything from this.
    Raises `ImageError` for anything wrong with the data."""
    if not data:
        raise ImageError("file is empty")
    with _errors():
        return _info_and_image(_identify(io.BytesIO(data)), min_side)


def _info_and_image(img: ImageFile.ImageFile, min_side: int) -> tuple[ImageInfo, Image.Image]:
    """The info of an identified photo and its first frame decoded at `min_side`,
    display-oriented; the phash comes from that image."""
    width, height = img.size
    fmt = img.format or "unknown"
    # An MPO is a JPEG with extra pictures (a preview, a depth map or a
    # stereo pair): a still photo for the user, not an animation.
    frames = 1 if fmt == "MPO" else int(getattr(img, "n_frames", 1))
    rgb = _decode_first_frame(img, min_side)
    exif = _read_exif(img)
    orientation = _orientation(exif)
    shown = _apply_orientation(rgb, orientation)
    phash = _phash(_reduce(shown, _PHASH_DECODE_SIDE))
    if orientation >= 5:  # 5..8 turn the picture a quarter: the display swaps w and h
        width, height = height, width
    info = ImageInfo(
        width=width,
        height=height,
        orientation=orientation,
        taken_at=_taken_at(exif),
        camera=_camera(exif),
        format=fmt,
        phash=phash,
        frames=frames,
    )
    return info, shown


def open_image(path: str | os.PathLike[str], min_side: int | None = None) -> Image.Image:
    """Decode the first frame of a photo as an RGB image, EXIF orientation applied.

    With `min_side`, the photo may be decoded at a reduced scale whose shorter
    side is still at least `min_side` (or the full photo when it is smaller):
    JPEGs through DCT scaling, other formats by an integer `Image.reduce`, a
    camera RAW from its embedded preview when that is large enough, else from a
    half-size or full development; without `min_side` a RAW is developed in full.
    The caller resizes to its exact target afterwards. Raises `ImageError` for
    anything wrong with the file, ValueError for a `min_side` below 1.
    """
    if min_side is not None and min_side < 1:
        raise ValueError(f"min_side must be at least 1, got {min_side}")
    if _raw.is_raw_path(path):
        return _raw.open_image(path, min_side)
    with _errors(), _open_file(path) as fp:
        img = _identify(fp)
        rgb = _decode_first_frame(img, min_side)
        return _apply_orientation(rgb, _orientation(_read_exif(img)))


def crop_box(img: Image.Image, box: tuple[int, int, int, int], min_side: int = 8) -> Image.Image:
    """The region `box` = (left, top, right, bottom) of `img`, clamped to the image
    (corners in either order); ValueError when it is under `min_side` pixels a side."""
    left, upper, right, lower = box
    left, right = sorted((max(0, left), min(img.width, right)))
    upper, lower = sorted((max(0, upper), min(img.height, lower)))
    if right - left < min_side or lower - upper < min_side:
        raise ValueError("the selected region is too small to search by")
    return img.crop((left, upper, right, lower))


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to 8-bit RGB; an RGB image is returned as is.

    * Transparency is composited over white, not black or grey: a transparent
      PNG logo or GIF then looks the way image viewers and file browsers show it,
      which is what the user expects thumbnails, hashes and embeddings to see.
    * 16- and 32-bit integer images ("I;16*", "I") are scaled from 0..65535 to
      0..255 rather than clipped, which would turn most of a 16-bit photo white.
    * Float images ("F") are taken as 0..1 when all values fit that range, as
      0..255 when they fit that one, and as 0..65535 otherwise.
    * CMYK (Pillow already undoes Adobe's inverted CMYK JPEGs on open), YCbCr,
      HSV, "1", "L" and "P" go through Pillow's converters; CIELAB through
      LittleCMS, since Pillow's plain converter copies its channels as is.

    Raises `ImageError` for a mode that cannot be converted.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        # Checked before transparency: a 16-bit tRNS colour is rare and Pillow
        # cannot convert these modes to RGBA without clipping.
        return _gray_to_rgb(np.asarray(img), 65535.0)
    if mode == "F":
        return _float_to_rgb(np.asarray(img, dtype=np.float32))
    if img.has_transparency_data:
        return _over_white(img)
    if mode == "RGB":
        return img
    if mode == "LAB":
        return _lab_to_rgb(img)
    try:
        return img.convert("RGB")
    except ValueError as e:
        raise ImageError(f"unsupported colour mode {mode}") from e


@dataclass(frozen=True, slots=True)
class JpegBytes:
    """A plain JPEG's bytes, checked, for a decoder outside Pillow (the GPU's nvJPEG)."""

    data: bytes
    orientation: int
    """EXIF orientation 1..8 that the decoded pixels still need (as in `ImageInfo`)."""
    width: int
    height: int


def read_jpeg_bytes(path: str | os.PathLike[str]) -> JpegBytes | None:
    """The bytes of a baseline-decodable RGB or greyscale JPEG, after the same checks as
    `open_image` (regular non-empty file, known format, pixel limit), or None when the
    file is anything else: another format, CMYK/YCCK, or bytes that do not end with
    the JPEG end marker (truncated, or trailing data). None means "decode it with
    Pillow", which also gives the readable reason when the file is bad. Raises
    `ImageError` only for a file that cannot be read at all. A camera RAW is
    always None, even a JPEG under a RAW's name: `open_image` decides what it is.
    """
    if _raw.is_raw_path(path):
        return None
    with _errors(), _open_file(path) as fp:
        img = _identify(fp)
        if not isinstance(img, JpegImagePlugin.JpegImageFile) or img.mode not in ("RGB", "L"):
            return None
        orientation = _orientation(_read_exif(img))
        width, height = img.size
        fp.seek(0)
        data = fp.read()
    if not data.endswith(b"\xff\xd9"):
        return None
    return JpegBytes(data, orientation, width, height)


# --- opening -------------------------------------------------------------------


@contextmanager
def _open_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a regular, non-empty file for reading; OSError is left to `_errors`."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise ImageError("this is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or device would block or never end.
        raise ImageError("not a regular file")
    if st.st_size == 0:
        raise ImageError("file is empty")
    # We own the file object, so it is closed on every path, whatever Pillow
    # does with multi-frame files (it keeps those open until close()).
    with open(path, "rb") as fp:
        yield fp


def _identify(fp: IO[bytes], formats: tuple[str, ...] = SUPPORTED_FORMATS) -> ImageFile.ImageFile:
    """Parse the header; refuse unknown formats and oversized images before any decode."""
    _install_warning_filters()
    jxl = _jxl_header(fp) if "JXL" in formats else None
    if jxl is not None and jxl[0] * jxl[1] > MAX_PIXELS:
        # The JPEG XL plugin decodes the whole picture inside Image.open, before
        # any size check of ours or Pillow's could run: check its header first.
        raise ImageError(_too_large_reason((jxl[0], jxl[1])))
    try:
        img = Image.open(fp, formats=formats)
    except UnidentifiedImageError as e:
        raise ImageError(_unrecognised_reason(fp)) from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(_too_large_reason(_header_size(fp))) from e
    except RuntimeError as e:
        if jxl is None and _sniff_file(fp) != "JPEG XL":
            raise
        # libjxl's only message is "Generic Error. Please build libjxl from source...".
        raise ImageError("damaged JPEG XL file (its data cannot be decoded)") from e
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageError(_too_large_reason((width, height)))
    if jxl is not None and jxl[2] != 1 and not getattr(img, "jpeg", False):
        # libjxl has turned the pixels by the codestream's orientation, which the
        # JPEG XL format says overrides an Exif one: no second turn. (A JPEG that
        # the plugin rebuilt losslessly is the original JPEG, EXIF turn and all.)
        _read_exif(img).pop(_ORIENTATION, None)
    return img


# JPEG XL SizeHeader aspect ratios (ISO/IEC 18181-1 D.2): code -> (num, den).
_JXL_RATIOS: Final = {
    1: (1, 1),
    2: (12, 10),
    3: (4, 3),
    4: (3, 2),
    5: (16, 9),
    6: (5, 4),
    7: (2, 1),
}
_JXL_CONTAINER: Final = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


def _jxl_header(fp: IO[bytes]) -> tuple[int, int, int] | None:
    """(width, height, orientation) from a JPEG XL file's codestream header, else None.

    Reads a few bytes (and the box headers of a container); the file position is
    left at 0. None for anything that is not a readable JPEG XL header.
    """
    try:
        fp.seek(0)
        head = fp.read(16)
        if head.startswith(b"\xff\x0a"):
            code = head + fp.read(48)
        elif head.startswith(_JXL_CONTAINER):
            found = _jxl_codestream(fp)
            if found is None:
                return None
            code = found
        else:
            return None
        return _jxl_size_and_orientation(code)
    except (OSError, struct.error, IndexError):
        return None
    finally:
        fp.seek(0)


def _jxl_codestream(fp: IO[bytes]) -> bytes | None:
    """The first bytes of the codestream in a JPEG XL container (box "jxlc", or "jxlp" parts)."""
    pos = 0
    for _ in range(64):  # the codestream comes after a handful of metadata boxes
        fp.seek(pos)
        header = fp.read(16)
        if len(header) < 8:
            return None
        size, kind = struct.unpack(">I4s", header[:8])
        start = 8
        if size == 1:
            (size,) = struct.unpack(">Q", header[8:16])
            start = 16
        if kind in (b"jxlc", b"jxlp"):
            fp.seek(pos + start + (4 if kind == b"jxlp" else 0))  # jxlp: a part index first
            return fp.read(64)
        if size < start:  # 0: the box runs to the end, and it is not the codestream
            return None
        pos += size
    return None


def _jxl_size_and_orientation(code: bytes) -> tuple[int, int, int] | None:
    """Parse SizeHeader and the start of ImageMetadata (ISO/IEC 18181-1 D.2, A.6)."""
    if not code.startswith(b"\xff\x0a") or len(code) < 4:
        return None
    bits = int.from_bytes(code[2:], "little")  # fields are packed from the low bit up
    limit = 8 * (len(code) - 2)
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > limit:
            raise IndexError("JPEG XL header cut short")
        value = (bits >> pos) & ((1 << n) - 1)
        pos += n
        return value

    def u32_size() -> int:  # U32(Bits(9), Bits(13), Bits(18), Bits(30)) + 1
        return read((9, 13, 18, 30)[read(2)]) + 1

    small = read(1)
    height = (read(5) + 1) * 8 if small else u32_size()
    ratio = read(3)
    if ratio:
        num, den = _JXL_RATIOS[ratio]
        width = height * num // den
    else:
        width = (read(5) + 1) * 8 if small else u32_size()
    orientation = 1
    if not read(1) and read(1):  # not all_default, and extra_fields
        orientation = read(3) + 1
    return width, height, orientation


_BOMB_FILTER: Final = ("error", None, Image.DecompressionBombWarning, None, 0)


def _install_warning_filters() -> None:
    """Keep our process-wide warning filters at the front of the filter list.

    * Pillow *warns* (instead of raising) for images between 1x and 2x its pixel
      limit, inside Image.open. Changing the filters temporarily with
      warnings.catch_warnings is not thread-safe, so a permanent "error" filter
      turns that warning into an exception, which `_identify` turns into an
      ImageError. (Our own size check would refuse the image anyway; the filter
      keeps the warning from being printed.)
    * Damaged EXIF is common and harmless here (`_read_exif` then reads no
      metadata), but Pillow warns once per such photo, which floods the
      terminal during a CLI scan of a large library. Only Pillow's
      corrupt-EXIF warnings are muted, and pillow-jxl-plugin's note that it
      reads a 16-bit float JPEG XL as 32-bit floats (which `to_rgb` handles).

    Checked on every open because filters added later, or catch_warnings blocks
    elsewhere (pytest wraps collection and every test in one), can shadow or
    drop them.
    """
    if not warnings.filters or warnings.filters[0] != _BOMB_FILTER:
        warnings.filterwarnings(
            "ignore", message=r"(possibly )?corrupt EXIF", category=UserWarning, module=r"PIL\."
        )
        warnings.filterwarnings(
            "ignore", message="Pillow doesn't support 16 bit floats", category=UserWarning
        )
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


_install_warning_filters()


def _header_size(fp: IO[bytes]) -> tuple[int, int] | None:
    """The pixel size in a file's header, without Pillow's decompression bomb check.

    Only used to word the error message for an image Pillow already refused.
    """
    try:
        fp.seek(0)
        prefix = fp.read(16)
        for fmt in SUPPORTED_FORMATS:
            factory, accept = Image.OPEN[fmt]
            accepted = accept(prefix) if accept is not None else True
            if isinstance(accepted, str) or not accepted:  # as Image.open decides
                continue
            fp.seek(0)
            # The plugin's constructor parses the header only; the bomb check
            # lives in Image.open, around it.
            return factory(fp, "").size
    except Exception:
        pass
    return None


def _too_large_reason(size: tuple[int, int] | None) -> str:
    limit = f"limit {MAX_PIXELS // 1_000_000} MP"
    if size is None:
        return f"image too large ({limit}), possible decompression bomb"
    width, height = size
    megapixels = width * height / 1_000_000
    return (
        f"image too large: {width}\N{MULTIPLICATION SIGN}{height} = {megapixels:.0f} "
        f"megapixels ({limit}), possible decompression bomb"
    )


def _unrecognised_reason(fp: IO[bytes]) -> str:
    """Why Pillow could not identify a file: a damaged image, no HEIF support, or no image."""
    try:
        fp.seek(0)
        head = fp.read(_SNIFF_BYTES)
    except OSError as e:
        return _os_reason(e)
    if not head:
        return "file is empty"
    kind = _sniff(head)
    if kind is None:
        return "not an image file (format not recognised)"
    if kind == "HEIF" and not HEIF_SUPPORTED:
        return "HEIF image, but HEIF support (pillow-heif) is not installed"
    if kind == "AVIF" and not AVIF_SUPPORTED:
        return "AVIF image, but this Pillow was built without AVIF support"
    if kind == "JPEG XL" and not JXL_SUPPORTED:
        return "JPEG XL image, but JPEG XL support (pillow-jxl-plugin) is not installed"
    return f"damaged {kind} file (its header cannot be read)"


def _sniff_file(fp: IO[bytes]) -> str | None:
    try:
        fp.seek(0)
        return _sniff(fp.read(_SNIFF_BYTES))
    except OSError:
        return None


def _sniff(head: bytes) -> str | None:
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        major = head[8:12]
        if major in _AVIF_BRANDS:
            return "AVIF"
        if major in _HEIF_BRANDS:
            # "mif1"/"msf1" are generic image brands: the compatible brands
            # after the minor version say whether the pictures are AV1 or HEVC.
            size = int.from_bytes(head[:4], "big")
            brands = head[16 : min(size, len(head))]
            compatible = {brands[i : i + 4] for i in range(0, len(brands) - 3, 4)}
            return "AVIF" if compatible & _AVIF_BRANDS else "HEIF"
    return None


@contextmanager
def _errors() -> Iterator[None]:
    """Turn every way a file can fail to read or decode into an ImageError."""
    try:
        yield
    except ImageError:
        raise
    except _raw.RawError as e:  # already a reason for the user
        raise ImageError(str(e)) from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(_too_large_reason(None)) from e
    except OSError as e:
        raise ImageError(_os_reason(e)) from e
    except MemoryError as e:
        raise ImageError("not enough memory to decode this image") from e
    except Exception as e:
        # Pillow's and libheif's parsers raise a wide range of exceptions on
        # damaged input (SyntaxError, ValueError, EOFError, struct.error,
        # IndexError, KeyError, RuntimeError... as fuzzing keeps showing), and a
        # damaged photo must never take the caller down with it.
        raise ImageError(f"damaged image data ({_one_line(e)})") from e


def _os_reason(e: OSError) -> str:
    if e.errno is not None and e.strerror:
        # A real I/O error: keep the OS's own words (permission denied, no such file...).
        return f"cannot read file: {e.strerror[:1].lower()}{e.strerror[1:]}"
    # Pillow reports decoder failures as errno-less OSErrors.
    text = _one_line(e)
    if "truncated" in text.lower():
        return "image data is truncated"
    return f"damaged image data ({text})"


def _one_line(e: BaseException, limit: int = 200) -> str:
    """An exception's text on one short line (libheif's messages span lines)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


# --- decoding ------------------------------------------------------------------


def _decode_first_frame(img: ImageFile.ImageFile, min_side: int | None) -> Image.Image:
    """Decode the current (first) frame as RGB, at reduced scale when `min_side` allows."""
    if min_side is not None and isinstance(img, JpegImagePlugin.JpegImageFile):
        # draft picks the largest DCT scale 1/s (s in 8, 4, 2) for which *both*
        # sides stay >= the requested size, so asking for a min_side square
        # keeps the shorter side >= min_side whatever the aspect ratio.
        img.draft("RGB", (min_side, min_side))
    img.load()
    out: Image.Image = img
    if min_side is not None and out.mode in _REDUCIBLE_MODES:
        out = _reduce(out, min_side)  # before to_rgb, so it converts fewer pixels
    out = to_rgb(out)
    if min_side is not None:
        out = _reduce(out, min_side)  # a no-op when already reduced above
    return out


def _phash(img: Image.Image) -> str:
    return str(imagehash.phash(img))


def _reduce(img: Image.Image, min_side: int) -> Image.Image:
    factor = min(img.size) // min_side
    return img.reduce(factor) if factor >= 2 else img


def _apply_orientation(img: Image.Image, orientation: int) -> Image.Image:
    transpose = _TRANSPOSE.get(orientation)
    return img if transpose is None else img.transpose(transpose)


def _gray_to_rgb(values: np.ndarray, white: float) -> Image.Image:
    """Scale a single-channel array from 0..white to 8 bits (rounded) and make it RGB."""
    scaled = np.clip(values.astype(np.float32) * (255.0 / white) + 0.5, 0.0, 255.0)
    return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")


def _float_to_rgb(values: np.ndarray) -> Image.Image:
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    top = float(values.max(initial=0.0))
    white = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0
    return _gray_to_rgb(values, white)


def _over_white(img: Image.Image) -> Image.Image:
    if img.mode == "La":  # premultiplied, from internal operations only
        img = img.convert("LA")
    rgba = img if img.mode == "RGBA" else img.convert("RGBA")
    out = Image.new("RGB", rgba.size, _WHITE)
    out.paste(rgba, mask=rgba.getchannel("A"))
    return out


@functools.cache
def _lab_transform() -> ImageCms.ImageCmsTransform:
    from PIL import ImageCms

    return ImageCms.buildTransform(
        ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
    )


def _lab_to_rgb(img: Image.Image) -> Image.Image:
    try:
        from PIL import ImageCms
    except ImportError as e:  # Pillow built without LittleCMS
        raise ImageError("unsupported colour mode LAB (no colour management available)") from e
    out = ImageCms.applyTransform(img, _lab_transform())
    assert out is not None  # only None for in-place transforms
    return out


# --- metadata ------------------------------------------------------------------


def _read_exif(img: Image.Image) -> Image.Exif:
    try:
        return img.getexif()
    except Exception:
        # Broken EXIF is common (editing tools, old phones) and every viewer still
        # shows such a photo: read it as having no metadata rather than failing.
        return Image.Exif()


def _orientation(exif: Image.Exif) -> int:
    value = exif.get(_ORIENTATION)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _taken_at(exif: Image.Exif) -> datetime | None:
    try:
        exif_ifd = exif.get_ifd(_EXIF_IFD)
    except Exception:
        exif_ifd = {}
    return _taken_at_in(exif, exif_ifd)


def _taken_at_in(ifd0: Mapping[int, object], exif_ifd: Mapping[int, object]) -> datetime | None:
    """The date taken from IFD0's and the Exif IFD's tags (a RAW's are read apart)."""
    for date_tag, subsec_tag, in_exif_ifd in _DATE_TAGS:
        tags = exif_ifd if in_exif_ifd else ifd0
        taken = _parse_datetime(tags.get(date_tag), tags.get(subsec_tag))
        if taken is not None:
            return taken
    return None


def _parse_datetime(value: object, subsec: object = None) -> datetime | None:
    """Parse an EXIF "YYYY:MM:DD HH:MM:SS" stamp; None for blanks and "0000:00:00 ..." fillers."""
    text = _clean_text(value)
    match = _DATE_RE.match(text) if text else None
    if match is None:
        return None
    fraction = _clean_text(subsec) or ""
    digits = fraction[:6] if fraction.isdigit() else ""
    microsecond = int(digits.ljust(6, "0")) if digits else 0
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, microsecond)
    except ValueError:  # month 0, day 32, year 0...
        return None


def _camera(exif: Mapping[int, object]) -> str | None:
    make = _clean_text(exif.get(_MAKE))
    model = _clean_text(exif.get(_MODEL))
    if make and model:
        # Many models repeat the maker ("Canon" + "Canon EOS 5D"), some only its
        # first word ("NIKON CORPORATION" + "NIKON D750").
        if model.casefold().startswith(make.split()[0].casefold()):
            return model
        return f"{make} {model}"
    return model or make


def _clean_text(value: object) -> str | None:
    """An EXIF text value without NULs and surplus whitespace; None when empty or not text."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    text = " ".join(value.replace("\x00", " ").split())
    return text or None
