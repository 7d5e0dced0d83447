"""Fixtures the core tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
import weightsgen


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights checkpoint of the tiny test ViT, in Meta's format."""
    weightsgen.register_tiny_model()
    return weightsgen.write_meta_checkpoint(
        tmp_path_factory.mktemp("weights") / "tiny.pth", weightsgen.TINY
    )
