"""Camera RAW files through LibRaw (rawpy): the RAW half of the safe-open module.

`dino_desktop.core.images` hands every file whose name says RAW to `read_info`
and `open_image` here, which apply its limits, decoders and error reasons
(`ImageError`); nothing else should call this module.

* A RAW is recognised by its extension (`RAW_EXTENSIONS`): many RAWs are TIFF
  files that Pillow would open as a TIFF, showing a thumbnail or noise.
* `RawFile` is one LibRaw handle on one file, never shared: LibRaw handles are
  not thread-safe, while a handle per call is (the embedder opens photos from a
  thread pool). LibRaw releases the GIL while it unpacks and develops. Every
  LibRaw failure becomes a `RawError` with a one-line reason.
* Opening parses the header only, and the size is checked against
  `images.MAX_PIXELS` before anything is decoded. Sizes, hashes and reduced
  decodes use the camera's embedded preview JPEG when it is large enough and
  shows the sensor's frame (a few ms, against about a second for developing a
  24 MP RAW), else a half-size or full development.
* LibRaw applies the orientation itself when developing; a preview is stored
  as the sensor saw the scene and is turned here by the same orientation, so
  both paths give the same upright picture.
* `read_metadata` reads Make/Model and the Exif IFD of TIFF-based RAWs (DNG,
  CR2, NEF, ARW, PEF, ORF, RW2, SRW...) and of CR3 (its CMT1/CMT2 boxes)
  without LibRaw; other RAWs' dates and cameras come from their preview's EXIF.

Known limit: LibRaw prints one line to stderr ("...: Unexpected end of file")
when a RAW's data is cut short; rawpy offers no way to silence it.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Final

import numpy as np
from PIL import ExifTags, Image, ImageFile

try:
    import rawpy
except ImportError:  # pragma: no cover - rawpy is a dependency, but optional at run time
    RAW_SUPPORTED = False
else:
    RAW_SUPPORTED = True

if TYPE_CHECKING:
    from dino_desktop.core.images import ImageInfo

__all__ = [
    "RAW_EXTENSIONS",
    "RAW_SUPPORTED",
    "RawError",
    "RawFile",
    "RawUnsupportedError",
    "is_raw_format",
    "is_raw_path",
    "open_image",
    "preview_turn",
    "raw_format",
    "read_info",
    "read_metadata",
]

# Every extension of a format LibRaw reads (its list of supported cameras'
# files). Extensions that another format also uses (.bay, .raw from phones,
# .mos) are included: LibRaw refuses a file it cannot read, with a reason.
RAW_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        ".3fr",  # Hasselblad
        ".ari",  # ARRI
        ".arw",  # Sony
        ".bay",  # Casio
        ".cap",  # Phase One
        ".cr2",  # Canon
        ".cr3",  # Canon
        ".crw",  # Canon (CIFF)
        ".dcr",  # Kodak
        ".dcs",  # Kodak
        ".dng",  # Adobe DNG: Leica, Pentax, Ricoh, phones, converters
        ".drf",  # Kodak
        ".eip",  # Phase One
        ".erf",  # Epson
        ".fff",  # Hasselblad / Imacon
        ".gpr",  # GoPro
        ".iiq",  # Phase One
        ".k25",  # Kodak
        ".kdc",  # Kodak
        ".mdc",  # Minolta
        ".mef",  # Mamiya
        ".mos",  # Leaf
        ".mrw",  # Minolta
        ".nef",  # Nikon
        ".nrw",  # Nikon (compacts)
        ".orf",  # Olympus / OM System
        ".ori",  # Olympus (high-res)
        ".pef",  # Pentax
        ".ptx",  # Pentax
        ".pxn",  # Logitech
        ".raf",  # Fujifilm
        ".raw",  # Panasonic, Leica
        ".rw2",  # Panasonic
        ".rwl",  # Leica
        ".rwz",  # Rawzor
        ".sr2",  # Sony
        ".srf",  # Sony
        ".srw",  # Samsung
        ".sti",  # Sinar
        ".x3f",  # Sigma
    }
)

# LibRaw's flip (dcraw's: bit 4 swaps the axes, bit 2 flips rows, bit 1 flips
# columns) as an EXIF orientation: the inverse of dcraw's "50132467" table.
_FLIP_TO_ORIENTATION: Final = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}

# A CR3's CMT boxes come right after its ftyp, in the moov box's first
# kilobytes (before the thumbnail); a TIFF's IFDs are read where they are.
_HEAD_BYTES: Final = 256 * 1024
_EXIF_IFD: Final = int(ExifTags.IFD.Exif)

_Tags = Mapping[int, object]


class RawError(Exception):
    """LibRaw could not read a RAW file; `str(error)` is a one-line reason for the user."""


class RawUnsupportedError(RawError):
    """LibRaw does not recognise the file as a RAW at all (possibly another kind of file)."""


def is_raw_format(fmt: str) -> bool:
    """Whether `fmt`, an `ImageInfo.format` value, is a camera RAW's ("DNG", "CR3"...)."""
    return f".{fmt.lower()}" in RAW_EXTENSIONS


