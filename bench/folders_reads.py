"""Benchmark: what the Auto-folders view reads (in workers) after each change, at 100,000 photos.

A library of N photo rows (no files: only reads are timed) with N synthetic
vectors, sorted into k = 20 folders; then, in one run, each read the view makes
when it (re)loads — the saved run without paths, the new photos, the strip
thumbnails' rows — and, for comparison, the same run with every member's path
and the rows of every member (what the view read before).

    python bench/folders_reads.py --json

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import scale  # noqa: E402  (bench/scale.py: the model and the clustered vectors)

from dino_desktop.core.db import Embedding, ImageRow  # noqa: E402
from dino_desktop.core.library import Library  # noqa: E402
from dino_desktop.core.progress import drive  # noqa: E402


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return round(time.perf_counter() - t0, 3), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dino-folders-"))
    try:
        report = measure(work, args.n, args.k)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.json:
        for key, value in report.items():
            print(f"{key}: {value}")
    print(json.dumps(report))


def measure(work: Path, n: int, k: int) -> dict[str, Any]:
    import weightsgen

    weights = work / "random.pth"
    weightsgen.write_meta_checkpoint(weights, scale.MODEL, seed=0)
    (work / "photos").mkdir()
    lib = Library(work / "lib", model=scale.MODEL, weights=weights, device="cpu")
    folder_id = lib.add_folder(work / "photos").id
    model_id = lib.model_id()
    now = datetime.now()
    rows = [
        {
            "folder_id": folder_id,
            "relpath": f"d{i // 1000}/p{i}.jpg",
            "size": 1,
            "mtime_ns": 1,
            "status": "ok",
            "scanned_at": now,
        }
        for i in range(n)
    ]
    x, _ = scale.clustered_vectors(n, np.random.default_rng(0))
    with lib.sessions() as session, session.begin():
        session.execute(insert(ImageRow), rows)
    with lib.sessions() as session, session.begin():
        ids = list(session.scalars(select(ImageRow.id).order_by(ImageRow.id)))
        session.execute(
            insert(Embedding),
            [
                {"image_id": i, "model_id": model_id, "vector": x[k].tobytes()}
                for k, i in enumerate(ids)
            ],
        )
    cluster_s, _ = timed(lambda: drive(lib.cluster(k)))

    run_s, run = timed(lambda: lib.clusters(with_paths=False))
    new_s, _ = timed(lambda: lib.new_photos(run))
    reps_s, _ = timed(
        lambda: lib.photos_by_id(i for c in run.clusters for i in c.representative_ids)
    )
    open_s, _ = timed(lambda: lib.photos_by_id(run.clusters[0].member_ids))
    with_paths_s, full = timed(lambda: lib.clusters())
    all_rows_s, _ = timed(lambda: lib.photos_by_id(i for c in full.clusters for i in c.member_ids))
    lib.close()
    return {
        "n": n,
        "k": k,
        "cluster_s": cluster_s,
        "reload_s": round(run_s + new_s + reps_s, 3),
        "run_without_paths_s": run_s,
        "new_photos_s": new_s,
        "strip_rows_s": reps_s,
        "open_one_folder_s": open_s,
        "run_with_paths_s": with_paths_s,
        "every_member_row_s": all_rows_s,
    }


if __name__ == "__main__":
    main()
