"""A disk cache of JPEG thumbnails, kept in the library's cache folder.

`thumbnail_file` returns the path of a small JPEG (longest side `edge`, EXIF
orientation applied) for a photo, making it on first use. The cache key is a
hash of the photo's path, mtime_ns, file size, the edge and a format version,
so an edited photo (new mtime or size) gets a fresh thumbnail instead of a
stale one, and changing how thumbnails are made only needs a new version.

Layout: ``<cache_dir>/thumbs/<first 2 hex digits of the key>/<key>-<edge>.jpg``.
The 256 shard folders keep a library of 1,000,000 photos at ~4,000 files a
folder, which every desktop file system lists and looks up quickly.

Thumbnails are written to a temporary file in the shard folder and renamed into
place, so a reader (another thread, another process, a crash halfway) never sees
a half-written file; two threads making the same thumbnail both succeed and the
last rename wins with identical content.

Thread-safe and Qt-free: the GUI calls it from its thumbnail thread pool.
Old thumbnails of changed or removed photos are not pruned here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Final

from PIL import Image

from dino_desktop.core.images import open_image

__all__ = [
    "DEFAULT_EDGE",
    "THUMBS_DIRNAME",
    "thumbnail_file",
    "thumbnail_path",
]

THUMBS_DIRNAME: Final = "thumbs"
DEFAULT_EDGE: Final = 256
# Bump when the way thumbnails are made changes (size rule, quality, colour):
# old files are then simply never asked for again.
_VERSION: Final = 1
# 85 is visually indistinguishable from the original at thumbnail size while
# keeping a 256-px thumbnail around 10-15 KB.
_QUALITY: Final = 85


def thumbnail_path(
    cache_dir: Path, path: str, mtime_ns: int, size: int, edge: int = DEFAULT_EDGE
) -> Path:
    """Where the thumbnail of this version of a photo lives (whether or not it exists yet)."""
    digest = hashlib.blake2b(digest_size=16)
    # fsencode: paths that are not valid UTF-8 (lone surrogates) still hash,
    # and hash to the same key as their raw bytes on disk.
    digest.update(os.fsencode(path))
    digest.update(f"\0{mtime_ns}\0{size}\0{edge}\0{_VERSION}".encode())
    key = digest.hexdigest()
    return Path(cache_dir) / THUMBS_DIRNAME / key[:2] / f"{key}-{edge}.jpg"


def thumbnail_file(
    cache_dir: Path, path: str, mtime_ns: int, size: int, edge: int = DEFAULT_EDGE
) -> Path:
    """The cached JPEG thumbnail of a photo (longest side `edge`, never enlarged), made if missing.

    `mtime_ns` and `size` are the photo's stat values as the library recorded
    them; they are part of the cache key, so a changed photo gets a new thumbnail.
    Raises `ImageError` when the photo cannot be read, OSError when the cache
    folder cannot be written, ValueError for an `edge` below 1.
    """
    if edge < 1:
        raise ValueError(f"edge must be at least 1, got {edge}")
    target = thumbnail_path(cache_dir, path, mtime_ns, size, edge)
    if target.is_file():
        return target
    # Decode with the shorter side >= edge: then the longer side is too, and
    # JPEG draft mode can still skip most of a large photo's decode work.
    image = open_image(path, min_side=edge)
    if max(image.size) > edge:
        # draft/reduce already got within 2x of the target, so a high-quality
        # filter costs little here.
        image.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(image, target)
    return target


def _write_atomically(image: Image.Image, target: Path) -> None:
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, "JPEG", quality=_QUALITY)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
