"""Benchmark: measuring duplicate relations (core/relations.py) on camera-sized photos.

`--n` generated 12 MP originals (4032×3024 JPEGs), each with one copy of every
kind the labels name (byte copy excluded: it is never decoded): resized,
squashed, re-encoded, mirrored, rotated, cropped, greyscale, brightened,
retouched, and an unrelated photo. Every (original, copy) pair is measured by a
fresh `Measurer` (nothing cached across runs), in one run:

- per_pair_ms: wall time per pair on one thread, and on the thread pool the
  duplicate search uses (`duplicates._MEASURE_WORKERS`), as pairs per second;
- keeper_decode_share: the second and later pairs of a group reuse the
  keeper's decode (the LRU cache): time of the first pair of a group over the
  others;
- labels_right: the share of pairs labelled as constructed (a sanity check on
  real-sized, real-codec photos; the unit tests hold the exact expectations).

    python bench/relations.py --n 6 --json

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import imagegen
from raw import cpu_info

from dino_desktop.core import duplicates
from dino_desktop.core.images import read_info
from dino_desktop.core.relations import Measurer, Side

KINDS = {
    "resized": "resized",
    "squashed": "resized",
    "re-encoded": "re-encoded",
    "mirrored": "mirrored",
    "rotated": "rotated",
    "cropped": "cropped",
    "greyscale": "greyscale",
    "brightened": "colour edit",
    "retouched": "edited",
    "unrelated": "similar",
}


def _make(folder: Path, n: int) -> list[tuple[Path, list[tuple[str, Path]]]]:
    out = []
    for k in range(n):
        img = imagegen.photo(1008, 756, 900 + k).resize((4032, 3024), Image.Resampling.BICUBIC)
        orig = imagegen.save_jpeg(folder / f"o{k}.jpg", img, quality=92)
        copies = {
            "resized": img.resize((2016, 1512), Image.Resampling.LANCZOS),
            "squashed": img.resize((2000, 2000), Image.Resampling.LANCZOS),
            "re-encoded": img,
            "mirrored": img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            "rotated": img.transpose(Image.Transpose.ROTATE_270),
            "cropped": img.crop((600, 400, 3400, 2500)),
            "greyscale": ImageOps.grayscale(img).convert("RGB"),
            "brightened": ImageEnhance.Brightness(img).enhance(1.25),
            "retouched": img.copy(),
            "unrelated": imagegen.photo(1008, 756, 5000 + k).resize((4032, 3024)),
        }
        ImageDraw.Draw(copies["retouched"]).rectangle((800, 600, 2100, 1500), fill=(240, 240, 240))
        made = []
        for kind, pic in copies.items():
            q = 60 if kind == "re-encoded" else 90
            made.append((kind, imagegen.save_jpeg(folder / f"o{k}-{kind}.jpg", pic, quality=q)))
        out.append((orig, made))
    return out


def _side(path: Path) -> Side:
    info = read_info(path)
    return Side(
        path=str(path),
        width=info.width,
        height=info.height,
        size=path.stat().st_size,
        format=info.format,
        sha256=None,
        taken_at=None,
        camera=None,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6, help="originals (each with 10 copies)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        groups = _make(Path(tmp), args.n)
        pairs = [(_side(o), _side(c), KINDS[kind]) for o, made in groups for kind, c in made]

        measurer = Measurer()
        first, rest, right = [], [], 0
        t0 = time.perf_counter()
        for n, (keeper, copy, want) in enumerate(pairs):
            s = time.perf_counter()
            got = measurer.relate(keeper, copy)
            (first if n % len(KINDS) == 0 else rest).append(time.perf_counter() - s)
            right += got.label == want
            if got.label != want:
                print(f"  {Path(copy.path).name}: {got.label} ({got.evidence})", file=sys.stderr)
        one_thread = time.perf_counter() - t0

        workers = duplicates._MEASURE_WORKERS
        measurer = Measurer()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda p: measurer.relate(p[0], p[1]), pairs))
        pooled = time.perf_counter() - t0

    result = {
        "pairs": len(pairs),
        "per_pair_ms_one_thread": round(1000 * one_thread / len(pairs), 1),
        "pairs_per_s_pool": round(len(pairs) / pooled, 1),
        "pool_workers": workers,
        "pool_speedup": round(one_thread / pooled, 2),
        "first_pair_of_group_ms": round(1000 * sum(first) / len(first), 1),
        "other_pairs_ms": round(1000 * sum(rest) / len(rest), 1),
        "labels_right": f"{right}/{len(pairs)}",
        "cpu": cpu_info(),
    }
    if not args.json:
        for key, value in result.items():
            print(f"{key:26} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
