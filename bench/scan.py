"""Benchmark: first scan vs unchanged rescan (the incremental promise), files only.

Generates N photo-like 12 MP JPEGs with EXIF (cached between runs in --data),
scans them into a fresh library without embedding, then rescans unchanged.
Prints one JSON object on the last line; figures are taken in the same run.

    python bench/scan.py --n 200 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import imagegen

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive


def make_photos(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    base = imagegen.photo(4000, 3000, seed=0)
    for i in range(n):
        path = folder / f"IMG_{i:05}.jpg"
        if not path.exists():
            # One decoded base, shifted per file: cheap to make, distinct bytes.
            img = base.rotate(i % 7, translate=(i % 13, i % 11))
            imagegen.save_jpeg(path, img, orientation=1 + i % 8, make="Bench", model="Cam")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "dino-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    photos = args.data / f"photos-{args.n}"
    make_photos(photos, args.n)
    with tempfile.TemporaryDirectory() as home:
        lib = Library(home)
        t0 = time.perf_counter()
        first = drive(lib.scan([str(photos)], embed=False))
        t1 = time.perf_counter()
        again = drive(lib.scan(embed=False))
        t2 = time.perf_counter()
        lib.close()
    assert first.added == args.n and again.unchanged == args.n
    result = {
        "n": args.n,
        "threads": os.cpu_count(),
        "first_scan_files_per_s": round(args.n / (t1 - t0), 1),
        "rescan_files_per_s": round(args.n / (t2 - t1), 1),
        "rescan_speedup": round((t1 - t0) / (t2 - t1), 1),
    }
    print(json.dumps(result) if args.json else result)


if __name__ == "__main__":
    main()
