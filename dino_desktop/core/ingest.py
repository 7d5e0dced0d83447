"""The one-pass first index: each new or changed photo read and decoded once.

Before this, a new photo was decoded three times: by the scan for its
perceptual hash, by the embedder for the model, by the grid for its
thumbnail, and the scan and the embedding ran one after the other. Now the
scan's index stage (`scanner.scan` with an `Ingest`) does, per file, on its
thread pool (`Ingest.read`):

* the bytes read once, the sha256 taken from that buffer;
* `images.decode_bytes`: the header and EXIF parsed once and one decode at
  the reduced scale the model needs (`images.INGEST_SIDE`: JPEG DCT scaling,
  `reduce` for other formats); size, date, camera and phash come from it;
* from that one image: the cached thumbnail (`thumbnails.store_thumbnail`,
  the very file the grid would make) and the model input (`preprocess`).

The scan's own thread takes the results in order, runs the model a batch at
a time (`Ingest.add`) while the pool decodes the next files (a bounded window
of futures: decoding runs ahead of the model), and commits rows and their
vectors in one transaction per batch, so a cancel or a SIGKILL leaves rows
with or without their vector, never a vector without its row; what has no
vector yet is embedded by the usual pending pass (`vectors.embed_pending`),
which reads the photo again.

Without weights the same pass stores everything but the vector. The model is
loaded on a thread of its own (`start_loading`) as soon as the walk finds the
first new file, so its load overlaps the walk. A camera RAW (LibRaw reads a
path) and a file over `BUFFER_MAX` are hashed and decoded from the path: for a
RAW the decode is its embedded preview, read twice (a few ms), never a second
development.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import stat
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from dino_desktop.core import raw
from dino_desktop.core.images import (
    INGEST_SIDE,
    ImageError,
    ImageInfo,
    decode_bytes,
    open_image,
    read_info,
)

if TYPE_CHECKING:
    from PIL import Image

    from dino_desktop.core.embedder import Embedder
    from dino_desktop.core.identity import Found

log = logging.getLogger(__name__)

BUFFER_MAX: Final = 256 << 20
"""Files up to this size are read into memory once; larger ones (rare: scans,
panoramas) are hashed in chunks and decoded from the path."""
_CHUNK: Final = 1 << 20

Key = tuple[int, str]
"""(folder id, relpath): a photo's row, before it has an id."""


def sha256_file(path: str) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Read:
    """One file through the pass: what its row stores, and the model input."""

    sha256: str | None
    info: ImageInfo | None
    error: str | None
    input: np.ndarray | None = None


def _read_bytes(path: str) -> bytes | None:
    """The file's bytes, or None when it is too large to hold (then read by path)."""
    # Checked before open: opening a FIFO put where a photo was would block.
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("not a regular file")
    if st.st_size > BUFFER_MAX:
        return None
    with open(path, "rb") as handle:
        return handle.read()


def decode_once(path: str) -> tuple[str, ImageInfo, Image.Image]:
    """(sha256, info, image decoded at `INGEST_SIDE`, display-oriented) of a photo,
    reading it once where it can. Raises ImageError or OSError."""
    data = None if raw.is_raw_path(path) else _read_bytes(path)
    if data is None:
        return sha256_file(path), read_info(path), open_image(path, min_side=INGEST_SIDE)
    info, image = decode_bytes(data)
    # hashlib releases the GIL on large buffers: the other decode threads go on.
    return hashlib.sha256(data).hexdigest(), info, image


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # musl and others: no malloc_trim
        return None
    return trim


_TRIM = _malloc_trim()


def give_back_free_memory() -> None:
    """On glibc, hand the heap's free pages back to the OS (`malloc_trim`).

    The pass frees multi-MB buffers (a photo's bytes, a full decode) on the
    pool's threads; glibc keeps them in its per-thread heaps, and measured with
    bench/ingest.py the peak RSS of a one-pass index grew with the number of
    photos (1,235 MB at 100, 1,316 MB at 1,200). Trimming at every commit (about
    once a second) keeps it flat. (A fixed ``M_MMAP_THRESHOLD`` of 1 MiB did too,
    but it made every large torch allocation an mmap: the model's load and bf16
    probe took twice as long, and `dino-desktop scan` gained nothing.)
    Elsewhere: nothing to do.
    """
    if _TRIM is not None:
        _TRIM(0)


