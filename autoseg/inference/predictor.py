"""The predictor: trained folds of one or more configurations, applied to raw cases.

``Predictor.from_workspace(ws, config, folds)`` loads every chosen checkpoint (checking that it
was trained with the workspace's plans); ``predict_case(case, dataset)`` reads and checks the
case, preprocesses it exactly as in training, and returns the ensembled probabilities on the
preprocessed grid; ``export(prediction, out_path, reference=...)`` writes the label map in
the original geometry, with the postprocessing rule of best.json applied.

Ensembling: each configuration's folds are averaged as probabilities (softmax, or one
sigmoid per region for region-based training;
:func:`~autoseg.inference.probabilities.predict_probabilities`); configurations (an ensemble
chosen by find-best) are then averaged with equal weights on the first configuration's grid
(the others' probabilities are resampled to it; every grid spans the same crop box).

A cascade runs both stages: the first stage's folds (``ModelSelection.stage_folds``) predict
the case on their own grid, their ensemble's label map in the original geometry is brought
onto the cascade's grid as training brought its out-of-fold predictions
(:mod:`autoseg.inference.cascade`), and the second stage's folds predict on the image plus
that segmentation, one channel per foreground label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoseg.data.case_io import CaseArrays, load_case
from autoseg.data.dataset import Case, Dataset
from autoseg.errors import CheckpointError, ConfigError, InputError
from autoseg.inference.cascade import stage_on_grid, with_stage_channels
from autoseg.inference.checkpoint import load_model
from autoseg.inference.deepmedic_tiling import FeatureLayer
from autoseg.inference.export import export_prediction, original_labels, write_feature_maps
from autoseg.inference.models import ModelSelection, plans_differences, select_models
from autoseg.inference.probabilities import (
    predict_probabilities,
    predict_with_features,
    resolve_device,
)
from autoseg.log import get_logger
from autoseg.networks import DeepMedicConfig
from autoseg.planner.plans import Plans, load_plans, preprocessing_settings
from autoseg.preprocessing.pipeline import preprocess_arrays
from autoseg.preprocessing.resample import resample_probabilities
from autoseg.preprocessing.store import CaseProperties, PreprocessedCase
from autoseg.workspace import Workspace

__all__ = [
    "Prediction",
    "PredictionOptions",
    "Predictor",
    "PreparedCase",
    "load_networks",
    "predict_probabilities",
    "predict_with_features",
]

logger = get_logger(__name__)


@dataclass(frozen=True)
class PredictionOptions:
    """How to predict.

    Attributes:
        use_mirroring: Test-time mirroring (along the plans' mirror axes).
        step_fraction: U-Net window step as a fraction of the patch, in (0, 1].
        amp: Mixed precision (None: on CUDA when the plan says "amp").
        feature_layers: DeepMedic layers whose feature maps to keep.
    """

    use_mirroring: bool = True
    step_fraction: float = 0.5
    amp: bool | None = None
    feature_layers: tuple[FeatureLayer, ...] = ()


@dataclass(frozen=True)
class PreparedCase:
    """A case read, checked and preprocessed for every configuration of the predictor.

    Attributes:
        case_id: The case.
        preprocessed: Data identifier -> the case preprocessed for it.
        roi: ROI mask Z×Y×X in the original geometry (when the plans use ROI masks).
    """

    case_id: str
    preprocessed: Mapping[str, PreprocessedCase]
    roi: np.ndarray | None


@dataclass(frozen=True)
class Prediction:
    """Ensembled probabilities of one case, before export.

    Attributes:
        case_id: The case.
        probabilities: float32 K×Z×Y×X on the grid of ``properties`` (preprocessed grid of
            the first configuration).
        properties: Maps that grid back to the original image.
        roi: ROI mask Z×Y×X in the original geometry, or None.
        features: DeepMedic feature maps, name -> float32 F×Z×Y×X on the grid of
            ``feature_properties``.
        feature_properties: Properties of the DeepMedic configuration's grid.
    """

    case_id: str
    probabilities: np.ndarray
    properties: CaseProperties
    roi: np.ndarray | None = None
    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    feature_properties: CaseProperties | None = None


def load_networks(
    workspace: Workspace, plans: Plans, selection: ModelSelection, device: torch.device
) -> dict[str, list[nn.Module]]:
    """Load every selected checkpoint (eval mode, on ``device``), configuration by configuration.

    Raises:
        CheckpointError: for an unreadable checkpoint, one of another configuration, or one
            trained with other plans than ``plans``.
    """
    networks: dict[str, list[nn.Module]] = {}
    for config, paths in selection.checkpoint_paths(workspace).items():
        networks[config] = []
        for path in paths:
            network, checkpoint = load_model(path, device=str(device))
            if checkpoint.configuration != config:
                raise CheckpointError(
                    f"checkpoint holds configuration {checkpoint.configuration!r}, "
                    f"expected {config!r}",
                    path=path,
                )
            differences = plans_differences(plans, checkpoint.plans)
            if differences:
                raise CheckpointError(
                    f"checkpoint was trained with other plans than {workspace.plans_json} "
                    f"(they differ in {', '.join(differences[:6])}); re-train, or predict "
                    "with the workspace it was trained in",
                    path=path,
                )
            networks[config].append(network)
        logger.info("%s: %d fold(s) %s", config, len(paths), list(selection.folds[config]))
    return networks


class Predictor:
    """Trained networks of the selected configurations and folds, ready to predict cases."""

    def __init__(
        self,
        plans: Plans,
        selection: ModelSelection,
        networks: Mapping[str, Sequence[nn.Module]],
        device: torch.device,
        options: PredictionOptions = PredictionOptions(),
        stage_networks: Mapping[str, Sequence[nn.Module]] | None = None,
    ) -> None:
        self.plans = plans
        self.selection = selection
        self.networks = {k: list(v) for k, v in networks.items()}
        self.stage_networks = {k: list(v) for k, v in (stage_networks or {}).items()}
        self.device = device
        self.options = options
        used = (*selection.configs, *selection.stage_folds)
        self.settings = {c: preprocessing_settings(plans, c) for c in used}
        for config in selection.configs:
            stage = plans.configuration(config).previous_stage
            if stage is not None and not self.stage_networks.get(stage):
                raise ConfigError(
                    f"{config} is a cascade: predicting with it needs the networks of its "
                    f"first stage {stage}"
                )
        if options.feature_layers and not any(
            isinstance(plans.configuration(c).network, DeepMedicConfig) for c in selection.configs
        ):
            raise ConfigError(
                "--save-feature-maps needs a DeepMedic configuration; predicting with "
                f"{', '.join(selection.configs)}"
            )

    @classmethod
    def from_workspace(
        cls,
        workspace: Workspace,
        config: str | None = None,
        folds: Sequence[int | str] | None = None,
        *,
        checkpoint: str = "final",
        device: torch.device | str | None = None,
        options: PredictionOptions = PredictionOptions(),
    ) -> Predictor:
        """Load the plans and the chosen checkpoints of a trained workspace.

        Args:
            workspace: The workspace (or an extracted model archive).
            config: "best" (best.json), a configuration name, or None (best.json if present,
                else the only trained configuration).
            folds: Folds to use (default: best.json's, else every trained fold).
            checkpoint: "final", "best" or "latest".
            device: Where to run (default: CUDA when available, else CPU).
            options: Mirroring, step, precision, feature maps.

        Raises:
            PlansError, ConfigError, CheckpointError: see :func:`select_models` and
                :func:`load_networks`.
        """
        plans = load_plans(workspace.plans_json)
        selection = select_models(workspace, plans, config, folds, checkpoint)
        resolved = resolve_device(device)
        networks = load_networks(workspace, plans, selection, resolved)
        stages = load_networks(workspace, plans, selection.stage_selection(), resolved)
        return cls(plans, selection, networks, resolved, options, stages)

    @property
    def dataset_stub(self) -> Dataset:
        """An empty dataset with the plans' channels and labels (for checking inputs)."""
        return Dataset(
            name=self.plans.dataset_name,
            root=Path("."),
            format="nnunet",
            channel_names=self.plans.channel_names,
            labels=self.plans.labels,
            cases=(),
        )

    def prepare(self, case: Case, dataset: Dataset | None = None) -> PreparedCase:
        """Read, check and preprocess a case for every configuration.

        Raises:
            DatasetError: if the case fails a check of ``autoseg verify``.
            InputError: if the plans use ROI masks and the case has none.
        """
        if self.plans.use_roi_mask and case.roi is None:
            raise InputError(
                "the model was trained with ROI masks and this case has none (folder input: "
                "put <case>_roi<ending> next to its images; CSV: a 'roi' column; files: --roi)",
                case_id=case.case_id,
            )
        arrays = load_case(case, dataset or self.dataset_stub, load_label=False)
        return self.prepare_arrays(arrays)

    def prepare_arrays(self, arrays: CaseArrays) -> PreparedCase:
        """Preprocess already loaded arrays for every configuration (once per data id)."""
        preprocessed: dict[str, PreprocessedCase] = {}
        for settings in self.settings.values():
            if settings.data_identifier not in preprocessed:
                preprocessed[settings.data_identifier] = preprocess_arrays(arrays, settings)
        roi = arrays.roi if self.plans.use_roi_mask else None
        return PreparedCase(arrays.case_id, preprocessed, roi)

    def predict(self, prepared: PreparedCase) -> Prediction:
        """Ensembled probabilities of a prepared case (folds, then configurations)."""
        total: np.ndarray | None = None
        reference: CaseProperties | None = None
        features: dict[str, np.ndarray] = {}
        feature_properties = None
        for config in self.selection.configs:
            case = prepared.preprocessed[self.settings[config].data_identifier]
            plan = self.plans.configuration(config)
            wants_features = isinstance(plan.network, DeepMedicConfig)
            image = np.asarray(case.image)
            if plan.previous_stage is not None:
                stage = self._first_stage_labels(plan.previous_stage, prepared, case.properties)
                image = with_stage_channels(image, stage, self.plans.foreground_labels)
            probabilities, found = predict_with_features(
                self.networks[config],
                plan,
                image,
                use_mirroring=self.options.use_mirroring,
                step_fraction=self.options.step_fraction,
                device=self.device,
                amp=self.options.amp,
                roi=case.roi,
                feature_layers=self.options.feature_layers if wants_features else (),
                region_based=self.plans.region_based,
            )
            if found:
                features = {layer.name: stack for layer, stack in found.items()}
                feature_properties = case.properties
            if reference is None or total is None:
                total, reference = probabilities, case.properties
                continue
            if probabilities.shape != total.shape:
                probabilities = resample_probabilities(
                    probabilities,
                    case.properties.target_spacing,
                    new_shape=reference.shape_after_resample,
                    anisotropy_threshold=self.plans.heuristics.anisotropy_threshold,
                )
            total += probabilities
        assert total is not None and reference is not None  # configs is never empty
        if len(self.selection.configs) > 1:
            total /= len(self.selection.configs)
        return Prediction(
            prepared.case_id, total, reference, prepared.roi, features, feature_properties
        )

    def _first_stage_labels(
        self, stage: str, prepared: PreparedCase, properties: CaseProperties
    ) -> np.ndarray:
        """The first stage's fold ensemble of a case, as a label map on the grid of
        ``properties`` (the cascade's)."""
        case = prepared.preprocessed[self.settings[stage].data_identifier]
        probabilities = predict_probabilities(
            self.stage_networks[stage],
            self.plans.configuration(stage),
            np.asarray(case.image),
            use_mirroring=self.options.use_mirroring,
            step_fraction=self.options.step_fraction,
            device=self.device,
            amp=self.options.amp,
            roi=case.roi,
            region_based=self.plans.region_based,
        )
        threshold = self.plans.heuristics.anisotropy_threshold
        labels = original_labels(
            probabilities,
            case.properties,
            roi=prepared.roi,
            anisotropy_threshold=threshold,
            regions_class_order=self.plans.regions_class_order,
        )
        return stage_on_grid(labels, properties, anisotropy_threshold=threshold)

    def predict_case(self, case: Case, dataset: Dataset | None = None) -> Prediction:
        """Read, check, preprocess and predict one case."""
        return self.predict(self.prepare(case, dataset))

    def export(
        self,
        prediction: Prediction,
        out_path: Path,
        *,
        reference: Path,
        probabilities_path: Path | None = None,
        feature_dir: Path | None = None,
    ) -> np.ndarray:
        """Write the label map (postprocessed), and optionally probabilities and feature maps.

        Returns:
            The label map Z×Y×X in the original geometry.
        """
        threshold = self.plans.heuristics.anisotropy_threshold
        if prediction.features and prediction.feature_properties is not None:
            write_feature_maps(
                prediction.features,
                prediction.feature_properties,
                feature_dir or out_path.parent,
                prediction.case_id,
                anisotropy_threshold=threshold,
            )
        return export_prediction(
            prediction.probabilities,
            prediction.properties,
            out_path,
            reference=reference,
            probabilities_path=probabilities_path,
            postprocessing=self.selection.postprocessing,
            roi=prediction.roi,
            anisotropy_threshold=threshold,
            regions_class_order=self.plans.regions_class_order,
        )
