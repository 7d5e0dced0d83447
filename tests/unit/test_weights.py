"""Model specs and weights: formats, refusing bad files, resolution, import, download, hashing.

Everything runs on random weights written by `weightsgen` (no hub access here).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import weightsgen
from weightsgen import TINY

from dino_desktop.core import weights as W
from dino_desktop.core.progress import Cancelled, CancelToken, Progress, drive
from dino_desktop.core.weights import DEFAULT_MODEL, MODELS, WeightsError, WeightsUnavailable

weightsgen.register_tiny_model()


@pytest.fixture(scope="module")
def tiny_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("weights") / "tiny.pth", TINY, seed=1
    )


def _files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


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


def test_safetensors_detected_by_content_not_name(tmp_path: Path) -> None:
    st = weightsgen.write_safetensors_checkpoint(tmp_path / "model.bin", TINY)
    sd = W.load_state_dict(st)
    assert "reg_token" not in sd and sd["pos_embed"].shape == (1, 1 + 37 * 37, 96)


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
