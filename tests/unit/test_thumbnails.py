"""The thumbnail disk cache: made once, reused, renewed when the photo changes, upright."""

from __future__ import annotations

import os
from pathlib import Path

import imagegen
import numpy as np
import pytest
from PIL import Image

from dino_desktop.core import thumbnails
from dino_desktop.core.images import ImageError
from dino_desktop.core.thumbnails import thumbnail_file, thumbnail_path


def _stat(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_mtime_ns, st.st_size


def test_thumbnail_is_a_small_jpeg_in_a_shard_folder(tmp_path: Path) -> None:
    photo = imagegen.save_jpeg(tmp_path / "p.jpg", size=(1600, 1200))
    cache = tmp_path / "cache"
    thumb = thumbnail_file(cache, *_stat(photo))
    assert thumb.is_file()
    # <cache>/thumbs/<2 hex>/<key>-256.jpg: sharded so no folder holds them all.
    assert thumb.parent.parent == cache / "thumbs"
    assert len(thumb.parent.name) == 2 and thumb.name.startswith(thumb.parent.name)
    with Image.open(thumb) as img:
        assert img.format == "JPEG"
        assert img.size == (256, 192)
    assert not [p for p in thumb.parent.iterdir() if p.suffix == ".tmp"]


def test_small_photos_are_not_enlarged_and_edge_is_part_of_the_key(tmp_path: Path) -> None:
    photo = imagegen.save_jpeg(tmp_path / "small.jpg", size=(120, 80))
    small = thumbnail_file(tmp_path / "c", *_stat(photo))
    with Image.open(small) as img:
        assert img.size == (120, 80)
    big = imagegen.save_jpeg(tmp_path / "big.jpg", size=(640, 480))
    t64 = thumbnail_file(tmp_path / "c", *_stat(big), edge=64)
    t256 = thumbnail_file(tmp_path / "c", *_stat(big))
    assert t64 != t256
    with Image.open(t64) as img:
        assert img.size == (64, 48)


def test_cached_thumbnail_is_reused_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = imagegen.save_jpeg(tmp_path / "p.jpg", size=(640, 480))
    first = thumbnail_file(tmp_path / "c", *_stat(photo))
    stamp = first.stat().st_mtime_ns

    def no_decode(*args: object, **kwargs: object) -> Image.Image:
        raise AssertionError("a cached thumbnail must not decode the photo again")

    monkeypatch.setattr(thumbnails, "open_image", no_decode)
    again = thumbnail_file(tmp_path / "c", *_stat(photo))
    assert again == first and again.stat().st_mtime_ns == stamp


def test_decodes_with_a_reduced_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = imagegen.save_jpeg(tmp_path / "p.jpg", size=(2400, 1800))
    calls: list[int | None] = []
    real = thumbnails.open_image

    def spy(path: str, min_side: int | None = None) -> Image.Image:
        calls.append(min_side)
        return real(path, min_side=min_side)

    monkeypatch.setattr(thumbnails, "open_image", spy)
    thumbnail_file(tmp_path / "c", *_stat(photo))
    assert calls == [256]  # JPEG draft mode: no full 4 MP decode for a thumbnail


def test_changed_photo_gets_a_new_thumbnail(tmp_path: Path) -> None:
    photo = imagegen.save_jpeg(tmp_path / "p.jpg", seed=1, size=(320, 240))
    old = thumbnail_file(tmp_path / "c", *_stat(photo))
    old_pixels = np.asarray(Image.open(old), dtype=np.float32)
    # The user edits the photo in place: new content, new mtime.
    imagegen.save_jpeg(photo, seed=2, size=(320, 240))
    path, mtime_ns, size = _stat(photo)
    os.utime(photo, ns=(mtime_ns + 10**9, mtime_ns + 10**9))
    new = thumbnail_file(tmp_path / "c", *_stat(photo))
    assert new != old and old.is_file()
    new_pixels = np.asarray(Image.open(new), dtype=np.float32)
    assert np.abs(new_pixels - old_pixels).mean() > 10
    # Same path and mtime but another size is another version of the file too.
    assert thumbnail_path(tmp_path / "c", path, mtime_ns, size + 1) != thumbnail_path(
        tmp_path / "c", path, mtime_ns, size
    )


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_thumbnail_is_upright(tmp_path: Path, orientation: int) -> None:
    upright, oriented = imagegen.oriented_pair(tmp_path, orientation, seed=5, size=(320, 240))
    want = np.asarray(Image.open(thumbnail_file(tmp_path / "c", *_stat(upright))), np.float32)
    got = np.asarray(Image.open(thumbnail_file(tmp_path / "c", *_stat(oriented))), np.float32)
    assert got.shape == want.shape == (192, 256, 3)
    assert np.abs(got - want).mean() < 6


@pytest.mark.parametrize("name", ["empty.jpg", "truncated.jpg", "text.jpg", "garbage.png"])
def test_unreadable_photo_raises_image_error(tmp_path: Path, name: str) -> None:
    bad = imagegen.bad_files(tmp_path / "bad")[name]
    with pytest.raises(ImageError):
        thumbnail_file(tmp_path / "c", *_stat(bad))
    leftovers = list((tmp_path / "c").rglob("*")) if (tmp_path / "c").exists() else []
    assert not [p for p in leftovers if p.is_file()]


def test_missing_photo_raises_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError):
        thumbnail_file(tmp_path / "c", str(tmp_path / "gone.jpg"), 1, 2)


