"""PCA overlays of DINOv2 patch features: what the model "sees" in a photo, as colours.

The recipe (DESIGN.md §4):

* **Patch features.** The photo, EXIF-oriented and without a centre crop (the
  overlay must cover all of it), is resized to a grid of 14-pixel patches whose
  area is about 518² (DINOv2's own resolution, 37×37 patches) and whose shape
  keeps the photo's display aspect ratio (`patch_grid`). timm's
  ``forward_features`` of a model built with ``dynamic_img_size=True`` gives one
  token per patch after the class and register tokens, which are dropped:
  `PatchFeatures.tokens` is (rows, cols, dim).
* **rgb mode.** One 3-component PCA over all the given photos' patches (so that,
  in a joint call, the same colour means the same feature direction in every
  photo); each component is scaled robustly (its 1st..99th percentile over all
  patches becomes 0..1, clipped) and becomes red, green and blue.
* **foreground mode.** The two-step method of the DINOv2 paper: the first
  component alone separates the main subject from the background. It is
  thresholded (Otsu over all photos' values, unless the caller gives a
  threshold); the side of the threshold that touches fewer image-border patches
  is the foreground (subjects rarely fill the frame's edges; `invert` swaps the
  sides). A second 3-component PCA, fitted on the foreground patches only, then
  colours the foreground; the background is left transparent.

PCA signs are arbitrary (an eigenvector and its negation are equally valid), so
every component is given a deterministic sign: the one that makes the skewness
of its scores positive (the long tail of the distribution, typically the
smaller, salient region, gets the high values); when the skewness is
practically zero, the one that makes the score of largest magnitude positive.
The rule looks at scores, not loadings, so it is invariant to a sign flip of
the features themselves: the same photo always gets the same colours.

`render` turns a map into an image at the photo's size; `strip` puts several
side by side. `OverlayEngine` owns a model (built lazily, on first use) and an
LRU cache of patch features; `OverlayEngine.overlays` is the whole pipeline for
the command line.

The maths is numpy only; torch is imported inside `OverlayEngine`'s methods, so
`pca_maps` and `render` work, and this module imports, without it. No Qt here.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from dino_desktop.core.device import pick_device
from dino_desktop.core.images import SUPPORTED_FORMATS, ImageError, open_image
from dino_desktop.core.weights import IMAGENET_MEAN, IMAGENET_STD, build_model, get_spec

if TYPE_CHECKING:
    import torch

__all__ = [
    "BACKGROUNDS",
    "MODES",
    "PATCH",
    "TARGET",
    "FeatureMap",
    "OverlayEngine",
    "PatchFeatures",
    "first_component",
    "foreground_mask",
    "patch_grid",
    "pca_maps",
    "render",
    "strip",
]

FloatArray = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]

MODES: Final = ("rgb", "foreground")
BACKGROUNDS: Final = ("transparent", "dim")
TARGET: Final = 518  # DINOv2's training resolution: 37×37 patches of 14 pixels
PATCH: Final = 14

# The long side of the grid is capped at this many times target/patch patches
# (4 × 37 = 148): a 30:1 panorama would otherwise ask for ~200×7 patches, a
# 2800-pixel-wide input far outside what DINOv2 saw in training, and the short
# side would have too few patches to say anything anyway.
MAX_LONG_FACTOR: Final = 4

# Robust scaling: the percentiles of a component's scores that map to 0 and 1.
# A handful of outlier patches (often the borders, or a specular highlight)
# would otherwise squash every other patch into a narrow band of colours.
LOW_PERCENTILE: Final = 1.0
HIGH_PERCENTILE: Final = 99.0

# "dim" background: the photo at this fraction of its brightness, dark enough for
# the coloured subject to stand out and light enough to still recognise the scene.
DIM_FACTOR: Final = 0.35

# Above this many output pixels, `render` computes the bilinear upsample at half
# the resolution and doubles it by pixel repetition: a patch covers ~90 pixels of
# a 12 MP photo, so the 2-pixel steps are far below anything visible, and the
# upsample (the bulk of rendering) costs about a quarter as much (~25 instead of
# ~100 ms for a 12 MP RGB map on a 2-core CPU).
HALF_RES_PIXELS: Final = 4_000_000

# The skewness below which a component counts as symmetric and its sign is
# chosen by its largest score instead (see the module docstring).
_SKEW_EPS: Final = 1e-6

# Subspace iteration, for the top eigenvectors of a covariance matrix: LAPACK's
# full eigh takes ~20 ms for ViT-S's 384 dimensions on a 2-core CPU, but up to
# seconds for ViT-B/L/g's 768-1536 (and far longer when OpenBLAS's threads
# compete with torch's); three components need a few dozen small matrix
# products instead (~4 ms for ViT-S's features).
#
# Why not scikit-learn's `randomized_svd` (bench/overlay_eigen.py, 1,369 patches
# × 768 dims, 2 loaded cores): it runs a fixed number of power iterations with
# no convergence test. On a fast-decaying spectrum this iteration stops early
# (0.3 s, error 1e-15) where randomized_svd took 0.6-1.6 s for n_iter 7-40; on
# a flat one (close eigenvalues) n_iter=7 was off by 1-|cos| = 4e-3 (a visible
# colour shift), n_iter=15 by 2e-5 in about the time (1.0 vs 1.3 s) this one
# needs to converge to 1e-15, n_iter=40 by 2e-12. No n_iter is both.
_EIGH_MAX_DIM: Final = 64
_SUBSPACE_EXTRA: Final = 8  # oversampling: convergence depends on λ(k+extra+1)/λ(k)
_SUBSPACE_TOL: Final = 1e-10  # relative residual |Cv - λv| / λ₁
_SUBSPACE_MAX_ITER: Final = 300
_SUBSPACE_CHECK_EVERY: Final = 4


# --------------------------------------------------------------------------- grid


def _round_half_up(x: float) -> int:
    # Python's round() rounds halves to even; sizes must not depend on parity.
    return math.floor(x + 0.5)


def patch_grid(
    width: int, height: int, *, target: int = TARGET, patch: int = PATCH
) -> tuple[int, int]:
    """The (cols, rows) patch grid for a photo of `width`×`height` display pixels.

    cols×rows ≈ (target/patch)², cols/rows ≈ width/height, both at least 1. The
    short side is chosen first (the candidate, floor or ceil of the ideal, that
    gives the area closest to the target), the long side is its multiple rounded
    to the nearest patch: the grid's aspect ratio is then within half a patch of
    the photo's. The long side is capped at `MAX_LONG_FACTOR`×target/patch
    patches (extreme panoramas get a smaller area rather than a huge input).
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if patch < 1 or target < patch:
        raise ValueError(f"need 1 <= patch <= target, got patch={patch}, target={target}")
    side = target / patch  # patches per side of the square target (37)
    long_px, short_px = max(width, height), min(width, height)
    ratio = long_px / short_px
    cap = max(1, _round_half_up(MAX_LONG_FACTOR * side))
    ideal_short = side / math.sqrt(ratio)
    if ideal_short * ratio > cap:
        long, short = cap, max(1, _round_half_up(cap / ratio))
    else:
        area = side * side
        candidates = []
        for s in sorted({max(1, math.floor(ideal_short)), max(1, math.ceil(ideal_short))}):
            n = min(cap, max(1, _round_half_up(s * ratio)))
            candidates.append((abs(s * n - area), s, n))
        _, short, long = min(candidates)
    return (long, short) if width >= height else (short, long)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PatchFeatures:
    """DINOv2 patch tokens of one photo (the array is read-only: it may be shared from a cache)."""

    path: str
    tokens: FloatArray  # (rows, cols, dim) float32, class and register tokens dropped
    display_size: tuple[int, int]  # (width, height) of the EXIF-oriented photo, full size

    @property
    def grid(self) -> tuple[int, int]:
        """(cols, rows) of the patch grid."""
        return int(self.tokens.shape[1]), int(self.tokens.shape[0])


