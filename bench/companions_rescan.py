"""Benchmark: an unchanged rescan of a RAW+JPEG library (every photo with companions).

N small JPEGs, each with a RAW (`.CR3`, never decoded) and an XMP sidecar, in
folders of 1,000; scanned once without embedding, then walk (`os.walk` + one
`stat` per file) and unchanged rescan timed in alternating rounds, best of each.
This is the grouping path (`scanner._group`, `_sync_companions`) that a folder
of plain JPEGs never takes (`bench/scale.py` measures that one).

    python bench/companions_rescan.py --n 20000 --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import imagegen

from dino_desktop.core.library import Library
from dino_desktop.core.progress import drive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="photos (3 files each)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dino-bench-companions-"))
    try:
        photos = work / "Photos"
        buf = io.BytesIO()
        imagegen.photo(64, 48, seed=1).save(buf, "JPEG")
        data = buf.getvalue()
        for i in range(args.n):
            folder = photos / f"d{i // 1000:03}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"IMG_{i:06}.JPG").write_bytes(data + i.to_bytes(4, "big"))
            (folder / f"IMG_{i:06}.CR3").write_bytes(b"raw")
            (folder / f"IMG_{i:06}.CR3.xmp").write_bytes(b"<x/>")
        with Library(work / "lib") as lib:
            start = time.perf_counter()
            first = drive(lib.scan([photos], embed=False))
            first_s = time.perf_counter() - start

            def walk() -> float:
                start = time.perf_counter()
                for root, _dirs, files in os.walk(photos):
                    for name in files:
                        os.stat(os.path.join(root, name))
                return time.perf_counter() - start

            def rescan() -> float:
                start = time.perf_counter()
                result = drive(lib.scan(embed=False))
                assert result.added == 0 and result.companions == 2 * args.n
                return time.perf_counter() - start

            walks, rescans = [], []
            for _ in range(args.rounds):
                walks.append(walk())
                rescans.append(rescan())
        report = {
            "photos": args.n,
            "files": 3 * args.n,
            "companions": first.companions,
            "first_scan_s": round(first_s, 1),
            "walk_s": round(min(walks), 3),
            "rescan_s": round(min(rescans), 3),
            "rescan_over_walk": round(min(rescans) / min(walks), 2),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.json:
        for key, value in report.items():
            print(f"{key}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
