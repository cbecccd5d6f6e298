"""A workspace belongs to one dataset once models are trained in it.

``autoseg plan`` into a workspace whose ``source.json`` names another dataset, while
``results/`` holds trained folds, would replace the plans those folds were trained with
(prediction and find-best would then refuse the checkpoints, or worse, mix two datasets'
cases in ``splits.json``). It is refused unless ``--overwrite``, which deletes the other
dataset's ``results/``, ``splits.json`` and ``best.json`` first. Re-planning the same dataset
(new heuristics, changed files) is not affected.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from autoseg.artefacts import read_json
from autoseg.errors import PlansError
from autoseg.log import get_logger
from autoseg.workspace import Workspace

__all__ = ["check_same_source"]

_log = get_logger(__name__)


def _trained_folds(workspace: Workspace) -> list[Path]:
    return sorted({p.parent for p in workspace.results_dir.glob("*/fold_*/checkpoint_*.pt")})


def check_same_source(workspace: Workspace, dataset_path: Path, *, overwrite: bool) -> None:
    """Refuse to plan ``dataset_path`` into a workspace trained on another dataset.

    Raises:
        PlansError: when ``source.json`` names another dataset, folds are trained, and not
            ``overwrite`` (then the old results are deleted instead).
    """
    source = read_json(workspace.source_json)
    if not isinstance(source, dict) or not isinstance(source.get("dataset"), str):
        return
    recorded, given = Path(source["dataset"]), Path(dataset_path).resolve()
    if recorded == given:
        return
    trained = _trained_folds(workspace)
    if not trained:
        return
    if not overwrite:
        raise PlansError(
            f"holds {len(trained)} fold(s) trained on {recorded}; planning {given} here would "
            "replace their plans. Plan into another --work, or pass --overwrite to delete "
            "results/, splits.json and best.json and plan the new dataset",
            path=workspace.root,
        )
    _log.warning(
        "--overwrite: deleting the results of %s (%d trained fold(s)) to plan %s",
        recorded,
        len(trained),
        given,
    )
    shutil.rmtree(workspace.results_dir, ignore_errors=True)
    for path in (workspace.splits_json, workspace.best_json):
        path.unlink(missing_ok=True)
