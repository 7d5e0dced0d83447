"""The one-pass first index (core/ingest.py): each new photo read and decoded once,
storing what the older two-pass path (scan, then embed) stores."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import imagegen
import numpy as np
import pytest
import rawgen
import weightsgen
from sqlalchemy import select

from dino_desktop.core import db, embedder, images, ingest
from dino_desktop.core import thumbnails as thumbs
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, Progress, drive
from dino_desktop.core.records import ScanResult


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("weights") / "tiny.pth", weightsgen.TINY
    )


def _lib(home: Path, weights: Path | None) -> Library:
    weightsgen.register_tiny_model()
    return Library(home, model=weightsgen.TINY, weights=weights, device="cpu")


def _jpegs(root: Path, n: int, size: tuple[int, int]) -> Path:
    for i in range(n):
        imagegen.save_jpeg(root / f"p{i:02}.jpg", seed=i, size=size)
    return root


def _cached(lib: Library, path: str) -> Path:
    """Where the photo's grid thumbnail is cached (made or not)."""
    st = os.stat(path)
    return thumbs.thumbnail_path(lib.paths.cache_dir, path, st.st_mtime_ns, st.st_size)


def _every_format(root: Path) -> list[str]:
    """One photo of each format the library reads here, with EXIF where it has it."""
    taken = datetime(2024, 5, 6, 7, 8, 9)
    imagegen.save_jpeg(root / "a.jpg", seed=1, size=(1600, 1200), taken_at=taken, make="Cam")
    imagegen.save_jpeg(root / "turned.jpg", seed=2, size=(640, 480), orientation=6)
    imagegen.save_jpeg(root / "small.jpg", seed=3, size=(300, 200))
    formats = ["PNG", "WEBP", "TIFF", "GIF", "BMP"]
    if imagegen.heif_can_write():
        formats.append("HEIF")
    if images.AVIF_SUPPORTED:
        formats.append("AVIF")
    if images.JXL_SUPPORTED:
        formats.append("JXL")
    for i, fmt in enumerate(formats):
        imagegen.save_as(root / f"f{i}.{fmt.lower()}", fmt, seed=10 + i, size=(700, 500))
    imagegen.rgba_png(root / "alpha.png", seed=30)
    rawgen.write_dng(root / "raw.dng", 800, 600, preview=(640, 480), taken_at=taken)
    rawgen.write_dng(root / "bare.dng", 400, 300)  # no preview: developed
    return sorted(os.listdir(root))


def _rows(lib: Library) -> dict[str, dict[str, Any]]:
    cols = ("sha256", "phash", "width", "height", "orientation", "taken_at", "camera")
    with lib.sessions() as s:
        rows = s.execute(select(db.ImageRow)).scalars().all()
        return {
            r.relpath: {**{c: getattr(r, c) for c in cols}, "format": r.format, "status": r.status}
            for r in rows
        }


def _vectors(lib: Library) -> dict[str, np.ndarray]:
    with lib.sessions() as s:
        rows = s.execute(
            select(db.ImageRow.relpath, db.Embedding.vector).join(
                db.Embedding, db.Embedding.image_id == db.ImageRow.id
            )
        ).all()
    return {rel: np.frombuffer(blob, np.float32) for rel, blob in rows}


def test_one_pass_stores_what_the_two_pass_path_stores_for_every_format(
    tmp_path: Path, tiny_weights: Path
) -> None:
    photos = tmp_path / "photos"
    names = _every_format(photos)
    one = _lib(tmp_path / "one", tiny_weights)
    two = _lib(tmp_path / "two", tiny_weights)
    r1 = drive(one.scan([photos]))
    r2 = drive(two.scan([photos], one_pass=False))
    assert not r1.failed and not r2.failed
    assert r1.added == r2.added == len(names)
    assert r1.embedded == r2.embedded == len(names)
    assert r1.pending == r2.pending == 0

    rows1, rows2 = _rows(one), _rows(two)
    assert rows1 == rows2
    assert rows1["a.jpg"]["taken_at"] == datetime(2024, 5, 6, 7, 8, 9)
    assert (rows1["turned.jpg"]["width"], rows1["turned.jpg"]["height"]) == (480, 640)
    v1, v2 = _vectors(one), _vectors(two)
    assert sorted(v1) == sorted(v2) == names
    for name in names:
        np.testing.assert_allclose(v1[name], v2[name], atol=1e-5, err_msg=name)

    # The one-pass scan left each photo's thumbnail in the cache, the very file
    # the grid would make from the photo (it is not remade).
    for name in names:
        path = str(photos / name)
        st = os.stat(path)
        cached = _cached(one, path)
        assert cached.is_file(), name
        made = thumbs.thumbnail_file(two.paths.cache_dir, path, st.st_mtime_ns, st.st_size)
        assert cached.read_bytes() == made.read_bytes(), name


def test_each_new_photo_is_read_once(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = _jpegs(tmp_path / "photos", 5, (800, 600))
    opened: list[str] = []
    decoded: list[tuple[int, int]] = []
    real_read, real_load = ingest._read_bytes, images.ImageFile.ImageFile.load

    def counted_read(path: str) -> bytes | None:
        opened.append(os.path.basename(path))
        return real_read(path)

    def counted_load(self: Any) -> Any:
        if self.tile:  # data still to decode (a loaded image's load() returns at once)
            decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ingest, "_read_bytes", counted_read)
    monkeypatch.setattr(images.ImageFile.ImageFile, "load", counted_load)
    monkeypatch.setattr(ingest, "sha256_file", lambda p: pytest.fail(f"hashed again: {p}"))
    lib = _lib(tmp_path / "lib", tiny_weights)
    result = drive(lib.scan([photos]))
    assert result.added == result.embedded == 5
    assert sorted(opened) == [f"p{i:02}.jpg" for i in range(5)]
    assert len(decoded) == 5  # one decode each: phash, thumbnail and vector from it