def is_raw_path(path: str | os.PathLike[str]) -> bool:
    """Whether the file's name says camera RAW."""
    return os.path.splitext(os.fspath(path))[1].lower() in RAW_EXTENSIONS


def raw_format(path: str | os.PathLike[str]) -> str:
    """The stored format of a RAW: its extension in capitals without the dot ("NEF")."""
    return os.path.splitext(os.fspath(path))[1].lstrip(".").upper()


class RawFile:
    """One LibRaw handle on one file, closed on exit; every LibRaw error becomes a `RawError`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not RAW_SUPPORTED:
            raise RawError("camera RAW file, but RAW support (rawpy) is not installed")
        self._raw = rawpy.RawPy()
        try:
            with _libraw_errors(opening=True):
                # open_file, not open_buffer: LibRaw then reads only the header
                # and the preview, not a whole 20-80 MB file into memory.
                try:
                    self._raw.open_file(os.fspath(path))
                except UnicodeEncodeError:
                    # rawpy hands LibRaw the name as strict UTF-8; a name that is
                    # not (Linux bytes kept by surrogateescape) is read into memory.
                    with open(path, "rb") as fp:
                        self._raw.open_buffer(fp)
                sizes = self._raw.sizes
        except BaseException:
            self._raw.close()
            raise
        self.size: Final = (int(sizes.width), int(sizes.height))
        """The developed picture's (width, height) before orientation."""
        self.raw_pixels: Final = int(sizes.raw_width) * int(sizes.raw_height)
        """What unpacking allocates (the whole sensor, masked borders included), in pixels."""
        self.orientation: Final = _FLIP_TO_ORIENTATION.get(int(sizes.flip), 1)
        """EXIF orientation 1..8 (LibRaw's flip), applied by `develop`, not to `preview`."""

    def __enter__(self) -> RawFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    def preview(self) -> bytes | Image.Image | None:
        """The embedded preview as stored: JPEG bytes, or an RGB image for a bitmap one.

        None when there is none, or LibRaw cannot extract it: a broken preview
        must not make the RAW unreadable when its raw data is fine.
        """
        try:
            thumb = self._raw.extract_thumb()
        except Exception:
            return None
        if thumb.format == rawpy.ThumbFormat.JPEG and isinstance(thumb.data, bytes):
            return thumb.data
        if thumb.format == rawpy.ThumbFormat.BITMAP and isinstance(thumb.data, np.ndarray):
            data = thumb.data
            if data.ndim == 3 and data.shape[2] == 3 and data.dtype == np.uint8:
                # A copy: the array is LibRaw's memory, freed with the handle.
                return Image.fromarray(np.array(data))
        return None

    def develop(self, *, half_size: bool) -> Image.Image:
        """Unpack and develop to 8-bit sRGB with the camera's white balance, orientation applied.

        `half_size` merges each 2×2 Bayer cell into one pixel instead of
        demosaicing: half the width and height, several times faster.
        """
        with _libraw_errors(opening=False):
            rgb = self._raw.postprocess(
                half_size=half_size,
                use_camera_wb=True,
                output_bps=8,
                output_color=rawpy.ColorSpace.sRGB,
            )
        return Image.fromarray(rgb)

    def timestamp(self) -> datetime | None:
        """The date taken as LibRaw parsed it (whole seconds, no time zone), or None.

        rawpy unpacks the raw data for this, so call it after `develop` or when
        nothing else gives the date.
        """
        try:
            with _libraw_errors(opening=False):
                stamp = self._raw.other.timestamp
        except (RawError, AttributeError, OSError, OverflowError, ValueError):
            return None
        # LibRaw turns the camera's local wall-clock time into a time_t with
        # mktime and rawpy back with fromtimestamp: a round trip to the same
        # naive wall-clock time, as EXIF dates are stored here.
        return _dated(stamp)


