"""Benchmark: sort-by-example training on 100,000 labelled vectors with 10 labels.

Synthetic unit vectors (dim 384, the ViT-S/14 embedding size) drawn around 10
random centres with enough noise that the classes overlap a little; every one is
a labelled example. Timed separately, in one run: the cross-validation that
`core.sorting.train` runs (on its bounded stratified sample), the final fit on
all 100,000, and predicting another 100,000 unlabelled photos — for the default
logistic regression and, with --mlp, the MLP head too. The goal is training
(CV + fit) ≤ 10 s on a 2-core machine.

    python bench/sorting.py --json

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dino_desktop.core import sorting
from dino_desktop.core.progress import Progress

DIM = 384


def synthetic(n: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, DIM)).astype(np.float32)
    y = rng.integers(0, classes, n)
    x = centres[y] + 4.0 * rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, y


def run(classifier: str, n: int, labels: int) -> dict[str, float]:
    x, y = synthetic(2 * n, labels)
    ids = np.arange(2 * n, dtype=np.int64)
    examples = [
        sorting.LabelExamples(f"label {c}", [int(i) for i in ids[:n][y[:n] == c]])
        for c in range(labels)
    ]
    marks: dict[str, float] = {}
    job = sorting.train(ids, x, examples, classifier=classifier)
    t0 = time.perf_counter()
    result = None
    while True:
        try:
            step: Progress = next(job)
        except StopIteration as stop:
            result = stop.value
            break
        if step.phase == "train" and step.done == 1:
            marks["cv_s"] = time.perf_counter() - t0
        if step.phase == "predict" and step.done == 0:
            marks["fit_s"] = time.perf_counter() - t0 - marks["cv_s"]
    total = time.perf_counter() - t0
    assert result is not None
    want = {int(i): f"label {c}" for i, c in zip(ids[n:], y[n:], strict=True)}
    right = np.mean([p.label == want[p.image_id] for p in result.predictions])
    return {
        "cv_s": round(marks["cv_s"], 2),
        "fit_s": round(marks["fit_s"], 2),
        "train_s": round(marks["cv_s"] + marks["fit_s"], 2),
        "predict_s": round(total - marks["cv_s"] - marks["fit_s"], 2),
        "cv_accuracy": round(float(result.cv_accuracy or 0), 4),
        "holdout_accuracy": round(float(right), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="labelled vectors")
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--mlp", action="store_true", help="also time the MLP head")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    report: dict[str, object] = {
        "n": args.n,
        "labels": args.labels,
        "dim": DIM,
        "cpus": os.cpu_count(),
        "cv_sample": sorting.CV_SAMPLE,
        "logreg": run("logreg", args.n, args.labels),
    }
    if args.mlp:
        report["mlp"] = run("mlp", args.n, args.labels)
    if not args.json:
        for key, value in report.items():
            print(f"{key}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
