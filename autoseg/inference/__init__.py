"""Inference: sliding windows with Gaussian weighting, mirroring TTA, memory choice, DeepMedic
tiling, fold/configuration ensembling (:class:`Predictor`) and export to the original geometry.

Arrays are C×Z×Y×X; patch sizes and window starts are (Z, Y, X) in voxels. TTA and ensembling
average softmax probabilities across folds and configurations (logits across mirrors and
overlapping windows); see :mod:`autoseg.inference.probabilities`.
"""

from __future__ import annotations

from autoseg.inference.deepmedic_tiling import FeatureLayer, predict_deepmedic, tile_output_shape
from autoseg.inference.export import export_prediction, probabilities_to_original
from autoseg.inference.model_archive import export_model, extract_model, opened_model
from autoseg.inference.predictor import (
    Prediction,
    PredictionOptions,
    Predictor,
    predict_probabilities,
    predict_with_features,
)
from autoseg.inference.sliding_window import (
    compute_window_starts,
    gaussian_importance_map,
    pad_to_patch,
    sliding_window_inference,
)
from autoseg.inference.tta import mirror_combinations, predict_with_mirroring
from autoseg.inference.window_memory import (
    CPU_WINDOW_BATCH,
    WindowResources,
    choose_batch_and_accumulation,
)

__all__ = [
    "CPU_WINDOW_BATCH",
    "FeatureLayer",
    "Prediction",
    "PredictionOptions",
    "Predictor",
    "WindowResources",
    "choose_batch_and_accumulation",
    "compute_window_starts",
    "export_model",
    "export_prediction",
    "extract_model",
    "gaussian_importance_map",
    "mirror_combinations",
    "opened_model",
    "pad_to_patch",
    "predict_deepmedic",
    "predict_probabilities",
    "predict_with_features",
    "predict_with_mirroring",
    "probabilities_to_original",
    "sliding_window_inference",
    "tile_output_shape",
]
