"""Camera RAW files for the tests and benchmarks (`import rawgen`), written from scratch.

`write_dng` writes a real Adobe DNG that LibRaw (rawpy) opens, unpacks and
develops: a 16-bit uncompressed RGGB Bayer mosaic (12-bit sensor values over a
black level), a colour matrix that makes the camera's space linear sRGB (so the
development shows the scene's colours), an as-shot white balance of 1:1:1, and
optionally an embedded JPEG preview, EXIF orientation, date taken and camera.
The TIFF structure is written by hand here (`struct`), so no DNG library is
needed; its layout is the usual camera one: header, IFD0, the Exif IFD and
the raw SubIFD first, pixel data after them, so metadata readers find
everything in the file's first kilobytes.

The scene is stored as the sensor saw it (`pattern`, in sensor orientation;
default `imagegen.photo`). Its values are scaled so that LibRaw's automatic
brightness (which maps the 99th percentile to white) leaves them as they are,
and the preview is encoded with the same BT.709 tone curve as LibRaw's default
output: a development and the preview then show the same picture, within JPEG
and demosaicing error.

Writers create missing parent folders and return the path they wrote.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import imagegen
import numpy as np
from PIL import Image

StrPath = str | os.PathLike[str]

BLACK_LEVEL = 256
WHITE_LEVEL = 4095  # a 12-bit sensor, stored in 16-bit samples as cameras do

# TIFF field types.
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _SRATIONAL = 1, 2, 3, 4, 5, 10
_SIZES = {_BYTE: 1, _ASCII: 1, _SHORT: 2, _LONG: 4, _RATIONAL: 8, _SRATIONAL: 8}

# XYZ (D65) -> linear sRGB: as the DNG ColorMatrix1 it makes camera RGB = sRGB.
_XYZ_TO_SRGB = (
    (3.2406, -1.5372, -0.4986),
    (-0.9689, 1.8758, 0.0415),
    (0.0557, -0.2040, 1.0570),
)

_Value = bytes | str | Sequence[int] | Sequence[tuple[int, int]]


def write_dng(
    path: StrPath,
    width: int,
    height: int,
    *,
    preview: tuple[int, int] | None = None,
    orientation: int = 1,
    taken_at: datetime | None = None,
    camera: tuple[str, str] | None = None,
    pattern: Image.Image | None = None,
    seed: int = 0,
    broken_preview: bool = False,
    preview_quality: int = 90,
) -> Path:
    """Write a DNG of a `width`×`height` sensor (both even) and return its path.

    * `preview`: (w, h) of an embedded JPEG preview in IFD0 (NewSubFileType 1,
      the raw then in a SubIFD), in sensor orientation like a camera's; None
      for no preview (the raw is IFD0 itself). `broken_preview` writes bytes
      that are no JPEG in its place.
    * `orientation`: EXIF orientation 1..8 (tag 274 in IFD0 and the raw IFD).
    * `taken_at`: DateTimeOriginal + SubsecTimeOriginal (milliseconds) in the Exif IFD.
    * `camera`: (Make, Model) in IFD0.
    * `pattern`: the scene as the sensor saw it, `width`×`height` RGB; by default
      `imagegen.photo(width, height, seed)`.
    """
    if width % 2 or height % 2:
        raise ValueError("a Bayer sensor has even sides")
    scene = pattern if pattern is not None else imagegen.photo(width, height, seed=seed)
    if scene.size != (width, height):
        raise ValueError(f"pattern is {scene.size}, not {(width, height)}")
    linear = _scene_linear(scene)
    mosaic = _bayer(linear)

    raw_tags: dict[int, tuple[int, _Value]] = {
        254: (_LONG, [0]),  # NewSubFileType: the main image
        256: (_LONG, [width]),
        257: (_LONG, [height]),
        258: (_SHORT, [16]),
        259: (_SHORT, [1]),  # uncompressed
        262: (_SHORT, [32803]),  # CFA
        274: (_SHORT, [orientation]),
        277: (_SHORT, [1]),
        278: (_LONG, [height]),
        284: (_SHORT, [1]),
        33421: (_SHORT, [2, 2]),  # CFARepeatPatternDim
        33422: (_BYTE, bytes([0, 1, 1, 2])),  # CFAPattern: RGGB
        50714: (_SHORT, [BLACK_LEVEL]),
        50717: (_SHORT, [WHITE_LEVEL]),
    }
    main_tags: dict[int, tuple[int, _Value]] = {
        274: (_SHORT, [orientation]),
        50706: (_BYTE, bytes([1, 4, 0, 0])),  # DNGVersion
        50707: (_BYTE, bytes([1, 1, 0, 0])),  # DNGBackwardVersion
        50708: (_ASCII, " ".join(camera) if camera else "DINO Test Sensor"),
        50721: (_SRATIONAL, [(round(v * 10000), 10000) for row in _XYZ_TO_SRGB for v in row]),
        50728: (_RATIONAL, [(1, 1)] * 3),  # AsShotNeutral: white is 1:1:1
        50778: (_SHORT, [21]),  # CalibrationIlluminant1: D65
    }
    if camera is not None:
        main_tags[271] = (_ASCII, camera[0])
        main_tags[272] = (_ASCII, camera[1])
    exif_tags: dict[int, tuple[int, _Value]] = {}
    if taken_at is not None:
        main_tags[306] = (_ASCII, taken_at.strftime("%Y:%m:%d %H:%M:%S"))
        exif_tags[36867] = (_ASCII, taken_at.strftime("%Y:%m:%d %H:%M:%S"))
        exif_tags[37521] = (_ASCII, f"{taken_at.microsecond // 1000:03d}")

    raw_data = mosaic.astype("<u2").tobytes()
    ifds: list[_Ifd] = []
    if preview is None:
        main = _Ifd({**raw_tags, **main_tags}, raw_data)
        ifds.append(main)
    else:
        jpeg = (
            b"\x00not a jpeg\x00" * 64
            if broken_preview
            else _preview_jpeg(linear, preview, preview_quality)
        )
        pw, ph = preview
        main = _Ifd(
            {
                **main_tags,
                254: (_LONG, [1]),  # NewSubFileType: a reduced-resolution copy
                256: (_LONG, [pw]),
                257: (_LONG, [ph]),
                258: (_SHORT, [8, 8, 8]),
                259: (_SHORT, [7]),  # JPEG
                262: (_SHORT, [6]),  # YCbCr
                277: (_SHORT, [3]),
                278: (_LONG, [ph]),
                284: (_SHORT, [1]),
            },
            jpeg,
        )
        raw_ifd = _Ifd(raw_tags, raw_data)
        main.children[330] = [raw_ifd]  # SubIFDs
        ifds += [main, raw_ifd]
    if exif_tags:
        exif_ifd = _Ifd(exif_tags, None)
        main.children[34665] = [exif_ifd]
        ifds.append(exif_ifd)
    return _write_tiff(path, ifds)


def truncated(source: StrPath, dest: StrPath, keep: float = 0.5) -> Path:
    """A copy of `source` cut after `keep` (0..1) of its bytes: an interrupted copy."""
    data = Path(source).read_bytes()
    out = _prepare(dest)
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def corrupt(source: StrPath, dest: StrPath, *, seed: int = 0) -> Path:
    """A copy of `source` whose TIFF structure after the header is overwritten with noise."""
    data = bytearray(Path(source).read_bytes())
    rng = np.random.default_rng(seed)
    data[8:4096] = rng.integers(0, 256, min(4088, len(data) - 8), dtype=np.uint8).tobytes()
    out = _prepare(dest)
    out.write_bytes(bytes(data))
    return out


# --- the picture ------------------------------------------------------------------


def _to_linear(display: np.ndarray) -> np.ndarray:
    """Invert the BT.709 curve (LibRaw's default gamma 0.45, toe slope 4.5)."""
    return np.where(display < 0.081, display / 4.5, ((display + 0.099) / 1.099) ** (1 / 0.45))


def _to_display(linear: np.ndarray) -> np.ndarray:
    return np.where(linear < 0.018, linear * 4.5, 1.099 * np.power(linear, 0.45) - 0.099)


def _scene_linear(scene: Image.Image) -> np.ndarray:
    """The scene as linear light 0..1, scaled so that LibRaw's auto-brightness is a no-op.

    LibRaw maps the largest per-channel 99th percentile to white: scaling that
    to exactly 1 (clipping the top 1 %) makes its stretch factor 1.
    """
    linear = _to_linear(np.asarray(scene.convert("RGB"), dtype=np.float32) / 255.0)
    top = max(float(np.percentile(linear[..., c], 99.0)) for c in range(3))
    return np.clip(linear / max(top, 1e-3), 0.0, 1.0).astype(np.float32)


def _bayer(linear: np.ndarray) -> np.ndarray:
    """Sample the scene through an RGGB colour filter array, as 12-bit values over black."""
    height, width, _ = linear.shape
    cfa = np.empty((height, width), dtype=np.float32)
    cfa[0::2, 0::2] = linear[0::2, 0::2, 0]
    cfa[0::2, 1::2] = linear[0::2, 1::2, 1]
    cfa[1::2, 0::2] = linear[1::2, 0::2, 1]
    cfa[1::2, 1::2] = linear[1::2, 1::2, 2]
    return np.rint(BLACK_LEVEL + cfa * (WHITE_LEVEL - BLACK_LEVEL)).astype(np.uint16)


def _preview_jpeg(linear: np.ndarray, size: tuple[int, int], quality: int) -> bytes:
    display = np.clip(_to_display(linear) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    img = Image.fromarray(display).resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --- a minimal TIFF writer ----------------------------------------------------------


class _Ifd:
    """One image file directory: its tags, its pixel strip, and IFDs it points to."""

    def __init__(self, tags: dict[int, tuple[int, _Value]], strip: bytes | None) -> None:
        self.tags = dict(tags)
        self.strip = strip
        self.children: dict[int, list[_Ifd]] = {}  # pointer tag -> IFDs
        self.offset = 0
        self.strip_offset = 0

    def entries(self) -> dict[int, tuple[int, _Value]]:
        tags = dict(self.tags)
        if self.strip is not None:
            tags[273] = (_LONG, [self.strip_offset])
            tags[279] = (_LONG, [len(self.strip)])
        for tag, children in self.children.items():
            tags[tag] = (_LONG, [child.offset for child in children])
        return tags

    def encode(self) -> bytes:
        """The IFD's bytes at `self.offset`: entries, next-IFD 0, then its out-of-line values."""
        entries = sorted(self.entries().items())
        data_start = self.offset + 2 + 12 * len(entries) + 4
        head = struct.pack("<H", len(entries))
        data = b""
        for tag, (kind, value) in entries:
            payload, count = _pack(kind, value)
            if len(payload) <= 4:
                head += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0")
            else:
                head += struct.pack("<HHII", tag, kind, count, data_start + len(data))
                data += payload + b"\0" * (len(payload) % 2)
        return head + struct.pack("<I", 0) + data


def _pack(kind: int, value: _Value) -> tuple[bytes, int]:
    if kind == _ASCII:
        text = value.encode("latin-1") if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
        return text + b"\0", len(text) + 1
    if isinstance(value, bytes):
        return value, len(value)
    items: list[Any] = list(value)
    if kind in (_RATIONAL, _SRATIONAL):  # (numerator, denominator) pairs
        fmt = "<" + ("ii" if kind == _SRATIONAL else "II") * len(items)
        return struct.pack(fmt, *(n for pair in items for n in pair)), len(items)
    code = {_BYTE: "B", _SHORT: "H", _LONG: "I"}[kind]
    return struct.pack("<" + code * len(items), *items), len(items)


def _write_tiff(path: StrPath, ifds: list[_Ifd]) -> Path:
    """Lay out the IFDs after the header (the first one is IFD0), then their strips."""
    pos = 8
    for ifd in ifds:  # an IFD's length does not depend on the offsets it holds
        ifd.offset = pos
        pos += len(ifd.encode())
        pos += pos % 2
    for ifd in ifds:
        if ifd.strip is not None:
            ifd.strip_offset = pos
            pos += len(ifd.strip) + len(ifd.strip) % 2
    out = bytearray(struct.pack("<2sHI", b"II", 42, ifds[0].offset))
    for ifd in ifds:
        out += b"\0" * (ifd.offset - len(out)) + ifd.encode()
    for ifd in ifds:
        if ifd.strip is not None:
            out += b"\0" * (ifd.strip_offset - len(out)) + ifd.strip
    dest = _prepare(path)
    dest.write_bytes(bytes(out))
    return dest


def _prepare(path: StrPath) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out
