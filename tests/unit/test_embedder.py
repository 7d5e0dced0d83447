"""Tests for the DINOv2 embedder: conversion, preprocessing, pipeline, precision, device decode.

Everything runs on random weights written by `weightsgen` (no hub access here);
the tiny ViT keeps the suite fast, and one test loads a full-size ViT-S/14 in
Meta's format through the real path.

Nothing here depends on the host CPU's features: a test that compares vectors
closely asks for fp32, and the automatic precision is tested with the detection
forced both ways (tests/conftest.py pins it to "no native bf16" by default).
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import weightsgen
from PIL import Image
from weightsgen import TINY

from dino_desktop.core import device as D
from dino_desktop.core import embedder as E
from dino_desktop.core import images
from dino_desktop.core import jpeg_gpu as J
from dino_desktop.core import weights as W
from dino_desktop.core.embedder import Embedder
from dino_desktop.core.progress import CancelToken
from dino_desktop.core.weights import (
    DEFAULT_MODEL,
    MODELS,
    ModelSpec,
)

weightsgen.register_tiny_model()

# Tiny versions of the two other architectures whose Meta checkpoints need
# conversion: registers (reg4) and the giant's packed SwiGLU MLP.
TINY_REG4 = "dinov2_tiny_reg4_test"
TINY_SWIGLU = "dinov2_tiny_swiglu_test"
_TINY_KW: dict[str, Any] = {"embed_dim": 96, "depth": 2, "num_heads": 3}
EXTRA_TINY = {
    TINY_REG4: ModelSpec(TINY_REG4, "vit_small_patch14_reg4_dinov2", 96, _TINY_KW, None, None, 1),
    TINY_SWIGLU: ModelSpec(TINY_SWIGLU, "vit_giant_patch14_dinov2", 96, _TINY_KW, None, None, 1),
}


def photo(seed: int, width: int = 320, height: int = 240) -> Image.Image:
    """A smooth colourful pattern plus noise; different seeds give different pictures."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    a = rng.uniform(0.5, 6.0, size=6)
    img = np.stack(
        [
            np.sin(a[0] * x * 3 + a[1] * y * 3 + a[2]),
            np.cos(a[3] * x * 4 - a[4] * y * 2),
            np.sin((x + y) * a[5] * 2),
        ],
        axis=-1,
    )
    img = (img * 0.5 + 0.5) * 255 + rng.normal(0, 8, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(autouse=True)
def _extra_tiny_models(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, spec in EXTRA_TINY.items():
        monkeypatch.setitem(MODELS, name, spec)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def tiny_pth(weights_dir: Path) -> Path:
    return weightsgen.write_meta_checkpoint(weights_dir / "tiny.pth", TINY, seed=1)


@pytest.fixture(scope="module")
def tiny_embedder(tiny_pth: Path) -> Embedder:
    return Embedder(TINY, tiny_pth, device="cpu", batch_size=3, workers=2, precision="fp32")


# --------------------------------------------------------------------------- real architecture


def test_vits14_meta_checkpoint_end_to_end(tmp_path: Path) -> None:
    ckpt = weightsgen.write_meta_checkpoint(tmp_path / "dinov2_vits14_pretrain.pth")
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert raw["pos_embed"].shape == (1, 1 + 37 * 37, 384)  # really Meta's layout
    assert "mask_token" in raw

    weights = W.resolve_weights(DEFAULT_MODEL, ckpt, tmp_path / "cache")
    assert weights == ckpt
    emb = Embedder(DEFAULT_MODEL, weights, device="cpu", precision="fp32")
    assert emb.dim == 384 and emb.dtype == torch.float32

    vecs = emb.embed_images([photo(1), photo(1), photo(2)])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert cos(vecs[0], vecs[1]) > 0.9999
    assert cos(vecs[0], vecs[2]) < 0.99
    assert emb.weights_sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("name", [TINY, TINY_REG4, TINY_SWIGLU])
def test_meta_pth_and_timm_safetensors_give_the_same_network(tmp_path: Path, name: str) -> None:
    # The same seed is the same network in both formats, so equal embeddings prove
    # the Meta conversion (registers, SwiGLU w12/w3, 518 -> 224 pos_embed) is right.
    pth = weightsgen.write_meta_checkpoint(tmp_path / "w.pth", name, seed=3)
    st = weightsgen.write_safetensors_checkpoint(tmp_path / "w.safetensors", name, seed=3)
    meta_keys = set(torch.load(pth, map_location="cpu", weights_only=True))
    if name == TINY_REG4:
        assert "register_tokens" in meta_keys
    if name == TINY_SWIGLU:
        assert "blocks.0.mlp.w12.weight" in meta_keys
    images = [photo(5), photo(6)]
    a = Embedder(name, pth, device="cpu", precision="fp32").embed_images(images)
    b = Embedder(name, st, device="cpu", precision="fp32").embed_images(images)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert cos(a[0], a[1]) < 0.99


def test_class_token_after_final_norm(tiny_embedder: Embedder) -> None:
    x = torch.from_numpy(np.stack([E.preprocess(photo(7)), E.preprocess(photo(8))]))
    model: Any = tiny_embedder.model
    with torch.inference_mode():
        tokens = model.forward_features(x)
    expected = torch.nn.functional.normalize(tokens[:, 0], dim=-1).numpy()
    np.testing.assert_allclose(
        tiny_embedder.embed_images([photo(7), photo(8)]), expected, atol=1e-6
    )


# --------------------------------------------------------------------------- preprocessing


def test_preprocess_matches_torchvision() -> None:
    transforms = pytest.importorskip("torchvision.transforms")
    tv = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(W.IMAGENET_MEAN, W.IMAGENET_STD),
        ]
    )
    for img in (photo(1, 333, 250), photo(2, 200, 301), photo(3, 256, 256)):
        ours = E.preprocess(img)
        assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, tv(img).numpy(), atol=1e-5)