def test_without_weights_rows_and_thumbnails_land_and_the_vectors_wait(
    tmp_path: Path, tiny_weights: Path
) -> None:
    photos = _jpegs(tmp_path / "photos", 3, (400, 300))
    home = tmp_path / "lib"
    lib = _lib(home, None)
    result = drive(lib.scan([photos]))
    assert result.added == 3 and result.embedded == 0 and result.pending == 3
    assert result.weights_missing
    for name in os.listdir(photos):
        assert _cached(lib, str(photos / name)).is_file()
    lib.close()
    # With weights, the pending pass embeds them (reading each photo again).
    lib = _lib(home, tiny_weights)
    result = drive(lib.scan())
    assert result.embedded == 3 and result.pending == 0


def test_a_failure_at_each_step_is_recorded_once(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = _jpegs(tmp_path / "photos", 4, (400, 300))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "empty.jpg").write_bytes(b"")
    real_pre = embedder.preprocess

    def pre(img: Any) -> Any:
        if img.size == (400, 300) and pre.calls == 0:  # type: ignore[attr-defined]
            pre.calls += 1  # type: ignore[attr-defined]
            raise ValueError("the model input failed")
        return real_pre(img)

    pre.calls = 0  # type: ignore[attr-defined]
    monkeypatch.setattr(embedder, "preprocess", pre)
    # The thumbnail cache cannot be written: rows and vectors still land.
    lib = _lib(tmp_path / "lib", tiny_weights)
    (lib.paths.cache_dir / thumbs.THUMBS_DIRNAME).parent.mkdir(parents=True, exist_ok=True)
    (lib.paths.cache_dir / thumbs.THUMBS_DIRNAME).write_text("a file where the folder goes")
    result = drive(lib.scan([photos]))
    reasons = dict(result.failed)
    assert len(result.failed) == len(reasons) == 3
    assert "broken.jpg" in {os.path.basename(p) for p in reasons}
    assert reasons[str(photos / "empty.jpg")] == "file is empty"
    assert any("the model input failed" in r for r in reasons.values())
    assert result.embedded == 3 and result.pending == 0
    rows = _rows(lib)
    assert sum(r["status"] == "failed" for r in rows.values()) == 3
    # A rescan lists the same three with the same reasons from their rows (every
    # unreadable file of the folders), reading none of them again.
    again = drive(lib.scan())
    assert dict(again.failed) == reasons
    assert again.added == again.updated == again.embedded == 0


def test_cancel_mid_way_then_resume_leaves_nothing_duplicated_or_missing(
    tmp_path: Path, tiny_weights: Path
) -> None:
    n = 60
    photos = _jpegs(tmp_path / "photos", n, (320, 240))
    lib = _lib(tmp_path / "lib", tiny_weights)
    token = CancelToken()
    job = lib.scan([photos], cancel=token)
    try:
        while True:
            step = next(job)
            if isinstance(step, Progress) and step.phase == "index" and (step.done or 0) >= 25:
                token.cancel()
    except StopIteration as stop:
        first: ScanResult = stop.value
    assert first.cancelled
    assert 0 < first.added < n
    resumed = drive(lib.scan())
    assert first.added + resumed.added == n
    assert first.embedded + resumed.embedded == n
    rows = _rows(lib)
    assert len(rows) == n and all(r["status"] == "ok" for r in rows.values())
    assert sorted(_vectors(lib)) == sorted(rows)
    with lib.sessions() as s:
        assert len(s.execute(select(db.Embedding.image_id)).all()) == n


def test_a_copy_of_a_photo_gets_the_same_row_values_as_the_original(
    tmp_path: Path, tiny_weights: Path
) -> None:
    photos = tmp_path / "photos"
    imagegen.save_jpeg(photos / "a.jpg", seed=5, size=(500, 400))
    shutil.copyfile(photos / "a.jpg", photos / "b.jpg")
    lib = _lib(tmp_path / "lib", tiny_weights)
    drive(lib.scan([photos]))
    rows = _rows(lib)
    assert rows["a.jpg"] == rows["b.jpg"]
    v = _vectors(lib)
    np.testing.assert_array_equal(v["a.jpg"], v["b.jpg"])


def test_rows_land_during_the_scan_with_their_thumbnails_already_cached(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The grid refreshes while a scan runs: every row it can read already has its
    # thumbnail in the cache (made from the ingest's decode, not by the grid).
    from dino_desktop.core import scanner

    monkeypatch.setattr(scanner, "COMMIT_S", 0.0)  # land each model batch at once
    photos = _jpegs(tmp_path / "photos", 40, (320, 240))
    lib = _lib(tmp_path / "lib", tiny_weights)
    lib.settings.batch_size = 8
    seen: list[int] = []
    for step in lib.scan([photos]):
        if isinstance(step, Progress) and step.phase == "index":
            with lib.sessions() as s:
                landed = s.execute(select(db.ImageRow.relpath)).scalars().all()
            for rel in landed:
                assert _cached(lib, str(photos / rel)).is_file(), rel
            seen.append(len(landed))
    assert 0 < min(n for n in seen if n) < 40  # rows landed before the scan ended
    assert len(set(seen)) >= 4  # in several batches
