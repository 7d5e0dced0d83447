"""Benchmark: duplicate grouping at library scale, on synthetic data.

dino: unit vectors (dim 384) drawn around random cluster centres (within a
cluster, cosine ~0.5, like photos of one theme), with 1 % of them replaced by
planted near-duplicates of another vector (cosine 0.96–0.99). The pairs at or
above the threshold are found with `dupe_pairs.dino_pairs` (exact range search
up to 20,000 vectors, IVF kNN above), then grouped by union-find. Recall is
the share of planted pairs found; "extra" counts found pairs that were not
planted (chance near neighbours inside a cluster).

phash: random 64-bit hashes with 1 % planted near copies (0–8 bits flipped),
grouped at the default 8 bits by multi-index hashing; recall must be 1 (the
method is exact).

    python bench/duplicates.py --json              # 100,000 vectors and hashes
    python bench/duplicates.py --million --json    # also 1,000,000 vectors

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

from dino_desktop.core import dupe_pairs
from dino_desktop.core import duplicates as dup
from dino_desktop.core.progress import drive

DIM = 384


def clustered_vectors(
    n: int, rng: np.random.Generator, dim: int = DIM
) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors in clusters, and the planted pairs (i, j), 1 % of n."""
    clusters = max(10, n // 200)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):  # in slices: the noise of 1M x 384 at once is 1.5 GB more
        m = min(step, n - s)
        noise = rng.standard_normal((m, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        x[s : s + m] = centres[rng.integers(0, clusters, m)] + noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pairs = rng.choice(n, (n // 100, 2), replace=False)
    cos = rng.uniform(0.96, 0.99, len(pairs)).astype(np.float32)
    v = x[pairs[:, 0]]
    noise = rng.standard_normal(v.shape, dtype=np.float32)
    noise -= (noise * v).sum(1, keepdims=True) * v
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    x[pairs[:, 1]] = cos[:, None] * v + np.sqrt(1 - cos**2)[:, None] * noise
    x[pairs[:, 1]] /= np.linalg.norm(x[pairs[:, 1]], axis=1, keepdims=True)
    return x, np.sort(pairs, axis=1)


def group(n: int, i: np.ndarray, j: np.ndarray) -> int:
    uf = dup._UnionFind(n)
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        uf.union(a, b)
    return len(uf.components())


def bench_dino(n: int, rng: np.random.Generator, threshold: float = 0.95) -> dict[str, object]:
    x, planted = clustered_vectors(n, rng)
    t0 = time.perf_counter()
    i, j = drive(dupe_pairs.dino_pairs(x, threshold))
    t1 = time.perf_counter()
    groups = group(n, i, j)
    t2 = time.perf_counter()
    found = set((i * n + j).tolist())
    keys = (planted[:, 0] * n + planted[:, 1]).tolist()
    hits = sum(k in found for k in keys)
    return {
        "n": n,
        "index": "flat range search" if n <= dupe_pairs.EXACT_LIMIT else "IVFFlat kNN",
        "nlist": None if n <= dupe_pairs.EXACT_LIMIT else int(4 * np.sqrt(n)),
        "nprobe": dupe_pairs.NPROBE,
        "k": dupe_pairs.KNN,
        "pairs_s": round(t1 - t0, 2),
        "group_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "planted": len(keys),
        "recall": round(hits / len(keys), 4),
        "pairs_found": len(found),
        "extra_pairs": len(found) - hits,
        "groups": groups,
    }


def bench_phash(n: int, rng: np.random.Generator, bits: int = 8) -> dict[str, object]:
    h = rng.integers(0, 2**64, n, dtype=np.uint64)
    planted = rng.choice(n, (n // 100, 2), replace=False)
    for a, b in planted.tolist():
        flips = rng.choice(64, int(rng.integers(0, bits + 1)), replace=False)
        h[b] = h[a] ^ np.uint64(sum(1 << int(f) for f in flips))
    t0 = time.perf_counter()
    i, j = drive(dupe_pairs.hamming_pairs(h, bits))
    t1 = time.perf_counter()
    groups = group(n, i, j)
    t2 = time.perf_counter()
    found = set((i * n + j).tolist())
    lo, hi = planted.min(1), planted.max(1)
    hits = sum(k in found for k in (lo * n + hi).tolist())
    return {
        "n": n,
        "threshold_bits": bits,
        "blocks": len(dupe_pairs._block_plan(n, bits)),
        "pairs_s": round(t1 - t0, 2),
        "group_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "planted": len(planted),
        "recall": round(hits / len(planted), 4),
        "groups": groups,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="also 1,000,000 vectors")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    result: dict[str, object] = {"threads": os.cpu_count()}
    result["dino_20k_exact"] = bench_dino(dupe_pairs.EXACT_LIMIT, rng)
    result["dino"] = bench_dino(args.n, rng)
    result["phash"] = bench_phash(args.n, rng)
    if args.million:
        result["dino_1m"] = bench_dino(1_000_000, rng)
    if not args.json:
        for key, value in result.items():
            print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
