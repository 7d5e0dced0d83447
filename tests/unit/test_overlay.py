"""Tests for PCA overlays: patch grids, features, the foreground method, joint maps, rendering.

The maps are tested on hand-made features, whose right answer is known; the
engine on the tiny random ViT (fast), and once on the real ViT-S/14 architecture
with random weights in Meta's format. Nothing here claims semantic quality.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import imagegen
import numpy as np
import pytest
import weightsgen
from PIL import Image
from weightsgen import TINY

from dino_desktop.core import overlay as ov
from dino_desktop.core.images import ImageError
from dino_desktop.core.overlay import (
    MODES,
    TARGET,
    FeatureMap,
    OverlayEngine,
    PatchFeatures,
    first_component,
    foreground_mask,
    patch_grid,
    pca_maps,
    render,
    strip,
)

weightsgen.register_tiny_model()

SIDE = TARGET // 14  # 37 patches


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return weightsgen.write_meta_checkpoint(tmp_path_factory.mktemp("w") / "tiny.pth", TINY)


@pytest.fixture
def engine(tiny_weights: Path) -> OverlayEngine:
    return OverlayEngine(TINY, tiny_weights, device="cpu")


def count_forwards(engine: OverlayEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = engine._forward

    def counting(x: Any) -> Any:
        calls.append(1)
        return real(x)

    monkeypatch.setattr(engine, "_forward", counting)
    return calls


def blob_features(
    rows: int = 12,
    cols: int = 16,
    dim: int = 32,
    *,
    box: tuple[int, int, int, int] = (4, 5, 8, 11),  # top, left, bottom, right (exclusive)
    seed: int = 0,
    noise: float = 0.05,
    path: str = "blob.jpg",
) -> tuple[PatchFeatures, np.ndarray]:
    """A central blob of one feature vector plus noise over a background of another."""
    rng = np.random.default_rng(seed)
    fg_vec, bg_vec = rng.standard_normal((2, dim))
    blob = np.zeros((rows, cols), dtype=bool)
    top, left, bottom, right = box
    blob[top:bottom, left:right] = True
    tokens = np.where(blob[..., None], fg_vec, bg_vec)
    # Structure inside the blob, so the second PCA has something to show.
    tokens = tokens + blob[..., None] * np.linspace(-1, 1, cols)[
        None, :, None
    ] * rng.standard_normal(dim)
    tokens = tokens + noise * rng.standard_normal((rows, cols, dim))
    return PatchFeatures(path, tokens.astype(np.float32), (cols * 10, rows * 10)), blob


def with_tokens(f: PatchFeatures, tokens: np.ndarray, path: str | None = None) -> PatchFeatures:
    return PatchFeatures(path or f.path, tokens.astype(np.float32), f.display_size)


def aspect_error(cols: int, rows: int, width: int, height: int) -> float:
    """How far, in patches, the grid is from the photo's aspect ratio (along its short side)."""
    if width >= height:
        return abs(rows - cols * height / width)
    return abs(cols - rows * width / height)


# --------------------------------------------------------------------------- patch_grid


def test_patch_grid_square_and_common_photos() -> None:
    assert patch_grid(518, 518) == (SIDE, SIDE)
    assert patch_grid(4000, 4000) == (SIDE, SIDE)
    assert patch_grid(1000, 750) == (43, 32)
    assert patch_grid(750, 1000) == (32, 43)
    assert patch_grid(6000, 4000) == (45, 30)  # 3:2 exactly
    assert patch_grid(12, 9) == (43, 32)  # tiny photos are upsampled to the same grid


@pytest.mark.parametrize(
    "size",
    [
        (4032, 3024),
        (3024, 4032),
        (1920, 1080),
        (1080, 1920),
        (6000, 4000),
        (500, 499),
        (1234, 567),
        (800, 2000),
        (6000, 1500),  # 4:1 panorama
        (1000, 7900),
    ],
)
def test_patch_grid_keeps_aspect_and_area(size: tuple[int, int]) -> None:
    width, height = size
    cols, rows = patch_grid(width, height)
    assert cols >= 1 and rows >= 1
    assert aspect_error(cols, rows, width, height) <= 0.5 + 1e-9
    assert abs(cols * rows - SIDE * SIDE) <= 0.1 * SIDE * SIDE
    assert (cols >= rows) == (width >= height)
    assert patch_grid(height, width) == (rows, cols)  # portrait is landscape transposed
    # The input size is a multiple of the patch on both sides by construction.
    assert (cols * 14) % 14 == 0 and (rows * 14) % 14 == 0


