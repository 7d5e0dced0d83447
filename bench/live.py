"""Benchmark: a library that stays current (issue 17).

One library folder of N embedded photos (small JPEGs in a "Trip" sub-folder;
the vectors are random unit vectors written straight into the catalog, so the
set-up does not embed N photos), then, in one run:

- rename_rescan_over_unchanged: a rescan after the sub-folder is renamed
  ("Trip" <-> "Lisbon", alternating), over an unchanged rescan of the same
  folder; best of `--rounds` each, taken in alternating rounds. Every photo must
  come back as moved, with 0 embedded (goal: <= 2x).
- searchable_s: from a new 12 MP JPEG landing in the watched folder (copied in,
  then timed from the end of the copy) to `search_vector` answering it as the
  top hit, with the watch loop running and ViT-S/14 (random weights) loaded;
  median and max of `--photos` photos (goal: <= 5 s).
- idle_cpu_percent: the whole process's CPU time over `--idle` seconds of the
  watcher watching N files with nothing changing, as a share of one core
  (goal: ~0).

    python bench/live.py --n 10000 --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import imagegen
from raw import cpu_info

from dino_desktop.core.db import Embedding, ImageRow
from dino_desktop.core.library import Library
from dino_desktop.core.progress import CancelToken, drive
from dino_desktop.core.weights import get_spec

MODEL = "vit_small_patch14_dinov2"


def _fill_vectors(lib: Library, dim: int) -> int:
    """A random unit vector for every photo: 'embedded' without running the model."""
    model_id = lib.model_id()
    with lib.sessions() as session, session.begin():
        ids = list(session.scalars(select(ImageRow.id)))
        x = np.random.default_rng(0).standard_normal((len(ids), dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        for s in range(0, len(ids), 20_000):
            session.execute(
                insert(Embedding),
                [
                    {"image_id": i, "model_id": model_id, "vector": x[k].tobytes()}
                    for k, i in enumerate(ids[s : s + 20_000], start=s)
                ],
            )
    return len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--photos", type=int, default=5, help="new photos for the latency")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle watching")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "dino-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    weights = args.data / "vits14-random.pth"
    if not weights.exists():
        import weightsgen

        weightsgen.write_meta_checkpoint(weights, MODEL, seed=0)
    work = Path(tempfile.mkdtemp(prefix="dino-bench-live-"))
    try:
        photos = work / "Photos"
        trip = photos / "Trip"
        trip.mkdir(parents=True)
        base = (imagegen.save_jpeg(work / "base.jpg", size=(64, 48), seed=1)).read_bytes()
        for i in range(args.n):
            # Distinct bytes and sizes, as real photos have.
            (trip / f"IMG_{i:06}.jpg").write_bytes(base + b"\0" * (i % 997) + i.to_bytes(4, "big"))
        lib = Library(work / "lib", model=MODEL, weights=weights, device="cpu")
        drive(lib.scan([photos], embed=False))
        _fill_vectors(lib, get_spec(MODEL).dim)
        assert lib.pending_count() == 0

        names = ["Trip", "Lisbon"]
        unchanged_s, renamed_s = [], []
        for r in range(args.rounds):
            t = time.perf_counter()
            same = drive(lib.scan())
            unchanged_s.append(time.perf_counter() - t)
            assert same.unchanged == args.n and same.moved == 0, same
            (photos / names[r % 2]).rename(photos / names[(r + 1) % 2])
            t = time.perf_counter()
            moved = drive(lib.scan())
            renamed_s.append(time.perf_counter() - t)
            assert (moved.moved, moved.added, moved.removed, moved.embedded) == (
                args.n, 0, 0, 0,
            ), moved  # fmt: skip

        # Latency: the watch loop running, the model loaded.
        incoming = work / "incoming"
        sources = [
            imagegen.save_jpeg(incoming / f"new{k}.jpg", size=(4000, 3000), seed=100 + k)
            for k in range(args.photos)
        ]
        queries = [lib.query_vector(p) for p in sources]
        cancel = CancelToken()
        events: list[str] = []
        watcher = threading.Thread(
            target=lambda: drive(
                lib.watch(on_event=lambda e: events.append(e.event), cancel=cancel)
            ),
            daemon=True,
        )
        watcher.start()
        while "watching" not in events:
            time.sleep(0.05)
        latencies = []
        for source, query in zip(sources, queries, strict=True):
            target = photos / source.name
            shutil.copyfile(source, target)
            t = time.perf_counter()
            while True:
                hits = lib.search_vector(query, 1)
                if hits and hits[0].path == str(target):
                    break
                time.sleep(0.02)
            latencies.append(time.perf_counter() - t)
            time.sleep(0.5)

        time.sleep(2.0)  # let the last batch's scan end
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(args.idle)
        idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        cancel.cancel()
        watcher.join(timeout=30)
        lib.close()
        report = {
            "photos": args.n,
            **cpu_info(),
            "unchanged_rescan_s": round(min(unchanged_s), 3),
            "rename_rescan_s": round(min(renamed_s), 3),
            "rename_rescan_over_unchanged": round(min(renamed_s) / min(unchanged_s), 2),
            "re_embedded_after_rename": 0,
            "searchable_median_s": round(statistics.median(latencies), 2),
            "searchable_max_s": round(max(latencies), 2),
            "idle_cpu_percent": round(100 * idle_cpu, 2),
            "idle_seconds": args.idle,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.json:
        for key, value in report.items():
            print(f"{key}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
