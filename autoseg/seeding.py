"""Seeding and JSON-able capture/restore of every RNG, for deterministic runs and exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

__all__ = ["capture_rng_state", "restore_rng_state", "seed_everything"]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy's legacy global RNG and torch; return a fresh ``np.random.Generator``."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def capture_rng_state(generator: np.random.Generator | None = None) -> dict[str, Any]:
    """Capture RNG states as data that ``torch.load(weights_only=True)`` accepts.

    Python's state becomes nested lists, NumPy's ``bit_generator.state`` a dict, and torch's
    CPU (and CUDA, when present) states uint8 tensors.
    """
    import torch

    version, internal, gauss = random.getstate()
    legacy = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy_legacy": {
            "state": legacy["state"]["key"].tolist(),
            "pos": int(legacy["state"]["pos"]),
            "has_gauss": int(legacy["has_gauss"]),
            "gauss": float(legacy["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if generator is not None:
        state["numpy_generator"] = generator.bit_generator.state
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generator: np.random.Generator | None = None) -> None:
    """Restore what :func:`capture_rng_state` captured (into ``generator`` too, if given)."""
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    legacy = state["numpy_legacy"]
    np.random.set_state(
        (
            "MT19937",
            np.asarray(legacy["state"], dtype=np.uint32),
            legacy["pos"],
            legacy["has_gauss"],
            legacy["gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if generator is not None and "numpy_generator" in state:
        generator.bit_generator.state = state["numpy_generator"]
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
