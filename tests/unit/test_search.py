"""Search by example on both backends: the whole library, a folder, a sort label; the
answers are those of an exact search over the photos in scope (core/search.py)."""

from __future__ import annotations

from pathlib import Path

import imagegen
import numpy as np
import pytest
import weightsgen

from dino_desktop.core import server_search, vectors
from dino_desktop.core.db import Raw
from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import LibraryError


def _exact(lib: Library, ids: set[int], query: np.ndarray, top: int) -> list[int]:
    found, vecs = vectors.all_vectors(lib.sessions, lib.model_id(), lib._dim())
    keep = np.isin(found, sorted(ids))
    scores = vecs[keep] @ query
    return [int(i) for i in found[keep][np.argsort(-scores, kind="stable")[:top]]]


@pytest.fixture
def lib(library_at: str | Path, tmp_path: Path, tiny_weights: Path) -> Library:
    root = tmp_path / "photos"
    for sub, first in (("2019", 0), ("2020/summer", 10), ("2020/winter", 20)):
        for i in range(first, first + 6):
            imagegen.save_jpeg(root / sub / f"p{i}.jpg", seed=i, size=(96, 72))
    library = Library(library_at, model=weightsgen.TINY, weights=tiny_weights, device="cpu")
    library.settings.precision = "fp32"
    drive(library.scan([root]))
    return library


def test_searches_in_a_folder_or_a_label_are_exact_within_it(lib: Library) -> None:
    with lib:
        root = lib.folders()[0].path
        photos = {p.path: p.id for p in lib.photos()}
        query = vectors.stored_vector(lib.sessions, lib.model_id(), photos[f"{root}/2019/p3.jpg"])
        assert query is not None
        everything = lib.search_vector(query, 5)
        assert [h.image_id for h in everything] == _exact(lib, set(photos.values()), query, 5)
        assert everything[0].path.endswith("2019/p3.jpg")

        summer = {i for p, i in photos.items() if "/2020/summer/" in p}
        hits = lib.search_vector(query, 4, lib.search_scope(f"{root}/2020/summer"))
        assert [h.image_id for h in hits] == _exact(lib, summer, query, 4)
        assert all("/2020/summer/" in h.path for h in hits)
        in_2020 = lib.search_vector(query, 20, lib.search_scope(f"{root}/2020"))
        assert len(in_2020) == 12 and all("/2020/" in h.path for h in in_2020)

        label = lib.add_sort_label("beach")
        chosen = sorted(photos.values())[::4]
        lib.label_photos(label.id, chosen)
        hits = lib.search_vector(query, 3, lib.search_scope(label="beach"))
        assert [h.image_id for h in hits] == _exact(lib, set(chosen), query, 3)
        both = lib.search_scope(f"{root}/2020/winter", "beach")
        winter_beach = {i for p, i in photos.items() if "/winter/" in p and i in chosen}
        hits = lib.search_vector(query, 10, both)
        assert {h.image_id for h in hits} == winter_beach
        assert hits and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

        with pytest.raises(LibraryError, match="not in a library folder"):
            lib.search_scope("/somewhere/else")
        with pytest.raises(LibraryError, match=r"no sort label named 'cats'.*beach"):
            lib.search_scope(label="cats")


def test_a_shared_library_answers_from_its_hnsw_index(pg_url: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with Library(pg_url) as lib:
        model_id, dim = 7, 384
        with lib.sessions() as session, session.begin():
            raw = Raw(session)
            raw.execute(
                "INSERT INTO models (id, name, weights_sha256, dim, image_size)"
                " VALUES (?, 'm', ?, ?, 224)",
                (model_id, "0" * 64, dim),
            )
        server_search.ensure_index(lib.engine, model_id, dim)
        server_search.ensure_index(lib.engine, model_id, dim)  # there already: nothing to do
        query = rng.standard_normal(dim).astype(np.float32)
        with lib.sessions() as session:
            raw = Raw(session)
            # An empty table: the planner would sort the few rows; with sorting made
            # expensive, the ordered HNSW scan must be there to be chosen.
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                raw.execute(f"SET LOCAL {setting} = off")
            assert server_search.uses_index(session, model_id, dim, query, 10)
        assert server_search.ef_search(10) == 100 and server_search.ef_search(400) == 800
        assert server_search.ef_search(10_000) == 1000
