"""Benchmark: camera RAW to the model's input, embedded preview against development.

Synthetic DNGs (tests/rawgen.py: a 16-bit RGGB Bayer mosaic of imagegen's
photo-like scene, 12-bit values; cached between runs in --data), each written
twice from the same scene: with an embedded JPEG preview (the camera's,
--preview) and without one. Every figure is milliseconds per RAW, one RAW at a
time (LibRaw's OpenMP build may spread a development over the cores), best of
--rounds interleaved rounds (other processes on a shared machine only ever
slow a round down):

- preview_ms: what the embedder does, `preprocess(open_image(path, min_side=256))`
  (a 224×224 normalised float32 tensor), on the RAWs with a preview: the
  preview JPEG, DCT-scaled, turned by the RAW's orientation.
- half_dev_ms: the same call on the RAWs without a preview: LibRaw's half-size
  development (2×2 Bayer cells as pixels, no demosaicing), reduced.
- full_dev_ms: `preprocess(open_image(path))`: a full development (demosaiced,
  8-bit sRGB), as a naive loop or the viewer at 100 % would do.
- read_info_preview_ms / read_info_dev_ms: `read_info` (metadata + phash) with
  and without a preview.

The DNGs are uncompressed, so LibRaw's unpacking here is a lower bound: real
cameras' lossless-compressed RAWs (NEF, CR3, ARW...) take longer to unpack,
which widens the gap in the preview's favour.

    python bench/raw.py --json

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import imagegen  # noqa: E402
import rawgen  # noqa: E402
from _common import print_report  # noqa: E402

from dino_desktop.core import device as D  # noqa: E402
from dino_desktop.core import embedder as E  # noqa: E402
from dino_desktop.core.images import open_image, read_info  # noqa: E402
from dino_desktop.core.weights import IMAGE_SIZE, RESIZE_SIZE  # noqa: E402

# torch.cpu.get_capabilities names, as dino_desktop.core.device reads them.
_SIMD = ("sse4_2", "avx", "avx2", "fma3", "avx512_f", "avx512_bf16", "avx512_vnni", "amx_bf16")


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def make_raws(
    folder: Path, n: int, size: tuple[int, int], preview: tuple[int, int]
) -> list[tuple[Path, Path]]:
    """n (with preview, without preview) DNG pairs, orientations 1, 6, 8, 3 in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(n):
        orientation = (1, 6, 8, 3)[i % 4]
        tag = f"{size[0]}x{size[1]}-{i}"
        with_preview = folder / f"preview{preview[0]}x{preview[1]}-{tag}.dng"
        without = folder / f"nopreview-{tag}.dng"
        scene = None
        for path, prev in ((with_preview, preview), (without, None)):
            if not path.exists():
                if scene is None:
                    scene = imagegen.photo(*size, seed=i)
                tmp = path.with_suffix(".tmp")
                rawgen.write_dng(tmp, *size, pattern=scene, preview=prev, orientation=orientation)
                tmp.replace(path)  # only whole files are cached, if interrupted
        pairs.append((with_preview, without))
    return pairs


def _ms_per(paths: list[Path], fn: Callable[[Path], Any]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return (time.perf_counter() - t0) * 1000 / len(paths)


def to_input(path: Path, min_side: int | None) -> None:
    x = E.preprocess(open_image(path, min_side=min_side))
    assert x.shape == (3, IMAGE_SIZE, IMAGE_SIZE), x.shape


def cpu_info() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    caps = D._cpu_capabilities()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "cpu_flags": [f for f in _SIMD if caps.get(f) is True],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4, help="RAWs of each kind")
    parser.add_argument("--size", type=_size, default=(6000, 4000), help="sensor, WxH")
    parser.add_argument("--preview", type=_size, default=(1620, 1080), help="preview, WxH")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "dino-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    t0 = time.perf_counter()
    pairs = make_raws(args.data / "raw", args.n, args.size, args.preview)
    generate_s = time.perf_counter() - t0
    previews = [a for a, _ in pairs]
    bare = [b for _, b in pairs]
    side = RESIZE_SIZE
    # Warm-up: first-call imports (imagehash's FFT, LibRaw's tables) and the page cache.
    for p in (previews[0], bare[0]):
        to_input(p, side)
        read_info(p)
    to_input(previews[0], None)
    rounds: list[dict[str, float]] = []
    for _ in range(args.rounds):
        rounds.append(
            {
                "preview_ms": _ms_per(previews, lambda p: to_input(p, side)),
                "half_dev_ms": _ms_per(bare, lambda p: to_input(p, side)),
                "full_dev_ms": _ms_per(previews, lambda p: to_input(p, None)),
                "read_info_preview_ms": _ms_per(previews, read_info),
                "read_info_dev_ms": _ms_per(bare, read_info),
            }
        )
    best = {k: round(min(r[k] for r in rounds), 1) for k in rounds[0]}
    report: dict[str, Any] = {
        "n": args.n,
        "raw": f"{args.size[0]}x{args.size[1]} DNG, 16-bit uncompressed RGGB, 12-bit values",
        "preview": f"{args.preview[0]}x{args.preview[1]} JPEG q90",
        "file_mb": round(previews[0].stat().st_size / 1e6, 1),
        **cpu_info(),
        **best,
        "half_dev_over_preview": round(best["half_dev_ms"] / best["preview_ms"], 1),
        "full_dev_over_preview": round(best["full_dev_ms"] / best["preview_ms"], 1),
        "read_info_dev_over_preview": round(
            best["read_info_dev_ms"] / best["read_info_preview_ms"], 1
        ),
        "rounds": [{k: round(v, 1) for k, v in r.items()} for r in rounds],
        "generate_s": round(generate_s, 1),
        "date": datetime.date.today().isoformat(),
    }
    print_report(report, args.json)


if __name__ == "__main__":
    main()
