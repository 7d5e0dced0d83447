"""Comparing two decoded pictures: the measurements behind core/relations.py's labels.

`best_transform` scores the 8 turns and mirrors of the copy against the keeper
on small luma images; `aligned_fit` resizes the copy onto the keeper's frame and
fits a global colour model, cell by cell (`Fit`: how much changed, whether the
structure matches, which colour change explains the rest); `find_crop` searches
the smaller picture inside the larger one (multi-scale sums of squared
differences by FFT, refined by Gauss-Newton, verified by `aligned_fit`). No
decision is made here: relations.py turns these figures into labels. The
thresholds, and the figures they were measured from, are in relations.py's
module docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

TRANSFORMS: Final[dict[str, Image.Transpose]] = {
    "rotated 90° clockwise": Image.Transpose.ROTATE_270,
    "rotated 180°": Image.Transpose.ROTATE_180,
    "rotated 90° counter-clockwise": Image.Transpose.ROTATE_90,
    "mirrored left–right": Image.Transpose.FLIP_LEFT_RIGHT,
    "mirrored top–bottom": Image.Transpose.FLIP_TOP_BOTTOM,
    "transposed": Image.Transpose.TRANSPOSE,
    "transversed": Image.Transpose.TRANSVERSE,
}
"""The 7 non-identity dihedral transforms, by name: `Relation.transform` names the
one that maps the copy onto the keeper (``copy.transpose(TRANSFORMS[name])``
looks like the keeper). Pillow's ROTATE_90 turns counter-clockwise."""

_TURN_SIDE: Final = 64
"""Long side of the luma images that the 8 dihedral transforms are scored at."""
_CELL: Final = 4
"""Residuals are averaged over cells of this many pixels a side (at the working size)."""
_CELL_TAU: Final = 0.05
"""A cell whose mean residual after the colour fit is above this (0..1) has changed."""
_CLEAN_MAX: Final = 0.005
"""At most this fraction of changed cells: the pixels match."""
_EDIT_MAX: Final = 0.5
"""At most this fraction of changed cells: a local edit (the rest matches)."""
_STRUCTURE_MIN: Final = 0.5
"""Correlation of the luma detail over the matching cells at or above which the two are
one picture (unrelated photos whose smooth areas a colour fit lines up stay below)."""
_CROP_SIDE: Final = 128
"""Long side of the larger picture for the coarse crop search (refined at the working size)."""
_CROP_STEP: Final = 1.06
"""Ratio between successive crop scales of the coarse search."""
_CROP_NCC: Final = 0.6
"""A crop candidate below this normalised cross-correlation is not refined."""
_GN_STEPS: Final = 5
"""Gauss-Newton steps refining a crop box."""
_CLIP: Final = 0.02
"""Channel values within this of 0 or 1 may be clipped: they do not fit the colour model."""
MIN_PIXELS: Final = 8
"""Pictures, templates and crop boxes smaller than this a side are not compared."""
_LUMA: Final = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_IDENTITY: Final = np.eye(3, 4, dtype=np.float32)
"""The colour model c = M·(r, g, b, 1) that changes nothing."""

Array = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Fit:
    """Two aligned pictures compared (keeper k, copy c, same shape)."""

    difference: float
    """Mean |c - k| over pixels and channels."""
    changed: float
    """Fraction of cells that differ after the global colour fit."""
    structure: float
    """Correlation of the luma detail (luma less its blur) over the cells that match."""
    shift: float
    """Mean |fit(k) - k|: how far the global colour change moves the keeper's pixels."""
    keeper_chroma: float
    copy_chroma: float
    brightness: float
    """Mean luma of c / mean luma of k."""
    contrast: float
    """(Luma std ratio c/k) / brightness: contrast not explained by a plain gain."""
    cast: tuple[float, float, float]
    """Per channel: the colour offset not explained by brightness and saturation,
    relative to the mean luma."""
    saturation: float
    """Scaling of the colour (each pixel less its luma), relative to the luma's."""
    cells: NDArray[np.bool_] = field(compare=False, repr=False)
    """Which cells changed."""

    @property
    def region(self) -> tuple[float, float, float, float] | None:
        """The largest connected changed area (x0, y0, x1, y1) as fractions of the frame."""
        return _largest_region(self.cells)

    @property
    def clean(self) -> bool:
        """The pixels match (after the global colour fit)."""
        return self.changed <= _CLEAN_MAX and self.structure >= _STRUCTURE_MIN

    @property
    def local(self) -> bool:
        """Most of the picture matches: at most a local edit."""
        return self.changed <= _EDIT_MAX and self.structure >= _STRUCTURE_MIN


