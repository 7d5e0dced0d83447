"""DINOv2 image embeddings: preprocessing, the batched CPU pipeline, and `Embedder`.

The embedding of a photo is DINOv2's L2-normalised class token at 224x224 (short
side resized to 256 with bicubic filtering, centre crop 224, ImageNet mean/std).
`Embedder.embed_files` decodes on a thread pool that runs a few batches ahead of
the model. Model specs and weights live in `weights.py`, device and precision
choice in `device.py`, GPU JPEG decoding in `jpeg_gpu.py`.

torch and timm are imported lazily inside functions: the app must open, scan and
browse on a machine where importing torch is slow or the weights are missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from dino_desktop.core.device import PRECISIONS, choose_precision, pick_device, quantize_int8
from dino_desktop.core.images import ImageError, JpegBytes, open_image, read_jpeg_bytes
from dino_desktop.core.jpeg_gpu import JpegDeviceDecoder, device_decode_available
from dino_desktop.core.weights import (
    IMAGE_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RESIZE_SIZE,
    WeightsError,
    build_model,
    file_sha256,
    get_spec,
)

if TYPE_CHECKING:
    import torch

    from dino_desktop.core.progress import CancelToken

__all__ = ["PROBE_IMAGES", "Embedder", "preprocess", "probe_batch"]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

PROBE_IMAGES = 8  # the fixed batch auto precision compares bf16 against fp32 on
PROBE_CACHE_NAME = "precision-probe.json"  # in cache_dir: the probe's answers, by key
_probe_lock = threading.Lock()
LOOKAHEAD_BATCHES = 3  # decoded batches kept ready ahead of the model


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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: probing again is always correct
    return data if isinstance(data, dict) else {}


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

        `precision`: "auto", "fp32", "bf16" or "int8" (see `device.choose_precision`;
        `precision_note` says what was chosen and why). `device_decode`: decode JPEGs on the device
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
        self._sha256: str | None = None  # the probe's cache key asks for it
        self.dtype: torch.dtype = torch.float32  # the probe below runs before the choice
        self.quantized = False
        choice = choose_precision(precision, self.device, self._bf16_probe)
        self.dtype, self.precision_note = choice.dtype, choice.note
        if choice.int8:
            try:
                self.model = quantize_int8(self.model)
                self.quantized = True
            except Exception as exc:  # a torch without eager quantisation: fp32 still works
                self.precision_note = f"fp32 (int8 unavailable: {type(exc).__name__})"
                log.warning("int8 unavailable, running fp32: %s", exc)
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
        log.info(
            "embedder %s on %s, %s, batch %d, %s decoding",
            name,
            self.device,
            self.precision_note,
            batch_size,
            "device" if self._device_decoder is not None else "Pillow",
        )

    @property
    def device_decode(self) -> bool:
        """Whether JPEGs are decoded on the device (other formats always go through Pillow)."""
        return self._device_decoder is not None

    @device_decode.setter
    def device_decode(self, on: bool) -> None:
        self._device_decoder = JpegDeviceDecoder(self.device) if on else None

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

    def probe_key(self) -> str:
        """What the bf16 probe's answer depends on: model, weights (sha256), device
        (with its bf16 feature or GPU name) and torch version."""
        import torch

        from dino_desktop.core.device import native_bf16

        where = str(self.device)
        if self.device.type == "cuda":
            where += f" {torch.cuda.get_device_name(self.device)}"
        parts = (self.name, self.weights_sha256, where, str(native_bf16(self.device)))
        return "|".join((*parts, torch.__version__, f"probe{PROBE_IMAGES}"))

    def _bf16_probe(self) -> float:
        """The bf16 probe's minimum cosine, remembered in `cache_dir` (PROBE_CACHE_NAME)
        per `probe_key`: ~2 s of two forward passes at every start otherwise."""
        import torch

        if self.cache_dir is None:
            return self.low_precision_min_cosine(torch.bfloat16)
        memo_path = self.cache_dir / PROBE_CACHE_NAME
        key = self.probe_key()
        with _probe_lock:
            memo = _read_json(memo_path)
        known = memo.get(key)
        if isinstance(known, float):
            log.info("bf16 probe: %.5f (remembered)", known)
            return known
        cosine = self.low_precision_min_cosine(torch.bfloat16)
        with _probe_lock:
            memo = _read_json(memo_path)
            memo[key] = cosine
            try:  # a read-only cache only costs the probe again next time
                memo_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = memo_path.with_name(f".{PROBE_CACHE_NAME}.{os.getpid()}.part")
                tmp.write_text(json.dumps(memo, indent=1, sort_keys=True), encoding="utf-8")
                os.replace(tmp, memo_path)
            except OSError as exc:
                log.debug("bf16 probe not remembered: %s", exc)
        return cosine

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

    def embed_inputs(self, batch: FloatArray) -> FloatArray:
        """(n, dim) unit vectors of a `preprocess`ed (n, 3, 224, 224) batch (the
        one-pass ingest's, core/ingest.py)."""
        return self._forward(batch)

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
