"""The explicit ``{network kind: training strategy}`` registry (and the cascade's strategy for
a configuration with a first stage)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from autoseg.strict import choice_error
from autoseg.trainers.cascade_strategy import CascadeStrategy
from autoseg.trainers.deepmedic_strategy import DeepMedicStrategy
from autoseg.trainers.strategy import TrainingStrategy
from autoseg.trainers.unet_strategy import UNetStrategy

__all__ = ["STRATEGIES", "strategy_for"]

STRATEGIES: Mapping[str, TrainingStrategy] = {
    "unet3d": UNetStrategy(),
    "unet2d": UNetStrategy(),
    "deepmedic": DeepMedicStrategy(),
}


def strategy_for(
    kind: str, *, stage_dir: Path | None = None, foreground: Sequence[int] = ()
) -> TrainingStrategy:
    """The strategy of a network kind; with ``stage_dir`` (a cascade's second stage) the
    U-Net's with the first stage's segmentation as input channels (one per ``foreground``
    label).

    Raises:
        ConfigError: for a kind without a strategy (listing the known kinds).
    """
    if kind not in STRATEGIES:
        raise choice_error("network kind", kind, STRATEGIES)
    if stage_dir is not None:
        return CascadeStrategy(stage_dir, foreground)
    return STRATEGIES[kind]
