"""Two clients editing the same thing: the second gets a clear conflict message and
nothing is silently overwritten (on both backends; the point of a shared library)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import imagegen
import pytest
import weightsgen

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive
from dino_desktop.core.records import ConflictError


@pytest.fixture
def two_clients(tmp_path: Path, library_at: str | Path) -> Iterator[tuple[Library, Library]]:
    """Two clients of one library with a saved auto-folder run and two sort labels."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        imagegen.save_jpeg(photos / f"p{i}.jpg", seed=i, size=(200, 150))
    weightsgen.register_tiny_model()
    weights = weightsgen.write_meta_checkpoint(tmp_path / "tiny.pth", weightsgen.TINY)
    opts = {"model": weightsgen.TINY, "weights": weights, "device": "cpu"}
    first = Library(library_at, **opts)
    drive(first.scan([photos]))
    drive(first.cluster(2))
    first.add_sort_label("Cats")
    second = Library(library_at, **opts)
    yield first, second
    second.close()
    first.close()


def test_renaming_an_auto_folder_another_client_renamed_is_refused(
    two_clients: tuple[Library, Library],
) -> None:
    one, other = two_clients
    run = one.clusters()
    assert run is not None
    folder = run.clusters[0]
    seen = folder.name  # what both desktops show
    assert other.rename_cluster(folder.id, "Beach", was=seen) == "Beach"
    with pytest.raises(ConflictError, match=f"“{seen}” to “Beach” meanwhile; “Hike” was not"):
        one.rename_cluster(folder.id, "Hike", was=seen)
    again = one.clusters()
    assert again is not None and again.clusters[0].name == "Beach"  # not overwritten
    # Knowing the other name now, the user may replace it; the same name twice is no conflict.
    assert one.rename_cluster(folder.id, "Hike", was="Beach") == "Hike"
    assert other.rename_cluster(folder.id, "Hike", was="Beach") == "Hike"


def test_renaming_a_sort_label_another_client_renamed_is_refused(
    two_clients: tuple[Library, Library],
) -> None:
    one, other = two_clients
    (label,) = one.sort_labels()
    other.rename_sort_label(label.id, "Kittens", was="Cats")
    with pytest.raises(ConflictError, match="“Cats” to “Kittens” meanwhile; “Felines” was not"):
        one.rename_sort_label(label.id, "Felines", was="Cats")
    assert [lb.name for lb in one.sort_labels()] == ["Kittens"]
    one.rename_sort_label(label.id, "Felines", was="Kittens")
    assert [lb.name for lb in other.sort_labels()] == ["Felines"]
