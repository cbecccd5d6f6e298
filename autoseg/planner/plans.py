"""Plans: the frozen, versioned description from which networks, trainers and predictors are built.

``plans.json`` is written by ``autoseg plan`` and read by every later step. Parsing is strict:
unknown or missing keys raise :class:`~autoseg.errors.PlansError` listing the expected keys.
Configurations never inherit from each other; every entry is spelled out in full.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg import __version__
from autoseg.atomic import atomic_write_json
from autoseg.data.label_names import ScoreTarget, label_names, score_targets
from autoseg.errors import ConfigError, PlansError
from autoseg.frozendict import FrozenDict
from autoseg.networks import DeepMedicConfig, UNetConfig, network_config_from_dict
from autoseg.planner.decisions import PlanDecision, decisions_from_dict, decisions_to_dict
from autoseg.planner.hardware_target import CpuSpeed, HardwareTarget, network_family
from autoseg.planner.heuristics import LOSSES, PlannerHeuristics
from autoseg.preprocessing.normalize import ChannelNormalization
from autoseg.preprocessing.pipeline import PreprocessingSettings
from autoseg.strict import check_keys, load_json
from autoseg.typing import Shape3, Spacing3

__all__ = [
    "PLANS_SCHEMA_VERSION",
    "AugmentationPlan",
    "ConfigurationPlan",
    "CpuSpeed",
    "HardwareTarget",
    "PlanDecision",
    "Plans",
    "load_plans",
    "network_family",
    "preprocessing_settings",
]

PLANS_SCHEMA_VERSION = 3


def _strict_keys(cls: type, data: Any, what: str) -> None:
    check_keys(what, data, [f.name for f in dataclasses.fields(cls)], PlansError)


def _loss(value: Any) -> str | None:
    if value is not None and value not in LOSSES:
        raise PlansError(f"unknown loss {value!r} in a configuration (known: {', '.join(LOSSES)})")
    return None if value is None else str(value)


def _shape(values: Any) -> Shape3:
    return tuple(int(v) for v in values)  # type: ignore[return-value]


@dataclass(frozen=True)
class AugmentationPlan:
    """Augmentation parameters (batchgenerators) chosen for the data's geometry.

    Angles in degrees per axis (Z, Y, X: rotation *about* that axis). ``rotate_in_plane_only``
    (strongly anisotropic data) rotates and scales each slice in 2D so thick slices are
    never interpolated across, as nnU-Net does. Probabilities are per sample.
    """

    rotation_degrees: tuple[float, float, float] = (30.0, 30.0, 30.0)
    rotate_in_plane_only: bool = False
    p_rotation: float = 0.2
    scale_range: tuple[float, float] = (0.7, 1.4)
    p_scale: float = 0.2
    elastic: bool = False
    p_elastic: float = 0.2
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    gamma_range: tuple[float, float] = (0.7, 1.5)
    p_gamma: float = 0.3
    brightness_range: tuple[float, float] = (0.75, 1.25)
    p_brightness: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    noise_variance: tuple[float, float] = (0.0, 0.1)
    p_noise: float = 0.1
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_blur: float = 0.2
    low_resolution_zoom: tuple[float, float] = (0.5, 1.0)
    p_low_resolution: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def scaled(self, strength: float) -> AugmentationPlan:
        """Every augmentation probability times ``strength``, capped at 1 (mirroring, which
        has none, unchanged)."""
        probabilities = {
            f.name: min(1.0, getattr(self, f.name) * strength)
            for f in dataclasses.fields(self)
            if f.name.startswith("p_")
        }
        return dataclasses.replace(self, **probabilities)

    @classmethod
    def from_dict(cls, data: Any) -> AugmentationPlan:
        _strict_keys(cls, data, "augmentation")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)


@dataclass(frozen=True)
class ConfigurationPlan:
    """One trainable configuration.

    Attributes:
        name: "unet3d", "unet2d", "unet3d_lowres", "unet3d_cascade" or "deepmedic".
        data_identifier: Name of the preprocessed-data folder it trains on.
        target_spacing: Spacing (mm, Z/Y/X) of that data.
        network: The network description (``build_network`` input).
        patch_size: U-Net training patch, or DeepMedic training *output* segment (Z, Y, X).
        inference_patch_size: U-Net sliding-window patch, or DeepMedic inference output segment.
        batch_size: Training batch size.
        precision: "amp" (float16 mixed precision on CUDA), "bf16" (bfloat16 on a CPU that
            computes it natively and was measured faster with it) or "fp32"
            (see :mod:`autoseg.precision`).
        estimated_memory_bytes: Training memory estimate at (patch_size, batch_size).
        estimated_inference_memory_bytes: Inference memory estimate for one window/segment.
        estimated_gflops_per_iteration: Training compute of one iteration (forward+backward).
        foreground_oversample: Fraction of each U-Net batch forced to contain foreground.
        augmentation: Augmentation parameters.
        optimizer: The optimiser training uses unless ``--optimizer`` is given ("sgd",
            "adam", "adamw"; from the heuristics for the family and device).
        lr: Its initial learning rate (unless ``--lr``).
        loss: Its loss unless ``--loss`` is given (one of ``LOSSES``; None in plans written
            before plans named it: the family's default). Region-based training keeps its
            sigmoid loss.
        batch_dice: The U-Net's Dice term sums its statistics over the batch (one Dice per
            class) instead of per sample, as nnU-Net plans it: on for the 2D U-Net (a slice
            often lacks a class the batch holds) and for the full-resolution U-Nets of a
            dataset with a low-resolution stage (patches small against the image).
        previous_stage: The cascade's first stage (``"unet3d_lowres"``): its segmentation,
            one channel per foreground label, is appended to the image channels. None
            otherwise (and then not written to plans.json).
    """

    name: str
    data_identifier: str
    target_spacing: Spacing3
    network: UNetConfig | DeepMedicConfig
    patch_size: Shape3
    inference_patch_size: Shape3
    batch_size: int
    precision: str
    estimated_memory_bytes: int
    estimated_inference_memory_bytes: int
    estimated_gflops_per_iteration: float
    foreground_oversample: float
    augmentation: AugmentationPlan
    optimizer: str = "sgd"
    lr: float = 1e-2
    loss: str | None = None
    batch_dice: bool = False
    previous_stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        data["network"] = self.network.to_dict()
        data["augmentation"] = self.augmentation.to_dict()
        if self.previous_stage is None:
            del data["previous_stage"]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> ConfigurationPlan:
        if isinstance(data, dict):
            # older plans of this schema: no stage, the family's loss, per-sample Dice
            data = {"previous_stage": None, "loss": None, "batch_dice": False, **data}
        _strict_keys(cls, data, "configuration")
        try:
            network = network_config_from_dict(data["network"])
        except (ConfigError, TypeError, ValueError, KeyError) as err:
            raise PlansError(
                f"invalid network in configuration {data.get('name')!r}: {err}"
            ) from None
        return cls(
            name=str(data["name"]),
            data_identifier=str(data["data_identifier"]),
            target_spacing=tuple(float(v) for v in data["target_spacing"]),  # type: ignore[arg-type]
            network=network,
            patch_size=_shape(data["patch_size"]),
            inference_patch_size=_shape(data["inference_patch_size"]),
            batch_size=int(data["batch_size"]),
            precision=str(data["precision"]),
            estimated_memory_bytes=int(data["estimated_memory_bytes"]),
            estimated_inference_memory_bytes=int(data["estimated_inference_memory_bytes"]),
            estimated_gflops_per_iteration=float(data["estimated_gflops_per_iteration"]),
            foreground_oversample=float(data["foreground_oversample"]),
            augmentation=AugmentationPlan.from_dict(data["augmentation"]),
            optimizer=str(data["optimizer"]),
            lr=float(data["lr"]),
            loss=_loss(data["loss"]),
            batch_dice=bool(data["batch_dice"]),
            previous_stage=None if data["previous_stage"] is None else str(data["previous_stage"]),
        )


@dataclass(frozen=True)
class Plans:
    """Everything a training run and a predictor need, decided from the data and the hardware.

    Attributes:
        labels: Label name -> value (consecutive from 0, background and the ignore label
            included).
        regions: Regions (name -> label values), in order: evaluated beside the labels, or,
            for region-based training, the network's outputs.
        normalization: One scheme per input channel.
        use_roi_mask: Cases carry ROI masks; sampling and prediction respect them.
        class_voxel_fraction: Label value -> fraction of all (cropped) voxels.
        class_sampling_weights: Foreground label value -> probability that a forced-foreground
            sample targets that class (rarer classes get more; see ``class_weight_power``).
        configurations: Name -> configuration.
        heuristics: The heuristics the plan was made with.
        hardware: The memory/compute target the plan was fitted to.
        inputs: Digests of the files the plan was computed from (fingerprint, heuristics).
        ignore_label: The ``ignore`` label (unannotated voxels: no class, never predicted),
            or None. Written to plans.json only when set.
        regions_class_order: Region-based training: one sigmoid output per region, and the
            label each region paints in a prediction, in order; None: label-based training
            (softmax over the classes). Written to plans.json only when set.
        decisions: Every candidate configuration -> whether it was planned, and why.
    """

    dataset_name: str
    channel_names: tuple[str, ...]
    labels: Mapping[str, int]
    regions: Mapping[str, tuple[int, ...]]
    normalization: tuple[ChannelNormalization, ...]
    use_roi_mask: bool
    class_voxel_fraction: Mapping[int, float]
    class_sampling_weights: Mapping[int, float]
    configurations: Mapping[str, ConfigurationPlan]
    heuristics: PlannerHeuristics
    hardware: HardwareTarget
    inputs: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = PLANS_SCHEMA_VERSION
    autoseg_version: str = __version__
    ignore_label: int | None = None
    regions_class_order: tuple[int, ...] | None = None
    decisions: Mapping[str, PlanDecision] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (
            "labels",
            "regions",
            "class_voxel_fraction",
            "class_sampling_weights",
            "configurations",
            "inputs",
            "decisions",
        ):
            object.__setattr__(self, name, FrozenDict(dict(getattr(self, name))))
        if self.regions_class_order is not None:
            order = tuple(int(v) for v in self.regions_class_order)
            object.__setattr__(self, "regions_class_order", order)

    @property
    def num_classes(self) -> int:
        """Number of classes of the label maps (background included, the ignore label not)."""
        return max(self.label_values) + 1

    @property
    def region_based(self) -> bool:
        """True for region-based training (one sigmoid output per region)."""
        return self.regions_class_order is not None

    @property
    def training_regions(self) -> tuple[tuple[int, ...], ...]:
        """The label values of each output's region (region-based training), else ()."""
        return tuple(tuple(v) for v in self.regions.values()) if self.region_based else ()

    @property
    def num_outputs(self) -> int:
        """Output channels of the networks: one per region, or one per class."""
        return len(self.regions) if self.region_based else self.num_classes

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def label_values(self) -> tuple[int, ...]:
        """Planned label values (the ignore label not included), sorted (background first)."""
        return tuple(sorted(set(self.labels.values()) - {self.ignore_label}))

    @property
    def foreground_labels(self) -> tuple[int, ...]:
        """Planned label values other than 0 (and the ignore label), sorted."""
        return tuple(v for v in self.label_values if v != 0)

    @property
    def scored_labels(self) -> tuple[int, ...]:
        """The labels every score is computed for: the foreground labels, or none for
        region-based training (its regions are scored instead)."""
        return () if self.region_based else self.foreground_labels

    @property
    def score_targets(self) -> tuple[ScoreTarget, ...]:
        """What the outputs are scored on, in order, with display names: the foreground
        labels (label-based) or the regions (region-based). The pseudo-Dice of
        ``log.jsonl`` follows this order; tables and plots name their columns with
        :attr:`ScoreTarget.title`."""
        return score_targets(
            self.labels,
            self.regions,
            region_based=self.region_based,
            ignore_label=self.ignore_label,
        )

    @property
    def target_names(self) -> dict[str, str]:
        """Display name of every target of a metric table (``"1"`` -> ``"Anterior"``, a
        region -> its name); labels without a name map to ``""``."""
        names = {str(v): n for v, n in label_names(self.labels).items()}
        names.update({name: name for name in self.regions})
        return names

    def configuration(self, name: str) -> ConfigurationPlan:
        """The configuration called ``name``.

        Raises:
            PlansError: if the plan has no such configuration (the message lists them).
        """
        if name not in self.configurations:
            why = self.not_planned(name)
            raise PlansError(
                (why or f"plans have no configuration {name!r}")
                + f"; planned: {', '.join(self.configurations)}"
            )
        return self.configurations[name]

    def not_planned(self, name: str) -> str | None:
        """``"configuration 'X' was not planned for this dataset: <reason>"`` for a candidate
        the planner decided against, else None."""
        decision = self.decisions.get(name)
        if decision is None or decision.planned:
            return None
        return f"configuration {name!r} was not planned for this dataset: {decision.reason}"

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, with int keys as strings."""
        return {
            "schema_version": self.schema_version,
            "autoseg_version": self.autoseg_version,
            "dataset_name": self.dataset_name,
            "channel_names": list(self.channel_names),
            "labels": dict(self.labels),
            "regions": {k: list(v) for k, v in self.regions.items()},
            "normalization": [n.to_dict() for n in self.normalization],
            "use_roi_mask": self.use_roi_mask,
            "class_voxel_fraction": {str(k): v for k, v in self.class_voxel_fraction.items()},
            "class_sampling_weights": {str(k): v for k, v in self.class_sampling_weights.items()},
            "configurations": {k: c.to_dict() for k, c in self.configurations.items()},
            "heuristics": self.heuristics.to_dict(),
            "hardware": self.hardware.to_dict(),
            "inputs": dict(self.inputs),
            "decisions": decisions_to_dict(self.decisions),
            **({} if self.ignore_label is None else {"ignore_label": self.ignore_label}),
            **(
                {}
                if self.regions_class_order is None
                else {"regions_class_order": list(self.regions_class_order)}
            ),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Plans:
        """Strict inverse of :meth:`to_dict`.

        Raises:
            PlansError: on a schema version other than this autoseg's, or unknown/missing keys.
        """
        if isinstance(data, dict) and data.get("schema_version") != PLANS_SCHEMA_VERSION:
            raise PlansError(
                f"plans schema_version {data.get('schema_version')!r} is not "
                f"{PLANS_SCHEMA_VERSION}; re-run 'autoseg plan' with this autoseg version"
            )
        optional = {"ignore_label": None, "regions_class_order": None}
        data = {**optional, **data} if isinstance(data, dict) else data
        _strict_keys(cls, data, "plans")
        try:
            heuristics = PlannerHeuristics.from_record(data["heuristics"])
            normalization = tuple(ChannelNormalization.from_dict(n) for n in data["normalization"])
            decisions = decisions_from_dict(data["decisions"])
        except (ConfigError, TypeError, ValueError) as err:
            raise PlansError(f"invalid plans: {err}") from None
        return cls(
            dataset_name=str(data["dataset_name"]),
            channel_names=tuple(data["channel_names"]),
            labels={str(k): int(v) for k, v in data["labels"].items()},
            regions={k: tuple(int(x) for x in v) for k, v in data["regions"].items()},
            normalization=normalization,
            use_roi_mask=bool(data["use_roi_mask"]),
            class_voxel_fraction={
                int(k): float(v) for k, v in data["class_voxel_fraction"].items()
            },
            class_sampling_weights={
                int(k): float(v) for k, v in data["class_sampling_weights"].items()
            },
            configurations={
                k: ConfigurationPlan.from_dict(v) for k, v in data["configurations"].items()
            },
            heuristics=heuristics,
            hardware=HardwareTarget.from_dict(data["hardware"]),
            inputs=dict(data["inputs"]),
            schema_version=int(data["schema_version"]),
            autoseg_version=str(data["autoseg_version"]),
            ignore_label=None if data["ignore_label"] is None else int(data["ignore_label"]),
            regions_class_order=(
                None
                if data["regions_class_order"] is None
                else tuple(int(v) for v in data["regions_class_order"])
            ),
            decisions=decisions,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Plans:
        return cls.from_dict(load_json(text))

    def save(self, path: Path | str) -> None:
        """Write plans.json atomically."""
        atomic_write_json(path, self.to_dict())


def preprocessing_settings(plans: Plans, configuration: str) -> PreprocessingSettings:
    """What preprocessing ``configuration`` of ``plans`` needs (its data identifier,
    spacing, normalisation, ROI use, anisotropy rule and label values).

    Raises:
        PlansError: if the plan has no such configuration.
    """
    config = plans.configuration(configuration)
    return PreprocessingSettings(
        data_identifier=config.data_identifier,
        target_spacing=config.target_spacing,
        normalization=plans.normalization,
        use_roi_mask=plans.use_roi_mask,
        anisotropy_threshold=plans.heuristics.anisotropy_threshold,
        label_values=plans.label_values,
    )


def load_plans(path: Path | str) -> Plans:
    """Read plans.json.

    Raises:
        PlansError: if the file is missing, not JSON, or does not match the schema.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PlansError(
            "plans.json not found; run 'autoseg plan DATASET' first", path=path
        ) from None
    try:
        return Plans.from_json(text)
    except json.JSONDecodeError as err:
        raise PlansError(f"plans.json is not valid JSON: {err}", path=path) from None
    except PlansError as err:
        raise PlansError(err.message, path=path) from None


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
