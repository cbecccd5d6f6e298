"""autoseg.ensembling: find-best over configurations and their ensembles, postprocessing.

:func:`find_best` compares cross-validated configurations and ensembles and writes
``best.json`` (:class:`BestChoice`); :mod:`autoseg.ensembling.postprocessing` holds the
largest-connected-component rule it decides on.
"""

from __future__ import annotations

from autoseg.ensembling.best_choice import (
    BEST_SCHEMA_VERSION,
    BestChoice,
    CandidateScore,
    Comparison,
    load_best_choice,
)
from autoseg.ensembling.bootstrap import PairedDifference, bootstrap_score_ci, paired_bootstrap
from autoseg.ensembling.find_best import find_best
from autoseg.ensembling.oof_ensembles import ensemble_label_map
from autoseg.ensembling.postprocessing import (
    PostprocessingDecision,
    apply_postprocessing,
    decide_postprocessing,
    keep_largest_component,
    rule_from_decisions,
)
from autoseg.ensembling.report import format_best_choice, workspace_target_names

__all__ = [
    "BEST_SCHEMA_VERSION",
    "BestChoice",
    "CandidateScore",
    "Comparison",
    "PairedDifference",
    "PostprocessingDecision",
    "apply_postprocessing",
    "bootstrap_score_ci",
    "decide_postprocessing",
    "ensemble_label_map",
    "find_best",
    "format_best_choice",
    "keep_largest_component",
    "load_best_choice",
    "paired_bootstrap",
    "rule_from_decisions",
    "workspace_target_names",
]