def test_prune_deletes_only_stale_thumbnails_and_crash_leftovers(tmp_path: Path) -> None:
    from dino_desktop.core.progress import drive

    cache = tmp_path / "cache"
    keep = imagegen.save_jpeg(tmp_path / "keep.jpg", seed=1, size=(400, 300))
    edit = imagegen.save_jpeg(tmp_path / "edit.jpg", seed=2, size=(400, 300))
    kept = thumbnail_file(cache, *_stat(keep))
    old = thumbnail_file(cache, *_stat(edit))
    imagegen.save_jpeg(edit, seed=3, size=(500, 300))  # edited: a new version
    os.utime(edit, ns=(1, 2_000_000_000))
    new = thumbnail_file(cache, *_stat(edit))
    gone = thumbnail_file(cache, *_stat(imagegen.save_jpeg(tmp_path / "gone.jpg", seed=4)))
    shard = kept.parent
    crashed = shard / ".abc.tmp"  # a writer that died an hour ago
    crashed.write_bytes(b"x")
    os.utime(crashed, (0, 0))
    writing = shard / ".def.tmp"  # a writer at work right now
    writing.write_bytes(b"x")
    foreign = shard / "notes.txt"  # not ours: never touched
    foreign.write_text("mine")
    wanted = thumbnails.wanted_names([_stat(keep), _stat(edit)])

    result = drive(thumbnails.prune(cache, wanted))

    assert kept.is_file() and new.is_file() and writing.is_file() and foreign.is_file()
    assert not old.exists() and not gone.exists() and not crashed.exists()
    assert (result.kept, result.removed, result.cancelled) == (2, 3, False)
    assert result.freed_bytes > 0
    assert keep.is_file() and edit.is_file()  # photos are never touched


def test_prune_of_a_missing_cache_and_cancel(tmp_path: Path) -> None:
    from dino_desktop.core.progress import CancelToken, drive

    assert drive(thumbnails.prune(tmp_path / "none", set())).removed == 0
    photo = imagegen.save_jpeg(tmp_path / "p.jpg", seed=1)
    thumb = thumbnail_file(tmp_path / "c", *_stat(photo))
    token = CancelToken()
    token.cancel()
    result = drive(thumbnails.prune(tmp_path / "c", set(), token))
    assert result.cancelled and thumb.is_file()