@dataclass(frozen=True)
class FeatureMap:
    """One photo's overlay at patch resolution (one pixel per patch)."""

    rgba: ByteArray  # (rows, cols, 4) uint8; alpha 0 on background patches, else 255
    foreground: BoolArray | None  # (rows, cols) in foreground mode, else None
    threshold: float | None  # the threshold used on the scaled first component (foreground)


# --------------------------------------------------------------------------- PCA


def _check_features(features: Sequence[PatchFeatures]) -> int:
    dims = {f.tokens.shape[-1] for f in features}
    for f in features:
        if f.tokens.ndim != 3 or 0 in f.tokens.shape:
            raise ValueError(f"{f.path}: tokens must be (rows, cols, dim), got {f.tokens.shape}")
    if len(dims) > 1:
        raise ValueError(f"features of different models (dims {sorted(dims)}) cannot share a PCA")
    return int(dims.pop())


def _stack(features: Sequence[PatchFeatures]) -> FloatArray:
    dim = _check_features(features)
    return np.concatenate([f.tokens.reshape(-1, dim) for f in features]).astype(
        np.float32, copy=False
    )


def _split(values: npt.NDArray[Any], features: Sequence[PatchFeatures]) -> list[npt.NDArray[Any]]:
    """Cut per-patch rows of `values` back into per-photo (rows, cols, ...) arrays."""
    out = []
    start = 0
    for f in features:
        rows, cols = f.tokens.shape[:2]
        out.append(values[start : start + rows * cols].reshape(rows, cols, *values.shape[1:]))
        start += rows * cols
    return out


