"""DINOv2 model variants and their weights: specs, resolution, import, download, checks.

Weights are never fetched behind the user's back: `resolve_weights` only looks at
an explicit file, `DINO_DESKTOP_WEIGHTS` and the app's model cache, and raises
`WeightsUnavailable` (whose message says what to download and how to import it)
when none is there. `download_weights` (a job: a generator of `Progress`) and
`import_weights` put a file into the cache only after it has been loaded
strictly into the architecture, so a cache entry is always usable. `weights_job`
is the one job the GUI and the CLI run to find, import or download weights.
Both Meta's original ``.pth`` checkpoints and timm's ``.safetensors`` files
load; pickles are opened with ``weights_only=True`` only.

torch and timm are imported lazily inside functions: the app must open, scan and
browse on a machine where importing torch is slow or the weights are missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dino_desktop.core.progress import CancelToken, Job, Progress

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_MODEL",
    "ENV_WEIGHTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_SIZE",
    "MODELS",
    "RESIZE_SIZE",
    "ModelSpec",
    "WeightsError",
    "WeightsUnavailable",
    "build_model",
    "download_url",
    "download_weights",
    "file_sha256",
    "get_spec",
    "import_weights",
    "load_state_dict",
    "resolve_weights",
    "verify_weights",
    "weights_job",
]

log = logging.getLogger(__name__)

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
DEFAULT_MODEL = "vit_small_patch14_dinov2"

# The model's input: what every variant was evaluated at. Kept with the specs
# because the models table records the size and both decoders (Pillow in
# embedder.py, the device in jpeg_gpu.py) must agree on all four.
IMAGE_SIZE = 224
RESIZE_SIZE = 256  # short side before the centre crop, as in DINOv2's evaluation transform
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ENV_WEIGHTS = "DINO_DESKTOP_WEIGHTS"
WEIGHT_SUFFIXES = (".safetensors", ".pth")  # cache lookup order
SHA_CACHE_NAME = "weights-sha256.json"
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
            log.debug("weights for %s: %s (from %s)", name, given, origin)
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
            log.debug("weights for %s: %s (from the model cache)", name, cached)
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
    log.info("imported weights for %s from %s to %s", name, src, dest)
    return dest


def download_url(name: str, source: str = "timm") -> str:
    """Where `download_weights` fetches `name` from: "timm" (Hugging Face) or "meta"."""
    spec = get_spec(name)
    if source == "timm":
        url = spec.hf_url
    elif source == "meta":
        url = spec.meta_url
    else:
        raise ValueError(f"unknown weights source {source!r}; use 'timm' or 'meta'")
    if url is None:
        raise ValueError(f"model {name} has no {source} download")
    return url


def download_weights(
    name: str,
    cache_dir: Path,
    cancel: CancelToken | None = None,
    *,
    source: str = "timm",
    url: str | None = None,
) -> Job[Path]:
    """Download, verify and cache the weights for `name`; the job returns the cached path.

    `source` is "timm" (Hugging Face safetensors) or "meta" (Meta's .pth); `url`
    overrides both. Yields ``Progress("download", bytes, total_or_None, url)`` per
    chunk, then one ``Progress("verify", ...)`` while the file is checked.
    `cancel` is checked between chunks and raises `Cancelled`. A failed,
    cancelled, abandoned (closed) or invalid download leaves nothing in the
    cache. Network failures raise `WeightsUnavailable` (the message says how to
    fetch the file by hand); a file that is not weights for the model raises
    `WeightsError`.
    """
    spec = get_spec(name)
    if url is None:
        url = download_url(name, source)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = _temp_in(cache_dir, name)
    try:
        try:
            size = yield from _fetch(url, tmp, cancel)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            log.warning("download of %s failed: %s", url, reason)
            raise WeightsUnavailable(
                _unavailable_message(spec, cache_dir, f"Download of {url} failed ({reason})."),
                model=name,
                urls=(url, *spec.download_urls),
            ) from exc
        yield Progress("verify", size, size, url, "checking the downloaded file")
        try:
            verify_weights(name, tmp)
        except WeightsError as exc:
            raise WeightsError(f"downloaded file from {url} is not usable: {exc}") from exc
        dest = _cache_path(name, cache_dir, tmp)
        os.replace(tmp, dest)  # same directory, so atomic: the cache never holds half a file
        log.info("downloaded weights for %s from %s to %s (%d bytes)", name, url, dest, size)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def _fetch(url: str, dest: Path, cancel: CancelToken | None) -> Job[int]:
    """Copy `url` into `dest` chunk by chunk, yielding byte progress; returns the size."""
    request = urllib.request.Request(url, headers={"User-Agent": "dino-desktop"})
    log.info("downloading %s", url)
    with urllib.request.urlopen(request, timeout=60) as resp, dest.open("wb") as out:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        yield Progress("download", done, total, url, "downloading the model")
        while chunk := resp.read(_CHUNK):
            if cancel is not None:
                cancel.check()
            out.write(chunk)
            done += len(chunk)
            yield Progress("download", done, total, url, "downloading the model")
        if total is not None and done != total:
            raise OSError(f"connection closed after {done} of {total} bytes")
        out.flush()
        os.fsync(out.fileno())
    return done


def weights_job(
    name: str,
    cache_dir: Path,
    cancel: CancelToken | None = None,
    *,
    explicit: Path | None = None,
    import_file: Path | None = None,
    download: str | None = None,
    url: str | None = None,
) -> Job[Path]:
    """The one way to get a weights file: import one, download one, or find the installed one.

    - `import_file`: verify it and copy it into the cache (phase "import").
    - `download` ("timm" or "meta"; or any value with `url`): fetch, verify and
      cache (phases "download", then "verify"), whatever is installed already.
    - neither: `resolve_weights` (`explicit`, DINO_DESKTOP_WEIGHTS, the cache);
      nothing found raises `WeightsUnavailable`.

    The job returns the path. Cancelling (`cancel`) raises `Cancelled` and keeps
    nothing; the GUI runs this job in a `JobWorker`, the CLI under tqdm.
    """
    if import_file is not None:
        yield Progress("import", 0, None, str(import_file), "checking the weights file")
        if cancel is not None:
            cancel.check()
        path = import_weights(name, import_file, cache_dir)
        yield Progress("import", 1, 1, str(path))
        return path
    if download is not None or url is not None:
        path = yield from download_weights(
            name, cache_dir, cancel, source=download or "timm", url=url
        )
        return path
    path = resolve_weights(name, explicit, cache_dir)
    yield Progress("resolve", 1, 1, str(path))
    return path


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
