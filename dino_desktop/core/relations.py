"""Measured relations of duplicate-group members to their keeper.

`Measurer.relate(keeper, other)` says how a group member relates to its keeper,
one of `LABELS`, with a line of evidence naming what was measured. Nothing is
guessed from metadata but time: the pixels of both photos are decoded small (long
side `Measurer.size`, 256 by default; `images.open_image` with EXIF orientation
applied and reduced-scale JPEG decoding) and compared. Decoded pictures are cached
by path (LRU, the 64 most recent), so a keeper is decoded once for its group;
`relate` is thread-safe and never raises for a bad file (the answer is "similar",
"could not be compared: ...").

Rules, the first that decides wins
----------------------------------
1. ``identical``: equal sha256; nothing is decoded.
2. Time: both dated, at different times, is another exposure: ``burst`` within
   `BURST_WINDOW_S` (10 s) when the cameras do not differ, else ``similar shot``.
   Equal times or a missing date go on to the pixels.
3. Turns and mirrors: the copy's luma, put through each of the 8 dihedral
   transforms and resized onto the keeper's frame (which also undoes a resize or a
   squash), is correlated with the keeper's at 64 pixels. A transform that beats
   the identity by `_TURN_MARGIN` (0.15), and whose alignment passes the
   whole-frame test below with at most a local edit, gives ``rotated`` (the three
   pure turns) or ``mirrored`` (the flips, transpose, transverse), `transform`
   naming the TRANSFORMS entry that maps the copy back onto the keeper (a copy
   turned 90° counter-clockwise has transform "rotated 90° clockwise"; the evidence
   says how the copy was made: "turned 90° counter-clockwise").
4. Whole frame: the copy resized onto the keeper's frame, at the smaller of the
   two resolutions, both 3×3-blurred (codec noise, chroma subsampling and
   resampling differ pixel by pixel, an edit does not). A global colour model
   c = M·(r, g, b, 1) (3×3 matrix and offset, clipped to 0..1: covers brightness,
   contrast, white balance, saturation and greyscale) is fitted robustly on 4×4
   cell means: started from the best of "no change", the least-squares fit and its
   better-half refit, then refitted on the cells that match, a channel that is
   clipped in the copy counting only where the prediction disagrees (a censored
   fit). A cell has *changed* when its mean absolute residual is above
   `_CELL_TAU` (0.05); *structure* is the correlation of the luma detail (3×3 blur
   less its 5×5 mean) over the cells that did not change. With structure at least
   `_STRUCTURE_MIN` (0.5):

   - at most `_CLEAN_MAX` (0.5 %) of the cells changed: the pixels match, then
     ``greyscale`` when the copy has no chroma (mean max-min of R, G, B under
     `_GREY_CHROMA`, 1 %) and the keeper has (over `_COLOUR_CHROMA`, 3 %);
     ``colour edit`` when the colour model moves the keeper's pixels by
     `_SHIFT_MIN` (1 %) or more on average and a named change passes its threshold
     (brightness: mean luma ±5 %; contrast: luma spread beyond the brightness gain
     ±10 %; colour balance: a channel's offset not explained by brightness and
     saturation ±5 % of the mean luma; saturation: colour less luma scaled ±15 %
     beyond the luma's; else "colours changed" from 2 % of movement); else
     ``resized`` when the display sizes differ ("4032×3024 → 2016×1512", or
     "squashed"/"stretched ... (aspect changed)" beyond 1 % of aspect), else
     ``re-encoded`` (format and bytes before and after). A pixel-edit label wins
     over a resize, whose sizes the evidence then adds.
   - at most `_EDIT_MAX` (50 %) changed: ``edited``, with the share that changed
     and the box of the largest changed region, unless a crop explains it (rule 5,
     only crops of at least `_EDIT_CROP_MIN` (80 %) of the frame: a slight trim
     leaves the edges unaligned and looks like an edit).
5. Crops, searched only when rule 4 found no clean match, both ways (the copy in
   the keeper, the keeper in the copy): the smaller picture's luma, at scales from
   1 down to `_CROP_MIN` (25 %) of the largest size of its aspect that fits, steps
   of `_CROP_STEP` (×1.06), is placed over the larger one at `_CROP_SIDE` (128)
   pixels by the least sum of squared differences (normalised cross-correlation
   forgives contrast, so a smooth gradient matches a smaller copy of itself), by
   FFT. The best `_CROP_CANDIDATES` (2) of each way, at scales 3 steps apart and
   with a correlation of at least `_CROP_NCC` (0.6), are refined by Gauss-Newton on
   the box (x0, y0, x1, y1) at the working size and verified with the whole-frame
   test of rule 4; of those with a clean match, the closest gives ``cropped``,
   `crop_box` in the larger picture's display pixels (`Side.width`/`height`) and
   `crop_in`.
6. Nothing decides: ``similar``, the evidence saying what was tried and how much
   differed each way.

Measured on generated pairs
---------------------------
`tests/imagegen.py` photos, 640×480, 40 seeds, copies saved as JPEG quality 90
(exploration scripts, not in the suite; tests/unit/test_relations.py checks every
label on 3 seeds):

* Rule 3: the identity's luma correlation with a turned or mirrored copy was
  -0.66..0.76 and the right transform beat it by 0.24..1.66, aligning with no
  changed cell (structure 0.99+); copies not turned were best as they are.
* Cell residuals (largest cell of a pair) where the pixels match: resized and
  re-encoded 0.003..0.045 (the 80×60 thumbnail highest), colour edits up to 0.065
  (a lone cell at clipped colours); a retouch's changed cells 0.10..0.68 (median
  per pair). Changed cells: matching pixels 0..0.2 %, a 1 % retouch 1.1..1.5 %, a
  10 % retouch 9.9..12 %, unrelated photos 30..99 %.
* Structure: one picture 0.86..1.00 over the whole frame, the crops found 0.71+,
  unrelated photos -0.20..0.21 (their smooth areas line up under a fitted colour
  model, their detail does not).
* Colour movement: resized and re-encoded 0..0.5 %, colour edits (brightness
  +25 % and -20 %, contrast ×1.3, channels ×1.12 / ×0.88, saturation ×1.5)
  2.1..15 %, greyscale 10..30 %. Measured components: brightness +25 % made reads
  +16..+25 % (clipping at white), -20 % reads -20..-21 %; contrast ×1.3 reads
  ×1.19..1.31; stray components stayed under 3.5 % (brightness), 12 % (contrast,
  of a brightened copy clipped at white), 9 % (balance), 15 % (saturation).
  Greyscale copies have chroma 0.0 %, the keepers 26..69 %.
* Crops: 160 random crops (25..97 % of the side, other aspects, some resized,
  some the other way round) and the fixed ones were all found; box error median
  0, largest 2.2 % of the side (a crop of a smooth area with one edge, where the
  box slides along the edge). True crops correlated 0.79+ at the coarse size.
* Time, one core (OMP_NUM_THREADS=1), process time on a shared 2-core machine
  (medians; runs at other loads were up to a third faster): a pair decided by the
  whole frame (rules 3-4) 11 ms with the keeper cached, 13 ms with the copy's
  decode (a 640×480 JPEG: 0.5 ms; a 12 MP JPEG: 23 ms of decoding alone); with
  the crop search: an edit 25 ms, a crop 40 ms, "similar" 32 ms.

Limits
------
A copy that is both turned and cropped, or cropped below 25 % of the side, is
"similar". A picture whose only difference is its EXIF orientation is compared as
displayed: the same pixels, "re-encoded". Without dates, two exposures of one
scene from a tripod read as one picture, or as "edited" where something moved:
pixels cannot tell another exposure from an edit. Edits under about 0.5 % of the
picture are not seen.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from dino_desktop.core.images import ImageError, open_image

__all__ = [
    "BURST_WINDOW_S",
    "LABELS",
    "TRANSFORMS",
    "Measurer",
    "Relation",
    "Side",
]

LABELS: Final[tuple[str, ...]] = (
    "identical",
    "resized",
    "re-encoded",
    "rotated",
    "mirrored",
    "cropped",
    "greyscale",
    "colour edit",
    "edited",
    "burst",
    "similar shot",
    "similar",
)

BURST_WINDOW_S: Final[float] = 10.0
"""Two dated photos of one camera at most this far apart are a burst.