def _dated(stamp: datetime | None) -> datetime | None:
    """`stamp`, or None for LibRaw's "no date": time_t 0, in local time."""
    try:
        return None if stamp is None or stamp == datetime.fromtimestamp(0) else stamp
    except (OSError, OverflowError, ValueError):  # pragma: no cover - exotic platforms
        return stamp


@contextmanager
def _libraw_errors(*, opening: bool) -> Iterator[None]:
    try:
        yield
    except RawError:
        raise
    except MemoryError as e:
        raise RawError("not enough memory to decode this RAW file") from e
    except Exception as e:
        raise _reason(e, opening) from e


def _reason(e: Exception, opening: bool) -> RawError:
    if not RAW_SUPPORTED:  # pragma: no cover
        return RawError(f"damaged or unsupported RAW file ({_message(e)})")
    if isinstance(e, rawpy.LibRawUnsufficientMemoryError):
        return RawError("not enough memory to decode this RAW file")
    if isinstance(e, rawpy.LibRawTooBigError):
        return RawError("RAW image too large for LibRaw to decode")
    if isinstance(e, OSError) and not isinstance(e, rawpy.LibRawError):
        # rawpy raises OSError((errno, text)) when LibRaw's own open() fails.
        code = e.args[0] if e.args else None
        if isinstance(code, tuple) and len(code) == 2 and isinstance(code[1], str):
            text = code[1]
        else:
            text = e.strerror or _message(e)
        return RawError(f"cannot read file: {text[:1].lower()}{text[1:]}")
    text = _message(e)
    if isinstance(e, rawpy.LibRawIOError) and not opening:
        # LibRaw read past the end of the file while unpacking the raw data.
        text += ", the file may be truncated"
    error_type = RawUnsupportedError if opening else RawError
    return error_type(f"damaged or unsupported RAW file (LibRaw: {text})")


def _message(e: BaseException) -> str:
    """LibRaw's message (rawpy passes it as bytes), lower-case first letter, on one line."""
    arg = e.args[0] if e.args else ""
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    text = " ".join(text.split()) or type(e).__name__
    return text[:1].lower() + text[1:200]


# --- what images.read_info and images.open_image do with a RAW ------------------
#
# These use the images module's own checks and decoders (imported at call
# time: images imports this module), so a preview JPEG is opened exactly like
# any other JPEG and every failure gets the same kind of reason.

# A preview stands in for the raw data only when it shows the same frame:
# cameras' previews keep the sensor's aspect ratio, while small thumbnails are
# often letterboxed (160×120 for a 3:2 sensor), and black bars would change the
# hash and the embedding. A ratio within 4 % is the same frame.
_PREVIEW_ASPECT_TOLERANCE: Final = 0.04


