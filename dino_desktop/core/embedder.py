"""DINOv2 image embeddings through timm: model variants, weights, devices, batched pipeline.

The embedding of a photo is DINOv2's L2-normalised class token at 224x224 (short
side resized to 256 with bicubic filtering, centre crop 224, ImageNet mean/std).

Weights are never fetched behind the user's back: `resolve_weights` only looks at
an explicit file, `DINO_DESKTOP_WEIGHTS` and the app's model cache, and raises
`WeightsUnavailable` (whose message says what to download and how to import it)
when none is there. `download_weights` and `import_weights` put a file into the
cache only after it has been loaded strictly into the architecture, so a cache
entry is always usable. Both Meta's original ``.pth`` checkpoints and timm's
``.safetensors`` files load; pickles are opened with ``weights_only=True`` only.

torch and timm are imported lazily inside functions: the app must open, scan and
browse on a machine where importing torch is slow or the weights are missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from dino_desktop.core.images import ImageError, JpegBytes, open_image, read_jpeg_bytes

if TYPE_CHECKING:
    import torch

    from dino_desktop.core.progress import CancelToken

__all__ = [
    "DEFAULT_MODEL",
    "ENV_WEIGHTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_SIZE",
    "MODELS",
    "RESIZE_SIZE",
    "Embedder",
    "ModelSpec",
    "WeightsError",
    "WeightsUnavailable",
    "bf16_supported",
    "build_model",
    "download_weights",
    "file_sha256",
    "get_spec",
    "import_weights",
    "load_state_dict",
    "pick_device",
    "preprocess",
    "resolve_weights",
    "verify_weights",
]

FloatArray = npt.NDArray[np.float32]


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSpec:
    """One DINOv2 variant: its timm architecture and where its weights come from."""

    name: str  # our id; equal to the timm name for the real models
    timm_name: str
    dim: int
    timm_kwargs: dict[str, Any]  # extra create_model kwargs (tests shrink the ViT with these)
    meta_url: str | None  # Meta's original .pth
    hf_repo: str | None  # timm's weights on Hugging Face (file model.safetensors)
    size_mb: int  # approximate download size

    @property
    def hf_url(self) -> str | None:
        if self.hf_repo is None:
            return None
        return f"https://huggingface.co/{self.hf_repo}/resolve/main/model.safetensors"

    @property
    def download_urls(self) -> tuple[str, ...]:
        """The URLs a person can fetch by hand, timm's first (it is what we download)."""
        return tuple(u for u in (self.hf_url, self.meta_url) if u)


_META_BASE = "https://dl.fbaipublicfiles.com/dinov2"


def _dinov2(size: str, meta_size: str, dim: int, size_mb: int, reg4: bool) -> ModelSpec:
    reg = "_reg4" if reg4 else ""
    name = f"vit_{size}_patch14{reg}_dinov2"
    meta = f"dinov2_vit{meta_size}14"
    return ModelSpec(
        name=name,
        timm_name=name,
        dim=dim,
        timm_kwargs={},
        meta_url=f"{_META_BASE}/{meta}/{meta}{reg}_pretrain.pth",
        hf_repo=f"timm/{name}.lvd142m",
        size_mb=size_mb,
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for reg4 in (False, True)
    for spec in (
        _dinov2("small", "s", 384, 88, reg4),
        _dinov2("base", "b", 768, 346, reg4),
        _dinov2("large", "l", 1024, 1220, reg4),
        _dinov2("giant", "g", 1536, 4520, reg4),
    )
}
# auto: see Embedder._pick_dtype. int8: dynamic int8 quantisation of the linear
# layers, CPU only, opt-in (min cosine to fp32 >= 0.995 and faster in bench/embed.py).
PRECISIONS = ("auto", "fp32", "bf16", "int8")
# auto uses bf16 only where the hardware computes it natively and the embeddings
# of a fixed probe batch stay this close to fp32 (minimum cosine).
BF16_MIN_COSINE = 0.999
PROBE_IMAGES = 8
DEFAULT_MODEL = "vit_small_patch14_dinov2"

IMAGE_SIZE = 224
RESIZE_SIZE = 256  # short side before the centre crop, as in DINOv2's evaluation transform
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ENV_WEIGHTS = "DINO_DESKTOP_WEIGHTS"
WEIGHT_SUFFIXES = (".safetensors", ".pth")  # cache lookup order
SHA_CACHE_NAME = "weights-sha256.json"
LOOKAHEAD_BATCHES = 3  # decoded batches kept ready ahead of the model
_CHUNK = 1 << 20