def test_patch_grid_extreme_panoramas_are_capped() -> None:
    cols, rows = patch_grid(20_000, 1000)  # 20:1
    assert cols == 4 * SIDE
    assert aspect_error(cols, rows, 20_000, 1000) <= 0.5
    assert patch_grid(100_000, 10) == (4 * SIDE, 1)
    assert patch_grid(10, 100_000) == (1, 4 * SIDE)
    assert patch_grid(1, 1) == (SIDE, SIDE)


def test_patch_grid_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        patch_grid(0, 100)
    with pytest.raises(ValueError):
        patch_grid(100, -1)
    with pytest.raises(ValueError):
        patch_grid(100, 100, target=10, patch=14)


# --------------------------------------------------------------------------- engine: sizes


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (300, 300)])
def test_features_and_overlay_follow_the_photo_shape(
    engine: OverlayEngine, tmp_path: Path, size: tuple[int, int]
) -> None:
    path = imagegen.save_jpeg(tmp_path / "p.jpg", size=size)
    feats = engine.features(str(path))
    cols, rows = patch_grid(*size)
    assert feats.tokens.shape == (rows, cols, 96)
    assert feats.tokens.dtype == np.float32
    assert feats.display_size == size
    assert feats.grid == (cols, rows)
    assert not feats.tokens.flags.writeable
    (image,) = engine.overlays([str(path)])
    assert image.size == size
    assert image.mode == "RGB"  # rgb mode: nothing transparent


def test_exif_rotated_photo_uses_the_display_size(engine: OverlayEngine, tmp_path: Path) -> None:
    # Stored 640x480 with orientation 6: displayed as a 480x640 portrait.
    path = imagegen.save_jpeg(tmp_path / "o6.jpg", size=(640, 480), orientation=6)
    feats = engine.features(str(path))
    assert feats.display_size == (480, 640)
    assert feats.tokens.shape[:2] == (43, 32)  # rows, cols: portrait
    for mode in MODES:
        (image,) = engine.overlays([str(path)], mode)
        assert image.size == (480, 640)


def test_exif_orientation_is_applied_before_the_model(
    engine: OverlayEngine, tmp_path: Path
) -> None:
    upright, oriented = imagegen.oriented_pair(tmp_path, 6, seed=3, size=(320, 240))
    a = engine.features(str(upright)).tokens
    b = engine.features(str(oriented)).tokens
    other = engine.features(str(imagegen.save_jpeg(tmp_path / "x.jpg", seed=9, size=(320, 240))))
    assert a.shape == b.shape
    same = float(np.abs(a - b).mean())
    different = float(np.abs(a - other.tokens).mean())
    assert same < 0.25 * different


def test_real_vit_s14_architecture_gives_384_d_tokens_on_the_grid(tmp_path: Path) -> None:
    weights = weightsgen.write_meta_checkpoint(tmp_path / "vits.pth", "vit_small_patch14_dinov2")
    path = imagegen.save_jpeg(tmp_path / "p.jpg", size=(1000, 750))
    engine = OverlayEngine("vit_small_patch14_dinov2", weights, device="cpu", cache_size=2)
    feats = engine.features(str(path))
    cols, rows = patch_grid(1000, 750)
    assert feats.tokens.shape == (rows, cols, 384)
    assert np.isfinite(feats.tokens).all()


# --------------------------------------------------------------------------- engine: cache