def test_preprocess_other_modes() -> None:
    for mode in ("L", "RGBA", "P"):
        assert E.preprocess(photo(4).convert(mode)).shape == (3, 224, 224)


# --------------------------------------------------------------------------- pipeline


@pytest.fixture
def photo_dir(tmp_path: Path) -> tuple[list[str], set[int]]:
    """Eight paths: good JPEG/PNG files with three broken ones among them."""
    paths: list[str] = []
    broken: set[int] = set()
    for i in range(8):
        if i == 2:
            p = tmp_path / "notes.jpg"
            p.write_text("this is not a photo\n")
            broken.add(i)
        elif i == 5:
            p = tmp_path / "missing.jpg"
            broken.add(i)
        elif i == 6:
            p = tmp_path / "empty.png"
            p.write_bytes(b"")
            broken.add(i)
        else:
            p = tmp_path / f"photo{i}.{'png' if i % 2 else 'jpg'}"
            photo(10 + i, 300 + 10 * i, 260).save(p, quality=95)
        paths.append(str(p))
    return paths, broken


def test_embed_files_every_index_in_order(
    tiny_embedder: Embedder, photo_dir: tuple[list[str], set[int]]
) -> None:
    paths, broken = photo_dir
    results = list(tiny_embedder.embed_files(paths))
    assert [i for i, _, _ in results] == list(range(len(paths)))
    for i, vec, err in results:
        if i in broken:
            assert vec is None and isinstance(err, str) and err.strip()
        else:
            assert err is None and vec is not None and vec.shape == (96,)
            with Image.open(paths[i]) as im:
                direct = tiny_embedder.embed_images([im.convert("RGB")])[0]
            assert cos(vec, direct) > 0.999


def test_embed_files_stops_on_cancel(
    tiny_embedder: Embedder, photo_dir: tuple[list[str], set[int]]
) -> None:
    paths, _ = photo_dir
    cancel = CancelToken()
    seen: list[int] = []
    for i, _, _ in tiny_embedder.embed_files(paths * 3, cancel):
        seen.append(i)
        cancel.cancel()  # mid-batch: the rest of this batch still arrives, then nothing
    assert seen == list(range(tiny_embedder.batch_size))


def test_embed_files_can_be_abandoned(tiny_embedder: Embedder, photo_dir: Any) -> None:
    paths, _ = photo_dir
    gen = tiny_embedder.embed_files(paths * 50)
    assert isinstance(gen, Generator)
    assert next(gen)[0] == 0
    gen.close()  # shuts the decode pool down without waiting for 400 files


def test_empty_inputs(tiny_embedder: Embedder) -> None:
    assert tiny_embedder.embed_images([]).shape == (0, 96)
    assert list(tiny_embedder.embed_files([])) == []


def test_dynamic_size_model_for_patch_features(tiny_pth: Path) -> None:
    model: Any = W.build_model(TINY, tiny_pth, img_size=518, dynamic_img_size=True)
    with torch.inference_mode():
        tokens = model.forward_features(torch.zeros(1, 3, 14 * 20, 14 * 30))
    assert tokens.shape == (1, 1 + 20 * 30, 96)
    assert not model.training


# --------------------------------------------------------------------------- precision


def test_precision_setting_picks_the_dtype(tmp_path: Path) -> None:
    weights = weightsgen.write_meta_checkpoint(tmp_path / "t.pth", weightsgen.TINY)
    fp32 = Embedder(weightsgen.TINY, weights, device="cpu", precision="fp32")
    bf16 = Embedder(weightsgen.TINY, weights, device="cpu", precision="bf16")
    assert fp32.dtype == torch.float32 and fp32.precision_note == "fp32 (setting)"
    assert bf16.dtype == torch.bfloat16 and bf16.precision_note == "bf16 (setting)"
    img = photo(3)
    high, low = fp32.embed_images([img])[0], bf16.embed_images([img])[0]
    assert low.dtype == np.float32 and float(high @ low) > 0.99
    with pytest.raises(ValueError, match="precision"):
        Embedder(weightsgen.TINY, weights, device="cpu", precision="int4")


