"""autoseg.trainers: cross-validated training of both network families (``autoseg train``).

Names are imported lazily so that the torch-free modules (``config``, ``time_budget``,
``splits``) stay cheap to import from the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "STRATEGIES",
    "EpochRecord",
    "FoldResult",
    "FoldSpec",
    "TrainConfig",
    "TrainingRequest",
    "TrainingStrategy",
    "make_splits",
    "run_training",
    "train_fold",
]

_WHERE = {
    "STRATEGIES": "registry",
    "EpochRecord": "history",
    "FoldResult": "loop",
    "FoldSpec": "session",
    "TrainConfig": "config",
    "TrainingRequest": "config",
    "TrainingStrategy": "strategy",
    "make_splits": "splits",
    "run_training": "cross_validation",
    "train_fold": "loop",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'autoseg.trainers' has no attribute {name!r}")
    return getattr(importlib.import_module(f"autoseg.trainers.{_WHERE[name]}"), name)
