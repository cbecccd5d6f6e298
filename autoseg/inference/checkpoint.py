"""Training checkpoints: tensors and JSON strings only, written atomically, loaded safely.

A checkpoint file is a dict::

    {"format": "autoseg-checkpoint", "version": 1,
     "model": state_dict, "optimizer": state_dict, "scheduler": state_dict,
     "scaler": state_dict (may be empty), "rng": {...tensors / lists...},
     "state_json": str,        # TrainingState: epoch, best EMA, history, ...
     "plans_json": str,        # the full plans.json the model was trained with
     "train_config_json": str, # the TrainConfig
     "configuration": str, "fold": str}

so ``torch.load(path, weights_only=True)`` reads it. Training writes it, prediction and
model archives read it, so the format lives here, below both. The files of a fold folder
(``checkpoint_{latest,best,final}.pt``) are named by
:meth:`autoseg.workspace.FoldPaths.checkpoint`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autoseg.atomic import atomic_torch_save
from autoseg.errors import CheckpointError, PlansError
from autoseg.networks import build_network
from autoseg.planner.plans import ConfigurationPlan, Plans

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "LoadedCheckpoint",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "autoseg-checkpoint"
CHECKPOINT_VERSION = 1
_REQUIRED = (
    "format",
    "version",
    "model",
    "state_json",
    "plans_json",
    "train_config_json",
    "configuration",
    "fold",
)


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint's contents, with the JSON strings parsed."""

    path: Path
    raw: dict[str, Any]
    plans: Plans
    configuration: str
    fold: str
    state: dict[str, Any]
    train_config: dict[str, Any]

    @property
    def config_plan(self) -> ConfigurationPlan:
        return self.plans.configuration(self.configuration)


def save_checkpoint(path: Path | str, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically (adds the format/version markers).

    Raises:
        ValueError: if a required key is missing.
    """
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"checkpoint payload misses keys {missing}")
    atomic_torch_save(path, data)


def load_checkpoint(path: Path | str, *, map_location: str = "cpu") -> LoadedCheckpoint:
    """Load and validate a checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: if the file is missing, truncated, corrupted, not an autoseg
            checkpoint, of another version, or holds an invalid plan.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path=path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, bad pickle opcode, not a torch file, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint is corrupted or unreadable ({reason})", path=path
        ) from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError("not an autoseg checkpoint", path=path)
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint version {data.get('version')!r} is not {CHECKPOINT_VERSION}", path=path
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint misses keys {missing}", path=path)
    try:
        plans = Plans.from_json(data["plans_json"])
        state = json.loads(data["state_json"])
        train_config = json.loads(data["train_config_json"])
    except (PlansError, ValueError) as err:
        raise CheckpointError(f"checkpoint holds invalid JSON: {err}", path=path) from None
    return LoadedCheckpoint(
        path, data, plans, str(data["configuration"]), str(data["fold"]), state, train_config
    )


def load_model(path: Path | str, *, device: str = "cpu") -> tuple[Any, LoadedCheckpoint]:
    """Build the network of a checkpoint's configuration and load its weights (eval mode).

    Raises:
        CheckpointError: as :func:`load_checkpoint`, or if the weights do not fit the network.
    """
    checkpoint = load_checkpoint(path)
    network = build_network(checkpoint.config_plan.network)
    try:
        network.load_state_dict(checkpoint.raw["model"])
    except (RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"weights do not match the planned network ({first})", path=path
        ) from None
    return network.to(device).eval(), checkpoint
