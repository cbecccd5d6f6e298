"""``autoseg find-best``: pick the configuration or ensemble with the best cross-validated score.

Candidates are every trained configuration (all folds of ``splits.json`` present) and every
ensemble of two or more of them. A configuration is scored on its out-of-fold label maps
(:func:`autoseg.evaluation.cv.summarise_cv`); an ensemble on the argmax of the mean of its
members' out-of-fold softmax (``validation/<case>.npz``), read case by case so at most one
case's probabilities are in memory. The score is the mean over foreground labels of the
per-label means over cases (NaN-aware, as :func:`autoseg.evaluation.summarize`).

The winner's postprocessing is decided per label on its out-of-fold predictions
(:func:`autoseg.ensembling.postprocessing.decide_postprocessing`: kept only when it strictly
helps). The winner is compared with the runner-up by a paired case-level bootstrap. Outputs:
``W/best.json`` (:mod:`autoseg.ensembling.best_choice`) and ``W/results/cv_comparison.png``.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import shlex
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from autoseg.artefacts import content_digest, files_digest, is_current, text_digest
from autoseg.data.label_names import label_names
from autoseg.ensembling.best_choice import BestChoice, CandidateScore, Comparison, load_best_choice
from autoseg.ensembling.bootstrap import bootstrap_score_ci, paired_bootstrap
from autoseg.ensembling.oof_ensembles import (
    OOFPredictions,
    OutputSpec,
    ensemble_tables,
    members_per_case,
)
from autoseg.ensembling.plot import plot_cv_comparison
from autoseg.ensembling.postprocessing import (
    PostprocessingDecision,
    decide_postprocessing,
    rule_from_decisions,
)
from autoseg.errors import ConfigError, InputError
from autoseg.evaluation.cv import LOWER_IS_BETTER, METRIC_CHOICES, metric_column, summarise_cv
from autoseg.evaluation.oof import OOFCase, out_of_fold_cases, read_splits, trained_fold_dirs
from autoseg.evaluation.summary import summarize
from autoseg.log import get_logger
from autoseg.planner.plans import Plans, load_plans
from autoseg.strict import did_you_mean
from autoseg.workspace import NUM_FOLDS, Workspace

__all__ = ["find_best"]

logger = get_logger(__name__)


def _select_configs(
    workspace: Workspace, planned: Sequence[str], configs: Sequence[str] | None
) -> list[str]:
    if configs is not None:
        chosen = list(dict.fromkeys(configs))
        for name in chosen:
            if name not in planned:
                hint = did_you_mean(name, planned)
                raise ConfigError(
                    f"configuration {name!r} is not in plans.json; planned: "
                    f"{', '.join(planned)}{hint}"
                )
        if not chosen:
            raise ConfigError("--configs names no configuration")
        return chosen
    chosen = [name for name in planned if trained_fold_dirs(workspace, name)]
    if not chosen:
        raise InputError(
            "no trained configuration (no results/<config>/fold_<k>/validation); run "
            f"'autoseg train --work {shlex.quote(str(workspace.root))} --config "
            f"{planned[0] if planned else 'CONFIG'} fold=0..{NUM_FOLDS - 1}' first",
            path=workspace.results_dir,
        )
    return chosen


def _score_keys(plans: Plans) -> tuple[str, list[str]]:
    """The kind and keys of the targets the score averages: the foreground labels, or the
    regions for region-based training."""
    return ("region" if plans.region_based else "label"), [t.key for t in plans.score_targets]


def _class_matrix(df: pd.DataFrame, scored: tuple[str, list[str]], column: str) -> np.ndarray:
    """Cases (sorted) x scored targets table of one metric, NaN where undefined."""
    kind, keys = scored
    rows = df[df["kind"] == kind].astype({"target": str})
    table = rows.pivot(index="case", columns="target", values=column)
    table = table.reindex(index=sorted(table.index), columns=keys)
    return table.to_numpy(dtype=np.float64)


def _case_scores(matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cases stay NaN
        return np.asarray(np.nanmean(matrix, axis=1)) if matrix.size else np.zeros(0)


def _candidate(
    configs: tuple[str, ...],
    df: pd.DataFrame,
    labels: Sequence[int],
    scored: tuple[str, list[str]],
    column: str,
    num_bootstrap: int,
    seed: int,
) -> CandidateScore:
    summary = summarize(df)
    targets = summary["targets"]
    return CandidateScore(
        configs=configs,
        score=summary["foreground_mean"][column],
        per_class={str(v): targets[str(v)]["mean"][column] for v in labels},
        per_region={k: t["mean"][column] for k, t in targets.items() if t["kind"] == "region"},
        ci95=bootstrap_score_ci(
            _class_matrix(df, scored, column), num_bootstrap=num_bootstrap, seed=seed
        ),
        num_cases=int(df["case"].nunique()),
    )


def _rank_key(candidate: CandidateScore, higher_is_better: bool) -> tuple[Any, ...]:
    score = candidate.score
    worse_first = -score if higher_is_better else score
    return (math.isnan(score), worse_first, len(candidate.configs), candidate.name)


def _comparison(
    ranked: Sequence[CandidateScore],
    tables: Mapping[tuple[str, ...], pd.DataFrame],
    scored: tuple[str, list[str]],
    column: str,
    metric: str,
    num_bootstrap: int,
    seed: int,
) -> Comparison | None:
    if len(ranked) < 2:
        return None
    winner, runner_up = ranked[0], ranked[1]
    a = _case_scores(_class_matrix(tables[winner.configs], scored, column))
    b = _case_scores(_class_matrix(tables[runner_up.configs], scored, column))
    paired = paired_bootstrap(a, b, num_bootstrap=num_bootstrap, seed=seed)
    return Comparison(
        winner=winner.configs,
        runner_up=runner_up.configs,
        metric=metric,
        higher_is_better=column not in LOWER_IS_BETTER,
        mean_difference=paired.mean_difference,
        ci95=(paired.ci_low, paired.ci_high),
        ci_includes_zero=paired.ci_includes_zero,
        n_cases=paired.n_cases,
        num_bootstrap=num_bootstrap,
        seed=seed,
    )


def _inputs(
    workspace: Workspace,
    configs: Sequence[str],
    cases: Mapping[str, Sequence[OOFCase]],
    settings: Mapping[str, Any],
) -> dict[str, str]:
    inputs = {
        "plans": content_digest(workspace.plans_json),
        "splits": content_digest(workspace.splits_json),
        "settings": text_digest(json.dumps(settings, sort_keys=True)),
    }
    for name in configs:
        inputs[f"cv:{name}"] = content_digest(workspace.config_dir(name) / "cv_summary.json")
    if len(configs) > 1:
        inputs["probabilities"] = files_digest(
            c.probabilities for name in configs for c in cases[name]
        )
    return inputs


def _postprocessed_score(decisions: Sequence[PostprocessingDecision]) -> float:
    values = [d.after if d.apply else d.before for d in decisions]
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def find_best(
    workspace: Workspace,
    configs: Sequence[str] | None = None,
    metric: str = "dice",
    num_bootstrap: int = 2000,
    seed: int = 0,
    *,
    num_workers: int = 1,
) -> BestChoice:
    """Compare trained configurations and their ensembles; write best.json and the bar chart.

    Args:
        workspace: The workspace (plans.json, splits.json, source.json, results/).
        configs: Configurations to consider; by default every planned one with training
            results. Each must have validation outputs for every fold of splits.json.
        metric: ``"dice"``, ``"iou"``, ``"nsd"`` or ``"hd95"`` (mm; lower is better).
        num_bootstrap: Bootstrap resamples of the confidence intervals (>= 1).
        seed: Seed of the bootstrap.
        num_workers: Processes scoring cases in parallel.

    Returns:
        The choice (also written to ``W/best.json``; reused when its inputs are unchanged).

    Raises:
        ConfigError: an unknown metric or configuration, ``num_bootstrap < 1``.
        InputError: no trained configuration, missing folds, cases or probabilities (the
            message lists them and the ``autoseg train`` command to run).
        PlansError, DatasetError: plans.json, source.json or the dataset unreadable.
    """
    column = metric_column(metric)
    name = next(k for k, v in METRIC_CHOICES.items() if v == column)
    if num_bootstrap < 1:
        raise ConfigError(f"the number of bootstrap resamples must be >= 1, got {num_bootstrap=}")
    plans = load_plans(workspace.plans_json)
    chosen = _select_configs(workspace, list(plans.configurations), configs)
    labels = list(plans.scored_labels)
    regions = {k: tuple(v) for k, v in plans.regions.items()}
    scored = _score_keys(plans)
    outputs = OutputSpec.of(plans)
    ensemble = len(chosen) > 1
    cases = {c: out_of_fold_cases(workspace, c, require_probabilities=ensemble) for c in chosen}
    summaries = {c: summarise_cv(workspace, c, column, num_workers=num_workers) for c in chosen}
    settings = {"configs": chosen, "metric": name, "num_bootstrap": num_bootstrap, "seed": seed}
    inputs = _inputs(workspace, chosen, cases, settings)
    if is_current(workspace.best_json, inputs):
        logger.info("%s is current; not recomputed", workspace.best_json)
        choice = load_best_choice(workspace.best_json)
        _plot_if_missing(workspace, choice, label_names(plans.labels))
        return choice
    tables: dict[tuple[str, ...], pd.DataFrame] = {(c,): summaries[c].table() for c in chosen}
    combos = [t for r in range(2, len(chosen) + 1) for t in itertools.combinations(chosen, r)]
    if combos:
        tables.update(
            ensemble_tables(cases, combos, labels, regions, outputs, num_workers=num_workers)
        )
    higher = column not in LOWER_IS_BETTER
    ranked = sorted(
        (
            _candidate(k, df, labels, scored, column, num_bootstrap, seed)
            for k, df in tables.items()
        ),
        key=functools.partial(_rank_key, higher_is_better=higher),
    )
    winner = ranked[0]
    members = members_per_case(cases, winner.configs)
    decisions = decide_postprocessing(
        OOFPredictions(members, outputs), labels, column, ignore_label=plans.ignore_label
    )
    choice = BestChoice(
        configs=winner.configs,
        folds=tuple(range(len(read_splits(workspace)))),
        metric=name,
        score=winner.score,
        score_postprocessed=(
            _postprocessed_score(list(decisions.values())) if decisions else winner.score
        ),
        postprocessing=rule_from_decisions(decisions),
        postprocessing_decisions=tuple(decisions[v] for v in sorted(decisions)),
        candidates=tuple(ranked),
        comparison=_comparison(ranked, tables, scored, column, name, num_bootstrap, seed),
        predict_command=(
            "autoseg predict -i INPUT -o OUTPUT --work "
            f"{shlex.quote(str(workspace.root.resolve()))} --config best"
        ),
        inputs=inputs,
    )
    choice.save(workspace.best_json)
    _plot(workspace, choice, label_names(plans.labels))
    logger.info(
        "best: %s (%s %.4f); wrote %s", winner.name, name, winner.score, workspace.best_json
    )
    return choice


def _plot(workspace: Workspace, choice: BestChoice, names: Mapping[int, str]) -> None:
    plot_cv_comparison(choice, workspace.results_dir / "cv_comparison.png", names)


def _plot_if_missing(workspace: Workspace, choice: BestChoice, names: Mapping[int, str]) -> None:
    if not (workspace.results_dir / "cv_comparison.png").is_file():
        _plot(workspace, choice, names)
