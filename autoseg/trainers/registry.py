"""The explicit ``{network kind: training strategy}`` registry."""

from __future__ import annotations

from collections.abc import Mapping

from autoseg.strict import choice_error
from autoseg.trainers.deepmedic_strategy import DeepMedicStrategy
from autoseg.trainers.strategy import TrainingStrategy
from autoseg.trainers.unet_strategy import UNetStrategy

__all__ = ["STRATEGIES", "strategy_for"]

STRATEGIES: Mapping[str, TrainingStrategy] = {
    "unet3d": UNetStrategy(),
    "deepmedic": DeepMedicStrategy(),
}


def strategy_for(kind: str) -> TrainingStrategy:
    """The strategy of a network kind.

    Raises:
        ConfigError: for a kind without a strategy (listing the known kinds).
    """
    if kind not in STRATEGIES:
        raise choice_error("network kind", kind, STRATEGIES)
    return STRATEGIES[kind]
