"""What ``autoseg demo`` sets: the phantom, the folds, planner overrides, training, prediction.

Everything the demo chooses lives in one frozen :class:`DemoSettings`, printed at the start
and the end of a run and documented in docs/demo.md; nothing is hidden in the pipeline.
Two presets exist: :func:`demo_settings` ``quick=True`` (about 2 minutes on a 2-core CPU,
used by the end-to-end test) and the full demo (about 10 minutes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from autoseg.data.synthetic import PhantomSpec
from autoseg.errors import ConfigError
from autoseg.frozendict import FrozenDict
from autoseg.planner.heuristics import PlannerHeuristics
from autoseg.trainers.config import TrainConfig

__all__ = ["DemoSettings", "demo_settings", "demo_threads"]


@dataclass(frozen=True)
class DemoSettings:
    """Every choice of one demo run.

    Attributes:
        preset: "quick" or "full" (a name for the printed output).
        phantom: The generated dataset (cases, shape in voxels (Z, Y, X), classes, seed).
        num_folds: Cross-validation folds written to ``splits.json`` (>= 2).
        heuristics: Planner heuristic overrides (:class:`PlannerHeuristics` field -> value),
            written to ``<work>/demo_heuristics.json`` and passed to the planner.
        train: Training options of every planned configuration and fold.
        use_mirroring: Mirroring test-time augmentation when predicting the held-out cases.
    """

    preset: str
    phantom: PhantomSpec
    num_folds: int
    heuristics: Mapping[str, Any]
    train: TrainConfig
    use_mirroring: bool

    def __post_init__(self) -> None:
        if int(self.num_folds) < 2:
            raise ConfigError(f"the demo needs at least 2 folds, got {self.num_folds=}")
        if self.phantom.num_test_cases < 1:
            raise ConfigError("the demo needs held-out cases (phantom.num_test_cases >= 1)")
        object.__setattr__(self, "num_folds", int(self.num_folds))
        PlannerHeuristics.from_dict(dict(self.heuristics), partial=True)  # validates the keys
        object.__setattr__(self, "heuristics", FrozenDict(dict(self.heuristics)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (recorded in ``<work>/demo.json``)."""
        return {
            "preset": self.preset,
            "phantom": self.phantom.to_dict(),
            "num_folds": self.num_folds,
            "heuristics": self.heuristics_json(),
            "train": self.train.to_dict(),
            "use_mirroring": self.use_mirroring,
        }

    def heuristics_json(self) -> dict[str, Any]:
        """The heuristic overrides as plain JSON (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.heuristics.items()}

    def digest_text(self) -> str:
        """A canonical JSON text of the settings (its digest marks the demo's results)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> list[str]:
        """Human-readable lines, one per group of settings."""
        p, t = self.phantom, self.train
        classes = ", ".join(f"{v} {k}" for k, v in p.labels.items() if v)
        shape = "x".join(str(v) for v in p.base_shape)
        lr = "the plan's" if t.lr is None else f"{t.lr:g}"
        optimizer = "the plan's" if t.optimizer is None else t.optimizer
        length = (
            f"{t.time_budget_seconds:g} s per fold (--time-budget; epochs fitted to it)"
            if t.epochs is None and t.time_budget_seconds is not None
            else f"{t.epochs} epochs x {t.iters_per_epoch} iterations, {t.val_iters} "
            "validation batches per epoch"
        )
        workers = "auto" if t.num_workers is None else str(t.num_workers)
        threads = "every core" if t.threads is None else str(t.threads)
        overrides = ", ".join(f"{k}={v}" for k, v in self.heuristics_json().items()) or "none"
        return [
            f"preset: {self.preset}",
            f"phantom: {p.num_train_cases} training + {p.num_test_cases} held-out cases, "
            f"~{shape} voxels (Z, Y, X), spacing {p.spacing}, channels {', '.join(p.channels)}, "
            f"classes {classes}, seed {p.seed}",
            f"cross-validation: {self.num_folds} folds (splits.json), every planned "
            "configuration on every fold",
            f"planner heuristic overrides (demo_heuristics.json): {overrides}",
            f"training: {length}, optimizer {optimizer}, lr {lr}, "
            f"schedule {t.schedule}, seed {t.seed}, device {t.device}, torch threads "
            f"{threads}, loader workers {workers}",
            "prediction of the held-out cases: --config best (find-best's choice), "
            f"test-time mirroring {'on' if self.use_mirroring else 'off'}",
        ]


_QUICK_HEURISTICS: dict[str, Any] = {
    "cpu_unet_base_features": 8,
    "cpu_unet_max_features": 64,
    "cpu_deepmedic_feature_scale": 0.25,
    "cpu_seconds_per_iteration": 0.08,
    "unet_initial_patch_voxels": 12000,
    "unet_foreground_oversample": 1.0,
    "class_weight_power": 1.0,
    "deepmedic_subsample_factors": (3,),
}
_FULL_HEURISTICS: dict[str, Any] = {}
"""None: the full demo shows what a user gets from ``autoseg plan`` on this machine."""
FULL_FOLD_SECONDS = 40.0
"""The full demo's time budget per fold (``--time-budget 40s``)."""


def demo_threads(cpu_count: int | None = None) -> int:
    """Torch CPU threads of the demo's training on a CPU: half the cores (1 on 2 cores).

    On a 2-core machine busy with other work, two threads ran a U-Net iteration 13x slower
    than one (4.8 s against 0.36 s); idle, two were 1.6x faster. Half the cores keeps the
    demo's time predictable on a shared machine.
    """
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cores // 2)


def _gpu_available() -> bool:
    return bool(torch.cuda.is_available())


def demo_settings(*, quick: bool, seed: int = 0, gpu: bool | None = None) -> DemoSettings:
    """The settings of ``autoseg demo`` (``quick``: the ~2 minute version).

    On a GPU the same epochs and iterations apply, but the planner plans for the GPU (the
    ``cpu_*`` overrides only shape CPU plans, so the networks are wider), and the data
    loading changes: background loader processes and torch's own thread count instead of
    in-process loading on half the cores.

    Args:
        quick: The small, fast preset used by the end-to-end test.
        seed: Seed of the phantom and of training (weights, sampling, augmentation).
        gpu: Whether training runs on a GPU (default: CUDA is available).
    """
    on_gpu = _gpu_available() if gpu is None else gpu
    loading: dict[str, Any] = (
        {"num_workers": None, "threads": None}
        if on_gpu
        else {"num_workers": 0, "threads": demo_threads()}
    )
    common = {"seed": seed, **loading}  # optimiser and learning rate: the plan's
    if quick:
        phantom = PhantomSpec(
            num_train_cases=8, num_test_cases=2, base_shape=(32, 40, 40), seed=seed
        )
        train = TrainConfig(epochs=4, iters_per_epoch=25, val_iters=2, **common)
        return DemoSettings("quick", phantom, 2, _QUICK_HEURISTICS, train, use_mirroring=False)
    phantom = PhantomSpec(num_train_cases=10, num_test_cases=3, base_shape=(48, 56, 56), seed=seed)
    train = TrainConfig(time_budget_seconds=FULL_FOLD_SECONDS, **common)
    return DemoSettings("full", phantom, 3, _FULL_HEURISTICS, train, use_mirroring=True)
