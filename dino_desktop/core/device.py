"""Where the model runs and in which precision: device choice, native bf16, int8.

`pick_device` turns the `--device` setting into a torch device. `choose_precision`
turns the `precision` setting (auto, fp32, bf16, int8) into a compute dtype and a
note that says why: auto uses bf16 autocast only where the device computes bf16
natively (`native_bf16`) *and* a probe batch embedded in bf16 stays within
`BF16_MIN_COSINE` of fp32. CPU features come from torch's own queries
(`torch.cpu.get_capabilities`, cpuinfo underneath), so Linux, macOS and Windows
are detected alike.

torch is imported lazily inside functions, like everywhere in core.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "BF16_MIN_COSINE",
    "NATIVE_BF16_FEATURES",
    "PRECISIONS",
    "PrecisionChoice",
    "bf16_supported",
    "choose_precision",
    "cpu_bf16_feature",
    "native_bf16",
    "pick_device",
    "quantize_int8",
]

log = logging.getLogger(__name__)

# auto: see choose_precision. int8: dynamic int8 quantisation of the linear
# layers, CPU only, opt-in (min cosine to fp32 >= 0.995 and faster in bench/embed.py).
PRECISIONS = ("auto", "fp32", "bf16", "int8")
# auto uses bf16 only where the hardware computes it natively and the embeddings
# of a fixed probe batch stay this close to fp32 (minimum cosine).
BF16_MIN_COSINE = 0.999
# CPU features (torch.cpu.get_capabilities names) that compute bf16 in hardware.
# Without them bf16 is emulated: 8-12x *slower* than fp32 on the AVX2 development
# machine. ARM's BF16 extension ("bf16", "sve_bf16") is left out until measured.
NATIVE_BF16_FEATURES = ("amx_bf16", "avx512_bf16")


def pick_device(pref: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device must be available."""
    import torch

    pref = (pref or "auto").strip().lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if pref == "auto":
        if torch.cuda.is_available():
            dev = torch.device("cuda")
        else:
            dev = torch.device("mps" if mps_ok else "cpu")
        log.info("device auto: %s (cuda %s, mps %s)", dev, torch.cuda.is_available(), mps_ok)
        return dev
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


def _cpu_capabilities() -> Mapping[str, Any]:
    """torch's view of the CPU's features; empty where this torch cannot tell."""
    import torch

    cpu: Any = getattr(torch, "cpu", None)
    get = getattr(cpu, "get_capabilities", None)  # torch >= 2.9: every feature, every OS
    if get is not None:
        try:
            return dict(get())
        except Exception:  # cpuinfo failed to initialise: treat as "unknown", i.e. no
            log.debug("torch.cpu.get_capabilities failed", exc_info=True)
            return {}
    # Older torch: the private one-feature queries (x86 only).
    caps: dict[str, Any] = {}
    for feature, query in (
        ("avx512_bf16", "_is_avx512_bf16_supported"),
        ("amx_bf16", "_is_amx_tile_supported"),  # AMX-TILE ships with AMX-BF16
    ):
        fn = getattr(cpu, query, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                caps[feature] = bool(fn())
    return caps


def cpu_bf16_feature() -> str | None:
    """The CPU feature that computes bf16 natively (e.g. "amx_bf16"), or None."""
    caps = _cpu_capabilities()
    return next((f for f in NATIVE_BF16_FEATURES if caps.get(f) is True), None)


def native_bf16(device: torch.device) -> str | None:
    """Why `device` computes bf16 natively (a short reason), or None when it does not.

    CUDA: `torch.cuda.is_bf16_supported()` (Ampere and newer). CPU: AMX-BF16 or
    AVX512-BF16 (`cpu_bf16_feature`). MPS and anything else: no.
    """
    import torch

    if device.type == "cuda":
        try:
            ok = bool(torch.cuda.is_bf16_supported())
        except Exception:  # a broken driver must not stop embedding: fp32 works everywhere
            return None
        return "CUDA bf16" if ok else None
    if device.type == "cpu":
        return cpu_bf16_feature()
    return None


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively, so that autocast can pay off."""
    return native_bf16(device) is not None


@dataclass(frozen=True, slots=True)
class PrecisionChoice:
    """What `choose_precision` decided: the autocast dtype, whether to quantise, and why."""

    dtype: torch.dtype
    int8: bool
    note: str


def choose_precision(
    setting: str, device: torch.device, bf16_min_cosine: Callable[[], float]
) -> PrecisionChoice:
    """The precision for a setting on `device`, with a note saying why.

    auto: bf16 only where the device computes it natively *and*
    `bf16_min_cosine()` (the model's probe: minimum cosine of bf16 embeddings to
    fp32 ones) reaches `BF16_MIN_COSINE`; otherwise fp32. fp32/bf16: as set.
    int8: CPU only (elsewhere fp32); the caller quantises with `quantize_int8`.
    """
    import torch

    if setting not in PRECISIONS:
        raise ValueError(f"unknown precision {setting!r}; choose from {', '.join(PRECISIONS)}")
    fp32, bf16 = torch.float32, torch.bfloat16
    if setting == "fp32":
        choice = PrecisionChoice(fp32, False, "fp32 (setting)")
    elif setting == "bf16":
        choice = PrecisionChoice(bf16, False, "bf16 (setting)")
    elif setting == "int8":
        if device.type == "cpu":
            choice = PrecisionChoice(fp32, True, "int8 (setting: dynamic int8 linear layers)")
        else:
            note = f"fp32 (int8 is for the CPU; {device.type} runs fp32)"
            choice = PrecisionChoice(fp32, False, note)
    elif (why := native_bf16(device)) is None:
        choice = PrecisionChoice(fp32, False, f"fp32 (auto: no native bf16 on this {device.type})")
    else:
        cosine = bf16_min_cosine()
        if cosine >= BF16_MIN_COSINE:
            note = f"bf16 (auto: {why}; min cosine to fp32 {cosine:.5f} on probe images)"
            choice = PrecisionChoice(bf16, False, note)
        else:
            note = (
                f"fp32 (auto: {why}, but bf16's min cosine to fp32 "
                f"{cosine:.5f} < {BF16_MIN_COSINE})"
            )
            choice = PrecisionChoice(fp32, False, note)
    log.info("precision on %s: %s", device, choice.note)
    return choice


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with its linear layers swapped for dynamic int8 ones (CPU only).

    Raises whatever torch raises where eager quantisation is unavailable.
    """
    import torch

    with warnings.catch_warnings():  # torch.ao's deprecation notice, not the user's
        warnings.simplefilter("ignore")
        quantize: Any = torch.ao.quantization.quantize_dynamic  # untyped in torch
        out: torch.nn.Module = quantize(model, {torch.nn.Linear}, dtype=torch.qint8)
    return out
