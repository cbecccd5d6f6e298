"""Which trained models a prediction uses: configurations, folds, checkpoints, best.json.

``--config best`` reads ``W/best.json`` (written by find-best): its configurations, folds and
postprocessing rule. A named configuration uses every trained fold (or ``--folds``). A fold
is trained when ``results/<config>/fold_<k>/checkpoint_<name>.pt`` exists (``final`` by
default). Every checkpoint must carry the same plans as the workspace's plans.json.

A cascade (a configuration with a ``previous_stage``) also needs its first stage: the first
stage's every trained cross-validation fold (``stage_folds``), whose ensemble gives the
segmentation the second stage takes as input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg.errors import CheckpointError, ConfigError, PlansError
from autoseg.frozendict import FrozenDict
from autoseg.log import get_logger
from autoseg.planner.plans import Plans
from autoseg.strict import did_you_mean, load_json
from autoseg.workspace import CHECKPOINT_NAMES, Workspace

__all__ = [
    "ModelSelection",
    "plans_differences",
    "read_best_json",
    "select_models",
    "trained_folds",
]

logger = get_logger(__name__)


@dataclass(frozen=True)
class ModelSelection:
    """The checkpoints one prediction ensembles, and the postprocessing rule to apply.

    Attributes:
        configs: Configuration names, in ensembling order.
        folds: Configuration -> folds used (ints 0..4, or "all").
        checkpoint: Checkpoint name ("final", "best" or "latest").
        postprocessing: Foreground label -> keep only its largest component (best.json's
            rule; empty for a named configuration).
        source: "best.json" or "config".
        stage_folds: First stage of a selected cascade -> the folds of it that run first.
    """

    configs: tuple[str, ...]
    folds: Mapping[str, tuple[int | str, ...]]
    checkpoint: str
    postprocessing: Mapping[int, bool] = field(default_factory=dict)
    source: str = "config"
    stage_folds: Mapping[str, tuple[int | str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folds", FrozenDict({k: tuple(v) for k, v in self.folds.items()}))
        object.__setattr__(self, "postprocessing", FrozenDict(dict(self.postprocessing)))
        stages = FrozenDict({k: tuple(v) for k, v in self.stage_folds.items()})
        object.__setattr__(self, "stage_folds", stages)

    def checkpoint_paths(self, workspace: Workspace) -> dict[str, list[Path]]:
        """Configuration -> checkpoint file of each of its folds."""
        return {
            config: [workspace.checkpoint_path(config, f, self.checkpoint) for f in folds]
            for config, folds in self.folds.items()
        }

    def stage_selection(self) -> ModelSelection:
        """The first stages of the selected cascades, as a selection of their own."""
        return ModelSelection(tuple(self.stage_folds), self.stage_folds, self.checkpoint)

    def all_checkpoint_paths(self, workspace: Workspace) -> list[Path]:
        """Every checkpoint the prediction reads (the first stages' included), once each."""
        paths = [p for group in self.checkpoint_paths(workspace).values() for p in group]
        for group in self.stage_selection().checkpoint_paths(workspace).values():
            paths += group
        return list(dict.fromkeys(paths))


def trained_folds(workspace: Workspace, config: str, checkpoint: str = "final") -> list[int | str]:
    """Folds of ``config`` whose checkpoint ``checkpoint_<checkpoint>.pt`` exists: the
    numbered ones (any number of them: a user's split may hold more than five), then
    ``all``."""
    numbered = [int(p.name[len("fold_") :]) for p in workspace.numbered_fold_dirs(config)]
    folds: list[int | str] = [*sorted(numbered), "all"]
    return [f for f in folds if workspace.checkpoint_path(config, f, checkpoint).is_file()]


def _check_checkpoint_name(checkpoint: str) -> None:
    if checkpoint not in CHECKPOINT_NAMES:
        raise ConfigError(
            f"checkpoint must be one of {', '.join(CHECKPOINT_NAMES)}, got {checkpoint!r}"
        )


def _folds_for(
    workspace: Workspace, config: str, folds: Sequence[int | str] | None, checkpoint: str
) -> tuple[int | str, ...]:
    """The requested folds (all trained ones by default), each checked to exist."""
    trained = trained_folds(workspace, config, checkpoint)
    where = workspace.config_dir(config)
    if folds is None:
        numeric = [f for f in trained if f != "all"]
        chosen = numeric or trained
        if not chosen:
            others = sorted(p.relative_to(where).as_posix() for p in where.glob("fold_*/*.pt"))
            hint = f"; checkpoints present: {', '.join(others)}" if others else ""
            raise CheckpointError(
                f"configuration {config!r} has no trained fold (no fold_<k>/checkpoint_"
                f"{checkpoint}.pt){hint}; train it with 'autoseg train' first",
                path=where,
            )
        return tuple(chosen)
    missing = [f for f in folds if f not in trained]
    if missing:
        have = ", ".join(str(f) for f in trained) or "none"
        raise CheckpointError(
            f"fold(s) {', '.join(str(f) for f in missing)} of {config!r} have no "
            f"checkpoint_{checkpoint}.pt; trained folds: {have}",
            path=where,
        )
    return tuple(folds)


def read_best_json(path: Path) -> tuple[tuple[str, ...], tuple[int | str, ...], dict[int, bool]]:
    """Read best.json: ``(configs, folds, postprocessing rule)``.

    Raises:
        PlansError: if the file is missing, not JSON, or lacks the keys prediction needs.
    """
    if not path.is_file():
        raise PlansError(
            "best.json not found: run 'autoseg find-best' first, or pass --config with a "
            "configuration name",
            path=path,
        )
    try:
        data: Any = load_json(path.read_text())
    except (OSError, ValueError) as err:
        raise PlansError(f"best.json is not valid JSON: {err}", path=path) from None
    required = ("configs", "folds", "postprocessing")
    if not isinstance(data, dict) or any(k not in data for k in required):
        raise PlansError(f"best.json must hold the keys {', '.join(required)}", path=path)
    configs, folds, rule = data["configs"], data["folds"], data["postprocessing"]
    if (
        not isinstance(configs, list)
        or not configs
        or not all(isinstance(c, str) for c in configs)
        or not isinstance(folds, list)
        or not folds
        or not isinstance(rule, dict)
    ):
        raise PlansError(
            "best.json: 'configs' must be a non-empty list of names, 'folds' a non-empty "
            "list and 'postprocessing' an object {label: true|false}",
            path=path,
        )
    try:
        fold_values = tuple(f if f == "all" else int(f) for f in folds)
        postprocessing = {int(k): bool(v) for k, v in rule.items()}
    except (TypeError, ValueError) as err:
        raise PlansError(f"best.json: invalid folds or postprocessing ({err})", path=path) from None
    return tuple(configs), fold_values, postprocessing


def _check_config(plans: Plans, config: str) -> None:
    why = plans.not_planned(config)
    if why is not None:
        raise ConfigError(f"{why}; planned: {', '.join(plans.configurations)}")
    if config not in plans.configurations:
        planned = list(plans.configurations)
        hint = did_you_mean(config, planned)
        raise ConfigError(f"unknown configuration {config!r}; planned: {', '.join(planned)}{hint}")


def select_models(
    workspace: Workspace,
    plans: Plans,
    config: str | None = None,
    folds: Sequence[int | str] | None = None,
    checkpoint: str = "final",
) -> ModelSelection:
    """Decide which configurations and folds to ensemble.

    Args:
        workspace: The (trained) workspace.
        plans: Its plans.
        config: ``"best"`` (best.json), a configuration name, or None: best.json when it
            exists, else the only configuration with trained folds.
        folds: Folds to use (default: best.json's, else every trained fold).
        checkpoint: Checkpoint name: "final" (default), "best" or "latest".

    Raises:
        ConfigError: for an unknown configuration or checkpoint name, or an ambiguous default.
        PlansError: for a missing or malformed best.json.
        CheckpointError: when a requested fold is not trained, or none is.
    """
    _check_checkpoint_name(checkpoint)
    if config is None:
        if workspace.best_json.is_file():
            config = "best"
        else:
            candidates = [
                c for c in plans.configurations if trained_folds(workspace, c, checkpoint)
            ]
            if len(candidates) != 1:
                found = ", ".join(candidates) or "none"
                raise ConfigError(
                    f"no best.json, and {len(candidates)} configurations have trained folds "
                    f"({found}); pass --config NAME"
                )
            config = candidates[0]
    if config == "best":
        configs, best_folds, rule = read_best_json(workspace.best_json)
        for name in configs:
            _check_config(plans, name)
        chosen = folds if folds is not None else best_folds
        selected = {c: _folds_for(workspace, c, chosen, checkpoint) for c in configs}
        stages = _stage_folds(workspace, plans, configs, checkpoint)
        return ModelSelection(configs, selected, checkpoint, rule, "best.json", stages)
    _check_config(plans, config)
    selected = {config: _folds_for(workspace, config, folds, checkpoint)}
    stages = _stage_folds(workspace, plans, (config,), checkpoint)
    return ModelSelection((config,), selected, checkpoint, stage_folds=stages)


def _stage_folds(
    workspace: Workspace, plans: Plans, configs: Sequence[str], checkpoint: str
) -> dict[str, tuple[int | str, ...]]:
    """First stage -> its trained cross-validation folds, for every cascade in ``configs``.

    Raises:
        CheckpointError: when a cascade's first stage has no trained fold.
    """
    stages: dict[str, tuple[int | str, ...]] = {}
    for name in configs:
        stage = plans.configuration(name).previous_stage
        if stage is not None and stage not in stages:
            try:
                stages[stage] = _folds_for(workspace, stage, None, checkpoint)
            except CheckpointError as err:
                raise CheckpointError(
                    f"{name} predicts on the segmentation of its first stage {stage}, which "
                    f"has no trained fold ({err.message})",
                    path=err.path,
                ) from None
    return stages


def plans_differences(expected: Plans, found: Plans) -> list[str]:
    """Dotted keys where two plans differ (top level, and per configuration)."""
    a, b = expected.to_dict(), found.to_dict()
    keys: list[str] = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if (
            key == "configurations"
            and isinstance(a.get(key), dict)
            and isinstance(b.get(key), dict)
        ):
            for name in sorted(set(a[key]) | set(b[key])):
                ca, cb = a[key].get(name), b[key].get(name)
                if ca != cb and isinstance(ca, dict) and isinstance(cb, dict):
                    keys += [
                        f"configurations.{name}.{k}"
                        for k in sorted(set(ca) | set(cb))
                        if ca.get(k) != cb.get(k)
                    ]
                elif ca != cb:
                    keys.append(f"configurations.{name}")
        else:
            keys.append(key)
    return keys
