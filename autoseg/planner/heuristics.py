"""Every number the planner uses, in one frozen dataclass with defaults.

``autoseg plan --heuristics FILE`` loads a JSON object of overrides (unknown keys are an
error); plans.json records the full set used. ``autoseg tune`` samples these fields (the
search space is declared in :mod:`autoseg.planner.search_space`). No planner module
hard-codes a heuristic number elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.errors import ConfigError
from autoseg.strict import choice_error, did_you_mean, load_json

__all__ = ["LOSSES", "OPTIMIZERS", "RECORDED_BEFORE", "PlannerHeuristics", "load_heuristics"]

OPTIMIZERS = ("sgd", "adam", "adamw")
"""Optimisers a plan (and ``autoseg train --optimizer``) may name."""

LOSSES = ("dice_ce", "generalized_dice_ce", "ce", "dice")
"""Losses a plan (and ``autoseg train --loss``) may name (see :mod:`autoseg.trainers.losses`)."""

_MAY_BE_ZERO = ("class_weight_power", "cpu_unet_min_patch_coverage")
"""Numeric heuristics where 0 means something (every other one must be positive)."""


@dataclass(frozen=True)
class PlannerHeuristics:
    """Named planner heuristics. Spacings in mm, memory in bytes, compute in GFLOP.

    Target spacing and anisotropy:
        spacing_percentile: Percentile of the case spacings used per axis (50 = median).
        anisotropy_threshold: An axis whose target spacing exceeds this many times the finest
            axis makes the data "strongly anisotropic" (separate-axis resampling, 1x3x3 kernels).
        anisotropic_axis_percentile: Percentile used for the coarse axis of strongly
            anisotropic data (a lower value gives a finer target along that axis).
        anisotropic_voxel_ratio: The coarse-axis percentile rule applies only when the median
            image also has this many times fewer voxels along the coarse axis.
        nonzero_mask_crop_ratio: Z-score inside the non-zero mask when cropping to it keeps at
            most this fraction of the median image volume.

    U-Net topology, patch and batch:
        unet_base_features / unet_max_features: Features of stage 0 (doubling per stage) and
            their cap, when planning for a GPU.
        cpu_unet_base_features / cpu_unet_max_features: The same when planning for a CPU;
            by default the GPU's widths, the compute budget shrinking batch and patch
            instead (docs/planner.md).
        cpu_unet_min_patch_coverage / cpu_unet_min_base_features: On a CPU, a U-Net whose
            patch would cover less than this fraction of the median image (of the median
            slice, for the 2D U-Net) is planned again at half the width (stage-0 features and
            cap), down to this many stage-0 features; the first width whose patch covers the
            fraction is kept, else the narrowest. 0 turns it off. The low-resolution stage
            keeps the full width: it gets its coverage from a coarser spacing.
        unet_convs_per_stage: Convolutions per encoder and decoder stage.
        unet_min_feature_map: Smallest edge (voxels) a feature map may be pooled down to.
        unet_max_pool_per_axis: Most poolings along any axis.
        unet_pool_spacing_ratio: An axis is pooled (and gets 3-kernels) only when its current
            spacing is within this factor of the finest current spacing.
        unet_initial_patch_voxels: Patch volume the search starts from (shaped isotropic in
            mm, clipped to the median image shape), before shrinking to fit.
        unet_min_batch_size: Smallest batch; the patch shrinks until this batch fits.
        unet_max_batch_size: Largest batch the planner will choose.
        unet_max_dataset_fraction: Batch x patch voxels may cover at most this fraction of
            the dataset's voxels.
        unet_foreground_oversample: Fraction of each batch forced to contain foreground.

    2D U-Net (slices across the coarsest axis):
        unet2d_initial_patch_pixels: Slice patch area the 2D search starts from (shaped
            isotropic in mm, clipped to the median slice).
        unet2d_min_batch_size / unet2d_max_batch_size: The 2D batch range (the patch shrinks
            until the minimum fits; the batch then grows up to the maximum and the
            dataset-fraction cap).

    Low-resolution stage and cascade:
        lowres_patch_fraction: A low-resolution U-Net (and the cascade) is planned when the
            full-resolution patch covers less than this fraction of the median image's voxels.
        lowres_spacing_step: Factor the low-resolution spacing grows by per step (the finer
            axes first, while more than 2x finer than the coarsest), until its patch covers
            ``lowres_patch_fraction`` of the median image at that spacing.
        lowres_min_voxel_reduction: The stage is kept only if its median image has at least
            this many times fewer voxels than at full resolution.

    DeepMedic:
        deepmedic_subsample_factors: Downsampling factor of each subsampled pathway (isotropic
            data; adapted per axis to anisotropy).
        deepmedic_feature_scale: Multiplier on DeepMedic's default feature counts (GPU).
        cpu_deepmedic_feature_scale: The same when planning for a CPU.
        deepmedic_max_train_output: Largest training output segment edge (voxels, finest axis).
        deepmedic_min_train_output: Smallest training output segment edge.
        deepmedic_inference_output: Inference output segment edge (finest axis).
        deepmedic_min_batch_size / deepmedic_max_batch_size: Batch range of segments.

    Training (recorded in each configuration of plans.json; ``autoseg train`` uses them unless
    ``--optimizer`` / ``--lr`` / ``--loss`` are given):
        unet_optimizer / unet_lr: Optimiser ("sgd" with Nesterov momentum, "adam" or
            "adamw") and initial learning rate of the U-Net on a GPU (nnU-Net's SGD at 1e-2).
        cpu_unet_optimizer / cpu_unet_lr: The same on a CPU, where a run is minutes to
            hours: Adam at 3e-3 reached a higher validation Dice than SGD at 1e-2 after the
            same iterations on the Hippocampus dev set (bench/RESULTS.md).
        deepmedic_optimizer / deepmedic_lr, cpu_deepmedic_optimizer / cpu_deepmedic_lr:
            DeepMedic's, on a GPU (SGD at 1e-2) and on a CPU (Adam at 1e-3: with Dice + CE it
            reached 0.825 against 0.803 for SGD 1e-2 + CE after the same 2450 iterations on
            Hippocampus fold 0, bench/RESULTS.md).
        unet_loss / deepmedic_loss: The loss of every U-Net configuration and of DeepMedic
            (one of :data:`LOSSES`; region-based training keeps its sigmoid Dice + BCE). Both
            Dice + CE: DeepMedic with cross-entropy alone over-segmented Hippocampus (19 %
            more voxels than the reference, against 16 % with the Dice term).
        augmentation_strength: Multiplies the probability of every spatial and intensity
            augmentation (capped at 1; mirroring is unchanged): below 1 for short runs that
            cannot learn through strong augmentation, above 1 for long ones.
        mirror_order_fraction / mirror_order_min_cases: An axis is not mirrored (in training
            nor at test time) when two classes lie in the same order along it in at least
            this fraction of the cases that hold both, and in at least this many cases: a
            mirrored image would show a layout no case has, such as a left organ on the
            right (:mod:`autoseg.planner.mirroring`).

    Class balance:
        class_weight_power: Sampling weight of a class is proportional to its voxel frequency
            to the power of minus this (0 = frequency-blind, 1 = fully balanced).

    Memory and compute targets:
        memory_safety_margin: Fraction of the memory target the estimate may use.
        cpu_ram_fraction: Fraction of physical RAM used as the target when planning for CPU.
        cpu_seconds_per_iteration: Target duration of one training iteration on CPU: the
            patch and batch shrink until the estimated compute, at this CPU's measured
            speed (:mod:`autoseg.planner.cpu_speed`), fits.
        cpu_bf16_min_speedup: Train and predict in bfloat16 on a CPU only when it measured at
            least this many times float32's speed.
        cpu_parallel_efficiency: Speed each torch thread beyond the first adds, as a fraction
            of one thread's measured speed.
    """

    spacing_percentile: float = 50.0
    anisotropy_threshold: float = 3.0
    anisotropic_axis_percentile: float = 10.0
    anisotropic_voxel_ratio: float = 3.0
    nonzero_mask_crop_ratio: float = 0.75

    unet_base_features: int = 32
    unet_max_features: int = 320
    cpu_unet_base_features: int = 32
    cpu_unet_max_features: int = 320
    cpu_unet_min_patch_coverage: float = 0.25
    cpu_unet_min_base_features: int = 16
    unet_convs_per_stage: int = 2
    unet_min_feature_map: int = 4
    unet_max_pool_per_axis: int = 5
    unet_pool_spacing_ratio: float = 2.0
    unet_initial_patch_voxels: int = 256**3
    unet_min_batch_size: int = 2
    unet_max_batch_size: int = 64
    unet_max_dataset_fraction: float = 0.05
    unet_foreground_oversample: float = 0.33

    unet2d_initial_patch_pixels: int = 2048**2
    unet2d_min_batch_size: int = 12
    unet2d_max_batch_size: int = 512

    lowres_patch_fraction: float = 0.25
    lowres_spacing_step: float = 1.03
    lowres_min_voxel_reduction: float = 1.5

    deepmedic_subsample_factors: tuple[int, ...] = (3, 5)
    deepmedic_feature_scale: float = 1.0
    cpu_deepmedic_feature_scale: float = 0.5
    deepmedic_max_train_output: int = 21
    deepmedic_min_train_output: int = 5
    deepmedic_inference_output: int = 45
    deepmedic_min_batch_size: int = 4
    deepmedic_max_batch_size: int = 32

    unet_optimizer: str = "sgd"
    unet_lr: float = 1e-2
    cpu_unet_optimizer: str = "adam"
    cpu_unet_lr: float = 3e-3
    deepmedic_optimizer: str = "sgd"
    deepmedic_lr: float = 1e-2
    cpu_deepmedic_optimizer: str = "adam"
    cpu_deepmedic_lr: float = 1e-3
    unet_loss: str = "dice_ce"
    deepmedic_loss: str = "dice_ce"

    augmentation_strength: float = 1.0
    mirror_order_fraction: float = 0.95
    mirror_order_min_cases: int = 10

    class_weight_power: float = 0.5

    memory_safety_margin: float = 0.85
    cpu_ram_fraction: float = 0.25
    cpu_seconds_per_iteration: float = 1.0
    cpu_bf16_min_speedup: float = 1.2
    cpu_parallel_efficiency: float = 0.6

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "deepmedic_subsample_factors":
                value = tuple(int(v) for v in value)
                object.__setattr__(self, f.name, value)
                if any(v < 2 for v in value):
                    raise ConfigError(f"{f.name} must all be >= 2, got {value}")
                continue
            if f.name.endswith("_optimizer"):
                if value not in OPTIMIZERS:
                    raise choice_error(f.name, value, OPTIMIZERS)
                continue
            if f.name.endswith("_loss"):
                if value not in LOSSES:
                    raise choice_error(f.name, value, LOSSES)
                continue
            cast = int if f.type in ("int", int) else float
            value = cast(value)
            object.__setattr__(self, f.name, value)
            if value <= 0 and f.name not in _MAY_BE_ZERO:
                raise ConfigError(f"heuristic {f.name} must be positive, got {value}")
        self._check_ranges()

    def _check_ranges(self) -> None:
        for name in (
            "memory_safety_margin",
            "cpu_ram_fraction",
            "unet_max_dataset_fraction",
            "unet_foreground_oversample",
            "nonzero_mask_crop_ratio",
            "cpu_parallel_efficiency",
            "lowres_patch_fraction",
        ):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"heuristic {name} must be in (0, 1], got {value}")
        for name in ("spacing_percentile", "anisotropic_axis_percentile"):
            if not 0 <= getattr(self, name) <= 100:
                raise ConfigError(
                    f"heuristic {name} must be in [0, 100], got {getattr(self, name)}"
                )
        if not 0.5 < self.mirror_order_fraction <= 1:
            raise ConfigError(
                f"mirror_order_fraction must be in (0.5, 1], got {self.mirror_order_fraction}"
            )
        if not 0 <= self.cpu_unet_min_patch_coverage <= 1:
            raise ConfigError(
                "cpu_unet_min_patch_coverage must be in [0, 1], got "
                f"{self.cpu_unet_min_patch_coverage}"
            )
        if not 0 <= self.class_weight_power <= 1:
            raise ConfigError(
                f"class_weight_power must be in [0, 1], got {self.class_weight_power}"
            )
        if self.unet_min_batch_size > self.unet_max_batch_size:
            raise ConfigError(
                "unet_min_batch_size must be <= unet_max_batch_size, got "
                f"{self.unet_min_batch_size=} {self.unet_max_batch_size=}"
            )
        if self.unet2d_min_batch_size > self.unet2d_max_batch_size:
            raise ConfigError("unet2d_min_batch_size must be <= unet2d_max_batch_size")
        if self.lowres_spacing_step <= 1:
            raise ConfigError(f"lowres_spacing_step must be > 1, got {self.lowres_spacing_step}")
        if self.lowres_min_voxel_reduction < 1:
            raise ConfigError(
                f"lowres_min_voxel_reduction must be >= 1, got {self.lowres_min_voxel_reduction}"
            )
        if self.deepmedic_min_batch_size > self.deepmedic_max_batch_size:
            raise ConfigError("deepmedic_min_batch_size must be <= deepmedic_max_batch_size")
        if self.deepmedic_min_train_output > self.deepmedic_max_train_output:
            raise ConfigError("deepmedic_min_train_output must be <= deepmedic_max_train_output")

    @classmethod
    def from_record(cls, data: Any) -> PlannerHeuristics:
        """The heuristics a plans.json records: strict, except that the heuristics added
        since that plans schema may be absent; they take :data:`RECORDED_BEFORE`, the values
        such plans were made and trained with."""
        if isinstance(data, dict):
            data = {**RECORDED_BEFORE, **data}
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, partial: bool = False) -> PlannerHeuristics:
        """Build from a dict; ``partial`` allows a subset of fields (the rest default).

        Raises:
            ConfigError: on an unknown key (with the nearest known name), a missing key when
                not ``partial``, or an out-of-range value.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"heuristics must be a JSON object, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in known:
                hint = did_you_mean(key, known)
                raise ConfigError(f"unknown heuristic {key!r}{hint} (known: {', '.join(known)})")
        missing = [k for k in known if k not in data]
        if missing and not partial:
            raise ConfigError(f"heuristics are missing keys: {', '.join(missing)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)


RECORDED_BEFORE: dict[str, Any] = {
    "cpu_unet_min_patch_coverage": 0.0,
    "cpu_unet_min_base_features": 16,
    "unet_loss": "dice_ce",
    "deepmedic_loss": "ce",
    "augmentation_strength": 1.0,
    "mirror_order_fraction": 1.0,
    "mirror_order_min_cases": 1_000_000_000,
}
"""Heuristics added after plans schema 3, with what plans made before them did (DeepMedic
trained with cross-entropy, augmentation at its full probabilities, every axis mirrored:
no dataset has a billion cases)."""


def load_heuristics(path: Path | str | None) -> PlannerHeuristics:
    """Defaults, overridden by the JSON object in ``path`` (a partial set is allowed).

    ``best_heuristics.json`` written by ``autoseg tune --show`` may wrap the values in a
    ``"heuristics"`` key; both forms are accepted.

    Raises:
        ConfigError: if the file is missing, not JSON, or holds unknown / invalid values.
    """
    if path is None:
        return PlannerHeuristics()
    path = Path(path)
    try:
        data = load_json(path.read_text())
    except FileNotFoundError:
        raise ConfigError("heuristics file not found", path=path) from None
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"heuristics file is not valid JSON: {err}", path=path) from None
    if isinstance(data, dict) and isinstance(data.get("heuristics"), dict):
        data = data["heuristics"]
    try:
        return PlannerHeuristics.from_dict(data, partial=True)
    except ConfigError as err:
        raise ConfigError(err.message, path=path) from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid heuristic value: {err}", path=path) from None


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