Phone and camera bursts run at 3-30 frames a second and last a few seconds;
a quick re-shot ("one more, you blinked") follows within a few seconds too.
10 s holds both, while a photo taken after walking a few steps or waiting for
the light (a deliberate other exposure) is usually further apart."""

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

_TURNS: Final = frozenset(
    {"rotated 90° clockwise", "rotated 180°", "rotated 90° counter-clockwise"}
)
# The transforms that swap width and height.
_QUARTER: Final = frozenset(
    {"rotated 90° clockwise", "rotated 90° counter-clockwise", "transposed", "transversed"}
)
# How the copy was made from the keeper: the inverse of the transform that undoes it.
_MADE_BY: Final[dict[str, str]] = {
    "rotated 90° clockwise": "turned 90° counter-clockwise",
    "rotated 180°": "turned 180°",
    "rotated 90° counter-clockwise": "turned 90° clockwise",
    "mirrored left–right": "mirrored left–right",
    "mirrored top–bottom": "mirrored top–bottom",
    "transposed": "transposed (mirrored across the main diagonal)",
    "transversed": "transversed (mirrored across the other diagonal)",
}

# ---- measured thresholds (see the module docstring) --------------------------------

_TURN_SIDE: Final = 64
"""Long side of the luma images that the 8 dihedral transforms are scored at."""
_TURN_MARGIN: Final = 0.15
"""A transform must beat the identity's luma correlation by this much."""
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
_SHIFT_MIN: Final = 0.01
"""Mean movement of the pixels (0..1) by the global colour fit above which colours were edited."""
_GREY_CHROMA: Final = 0.01
"""Mean chroma (max - min of R, G, B; 0..1) below which a picture has no colour."""
_COLOUR_CHROMA: Final = 0.03
"""Mean chroma above which the keeper has colour to lose."""
# The colour changes an edit's evidence names, each past its threshold (relative):
_BRIGHTNESS_MIN: Final = 0.05
_CONTRAST_MIN: Final = 0.10
_CHANNEL_MIN: Final = 0.05
_SATURATION_MIN: Final = 0.15
_ASPECT_TOLERANCE: Final = 0.01
"""Aspect ratios within 1 % are the same (a resize rounds each side)."""