class WeightsUnavailable(Exception):
    """No weights file for the model; the message says what to download and how to import it."""

    def __init__(self, message: str, *, model: str | None = None, urls: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.model = model
        self.urls = tuple(urls)


class WeightsError(Exception):
    """A file that is not valid weights for the model; str() is a readable reason."""


def get_spec(name: str) -> ModelSpec:
    """The spec for `name`; an unknown name raises ValueError listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; known models: {known}") from None


# --------------------------------------------------------------------------- weights


def _unavailable_message(spec: ModelSpec, cache_dir: Path, reason: str) -> str:
    urls = spec.download_urls
    if urls:
        where = " or ".join(urls)
        get = f"Download {where} (about {spec.size_mb} MB)"
    else:
        get = "No download source is known for this model; get a weights file"
    return (
        f"{reason} Run `dino-desktop model download`, or: {get}, then run "
        f"`dino-desktop model import FILE` (or pass --weights FILE / set {ENV_WEIGHTS}). "
        f"Model cache: {cache_dir}"
    )


def resolve_weights(name: str, explicit: Path | None, cache_dir: Path) -> Path:
    """Find the weights file for `name` without touching the network.

    Order: `explicit` (--weights), then the environment variable
    DINO_DESKTOP_WEIGHTS, then ``cache_dir/<name>.safetensors`` or
    ``cache_dir/<name>.pth``. Nothing found raises `WeightsUnavailable`.
    """
    spec = get_spec(name)
    env = os.environ.get(ENV_WEIGHTS, "").strip()
    # A file the user named but that is missing is an error, not a reason to fall
    # back silently to another file: they would get embeddings from weights they
    # did not ask for.
    for given, origin in ((explicit, "--weights"), (Path(env) if env else None, ENV_WEIGHTS)):
        if given is None:
            continue
        given = given.expanduser()
        if given.is_file():
            return given
        raise WeightsUnavailable(
            _unavailable_message(
                spec, cache_dir, f"Weights file {given} (from {origin}) not found."
            ),
            model=name,
            urls=spec.download_urls,
        )
    for suffix in WEIGHT_SUFFIXES:
        cached = cache_dir / f"{name}{suffix}"
        if cached.is_file():
            return cached
    raise WeightsUnavailable(
        _unavailable_message(spec, cache_dir, f"No weights for model {name}."),
        model=name,
        urls=spec.download_urls,
    )


def _is_safetensors(path: Path) -> bool:
    """Sniff the safetensors layout: a little-endian u64 header length, then a JSON object."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + header_len <= size


def _unwrap(obj: Any) -> dict[str, torch.Tensor]:
    """Flatten the common checkpoint wrappers into a flat name → tensor dict."""
    import torch

    if not isinstance(obj, dict):
        raise WeightsError(f"expected a dict of tensors, found {type(obj).__name__}")
    if not any(isinstance(v, torch.Tensor) for v in obj.values()):
        # One level of nesting: Meta's training checkpoints keep the teacher, others
        # a "model" / "state_dict" entry next to optimizer state and epoch numbers.
        for key in ("teacher", "model", "state_dict", "module"):
            inner = obj.get(key)
            if isinstance(inner, dict):
                obj = inner
                break
    sd = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if any(k.startswith("backbone.") for k in sd):
        # A DINOv2 teacher also holds the DINO/iBOT heads; only the backbone is ours.
        sd = {k.removeprefix("backbone."): v for k, v in sd.items() if k.startswith("backbone.")}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}  # saved from DataParallel
    if not sd:
        raise WeightsError("the file holds no tensors")
    return sd


