"""The Optuna search space over :class:`PlannerHeuristics`, declared beside the defaults.

Each :class:`ParamSpec` names one heuristic field and its range. ``suggest_heuristics``
samples them from a trial (fields not in the space keep their defaults);
``default_params`` gives the defaults in the space's terms, so tuning can enqueue them as
the first trial and never end worse than the defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoseg.planner.heuristics import LOSSES, OPTIMIZERS, PlannerHeuristics

__all__ = [
    "SEARCH_SPACE",
    "ParamSpec",
    "active_space",
    "default_params",
    "suggest_heuristics",
]


@dataclass(frozen=True)
class ParamSpec:
    """One tunable heuristic.

    Attributes:
        name: The PlannerHeuristics field.
        kind: "float", "int" or "categorical".
        low / high: Range for float and int (inclusive).
        step: Step for int ranges.
        log: Sample on a log scale.
        choices: Values for categorical parameters (JSON-able scalars; tuples as strings).
        device: "cpu" or "gpu" when the heuristic only matters for that planning target.
        configs: The configurations it changes (empty: all); a study that trains none of
            them does not tune it.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    log: bool = False
    choices: tuple[Any, ...] = ()
    device: str | None = None
    configs: tuple[str, ...] = ()


UNETS = ("unet3d", "unet2d", "unet3d_lowres", "unet3d_cascade")
UNETS_3D = ("unet3d", "unet3d_lowres", "unet3d_cascade")
LOWRES = ("unet3d_lowres", "unet3d_cascade")
DEEPMEDIC = ("deepmedic",)
_LOSSES = tuple(v for v in LOSSES if v != "dice")  # plain Dice is left out: unstable alone

SEARCH_SPACE: tuple[ParamSpec, ...] = (
    ParamSpec("spacing_percentile", "float", 30.0, 70.0),
    ParamSpec("anisotropy_threshold", "float", 2.0, 4.0),
    ParamSpec("anisotropic_axis_percentile", "float", 5.0, 50.0),
    ParamSpec("nonzero_mask_crop_ratio", "float", 0.5, 1.0),
    ParamSpec("unet_base_features", "categorical", choices=(16, 24, 32, 48), device="gpu",
              configs=UNETS),
    ParamSpec("cpu_unet_base_features", "categorical", choices=(8, 12, 16, 24, 32), device="cpu",
              configs=UNETS),
    ParamSpec("unet_min_feature_map", "categorical", choices=(4, 6, 8), configs=UNETS),
    ParamSpec("unet_initial_patch_voxels", "int", 64**3, 256**3, log=True, configs=UNETS_3D),
    ParamSpec("unet_max_dataset_fraction", "float", 0.01, 0.2, log=True, configs=UNETS),
    ParamSpec("unet_foreground_oversample", "float", 0.1, 0.7, configs=UNETS),
    ParamSpec("class_weight_power", "float", 0.0, 1.0),
    ParamSpec("unet2d_min_batch_size", "int", 4, 32, configs=("unet2d",)),
    ParamSpec("lowres_patch_fraction", "float", 0.05, 0.5, log=True, configs=LOWRES),
    ParamSpec("lowres_min_voxel_reduction", "float", 1.0, 4.0, configs=LOWRES),
    ParamSpec("deepmedic_subsample_factors", "categorical",
              choices=("3,5", "3", "2,4", "3,6", "2,3,5"), configs=DEEPMEDIC),
    ParamSpec("deepmedic_feature_scale", "float", 0.5, 1.5, device="gpu", configs=DEEPMEDIC),
    ParamSpec("cpu_deepmedic_feature_scale", "float", 0.25, 1.0, device="cpu",
              configs=DEEPMEDIC),
    ParamSpec("deepmedic_max_train_output", "int", 9, 33, step=2, configs=DEEPMEDIC),
    ParamSpec("cpu_seconds_per_iteration", "float", 0.25, 3.0, log=True, device="cpu"),
    # the trainer's settings, recorded per configuration in plans.json
    ParamSpec("unet_optimizer", "categorical", choices=OPTIMIZERS, device="gpu", configs=UNETS),
    ParamSpec("unet_lr", "float", 1e-4, 3e-2, log=True, device="gpu", configs=UNETS),
    ParamSpec("cpu_unet_optimizer", "categorical", choices=OPTIMIZERS, device="cpu",
              configs=UNETS),
    ParamSpec("cpu_unet_lr", "float", 1e-4, 3e-2, log=True, device="cpu", configs=UNETS),
    ParamSpec("deepmedic_optimizer", "categorical", choices=OPTIMIZERS, device="gpu",
              configs=DEEPMEDIC),
    ParamSpec("deepmedic_lr", "float", 1e-4, 3e-2, log=True, device="gpu", configs=DEEPMEDIC),
    ParamSpec("cpu_deepmedic_optimizer", "categorical", choices=OPTIMIZERS, device="cpu",
              configs=DEEPMEDIC),
    ParamSpec("cpu_deepmedic_lr", "float", 1e-4, 3e-2, log=True, device="cpu",
              configs=DEEPMEDIC),
    ParamSpec("unet_loss", "categorical", choices=_LOSSES, configs=UNETS),
    ParamSpec("deepmedic_loss", "categorical", choices=_LOSSES, configs=DEEPMEDIC),
    ParamSpec("augmentation_strength", "float", 0.25, 2.0, log=True),
    # Last, so that adding it left the draws of the parameters above as they were.
    ParamSpec("cpu_unet_min_patch_coverage", "float", 0.0, 0.5, device="cpu", configs=UNETS),
)  # fmt: skip