_CROP_SIDE: Final = 128
"""Long side of the larger picture for the coarse crop search (refined at the working size)."""
_CROP_MIN: Final = 0.25
"""The smallest crop searched for, as a fraction of the largest that fits (per side)."""
_CROP_STEP: Final = 1.06
"""Ratio between successive crop scales of the coarse search."""
_CROP_NCC: Final = 0.6
"""A crop candidate below this normalised cross-correlation is not refined."""
_CROP_CANDIDATES: Final = 2
"""Crop candidates of each direction refined and verified."""
_EDIT_CROP_MIN: Final = 0.8
"""With a local edit found, the smallest crop searched for (a crop that leaves at
most half the cells changed covers most of the frame)."""
_GN_STEPS: Final = 5
"""Gauss-Newton steps refining a crop box."""
_CLIP: Final = 0.02
"""Channel values within this of 0 or 1 may be clipped: they do not fit the colour model."""
_CACHE_SIZE: Final = 64
"""Decoded pictures kept (the most recently used)."""
_MIN_PIXELS: Final = 8
"""Pictures, templates and crop boxes smaller than this a side are not compared."""

_LUMA: Final = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_IDENTITY: Final = np.eye(3, 4, dtype=np.float32)
"""The colour model c = M·(r, g, b, 1) that changes nothing."""

Array = NDArray[np.float32]


