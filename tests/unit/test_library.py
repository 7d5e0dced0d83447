"""Library: scan → embed → store → search, end to end with a tiny random ViT, on both
backends (a SQLite folder and a shared PostgreSQL library: `library_at`)."""

from __future__ import annotations

import os
from pathlib import Path

import imagegen
import numpy as np
import pytest
import weightsgen
from sqlalchemy import select

from dino_desktop.core import db
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryError
from dino_desktop.core.weights import WeightsUnavailable


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("weights") / "tiny.pth", weightsgen.TINY
    )


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(8):
        imagegen.save_jpeg(root / f"p{i}.jpg", seed=i, size=(320, 240))
    imagegen.save_as(root / "x.png", "PNG", seed=20)
    (root / "broken.jpg").write_bytes(b"this is not a jpeg")
    return root


def _lib(where: str | Path, weights: Path | None) -> Library:
    weightsgen.register_tiny_model()
    return Library(where, model=weightsgen.TINY, weights=weights, device="cpu")


def test_scan_embeds_every_readable_photo_and_search_finds_itself(
    library_at: str | Path, tmp_path: Path, photos: Path, tiny_weights: Path
) -> None:
    lib = _lib(library_at, tiny_weights)
    result = drive(lib.scan([str(photos)]))
    assert (result.added, result.embedded, result.pending) == (10, 9, 0)
    assert [p for p, _ in result.failed] == [str(photos / "broken.jpg")]
    status = lib.status()
    assert (status.images, status.embedded, status.failed) == (9, 9, 1)

    hits = lib.search(photos / "p3.jpg", top=3)
    assert hits[0].path == str(photos / "p3.jpg") and hits[0].score >= 0.999
    assert len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score

    # Vectors are stored L2-normalised under the model's row.
    with lib.sessions() as session:
        vectors = [
            np.frombuffer(e.vector, np.float32) for e in session.scalars(select(db.Embedding))
        ]
    assert len(vectors) == 9
    assert all(abs(float(np.linalg.norm(v)) - 1) < 1e-4 for v in vectors)


def test_search_by_a_file_outside_the_library(
    library_at: str | Path, tmp_path: Path, photos: Path, tiny_weights: Path
) -> None:
    lib = _lib(library_at, tiny_weights)
    drive(lib.scan([str(photos)]))
    outside = tmp_path / "query.png"
    imagegen.save_as(outside, "PNG", seed=3, size=(320, 240))  # the same picture as p3.jpg
    hits = lib.search(outside, top=4)
    assert len(hits) == 4
    assert all(os.path.dirname(h.path) == str(photos) for h in hits)
    assert hits[0].path == str(photos / "p3.jpg")
    with pytest.raises(LibraryError, match="no such image"):
        lib.search(tmp_path / "missing.jpg")


def test_without_weights_files_are_indexed_and_embedding_waits(
    library_at: str | Path, tmp_path: Path, photos: Path, tiny_weights: Path
) -> None:
    lib = _lib(library_at, None)
    result = drive(lib.scan([str(photos)]))
    assert (result.added, result.embedded, result.pending) == (10, 0, 9)
    assert result.weights_missing and "model import" in result.weights_missing
    with pytest.raises(WeightsUnavailable):
        lib.search(photos / "p1.jpg")
    lib.close()

    # Once the weights are imported, the next scan embeds what waited.
    lib = _lib(library_at, None)
    lib.import_weights(tiny_weights)
    again = drive(lib.scan())
    assert (again.unchanged, again.embedded, again.pending) == (10, 9, 0)


def test_index_is_persisted_and_rebuilt_when_stale(
    library_at: str | Path, tmp_path: Path, photos: Path, tiny_weights: Path
) -> None:
    lib = _lib(library_at, tiny_weights)
    drive(lib.scan([str(photos)]))
    assert lib.index().size == 9
    saved = list(lib.paths.index_dir.glob("*.faiss"))
    assert len(saved) == 1
    (photos / "p0.jpg").unlink()
    drive(lib.scan())
    assert lib.index().size == 8
    assert all(h.path != str(photos / "p0.jpg") for h in lib.search(photos / "p1.jpg", top=20))


def test_new_weights_never_mix_with_old_vectors(
    library_at: str | Path, tmp_path: Path, photos: Path, tiny_weights: Path
) -> None:
    lib = _lib(library_at, tiny_weights)
    drive(lib.scan([str(photos)]))
    lib.close()
    other = weightsgen.write_meta_checkpoint(tmp_path / "other.pth", weightsgen.TINY, seed=7)
    lib = _lib(library_at, other)
    assert lib.pending_count() == 9
    result = drive(lib.scan())
    assert result.embedded == 9
    with lib.sessions() as session:
        assert len(session.scalars(select(db.ModelRow)).all()) == 2
    assert lib.index().size == 9


