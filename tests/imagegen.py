"""Test-image generators shared by the test suite (`import imagegen`).

Everything is deterministic from a seed: `photo(seed=n)` always draws the same
picture, and different seeds draw visibly different ones (another gradient,
other shapes in other places and colours), so perceptual hashes and embeddings
of different seeds differ. The pictures have no symmetry, so every EXIF
orientation gives a different stored image.

Writers create missing parent folders and return the path they wrote.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

try:
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - heif_can_write() then says False
    HAVE_PILLOW_HEIF = False
else:
    register_heif_opener()
    HAVE_PILLOW_HEIF = True

StrPath = str | os.PathLike[str]

# The stored pixels for each EXIF orientation are the display pixels put through
# the inverse of the display transform (see dino_desktop.core.images._TRANSPOSE).
_STORE_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

_EXIF_IFD = 0x8769
_ORIENTATION = 0x0112
_MAKE = 0x010F
_MODEL = 0x0110
_DATETIME_ORIGINAL = 0x9003


def photo(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: a two-colour gradient, soft shapes and sensor-like grain.

    The scene is drawn at most 640 pixels wide or high and scaled up, so the
    same seed at a larger size is the same picture in more pixels (like a
    resized copy) and a 12 MP photo takes a fraction of a second; the grain is
    added at full size.
    """
    rng = np.random.default_rng(seed)
    scale = min(1.0, 640 / max(width, height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))

    # Background: a linear gradient in a random direction between two random colours.
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (
        np.linspace(0.0, np.cos(angle), w, dtype=np.float32)[None, :]
        + np.linspace(0.0, np.sin(angle), h, dtype=np.float32)[:, None]
    )
    ramp -= ramp.min()
    ramp *= 255.0 / max(float(ramp.max()), 1e-6)
    start, end = rng.uniform(0, 255, (2, 3))
    palette = (start + np.linspace(0.0, 1.0, 256)[:, None] * (end - start)).astype(np.uint8)
    img = Image.fromarray(ramp.astype(np.uint8)).convert("P")
    img.putpalette(palette.tobytes())
    img = img.convert("RGB")

    # Foreground: large shapes, so that low frequencies (what phash and DINOv2
    # look at) depend on the seed.
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 10))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.08, 0.35) * w, rng.uniform(0.08, 0.35) * h
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse(box, fill=fill)
        elif kind == 1:
            draw.rectangle(box, fill=fill)
        else:
            corners = rng.uniform(0, 1, (3, 2)) * (2 * rx, 2 * ry) + (cx - rx, cy - ry)
            draw.polygon([(float(x), float(y)) for x, y in corners], fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    if (w, h) != (width, height):
        img = img.resize((width, height), Image.Resampling.BICUBIC)

    # Luminance grain in -6..+6, as a camera sensor would add.
    grain = Image.fromarray(rng.integers(0, 13, (height, width), dtype=np.uint8))
    return ImageChops.add(img, Image.merge("RGB", (grain, grain, grain)), offset=-6)


def save_jpeg(
    path: StrPath,
    img: Image.Image | None = None,
    *,
    seed: int = 0,
    orientation: int | None = None,
    taken_at: datetime | None = None,
    make: str | None = None,
    model: str | None = None,
    quality: int = 90,
    size: tuple[int, int] = (640, 480),
    exif: Mapping[int, Any] | None = None,
    exif_ifd: Mapping[int, Any] | None = None,
) -> Path:
    """Write a JPEG (of `img`, else `photo(*size, seed)`) with the given EXIF tags.

    `orientation` is written as tag 0x0112, `taken_at` as DateTimeOriginal
    (0x9003, in the Exif IFD), `make`/`model` as 0x010F/0x0110. `exif` and
    `exif_ifd` add raw tags to IFD0 and to the Exif IFD (e.g. DateTime 0x0132,
    DateTimeDigitized 0x9004, or deliberately malformed values). The pixels are
    written as given: use `oriented_pair` for a rotated copy of a photo.
    """
    if img is None:
        img = photo(*size, seed=seed)
    tags = Image.Exif()
    if orientation is not None:
        tags[_ORIENTATION] = orientation
    if make is not None:
        tags[_MAKE] = make
    if model is not None:
        tags[_MODEL] = model
    tags.update(exif or {})
    sub_ifd: dict[int, Any] = dict(exif_ifd or {})
    if taken_at is not None:
        sub_ifd[_DATETIME_ORIGINAL] = taken_at.strftime("%Y:%m:%d %H:%M:%S")
    if sub_ifd:
        tags.get_ifd(_EXIF_IFD).update(sub_ifd)
    path = _prepare(path)
    img.save(path, "JPEG", quality=quality, exif=tags.tobytes() if len(tags) or sub_ifd else b"")
    return path


def save_as(
    path: StrPath,
    fmt: str,
    img: Image.Image | None = None,
    *,
    seed: int = 0,
    size: tuple[int, int] = (320, 240),
) -> Path:
    """Write `img` (else `photo(*size, seed)`) as PNG, WEBP, TIFF, GIF, BMP, HEIF or JPEG."""
    fmt = fmt.upper()
    fmt = {"JPG": "JPEG", "HEIC": "HEIF", "TIF": "TIFF"}.get(fmt, fmt)
    if img is None:
        img = photo(*size, seed=seed)
    options: dict[str, Any] = {}
    if fmt == "GIF":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    elif fmt in ("WEBP", "JPEG", "HEIF"):
        options["quality"] = 90
    path = _prepare(path)
    img.save(path, fmt, **options)
    return path


def heif_can_write() -> bool:
    """Whether pillow-heif is installed and can encode HEIF here (encoders are optional)."""
    if not HAVE_PILLOW_HEIF:
        return False
    try:
        Image.new("RGB", (16, 16)).save(io.BytesIO(), "HEIF")
    except Exception:
        return False
    return True


def cmyk_jpeg(path: StrPath, seed: int = 0, *, img: Image.Image | None = None) -> Path:
    """A CMYK JPEG (Adobe-style, as Photoshop writes them) of `img`, else of `photo(seed=seed)`.

    Pillow's RGB→CMYK conversion is exact to invert, so the decoded colours should
    match the RGB source within JPEG tolerance.
    """
    source = img if img is not None else photo(320, 240, seed)
    path = _prepare(path)
    source.convert("CMYK").save(path, "JPEG", quality=95)
    return path


def png16(
    path: StrPath,
    seed: int = 0,
    *,
    value: int | None = None,
    size: tuple[int, int] = (320, 240),
) -> Path:
    """A 16-bit grayscale PNG (opens as mode 'I;16').

    With `value`, every pixel is that 16-bit value; otherwise a photo scaled to
    the full 0..65535 range, with low bits that 8-bit storage would lose.
    """
    width, height = size
    if value is not None:
        data = np.full((height, width), value, dtype=np.uint16)
    else:
        gray = np.asarray(photo(width, height, seed).convert("L"), dtype=np.uint32)
        fine = np.random.default_rng(seed).integers(0, 256, (height, width))
        data = (gray * 256 + fine).astype(np.uint16)
    path = _prepare(path)
    Image.fromarray(data).save(path, "PNG")
    return path


def rgba_png(path: StrPath, seed: int = 0, *, size: tuple[int, int] = (320, 240)) -> Path:
    """An RGBA PNG of `photo(seed=seed)`: left third fully transparent, middle third
    half transparent (alpha 128), right third opaque."""
    width, height = size
    rgba = photo(width, height, seed).convert("RGBA")
    alpha = np.full((height, width), 255, dtype=np.uint8)
    alpha[:, : width // 3] = 0
    alpha[:, width // 3 : 2 * width // 3] = 128
    rgba.putalpha(Image.fromarray(alpha))
    path = _prepare(path)
    rgba.save(path, "PNG")
    return path


def animated_gif(
    path: StrPath, frames: int = 5, seed: int = 0, *, size: tuple[int, int] = (160, 120)
) -> Path:
    """An animated GIF whose frame i is `photo(*size, seed + i)`."""
    images = [
        photo(*size, seed=seed + i).convert("P", palette=Image.Palette.ADAPTIVE)
        for i in range(frames)
    ]
    path = _prepare(path)
    images[0].save(path, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def multipage_tiff(
    path: StrPath, pages: int = 3, seed: int = 0, *, size: tuple[int, int] = (320, 240)
) -> Path:
    """A multi-page TIFF: page i is `photo(seed + i)` at `size` divided by i + 1,
    so the first page is the largest and recognisable by its size."""
    width, height = size
    images = [
        photo(max(1, width // (i + 1)), max(1, height // (i + 1)), seed + i) for i in range(pages)
    ]
    path = _prepare(path)
    images[0].save(path, "TIFF", save_all=True, append_images=images[1:])
    return path


def huge_png(path: StrPath, width: int, height: int) -> Path:
    """A PNG whose header claims `width` x `height` (1-bit grayscale), written in microseconds.

    Only the first rows of pixel data are present: enough for every header-based
    check, and a decoder that tried anyway would find the data truncated.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    idat = zlib.compress(row * 8)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
    data += _chunk(b"IEND", b"")
    path = _prepare(path)
    path.write_bytes(data)
    return path


def bad_files(folder: Path) -> dict[str, Path]:
    """Files that must be refused, by name.

    empty.jpg (0 bytes), truncated.jpg (a valid JPEG cut in half), text.jpg (text
    named .jpg), garbage.png (a PNG signature, then random bytes), bomb.png (a PNG
    header claiming 30000 x 30000 pixels) and badcrc.png (a PNG whose header chunk
    checksum is wrong).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    files["empty.jpg"] = folder / "empty.jpg"
    files["empty.jpg"].write_bytes(b"")

    jpeg = io.BytesIO()
    photo(320, 240, seed=1).save(jpeg, "JPEG", quality=90)
    files["truncated.jpg"] = folder / "truncated.jpg"
    files["truncated.jpg"].write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])

    files["text.jpg"] = folder / "text.jpg"
    files["text.jpg"].write_text("These are my holiday notes, not a picture.\n" * 20)

    garbage = np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    files["garbage.png"] = folder / "garbage.png"
    files["garbage.png"].write_bytes(b"\x89PNG\r\n\x1a\n" + garbage)

    files["bomb.png"] = huge_png(folder / "bomb.png", 30000, 30000)

    png = io.BytesIO()
    photo(64, 48, seed=3).save(png, "PNG")
    broken = bytearray(png.getvalue())
    broken[29] ^= 0xFF  # bytes 29..32 are the IHDR chunk's CRC
    files["badcrc.png"] = folder / "badcrc.png"
    files["badcrc.png"].write_bytes(bytes(broken))
    return files


def bad_links(folder: Path) -> dict[str, Path]:
    """Symlinks that lead nowhere: dangling.jpg (to a missing file) and loop.jpg (to itself)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dangling = folder / "dangling.jpg"
    dangling.symlink_to(folder / "no-such-photo.jpg")
    loop = folder / "loop.jpg"
    loop.symlink_to(loop)
    return {"dangling.jpg": dangling, "loop.jpg": loop}


def oriented_pair(
    folder: StrPath,
    orientation: int,
    seed: int = 0,
    *,
    size: tuple[int, int] = (320, 240),
) -> tuple[Path, Path]:
    """The same photo twice: upright without EXIF, and stored turned/mirrored with the
    EXIF orientation tag that makes a viewer display it identically.

    Returns (upright, oriented). `size` is the display size; keep both sides
    multiples of 16 so JPEG blocks line up in both files and pixels compare
    closely. An invalid `orientation` (0, 9) is written as is over upright pixels.
    """
    folder = Path(folder)
    display = photo(*size, seed=seed)
    upright = save_jpeg(folder / f"upright-{orientation}-{seed}.jpg", display, quality=95)
    transpose = _STORE_TRANSPOSE.get(orientation)
    stored = display if transpose is None else display.transpose(transpose)
    oriented = save_jpeg(
        folder / f"oriented-{orientation}-{seed}.jpg",
        stored,
        orientation=orientation,
        quality=95,
    )
    return upright, oriented


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _prepare(path: StrPath) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
