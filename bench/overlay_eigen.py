"""Benchmark: the overlay's top-3 principal directions, subspace iteration vs
scikit-learn's `randomized_svd`, for precision and time in one run.

Synthetic centred patch features (1,369 patches, a ViT-S/B/L-like width) with a
power-law spectrum λᵢ ∝ i^-decay: decay 1 is an easy, fast-decaying spectrum,
0.3 a flat one (close eigenvalues, the hard case). Each method's error is
1 - |cos| of its worst component against LAPACK's full `eigh`; times are the
best of a few repeats, in the same run (ratios, not absolute figures).

    python bench/overlay_eigen.py --json

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.extmath import randomized_svd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dino_desktop.core.overlay import _top_eigenvectors

K = 3
PATCHES = 1369


def _features(dim: int, decay: float, rng: np.random.Generator) -> Any:
    lam = np.arange(1, dim + 1, dtype=float) ** -decay
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    x = rng.standard_normal((PATCHES, dim)) * np.sqrt(lam) @ basis.T
    return x - x.mean(axis=0)


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    rows = []
    for dim in args.dims:
        for decay in (1.0, 0.3):
            x = _features(dim, decay, rng)
            cov = x.T @ x / PATCHES
            ref = np.linalg.eigh(cov)[1][:, ::-1][:, :K]

            def err(vecs: Any, ref: Any = ref) -> float:
                return float(1.0 - np.abs(np.sum(vecs * ref, axis=0)).min())

            t, vecs = _best(lambda cov=cov: _top_eigenvectors(cov, K), args.repeats)
            row: dict[str, Any] = {"dim": dim, "decay": decay, "subspace": [t, err(vecs)]}
            for n_iter in (7, 15, 40):
                t, (_, _, vt) = _best(
                    lambda x=x, n_iter=n_iter: randomized_svd(x, K, n_iter=n_iter, random_state=0),
                    args.repeats,
                )
                row[f"randomized_svd n_iter={n_iter}"] = [t, err(vt.T)]
            rows.append(row)
            print(
                f"dim {dim} decay {decay}: "
                + ", ".join(
                    f"{k} {v[0] * 1e3:.0f} ms err {v[1]:.0e}"
                    for k, v in row.items()
                    if isinstance(v, list)
                ),
                flush=True,
            )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