def _not_weights(exc: BaseException) -> str:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return f"cannot read weights; damaged, or not a safetensors/PyTorch file ({reason})"


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat CPU state dict; any failure raises `WeightsError`.

    safetensors files (recognised by content, whatever their name) go through
    safetensors; anything else through ``torch.load(weights_only=True)``, which
    refuses to build arbitrary Python objects: a weights file must never be able
    to run code.
    """
    import pickle

    import torch

    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" not in text:
            raise WeightsError(f"{path.name}: {_not_weights(exc)}") from exc
        # torch's message advises weights_only=False, which is exactly what we must
        # not do; keep only the line that names the refused object.
        found = re.search(r"GLOBAL ([\w.]+)", text)
        detail = f" (refused: {found.group(1)})" if found else ""
        raise WeightsError(
            f"{path.name}: not a plain weights file: it holds Python objects other than "
            f"tensors, which are never unpickled for safety{detail}"
        ) from exc
    except Exception as exc:  # torch/safetensors raise many types for a bad file
        raise WeightsError(f"{path.name}: {_not_weights(exc)}") from exc
    try:
        return _unwrap(obj)
    except WeightsError as exc:
        raise WeightsError(f"{path.name}: {exc}") from None


def _create(spec: ModelSpec, img_size: int, dynamic_img_size: bool) -> torch.nn.Module:
    import timm

    model: torch.nn.Module = timm.create_model(
        spec.timm_name,
        pretrained=False,
        num_classes=0,
        img_size=img_size,
        dynamic_img_size=dynamic_img_size,
        **spec.timm_kwargs,
    )
    return model


def _mismatch(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> str | None:
    """A short readable account of how `sd` fails to fit `model`, or None if it fits.

    Computed here rather than parsed from torch's message, which lists every key.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} is {tuple(sd[k].shape)}, expected {shape}"
        for k, shape in expected.items()
        if k in sd and tuple(sd[k].shape) != shape
    ]

    def some(keys: list[str]) -> str:
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        return ", ".join(keys[:3]) + more

    parts = []
    if wrong:
        parts.append(f"size mismatch: {some(wrong)}")
    if missing:
        parts.append(f"missing {some(missing)}")
    if unexpected:
        parts.append(f"unexpected {some(unexpected)}")
    return "; ".join(parts) or None