@dataclass(frozen=True, slots=True)
class Crop:
    """A crop found: the smaller picture inside the larger one."""

    box: tuple[float, float, float, float]
    """In the larger picture's working pixels."""
    ncc: float
    fit: Fit
    crop_in: str


# ---- pixels -------------------------------------------------------------------------------


def fit_long_side(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    if max(w, h) <= side:
        return img
    return img.resize(_scaled(img.size, side), Image.Resampling.BILINEAR)


def _scaled(size: tuple[int, int], side: float) -> tuple[int, int]:
    w, h = size
    scale = side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _resized(img: Image.Image, shape: tuple[int, int]) -> Image.Image:
    return img if img.size == shape else img.resize(shape, Image.Resampling.BILINEAR)


def _floats(img: Image.Image) -> Array:
    """A one-band image as an (h, w) float32 array."""
    return np.asarray(img, dtype=np.float32)


def _planes(img: Image.Image) -> Array:
    """An RGB image as (3, h, w) float32 in 0..1."""
    planes: Array = np.stack([np.asarray(band, dtype=np.float32) for band in img.split()])
    planes *= np.float32(1 / 255)
    return planes


def _box(planes: Array, radius: int) -> Array:
    """Each plane's (2·radius + 1)² mean, edges repeated."""
    _, h, w = planes.shape
    n = 2 * radius + 1
    p = np.pad(planes, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    rows = p[:, :, :w] + p[:, :, 1 : w + 1]
    for i in range(2, n):
        rows += p[:, :, i : i + w]
    out: Array = rows[:, :h] + rows[:, 1 : h + 1]
    for i in range(2, n):
        out += rows[:, i : i + h]
    out *= np.float32(1 / (n * n))
    return out


def _pearson(a: Array, b: Array) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / den if den > 1e-9 else 0.0


def best_transform(k: Image.Image, c: Image.Image) -> tuple[str | None, float, float]:
    """(name of the best dihedral transform or None for the identity, its score, the
    identity's score): luma correlation at `_TURN_SIDE` pixels."""
    shape = _scaled(k.size, _TURN_SIDE)
    kl = _floats(_resized(k.convert("L"), shape))
    cl = c.convert("L")
    small = _resized(cl, _scaled(cl.size, 2 * _TURN_SIDE))
    identity = _pearson(kl, _floats(_resized(small, shape)))
    best_name: str | None = None
    best = identity
    for name, t in TRANSFORMS.items():
        score = _pearson(kl, _floats(_resized(small.transpose(t), shape)))
        if score > best:
            best_name, best = name, score
    return best_name, best, identity


def aligned_fit(k: Image.Image, c: Image.Image, size: int) -> Fit:
    """Compare `c` resized onto `k`'s frame, at the smaller of the two resolutions."""
    shape = _scaled(k.size, min(size, max(k.size), max(c.size)))
    return _compare(_resized(k, shape), _resized(c, shape))


def _compare(k_img: Image.Image, c_img: Image.Image) -> Fit:
    """Fit c ≈ M·k + b (a global 3×3 colour matrix and offset, clipped to 0..1),
    refitted without the cells that changed, and measure what it leaves.

    The fit runs on the cell means (it is linear, so they carry it, at 1/16 of the
    pixels); the residual that decides which cells changed is per pixel. Both after
    a 3×3 blur: codec noise, chroma subsampling and resampling differ pixel by pixel
    between the two pictures, an edit does not."""
    k, c = _planes(k_img), _planes(c_img)
    kb, cb = _box(k, 1), _box(c, 1)
    _, h, w = k.shape
    n = h * w
    difference = float(np.abs(c - k).mean())
    kc, cc = _cell_means(kb), _cell_means(cb)
    xc = np.ones((4, kc.shape[1]), dtype=np.float32)
    xc[:3] = kc
    # Clipping: a channel clipped in the copy says only that the model's value is at
    # or beyond the clip, so each output channel is fitted on every cell but those
    # where it is clipped and the prediction agrees (a censored fit: the other
    # channels of a clipped colour still count).
    low, high = cc <= _CLIP, cc >= 1 - _CLIP
    target = np.clip(cc, _CLIP, 1 - _CLIP)

    def errors(model: Array) -> Array:
        err: Array = np.abs(np.clip(model @ xc, 0.0, 1.0) - cc).mean(axis=0)
        return err

    def refit(model: Array, good: NDArray[np.bool_]) -> Array:
        pred = model @ xc
        agree = (low & (pred <= _CLIP)) | (high & (pred >= 1 - _CLIP))
        return _lstsq(xc, target, good & ~agree)

    # Robust start: the best of no change at all (a local edit pulls a least-squares
    # fit off), the fit on every cell (a colour edit), and that fit refitted on its
    # better half (both); then refits on the cells that match.
    fitted = _lstsq(xc, cc, ~(low | high))
    trimmed = refit(fitted, errors(fitted) <= float(np.median(errors(fitted))))
    model = min((_IDENTITY, fitted, trimmed), key=lambda m: int((errors(m) > _CELL_TAU).sum()))
    for _ in range(2):
        model = refit(model, errors(model) <= _CELL_TAU)
    x = np.ones((4, n), dtype=np.float32)
    x[:3] = kb.reshape(3, n)
    changed = _cells(_residual(model @ x, cb.reshape(3, n)).reshape(h, w)) > _CELL_TAU
    structure = _structure(kb, cb, _pixels_of(~changed, h, w).reshape(h, w))

    # Describe the colour change by the fitted model, unclipped, on the keeper's
    # matching cells: the copy's own values are clipped where the edit pushed them out.
    pred = model @ xc
    shift = float(np.abs(np.clip(pred, 0.0, 1.0) - kc).mean())
    same_cells = ~changed.reshape(-1)
    if same_cells.sum() < 8:
        same_cells = np.ones(kc.shape[1], dtype=bool)
    kp, cp = kc[:, same_cells], pred[:, same_cells]
    kl, cl = _LUMA @ kp, _LUMA @ cp
    k_mean, c_mean = float(kl.mean()), float(cl.mean())
    brightness = c_mean / k_mean if k_mean > 1e-3 else 1.0
    k_std, c_std = float(kl.std()), float(cl.std())
    spread = c_std / k_std if k_std > 1e-3 else 1.0
    contrast = spread / brightness if brightness > 1e-3 else 1.0
    k_chroma_v, c_chroma_v = kp - kl, cp - cl  # colour without its brightness, per channel
    k_dev = k_chroma_v - k_chroma_v.mean(axis=1, keepdims=True)
    c_dev = c_chroma_v - c_chroma_v.mean(axis=1, keepdims=True)
    k_var = float((k_dev * k_dev).sum())
    sat = float((c_dev * k_dev).sum()) / k_var if k_var > 1e-6 else 1.0
    cast = c_chroma_v.mean(axis=1) - sat * k_chroma_v.mean(axis=1)
    levels = np.full(3, max(c_mean, 1e-3))  # a cast relative to the mean brightness
    k_chroma = float((kc.max(axis=0) - kc.min(axis=0)).mean())
    c_chroma = float((cc.max(axis=0) - cc.min(axis=0)).mean())
    return Fit(
        difference=difference,
        structure=structure,
        changed=float(changed.mean()),
        cells=changed,
        shift=shift,
        keeper_chroma=k_chroma,
        copy_chroma=c_chroma,
        brightness=brightness,
        contrast=contrast,
        cast=(float(cast[0] / levels[0]), float(cast[1] / levels[1]), float(cast[2] / levels[2])),
        saturation=sat / spread if spread > 1e-3 else 1.0,
    )


def _cell_means(planes: Array) -> Array:
    """(3, cells): each channel averaged over the cells of `_cells`."""
    _, h, w = planes.shape
    if h < _CELL or w < _CELL:
        means: Array = planes.reshape(3, -1).mean(axis=1, keepdims=True)
        return means
    ch, cw = h // _CELL, w // _CELL
    cut = planes[:, : ch * _CELL, : cw * _CELL].reshape(3, ch, _CELL, cw, _CELL)
    cells: Array = cut.mean(axis=(2, 4)).reshape(3, ch * cw)
    return cells


def _structure(kb: Array, cb: Array, same: NDArray[np.bool_]) -> float:
    """Correlation of the luma detail of the (3×3-blurred) k and c where `same`: a band
    pass, the blurred luma less its 5×5 mean (0 when too few pixels)."""
    if same.sum() < 16:
        return 0.0
    kl = np.tensordot(_LUMA, kb, axes=1)[None]
    cl = np.tensordot(_LUMA, cb, axes=1)[None]
    kd = (kl - _box(kl, 2))[0][same]
    cd = (cl - _box(cl, 2))[0][same]
    return _pearson(kd, cd)


def _lstsq(x: Array, y: Array, use: NDArray[np.bool_]) -> Array:
    """M (3×4) with M·x ≈ y, each row (output channel) fitted on the columns `use`
    marks for it, lightly pulled towards the identity colour matrix (so that a grey
    keeper, whose channels are collinear, still has one answer)."""
    rows = np.array(_IDENTITY, dtype=np.float64)
    for ch in range(3):
        xm = x[:, use[ch]]
        if xm.shape[1] < 8:
            continue
        weight = 1e-4 * xm.shape[1]
        gram = (xm @ xm.T).astype(np.float64)
        gram[:3, :3] += weight * np.eye(3)
        rhs = (xm @ y[ch, use[ch]]).astype(np.float64)
        rhs[ch] += weight
        rows[ch] = np.linalg.solve(gram, rhs)
    return rows.astype(np.float32)


def _residual(pred: Array, y: Array) -> Array:
    """Per pixel: mean over channels of |clip(pred) - y|."""
    err = np.abs(np.clip(pred, 0.0, 1.0) - y)
    out: Array = (err[0] + err[1] + err[2]) * np.float32(1 / 3)
    return out


def _pixels_of(cells: NDArray[np.bool_], h: int, w: int) -> NDArray[np.bool_]:
    """A per-cell mask as a flat per-pixel one (pixels past the last whole cell: True)."""
    if h < _CELL or w < _CELL:
        return np.full(h * w, bool(cells.all()))
    out = np.ones((h, w), dtype=bool)
    grown = np.repeat(np.repeat(cells, _CELL, axis=0), _CELL, axis=1)
    out[: grown.shape[0], : grown.shape[1]] = grown
    return out.reshape(h * w)


def _cells(residual: Array) -> Array:
    h, w = residual.shape
    if h < _CELL or w < _CELL:
        return np.full((1, 1), residual.mean(), dtype=np.float32)
    ch, cw = h // _CELL, w // _CELL
    cut = residual[: ch * _CELL, : cw * _CELL]
    cells: Array = cut.reshape(ch, _CELL, cw, _CELL).mean(axis=(1, 3))
    return cells


def _largest_region(changed: NDArray[np.bool_]) -> tuple[float, float, float, float] | None:
    """The bounding box of the largest 4-connected changed area, as fractions of the frame."""
    h, w = changed.shape
    grid: list[list[bool]] = changed.tolist()
    seen = [[False] * w for _ in range(h)]
    best: tuple[int, int, int, int, int] | None = None  # (size, r0, c0, r1, c1)
    for r0 in range(h):
        for c0 in range(w):
            if not grid[r0][c0] or seen[r0][c0]:
                continue
            seen[r0][c0] = True
            stack = [(r0, c0)]
            n, top, left, bottom, right = 0, r0, c0, r0, c0
            while stack:
                r, c = stack.pop()
                n += 1
                top, bottom, left, right = min(top, r), max(bottom, r), min(left, c), max(right, c)
                for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                    if 0 <= rr < h and 0 <= cc < w and grid[rr][cc] and not seen[rr][cc]:
                        seen[rr][cc] = True
                        stack.append((rr, cc))
            if best is None or n > best[0]:
                best = (n, top, left, bottom, right)
    if best is None:
        return None
    _, top, left, bottom, right = best
    return (left / w, top / h, (right + 1) / w, (bottom + 1) / h)


# ---- crop search -----------------------------------------------------------------------


def find_crop(
    k: Image.Image, c: Image.Image, size: int, smallest: float, candidates: int
) -> Crop | None:
    """The best of "the copy is a crop of the keeper" and "the keeper is a crop of the
    copy": a few candidates of each are searched coarsely, then refined and verified;
    of those whose pixels match, the one that matches closest wins."""
    kl, cl = k.convert("L").convert("F"), c.convert("L").convert("F")
    best: Crop | None = None
    for big, small, bl, sl, crop_in in ((k, c, kl, cl, "keeper"), (c, k, cl, kl, "copy")):
        for ncc, box in _coarse_crops(bl, sl, smallest, candidates):
            crop = _verify(big, small, bl, sl, box, ncc, crop_in, size)
            if crop is not None and (best is None or _better(crop, best)):
                best = crop
    return best


def _better(a: Crop, b: Crop) -> bool:
    if a.fit.clean != b.fit.clean:
        return a.fit.clean
    if a.fit.clean:
        return a.fit.difference < b.fit.difference
    return a.fit.changed < b.fit.changed


def _coarse_crops(
    big: Image.Image, small: Image.Image, smallest: float, candidates: int
) -> list[tuple[float, tuple[float, float, float, float]]]:
    """The best placements (ncc, box in `big`'s pixels) of `small` inside `big`, at
    `_CROP_SIDE` pixels, at scales from 1 down to `smallest`: the best over all
    scales, and the best `candidates` - 1 more at scales at least 3 steps away (a
    smooth picture leaves the scale loose)."""
    coarse = _resized(big, _scaled(big.size, min(_CROP_SIDE, max(big.size))))
    fits = _fitting_sizes(coarse.size, small.size)
    if fits is None:
        return []
    # The largest template is `fits`: resize the small picture once to about that.
    source = _resized(small, _scaled(small.size, min(max(small.size), max(fits) + 1)))
    scales: list[float] = []
    g = 1.0
    while g >= smallest:
        scales.append(g)
        g /= _CROP_STEP
    found = sorted(_search(_floats(coarse), source, fits, scales))
    fx, fy = big.width / coarse.width, big.height / coarse.height
    picked: list[tuple[float, tuple[float, float, float, float]]] = []
    taken: list[int] = []
    for _, ncc, i, x, y in found:
        if len(picked) == candidates:
            break
        if ncc < _CROP_NCC or any(abs(i - j) < 3 for j in taken):
            continue
        taken.append(i)
        tw, th = _template_size(fits, scales[i])
        picked.append((ncc, (x * fx, y * fy, (x + tw) * fx, (y + th) * fy)))
    return picked


def _verify(
    big: Image.Image,
    small: Image.Image,
    big_l: Image.Image,
    small_l: Image.Image,
    box: tuple[float, float, float, float],
    ncc: float,
    crop_in: str,
    size: int,
) -> Crop | None:
    """Refine the box (Gauss-Newton on luma, at the coarse size then the working size)
    and compare the pixels."""
    refined = _refine(big_l, small_l, box, _GN_STEPS)
    x0, y0, x1, y1 = refined
    if x1 - x0 < MIN_PIXELS or y1 - y0 < MIN_PIXELS:
        return None
    shape = _scaled(small.size, min(size, max(small.size), max(x1 - x0, y1 - y0)))
    region = big.resize(shape, Image.Resampling.BILINEAR, box=refined)
    fit = _compare(region, _resized(small, shape))
    return Crop(refined, ncc, fit, crop_in)


def _refine(
    big: Image.Image, small: Image.Image, box: tuple[float, ...], steps: int
) -> tuple[float, float, float, float]:
    """Gauss-Newton steps on the box (x0, y0, x1, y1) of `small` (luma, "F") in `big`:
    minimise |s - a·w(box)|² over the box, the gain a fitted each step."""
    bw, bh = big.size
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(bw), box[2]), min(float(bh), box[3])
    if x1 - x0 < MIN_PIXELS or y1 - y0 < MIN_PIXELS:
        return x0, y0, x1, y1
    # Sampled at most `_CROP_SIDE` pixels a side: enough for a fraction of a pixel.
    long = min(max(small.size), max(x1 - x0, y1 - y0), _CROP_SIDE)
    shape = _scaled(small.size, max(long, MIN_PIXELS))
    sw, sh = shape
    s = _floats(_resized(small, shape))
    s = s - s.mean()
    u = ((np.arange(sw, dtype=np.float32) + 0.5) / sw)[None, :]
    v = ((np.arange(sh, dtype=np.float32) + 0.5) / sh)[:, None]
    for _ in range(steps):
        w = _floats(big.resize(shape, Image.Resampling.BILINEAR, box=(x0, y0, x1, y1)))
        w = w - w.mean()
        ww = float((w * w).sum())
        if ww < 1e-6:
            break
        a = float((s * w).sum()) / ww
        r = (s - a * w).reshape(-1)
        gy, gx = np.gradient(w)
        gx *= a * sw / (x1 - x0)
        gy *= a * sh / (y1 - y0)
        jac = np.stack(
            [
                (gx * (1 - u)).reshape(-1),
                (gy * (1 - v)).reshape(-1),
                (gx * u).reshape(-1),
                (gy * v).reshape(-1),
            ]
        )
        hess = (jac @ jac.T).astype(np.float64) + 1e-6 * np.eye(4)
        step = np.linalg.solve(hess, (jac @ r).astype(np.float64))
        limit = max(2.0, 0.1 * max(x1 - x0, y1 - y0))
        step = np.clip(step, -limit, limit)
        x0, y0, x1, y1 = (
            max(0.0, x0 + float(step[0])),
            max(0.0, y0 + float(step[1])),
            min(float(bw), x1 + float(step[2])),
            min(float(bh), y1 + float(step[3])),
        )
        if x1 - x0 < MIN_PIXELS or y1 - y0 < MIN_PIXELS:
            break
        if float(np.abs(step).max()) < 0.05:
            break
    return x0, y0, x1, y1


def _fitting_sizes(big: tuple[int, int], small: tuple[int, int]) -> tuple[float, float] | None:
    """The largest (w, h) with `small`'s aspect that fits in `big`."""
    bw, bh = big
    sw, sh = small
    if min(bw, bh, sw, sh) <= 0:
        return None
    scale = min(bw / sw, bh / sh)
    return sw * scale, sh * scale


def _template_size(fits: tuple[float, float], g: float) -> tuple[int, int]:
    return max(1, round(fits[0] * g)), max(1, round(fits[1] * g))


def _search(
    big: Array, small: Image.Image, fits: tuple[float, float], scales: list[float]
) -> list[tuple[float, float, int, int, int]]:
    """For each scale i of `scales`, (score, ncc, i, x, y) of the best placement of
    `small`, resized to that scale of `fits`, over `big`.

    The score is the sum of squared differences (the window and the template less
    their means) relative to the template's energy, least best: normalised
    cross-correlation would forgive a change of contrast, so a smooth gradient would
    match a smaller copy of itself. The products by FFT, the window sums from integral
    images; the ncc at the place found is returned for the threshold."""
    h, w = big.shape
    s1 = np.pad(big.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    s2 = np.pad(big.astype(np.float64) ** 2, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    sizes: list[tuple[int, int, int, float]] = []
    padded = np.zeros((len(scales), h, w), dtype=np.float64)  # numpy's FFT is double
    for i, g in enumerate(scales):
        tw, th = _template_size(fits, g)
        if tw < MIN_PIXELS or th < MIN_PIXELS or tw > w or th > h:
            continue
        t = _floats(small.resize((tw, th), Image.Resampling.BILINEAR))
        t = t - t.mean()
        t_energy = float((t * t).sum())
        if t_energy < 1e-6:
            continue
        padded[len(sizes), :th, :tw] = t
        sizes.append((i, tw, th, t_energy))
    if not sizes:
        return []
    spectra = np.fft.rfft2(padded[: len(sizes)])
    spectra.imag *= -1  # conjugate: correlation, not convolution
    spectra *= np.fft.rfft2(big)[None]
    nums = np.fft.irfft2(spectra, s=(h, w))
    found: list[tuple[float, float, int, int, int]] = []
    for (i, tw, th, t_energy), full in zip(sizes, nums, strict=True):
        num = full[: h - th + 1, : w - tw + 1]
        win = s1[th:, tw:] - s1[:-th, tw:] - s1[th:, :-tw] + s1[:-th, :-tw]
        win2 = s2[th:, tw:] - s2[:-th, tw:] - s2[th:, :-tw] + s2[:-th, :-tw]
        var = np.maximum(win2 - win * win / (tw * th), 1e-3)
        ssd = (var - 2.0 * num) / t_energy + 1.0
        y, x = np.unravel_index(int(np.argmin(ssd)), ssd.shape)
        ncc = float(num[y, x]) / math.sqrt(float(var[y, x]) * t_energy)
        found.append((float(ssd[y, x]), ncc, i, int(x), int(y)))
    return found