def read_info(path: str | os.PathLike[str]) -> ImageInfo:
    """`images.read_info` for a RAW: metadata, and a phash of the preview or a half-size
    development."""
    from dino_desktop.core import images as im

    with im._errors(), im._open_file(path) as fp, _checked(path, fp) as rf:
        ifd0, exif_ifd = read_metadata(fp)
        small, preview_exif = _preview(rf, im._PHASH_DECODE_SIDE)
        if small is None:
            small = im._reduce(rf.develop(half_size=True), im._PHASH_DECODE_SIDE)
        # A preview JPEG without EXIF of its own gets one from LibRaw, made of
        # its own parse of the RAW (make, model, date: what rawpy does not
        # expose otherwise), with the epoch for "no date".
        taken_at = im._taken_at_in(ifd0, exif_ifd) or _dated(im._taken_at(preview_exif))
        if taken_at is None and not ifd0 and not exif_ifd:
            # Not a TIFF-based RAW (RAF, CRW, X3F...) and no EXIF in its preview:
            # LibRaw's own parse, which costs an unpack, so only as the last resort.
            taken_at = rf.timestamp()
        camera = im._camera(ifd0) or im._camera(preview_exif)
        phash = im._phash(small)
        orientation = rf.orientation
        width, height = rf.size
    if orientation >= 5:  # a quarter turn: the display swaps w and h
        width, height = height, width
    return im.ImageInfo(
        width=width,
        height=height,
        orientation=orientation,
        taken_at=taken_at,
        camera=camera,
        format=raw_format(path),
        phash=phash,
        frames=1,
    )


def open_image(path: str | os.PathLike[str], min_side: int | None) -> Image.Image:
    """`images.open_image` for a RAW: the preview when it has `min_side`, else a development."""
    from dino_desktop.core import images as im

    with im._errors(), im._open_file(path) as fp, _checked(path, fp) as rf:
        if min_side is None:  # the viewer at 100 %: the real thing
            return rf.develop(half_size=False)
        preview, _ = _preview(rf, min_side)
        if preview is not None:
            return preview
        # Half size skips demosaicing (2×2 Bayer cells become pixels): several
        # times faster, and sharp enough for any reduced decode that fits in it.
        half = min(rf.size) // 2 >= min_side
        return im._reduce(rf.develop(half_size=half), min_side)


@contextmanager
def _checked(path: str | os.PathLike[str], fp: IO[bytes]) -> Iterator[RawFile]:
    """LibRaw on `path` (header parsed, nothing decoded), refused when too large."""
    from dino_desktop.core import images as im

    try:
        rf = RawFile(path)
    except RawUnsupportedError as e:
        raise im.ImageError(_not_raw_reason(fp) or str(e)) from e
    with rf:
        width, height = rf.size
        # The sensor area (masked borders included) is what unpacking allocates:
        # a few % over the picture in real cameras, far more in a forged header.
        if width * height > im.MAX_PIXELS or rf.raw_pixels > 2 * im.MAX_PIXELS:
            raise im.ImageError(im._too_large_reason(rf.size))
        yield rf


def _not_raw_reason(fp: IO[bytes]) -> str | None:
    """For a file LibRaw refuses: what it is instead, when it is another kind of image."""
    from dino_desktop.core import images as im

    kind = im._sniff_file(fp)
    # Many RAWs are TIFFs: a TIFF signature says nothing about a damaged one.
    if kind is None or kind == "TIFF":
        return None
    return f"not a camera RAW file: it holds a {kind} image"


def _preview(rf: RawFile, min_side: int) -> tuple[Image.Image | None, Image.Exif]:
    """The embedded preview, display-oriented and decoded to a shorter side >= `min_side`
    (None when there is none, it is smaller, shows another frame, or is damaged), and
    its EXIF (empty for none)."""
    from dino_desktop.core import images as im

    exif = Image.Exif()
    stored = rf.preview()
    if stored is None:
        return None, exif
    try:
        if isinstance(stored, bytes):
            # The same checks as any photo: a JPEG, within the pixel limit.
            img: Image.Image = im._identify(io.BytesIO(stored), formats=("JPEG",))
            exif = im._read_exif(img)
        else:
            img = stored
        turn = preview_turn(img.size, rf.size, rf.orientation)
        if turn is None or min(img.size) < min_side:
            return None, exif
        if isinstance(img, ImageFile.ImageFile):
            decoded = im._decode_first_frame(img, min_side)  # JPEG DCT scaling
        else:
            decoded = im._reduce(im.to_rgb(img), min_side)
        return im._apply_orientation(decoded, turn), exif
    except Exception:
        # A damaged preview is no reason to refuse the RAW: develop it instead.
        return None, exif


