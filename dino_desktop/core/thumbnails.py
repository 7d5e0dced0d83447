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

A thumbnail outlives its photo's version: an edited, moved, renamed or removed
photo leaves its old file behind. `prune` deletes every cached thumbnail that no
current photo version asks for (a job with progress and cancel; 1,000,000
photos' worth of thumbnails is ~10-15 GB, so stale ones matter). Deleting one
that is still wanted only costs remaking it: this is a cache, not user data.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

from dino_desktop.core.images import open_image
from dino_desktop.core.progress import CancelToken, Job, Progress

__all__ = [
    "DEFAULT_EDGE",
    "THUMBS_DIRNAME",
    "PruneResult",
    "carry",
    "prune",
    "store_thumbnail",
    "thumbnail_file",
    "thumbnail_name",
    "thumbnail_path",
    "wanted_names",
]

THUMBS_DIRNAME: Final = "thumbs"
DEFAULT_EDGE: Final = 256
# Bump when the way thumbnails are made changes (size rule, quality, colour):
# old files are then simply never asked for again.
_VERSION: Final = 1
# 85 is visually indistinguishable from the original at thumbnail size while
# keeping a 256-px thumbnail around 10-15 KB.
_QUALITY: Final = 85


def thumbnail_name(path: str, mtime_ns: int, size: int, edge: int = DEFAULT_EDGE) -> str:
    """The file name of this version of a photo's thumbnail (its shard: the first 2 characters)."""
    digest = hashlib.blake2b(digest_size=16)
    # fsencode: paths that are not valid UTF-8 (lone surrogates) still hash,
    # and hash to the same key as their raw bytes on disk.
    digest.update(os.fsencode(path))
    digest.update(f"\0{mtime_ns}\0{size}\0{edge}\0{_VERSION}".encode())
    return f"{digest.hexdigest()}-{edge}.jpg"


def thumbnail_path(
    cache_dir: Path, path: str, mtime_ns: int, size: int, edge: int = DEFAULT_EDGE
) -> Path:
    """Where the thumbnail of this version of a photo lives (whether or not it exists yet)."""
    name = thumbnail_name(path, mtime_ns, size, edge)
    return Path(cache_dir) / THUMBS_DIRNAME / name[:2] / name


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
    return store_thumbnail(cache_dir, path, mtime_ns, size, open_image(path, min_side=edge), edge)


def store_thumbnail(
    cache_dir: Path,
    path: str,
    mtime_ns: int,
    size: int,
    decoded: Image.Image,
    edge: int = DEFAULT_EDGE,
) -> Path:
    """Write the thumbnail of a photo from an image already decoded the way
    `thumbnail_file` decodes it (`open_image(path, min_side=edge)`: the one-pass
    ingest's own decode), unless it is cached. `decoded` is not changed."""
    target = thumbnail_path(cache_dir, path, mtime_ns, size, edge)
    if target.is_file():
        return target
    image = decoded
    if max(image.size) > edge:
        # draft/reduce already got within 2x of the target, so a high-quality
        # filter costs little here.
        image = image.copy()
        image.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(image, target)
    return target


def carry(
    cache_dir: Path,
    moves: Iterable[tuple[tuple[str, int, int], tuple[str, int, int]]],
    edges: Iterable[int] = (DEFAULT_EDGE,),
) -> int:
    """Give moved photos their old thumbnails: each ((old path, mtime, size), (new ...)).

    The key holds the path, so a photo recognised at a new path (core/identity.py)
    would otherwise be decoded again for the grid. Returns how many files moved;
    a missing old thumbnail is simply made again when asked for.
    """
    carried = 0
    edge_list = list(edges)
    base = os.path.join(cache_dir, THUMBS_DIRNAME)  # plain strings: 10,000s of these
    for old, new in moves:
        for edge in edge_list:
            src_name = thumbnail_name(*old, edge=edge)
            dst_name = thumbnail_name(*new, edge=edge)
            source = os.path.join(base, src_name[:2], src_name)
            target = os.path.join(base, dst_name[:2], dst_name)
            try:
                try:
                    os.replace(source, target)
                except FileNotFoundError:
                    if not os.path.exists(source):
                        continue  # never made: nothing to carry
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.replace(source, target)
            except OSError:
                continue
            carried += 1
    return carried


def _write_atomically(image: Image.Image, target: Path) -> None:
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, "JPEG", quality=_QUALITY)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# A writer's temporary file older than this was left by a crash (a live write
# takes milliseconds), so prune removes it.
_STALE_TEMP_S: Final = 3600


@dataclass(frozen=True, slots=True)
class PruneResult:
    kept: int  # thumbnails some photo still asks for
    removed: int  # stale thumbnails (and crash leftovers) deleted
    freed_bytes: int
    cancelled: bool = False


def wanted_names(
    photos: Iterable[tuple[str, int, int]], edges: Iterable[int] = (DEFAULT_EDGE,)
) -> set[str]:
    """The thumbnail file names of these photo versions (path, mtime_ns, size)."""
    edges = tuple(edges)
    return {thumbnail_name(p, m, s, e) for p, m, s in photos for e in edges}


def prune_unwanted(
    cache_dir: Path, photos: Iterable[tuple[str, int, int]], cancel: CancelToken | None = None
) -> Job[PruneResult]:
    """`prune` keeping only the thumbnails of these photo versions (path, mtime_ns, size)."""
    yield Progress("prune", 0, None, None, "cleaning up the thumbnail cache")
    return (yield from prune(cache_dir, wanted_names(photos), cancel))


def prune(cache_dir: Path, wanted: set[str], cancel: CancelToken | None = None) -> Job[PruneResult]:
    """Delete the cached thumbnails whose names are not in `wanted` (see `wanted_names`).

    Only files this module writes are touched: ``<key>-<edge>.jpg`` names and
    its own temporary files (those older than an hour) in the shard folders.
    Yields Progress per shard folder; a cancelled prune keeps what it has not
    reached.
    """
    root = Path(cache_dir) / THUMBS_DIRNAME
    try:
        shards = sorted(
            e.path
            for e in os.scandir(root)
            if e.is_dir(follow_symlinks=False) and _is_shard(e.name)
        )
    except FileNotFoundError:
        shards = []
    kept = removed = freed = 0
    now = time.time()
    yield Progress("prune", 0, len(shards), None, "cleaning up the thumbnail cache")
    for done, shard in enumerate(shards, 1):
        if cancel is not None and cancel.cancelled:
            return PruneResult(kept, removed, freed, cancelled=True)
        try:
            entries = list(os.scandir(shard))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name in wanted:
                kept += 1
                continue
            ours = name.endswith(".jpg") and name[:-4].rpartition("-")[2].isdigit()
            try:
                st = entry.stat(follow_symlinks=False)
                if name.startswith(".") and name.endswith(".tmp"):
                    ours = now - st.st_mtime > _STALE_TEMP_S
                if not ours or not entry.is_file(follow_symlinks=False):
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:  # made or removed meanwhile by someone else
                continue
            except OSError:  # a read-only cache: nothing to gain, nothing lost
                continue
            removed += 1
            freed += st.st_size
        yield Progress("prune", done, len(shards), shard)
    return PruneResult(kept, removed, freed)


def _is_shard(name: str) -> bool:
    return len(name) == 2 and all(c in "0123456789abcdef" for c in name)