def active_space(on_cpu: bool, configs: Sequence[str] | None = None) -> tuple[ParamSpec, ...]:
    """The parameters a study tunes: those for its planning target that change one of the
    configurations it trains (``configs`` None: every configuration)."""
    target = "cpu" if on_cpu else "gpu"
    return tuple(
        p
        for p in SEARCH_SPACE
        if p.device in (None, target)
        and (configs is None or not p.configs or any(c in p.configs for c in configs))
    )


def _to_field(spec: ParamSpec, value: Any) -> Any:
    if spec.name == "deepmedic_subsample_factors":
        return tuple(int(v) for v in str(value).split(","))
    return value


def _to_param(spec: ParamSpec, value: Any) -> Any:
    if spec.name == "deepmedic_subsample_factors":
        return ",".join(str(v) for v in value)
    return value


def suggest_heuristics(
    trial: Any,
    *,
    on_cpu: bool,
    base: PlannerHeuristics | None = None,
    configs: Sequence[str] | None = None,
) -> PlannerHeuristics:
    """Sample a PlannerHeuristics from an Optuna trial (fields outside the space from ``base``).

    Args:
        trial: An ``optuna.Trial``.
        on_cpu: Tune the CPU-specific heuristics (else the GPU ones).
        base: Values of the fields that are not tuned (default: the defaults).
        configs: The configurations the study trains (None: all); see :func:`active_space`.
    """
    values = (base or PlannerHeuristics()).to_dict()
    for spec in active_space(on_cpu, configs):
        if spec.kind == "float":
            value: Any = trial.suggest_float(spec.name, spec.low, spec.high, log=spec.log)
        elif spec.kind == "int":
            value = trial.suggest_int(
                spec.name, int(spec.low), int(spec.high), step=spec.step, log=spec.log
            )
        else:
            value = trial.suggest_categorical(spec.name, list(spec.choices))
        values[spec.name] = _to_field(spec, value)
    values["unet_min_batch_size"] = min(
        values["unet_min_batch_size"], values["unet_max_batch_size"]
    )
    return PlannerHeuristics.from_dict(values)


def default_params(
    *,
    on_cpu: bool,
    base: PlannerHeuristics | None = None,
    configs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The defaults (or ``base``) as Optuna parameters, for ``study.enqueue_trial``.

    Raises:
        ValueError: if a default lies outside its declared range (a bug in the space).
    """
    fields = {
        f.name: getattr(base or PlannerHeuristics(), f.name)
        for f in dataclasses.fields(PlannerHeuristics)
    }
    params = {}
    for spec in active_space(on_cpu, configs):
        value = _to_param(spec, fields[spec.name])
        inside = (
            value in spec.choices if spec.kind == "categorical" else spec.low <= value <= spec.high
        )
        if not inside:
            raise ValueError(f"default {spec.name}={value!r} lies outside the search space")
        params[spec.name] = value
    return params