def _fit(spec: ModelSpec, model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Convert `sd` for `model` (Meta keys, pos_embed size) and load it strictly, in place."""
    import torch
    from timm.models.vision_transformer import checkpoint_filter_fn

    try:
        vit: Any = model  # a timm VisionTransformer; Module is what our signatures promise
        converted = checkpoint_filter_fn(sd, vit)
    except Exception as exc:  # the filter indexes and reshapes, so a foreign file fails anywhere
        raise WeightsError(
            f"{source}: not weights for {spec.name} ({type(exc).__name__}: {exc})"
        ) from exc
    # assign=True adopts the tensors instead of copying, which halves peak memory for
    # big models; cast first so an fp16 checkpoint still gives an fp32 model.
    converted = {
        k: v.float() if v.is_floating_point() and v.dtype != torch.float32 else v
        for k, v in converted.items()
    }
    problem = _mismatch(model, converted)
    if problem is not None:
        raise WeightsError(f"{source}: not weights for {spec.name} (dim {spec.dim}): {problem}")
    try:
        model.load_state_dict(converted, strict=True, assign=True)
    except RuntimeError as exc:  # e.g. a dtype that cannot be assigned
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{source}: cannot load into {spec.name}: {first[:300]}") from exc


def _check_fits(name: str, sd: dict[str, torch.Tensor], source: str) -> None:
    """Strict-load `sd` into `name`'s architecture built on the meta device (no memory)."""
    import torch

    spec = get_spec(name)
    with torch.device("meta"):
        model = _create(spec, IMAGE_SIZE, False)
    _fit(spec, model, sd, source)


def verify_weights(name: str, path: Path) -> None:
    """Raise `WeightsError` unless `path` loads strictly into `name`'s architecture."""
    _check_fits(name, load_state_dict(path), path.name)


def build_model(
    name: str,
    weights: Path,
    *,
    img_size: int = IMAGE_SIZE,
    dynamic_img_size: bool = False,
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """The timm DINOv2 model for `name` with `weights` loaded strictly, in eval mode.

    Meta's keys (mask_token, registers, the giant's packed SwiGLU ``w12``) and the
    518-pixel position embedding are converted by timm's checkpoint filter.
    """
    import torch

    spec = get_spec(name)
    sd = load_state_dict(weights)
    # Build on the meta device so the random init of weights that are about to be
    # replaced costs neither time nor memory (seconds and GBs for ViT-g).
    with torch.device("meta"):
        model = _create(spec, img_size, dynamic_img_size)
    _fit(spec, model, sd, weights.name)
    leftovers = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if leftovers:
        # A tensor the checkpoint does not provide (a non-persistent buffer in some
        # timm version) would stay without data: build for real so init fills it.
        model = _create(spec, img_size, dynamic_img_size)
        _fit(spec, model, sd, weights.name)
    model.eval()
    model.requires_grad_(False)
    return model.to(device)


def _atomic_copy_into(src: Path, dest: Path) -> None:
    tmp = _temp_in(dest.parent, dest.name)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _temp_in(directory: Path, stem: str) -> Path:
    # Dot-prefixed with a .part suffix: never matched by resolve_weights' lookup.
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=".part")
    os.close(fd)
    return Path(name)


def _cache_path(name: str, cache_dir: Path, file: Path) -> Path:
    return cache_dir / f"{name}{'.safetensors' if _is_safetensors(file) else '.pth'}"


def import_weights(name: str, src: Path, cache_dir: Path) -> Path:
    """Verify `src` for model `name`, then copy it atomically into the cache.

    Returns the cached path. A file that does not fit raises `WeightsError` and
    leaves the cache untouched.
    """
    get_spec(name)
    src = src.expanduser()
    verify_weights(name, src)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = _cache_path(name, cache_dir, src)
    if dest.exists() and dest.resolve() == src.resolve():
        return dest
    _atomic_copy_into(src, dest)
    return dest


def download_weights(
    name: str,
    cache_dir: Path,
    *,
    source: str = "timm",
    url: str | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download, verify and cache the weights for `name`; returns the cached path.

    `source` is "timm" (Hugging Face safetensors) or "meta" (Meta's .pth); `url`
    overrides both. `on_progress(done_bytes, total_bytes_or_None)` is called per
    chunk; raising from it aborts the download. A failed, partial or invalid
    download leaves nothing in the cache. Network failures raise
    `WeightsUnavailable` (the message says how to fetch the file by hand), a file
    that is not weights for the model raises `WeightsError`.
    """
    spec = get_spec(name)
    if url is None:
        if source == "timm":
            url = spec.hf_url
        elif source == "meta":
            url = spec.meta_url
        else:
            raise ValueError(f"unknown weights source {source!r}; use 'timm' or 'meta'")
        if url is None:
            raise ValueError(f"model {name} has no {source} download")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = _temp_in(cache_dir, name)
    try:
        try:
            _fetch(url, tmp, on_progress)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise WeightsUnavailable(
                _unavailable_message(spec, cache_dir, f"Download of {url} failed ({reason})."),
                model=name,
                urls=(url, *spec.download_urls),
            ) from exc
        try:
            verify_weights(name, tmp)
        except WeightsError as exc:
            raise WeightsError(f"downloaded file from {url} is not usable: {exc}") from exc
        dest = _cache_path(name, cache_dir, tmp)
        os.replace(tmp, dest)  # same directory, so atomic: the cache never holds half a file
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _fetch(url: str, dest: Path, on_progress: Callable[[int, int | None], None] | None) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "dino-desktop"})
    with urllib.request.urlopen(request, timeout=60) as resp, dest.open("wb") as out:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        if on_progress is not None:
            on_progress(done, total)
        while chunk := resp.read(_CHUNK):
            out.write(chunk)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, total)
        if total is not None and done != total:
            raise OSError(f"connection closed after {done} of {total} bytes")
        out.flush()
        os.fsync(out.fileno())


# --------------------------------------------------------------------------- hashing

_sha_lock = threading.Lock()


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """SHA-256 of a weights file, remembered in ``cache_dir/weights-sha256.json``.

    The memo is keyed by (resolved path, size, mtime_ns), so a multi-GB file is
    hashed once and a replaced file is hashed again.
    """
    resolved = path.resolve()
    st = resolved.stat()
    key = f"{resolved}|{st.st_size}|{st.st_mtime_ns}"
    memo_path = cache_dir / SHA_CACHE_NAME if cache_dir is not None else None
    if memo_path is not None:
        with _sha_lock:
            memo = _read_memo(memo_path)
        if isinstance(memo.get(key), str):
            return str(memo[key])
    h = hashlib.sha256()
    with resolved.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if memo_path is not None:
        with _sha_lock:
            memo = _read_memo(memo_path)
            # Drop stale entries for the same file so the memo does not grow forever.
            prefix = f"{resolved}|"
            memo = {k: v for k, v in memo.items() if not k.startswith(prefix)}
            memo[key] = digest
            with contextlib.suppress(OSError):  # a read-only cache only costs a rehash
                memo_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = _temp_in(memo_path.parent, memo_path.name)
                try:
                    tmp.write_text(json.dumps(memo, indent=1, sort_keys=True), encoding="utf-8")
                    os.replace(tmp, memo_path)
                finally:
                    tmp.unlink(missing_ok=True)
    return digest


def _read_memo(memo_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or corrupt memo: hashing again is always correct
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------- device


def pick_device(pref: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device must be available."""
    import torch

    pref = (pref or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError:
        raise ValueError(f"unknown device {pref!r}; use auto, cpu, cuda or mps") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but no CUDA GPU is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {pref!r} requested but only {torch.cuda.device_count()} CUDA GPU(s) exist"
            )
        return dev
    if dev.type == "mps":
        if not mps_ok:
            raise ValueError("device 'mps' requested but Apple Metal (MPS) is not available")
        return dev
    raise ValueError(f"unsupported device {pref!r}; use auto, cpu, cuda or mps")


_NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags the OS reports (Linux); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively, so that autocast can pay off.

    CUDA: `torch.cuda.is_bf16_supported()` (Ampere and newer). CPU: only with
    AVX512-BF16 or AMX (read from the OS's CPU flags): without them bf16 is
    emulated and was 8-12x *slower* than fp32 on the AVX2 development machine.
    MPS and anything else: no.
    """
    import torch

    if device.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported())
        except Exception:  # a broken driver must not stop embedding: fp32 works everywhere
            return False
    if device.type == "cpu":
        return bool(_cpu_flags() & _NATIVE_BF16_FLAGS)
    return False


# --------------------------------------------------------------------------- preprocessing

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)


def preprocess(img: Image.Image) -> FloatArray:
    """Resize short side to 256 (bicubic), centre crop 224, normalise: float32 (3, 224, 224).

    The same arithmetic as torchvision's Resize(256) + CenterCrop(224) on a PIL
    image, done with PIL and numpy so that torchvision is not needed.
    """
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    if w <= h:
        size = (RESIZE_SIZE, max(1, int(RESIZE_SIZE * h / w)))
    else:
        size = (max(1, int(RESIZE_SIZE * w / h)), RESIZE_SIZE)
    if size != (w, h):
        img = img.resize(size, Image.Resampling.BICUBIC)
    w, h = img.size
    left = round((w - IMAGE_SIZE) / 2.0)
    top = round((h - IMAGE_SIZE) / 2.0)
    img = img.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    out: FloatArray = ((arr - _MEAN) / _STD).astype(np.float32, copy=False)
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- embedder

_Decoded = tuple[FloatArray | None, str | None]


def _decode(path: str) -> _Decoded:
    """Open and preprocess one file; a failure becomes a readable reason, never an exception."""
    try:
        return preprocess(open_image(path, min_side=RESIZE_SIZE)), None
    except ImageError as exc:
        return None, str(exc) or "cannot read image"
    except Exception as exc:  # one odd file must never stop a million-file job
        return None, f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class _Item:
    """What a decode worker hands to the model: an input, a JPEG for the device, or a reason."""

    array: FloatArray | None
    error: str | None
    jpeg: JpegBytes | None = None


def _decode_item(path: str) -> _Item:
    arr, err = _decode(path)
    return _Item(arr, err)


def _read_item(path: str) -> _Item:
    """For device decoding: a checked plain JPEG's bytes, anything else decoded by Pillow."""
    try:
        jpeg = read_jpeg_bytes(path)
    except ImageError as exc:
        return _Item(None, str(exc) or "cannot read image")
    except Exception as exc:
        return _Item(None, f"{type(exc).__name__}: {exc}")
    if jpeg is not None:
        return _Item(None, None, jpeg)
    return _decode_item(path)


def probe_batch(n: int = PROBE_IMAGES, seed: int = 0) -> FloatArray:
    """`n` fixed photo-like inputs (smooth colour fields, edges and noise), preprocessed.

    Used to compare a low-precision model against fp32 before trusting it.
    """
    rng = np.random.default_rng(seed)
    h, w = 300, 400
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / np.float32(w)
    out = []
    for _ in range(n):
        a = rng.uniform(0.5, 8.0, size=9).astype(np.float32)
        img = np.stack(
            [
                np.sin(a[0] * x * 3 + a[1] * y * 3 + a[2]),
                np.cos(a[3] * x * 4 - a[4] * y * 2 + a[5]),
                np.sin((x * a[6] + y * a[7]) * 2 + a[8]),
            ],
            axis=-1,
        )
        img = (img * 0.5 + 0.5) * 255 + rng.normal(0, 12, img.shape)
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.6), rng.uniform(0.05, 0.2)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)  # an "object"
        out.append(preprocess(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))))
    return np.stack(out)


