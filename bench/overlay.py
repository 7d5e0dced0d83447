"""Benchmark: a PCA overlay of a 12 MP photo on the CPU (goal: first overlay <= 1.5 s).

Makes a photo-like 4000x3000 JPEG stored with EXIF orientation 6 (a phone's
portrait: display 3000x4000, the worst case for decoding) and a random-weights
ViT-S/14 checkpoint in Meta's format (both cached between runs in --data), then
measures in one process:

* ``cold_first_overlay_s``: a fresh engine's first overlay in the process, model
  build included (torch and timm already imported: ``torch_import_s`` and
  ``timm_import_s`` say what that cost; a real cold start pays all three);
* ``model_load_s``: building the model again, in the warm process;
* ``first_overlay_s``: with the model built, the first (uncached) overlay of the
  photo: decode, features, PCA and render at the display size, rgb mode,
  opacity 1 (the map alone: the photo's pixels are not needed);
* ``first_overlay_blend_s``: the same with opacity 0.5 (the full photo decoded too);
* ``cached_overlay_s``: the same photo again in foreground mode, features cached;
* the parts, each the median of a few runs: ``decode_s`` (reduced-scale decode
  and header), ``forward_s`` (the model), ``pca_s`` (rgb), ``render_s`` (rgb at
  display size, opacity 1), ``render_blend_s`` (opacity 0.5, photo already decoded),
  ``photo_decode_s`` (the full-size decode a blend needs).

Prints one JSON object on the last line.

    python bench/overlay.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

t_import = time.perf_counter()
import torch  # noqa: E402  (timed: part of the cold-start story)

TORCH_IMPORT_S = time.perf_counter() - t_import
t_import = time.perf_counter()
import timm  # noqa: E402, F401  (imported by the first model build otherwise)

TIMM_IMPORT_S = time.perf_counter() - t_import

import imagegen  # noqa: E402
import weightsgen  # noqa: E402

from dino_desktop.core import overlay as ov  # noqa: E402
from dino_desktop.core.images import open_image  # noqa: E402

MODEL = "vit_small_patch14_dinov2"


def make_inputs(data: Path) -> tuple[Path, Path]:
    data.mkdir(parents=True, exist_ok=True)
    photo = data / "overlay-12mp-o6.jpg"
    if not photo.exists():
        # Stored landscape with orientation 6: displayed as a 3000x4000 portrait.
        img = imagegen.photo(4000, 3000, seed=7)
        imagegen.save_jpeg(photo, img, orientation=6, make="Bench", model="Phone")
    weights = data / "vit_small_patch14_dinov2-random.pth"
    if not weights.exists():
        weightsgen.write_meta_checkpoint(weights, MODEL)
    return photo, weights


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "dino-bench")
    parser.add_argument("--repeat", type=int, default=3, help="runs per part timing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    photo, weights = make_inputs(args.data)
    path = str(photo)
    load_before = os.getloadavg()[0]

    cold = ov.OverlayEngine(MODEL, weights, device="cpu")
    cold_s, _ = timed(lambda: cold.overlays([path]))

    engine = ov.OverlayEngine(MODEL, weights, device="cpu")
    load_s, _ = timed(engine.load)
    first_s, images = timed(lambda: engine.overlays([path]))
    engine.clear_cache()
    blend_s, _ = timed(lambda: engine.overlays([path], opacity=0.5))
    cached_s, _ = timed(lambda: engine.overlays([path], "foreground"))

    def decode() -> Any:
        img = open_image(path, min_side=ov.DECODE_MIN_SIDE)
        return img, ov._display_size(path, img.size)

    decode_s = median_time(decode, args.repeat)
    img, display = decode()
    cols, rows = ov.patch_grid(*display)
    x = ov._model_input(img, cols, rows)
    forward_s = median_time(lambda: engine._forward(x), args.repeat)
    feats = engine.features(path)
    pca_s = median_time(lambda: ov.pca_maps([feats]), args.repeat)
    fmap = ov.pca_maps([feats])[0]
    render_s = median_time(lambda: ov._render(display, None, fmap, 1.0, "transparent"), args.repeat)
    photo_decode_s = median_time(lambda: open_image(path), args.repeat)
    full = open_image(path)
    render_blend_s = median_time(lambda: ov.render(full, fmap, opacity=0.5), args.repeat)

    assert images[0].size == display == (3000, 4000), (images[0].size, display)
    result = {
        "photo": f"{display[0]}x{display[1]} JPEG, EXIF orientation 6",
        "grid": f"{cols}x{rows}",
        "input": f"{cols * ov.PATCH}x{rows * ov.PATCH}",
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(load_before, 2),
        "torch_import_s": round(TORCH_IMPORT_S, 3),
        "timm_import_s": round(TIMM_IMPORT_S, 3),
        "model_load_s": round(load_s, 3),
        "cold_first_overlay_s": round(cold_s, 3),
        "first_overlay_s": round(first_s, 3),
        "first_overlay_blend_s": round(blend_s, 3),
        "cached_overlay_s": round(cached_s, 3),
        "decode_s": round(decode_s, 3),
        "forward_s": round(forward_s, 3),
        "pca_s": round(pca_s, 3),
        "render_s": round(render_s, 3),
        "photo_decode_s": round(photo_decode_s, 3),
        "render_blend_s": round(render_blend_s, 3),
        "goal_first_overlay_s": 1.5,
    }
    print(json.dumps(result) if args.json else result)


if __name__ == "__main__":
    main()