def _top_eigenvectors(cov: Float64Array, k: int) -> Float64Array:
    """The `k` leading eigenvectors of a symmetric PSD matrix, as (dim, k) columns.

    Subspace (block power) iteration with Rayleigh-Ritz, from a fixed start, so
    the result is deterministic; small matrices go to LAPACK directly.
    """
    dim = cov.shape[0]
    if dim <= _EIGH_MAX_DIM:
        _, vecs = np.linalg.eigh(cov)
        return np.ascontiguousarray(vecs[:, ::-1][:, :k])
    block = min(dim, k + _SUBSPACE_EXTRA)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, block)))
    vecs = q[:, :k]
    for it in range(1, _SUBSPACE_MAX_ITER + 1):
        q, _ = np.linalg.qr(cov @ q)
        if it % _SUBSPACE_CHECK_EVERY and it != _SUBSPACE_MAX_ITER:
            continue
        cq = cov @ q
        vals, small = np.linalg.eigh(q.T @ cq)  # Rayleigh-Ritz in the block
        vals, small = vals[::-1][:k], small[:, ::-1][:, :k]
        vecs = q @ small
        if vals[0] <= 0.0:
            break  # a zero matrix: every direction is as good
        residual = np.linalg.norm(cq @ small - vecs * vals, axis=0)
        if float(residual.max()) <= _SUBSPACE_TOL * float(vals[0]):
            break
    result: Float64Array = np.ascontiguousarray(vecs)
    return result


def _orient(scores: Float64Array) -> Float64Array:
    """Flip each column of PCA scores to the deterministic sign (module docstring)."""
    out = scores.copy()
    for j in range(out.shape[1]):
        z = out[:, j]
        std = float(np.sqrt(np.mean(z * z)))
        if std == 0.0:
            continue
        skew = float(np.mean((z / std) ** 3))
        if abs(skew) > _SKEW_EPS:
            sign = 1.0 if skew > 0 else -1.0
        else:
            sign = 1.0 if z[int(np.argmax(np.abs(z)))] > 0 else -1.0
        out[:, j] = z * sign
    return out


