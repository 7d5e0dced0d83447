"""JPEG decoding and preprocessing on the model's device (nvJPEG on a CUDA GPU).

`JpegDeviceDecoder` turns the checked bytes of plain JPEGs (`images.read_jpeg_bytes`)
into model inputs on the device: decode, EXIF orientation, antialiased bicubic
resize, centre crop and normalisation, batched. Whatever it cannot do comes back
as None and the embedder decodes that file with Pillow. `device_decode_available`
says whether the pipeline should use it by default (CUDA with torchvision).

torch and torchvision are imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dino_desktop.core.images import JpegBytes
from dino_desktop.core.weights import IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, RESIZE_SIZE

if TYPE_CHECKING:
    import torch

__all__ = ["JpegDeviceDecoder", "device_decode_available"]


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