@dataclass(frozen=True)
class Side:
    """What is known of one photo without decoding it (from the catalog)."""

    path: str
    width: int
    """Display width (EXIF orientation applied)."""
    height: int
    size: int
    """File size in bytes."""
    format: str | None
    """Pillow format name, e.g. "JPEG", "PNG", "HEIF"."""
    sha256: str | None
    taken_at: datetime | None
    """When the shutter fired, with sub-second time when the camera wrote it."""
    camera: str | None


@dataclass(frozen=True)
class Relation:
    """How a copy relates to its keeper, and what was measured to say so."""

    label: str
    """One of LABELS."""
    evidence: str
    """One line for a person: what was measured."""
    transform: str | None = None
    """rotated/mirrored: the TRANSFORMS name that maps the copy onto the keeper."""
    crop_box: tuple[int, int, int, int] | None = None
    """cropped: (x0, y0, x1, y1) of the smaller picture inside the larger, in the
    larger one's display pixels."""
    crop_in: str | None = None
    """cropped: "keeper" (the copy is a crop of the keeper) or "copy" (the keeper
    is a crop of the copy)."""
    difference: float | None = None
    """Mean absolute pixel difference (0..1) after alignment, when pixels were compared."""


@dataclass(frozen=True, slots=True)
class _Fit:
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
class _Crop:
    """A crop found: the smaller picture inside the larger one."""

    box: tuple[float, float, float, float]
    """In the larger picture's working pixels."""
    ncc: float
    fit: _Fit
    crop_in: str