# EXIF orientation as tensor ops on (..., H, W), the same transforms as images._TRANSPOSE.
def _orient(x: torch.Tensor, orientation: int) -> torch.Tensor:
    import torch

    if orientation == 2:
        return x.flip(-1)
    if orientation == 3:
        return x.flip(-1, -2)
    if orientation == 4:
        return x.flip(-2)
    if orientation == 5:
        return x.transpose(-1, -2)
    if orientation == 6:
        return torch.rot90(x, -1, (-2, -1))
    if orientation == 7:
        return x.transpose(-1, -2).flip(-1, -2)
    if orientation == 8:
        return torch.rot90(x, 1, (-2, -1))
    return x


class JpegDeviceDecoder:
    """JPEG decoding and preprocessing on the model's device, batched.

    `torchvision.io.decode_jpeg` on a CUDA device decodes a list of JPEGs with
    nvJPEG; the photos are then oriented, resized (bicubic, antialiased: short
    side 256), centre-cropped and normalised there, so the CPU only reads bytes.
    On the CPU the same code runs with libjpeg (used by the tests). Anything the
    device decoder refuses comes back as None, and the caller decodes that file
    with Pillow instead.
    """

    def __init__(self, device: torch.device) -> None:
        import torch
        import torchvision.io as tvio

        self.device = device
        self._tvio = tvio
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255.0

    def _decode(self, data: list[torch.Tensor]) -> list[torch.Tensor | None]:
        mode = self._tvio.ImageReadMode.RGB
        try:
            out = self._tvio.decode_jpeg(data, mode=mode, device=self.device)
            return list(out)
        except Exception:
            pass  # one bad photo fails the whole batch: retry one by one
        single: list[torch.Tensor | None] = []
        for d in data:
            try:
                single.append(self._tvio.decode_jpeg(d, mode=mode, device=self.device))
            except Exception:
                single.append(None)
        return single

    def _model_input(self, img: torch.Tensor, orientation: int) -> torch.Tensor:
        import torch.nn.functional as F

        x = _orient(img, orientation).unsqueeze(0).float()
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if w <= h:
            size = (max(1, int(RESIZE_SIZE * h / w)), RESIZE_SIZE)
        else:
            size = (RESIZE_SIZE, max(1, int(RESIZE_SIZE * w / h)))
        if size != (h, w):
            x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
            x = x.clamp_(0.0, 255.0)
        top = round((size[0] - IMAGE_SIZE) / 2.0)
        left = round((size[1] - IMAGE_SIZE) / 2.0)
        x = x[..., top : top + IMAGE_SIZE, left : left + IMAGE_SIZE]
        return ((x - self._mean) / self._std)[0]

    def preprocess(self, jpegs: Sequence[JpegBytes]) -> list[torch.Tensor | None]:
        """(3, 224, 224) float32 inputs on the device, or None for each JPEG it could not do."""
        import torch

        if not jpegs:
            return []
        data = [torch.frombuffer(bytearray(j.data), dtype=torch.uint8) for j in jpegs]
        out: list[torch.Tensor | None] = []
        for img, jpeg in zip(self._decode(data), jpegs, strict=True):
            if img is None or img.ndim != 3 or img.shape[0] != 3:
                out.append(None)
                continue
            try:
                out.append(self._model_input(img, jpeg.orientation))
            except Exception:
                out.append(None)
        return out


