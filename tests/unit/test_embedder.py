"""Tests for the DINOv2 embedder: weights formats and resolution, safety, pipeline, device.

Everything runs on random weights written by `weightsgen` (no hub access here);
the tiny ViT keeps the suite fast, and one test loads a full-size ViT-S/14 in
Meta's format through the real path.

Nothing here depends on the host CPU's features: a test that compares vectors
closely asks for fp32, and the automatic precision is tested with the detection
forced both ways (tests/conftest.py pins it to "no native bf16" by default).
"""

from __future__ import annotations

import hashlib
import os
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
from dino_desktop.core.progress import Cancelled, CancelToken, Progress, drive
from dino_desktop.core.weights import (
    DEFAULT_MODEL,
    MODELS,
    ModelSpec,
    WeightsError,
    WeightsUnavailable,
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


def _files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


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


# --------------------------------------------------------------------------- specs


def test_models_and_specs() -> None:
    real = {n for n in MODELS if n.startswith("vit_")}
    assert real == {
        f"vit_{s}_patch14{r}_dinov2"
        for s in ("small", "base", "large", "giant")
        for r in ("", "_reg4")
    }
    spec = W.get_spec("vit_small_patch14_reg4_dinov2")
    assert spec.dim == 384 and spec.timm_name == spec.name and spec.timm_kwargs == {}
    assert spec.meta_url == (
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth"
    )
    assert spec.hf_url == (
        "https://huggingface.co/timm/vit_small_patch14_reg4_dinov2.lvd142m"
        "/resolve/main/model.safetensors"
    )
    assert W.get_spec("vit_giant_patch14_dinov2").dim == 1536
    with pytest.raises(ValueError, match="vit_base_patch14_dinov2"):
        W.get_spec("resnet50")


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


def test_safetensors_detected_by_content_not_name(tmp_path: Path) -> None:
    st = weightsgen.write_safetensors_checkpoint(tmp_path / "model.bin", TINY)
    sd = W.load_state_dict(st)
    assert "reg_token" not in sd and sd["pos_embed"].shape == (1, 1 + 37 * 37, 96)


def test_class_token_after_final_norm(tiny_embedder: Embedder) -> None:
    x = torch.from_numpy(np.stack([E.preprocess(photo(7)), E.preprocess(photo(8))]))
    model: Any = tiny_embedder.model
    with torch.inference_mode():
        tokens = model.forward_features(x)
    expected = torch.nn.functional.normalize(tokens[:, 0], dim=-1).numpy()
    np.testing.assert_allclose(
        tiny_embedder.embed_images([photo(7), photo(8)]), expected, atol=1e-6
    )


def test_nested_checkpoints_unwrap(tmp_path: Path, tiny_pth: Path) -> None:
    sd = torch.load(tiny_pth, map_location="cpu", weights_only=True)
    torch.save({"model": sd, "epoch": 3}, tmp_path / "model.pth")
    teacher = {f"backbone.{k}": v for k, v in sd.items()}
    teacher["dino_head.last_layer.weight"] = torch.zeros(2, 2)
    torch.save({"teacher": teacher, "iteration": 10}, tmp_path / "teacher.pth")
    for file in ("model.pth", "teacher.pth"):
        loaded = W.load_state_dict(tmp_path / file)
        assert loaded.keys() == sd.keys()
        W.verify_weights(TINY, tmp_path / file)


# --------------------------------------------------------------------------- refusing bad files


class Exploit:
    """An object whose unpickling would run code (creates a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def test_pickled_object_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    torch.save({"cls_token": torch.zeros(1), "payload": Exploit(str(marker))}, bad)
    with pytest.raises(WeightsError, match=r"evil\.pth"):
        W.load_state_dict(bad)
    with pytest.raises(WeightsError):
        W.build_model(TINY, bad)
    assert not marker.exists()


def test_wrong_architecture_is_refused(tiny_pth: Path) -> None:
    with pytest.raises(WeightsError) as info:
        W.build_model(DEFAULT_MODEL, tiny_pth)
    message = str(info.value)
    assert DEFAULT_MODEL in message and "size mismatch" in message
    assert len(message) < 700  # readable, not torch's wall of text


@pytest.mark.parametrize("content", [b"", b"not weights at all\n", b"PK\x03\x04broken zip"])
def test_garbage_file_is_refused(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(content)
    with pytest.raises(WeightsError, match=r"bad\.pth"):
        W.load_state_dict(bad)


def test_missing_keys_are_refused(tmp_path: Path, tiny_pth: Path) -> None:
    sd = torch.load(tiny_pth, map_location="cpu", weights_only=True)
    del sd["norm.weight"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(WeightsError, match=r"norm\.weight"):
        W.verify_weights(TINY, tmp_path / "partial.pth")


# --------------------------------------------------------------------------- resolution


def test_resolve_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    explicit, env = tmp_path / "explicit.pth", tmp_path / "env.pth"
    for p in (explicit, env, cache / f"{TINY}.pth", cache / f"{TINY}.safetensors"):
        p.write_bytes(b"x")
    monkeypatch.setenv(W.ENV_WEIGHTS, str(env))
    assert W.resolve_weights(TINY, explicit, cache) == explicit
    assert W.resolve_weights(TINY, None, cache) == env
    monkeypatch.delenv(W.ENV_WEIGHTS)
    assert W.resolve_weights(TINY, None, cache) == cache / f"{TINY}.safetensors"
    (cache / f"{TINY}.safetensors").unlink()
    assert W.resolve_weights(TINY, None, cache) == cache / f"{TINY}.pth"


def test_resolve_nothing_says_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailable) as info:
        W.resolve_weights(DEFAULT_MODEL, None, tmp_path / "cache")
    message = str(info.value)
    spec = W.get_spec(DEFAULT_MODEL)
    assert spec.hf_url and spec.hf_url in message
    assert spec.meta_url and spec.meta_url in message
    assert "model import" in message
    assert info.value.model == DEFAULT_MODEL


def test_resolve_missing_explicit_file_does_not_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{TINY}.pth").write_bytes(b"x")
    with pytest.raises(WeightsUnavailable, match=r"nope\.pth"):
        W.resolve_weights(TINY, tmp_path / "nope.pth", cache)
    monkeypatch.setenv(W.ENV_WEIGHTS, str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsUnavailable, match=W.ENV_WEIGHTS):
        W.resolve_weights(TINY, None, cache)


# --------------------------------------------------------------------------- import / download


def test_import_copies_into_cache(tmp_path: Path, tiny_pth: Path) -> None:
    cache = tmp_path / "cache"
    dest = W.import_weights(TINY, tiny_pth, cache)
    assert dest == cache / f"{TINY}.pth"
    assert dest.read_bytes() == tiny_pth.read_bytes()
    assert _files_in(cache) == [f"{TINY}.pth"]
    assert W.resolve_weights(TINY, None, cache) == dest
    assert W.import_weights(TINY, dest, cache) == dest  # importing the cached file is a no-op


def test_import_refuses_bad_file(tmp_path: Path, tiny_pth: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError):
        W.import_weights(DEFAULT_MODEL, tiny_pth, cache)  # wrong architecture
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError):
        W.import_weights(TINY, junk, cache)
    assert _files_in(cache) == []


def test_download_from_file_url(tmp_path: Path) -> None:
    src = weightsgen.write_safetensors_checkpoint(tmp_path / "remote" / "model.safetensors")
    cache = tmp_path / "cache"
    steps: list[Progress] = []
    dest = drive(W.download_weights(TINY, cache, url=src.as_uri()), steps.append)
    size = src.stat().st_size
    assert dest == cache / f"{TINY}.safetensors"
    assert dest.read_bytes() == src.read_bytes()
    downloads = [(p.done, p.total) for p in steps if p.phase == "download"]
    assert downloads[0] == (0, size) and downloads[-1] == (size, size)
    assert steps[-1].phase == "verify"  # checked before it enters the cache
    assert _files_in(cache) == [f"{TINY}.safetensors"]
    W.verify_weights(TINY, dest)


def test_download_of_bad_file_leaves_nothing(tmp_path: Path, tiny_pth: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="not usable"):
        drive(W.download_weights(DEFAULT_MODEL, cache, url=tiny_pth.as_uri()))
    assert _files_in(cache) == []
    with pytest.raises(WeightsUnavailable, match="model import"):
        drive(W.download_weights(TINY, cache, url=(tmp_path / "missing.pth").as_uri()))
    assert _files_in(cache) == []


def test_cancelled_download_leaves_nothing(tmp_path: Path, tiny_pth: Path) -> None:
    cache = tmp_path / "cache"
    cancel = CancelToken()
    job = W.download_weights(TINY, cache, cancel, url=tiny_pth.as_uri())
    assert next(job).phase == "download"
    assert [p.name for p in cache.iterdir() if p.name.endswith(".part")]  # mid-transfer
    cancel.cancel()
    with pytest.raises(Cancelled):
        drive(job)
    assert _files_in(cache) == []


def test_abandoned_download_leaves_nothing(tmp_path: Path, tiny_pth: Path) -> None:
    cache = tmp_path / "cache"
    job = W.download_weights(TINY, cache, url=tiny_pth.as_uri())
    next(job)
    job.close()  # e.g. Ctrl-C in the CLI, or the GUI dropping the job
    assert _files_in(cache) == []


def test_download_needs_a_source() -> None:
    with pytest.raises(ValueError, match="no timm download"):
        drive(W.download_weights(TINY, Path("unused")))
    with pytest.raises(ValueError, match="source"):
        drive(W.download_weights(DEFAULT_MODEL, Path("unused"), source="ftp"))


def test_weights_job_finds_imports_and_downloads(tmp_path: Path, tiny_pth: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(WeightsUnavailable, match="model import"):
        drive(W.weights_job(TINY, cache))
    steps: list[Progress] = []
    imported = drive(W.weights_job(TINY, cache, import_file=tiny_pth), steps.append)
    assert imported == cache / f"{TINY}.pth" and steps[0].phase == "import"
    assert drive(W.weights_job(TINY, cache)) == imported  # found, no network
    assert drive(W.weights_job(TINY, cache, explicit=tiny_pth)) == tiny_pth
    imported.unlink()
    steps.clear()
    downloaded = drive(W.weights_job(TINY, cache, url=tiny_pth.as_uri()), steps.append)
    assert downloaded == imported and downloaded.read_bytes() == tiny_pth.read_bytes()
    assert [p.phase for p in steps][-1] == "verify"


# --------------------------------------------------------------------------- hashing


def test_file_sha256_is_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights, cache = tmp_path / "w.pth", tmp_path / "cache"
    weights.write_bytes(b"abc" * 1000)
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert W.file_sha256(weights, cache) == expected
    assert (cache / W.SHA_CACHE_NAME).is_file()

    real_sha256 = hashlib.sha256
    hashed: list[int] = []

    def counting_sha256(*args: Any) -> Any:
        hashed.append(1)
        return real_sha256(*args)

    monkeypatch.setattr(hashlib, "sha256", counting_sha256)  # the module E uses
    assert W.file_sha256(weights, cache) == expected
    assert hashed == []  # served from the memo

    weights.write_bytes(b"changed")
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert W.file_sha256(weights, cache) == real_sha256(b"changed").hexdigest()
    assert hashed == [1]
    assert W.file_sha256(weights) == real_sha256(b"changed").hexdigest()  # no cache: still right

    (cache / W.SHA_CACHE_NAME).write_text("{corrupt")
    assert W.file_sha256(weights, cache) == real_sha256(b"changed").hexdigest()


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