def test_reference_folders_and_removal(
    library_at: str | Path, tmp_path: Path, photos: Path
) -> None:
    lib = _lib(library_at, None)
    drive(lib.scan([str(photos)], reference=True, embed=False))
    (folder,) = lib.folders()
    assert folder.is_reference and folder.images == 9 and folder.failed == 1
    lib.remove_folder(folder.id)
    assert lib.folders() == [] and list(lib.images()) == []
    assert (photos / "p0.jpg").exists()  # the files on disk are never touched
    with pytest.raises(LibraryError, match="not a folder"):
        lib.add_folder(photos / "p0.jpg")


def test_photos_sorted_and_filtered(library_at: str | Path, tmp_path: Path) -> None:
    from datetime import datetime

    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    imagegen.save_jpeg(a / "zebra.jpg", seed=1, taken_at=datetime(2020, 1, 1))
    imagegen.save_jpeg(b / "Apple.jpg", seed=2, taken_at=datetime(2023, 5, 1))
    imagegen.save_jpeg(a / "mango.jpg", seed=3)  # no date: after the dated ones
    (a / "broken.jpg").write_bytes(b"x")
    lib = _lib(library_at, None)
    drive(lib.scan([str(a), str(b)], embed=False))
    names = lambda rows: [Path(r.path).name for r in rows]  # noqa: E731
    assert names(lib.photos(sort="date")) == ["zebra.jpg", "Apple.jpg", "mango.jpg"]
    assert names(lib.photos(sort="name")) == ["Apple.jpg", "mango.jpg", "zebra.jpg"]
    assert names(lib.photos(sort="folder")) == ["mango.jpg", "zebra.jpg", "Apple.jpg"]
    folder_a = next(f.id for f in lib.folders() if f.path == str(a))
    assert names(lib.photos(folder_id=folder_a, sort="name")) == ["mango.jpg", "zebra.jpg"]
    with pytest.raises(LibraryError, match="unknown sort"):
        lib.photos(sort="size")


def test_search_by_region_embeds_the_crop(
    library_at: str | Path, tmp_path: Path, photos: Path, tiny_weights: Path
) -> None:
    lib = _lib(library_at, tiny_weights)
    drive(lib.scan([str(photos)]))
    # A crop of p2 saved as its own photo is found first when searching by that region.
    from PIL import Image

    with Image.open(photos / "p2.jpg") as im:
        im.crop((40, 30, 200, 150)).save(photos / "crop.png")
    drive(lib.scan())
    hits = lib.search_region(photos / "p2.jpg", (40, 30, 200, 150), top=3)
    assert hits[0].path == str(photos / "crop.png") and hits[0].score > 0.99
    with pytest.raises(LibraryError, match="too small"):
        lib.search_region(photos / "p2.jpg", (10, 10, 12, 12))


def test_prune_thumbnails_keeps_what_the_app_shows_and_drops_the_rest(
    library_at: str | Path, tmp_path: Path
) -> None:
    """Thumbnails made the way the app makes them (from PhotoRow) survive; those of a
    removed photo and of an edited photo's old version go."""
    from dino_desktop.core.thumbnails import thumbnail_file

    root = tmp_path / "photos"
    for i in range(3):
        imagegen.save_jpeg(root / f"p{i}.jpg", seed=i, size=(300, 200))
    lib = Library(library_at)
    drive(lib.scan([str(root)], embed=False))
    cache = lib.paths.cache_dir
    made = {p.path: thumbnail_file(cache, p.path, p.mtime_ns, p.size) for p in lib.photos()}
    (root / "p0.jpg").unlink()
    imagegen.save_jpeg(root / "p1.jpg", seed=9, size=(320, 200))
    os.utime(root / "p1.jpg", ns=(1, 3_000_000_000))
    drive(lib.scan(embed=False))
    fresh = {p.path: thumbnail_file(cache, p.path, p.mtime_ns, p.size) for p in lib.photos()}

    result = drive(lib.prune_thumbnails())

    assert (result.removed, result.kept) == (2, 2)
    assert all(f.is_file() for f in fresh.values())
    assert not made[str(root / "p0.jpg")].exists() and not made[str(root / "p1.jpg")].exists()
    assert sorted(p.name for p in root.iterdir()) == ["p1.jpg", "p2.jpg"]
    lib.close()
