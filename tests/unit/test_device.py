"""Device and precision choice: native bf16 detection through torch, auto's two branches.

The host's own CPU features decide nothing here: torch's capability query is
replaced by fakes of CPUs with and without native bf16.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch

from dino_desktop.core import device as D

# The real detection, captured before tests/conftest.py pins it for every test.
REAL_CPU_BF16_FEATURE = D.cpu_bf16_feature

AVX2_ONLY = {"avx2": True, "avx512_bf16": False, "amx_bf16": False, "architecture": "x86_64"}
AVX512_BF16 = {**AVX2_ONLY, "avx512_f": True, "avx512_bf16": True}
AMX = {**AVX512_BF16, "amx_tile": True, "amx_bf16": True}
APPLE_ARM = {"neon": True, "bf16": True, "architecture": "arm64"}


def _fake_cpu(monkeypatch: pytest.MonkeyPatch, caps: Mapping[str, Any]) -> None:
    monkeypatch.setattr(D, "cpu_bf16_feature", REAL_CPU_BF16_FEATURE)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)


@pytest.mark.parametrize(
    ("caps", "feature"),
    [(AVX2_ONLY, None), (AVX512_BF16, "avx512_bf16"), (AMX, "amx_bf16"), (APPLE_ARM, None)],
)
def test_cpu_bf16_comes_from_torchs_capabilities(
    monkeypatch: pytest.MonkeyPatch, caps: Mapping[str, Any], feature: str | None
) -> None:
    _fake_cpu(monkeypatch, caps)
    cpu = torch.device("cpu")
    assert D.cpu_bf16_feature() == feature
    assert D.native_bf16(cpu) == feature
    assert D.bf16_supported(cpu) is (feature is not None)


def test_cpu_bf16_on_a_torch_without_get_capabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    """Older torch: the private per-feature queries, each guarded."""
    monkeypatch.setattr(D, "cpu_bf16_feature", REAL_CPU_BF16_FEATURE)
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert D.cpu_bf16_feature() == "amx_bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert D.cpu_bf16_feature() is None
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert D.cpu_bf16_feature() is None  # nothing to ask: fp32, never a crash


def test_a_failing_capability_query_means_no_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Mapping[str, Any]:
        raise RuntimeError("cpuinfo failed to initialise")

    _fake_cpu(monkeypatch, {})
    monkeypatch.setattr(torch.cpu, "get_capabilities", broken)
    assert D.cpu_bf16_feature() is None


def test_other_devices_have_no_native_bf16_here() -> None:
    assert D.native_bf16(torch.device("meta")) is None
    assert not D.bf16_supported(torch.device("mps"))


def _never(*_: object) -> float:
    raise AssertionError("the probe must not run")


def test_choose_precision_auto_without_native_bf16_skips_the_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_cpu(monkeypatch, AVX2_ONLY)
    choice = D.choose_precision("auto", torch.device("cpu"), _never)
    assert (choice.dtype, choice.int8) == (torch.float32, False)
    assert choice.note == "fp32 (auto: no native bf16 on this cpu)"


@pytest.mark.parametrize(("cosine", "dtype"), [(0.9989, torch.float32), (0.9990, torch.bfloat16)])
def test_choose_precision_auto_with_native_bf16_follows_the_probe(
    monkeypatch: pytest.MonkeyPatch, cosine: float, dtype: torch.dtype
) -> None:
    _fake_cpu(monkeypatch, AMX)
    choice = D.choose_precision("auto", torch.device("cpu"), lambda: cosine)
    assert choice.dtype == dtype and not choice.int8
    assert "amx_bf16" in choice.note and f"{cosine:.5f}" in choice.note


@pytest.mark.parametrize("caps", [AVX2_ONLY, AMX])
def test_explicit_settings_ignore_the_cpu(
    monkeypatch: pytest.MonkeyPatch, caps: Mapping[str, Any]
) -> None:
    _fake_cpu(monkeypatch, caps)
    cpu = torch.device("cpu")
    assert D.choose_precision("fp32", cpu, _never).dtype == torch.float32
    assert D.choose_precision("bf16", cpu, _never).dtype == torch.bfloat16
    int8 = D.choose_precision("int8", cpu, _never)
    assert int8.int8 and int8.dtype == torch.float32
    meta = D.choose_precision("int8", torch.device("meta"), _never)
    assert not meta.int8 and "int8 is for the CPU" in meta.note
    with pytest.raises(ValueError, match="precision"):
        D.choose_precision("int4", cpu, _never)


def test_pick_device() -> None:
    assert D.pick_device("cpu") == torch.device("cpu")
    assert D.pick_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="device"):
        D.pick_device("quantum")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            D.pick_device("cuda")


def test_the_choice_is_logged(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    _fake_cpu(monkeypatch, AVX2_ONLY)
    with caplog.at_level("INFO", logger="dino_desktop.core.device"):
        D.choose_precision("auto", torch.device("cpu"), _never)
    assert "no native bf16" in caplog.text