# --------------------------------------------------------------------------- precision (auto)


def _force_cpu_bf16(monkeypatch: pytest.MonkeyPatch, feature: str | None) -> None:
    """Make the CPU look as if it had (or lacked) native bf16, whatever the host has."""
    monkeypatch.setattr(D, "cpu_bf16_feature", lambda: feature)


def test_precision_auto_is_fp32_without_native_bf16(
    tiny_pth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _force_cpu_bf16(monkeypatch, None)
    probed: list[object] = []
    monkeypatch.setattr(Embedder, "low_precision_min_cosine", lambda self, d: probed.append(d))
    emb = Embedder(TINY, tiny_pth, device="cpu")
    assert emb.dtype == torch.float32 and "no native bf16" in emb.precision_note
    assert probed == []  # no probe where bf16 would be emulated (slow) anyway


def test_precision_auto_is_bf16_with_native_bf16(
    tiny_pth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real probe on the tiny model keeps bf16 (min cosine >= 0.999), and the
    embeddings stay close to fp32 ones."""
    _force_cpu_bf16(monkeypatch, "amx_bf16")
    emb = Embedder(TINY, tiny_pth, device="cpu")
    assert emb.dtype == torch.bfloat16
    assert emb.precision_note.startswith("bf16 (auto: amx_bf16; min cosine to fp32 0.9")
    fp32 = Embedder(TINY, tiny_pth, device="cpu", precision="fp32")
    images = [photo(1), photo(2)]
    for a, b in zip(emb.embed_images(images), fp32.embed_images(images), strict=True):
        assert cos(a, b) > 0.99


@pytest.mark.parametrize(("cosine", "expected"), [(0.9985, "float32"), (0.99995, "bfloat16")])
def test_precision_auto_needs_a_close_enough_bf16(
    tiny_pth: Path, monkeypatch: pytest.MonkeyPatch, cosine: float, expected: str
) -> None:
    _force_cpu_bf16(monkeypatch, "avx512_bf16")
    monkeypatch.setattr(Embedder, "low_precision_min_cosine", lambda self, dtype: cosine)
    emb = Embedder(TINY, tiny_pth, device="cpu")
    assert emb.dtype == getattr(torch, expected)
    assert f"{cosine:.5f}" in emb.precision_note and "avx512_bf16" in emb.precision_note
    # An explicit setting is obeyed whatever auto would pick.
    assert Embedder(TINY, tiny_pth, device="cpu", precision="fp32").dtype == torch.float32


def test_bf16_embed_files_matches_bf16_embed_images(
    tiny_pth: Path, photo_dir: tuple[list[str], set[int]]
) -> None:
    """The pipeline under bf16 autocast: same failures, vectors equal to the
    direct bf16 path and close to fp32."""
    paths, broken = photo_dir
    bf16 = Embedder(TINY, tiny_pth, device="cpu", batch_size=3, precision="bf16")
    fp32 = Embedder(TINY, tiny_pth, device="cpu", batch_size=3, precision="fp32")
    low, high = list(bf16.embed_files(paths)), list(fp32.embed_files(paths))
    for (i, a, ea), (_, b, eb) in zip(low, high, strict=True):
        assert ea == eb
        if i in broken:
            assert a is None
            continue
        assert a is not None and b is not None and a.dtype == np.float32
        assert abs(float(np.linalg.norm(a)) - 1) < 1e-4 and cos(a, b) > 0.99
        with Image.open(paths[i]) as im:
            assert cos(a, bf16.embed_images([im.convert("RGB")])[0]) > 0.99


def test_low_precision_cosines_are_measured_on_the_model(tiny_embedder: Embedder) -> None:
    cos = tiny_embedder.low_precision_cosines(torch.bfloat16)
    assert cos.shape == (E.PROBE_IMAGES,) and np.all(cos > 0.9) and np.all(cos <= 1.0001)
    assert np.allclose(tiny_embedder.low_precision_cosines(torch.float32), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- device decode


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow(orientation: int) -> None:
    arr = np.random.default_rng(orientation).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    expected = images._apply_orientation(Image.fromarray(arr), orientation)
    got = J._orient(torch.from_numpy(arr).permute(2, 0, 1), orientation)
    assert np.array_equal(got.permute(1, 2, 0).numpy(), np.asarray(expected))


@pytest.fixture
def mixed_dir(tmp_path: Path) -> list[str]:
    """JPEGs in every EXIF orientation, a PNG, a CMYK JPEG, a truncated JPEG and junk."""
    import imagegen

    paths = [
        str(imagegen.save_jpeg(tmp_path / f"o{o}.jpg", seed=o, orientation=o, size=(400, 300)))
        for o in range(1, 9)
    ]
    paths.append(str(imagegen.save_as(tmp_path / "x.png", "PNG", seed=3)))
    paths.append(str(imagegen.cmyk_jpeg(tmp_path / "cmyk.jpg", seed=4)))
    whole = Path(paths[0]).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not a jpeg at all")
    return [*paths, str(tmp_path / "cut.jpg"), str(tmp_path / "junk.jpg")]


def _embed_all(emb: Embedder, paths: list[str]) -> list[tuple[np.ndarray | None, str | None]]:
    return [(v, e) for _, v, e in emb.embed_files(paths)]


def test_device_decode_agrees_with_pillow(tiny_pth: Path, mixed_dir: list[str]) -> None:
    """Forced on the CPU (torchvision's libjpeg decode_jpeg), the device path gives
    nearly the same vectors as Pillow, and the same failures with the same reasons."""
    pillow = Embedder(
        TINY, tiny_pth, device="cpu", batch_size=4, precision="fp32", device_decode=False
    )
    device = Embedder(
        TINY, tiny_pth, device="cpu", batch_size=4, precision="fp32", device_decode=True
    )
    assert device.device_decode and not pillow.device_decode
    for (a, ea), (b, eb), path in zip(
        _embed_all(pillow, mixed_dir), _embed_all(device, mixed_dir), mixed_dir, strict=True
    ):
        assert ea == eb, path
        if a is None:
            assert b is None and ea
        else:
            assert b is not None and cos(a, b) > 0.98, path  # full decode vs draft: close
    assert images.read_jpeg_bytes(mixed_dir[0]) is not None
    for not_for_device in mixed_dir[8:11]:  # PNG, CMYK, truncated: Pillow decodes them
        assert images.read_jpeg_bytes(not_for_device) is None


def test_device_decode_falls_back_to_pillow_on_error(
    tiny_pth: Path, mixed_dir: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.io as tvio

    pillow = Embedder(
        TINY, tiny_pth, device="cpu", batch_size=4, precision="fp32", device_decode=False
    )
    device = Embedder(
        TINY, tiny_pth, device="cpu", batch_size=4, precision="fp32", device_decode=True
    )
    calls: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise RuntimeError("nvjpeg: unsupported")

    monkeypatch.setattr(tvio, "decode_jpeg", broken)
    for (a, ea), (b, eb) in zip(
        _embed_all(pillow, mixed_dir), _embed_all(device, mixed_dir), strict=True
    ):
        assert ea == eb
        if a is not None:
            assert b is not None and cos(a, b) > 0.99999  # exactly the Pillow path
    assert calls  # the device decoder was tried first


def test_int8_is_an_opt_in_cpu_precision(tiny_pth: Path) -> None:
    fp32 = Embedder(TINY, tiny_pth, device="cpu", precision="fp32")
    int8 = Embedder(TINY, tiny_pth, device="cpu", precision="int8")
    assert int8.quantized and not fp32.quantized and int8.precision_note.startswith("int8")
    img = photo(5)
    a, b = fp32.embed_images([img])[0], int8.embed_images([img])[0]
    assert b.dtype == np.float32 and cos(a, b) > 0.98


def test_the_bf16_probe_runs_once_per_model_weights_device_and_torch(
    tmp_path: Path, tiny_pth: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CPU with native bf16 (forced: the host's own features do not matter).
    monkeypatch.setattr(D, "cpu_bf16_feature", lambda: "amx_bf16")
    probes: list[float] = []
    real = Embedder.low_precision_min_cosine

    def counted(self: Embedder, dtype: torch.dtype) -> float:
        probes.append(real(self, dtype))
        return probes[-1]

    monkeypatch.setattr(Embedder, "low_precision_min_cosine", counted)
    cache = tmp_path / "models"
    first = Embedder(TINY, tiny_pth, device="cpu", cache_dir=cache)
    assert len(probes) == 1 and "amx_bf16" in first.precision_note
    again = Embedder(TINY, tiny_pth, device="cpu", cache_dir=cache)
    assert len(probes) == 1  # remembered
    assert (again.dtype, again.precision_note) == (first.dtype, first.precision_note)
    # Another torch version (or weights, or device) is another key: probed again.
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    Embedder(TINY, tiny_pth, device="cpu", cache_dir=cache)
    assert len(probes) == 2
    # A damaged memo only costs the probe again.
    (cache / E.PROBE_CACHE_NAME).write_text("{not json")
    Embedder(TINY, tiny_pth, device="cpu", cache_dir=cache)
    assert len(probes) == 3