def _pca_scores(x: FloatArray, k: int) -> Float64Array:
    """Scores of the rows of `x` on its `k` leading principal components, signs oriented.

    Components a sample too small to have (fewer distinct rows than k+1, or
    fewer dimensions than k) are all zeros.
    """
    n, dim = x.shape
    data = x.astype(np.float64)
    # float64 throughout: the covariance of thousands of rows in float32 loses the
    # small components, and exactly negated features must give exactly negated
    # scores for the sign rule to make them identical.
    data -= data.mean(axis=0)
    cov = (data.T @ data) / max(n, 1)
    use = min(k, dim)
    vecs = _top_eigenvectors(cov, use)
    scores = np.zeros((n, k), dtype=np.float64)
    scores[:, :use] = data @ vecs
    return _orient(scores)


def _unit_scale(values: Float64Array) -> Float64Array:
    """Map a column of scores to [0, 1]: its LOW..HIGH percentiles to 0..1, clipped.

    ``averaged_inverted_cdf`` percentiles depend only on the distribution of the
    values, so a photo given twice in a joint call changes nothing, and they are
    symmetric, so negated scores give mirrored limits.
    """
    lo, hi = (
        float(v)
        for v in np.percentile(
            values, [LOW_PERCENTILE, HIGH_PERCENTILE], method="averaged_inverted_cdf"
        )
    )
    span = hi - lo
    if not span > 1e-12 * max(abs(lo), abs(hi), 1e-300):
        return np.full(values.shape, 0.5)  # constant: no direction to show, mid grey
    out: Float64Array = np.clip((values - lo) / span, 0.0, 1.0)
    return out


def _to_bytes(unit: Float64Array) -> ByteArray:
    out: ByteArray = np.floor(unit * 255.0 + 0.5).astype(np.uint8)
    return out


def _scaled_components(x: FloatArray, k: int) -> Float64Array:
    scores = _pca_scores(x, k)
    return np.stack([_unit_scale(scores[:, j]) for j in range(k)], axis=1)


def first_component(features: Sequence[PatchFeatures]) -> list[Float64Array]:
    """Per photo, its patches' scores on the first principal component, in [0, 1].

    One PCA over all the photos' patches; robustly scaled over all of them
    (percentiles, clipped); the sign rule of the module docstring.
    """
    if not features:
        return []
    scaled = _scaled_components(_stack(features), 1)[:, 0]
    return _split(scaled, features)


# --------------------------------------------------------------------------- foreground


def _otsu(values: Float64Array) -> float:
    """Otsu's threshold, computed exactly on the sorted values (no histogram bins).

    Returns the midpoint between the two values where the split maximises the
    between-class variance; for constant values, that value.
    """
    v = np.sort(values.astype(np.float64).ravel())
    n = v.size
    if n == 0:
        raise ValueError("no values to threshold")
    if n == 1 or v[0] == v[-1]:
        return float(v[0])
    csum = np.cumsum(v)
    count0 = np.arange(1, n, dtype=np.float64)  # class sizes for a split after index i
    mean0 = csum[:-1] / count0
    mean1 = (csum[-1] - csum[:-1]) / (n - count0)
    between = count0 * (n - count0) * (mean0 - mean1) ** 2
    between[v[:-1] == v[1:]] = -1.0  # only split between distinct values
    i = int(np.argmax(between))
    return float((v[i] + v[i + 1]) / 2.0)


def _border(shape: tuple[int, ...]) -> BoolArray:
    edge = np.zeros(shape[:2], dtype=bool)
    edge[0, :] = edge[-1, :] = True
    edge[:, 0] = edge[:, -1] = True
    return edge


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")


def _foreground_masks(
    components: Sequence[Float64Array], threshold: float | None, invert: bool
) -> tuple[list[BoolArray], float]:
    """Joint foreground masks: one threshold and one choice of side for all the photos.

    One side for all keeps the meaning of "foreground" the same in every photo
    of a joint call, and makes it robust to the odd close-up whose subject
    touches the frame.
    """
    _check_threshold(threshold)
    if threshold is None:
        t = _otsu(np.concatenate([c.ravel() for c in components]))
    else:
        t = float(threshold)
    high = [c > t for c in components]
    high_border = sum(int(np.count_nonzero(h & _border(h.shape))) for h in high)
    all_border = sum(int(np.count_nonzero(_border(h.shape))) for h in high)
    low_border = all_border - high_border
    if high_border != low_border:
        use_high = high_border < low_border
    else:  # a tie (e.g. no border patches set either way): the smaller side is the subject
        n_high = sum(int(np.count_nonzero(h)) for h in high)
        n_all = sum(h.size for h in high)
        use_high = n_high <= n_all - n_high
    masks = [h if use_high != invert else ~h for h in high]
    return masks, t