def device_decode_available(device: torch.device) -> bool:
    """Whether JPEGs can be decoded on `device`: CUDA with torchvision's decode_jpeg."""
    if device.type != "cuda":
        return False
    try:
        import torchvision.io as tvio
    except Exception:
        return False
    return hasattr(tvio, "decode_jpeg")


class Embedder:
    """A DINOv2 model and its preprocessing: images or files in, unit vectors out."""

    def __init__(
        self,
        name: str,
        weights: Path,
        *,
        device: str = "auto",
        batch_size: int = 16,
        workers: int | None = None,
        cache_dir: Path | None = None,
        precision: str = "auto",
        device_decode: bool | None = None,
    ) -> None:
        """Load the model. `cache_dir`, if given, is where `weights_sha256` is remembered.

        `precision`: "fp32", "bf16", or "auto" (see `_pick_dtype`; `precision_note`
        says what was chosen and why). `device_decode`: decode JPEGs on the device
        (None: when it is a CUDA GPU with torchvision's decode_jpeg; True forces it,
        also on the CPU, where torchvision decodes with libjpeg).
        """
        import torch

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}"
            )
        self.spec = get_spec(name)
        self.name = name
        self.weights = weights
        self.cache_dir = cache_dir
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.dim = self.spec.dim
        self.image_size = IMAGE_SIZE
        self.model = build_model(name, weights, device=self.device)
        features = getattr(self.model, "num_features", self.dim)
        if features != self.dim:
            raise WeightsError(f"{name}: model gives {features}-d features, spec says {self.dim}")
        self.dtype: torch.dtype = torch.float32
        self.quantized = False
        if precision == "int8":
            self.precision_note = self._quantize()
        else:
            self.dtype, self.precision_note = self._pick_dtype(precision)
        if device_decode is None:
            device_decode = device_decode_available(self.device)
        self._device_decoder: JpegDeviceDecoder | None = None
        if device_decode:
            try:
                self._device_decoder = JpegDeviceDecoder(self.device)
            except Exception:  # no torchvision: Pillow decodes everything
                self._device_decoder = None
        # Decoded batches kept ready ahead of the model. (On the 2-core CPU, decoding
        # only between forward passes, lookahead 0, measured the same as 3.)
        self.lookahead = LOOKAHEAD_BATCHES
        self._sha256: str | None = None

    @property
    def device_decode(self) -> bool:
        """Whether JPEGs are decoded on the device (other formats always go through Pillow)."""
        return self._device_decoder is not None

    @device_decode.setter
    def device_decode(self, on: bool) -> None:
        self._device_decoder = JpegDeviceDecoder(self.device) if on else None

    def _quantize(self) -> str:
        """Swap the linear layers for dynamic int8 ones (CPU only); returns the note."""
        import warnings

        import torch

        if self.device.type != "cpu":
            return f"fp32 (int8 is for the CPU; {self.device.type} runs fp32)"
        try:
            with warnings.catch_warnings():  # torch.ao's deprecation notice, not the user's
                warnings.simplefilter("ignore")
                quantize: Any = torch.ao.quantization.quantize_dynamic  # untyped in torch
                self.model = quantize(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        except Exception as exc:  # a torch without eager quantisation: fp32 still works
            return f"fp32 (int8 unavailable: {type(exc).__name__})"
        self.quantized = True
        return "int8 (setting: dynamic int8 linear layers)"

    def _pick_dtype(self, precision: str) -> tuple[torch.dtype, str]:
        """The compute dtype for a precision setting, and a note saying why.

        auto: bf16 only where the device computes it natively (`bf16_supported`)
        *and* the embeddings of a fixed probe batch keep a minimum cosine of
        `BF16_MIN_COSINE` to fp32; otherwise fp32. fp32/bf16: as set.
        """
        import torch

        if precision == "fp32":
            return torch.float32, "fp32 (setting)"
        if precision == "bf16":
            return torch.bfloat16, "bf16 (setting)"
        if not bf16_supported(self.device):
            return torch.float32, f"fp32 (auto: no native bf16 on this {self.device.type})"
        cosine = self.low_precision_min_cosine(torch.bfloat16)
        if cosine >= BF16_MIN_COSINE:
            return torch.bfloat16, f"bf16 (auto: min cosine to fp32 {cosine:.5f} on probe images)"
        return (
            torch.float32,
            f"fp32 (auto: bf16's min cosine to fp32 {cosine:.5f} < {BF16_MIN_COSINE})",
        )

    def low_precision_cosines(
        self, dtype: torch.dtype, batch: FloatArray | None = None
    ) -> FloatArray:
        """Cosine of each input's embedding under `dtype` autocast to its fp32 embedding."""
        import torch

        x = probe_batch() if batch is None else batch
        ref = self._forward(x, dtype=torch.float32)
        low = self._forward(x, dtype=dtype)
        cos: FloatArray = np.sum(ref * low, axis=1, dtype=np.float32)
        return cos

    def low_precision_min_cosine(self, dtype: torch.dtype) -> float:
        return float(self.low_precision_cosines(dtype).min())

    @property
    def weights_sha256(self) -> str:
        """SHA-256 of the weights file, computed on first use (and memoised in cache_dir)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.weights, self.cache_dir)
        return self._sha256

    def _forward(
        self, batch: FloatArray | torch.Tensor, dtype: torch.dtype | None = None
    ) -> FloatArray:
        """Embed a preprocessed (n, 3, 224, 224) batch: L2-normalised class tokens."""
        import torch
        import torch.nn.functional as F

        dtype = self.dtype if dtype is None else dtype
        model: Any = self.model  # timm's VisionTransformer API, not typed on nn.Module
        if isinstance(batch, np.ndarray):
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        else:
            x = batch.to(self.device)
        autocast = (
            torch.autocast(device_type=self.device.type, dtype=dtype)
            if dtype != torch.float32
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            tokens = model.forward_features(x)
            # With num_classes=0 and 'token' pooling this is tokens[:, 0]: the class
            # token after the final norm (the test suite checks it).
            cls = model.forward_head(tokens, pre_logits=True)
        vecs = F.normalize(cls.float(), dim=-1)
        out: FloatArray = vecs.cpu().numpy().astype(np.float32, copy=False)
        return out

    def embed_images(self, images: Sequence[Image.Image]) -> FloatArray:
        """(n, dim) float32 unit vectors for PIL images, in batches of `batch_size`."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._forward(np.stack([preprocess(im) for im in images[i : i + self.batch_size]]))
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def _inputs(self, paths: Sequence[str], items: list[_Item]) -> list[Any]:
        """One model input per item (a numpy array or a device tensor), or None for failures.

        JPEGs read for the device decoder are decoded there as one batch; any it
        refuses is decoded with Pillow here instead.
        """
        inputs: list[Any] = [it.array for it in items]
        decoder = self._device_decoder
        jpeg_rows = [i for i, it in enumerate(items) if it.jpeg is not None]
        if not jpeg_rows:
            return inputs
        outs: list[Any] = [None] * len(jpeg_rows)
        if decoder is not None:
            outs = list(decoder.preprocess([items[i].jpeg for i in jpeg_rows]))  # type: ignore[misc]
        for i, out in zip(jpeg_rows, outs, strict=True):
            if out is None:  # the device refused it: Pillow decodes it (and words any error)
                arr, err = _decode(paths[i])
                items[i] = _Item(arr, err)
            inputs[i] = out if out is not None else items[i].array
        return inputs

    def _stack(self, inputs: list[Any]) -> Any:
        import torch

        if all(isinstance(x, np.ndarray) for x in inputs):
            return np.stack(inputs)
        return torch.stack(
            [
                x if isinstance(x, torch.Tensor) else torch.from_numpy(x).to(self.device)
                for x in inputs
            ]
        )

    def embed_files(
        self, paths: Sequence[str], cancel: CancelToken | None = None
    ) -> Iterator[tuple[int, FloatArray | None, str | None]]:
        """Yield (index, vector or None, error or None) for every path once, in input order.

        Files are decoded on a thread pool that runs a few batches ahead of the
        model (bounded, so memory stays flat however many paths there are). With
        device decoding the pool only reads and checks JPEG bytes and the device
        decodes each batch. A file that fails to decode yields its reason and the
        job goes on. `cancel` is checked between batches; once set, nothing more
        is yielded. Closing the generator early also stops the pool.
        """
        n = len(paths)
        if n == 0:
            return
        work = _read_item if self._device_decoder is not None else _decode_item
        window = max(self.batch_size * (self.lookahead + 1), 2 * self.workers)
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="embed-decode")
        pending: deque[Future[_Item]] = deque()
        submitted = 0
        try:
            for start in range(0, n, self.batch_size):
                if cancel is not None and cancel.cancelled:
                    return
                end = min(start + self.batch_size, n)
                while submitted < min(n, start + window):
                    pending.append(pool.submit(work, paths[submitted]))
                    submitted += 1
                items = [pending.popleft().result() for _ in range(start, end)]
                inputs = self._inputs(paths[start:end], items)
                good = [i for i, x in enumerate(inputs) if x is not None]
                vecs = self._forward(self._stack([inputs[i] for i in good])) if good else None
                row = {i: r for r, i in enumerate(good)}  # position in chunk -> batch row
                for i, item in enumerate(items):
                    if vecs is not None and i in row:
                        yield start + i, vecs[row[i]], None
                    else:
                        yield start + i, None, item.error or "cannot read image"
        finally:
            # Cancelled, finished or abandoned: drop queued decodes, don't wait for them.
            pool.shutdown(wait=False, cancel_futures=True)
