"""Benchmark: peak memory (and time) of each library step at N photos, each step in a fresh process.

A vectors-only library (N photo rows and N synthetic unit vectors, no files on
disk: only reads and computation are measured) is built once in --home; then
each step runs in its own process and reports its peak RSS: opening until the
index can search, the grid's rows (`photos()`), `cluster(k=100)` and
`duplicates("dino")`. `imports_mb` is a process that only imports torch, faiss
and scikit-learn, the floor under every figure.

    python bench/memory.py --n 1000000 --json

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

STEPS = ("open", "photos", "kmeans", "dupes")


def _peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def build(home: Path, n: int, weights: Path) -> None:
    import numpy as np
    import scale
    from sqlalchemy import insert, select

    from dino_desktop.core.db import Embedding, ImageRow
    from dino_desktop.core.library import Library

    lib = Library(home, model=scale.MODEL, weights=weights, device="cpu")
    (home / "photos").mkdir(exist_ok=True)
    folder_id = lib.add_folder(home / "photos").id
    model_id = lib.model_id()
    now = datetime.datetime.now()
    x, _ = scale.clustered_vectors(n, np.random.default_rng(0))
    with lib.sessions() as session, session.begin():
        for a in range(0, n, 50_000):
            session.execute(
                insert(ImageRow),
                [
                    {
                        "folder_id": folder_id,
                        "relpath": f"{i // 1000:04}/IMG_{i:07}.jpg",
                        "size": 1000 + i,
                        "mtime_ns": i,
                        "sha256": f"{i:064x}",
                        "phash": f"{(i * 2654435761) % (1 << 64):016x}",
                        "width": 32,
                        "height": 24,
                        "orientation": 1,
                        "status": "ok",
                        "scanned_at": now,
                        "format": "JPEG",
                    }
                    for i in range(a, min(n, a + 50_000))
                ],
            )
        ids = list(session.scalars(select(ImageRow.id).order_by(ImageRow.id)))
        for a in range(0, n, 50_000):
            session.execute(
                insert(Embedding),
                [
                    {"image_id": i, "model_id": model_id, "vector": x[k].tobytes()}
                    for k, i in enumerate(ids[a : a + 50_000], start=a)
                ],
            )
    lib.index()
    lib.close()


def step(name: str, home: Path, weights: Path) -> dict[str, float]:
    import faiss  # noqa: F401  (the same floor as imports_mb)
    import scale
    import sklearn  # noqa: F401
    import torch  # noqa: F401

    from dino_desktop.core.library import Library
    from dino_desktop.core.progress import drive

    lib = Library(home, model=scale.MODEL, weights=weights, device="cpu")
    t0 = time.perf_counter()
    if name == "open":
        lib.index()
    elif name == "photos":
        lib.photos()
    elif name == "kmeans":
        drive(lib.cluster(k=100))
    else:
        drive(lib.duplicates("dino"))
    return {"s": round(time.perf_counter() - t0, 1), "peak_mb": _peak_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--home", type=Path, help="the library (default: a temp dir, kept)")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--step", help=argparse.SUPPRESS)  # one step, in a child process
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "dino-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    weights = args.data / "vits14-random.pth"
    home = args.home or Path(tempfile.gettempdir()) / f"dino-memory-{args.n}"
    if args.step:
        print(json.dumps(step(args.step, home, weights)))
        return
    if not weights.exists():
        import weightsgen

        weightsgen.write_meta_checkpoint(weights, "vit_small_patch14_dinov2", seed=0)
    if not (home / "library.sqlite3").exists():
        build(home, args.n, weights)
    floor = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, torch, faiss, sklearn; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, object] = {"n": args.n, "imports_mb": int(floor.stdout)}
    for name in args.steps.split(","):
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--n",
                str(args.n),
                "--home",
                str(home),
                "--data",
                str(args.data),
                "--step",
                name,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        report[name] = json.loads(child.stdout.strip().splitlines()[-1])
    report["date"] = datetime.date.today().isoformat()
    if not args.json:
        for key, value in report.items():
            print(f"{key}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