def foreground_mask(
    component: Float64Array, threshold: float | None = None, invert: bool = False
) -> tuple[BoolArray, float]:
    """The foreground patches of one photo from its (rows, cols) first component in [0, 1].

    With `threshold` None, Otsu's threshold on the values. The foreground is the
    side of the threshold (values above it, or values at or below it) that
    touches fewer image-border patches; on a tie, the side with fewer patches.
    `invert` then swaps the sides. Returns (mask, threshold used).
    """
    comp = np.asarray(component, dtype=np.float64)
    if comp.ndim != 2 or comp.size == 0:
        raise ValueError(f"component must be a non-empty (rows, cols) array, got {comp.shape}")
    masks, t = _foreground_masks([comp], threshold, invert)
    return masks[0], t


# --------------------------------------------------------------------------- maps


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown overlay mode {mode!r}; choose from {', '.join(MODES)}")


def pca_maps(
    features: Sequence[PatchFeatures],
    mode: str = "rgb",
    *,
    threshold: float | None = None,
    invert: bool = False,
) -> list[FeatureMap]:
    """Feature maps for `features`, from ONE PCA over all their patches (see the module docstring).

    `threshold` (in [0, 1], on the scaled first component) and `invert` only
    matter in foreground mode; with `threshold` None, Otsu's threshold over all
    the photos' first components is used, and reported in each map.
    """
    _check_mode(mode)
    _check_threshold(threshold)
    if not features:
        return []
    x = _stack(features)
    if mode == "rgb":
        colours = _to_bytes(_scaled_components(x, 3))
        alpha = np.full((colours.shape[0], 1), 255, dtype=np.uint8)
        rgba = np.concatenate([colours, alpha], axis=1)
        return [FeatureMap(m, None, None) for m in _split(rgba, features)]

    first = _split(_scaled_components(x, 1)[:, 0], features)
    masks, t = _foreground_masks(first, threshold, invert)
    flat = np.concatenate([m.ravel() for m in masks])
    rgba = np.zeros((x.shape[0], 4), dtype=np.uint8)
    if flat.any():
        # The second PCA sees the foreground only, so its three components spend
        # the whole colour range on differences within the subject (its parts)
        # rather than on subject-vs-background, which the first step settled.
        rgba[flat, :3] = _to_bytes(_scaled_components(x[flat], 3))
        rgba[flat, 3] = 255
    return [FeatureMap(m, mask, t) for m, mask in zip(_split(rgba, features), masks, strict=True)]


# --------------------------------------------------------------------------- render


def _check_render_args(opacity: float, background: str) -> None:
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; choose from {', '.join(BACKGROUNDS)}")


def _is_opaque(fmap: FeatureMap) -> bool:
    return bool(np.all(fmap.rgba[..., 3] == 255))


def _needs_photo(fmap: FeatureMap, opacity: float, background: str) -> bool:
    """Whether rendering reads the photo's pixels (else only its size matters)."""
    return opacity < 1.0 or (background == "dim" and not _is_opaque(fmap))


