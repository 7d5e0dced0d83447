"""Measured relations of duplicate-group members to their keeper.

`Measurer.relate(keeper, other)` says how a group member relates to its keeper,
one of `LABELS`, with a line of evidence naming what was measured. Nothing is
guessed from metadata but time: the pixels of both photos are decoded small (long
side `Measurer.size`, 256 by default; `images.open_image` with EXIF orientation
applied and reduced-scale JPEG decoding) and compared. Decoded pictures are cached
by path (LRU, the 64 most recent), so a keeper is decoded once for its group;
`relate` is thread-safe and never raises for a bad file (the answer is "similar",
"could not be compared: ...").

The pixel measurements live in core/pixel_match.py (with the thresholds named
below that they use); this module decides and words the evidence.

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
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from PIL import Image

from dino_desktop.core.images import ImageError, open_image
from dino_desktop.core.pixel_match import (
    MIN_PIXELS,
    TRANSFORMS,
    Crop,
    Fit,
    aligned_fit,
    best_transform,
    find_crop,
    fit_long_side,
)

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

_TURN_MARGIN: Final = 0.15
"""A transform must beat the identity's luma correlation by this much."""
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

_CROP_MIN: Final = 0.25
"""The smallest crop searched for, as a fraction of the largest that fits (per side)."""
_CROP_CANDIDATES: Final = 2
"""Crop candidates of each direction refined and verified."""
_EDIT_CROP_MIN: Final = 0.8
"""With a local edit found, the smallest crop searched for (a crop that leaves at
most half the cells changed covers most of the frame)."""
_CACHE_SIZE: Final = 64
"""Decoded pictures kept (the most recently used)."""


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
        if min(k.size) < MIN_PIXELS or min(c.size) < MIN_PIXELS:
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
        img = fit_long_side(open_image(side.path, min_side=min_side), self.size)
        with self._lock:
            self._cache[key] = img
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return img


# ---- the decision ---------------------------------------------------------------------


def _measure(keeper: Side, other: Side, k: Image.Image, c: Image.Image, size: int) -> Relation:
    """Rules 3-6 of the module docstring, on the decoded pictures."""
    name, best, identity = best_transform(k, c)
    turned: Fit | None = None
    if name is not None and best - identity >= _TURN_MARGIN:
        turned = aligned_fit(k, c.transpose(TRANSFORMS[name]), size)
        if turned.local:
            return _turned(keeper, other, name, turned)
    fit = aligned_fit(k, c, size)
    if fit.clean:
        return _whole(keeper, other, fit)
    # A crop of nearly the whole frame looks like a local edit: with one, search
    # only for those.
    if fit.local:
        crop = find_crop(k, c, size, _EDIT_CROP_MIN, 1)
    else:
        crop = find_crop(k, c, size, _CROP_MIN, _CROP_CANDIDATES)
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


def _turned(keeper: Side, other: Side, name: str, fit: Fit) -> Relation:
    """Rule 3: the copy is the keeper turned or mirrored (maybe resized, maybe edited)."""
    label = "rotated" if name in _TURNS else "mirrored"
    parts = [_MADE_BY[name]]
    parts.append(_match(fit) if fit.clean else f"{_pct(fit.changed)} of the picture differs")
    parts += _colour_notes(fit)
    parts += _size_notes(keeper, other, turned=name in _QUARTER)
    return Relation(label, "; ".join(parts), transform=name, difference=fit.difference)


def _whole(keeper: Side, other: Side, fit: Fit) -> Relation:
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


def _edited(keeper: Side, other: Side, k: Image.Image, fit: Fit) -> Relation:
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


def _cropped(keeper: Side, other: Side, k: Image.Image, c: Image.Image, crop: Crop) -> Relation:
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


def _match(fit: Fit) -> str:
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


def _colour_notes(fit: Fit) -> list[str]:
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