def preview_turn(preview: tuple[int, int], sensor: tuple[int, int], orientation: int) -> int | None:
    """The orientation still to apply to a preview of size `preview`, or None when it does
    not show the sensor's frame.

    Camera previews are stored as the sensor saw the scene, like the raw data,
    and their own EXIF orientation (when they have one) repeats the RAW's, so the
    RAW's is the one applied; a preview stored already turned upright (portrait
    where the sensor is landscape, in a quarter-turned RAW) needs nothing.
    """
    (pw, ph), (width, height) = preview, sensor
    if min(pw, ph, width, height) < 1:
        return None
    ratio = pw / ph
    if abs(math.log(ratio / (width / height))) <= _PREVIEW_ASPECT_TOLERANCE:
        return orientation
    if orientation >= 5 and abs(math.log(ratio / (height / width))) <= _PREVIEW_ASPECT_TOLERANCE:
        return 1
    return None


# --- metadata -------------------------------------------------------------------


def read_metadata(fp: IO[bytes]) -> tuple[_Tags, _Tags]:
    """(IFD0, Exif IFD) tags of a TIFF-based RAW or a CR3; empty mappings when there are none.

    Never raises: a RAW's metadata is a bonus, and LibRaw decides whether the
    file is readable.
    """
    from dino_desktop.core import images as im

    im._install_warning_filters()  # Pillow warns about each damaged IFD
    try:
        fp.seek(0)
        head = fp.read(16)
        if head[4:12] == b"ftypcrx ":
            return _cr3_metadata(head + fp.read(_HEAD_BYTES))
        return _tiff_metadata(fp, head)
    except Exception:
        return {}, {}


def _tiff_metadata(fp: IO[bytes], head: bytes) -> tuple[_Tags, _Tags]:
    """IFD0 and the Exif IFD, read from the file where they are (Pillow seeks to each IFD).

    Olympus ("IIRO", "IIRS", "MMOR") and Panasonic ("IIU\\0") RAWs are TIFFs
    under their own magic numbers: only the byte order is taken from the header.
    """
    if head[:4] in (b"II*\x00", b"IIRO", b"IIRS", b"IIU\x00"):
        endian = "<"
    elif head[:4] in (b"MM\x00*", b"MMOR"):
        endian = ">"
    else:
        return {}, {}
    (ifd0,) = struct.unpack(endian + "I", head[4:8])
    exif = Image.Exif()
    exif.endian = endian
    exif.load_from_fp(fp, ifd0)
    try:
        exif_ifd: _Tags = exif.get_ifd(_EXIF_IFD)
    except Exception:
        exif_ifd = {}
    return dict(exif), exif_ifd


def _cr3_metadata(head: bytes) -> tuple[_Tags, _Tags]:
    """A CR3 keeps IFD0 and the Exif IFD as two small TIFFs, boxes CMT1 and CMT2 in its moov."""
    return _cmt_box(head, b"CMT1"), _cmt_box(head, b"CMT2")


def _cmt_box(head: bytes, kind: bytes) -> _Tags:
    at = head.find(kind)
    if at < 4:
        return {}
    (size,) = struct.unpack(">I", head[at - 4 : at])
    payload = head[at + 4 : at - 4 + size]
    if payload[:4] not in (b"II*\x00", b"MM\x00*"):
        return {}
    exif = Image.Exif()
    exif.load(payload)
    return dict(exif)