class Ingest:
    """What the scan's index stage makes besides the rows: thumbnails and vectors.

    `thumbs_dir`: the thumbnail cache (None: none made). `load_embedder`: builds
    the model (raises when there are no weights: the pass then stores everything
    but vectors); None: no vectors. `model_id`: the vectors' model row, asked on
    the scan's thread when the first vectors are written. `batch_size`: the
    model's batch (the setting), known before the model is loaded.
    """

    def __init__(
        self,
        thumbs_dir: Path | None,
        load_embedder: Callable[[], Embedder] | None = None,
        model_id: Callable[[], int] | None = None,
        batch_size: int = 16,
    ) -> None:
        self.thumbs_dir = thumbs_dir
        self._batch = batch_size
        self._load = load_embedder
        self._model_id = model_id
        self._loading: Future[Embedder] | None = None
        self._embedder: Embedder | None = None
        self._resolved = load_embedder is None
        self.load_error: BaseException | None = None
        """Why there are no vectors (no weights, a broken file), once asked."""
        self._keys: list[Key] = []
        self._inputs: list[np.ndarray] = []
        self._vectors: dict[Key, np.ndarray] = {}
        self._thumb_failed = False

    # ---- the model, loaded while the walk runs ------------------------------------

    def start_loading(self) -> None:
        """Begin loading the model on a thread of its own (the walk found new files)."""
        if self._load is None or self._loading is not None:
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load")
        self._loading = pool.submit(self._load)
        pool.shutdown(wait=False)

    @property
    def wants_inputs(self) -> bool:
        """Whether model inputs are still made (no answer yet, or a model)."""
        return self._load is not None and (not self._resolved or self._embedder is not None)

    def embedder(self) -> Embedder | None:
        """The model, waiting for its load; None without one (see `load_error`)."""
        if not self._resolved:
            self.start_loading()
            assert self._loading is not None
            try:
                self._embedder = self._loading.result()
            except Exception as exc:  # no weights, broken weights: rows still land
                self.load_error = exc
                log.info("one-pass index without vectors: %s", exc)
            self._resolved = True
        return self._embedder

    @property
    def batch_size(self) -> int:
        emb = self._embedder
        return emb.batch_size if emb is not None else self._batch

    # ---- per file, on the scan's pool -----------------------------------------------

    def read(self, found: Found) -> Read:
        """Read and decode one file once; every failure becomes its reason."""
        if found.error is not None:
            return Read(None, None, found.error)
        if found.size == 0:
            return Read(None, None, "file is empty")
        try:
            digest, info, image = decode_once(found.path)
        except ImageError as exc:
            return Read(None, None, str(exc) or "cannot read image")
        except OSError as exc:
            return Read(None, None, f"cannot read file: {exc.strerror or exc}")
        self._thumbnail(found, image)
        if not self.wants_inputs:
            return Read(digest, info, None)
        from dino_desktop.core.embedder import preprocess

        try:
            arr = preprocess(image)
        except Exception as exc:  # one odd file must never stop a million-file job
            return Read(digest, info, f"{type(exc).__name__}: {exc}")
        return Read(digest, info, None, arr)

    def _thumbnail(self, found: Found, image: Image.Image) -> None:
        if self.thumbs_dir is None or self._thumb_failed:
            return
        from dino_desktop.core.thumbnails import store_thumbnail

        try:
            store_thumbnail(self.thumbs_dir, found.path, found.mtime_ns, found.size, image)
        except OSError as exc:
            # A cache that cannot be written costs only the grid's own decode later.
            self._thumb_failed = True
            log.warning("thumbnails not cached during the scan: %s", exc)

    # ---- the model, on the scan's thread ------------------------------------------------

    def add(self, key: Key, arr: np.ndarray) -> None:
        """Queue one model input; a full batch runs the model."""
        self._keys.append(key)
        self._inputs.append(arr)
        if len(self._inputs) >= self.batch_size:
            self._run()

    @property
    def queued(self) -> int:
        """Model inputs waiting for a full batch."""
        return len(self._inputs)

    def _run(self) -> None:
        keys, inputs = self._keys, self._inputs
        self._keys, self._inputs = [], []
        emb = self.embedder()
        if emb is None or not inputs:
            return
        vecs = emb.embed_inputs(np.stack(inputs))
        self._vectors.update(zip(keys, vecs, strict=True))

    def take_vectors(self) -> tuple[int | None, dict[Key, Any]]:
        """(model id, vectors by key) of everything queued so far (the partial batch
        runs now); (None, {}) when there is no model."""
        self._run()
        give_back_free_memory()
        vectors, self._vectors = self._vectors, {}
        if not vectors or self._model_id is None:
            return None, {}
        return self._model_id(), vectors

    def drop_queued(self) -> None:
        """Forget inputs not yet through the model (a cancel: embedded later)."""
        self._keys, self._inputs = [], []
