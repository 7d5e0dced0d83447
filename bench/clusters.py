"""Benchmark: k-means for auto-folders, faiss vs scikit-learn, in one run.

100,000 synthetic unit vectors (dim 384) drawn around 100 random centres, then
k-means with k = 100 and 20 iterations: faiss's spherical k-means (what
`core.clusters.kmeans` runs) and scikit-learn's KMeans (n_init=1, max_iter=20,
tol=0 so it runs all the iterations too) on the same data. Both times and the
ratio are reported; the goal for faiss is ≤ 30 s on a 2-core machine.

    python bench/clusters.py --json

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

from dino_desktop.core import clusters

DIM = 384


def synthetic(n: int, centres: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, DIM)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.8 * rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    x = synthetic(args.n, args.k)
    t0 = time.perf_counter()
    result = clusters.kmeans(x, args.k, niter=clusters.NITER)
    faiss_s = time.perf_counter() - t0

    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    km = KMeans(n_clusters=args.k, n_init=1, max_iter=clusters.NITER, tol=0.0, random_state=0).fit(
        x
    )
    sklearn_s = time.perf_counter() - t0

    report = {
        "n": args.n,
        "dim": DIM,
        "k": args.k,
        "iterations": clusters.NITER,
        "cpus": os.cpu_count(),
        "faiss_s": round(faiss_s, 2),
        "faiss_clusters": result.k,
        "faiss_mean_cosine": round(float(result.scores.mean()), 4),
        "sklearn_s": round(sklearn_s, 2),
        "sklearn_iterations": int(km.n_iter_),
        "sklearn_over_faiss": round(sklearn_s / faiss_s, 2),
        "goal_faiss_s": 30,
    }
    if not args.json:
        print(f"faiss {faiss_s:.2f} s, scikit-learn {sklearn_s:.2f} s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
