"""Random-weights DINOv2 checkpoints for tests, in Meta's .pth and timm's .safetensors formats.

The development machines cannot reach model hubs, so tests write their own
weights files and load them through the real loading and conversion code.
Nothing here has semantic quality; the weights only have to give different
photos clearly different embeddings, which is why every LayerScale gamma is set
to 1 (timm initialises them to 1e-5, which makes a random DINOv2 map every photo
to almost the same class token).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from dino_desktop.core.weights import MODELS, ModelSpec, get_spec

TINY = "dinov2_tiny_test"
META_IMG_SIZE = 518  # Meta's checkpoints carry a 37x37 position embedding


def register_tiny_model() -> None:
    """Add the tiny test ViT (patch 14, dim 96, 2 blocks) to MODELS; safe to call repeatedly."""
    MODELS.setdefault(
        TINY,
        ModelSpec(
            name=TINY,
            timm_name="vit_small_patch14_dinov2",
            dim=96,
            timm_kwargs={"embed_dim": 96, "depth": 2, "num_heads": 3},
            meta_url=None,
            hf_repo=None,
            size_mb=1,
        ),
    )


def _timm_shapes(spec: ModelSpec) -> tuple[dict[str, torch.Size], bool, bool]:
    """Parameter shapes of the timm model at 518 px, and whether it has registers / SwiGLU."""
    import timm
    from timm.layers.mlp import GluMlp

    with torch.device("meta"):  # shapes only: no memory, no init time
        model: Any = timm.create_model(
            spec.timm_name,
            pretrained=False,
            num_classes=0,
            img_size=META_IMG_SIZE,
            **spec.timm_kwargs,
        )
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    has_reg = "reg_token" in shapes
    swiglu = isinstance(model.blocks[0].mlp, GluMlp)
    return shapes, has_reg, swiglu


def _random_tensor(key: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    if key.endswith(("ls1.gamma", "ls2.gamma")):
        return torch.ones(shape)  # see the module docstring
    if "norm" in key and key.endswith("weight"):
        return 1.0 + 0.1 * torch.randn(shape, generator=gen)
    if key.endswith("bias"):
        return 0.02 * torch.randn(shape, generator=gen)
    if key in ("cls_token", "reg_token", "pos_embed"):
        return 0.02 * torch.randn(shape, generator=gen)
    if len(shape) >= 2:
        # Unit-gain init (std 1/sqrt(fan_in)) so every layer mixes its input
        # noticeably and different photos end up far apart.
        fan_in = math.prod(shape[1:])
        return torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    return 0.02 * torch.randn(shape, generator=gen)


def _random_timm_state_dict(
    name: str, seed: int
) -> tuple[dict[str, torch.Tensor], bool, bool, torch.Generator]:
    spec = get_spec(name)
    shapes, has_reg, swiglu = _timm_shapes(spec)
    gen = torch.Generator().manual_seed(seed)
    sd = {k: _random_tensor(k, shape, gen).contiguous() for k, shape in shapes.items()}
    return sd, has_reg, swiglu, gen


def _timm_to_meta(
    sd: dict[str, torch.Tensor], has_reg: bool, swiglu: bool, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Invert timm's _convert_dinov2: the keys and shapes of Meta's released checkpoints."""
    out: dict[str, torch.Tensor] = {}
    dim = sd["cls_token"].shape[-1]
    for k, v in sd.items():
        if swiglu and ".mlp.fc1." in k:
            k = k.replace(".mlp.fc1.", ".mlp.w12.")  # Meta's packed SwiGLU (giant)
        elif swiglu and ".mlp.fc2." in k:
            k = k.replace(".mlp.fc2.", ".mlp.w3.")
        out[k] = v
    if has_reg:
        # timm: cls token with its position folded in, pos_embed without a cls slot.
        # Meta: plain cls token, pos_embed with a cls slot, separate register tokens.
        cls_pos = 0.02 * torch.randn((1, 1, dim), generator=gen)
        out["register_tokens"] = out.pop("reg_token")
        out["cls_token"] = sd["cls_token"] - cls_pos
        out["pos_embed"] = torch.cat([cls_pos, sd["pos_embed"]], dim=1)
    out["mask_token"] = torch.zeros((1, dim))  # unused at inference; Meta initialises it to 0
    return out


def write_meta_checkpoint(
    path: Path, name: str = "vit_small_patch14_dinov2", seed: int = 0
) -> Path:
    """Write random weights for `name` as Meta's original DINOv2 .pth (a flat state dict).

    The same `seed` gives the same network as `write_safetensors_checkpoint`.
    """
    sd, has_reg, swiglu, gen = _random_timm_state_dict(name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_timm_to_meta(sd, has_reg, swiglu, gen), path)
    return path


def write_safetensors_checkpoint(path: Path, name: str = TINY, seed: int = 0) -> Path:
    """Write random weights for `name` in timm's key format (as on Hugging Face), 518 px."""
    from safetensors.torch import save_file

    sd, _, _, _ = _random_timm_state_dict(name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return path


def tiny_library(tmp_path: Path, weights: Path | None = None) -> Any:
    """A Library in `tmp_path / "lib"` on the tiny test model (weights optional)."""
    from dino_desktop.core.library import Library

    register_tiny_model()
    return Library(tmp_path / "lib", model=TINY, weights=weights, device="cpu")