def _fill_background(rgb: ByteArray, opaque: BoolArray) -> ByteArray:
    """Give transparent patches the mean colour of their nearest opaque neighbours.

    The colour and the alpha are upsampled separately (cheaper than Pillow's
    premultiplied RGBA resize); without this, the black of the background
    patches would bleed into the subject's edge as a dark fringe.
    """
    if opaque.all() or not opaque.any():
        return rgb
    colour = rgb.astype(np.float64)
    known = opaque.copy()
    rows, cols = known.shape
    while not known.all():
        total = np.zeros_like(colour)
        count = np.zeros(known.shape, dtype=np.float64)
        padded_c = np.pad(colour * known[..., None], ((1, 1), (1, 1), (0, 0)))
        padded_k = np.pad(known.astype(np.float64), 1)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                if dy == dx == 1:
                    continue
                total += padded_c[dy : dy + rows, dx : dx + cols]
                count += padded_k[dy : dy + rows, dx : dx + cols]
        grow = ~known & (count > 0)
        colour[grow] = total[grow] / count[grow][:, None]
        known |= grow
    out: ByteArray = np.floor(colour + 0.5).astype(np.uint8)
    return out


def _upsample(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Bilinear upsampling of a patch-sized map to `size` (see HALF_RES_PIXELS)."""
    if img.size == size:
        return img.copy()
    width, height = size
    if width * height > HALF_RES_PIXELS and width >= 4 * img.width and height >= 4 * img.height:
        half = ((width + 1) // 2, (height + 1) // 2)
        smooth = img.resize(half, Image.Resampling.BILINEAR)
        return smooth.resize(size, Image.Resampling.NEAREST)
    return img.resize(size, Image.Resampling.BILINEAR)


def _dim(photo: Image.Image) -> Image.Image:
    lut = [_round_half_up(v * DIM_FACTOR) for v in range(256)] * 3
    return photo.point(lut)


def _render(
    size: tuple[int, int],
    photo: Image.Image | None,
    fmap: FeatureMap,
    opacity: float,
    background: str,
) -> Image.Image:
    """`render` for a photo given by its size, and its pixels only where they are needed."""
    if photo is not None:
        if photo.size != size:
            raise ValueError(f"photo is {photo.size}, expected {size}")
        if photo.mode != "RGB":
            photo = photo.convert("RGB")
    rgba = np.asarray(fmap.rgba, dtype=np.uint8)
    if rgba.ndim != 3 or rgba.shape[2] != 4 or 0 in rgba.shape:
        raise ValueError(f"map must be (rows, cols, 4), got {rgba.shape}")
    opaque_patches = rgba[..., 3] == 255
    opaque = bool(opaque_patches.all())
    rgb = rgba[..., :3] if opaque else _fill_background(rgba[..., :3], rgba[..., 3] > 0)
    colour = _upsample(Image.fromarray(np.ascontiguousarray(rgb)), size)
    if opacity < 1.0:
        assert photo is not None, "opacity < 1 needs the photo"
        colour = Image.blend(photo, colour, opacity)
    if opaque:
        return colour
    alpha = _upsample(Image.fromarray(np.ascontiguousarray(rgba[..., 3])), size)
    if background == "transparent":
        colour.putalpha(alpha)
        return colour
    assert photo is not None, "a dim background needs the photo"
    out = _dim(photo)
    out.paste(colour, (0, 0), alpha)
    return out


def render(
    photo: Image.Image,
    fmap: FeatureMap,
    *,
    opacity: float = 1.0,
    background: str = "transparent",
) -> Image.Image:
    """The map upsampled smoothly (bilinear) to the photo's size, over the photo.

    `opacity` 1 shows the map alone, less blends it over the photo. Where the
    map is transparent (background patches in foreground mode), `background`
    "transparent" leaves the result transparent (RGBA) and "dim" shows the photo
    darkened. The result is RGB when nothing in it is transparent.
    """
    _check_render_args(opacity, background)
    return _render(photo.size, photo, fmap, opacity, background)


def strip(images: Sequence[Image.Image], height: int | None = None, gap: int = 8) -> Image.Image:
    """`images` side by side, each scaled to a common `height` (default: the first one's).

    `gap` transparent pixels (or black, when every image is RGB) between them.
    """
    if not images:
        raise ValueError("strip needs at least one image")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    h = images[0].height if height is None else height
    if h < 1:
        raise ValueError(f"height must be positive, got {h}")
    scaled = []
    for img in images:
        w = max(1, _round_half_up(img.width * h / img.height))
        scaled.append(img if img.size == (w, h) else img.resize((w, h), Image.Resampling.LANCZOS))
    mode = "RGB" if all(im.mode == "RGB" for im in scaled) else "RGBA"
    width = sum(im.width for im in scaled) + gap * (len(scaled) - 1)
    out = Image.new(mode, (width, h), (0, 0, 0) if mode == "RGB" else (0, 0, 0, 0))
    x = 0
    for im in scaled:
        out.paste(im if im.mode == mode else im.convert(mode), (x, 0))
        x += im.width + gap
    return out


# --------------------------------------------------------------------------- engine

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32) * 255.0
_INV_STD = 1.0 / (np.asarray(IMAGENET_STD, dtype=np.float32) * 255.0)

# Decode at least this short side: large enough for any grid's input (the short
# side is at most TARGET; one patch more covers the long side's rounding, which
# can add half a patch), small enough for a 12 MP JPEG to decode at 1/4 scale.
DECODE_MIN_SIDE: Final = TARGET + PATCH

_DEVICE_KINDS: Final = ("auto", "cpu", "cuda", "mps")

_CacheKey = tuple[str, int, int]


def _display_size(path: str, oriented: tuple[int, int]) -> tuple[int, int]:
    """The full-size display (width, height) of a photo whose decode was `oriented`.

    The header gives the stored size; the decoded (reduced, EXIF-oriented) image
    says whether the display swaps it, by whichever of the two aspect ratios it
    matches. This reads no EXIF itself, so it agrees with `open_image` whatever
    the format does about orientation (HEIF, say, applies it in the decoder).
    """
    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as img:
            w, h = img.size
    except Exception as exc:  # open_image read it a moment ago: replaced or damaged since
        raise ImageError(f"cannot read the image header ({type(exc).__name__})") from exc
    ow, oh = oriented
    return (w, h) if abs(w * oh - h * ow) <= abs(h * oh - w * ow) else (h, w)


def _model_input(img: Image.Image, cols: int, rows: int) -> FloatArray:
    """The (3, rows·14, cols·14) float32 input: bicubic resize, ImageNet normalisation."""
    size = (cols * PATCH, rows * PATCH)
    if img.size != size:
        img = img.resize(size, Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.float32)
    arr = (arr - _MEAN) * _INV_STD
    out: FloatArray = np.ascontiguousarray(arr.transpose(2, 0, 1))
    return out


def _fit_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    w, h = size
    if max_side is None or max(w, h) <= max_side:
        return size
    scale = max_side / max(w, h)
    return max(1, _round_half_up(w * scale)), max(1, _round_half_up(h * scale))


def _load_photo(path: str, size: tuple[int, int], display: tuple[int, int]) -> Image.Image:
    """The photo at `size` (its display size, or smaller), decoded no larger than needed."""
    photo = open_image(path) if size == display else open_image(path, min_side=min(size))
    if photo.size != size:
        photo = photo.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return photo


class OverlayEngine:
    """Patch features of photos from a DINOv2 model of its own, at overlay resolution.

    The model (built with ``dynamic_img_size=True`` for the 518-pixel position
    embedding) is loaded on first use, under a lock, so constructing an engine
    is cheap and thread-safe use from workers needs nothing more. Features are
    kept in an LRU cache keyed by (path, size, mtime_ns): a photo edited in
    place is computed again.
    """

    def __init__(
        self, model_name: str, weights: Path, *, device: str = "auto", cache_size: int = 32
    ) -> None:
        """Check the arguments (ValueError: unknown model or device kind); load nothing.

        Whether the device actually exists, and whether `weights` loads, is only
        known on first use: `features` raises ValueError or WeightsError then.
        """
        get_spec(model_name)
        kind = (device or "auto").strip().lower().split(":")[0]
        if kind not in _DEVICE_KINDS:
            raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or mps")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.model_name = model_name
        self.weights = Path(weights)
        self.device = device
        self.cache_size = cache_size
        self._model: Any = None  # timm's VisionTransformer; its API is untyped
        self._torch_device: torch.device | None = None
        # One lock for building and running the model: concurrent forward passes
        # would only fight over the same cores (and double the memory on a GPU),
        # while decoding still runs in parallel outside it.
        self._model_lock = threading.Lock()
        self._cache: OrderedDict[_CacheKey, PatchFeatures] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model has been built."""
        return self._model is not None

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    def load(self) -> None:
        """Build the model now (it is otherwise built by the first `features` call)."""
        with self._model_lock:
            self._ensure_model()

    def _ensure_model(self) -> Any:
        if self._model is None:
            device = pick_device(self.device)
            self._model = build_model(
                self.model_name,
                self.weights,
                img_size=TARGET,
                dynamic_img_size=True,
                device=device,
            )
            self._torch_device = device
        return self._model

    def _forward(self, x: FloatArray) -> FloatArray:
        """Patch tokens (rows, cols, dim) for one normalised (3, H, W) input, fp32."""
        import torch

        rows, cols = x.shape[1] // PATCH, x.shape[2] // PATCH
        with self._model_lock:
            model = self._ensure_model()
            with torch.inference_mode():
                batch = torch.from_numpy(x).unsqueeze(0).to(self._torch_device)
                tokens = model.forward_features(batch)[0, model.num_prefix_tokens :]
                out = tokens.float().cpu().numpy()
        if out.shape[0] != rows * cols:
            raise RuntimeError(f"model gave {out.shape[0]} patch tokens for a {cols}x{rows} grid")
        result: FloatArray = out.reshape(rows, cols, -1)
        return result

    def _key(self, path: str) -> _CacheKey:
        try:
            st = os.stat(path)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ImageError(f"cannot read file: {reason[:1].lower()}{reason[1:]}") from exc
        return path, st.st_size, st.st_mtime_ns

    def features(self, path: str) -> PatchFeatures:
        """The patch features of the photo at `path` (cached).

        The photo is decoded at reduced scale (JPEG DCT scaling) but at least at
        the model's input size, EXIF-oriented, resized to the `patch_grid` of its
        display size. Raises ImageError for an unreadable file; on the first call,
        WeightsError or ValueError when the model cannot be built. Thread-safe;
        two threads asking for the same uncached photo at once both compute it.
        """
        path = os.fspath(path)
        key = self._key(path)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        img = open_image(path, min_side=DECODE_MIN_SIDE)
        display = _display_size(path, img.size)
        cols, rows = patch_grid(*display)
        tokens = self._forward(_model_input(img, cols, rows))
        tokens.flags.writeable = False  # shared by every caller through the cache
        feats = PatchFeatures(path, tokens, display)
        if self.cache_size:
            with self._cache_lock:
                for old in [k for k in self._cache if k[0] == path]:
                    del self._cache[old]  # an earlier version of the file
                self._cache[key] = feats
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return feats

    def overlays(
        self,
        paths: Sequence[str],
        mode: str = "rgb",
        *,
        threshold: float | None = None,
        invert: bool = False,
        opacity: float = 1.0,
        background: str = "transparent",
        max_side: int | None = None,
    ) -> list[Image.Image]:
        """Each photo with its overlay, at its display size: features, joint `pca_maps`, `render`.

        `max_side` renders smaller (the long side at most that many pixels); the
        photo is then decoded at reduced scale too. The photo's pixels are only
        decoded when the result shows them (`opacity` < 1, or a "dim" background).
        """
        _check_mode(mode)
        _check_threshold(threshold)
        _check_render_args(opacity, background)
        if max_side is not None and max_side < 1:
            raise ValueError(f"max_side must be positive, got {max_side}")
        feats = [self.features(p) for p in paths]
        maps = pca_maps(feats, mode, threshold=threshold, invert=invert)
        out = []
        for f, fmap in zip(feats, maps, strict=True):
            size = _fit_size(f.display_size, max_side)
            photo = (
                _load_photo(f.path, size, f.display_size)
                if _needs_photo(fmap, opacity, background)
                else None
            )
            out.append(_render(size, photo, fmap, opacity, background))
        return out