def test_features_are_cached(
    engine: OverlayEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(imagegen.save_jpeg(tmp_path / "p.jpg"))
    calls = count_forwards(engine, monkeypatch)
    first = engine.features(path)
    second = engine.features(path)
    assert len(calls) == 1
    assert second is first
    engine.overlays([path], "foreground")  # the convenience path uses the cache too
    assert len(calls) == 1
    # Rewritten in place: size and mtime change, so it is computed again.
    imagegen.save_jpeg(path, seed=5)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    engine.features(path)
    assert len(calls) == 2
    engine.clear_cache()
    engine.features(path)
    assert len(calls) == 3


def test_cache_is_bounded(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = OverlayEngine(TINY, tiny_weights, device="cpu", cache_size=1)
    a = str(imagegen.save_jpeg(tmp_path / "a.jpg", seed=1))
    b = str(imagegen.save_jpeg(tmp_path / "b.jpg", seed=2))
    calls = count_forwards(engine, monkeypatch)
    engine.features(a)
    engine.features(b)
    engine.features(b)
    engine.features(a)  # evicted by b
    assert len(calls) == 3


def test_model_is_built_lazily_once_across_threads(
    engine: OverlayEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[str] = []
    real = ov.build_model

    def counting(*args: Any, **kwargs: Any) -> Any:
        builds.append(args[0])
        assert kwargs["dynamic_img_size"] is True and kwargs["img_size"] == TARGET
        return real(*args, **kwargs)

    monkeypatch.setattr(ov, "build_model", counting)
    assert not engine.loaded
    paths = [str(imagegen.save_jpeg(tmp_path / f"{i}.jpg", seed=i)) for i in range(4)]
    errors: list[BaseException] = []

    def work(p: str) -> None:
        try:
            engine.features(p)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert builds == [TINY]
    assert engine.loaded


def test_unreadable_files_raise_image_error(engine: OverlayEngine, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 10)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path in (garbage, empty, tmp_path / "missing.jpg", tmp_path):
        with pytest.raises(ImageError):
            engine.features(str(path))
    with pytest.raises(ImageError):
        engine.overlays([str(garbage)])
    assert not engine.loaded  # failing files never needed the model


def test_engine_checks_its_arguments(tiny_weights: Path) -> None:
    with pytest.raises(ValueError, match="unknown model"):
        OverlayEngine("no_such_model", tiny_weights)
    with pytest.raises(ValueError, match="device"):
        OverlayEngine(TINY, tiny_weights, device="tpu")
    with pytest.raises(ValueError):
        OverlayEngine(TINY, tiny_weights, cache_size=-1)
    engine = OverlayEngine(TINY, tiny_weights, device="cuda:0")  # checked on first use only
    assert engine.model_name == TINY and not engine.loaded


def test_overlays_check_arguments_before_any_work(engine: OverlayEngine, tmp_path: Path) -> None:
    path = str(imagegen.save_jpeg(tmp_path / "p.jpg"))
    for kwargs in (
        {"mode": "depth"},
        {"opacity": 1.5},
        {"background": "blur"},
        {"threshold": 2.0},
        {"max_side": 0},
    ):
        with pytest.raises(ValueError):
            engine.overlays([path], **kwargs)
    assert not engine.loaded
    assert engine.overlays([]) == []


def test_overlays_max_side_renders_smaller(engine: OverlayEngine, tmp_path: Path) -> None:
    path = str(imagegen.save_jpeg(tmp_path / "p.jpg", size=(640, 480), orientation=6))
    (small,) = engine.overlays([path], opacity=0.5, max_side=200)
    assert small.size == (150, 200)
    (same,) = engine.overlays([path], max_side=5000)
    assert same.size == (480, 640)


def test_engine_is_deterministic(tiny_weights: Path, tmp_path: Path) -> None:
    path = str(imagegen.save_jpeg(tmp_path / "p.jpg", seed=4))
    results = []
    for _ in range(2):
        engine = OverlayEngine(TINY, tiny_weights, device="cpu")
        feats = engine.features(path)
        images = [engine.overlays([path], mode, opacity=0.6)[0] for mode in MODES]
        results.append((feats.tokens.tobytes(), [im.tobytes() for im in images]))
    assert results[0] == results[1]


def test_module_imports_without_torch_or_qt() -> None:
    code = (
        "import sys, dino_desktop.core.overlay as o; "
        "import numpy as np; "
        "o.pca_maps([o.PatchFeatures('x', np.ones((2, 3, 4), 'float32'), (3, 2))]); "
        "print('torch' in sys.modules, any(m.startswith('PySide6') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- foreground


@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize(
    "box",
    [(4, 5, 8, 11), (1, 1, 11, 15)],  # a small blob, and one covering most of the frame
)
def test_foreground_finds_the_blob_whatever_the_sign(
    negate: bool, box: tuple[int, int, int, int]
) -> None:
    feats, blob = blob_features(box=box)
    if negate:
        feats = with_tokens(feats, -feats.tokens)
    (fmap,) = pca_maps([feats], "foreground")
    assert fmap.foreground is not None
    np.testing.assert_array_equal(fmap.foreground, blob)
    assert fmap.threshold is not None and 0.0 <= fmap.threshold <= 1.0
    assert (fmap.rgba[~blob] == 0).all()
    assert (fmap.rgba[blob, 3] == 255).all()
    assert len(np.unique(fmap.rgba[blob, :3], axis=0)) > 1  # the second PCA colours the parts


def test_foreground_mask_border_rule_threshold_and_invert() -> None:
    rows, cols = 10, 12
    comp = np.full((rows, cols), 0.1)
    comp[3:7, 4:9] = 0.5  # a ring...
    comp[4:6, 5:8] = 0.9  # ...around a core
    centre = comp > 0.3

    mask, t = foreground_mask(comp)
    np.testing.assert_array_equal(mask, centre)
    assert 0.1 < t < 0.5
    # The border rule, not the sign, decides: the centre is low here.
    mask, _ = foreground_mask(1.0 - comp)
    np.testing.assert_array_equal(mask, centre)

    mask, t = foreground_mask(comp, threshold=0.7)
    assert t == 0.7
    np.testing.assert_array_equal(mask, comp > 0.7)
    mask, t = foreground_mask(comp, threshold=0.7, invert=True)
    np.testing.assert_array_equal(mask, comp <= 0.7)
    with pytest.raises(ValueError):
        foreground_mask(comp, threshold=-0.1)


def test_foreground_threshold_override_and_invert_in_maps() -> None:
    feats, blob = blob_features()
    (auto,) = pca_maps([feats], "foreground")
    assert auto.threshold is not None
    (inverted,) = pca_maps([feats], "foreground", invert=True)
    assert inverted.foreground is not None
    np.testing.assert_array_equal(inverted.foreground, ~blob)
    assert (inverted.rgba[blob, 3] == 0).all() and (inverted.rgba[~blob, 3] == 255).all()
    # Otsu's own threshold, given explicitly, gives the same map.
    (given,) = pca_maps([feats], "foreground", threshold=auto.threshold)
    assert given.threshold == auto.threshold
    np.testing.assert_array_equal(given.rgba, auto.rgba)
    # A threshold inside the blob's values keeps only its high part.
    comp = first_component([feats])[0]
    inside = float(np.median(comp[blob]))
    (part,) = pca_maps([feats], "foreground", threshold=inside)
    assert part.threshold == inside and part.foreground is not None
    np.testing.assert_array_equal(part.foreground, comp > inside)
    assert 0 < part.foreground.sum() < blob.sum()


def test_first_component_is_scaled_and_sign_stable() -> None:
    feats, blob = blob_features()
    (comp,) = first_component([feats])
    assert comp.shape == blob.shape
    assert comp.min() >= 0.0 and comp.max() <= 1.0
    assert comp.min() == 0.0 and comp.max() == 1.0  # percentiles clip the tails
    (negated,) = first_component([with_tokens(feats, -feats.tokens)])
    np.testing.assert_array_equal(comp, negated)
    # The blob (the smaller side: the positive skew) gets the high values.
    assert comp[blob].mean() > comp[~blob].mean()


# --------------------------------------------------------------------------- joint maps


@pytest.mark.parametrize("mode", MODES)
def test_two_copies_in_a_joint_call_equal_one(mode: str) -> None:
    feats, _ = blob_features(seed=3)
    (alone,) = pca_maps([feats], mode)
    first, second = pca_maps([feats, with_tokens(feats, feats.tokens, "copy.jpg")], mode)
    np.testing.assert_array_equal(first.rgba, second.rgba)
    np.testing.assert_array_equal(first.rgba, alone.rgba)
    assert first.threshold == second.threshold
    if mode == "foreground":
        assert first.threshold == pytest.approx(alone.threshold, abs=1e-9)


def test_joint_pca_gives_shared_features_the_same_colour() -> None:
    a, blob_a = blob_features(seed=1, noise=0.0)
    # Photo b: a's background vector, and a's blob pasted at another place.
    bg = a.tokens[0, 0]
    tokens_b = np.broadcast_to(bg, (9, 20, a.tokens.shape[-1])).copy()
    tokens_b[2:6, 10:16] = a.tokens[4:8, 5:11]
    blob_b = np.zeros((9, 20), dtype=bool)
    blob_b[2:6, 10:16] = True
    b = PatchFeatures("b.jpg", tokens_b, (200, 90))
    for mode in MODES:
        ma, mb = pca_maps([a, b], mode)
        assert mb.rgba.shape == (9, 20, 4)
        same_place = np.abs(ma.rgba[4:8, 5:11].astype(int) - mb.rgba[2:6, 10:16])
        assert same_place.max() <= 1  # the same vector, the same colour (up to rounding)
        assert np.abs(ma.rgba[0, 0].astype(int) - mb.rgba[0, 0]).max() <= 1
    fa, fb = pca_maps([a, b], "foreground")
    assert fa.threshold == fb.threshold  # one threshold for the joint call
    assert fa.foreground is not None and fb.foreground is not None
    np.testing.assert_array_equal(fa.foreground, blob_a)
    np.testing.assert_array_equal(fb.foreground, blob_b)


def test_identical_photos_get_identical_colours() -> None:
    feats, _ = blob_features(seed=5)
    for mode in MODES:
        maps = pca_maps([feats, with_tokens(feats, feats.tokens.copy(), "other.jpg")], mode)
        np.testing.assert_array_equal(maps[0].rgba, maps[1].rgba)


def test_sign_flips_of_the_features_keep_the_colours() -> None:
    feats, _ = blob_features(seed=2, noise=0.3)
    rng = np.random.default_rng(0)
    flips = rng.choice([-1.0, 1.0], size=feats.tokens.shape[-1]).astype(np.float32)
    for mode in MODES:
        (base,) = pca_maps([feats], mode)
        (negated,) = pca_maps([with_tokens(feats, -feats.tokens)], mode)
        np.testing.assert_array_equal(base.rgba, negated.rgba)  # exactly: same covariance
        (flipped,) = pca_maps([with_tokens(feats, feats.tokens * flips)], mode)
        diff = np.abs(base.rgba.astype(int) - flipped.rgba.astype(int))
        assert diff.max() <= 1  # rounding at most


def test_pca_maps_are_deterministic_and_validate() -> None:
    feats, _ = blob_features(seed=8, noise=0.5)
    for mode in MODES:
        a = pca_maps([feats], mode)[0]
        b = pca_maps([feats], mode)[0]
        assert a.rgba.tobytes() == b.rgba.tobytes()
        assert a.rgba.dtype == np.uint8 and a.rgba.shape == (12, 16, 4)
    (rgb,) = pca_maps([feats], "rgb")
    assert rgb.foreground is None and rgb.threshold is None
    assert (rgb.rgba[..., 3] == 255).all()
    assert pca_maps([], "rgb") == []
    with pytest.raises(ValueError):
        pca_maps([feats], "depth")
    other = PatchFeatures("o.jpg", np.zeros((2, 2, 8), np.float32), (2, 2))
    with pytest.raises(ValueError, match="dims"):
        pca_maps([feats, other])


def test_pca_survives_degenerate_features() -> None:
    constant = PatchFeatures("c.jpg", np.ones((5, 7, 16), np.float32), (70, 50))
    (rgb,) = pca_maps([constant], "rgb")
    assert (rgb.rgba[..., :3] == 128).all()
    (fg,) = pca_maps([constant], "foreground")
    assert fg.rgba.shape == (5, 7, 4)
    single = PatchFeatures("s.jpg", np.random.default_rng(0).random((1, 1, 3), np.float32), (5, 5))
    for mode in MODES:
        assert pca_maps([single], mode)[0].rgba.shape == (1, 1, 4)


def test_top_eigenvectors_match_lapack() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 40)) @ rng.standard_normal((40, 200)) * np.geomspace(10, 0.1, 200)
    x -= x.mean(axis=0)
    cov = x.T @ x / len(x)
    _, full = np.linalg.eigh(cov)
    top = ov._top_eigenvectors(cov, 3)
    for i in range(3):
        assert abs(abs(float(top[:, i] @ full[:, -1 - i])) - 1.0) < 1e-8


# --------------------------------------------------------------------------- render


def fg_map(
    rows: int = 8, cols: int = 10, colour: tuple[int, int, int] = (250, 20, 30)
) -> FeatureMap:
    mask = np.zeros((rows, cols), dtype=bool)
    mask[2:6, 3:7] = True
    rgba = np.zeros((rows, cols, 4), dtype=np.uint8)
    rgba[mask] = (*colour, 255)
    return FeatureMap(rgba, mask, 0.5)


def rgb_map(rows: int = 8, cols: int = 10) -> FeatureMap:
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (rows, cols, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    return FeatureMap(rgba, None, None)


def test_render_opacity_one_shows_the_map_alone() -> None:
    fmap = rgb_map()
    photo_a = imagegen.photo(200, 160, seed=1)
    photo_b = imagegen.photo(200, 160, seed=2)
    out_a = render(photo_a, fmap)
    out_b = render(photo_b, fmap)
    assert out_a.mode == "RGB" and out_a.size == (200, 160)
    assert out_a.tobytes() == out_b.tobytes()
    # Smooth: a plain bilinear upsample of the map.
    expected = Image.fromarray(fmap.rgba[..., :3]).resize((200, 160), Image.Resampling.BILINEAR)
    assert out_a.tobytes() == expected.tobytes()


def test_render_half_opacity_blends_over_the_photo() -> None:
    fmap = rgb_map()
    photo = imagegen.photo(200, 160, seed=1)
    alone = np.asarray(render(photo, fmap), dtype=np.int16)
    half = np.asarray(render(photo, fmap, opacity=0.5), dtype=np.int16)
    expected = (alone + np.asarray(photo, dtype=np.int16)) / 2
    assert np.abs(half - expected).max() <= 1
    zero = render(photo, fmap, opacity=0.0)
    assert zero.tobytes() == photo.tobytes()


def test_render_transparent_and_dim_backgrounds() -> None:
    fmap = fg_map()
    photo = imagegen.photo(100, 80, seed=3)
    clear = render(photo, fmap)
    assert clear.mode == "RGBA" and clear.size == (100, 80)
    arr = np.asarray(clear)
    assert arr[0, 0, 3] == 0 and arr[-1, -1, 3] == 0  # background corners
    assert arr[40, 50, 3] == 255 and tuple(arr[40, 50, :3]) == (250, 20, 30)
    # No dark fringe: where the subject is at least half opaque, it keeps its colour.
    edge = arr[..., 3] >= 128
    assert np.abs(arr[edge][:, :3].astype(int) - (250, 20, 30)).max() <= 2

    dim = render(photo, fmap, background="dim")
    assert dim.mode == "RGB" and dim.size == (100, 80)
    d = np.asarray(dim, dtype=np.int16)
    p = np.asarray(photo, dtype=np.int16)
    assert np.abs(d[0, 0] - p[0, 0] * ov.DIM_FACTOR).max() <= 1
    assert tuple(d[40, 50]) == (250, 20, 30)

    half = np.asarray(render(photo, fmap, opacity=0.5, background="dim"), dtype=np.int16)
    assert np.abs(half[40, 50] - (p[40, 50] + (250, 20, 30)) / 2).max() <= 1
    assert np.abs(half[0, 0] - p[0, 0] * ov.DIM_FACTOR).max() <= 1
    half_clear = np.asarray(render(photo, fmap, opacity=0.5))
    assert half_clear[0, 0, 3] == 0 and half_clear[40, 50, 3] == 255


def test_render_large_output_stays_close_to_plain_bilinear() -> None:
    fmap = rgb_map(43, 32)
    photo = Image.new("RGB", (1800, 2400))
    assert photo.width * photo.height > ov.HALF_RES_PIXELS
    out = np.asarray(render(photo, fmap), dtype=np.int16)
    plain = np.asarray(
        Image.fromarray(fmap.rgba[..., :3]).resize(photo.size, Image.Resampling.BILINEAR),
        dtype=np.int16,
    )
    # Neighbouring random patches differ by up to 255 over ~56 pixels here: a
    # one-pixel offset is ~6 levels at worst, and far less on average.
    assert np.abs(out - plain).mean() < 1.0
    assert np.abs(out - plain).max() <= 16


def test_render_checks_its_arguments() -> None:
    photo = Image.new("RGB", (10, 10))
    with pytest.raises(ValueError):
        render(photo, rgb_map(), opacity=-0.1)
    with pytest.raises(ValueError):
        render(photo, rgb_map(), background="blur")
    rgba_photo = Image.new("RGBA", (20, 16), (10, 20, 30, 255))
    assert render(rgba_photo, rgb_map(), opacity=0.5).mode == "RGB"


# --------------------------------------------------------------------------- strip


def test_strip_sizes_and_modes() -> None:
    a = Image.new("RGB", (100, 50), "red")
    b = Image.new("RGB", (200, 100), "blue")
    out = strip([a, b])
    assert out.size == (100 + 8 + 100, 50) and out.mode == "RGB"
    out = strip([a, b], height=100, gap=0)
    assert out.size == (400, 100)
    assert out.getpixel((50, 50)) == (255, 0, 0) and out.getpixel((300, 50)) == (0, 0, 255)
    c = Image.new("RGBA", (30, 30), (0, 255, 0, 0))
    out = strip([a, c], gap=4)
    assert out.mode == "RGBA" and out.size == (100 + 4 + 50, 50)
    assert out.getpixel((102, 10))[3] == 0  # the gap is transparent
    with pytest.raises(ValueError):
        strip([])