class Measurer:
    """Measures members against one keeper at a time.

    Decoded pictures (at most `size` pixels a side) are cached by path, the
    `_CACHE_SIZE` most recently used, so a keeper is decoded once for its group.
    `relate` may be called from several threads at once.
    """

    def __init__(self, size: int = 256) -> None:
        if size < 32:
            raise ValueError(f"size must be at least 32 pixels, got {size}")
        self.size = size
        self._cache: OrderedDict[tuple[str, int, str | None], Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def relate(self, keeper: Side, other: Side) -> Relation:
        """The relation of `other` to `keeper` (see the module docstring for the rules)."""
        if keeper.sha256 is not None and keeper.sha256 == other.sha256:
            return Relation("identical", "same bytes (equal sha256)", difference=0.0)
        timed = _by_time(keeper, other)
        if timed is not None:
            return timed
        try:
            k = self._picture(keeper)
        except (ImageError, OSError, ValueError) as e:
            return _unreadable("keeper", keeper, e)
        try:
            c = self._picture(other)
        except (ImageError, OSError, ValueError) as e:
            return _unreadable("copy", other, e)
        if min(k.size) < _MIN_PIXELS or min(c.size) < _MIN_PIXELS:
            return Relation("similar", "could not be compared: a picture is too small")
        return _measure(keeper, other, k, c, self.size)

    def _picture(self, side: Side) -> Image.Image:
        """The photo decoded in display orientation, its long side at most `size`."""
        key = (side.path, side.size, side.sha256)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        w, h = side.width, side.height
        if w > 0 and h > 0:
            min_side = max(1, math.ceil(self.size * min(w, h) / max(w, h)))
        else:
            min_side = self.size
        img = _fit_long_side(open_image(side.path, min_side=min_side), self.size)
        with self._lock:
            self._cache[key] = img
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return img


# ---- the decision ---------------------------------------------------------------------


def _measure(keeper: Side, other: Side, k: Image.Image, c: Image.Image, size: int) -> Relation:
    """Rules 3-6 of the module docstring, on the decoded pictures."""
    name, best, identity = _best_transform(k, c)
    turned: _Fit | None = None
    if name is not None and best - identity >= _TURN_MARGIN:
        turned = _aligned_fit(k, c.transpose(TRANSFORMS[name]), size)
        if turned.local:
            return _turned(keeper, other, name, turned)
    fit = _aligned_fit(k, c, size)
    if fit.clean:
        return _whole(keeper, other, fit)
    # A crop of nearly the whole frame looks like a local edit: with one, search
    # only for those.
    if fit.local:
        crop = _find_crop(k, c, size, _EDIT_CROP_MIN, 1)
    else:
        crop = _find_crop(k, c, size, _CROP_MIN, _CROP_CANDIDATES)
    if crop is not None and crop.fit.clean:
        return _cropped(keeper, other, k, c, crop)
    if fit.local:
        return _edited(keeper, other, k, fit)
    tried = [f"as it is, {_pct(fit.changed)} of the picture differs"]
    if turned is not None and name is not None:
        tried.append(f"{name}, {_pct(turned.changed)}")
    if crop is not None:
        tried.append(f"as the best crop, {_pct(crop.fit.changed)}")
    detail = "; ".join(tried)
    return Relation(
        "similar",
        f"no transform, crop or edit explains the difference ({detail};"
        f" mean difference {_pct(fit.difference)})",
        difference=fit.difference,
    )


def _by_time(keeper: Side, other: Side) -> Relation | None:
    """Rule 2: two dated photos taken at different times are two exposures."""
    a, b = keeper.taken_at, other.taken_at
    if a is None or b is None:
        return None
    if (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    apart = abs((b - a).total_seconds())
    if apart == 0:
        return None
    cameras = keeper.camera and other.camera and keeper.camera != other.camera
    if apart <= BURST_WINDOW_S and not cameras:
        return Relation(
            "burst", f"taken {_duration(apart)} apart (burst window {BURST_WINDOW_S:g} s)"
        )
    by = f" by another camera ({keeper.camera} / {other.camera})" if cameras else ""
    return Relation("similar shot", f"taken {_duration(apart)} apart{by}: another exposure")


def _turned(keeper: Side, other: Side, name: str, fit: _Fit) -> Relation:
    """Rule 3: the copy is the keeper turned or mirrored (maybe resized, maybe edited)."""
    label = "rotated" if name in _TURNS else "mirrored"
    parts = [_MADE_BY[name]]
    parts.append(_match(fit) if fit.clean else f"{_pct(fit.changed)} of the picture differs")
    parts += _colour_notes(fit)
    parts += _size_notes(keeper, other, turned=name in _QUARTER)
    return Relation(label, "; ".join(parts), transform=name, difference=fit.difference)


def _whole(keeper: Side, other: Side, fit: _Fit) -> Relation:
    """The pixels match after a global colour fit: a pixel edit, else resized / re-encoded."""
    size_notes = _size_notes(keeper, other, turned=False)
    also = "".join(f"; also {note}" for note in size_notes)
    if fit.copy_chroma <= _GREY_CHROMA and fit.keeper_chroma >= _COLOUR_CHROMA:
        return Relation(
            "greyscale",
            f"no colour left (chroma {_pct(fit.copy_chroma)} vs {_pct(fit.keeper_chroma)} in"
            f" the keeper); its grey matches the keeper's brightness{also}",
            difference=fit.difference,
        )
    colours = _colour_notes(fit)
    if colours:
        return Relation(
            "colour edit",
            f"{', '.join(colours)}; otherwise pixels match{also}",
            difference=fit.difference,
        )
    if size_notes:
        return Relation("resized", f"{size_notes[0]}; {_match(fit)}", difference=fit.difference)
    return Relation(
        "re-encoded",
        f"{_file_change(keeper, other)}; same size, {_match(fit)}",
        difference=fit.difference,
    )


def _edited(keeper: Side, other: Side, k: Image.Image, fit: _Fit) -> Relation:
    """Rule 4: most of the picture matches, a region does not."""
    parts = [f"{_pct(fit.changed)} of the picture differs"]
    if fit.region is not None:
        w, h = _display_size(keeper, k)
        x0, y0, x1, y1 = fit.region
        box = (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h))
        parts[0] += f", mostly in ({box[0]}, {box[1]})–({box[2]}, {box[3]}) of {w}×{h}"
    parts.append("the rest matches")
    parts += _colour_notes(fit)
    parts += [f"also {note}" for note in _size_notes(keeper, other, turned=False)]
    return Relation("edited", "; ".join(parts), difference=fit.difference)


def _cropped(keeper: Side, other: Side, k: Image.Image, c: Image.Image, crop: _Crop) -> Relation:
    """Rule 5: the box, scaled from the working pixels to the larger one's display size."""
    big_side, big = (keeper, k) if crop.crop_in == "keeper" else (other, c)
    w, h = _display_size(big_side, big)
    sx, sy = w / big.width, h / big.height
    x0, y0, x1, y1 = crop.box
    box = (
        max(0, round(x0 * sx)),
        max(0, round(y0 * sy)),
        min(w, round(x1 * sx)),
        min(h, round(y1 * sy)),
    )
    where = f"({box[0]}, {box[1]})–({box[2]}, {box[3]}) of {w}×{h}"
    if crop.crop_in == "keeper":
        text = f"crop of the keeper at {where}"
    else:
        text = f"the keeper is a crop of this copy at {where}"
    small_side = other if crop.crop_in == "keeper" else keeper
    cw, ch = box[2] - box[0], box[3] - box[1]
    sw, sh = _display_size(small_side)
    if sw > 0 and abs(sw - cw) > max(2, 0.02 * cw):
        text += f", scaled {cw}×{ch} → {sw}×{sh}"
    text += f"; pixels match (difference {_pct(crop.fit.difference)})"
    return Relation(
        "cropped",
        text,
        crop_box=box,
        crop_in=crop.crop_in,
        difference=crop.fit.difference,
    )


def _unreadable(role: str, side: Side, error: Exception) -> Relation:
    reason = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    name = os.path.basename(side.path) or side.path
    return Relation("similar", f"could not be compared: the {role} {name}: {reason}")


# ---- evidence text ----------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def _signed_pct(x: float) -> str:
    return f"{'+' if x >= 0 else '-'}{abs(x) * 100:.0f} %"


def _match(fit: _Fit) -> str:
    return f"pixels match (difference {_pct(fit.difference)})"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if seconds < 86400:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h" + (f" {rest} min" if rest else "")
    return f"{seconds / 86400:.1f} days"


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _file_change(keeper: Side, other: Side) -> str:
    before = keeper.format or "unknown format"
    after = other.format or "unknown format"
    return f"{before} {_bytes(keeper.size)} → {after} {_bytes(other.size)}"


def _display_size(side: Side, img: Image.Image | None = None) -> tuple[int, int]:
    if side.width > 0 and side.height > 0:
        return side.width, side.height
    return img.size if img is not None else (0, 0)


def _size_notes(keeper: Side, other: Side, *, turned: bool) -> list[str]:
    """ "resized ..." when the display sizes differ (compared upright when `turned`)."""
    kw, kh = keeper.width, keeper.height
    ow, oh = (other.height, other.width) if turned else (other.width, other.height)
    if min(kw, kh, ow, oh) <= 0 or (kw, kh) == (ow, oh):
        return []
    shown = f"{keeper.width}×{keeper.height} → {other.width}×{other.height}"
    ka, oa = kw / kh, ow / oh
    if abs(ka - oa) <= _ASPECT_TOLERANCE * ka:
        return [shown]
    how = "squashed" if oa < ka else "stretched"
    return [f"{how}: {shown} (aspect changed)"]


def _colour_notes(fit: _Fit) -> list[str]:
    """The global colour changes measured past their thresholds, the largest first;
    none when the colour fit moves the pixels less than `_SHIFT_MIN`."""
    if fit.shift < _SHIFT_MIN:
        return []
    notes: list[tuple[float, str]] = []
    if abs(fit.brightness - 1) >= _BRIGHTNESS_MIN:
        notes.append((abs(fit.brightness - 1), f"brightness {_signed_pct(fit.brightness - 1)}"))
    if abs(fit.contrast - 1) >= _CONTRAST_MIN:
        notes.append((abs(fit.contrast - 1), f"contrast ×{fit.contrast:.2f}"))
    shifted = [
        f"{name} {_signed_pct(gain)}"
        for name, gain in zip(("red", "green", "blue"), fit.cast, strict=True)
        if abs(gain) >= _CHANNEL_MIN
    ]
    if shifted:
        largest = max(abs(v) for v in fit.cast)
        notes.append((largest, f"colour balance shifted ({', '.join(shifted)})"))
    if fit.keeper_chroma >= _COLOUR_CHROMA and abs(fit.saturation - 1) >= _SATURATION_MIN:
        notes.append((abs(fit.saturation - 1), f"saturation {_signed_pct(fit.saturation - 1)}"))
    if not notes and fit.shift >= 2 * _SHIFT_MIN:
        notes.append((fit.shift, f"colours changed (pixels moved {_pct(fit.shift)} on average)"))
    return [text for _, text in sorted(notes, key=lambda n: -n[0])]


# ---- pixels -------------------------------------------------------------------------------


def _fit_long_side(img: Image.Image, side: int) -> Image.Image:
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


def _best_transform(k: Image.Image, c: Image.Image) -> tuple[str | None, float, float]:
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


def _aligned_fit(k: Image.Image, c: Image.Image, size: int) -> _Fit:
    """Compare `c` resized onto `k`'s frame, at the smaller of the two resolutions."""
    shape = _scaled(k.size, min(size, max(k.size), max(c.size)))
    return _compare(_resized(k, shape), _resized(c, shape))


def _compare(k_img: Image.Image, c_img: Image.Image) -> _Fit:
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
    return _Fit(
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


def _find_crop(
    k: Image.Image, c: Image.Image, size: int, smallest: float, candidates: int
) -> _Crop | None:
    """The best of "the copy is a crop of the keeper" and "the keeper is a crop of the
    copy": a few candidates of each are searched coarsely, then refined and verified;
    of those whose pixels match, the one that matches closest wins."""
    kl, cl = k.convert("L").convert("F"), c.convert("L").convert("F")
    best: _Crop | None = None
    for big, small, bl, sl, crop_in in ((k, c, kl, cl, "keeper"), (c, k, cl, kl, "copy")):
        for ncc, box in _coarse_crops(bl, sl, smallest, candidates):
            crop = _verify(big, small, bl, sl, box, ncc, crop_in, size)
            if crop is not None and (best is None or _better(crop, best)):
                best = crop
    return best


def _better(a: _Crop, b: _Crop) -> bool:
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
) -> _Crop | None:
    """Refine the box (Gauss-Newton on luma, at the coarse size then the working size)
    and compare the pixels."""
    refined = _refine(big_l, small_l, box, _GN_STEPS)
    x0, y0, x1, y1 = refined
    if x1 - x0 < _MIN_PIXELS or y1 - y0 < _MIN_PIXELS:
        return None
    shape = _scaled(small.size, min(size, max(small.size), max(x1 - x0, y1 - y0)))
    region = big.resize(shape, Image.Resampling.BILINEAR, box=refined)
    fit = _compare(region, _resized(small, shape))
    return _Crop(refined, ncc, fit, crop_in)


def _refine(
    big: Image.Image, small: Image.Image, box: tuple[float, ...], steps: int
) -> tuple[float, float, float, float]:
    """Gauss-Newton steps on the box (x0, y0, x1, y1) of `small` (luma, "F") in `big`:
    minimise |s - a·w(box)|² over the box, the gain a fitted each step."""
    bw, bh = big.size
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(bw), box[2]), min(float(bh), box[3])
    if x1 - x0 < _MIN_PIXELS or y1 - y0 < _MIN_PIXELS:
        return x0, y0, x1, y1
    # Sampled at most `_CROP_SIDE` pixels a side: enough for a fraction of a pixel.
    long = min(max(small.size), max(x1 - x0, y1 - y0), _CROP_SIDE)
    shape = _scaled(small.size, max(long, _MIN_PIXELS))
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
        if x1 - x0 < _MIN_PIXELS or y1 - y0 < _MIN_PIXELS:
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
        if tw < _MIN_PIXELS or th < _MIN_PIXELS or tw > w or th > h:
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
