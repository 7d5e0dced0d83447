"""Sort by example: learn categories from a few labelled photos, predict the rest.

Frozen DINOv2 embeddings are strong enough that a linear classifier on a handful
of examples per category sorts the rest well. The user gives labels either as
example folders (the folder name is the label, every photo in it an example) or
by tagging photos in the app; `train` fits a classifier on the stored vectors of
the examples and predicts every other embedded photo with a confidence.

* **Classifiers**: scikit-learn's multinomial logistic regression (default;
  balanced class weights, since example counts differ wildly) or a small MLP
  head (one hidden layer of 256, early stopping). Both see the L2-normalised
  vectors standardised per dimension with the mean and spread of the *whole
  library* (a sample of it), not of the few examples: DINOv2 vectors share a
  large common component, and taking it out makes the optimiser converge in a
  few iterations (100,000 examples: ~5× faster than raw vectors, same accuracy),
  while statistics from five examples a label would be noise.
* **Cross-validated accuracy**: stratified k-fold over the examples, k = 5 or
  fewer when the smallest label has fewer examples (at least two each are
  needed; else no figure, with the reason). Above `CV_SAMPLE` examples the folds
  are taken over a stratified sample of that size: the estimate is as good and
  the cost stays bounded.
* **Active learning**: a prediction the user rejects becomes a negative example
  of that label. A photo rejected from a label is never predicted as that label
  again (its probability is zeroed and the rest renormalised); rejected photos
  that belong to no label are also examples of an internal "other" class, so
  the model learns what belongs nowhere.
* **Unsure**: a photo whose best label has a confidence below the threshold
  (or for which "other" wins) is listed as unsure, with its best guess.
* Labelled photos (positive examples) are never predicted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dino_desktop.core.progress import CancelToken, Job, Progress

CLASSIFIERS = ("logreg", "mlp")
DEFAULT_THRESHOLD = 0.6
UNSURE = "Unsure"
# Cross-validation runs on at most this many examples (a stratified sample).
CV_SAMPLE = 5_000
MAX_FOLDS = 5
# The per-dimension mean and spread come from at most this many library vectors.
SCALE_SAMPLE = 50_000
# Predictions are made in chunks so that a cancel is noticed and memory stays flat.
PREDICT_CHUNK = 50_000
_OTHER = -1  # the class of rejected photos that belong to no label


@dataclass(frozen=True, slots=True)
class LabelExamples:
    """One label as the classifier sees it: its name and example photo ids."""

    name: str
    positives: Sequence[int]
    negatives: Sequence[int] = ()


@dataclass(frozen=True, slots=True)
class Prediction:
    image_id: int
    label: str  # the best label, also for an unsure photo
    confidence: float  # the classifier's probability of that label
    unsure: bool  # below the threshold, or `other`
    other: bool = False  # "belongs to no label" (learnt from rejections) won


@dataclass(frozen=True, slots=True)
class SortResult:
    labels: list[str]
    classifier: str
    threshold: float
    cv_accuracy: float | None
    cv_folds: int
    cv_note: str  # why there is no accuracy, or how it was taken
    examples: dict[str, int]  # positive examples per label
    predictions: list[Prediction] = field(default_factory=list)

    def by_label(self) -> dict[str, list[Prediction]]:
        """Confident predictions per label, most confident first; unsure ones under UNSURE."""
        out: dict[str, list[Prediction]] = {name: [] for name in [*self.labels, UNSURE]}
        for p in self.predictions:
            out[UNSURE if p.unsure else p.label].append(p)
        for items in out.values():
            items.sort(key=lambda p: -p.confidence)
        return out


class SortError(ValueError):
    """Training cannot start (too few labels or examples); the message says what to add."""


def _classifier(kind: str, n: int, seed: int) -> Any:
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression

        # On standardised inputs the default C suits both a handful of examples
        # and 100,000; tol 1e-3: the predictions no longer change past it.
        return LogisticRegression(C=1.0, tol=1e-3, max_iter=300, class_weight="balanced")
    if kind == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(
            hidden_layer_sizes=(256,),
            alpha=1e-3,
            # Large batches: 100,000 examples in 100 steps an epoch, not 500.
            batch_size=min(1024, max(n, 1)),
            max_iter=200,
            tol=1e-3,
            n_iter_no_change=5,
            early_stopping=n >= 200,  # a validation split needs enough examples
            random_state=seed,
        )
    raise SortError(f"unknown classifier {kind!r}; use {', '.join(CLASSIFIERS)}")


def training_set(
    labels: Sequence[LabelExamples], where: Mapping[int, int]
) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """(rows into the vectors, classes, positive ids) from the labels' examples.

    A photo given as a positive of two labels counts for the first only; a
    rejected photo that is no label's positive becomes an "other" example.
    """
    rows: list[int] = []
    classes: list[int] = []
    positive: set[int] = set()
    for c, label in enumerate(labels):
        for i in label.positives:
            if i in where and i not in positive:
                positive.add(i)
                rows.append(where[i])
                classes.append(c)
    other = {i for label in labels for i in label.negatives if i in where} - positive
    for i in sorted(other):
        rows.append(where[i])
        classes.append(_OTHER)
    return np.asarray(rows, dtype=np.int64), np.asarray(classes, dtype=np.int64), positive


def _cv(
    kind: str, x: np.ndarray, y: np.ndarray, seed: int, cancel: CancelToken
) -> tuple[float | None, int, str]:
    from sklearn.model_selection import StratifiedKFold, train_test_split

    counts = np.bincount(y - y.min())
    smallest = int(counts[counts > 0].min())
    if smallest < 2:
        return None, 0, "each label needs at least 2 examples for a cross-validated accuracy"
    note = ""
    if len(y) > CV_SAMPLE:
        # Keep at least 2 of every class in the sample so the folds stay stratified.
        x, _, y, _ = train_test_split(x, y, train_size=CV_SAMPLE, stratify=y, random_state=seed)
        note = f" on a stratified sample of {CV_SAMPLE:,} examples"
        counts = np.bincount(y - y.min())
        smallest = int(counts[counts > 0].min())
    folds = max(2, min(MAX_FOLDS, smallest))
    scores: list[float] = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        cancel.check()
        model = _classifier(kind, len(train), seed)
        model.fit(x[train], y[train])
        scores.append(float((model.predict(x[test]) == y[test]).mean()))
    return float(np.mean(scores)), folds, f"{folds}-fold stratified cross-validation{note}"


def train(
    ids: np.ndarray,
    vectors: np.ndarray,
    labels: Sequence[LabelExamples],
    *,
    classifier: str = "logreg",
    threshold: float = DEFAULT_THRESHOLD,
    cv: bool = True,
    seed: int = 0,
    cancel: CancelToken | None = None,
) -> Job[SortResult]:
    """Fit on the labels' examples and predict every other photo in `ids`; yields Progress.

    `ids`/`vectors` are every embedded photo (rows aligned). Raises SortError
    when fewer than two classes have examples, Cancelled when asked to stop.
    """
    cancel = cancel or CancelToken()
    if classifier not in CLASSIFIERS:
        raise SortError(f"unknown classifier {classifier!r}; use {', '.join(CLASSIFIERS)}")
    if not 0.0 <= threshold <= 1.0:
        raise SortError("the confidence threshold must be between 0 and 1")
    names = [label.name for label in labels]
    if len(set(names)) != len(names):
        raise SortError("two labels have the same name")
    where = {int(i): n for n, i in enumerate(ids)}
    rows, y, positive = training_set(labels, where)
    examples = {label.name: int((y == c).sum()) for c, label in enumerate(labels)}
    with_examples = [name for name, n in examples.items() if n > 0]
    if len(with_examples) + (1 if (y == _OTHER).any() else 0) < 2:
        raise SortError(
            "sorting needs examples of at least two labels (or rejected photos); "
            f"have: {', '.join(f'{k} ({v})' for k, v in examples.items()) or 'none'}"
        )
    yield Progress("train", 0, 3, None, f"Learning from {len(y):,} examples")
    scale = _standardiser(vectors, seed)
    x = scale(vectors[rows])
    if cv:
        accuracy, folds, note = _cv(classifier, x, y, seed, cancel)
    else:
        accuracy, folds, note = None, 0, "not measured"
    cancel.check()
    yield Progress("train", 1, 3, None, "Training")
    model = _classifier(classifier, len(y), seed)
    model.fit(x, y)
    cancel.check()
    classes = [int(c) for c in model.classes_]

    # Which labels each photo was rejected from: never predicted as those.
    rejected: dict[int, list[int]] = {}
    column = {c: n for n, c in enumerate(classes)}
    for c, label in enumerate(labels):
        for i in label.negatives:
            if c in column:
                rejected.setdefault(int(i), []).append(column[c])
    label_cols = [column[c] for c in range(len(labels)) if c in column]
    other_col = column.get(_OTHER)

    todo = np.asarray([n for n, i in enumerate(ids) if int(i) not in positive], dtype=np.int64)
    predictions: list[Prediction] = []
    yield Progress("predict", 0, len(todo), None, f"Sorting {len(todo):,} photos")
    for start in range(0, len(todo), PREDICT_CHUNK):
        cancel.check()
        chunk = todo[start : start + PREDICT_CHUNK]
        proba = np.asarray(model.predict_proba(scale(vectors[chunk])))
        chunk_ids = ids[chunk]
        for r, image_id in enumerate(chunk_ids.tolist()):
            if image_id in rejected:
                proba[r, rejected[image_id]] = 0.0
                total = proba[r].sum()
                if total > 0:
                    proba[r] /= total
        label_p = proba[:, label_cols]
        best = label_p.argmax(axis=1)
        confidence = label_p[np.arange(len(chunk)), best]
        other = (
            proba[:, other_col] > confidence
            if other_col is not None
            else np.zeros(len(chunk), dtype=bool)
        )
        best_names = [names[classes[label_cols[b]]] for b in range(len(label_cols))]
        predictions.extend(
            Prediction(i, best_names[b], c, unsure=o or c < threshold, other=o)
            for i, b, c, o in zip(
                chunk_ids.tolist(), best.tolist(), confidence.tolist(), other.tolist(), strict=True
            )
        )
        yield Progress("predict", min(start + PREDICT_CHUNK, len(todo)), len(todo))
    return SortResult(
        labels=names,
        classifier=classifier,
        threshold=threshold,
        cv_accuracy=accuracy,
        cv_folds=folds,
        cv_note=note,
        examples=examples,
        predictions=predictions,
    )


def rethreshold(result: SortResult, threshold: float) -> SortResult:
    """The same predictions with another confidence threshold (no retraining)."""
    from dataclasses import replace

    return replace(
        result,
        threshold=threshold,
        predictions=[
            replace(p, unsure=p.other or p.confidence < threshold) for p in result.predictions
        ],
    )


def _standardiser(vectors: np.ndarray, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Unit-normalise, then standardise each dimension by the library's statistics."""
    rng = np.random.default_rng(seed)
    sample = (
        vectors
        if len(vectors) <= SCALE_SAMPLE
        else vectors[np.sort(rng.choice(len(vectors), SCALE_SAMPLE, replace=False))]
    )
    unit = _unit(sample)
    mean = unit.mean(axis=0)
    std = np.maximum(unit.std(axis=0), 1e-6)

    def scale(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = ((_unit(x) - mean) / std).astype(np.float32)
        return out

    return scale


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = x / np.maximum(norms, 1e-12)
    return out
