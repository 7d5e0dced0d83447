"""Sort by example: the classifier on embeddings with known structure, the library
plumbing (example folders, labels made in the app, rejections), export and undo, the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import imagegen
import numpy as np
import pytest
import weightsgen

from dino_desktop.cli import main
from dino_desktop.core import sorting
from dino_desktop.core.library import Library
from dino_desktop.core.progress import Cancelled, CancelToken, drive
from dino_desktop.core.records import LibraryError
from dino_desktop.core.sorting import LabelExamples, SortError

DIM = 48


def planted(
    classes: int, per: int, noise: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, unit vectors, true class) around `classes` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(classes), per)
    x = centres[truth] + noise * rng.standard_normal((len(truth), DIM)) / np.sqrt(DIM) * 4
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(1000, 1000 + len(truth), dtype=np.int64)
    return ids, x.astype(np.float32), truth


def examples(ids: np.ndarray, truth: np.ndarray, names: list[str], k: int) -> list[LabelExamples]:
    """The first `k` photos of each class as its examples."""
    return [
        LabelExamples(name, [int(i) for i in ids[truth == c][:k]]) for c, name in enumerate(names)
    ]


@pytest.mark.parametrize("classifier", sorting.CLASSIFIERS)
def test_a_few_examples_sort_separable_classes(classifier: str) -> None:
    ids, x, truth = planted(4, 60)
    names = ["Receipts", "Cats", "Beach", "Snow"]
    labels = examples(ids, truth, names, 5)
    result = drive(sorting.train(ids, x, labels, classifier=classifier))
    assert result.cv_accuracy is not None and result.cv_accuracy >= 0.95
    assert result.cv_folds == 5 and result.examples == dict.fromkeys(names, 5)
    # Every other photo is predicted, with the right label, confidently.
    given = {i for lb in labels for i in lb.positives}
    assert {p.image_id for p in result.predictions} == {int(i) for i in ids} - given
    want = {int(i): names[c] for i, c in zip(ids, truth, strict=True)}
    right = sum(p.label == want[p.image_id] for p in result.predictions)
    assert right / len(result.predictions) >= 0.98
    assert all(0.0 <= p.confidence <= 1.0 for p in result.predictions)
    grouped = result.by_label()
    assert set(grouped) == {*names, sorting.UNSURE}
    for items in grouped.values():
        assert [p.confidence for p in items] == sorted((p.confidence for p in items), reverse=True)


def test_labelled_photos_are_never_predicted_and_bad_input_is_refused() -> None:
    ids, x, truth = planted(2, 20)
    labels = examples(ids, truth, ["A", "B"], 3)
    result = drive(sorting.train(ids, x, labels))
    predicted = {p.image_id for p in result.predictions}
    assert not predicted & {i for lb in labels for i in lb.positives}
    with pytest.raises(SortError, match="at least two labels"):
        drive(sorting.train(ids, x, labels[:1]))
    with pytest.raises(SortError, match="at least two labels"):
        drive(sorting.train(ids, x, [LabelExamples("A", [1, 2]), LabelExamples("B", [])]))
    with pytest.raises(SortError, match="same name"):
        drive(sorting.train(ids, x, [labels[0], LabelExamples("A", labels[1].positives)]))
    with pytest.raises(SortError, match="classifier"):
        drive(sorting.train(ids, x, labels, classifier="svm"))


def test_one_example_each_trains_but_has_no_cv_figure() -> None:
    ids, x, truth = planted(3, 10)
    result = drive(sorting.train(ids, x, examples(ids, truth, ["A", "B", "C"], 1)))
    assert result.cv_accuracy is None and "at least 2 examples" in result.cv_note
    assert len(result.predictions) == 27


def test_photos_between_two_labels_are_unsure() -> None:
    ids, x, truth = planted(2, 30, noise=0.05)
    # Five photos half-way between the two groups.
    a, b = x[truth == 0].mean(axis=0), x[truth == 1].mean(axis=0)
    rng = np.random.default_rng(1)
    mid = (a + b)[None, :] / 2 + 0.002 * rng.standard_normal((5, DIM))
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    ids = np.concatenate([ids, np.arange(5000, 5005)])
    x = np.concatenate([x, mid.astype(np.float32)])
    labels = examples(ids[:60], truth, ["A", "B"], 5)
    result = drive(sorting.train(ids, x, labels, threshold=0.9))
    unsure = {p.image_id for p in result.by_label()[sorting.UNSURE]}
    assert set(range(5000, 5005)) <= unsure
    assert len(unsure) <= 10  # the clear-cut ones are not
    # A lower threshold (no retraining) moves them back into their best label.
    relaxed = sorting.rethreshold(result, 0.0)
    assert relaxed.by_label()[sorting.UNSURE] == []
    assert {p.image_id: p.label for p in relaxed.predictions} == {
        p.image_id: p.label for p in result.predictions
    }


def test_a_rejected_photo_is_never_predicted_as_that_label_again() -> None:
    ids, x, truth = planted(3, 30)
    labels = examples(ids, truth, ["A", "B", "C"], 5)
    first = drive(sorting.train(ids, x, labels))
    victim = next(p for p in first.predictions if p.label == "A")
    labels[0] = LabelExamples("A", labels[0].positives, [victim.image_id])
    again = drive(sorting.train(ids, x, labels))
    after = next(p for p in again.predictions if p.image_id == victim.image_id)
    assert after.label != "A"


def test_rejections_teach_what_belongs_to_no_label() -> None:
    """A third kind of photo with no label: once a few are rejected, the rest of that
    kind are unsure instead of being forced into A or B."""
    ids, x, truth = planted(3, 40)
    labels = examples(ids, truth, ["A", "B"], 5)
    stray = [int(i) for i in ids[truth == 2]]
    before = drive(sorting.train(ids, x, labels, threshold=0.0))
    assert all(not p.unsure for p in before.predictions)  # forced into A or B
    labels[0] = LabelExamples("A", labels[0].positives, stray[:3])
    labels[1] = LabelExamples("B", labels[1].positives, stray[3:6])
    after = drive(sorting.train(ids, x, labels, threshold=0.0))
    rest = {p.image_id: p for p in after.predictions if p.image_id in stray[6:]}
    assert len(rest) == len(stray) - 6
    assert sum(p.unsure and p.other for p in rest.values()) >= 0.9 * len(rest)
    # The A and B photos are still sorted.
    clear = [p for p in after.predictions if p.image_id not in stray]
    assert sum(not p.unsure for p in clear) >= 0.95 * len(clear)


def test_training_can_be_cancelled() -> None:
    ids, x, truth = planted(2, 20)
    token = CancelToken()
    job = sorting.train(ids, x, examples(ids, truth, ["A", "B"], 5), cancel=token)
    next(job)
    token.cancel()
    with pytest.raises(Cancelled):
        drive(job)


def test_cv_on_many_examples_uses_a_bounded_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sorting, "CV_SAMPLE", 100)
    ids, x, truth = planted(2, 150)
    result = drive(sorting.train(ids, x, examples(ids, truth, ["A", "B"], 150)))
    assert result.cv_accuracy is not None and result.cv_accuracy >= 0.95
    assert "sample of 100" in result.cv_note and result.predictions == []


# ---- the library: example folders, labels made in the app, export -----------------


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("weights") / "tiny.pth", weightsgen.TINY
    )


def _photos(root: Path) -> dict[str, Path]:
    """Example folders Cats (3) and Beach (3) under `root`/sort, 6 loose photos."""
    out = {}
    for name, seeds in (("Cats", range(0, 3)), ("Beach", range(10, 13)), ("loose", range(20, 26))):
        folder = root / "sort" / name if name != "loose" else root / "dump"
        folder.mkdir(parents=True)
        for s in seeds:
            out[f"{name}{s}"] = imagegen.save_jpeg(folder / f"p{s}.jpg", seed=s, size=(160, 120))
    return out


@pytest.fixture
def lib(tmp_path: Path, tiny_weights: Path) -> Iterator[Library]:
    _photos(tmp_path)
    weightsgen.register_tiny_model()
    library = Library(tmp_path / "lib", model=weightsgen.TINY, weights=tiny_weights, device="cpu")
    drive(library.scan([str(tmp_path / "dump")]))
    yield library
    library.close()


def test_example_folders_label_every_other_photo(lib: Library, tmp_path: Path) -> None:
    dirs = [tmp_path / "sort" / "Cats", tmp_path / "sort" / "Beach"]
    drive(lib.scan_example_folders(dirs))
    labels = lib.labels_from_folders(dirs)
    assert [lb.name for lb in labels] == ["Cats", "Beach"]
    assert [lb.positives for lb in labels] == [3, 3]
    result = drive(lib.sort_by_example())
    paths = lib.paths_of(p.image_id for p in result.predictions)
    assert sorted(paths.values()) == sorted(str(p) for p in (tmp_path / "dump").iterdir())
    assert result.cv_accuracy is not None  # 3 examples each: 3-fold
    assert result.cv_folds == 3
    assert {p.label for p in result.predictions} <= {"Cats", "Beach"}


def test_labels_made_in_the_app_and_rejections_are_saved(lib: Library) -> None:
    photos = lib.photos()
    a, b = lib.add_sort_label("Receipts"), lib.add_sort_label("Cats")
    assert lib.label_photos(a.id, [photos[0].id, photos[1].id]) == 2
    assert lib.label_photos(b.id, [photos[2].id, photos[3].id]) == 2
    # Labelling a photo for another label takes it away from the first.
    lib.label_photos(b.id, [photos[1].id])
    assert lib.label_examples(a.id) == ([photos[0].id], [])
    lib.label_photos(a.id, [photos[4].id], positive=False)
    assert lib.label_examples(a.id) == ([photos[0].id], [photos[4].id])
    counts = {lb.name: (lb.positives, lb.negatives) for lb in lib.sort_labels()}
    assert counts == {"Cats": (3, 0), "Receipts": (1, 1)}
    result = drive(lib.sort_by_example())
    assert {p.image_id for p in result.predictions} == {photos[4].id, photos[5].id}
    assert all(p.label != "Receipts" for p in result.predictions if p.image_id == photos[4].id)
    with pytest.raises(LibraryError, match="already"):
        lib.rename_sort_label(a.id, "Cats")
    lib.remove_sort_label(a.id)
    assert [lb.name for lb in lib.sort_labels()] == ["Cats"]
    with pytest.raises(LibraryError, match="at least two"):
        drive(lib.sort_by_example())


def test_export_copy_then_undo_and_move_then_undo(lib: Library, tmp_path: Path) -> None:
    dirs = [tmp_path / "sort" / "Cats", tmp_path / "sort" / "Beach"]
    drive(lib.scan_example_folders(dirs))
    lib.labels_from_folders(dirs)
    result = sorting.rethreshold(drive(lib.sort_by_example()), 0.0)  # all 6 sorted
    dest = tmp_path / "sort"  # into the example folders themselves
    before = {p: p.read_bytes() for p in (tmp_path / "sort").rglob("*.jpg")}
    dump = {p: p.read_bytes() for p in (tmp_path / "dump").iterdir()}
    plan = lib.sorted_export_plan(result, dest)
    assert sorted(src for src, _ in plan) == sorted(str(p) for p in dump)  # examples stay
    out = drive(lib.export_sorted_job(result, dest, "copy"))
    assert len(out.moved) == 6 and not out.failed
    for src, dst in out.moved:
        assert Path(dst).read_bytes() == Path(src).read_bytes()
        assert Path(dst).parent.name in {"Cats", "Beach"}
    lib.undo()
    assert {p: p.read_bytes() for p in (tmp_path / "sort").rglob("*.jpg")} == before

    moved = drive(lib.export_sorted_job(result, tmp_path / "out", "move"))
    assert len(moved.moved) == 6 and not any(p.exists() for p in dump)
    lib.undo()
    assert {p: p.read_bytes() for p in (tmp_path / "dump").iterdir()} == dump
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


# ---- the CLI ---------------------------------------------------------------------


def test_cli_sort_by_example(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_weights: Path
) -> None:
    _photos(tmp_path)
    base = ["--library", str(tmp_path / "lib"), "--model", weightsgen.TINY]
    base += ["--weights", str(tiny_weights)]
    assert main([*base, "scan", str(tmp_path / "dump"), "--json"]) == 0
    capsys.readouterr()
    cats, beach = str(tmp_path / "sort" / "Cats"), str(tmp_path / "sort" / "Beach")
    assert main([*base, "sort-by-example", "--labels", cats, beach, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"cv_accuracy", "predictions"} <= out.keys()
    predicted = {p["path"]: p for p in out["predictions"]}
    assert sorted(predicted) == sorted(str(p) for p in (tmp_path / "dump").iterdir())
    for p in predicted.values():
        assert os.path.isabs(p["path"]) and 0 <= p["confidence"] <= 1
        assert p["label"] == ("Unsure" if p["unsure"] else p["guess"])
        assert p["guess"] in {"Cats", "Beach"}
    assert [lb["examples"] for lb in out["labels"]] == [3, 3]

    dest = tmp_path / "out"
    args = ["sort-by-example", "--labels", cats, beach, "--threshold", "0", "--export", str(dest)]
    assert main([*base, *args, "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert len(done["written"]) == 6 and all(Path(p).is_file() for p in done["written"])
    assert main([*base, "undo", str(done["journal"]), "--json"]) == 0
    assert not dest.exists()

    assert main([*base, "sort-by-example", "--labels", str(tmp_path / "nope")]) == 2
    assert main([*base, "sort-by-example", "--labels", cats, "--threshold", "2"]) == 2
    assert main([*base, "sort-by-example", "--labels", cats]) == 1  # one label: too few
    assert "at least two" in capsys.readouterr().err
